import json

import pytest
import torch
from safetensors.torch import save_file

from gan_models import checkpoint
from gan_models.checkpoint import CheckpointError


def test_roundtrip_keeps_tensors_and_description(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    meta = {"arch": "dcgan", "z_dim": 4, "class_names": ["x", "y"], "source": {"type": "train", "steps": 3}}
    checkpoint.write(tmp_path / "m.safetensors", sd, meta)
    sd2, meta2 = checkpoint.read(tmp_path / "m.safetensors")
    assert meta2 == meta
    assert set(sd2) == set(sd) and all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert checkpoint.read_meta(tmp_path / "m.safetensors") == meta


def test_plain_safetensors_reads_with_empty_description(tmp_path):
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    sd, meta = checkpoint.read(tmp_path / "plain.safetensors")
    assert meta == {} and list(sd) == ["x"]


@pytest.mark.parametrize("name", ["model.pkl", "model.pt", "model.pth", "model.ckpt"])
def test_pickle_formats_are_refused_by_name_without_opening(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"\x80\x04 not even read")
    with pytest.raises(CheckpointError, match="only .safetensors"):
        checkpoint.read(p)


def test_missing_and_corrupt_files_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.read(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        checkpoint.read(bad)


def test_header_must_be_json_object(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "h.safetensors"), metadata={"gan": "[1, 2]"})
    with pytest.raises(CheckpointError, match="JSON object"):
        checkpoint.read(tmp_path / "h.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "j.safetensors"), metadata={"gan": "{nope"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.read(tmp_path / "j.safetensors")


def test_unknown_description_field_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="unknown checkpoint description fields"):
        checkpoint.write(tmp_path / "m.safetensors", {"x": torch.zeros(1)}, {"arch": "dcgan", "zdim": 3})
    assert not (tmp_path / "m.safetensors").exists()


def test_failed_write_leaves_the_good_file_untouched(tmp_path):
    path = tmp_path / "m.safetensors"
    checkpoint.write(path, {"x": torch.ones(2)}, {"arch": "dcgan"})
    before = path.read_bytes()

    def explode(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError):
        checkpoint.atomic_write_bytes(path, explode)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind


def test_header_records_format_version(tmp_path):
    checkpoint.write(tmp_path / "m.safetensors", {"x": torch.ones(1)}, {"arch": "dcgan"})
    from safetensors import safe_open
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        md = f.metadata()
    assert md["format"] == checkpoint.FORMAT and json.loads(md["gan"]) == {"arch": "dcgan"}


def test_written_files_get_the_usual_mode_not_mkstemps_0600(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        checkpoint.write(tmp_path / "m.safetensors", {"x": torch.ones(1)}, {"arch": "dcgan"})
    finally:
        os.umask(umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644


# a writer that stops for good half-way through its temp file, as a convert killed with SIGKILL does
KILLED_WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from gan_models import checkpoint

def half_then_hang(tmp):
    with open(tmp, "wb") as f:
        f.write(b"x" * 100_000)
    print("writing", flush=True)
    time.sleep(600)

checkpoint.atomic_write_bytes(sys.argv[1], half_then_hang)
"""


def test_a_write_killed_mid_way_leaves_no_temp_once_the_next_write_is_done(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import threading
    from pathlib import Path

    path = tmp_path / "m.safetensors"
    checkpoint.write(path, {"x": torch.ones(2)}, {"arch": "dcgan"})
    before = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(Path(__file__).parents[1])],
                             stdout=subprocess.PIPE)
    watchdog = threading.Timer(120, child.kill)  # a child stuck before its print fails the test, not hangs it
    watchdog.start()
    try:
        assert child.stdout.readline().strip() == b"writing"
        (stale,) = tmp_path.glob(".m.safetensors.*.tmp")
        assert stale.name.split(".")[-3] == str(child.pid) and stale.stat().st_size == 100_000
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        watchdog.cancel()
        child.kill()
        child.stdout.close()
    assert stale.exists() and path.read_bytes() == before  # the kill left its temp; the file is intact
    live = tmp_path / f".m.safetensors.{os.getpid()}.abcd1234.tmp"  # a write in progress in a live process
    live.write_bytes(b"in progress")
    checkpoint.write(path, {"x": torch.zeros(3)}, {"arch": "dcgan"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.safetensors", live.name])
    assert torch.equal(checkpoint.read(path)[0]["x"], torch.zeros(3))


def test_temp_names_carry_the_writer_pid(tmp_path):
    import os
    seen = []
    checkpoint.atomic_write_bytes(tmp_path / "a.b.safetensors", lambda tmp: seen.append(tmp) or open(tmp, "wb").close())
    assert checkpoint._temp_owner(os.path.basename(seen[0]), "a.b.safetensors") == os.getpid()
    # another target's temps are never taken for this one's, whatever their names share
    assert checkpoint._temp_owner(".a.b.safetensors.7.123.abc.tmp", "a.b.safetensors") is None
    assert checkpoint._temp_owner(".a.b.safetensors.x.abc.tmp", "a.b.safetensors") is None
