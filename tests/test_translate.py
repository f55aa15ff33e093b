"""translate(): ComfyUI images through a translator at any size, tiled within a memory budget."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import _nets

from gan_models.archs.translators import ResnetTranslator, UnetTranslator, Winograd3x3, inference_copy
from gan_models.translate import pad_to_multiple, translate

ROOT = Path(__file__).resolve().parents[1]


def randomize(net, seed=0, scale=0.15):
    return _nets.randomize(net, seed, weight_scale=scale, bias_scale=0.05)


def smooth_images(n, h, w, c=3, seed=0):
    """Photo-like test frames: low-frequency colour waves, NHWC in 0..1."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = []
    for _ in range(n):
        chans = []
        for k in range(c):
            a, b, p = (torch.rand(3, generator=g) * 6).tolist()
            chans.append(0.5 + 0.25 * torch.sin(a * xx * math.pi + p) * torch.cos(b * yy * math.pi)
                         + 0.2 * (xx - yy) * (k - 1))
        frames.append(torch.stack(chans, -1))
    return torch.stack(frames).clamp(0, 1)


@pytest.fixture(scope="module")
def resnet():
    return randomize(ResnetTranslator(ngf=4, n_blocks=1, norm="instance"))


def test_matches_a_direct_call_on_the_model(resnet):
    img = smooth_images(2, 64, 48)
    with torch.no_grad():
        ref = (resnet(img.permute(0, 3, 1, 2) * 2 - 1) + 1) / 2
    ref = ref.permute(0, 2, 3, 1)
    exact = translate(resnet, img, fast=False)
    assert exact.shape == img.shape
    assert (exact - ref).abs().max().item() < 1e-6
    # Winograd blocks: float rounding of the tile transforms only
    out = translate(resnet, img, fast=True)
    assert 0 < (out - ref).abs().max().item() < 2e-5
    # the CPU default: whichever of the paths ran fastest here, each within that rounding
    assert (translate(resnet, img) - ref).abs().max().item() < 2e-5


def test_winograd_conv_matches_direct_convolution():
    g = torch.Generator().manual_seed(0)
    for c, k, h, w, pad, bias in [(5, 7, 9, 13, 0, True), (16, 8, 17, 3, 1, False), (8, 8, 4, 4, 1, True),
                                  (3, 4, 1, 1, 1, True), (32, 32, 64, 48, 1, True)]:
        conv = torch.nn.Conv2d(c, k, 3, padding=pad, bias=bias)
        x = torch.randn(2, c, h, w, generator=g)
        with torch.no_grad():
            ref, y = conv(x), Winograd3x3(conv)(x)
        assert y.shape == ref.shape
        assert (y - ref).abs().max().item() < 1e-5 * ref.abs().max().item(), (c, k, h, w, pad)
    with pytest.raises(ValueError, match="3x3 stride-1"):
        Winograd3x3(torch.nn.Conv2d(4, 4, 3, stride=2))


def test_inference_copy_of_a_trained_size_resnet_stays_close():
    """ngf 64, 9 blocks, the CycleGAN default: 18 Winograd convolutions in a row."""
    T = randomize(ResnetTranslator(ngf=64, n_blocks=9), seed=2, scale=0.02)
    x = torch.rand(1, 3, 96, 80) * 2 - 1
    fast = inference_copy(T)
    assert sum(isinstance(m, Winograd3x3) for m in fast.modules()) == 18
    with torch.no_grad():
        d = (fast(x) - T(x)).abs().max().item()
    assert d < 1e-4
    assert not any(isinstance(m, Winograd3x3) for m in T.modules())  # the original is untouched


def test_non_square_and_odd_sizes_come_back_exactly(resnet):
    for h, w in [(300, 200), (7, 13), (1, 5)]:
        out = translate(resnet, smooth_images(1, h, w))
        assert out.shape == (1, h, w, 3)
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_unet_pads_far_beyond_the_image():
    # a 2**7 multiple for a 20x30 image: the pad is longer than the image, mirrored back and forth
    T = randomize(UnetTranslator(ngf=2, depth=7, norm="batch"))
    out = translate(T, smooth_images(1, 20, 30))
    assert out.shape == (1, 20, 30, 3)
    x = torch.arange(5.0).view(1, 1, 1, 5)
    xp, (top, left) = pad_to_multiple(x, 16)
    assert xp.shape[-2:] == (16, 16) and torch.equal(xp[..., top:top + 1, left:left + 5], x)
    assert xp[0, 0, top].tolist()[left - 3:left + 8] == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]


def test_strength_zero_returns_the_input_and_half_blends(resnet):
    img = smooth_images(2, 40, 36)
    assert torch.equal(translate(resnet, img, strength=0.0), img)
    full = translate(resnet, img)
    half = translate(resnet, img, strength=0.5)
    assert (half - (img + full) / 2).abs().max().item() < 1e-6


