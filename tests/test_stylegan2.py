"""StyleGAN2: conformance with NVlabs stylegan2-ada-pytorch and rosinality/stylegan2-pytorch outputs
(fixtures made by the upstream code), and the loader's behaviour on the shapes it reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gan_models
from gan_models import CheckpointError, load_generator, registry, save_generator
from gan_models.archs.stylegan2 import Generator, config_from_state_dict
from gan_models.convert import convert_file

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "upstream"
ATOL = 1e-5


def fixture(name: str) -> Path:
    d = FIXTURES / name
    if not (d / "manifest.json").is_file():
        pytest.skip(f"upstream fixture {name} not present (needs ../shared/fixtures beside the repo)")
    return d


def assert_close(name, got, want, atol=ATOL):
    assert got.shape == want.shape, f"{name}: shape {list(got.shape)} != {list(want.shape)}"
    err = (got.float() - want.float()).abs().max().item()
    assert err <= atol, f"{name}: max abs error {err:.3g} > {atol}"


# ---------------------------------------------------------------------------------------------------
# NVlabs stylegan2-ada-pytorch

@pytest.fixture(scope="module")
def sg2ada(tmp_path_factory):
    d = fixture("sg2ada_r32_map8")
    out = tmp_path_factory.mktemp("sg2ada") / "g.safetensors"
    meta = convert_file(d / "network-snapshot-000000.src-stripped.pkl", out)
    return d, out, meta


def test_nvlabs_convert_meta(sg2ada):
    d, out, meta = sg2ada
    manifest = json.loads((d / "manifest.json").read_text())
    assert meta["arch"] == "stylegan2" and meta["kind"] == "generator"
    assert meta["init_kwargs"] == manifest["config"]["G_init_kwargs_as_pickled"]
    assert meta["source"]["network"] == "G_ema" and meta["source"]["converter"] == "nvlabs"
    assert (meta["z_dim"], meta["c_dim"], meta["w_dim"], meta["num_ws"], meta["img_resolution"]) == \
        (64, 0, 64, 8, 32)


def test_nvlabs_converted_weights_are_g_ema_not_g(sg2ada):
    d, out, _ = sg2ada
    got = load_file(out)
    want = load_file(d / "G_ema.safetensors")
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_nvlabs_conformance(sg2ada):
    d, out, _ = sg2ada
    x, e = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    G = load_generator(out)
    assert G.arch_name == "stylegan2" and G.kind == "generator"
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (64, 0, 64, 8, 32, 3)
    assert_close("w_avg", G.w_avg, x["w_avg"], 0)
    with torch.no_grad():
        ws = G.mapping(x["z"], None)
        assert_close("ws", ws, e["ws"])
        assert_close("ws_psi07", G.mapping(x["z"], None, truncation_psi=0.7), e["ws_psi07"])
        assert_close("img_psi1", G(x["z"], None, truncation_psi=1, noise_mode="const"), e["img_psi1"])
        assert_close("img_psi07", G(x["z"], None, truncation_psi=0.7, noise_mode="const"), e["img_psi07"])
        assert_close("img_psi07_cutoff", G(x["z"], None, truncation_psi=0.7, truncation_cutoff=4,
                                           noise_mode="const"), e["img_psi07_cutoff"])
        ws2 = G.mapping(x["z2"], None)
        assert_close("ws2", ws2, e["ws2"])
        assert_close("img_mix", G.synthesis(torch.cat([ws[:, :3], ws2[:, 3:]], dim=1), noise_mode="const"),
                     e["img_mix"])
        assert_close("img_ws_rand", G.synthesis(x["ws_rand"], noise_mode="const"), e["img_ws_rand"])
        assert_close("img_noise_none", G(x["z"], None, noise_mode="none"), e["img_noise_none"])


def test_nvlabs_unfused_and_separable_paths_agree(sg2ada):
    d, out, _ = sg2ada
    x, e = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    G = load_generator(out)
    with torch.no_grad():
        img = G(x["z"], fused_modconv=False, separable=True)
        fast = G(x["z"], truncation_psi=0.7, fused_modconv=False, channels_last=True)
        fast_none = G(x["z"], noise_mode="none", fused_modconv=False, channels_last=True)
    assert_close("img_psi1 (unfused, separable)", img, e["img_psi1"])
    assert_close("img_psi07 (fast CPU path)", fast, e["img_psi07"])
    assert_close("img_noise_none (fast CPU path)", fast_none, e["img_noise_none"])


def test_plain_nvlabs_state_dict_loads_without_meta(tmp_path):
    d = fixture("sg2ada_r32_map8")
    x, e = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    G = load_generator(d / "G_ema.safetensors")
    with torch.no_grad():
        assert_close("img_psi07", G(x["z"], truncation_psi=0.7), e["img_psi07"])


# ---------------------------------------------------------------------------------------------------
# rosinality/stylegan2-pytorch

@pytest.fixture(scope="module")
def rosinality(tmp_path_factory):
    d = fixture("rosinality_s32_mlp8_cm2")
    out = tmp_path_factory.mktemp("rosinality") / "g.safetensors"
    meta = convert_file(d / "checkpoint.pt", out)
    return d, out, meta


def test_rosinality_conformance(rosinality):
    d, out, meta = rosinality
    assert meta["arch"] == "stylegan2" and meta["source"]["converter"] == "rosinality"
    assert meta["source"]["w_avg"] == "latent_avg"
    x, e = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    G = load_generator(out)
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution) == (64, 64, 8, 32)
    assert_close("latent_avg", G.w_avg, x["latent_avg"], 0)
    with torch.no_grad():
        ws = G.mapping(x["z"])
        assert_close("w", ws[:, 0], e["w"])
        assert_close("latents_psi1", ws, e["latents_psi1"])
        assert_close("img_psi1", G(x["z"]), e["img_psi1"])
        wt = G.mapping(x["z"], truncation_psi=0.7)
        assert_close("latents_psi07", wt, e["latents_psi07"])
        assert_close("img_psi07", G(x["z"], truncation_psi=0.7), e["img_psi07"])
        ws2, wt2 = G.mapping(x["z2"]), G.mapping(x["z2"], truncation_psi=0.7)
        mix = torch.cat([ws[:, :3], ws2[:, 3:]], dim=1)
        assert_close("latents_mix", mix, e["latents_mix"])
        assert_close("img_mix", G.synthesis(mix), e["img_mix"])
        assert_close("img_mix_psi07", G.synthesis(torch.cat([wt[:, :3], wt2[:, 3:]], dim=1)), e["img_mix_psi07"])
        assert_close("img_wplus", G.synthesis(x["w_plus"]), e["img_wplus"])
        w = e["w"]
        assert_close("img_w", G.synthesis(w.unsqueeze(1).repeat(1, G.num_ws, 1)), e["img_w"])
        noise = [x[f"noise_{i}"] for i in range(7)]
        assert [tuple(n.shape) for n in noise] == G.synthesis.noise_shapes()
        assert_close("img_explicit_noise", G(x["z"], noise=noise), e["img_explicit_noise"])


def test_raw_rosinality_state_dict_is_detected(rosinality):
    d, _, _ = rosinality
    x, e = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    sd = load_file(d / "g_ema.safetensors")
    assert registry.detect(sd).name == "stylegan2"
    G = registry.build({**sd, "latent_avg": x["latent_avg"]}).eval()
    with torch.no_grad():
        assert_close("img_psi07", G(x["z"], truncation_psi=0.7), e["img_psi07"])


def test_rosinality_training_snapshot_with_args(tmp_path):
    """train.py snapshots: g_ema beside g/d/optimisers, `args` as argparse.Namespace, no latent_avg."""
    import argparse
    d = fixture("rosinality_s32_mlp8_cm2")
    g_ema = load_file(d / "g_ema.safetensors")
    g = {k: v + 1 for k, v in g_ema.items()}
    args = argparse.Namespace(size=32, n_mlp=8, channel_multiplier=2, latent=64, path="/data/lmdb", r1=10.0)
    src = tmp_path / "010000.pt"
    torch.save({"g": g, "d": {"w": torch.zeros(2)}, "g_ema": g_ema, "args": args, "ada_aug_p": 0.1}, src)
    meta = convert_file(src, tmp_path / "g.safetensors")
    assert meta["source"]["args"]["channel_multiplier"] == 2 and meta["source"]["args"]["path"] == "/data/lmdb"
    assert meta["source"]["w_avg"].startswith("estimated")
    x, e = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    G = load_generator(tmp_path / "g.safetensors")
    # the estimate of the mean w is close to the fixture's (also a 4096-sample mean, other z)
    assert (G.w_avg - x["latent_avg"]).abs().max() < 0.1 * x["latent_avg"].abs().max()
    with torch.no_grad():
        assert_close("img_psi1", G(x["z"]), e["img_psi1"])  # g_ema used, not g


# ---------------------------------------------------------------------------------------------------
# Shapes read from tensors, other configurations, round trips

def tiny(architecture="skip", c_dim=0, res=16, conv_clamp=None, num_fp16_res=0, num_layers=2, seed=0):
    torch.manual_seed(seed)
    G = Generator(z_dim=8, c_dim=c_dim, w_dim=16, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=num_layers),
                  synthesis_kwargs=dict(channel_base=64, channel_max=8, architecture=architecture,
                                        conv_clamp=conv_clamp, num_fp16_res=num_fp16_res)).eval()
    with torch.no_grad():  # non-zero noise strengths and biases so every input matters
        for name, p in G.named_parameters():
            if name.endswith("noise_strength") or name.endswith(".bias"):
                p.add_(torch.randn(p.shape) * 0.1)
    return G


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("c_dim", [0, 3])
def test_build_reads_architecture_and_sizes_from_tensors(architecture, c_dim):
    G = tiny(architecture, c_dim)
    cfg = config_from_state_dict(G.state_dict(), {})
    assert cfg["synthesis_kwargs"]["architecture"] == architecture
    assert (cfg["z_dim"], cfg["c_dim"], cfg["w_dim"], cfg["img_resolution"]) == (8, c_dim, 16, 16)
    assert cfg["synthesis_kwargs"]["channels"] == {4: 8, 8: 8, 16: 4}
    H = registry.build(G.state_dict(), {}).eval()
    z = torch.randn(2, 8)
    c = torch.eye(max(c_dim, 1))[:2, :c_dim] if c_dim else None
    with torch.no_grad():
        assert torch.equal(G(z, c), H(z, c))


def test_save_load_round_trip(tmp_path):
    G = tiny("resnet", c_dim=3, conv_clamp=256)
    G = registry.build(G.state_dict(), {"init_kwargs": {"synthesis_kwargs": {"conv_clamp": 256,
                                                                            "architecture": "resnet"}}}).eval()
    save_generator(tmp_path / "g.safetensors", G)
    H = load_generator(tmp_path / "g.safetensors")
    assert H.synthesis.b16.conv1.conv_clamp == 256
    z, c = torch.randn(2, 8), torch.eye(3)[:2]
    with torch.no_grad():
        assert torch.equal(G(z, c, truncation_psi=0.5), H(z, c, truncation_psi=0.5))


def test_conv_clamp_and_unfused_path():
    G = tiny("skip", conv_clamp=0.05)
    z = torch.randn(3, 8)
    with torch.no_grad():
        a = G(z)
        b = G(z, fused_modconv=False)
        unclamped = tiny("skip", conv_clamp=None)(z)
    assert_close("unfused", b, a, 1e-5)
    assert not torch.allclose(a, unclamped)


def test_fp16_blocks_stay_close_to_fp32():
    G = tiny("skip", num_fp16_res=2, conv_clamp=256)
    z = torch.randn(2, 8)
    with torch.no_grad():
        ref = G(z, force_fp32=True)
        try:
            half = G(z, force_fp32=False)
        except RuntimeError as e:  # a torch build without CPU half convolutions
            pytest.skip(f"no fp16 convolution on this CPU build: {e}")
    assert half.dtype == torch.float32
    assert_close("fp16", half, ref, 1e-2)
    assert not torch.equal(half, ref)  # the fp16 blocks really ran in half precision


def test_noise_modes():
    G = tiny()
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
        assert not torch.equal(G(z, noise_mode="random"), G(z, noise_mode="random"))
        zero = [torch.zeros(s) for s in G.synthesis.noise_shapes()]
        assert torch.equal(G(z, noise_mode="none"), G(z, noise=zero))


def test_bad_inputs_are_named():
    G = tiny(c_dim=3)
    with pytest.raises(ValueError, match="conditional"):
        G(torch.randn(2, 8))
    with pytest.raises(ValueError, match="z must be"):
        G(torch.randn(2, 9), torch.eye(3)[:2])
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(torch.randn(1, G.num_ws, 16), noise_mode="constant")
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(1, G.num_ws + 1, 16))
    with pytest.raises(ValueError, match="noise must be a list"):
        G.synthesis(torch.randn(1, G.num_ws, 16), noise=[torch.zeros(1, 1, 4, 4)])
    with pytest.raises(ValueError, match="leave no channels at 64 px"):  # not a ZeroDivisionError
        Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=64, img_channels=3,
                  synthesis_kwargs=dict(channel_base=32, channel_max=8))


def test_mismatched_tensors_are_refused():
    sd = tiny().state_dict()
    sd["synthesis.b8.conv0.weight"] = torch.zeros(8, 5, 3, 3)
    with pytest.raises(CheckpointError, match="b8.conv0 takes 5 channels"):
        registry.build(sd, {})
    sd = tiny().state_dict()
    with pytest.raises(CheckpointError, match="architecture"):
        registry.build(sd, {"init_kwargs": {"synthesis_kwargs": {"architecture": "resnet"}}})
    sd = tiny().state_dict()
    del sd["synthesis.b16.conv1.bias"]
    with pytest.raises(CheckpointError, match="missing"):
        registry.build(sd, {})


def test_detect_is_zero_for_other_layouts():
    from gan_models.archs.stylegan2 import detect
    assert detect({"main.0.weight": torch.zeros(1)}, {}) == 0
    assert detect({"mapping.fc0.weight": torch.zeros(4, 4), "synthesis.input.affine.weight": torch.zeros(4, 4)},
                  {}) == 0
    assert "stylegan2" in gan_models.registry.architectures()
