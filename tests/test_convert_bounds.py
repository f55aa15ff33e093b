"""The converter is bounded on hostile input and never loses data.

A few hundred bytes of pickle can describe an object graph that doubles at every level, nesting
10,000 levels deep, a dict key that takes 2^60 steps to hash, or a storage that claims 10^12
elements: each is refused by name, quickly and without allocating what it claims. An output that is
the source itself, or a source that is already converted, is refused before anything is written.
Timing assertions here are generous guards only (they must hold on a machine 3x slower than the one
the bench ran on); the measured numbers are bench/bench_converter_bounds.py's."""
from __future__ import annotations

import importlib.util
import io
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import gan_models
from gan_models import checkpoint
from gan_models.checkpoint import CheckpointError
from gan_models.convert import convert_file
from gan_models.convert.__main__ import main as convert_main
from gan_models.convert.safe_unpickle import Budget, PersistentObject, _plain, load

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    # by file: pytest puts the folder above the checkout on sys.path, where a bench.py would shadow bench/
    spec = importlib.util.spec_from_file_location("bench_converter_bounds", ROOT / "bench" / "bench_converter_bounds.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


B = _bench()


class Call:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def refused(path: Path, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as e:
        load(path)
    assert path.name in str(e.value)
    return str(e.value)


def bomb(levels=60):
    a: list = []
    for _ in range(levels):
        a = [a, a]
    return a


# --------------------------------------------------------------------------------------------------
# Measured in a fresh process: refused by name, peak memory growth under 200 MB, a generous time guard

@pytest.mark.parametrize("case", [*B.MUST_SHOW, "dict-key-hash-bomb", "embedded-bytes-decoded-4000x"])
def test_hostile_file_is_refused_in_bounded_time_and_memory(tmp_path, case):
    r = B.run_case(case, tmp_path, timeout=120)
    assert r["ok"], r
    assert r["rc"] == 2 and not r["wrote_output"]
    assert r["peak_growth_mb"] < 200, r
    assert r["wall_s"] < 30, r  # the bench measures ~0.01 s; this only catches a walk that runs away


# --------------------------------------------------------------------------------------------------
# Bounded walks

def test_shared_reference_bomb_is_refused_wherever_it_sits(tmp_path):
    for where, obj in {"top": bomb(), "dict value": {"g_ema": {"w": torch.zeros(1)}, "extra": bomb()},
                       "tuple": (1, (bomb(),)), "list in dict": {"x": [bomb()]}}.items():
        path = tmp_path / f"{where.replace(' ', '_')}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=4))
        msg = refused(path, r"more than 1,000,000 objects to visit.*\(the object bound\)")
        assert "nothing was loaded" in msg
    B.shared_reference_bomb(tmp_path)
    assert convert_main([str(tmp_path / "shared_bomb.pkl"), str(tmp_path / "o.safetensors")]) == 2
    assert not (tmp_path / "o.safetensors").exists()


def test_shared_submodules_bomb_is_refused(tmp_path):
    """The same module under two names at every level: state_dict() would name 2^60 tensors."""
    child = {"_parameters": {"w": torch.zeros(1)}, "_buffers": {}, "_modules": {}}
    for _ in range(60):
        mod = PersistentObject({"class_name": "Block", "state": child})
        child = {"_parameters": {}, "_buffers": {}, "_modules": {"a": mod, "b": mod}}
    top = PersistentObject({"class_name": "Generator", "state": child}, source="net.pkl")
    with pytest.raises(CheckpointError, match=r"net\.pkl: Generator module tree.*object bound"):
        top.state_dict(budget=Budget("net.pkl: Generator module tree", max_objects=10_000))
    with pytest.raises(CheckpointError, match="object bound"):  # the default bound holds on its own
        top.state_dict()


def test_every_walk_is_bounded_on_its_own():
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(CheckpointError, match=r"nested more than 100 levels deep \(the depth bound\)"):
        _plain(deep)
    with pytest.raises(CheckpointError, match=r"more than 1,000 objects.*\(the object bound\)"):
        _plain(bomb(), Budget("kwargs", max_objects=1000))


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deep_nesting_is_refused_by_name_not_recursion_error(tmp_path, depth):
    path = B.deep_nesting(tmp_path, depth)
    refused(path, r"deep\.pkl: the file's objects nested more than 100 levels deep \(the depth bound\)")


def test_deep_tuple_as_a_dict_key_is_refused_before_hashing(tmp_path):
    # ((((...),),),) 10,000 deep as a dict key: hashing it recurses in C
    body = b"\x80\x04}" + b")" + b"\x85" * 10_000 + b"K\x01s."
    (tmp_path / "deep_key.pkl").write_bytes(body)
    refused(tmp_path / "deep_key.pkl", r"a dict key or set item nested more than 100 levels deep")


def test_dict_key_hash_bomb_is_refused(tmp_path):
    refused(B.hash_bomb_key(tmp_path), r"hash_bomb\.pkl: a dict key or set item to hash: more than 1,000,000 "
                                       r"objects.*\(the object bound\)")


def test_a_reference_cycle_is_refused(tmp_path):
    refused(B.reference_cycle(tmp_path), r"cycle\.pkl: the file's objects contain a reference cycle")


def test_non_name_keys_are_refused_without_a_traceback(tmp_path, capsys):
    torch.save({1: torch.zeros(2), (2, 3): torch.zeros(1)}, tmp_path / "odd.pt")
    assert convert_main([str(tmp_path / "odd.pt"), str(tmp_path / "o.safetensors")]) == 2
    assert "not a checkpoint layout" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="keys are not all names"):
        convert_file(tmp_path / "odd.pt", tmp_path / "o.safetensors", fmt="cyclegan")


# --------------------------------------------------------------------------------------------------
# Declared sizes: nothing is allocated beyond the bytes the file holds

def test_storage_claiming_1e12_elements_is_refused(tmp_path):
    refused(B.storage_claim_zip(tmp_path), r"claims_1e12\.pt: storage '0' declares 1,000,000,000,000 float32 "
                                           r"elements \(4,000,000,000,000 bytes\); its entry .* holds 16 bytes")
    refused(B.storage_claim_legacy(tmp_path), r"storage '0' declares 1,000,000,000,000 float32 elements .*more "
                                              r"than the \d+ bytes left in the file; refused before allocating")


def test_legacy_data_record_must_match_the_declared_size(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf, _use_new_zipfile_serialization=False)
    raw = struct.pack("<q", 4) + bytes(16)
    assert buf.getvalue().endswith(raw)
    (tmp_path / "lie.pt").write_bytes(buf.getvalue()[:-len(raw)] + struct.pack("<q", 10 ** 12) + bytes(16))
    refused(tmp_path / "lie.pt", r"its data says 1,000,000,000,000 elements where its record declared 4")


def test_zip_entry_claiming_more_than_the_archive_is_refused(tmp_path):
    path = B.torch_zip(tmp_path / "z.pt", {"w": torch.zeros(1)}, {})
    data = bytearray(path.read_bytes())
    # the central directory's uncompressed size of data.pkl (its first entry): made to say 2^31
    at = data.find(b"PK\x01\x02")
    data[at + 24:at + 28] = struct.pack("<I", 1 << 31)
    path.write_bytes(bytes(data))
    refused(path, r"entry z/data\.pkl claims 2,147,483,648 bytes")


def test_the_same_embedded_bytes_are_not_decoded_without_bound(tmp_path):
    refused(B.embedded_bytes_reused(tmp_path), r"tensor storages would add up to more than [\d,]+ bytes, what the "
                                               r"file itself holds \(the storage bound\)")


def test_allocating_types_are_never_called(tmp_path):
    for name, obj in {"storage": Call(torch.FloatStorage, 10 ** 12), "tensor": Call(torch.Tensor, 10 ** 12),
                      "ndarray": Call(np.ndarray, (10 ** 10,))}.items():
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(obj, protocol=4))
        refused(tmp_path / f"{name}.pkl", r"refused to call .*only appear as a type tag")


