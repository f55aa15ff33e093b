"""Reading checkpoint files from the wild without executing anything stored in them, in bounded time
and memory.

Four kinds of file arrive here, all read by one restricted unpickler (never pickle.load, torch.load or
torch.jit.load, which would run or trust what the file says):

- NVlabs network pickles (.pkl: a plain pickle of a dict of modules). Their modules pickle as
  `torch_utils.persistence._reconstruct_persistent_obj(meta)` where meta carries the module's Python
  source; unpickling them upstream *executes that source*. Here a persistent object becomes a
  `PersistentObject` holding its state as data; its module_src is kept as text and never run. Their
  tensors are embedded as `torch.storage._load_from_bytes(b)`: b is a legacy torch archive, read below.
- torch.save zip archives (.pt/.pth): ARCHIVE/data.pkl whose persistent ids
  ('storage', type, key, location, numel) name raw ARCHIVE/data/KEY entries.
- torch.save legacy archives: magic, protocol and sys_info pickles, the main pickle with the same
  persistent ids, the list of storage keys, then per storage an 8-byte little-endian element count and
  its raw bytes.
- TorchScript archives (NVlabs' metrics/vgg16.pt): the zip layout again, whose `__torch__.*` module
  objects become plain attribute dicts (`load_torchscript_tensors`).
- TF-era NVlabs network pickles (StyleGAN2 and stylegan2-ada in TensorFlow): a tuple (G, D, Gs) of
  `dnnlib.tflib.network.Network` objects whose state carries the Python source that builds their TF
  graph; unpickling them upstream *executes that source*. Here each becomes a `TFNetwork` holding its
  state as data (variables as numpy arrays); build_module_src is kept as text and never run.

Only an explicit allowlist of globals resolves; anything else is refused with a CheckpointError naming
it. Untrusted data is also bounded (`Budget`): a few hundred bytes of pickle can describe an object
graph that doubles at every level, nesting thousands of levels deep, a dict key that takes 2^60 steps
to hash, or a storage that claims 10^12 elements. Every walk over what a file holds counts each path
to a shared object, stops at MAX_OBJECTS visits and MAX_DEPTH levels, and no storage is allocated
beyond the bytes the file actually contains.
"""
from __future__ import annotations

import argparse
import collections
import io
import math
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CheckpointError

# torch.save's legacy (non-zip) format starts with this pickled number, then this protocol version
_LEGACY_TORCH_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001

# The bounds on any walk over a file's objects. A real NVlabs 1024 px training pickle (G, D, G_ema,
# augment_pipe) holds a few tens of thousands of objects and nests about a dozen levels.
MAX_OBJECTS = 1_000_000
MAX_DEPTH = 100
# pickle opcodes executed per file: each builds at most one object, so this bounds memory in objects
MAX_PICKLE_OPS = 20_000_000


class Budget:
    """The bounds for reading one untrusted file, shared by every walk over what it holds.

    `charge` counts objects visited, each path to a shared object counted again (that is what a
    walk does; a graph that doubles at each level hits the bound after a few dozen distinct objects),
    `check_depth` refuses nesting, `storage` the tensor bytes materialised: a storage's bytes are in
    the file once, so together they may not exceed the file's own size."""

    def __init__(self, source: str, *, max_objects: int = MAX_OBJECTS, max_depth: int = MAX_DEPTH,
                 max_storage_bytes: int | None = None):
        self.source = source
        self.max_objects, self.max_depth = max_objects, max_depth
        self.max_storage_bytes = max_storage_bytes
        self.objects = 0
        self.storage_bytes = 0

    def check_depth(self, depth: int, what: str) -> None:
        if depth > self.max_depth:
            raise CheckpointError(f"{self.source}: {what} nested more than {self.max_depth} levels deep "
                                  f"(the depth bound); refused, nothing was loaded")

    def charge(self, n: int, what: str) -> None:
        self.objects += n
        if self.objects > self.max_objects:
            raise CheckpointError(f"{self.source}: {what}: more than {self.max_objects:,} objects to visit, "
                                  f"counting every path to a shared object (the object bound); refused, "
                                  f"nothing was loaded")

    def step(self, depth: int, what: str) -> None:
        """One object visited at `depth` by a walk that does work per object."""
        self.check_depth(depth, what)
        self.charge(1, what)

    def storage(self, nbytes: int, what: str) -> None:
        self.storage_bytes += nbytes
        if self.max_storage_bytes is not None and self.storage_bytes > self.max_storage_bytes:
            raise CheckpointError(f"{self.source}: {what}: tensor storages would add up to more than "
                                  f"{self.max_storage_bytes:,} bytes, what the file itself holds (the storage "
                                  f"bound); refused before allocating them")


def _brief(x) -> str:
    """A short description of an untrusted value for an error message: repr() of a shared-reference
    graph could take forever, of a huge int raise."""
    if isinstance(x, (str, bytes)):
        return repr(x[:40]) + ("..." if len(x) > 40 else "")
    if isinstance(x, bool) or x is None or (isinstance(x, int) and abs(x) < 10 ** 30):
        return repr(x)
    return f"a {type(x).__name__}"


