"""TF-era NVlabs StyleGAN2 pickles ((G, D, Gs) of dnnlib.tflib.network.Network objects) convert to the
PyTorch layout and draw what NVlabs' own converter (stylegan2-ada-pytorch legacy.py) draws, without
ever running the graph-building source each network carries.

Fixtures: tests/data/sg2tf/<name>/ (orig, resnet, conditional; each manifest.json says how it was
made) and, where ../shared is present, the team's sg2tf_r32_skip. All four match legacy.py's outputs
exactly (max abs error 0.0 for ws, both truncations and the W+ call, on CPU in float32); the
tolerance is the project's usual 1e-4.
"""
from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from _nets import fixture_dir
import torch
from safetensors.torch import load_file

from gan_models import CheckpointError, load_generator
from gan_models.convert import convert_file
from gan_models.convert.safe_unpickle import TFNetwork, load

LOCAL = Path(__file__).resolve().parent / "data" / "sg2tf"
TOLERANCE = 1e-4
MARKER = "MODULE_SRC_RAN"  # what every fixture's build_module_src would create in the working folder



@pytest.mark.parametrize("name", ["sg2tf_r32_skip", "sg2tf_r32_orig", "sg2tf_r32_resnet", "sg2tf_r32_cond"])
def test_matches_nvlabs_legacy_converter(name, request, tmp_path, monkeypatch):
    d = fixture_dir(LOCAL, name, request)
    monkeypatch.chdir(tmp_path)  # a payload that ran would leave its marker here
    meta = convert_file(d / "network-snapshot-tf.pkl", tmp_path / "G.safetensors")
    assert not (tmp_path / MARKER).exists(), "build_module_src ran"
    assert meta["source"]["converter"] == "nvlabs-tf" and meta["source"]["network"] == "Gs"
    G = load_generator(tmp_path / "G.safetensors")
    inputs, expected = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    z, c = inputs["z"], inputs.get("c")
    got = {}
    with torch.no_grad():
        got["ws"] = G.mapping(z, c)
        for psi in (1.0, 0.7):
            got[f"img_psi{psi}"] = G(z, c, truncation_psi=psi, noise_mode="const")
        if "ws_plus" in inputs:
            got["img_wplus"] = G.synthesis(inputs["ws_plus"], noise_mode="const")
    assert set(got) == set(expected)
    errors = {k: (v - expected[k]).abs().max().item() for k, v in got.items()}
    print(name, "max abs error", errors)
    assert max(errors.values()) <= TOLERANCE, errors


# ------------------------------------------------------------------------------------------------
# Hand-made TF pickles: a fixture's networks, read as data, changed, and written back under TF's
# class path.

class _Network:
    """Writes as dnnlib.tflib.network.Network with the given state (what TF's __getstate__ returns)."""

    def __init__(self, state: dict):
        self.state = state

    def __getstate__(self):
        return self.state


@pytest.fixture
def tf_class_path(monkeypatch):
    """Stand-in modules, only so that pickle can *write* a reference to dnnlib.tflib.network.Network."""
    network = types.ModuleType("dnnlib.tflib.network")
    tflib = types.ModuleType("dnnlib.tflib")
    dnnlib = types.ModuleType("dnnlib")
    _Network.__module__, _Network.__qualname__ = "dnnlib.tflib.network", "Network"
    network.Network, tflib.network, dnnlib.tflib = _Network, network, tflib
    for name, mod in (("dnnlib", dnnlib), ("dnnlib.tflib", tflib), ("dnnlib.tflib.network", network)):
        monkeypatch.setitem(sys.modules, name, mod)
    yield
    _Network.__module__, _Network.__qualname__ = __name__, "_Network"


def as_written(net: TFNetwork) -> _Network:
    state = dict(net.state)
    state["components"] = {k: as_written(v) for k, v in net.components.items()}
    state["variables"] = list(net.variables)
    return _Network(state)


def edited_pickle(path: Path, edit, fixture: str = "sg2tf_r32_orig") -> Path:
    G, D, Gs = (as_written(n) for n in load(LOCAL / fixture / "network-snapshot-tf.pkl"))
    edit(Gs.state)
    path.write_bytes(pickle.dumps((G, D, Gs), protocol=3))
    return path


def synthesis(state: dict) -> dict:
    return state["components"]["synthesis"].state


