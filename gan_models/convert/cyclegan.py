"""CycleGAN / pix2pix generators (junyanz/pytorch-CycleGAN-and-pix2pix): `<epoch>_net_G.pth`,
`<epoch>_net_G_A.pth` / `_net_G_B.pth` and the published `horse2zebra.pth`-style files, all plain
state dicts of a ResnetGenerator or UnetGenerator.

The stored state dict is the canonical one: residual blocks under `conv_block`, and the running
statistics that pre-0.4 PyTorch saved for InstanceNorm layers dropped as upstream's loader does.
"""
from __future__ import annotations

import re
from pathlib import PurePath

from ..archs.translators import translator_state_dict
from ..checkpoint import CheckpointError
from . import Converter, canonical_state, register_converter

_NET = re.compile(r"^(?P<prefix>.*?)_?(?:(?:latest|best|\d+)_)?net_(?P<net>G(?:_[AB])?)$")


def style_name_from_path(path: str) -> str:
    """'checkpoints/horse2zebra/latest_net_G_A.pth' -> 'horse2zebra G_A'; 'horse2zebra.pth' ->
    'horse2zebra'; 'facades_label2photo_net_G.pth' -> 'facades_label2photo G'. Upstream keeps the
    experiment name in the folder, published files in the file name."""
    p = PurePath(path)
    m = _NET.match(p.stem)
    if not m:
        return p.stem
    prefix = m["prefix"] or (p.parent.name if p.parent.name not in ("", ".", "checkpoints") else "")
    return f"{prefix} {m['net']}".strip()


def _state(obj):
    try:
        return translator_state_dict(canonical_state(obj))
    except CheckpointError:
        return None


def detect_format(obj) -> bool:
    return _state(obj) is not None


def convert(obj, options: dict):
    try:
        arch, sd, hp = translator_state_dict(canonical_state(obj))
    except CheckpointError as e:
        raise CheckpointError(f"not a CycleGAN/pix2pix generator: {e}") from None
    meta = {"arch": arch, "kind": "translator", "in_channels": hp["in_channels"],
            "img_channels": hp["out_channels"], "input_range": [-1, 1], "output_range": [-1, 1],
            "arch_kwargs": hp}
    style = options.get("style_name")
    if style is None and options.get("source_name"):
        style = style_name_from_path(options["source_name"])
    if style:
        meta["style_name"] = str(style)
    return sd, meta


register_converter(Converter(name="cyclegan", detect=detect_format, convert=convert))
