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


# ------------------------------------------------------------------------------------------------
# TorchScript archives (NVlabs' metrics/vgg16.pt): a zip whose data.pkl builds `__torch__.*` module
# objects and whose tensors live in data/KEY entries. torch.jit.load would run the archive's code;
# here each module object becomes a plain attribute dict and each storage is read as bytes.

class ScriptObject:
    """A `__torch__.*` object from a TorchScript data.pkl, as data: its class name and attributes."""

    def __init__(self, class_name: str):
        self.class_name = class_name
        self.attrs: dict = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise CheckpointError(f"{self.class_name}: state is a {type(state).__name__}, not a dict")
        self.attrs = state


def _as_list(items):
    if not isinstance(items, (list, tuple)):
        raise CheckpointError(f"TorchScript list builder got a {type(items).__name__}")
    return list(items)


# how TorchScript pickles its typed lists; each only rebuilds a list from plain items
_SCRIPT_LISTS = {"build_intlist": _as_list, "build_doublelist": _as_list, "build_boollist": _as_list,
                 "build_tensorlist": _as_list, "build_genericlist": _as_list,
                 "restore_type_tag": lambda value, _tag=None: value}


def _script_class(qualname: str):
    class _Obj(ScriptObject):
        def __init__(self):
            super().__init__(qualname)
    _Obj.__name__ = qualname.rsplit(".", 1)[-1]
    return _Obj


_STORAGE_DTYPES = {getattr(torch, n): d for n, d in (
    ("ByteStorage", torch.uint8), ("CharStorage", torch.int8), ("ShortStorage", torch.int16),
    ("IntStorage", torch.int32), ("LongStorage", torch.int64), ("HalfStorage", torch.float16),
    ("FloatStorage", torch.float32), ("DoubleStorage", torch.float64), ("BFloat16Storage", torch.bfloat16),
    ("BoolStorage", torch.bool)) if hasattr(torch, n)}


class _ScriptUnpickler(RestrictedUnpickler):
    def __init__(self, file, source_name: str, storage):
        super().__init__(file, source_name)
        self._storage = storage

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        if module == "torch.jit._pickle" and name in _SCRIPT_LISTS:
            return _SCRIPT_LISTS[name]
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            return super().persistent_load(pid)
        return self._storage(*pid[1:])


def _flatten_script(obj, prefix: str, out: dict, depth: int = 0) -> None:
    if depth > 64:
        raise CheckpointError("TorchScript module tree nested deeper than 64 levels")
    for name, v in obj.attrs.items():
        if isinstance(v, torch.Tensor):
            out[prefix + name] = v.detach()
        elif isinstance(v, ScriptObject):
            _flatten_script(v, f"{prefix}{name}.", out, depth + 1)


def load_torchscript_tensors(path, max_bytes: int = 8 << 30) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive's module tree, by dotted name, without running
    any of its code. Storages are bounded by the entries' real sizes and `max_bytes` in all."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path.name}: not a TorchScript archive ({e})") from e
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1 or not any(n.endswith("/constants.pkl") for n in names):
            raise CheckpointError(f"{path.name}: not a TorchScript archive (no top-level data.pkl and "
                                  f"constants.pkl)")
        root = pkl[0].split("/")[0]
        read = {"bytes": 0}
        cache: dict[str, torch.TypedStorage] = {}

        def storage(kind, key, _location, numel):
            if not isinstance(key, str) or not isinstance(numel, int):
                raise CheckpointError(f"{path.name}: malformed storage reference {kind!r} {key!r}")
            if key in cache:
                return cache[key]
            entry = f"{root}/data/{key}"
            try:
                info = zf.getinfo(entry)
            except KeyError:
                raise CheckpointError(f"{path.name}: storage {key!r} is missing from the archive") from None
            dtype = _STORAGE_DTYPES.get(kind)
            if dtype is None:
                raise CheckpointError(f"{path.name}: storage type {kind!r} refused")
            size = numel * torch.empty((), dtype=dtype).element_size()
            if numel < 0 or info.file_size != size:
                raise CheckpointError(f"{path.name}: storage {key!r} declares {size} bytes, the entry holds "
                                      f"{info.file_size}")
            read["bytes"] += size
            if read["bytes"] > max_bytes:
                raise CheckpointError(f"{path.name}: storages exceed {max_bytes} bytes")
            raw = torch.UntypedStorage.from_buffer(bytearray(zf.read(entry)), dtype=torch.uint8) if size \
                else torch.UntypedStorage(0)
            cache[key] = torch.TypedStorage(wrap_storage=raw, dtype=dtype, _internal=True)
            return cache[key]

        try:
            top = _ScriptUnpickler(io.BytesIO(zf.read(pkl[0])), path.name, storage).load()
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"{path.name}: unreadable data.pkl ({type(e).__name__}: {e})") from e
    if not isinstance(top, ScriptObject):
        raise CheckpointError(f"{path.name}: data.pkl holds a {type(top).__name__}, not a module")
    out: dict[str, torch.Tensor] = {}
    _flatten_script(top, "", out)
    return out