def test_tiled_against_untiled_is_bounded():
    """Tiles of 128 px (overlap 32) on a 384x320 frame against one pass. Batch norm: only the missing
    context at tile borders differs. Instance norm: tiles use the frame's statistics."""
    img = smooth_images(1, 384, 320, seed=3)
    means = {}
    for norm, max_bound, mean_bound in [("batch", 1e-3, 2e-5), ("instance", 0.6, 2e-2)]:
        T = randomize(ResnetTranslator(ngf=4, n_blocks=2, norm=norm), seed=1)
        full = translate(T, img)
        tiled = translate(T, img, max_tile=128, tile_overlap=32)
        d = (full - tiled).abs()
        print(f"{norm}: tiled vs untiled max {d.max():.2e} mean {d.mean():.2e}")
        assert d.max().item() < max_bound and d.mean().item() < mean_bound, norm
        means[norm] = d.mean().item()
    # the frame statistics matter: tiles normalised by their own statistics are much further off
    stats_off = translate(_HiddenNorms(T), img, max_tile=128, tile_overlap=32)
    off = (full - stats_off).abs().mean().item()
    print(f"instance, tile-local statistics: mean {off:.2e}")
    assert off > 3 * means["instance"]


class _HiddenNorms(torch.nn.Module):
    """T with its InstanceNorms invisible to translate(), so tiles fall back to their own statistics."""

    def __init__(self, T):
        super().__init__()
        self.__dict__["inner"] = T  # not a registered submodule
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.in_channels, self.img_channels, self.size_multiple = T.in_channels, T.img_channels, T.size_multiple
        self.activation_bytes = T.activation_bytes

    def forward(self, x):
        return self.inner(x)


