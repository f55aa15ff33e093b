"""comfyui-gan's PyTorch library: GAN generators and translators loaded from safetensors.

Nothing here imports ComfyUI. The public API follows NVlabs': a generator is called as
``G(z, c=None, truncation_psi=1, noise_mode='const')`` and returns NCHW in [-1, 1]; a translator
as ``T(x)`` with x NCHW in [-1, 1].
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from . import archs  # noqa: F401  (fills the registry)
from . import checkpoint, registry
from .checkpoint import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "fashion_mnist_cdcgan.safetensors"


def load_generator(path: str | os.PathLike | None = None, device="cpu", dtype=torch.float32):
    """Load a checkpoint written in this project's format (or a plain safetensors state dict of a
    known architecture). Returns an eval-mode module with `z_dim, c_dim, img_resolution,
    img_channels`, plus `.meta` (the header description), `.arch_name` and `.kind`."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    state, meta = checkpoint.read(path)
    if meta.get("kind") == "discriminator":
        raise CheckpointError(f"{path.name} is a discriminator, kept for fine-tuning (python -m gan_models.train "
                              f"--init-d); load the generator converted beside it")
    try:
        G = registry.build(registry.canonicalize(state), meta)
    except CheckpointError as e:
        raise CheckpointError(f"{path.name}: {e}") from e
    return G.eval().requires_grad_(False).to(device=device, dtype=dtype)


def save_generator(path: str | os.PathLike, G: torch.nn.Module, meta: dict | None = None) -> None:
    """Write G's state dict with its description (G.meta updated by `meta`), atomically."""
    full = {**getattr(G, "meta", {}), **(meta or {})}
    for attr in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels"):
        if hasattr(G, attr) and attr not in full:
            full[attr] = int(getattr(G, attr))
    checkpoint.write(path, G.state_dict(), full)


__all__ = ["load_generator", "save_generator", "CheckpointError", "checkpoint", "registry",
           "WEIGHTS_DIR", "DEFAULT_CHECKPOINT"]
