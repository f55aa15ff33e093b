"""Image data as uint8 NCHW (training, FID reals, held-out inversion targets), with a resumable, seeded batch order.

Two sources: a folder of images (recursive; class labels from the first-level subfolder names when
there are subfolders) or the IDX files of (Fashion-)MNIST. Everything is decoded once, up front, into
memory or (train.py's default) into a cache file that is memory-mapped, so a training step never
waits on a decoder and never meets an undecodable file mid-run.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import checkpoint

# bump when what a data cache entry holds changes (decoding, resizing, layout)
DATA_CACHE_VERSION = 1

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
FITS = ("resize", "pad")  # how IDX images reach the resolution (load_idx)

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(i) for i in range(10)]


class DataError(ValueError):
    """A data path that cannot be trained on; the message says why."""


@dataclass
class Dataset:
    images: torch.Tensor            # uint8 [N, C, H, W]
    labels: torch.Tensor | None     # int64 [N], or None when unconditional
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    skipped: int = 0                # undecodable files left out

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def c_dim(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images in [-1, 1] float and labels for the given indices."""
        x = self.images[idx].float().div_(127.5).sub_(1.0)
        return x, (self.labels[idx] if self.labels is not None else None)


def _to_channels(img: Image.Image, channels: int) -> Image.Image:
    # Explicit conversions: PIL's own "L" from RGBA ignores alpha, so transparent pixels would keep
    # whatever colour they hide. Composite onto white first, the usual background of cut-outs.
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        if channels != 4:
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / max(arr.max(), 1.0) * 255.0
        img = Image.fromarray(arr.astype(np.uint8), "L")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    return img.convert(mode)


def _resize(img: Image.Image, resolution: int) -> Image.Image:
    if img.size == (resolution, resolution):
        return img
    # centre-crop to square first: stretching would change the shapes the GAN learns
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return img.resize((resolution, resolution), Image.LANCZOS)


def _in_memory(shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape, np.uint8)


def _image_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no PNG/JPEG/WebP images found (searched recursively)")
    return files


def _decode_into(out: np.ndarray, files: list[Path], resolution: int, channels: int) -> list[int]:
    """Decode `files` into the rows of `out` [N, C, H, W] in order, leaving out the undecodable ones
    (the rows they would have had stay at the end). Writing each image into its row, rather than
    stacking a list, keeps the peak memory at one copy of the data. Returns the indices decoded."""
    kept = []
    for i, p in enumerate(files):
        try:
            with Image.open(p) as im:
                im.load()
                arr = np.asarray(_resize(_to_channels(im, channels), resolution), dtype=np.uint8)
        except Exception:  # PIL raises several types for truncated/corrupt files
            continue
        out[len(kept)] = arr.reshape(resolution, resolution, channels).transpose(2, 0, 1)
        kept.append(i)
    return kept


def load_folder(path: Path, resolution: int, channels: int, files: list[Path] | None = None,
                alloc=None) -> Dataset:
    """`files`: the folder's images when already listed; `alloc(shape)`: where the pixels go (default
    a numpy array in memory; the data cache passes a file-backed one)."""
    files = _image_files(path) if files is None else files
    subdirs = {p.relative_to(path).parts[0] for p in files if len(p.relative_to(path).parts) > 1}
    at_top = [p for p in files if len(p.relative_to(path).parts) == 1]
    labelled = bool(subdirs)
    if labelled and at_top:
        warnings.warn(f"{path}: {len(at_top)} image(s) sit beside the class subfolders and have no "
                      f"label; they are ignored")
        files = [p for p in files if len(p.relative_to(path).parts) > 1]
    class_names = sorted(subdirs)
    cls_index = {n: i for i, n in enumerate(class_names)}
    out = (alloc or _in_memory)((len(files), channels, resolution, resolution))
    kept = _decode_into(out, files, resolution, channels)
    skipped = len(files) - len(kept)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} undecodable image file(s) of {len(files)}")
    if not kept:
        raise DataError(f"{path}: none of the {len(files)} image files could be decoded")
    images = torch.from_numpy(out[:len(kept)])
    lab = torch.tensor([cls_index[files[i].relative_to(path).parts[0]] for i in kept]) if labelled else None
    if labelled:
        present = set(lab.tolist())
        empty = [n for i, n in enumerate(class_names) if i not in present]
        if empty:
            raise DataError(f"{path}: class folder(s) {empty} hold no decodable image")
    return Dataset(images, lab, class_names if labelled else [], str(path), skipped)


