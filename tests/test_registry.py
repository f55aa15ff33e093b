import pytest
import torch

import gan_models
from gan_models import registry
from gan_models.archs import dcgan
from gan_models.checkpoint import CheckpointError


def small_dcgan(c_dim=0, res=32):
    return dcgan.Generator(dcgan.make_layout(8, c_dim, res, 3, ngf=4), c_dim=c_dim)


def test_canonicalize_unwraps_containers_and_prefixes():
    sd = small_dcgan().state_dict()
    wrapped = {"g_ema": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    assert registry.canonicalize(wrapped).keys() == sd.keys()
    assert registry.canonicalize({"state_dict": {f"_orig_mod.{k}": v for k, v in sd.items()}}).keys() == sd.keys()
    assert registry.canonicalize({"params_ema": sd, "params": {"x": torch.zeros(1)}}).keys() == sd.keys()


def test_unknown_architecture_error_lists_keys_and_known_archs():
    with pytest.raises(CheckpointError, match=r"unrecognised architecture \(first keys: foo.weight"):
        registry.build({"foo.weight": torch.zeros(2, 2)}, {})


def test_header_arch_must_match_tensors():
    with pytest.raises(CheckpointError, match="header says arch 'dcgan'"):
        registry.build({"foo.weight": torch.zeros(2, 2)}, {"arch": "dcgan"})
    with pytest.raises(CheckpointError, match="unknown architecture 'nope'"):
        registry.build(small_dcgan().state_dict(), {"arch": "nope"})


def test_every_registered_arch_has_a_kind():
    archs = registry.architectures()
    assert "dcgan" in archs
    assert all(a.kind in ("generator", "translator") for a in archs.values())


def test_load_generator_sets_api_attributes(tmp_path):
    G = small_dcgan(c_dim=3, res=64)
    gan_models.save_generator(tmp_path / "g.safetensors", G, {"arch": "dcgan"})
    H = gan_models.load_generator(tmp_path / "g.safetensors")
    assert (H.z_dim, H.c_dim, H.img_resolution, H.img_channels) == (8, 3, 64, 3)
    assert H.kind == "generator" and H.arch_name == "dcgan" and not H.training
    z, c = torch.randn(2, 8), torch.eye(3)[:2]
    out = H(z, c)
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    assert torch.allclose(out, G.eval()(z, c), atol=1e-6)


def test_truncated_state_dict_is_a_clear_error(tmp_path):
    sd = small_dcgan().state_dict()
    sd.pop("main.1.running_var")
    with pytest.raises(CheckpointError, match="does not fit"):
        registry.build(sd, {})
