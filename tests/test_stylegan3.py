"""StyleGAN3 (configs T and R): upstream conformance, state-dict inference, resampling ops, errors."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import gan_models
from gan_models import registry
from gan_models.archs import stylegan3 as sg3
from gan_models.checkpoint import CheckpointError

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "upstream"
SG3T = FIXTURES / "sg3t_r32_map2"
TOL = 1e-5


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"upstream fixtures not found at {folder} (they live beside the repo in shared/)")
    return folder


@pytest.fixture(scope="module")
def sg3t():
    d = _need(SG3T)
    manifest = json.loads((d / "manifest.json").read_text())
    return dict(sd=load_file(d / "G_ema.safetensors"), inputs=load_file(d / "inputs.safetensors"),
                expected=load_file(d / "expected.safetensors"), manifest=manifest,
                init_kwargs=manifest["config"]["G_init_kwargs_as_pickled"])


def _run_manifest_calls(G, inputs) -> dict:
    """Every call of the fixture's manifest.json, in its words."""
    z, out = inputs["z"], {}
    with torch.no_grad():
        out["ws"] = G.mapping(z, None)
        out["ws_psi07"] = G.mapping(z, None, truncation_psi=0.7)
        out["img_psi1"] = G(z, None, truncation_psi=1, noise_mode="const")
        out["img_psi07"] = G(z, None, truncation_psi=0.7, noise_mode="const")
        out["img_psi07_cutoff"] = G(z, None, truncation_psi=0.7, truncation_cutoff=8, noise_mode="const")
        out["ws2"] = G.mapping(inputs["z2"], None)
        out["img_mix"] = G.synthesis(torch.cat([out["ws"][:, :7], out["ws2"][:, 7:]], dim=1),
                                     noise_mode="const")
        out["img_ws_rand"] = G.synthesis(inputs["ws_rand"], noise_mode="const")
        G.synthesis.input.transform.copy_(inputs["transform"])
        out["img_transform"] = G(z, None, truncation_psi=1, noise_mode="const")
        G.synthesis.input.transform.copy_(torch.eye(3))
    return out


def _check_all(out, expected):
    assert set(expected) <= set(out), sorted(set(expected) - set(out))
    errs = {k: (out[k] - expected[k]).abs().max().item() for k in expected}
    for k in expected:
        assert out[k].shape == expected[k].shape, k
    assert max(errs.values()) < TOL, errs


@pytest.mark.parametrize("with_meta", [True, False], ids=["init_kwargs", "no_meta"])
def test_upstream_fixture_config_t(sg3t, with_meta):
    meta = {"init_kwargs": sg3t["init_kwargs"]} if with_meta else {}
    G = registry.build(sg3t["sd"], meta).eval()
    assert G.arch_name == "stylegan3" and G.kind == "generator"
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (64, 0, 64, 16, 32, 3)
    assert torch.equal(G.mapping.w_avg, sg3t["inputs"]["w_avg"])
    assert G.synthesis.input.transform.shape == (3, 3)
    _check_all(_run_manifest_calls(G, sg3t["inputs"]), sg3t["expected"])
    # the user transform really moves the image, and was restored
    assert (sg3t["expected"]["img_transform"] - sg3t["expected"]["img_psi1"]).abs().max() > 1e-3
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))


def test_load_generator_plain_safetensors(sg3t):
    G = gan_models.load_generator(SG3T / "G_ema.safetensors")
    assert G.arch_name == "stylegan3" and not G.training
    with torch.no_grad():
        img = G(sg3t["inputs"]["z"], truncation_psi=0.7, truncation_cutoff=8)
    assert (img - sg3t["expected"]["img_psi07_cutoff"]).abs().max() < TOL


def test_fresh_build_designs_upstream_filters(sg3t):
    """Built from upstream's constructor arguments alone, the network has upstream's layer names,
    buffer shapes and filter taps (our Kaiser/firwin re-derivation against scipy's)."""
    G = sg3.Generator(**sg3t["init_kwargs"])
    sd = G.state_dict()
    assert set(sd) == set(sg3t["sd"])
    for k, v in sg3t["sd"].items():
        assert sd[k].shape == v.shape, k
        if k.endswith("_filter"):
            assert (sd[k] - v).abs().max() < 1e-7, k
    # and the geometry read back from shapes is the one the schedule designed
    H = sg3.Generator.from_state_dict(sg3t["sd"])
    assert G.synthesis.layer_names == H.synthesis.layer_names
    for name in G.synthesis.layer_names:
        a, b = getattr(G.synthesis, name), getattr(H.synthesis, name)
        for attr in ("in_size", "out_size", "in_sampling_rate", "out_sampling_rate", "up_factor",
                     "down_factor", "padding", "conv_kernel", "down_radial", "use_fp16"):
            assert getattr(a, attr) == getattr(b, attr), (name, attr)
    assert G.synthesis.input.sampling_rate == H.synthesis.input.sampling_rate
    assert G.synthesis.input.size == H.synthesis.input.size


