"""Edit directions (gan_models.directions): SeFa against its closed form computed here, GANSpace
against sklearn's PCA of the same sampled w, layer ranges, the file, refusals, apply/sweep geometry,
and both command lines (directions and generate --edit/--sweep) on tiny StyleGAN2/StyleGAN3 files."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import gan_models
from gan_models import directions as D
from gan_models import latents as L
from gan_models.archs import dcgan, stylegan2, stylegan3
from gan_models.checkpoint import CheckpointError
from gan_models.generate import main as generate_main, synthesize
from gan_models.images import grid

ROOT = Path(__file__).resolve().parents[1]


def _uneven_rows(G, seed):
    """Affine rows scaled by factors from 0.2 to 5 and a non-zero w_avg: row normalisation then
    changes the answer, as it does for trained weights, so a SeFa without it fails the test."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("affine.weight"):
                p.mul_(torch.exp(torch.empty(p.shape[0], 1).uniform_(-1.6, 1.6, generator=g)))
        G.mapping.w_avg.normal_(generator=g)
    return G.eval().requires_grad_(False)


def sg2(c_dim=0, seed=0, architecture="skip"):
    torch.manual_seed(seed)
    G = stylegan2.Generator(z_dim=8, c_dim=c_dim, w_dim=16, img_resolution=32, img_channels=3,
                            mapping_kwargs={"num_layers": 2},
                            synthesis_kwargs={"channel_base": 256, "channel_max": 16,
                                              "architecture": architecture})
    return _uneven_rows(G, seed)


def sg3(c_dim=0, seed=0):
    torch.manual_seed(seed)
    G = stylegan3.Generator(z_dim=8, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=3,
                            channel_base=256, channel_max=16, num_layers=4)
    with torch.no_grad():  # the input affine starts at zero; trained ones are not
        G.synthesis.input.affine.weight.normal_()
    return _uneven_rows(G, seed)


MAKERS = {"sg2": sg2, "sg2-resnet": lambda **k: sg2(architecture="resnet", **k), "sg3": sg3}


def affine_ws(G):
    """{affine module name: the ws index it reads}, observed by perturbing one w at a time."""
    affines = {n: m for n, m in G.synthesis.named_modules() if n.endswith("affine")}
    ws = torch.randn(1, G.num_ws, G.w_dim)
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, i[0].detach().clone()))
             for n, m in affines.items()]
    with torch.no_grad():
        G.synthesis(ws)
    for h in hooks:
        h.remove()
    out = {}
    for n, x in seen.items():
        (j,) = [j for j in range(G.num_ws) if torch.equal(x.float(), ws[:, j])]
        out[n] = j
    assert set(out) == set(affines)
    return out


def is_style_affine(G, name):
    """The paper's style layers: not ToRGB (SG2 'torgb', SG3's last layer), not SG3's input transform."""
    if isinstance(G, stylegan2.Generator):
        return "torgb" not in name
    return name != "input.affine" and not name.startswith(G.synthesis.layer_names[-1])


def closed_form_sefa(G, layers):
    """SeFa as written in genforce/sefa, by SVD instead of eig: the right singular vectors of the
    row-normalised stacked affine weights are the eigenvectors of A^T A, the squared singular
    values its eigenvalues."""
    reads = affine_ws(G)
    sd = G.synthesis.state_dict()
    rows = [sd[f"{n}.weight"].double().numpy() for n, j in sorted(reads.items())
            if j in layers and is_style_affine(G, n)]
    A = np.concatenate(rows)
    A = (A.T / np.linalg.norm(A.T, axis=0, keepdims=True)).T  # the release's weight.T / norm(axis=0)
    _, s, vt = np.linalg.svd(A, full_matrices=False)
    return s ** 2, vt


def assert_same_axes(got, want, k):
    """Rows equal up to sign (the sign of an eigenvector is a convention)."""
    got, want = np.asarray(got, np.float64)[:k], np.asarray(want, np.float64)[:k]
    cos = np.abs((got * want).sum(1)) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 1 - 1e-6, cos


# ------------------------------------------------------------------------------------------------
# Finding directions

