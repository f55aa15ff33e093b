"""BigGAN-deep in pytorch-pretrained-biggan's layout (config.json + pytorch_model.bin): conversion, the
network against upstream's own outputs, truncated-normal sampling, and drawing through the nodes.

Fixtures: tests/data/biggan/<name>/ (32 px at channel width 5 with a non-default up-sampling pattern,
128 px at width 4 with 11 truncation levels and eps 1e-5; made by running the upstream package,
see make_fixtures.py there and each manifest.json) and, where ../shared is present, the team's
biggan_hf_r64_c5 (64 px, width 3). Measured: max abs error 0.0 on both local fixtures and 1.2e-7 on
biggan_hf_r64_c5, for every call (truncation 1.0, 0.4/0.5 and a soft class mixture at 0.7/0.8).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from _nets import fixture_dir
import torch
from safetensors.torch import load_file

import gan_models
from gan_models import CheckpointError, checkpoint, load_generator, registry
from gan_models import latents as L
from gan_models.archs import biggan
from gan_models.convert import __main__ as convert_cli
from gan_models.convert import biggan as biggan_convert
from gan_models.convert import convert_file, safe_unpickle
from gan_models.generate import class_index, synthesize

LOCAL = Path(__file__).resolve().parent / "data" / "biggan"
TOLERANCE = 1e-4
LOCAL_FIXTURES = ["biggan_r32_ch5_c7", "biggan_r128_ch4_c10"]



def calls(expected: dict) -> dict[str, tuple[float, str]]:
    """'img_t0.4' -> (0.4, 'c'), 'img_mix_t0.7' -> (0.7, 'c_mix'): what each manifest's calls say."""
    return {k: (float(k.rsplit("_t", 1)[1]), "c_mix" if "_mix_" in k else "c") for k in expected}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def r32(tmp_path_factory) -> Path:
    """The 32 px fixture converted once."""
    out = tmp_path_factory.mktemp("biggan") / "r32.safetensors"
    convert_file(LOCAL / "biggan_r32_ch5_c7", out)
    return out


# ------------------------------------------------------------------------------------------------
# conformance

@pytest.mark.parametrize("name", ["biggan_hf_r64_c5"] + LOCAL_FIXTURES)
def test_matches_upstream(name, request, tmp_path):
    d = fixture_dir(LOCAL, name, request)
    meta = convert_file(d, tmp_path / "G.safetensors")
    cfg = json.loads((d / "config.json").read_text())
    assert meta["arch"] == "biggan" and meta["source"]["converter"] == "biggan"
    assert (meta["z_dim"], meta["c_dim"], meta["img_resolution"], meta["img_channels"]) == \
        (cfg["z_dim"], cfg["num_classes"], cfg["output_dim"], 3)
    G = load_generator(tmp_path / "G.safetensors")
    inputs, expected = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    assert len(expected) == 3
    errors = {}
    with torch.no_grad():
        for key, (t, c) in calls(expected).items():
            errors[key] = (G(inputs["z"] * t, inputs[c], truncation_psi=t) - expected[key]).abs().max().item()
    print(name, "max abs error", errors)
    assert max(errors.values()) <= TOLERANCE, errors


@pytest.mark.parametrize("name,arch_kwargs", [("biggan_r32_ch5_c7", {}),  # the released up-sampling pattern
                                              ("biggan_r128_ch4_c10", {"eps": 1e-4})])
def test_fixtures_see_what_config_json_says(name, arch_kwargs, tmp_path):
    """The fixtures are sensitive to the fields the tensors cannot say: built with the released
    defaults instead of config.json's, the 32 px images are not the upstream ones at all and the 128 px
    ones miss by more than the tolerance."""
    d = LOCAL / name
    sd = registry.canonicalize(safe_unpickle.load(d / "pytorch_model.bin"))
    G = registry.build(sd, {"arch": "biggan", "arch_kwargs": arch_kwargs}).eval()
    inputs, expected = load_file(d / "inputs.safetensors"), load_file(d / "expected.safetensors")
    with torch.no_grad():
        out = G(inputs["z"], inputs["c"], truncation_psi=1.0)
    assert (out - expected["img_t1.0"]).abs().max() > 10 * TOLERANCE


