"""CycleGAN ResNet / pix2pix U-Net translators: conformance with upstream, recognition from keys and
shapes, and the `cyclegan` converter."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import _nets
from safetensors.torch import load_file

from gan_models import checkpoint, load_generator, registry
from gan_models.archs.translators import (ResnetTranslator, UnetTranslator, build_resnet_translator,
                                          build_unet_translator)
from gan_models.checkpoint import CheckpointError
from gan_models.convert import convert_file
from gan_models.convert.cyclegan import style_name_from_path

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "upstream"


def _randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    return _nets.randomize(net, seed, weight_scale=0.2, bias_scale=0.1)


def _rebuilt(net: torch.nn.Module) -> torch.nn.Module:
    return registry.build(registry.canonicalize(net.state_dict()), {}).eval()


@pytest.mark.parametrize("name", ["cyclegan_resnet9_ngf8", "pix2pix_unet128_ngf6"])
def test_upstream_conformance(name, tmp_path):
    folder = FIXTURES / name
    if not folder.is_dir():
        pytest.skip("upstream fixtures not present (../shared/fixtures beside the repo)")
    manifest = json.loads((folder / "manifest.json").read_text())
    meta = convert_file(folder / "latest_net_G.pth", tmp_path / "t.safetensors", style_name="fixture")
    T = load_generator(tmp_path / "t.safetensors")
    assert T.kind == "translator" and meta["kind"] == "translator"
    assert meta["arch"] == ("resnet_translator" if "resnet" in manifest["config"]["netG"] else "unet_translator")
    assert meta["input_range"] == [-1, 1] and meta["output_range"] == [-1, 1] and meta["style_name"] == "fixture"
    assert (T.in_channels, T.img_channels) == (manifest["config"]["input_nc"], manifest["config"]["output_nc"])
    assert T.ngf == manifest["config"]["ngf"]
    inputs, expected = load_file(str(folder / "inputs.safetensors")), load_file(str(folder / "expected.safetensors"))
    with torch.no_grad():
        fake = T(inputs["real"])
        first = T(inputs["real"][:1])
    assert (fake - expected["fake"]).abs().max().item() < 1e-5
    assert (first - expected["fake_first_only"]).abs().max().item() < 1e-5
    # the plain safetensors copy of the upstream state dict loads too, through detection alone
    plain = load_generator(folder / "latest_net_G.safetensors")
    with torch.no_grad():
        assert (plain(inputs["real"]) - expected["fake"]).abs().max().item() < 1e-5


RESNET_CASES = [
    dict(ngf=4, n_blocks=2, norm="instance", dropout=False),
    dict(ngf=4, n_blocks=3, norm="instance", dropout=True),
    dict(ngf=6, n_blocks=1, norm="batch", dropout=False),
    dict(ngf=4, n_blocks=2, norm="batch", dropout=True),
    dict(ngf=4, n_blocks=2, norm="instance_affine", dropout=False),
    dict(ngf=4, n_blocks=1, norm="none", dropout=False),
    dict(ngf=4, n_blocks=0, norm="instance", dropout=False),
    dict(ngf=4, n_blocks=2, norm="instance", dropout=False, padding="zero"),
    dict(ngf=4, n_blocks=1, norm="instance", dropout=False, n_downsampling=3),
    dict(in_channels=1, out_channels=3, ngf=4, n_blocks=1, norm="instance", dropout=False),
]


@pytest.mark.parametrize("kw", RESNET_CASES, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_resnet_hyperparameters_read_from_shapes(kw):
    net = _randomize(build_resnet_translator(**kw))
    T = _rebuilt(net)
    assert T.arch_name == "resnet_translator" and T.kind == "translator"
    for attr in ("in_channels", "img_channels", "ngf", "n_blocks", "norm", "dropout", "padding", "n_downsampling"):
        assert getattr(T, attr) == getattr(net, attr), attr
    assert T.size_multiple == 2 ** net.n_downsampling
    x = torch.rand(2, net.in_channels, 24, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(T(x), net(x))


UNET_CASES = [
    dict(ngf=4, depth=5, norm="batch"),
    dict(ngf=3, depth=6, norm="instance"),
    dict(ngf=4, depth=5, norm="instance_affine"),
    dict(ngf=4, depth=5, norm="none"),
    dict(ngf=2, depth=8, norm="batch"),
    dict(in_channels=1, out_channels=1, ngf=4, depth=2, norm="batch"),
]


@pytest.mark.parametrize("kw", UNET_CASES, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_unet_hyperparameters_read_from_shapes(kw):
    net = _randomize(build_unet_translator(**kw))
    T = _rebuilt(net)
    assert T.arch_name == "unet_translator" and T.kind == "translator"
    for attr in ("in_channels", "img_channels", "ngf", "depth", "norm", "widths"):
        assert getattr(T, attr) == getattr(net, attr), attr
    assert T.size_multiple == 2 ** net.depth
    s = T.size_multiple
    x = torch.rand(2, net.in_channels, s, 2 * s) * 2 - 1
    with torch.no_grad():
        assert torch.equal(T(x), net(x))


def test_unet_skip_carries_leaky_relu_of_its_input():
    # upstream's in-place LeakyReLU rewrites the skip; a "cleaner" cat([x, f(x)]) would differ
    net = _randomize(UnetTranslator(ngf=2, depth=2, norm="none"))
    inner = net.model.model[1]
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        out = inner(x.clone())
    assert torch.equal(out[:, :2], torch.nn.functional.leaky_relu(x, 0.2))


@pytest.mark.parametrize("block_name", ["block", "conv", "res.body"])
def test_renamed_residual_block_submodules(block_name):
    net = _randomize(ResnetTranslator(ngf=4, n_blocks=3, norm="instance", dropout=True))
    sd = {k.replace(".conv_block.", f".{block_name}."): v for k, v in net.state_dict().items()}
    assert not any("conv_block" in k for k in sd)
    T = registry.build(sd, {})
    assert T.arch_name == "resnet_translator" and (T.n_blocks, T.dropout) == (3, True)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(T.eval()(x), net(x))


def test_sequential_state_dict_without_model_prefix():
    net = _randomize(ResnetTranslator(ngf=4, n_blocks=1))
    T = registry.build(net.model.state_dict(), {})
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(T.eval()(x), net(x))


def test_converter_drops_pre_04_instance_norm_stats(tmp_path):
    net = _randomize(ResnetTranslator(ngf=4, n_blocks=2, norm="instance"))
    sd = net.state_dict()
    stale = {}
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            stale[name + ".running_mean"] = torch.randn(m.num_features)
            stale[name + ".running_var"] = torch.rand(m.num_features) + 0.5
    assert len(stale) == 2 * (3 + 2 * 2 + 2)
    torch.save({**sd, **stale}, tmp_path / "horse2zebra.pth")
    meta = convert_file(tmp_path / "horse2zebra.pth", tmp_path / "out.safetensors", style_name="horse2zebra G_A")
    state, stored = checkpoint.read(tmp_path / "out.safetensors")
    assert not any(k.endswith(("running_mean", "running_var")) for k in state)
    assert stored["style_name"] == "horse2zebra G_A" and stored["arch"] == "resnet_translator"
    assert stored["in_channels"] == 3 and stored["img_channels"] == 3 and meta["arch_kwargs"]["n_blocks"] == 2
    T = load_generator(tmp_path / "out.safetensors")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(T(x), net(x))


def test_converter_keeps_batch_norm_stats_and_names_blocks_canonically(tmp_path):
    net = _randomize(ResnetTranslator(ngf=4, n_blocks=1, norm="batch"))
    sd = {k.replace(".conv_block.", ".block."): v for k, v in net.state_dict().items()}
    torch.save(sd, tmp_path / "latest_net_G_B.pth")
    convert_file(tmp_path / "latest_net_G_B.pth", tmp_path / "out.safetensors")
    state, _ = checkpoint.read(tmp_path / "out.safetensors")
    assert set(state) == set(net.state_dict())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_style_name_from_path():
    assert style_name_from_path("checkpoints/horse2zebra/latest_net_G_A.pth") == "horse2zebra G_A"
    assert style_name_from_path("horse2zebra.pth") == "horse2zebra"
    assert style_name_from_path("facades_label2photo_net_G.pth") == "facades_label2photo G"
    assert style_name_from_path("monet2photo/200_net_G_B.pth") == "monet2photo G_B"
    assert style_name_from_path("latest_net_G.pth") == "G"


def test_not_a_translator_is_a_clear_error(tmp_path):
    torch.save({"model.1.weight": torch.zeros(4, 3, 5, 5), "model.1.bias": torch.zeros(4)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError):
        convert_file(tmp_path / "x.pth", tmp_path / "x.safetensors", fmt="cyclegan")
    assert not (tmp_path / "x.safetensors").exists()
    # a U-Net whose nesting stops before any innermost block is not recognised
    sd = _randomize(UnetTranslator(ngf=2, depth=3)).state_dict()
    sd = {k: v for k, v in sd.items() if ".model.3.model.3." not in k and "model.model.1.model.3.model.1" not in k}
    with pytest.raises(CheckpointError):
        registry.build(sd, {})


def test_style_name_comes_from_the_experiment_folder(tmp_path):
    """Upstream keeps the experiment name in the folder: checkpoints/horse2zebra/latest_net_G_A.pth."""
    import torch as _t
    from gan_models.archs.translators import build_resnet_translator
    from gan_models.convert import convert_file
    d = tmp_path / "checkpoints" / "horse2zebra"
    d.mkdir(parents=True)
    _t.save(build_resnet_translator(3, 3, ngf=4, n_blocks=2).state_dict(), d / "latest_net_G_A.pth")
    meta = convert_file(d / "latest_net_G_A.pth", tmp_path / "h2z.safetensors")
    assert meta["style_name"] == "horse2zebra G_A" and meta["kind"] == "translator"
    assert meta["source"]["file"] == "latest_net_G_A.pth"
