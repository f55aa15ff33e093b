"""--init / --init-d: a run that starts from trained weights (transfer learning, NVlabs'
--resume=NETWORK.pkl), from this project's own export and from an NVlabs training pickle converted
with its discriminator."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gan_models
from gan_models.checkpoint import CheckpointError
from gan_models.convert import safe_unpickle
from gan_models.train import Trainer
import _nets
from test_train_stylegan2 import config

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "upstream"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A short run on three digit classes, exported: the 'pretrained' network."""
    data = _nets.digit_class_folders(tmp_path_factory.mktemp("three"), 3, 8, "digit")
    out = tmp_path_factory.mktemp("source")
    return data, Trainer(config(data, out, 3, aug="diffaug", snapshot_every=0)).run()


def test_a_run_starts_from_the_exported_generator(source, tmp_path):
    data, path = source
    other = _nets.digit_class_folders(tmp_path, 3, 5, "other")  # new data, same 3 classes
    tr = Trainer(config(other, tmp_path / "run", 2, aug="diffaug", init=str(path)))
    want = gan_models.load_generator(path).state_dict()
    for net in (tr.G, tr.G_ema):  # G_ema starts from the same weights: the EMA continues the network
        for k, v in net.state_dict().items():
            assert torch.equal(v, want[k]), k
    fresh = Trainer(config(other, tmp_path / "fresh", 2, aug="diffaug"))
    assert not torch.equal(fresh.G.state_dict()["synthesis.b16.conv1.weight"], want["synthesis.b16.conv1.weight"])
    out = tr.run()
    G = gan_models.load_generator(out)
    assert G.meta["source"]["init"] == path.name
    assert not torch.equal(G.state_dict()["synthesis.b16.conv1.weight"], want["synthesis.b16.conv1.weight"])


def test_another_architecture_is_named_with_the_options_that_build_it(source, tmp_path):
    data, path = source
    with pytest.raises(ValueError) as e:
        Trainer(config(data, tmp_path, 2, init=str(path), extra={"cmax": 32}))
    msg = str(e.value)
    assert msg.startswith(f"--init: {path.name} is not the generator this run builds: ")
    assert "tensor(s) of another shape, e.g. synthesis.b4.const (16, 4, 4) vs (32, 4, 4)" in msg
    assert "It was built with --resolution 16 --channels 1 --z-dim 16 --w-dim 16 --map-layers 2 --cbase 128 " \
           "--cmax 16 and 3 classes." in msg
    # one class fewer in the data: the label embedding no longer fits
    two = _nets.digit_class_folders(tmp_path, 2, 8, "digit")
    with pytest.raises(ValueError, match=r"mapping.embed.weight \(16, 3\) vs \(16, 2\)"):
        Trainer(config(two, tmp_path, 2, init=str(path)))


def test_generator_and_discriminator_files_are_not_swapped(source, tmp_path):
    data, path = source
    with pytest.raises(ValueError, match="--init-d: g.safetensors is not a discriminator"):
        (tmp_path / "g.safetensors").write_bytes(path.read_bytes())
        Trainer(config(data, tmp_path / "r", 2, init_d=str(tmp_path / "g.safetensors")))
    with pytest.raises(ValueError, match="--init: checkpoint not found"):
        Trainer(config(data, tmp_path / "r", 2, init=str(tmp_path / "nope.safetensors")))


def nvlabs_pickle():
    pkl = FIXTURES / "sg2ada_r32_map8" / "network-snapshot-000000.src-stripped.pkl"
    if not pkl.is_file():
        pytest.skip(f"upstream fixture not found at {pkl} (../shared is absent in a user's clone)")
    return pkl


def test_fine_tuning_an_nvlabs_pickle_with_its_discriminator(tmp_path):
    pkl = nvlabs_pickle()
    g, d = tmp_path / "G.safetensors", tmp_path / "D.safetensors"
    r = subprocess.run([sys.executable, "-m", "gan_models.convert", str(pkl), str(g), "--discriminator", str(d)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"wrote {d}: the discriminator, for train --init-d" in r.stdout
    with pytest.raises(CheckpointError, match="D.safetensors is a discriminator, kept for fine-tuning"):
        gan_models.load_generator(d)

    data = tmp_path / "data"  # unconditional, like the pickle: no class subfolders
    data.mkdir()
    for f in _nets.digit_class_folders(tmp_path, 2, 4, "c").rglob("*.png"):
        f.rename(data / f"{f.parent.name}-{f.name}")
    # the options its init_kwargs name (z 64, w 64, 8 mapping layers, channel base 1024, max 32)
    tc = config(data, tmp_path / "run", 2, resolution=32, channels=3, z_dim=64, init=str(g), init_d=str(d),
                extra=dict(w_dim=64, map_layers=8, cbase=1024, cmax=32))
    tr = Trainer(tc)
    up = safe_unpickle.load(pkl)
    for net, key in ((tr.G_ema, "G_ema"), (tr.D, "D")):
        want = up[key].state_dict()
        for k, v in net.state_dict().items():
            assert torch.equal(v, want[k].to(v.dtype)), (key, k)
    tr.run()
    assert gan_models.load_generator(tmp_path / "run" / "generator.safetensors").meta["source"]["init_d"] == d.name


def test_a_pickle_without_a_discriminator_is_named(tmp_path):
    src = FIXTURES / "rosinality_s32_mlp8_cm2" / "checkpoint.pt"
    if not src.is_file():
        pytest.skip(f"upstream fixture not found at {src} (../shared is absent in a user's clone)")
    r = subprocess.run([sys.executable, "-m", "gan_models.convert", str(src), str(tmp_path / "g.safetensors"),
                        "--discriminator", str(tmp_path / "d.safetensors")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "--discriminator: the file holds no NVlabs 'D' network" in r.stderr, r.stderr
    assert not (tmp_path / "d.safetensors").exists() and not (tmp_path / "g.safetensors").exists()  # nothing half-done