def test_radial_filter_design():
    f = sg3.design_lowpass_filter(12, cutoff=10.0, width=8.0, fs=64, radial=True)
    assert f.shape == (12, 12)
    assert torch.allclose(f, f.t()) and torch.allclose(f, f.flip(0, 1))
    assert abs(f.sum().item() - 1) < 1e-6
    assert sg3.design_lowpass_filter(1, 1.0, 1.0, 4) is None


def test_detect_does_not_confuse_stylegan2(sg3t):
    assert registry.detect(sg3t["sd"]).name == "stylegan3"
    sg2 = FIXTURES / "sg2ada_r32_map8" / "G_ema.safetensors"
    ros = FIXTURES / "rosinality_s32_mlp8_cm2" / "g_ema.safetensors"
    for path in (sg2, ros):
        if path.is_file():
            assert sg3._detect(registry.canonicalize(load_file(path)), {}) == 0, path.name
    if "stylegan2" in registry.architectures():
        assert registry.get("stylegan2").detect(sg3t["sd"], {}) == 0
    with pytest.raises(CheckpointError, match="do not match"):
        registry.detect(sg3t["sd"], {"arch": "stylegan2"} if "stylegan2" in registry.architectures()
                        else {"arch": "dcgan"})


# --------------------------------------------------------------------------------------------------
# Resampling: the fast path against the definition (zero-stuff, pad/crop, true convolution, decimate).


def _upfirdn2d_naive(x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    z = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    z[:, :, ::up, ::up] = x
    z = F.pad(z, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    z = z[:, :, max(-py0, 0): z.shape[2] - max(-py1, 0), max(-px0, 0): z.shape[3] - max(-px1, 0)]
    if f is None:
        f = torch.ones(1, 1)
    f2 = torch.outer(f, f) if f.ndim == 1 else f
    f2 = (f2 * gain).to(x.dtype)
    y = F.conv2d(z.reshape(n * c, 1, *z.shape[2:]), f2.flip(0, 1)[None, None])
    return y.reshape(n, c, *y.shape[2:])[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,padding,taps,radial", [
    (2, 1, (7, 6, 7, 6), 12, False),
    (4, 1, (3, -2, 5, 0), 24, False),
    (1, 2, (0, 0, 0, 0), 12, False),
    (1, 2, (0, 0, 0, 0), 12, True),
    (1, 3, (1, 2, 0, 1), 9, True),
    (2, 2, (-1, 3, 2, -3), 8, False),
    (3, 1, (0, 0, 0, 0), 1, False),
    (2, 1, (1, 2, 3, 0), 6, True),
])
def test_upfirdn2d_matches_definition(up, down, padding, taps, radial):
    g = torch.Generator().manual_seed(up * 100 + down * 10 + taps)
    x = torch.randn(2, 3, 17, 19, generator=g, dtype=torch.float64)
    f = None if taps == 1 else torch.randn([taps, taps] if radial else [taps], generator=g, dtype=torch.float64)
    got = sg3.upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up ** 2)
    want = _upfirdn2d_naive(x, f, up=up, down=down, padding=padding, gain=up ** 2)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-10


def test_filtered_lrelu_matches_definition():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 4, 10, 10, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    fu, fd = torch.randn(24, generator=g, dtype=torch.float64), torch.randn(12, 12, generator=g, dtype=torch.float64)
    pad = (13, 10, 13, 10)
    got = sg3.filtered_lrelu(x, fu, fd, b, up=4, down=2, padding=pad, gain=math.sqrt(2), slope=0.2, clamp=0.7)
    y = _upfirdn2d_naive(x + b.view(1, -1, 1, 1), fu, up=4, padding=pad, gain=16)
    y = (F.leaky_relu(y, 0.2) * math.sqrt(2)).clamp(-0.7, 0.7)
    want = _upfirdn2d_naive(y, fd, down=2)
    assert got.shape == want.shape and (got - want).abs().max() < 1e-10
    unclamped = sg3.filtered_lrelu(x, fu, fd, b, up=4, down=2, padding=pad)
    assert (unclamped - got).abs().max() > 0.1  # the clamp was exercised


# --------------------------------------------------------------------------------------------------
# Configurations beyond the fixture: a fresh random network must read back from its bare state dict.