@pytest.mark.parametrize("arch", list(MAKERS))
def test_style_layers_name_the_w_each_affine_reads(arch):
    G = MAKERS[arch]()
    reads = affine_ws(G)
    listed = {f"{s.name}.affine": s.ws_index for s in D.style_layers(G)}
    assert listed == reads
    assert {f"{s.name}.affine" for s in D.style_layers(G) if s.is_style} == \
        {n for n in reads if is_style_affine(G, n)}


@pytest.mark.parametrize("arch,layers", [("sg2", "all"), ("sg2", "coarse"), ("sg2", "3-6"),
                                         ("sg2-resnet", "fine"), ("sg3", "all"), ("sg3", "middle")])
def test_sefa_equals_the_closed_form(arch, layers):
    G = MAKERS[arch]()
    idx = D.layer_range(G.num_ws, layers)
    vals, vecs = D.sefa(G, layers)
    want_vals, want_vecs = closed_form_sefa(G, idx)
    k = min(len(want_vals), G.w_dim)
    np.testing.assert_allclose(vals[:k].numpy(), want_vals[:k], rtol=1e-9, atol=1e-9)
    gaps = np.abs(np.diff(want_vals[:k]))
    k_distinct = int(np.argmax(gaps < 1e-6)) if (gaps < 1e-6).any() else k
    assert_same_axes(vecs, want_vecs, k_distinct)
    d = D.find_directions(G, "sefa", layers, samples=500)
    assert d.layers == idx and len(d) == k
    assert_same_axes(d.directions, want_vecs, k_distinct)


def test_sefa_differs_between_layer_ranges():
    G = sg2()
    assert not torch.allclose(D.sefa(G, "coarse")[1][0].abs(), D.sefa(G, "fine")[1][0].abs(), atol=1e-3)


@pytest.mark.parametrize("arch,c_dim", [("sg2", 0), ("sg2", 3), ("sg3", 0)])
def test_ganspace_equals_pca_of_the_sampled_w(arch, c_dim):
    from sklearn.decomposition import PCA
    G = MAKERS[arch](c_dim=c_dim)
    w = D.sample_w(G, 3000, seed=5).numpy()
    pca = PCA().fit(w)
    d = D.find_directions(G, "ganspace", "all", num=10, samples=3000, seed=5)
    assert_same_axes(d.directions, pca.components_, 10)
    np.testing.assert_allclose(d.std.numpy(), np.sqrt(pca.explained_variance_[:10]), rtol=1e-5)
    assert (d.std[:-1] >= d.std[1:]).all()


def test_sampled_w_is_the_mapping_of_seeded_z():
    G = sg2()
    w = D.sample_w(G, 1500, seed=3)
    z = torch.randn(1000, 8, generator=torch.Generator().manual_seed(3))  # the first chunk's z
    torch.testing.assert_close(w[:1000].float(), G.mapping(z, None)[:, 0])
    assert torch.equal(D.sample_w(G, 1500, seed=3), w) and not torch.equal(D.sample_w(G, 1500, seed=4), w)


def test_sefa_std_is_the_std_of_sampled_w_along_each_direction():
    G = sg3()
    d = D.find_directions(G, "sefa", "all", num=6, samples=2000, seed=1)
    w = D.sample_w(G, 2000, seed=1)
    want = (w @ d.directions.double().t()).std(0)
    torch.testing.assert_close(d.std.double(), want, rtol=1e-5, atol=0)


def test_directions_are_unit_orthogonal_signed_and_reproducible():
    G = sg2()
    for method in D.METHODS:
        a = D.find_directions(G, method, "all", samples=500)
        b = D.find_directions(G, method, "all", samples=500)
        assert torch.equal(a.directions, b.directions) and torch.equal(a.std, b.std)
        gram = a.directions.double() @ a.directions.double().t()
        torch.testing.assert_close(gram, torch.eye(len(a), dtype=torch.float64), atol=1e-5, rtol=0)
        top = a.directions.gather(1, a.directions.abs().argmax(1, keepdim=True))
        assert (top > 0).all()