def test_truncation_statistics_follow_upstream_lookup():
    means = torch.arange(51.0)[:, None]
    assert biggan.truncation_statistics(means, means, 1.0)[0].item() == 50
    assert biggan.truncation_statistics(means, means, 0.5)[0].item() == 25
    # upstream's float rounding picks the level: of 11 levels, 0.7 / (1/10) is 6.999..., so level 6
    # (truncation 0.6) with weight ~1, not level 7
    levels = torch.arange(11.0)[:, None]
    assert biggan.truncation_statistics(levels, levels, 0.7)[0].item() == pytest.approx(6, abs=1e-5)
    # between levels the nearer one gets the smaller weight, as upstream has it
    assert biggan.truncation_statistics(means, means, 0.41)[0].item() == pytest.approx(20 * 0.5 + 21 * 0.5, abs=1e-5)
    assert biggan.truncation_statistics(means, means, 0.404)[0].item() == pytest.approx(20 * 0.2 + 21 * 0.8, abs=1e-5)


def test_truncation_outside_its_range_is_refused(r32):
    G = load_generator(r32)
    z, c = torch.zeros(1, G.z_dim), torch.eye(G.c_dim)[:1]
    for t in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
            G(z, c, truncation_psi=t)
    with pytest.raises(ValueError, match="class-conditional: c must be a class vector"):
        G(z, None)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z, torch.tensor([3]))


# ------------------------------------------------------------------------------------------------
# conversion routes and errors

def copy_fixture(tmp_path: Path, name: str = "biggan_r32_ch5_c7") -> Path:
    d = tmp_path / "src" / name
    shutil.copytree(LOCAL / name, d)
    return d