def test_build_module_src_payload_never_runs(tmp_path, tf_class_path):
    marker = tmp_path / "pwned"
    payload = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\ndef G_main(): pass\n"

    def edit(state):
        state["build_module_src"] = payload
        synthesis(state)["build_module_src"] = payload

    src = edited_pickle(tmp_path / "evil.pkl", edit)
    obj = load(src)
    assert isinstance(obj[2], TFNetwork) and obj[2].state["build_module_src"] == payload  # inert text
    meta = convert_file(src, tmp_path / "out.safetensors")
    assert not marker.exists(), "build_module_src ran"
    assert "pathlib" not in str(meta)
    assert load_generator(tmp_path / "out.safetensors").img_resolution == 32


def test_reduce_payload_inside_a_network_state_is_refused(tmp_path, tf_class_path):
    marker = tmp_path / "pwned"

    class Reduce:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    src = edited_pickle(tmp_path / "evil.pkl", lambda s: s["static_kwargs"].update(hook=Reduce()))
    with pytest.raises(CheckpointError, match=r"refused to load global '(posix|os)\.system'"):
        convert_file(src, tmp_path / "out.safetensors")
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_unknown_static_kwarg_is_refused_by_name(tmp_path, tf_class_path):
    src = edited_pickle(tmp_path / "cfg_b.pkl", lambda s: s["static_kwargs"].update(fmap_decay=1.0))
    with pytest.raises(CheckpointError, match=r"unknown TensorFlow static kwarg\(s\) 'fmap_decay'"):
        convert_file(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_missing_variable_is_refused_by_name(tmp_path, tf_class_path):
    def edit(state):
        syn = synthesis(state)
        syn["variables"] = [(n, v) for n, v in syn["variables"] if n != "16x16/Conv1/mod_bias"]

    src = edited_pickle(tmp_path / "partial.pkl", edit)
    with pytest.raises(CheckpointError, match=r"variable 'synthesis/16x16/Conv1/mod_bias' is missing"):
        convert_file(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_variable_of_the_wrong_shape_is_refused_by_name(tmp_path, tf_class_path):
    def edit(state):
        state["variables"] = [(n, np.zeros(7, np.float32) if n == "dlatent_avg" else v)
                              for n, v in state["variables"]]

    src = edited_pickle(tmp_path / "bad.pkl", edit)
    with pytest.raises(CheckpointError, match=r"variable 'dlatent_avg' has shape \[7\].*\[32\]"):
        convert_file(src, tmp_path / "out.safetensors")


def test_progressive_growing_and_pre_stylegan2_networks_are_refused(tmp_path, tf_class_path):
    def lod(state):
        syn = synthesis(state)
        syn["variables"] = syn["variables"] + [("ToRGB_lod0/weight", np.zeros((1, 1, 8, 3), np.float32))]

    with pytest.raises(CheckpointError, match=r"'synthesis/ToRGB_lod0/weight': a progressive-growing"):
        convert_file(edited_pickle(tmp_path / "lod.pkl", lod), tmp_path / "out.safetensors")
    with pytest.raises(CheckpointError, match=r"pickle version 3"):
        convert_file(edited_pickle(tmp_path / "v3.pkl", lambda s: s.update(version=3)), tmp_path / "out.safetensors")


def test_a_network_given_arguments_bad_fields_or_state_twice_is_refused(tmp_path):
    head = b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00"
    cases = {"args.pkl": (head + b"K\x01\x85\x81.", r"created with arguments 1"),  # NEWOBJ with (1,)
             "fields.pkl": (head + b")\x81}X\x07\x00\x00\x00versionK\x04sb.", r"name is None, not a str")}
    for name, (data, match) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=match):
            load(tmp_path / name)
    state = dict(version=4, name="Gs", static_kwargs={}, components={}, build_module_src="",
                 build_func_name="G_main", variables=[])
    net = TFNetwork.__new__(TFNetwork)
    net.__setstate__(state)
    with pytest.raises(CheckpointError, match="given state twice"):  # a second BUILD would swap it
        net.__setstate__(dict(state, name="other"))
    assert net.name == "Gs"


def test_discriminator_of_a_tf_pickle_is_refused_by_name(tmp_path):
    src = LOCAL / "sg2tf_r32_orig" / "network-snapshot-tf.pkl"
    with pytest.raises(CheckpointError, match="TF-era NVlabs pickle"):
        convert_file(src, tmp_path / "G.safetensors", discriminator=tmp_path / "D.safetensors")
    assert not (tmp_path / "G.safetensors").exists() and not (tmp_path / "D.safetensors").exists()
