"""The checkpoints shipped in weights/: each loads, runs with the NVlabs-style call, has its model card,
and the folder stays a quick clone."""
import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

import gan_models
from gan_models import latents as L
from gan_models.generate import synthesize
from gan_models.translate import translate
import _nets

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
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if net.kind == "translator":
            x = torch.rand(2, net.in_channels, 40, 52, generator=g) * 2 - 1
            y = net(x)
            assert y.shape == (2, net.img_channels, 40, 52)
        else:
            z = torch.randn(3, net.z_dim, generator=g)
            c = torch.eye(net.c_dim)[[0, 1, 2]] if net.c_dim else None
            y = net(z, c, truncation_psi=1, noise_mode="const")
            assert y.shape == (3, net.img_channels, net.img_resolution, net.img_resolution)
            assert y[0].sub(y[1]).abs().max() > 1e-3  # distinct z's give distinct images
    assert torch.isfinite(y).all()
    if net.arch_name == "stylegan2":
        # NVlabs' synthesis ends in a linear toRGB, not tanh: [-1, 1] is nominal and callers clamp. The
        # emoji model overshoots its white background: over 500 samples at psi 1, by 0.04 on average
        # and 0.56 for the worst image; a blown-up layer would overshoot by far more
        assert float((y.abs() - 1).clamp(min=0).mean()) < 0.25
    else:
        assert y.min() >= -1 and y.max() <= 1


def outputs(net) -> torch.Tensor:
    """What the nodes hand ComfyUI: images through synthesize() or translate(), float32 on the CPU."""
    if net.kind == "translator":
        return translate(net, torch.rand(2, 48, 40, net.in_channels, generator=torch.Generator().manual_seed(0)))
    return synthesize(net, L.sample(net, list(range(6)), "random" if net.c_dim else None), 0.8)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch: the same on the GPU")


# Mean and largest absolute difference (generators' [-1, 1], translators' 0..1) from float32 on the
# CPU, for each device and dtype the loader node offers. float16 keeps 11 significant bits and
# bfloat16 8 (5e-4 and 4e-3 of relative error a rounding), and a dozen layers add their errors up;
# observed on the CPU: at most 6e-4 / 1.4e-2 (float16) and 3.2e-3 / 1.3e-1 (bfloat16). A wrong or
# skipped layer is off by a tenth of the range or more.
@pytest.mark.parametrize("device, dtype, mean_tol, max_tol", [
    ("cpu", torch.float16, 5e-3, 0.1), ("cpu", torch.bfloat16, 3e-2, 0.5),
    pytest.param("cuda", torch.float32, 1e-5, 1e-3, marks=CUDA),
    pytest.param("cuda", torch.float16, 5e-3, 0.1, marks=CUDA),
    pytest.param("cuda", torch.bfloat16, 3e-2, 0.5, marks=CUDA)])
@pytest.mark.parametrize("path", WEIGHTS, ids=[p.stem for p in WEIGHTS])
def test_shipped_weights_in_each_precision_match_float32(path, device, dtype, mean_tol, max_tol):
    want = outputs(gan_models.load_generator(path))
    with _nets.no_tf32():
        got = outputs(gan_models.load_generator(path, device=device, dtype=dtype))
    assert got.device.type == "cpu" and got.dtype == torch.float32  # ComfyUI's IMAGE lives on the CPU
    err = (got - want).abs()
    assert float(err.mean()) < mean_tol and float(err.max()) < max_tol, (float(err.mean()), float(err.max()))


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


def test_emoji_groups_label_noto_glyphs_by_unicode_group():
    """Class labels for a conditional emoji model: each Noto glyph's Unicode emoji group, found
    through the font's ligatures for sequences whatever order the font keeps them in."""
    fonttools = pytest.importorskip("fontTools.ttLib", reason="fonttools is not installed: pip install fonttools")
    mod = _make_emoji_data()
    if not mod.NOTO_FONT.is_file() or not mod.EMOJI_TEST.is_file():
        pytest.skip("needs apt-get install fonts-noto-color-emoji unicode-data")
    seqs = mod.glyph_sequences(fonttools.TTFont(str(mod.NOTO_FONT)))
    by_seq, single = mod.emoji_groups()
    by_cps = {cps: name for name, cps in seqs.items()}
    grin = by_cps[(0x1F600,)]
    assert mod.group_of(seqs[grin], by_seq, single) == "Smileys & Emotion"
    # a woman golfing, medium skin tone (a ZWJ sequence): People & Body, not the golf flag's Activities
    golfer = next(n for n, cps in seqs.items() if set(cps) >= {0x1F3CC, 0x200D, 0x2640, 0x1F3FD})
    assert mod.group_of(seqs[golfer], by_seq, single) == "People & Body"
    flag = next(n for n, cps in seqs.items() if len(cps) == 2 and all(0x1F1E6 <= c <= 0x1F1FF for c in cps))
    assert mod.group_of(seqs[flag], by_seq, single) == "Flags"
    assert mod.group_of((0x1F1EB,), by_seq, single) is None  # a lone regional letter is no emoji