class EasyDict(dict):
    """Stand-in for dnnlib.EasyDict: a dict whose keys read as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state):  # EasyDict pickles no instance state worth keeping
        pass


def _optional(meta: dict, key: str, kind: type):
    v = meta.get(key)
    if v is not None and not isinstance(v, kind):
        raise CheckpointError(f"persistent object {key} is {_brief(v)}, not a {kind.__name__}")
    return v


class PersistentObject:
    """What an NVlabs persistent module becomes: its class name and state, as data.

    state is the module's __dict__ as pickled: _parameters, _buffers, _modules (nested
    PersistentObjects), _init_args, _init_kwargs, ... `module_src` is the embedded source, never run.
    `source` names the file it came from, for error messages."""

    def __init__(self, meta: dict, source: str = "pickle"):
        if not isinstance(meta, dict):
            raise CheckpointError(f"{source}: persistent object metadata is {_brief(meta)}, not a dict")
        self.source = source
        # they end up in messages and headers; anything but a plain value would make those unbounded
        self.type = _optional(meta, "type", str)
        self.version = _optional(meta, "version", int)
        self.class_name = _optional(meta, "class_name", str)
        self.module_src = _optional(meta, "module_src", str)
        state = meta.get("state")
        self.state = dict(state) if isinstance(state, dict) else {}

    def __setstate__(self, state):
        # upstream pickles these as a call alone; state set afterwards could replace any attribute
        raise CheckpointError(f"{self.source}: persistent object {self.class_name!r} given extra state")

    @property
    def init_args(self) -> list:
        return list(self.state.get("_init_args") or [])

    @property
    def init_kwargs(self) -> dict:
        budget = Budget(f"{self.source}: {self.class_name} init kwargs")
        return _plain(self.state.get("_init_kwargs") or {}, budget)

    def state_dict(self, prefix: str = "", budget: Budget | None = None, _depth: int = 0) -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of the module tree with nn.Module's dotted names."""
        budget = budget or Budget(f"{self.source}: {self.class_name} module tree")
        budget.step(_depth, "module tree")
        out: dict[str, torch.Tensor] = {}
        skip = self.state.get("_non_persistent_buffers_set") or ()
        skip = {s for s in skip if isinstance(s, str)} if isinstance(skip, (set, frozenset, list, tuple)) else set()
        for group in ("_parameters", "_buffers"):
            for name, t in self._field(group).items():
                budget.step(_depth + 1, "module tree")
                if t is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(t, torch.Tensor):
                    raise CheckpointError(f"{self.source}: {self.class_name}: {group}[{_brief(name)}] is "
                                          f"{_brief(t)}")
                out[prefix + str(name)] = t.detach()
        for name, child in self._field("_modules").items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise CheckpointError(f"{self.source}: {self.class_name}: submodule {_brief(name)} is "
                                      f"{_brief(child)}")
            out.update(child.state_dict(f"{prefix}{name}.", budget, _depth + 1))
        return out

    def _field(self, name: str) -> dict:
        value = self.state.get(name) or {}
        if not isinstance(value, dict):
            raise CheckpointError(f"{self.source}: {self.class_name}: {name} is {_brief(value)}, not a dict")
        return value

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"


class TFNetwork:
    """What a TF-era `dnnlib.tflib.network.Network` becomes: its pickled state, as data.

    Upstream's __setstate__ exec()s state['build_module_src'] to rebuild the TF graph; here the state
    is only kept. It is checked field by field when set (cheaply: the graph bounds are enforced once
    the whole file is read, and a variables list shared by many networks must not be walked once per
    network), and deeply by the converter, after those bounds. `components` maps names to nested
    TFNetworks; `variables` is a list of (name, numpy array) pairs."""

    _FIELDS = {"version": int, "name": str, "static_kwargs": dict, "components": dict,
               "build_module_src": str, "build_func_name": str, "variables": list}

    def __new__(cls, *args):
        if args:  # pickled by NEWOBJ with no arguments; anything else is not a Network
            raise CheckpointError(f"TF network created with arguments {_brief(args[0])}")
        return super().__new__(cls)

    def __setstate__(self, state):
        if "state" in self.__dict__:  # a second BUILD could swap a checked state for another
            raise CheckpointError(f"TF network {self.name!r} given state twice")
        if not isinstance(state, dict):
            raise CheckpointError(f"TF network state is {_brief(state)}, not a dict")
        for key, kind in self._FIELDS.items():
            value = state.get(key, {} if key == "components" else None)  # version 2/3 had none
            if type(value) is not kind and not (kind is dict and isinstance(value, dict)):
                raise CheckpointError(f"TF network {_brief(state.get('name'))}: {key} is {_brief(value)}, "
                                      f"not a {kind.__name__}")
        self.state = dict(state)

    @property
    def version(self) -> int | None:
        return self.__dict__.get("state", {}).get("version")

    @property
    def name(self) -> str | None:
        return self.__dict__.get("state", {}).get("name")

    @property
    def static_kwargs(self) -> dict:
        return dict(self.state["static_kwargs"])

    @property
    def components(self) -> dict:
        return dict(self.state.get("components") or {})

    @property
    def variables(self) -> list:
        return list(self.state["variables"])

    @property
    def build_func_name(self) -> str:
        return self.state["build_func_name"]

    def __repr__(self) -> str:
        return f"TFNetwork({self.name!r})"


