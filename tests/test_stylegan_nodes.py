"""StyleGAN through the nodes and the library's synthesize(): W latents, truncation, style mixing,
W interpolation, and the fast CPU path against NVlabs' exact one."""
import pytest
import torch

import gan_models
from gan_models import latents as L
from gan_models.archs import stylegan2, stylegan3
from gan_models.generate import fast_synthesis_kwargs, synthesize


def sg2(c_dim=0):
    torch.manual_seed(0)
    G = stylegan2.Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=32, img_channels=3,
                            mapping_kwargs={"num_layers": 2},
                            synthesis_kwargs={"channel_base": 256, "channel_max": 16})
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    return G.eval()


@pytest.fixture()
def nodes(pack, tmp_path, monkeypatch):
    gan_models.save_generator(tmp_path / "sg2.safetensors", sg2(c_dim=3), {"arch": "stylegan2"})
    torch.manual_seed(1)
    G3 = stylegan3.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                             channel_base=256, channel_max=16, num_layers=4).eval()
    gan_models.save_generator(tmp_path / "sg3.safetensors", G3, {"arch": "stylegan3"})
    monkeypatch.setenv("COMFYUI_GAN_MODELS", str(tmp_path))
    m = pack.NODE_CLASS_MAPPINGS
    load = lambda name: m["ComfyGAN_LoadGANGenerator"]().load(name, "cpu", "float32")[0]
    return m, load


def test_fast_cpu_path_matches_exact_path():
    G = sg2()
    with torch.no_grad():  # the fast path is inference-only; with grad on it falls back to the exact one
        ws = G.mapping(torch.randn(3, 16), None)
        exact = G.synthesis(ws, noise_mode="const")
        fast = G.synthesis(ws, noise_mode="const", **fast_synthesis_kwargs(G, torch.device("cpu")))
    assert not torch.equal(fast, exact)  # a different kernel really ran (equal only to rounding)
    assert fast_synthesis_kwargs(G, torch.device("cpu"))  # the path is really taken
    torch.testing.assert_close(fast, exact, atol=1e-4, rtol=0)


def test_w_latent_equals_z_path_with_truncation(nodes):
    m, load = nodes
    G = load("sg2.safetensors")
    sample = m["ComfyGAN_SampleLatent"]()
    z = sample.sample(G, 3, 2, 1)[0]
    w = sample.sample(G, 3, 2, 1, space="w", truncation_psi=0.6, truncation_cutoff=2)[0]
    assert w.space == "w" and w.values.shape == (2, G.num_ws, G.w_dim)
    gen = m["ComfyGAN_GenerateImage"]()
    from_z = gen.generate(G, z, 0.6, truncation_cutoff=2)[0]
    from_w = gen.generate(G, w, 1.0)[0]
    torch.testing.assert_close(from_w, from_z, atol=1e-5, rtol=0)
    ref = G(z.values, z.c, truncation_psi=0.6, truncation_cutoff=2)  # NVlabs call, exact path
    torch.testing.assert_close(from_z, ((ref + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-4, rtol=0)


def test_style_mixing_takes_layers_from_crossover(nodes):
    m, load = nodes
    G = load("sg2.safetensors")
    sample, gen = m["ComfyGAN_SampleLatent"](), m["ComfyGAN_GenerateImage"]()
    a, b = sample.sample(G, 1, 1, 0)[0], sample.sample(G, 2, 1, 2)[0]
    presets = L.mixing_presets(G.num_ws)
    wa, wb = L.to_w(G, a).values, L.to_w(G, b).values
    for preset in ("middle", "fine"):
        k = presets[preset]
        want = torch.cat([wa[:, :k], wb[:, k:]], 1)
        out = gen.generate(G, a, 1.0, mix_latent=b, mix_from=preset)[0]
        ref = G.synthesis(want, noise_mode="const")
        torch.testing.assert_close(out, ((ref + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-4, rtol=0)
    plain = gen.generate(G, a, 1.0)[0]
    assert torch.equal(gen.generate(G, a, 1.0, mix_latent=b, mix_from="none")[0], plain)
    assert not torch.allclose(gen.generate(G, a, 1.0, mix_latent=b, mix_from="custom", crossover=0)[0], plain)


def test_w_interpolation_is_linear_and_renders(nodes):
    m, load = nodes
    G = load("sg3.safetensors")
    sample = m["ComfyGAN_SampleLatent"]()
    a = sample.sample(G, 5, 1, -1, space="w")[0]
    b = sample.sample(G, 6, 1, -1, space="w")[0]
    frames = m["ComfyGAN_LatentInterpolate"]().interpolate(a, b, 5, "auto", False)[0]
    torch.testing.assert_close(frames.values[2], 0.5 * (a.values[0] + b.values[0]))
    img = m["ComfyGAN_GenerateImage"]().generate(G, frames, 1.0, chunk_size=2)[0]
    assert img.shape == (5, 16, 16, 3)
    with pytest.raises(ValueError, match="cannot interpolate a Z latent with a W latent"):
        L.interpolate(sample.sample(G, 5, 1, -1)[0], b, 3)


def test_w_latent_into_dcgan_and_mixing_without_styles_are_refused(nodes):
    from gan_models.archs import dcgan
    m, load = nodes
    G = load("sg2.safetensors")
    D = dcgan.Generator(dcgan.make_layout(16, 3, 32, 3, ngf=4), c_dim=3).eval()
    w = m["ComfyGAN_SampleLatent"]().sample(G, 0, 1, 0, space="w")[0]
    with pytest.raises(ValueError):
        synthesize(D, w)
    with pytest.raises(ValueError, match="only style-based generators"):
        m["ComfyGAN_SampleLatent"]().sample(D, 0, 1, 0, space="w")


def test_half_precision_truncation_runs():
    G = sg2().half()
    ws = G.mapping(torch.randn(2, 16), None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.isfinite(ws.float()).all()
