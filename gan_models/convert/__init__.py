"""Converters from checkpoint files found in the wild to this project's safetensors format.

Every pickle-based source file is read by `safe_unpickle.load`, which never executes code from the file
and bounds the time and memory a hostile one can take; a safetensors source by the safetensors library.
A converter then recognises the plain object it got (`detect`) and returns (state_dict, meta).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import CheckpointError


@dataclass(frozen=True)
class Converter:
    name: str             # e.g. "dcgan-tutorial", "nvlabs", "rosinality", "cyclegan"
    # True when the safely loaded object is this converter's format
    detect: Callable[[Any], bool]
    # (obj, options) -> (state_dict, meta); options are the CLI's (arch, z_dim, num_classes, ...)
    convert: Callable[[Any, dict], tuple[dict, dict]]
    # files beside a source that its conversion also reads (BigGAN: config.json), found by path alone
    sidecars: Callable[[Path], list[Path]] | None = None


_CONVERTERS: dict[str, Converter] = {}


def register_converter(conv: Converter) -> Converter:
    _CONVERTERS[conv.name] = conv
    return conv


def converters() -> dict[str, Converter]:
    return dict(_CONVERTERS)


def canonical_state(obj) -> dict:
    """A flat {name: tensor} state dict (DataParallel / torch.compile prefixes stripped) where obj holds
    tensors itself; a CheckpointError where it does not. Wrappers are not unwrapped by name here: `locate` finds the
    state dict inside a container by structure, and ranks an EMA copy above a generator above the rest."""
    from ..registry import canonicalize

    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"expected a state dict of tensors, found a {type(obj).__name__} holding none")
    try:
        return canonicalize(obj)
    except (AttributeError, TypeError) as e:  # a key beside a tensor that is an int or a tuple
        raise CheckpointError(f"a state dict whose keys are not all names ({type(e).__name__}: {e})") from e


def source_files(src: Path) -> list[Path]:
    """src and the files beside it that converting it reads too: what a cache of its conversion is
    keyed by."""
    src = Path(src)
    return [src] + [f for c in _CONVERTERS.values() if c.sidecars for f in c.sidecars(src)]


def state_or_none(obj) -> dict | None:
    """canonical_state(obj), or None where obj is no state dict: what a converter's detect asks first."""
    try:
        return canonical_state(obj)
    except CheckpointError:
        return None


def state_detector(detect) -> Callable[[object], bool]:
    """A converter's detect for a plain state dict that an architecture's detect(sd, meta) accepts."""
    def detect_format(obj) -> bool:
        sd = state_or_none(obj)
        return sd is not None and detect(sd, {}) > 0
    return detect_format


def convert_object(obj, source_path: str, fmt: str | None = None, key: str | None = None,
                   **options) -> tuple[dict, dict]:
    """Convert a safely loaded object. `source_path` reaches the converter as options['source_name']:
    upstream CycleGAN keeps the experiment name in the folder (checkpoints/horse2zebra/latest_net_G_A.pth).
    A file no converter recognises as a whole is searched for its generator (`locate`); `key` names the
    part to convert where a file holds several."""
    from . import locate

    source_name = Path(source_path).name
    if fmt is not None and fmt not in _CONVERTERS:
        raise CheckpointError(f"unknown source format {fmt!r}; known: {sorted(_CONVERTERS)}")
    pool = {fmt: _CONVERTERS[fmt]} if fmt else dict(_CONVERTERS)
    where = None
    if key:
        obj, where = locate.resolve(obj, key), key
    names = [n for n, c in pool.items() if locate._detects(c, obj)]
    if not names and not key:
        found = locate.choose(locate.candidates(obj, pool))
        if found is not None:
            obj, where, names = found.obj, found.path, [found.converter]
    if not names:
        if fmt is not None and not key:  # the user insists: let the converter say what it misses
            names = [fmt]
        else:
            at = f" at {key}" if key else ""
            raise CheckpointError(f"{source_name}{at}: no generator found, not a checkpoint layout any converter "
                                  f"recognises (known: {sorted(_CONVERTERS)}); it holds {locate.describe(obj)}; "
                                  f"{locate.closest(obj)}")
    state, meta = pool[names[0]].convert(obj, {"source_name": str(source_path), **options})
    meta.setdefault("source", {})
    meta["source"] = {"type": "convert", "converter": names[0], "file": source_name,
                      **({"key": where} if where else {}), **meta["source"]}
    return state, meta