def _plain(obj, budget: Budget | None = None, _depth: int = 0):
    """Nested EasyDicts / OrderedDicts / tuples -> dicts and lists (for JSON headers)."""
    budget = budget or Budget("value")
    budget.step(_depth, "value")
    if isinstance(obj, dict):
        return {str(k): _plain(v, budget, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, budget, _depth + 1) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ------------------------------------------------------------------------------------------------
# The bounded walk over a whole file's objects, run once when it is read: every later walk (the
# converters' detection, canonicalize's unwrapping, _plain, state_dict) then sees a graph with no
# cycles, at most MAX_OBJECTS paths and MAX_DEPTH levels.

_LEAVES = (str, bytes, int, float, bool, complex, type(None), torch.Tensor, torch.dtype, torch.device,
           torch.TypedStorage, torch.UntypedStorage, np.ndarray, np.generic, np.dtype, type)


def _children(obj):
    """What a walk descends into, or None for a leaf."""
    if isinstance(obj, _LEAVES):
        return None
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    if isinstance(obj, PersistentObject):
        return (obj.state,)
    if isinstance(obj, TFNetwork):
        return (obj.__dict__.get("state", {}),)
    if isinstance(obj, ScriptObject):
        return (obj.attrs,)
    if isinstance(obj, argparse.Namespace):
        return (vars(obj),)
    return None


def check_graph(obj, budget: Budget, what: str = "the file's objects") -> None:
    """Refuse a graph with a cycle, deeper than the budget's depth, or with more paths than its object
    bound. Shared objects are counted once per path but walked once (memoised), so a graph that
    doubles at every level is refused after visiting a few dozen objects, not 2^60."""
    memo: dict[int, tuple[int, int]] = {}  # id -> (paths below and including it, height)
    on_path: set[int] = set()
    room = budget.max_objects - budget.objects

    def visit(o, depth: int) -> tuple[int, int]:
        kids = _children(o)
        if kids is None:
            return 1, 0
        key = id(o)
        hit = memo.get(key)
        if hit is not None:
            budget.check_depth(depth + hit[1], what)
            return hit
        if key in on_path:
            raise CheckpointError(f"{budget.source}: {what} contain a reference cycle (a container inside "
                                  f"itself); refused, nothing was loaded")
        budget.check_depth(depth, what)
        on_path.add(key)
        count, height = 1, 0
        for k in kids:
            c, h = visit(k, depth + 1)
            count += c
            height = max(height, h + 1)
            if count > room:
                budget.charge(count, what)  # raises, naming the bound
        on_path.discard(key)
        memo[key] = (count, height)
        return count, height

    budget.charge(visit(obj, 0)[0], what)


# ------------------------------------------------------------------------------------------------
# The allowlist. Each entry maps a pickled global to what it is allowed to become.

def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise CheckpointError(f"tensor storage is {_brief(storage)}")
    if backward_hooks:  # hooks are callables; a weight file has no business carrying any
        raise CheckpointError("tensor carries backward hooks, refused")
    _check_view(storage, size)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), False,
                                           collections.OrderedDict())


def _check_view(storage, size) -> None:
    """A tensor may not hold more elements than its storage: with stride 0 a 16-byte storage could
    stand for a 10^12-element tensor, which any copy (clone, load_state_dict) would then allocate."""
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) > 64 or \
            not all(type(s) is int and s >= 0 for s in size):
        raise CheckpointError(f"tensor size {_brief(size)} is not a short list of non-negative ints")
    if isinstance(storage, torch.TypedStorage):  # (TypedStorage's own size methods warn of deprecation)
        itemsize, nbytes = storage.dtype.itemsize, storage._untyped_storage.nbytes()
    else:
        itemsize, nbytes = 1, storage.nbytes()
    if math.prod(size) * itemsize > nbytes:
        raise CheckpointError(f"tensor of size {list(size)[:8]} needs more than its storage's "
                              f"{nbytes:,} bytes (overlapping strides), refused")


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, torch.Tensor):
        raise CheckpointError(f"parameter data is {_brief(data)}")
    if backward_hooks:
        raise CheckpointError("parameter carries backward hooks, refused")
    return torch.nn.Parameter(data, requires_grad=False)


_TENSOR_REBUILDERS = (_rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter)


def _rebuild_from_type_v2(func, new_type, args, state):
    # only the plain tensor types, and only rebuilt by the functions above: anything else in `func`
    # would be a second way to call an allowlisted global with arguments nobody checked
    if not any(new_type is t for t in (torch.Tensor, torch.nn.Parameter)) \
            or not any(func is f for f in _TENSOR_REBUILDERS):
        raise CheckpointError(f"tensor subclass or rebuild function {_brief(new_type)} refused")
    if not isinstance(args, tuple):
        raise CheckpointError(f"tensor rebuild arguments are {_brief(args)}")
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    # how protocol-2 pickles spell a bytes literal; nothing else is accepted
    if not isinstance(text, str) or encoding != "latin1":
        raise CheckpointError(f"_codecs.encode only rebuilds latin1 bytes, not {_brief(encoding)}")
    return text.encode("latin1")


def _numpy_attr(name: str):
    # old pickles say numpy.core.*, numpy >= 2 says numpy._core.*; both resolve to the installed one
    if hasattr(np, "_core"):
        from numpy._core import multiarray
    else:  # numpy < 2
        from numpy.core import multiarray
    return getattr(multiarray, name)


# Plain numeric, boolean and string data only. numpy rebuilds object arrays from pickled lists without
# checking their length (a short list leaves NULL pointers: a crash) and trusts a dtype's pickled
# fields and flags, so anything structured or holding objects is refused.
_NUMPY_KINDS = set("biufcSU")
_NUMPY_OBJECT_FLAGS = 0x01 | 0x02 | 0x04 | 0x10 | 0x20 | 0x40  # hasobject, list pickle, pointer, pyapi


def _plain_dtype(dt) -> np.dtype:
    if not isinstance(dt, np.dtype) or dt.hasobject or dt.fields is not None or dt.subdtype is not None \
            or dt.kind not in _NUMPY_KINDS:
        raise CheckpointError(f"numpy dtype {_brief(str(dt))} refused: only plain numbers, booleans and strings")
    return dt


def _numpy_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str) or len(spec) > 16:
        raise CheckpointError(f"numpy dtype spec {_brief(spec)} refused")
    return _plain_dtype(np.dtype(spec, align=bool(align), copy=bool(copy)))