def test_num_is_bounded_by_what_the_layers_can_give():
    G = sg2()  # ws 0 drives b4.conv1 alone: 16 rows, w_dim 16
    assert len(D.find_directions(G, "sefa", "0", samples=100)) == 16
    with pytest.raises(ValueError, match="at most 16"):
        D.find_directions(G, "sefa", "all", num=17, samples=100)
    with pytest.raises(ValueError, match="need more than w_dim=16"):
        D.find_directions(G, "ganspace", samples=16)
    with pytest.raises(ValueError, match="drive no style layer"):
        D.find_directions(G, "sefa", "7", samples=100)  # ws 7: the last ToRGB only
    with pytest.raises(ValueError, match="drive no style layer"):
        D.sefa(sg3(), "0")  # SG3's ws 0: the input transform only


# ------------------------------------------------------------------------------------------------
# Layer ranges

def test_layer_ranges_split_in_thirds_like_the_mixing_presets():
    assert D.layer_range(18, "coarse") == list(range(0, 6))
    assert D.layer_range(18, "middle") == list(range(6, 12))
    assert D.layer_range(18, "fine") == list(range(12, 18))
    assert D.layer_range(18, "all") == list(range(18))
    assert D.layer_range(18, "3-5") == [3, 4, 5] and D.layer_range(18, " 7 ") == [7]
    for n in (6, 8, 14, 16, 18):
        parts = [D.layer_range(n, s) for s in ("coarse", "middle", "fine")]
        assert sum(parts, []) == list(range(n)) and all(parts)
        assert parts[1][0] == L.mixing_presets(n)["middle"] and parts[2][0] == L.mixing_presets(n)["fine"]


@pytest.mark.parametrize("spec,msg", [("3-18", "reach past ws 17"), ("5-2", "backwards"), ("top", "use all"),
                                      ("-1", "use all"), ("1-2-3", "use all")])
def test_bad_layer_ranges_name_the_valid_range(spec, msg):
    with pytest.raises(ValueError, match=msg) as e:
        D.layer_range(18, spec)
    assert "0-17" in str(e.value)


# ------------------------------------------------------------------------------------------------
# Files and generator identity

def test_file_round_trip_and_header(tmp_path):
    G = sg2(c_dim=3)
    d = D.find_directions(G, "sefa", "coarse", num=5, samples=400, seed=2, name="g.safetensors")
    D.save_directions(tmp_path / "d.safetensors", d)
    assert [p.name for p in tmp_path.iterdir()] == ["d.safetensors"]  # no temp file left
    with safe_open(str(tmp_path / "d.safetensors"), framework="pt") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert keys == {"directions", "std"}
    assert set(meta) == {"format", "method", "layers", "layer_spec", "fingerprint", "sketch", "model", "arch",
                         "w_dim", "num_ws", "samples", "seed"}
    assert meta["format"] == "comfyui-gan-directions/1" and json.loads(meta["layers"]) == [0, 1, 2]
    back = D.load_directions(tmp_path / "d.safetensors")
    assert torch.equal(back.directions, d.directions) and torch.equal(back.std, d.std)
    assert (back.method, back.layers, back.fingerprint, back.w_dim, back.num_ws, back.model, back.layer_spec,
            back.samples, back.seed, back.sketch) == \
        ("sefa", [0, 1, 2], d.fingerprint, 16, 8, "g.safetensors", "coarse", 400, 2, d.sketch)
    assert back.file == "d.safetensors"