def _open_idx(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format): magic 0x00 0x00 dtype ndim, big-endian dims, data."""
    raw = _open_idx(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path.name}: not an IDX file (bad magic)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise DataError(f"{path.name}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dt = np.dtype(dtypes[raw[2]])
    n = int(np.prod(dims)) if dims else 0
    body = raw[4 + 4 * ndim:]
    if len(body) < n * dt.itemsize:
        raise DataError(f"{path.name}: truncated ({len(body)} bytes for {n} elements of shape {dims})")
    return np.frombuffer(body, dt, n).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def is_idx_folder(path: Path) -> bool:
    return path.is_dir() and _find(path, "train-images-idx3-ubyte") is not None


def load_idx(path: Path, resolution: int, channels: int, split: str = "train",
             class_names: list[str] | None = None, alloc=None, fit: str = "resize") -> Dataset:
    """`fit`: "resize" scales the images to `resolution`; "pad" centres them on a black border (the
    usual 28 -> 32 px for (Fashion-)MNIST: no interpolation blur, and the 28 px content is untouched)."""
    stem = "train" if split == "train" else "t10k"
    img_path = _find(path, f"{stem}-images-idx3-ubyte")
    lab_path = _find(path, f"{stem}-labels-idx1-ubyte")
    if img_path is None:
        raise DataError(f"{path}: no {stem}-images-idx3-ubyte[.gz]")
    images = read_idx(img_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_path.name}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    labels = None
    if lab_path is not None:
        labels = read_idx(lab_path).astype(np.int64)
        if labels.shape != (images.shape[0],):
            raise DataError(f"{lab_path.name}: {labels.shape[0]} labels for {images.shape[0]} images")
    if channels not in (1, 3):
        raise DataError("IDX data is grayscale: train it with 1 or 3 channels")
    if fit not in FITS:
        raise DataError(f"unknown fit {fit!r}: use one of {', '.join(FITS)}")
    pad = resolution - images.shape[-1] if fit == "pad" else 0
    if pad < 0 or pad % 2 or (fit == "pad" and images.shape[-1] != images.shape[-2]):
        raise DataError(f"cannot pad {images.shape[-2]}x{images.shape[-1]} images to {resolution} px "
                        f"(needs a square image and an even difference): use fit 'resize'")
    if pad:
        images = np.pad(images, ((0, 0), (pad // 2, pad // 2), (pad // 2, pad // 2)))
    out = (alloc or _in_memory)((images.shape[0], channels, resolution, resolution))
    for i in range(0, images.shape[0], 4096):  # in chunks: a float copy of 70k images at 256 px is 18 GB
        x = torch.from_numpy(images[i:i + 4096].copy())[:, None]
        if x.shape[-1] != resolution:
            x = torch.nn.functional.interpolate(x.float(), size=(resolution, resolution), mode="bilinear",
                                                antialias=True, align_corners=False).round().clamp(0, 255).byte()
        out[i:i + x.shape[0]] = x.numpy()  # a grayscale row broadcasts over 3 channels
    names: list[str] = []
    lab = None
    if labels is not None:
        n_cls = int(labels.max()) + 1
        if class_names is None:
            # the files do not say which of the MNIST family they are; Fashion-MNIST folders say so in
            # their name (Debian: /usr/share/datasets/fashion-mnist)
            class_names = FASHION_MNIST_CLASSES if "fashion" in str(path).lower() else None
        names = list(class_names) if class_names and len(class_names) == n_cls else [str(i) for i in range(n_cls)]
        lab = torch.from_numpy(labels)
    return Dataset(torch.from_numpy(out), lab, names, str(path), 0)


def source_files(path: Path, split: str = "train") -> list[Path]:
    """The files a dataset folder is read from: the IDX files of `split`, or the images."""
    if not is_idx_folder(path):
        return _image_files(path)
    stem = "train" if split == "train" else "t10k"
    files = [f for kind, n in (("images", 3), ("labels", 1)) if (f := _find(path, f"{stem}-{kind}-idx{n}-ubyte"))]
    if not any("images" in f.name for f in files):
        raise DataError(f"{path}: no {stem}-images-idx3-ubyte[.gz] for the {split} split")
    return files


def fingerprint(path: Path, files: list[Path], desc: dict) -> str:
    """A key for what is derived from `files` (under `path`) as `desc` says: it changes with `desc`
    and with any file's name, size or modification time, so a stale cache entry is never read."""
    h = hashlib.sha256(json.dumps(desc, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:40]


def _open_cached(cache: Path, key: str) -> Dataset | None:
    try:
        meta = json.loads((cache / f"{key}.json").read_text())
        # copy-on-write: a writable array for torch, whose pages every process on the machine shares
        # through the page cache until one writes (none does)
        images = np.load(cache / f"{key}.npy", mmap_mode="c", allow_pickle=False)
        n = int(meta["count"])
        if images.dtype != np.uint8 or images.ndim != 4 or not 0 < n <= images.shape[0]:
            raise ValueError(f"{images.dtype} {images.shape} for {n} images")
    except (FileNotFoundError, NotADirectoryError):  # no entry yet (or no folder to hold one)
        return None
    except Exception as e:  # a foreign or damaged entry: decode again rather than fail
        warnings.warn(f"ignoring unreadable data cache entry {cache / key}: {e}")
        return None
    labels = torch.tensor(meta["labels"], dtype=torch.int64) if meta["labels"] is not None else None
    return Dataset(torch.from_numpy(images[:n]), labels, meta["class_names"], meta["source"], meta["skipped"])


@contextlib.contextmanager
def _building(cache: Path, key: str):
    """Held while one process builds an entry: the others that want it (the other ranks of a machine,
    another run sharing the cache) wait, then find it built. A temp file seen while holding it was
    left by a build that was killed, so it is removed. Where there is no flock (Windows, some network
    file systems), builders are not serialised: each writes its own temp file and renames it into
    place, which is still correct, and orphaned temp files stay."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{key}.lock", "a") as fh:
        try:
            import fcntl
            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):
            yield
            return
        for orphan in cache.glob(f".{key}.npy.*.tmp"):
            orphan.unlink(missing_ok=True)
        yield


def _cached(path: Path, resolution: int, channels: int, class_names, cache: Path, fit: str = "resize") -> Dataset:
    """The dataset decoded once into CACHE/KEY.npy and memory-mapped from there: a resumed run skips
    the decoding, the processes on one machine share one copy of the pixels, and a set larger than
    memory pages in from disk. The .npy is renamed into place before its .json is written, so an
    entry with a .json is whole; a kill during a build leaves a temp file that the next build removes."""
    files = source_files(path)
    key = fingerprint(path, files, {"v": DATA_CACHE_VERSION, "path": str(path.resolve()), "resolution": resolution,
                                    "channels": channels, "class_names": class_names,
                                    **({"fit": fit} if fit != "resize" else {})})
    ds = _open_cached(cache, key)
    if ds is not None:
        return ds
    built = {}

    def decode(tmp: str) -> None:
        def alloc(shape):
            built["out"] = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            return built["out"]
        ds = _decode(path, resolution, channels, class_names, files, alloc, fit)
        built.pop("out").flush()
        built["meta"] = {"count": len(ds), "labels": ds.labels.tolist() if ds.labels is not None else None,
                         "class_names": ds.class_names, "source": ds.source, "skipped": ds.skipped}
        # returning drops the last view of the file, so it is unmapped before the rename (Windows
        # refuses to rename a mapped file)

    try:
        with _building(cache, key):
            ds = _open_cached(cache, key)  # built by another process while this one waited
            if ds is not None:
                return ds
            checkpoint.atomic_write_bytes(cache / f"{key}.npy", decode)
            checkpoint.atomic_write_bytes(cache / f"{key}.json",
                                          lambda tmp: Path(tmp).write_text(json.dumps(built["meta"])))
    except OSError as e:  # a full disk or a read-only folder costs memory, not the run
        warnings.warn(f"could not write the data cache in {cache} ({e}); holding the images in memory")
        return _decode(path, resolution, channels, class_names, fit=fit)
    ds = _open_cached(cache, key)
    return ds if ds is not None else _decode(path, resolution, channels, class_names, fit=fit)


def _decode(path: Path, resolution: int, channels: int, class_names, files=None, alloc=None,
            fit: str = "resize") -> Dataset:
    if is_idx_folder(path):
        return load_idx(path, resolution, channels, class_names=class_names, alloc=alloc, fit=fit)
    if fit != "resize":
        raise DataError(f"fit {fit!r} is for IDX data; a folder of images is centre-cropped and resized")
    return load_folder(path, resolution, channels, files, alloc)


def load_dataset(path, resolution: int, channels: int = 1, class_names: list[str] | None = None,
                 cache_dir: str | Path | None = None, fit: str = "resize") -> Dataset:
    """A folder of images or of IDX files at `resolution` and `channels`, held in memory, or with
    `cache_dir` decoded once into that folder and memory-mapped from it (see _cached)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    if not path.is_dir():
        raise DataError(f"{path}: expected a folder of images or of IDX files")
    if channels not in (1, 3, 4):
        raise DataError(f"channels must be 1, 3 or 4, not {channels}")
    if cache_dir is not None:
        return _cached(path, resolution, channels, class_names, Path(cache_dir), fit)
    return _decode(path, resolution, channels, class_names, fit=fit)


class BatchOrder:
    """Epoch-wise shuffled indices from its own torch.Generator, so the data order is part of the
    snapshot and a resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, n: int, batch: int, seed: int):
        if n < 1:
            raise DataError("the dataset is empty")
        self.n, self.batch = n, batch
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.gen)
        self.pos = 0

    def next(self) -> torch.Tensor:
        out = []
        need = self.batch
        while need:
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
            if self.pos == self.n:
                self.perm = torch.randperm(self.n, generator=self.gen)
                self.pos = 0
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        self.gen.set_state(s["gen"])
        self.perm = s["perm"].clone()
        self.pos = int(s["pos"])
