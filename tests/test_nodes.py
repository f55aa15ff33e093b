"""Each node as a plain class, outside ComfyUI (the real host runs in tests/host/)."""
import os
import time
from pathlib import Path

import pytest
import torch

import gan_models
from gan_models.archs import dcgan


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    torch.manual_seed(0)
    G = dcgan.Generator(dcgan.make_layout(16, 4, 32, 1, ngf=4), c_dim=4)
    gan_models.save_generator(tmp_path / "cond.safetensors", G, {"arch": "dcgan"})
    U = dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=4))
    gan_models.save_generator(tmp_path / "uncond.safetensors", U, {"arch": "dcgan"})
    monkeypatch.setenv("COMFYUI_GAN_MODELS", str(tmp_path))
    return tmp_path


@pytest.fixture()
def nodes(pack):
    return pack.NODE_CLASS_MAPPINGS


def load(nodes, name):
    return nodes["ComfyGAN_LoadGANGenerator"]().load(name, "cpu", "float32")[0]


def test_registration_contract(pack):
    m, names = pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS
    assert set(m) == set(names)
    assert all(k.startswith("ComfyGAN_") for k in m)  # never a core id such as LatentInterpolate
    for role in ("Load GAN Generator", "Sample Latent", "Generate Image", "Interpolate Latents", "Style Transfer"):
        assert any(role in v for v in names.values())
    for cls in m.values():
        assert cls.CATEGORY == "GAN" and callable(getattr(cls(), cls.FUNCTION))
        spec = cls.INPUT_TYPES()
        for group in spec.values():
            for name, (typ, *opts) in group.items():
                assert opts and opts[0].get("tooltip"), f"{cls.__name__}.{name} has no tooltip"
        assert "LATENT" not in cls.RETURN_TYPES  # a GAN latent must not be wireable into KSampler


def test_loader_lists_and_caches_by_mtime(nodes, models_dir):
    combo = nodes["ComfyGAN_LoadGANGenerator"].INPUT_TYPES()["required"]["checkpoint"][0]
    assert {"cond.safetensors", "uncond.safetensors"} <= set(combo)
    a, b = load(nodes, "cond.safetensors"), load(nodes, "cond.safetensors")
    assert a is b
    path = models_dir / "cond.safetensors"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert load(nodes, "cond.safetensors") is not a


def test_loader_leaves_out_discriminators(nodes, models_dir):
    """A discriminator converted beside its generator for fine-tuning is no choice for the loader; a
    file whose header cannot be read stays listed, so loading it can say what is wrong."""
    d = {"b4.out.weight": torch.zeros(1, 4)}
    gan_models.checkpoint.write(models_dir / "D.safetensors", d, {"arch": "stylegan2", "kind": "discriminator"})
    (models_dir / "broken.safetensors").write_bytes(b"not a safetensors file")
    combo = nodes["ComfyGAN_LoadGANGenerator"].INPUT_TYPES()["required"]["checkpoint"][0]
    assert "D.safetensors" not in combo and {"cond.safetensors", "broken.safetensors"} <= set(combo)


def test_loader_missing_checkpoint_is_clear(nodes, models_dir):
    with pytest.raises(FileNotFoundError, match="'gone.safetensors' not found"):
        load(nodes, "gone.safetensors")


def test_sample_generate_shapes_and_reproducibility(nodes, models_dir):
    G = load(nodes, "cond.safetensors")
    sample = nodes["ComfyGAN_SampleLatent"]()
    lat = sample.sample(G, seed=5, batch_size=6, class_index=2)[0]
    gen = nodes["ComfyGAN_GenerateImage"]()
    img = gen.generate(G, lat, 1.0, chunk_size=4)[0]
    assert img.shape == (6, 32, 32, 3) and img.dtype == torch.float32
    assert 0 <= img.min() and img.max() <= 1
    # item 3 of the batch (seed 8) is the image of seed 8 alone, whatever the chunking
    one = gen.generate(G, sample.sample(G, seed=8, batch_size=1, class_index=2)[0], 1.0, chunk_size=1)[0]
    torch.testing.assert_close(img[3], one[0], atol=1e-6, rtol=0)
    # grayscale generators come out as RGB with equal channels, so core image nodes take them
    assert torch.equal(img[..., 0], img[..., 2])


