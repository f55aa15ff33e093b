"""PyTorch-tutorial DCGAN checkpoints: `netG.pth` state dicts, or `.tar` dicts that hold one
(netG / generator / state_dict / model), with `main.N.*` keys."""
from __future__ import annotations

from ..archs.dcgan import detect, layout_from_state_dict
from ..checkpoint import CheckpointError
from . import Converter, register_converter, state_detector, state_or_none


detect_format = state_detector(detect)


def convert(obj, options: dict):
    sd = state_or_none(obj)
    if sd is None or detect(sd, {}) <= 0:
        raise CheckpointError("not a tutorial DCGAN generator: expected main.N.weight keys")
    in_ch = sd["main.0.weight"].shape[0]
    # A conditional tutorial model is indistinguishable from an unconditional one with a wider z:
    # only the user knows the split, so it comes from --z-dim / --num-classes.
    z_dim, c_dim = options.get("z_dim"), options.get("num_classes")
    if z_dim is not None and c_dim is not None and z_dim + c_dim != in_ch:
        raise CheckpointError(f"--z-dim {z_dim} + --num-classes {c_dim} != the first layer's {in_ch} input channels")
    c_dim = c_dim if c_dim is not None else (in_ch - z_dim if z_dim is not None else 0)
    if not 0 <= c_dim < in_ch:
        raise CheckpointError(f"--z-dim/--num-classes leave no room for z in {in_ch} input channels")
    meta = {"arch": "dcgan", "c_dim": c_dim, "z_dim": in_ch - c_dim, "output_range": [-1, 1]}
    layout_from_state_dict(sd, meta)  # raises on a layer the tutorial layout does not have
    return dict(sd), meta


register_converter(Converter(name="dcgan-tutorial", detect=detect_format, convert=convert))
