"""Reading checkpoint files from the wild without executing anything stored in them.

Two kinds of file arrive here:

- torch archives (.pt/.pth, zip or legacy format): torch.load(weights_only=True), with one extra plain
  class allowed, argparse.Namespace, because rosinality's train.py saves its `args` beside the weights.
- NVlabs network pickles (.pkl: a plain pickle of a dict of modules). Their modules pickle as
  `torch_utils.persistence._reconstruct_persistent_obj(meta)` where meta carries the module's Python
  source; unpickling them upstream *executes that source*. Here a restricted Unpickler resolves only an
  explicit allowlist of globals, and a persistent object becomes a `PersistentObject` holding its
  state as data; its module_src is kept as text and never run.

Anything outside the allowlist is refused with a CheckpointError naming the global it asked for.
"""
from __future__ import annotations

import argparse
import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CheckpointError

# torch.save's legacy (non-zip) format starts with this pickled number
_LEGACY_TORCH_MAGIC = 0x1950a86a20f9469cfc6c


class EasyDict(dict):
    """Stand-in for dnnlib.EasyDict: a dict whose keys read as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state):  # EasyDict pickles no instance state worth keeping
        pass


class PersistentObject:
    """What an NVlabs persistent module becomes: its class name and state, as data.

    state is the module's __dict__ as pickled: _parameters, _buffers, _modules (nested
    PersistentObjects), _init_args, _init_kwargs, ... `module_src` is the embedded source, never run."""

    def __init__(self, meta: dict):
        if not isinstance(meta, dict):
            raise CheckpointError(f"persistent object metadata is a {type(meta).__name__}, not a dict")
        self.type = meta.get("type")
        self.version = meta.get("version")
        self.class_name = meta.get("class_name")
        self.module_src = meta.get("module_src")
        state = meta.get("state")
        self.state = dict(state) if isinstance(state, dict) else {}

    @property
    def init_args(self) -> list:
        return list(self.state.get("_init_args") or [])

    @property
    def init_kwargs(self) -> dict:
        return _plain(self.state.get("_init_kwargs") or {})

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of the module tree with nn.Module's dotted names."""
        out: dict[str, torch.Tensor] = {}
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for group in ("_parameters", "_buffers"):
            for name, t in (self.state.get(group) or {}).items():
                if t is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(t, torch.Tensor):
                    raise CheckpointError(f"{self.class_name}: {group}[{name!r}] is a {type(t).__name__}")
                out[prefix + name] = t.detach()
        for name, child in (self.state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise CheckpointError(f"{self.class_name}: submodule {name!r} is a {type(child).__name__}")
            out.update(child.state_dict(f"{prefix}{name}."))
        return out

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"


def _plain(obj):
    """Nested EasyDicts / OrderedDicts / tuples -> dicts and lists (for JSON headers)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ------------------------------------------------------------------------------------------------
# The allowlist. Each entry maps a pickled global to what it is allowed to become.

def _reconstruct_persistent_obj(meta):
    return PersistentObject(meta)


def _load_from_bytes(b):
    if not isinstance(b, (bytes, bytearray)):
        raise CheckpointError(f"torch.storage._load_from_bytes got a {type(b).__name__}, not bytes")
    try:
        return torch.load(io.BytesIO(bytes(b)), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"embedded tensor storage refused by torch.load(weights_only=True): {e}") from e


def _no_hooks(hooks, where: str):
    if hooks:  # hooks are callables; a weight file has no business carrying any
        raise CheckpointError(f"{where}: tensor carries backward hooks, refused")
    return collections.OrderedDict()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise CheckpointError(f"tensor storage is a {type(storage).__name__}")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False,
                                           _no_hooks(backward_hooks, "_rebuild_tensor_v2"))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, torch.Tensor):
        raise CheckpointError(f"parameter data is a {type(data).__name__}")
    _no_hooks(backward_hooks, "_rebuild_parameter")
    return torch.nn.Parameter(data, requires_grad=False)


def _rebuild_from_type_v2(func, new_type, args, state):
    # only the plain tensor types; func itself came through this allowlist
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise CheckpointError(f"tensor subclass {getattr(new_type, '__name__', new_type)!r} refused")
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    # how protocol-2 pickles spell a bytes literal; nothing else is accepted
    if not isinstance(text, str) or encoding != "latin1":
        raise CheckpointError(f"_codecs.encode only rebuilds latin1 bytes, not {encoding!r}")
    return text.encode("latin1")


def _numpy_attr(name: str):
    # old pickles say numpy.core.*, numpy >= 2 says numpy._core.*; both resolve to the installed one
    if hasattr(np, "_core"):
        from numpy._core import multiarray
    else:  # numpy < 2
        from numpy.core import multiarray
    return getattr(multiarray, name)


def _storage_types() -> dict[str, object]:
    names = ["UntypedStorage", "TypedStorage", "ByteStorage", "CharStorage", "ShortStorage", "IntStorage",
             "LongStorage", "HalfStorage", "FloatStorage", "DoubleStorage", "BFloat16Storage", "BoolStorage",
             "ComplexFloatStorage", "ComplexDoubleStorage"]
    return {f"torch.{n}": getattr(torch, n) for n in names if hasattr(torch, n)}


def _allowlist() -> dict[str, object]:
    allowed = {
        "collections.OrderedDict": collections.OrderedDict,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.Tensor": torch.Tensor,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.storage._load_from_bytes": _load_from_bytes,
        "torch.device": torch.device,
        "_codecs.encode": _codecs_encode,
        "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
        "dnnlib.EasyDict": EasyDict,
        "dnnlib.util.EasyDict": EasyDict,
        "numpy.dtype": np.dtype,
        "numpy.ndarray": np.ndarray,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[f"{core}.multiarray._reconstruct"] = lambda *a: _numpy_attr("_reconstruct")(*a)
        allowed[f"{core}.multiarray.scalar"] = lambda *a: _numpy_attr("scalar")(*a)
    allowed.update(_storage_types())
    for name in dir(torch):  # torch.float32 etc. pickle as globals
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[f"torch.{name}"] = getattr(torch, name)
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_"):
        dt = getattr(np, name)  # numpy >= 1.25 pickles dtypes by their class: numpy.dtypes.Float32DType
        allowed[f"numpy.dtypes.{type(np.dtype(dt)).__name__}"] = type(np.dtype(dt))
    return allowed


_ALLOWED = _allowlist()


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only the allowlisted globals and no persistent ids."""

    def __init__(self, file, source_name: str = "pickle"):
        super().__init__(file)
        self.source_name = source_name

    def find_class(self, module: str, name: str):
        key = f"{module}.{name}"
        if key in _ALLOWED:
            return _ALLOWED[key]
        raise CheckpointError(f"{self.source_name}: refused to load global '{key}': only tensors, numpy "
                              f"arrays, plain containers and NVlabs persistent modules (as data) are allowed")

    def persistent_load(self, pid):
        raise CheckpointError(f"{self.source_name}: refused persistent id {str(pid)[:60]!r} "
                              f"(not a plain pickle; torch archives are read by torch.load)")


def loads_restricted(data: bytes, source_name: str = "pickle"):
    return RestrictedUnpickler(io.BytesIO(data), source_name).load()


# ------------------------------------------------------------------------------------------------

def _torch_load(path: Path):
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path.name}: refused by the restricted loader "
                              f"(torch.load weights_only=True): {e}") from e
    return _namespaces_to_dicts(obj)


