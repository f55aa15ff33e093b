"""The restricted reader never runs code stored in a checkpoint: each payload below would create a
file when loaded with pickle / upstream's loader; conversion must refuse it (or read it as inert data)
and the file must never appear."""
from __future__ import annotations

import argparse
import io
import os
import pickle
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_models import CheckpointError, load_generator
from gan_models.archs.stylegan2 import Generator
from gan_models.convert import convert_file
from gan_models.convert.safe_unpickle import EasyDict, PersistentObject, load


class Reduce:
    """Pickles as `func(*args)`: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def write_pickle(path: Path, obj, protocol=4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def assert_refused(src: Path, dst: Path, marker: Path, match: str):
    with pytest.raises(CheckpointError, match=match):
        convert_file(src, dst)
    assert not marker.exists(), "the payload ran"
    assert not dst.exists(), "a refused file must not produce output"


@pytest.mark.parametrize("payload", ["os.system", "builtins.exec", "subprocess.call", "posix.system"])
def test_plain_reduce_payload_is_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}"
    func = {"os.system": (os.system, cmd), "posix.system": (os.system, cmd),
            "builtins.exec": (exec, f"open({str(marker)!r}, 'w').write('x')"),
            "subprocess.call": (subprocess.call, ["touch", str(marker)])}[payload]
    module = {"os.system": os.system.__module__, "posix.system": os.system.__module__,
              "builtins.exec": "builtins", "subprocess.call": "subprocess"}[payload]
    src = write_pickle(tmp_path / "evil.pkl", {"G_ema": Reduce(*func)})
    assert_refused(src, tmp_path / "out.safetensors", marker, rf"refused to load global '{module}\.")
    # the same payload in a protocol-2 pickle (GLOBAL opcode instead of STACK_GLOBAL; Python 2 names)
    src = write_pickle(tmp_path / "evil2.pkl", [Reduce(*func)], protocol=2)
    py2 = {"builtins": "__builtin__", "subprocess": "commands"}.get(module, module)
    assert_refused(src, tmp_path / "out.safetensors", marker, rf"'({module}|{py2})\.")


def test_getattr_trick_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    src = write_pickle(tmp_path / "evil.pkl", Reduce(getattr, Reduce(__import__, "os"), "system"))
    assert_refused(src, tmp_path / "out.safetensors", marker, r"'builtins\.getattr'")


def test_payload_in_zip_archive_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pt"
    torch.save({"g_ema": {"w": torch.zeros(1)}, "args": Reduce(os.system, f"touch {marker}")}, src)
    assert_refused(src, tmp_path / "out.safetensors", marker, "system")


def test_payload_inside_embedded_storage_bytes_is_refused(tmp_path):
    """torch.storage._load_from_bytes is allowed, but its bytes are a torch archive read by the same
    restricted reader."""
    marker = tmp_path / "pwned"
    inner = io.BytesIO()
    torch.save(Reduce(os.system, f"touch {marker}"), inner, _use_new_zipfile_serialization=False)
    src = write_pickle(tmp_path / "evil.pkl", {"G_ema": Reduce(torch.storage._load_from_bytes, inner.getvalue())})
    assert_refused(src, tmp_path / "out.safetensors", marker, r"evil\.pkl: refused to load global '(posix|os)\.system'")


# --------------------------------------------------------------------------------------------------
# NVlabs layout: persistent modules carry their Python source, which upstream execs on load

@contextmanager
def fake_nvlabs_modules(marker: Path):
    """Stand-ins for torch_utils.persistence and dnnlib, only so that pickle can *write* references
    to them; their reconstruct function behaves like upstream's (it would exec module_src)."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # what upstream does: run the embedded source
        exec(meta["module_src"], {})
        raise AssertionError("unreachable in the test: the reader must never call this")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence = persistence
    dnnlib = types.ModuleType("dnnlib")

    class EasyDictUp(dict):
        pass

    EasyDictUp.__module__, EasyDictUp.__qualname__, EasyDictUp.__name__ = "dnnlib", "EasyDict", "EasyDict"
    dnnlib.EasyDict = EasyDictUp
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence", "dnnlib")}
    sys.modules.update({"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib})
    try:
        yield _reconstruct_persistent_obj, EasyDictUp
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Persistent:
    def __init__(self, reconstruct, class_name, module_src, state):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)
        self.reconstruct = reconstruct

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def module_state(module: torch.nn.Module, wrap) -> dict:
    """A module's __dict__ as NVlabs pickles it, children wrapped as persistent objects."""
    return {"training": False,
            "_parameters": dict(module._parameters), "_buffers": dict(module._buffers),
            "_non_persistent_buffers_set": set(),
            "_modules": {name: wrap(child) for name, child in module._modules.items()}}


def nvlabs_pickle(path: Path, marker: Path, with_weights: bool, extra_state=None):
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\nclass Generator: pass\n"
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=32, channel_max=4))
    with fake_nvlabs_modules(marker) as (reconstruct, EasyDictUp):
        def wrap(m):
            return Persistent(reconstruct, type(m).__name__, src, module_state(m, wrap))

        if with_weights:
            g_ema = wrap(G)
        else:
            g_ema = Persistent(reconstruct, "Generator", src, {"_parameters": {}, "_buffers": {}, "_modules": {}})
        g_ema.meta["state"]["_init_kwargs"] = EasyDictUp(z_dim=8, c_dim=0, w_dim=8, img_resolution=8,
                                                         img_channels=3, mapping_kwargs={"num_layers": 2},
                                                         synthesis_kwargs={"channel_base": 32, "channel_max": 4})
        if extra_state:
            g_ema.meta["state"].update(extra_state)
        G_raw = Persistent(reconstruct, "Generator", src, {"_parameters": {}, "_buffers": {}, "_modules": {}})
        write_pickle(path, {"G": G_raw, "G_ema": g_ema, "training_set_kwargs": EasyDictUp(resolution=8)})
    return G


