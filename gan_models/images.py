"""Image tensors to pictures: range conversion and sample grids, shared by the CLIs and training."""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from .checkpoint import OutputPathError, atomic_write_bytes, check_output_path


def to_unit(x: torch.Tensor, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """NCHW in [lo, hi] -> NCHW float in [0, 1]."""
    return ((x.float() - lo) / (hi - lo)).clamp(0, 1)


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """NCHW in [-1, 1] -> uint8 NHWC (grayscale stays one channel)."""
    return (to_unit(x) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """NCHW in [-1, 1] -> one uint8 HWC picture with nrow images per row (square-ish by default)."""
    arr = to_uint8_hwc(images)
    n, h, w, c = arr.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = arr[i]
    return out


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """An image file as float32 [H, W, C] in 0..255 with C = 1, 3 or 4 as stored (palette and other
    modes become RGB or RGBA); a file Pillow cannot read is a ValueError naming it."""
    from PIL import UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            arr = np.asarray(im, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{os.fspath(path)}: not an image Pillow can read ({e})") from e
    return arr[..., None] if arr.ndim == 2 else arr


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format a picture path's suffix asks for, refused by name where Pillow has no writer:
    PNG bytes under a name that says otherwise would mislead every program that opens it."""
    path = check_output_path(path)
    Image.init()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        known = sorted(e for e, f in Image.registered_extensions().items() if f in Image.SAVE)
        raise OutputPathError(f"{path}: {path.suffix or 'no suffix'} is not an image format Pillow can write "
                              f"(for example {', '.join(e for e in ('.png', '.jpg', '.webp') if e in known)})")
    return fmt


def save_image(arr: np.ndarray, path: str | os.PathLike) -> None:
    """Save an HWC uint8 array (1, 3 or 4 channels) atomically; the format follows the suffix."""
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    fmt = image_format(path)

    def write(tmp):
        try:
            img.save(tmp, format=fmt)
        except (OSError, ValueError, KeyError) as e:  # e.g. RGBA as JPEG
            raise OutputPathError(f"{path}: Pillow cannot write a {img.mode} picture as {fmt} ({e})") from e
    atomic_write_bytes(path, write)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> None:
    save_image(grid(images, nrow), path)
