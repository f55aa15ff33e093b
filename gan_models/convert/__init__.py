"""Converters from checkpoint files found in the wild to this project's safetensors format.

Every source file is read by `safe_unpickle.load`, which never executes code from the file; a
converter then recognises the plain object it got (`sniff`) and returns (state_dict, meta).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import CheckpointError


@dataclass(frozen=True)
class Converter:
    name: str             # e.g. "dcgan-tutorial", "nvlabs", "rosinality", "cyclegan"
    # True when the safely loaded object is this converter's format
    sniff: Callable[[Any], bool]
    # (obj, options) -> (state_dict, meta); options are the CLI's (arch, z_dim, num_classes, ...)
    convert: Callable[[Any, dict], tuple[dict, dict]]


_CONVERTERS: dict[str, Converter] = {}


def register_converter(conv: Converter) -> Converter:
    _CONVERTERS[conv.name] = conv
    return conv


def converters() -> dict[str, Converter]:
    return dict(_CONVERTERS)


def convert_object(obj, source_path: str, fmt: str | None = None, **options) -> tuple[dict, dict]:
    """Convert a safely loaded object. `source_path` reaches the converter as options['source_name']:
    upstream CycleGAN keeps the experiment name in the folder (checkpoints/horse2zebra/latest_net_G_A.pth)."""
    source_name = Path(source_path).name
    if fmt is not None:
        if fmt not in _CONVERTERS:
            raise CheckpointError(f"unknown source format {fmt!r}; known: {sorted(_CONVERTERS)}")
        candidates = [_CONVERTERS[fmt]]
    else:
        candidates = [c for c in _CONVERTERS.values() if c.sniff(obj)]
        if not candidates:
            raise CheckpointError(f"{source_name}: not a checkpoint layout any converter recognises "
                                  f"(known: {sorted(_CONVERTERS)}); pass --from to force one")
    state, meta = candidates[0].convert(obj, {"source_name": str(source_path), **options})
    meta.setdefault("source", {})
    meta["source"] = {"type": "convert", "converter": candidates[0].name, "file": source_name,
                      **meta["source"]}
    return state, meta


def convert_file(src, dst, fmt: str | None = None, discriminator=None, **options) -> dict:
    """Convert src to dst (.safetensors). Returns the description written. Loading the result through
    the registry is part of conversion: a file that would not load is never written. With
    `discriminator`, an NVlabs training pickle's D goes to that path as well (for `train --init-d`),
    from the same read of src; a pickle without one stops the conversion before anything is written."""
    from .. import checkpoint, registry
    from .safe_unpickle import load

    src, dst = Path(src), Path(dst)
    for out in (dst, discriminator):
        if out is not None and Path(out).suffix.lower() != ".safetensors":
            raise CheckpointError(f"output must end in .safetensors: {out}")
    obj = load(src)
    state, meta = convert_object(obj, str(src), fmt, **options)
    d_state, d_meta = nvlabs.discriminator(obj) if discriminator is not None else (None, None)
    G = registry.build(state, meta)  # validates: raises if the tensors do not build
    meta = {**meta, "arch": G.arch_name, "kind": G.kind}
    for attr in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels"):
        if hasattr(G, attr) and attr not in meta:
            meta[attr] = int(getattr(G, attr))
    names = options.get("class_names")
    if names:
        if len(names) != getattr(G, "c_dim", 0):
            raise CheckpointError(f"{len(names)} class names given for a generator with "
                                  f"{getattr(G, 'c_dim', 0)} classes")
        meta["class_names"] = list(names)
    checkpoint.write(dst, state, meta)
    if d_state is not None:
        d_meta["source"] = {"type": "convert", "converter": "nvlabs", "file": src.name, **d_meta["source"]}
        checkpoint.write(discriminator, d_state, d_meta)
    return meta


from . import dcgan  # noqa: E402,F401  (registers converters)
from . import cyclegan  # noqa: E402,F401
from . import nvlabs, rosinality  # noqa: E402,F401