def _numpy_reconstruct(subtype, shape, dtype):
    # numpy pickles an empty placeholder and fills it by __setstate__, checked in BUILD
    if subtype is not np.ndarray or type(shape) is not tuple or shape != (0,):
        raise CheckpointError(f"numpy array placeholder {_brief(shape)} refused (numpy pickles shape (0,))")
    return _numpy_attr("_reconstruct")(subtype, shape, dtype)


def _numpy_scalar(dtype, data=None):
    return _numpy_attr("scalar")(_plain_dtype(dtype), data)


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
        "torch.device": torch.device,
        "_codecs.encode": _codecs_encode,
        "dnnlib.EasyDict": EasyDict,
        "dnnlib.util.EasyDict": EasyDict,
        "dnnlib.tflib.network.Network": TFNetwork,  # as data: its build_module_src is never run
        "argparse.Namespace": argparse.Namespace,  # rosinality's train.py saves its args beside the weights
        "numpy.dtype": _numpy_dtype,
        "numpy.ndarray": np.ndarray,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[f"{core}.multiarray._reconstruct"] = _numpy_reconstruct
        allowed[f"{core}.multiarray.scalar"] = _numpy_scalar
    allowed.update(_storage_types())
    for name in dir(torch):  # torch.float32 etc. pickle as globals
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[f"torch.{name}"] = getattr(torch, name)
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_"):
        dt = getattr(np, name)  # numpy >= 1.25 pickles dtypes by their class: numpy.dtypes.Float32DType
        allowed[f"numpy.dtypes.{type(np.dtype(dt)).__name__}"] = type(np.dtype(dt))
    return allowed


_ALLOWED = _allowlist()
# types that may appear as tags (a storage's type, a tensor subclass) but are never called: calling
# one allocates whatever size the pickle asks for (torch.FloatStorage(10**12), np.ndarray(shape))
_NEVER_CALLED = frozenset([torch.Tensor, torch.nn.Parameter, np.ndarray, *_storage_types().values()])
# callables that hash what they are given: their keys are checked like a dict's
_DICT_BUILDERS = (collections.OrderedDict, EasyDict, argparse.Namespace)
# what BUILD (pickle's "set the state of the object just made") may apply to; on a class or function
# it would set attributes for the whole process
_BUILDABLE = (dict, argparse.Namespace, np.ndarray, np.dtype)
_REFUSAL_ADVICE = ("nothing in it was run; the file was not loaded and must not be loaded with "
                   "weights_only=False or plain pickle, which would run it")


class RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler that resolves only the allowlisted globals, calls them only with checked
    arguments, and bounds what a hostile stream can make it do.

    It is pickle's pure-Python Unpickler so that every opcode that hashes (a dict key, a set item) or
    calls can be checked first: the C one hashes a 2^60-step tuple key without returning."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, source_name: str = "pickle", budget: Budget | None = None, storages=None):
        super().__init__(file)
        self.source_name = source_name
        self.budget = budget or Budget(source_name)
        self._storages = storages  # persistent id -> storage, for torch archives
        self._key_memo: dict[int, tuple[object, int, int]] = {}

    # -- globals ---------------------------------------------------------------------------------
    def find_class(self, module: str, name: str):
        key = f"{module}.{name}"
        if key == "torch_utils.persistence._reconstruct_persistent_obj":
            return self._reconstruct_persistent_obj
        if key == "torch.storage._load_from_bytes":
            return self._load_from_bytes
        if key in _ALLOWED:
            return _ALLOWED[key]
        raise CheckpointError(f"{self.source_name}: refused to load global '{key}': only tensors, numpy "
                              f"arrays, plain containers and NVlabs networks (as data) are allowed; "
                              f"{_REFUSAL_ADVICE}")

    def _reconstruct_persistent_obj(self, meta):
        return PersistentObject(meta, self.source_name)

    def _load_from_bytes(self, b):
        """An NVlabs pickle's tensor storage: a whole torch archive in bytes, read by the same reader
        under the same budget, so the same bytes referenced a thousand times cannot be decoded into a
        thousand copies."""
        if not isinstance(b, (bytes, bytearray)):
            raise CheckpointError(f"{self.source_name}: torch.storage._load_from_bytes got {_brief(b)}, not bytes")
        storage = _read_torch_bytes(bytes(b), self.source_name, self.budget)
        if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
            raise CheckpointError(f"{self.source_name}: an embedded storage holds {_brief(storage)}")
        return storage

    def persistent_load(self, pid):
        if self._storages is None:
            raise CheckpointError(f"{self.source_name}: refused persistent id {_brief(pid)} outside a torch "
                                  f"archive")
        return self._storages(pid)

    # -- bounds ----------------------------------------------------------------------------------
    def load(self):
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)
        self.read, self.readinto, self.readline = (self._unframer.read, self._unframer.readinto,
                                                   self._unframer.readline)
        self.metastack, self.stack = [], []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch = self.read, self.dispatch
        for _ in range(MAX_PICKLE_OPS):
            key = read(1)
            if not key:
                raise EOFError
            try:
                dispatch[key[0]](self)
            except pickle._Stop as stop:
                return stop.value
        raise CheckpointError(f"{self.source_name}: more than {MAX_PICKLE_OPS:,} pickle operations (the "
                              f"operation bound); refused")

    def _check_key(self, key) -> None:
        """Hashing a tuple hashes its items, again for every reference to a shared one: check the
        cost first (memoised, tuples cannot change) and charge it to the budget."""
        if type(key) in (str, int, bytes, float, bool):
            return
        count, _ = self._hash_cost(key, 0)
        self.budget.charge(count, "a dict key or set item to hash")

    def _hash_cost(self, obj, depth: int) -> tuple[int, int]:
        if type(obj) not in (tuple, frozenset):
            return 1, 0
        hit = self._key_memo.get(id(obj))
        if hit is not None and hit[0] is obj:
            self.budget.check_depth(depth + hit[2], "a dict key or set item")
            return hit[1], hit[2]
        self.budget.check_depth(depth, "a dict key or set item")
        count, height = 1, 0
        for item in obj:
            c, h = self._hash_cost(item, depth + 1)
            count, height = count + c, max(height, h + 1)
            if count > self.budget.max_objects:
                self.budget.charge(count, "a dict key or set item to hash")
        self._key_memo[id(obj)] = (obj, count, height)
        return count, height

    def _check_call(self, func, args) -> None:
        if isinstance(func, type) and func in _NEVER_CALLED:
            raise CheckpointError(f"{self.source_name}: refused to call {func.__module__}.{func.__qualname__}"
                                  f"({_brief(args[0]) if args else ''}): it may only appear as a type tag "
                                  f"(calling it allocates whatever size the file asks for)")
        if any(func is b for b in _DICT_BUILDERS):
            for a in args:
                if isinstance(a, (list, tuple)):
                    for pair in a:
                        if isinstance(pair, (list, tuple)) and pair:
                            self._check_key(pair[0])

    # -- the opcodes that hash, call or mutate ----------------------------------------------------
    def _setitem(self):
        if not isinstance(self.stack[-3], dict):
            raise CheckpointError(f"{self.source_name}: SETITEM on {_brief(self.stack[-3])}, not a dict")
        self._check_key(self.stack[-2])
        pickle._Unpickler.load_setitem(self)
    dispatch[pickle.SETITEM[0]] = _setitem

    def _setitems(self):
        target = self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None
        if not isinstance(target, dict):
            raise CheckpointError(f"{self.source_name}: SETITEMS on {_brief(target)}, not a dict")
        for k in self.stack[::2]:
            self._check_key(k)
        pickle._Unpickler.load_setitems(self)
    dispatch[pickle.SETITEMS[0]] = _setitems

    def _dict(self):
        for k in self.stack[::2]:
            self._check_key(k)
        pickle._Unpickler.load_dict(self)
    dispatch[pickle.DICT[0]] = _dict

    def _check_mark_target(self, op: str, kind: type) -> None:
        """A batch opcode (APPENDS, ADDITEMS) adds to the object under its MARK: refuse any other type."""
        target = self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None
        if type(target) is not kind:
            raise CheckpointError(f"{self.source_name}: {op} on {_brief(target)}, not a {kind.__name__}")

    def _additems(self):
        self._check_mark_target("ADDITEMS", set)
        for k in self.stack:
            self._check_key(k)
        pickle._Unpickler.load_additems(self)
    dispatch[pickle.ADDITEMS[0]] = _additems

    def _frozenset(self):
        for k in self.stack:
            self._check_key(k)
        pickle._Unpickler.load_frozenset(self)
    dispatch[pickle.FROZENSET[0]] = _frozenset

    def _append(self):
        if type(self.stack[-2]) is not list:
            raise CheckpointError(f"{self.source_name}: APPEND on {_brief(self.stack[-2])}, not a list")
        pickle._Unpickler.load_append(self)
    dispatch[pickle.APPEND[0]] = _append

    def _appends(self):
        self._check_mark_target("APPENDS", list)
        pickle._Unpickler.load_appends(self)
    dispatch[pickle.APPENDS[0]] = _appends

    def _checked_call(at: int, load):
        """The opcodes that call something (REDUCE, NEWOBJ, NEWOBJ_EX): the callable and its arguments
        sit at stack[at] and stack[at + 1], and are checked before pickle's own handler runs."""
        def handler(self):
            self._check_call(self.stack[at], self.stack[at + 1])
            load(self)
        return handler
    dispatch[pickle.REDUCE[0]] = _checked_call(-2, pickle._Unpickler.load_reduce)
    dispatch[pickle.NEWOBJ[0]] = _checked_call(-2, pickle._Unpickler.load_newobj)
    dispatch[pickle.NEWOBJ_EX[0]] = _checked_call(-3, pickle._Unpickler.load_newobj_ex)
    del _checked_call

    def _instantiate(self, klass, args):  # INST and OBJ, protocols 0 and 1
        self._check_call(klass, args)
        super()._instantiate(klass, args)

    def _build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, (PersistentObject, ScriptObject, EasyDict, TFNetwork)):
            pass  # their own __setstate__ decides
        elif isinstance(inst, type):  # setting a class's attributes would change it for the whole process
            raise CheckpointError(f"{self.source_name}: refused to set the state of the class "
                                  f"{inst.__module__}.{inst.__qualname__}")
        elif not isinstance(inst, _BUILDABLE):
            raise CheckpointError(f"{self.source_name}: refused to set the state of {_brief(inst)}")
        elif isinstance(inst, np.dtype):
            _check_dtype_state(state)
        elif isinstance(inst, np.ndarray):
            _check_array_state(state)
        elif not isinstance(state, dict):
            raise CheckpointError(f"{self.source_name}: state of a {type(inst).__name__} is {_brief(state)}")
        pickle._Unpickler.load_build(self)
        if isinstance(inst, np.dtype):
            _plain_dtype(inst)
    dispatch[pickle.BUILD[0]] = _build


def _check_dtype_state(state) -> None:
    # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[2] is None and state[3] is None
            and state[4] is None and type(state[7]) is int and not state[7] & _NUMPY_OBJECT_FLAGS):
        raise CheckpointError("numpy dtype state with fields, subarrays or object flags refused")


