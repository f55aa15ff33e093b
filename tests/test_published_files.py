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


def _registry_archive() -> set[str]:
    """The files `comfy node publish` would pack: the tree minus .comfyignore (the subset of gitignore
    syntax that file uses: `dir/`, globs, `!` re-includes; the last matching line decides)."""
    import fnmatch

    rules = [ln.strip() for ln in (ROOT / ".comfyignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    kept = set()
    for rel, _ in _all_files():
        path, ignored = rel.as_posix(), False
        for rule in rules:
            neg, pat = rule.startswith("!"), rule.lstrip("!")
            hit = path.startswith(pat) if pat.endswith("/") else fnmatch.fnmatch(path, pat)
            if hit:
                ignored = not neg
        if not ignored:
            kept.add(path)
    return kept


def _all_files():
    for p in sorted(ROOT.rglob("*")):
        rel = p.relative_to(ROOT)
        if p.is_file() and not SKIP_DIRS & set(rel.parts) and rel.parts[0] not in (".ruff_cache",):
            yield rel, p


def test_registry_metadata_is_complete():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    assert project["urls"]["Repository"].startswith("https://github.com/")
    assert comfy["PublisherId"] and comfy["DisplayName"]
    icon = comfy["Icon"]
    assert icon.startswith("https://raw.githubusercontent.com/"), icon
    icon_file = ROOT / icon.split("/main/", 1)[1]  # the URL serves this file of the default branch
    assert icon_file.is_file(), f"Icon {icon} names {icon_file}, which is not in the repository"
    from PIL import Image
    with Image.open(icon_file) as im:
        assert im.width == im.height >= 128, im.size
    assert re.fullmatch(r">=\d+\.\d+\.\d+", comfy["requires-comfyui"])
    assert "Operating System :: OS Independent" in project["classifiers"]
    assert any(c.startswith("Environment :: GPU") for c in project["classifiers"])
    # the version released is the one the changelog's newest entry describes
    newest = re.search(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert project["version"] == newest


def test_registry_archive_holds_what_comfyui_loads_and_not_the_developer_tree():
    kept = _registry_archive()
    for needed in ("__init__.py", "nodes/host.py", "gan_models/registry.py", "requirements.txt", "LICENSE",
                   "weights/emoji_stylegan2.safetensors", "example_workflows/gan_seeds_grid.json",
                   "example_inputs/gan_invert_emoji.png", "example_inputs/gan_style_input.mp4", "docs/icon.png",
                   "web/docs/ComfyGAN_LoadGANGenerator.md", "example_workflows/gan_seeds_grid.jpg"):
        assert needed in kept, needed
    assert not [p for p in kept if p.split("/")[0] in ("tests", "bench", ".ci", "scripts", ".git")]
    assert not [p for p in kept if p.startswith("docs/") and p.endswith(".png") and p != "docs/icon.png"]