def test_class_out_of_range_and_unconditional_errors(nodes, models_dir):
    sample = nodes["ComfyGAN_SampleLatent"]()
    with pytest.raises(ValueError, match="class 4 is out of range"):
        sample.sample(load(nodes, "cond.safetensors"), seed=0, batch_size=1, class_index=4)
    with pytest.raises(ValueError, match="unconditional"):
        sample.sample(load(nodes, "uncond.safetensors"), seed=0, batch_size=1, class_index=0)
    lat = sample.sample(load(nodes, "uncond.safetensors"), seed=0, batch_size=2, class_index=-1)[0]
    assert lat.c is None


def test_latent_from_another_generator_is_refused(nodes, models_dir):
    lat = nodes["ComfyGAN_SampleLatent"]().sample(load(nodes, "cond.safetensors"), 0, 1, 1)[0]
    with pytest.raises(ValueError, match="c_dim=4"):
        nodes["ComfyGAN_GenerateImage"]().generate(load(nodes, "uncond.safetensors"), lat, 1.0)


def test_interpolate_feeds_generate(nodes, models_dir):
    G = load(nodes, "cond.safetensors")
    sample = nodes["ComfyGAN_SampleLatent"]()
    a, b = sample.sample(G, 1, 1, 0)[0], sample.sample(G, 2, 1, 3)[0]
    frames = nodes["ComfyGAN_LatentInterpolate"]().interpolate(a, b, 6, "auto", True)[0]
    assert len(frames) == 10
    img = nodes["ComfyGAN_GenerateImage"]().generate(G, frames, 0.8)[0]
    assert img.shape == (10, 32, 32, 3)


def test_generate_reports_progress_in_chunks():
    from gan_models.generate import synthesize
    from gan_models import latents as L
    G = dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=4)).eval()
    seen, calls = [], []
    synthesize(G, L.sample(G, list(range(10))), chunk=4, progress=lambda d, t: seen.append((d, t)),
               check_interrupt=lambda: calls.append(1))
    assert seen == [(4, 10), (8, 10), (10, 10)] and len(calls) == 3

    class Stop(Exception):
        pass

    def interrupt():
        raise Stop()
    with pytest.raises(Stop):
        synthesize(G, L.sample(G, list(range(10))), chunk=4, check_interrupt=interrupt)