def test_folder_and_bin_routes_write_the_same_checkpoint(tmp_path):
    d = copy_fixture(tmp_path)
    convert_file(d, tmp_path / "a.safetensors")
    convert_file(d / "pytorch_model.bin", tmp_path / "b.safetensors")
    assert convert_cli.main([str(d), str(tmp_path / "c.safetensors")]) == 0
    # same tensors and same description (the bytes may differ: safetensors writes its header's
    # metadata entries in a hash map's order)
    a = load_file(tmp_path / "a.safetensors")
    meta = checkpoint.read_meta(tmp_path / "a.safetensors")
    for other in ("b", "c"):
        assert checkpoint.read_meta(tmp_path / f"{other}.safetensors") == meta
        b = load_file(tmp_path / f"{other}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert meta["arch_kwargs"] == {"up": [True, False, True, False, True, False], "eps": 1e-4}
    assert meta["source"]["file"] == "pytorch_model.bin" and meta["source"]["config"] == "config.json"
    assert meta["init_kwargs"]["channel_width"] == 5 and "class_names" not in meta


def test_package_download_names_are_found(tmp_path):
    """pytorch-pretrained-biggan downloads NAME-pytorch_model.bin beside NAME-config.json."""
    d = copy_fixture(tmp_path)
    (d / "pytorch_model.bin").rename(d / "biggan-deep-32-pytorch_model.bin")
    (d / "config.json").rename(d / "biggan-deep-32-config.json")
    meta = convert_file(d / "biggan-deep-32-pytorch_model.bin", tmp_path / "G.safetensors")
    assert meta["source"]["config"] == "biggan-deep-32-config.json"
    ref = tmp_path / "ref.safetensors"
    convert_file(LOCAL / "biggan_r32_ch5_c7", ref)
    assert load_file(tmp_path / "G.safetensors").keys() == load_file(ref).keys()


def edit_config(d: Path, **changes) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("changes,match", [
    ({"z_dim": "12"}, r"config\.json: field 'z_dim' must be a positive integer, not '12'"),
    ({"channel_width": 0}, r"field 'channel_width' must be a positive integer"),
    ({"eps": -1}, r"field 'eps' must be a number in \(0, 1\)"),
    ({"n_stats": 1}, r"field 'n_stats' must be an integer >= 2"),
    ({"layers": "deep"}, r"field 'layers' must be a list"),
    ({"layers": [[True, 16, 16], [False, 16, 8], [True, 8], [False, 4, 4], [True, 4, 2], [False, 2, 1]]},
     r"field 'layers' entry 2 must be \[up_sample"),
    ({"attention_layer_position": None}, r"field 'attention_layer_position' must be an integer >= 0"),
    ({"z_dim": 13}, r"config\.json: field 'z_dim' is 13, the tensors in the weights file make it 12"),
    ({"num_classes": 1000}, r"field 'num_classes' is 1000, the tensors in the weights file make it 7"),
    ({"channel_width": 4}, r"field 'channel_width' is 4, the tensors .* make it 5"),
    ({"output_dim": 64}, r"field 'output_dim' is 64, the up-sampling blocks in field 'layers' make 32 px"),
    ({"attention_layer_position": 2}, r"field 'attention_layer_position' is 2, the tensors put the self-attention "
                                      r"before block 3"),
])
def test_bad_config_field_is_named(tmp_path, changes, match):
    d = copy_fixture(tmp_path)
    edit_config(d, **changes)
    with pytest.raises(CheckpointError, match=match):
        convert_file(d, tmp_path / "G.safetensors")
    assert not (tmp_path / "G.safetensors").exists()


@pytest.mark.parametrize("text,match", [
    ("{not json", r"config\.json: not valid JSON"),
    ("[1, 2]", r"config\.json: must hold a JSON object"),
    ("[" * 100_000, r"larger than 65536 bytes"),
    ("[" * 30_000 + "]" * 30_000, r"config\.json: not valid JSON \(RecursionError"),
    ('{"eps": NaN}', r"field 'eps' must be a number in \(0, 1\), not nan"),
])
def test_unreadable_config_is_refused(tmp_path, text, match):
    d = copy_fixture(tmp_path)
    (d / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        convert_file(d, tmp_path / "G.safetensors")


def test_missing_files_are_named(tmp_path):
    d = copy_fixture(tmp_path)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"needs its config\.json .* looked for config\.json"):
        convert_file(d / "pytorch_model.bin", tmp_path / "G.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"folder without a pytorch_model\.bin"):
        convert_file(empty, tmp_path / "G.safetensors")
    assert convert_cli.main([str(empty), str(tmp_path / "G.safetensors")]) == 2
    assert not (tmp_path / "G.safetensors").exists()


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_weights_file_is_read_as_data(tmp_path):
    """pytorch_model.bin is a torch zip pickle: read by the restricted reader, a payload in it is named
    and never runs."""
    d = copy_fixture(tmp_path)
    marker = tmp_path / "PAYLOAD_RAN"
    sd = safe_unpickle.load(d / "pytorch_model.bin")
    sd["_metadata"] = _Reduce(os.system, f"touch {marker}")
    torch.save(sd, d / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"refused to load global '(posix|os)\.system'"):
        convert_file(d, tmp_path / "G.safetensors")
    assert not marker.exists() and not (tmp_path / "G.safetensors").exists()


def test_registry_detects_biggan_and_nothing_else_claims_it():
    sd = registry.canonicalize(safe_unpickle.load(LOCAL / "biggan_r32_ch5_c7" / "pytorch_model.bin"))
    assert registry.detect(sd).name == "biggan"
    assert [a.name for a in registry.architectures().values() if a.detect(sd, {}) > 0] == ["biggan"]
    with pytest.raises(CheckpointError, match=r"arch_kwargs 'up' must list 6 booleans"):
        registry.build(sd, {"arch_kwargs": {"up": [True]}})
    with pytest.raises(CheckpointError, match=r"unknown arch_kwargs \['layers'\]"):
        registry.build(sd, {"arch_kwargs": {"layers": []}})
    sd.pop("generator.layers.2.conv_1.weight_orig")
    with pytest.raises(CheckpointError, match="missing"):
        registry.build(sd, {})


# ------------------------------------------------------------------------------------------------
# a 1000-class model gets ImageNet's class names

def random_biggan(**kwargs) -> biggan.Generator:
    """Our own module with seeded random values in every tensor (u, v: the top singular pair)."""
    G = biggan.Generator(**kwargs)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in list(G.named_parameters()) + list(G.named_buffers()):
            if name.endswith("running_vars"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif not name.endswith(("weight_u", "weight_v")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
        for m in G.modules():
            if isinstance(m, (biggan.SNLinear, biggan.SNConv2d)):
                U, _, Vh = torch.linalg.svd(m.weight_orig.reshape(m.weight_orig.shape[0], -1), full_matrices=False)
                m.weight_u.copy_(U[:, 0])
                m.weight_v.copy_(Vh[0])
    return G.eval()


def write_release(folder: Path, G: biggan.Generator, **config) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(G.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config))
    return folder


TINY_1000 = dict(z_dim=4, c_dim=1000, channel_width=4, layers=[(False, 16, 8), (True, 8, 4), (False, 4, 2), (True, 2, 1)],
                 attention_layer_position=4, n_stats=3)


def test_imagenet_model_gets_class_names(tmp_path):
    names = biggan_convert.imagenet_class_names()
    assert len(names) == 1000 == len(set(names))
    assert (names[0], names[1], names[207], names[980], names[999]) == \
        ("tench", "goldfish", "golden retriever", "volcano", "toilet tissue")
    G = random_biggan(**TINY_1000)
    d = write_release(tmp_path / "tiny1000", G, output_dim=16, z_dim=4, class_embed_dim=4, channel_width=4,
                      num_classes=1000, layers=[list(x) for x in TINY_1000["layers"]], attention_layer_position=4,
                      eps=1e-4, n_stats=3)
    assert (d / "pytorch_model.bin").stat().st_size < 200_000
    meta = convert_file(d, tmp_path / "G.safetensors")
    assert meta["class_names"] == names
    H = load_generator(tmp_path / "G.safetensors")
    assert H.meta["class_names"][207] == "golden retriever" and class_index(H, "golden retriever") == 207
    lat = L.sample(H, [1, 2], 207)
    with torch.no_grad():
        want = G(lat.values * 0.5, torch.nn.functional.one_hot(torch.tensor([207, 207]), 1000).float(), 0.5)
    torch.testing.assert_close(synthesize(H, lat, 0.5), want, atol=1e-6, rtol=0)
    # --class-names on the command line still wins over the list
    own = [f"k{i}" for i in range(1000)]
    assert convert_file(d, tmp_path / "H.safetensors", class_names=own)["class_names"] == own


def test_class_names_file_ships_inside_the_package():
    path = Path(gan_models.__file__).parent / "data" / "imagenet_classes.txt"
    assert path == biggan_convert.IMAGENET_CLASSES and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and len(text.splitlines()) == 1000


# ------------------------------------------------------------------------------------------------
# sampling: BigGAN's truncated normal

def test_truncated_noise_is_bounded_seeded_and_truncnorm_shaped():
    for t in (1.0, 0.4):
        z = L.truncated_noise(list(range(200)), 128, truncation=t)
        assert z.shape == (200, 128) and z.dtype == torch.float32
        assert z.abs().max() <= 2 * t and z.abs().max() > 1.9 * t
        assert torch.equal(z, L.truncated_noise(list(range(200)), 128, truncation=t))
    z = L.truncated_noise(list(range(200)), 128).double()
    # truncnorm(-2, 2): mean 0, std sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2))) = 0.8796
    phi2 = math.exp(-2) / math.sqrt(2 * math.pi)
    std = math.sqrt(1 - 4 * phi2 / math.erf(2 / math.sqrt(2)))
    assert abs(z.mean()) < 0.01 and abs(z.std() - std) < 0.01
    # one row per seed, whatever the batch
    assert torch.equal(L.truncated_noise([7], 128)[0], L.truncated_noise([3, 7], 128)[1])
    assert not torch.equal(L.truncated_noise([7], 128), L.truncated_noise([8], 128))
    assert torch.equal(L.truncated_noise([5], 16, 0.4), L.truncated_noise([5], 16) * 0.4)


def test_sample_draws_truncnorm_for_biggan_and_gaussian_for_others(r32):
    G = load_generator(r32)
    lat = L.sample(G, list(range(64)), "random")
    assert lat.values.abs().max() <= 2 and lat.info == {"z_distribution": "truncated_normal", "z_bound": 2.0}
    again = L.sample(G, list(range(64)), "random")
    assert torch.equal(lat.values, again.values) and torch.equal(lat.c, again.c)
    assert len(set(lat.c.argmax(1).tolist())) > 3  # random classes drawn per seed
    assert torch.equal(L.sample(G, [9], "random").values[0], lat.values[9])
    from gan_models.archs import dcgan  # a Gaussian-z generator keeps NVlabs' RandomState draws
    D = dcgan.Generator(dcgan.make_layout(8, 0, 32, 3, ngf=4))
    import numpy as np
    assert torch.equal(L.sample(D, [3]).values[0], torch.from_numpy(np.random.RandomState(3).randn(8)).float())


def test_synthesis_scales_z_by_the_truncation_it_draws_at(r32):
    """One truncation value drives both halves: synthesize(G, lat, t) == upstream BigGAN(z * t, c, t)."""
    G = load_generator(r32)
    lat = L.sample(G, [0, 1, 2], 4)
    for t in (1.0, 0.4):
        with torch.no_grad():
            want = G(lat.values * t, lat.c, truncation_psi=t)
        torch.testing.assert_close(synthesize(G, lat, t), want, atol=1e-6, rtol=0)
    assert torch.equal(L.z_for_truncation(G, lat.values, 0.3), lat.values * 0.3)
    with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
        synthesize(G, lat, 1.5)


def test_fid_draws_biggan_z_as_its_images_are_drawn(r32):
    """metrics.generated_features gives a BigGAN truncnorm z scaled by the truncation it passes."""
    from gan_models import metrics as M

    class Pool(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)

    G = load_generator(r32)
    seen = []
    G.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    net = M.FeatureNet(module=Pool(), name="pool", feature_dim=12, input_size=32)
    f = M.generated_features(G, 6, net, batch=3, truncation_psi=0.5)
    assert f.shape == (6, 12) and len(seen) == 2
    z = torch.cat(seen)
    assert z.abs().max() <= 1.0 and z.abs().max() > 0.9  # truncnorm(-2, 2) * 0.5


def test_interpolation_between_classes_draws_soft_mixtures(r32):
    G = load_generator(r32)
    a, b = L.sample(G, [1], 0), L.sample(G, [2], 5)
    frames = L.interpolate(a, b, 3)
    assert torch.allclose(frames.c[1], torch.tensor([0.5, 0, 0, 0, 0, 0.5, 0]))
    img = synthesize(G, frames, 0.7)
    assert img.shape == (3, 3, 32, 32) and torch.isfinite(img).all()


# ------------------------------------------------------------------------------------------------
# the nodes, without ComfyUI

@pytest.fixture()
def nodes(pack, tmp_path, monkeypatch, r32):
    shutil.copy(r32, tmp_path / "biggan32.safetensors")
    shutil.copytree(LOCAL / "biggan_r32_ch5_c7", tmp_path / "biggan-deep-32")  # a release folder as downloaded
    monkeypatch.setenv("COMFYUI_GAN_MODELS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return pack.NODE_CLASS_MAPPINGS


def test_generate_image_node_draws_a_class(nodes):
    G = nodes["ComfyGAN_LoadGANGenerator"]().load("biggan32.safetensors", "cpu", "float32")[0]
    lat = nodes["ComfyGAN_SampleLatent"]().sample(G, seed=3, batch_size=2, class_index=6)[0]
    assert lat.c.argmax(1).tolist() == [6, 6] and lat.values.abs().max() <= 2
    img = nodes["ComfyGAN_GenerateImage"]().generate(G, lat, 0.5)[0]
    assert img.shape == (2, 32, 32, 3) and 0 <= img.min() and img.max() <= 1
    with torch.no_grad():
        want = G(L.truncated_noise([3, 4], G.z_dim, 0.5), torch.eye(7)[[6, 6]], truncation_psi=0.5)
    torch.testing.assert_close(img, ((want + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-6, rtol=0)
    rand = nodes["ComfyGAN_SampleLatent"]().sample(G, seed=0, batch_size=4, class_index=-1)[0]
    assert nodes["ComfyGAN_GenerateImage"]().generate(G, rand, 1.0)[0].shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="class 7 is out of range"):
        nodes["ComfyGAN_SampleLatent"]().sample(G, seed=0, batch_size=1, class_index=7)
    with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
        nodes["ComfyGAN_GenerateImage"]().generate(G, lat, 1.5)


def test_loader_node_converts_a_release_folder_on_first_use(nodes):
    loader = nodes["ComfyGAN_LoadGANGenerator"]
    combo = loader.INPUT_TYPES()["required"]["checkpoint"][0]
    assert "biggan-deep-32/pytorch_model.bin" in combo
    G = loader().load("biggan-deep-32/pytorch_model.bin", "cpu", "float32")[0]
    assert G.arch_name == "biggan" and G.img_resolution == 32
    lat = nodes["ComfyGAN_SampleLatent"]().sample(G, seed=1, batch_size=1, class_index=2)[0]
    assert nodes["ComfyGAN_GenerateImage"]().generate(G, lat, 0.8)[0].shape == (1, 32, 32, 3)


def test_loader_node_converts_again_when_config_json_changes(nodes, tmp_path):
    """The conversion cache of a .bin is keyed by its config.json too: a config edited after the
    first load (a fixed eps, say) is a different model."""
    import json
    import os

    loader = nodes["ComfyGAN_LoadGANGenerator"]
    loader().load("biggan-deep-32/pytorch_model.bin", "cpu", "float32")
    cache = tmp_path / "biggan-deep-32" / "pytorch_model.bin.converted.safetensors"
    first = cache.stat().st_mtime_ns
    loader().load("biggan-deep-32/pytorch_model.bin", "cpu", "float32")
    assert cache.stat().st_mtime_ns == first  # unchanged source: the cache is read
    cfg_path = tmp_path / "biggan-deep-32" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["eps"] = cfg.get("eps", 1e-4) * 10
    cfg_path.write_text(json.dumps(cfg))
    os.utime(cfg_path, ns=(first + 10**9, first + 10**9))
    G = loader().load("biggan-deep-32/pytorch_model.bin", "cpu", "float32")[0]
    assert cache.stat().st_mtime_ns != first
    assert abs(G.meta["arch_kwargs"]["eps"] - cfg["eps"]) < 1e-12