def convert_file(src, dst, fmt: str | None = None, discriminator=None, source_extra: dict | None = None,
                 **options) -> dict:
    """Convert src to dst (.safetensors). Returns the description written. Loading the result through
    the registry is part of conversion: a file that would not load is never written. With
    `discriminator`, an NVlabs training pickle's D goes to that path as well (for `train --init-d`),
    from the same read of src; a pickle without one stops the conversion before anything is written.
    An output that is the source itself is refused before anything is read; a safetensors source that
    already carries this project's header is refused as already converted. `source_extra` is added to
    the written meta['source'] (the nodes' conversion cache keeps its key there)."""
    from .. import checkpoint, registry

    src, dst = _weights_in_folder(Path(src)), Path(dst)
    for out in (dst, discriminator):
        if out is not None and Path(out).suffix.lower() != ".safetensors":
            raise CheckpointError(f"output must end in .safetensors: {out}")
    for out in (dst, discriminator):  # an output nothing can be written to is named before any work
        if out is not None:
            checkpoint.check_output_path(out)
    _refuse_overwriting_the_source(src, dst, discriminator)
    obj, header = _read_source(src)
    state, meta = convert_object(obj, str(src), fmt, **options)
    if header:  # a foreign file's own description: kept, not dropped
        meta["source"]["safetensors_metadata"] = header
    meta["source"].update(source_extra or {})
    d_state, d_meta = nvlabs.discriminator(obj) if discriminator is not None else (None, None)
    G = registry.build(state, meta)  # validates: raises if the tensors do not build
    meta = {**meta, "arch": G.arch_name, "kind": G.kind}
    for attr in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels"):
        if hasattr(G, attr) and attr not in meta:
            meta[attr] = int(getattr(G, attr))
    names = options.get("class_names")
    if names:
        if len(names) != getattr(G, "c_dim", 0):
            raise CheckpointError(f"{len(names)} class names for a generator with "
                                  f"{getattr(G, 'c_dim', 0)} classes")
        meta["class_names"] = list(names)
    checkpoint.write(dst, state, meta)
    if d_state is not None:
        d_meta["source"] = {"type": "convert", "converter": "nvlabs", "file": src.name, **d_meta["source"]}
        checkpoint.write(discriminator, d_state, d_meta)
    return meta


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links


def _refuse_overwriting_the_source(src: Path, dst: Path, discriminator) -> None:
    """Before anything is read: writing over the source would replace the only copy of the weights
    with whatever the conversion made of them (a class-conditional file rewritten as unconditional)."""
    outputs = [("output", dst)] + ([("--discriminator output", Path(discriminator))] if discriminator else [])
    for label, out in outputs:
        if _same_file(src, out):
            raise CheckpointError(f"{out}: the {label} is the same file as the source {src.name}; converting "
                                  f"in place would overwrite the only copy. Name another output file")
    if discriminator is not None and _same_file(dst, Path(discriminator)):
        raise CheckpointError(f"{discriminator}: the generator and the discriminator would go to the same file")


def _weights_in_folder(src: Path) -> Path:
    """A folder in pytorch-pretrained-biggan's layout (config.json + pytorch_model.bin) stands for its
    pytorch_model.bin, whose converter finds config.json beside it; any other path is left as it is."""
    if not src.is_dir():
        return src
    weights = src / "pytorch_model.bin"
    if not weights.is_file():
        raise CheckpointError(f"{src} is a folder without a pytorch_model.bin: a folder converts only in "
                              f"pytorch-pretrained-biggan's layout (config.json + pytorch_model.bin); otherwise "
                              f"name the checkpoint file")
    return weights


def _read_source(src: Path) -> tuple[object, dict | None]:
    """(the file's contents as plain objects, a safetensors source's header metadata or None)."""
    from ..checkpoint import META_KEY
    from . import safe_unpickle

    if not src.is_file():
        raise CheckpointError(f"file not found: {src}")
    if not safe_unpickle.is_safetensors(src):
        return safe_unpickle.load(src), None
    tensors, header = safe_unpickle.read_safetensors(src)
    if META_KEY in header:
        raise CheckpointError(f"{src.name} is already converted: its header carries this project's "
                              f"description ('{META_KEY}'), so it loads directly; nothing was written")
    return tensors, header


from . import dcgan  # noqa: E402,F401  (registers converters)
from . import cyclegan  # noqa: E402,F401
from . import nvlabs, rosinality  # noqa: E402,F401
from . import nvlabs_tf  # noqa: E402,F401
from . import biggan  # noqa: E402,F401
