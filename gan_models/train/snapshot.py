"""Training snapshots: everything needed to continue a run bit-for-bit, as plain tensors and dicts.

torch.save of tensors, numbers, strings and containers only, so a snapshot loads with
torch.load(weights_only=True) and never unpickles code. Each snapshot is its own file
(snapshot-<step>.pt), written to a temporary name and renamed, and older ones are pruned only after
the new one is in place: a crash at any moment leaves at least one complete snapshot.
"""
from __future__ import annotations

import random
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import atomic_write_bytes
from ..cli import nonneg_int

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
    p.add_argument("--snapshot-every", type=nonneg_int, default=1000,
                   help="steps between snapshots (0: only at the end)")
    p.add_argument("--keep-snapshots", type=nonneg_int, default=2,
                   help="newest snapshots kept on disk (0: all; default 2)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue from the newest readable snapshot in --out (a folder without snapshots "
                            "starts at step 0, so the same command starts and continues a run)")
    start.add_argument("--restart", action="store_true",
                       help="discard the run already in --out (its snapshots, exports, logs and sample grids) "
                            "and train from step 0; without --resume or --restart an --out holding a run is "
                            "refused")


def save(run_dir: Path, step: int, state: dict, keep: int = 2) -> Path:
    path = path_for(run_dir, step)
    atomic_write_bytes(path, lambda tmp: torch.save(state, tmp))
    if keep <= 0:  # keep all: the slice below would start at -1 and delete the oldest
        return path
    # counted down from the snapshot just written: files of later steps (damaged ones a resume
    # passed over) must neither crowd it out of the `keep` newest nor be taken for it
    older = [p for s, p in list_snapshots(run_dir) if s < step]
    for old in older[keep - 1:]:
        old.unlink(missing_ok=True)
    return path


class SnapshotError(ValueError):
    """A run folder that training must not touch as asked; the message names the files and what to do."""