def _rewrite(src, dst, **change):
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    for k, v in change.items():
        if k in tensors:
            tensors[k] = v
        else:
            meta[k] = v
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_bad_files_are_refused_by_name(tmp_path):
    G = sg2()
    d = D.find_directions(G, "ganspace", num=4, samples=100)
    good = tmp_path / "good.safetensors"
    D.save_directions(good, d)
    nan = d.directions.clone()
    nan[1, 2] = float("nan")
    cases = {
        "nan": (dict(directions=nan), "NaN or infinite"),
        "inf": (dict(std=torch.tensor([1.0, math.inf, 1.0, 1.0])), "NaN or infinite"),
        "long": (dict(directions=d.directions * 2), "not unit vectors"),
        "shape": (dict(std=d.std[:3]), "one per direction"),
        "wdim": (dict(w_dim="32"), r"\[K, w_dim=32\]"),
        "method": (dict(method="magic"), "unknown method"),
        "layers": (dict(layers="[0, 9]"), "outside 0-7"),
        "format": (dict(format="something/1"), "not a comfyui-gan directions file"),
        "json": (dict(layers="[0,"), "malformed header"),
    }
    for name, (change, msg) in cases.items():
        path = _rewrite(good, tmp_path / f"{name}.safetensors", **change)
        with pytest.raises(CheckpointError, match=msg) as e:
            D.load_directions(path)
        assert f"{name}.safetensors" in str(e.value)
    lat = L.sample(G, [1])
    L.save_latent(tmp_path / "lat.safetensors", lat)
    with pytest.raises(CheckpointError, match="lat.safetensors: not a comfyui-gan directions file"):
        D.load_directions(tmp_path / "lat.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.safetensors: not a readable safetensors file"):
        D.load_directions(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="none.safetensors: no such directions file"):
        D.load_directions(tmp_path / "none.safetensors")


def test_fingerprint_survives_save_load_and_tells_models_apart(tmp_path):
    G = sg3()
    gan_models.save_generator(tmp_path / "g.safetensors", G, {"arch": "stylegan3"})
    H = gan_models.load_generator(tmp_path / "g.safetensors")
    assert D.fingerprint(H) == D.fingerprint(G)
    assert re.fullmatch(r"[0-9a-f]{16}", D.fingerprint(G))
    assert D.fingerprint(sg3(seed=1)) != D.fingerprint(G)
    with torch.no_grad():  # one style weight changed: another model
        H.synthesis.L1_36_16.affine.weight[0, 0] += 1e-3
    assert D.fingerprint(H) != D.fingerprint(G)


def test_directions_from_another_generator_are_refused_by_name(tmp_path):
    a, b = sg2(seed=0), sg2(seed=1)
    d = D.find_directions(a, "sefa", samples=100, name="a.safetensors")
    D.save_directions(tmp_path / "dirs.safetensors", d)
    d = D.load_directions(tmp_path / "dirs.safetensors")
    lat = L.sample(b, [0, 1])
    with pytest.raises(ValueError, match=r"the directions in dirs.safetensors were found on a.safetensors "
                                         r"\(fingerprint [0-9a-f]{16}\), not on b.safetensors"):
        D.check_generator(b, d, "b.safetensors")
    with pytest.raises(ValueError, match="not on this generator"):
        D.apply(b, lat, d, 0, 1.0)
    with pytest.raises(ValueError, match="w_dim=16, 6 ws"):
        D.apply(sg3(), L.sample(sg3(), [0]), d, 0, 1.0)
    D.apply(a, L.sample(a, [0]), d, 0, 1.0)  # its own generator is fine


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_copy_of_the_same_weights_is_accepted(dtype):
    G = sg2()
    d = D.find_directions(G, "sefa", samples=100)
    H = sg2().to(dtype)
    assert D.fingerprint(H) != d.fingerprint  # the digest sees the rounding ...
    D.check_generator(H, d)  # ... the sketch does not
    with pytest.raises(ValueError, match="fingerprint"):
        D.check_generator(sg2(seed=1).to(dtype), d)


# ------------------------------------------------------------------------------------------------
# Applying

@pytest.mark.parametrize("arch", ["sg2", "sg3"])
def test_apply_moves_w_by_strength_std_direction_on_its_layers_only(arch):
    G = MAKERS[arch](c_dim=0)
    d = D.find_directions(G, "sefa", "middle", num=4, samples=300)
    lat = L.sample(G, [3, 4, 5])
    w = L.to_w(G, lat)
    out = D.apply(G, lat, d, 2, -1.5)
    assert out.space == "w" and out.seeds == [3, 4, 5]
    delta = out.values - w.values
    want = -1.5 * d.std[2] * d.directions[2]
    for j in range(G.num_ws):
        torch.testing.assert_close(delta[:, j], (want if j in d.layers else torch.zeros_like(want)).expand(3, -1),
                                   atol=1e-6, rtol=0)
    # chainable, and explicit layers override the file's
    twice = D.apply(G, out, d, 0, 2.0, layers=[0])
    torch.testing.assert_close(twice.values[:, 0] - out.values[:, 0], (2.0 * d.std[0] * d.directions[0]).expand(3, -1))
    torch.testing.assert_close(twice.values[:, 1:], out.values[:, 1:])
    assert torch.equal(D.apply(G, w, d, 1, 0.0).values, w.values)