def test_module_src_payload_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    G = nvlabs_pickle(tmp_path / "net.pkl", marker, with_weights=True)
    assert not marker.exists()
    obj = load(tmp_path / "net.pkl")
    assert isinstance(obj["G_ema"], PersistentObject) and isinstance(obj["training_set_kwargs"], EasyDict)
    assert "write_text" in obj["G_ema"].module_src  # kept as inert text
    meta = convert_file(tmp_path / "net.pkl", tmp_path / "out.safetensors")
    assert not marker.exists(), "module_src ran"
    assert "module_src" not in str(meta) and meta["init_kwargs"]["mapping_kwargs"] == {"num_layers": 2}
    H = load_generator(tmp_path / "out.safetensors")
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(G.eval()(z), H(z))


def test_module_src_payload_without_weights_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    nvlabs_pickle(tmp_path / "net.pkl", marker, with_weights=False)
    assert_refused(tmp_path / "net.pkl", tmp_path / "out.safetensors", marker, r"G_ema \(Generator\) holds no")


def test_reduce_payload_inside_persistent_state_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    nvlabs_pickle(tmp_path / "net.pkl", marker, with_weights=True,
                  extra_state={"hook": Reduce(os.system, f"touch {marker}")})
    assert_refused(tmp_path / "net.pkl", tmp_path / "out.safetensors", marker, r"'(posix|os)\.system'")


def test_nvlabs_pickle_without_g_ema_names_its_keys(tmp_path):
    write_pickle(tmp_path / "net.pkl", {"D": {"x": 1}})
    with pytest.raises(CheckpointError, match="not a checkpoint layout|G_ema"):
        convert_file(tmp_path / "net.pkl", tmp_path / "out.safetensors")
    with pytest.raises(CheckpointError, match=r"without a 'G_ema'.*\['D'\]"):
        convert_file(tmp_path / "net.pkl", tmp_path / "out.safetensors", fmt="nvlabs")


# --------------------------------------------------------------------------------------------------
# What is allowed comes back as plain data

def test_numpy_under_both_core_names(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = pickle.dumps({"a": arr, "s": np.float64(2.5)}, protocol=3)  # protocol 3: text GLOBAL opcodes
    core = b"numpy._core" if b"numpy._core" in data else b"numpy.core"
    for name in (b"numpy._core", b"numpy.core"):
        path = tmp_path / f"{name.decode()}.pkl"
        path.write_bytes(data.replace(core + b".multiarray", name + b".multiarray"))
        obj = load(path)
        assert np.array_equal(obj["a"], arr) and obj["s"] == 2.5


def test_protocol2_bytes_are_allowed_only_as_latin1(tmp_path):
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"b": b"\x00\xffab"}, protocol=2))
    assert load(tmp_path / "ok.pkl") == {"b": b"\x00\xffab"}
    (tmp_path / "zlib.pkl").write_bytes(pickle.dumps(Reduce(__import__("_codecs").encode, "x", "zlib"), protocol=2))
    with pytest.raises(CheckpointError, match="latin1"):
        load(tmp_path / "zlib.pkl")


def test_legacy_torch_save_and_namespace(tmp_path):
    sd = {"w": torch.arange(4.0)}
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(load(tmp_path / "legacy.pt")["w"], sd["w"])
    torch.save({"g_ema": sd, "args": argparse.Namespace(size=32, lr=0.002)}, tmp_path / "ckpt.pt")
    obj = load(tmp_path / "ckpt.pt")
    assert obj["args"]["size"] == 32 and obj["args"]["__namespace__"] is True


def test_garbage_and_truncated_files(tmp_path):
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(CheckpointError):
        load(tmp_path / "junk.pkl")
    d = pickle.dumps({"a": 1}, protocol=4)
    (tmp_path / "cut.pkl").write_bytes(d[:-3])
    with pytest.raises(CheckpointError, match="not a readable pickle"):
        load(tmp_path / "cut.pkl")
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "missing.pkl")
