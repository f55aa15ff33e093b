"""kill -9 at five points drawn at random before the run, resume each time: every snapshot on disk
loads, the run finishes, and in deterministic mode the result is bit-for-bit that of an uninterrupted
run.

Why bit-exact is possible: a snapshot holds the nets, both optimisers, the data order, every random
generator (global torch/numpy/python and the run's own), the ADA state and the path-length mean, and
is written atomically (temp file + rename), so a kill leaves either the previous or the new snapshot,
never half of one; the steps after it are recomputed from the same state. One thread and
torch.use_deterministic_algorithms remove the remaining source of run-to-run differences."""
from __future__ import annotations

import json
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
EVERY = 3  # --snapshot-every
ARGS = ["--arch", "stylegan2", "--resolution", "16", "--channels", "1", "--batch", "8", "--z-dim", "16",
        "--w-dim", "16", "--map-layers", "2", "--cbase", "64", "--cmax", "8", "--aug", "ada", "--ada-kimg", "0.2",
        "--mirror", "--r1-interval", "4", "--pl-weight", "1", "--pl-interval", "3", "--threads", "1",
        "--no-progress", "--log-every", "1", "--sample-every", "0", "--snapshot-every", str(EVERY),
        "--keep-snapshots", "3", "--deterministic", "--seed", "11", "--steps", str(STEPS)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from sklearn.datasets import load_digits
    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    for j, i in enumerate(range(16)):
        Image.fromarray((d.images[i] * 255 / 16).round().astype(np.uint8), "L").save(root / f"{j}.png")
    return root


# The killed launches run train's own main, stopped (SIGSTOP) by themselves at the kill point: the
# kill then lands mid-run at any CPU speed, since the run cannot go on, let alone finish, while the test
# reacts. "step": between two steps, after step KILL_AT was logged and any snapshot of it renamed into
# place. "write": after the snapshot of step KILL_AT is written to its temp file, before the rename.
HELD = """
import os, signal, sys
from pathlib import Path
from gan_models.train import loop, snapshot
from gan_models.train.__main__ import main

at, where = int(os.environ["KILL_AT"]), os.environ["KILL_WHERE"]
step, write = loop.Trainer.train_step, snapshot.atomic_write_bytes

def train_step(self):
    if where == "step" and self.step == at:
        os.kill(os.getpid(), signal.SIGSTOP)
    return step(self)

def atomic_write_bytes(path, fn):
    def then_stop(tmp):
        fn(tmp)
        if where == "write" and Path(path) == snapshot.path_for(Path(path).parents[1], at):
            os.kill(os.getpid(), signal.SIGSTOP)
    write(path, then_stop)

loop.Trainer.train_step, snapshot.atomic_write_bytes = train_step, atomic_write_bytes
sys.exit(main())
"""


def launch(data, out, *extra, kill_at=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gan_models.train"]
    if kill_at is not None:
        env.update(KILL_AT=str(kill_at[0]), KILL_WHERE=kill_at[1])
        cmd = [sys.executable, "-c", HELD]
    out.mkdir(parents=True, exist_ok=True)
    # stderr to a file, not a pipe: a stopped reader must never be what blocks the run
    with open(out.parent / f"{out.name}.stderr", "ab") as err:
        return subprocess.Popen([*cmd, "--data", str(data), "--out", str(out), *ARGS, *extra],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)


def stderr_tail(out: Path) -> str:
    return (out.parent / f"{out.name}.stderr").read_text(errors="replace")[-2000:]


def last_logged_step(out: Path) -> int:
    lines = (out / "log.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0


def wait_stopped(proc, out: Path, at) -> None:
    # the deadline only guards against a hang: the run stops itself at the kill point, however slowly it gets there
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
        if pid and os.WIFSTOPPED(status):
            return
        assert not pid, f"the run ended (status {status}) before its kill at {at}: {stderr_tail(out)}"
        time.sleep(0.02)
    pytest.fail(f"the run never reached its kill point {at}: {stderr_tail(out)}")


def test_kill9_five_times_then_same_weights(data, tmp_path):
    ref_dir, run = tmp_path / "ref", tmp_path / "killed"
    ref = launch(data, ref_dir)  # the uninterrupted run, alongside the first killed one
    # the kill points, drawn before the run: two mid-write (only a snapshot step has a write), three between steps
    rng = random.Random(2024)
    writes = rng.sample(range(EVERY, STEPS, EVERY), 2)
    between = rng.sample(sorted(set(range(1, STEPS)) - set(writes)), 3)
    kill_at = sorted([(k, "write") for k in writes] + [(k, "step") for k in between])
    resumed_from = []
    for at in kill_at:
        proc = launch(data, run, *(["--resume"] if resumed_from else []), kill_at=at)
        wait_stopped(proc, run, at)
        # the premise: the run is in progress, at the step its log has reached, nothing of its end written
        assert proc.poll() is None and last_logged_step(run) == at[0]
        assert not (run / "generator.safetensors").exists()
        # a write kill leaves its temp file, and only it: the resume removed any an earlier kill left
        temps = [p.name for p in (run / "snapshots").glob(".*.tmp")]
        assert [t.startswith(f".snapshot-{at[0]:08d}.pt.") for t in temps] == ([True] if at[1] == "write" else [])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # every snapshot on disk is complete, and the newest is the last one renamed into place before the kill
        for step, path in snapshot.list_snapshots(run):
            state = torch.load(path, map_location="cpu", weights_only=True)
            assert state["step"] == step
        found = snapshot.list_snapshots(run)
        resumed_from.append(found[0][0] if found else 0)
        assert resumed_from[-1] == at[0] // EVERY * EVERY - (EVERY if at[1] == "write" else 0), (at, found)
    proc = launch(data, run, "--resume")
    proc.wait(timeout=600)  # a hang guard only
    assert proc.returncode == 0, stderr_tail(run)
    ref.wait(timeout=600)
    assert ref.returncode == 0, stderr_tail(ref_dir)
    print("killed at", kill_at, "resumed from steps", resumed_from)
    assert not list((run / "snapshots").glob("*.tmp"))  # the resume removed what the write kills left

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
