"""FID inside the training loop: metrics.jsonl rows on schedule, RUN/best.safetensors, and the hook's
state across a resume. A stand-in feature network keeps it fast (tests/test_metrics.py tests the real one)."""
from __future__ import annotations

import json
import math

import pytest
import torch

import gan_models
from gan_models import checkpoint, metrics
from gan_models.train import TrainConfig, Trainer, snapshot
from gan_models.train.__main__ import main as cli_main, parse
import _nets


class PoolNet(torch.nn.Module):
    """4x4 average pooling of each channel -> 48 features."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


def fake_net():
    return metrics.FeatureNet(module=PoolNet(), name="pool-train-test", feature_dim=48, input_size=32)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return _nets.digit_class_folders(tmp_path_factory.mktemp("digits"), 4, 16, "d", "{:03d}.png")


@pytest.fixture(autouse=True)
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # never the user's cache


def config(data, out, steps, **kw):
    # batch 8: one step is 0.008 kimg, so --fid-every 0.024 is every 3 steps
    base = dict(arch="dcgan", data=str(data), out=str(out), resolution=8, channels=1, batch=8, steps=steps,
                seed=1, sample_every=0, snapshot_every=9, z_dim=8, ngf=8, ndf=8, bn_recal_batches=1,
                progress=False, threads=1, fid_every=0.024, fid_num_gen=48)
    base.update(kw)
    return TrainConfig(**base)


def rows(run):
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]


def whiten(snap_path):
    """Make the snapshot's generators draw all-white images: the worst FID against dark digits
    (every pooled feature at the top of its range), which a little more training cannot undo."""
    s = torch.load(snap_path, map_location="cpu", weights_only=True)
    for key in ("G", "G_ema"):
        sd = s[key]
        idx = sorted({int(k.split(".")[1]) for k in sd if k.startswith("main.")})
        last_conv = max(i for i in idx if sd[f"main.{i}.weight"].ndim == 4)
        last_bn = max(i for i in idx if f"main.{i}.running_mean" in sd)
        sd[f"main.{last_bn}.weight"].zero_()
        sd[f"main.{last_bn}.bias"].fill_(5.0)
        sd[f"main.{last_conv}.weight"].fill_(1.0)
    torch.save(s, snap_path)


def test_fid_rows_best_snapshot_and_resume(digits, tmp_path):
    run = tmp_path / "run"
    Trainer(config(digits, run, 9), fid_net=fake_net()).run()
    first = rows(run)
    # on schedule, with no repeat or slip (in floating point 10 * 8 / 1000 >= 3 * 0.024 > 9 * 8 / 1000)
    assert [r["kimg"] for r in first] == [0.024, 0.048, 0.072]
    assert all(r["num_gen"] == 48 and r["num_real"] == 64 and math.isfinite(r["fid"]) for r in first)
    assert first[0]["best"]
    best_fid = min(r["fid"] for r in first)
    best_row = next(r for r in first if r["fid"] == best_fid)
    G = gan_models.load_generator(run / "best.safetensors", "cpu")
    assert G.kind == "generator" and G.img_resolution == 8 and G.c_dim == 4
    src = G.meta["source"]
    assert src["fid"] == pytest.approx(best_fid, abs=1e-4)
    assert src["kimg"] == src["fid_kimg"] == best_row["kimg"] and src["steps"] == round(best_row["kimg"] / 0.008)
    assert src["fid_num_gen"] == 48 and src["fid_real"] == str(digits.resolve())
    # the same description as the final export, apart from the step-dependent fields
    _, final = checkpoint.read(run / "generator.safetensors")
    assert G.meta["arch"] == final["arch"] and G.meta["class_names"] == final["class_names"] == ["d0", "d1", "d2", "d3"]
    assert G.meta["license"] == final["license"]
    # the best generator is exactly the export copy at that step: its FID measures the same again
    again = metrics.compute_fid_kid(G, digits, num_gen=48, net=fake_net(), kid_subsets=50, seed=1,
                                    cache_dir=tmp_path / "xdg" / "comfyui-gan" / "fid")
    assert again["fid"] == pytest.approx(best_fid, rel=1e-4)

    state = torch.load(snapshot.path_for(run, 9), weights_only=True)["fid"]
    assert state["best_fid"] == pytest.approx(best_fid) and state["next_kimg"] == pytest.approx(0.096)

    # resume from a generator gone bad: later measurements are worse and must not replace the best
    whiten(snapshot.path_for(run, 9))
    stamp = (run / "best.safetensors").read_bytes()
    t = Trainer(config(digits, run, 15, resume=True), fid_net=fake_net())
    t.run()
    assert t.resumed_from == snapshot.path_for(run, 9)
    later = rows(run)[3:]
    assert [r["kimg"] for r in later] == [0.096, 0.12]  # 0.072 is not measured a second time
    assert all(r["fid"] > best_fid and not r["best"] for r in later)
    assert (run / "best.safetensors").read_bytes() == stamp
    assert t.fid.best_fid == pytest.approx(best_fid) and t.fid.best_kimg == pytest.approx(best_row["kimg"])
    _, meta = checkpoint.read(run / "best.safetensors")
    assert meta["source"]["fid"] == pytest.approx(min(r["fid"] for r in rows(run)), abs=1e-4)


def test_a_lost_best_is_kept_after_a_crash(digits, tmp_path):
    """best.safetensors written after the last snapshot (then a crash): the replayed, worse
    measurement does not overwrite it."""
    run = tmp_path / "run"
    Trainer(config(digits, run, 20, snapshot_every=0, fid_every=0.16), fid_net=fake_net()).run()
    _, meta = checkpoint.read(run / "best.safetensors")
    # pretend the best came from a lost future: a better score than any snapshot knows
    meta["source"]["fid"] = 1e-3
    sd, _ = checkpoint.read(run / "best.safetensors")
    checkpoint.write(run / "best.safetensors", sd, meta)
    stamp = (run / "best.safetensors").read_bytes()
    t = Trainer(config(digits, run, 40, resume=True, snapshot_every=0, fid_every=0.16), fid_net=fake_net())
    t.run()
    assert [r["kimg"] for r in rows(run)] == [0.16, 0.32]
    assert (run / "best.safetensors").read_bytes() == stamp and t.fid.best_fid == 1e-3


def test_fid_off_by_default_and_cli_flags(digits, tmp_path):
    tc = parse(["--data", str(digits), "--out", str(tmp_path / "r")])
    assert tc.fid_every == 0 and tc.fid_num_gen == 5000 and tc.fid_data == "" and tc.fid_split == "train"
    tc = parse(["--data", str(digits), "--out", str(tmp_path / "r"), "--fid-every", "2.5", "--fid-num-gen", "100",
                "--fid-data", str(tmp_path), "--fid-split", "test", "--fid-network", "net.pt"])
    assert (tc.fid_every, tc.fid_num_gen, tc.fid_data, tc.fid_split, tc.fid_network) == \
        (2.5, 100, str(tmp_path), "test", "net.pt")
    t = Trainer(config(digits, tmp_path / "off", 2, fid_every=0))
    assert t.fid is None
    t.run()
    assert not (tmp_path / "off" / "metrics.jsonl").exists() and not (tmp_path / "off" / "best.safetensors").exists()


@pytest.mark.parametrize("flags, message", [
    (["--fid-every", "-1"], "argument --fid-every: -1 must be 0 or more"),
    (["--fid-every", "1", "--fid-num-gen", "1"], "--fid-num-gen must be at least 2"),
    (["--fid-every", "1", "--fid-data", "/nonexistent/reals"], "/nonexistent/reals: not found"),
    (["--fid-every", "1", "--fid-network", "/nonexistent/net.pt"], "FID network not found"),
])
def test_bad_fid_options_stop_before_training(digits, tmp_path, capsys, flags, message):
    out = tmp_path / "r"
    assert cli_main(["--data", str(digits), "--out", str(out), "--resolution", "8", "--no-progress",
                     "--steps", "1", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "snapshots").exists()