def _namespaces_to_dicts(obj):
    if isinstance(obj, argparse.Namespace):
        return {"__namespace__": True, **vars(obj)}
    if isinstance(obj, dict) and any(isinstance(v, argparse.Namespace) for v in obj.values()):
        return type(obj)((k, _namespaces_to_dicts(v)) for k, v in obj.items())
    return obj


def load(path) -> object:
    """The file's contents as plain objects (dicts, tensors, numpy, PersistentObject), executing nothing.
    An argparse.Namespace comes back as a dict with '__namespace__': True."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"file not found: {path}")
    if zipfile.is_zipfile(path):
        return _torch_load(path)
    data = path.read_bytes()
    if not data.startswith(b"\x80"):
        # protocol-0/1 pickles and torch's old tar format: let torch's own restricted loader judge
        return _torch_load(path)
    f = io.BytesIO(data)
    try:
        first = RestrictedUnpickler(f, path.name).load()
    except CheckpointError:
        raise
    except Exception as e:  # truncated or malformed stream
        raise CheckpointError(f"{path.name}: not a readable pickle ({type(e).__name__}: {e})") from e
    if first == _LEGACY_TORCH_MAGIC and f.tell() < len(data):
        return _torch_load(path)  # legacy torch.save: several pickles plus raw storages
    if f.tell() < len(data) and data[f.tell():].strip(b"\x00"):
        raise CheckpointError(f"{path.name}: {len(data) - f.tell()} bytes after the pickle; not a network pickle")
    return first
