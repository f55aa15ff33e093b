"""Architecture registry, built like spandrel's: each architecture knows how to recognise its own
state dict from key names and tensor shapes, and how to build itself from one.

An architecture module calls `register(Architecture(...))` at import time; `gan_models.archs`
imports every module it holds, so importing `gan_models` fills the registry, and adding a family is
adding its file.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .checkpoint import CheckpointError

StateDict = Mapping[str, torch.Tensor]

# Containers that wrap the generator's state dict in files found in the wild, most specific first:
# rosinality keeps g_ema beside g/d; basicsr-style files keep params_ema beside params.
WRAPPER_KEYS = ("g_ema", "G_ema", "params_ema", "state_dict", "params", "model", "netG", "generator")
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile


@dataclass(frozen=True)
class Architecture:
    name: str
    kind: str  # "generator": G(z, c) -> image; "translator": T(image) -> image
    # Score how surely a state dict is this architecture: 0 = not it. Must only read keys and shapes.
    detect: Callable[[StateDict, dict], float]
    # Build the module, with its weights loaded, from the state dict and the header description.
    build: Callable[[StateDict, dict], nn.Module]


_ARCHS: dict[str, Architecture] = {}


def import_families(package: str, path) -> list[str]:
    """Import every module of a package whose modules register themselves on import (archs/, train/),
    in name order; names starting with "_" (__main__) are left out. Returns the names imported."""
    names = sorted(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


def register(arch: Architecture) -> Architecture:
    if arch.kind not in ("generator", "translator"):
        raise ValueError(f"{arch.name}: kind must be 'generator' or 'translator', not {arch.kind!r}")
    _ARCHS[arch.name] = arch
    return arch


def architectures() -> dict[str, Architecture]:
    return dict(_ARCHS)


def get(name: str) -> Architecture:
    try:
        return _ARCHS[name]
    except KeyError:
        raise CheckpointError(f"unknown architecture {name!r}; known: {sorted(_ARCHS)}") from None


def canonicalize(obj) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} state dict from what a checkpoint file holds: unwraps the known containers
    (g_ema, params_ema, state_dict, ...) and strips the `module.` / `_orig_mod.` prefixes."""
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, Mapping) and any(isinstance(obj.get(k), Mapping) for k in WRAPPER_KEYS):
        # a dict holding tensors *and* a wrapped state dict (e.g. {'g_ema': {...}, 'latent_avg': T})
        # is unwrapped by the converter that knows the format, not here
        pass
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a state dict, found {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        out[k] = v
    if not out:
        raise CheckpointError("no tensors found in the state dict")
    return out


def detect(state_dict: StateDict, meta: dict | None = None) -> Architecture:
    """The architecture of a state dict. A description naming its arch wins; otherwise the best score."""
    meta = meta or {}
    if "arch" in meta:
        arch = get(meta["arch"])
        if arch.detect(state_dict, meta) <= 0:
            raise CheckpointError(f"the header says arch {arch.name!r} but the tensors do not match it"
                                  + _why_not(arch, state_dict, meta))
        return arch
    scored = sorted(((a.detect(state_dict, meta), a.name) for a in _ARCHS.values()), reverse=True)
    if not scored or scored[0][0] <= 0:
        sample = ", ".join(list(state_dict)[:6])
        raise CheckpointError(f"unrecognised architecture (first keys: {sample}); known: {sorted(_ARCHS)}")
    return _ARCHS[scored[0][1]]


def _why_not(arch: Architecture, state_dict: StateDict, meta: dict) -> str:
    """What building the architecture anyway says is wrong (a stray or missing tensor, a shape), where
    it can say: detection only scores, building names keys."""
    try:
        arch.build(state_dict, meta)
    except CheckpointError as e:
        return f" ({e})"
    except Exception:  # a build fed tensors it does not expect may fail anywhere; the score stands
        pass
    return ""


def build(state_dict: StateDict, meta: dict | None = None) -> nn.Module:
    """The module the tensors describe, holding those tensors. Construction draws no random numbers:
    every weight is about to be replaced by the file's, and at 1024 px the random initialisation was
    half the load time."""
    meta = dict(meta or {})
    arch = detect(state_dict, meta)
    with _NoRandomInit():
        module = arch.build(state_dict, meta)
    module.arch_name = arch.name
    module.kind = arch.kind
    module.meta = {**meta, "arch": arch.name, "kind": arch.kind}
    return module


class _NoRandomInit(TorchFunctionMode):
    """Random draws are skipped while a module is built from a state dict: a draw allocates without
    filling (the values are as arbitrary as random ones, and every one is replaced), and the global
    random stream is left where it was. Thread-local, so a thread beside it keeps drawing. The meta
    device would skip the memory too, but its first use imports torch._dynamo: a second or more."""
    _FACTORIES = {torch.randn, torch.rand, torch.randn_like, torch.rand_like}
    _IN_PLACE = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_,
                 torch.Tensor.exponential_, torch.Tensor.random_, torch.Tensor.cauchy_,
                 torch.Tensor.log_normal_, torch.Tensor.geometric_}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self._FACTORIES:
            kwargs.pop("generator", None)
            return (torch.empty_like if func in (torch.randn_like, torch.rand_like) else torch.empty)(*args, **kwargs)
        if func in self._IN_PLACE:
            return args[0]
        return func(*args, **kwargs)


def load_state_dict_strict(module: nn.Module, state_dict: StateDict, arch_name: str) -> nn.Module:
    """load_state_dict(strict=True) with an error that says which architecture and which keys. The
    module takes the state dict's tensors themselves (cast to its dtype where they differ), not copies."""
    want = module.state_dict()
    wrong = [(k, list(t.shape), list(want[k].shape)) for k, t in state_dict.items()
             if k in want and t.shape != want[k].shape]
    if wrong:  # torch would say this in a RuntimeError traceback; name the tensors instead
        k, got, expected = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise CheckpointError(f"{arch_name}: tensor {k!r} has shape {got}, the network the other tensors "
                              f"describe needs {expected}{more}")
    state = {k: t.to(want[k].dtype).contiguous() if k in want and want[k].is_floating_point() else t
             for k, t in state_dict.items()}
    missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise CheckpointError(f"{arch_name}: state dict does not fit the detected shape: "
                              f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                              f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
    return module