def test_apply_keeps_the_class_of_a_conditional_latent():
    G = sg2(c_dim=3)
    d = D.find_directions(G, "ganspace", num=3, samples=200)
    lat = L.sample(G, [0, 1], classes=[2, 0])
    out = D.apply(G, lat, d, 0, 1.0)
    assert torch.equal(out.c, lat.c)
    torch.testing.assert_close(out.values - L.to_w(G, lat).values, (d.std[0] * d.directions[0]).expand(2, 8, -1))


@pytest.mark.parametrize("frames", [5, 4])
def test_sweep_is_frame_major_from_minus_to_plus_strength(frames):
    G = sg3()
    d = D.find_directions(G, "ganspace", num=3, samples=200)
    lat = L.sample(G, [7, 8])
    w = L.to_w(G, lat)
    out = D.sweep(G, lat, d, 1, 3.0, frames)
    assert len(out) == 2 * frames and out.seeds == [7, 8] * frames
    step = d.std[1] * d.directions[1]
    for f in range(frames):
        t = 3.0 * (2 * f / (frames - 1) - 1)
        torch.testing.assert_close(out.values[2 * f: 2 * f + 2], w.values + t * step, atol=1e-6, rtol=0)
    if frames % 2:
        assert torch.equal(out.values[frames - 1: frames + 1], w.values)  # the middle frame is the input
    with pytest.raises(ValueError, match="at least 2 frames"):
        D.sweep(G, lat, d, 1, 3.0, 1)


@pytest.mark.parametrize("strength", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_strength_is_refused(strength):
    G = sg2()
    d = D.find_directions(G, "sefa", num=2, samples=100)
    with pytest.raises(ValueError, match="strength must be a finite number"):
        D.apply(G, L.sample(G, [0]), d, 0, strength)
    with pytest.raises(ValueError, match="strength must be a finite number"):
        D.sweep(G, L.sample(G, [0]), d, 0, strength, 5)


def test_index_out_of_range_is_refused():
    G = sg2()
    d = D.find_directions(G, "sefa", num=2, samples=100)
    for bad, msg in ((2, r"direction 2 is out of range: .* has 2 \(0..1\)"), (-1, "out of range"),
                     (True, "whole number"), (1.5, "whole number")):
        with pytest.raises(ValueError, match=msg):
            D.apply(G, L.sample(G, [0]), d, bad, 1.0)


def test_dcgan_and_translators_are_refused_by_name():
    from gan_models.archs.translators import build_resnet_translator
    G = dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=4)).eval()
    G.arch_name = "dcgan"
    T = build_resnet_translator(3, 3, ngf=4, n_blocks=1)
    T.arch_name = "resnet_translator"
    with pytest.raises(ValueError, match="dcgan has no W space"):
        D.find_directions(G)
    with pytest.raises(ValueError, match="resnet_translator is an image-to-image translator"):
        D.find_directions(T)
    d = D.find_directions(sg2(), "sefa", num=2, samples=100)
    with pytest.raises(ValueError, match="dcgan has no W space"):
        D.apply(G, L.sample(G, [0]), d, 0, 1.0)


def test_parse_edit():
    assert D.parse_edit("dirs.safetensors:3:-2.5") == ("dirs.safetensors", 3, -2.5)
    assert D.parse_edit("odd:name.safetensors:0:1e-1") == ("odd:name.safetensors", 0, 0.1)
    for spec, msg in (("dirs.safetensors", "expected DIRS"), ("dirs.safetensors:1", "expected DIRS"),
                      (":1:2", "expected DIRS"), ("d:x:2", "index 'x' is not a whole number"),
                      ("d:1:big", "strength 'big' is not a number"), ("d:1:nan", "finite"),
                      ("d:1:-inf", "finite"), ("d:-1:2", "0 or more")):
        with pytest.raises(ValueError, match=msg):
            D.parse_edit(spec)