def _first_line(e: BaseException, limit: int = 160) -> str:
    """The part of an exception's message that says what was found. torch.load's refusals run to a
    page, and the weights_only one advises loading the file unsafely, which for a damaged snapshot
    is both wrong and beside the point: keep the unpickler's own finding."""
    text = str(e).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].strip()
    text = (text.splitlines() or [""])[0]
    text = text.split(". ", 1)[0]  # the first sentence: the rest is advice
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def read(path: Path, keys: tuple[str, ...] = ()) -> dict:
    """One snapshot, or a SnapshotError saying why it cannot be resumed from. `keys` are the entries
    the trainer's load_state_dict needs: a file that loads yet lacks them (written by another trainer,
    or damaged inside a still-valid archive) is as unusable as a truncated one."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise SnapshotError(f"cannot be read ({_first_line(e)})") from None
    if size == 0:
        raise SnapshotError("empty file (0 bytes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError / UnpicklingError / EOFError / OSError for damage
        raise SnapshotError(f"unreadable, {size} bytes ({_first_line(e)})") from None
    if not isinstance(state, dict):
        raise SnapshotError(f"holds a {type(state).__name__}, not a training state")
    missing = [k for k in keys if k not in state]
    if missing:
        raise SnapshotError(f"not a snapshot of this trainer: no {', '.join(missing)}")
    return state


def find_newest(run_dir: Path, keys: tuple[str, ...] = ()
                ) -> tuple[dict | None, Path | None, list[tuple[Path, str]]]:
    """(state, path) of the newest snapshot that reads, and (path, why) for each newer one that did not."""
    skipped = []
    for _, p in list_snapshots(run_dir):
        try:
            return read(p, keys), p, skipped
        except SnapshotError as e:
            skipped.append((p, str(e)))
    return None, None, skipped


def load_latest(run_dir: Path) -> tuple[dict, Path] | None:
    """The newest snapshot that loads. A damaged one (disk full, copied half-way) is reported and
    skipped."""
    state, path, skipped = find_newest(run_dir)
    for p, why in skipped:
        warnings.warn(f"{p.name}: {why}; trying an older one")
    return None if path is None else (state, path)


def _names(paths: list[Path], root: Path, limit: int = 4) -> str:
    shown = [str(p.relative_to(root)) for p in paths[:limit]]
    return ", ".join(shown) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


class Resumable:
    """What every trainer does with its run folder (`self.out`): refuse to overwrite a run it was
    not told to continue or discard, resume from the newest readable snapshot through its own
    `load_state_dict`, or clear the folder for a fresh start.

    check_run_folder runs before the trainer writes anything (the data cache included), so every
    refusal leaves the folder as it was: a run that cannot continue must not cost the run it found."""
    resumed_from: Path | None = None
    EXPORTS: tuple[str, ...] = ()          # what a finished run leaves in its folder (generator.safetensors)
    INTERIM: tuple[str, ...] = ()          # models written during a run (best.safetensors), maybe before any snapshot
    SNAPSHOT_KEYS: tuple[str, ...] = ()    # entries load_state_dict reads from a snapshot
    _found: tuple | None = None

    def run_files(self) -> list[Path]:
        """Everything a run of this trainer writes that --restart discards (not the data cache: it
        holds the data, not the run, and is checked against the files on every start)."""
        out = Path(self.out)
        files = [p for _, p in list_snapshots(out)] + [out / n for n in self.EXPORTS + self.INTERIM]
        files += [out / n for n in ("log.jsonl", "metrics.jsonl")]
        files += sorted((out / "samples").glob("grid-*.png")) if (out / "samples").is_dir() else []
        return [p for p in files if p.is_file()]

    def check_run_folder(self, resume: bool, restart: bool) -> None:
        out = Path(self.out)
        snaps = [p for _, p in list_snapshots(out)]
        exports = [out / n for n in self.EXPORTS if (out / n).is_file()]
        interim = [out / n for n in self.INTERIM if (out / n).is_file()]
        if restart:
            return  # run() clears the folder once everything else has been checked
        if not resume:
            if snaps or exports or interim:
                raise SnapshotError(
                    f"{out} already holds a training run ({_names(exports + interim + snaps, out)}); continue "
                    f"it with --resume, or discard it and start over with --restart (or choose another --out)")
            return
        if not snaps:
            # a run killed before its first snapshot may have written a best.safetensors: the same
            # command with --resume starts it again. A finished run always has its last snapshot, so
            # exports without one are a run whose snapshots were removed: not ours to overwrite.
            if exports:
                raise SnapshotError(
                    f"--resume: {out} holds {_names(exports, out)} but no snapshot to continue from; start "
                    f"over with --restart (which replaces them) or choose another --out")
            return
        state, path, skipped = find_newest(out, self.SNAPSHOT_KEYS)
        if path is None:
            lines = "\n".join(f"  {p.name}: {why}" for p, why in skipped)
            raise SnapshotError(
                f"--resume: none of the {len(skipped)} snapshot(s) in {out / 'snapshots'} can be resumed from, "
                f"so nothing was changed:\n{lines}\nrestore a good copy of one, or discard the run and start "
                f"over with --restart")
        self._found = (state, path, skipped)

    def try_resume(self) -> bool:
        """Load the snapshot check_run_folder found (or, called on its own, the newest readable one).
        False: there is none, and the run starts at step 0. Temp files a killed write left are removed
        once the decision is made: nothing will ever complete them."""
        if self._found is None:
            self.check_run_folder(resume=True, restart=False)
        state, path, skipped = self._found or (None, None, [])
        self._found = None
        if path is not None:
            for p, why in skipped:
                print(f"--resume: skipped {p.name}: {why}", file=sys.stderr)
            try:
                self.load_state_dict(state)
            except (KeyError, IndexError, TypeError, RuntimeError) as e:
                raise SnapshotError(f"--resume: {path.name} does not fit this run ({_first_line(e)}); "
                                    f"nothing was changed") from None
            self.resumed_from = path
        self._remove_temp_files()
        return path is not None

    def clear_run(self) -> list[Path]:
        """--restart: remove the previous run's files (named in the returned list) and temp files."""
        gone = self.run_files()
        for p in gone:
            p.unlink(missing_ok=True)
        self._remove_temp_files()
        return gone

    def _remove_temp_files(self) -> None:
        folder = Path(self.out) / "snapshots"
        if folder.is_dir():
            for tmp in folder.glob(".snapshot-*.tmp"):
                tmp.unlink(missing_ok=True)
