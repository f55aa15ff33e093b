"""What the project publishes names no one's disk: checkpoints' headers, benchmark results, model
cards and docs carry commands and paths, and a local absolute path in them (a home folder, a scratch
run folder) is both private and useless to a reader."""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from gan_models.cli import public_command, public_path

ROOT = Path(__file__).resolve().parent.parent
# absolute paths that only exist on the machine that wrote the file
LOCAL = re.compile(r"(?<![\w.])/(?:work|tmp|home|root|Users|mnt|scratch|var/folders)/")
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".pytest_cache"}


def _published_files():
    for p in sorted(ROOT.rglob("*")):
        rel = p.relative_to(ROOT)
        if not p.is_file() or SKIP_DIRS & set(rel.parts) or rel.parts[:1] == ("tests",) \
                or rel.parts[:2] == ("weights", "cache"):
            continue
        yield rel, p


def _text_of(p: Path) -> str | None:
    if p.suffix == ".safetensors":
        with open(p, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            return json.dumps(json.loads(f.read(n)).get("__metadata__", {}))
    if p.suffix in (".json", ".md", ".txt", ".toml", ".cfg", ".yaml", ".yml", ".py", ".jsonl"):
        return p.read_text(encoding="utf-8", errors="replace")
    return None


def test_no_local_absolute_path_in_published_files():
    found = []
    for rel, p in _published_files():
        text = _text_of(p)
        if text is None:
            continue
        for m in LOCAL.finditer(text):
            line = text[max(0, m.start() - 40): m.end() + 40].replace("\n", " ")
            if "public_path" in line or "/home/me/" in line:  # the helper's own docstring example
                continue
            found.append(f"{rel}: ...{line}...")
    assert not found, "local absolute paths:\n" + "\n".join(found[:20])


def test_the_check_above_can_fail():
    assert LOCAL.search('"command": "python -m gan_models.train --out /work/runs/x"')
    assert LOCAL.search("--data=/home/ann/faces")
    assert not LOCAL.search("--data /usr/share/datasets/fashion-mnist --out runs/x")


@pytest.mark.parametrize("given, published", [
    ("/work/runs/emoji_sg2/run", "run"),
    ("/home/ann/data/faces/", "faces"),
    ("runs/fmnist", "runs/fmnist"),  # relative: as written
    ("/usr/share/datasets/fashion-mnist", "/usr/share/datasets/fashion-mnist"),  # Debian's data: same everywhere
    ("--resolution", "--resolution"),
])
def test_public_path(given, published):
    assert public_path(given) == published


def test_public_command_reduces_paths_in_both_argument_forms():
    cmd = public_command(["python", "-m", "gan_models.train"],
                         ["--data", "/home/ann/my faces", "--out=/work/runs/r1", "--description", "a b", "--batch", "8"])
    assert cmd == "python -m gan_models.train --data 'my faces' --out=r1 --description 'a b' --batch 8"
    assert not LOCAL.search(cmd)
