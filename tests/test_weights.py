"""The checkpoints shipped in weights/: each loads, runs with the NVlabs-style call, has its model card,
and the folder stays a quick clone."""
import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

import gan_models

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = sorted((ROOT / "weights").glob("*.safetensors"))


def test_weights_folder_is_small_and_every_checkpoint_has_a_card():
    names = {p.name for p in WEIGHTS}
    assert {"fashion_mnist_cdcgan.safetensors", "emoji_noto2openmoji.safetensors",
            "emoji_stylegan2.safetensors"} <= names
    assert sum(p.stat().st_size for p in (ROOT / "weights").iterdir()) < 60 * 2**20
    for p in WEIGHTS:
        card = p.with_suffix(".md")
        assert card.is_file() and p.stem in card.read_text(), card


@pytest.mark.parametrize("path", WEIGHTS, ids=[p.stem for p in WEIGHTS])
def test_shipped_checkpoint_loads_and_runs(path):
    net = gan_models.load_generator(path)
    assert net.meta.get("source", {}).get("type") == "train"  # trained here by gan_models.train
    with torch.no_grad():
        if net.kind == "translator":
            x = torch.rand(2, net.in_channels, 40, 52) * 2 - 1
            y = net(x)
            assert y.shape == (2, net.img_channels, 40, 52)
        else:
            z = torch.randn(3, net.z_dim)
            c = torch.eye(net.c_dim)[[0, 1, 2]] if net.c_dim else None
            y = net(z, c, truncation_psi=1, noise_mode="const")
            assert y.shape == (3, net.img_channels, net.img_resolution, net.img_resolution)
            assert y[0].sub(y[1]).abs().max() > 1e-3  # distinct z's give distinct images
    assert torch.isfinite(y).all()
    if net.arch_name == "stylegan2":
        # NVlabs' synthesis ends in a linear toRGB, not tanh: [-1, 1] is nominal, callers clamp
        assert y.abs().max() < 2
    else:
        assert y.min() >= -1 and y.max() <= 1


def test_emoji_stylegan2_is_style_based_64px_rgb():
    G = gan_models.load_generator(ROOT / "weights" / "emoji_stylegan2.safetensors")
    assert (G.img_resolution, G.img_channels, G.c_dim) == (64, 3, 0)
    ws = G.mapping(torch.randn(2, G.z_dim), None, truncation_psi=0.7)
    assert ws.shape == (2, G.num_ws, G.w_dim)
    with torch.no_grad():
        assert G.synthesis(ws, noise_mode="const").shape == (2, 3, 64, 64)


def _make_emoji_data():
    spec = importlib.util.spec_from_file_location("make_emoji_data", ROOT / "scripts" / "make_emoji_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_noto_bitmaps_reads_the_cbdt_table(tmp_path):
    """The StyleGAN2 training data: colour bitmaps straight from the font, fitted on white."""
    pytest.importorskip("fontTools", reason="fonttools is not installed: pip install fonttools")
    mod = _make_emoji_data()
    if not mod.NOTO_FONT.is_file():
        pytest.skip(f"{mod.NOTO_FONT} not found: apt-get install fonts-noto-color-emoji")
    first = list(itertools.islice(mod.noto_bitmaps(mod.NOTO_FONT, 64, 56), 5))
    assert len(first) == 5 and len({n for n, _ in first}) == 5
    for _, im in first:
        assert im.size == (64, 64) and im.mode == "RGB"
        px = im.load()
        assert px[0, 0] == (255, 255, 255)  # the margin is white
        assert len(im.getcolors(64 * 64)) > 10  # the emoji is drawn in colour