# ------------------------------------------------------------------------------------------------
# Command lines

@pytest.fixture()
def files(tmp_path):
    gan_models.save_generator(tmp_path / "sg2.safetensors", sg2(c_dim=3), {"arch": "stylegan2"})
    gan_models.save_generator(tmp_path / "sg3.safetensors", sg3(), {"arch": "stylegan3"})
    gan_models.save_generator(tmp_path / "dcgan.safetensors", dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=4)),
                              {"arch": "dcgan"})
    from gan_models.archs.translators import build_resnet_translator
    gan_models.save_generator(tmp_path / "t.safetensors", build_resnet_translator(3, 3, ngf=4, n_blocks=1),
                              {"arch": "resnet_translator", "kind": "translator"})
    return tmp_path


def test_directions_cli_writes_what_the_library_finds(files, capsys):
    out = files / "d.safetensors"
    assert D.main([str(files / "sg2.safetensors"), "--method", "sefa", "--layers", "coarse", "--num", "6",
                   "--samples", "300", "--seed", "4", "--out", str(out), "--device", "cpu"]) == 0
    said = capsys.readouterr()
    assert "6 sefa directions for ws 0-2 (coarse) of sg2.safetensors" in said.out and "sampling w" in said.err
    G = gan_models.load_generator(files / "sg2.safetensors")
    want = D.find_directions(G, "sefa", "coarse", 6, 300, 4)
    got = D.load_directions(out)
    assert torch.equal(got.directions, want.directions) and torch.equal(got.std, want.std)
    assert got.model == "sg2.safetensors" and got.fingerprint == D.fingerprint(G)
    assert D.main([str(files / "sg3.safetensors"), "--method", "ganspace", "--layers", "2-4", "--samples", "200",
                   "--out", str(files / "g.safetensors")]) == 0
    g = D.load_directions(files / "g.safetensors")
    assert (g.method, g.layers, len(g)) == ("ganspace", [2, 3, 4], 16)


@pytest.mark.parametrize("ckpt,args,msg", [
    ("dcgan.safetensors", [], "dcgan has no W space"),
    ("t.safetensors", [], "resnet_translator is an image-to-image translator"),
    ("sg3.safetensors", ["--layers", "0-9"], "reach past ws 5"),
    ("sg3.safetensors", ["--num", "0"], "--num: 0 must be at least 1"),
    ("sg3.safetensors", ["--out", "d.pt"], "must end in .safetensors"),
    ("none.safetensors", [], "checkpoint not found"),
])
def test_directions_cli_errors_exit_2(files, capsys, ckpt, args, msg):
    out = [] if "--out" in args else ["--out", str(files / "d.safetensors")]
    try:
        rc = D.main([str(files / ckpt), "--samples", "100", *args, *out])
    except SystemExit as e:  # argparse refuses a bad number itself, with the same status
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "error: " in err and msg in err and "sampling w" not in err
    assert not (files / "d.safetensors").exists()