def test_a_tensor_larger_than_its_storage_is_refused(tmp_path):
    refused(B.zero_stride_tensor(tmp_path), r"stride0\.pt: tensor of size \[1000000000\] needs more than its "
                                            r"storage's 4 bytes")


def test_numpy_object_arrays_are_refused(tmp_path):
    # numpy rebuilds an object array from a pickled list without checking its length: a crash
    (tmp_path / "obj.pkl").write_bytes(pickle.dumps(np.array([1, None], dtype=object), protocol=4))
    refused(tmp_path / "obj.pkl", r"numpy dtype 'object' refused")
    good = pickle.dumps(np.zeros(3, dtype=np.float32), protocol=4)
    assert good.count(b"C\x0c" + bytes(12)) == 1  # SHORT_BINBYTES: the array's 12 bytes
    (tmp_path / "short.pkl").write_bytes(good.replace(b"C\x0c" + bytes(12), b"C\x08" + bytes(8)))
    refused(tmp_path / "short.pkl", r"not the 12 bytes its shape needs")


def test_state_cannot_be_set_on_classes_or_tensors(tmp_path):
    # GLOBAL torch.Tensor, (None, {'detach': 1}), BUILD: would replace Tensor.detach for the whole process
    data = b"\x80\x02ctorch\nTensor\nN}X\x06\x00\x00\x00detachK\x01s\x86b."
    (tmp_path / "patch.pkl").write_bytes(data)
    refused(tmp_path / "patch.pkl", r"refused to set the state of the class torch\.Tensor")
    assert callable(torch.Tensor.detach)