def _check_array_state(state) -> None:
    # (version, shape, dtype, is_fortran, rawdata); numpy < 1.? wrote it without the version
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]
    if not (isinstance(state, tuple) and len(state) == 4):
        raise CheckpointError("numpy array state is not (shape, dtype, fortran, data)")
    shape, dtype, _, raw = state
    dtype = _plain_dtype(dtype)
    if not isinstance(shape, tuple) or len(shape) > 64 or not all(type(s) is int and s >= 0 for s in shape):
        raise CheckpointError(f"numpy array shape {_brief(shape)} refused")
    if isinstance(raw, str):
        raw = raw.encode("latin1")  # Python 2 pickles
    if not isinstance(raw, bytes) or len(raw) != math.prod(shape) * dtype.itemsize:
        raise CheckpointError(f"numpy array data is {_brief(raw)}, not the {math.prod(shape) * dtype.itemsize:,} "
                              f"bytes its shape needs")


def _unpickle(f, source: str, budget: Budget, unpickler=RestrictedUnpickler, storages=None):
    try:
        return unpickler(f, source, budget, storages).load()
    except CheckpointError as e:
        if str(e).startswith(source):
            raise
        raise CheckpointError(f"{source}: {e}") from e  # refused by an allowlisted function
    except Exception as e:  # truncated or malformed stream
        raise CheckpointError(f"{source}: not a readable pickle ({type(e).__name__}: {str(e)[:200]})") from e


def loads_restricted(data: bytes, source_name: str = "pickle"):
    budget = Budget(source_name, max_storage_bytes=len(data))
    obj = _unpickle(io.BytesIO(data), source_name, budget)
    check_graph(obj, budget)
    return obj


# ------------------------------------------------------------------------------------------------
# Storages of torch archives: each persistent id is checked against the bytes that really exist before
# anything is allocated.

_STORAGE_DTYPES = {getattr(torch, n): d for n, d in (
    ("ByteStorage", torch.uint8), ("CharStorage", torch.int8), ("ShortStorage", torch.int16),
    ("IntStorage", torch.int32), ("LongStorage", torch.int64), ("HalfStorage", torch.float16),
    ("FloatStorage", torch.float32), ("DoubleStorage", torch.float64), ("BFloat16Storage", torch.bfloat16),
    ("BoolStorage", torch.bool), ("ComplexFloatStorage", torch.complex64),
    ("ComplexDoubleStorage", torch.complex128), ("UntypedStorage", torch.uint8)) if hasattr(torch, n)}


def _storage_ref(pid, source: str, length: int) -> tuple[torch.dtype, str, int]:
    """(dtype, key, numel) of a ('storage', type, key, location, numel[, view]) persistent id."""
    if not (isinstance(pid, tuple) and len(pid) == length and isinstance(pid[0], (str, bytes))
            and pid[0] in ("storage", b"storage")):
        raise CheckpointError(f"{source}: refused persistent id {_brief(pid)} (not a storage reference)")
    kind, key, location, numel = pid[1:5]
    dtype = _STORAGE_DTYPES.get(kind) if isinstance(kind, type) else None
    if dtype is None:
        raise CheckpointError(f"{source}: storage type {_brief(kind)} refused")
    if not isinstance(key, str) or len(key) > 64 or not isinstance(location, str) \
            or type(numel) is not int or numel < 0:
        raise CheckpointError(f"{source}: malformed storage reference {_brief(key)} ({_brief(numel)} elements)")
    return dtype, key, numel


def _typed(raw: torch.UntypedStorage, dtype: torch.dtype) -> torch.TypedStorage:
    return torch.TypedStorage(wrap_storage=raw, dtype=dtype, _internal=True)


def _declared(source: str, key: str, numel: int, dtype: torch.dtype) -> str:
    return f"{source}: storage {key!r} declares {numel:,} {str(dtype).replace('torch.', '')} elements " \
           f"({numel * dtype.itemsize:,} bytes)"


class _ZipStorages:
    """Storages of a zip archive (torch.save or TorchScript): ARCHIVE/data/KEY, whose real size must be
    the declared one."""

    def __init__(self, zf: zipfile.ZipFile, root: str, source: str, budget: Budget, archive_size: int):
        self.zf, self.root, self.source, self.budget = zf, root, source, budget
        self.archive_size = archive_size
        self.cache: dict[str, torch.TypedStorage] = {}

    def __call__(self, pid) -> torch.TypedStorage:
        dtype, key, numel = _storage_ref(pid, self.source, 5)
        if key in self.cache:
            if self.cache[key].dtype != dtype:
                raise CheckpointError(f"{self.source}: storage {key!r} referenced with two types")
            return self.cache[key]
        entry = f"{self.root}/data/{key}"
        try:
            info = self.zf.getinfo(entry)
        except KeyError:
            raise CheckpointError(f"{self.source}: storage {key!r} is missing from the archive") from None
        nbytes = numel * dtype.itemsize
        if info.file_size != nbytes:
            raise CheckpointError(f"{_declared(self.source, key, numel, dtype)}; its entry {entry} holds "
                                  f"{info.file_size:,} bytes; refused")
        _check_entry_size(info, self.archive_size, self.source)
        self.budget.storage(nbytes, f"storage {key!r}")
        with self.zf.open(info) as fh:
            raw = _read_exactly(fh, nbytes, f"{self.source}: storage {key!r}")
        self.cache[key] = _typed(raw, dtype)
        return self.cache[key]


def _check_entry_size(info: zipfile.ZipInfo, limit: int, source: str) -> None:
    # torch writes its entries uncompressed; a compressed one could inflate far beyond the archive
    if info.file_size > limit:
        raise CheckpointError(f"{source}: entry {info.filename} claims {info.file_size:,} bytes, more than "
                              f"the {limit:,} it may hold (no more than the archive's own size); refused")