def test_directions_module_help():
    r = subprocess.run([sys.executable, "-m", "gan_models.directions", "--help"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0 and "--method" in r.stdout and "--layers" in r.stdout and "--device" in r.stdout


def _grid_of(G, lat, nrow=None):
    return grid(synthesize(G, lat, noise_mode="const"), nrow)


def test_generate_edit_renders_the_edited_latents(files):
    G = gan_models.load_generator(files / "sg2.safetensors")
    d = D.find_directions(G, "sefa", "all", num=4, samples=200, name="sg2.safetensors")
    D.save_directions(files / "d.safetensors", d)
    out = files / "e.png"
    assert generate_main([str(files / "sg2.safetensors"), "--seeds", "0-2", "--class", "1", "--trunc", "0.7",
                          "--edit", f"{files / 'd.safetensors'}:0:2", "--edit", f"{files / 'd.safetensors'}:3:-1",
                          "--out", str(out)]) == 0
    w = L.to_w(G, L.sample(G, [0, 1, 2], 1), 0.7)  # truncated first, then edited: strengths stay in std
    w = D.apply(G, D.apply(G, w, d, 0, 2.0), d, 3, -1.0)
    assert np.array_equal(np.asarray(Image.open(out)), _grid_of(G, w))
    plain = files / "p.png"
    assert generate_main([str(files / "sg2.safetensors"), "--seeds", "0-2", "--class", "1", "--trunc", "0.7",
                          "--out", str(plain)]) == 0
    assert not np.array_equal(np.asarray(Image.open(plain)), np.asarray(Image.open(out)))


def test_generate_sweep_writes_frames_or_one_animation(files):
    G = gan_models.load_generator(files / "sg3.safetensors")
    D.save_directions(files / "d.safetensors", D.find_directions(G, "ganspace", num=3, samples=200))
    spec = f"{files / 'd.safetensors'}:1:2.5"
    assert generate_main([str(files / "sg3.safetensors"), "--seeds", "0-3", "--sweep", spec, "--frames", "5",
                          "--out", str(files / "frames")]) == 0
    names = sorted(p.name for p in (files / "frames").iterdir())
    assert names == [f"frame_{i:04d}.png" for i in range(5)]
    assert generate_main([str(files / "sg3.safetensors"), "--seeds", "0-3", "--out", str(files / "plain.png")]) == 0
    # the middle of an odd sweep is the unedited grid, pixel for pixel
    assert np.array_equal(np.asarray(Image.open(files / "frames" / "frame_0002.png")),
                          np.asarray(Image.open(files / "plain.png")))
    assert not np.array_equal(np.asarray(Image.open(files / "frames" / "frame_0000.png")),
                              np.asarray(Image.open(files / "frames" / "frame_0004.png")))
    for suffix in ("gif", "webp"):
        anim = files / f"sweep.{suffix}"
        assert generate_main([str(files / "sg3.safetensors"), "--seeds", "0-3", "--sweep", spec, "--frames", "4",
                              "--out", str(anim)]) == 0
        assert Image.open(anim).n_frames == 4


def test_generate_edit_errors_exit_2(files, capsys):
    G = gan_models.load_generator(files / "sg2.safetensors")
    D.save_directions(files / "d2.safetensors", D.find_directions(G, "sefa", num=2, samples=100,
                                                                  name="sg2.safetensors"))
    d2 = files / "d2.safetensors"
    cases = [
        ("sg3.safetensors", ["--edit", f"{d2}:0:1"], "were found on sg2.safetensors", "not on sg3.safetensors"),
        ("sg2.safetensors", ["--edit", f"{d2}:0:nan"], "finite", ""),
        ("sg2.safetensors", ["--edit", f"{d2}:5:1"], "direction 5 is out of range", ""),
        ("sg2.safetensors", ["--edit", f"{d2}:x:1"], "not a whole number", ""),
        ("sg2.safetensors", ["--edit", str(d2)], "expected DIRS.safetensors:INDEX:STRENGTH", ""),
        ("sg2.safetensors", ["--edit", f"{files / 'no.safetensors'}:0:1"], "no such directions file", ""),
        ("sg2.safetensors", ["--sweep", f"{d2}:0:inf"], "finite", ""),
        ("sg2.safetensors", ["--sweep", f"{d2}:0:1", "--out", str(files / "s.png")], "must be a folder", ""),
        ("sg2.safetensors", ["--sweep", f"{d2}:0:1", "--frames", "1"], "at least 2 frames", ""),
        ("dcgan.safetensors", ["--edit", f"{d2}:0:1"], "dcgan has no W space", ""),
    ]
    for ckpt, args, msg, msg2 in cases:
        out = [] if "--out" in args else ["--out", str(files / ("out" if "--sweep" in args else "out.png"))]
        label = ["--class", "0"] if ckpt == "sg2.safetensors" else []
        assert generate_main([str(files / ckpt), "--seeds", "0-1", *label, *args, *out]) == 2
        err = capsys.readouterr().err
        assert msg in err and msg2 in err, (args, err)
    assert not any((files / n).exists() for n in ("s.png", "out", "out.png"))
