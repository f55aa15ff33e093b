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
        check_loaded(G, meta)
    except CheckpointError as e:
        raise CheckpointError(f"{path.name}: {e}") from e
    return G.eval().requires_grad_(False).to(device=device, dtype=dtype)


# header fields that must agree with the network built from the tensors: a header that says z_dim 100
# over tensors that take 120 would pass the load and fail at the first forward pass
_DECLARED = ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels", "in_channels")


def check_loaded(G: torch.nn.Module, meta: dict) -> None:
    """Refuse, by name, a network whose weights hold NaN or infinity (they draw black or NaN images with
    no error) or whose header contradicts its tensors. Cheap next to reading the file."""
    for name, t in list(G.named_parameters()) + list(G.named_buffers()):
        # one summing pass finds any NaN or Inf (they propagate); only a sum that is not finite (a NaN,
        # or finite values past float32's range) pays for the exact test
        if t.is_floating_point() and not torch.isfinite(t.sum(dtype=torch.float32 if t.element_size() < 4 else None)) \
                and not torch.isfinite(t).all():
            raise CheckpointError(f"tensor {name!r} holds NaN or infinite values: the file is damaged or "
                                  f"came from a diverged training run")
    for k in _DECLARED:
        if k in meta and hasattr(G, k) and meta[k] != int(getattr(G, k)):
            raise CheckpointError(f"the header says {k}={meta[k]!r}, the tensors make {k}={int(getattr(G, k))}")
    names = meta.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != int(getattr(G, "c_dim", 0) or 0)):
        raise CheckpointError(f"the header lists {len(names) if isinstance(names, list) else names!r} class "
                              f"names for a generator with {int(getattr(G, 'c_dim', 0) or 0)} classes")


def save_generator(path: str | os.PathLike, G: torch.nn.Module, meta: dict | None = None) -> None:
    """Write G's state dict with its description (G.meta updated by `meta`), atomically."""
    full = {**getattr(G, "meta", {}), **(meta or {})}
    for attr in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels"):
        if hasattr(G, attr) and attr not in full:
            full[attr] = int(getattr(G, attr))
    checkpoint.write(path, G.state_dict(), full)


__all__ = ["load_generator", "save_generator", "CheckpointError", "checkpoint", "registry",
           "WEIGHTS_DIR", "DEFAULT_CHECKPOINT"]
