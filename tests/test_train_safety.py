"""Training never loses a run: a bad option, bad data, a run folder already in use or damaged
snapshots stop `python -m gan_models.train` with `error: <the problem, named>` on stderr and exit
status 2, and leave every file of the run folder byte for byte as it was. Damaged snapshots with an
older good one resume from that one and say what they passed over."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import _nets
from gan_models.train import snapshot
from gan_models.train.__main__ import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
# the smallest DCGAN run that still writes everything a real one does: snapshots at steps 2 and 4,
# sample grids, a log and the exported generator
TINY = ["--resolution", "8", "--batch", "8", "--z-dim", "8", "--ngf", "8", "--ndf", "8", "--threads", "1",
        "--no-progress", "--sample-every", "2", "--snapshot-every", "2", "--log-every", "1", "--data-cache", "none"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _nets.digit_class_folders(tmp_path_factory.mktemp("digits"), 2, 8, "d")


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli_main(["--data", str(data), "--out", str(out), "--steps", "4", *TINY]) == 0
    assert [s for s, _ in snapshot.list_snapshots(out)] == [4, 2] and (out / "generator.safetensors").is_file()
    return out


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run for one test to damage."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder: equal dicts mean nothing changed, appeared or went."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def train(capsys, *argv) -> tuple[int, str]:
    rc = cli_main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":  # a copy cut short, a disk that filled up mid-write by another tool
        path.write_bytes(raw[:len(raw) // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * (len(raw) // 256 + 1))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "foreign":  # loads fine, but holds nothing this trainer saved
        torch.save({"step": 4, "weights": torch.zeros(3)}, path)
    else:
        raise AssertionError(how)


WHY = {"truncated": "unreadable", "garbage": "unreadable", "empty": "empty file (0 bytes)",
       "foreign": "not a snapshot of this trainer"}


# -- damaged snapshots --------------------------------------------------------------------------

@pytest.mark.parametrize("how", list(WHY))
def test_resume_refuses_when_no_snapshot_is_readable(data, run, capsys, how):
    for _, p in snapshot.list_snapshots(run):
        damage(p, how)
    before = hashes(run)
    rc, err = train(capsys, "--data", data, "--out", run, "--steps", 6, "--resume", *TINY)
    assert rc == 2 and "Traceback" not in err
    assert "error: --resume: none of the 2 snapshot(s)" in err and "nothing was changed" in err
    for name in ("snapshot-00000004.pt", "snapshot-00000002.pt"):  # each file, and why it failed
        line = next(x for x in err.splitlines() if name in x)
        assert WHY[how] in line, err
    assert "--restart" in err
    assert hashes(run) == before


def test_resume_passes_over_damaged_snapshots_to_the_newest_good_one(data, run, capsys):
    damage(snapshot.path_for(run, 4), "truncated")
    rc, err = train(capsys, "--data", data, "--out", run, "--steps", 6, "--resume", *TINY)
    assert rc == 0, err
    assert "--resume: skipped snapshot-00000004.pt: unreadable" in err
    assert "resumed from snapshot-00000002.pt at step 2" in err
    # the replayed step 4 wrote a good snapshot over the damaged one, and every file left loads
    assert [s for s, _ in snapshot.list_snapshots(run)] == [6, 4]
    assert [snapshot.read(p)["step"] for _, p in snapshot.list_snapshots(run)] == [6, 4]


def test_a_damaged_later_snapshot_never_crowds_out_the_one_just_written(run):
    damage(snapshot.path_for(run, 4), "garbage")
    path = snapshot.save(run, 3, {"step": 3}, keep=1)
    assert path.is_file() and snapshot.read(path) == {"step": 3}
    assert not snapshot.path_for(run, 2).exists()  # pruned: older than the one written


def test_the_cli_itself_refuses_damage_without_a_traceback(data, run):
    """Through `python -m gan_models.train`, as a user meets it."""
    for _, p in snapshot.list_snapshots(run):
        damage(p, "truncated")
    before = hashes(run)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for extra in (["--resume"], ["--steps", "0"]):
        r = subprocess.run([sys.executable, "-m", "gan_models.train", "--data", str(data), "--out", str(run),
                            *TINY, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "error: " in r.stderr
        assert ("snapshot-00000004.pt" in r.stderr) if extra == ["--resume"] else ("argument --steps" in r.stderr)
    assert hashes(run) == before


# -- a folder that already holds a run ----------------------------------------------------------

def test_a_finished_run_is_not_overwritten_without_resume(data, run, capsys):
    before = hashes(run)
    rc, err = train(capsys, "--data", data, "--out", run, "--steps", 2, *TINY)
    assert rc == 2 and "Traceback" not in err
    assert "already holds a training run" in err and "generator.safetensors" in err
    assert "snapshots/snapshot-00000004.pt" in err and "--resume" in err and "--restart" in err
    assert hashes(run) == before


def test_a_run_without_snapshots_is_not_overwritten_by_resume(data, run, capsys):
    # snapshots removed, the finished generator kept: starting at step 0 would replace it
    shutil.rmtree(run / "snapshots")
    before = hashes(run)
    rc, err = train(capsys, "--data", data, "--out", run, "--steps", 2, "--resume", *TINY)
    assert rc == 2 and "generator.safetensors but no snapshot" in err and "--restart" in err
    assert hashes(run) == before


def test_an_unfinished_run_is_not_overwritten_without_resume(data, run, capsys):
    (run / "generator.safetensors").unlink()  # killed mid-run: snapshots only
    before = hashes(run)
    rc, err = train(capsys, "--data", data, "--out", run, "--steps", 2, *TINY)
    assert rc == 2 and "snapshot-00000004.pt" in err and "--resume" in err
    assert hashes(run) == before


def test_resume_in_a_folder_without_a_run_starts_at_step_0(data, tmp_path, capsys):
    # NVlabs-style: the same command, --resume included, starts a run and continues it
    out = tmp_path / "new"
    rc, err = train(capsys, "--data", data, "--out", out, "--steps", 2, "--resume", *TINY)
    assert rc == 0, err
    assert "no snapshot" in err and "starting at step 0" in err
    assert [s for s, _ in snapshot.list_snapshots(out)] == [2]


def test_restart_discards_the_previous_run(data, run, capsys):
    for _, p in snapshot.list_snapshots(run):
        damage(p, "garbage")
    rc, err = train(capsys, "--data", data, "--out", run, "--steps", 2, "--restart", *TINY)
    assert rc == 0, err
    assert "--restart: removed" in err
    assert [s for s, _ in snapshot.list_snapshots(run)] == [2]
    assert snapshot.read(snapshot.path_for(run, 2))["step"] == 2
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["grid-00000002.png"]
    assert len((run / "log.jsonl").read_text().splitlines()) == 2  # this run's steps only


# -- bad options --------------------------------------------------------------------------------

BAD_OPTIONS = [
    (["--steps", "0"], "--steps"), (["--steps", "-5"], "--steps"), (["--steps", "ten"], "--steps"),
    (["--kimg", "0"], "--kimg"), (["--kimg", "nan"], "--kimg"), (["--kimg", "inf"], "--kimg"),
    (["--batch", "0"], "--batch"), (["--batch", "1"], "--batch"),
    (["--batch-gpu", "0"], "--batch-gpu"), (["--batch-gpu", "3"], "--batch-gpu"),
    (["--arch", "stylegan2", "--batch-gpu", "1"], "--batch-gpu"),
    (["--resolution", "0"], "--resolution"), (["--resolution", "12"], "--resolution"),
    (["--arch", "stylegan2", "--resolution", "28"], "--resolution"),
    (["--sample-every", "-1"], "--sample-every"), (["--snapshot-every", "-1"], "--snapshot-every"),
    (["--log-every", "-1"], "--log-every"), (["--keep-snapshots", "-1"], "--keep-snapshots"),
    (["--lr", "0"], "--lr"), (["--lr", "-0.001"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--betas", "0.5", "1"], "--betas"), (["--betas", "-0.1", "0.9"], "--betas"),
    (["--betas", "nan", "0.9"], "--betas"), (["--ema-beta", "1"], "--ema-beta"),
    (["--r1-gamma", "-1"], "--r1-gamma"), (["--r1-gamma", "inf"], "--r1-gamma"),
    (["--threads", "-2"], "--threads"), (["--z-dim", "0"], "--z-dim"), (["--ngf", "0"], "--ngf"),
    (["--lr-decay-from", "7"], "--lr-decay-from"), (["--lr-decay-from", "-1"], "--lr-decay-from"),
    (["--mode-seeking", "nan"], "--mode-seeking"), (["--fid-every", "inf"], "--fid-every"),
    (["--style-mixing", "1.5"], "--style-mixing"), (["--ada-target", "nan"], "--ada-target"),
    (["--pl-interval", "0"], "--pl-interval"), (["--cbase", "-1"], "--cbase"),
    (["--resume", "--restart"], "--restart"),
]


@pytest.mark.parametrize("bad, flag", BAD_OPTIONS, ids=[" ".join(b) for b, _ in BAD_OPTIONS])
def test_bad_options_are_refused_by_name(data, run, capsys, bad, flag):
    # --resume: an option that got through would continue the run and change the folder. --kimg goes
    # without --steps, so that its own check, not their exclusion, is what refuses it
    before = hashes(run)
    length = [] if "--kimg" in bad else ["--steps", 6]
    rc, err = train(capsys, "--data", data, "--out", run, "--resume", *TINY, *length, *bad)
    assert rc == 2 and "Traceback" not in err
    assert f"error: argument {flag}" in err, err
    assert hashes(run) == before


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "data path not found"),
    (lambda p: p.mkdir(), "no PNG/JPEG/WebP images found"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("no images here")), "no PNG/JPEG/WebP images found"),
], ids=["missing", "empty", "no-images"])
def test_bad_data_folders_are_named(tmp_path, capsys, make, words):
    folder = tmp_path / "images"
    make(folder)
    out = tmp_path / "out"
    rc, err = train(capsys, "--data", folder, "--out", out, "--steps", 2, *TINY[:-2])  # with the data cache
    assert rc == 2 and "Traceback" not in err
    assert "error: " in err and str(folder) in err and words in err
    assert not out.exists()


# -- cyclegan / pix2pix: the same run folder rules --------------------------------------------------

CYCLE = ["--resolution", "16", "--channels", "1", "--ngf", "4", "--n-blocks", "1", "--ndf", "4", "--n-layers-d", "2",
         "--snapshot-every", "1", "--sample-every", "0", "--log-every", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def cycle_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cycle")
    for dom in ("a", "b"):
        (root / dom).mkdir()
        _nets.digit_class_folders(root / dom, 2, 3, dom)
    out = root / "run"
    assert cli_main(["--arch", "cyclegan", "--data-a", str(root / "a"), "--data-b", str(root / "b"),
                     "--out", str(out), "--steps", "2", *CYCLE]) == 0
    return root, out


def test_cyclegan_refuses_damaged_snapshots_and_an_existing_run(cycle_run, tmp_path, capsys):
    root, finished = cycle_run
    run = Path(shutil.copytree(finished, tmp_path / "run"))
    argv = ["--arch", "cyclegan", "--data-a", root / "a", "--data-b", root / "b", "--out", run, "--steps", 3, *CYCLE]
    before = hashes(run)
    rc, err = train(capsys, *argv)
    assert rc == 2 and "already holds a training run" in err and "translator_A2B.safetensors" in err
    for _, p in snapshot.list_snapshots(run):
        damage(p, "truncated")
    before = hashes(run)
    rc, err = train(capsys, *argv, "--resume")
    assert rc == 2 and "Traceback" not in err
    assert "snapshot-00000002.pt: unreadable" in err and "snapshot-00000001.pt: unreadable" in err
    assert hashes(run) == before
    rc, err = train(capsys, *argv, "--resume", "--steps", "0")
    assert rc == 2 and "error: argument --steps" in err
    assert hashes(run) == before


@pytest.mark.parametrize("bad, flag", [
    (["--steps", "0"], "--steps"), (["--lr", "nan"], "--lr"), (["--keep-snapshots", "-1"], "--keep-snapshots"),
    (["--pool-size", "-1"], "--pool-size"), (["--lambda-cycle", "inf"], "--lambda-cycle"),
    (["--betas", "1", "0.9"], "--betas"), (["--batch", "0"], "--batch"), (["--decay-from", "9"], "--decay-from"),
])
def test_cyclegan_bad_options_are_refused_by_name(cycle_run, tmp_path, capsys, bad, flag):
    root, finished = cycle_run
    rc, err = train(capsys, "--arch", "pix2pix", "--data-a", root / "a", "--data-b", root / "b",
                    "--out", tmp_path / "o", *CYCLE, "--steps", 4, *bad)
    assert rc == 2 and "Traceback" not in err and flag in err, err
    assert not (tmp_path / "o").exists()
