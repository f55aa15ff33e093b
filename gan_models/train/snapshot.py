"""Training snapshots: everything needed to continue a run bit-for-bit, as plain tensors and dicts.

torch.save of tensors, numbers, strings and containers only, so a snapshot loads with
torch.load(weights_only=True) and never unpickles code. Each snapshot is its own file
(snapshot-<step>.pt), written to a temporary name and renamed, and older ones are pruned only after
the new one is in place: a crash at any moment leaves at least one complete snapshot.
"""
from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import atomic_write_bytes

_NAME = re.compile(r"^snapshot-(\d{8,})\.pt$")


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        # a run resumed on fewer GPUs than wrote it (or on a CPU, above) keeps the states it can use
        for i, state in enumerate(s["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, i)
    n = s["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(internal), gauss))


def path_for(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "snapshots" / f"snapshot-{step:08d}.pt"


def list_snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete snapshots, newest first. Temp files of an interrupted write
    (.snapshot-*.tmp) never match the name pattern."""
    folder = Path(run_dir) / "snapshots"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def add_arguments(p) -> None:
    """The snapshot options, shared by both trainers' command lines so they mean the same in each."""
    p.add_argument("--snapshot-every", type=int, default=1000, help="steps between snapshots (0: only at the end)")
    p.add_argument("--keep-snapshots", type=int, default=2,
                   help="newest snapshots kept on disk (0: all; default 2)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete snapshot in --out")


def save(run_dir: Path, step: int, state: dict, keep: int = 2) -> Path:
    path = path_for(run_dir, step)
    atomic_write_bytes(path, lambda tmp: torch.save(state, tmp))
    if keep <= 0:  # keep all: a slice [0:] would delete the snapshot just written, and resume with it
        return path
    for _, old in list_snapshots(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    return path


def load_latest(run_dir: Path) -> tuple[dict, Path] | None:
    """The newest snapshot that loads. A damaged one (disk full, copied half-way) is reported and
    skipped rather than ending the run."""
    for _, p in list_snapshots(run_dir):
        try:
            return torch.load(p, map_location="cpu", weights_only=True), p
        except Exception as e:  # torch raises RuntimeError / UnpicklingError / EOFError for damage
            warnings.warn(f"{p.name}: unreadable snapshot ({e}); trying an older one")
    return None


class Resumable:
    """What every trainer does to resume: the newest complete snapshot of its run folder (`self.out`)
    goes through its own `load_state_dict`. Temp files left by a run killed mid-write are removed first:
    nothing will ever complete them."""
    resumed_from: Path | None = None

    def try_resume(self) -> bool:
        folder = Path(self.out) / "snapshots"
        if folder.is_dir():
            for tmp in folder.glob(".snapshot-*.tmp"):
                tmp.unlink(missing_ok=True)
        found = load_latest(self.out)
        if found is None:
            return False
        state, path = found
        self.load_state_dict(state)
        self.resumed_from = path
        return True
