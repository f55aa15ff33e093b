import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

import gan_models
from gan_models.archs import dcgan
from gan_models.generate import main as generate_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def ckpt(tmp_path):
    torch.manual_seed(0)
    G = dcgan.Generator(dcgan.make_layout(16, 3, 28, 1, ngf=4), c_dim=3)
    gan_models.save_generator(tmp_path / "g.safetensors", G, {"arch": "dcgan", "class_names": ["a", "b", "c"]})
    return tmp_path / "g.safetensors"


def test_generate_grid_one_row_per_class(ckpt, tmp_path):
    assert generate_main([str(ckpt), "--seeds", "0-4", "--out", str(tmp_path / "g.png")]) == 0
    im = Image.open(tmp_path / "g.png")
    assert im.size == (5 * 30 + 2, 3 * 30 + 2)  # 5 seeds x 3 classes of 28 px, 2 px gutters


def test_generate_by_class_name_and_trunc(ckpt, tmp_path):
    assert generate_main([str(ckpt), "--seeds", "0-3", "--class", "b", "--trunc", "0.5",
                          "--out", str(tmp_path / "b.png")]) == 0
    assert Image.open(tmp_path / "b.png").size == (2 * 30 + 2, 2 * 30 + 2)


def test_generate_errors_exit_2(ckpt, tmp_path, capsys):
    assert generate_main([str(ckpt), "--class", "7", "--out", str(tmp_path / "x.png")]) == 2
    assert "out of range" in capsys.readouterr().err
    assert generate_main([str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.png")]) == 2


def test_generate_module_help():
    r = subprocess.run([sys.executable, "-m", "gan_models.generate", "--help"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0 and "--seeds" in r.stdout


def test_wheel_never_ships_a_top_level_nodes_module(tmp_path):
    """pip install -e . / pip install . must not put `nodes` on sys.path: ComfyUI has its own."""
    # setuptools builds in-tree (build/, *.egg-info): build from a copy so the checkout stays clean
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "weights",
                                                             "docs", "__pycache__", "bench"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("*.whl")
    tops = {n.split("/")[0] for n in zipfile.ZipFile(whl).namelist()}
    assert "gan_models" in tops and "nodes" not in tops and "tests" not in tops
    # data the library reads at run time ships with it (BigGAN's ImageNet class names)
    assert "gan_models/data/imagenet_classes.txt" in zipfile.ZipFile(whl).namelist()
