import numpy as np
import pytest
import torch

from gan_models import latents as L
from gan_models.archs import dcgan
from gan_models.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def G():
    return dcgan.Generator(dcgan.make_layout(16, 5, 32, 3, ngf=4), c_dim=5).eval()


def test_seeds_follow_nvlabs_randomstate(G):
    lat = L.sample(G, [3, 7], classes=1)
    want = np.random.RandomState(7).randn(1, 16)  # NVlabs gen_images.py
    assert np.allclose(lat.values[1].numpy(), want[0], atol=1e-6)
    assert lat.c.argmax(1).tolist() == [1, 1]


def test_batch_items_equal_single_seed_samples(G):
    batch = L.sample(G, [10, 11, 12], classes="random")
    for i, s in enumerate([10, 11, 12]):
        one = L.sample(G, [s], classes="random")
        assert torch.equal(batch.values[i], one.values[0]) and torch.equal(batch.c[i], one.c[0])


def test_class_errors_name_the_range(G):
    with pytest.raises(ValueError, match=r"class 5 is out of range: this generator has 5 classes \(0..4\)"):
        L.sample(G, [0], classes=5)
    with pytest.raises(ValueError, match="class-conditional"):
        L.sample(G, [0], classes=None)
    U = dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=4)).eval()
    with pytest.raises(ValueError, match="unconditional"):
        L.sample(U, [0], classes=2)


def test_parse_seeds():
    assert L.parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    for bad in ("", "a-b", "5-2"):
        with pytest.raises(ValueError):
            L.parse_seeds(bad)


def test_interpolation_ends_counts_and_pingpong(G):
    a, b = L.sample(G, [1], 0), L.sample(G, [2], 4)
    path = L.interpolate(a, b, 5)
    assert len(path) == 5
    torch.testing.assert_close(path.values[0], a.values[0])
    torch.testing.assert_close(path.values[-1], b.values[0])
    norms = path.values.norm(dim=1)  # slerp keeps z near the Gaussian shell; lerp would dip
    assert norms.min() > 0.9 * min(a.values.norm(), b.values.norm())
    torch.testing.assert_close(path.c[2], 0.5 * (a.c[0] + b.c[0]))
    loop = L.interpolate(a, b, 5, method="lerp", pingpong=True)
    assert len(loop) == 8
    torch.testing.assert_close(loop.values[5], loop.values[3])
    torch.testing.assert_close(loop.values[2], 0.5 * (a.values[0] + b.values[0]))


def test_interpolation_refuses_mismatched_latents(G):
    other = dcgan.Generator(dcgan.make_layout(8, 5, 32, 3, ngf=4), c_dim=5).eval()
    with pytest.raises(ValueError, match="different generators"):
        L.interpolate(L.sample(G, [1], 0), L.sample(other, [1], 0), 4)
    with pytest.raises(ValueError, match="z_dim=16"):
        L.sample(G, [1], 0).check_fits(other)


def test_slerp_of_parallel_vectors_is_finite():
    a = torch.ones(1, 4)
    out = L.slerp(a, 2 * a, torch.tensor([[0.5]]))
    assert torch.isfinite(out).all()


def test_mixing_presets_scale_with_layer_count():
    assert L.mixing_presets(18) == {"middle": 6, "fine": 12}
    assert L.mixing_presets(8) == {"middle": 3, "fine": 5}
    p = L.mixing_presets(14)
    assert 0 < p["middle"] < p["fine"] < 14


def test_latent_file_roundtrip_and_refusal(G, tmp_path):
    lat = L.sample(G, [4, 5, 6], classes=[0, 1, 2])
    L.save_latent(tmp_path / "l.safetensors", lat)
    back = L.load_latent(tmp_path / "l.safetensors")
    assert back.space == "z" and back.seeds == [4, 5, 6] and back.dims == lat.dims
    assert torch.equal(back.values, lat.values) and torch.equal(back.c, lat.c)
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CheckpointError, match="not a comfyui-gan latent file"):
        L.load_latent(tmp_path / "x.safetensors")