def _read_exactly(fh, nbytes: int, what: str) -> torch.UntypedStorage:
    """nbytes from a file object straight into a new storage (one allocation, no copy)."""
    t = torch.empty(nbytes, dtype=torch.uint8)
    _read_into(fh, t, what)
    return t.untyped_storage()


def _read_into(fh, t: torch.Tensor, what: str) -> None:
    view = memoryview(t.numpy())
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            raise CheckpointError(f"{what}: the file ends after {got:,} of its {len(view):,} bytes")
        got += n


class _LegacyStorages:
    """Storages of a legacy archive. The main pickle names them before their bytes (which follow it), so
    each is allocated when named, only once the bytes it claims are known to fit in what is left of
    the file, and filled by `fill` from the records after the key list."""

    def __init__(self, data: bytes, f: io.BytesIO, source: str, budget: Budget):
        self.data, self.f, self.source, self.budget = data, f, source, budget
        self.named: dict[str, tuple[torch.dtype, int, torch.Tensor]] = {}  # key -> its bytes as uint8
        self.claimed = 0

    def __call__(self, pid) -> torch.TypedStorage:
        dtype, key, numel = _storage_ref(pid, self.source, 6)
        if pid[5] is not None:
            raise CheckpointError(f"{self.source}: storage views (PyTorch < 0.4 archives) are not supported")
        if key in self.named:
            known_dtype, known_numel, raw = self.named[key]
            if (known_dtype, known_numel) != (dtype, numel):
                raise CheckpointError(f"{self.source}: storage {key!r} declared twice with different sizes")
            return _typed(raw.untyped_storage(), dtype)
        nbytes = numel * dtype.itemsize
        left = len(self.data) - self.f.tell()
        if self.claimed + nbytes + 8 > left:
            raise CheckpointError(f"{_declared(self.source, key, numel, dtype)}, more than the {left:,} bytes "
                                  f"left in the file; refused before allocating it")
        self.claimed += nbytes + 8
        self.budget.storage(nbytes, f"storage {key!r}")
        raw = torch.empty(nbytes, dtype=torch.uint8)
        self.named[key] = (dtype, numel, raw)
        return _typed(raw.untyped_storage(), dtype)

    def fill(self, keys) -> None:
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) \
                or len(keys) != len(self.named) or set(keys) != set(self.named):
            raise CheckpointError(f"{self.source}: the archive's storage key list does not match the "
                                  f"{len(self.named)} storages its pickle names")
        for key in keys:
            dtype, numel, raw = self.named[key]
            head = self.f.read(8)
            if len(head) != 8:
                raise CheckpointError(f"{self.source}: storage {key!r} has no data (the file ends)")
            (count,) = struct.unpack("<q", head)
            if count != numel:
                raise CheckpointError(f"{self.source}: storage {key!r}: its data says {count:,} elements where "
                                      f"its record declared {numel:,}; refused")
            _read_into(self.f, raw, f"{self.source}: storage {key!r}")


# ------------------------------------------------------------------------------------------------
# Whole archives

def _read_legacy(data: bytes, f: io.BytesIO, source: str, budget: Budget):
    """The rest of a legacy torch.save stream, its magic number already read from f."""
    protocol = _unpickle(f, source, budget)
    if type(protocol) is not int or protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{source}: legacy torch archive of protocol {_brief(protocol)}, not {_LEGACY_PROTOCOL}")
    sys_info = _unpickle(f, source, budget)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise CheckpointError(f"{source}: only little-endian legacy torch archives are read")
    storages = _LegacyStorages(data, f, source, budget)
    obj = _unpickle(f, source, budget, storages=storages)
    storages.fill(_unpickle(f, source, budget))
    return obj


def _zip_root(zf: zipfile.ZipFile, source: str) -> tuple[str, bool]:
    """The archive's top folder, and whether it is TorchScript (it has constants.pkl)."""
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise CheckpointError(f"{source}: a zip file without one top-level data.pkl: not a torch archive")
    root = pkl[0].split("/")[0]
    return root, f"{root}/constants.pkl" in names


def _read_zip(zf: zipfile.ZipFile, root: str, source: str, budget: Budget, archive_size: int,
              unpickler=None):
    order = _entry_bytes(zf, f"{root}/byteorder", source, 16) if f"{root}/byteorder" in zf.namelist() \
        else b"little"
    if order.strip() != b"little":
        raise CheckpointError(f"{source}: a {_brief(order)}-endian torch archive; only little-endian is read")
    pkl = _entry_bytes(zf, f"{root}/data.pkl", source, archive_size)
    storages = _ZipStorages(zf, root, source, budget, archive_size)
    return _unpickle(io.BytesIO(pkl), source, budget, unpickler or RestrictedUnpickler, storages)


def _entry_bytes(zf: zipfile.ZipFile, name: str, source: str, limit: int) -> bytes:
    info = zf.getinfo(name)
    _check_entry_size(info, limit, source)
    try:
        return zf.read(info)
    except Exception as e:
        raise CheckpointError(f"{source}: unreadable {name} ({type(e).__name__}: {e})") from e