def test_2048_frame_is_exact_size_and_peak_memory_stays_in_budget(tmp_path):
    """In a fresh process: a 2048^2 frame through a translator whose one-pass activations would need
    ~610 MB by its estimate (~305 MB measured), with a 64 MB budget. Peak RSS growth must stay under the budget plus
    four frame-sized float buffers (input copy, accumulator, weights, result: 4*H*W*3 bytes = 48 MB each)
    and 32 MB of slack."""
    script = textwrap.dedent(f"""
        import json, resource, sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        from gan_models.archs.translators import ResnetTranslator
        from gan_models.translate import translate
        torch.set_num_threads(2)
        T = ResnetTranslator(ngf=8, n_blocks=1, norm="instance").eval()
        img = torch.rand(1, 2048, 2048, 3)
        translate(T, img[:, :256, :256])  # warm up oneDNN and the allocator
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out = translate(T, img, memory_budget_mb=64)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(dict(shape=list(out.shape), growth=after - before,
                              untiled_estimate=T.activation_bytes(2048, 2048))))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert r["shape"] == [1, 2048, 2048, 3]
    frame = 4 * 2048 * 2048 * 3
    bound = 64 * 2**20 + 4 * frame + 32 * 2**20  # + allocator and oneDNN workspace slack
    print(f"2048^2: peak RSS growth {r['growth'] / 2**20:.0f} MB, bound {bound / 2**20:.0f} MB, "
          f"untiled estimate {r['untiled_estimate'] / 2**20:.0f} MB")
    assert r["growth"] < bound < r["untiled_estimate"]


def test_process_resolution_runs_smaller_and_returns_the_input_size(resnet):
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.T = resnet
            self.in_channels, self.img_channels, self.size_multiple = 3, 3, 4

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return self.T(x)

    out = translate(Spy(), smooth_images(1, 200, 300), process_resolution=100, fast=False)
    assert out.shape == (1, 200, 300, 3)
    assert seen == [(68, 100)]  # 67x100 reflect-padded to a multiple of 4


def test_chunks_report_progress_and_can_be_interrupted(resnet):
    img = smooth_images(10, 16, 16)
    calls, checks = [], []
    out = translate(resnet, img, chunk=4, progress=lambda d, t: calls.append((d, t)),
                    check_interrupt=lambda: checks.append(1))
    assert calls == [(4, 10), (8, 10), (10, 10)] and len(checks) == 3
    # frames do not influence each other: chunking changes nothing
    one = translate(resnet, img, chunk=1)
    assert (out - one).abs().max().item() < 1e-5

    class Stop(Exception):
        pass

    def interrupt():
        if len(calls) >= 4:
            raise Stop
    with pytest.raises(Stop):
        translate(resnet, img, chunk=4, progress=lambda d, t: calls.append((d, t)), check_interrupt=interrupt)


def test_channel_mismatches(resnet):
    rgba = torch.cat([smooth_images(1, 32, 32), torch.rand(1, 32, 32, 1)], -1)
    out = translate(resnet, rgba)
    assert out.shape == rgba.shape and torch.equal(out[..., 3], rgba[..., 3])
    assert (out[..., :3] - translate(resnet, rgba[..., :3])).abs().max().item() < 1e-6
    gray = smooth_images(1, 32, 32, c=1)
    out = translate(resnet, gray)  # gray repeated to RGB for an RGB model; the result is RGB
    assert out.shape == (1, 32, 32, 3)
    assert (out - translate(resnet, gray.expand(-1, -1, -1, 3))).abs().max().item() < 1e-6
    mono = randomize(ResnetTranslator(in_channels=1, out_channels=1, ngf=4, n_blocks=1))
    rgb = smooth_images(1, 32, 32)
    out = translate(mono, rgb)  # RGB to luma for a grayscale model, the gray result shown as RGB
    assert out.shape == (1, 32, 32, 3) and torch.equal(out[..., 0], out[..., 2])
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114])).sum(-1, keepdim=True)
    assert (out[..., :1] - translate(mono, luma)).abs().max().item() < 1e-6
    with pytest.raises(ValueError, match="channels"):
        translate(resnet, torch.rand(1, 8, 8, 5))


def test_a_noise_generator_is_refused(resnet):
    class G(torch.nn.Module):
        kind, arch_name = "generator", "dcgan"

    with pytest.raises(TypeError, match="noise-to-image generator"):
        translate(G(), smooth_images(1, 8, 8))
    with pytest.raises(ValueError, match="N, H, W, C"):
        translate(resnet, torch.rand(8, 8, 3))
    with pytest.raises(ValueError, match="strength"):
        translate(resnet, smooth_images(1, 8, 8), strength=1.5)


def test_prepared_copies_follow_in_place_weight_changes(monkeypatch):
    from gan_models import autotune
    monkeypatch.setattr(autotune, "fastest", lambda key, candidates, repeats=2: "winograd")
    autotune.forget()
    T = randomize(ResnetTranslator(ngf=4, n_blocks=1, norm="instance"))
    img = smooth_images(1, 32, 32)
    a = translate(T, img)
    assert translate(T, img).equal(a)  # the kept Winograd copy
    with torch.no_grad():
        list(T.parameters())[-2].mul_(1.5)  # the output conv: an InstanceNorm would undo an earlier one
    b, ref = translate(T, img), translate(T, img, fast=False)
    autotune.forget()
    assert (a - b).abs().max() > 1e-3 and 0 < (b - ref).abs().max() < 2e-5


def test_command_line_translates_files_and_folders(tmp_path):
    from PIL import Image

    from gan_models import DEFAULT_CHECKPOINT
    from gan_models.translate import main

    ckpt = DEFAULT_CHECKPOINT.parent / "emoji_noto2openmoji.safetensors"
    frames = tmp_path / "frames"
    frames.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        Image.fromarray((torch.rand(24, 20, 3, generator=g) * 255).byte().numpy()).save(frames / f"f{i}.png")
    Image.fromarray((torch.rand(17, 13, 4, generator=g) * 255).byte().numpy()).save(tmp_path / "cut.png")
    out = tmp_path / "out"
    assert main([str(ckpt), str(frames), str(tmp_path / "cut.png"), "--out", str(out), "--chunk", "2",
                 "--no-progress", "--strength", "0.5"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cut.png", "f0.png", "f1.png", "f2.png"]
    with Image.open(out / "cut.png") as im:  # size and alpha kept
        assert im.size == (13, 17) and im.mode == "RGBA"
    # the same as the node's function on the same pixels
    from gan_models import load_generator
    from gan_models.translate import _read
    ref = translate(load_generator(ckpt), _read(frames / "f1.png"), strength=0.5)
    got = _read(out / "f1.png")
    assert (got - ref).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("args, message", [
    (["{gen}", "{img}", "--out", "{tmp}/o"], "noise-to-image generator"),
    (["{tr}", "{tmp}/missing", "--out", "{tmp}/o"], "no such file or folder"),
    (["{tr}", "{img}", "--out", "{tmp}"], "replace its own input"),
    (["{tr}", "{img}", "--out", "{tmp}/o", "--ext", ".xyz"], "not an image format"),
    (["{tr}", "{tmp}/empty", "--out", "{tmp}/o"], "no images in this folder"),
])
def test_command_line_refuses_by_name(tmp_path, capsys, args, message):
    from PIL import Image

    from gan_models import DEFAULT_CHECKPOINT
    from gan_models.translate import main

    (tmp_path / "empty").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    names = {"gen": DEFAULT_CHECKPOINT, "tr": DEFAULT_CHECKPOINT.parent / "emoji_noto2openmoji.safetensors",
             "img": tmp_path / "a.png", "tmp": tmp_path}
    assert main([a.format(**names) for a in args] + ["--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_a_translator_loaded_under_inference_mode_runs(resnet):
    """ComfyUI runs nodes under torch.inference_mode(): parameters made there keep no version counter."""
    with torch.inference_mode():
        T = ResnetTranslator(ngf=4, n_blocks=1, norm="instance")
        T.load_state_dict(resnet.state_dict())
        img = smooth_images(1, 24, 24)
        out = translate(T, img)
    assert (out - translate(resnet, img, fast=False)).abs().max() < 2e-5