def test_latent_save_and_load_nodes(nodes, models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYUI_GAN_LATENTS", str(tmp_path / "lat"))
    G = load(nodes, "cond.safetensors")
    lat = nodes["ComfyGAN_SampleLatent"]().sample(G, 42, 3, 1)[0]
    saved = nodes["ComfyGAN_SaveLatent"]().save(lat, "found")
    again = nodes["ComfyGAN_SaveLatent"]().save(lat, "found")
    assert saved["ui"]["text"] == ["found_00001.safetensors"] and again["ui"]["text"] == ["found_00002.safetensors"]
    assert "found_00001.safetensors" in nodes["ComfyGAN_LoadLatent"].INPUT_TYPES()["required"]["latent_file"][0]
    back = nodes["ComfyGAN_LoadLatent"]().load("found_00001.safetensors")[0]
    assert back.seeds == [42, 43, 44] and torch.equal(back.values, lat.values)
    with pytest.raises(ValueError, match="filename_prefix"):
        nodes["ComfyGAN_SaveLatent"]().save(lat, "../escape")
    with pytest.raises(FileNotFoundError, match="not found"):
        nodes["ComfyGAN_LoadLatent"]().load("nope.safetensors")


def test_style_transfer_node_sizes_strength_and_kind_errors(nodes, models_dir):
    from gan_models.archs.translators import build_resnet_translator
    torch.manual_seed(0)
    T = build_resnet_translator(3, 3, ngf=4, n_blocks=2, norm="instance")
    gan_models.save_generator(models_dir / "style.safetensors", T, {"arch": "resnet_translator"})
    T = load(nodes, "style.safetensors")
    assert T.kind == "translator"
    node = nodes["ComfyGAN_GANStyleTransfer"]()
    img = torch.rand(3, 30, 50, 3)
    out = node.transfer(T, img, 1.0)[0]
    assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(node.transfer(T, img, 0.0)[0], img)
    half = node.transfer(T, img, 0.5)[0]
    torch.testing.assert_close(half, 0.5 * (img + out), atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="noise-to-image generator"):
        node.transfer(load(nodes, "cond.safetensors"), img, 1.0)
    lat = nodes["ComfyGAN_SampleLatent"]().sample(load(nodes, "cond.safetensors"), 0, 1, 0)[0]
    with pytest.raises(ValueError, match="translator"):
        nodes["ComfyGAN_GenerateImage"]().generate(T, lat, 1.0)


def test_style_transfer_retries_with_a_smaller_budget_on_oom(nodes, models_dir, monkeypatch, pack):
    budgets = []
    style = __import__(pack.__name__ + ".nodes.style", fromlist=["x"])

    def fake_translate(T, image, **kw):
        budgets.append(kw["memory_budget_mb"])
        if len(budgets) < 3:
            raise RuntimeError(["CUDA out of memory. Tried to allocate 2.00 GiB",
                                # what torch's CPU allocator says when the machine has no more memory
                                "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate "
                                "memory: you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate "
                                "memory)"][len(budgets) - 1])
        return image
    monkeypatch.setattr(style, "translate", fake_translate)
    img = torch.rand(1, 8, 8, 3)
    assert style.GANStyleTransfer().transfer(None, img, 1.0, memory_budget_mb=1024)[0] is img
    assert budgets == [1024, 512, 256]
    monkeypatch.setattr(style, "translate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        style.GANStyleTransfer().transfer(None, img, 1.0)


def test_class_list_sweeps_classes_with_the_same_seeds(nodes, models_dir):
    G = load(nodes, "cond.safetensors")
    sample = nodes["ComfyGAN_SampleLatent"]()
    lat = sample.sample(G, seed=7, batch_size=2, class_list="0, 2-3")[0]
    assert lat.c.argmax(1).tolist() == [0, 0, 2, 2, 3, 3] and lat.seeds == [7, 8] * 3
    assert torch.equal(lat.values[0], lat.values[4])
    with pytest.raises(ValueError, match="class 4 is out of range"):
        sample.sample(G, seed=0, batch_size=1, class_list="1,4")
    with pytest.raises(ValueError, match="class_list must look like"):
        sample.sample(G, seed=0, batch_size=1, class_list="shoes")
    with pytest.raises(ValueError, match="unconditional"):
        sample.sample(load(nodes, "uncond.safetensors"), seed=0, batch_size=1, class_list="1")


def test_seeds_never_wrap_past_uint32(nodes, models_dir):
    G = load(nodes, "uncond.safetensors")
    sample = nodes["ComfyGAN_SampleLatent"]()
    assert sample.sample(G, seed=0xFFFFFFFF, batch_size=1)[0].seeds == [0xFFFFFFFF]
    with pytest.raises(ValueError, match="runs past the last seed"):
        sample.sample(G, seed=0xFFFFFFFF, batch_size=2)


# -- files from the wild in models/gan: converted on first use, safely ---------------------------

class _Payload:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


def test_loader_converts_a_dropped_checkpoint_once(nodes, models_dir, pack, monkeypatch):
    from gan_models.convert import __main__ as convert_cli
    torch.manual_seed(1)
    tut = dcgan.Generator(dcgan.make_layout(16, 0, 64, 3, ngf=4))
    torch.save(tut.state_dict(), models_dir / "netG.pth")
    combo = nodes["ComfyGAN_LoadGANGenerator"].INPUT_TYPES()["required"]["checkpoint"][0]
    assert "netG.pth" in combo
    calls = []
    import importlib
    conv = importlib.import_module(pack.__name__ + ".gan_models.convert")  # the pack's own copy
    orig = conv.convert_file
    monkeypatch.setattr(conv, "convert_file", lambda *a, **k: calls.append(a) or orig(*a, **k))
    t0 = time.perf_counter()
    G = load(nodes, "netG.pth")
    first = time.perf_counter() - t0
    assert len(calls) == 1 and (models_dir / "netG.pth.converted.safetensors").is_file()
    # the cache is not offered as a second entry, and a second load (after the module cache is
    # emptied) reads it instead of converting again
    combo = nodes["ComfyGAN_LoadGANGenerator"].INPUT_TYPES()["required"]["checkpoint"][0]
    assert "netG.pth.converted.safetensors" not in combo and "netG.pth" in combo
    pack.nodes.loader._CACHE.clear()
    t0 = time.perf_counter()
    G2 = load(nodes, "netG.pth")
    second = time.perf_counter() - t0
    assert len(calls) == 1, "the second load converted again"
    print(f"first load (convert) {first * 1000:.0f} ms, second load (cache) {second * 1000:.0f} ms")
    # the same network the command line makes
    assert convert_cli.main([str(models_dir / "netG.pth"), str(models_dir / "cli.safetensors")]) == 0
    G3 = gan_models.load_generator(models_dir / "cli.safetensors")
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(G(z), G3(z)) and torch.equal(G2(z), G3(z))
    # a replaced source is converted again
    st = (models_dir / "netG.pth").stat()
    os.utime(models_dir / "netG.pth", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load(nodes, "netG.pth")
    assert len(calls) == 2


def test_loader_converts_into_a_cache_folder_where_models_is_read_only(nodes, models_dir, pack, monkeypatch,
                                                                         tmp_path):
    host = pack.nodes.host
    torch.manual_seed(1)
    torch.save(dcgan.Generator(dcgan.make_layout(16, 0, 64, 3, ngf=4)).state_dict(), models_dir / "netG.pth")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(host, "_writable", lambda folder: Path(folder).resolve() != models_dir.resolve())
    load(nodes, "netG.pth")
    assert not (models_dir / "netG.pth.converted.safetensors").exists()
    assert len(list((tmp_path / "cache" / "comfyui-gan" / "converted").glob("netG.pth-*.converted.safetensors"))) == 1


def test_loader_refuses_a_malicious_pickle_by_name(nodes, models_dir, pack, tmp_path):
    marker = tmp_path / "PWNED"
    import pickle
    (models_dir / "evil.pkl").write_bytes(pickle.dumps({"G_ema": _Payload(f"touch {marker}")}, protocol=4))
    assert "evil.pkl" in nodes["ComfyGAN_LoadGANGenerator"].INPUT_TYPES()["required"]["checkpoint"][0]
    with pytest.raises(pack.gan_models.CheckpointError, match=r"refused to load global '(posix|os)\.system'"):
        load(nodes, "evil.pkl")
    assert not marker.exists() and not list(models_dir.glob("evil.pkl*.safetensors"))


def test_loader_takes_the_key_of_one_generator_among_several(nodes, models_dir, pack):
    torch.manual_seed(1)
    a = dcgan.Generator(dcgan.make_layout(16, 0, 64, 3, ngf=4)).state_dict()
    b = dcgan.Generator(dcgan.make_layout(16, 0, 64, 3, ngf=4)).state_dict()
    torch.save({"G1": a, "G2": b, "epoch": 3}, models_dir / "two.tar")
    with pytest.raises(pack.gan_models.CheckpointError, match=r"2 generators in this file: G1 .*G2 .*--key"):
        load(nodes, "two.tar")
    loader = nodes["ComfyGAN_LoadGANGenerator"]()
    G1, = loader.load("two.tar", "cpu", "float32", key="G1")
    G2, = loader.load("two.tar", "cpu", "float32", key="G2")
    z = torch.randn(1, 16)
    assert not torch.equal(G1(z), G2(z))  # the key is part of the cache's identity
    ref = dcgan.Generator(dcgan.make_layout(16, 0, 64, 3, ngf=4))
    ref.load_state_dict(b)
    assert torch.equal(G2(z), ref.eval()(z))