def _open_zip(file, source: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except (OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{source}: not a readable zip archive ({e})") from e


def _read_torch_bytes(data: bytes, source: str, budget: Budget):
    """A torch archive held in memory (zip or legacy): what torch.storage._load_from_bytes reads."""
    if data[:4] == b"PK\x03\x04":
        with _open_zip(io.BytesIO(data), source) as zf:
            root, script = _zip_root(zf, source)
            if script:
                raise CheckpointError(f"{source}: an embedded TorchScript archive, refused")
            return _read_zip(zf, root, source, budget, len(data))
    f = io.BytesIO(data)
    magic = _unpickle(f, source, budget)
    if not (type(magic) is int and magic == _LEGACY_TORCH_MAGIC):
        raise CheckpointError(f"{source}: embedded storage bytes are not a torch archive")
    return _read_legacy(data, f, source, budget)


def _namespaces_to_dicts(obj):
    if isinstance(obj, argparse.Namespace):
        return {"__namespace__": True, **vars(obj)}
    if isinstance(obj, dict) and any(isinstance(v, argparse.Namespace) for v in obj.values()):
        return type(obj)((k, _namespaces_to_dicts(v)) for k, v in obj.items())
    return obj


# ------------------------------------------------------------------------------------------------
# safetensors sources: read by the safetensors library, never by an unpickler

def is_safetensors(path) -> bool:
    """By content: an 8-byte little-endian header length that fits the file, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, the header's string metadata)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, header
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({e})") from e


# ------------------------------------------------------------------------------------------------

def load(path) -> object:
    """The file's contents as plain objects (dicts, tensors, numpy, PersistentObject), executing nothing.
    An argparse.Namespace comes back as a dict with '__namespace__': True; a safetensors file as its
    dict of tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"file not found: {path}")
    source, size = path.name, path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{source}: the file is empty")
    if is_safetensors(path):
        return read_safetensors(path)[0]
    budget = Budget(source, max_storage_bytes=size)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04":
        with _open_zip(path, source) as zf:
            root, script = _zip_root(zf, source)
            if script:
                raise CheckpointError(f"{source} is a TorchScript archive (torch.jit.save), not a checkpoint")
            obj = _read_zip(zf, root, source, budget, size)
    else:
        obj = _read_pickle_file(path, budget)
    check_graph(obj, budget)
    return _namespaces_to_dicts(obj)


def _read_pickle_file(path: Path, budget: Budget):
    """A plain pickle (NVlabs) or a legacy torch archive. Read into memory first: a pickle's length
    fields are then bounded by the bytes present, never by what a file object would allocate."""
    source = path.name
    if tarfile.is_tarfile(path):
        raise CheckpointError(f"{source}: a tar-format torch archive (PyTorch 0.1 to 0.3) is not read; "
                              f"re-save it with a recent PyTorch you trust it in")
    data = path.read_bytes()
    f = io.BytesIO(data)
    first = _unpickle(f, source, budget)
    if type(first) is int and first == _LEGACY_TORCH_MAGIC and f.tell() < len(data):
        return _read_legacy(data, f, source, budget)
    if f.tell() < len(data) and data[f.tell():].strip(b"\x00"):
        raise CheckpointError(f"{source}: {len(data) - f.tell()} bytes after the pickle; not a network pickle")
    return first


# ------------------------------------------------------------------------------------------------
# TorchScript archives (NVlabs' metrics/vgg16.pt): data.pkl builds `__torch__.*` module objects.
# torch.jit.load would run the archive's code; here each module object becomes a plain attribute dict.

class ScriptObject:
    """A `__torch__.*` object from a TorchScript data.pkl, as data: its class name and attributes."""

    class_name = "__torch__"

    def __init__(self, class_name: str):
        self.class_name = class_name
        self.attrs: dict = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise CheckpointError(f"{self.class_name}: state is {_brief(state)}, not a dict")
        self.attrs = state


def _as_list(items):
    if not isinstance(items, (list, tuple)):
        raise CheckpointError(f"TorchScript list builder got {_brief(items)}")
    return list(items)


# how TorchScript pickles its typed lists; each only rebuilds a list from plain items
_SCRIPT_LISTS = {"build_intlist": _as_list, "build_doublelist": _as_list, "build_boollist": _as_list,
                 "build_tensorlist": _as_list, "build_genericlist": _as_list,
                 "restore_type_tag": lambda value, _tag=None: value}


def _script_class(qualname: str):
    class _Obj(ScriptObject):
        class_name = qualname  # NEWOBJ makes these without calling __init__

        def __init__(self):
            super().__init__(qualname)
    _Obj.__name__ = qualname.rsplit(".", 1)[-1][:64]
    return _Obj


class _ScriptUnpickler(RestrictedUnpickler):
    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        if module == "torch.jit._pickle" and name in _SCRIPT_LISTS:
            return _SCRIPT_LISTS[name]
        return super().find_class(module, name)


def _flatten_script(obj, prefix: str, out: dict, budget: Budget, depth: int = 0) -> None:
    budget.step(depth, "TorchScript module tree")
    for name, v in obj.attrs.items():
        if isinstance(v, torch.Tensor):
            out[prefix + str(name)] = v.detach()
        elif isinstance(v, ScriptObject):
            _flatten_script(v, f"{prefix}{name}.", out, budget, depth + 1)


def load_torchscript_tensors(path, max_bytes: int = 8 << 30) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive's module tree, by dotted name, without running
    any of its code. Storages are bounded by the entries' real sizes, the file's size and `max_bytes`."""
    path = Path(path)
    source = path.name
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{source}: not a TorchScript archive ({e})") from e
    size = path.stat().st_size
    budget = Budget(source, max_storage_bytes=min(size, max_bytes))
    with zf:
        try:
            root, script = _zip_root(zf, source)
        except CheckpointError:
            script = False
        if not script:
            raise CheckpointError(f"{source}: not a TorchScript archive (no top-level data.pkl and "
                                  f"constants.pkl)")
        top = _read_zip(zf, root, source, budget, size, _ScriptUnpickler)
    if not isinstance(top, ScriptObject):
        raise CheckpointError(f"{source}: data.pkl holds {_brief(top)}, not a module")
    check_graph(top, budget)
    out: dict[str, torch.Tensor] = {}
    _flatten_script(top, "", out, budget)
    return out
