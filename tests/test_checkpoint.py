import json

import pytest
import torch
from safetensors.torch import save_file

from gan_models import checkpoint, registry
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
