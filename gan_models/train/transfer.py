"""--init / --init-d: start a run from trained weights instead of random ones, as NVlabs'
`--resume=ffhq256.pkl` does. Fine-tuning a pretrained StyleGAN2 is how the ADA paper trains on a few
thousand images (Karras et al. 2020, sec. 4): the generator comes from any checkpoint this project
loads (an NVlabs or rosinality pickle after `python -m gan_models.convert`, or an earlier export), the
discriminator from `convert --discriminator`. Both must be the architecture the run builds; what
differs is named, with the options that would build the file's network."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .. import checkpoint, registry

# the command-line options that set what NVlabs' init_kwargs record
_FLAGS = (("--resolution", "img_resolution"), ("--channels", "img_channels"), ("--z-dim", "z_dim"),
          ("--w-dim", "w_dim"), ("--map-layers", "num_layers"), ("--cbase", "channel_base"),
          ("--cmax", "channel_max"), ("--mbstd-group", "mbstd_group_size"))


def _built_with(meta: dict) -> str:
    kw = meta.get("init_kwargs") or {}
    scopes = [kw, kw.get("mapping_kwargs") or {}, kw.get("synthesis_kwargs") or {}, kw.get("epilogue_kwargs") or {}]
    found = [(flag, next((s[key] for s in scopes if key in s), None)) for flag, key in _FLAGS]
    flags = " ".join(f"{flag} {v}" for flag, v in found if v is not None)
    labels = kw.get("c_dim")
    if labels is not None:
        flags += f" and {labels} classes" if labels else " and no classes"
    return f" It was built with {flags}." if flags else ""


def load_into(module: nn.Module, path: str | Path, what: str) -> int:
    """Copy the tensors of the checkpoint at `path` into `module` (its parameters and buffers, in
    place). Names and shapes must be those of the module, all of them. Returns the count copied."""
    path = Path(path)
    option = "--init" if what == "generator" else "--init-d"
    try:
        state, meta = checkpoint.read(path)
    except checkpoint.CheckpointError as e:
        raise ValueError(f"{option}: {e}") from None
    if meta.get("kind") == "discriminator" and what == "generator":
        raise ValueError(f"{option}: {path.name} holds a discriminator; pass it with --init-d")
    if what == "discriminator" and meta.get("kind") != "discriminator":
        raise ValueError(f"{option}: {path.name} is not a discriminator (write one with "
                         f"`python -m gan_models.convert NETWORK.pkl G.safetensors --discriminator D.safetensors`)")
    state = registry.canonicalize(state)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or extra or wrong:
        parts = [f"{len(wrong)} tensor(s) of another shape, e.g. {wrong[0]}" if wrong else "",
                 f"{len(missing)} of this run's tensors absent, e.g. {missing[0]}" if missing else "",
                 f"{len(extra)} tensor(s) this run has no place for, e.g. {extra[0]}" if extra else ""]
        raise ValueError(f"{option}: {path.name} is not the {what} this run builds: "
                         + "; ".join(p for p in parts if p) + "." + _built_with(meta)
                         + " Give the run the same options (classes come from --data's subfolders).")
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(state[k])
    return len(own)