CONFIGS = {
    "R_32_uncond": dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3,
                        channel_base=256, channel_max=8, conv_kernel=1, use_radial_filters=True),
    "T_64_cond_map4": dict(z_dim=6, c_dim=4, w_dim=10, img_resolution=64, img_channels=3,
                           channel_base=128, channel_max=6, mapping_kwargs=dict(num_layers=4)),
    "R_16_cond_gray_L6": dict(z_dim=4, c_dim=3, w_dim=4, img_resolution=16, img_channels=1,
                              channel_base=64, channel_max=4, num_layers=6, margin_size=4,
                              conv_kernel=1, use_radial_filters=True, mapping_kwargs=dict(num_layers=1)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fresh_network_reads_back_from_state_dict(name, tmp_path):
    kw = CONFIGS[name]
    torch.manual_seed(0)
    G = sg3.Generator(**kw).eval()
    with torch.no_grad():  # give the buffers a non-trivial state, as training would
        for n, b in G.named_buffers():
            if n.endswith("magnitude_ema"):
                b.fill_(0.5 + torch.rand([]).item())
    sd = G.state_dict()
    is_r = kw.get("conv_kernel") == 1
    assert any(v.ndim == 2 for k, v in sd.items() if k.endswith("down_filter")) == is_r
    H = registry.build(sd, {})
    assert (H.z_dim, H.c_dim, H.w_dim, H.num_ws, H.img_resolution, H.img_channels) == \
        (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels)
    assert H.mapping.num_layers == kw.get("mapping_kwargs", {}).get("num_layers", 2)
    z = torch.randn(2, kw["z_dim"])
    c = F.one_hot(torch.tensor([0, kw["c_dim"] - 1]), kw["c_dim"]).float() if kw["c_dim"] else None
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.8)
        assert img.shape == (2, kw["img_channels"], kw["img_resolution"], kw["img_resolution"])
        assert torch.isfinite(img).all() and img.std() > 0
        assert torch.equal(H(z, c, truncation_psi=0.8), img)
        if c is not None:  # the label matters
            assert not torch.allclose(G(z, c.flip(0)), G(z, c))
    # through the file format too, with the description save_generator writes
    gan_models.save_generator(tmp_path / "g.safetensors", G)
    L = gan_models.load_generator(tmp_path / "g.safetensors")
    with torch.no_grad():
        assert torch.equal(L(z, c, truncation_psi=0.8), img)


def test_settings_shapes_cannot_show_come_from_the_description(tmp_path):
    kw = dict(z_dim=4, c_dim=0, w_dim=4, img_resolution=16, img_channels=3, channel_base=64,
              channel_max=4, output_scale=1.0, conv_clamp=0.05, first_cutoff=1.5)
    torch.manual_seed(1)
    G = sg3.Generator(**kw).eval()
    z = torch.randn(2, 4)
    with torch.no_grad():
        want = G(z)
        assert torch.equal(registry.build(G.state_dict(), {"init_kwargs": G.meta["init_kwargs"]})(z), want)
        # without them, upstream's defaults (output_scale 0.25, conv_clamp 256) give another image
        assert not torch.allclose(registry.build(G.state_dict(), {})(z), want)
    assert want.abs().max() <= 0.05 + 1e-7  # conv_clamp acted on the ToRGB output


# --------------------------------------------------------------------------------------------------
# Errors.


def test_bad_inputs_say_what_is_wrong(sg3t):
    G = registry.build(sg3t["sd"], {})
    with pytest.raises(ValueError, match=r"z must be \[N, 64\]"):
        G(torch.randn(2, 63))
    with pytest.raises(ValueError, match=r"ws must be \[N, 16, 64\]"):
        G.synthesis(torch.randn(2, 15, 64))
    with pytest.raises(ValueError, match="noise_mode"):
        G(torch.randn(2, 64), noise_mode="bogus")
    torch.manual_seed(0)
    C = sg3.Generator(**CONFIGS["T_64_cond_map4"])
    with pytest.raises(ValueError, match="conditional"):
        C(torch.randn(2, 6))


def test_bad_state_dicts_are_refused(sg3t):
    sd = dict(sg3t["sd"])
    with pytest.raises(CheckpointError, match="z_dim=32"):
        registry.build(sd, {"init_kwargs": {**sg3t["init_kwargs"], "z_dim": 32}})
    with pytest.raises(CheckpointError, match="use_radial_filters"):
        registry.build(sd, {"init_kwargs": {**sg3t["init_kwargs"], "use_radial_filters": True}})
    with pytest.raises(CheckpointError, match="unknown constructor arguments"):
        registry.build(sd, {"init_kwargs": {"not_an_argument": 1}})
    gap = {k: v for k, v in sd.items() if not k.startswith("synthesis.L3_")}
    with pytest.raises(CheckpointError, match="L0..LN"):
        registry.build(gap, {})
    missing = {k: v for k, v in sd.items() if k != "synthesis.L5_52_32.bias"}
    with pytest.raises(CheckpointError, match="missing"):
        registry.build(missing, {"arch": "stylegan3"})


# --------------------------------------------------------------------------------------------------
# The NVlabs training snapshot, through the project's converter.


def test_convert_nvlabs_pickle(sg3t, tmp_path):
    pytest.importorskip("gan_models.convert.nvlabs", reason="NVlabs converter not in this checkout yet")
    from gan_models.convert import convert_file

    meta = convert_file(SG3T / "network-snapshot-000000.src-stripped.pkl", tmp_path / "sg3.safetensors")
    assert meta["arch"] == "stylegan3"
    G = gan_models.load_generator(tmp_path / "sg3.safetensors")
    assert G.meta.get("init_kwargs", {}).get("channel_max") == 32  # upstream's arguments kept
    with torch.no_grad():  # one image tells G_ema from the pickle's other generator G
        img = G(sg3t["inputs"]["z"], None)
    assert (img - sg3t["expected"]["img_psi1"]).abs().max() < TOL
