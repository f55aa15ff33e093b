"""kill -9 at five random moments, resume each time: every snapshot on disk loads, the run
finishes, and in deterministic mode the result is bit-for-bit that of an uninterrupted run.

Why bit-exact is possible: a snapshot holds the nets, both optimisers, the data order, every random
generator (global torch/numpy/python and the run's own), the ADA state and the path-length mean, and
is written atomically (temp file + rename), so a kill leaves either the previous or the new snapshot,
never half of one; the steps after it are recomputed from the same state. One thread and
torch.use_deterministic_algorithms remove the remaining source of run-to-run differences."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models.train import snapshot

ROOT = Path(__file__).resolve().parents[1]
STEPS = 60
ARGS = ["--arch", "stylegan2", "--resolution", "16", "--channels", "1", "--batch", "8", "--z-dim", "16",
        "--w-dim", "16", "--map-layers", "2", "--cbase", "64", "--cmax", "8", "--aug", "ada", "--ada-kimg", "0.2",
        "--mirror", "--r1-interval", "4", "--pl-weight", "1", "--pl-interval", "3", "--threads", "1",
        "--no-progress", "--log-every", "1", "--sample-every", "0", "--snapshot-every", "3",
        "--keep-snapshots", "3", "--deterministic", "--seed", "11", "--steps", str(STEPS)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from sklearn.datasets import load_digits
    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    for j, i in enumerate(range(16)):
        Image.fromarray((d.images[i] * 255 / 16).round().astype(np.uint8), "L").save(root / f"{j}.png")
    return root


def launch(data, out, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gan_models.train", "--data", str(data), "--out", str(out),
                             *ARGS, *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def logged_steps(out: Path) -> int:
    try:
        return len((out / "log.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_kill9_five_times_then_same_weights(data, tmp_path):
    ref_dir, run = tmp_path / "ref", tmp_path / "killed"
    ref = launch(data, ref_dir)  # the uninterrupted run, alongside the first killed one
    rng = random.Random(2024)
    kills, resumed_from = 0, []
    proc = launch(data, run)
    while kills < 5:
        # wait until this launch is training (past imports and data loading), then kill at a random moment
        start = logged_steps(run)
        deadline = time.monotonic() + 60
        while logged_steps(run) < start + 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before kill {kills + 1}: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        # every snapshot on disk is complete
        for step, path in snapshot.list_snapshots(run):
            state = torch.load(path, map_location="cpu", weights_only=True)
            assert state["step"] == step
        found = snapshot.list_snapshots(run)
        resumed_from.append(found[0][0] if found else 0)
        proc = launch(data, run, "--resume")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    _, err_ref = ref.communicate(timeout=120)
    assert ref.returncode == 0, err_ref.decode()[-2000:]
    print("resumed from steps", resumed_from)
    assert kills == 5 and resumed_from == sorted(resumed_from) and resumed_from[-1] < STEPS

    a, _ = snapshot.load_latest(ref_dir)
    b, _ = snapshot.load_latest(run)
    assert a["step"] == b["step"] == STEPS
    for net in ("G", "D", "G_ema"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after kill -9 and resume"
    assert a["augment"] == b["augment"] and torch.equal(a["stepper"]["pl_mean"], b["stepper"]["pl_mean"])
    ga, _ = gan_models.checkpoint.read(ref_dir / "generator.safetensors")
    gb, _ = gan_models.checkpoint.read(run / "generator.safetensors")
    assert ga.keys() == gb.keys() and all(torch.equal(ga[k], gb[k]) for k in ga)
    G = gan_models.load_generator(run / "generator.safetensors")
    assert G(torch.randn(2, 16)).shape == (2, 1, 16, 16)