# --------------------------------------------------------------------------------------------------
# Refusals never advise loading the file unsafely

def _payload_files(tmp_path: Path) -> list[Path]:
    evil = Call(os.system, "echo pwned")
    torch.save({"w": torch.zeros(1), "x": evil}, tmp_path / "zip.pt")
    torch.save({"w": torch.zeros(1), "x": evil}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    inner = io.BytesIO()
    torch.save(evil, inner, _use_new_zipfile_serialization=False)
    (tmp_path / "nested.pkl").write_bytes(pickle.dumps({"G_ema": Call(torch.storage._load_from_bytes,
                                                                      inner.getvalue())}, protocol=4))
    return [tmp_path / "zip.pt", tmp_path / "legacy.pt", tmp_path / "nested.pkl"]


def test_refusals_name_the_global_and_never_suggest_weights_only_false(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    for path in _payload_files(tmp_path):
        assert convert_main([str(path), str(tmp_path / "o.safetensors")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path.name}: refused to load global '{os.system.__module__}.system'"), err
        assert "was not loaded and must not be loaded with weights_only=False" in err
        assert "weights_only=False" not in err.replace("must not be loaded with weights_only=False", "")
        assert "Traceback" not in err


def test_good_archives_are_read_without_torch_load(tmp_path, monkeypatch):
    import argparse
    sd = {"w": torch.arange(6.0).view(2, 3), "h": torch.ones(3, dtype=torch.float16)[1:], "i": torch.tensor([7])}
    torch.save({"g_ema": sd, "args": argparse.Namespace(size=32)}, tmp_path / "zip.pt")
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "net.pkl").write_bytes(pickle.dumps(sd, protocol=4))  # tensors as embedded legacy archives
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    got = [load(tmp_path / "zip.pt")["g_ema"], load(tmp_path / "legacy.pt"), load(tmp_path / "net.pkl")]
    assert load(tmp_path / "zip.pt")["args"] == {"__namespace__": True, "size": 32}
    for g in got:
        assert set(g) == set(sd) and all(torch.equal(g[k], sd[k]) and g[k].stride() == sd[k].stride() for k in sd)


# --------------------------------------------------------------------------------------------------
# Same-file and safetensors sources: nothing is lost

@pytest.fixture()
def conditional(tmp_path):
    from gan_models.archs import dcgan
    torch.manual_seed(0)
    G = dcgan.Generator(dcgan.make_layout(16, 3, 28, 1, ngf=4), c_dim=3)
    gan_models.save_generator(tmp_path / "cond.safetensors", G, {"arch": "dcgan", "class_names": ["a", "b", "c"]})
    return tmp_path / "cond.safetensors"


def test_converting_a_file_onto_itself_is_refused_before_reading(conditional, tmp_path, monkeypatch):
    before = conditional.read_bytes()
    import gan_models.convert.safe_unpickle as su
    for reader in ("load", "read_safetensors", "is_safetensors"):
        monkeypatch.setattr(su, reader, lambda *a: pytest.fail("the source was read"))
    (tmp_path / "link.safetensors").hardlink_to(conditional)
    for dst, disc in [(conditional, None), (tmp_path / "link.safetensors", None),
                      (tmp_path / "g.safetensors", conditional), (tmp_path / "g.safetensors", tmp_path / "g.safetensors")]:
        with pytest.raises(CheckpointError, match="same file"):
            convert_file(conditional, dst, discriminator=disc)
    assert conditional.read_bytes() == before and not (tmp_path / "g.safetensors").exists()


def test_an_already_converted_file_is_not_rewritten(conditional, tmp_path, capsys):
    assert convert_main([str(conditional), str(tmp_path / "again.safetensors")]) == 2
    assert "cond.safetensors is already converted" in capsys.readouterr().err
    assert not (tmp_path / "again.safetensors").exists()
    assert gan_models.load_generator(conditional).c_dim == 3


@pytest.mark.parametrize("name", ["foreign.safetensors", "foreign.pth"])  # recognised by content, not name
def test_a_foreign_safetensors_state_dict_converts_with_its_metadata_kept(tmp_path, monkeypatch, name):
    torch.manual_seed(0)
    net = B.tutorial_dcgan_net(ngf=8)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / name),
              metadata={"format": "pt", "note": "trained on CIFAR"})
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    meta = convert_file(tmp_path / name, tmp_path / "g.safetensors")
    assert meta["source"]["safetensors_metadata"] == {"format": "pt", "note": "trained on CIFAR"}
    assert checkpoint.read_meta(tmp_path / "g.safetensors")["source"]["safetensors_metadata"]["note"] == "trained on CIFAR"
    G = gan_models.load_generator(tmp_path / "g.safetensors")
    z = torch.randn(2, 100)
    with torch.no_grad():
        torch.testing.assert_close(G(z), net.main(z[:, :, None, None]), atol=1e-5, rtol=0)
