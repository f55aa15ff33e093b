"""Run an image-to-image translator over ComfyUI images of any size, in bounded memory.

Images come and go as ComfyUI's IMAGE: a float tensor [N, H, W, C] in 0..1 on the CPU. Each frame is
reflect-padded to the translator's `size_multiple` and cropped back, so every size comes back exactly.
A frame whose activations would not fit `memory_budget_mb` is split into overlapping tiles, blended
with linear-ramp (feathered) weights. Batches go through in chunks, so a long video never holds more
than one chunk's activations at a time.

Channels: the translator's input and output are RGB (3) or grayscale (1); a 4th (alpha) channel of the
input is set aside and put back unchanged. Grayscale images given to an RGB model are repeated to
3 channels; RGB images given to a grayscale model are turned to luma (ITU-R BT.601). The result is RGB
if the model's output or the input is RGB, else grayscale.
"""
from __future__ import annotations

import copy
import math
import sys
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import autotune
from .archs.translators import ResnetTranslator, inference_copy

_LUMA = (0.299, 0.587, 0.114)


def _conv_widths(T: nn.Module) -> list[int]:
    return [m.out_channels for m in T.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def _model_channels(T: nn.Module) -> tuple[int, int]:
    convs = [m for m in T.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    c_in = getattr(T, "in_channels", None) or (convs[0].in_channels if convs else None)
    c_out = getattr(T, "img_channels", None) or (convs[-1].out_channels if convs else None)
    if c_in is None or c_out is None:
        raise ValueError("translate: cannot tell the translator's channel counts; give it in_channels "
                         "and img_channels attributes")
    return int(c_in), int(c_out)


def activation_bytes(T: nn.Module, height: int, width: int, batch: int = 1) -> int:
    """The translator's own estimate when it has one, else 3 tensors of its widest conv output at full
    resolution: 4 * batch * H * W * 3 * max(conv widths)."""
    if hasattr(T, "activation_bytes"):
        return int(T.activation_bytes(height, width, batch))
    return 4 * batch * height * width * 3 * max(_conv_widths(T) or [64])


# Larger frames are timed on a crop of this side: the convolutions' relative speed has settled by then,
# and timing three paths on a full 4K frame would cost more than the choice saves.
_TIMING_SIDE = 256


def fastest_cpu_path(T: nn.Module, shape: tuple[int, int, int, int], dtype: torch.dtype) -> nn.Module:
    """T, or a copy of it computing the same outputs, whichever ran fastest on this machine for one
    pass of `shape`: as it is, channels-last, or (a float32 ResNet translator) with Winograd 3x3
    convolutions. Which wins depends on the CPU: Winograd ran 1.8x upstream on one 2-core Xeon and
    1.03x on another 2-core CPU, where channels-last gave 1.21x. Timed once per (model widths, shape,
    dtype, threads) in a process (`autotune.fastest`)."""
    n, c, h, w = shape
    shape = (1, c, min(h, _TIMING_SIDE), min(w, _TIMING_SIDE))
    m = int(getattr(T, "size_multiple", 1))
    key = ("translator", type(T).__name__, tuple(_conv_widths(T)), shape, str(dtype))
    makers = {"eager": lambda: T,
              "channels_last": lambda: copy.deepcopy(T).to(memory_format=torch.channels_last)}
    if isinstance(T, ResnetTranslator) and dtype == torch.float32:
        makers["winograd"] = lambda: inference_copy(T)
    # a copy is made once per model, not once per call, and again if its weights were changed in place
    # (an inference tensor, as ComfyUI loads models, keeps no version counter: its storage stands in)
    version = tuple(q.data_ptr() if q.is_inference() else q._version for q in T.parameters())
    if _PREPARED.get(T, (None,))[0] != version:
        _PREPARED[T] = (version, {})
    made = _PREPARED[T][1]

    def path(k):
        if k not in made:
            made[k] = makers[k]()
        return made[k]

    name = autotune.chosen(key)
    if name is None:
        x = torch.rand(shape, dtype=dtype).mul_(2).sub_(1)
        with torch.inference_mode():
            name = autotune.fastest(key, {k: (lambda k=k: _run(path(k), x, m)) for k in makers})
    return path(name)


# the prepared copies of each translator, dropped with it
_PREPARED: "weakref.WeakKeyDictionary[nn.Module, tuple[int, dict]]" = weakref.WeakKeyDictionary()


def _reflect_index(n: int, before: int, after: int, device) -> torch.Tensor:
    # Mirror without repeating the edge, like ReflectionPad2d, but for pads longer than the image too.
    i = torch.arange(-before, n + after, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i < n, i, period - i)


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad NCHW x so H and W are multiples of `multiple` (and at least min_size), split evenly
    between both sides. Returns the padded tensor and the (top, left) offset of the original in it."""
    h, w = x.shape[-2:]
    ph = max(min_size, h + (-h) % multiple) - h
    pw = max(min_size, w + (-w) % multiple) - w
    ph, pw = ph + (-(h + ph)) % multiple, pw + (-(w + pw)) % multiple
    if not ph and not pw:
        return x, (0, 0)
    top, left = ph // 2, pw // 2
    x = x.index_select(-2, _reflect_index(h, top, ph - top, x.device))
    x = x.index_select(-1, _reflect_index(w, left, pw - left, x.device))
    return x, (top, left)


def _run(T, x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    xp, (top, left) = pad_to_multiple(x, multiple, int(getattr(T, "min_size", 1)))
    return T(xp)[..., top:top + h, left:left + w]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(n: int, ramp_before: bool, ramp_after: bool, overlap: int, device) -> torch.Tensor:
    w = torch.ones(n, device=device)
    k = min(overlap, n // 2)
    if k:
        up = torch.arange(1, k + 1, device=device, dtype=torch.float32) / (k + 1)
        if ramp_before:
            w[:k] = up
        if ramp_after:
            w[n - k:] = up.flip(0)
    return w


def tile_shape(T, height: int, width: int, budget_bytes: int, max_tile: int | None,
               overlap: int) -> tuple[int, int]:
    """The largest tile (multiple of size_multiple) whose activations fit the budget."""
    m = int(getattr(T, "size_multiple", 1))
    per_px = activation_bytes(T, 64, 64) / (64 * 64)
    area = budget_bytes / per_px
    cap = max_tile if max_tile is not None else 1 << 30
    up = lambda v: -(-v // m) * m  # noqa: E731
    down = lambda v: max(m, int(v) // m * m)  # noqa: E731
    th = tw = down(min(cap, math.sqrt(area)))
    # a side that fits whole gives its unused area to the other side
    if up(height) <= th:
        th = up(height)
        tw = down(min(cap, area / th))
    elif up(width) <= tw:
        tw = up(width)
        th = down(min(cap, area / tw))
    th, tw = min(th, up(height)), min(tw, up(width))
    if per_px * th * tw > budget_bytes:
        raise MemoryError(f"translate: memory budget of {budget_bytes / 2**20:.0f} MB is too small for even "
                          f"one {th}x{tw} tile of this translator ({per_px * th * tw / 2**20:.0f} MB)")
    if (th < height and th <= overlap) or (tw < width and tw <= overlap):
        raise ValueError(f"translate: tiles of {th}x{tw} are not larger than tile_overlap={overlap}; "
                         f"raise the memory budget / max_tile or lower the overlap")
    return th, tw


class FrameNormStats:
    """Make every InstanceNorm of T normalise tiles with statistics of the whole frame.

    An InstanceNorm normalises by the mean and variance of the whole input; run on a tile alone it
    uses the tile's, so neighbouring tiles get different colours and contrast. `record(frame)` runs T
    once on the whole frame scaled down to fit in memory and keeps each InstanceNorm's per-channel mean
    and variance (spatial averages, which survive the down-scaling well); inside `applied()` the
    InstanceNorms use those instead of their tile's."""

    def __init__(self, T: nn.Module):
        self.T = T
        self.norms = [m for m in T.modules() if isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats]
        self.stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(self, frame: torch.Tensor, budget_bytes: int) -> None:
        h, w = frame.shape[-2:]
        m = int(getattr(self.T, "size_multiple", 1))
        per_px = activation_bytes(self.T, 64, 64) / (64 * 64)
        s = min(1.0, math.sqrt(budget_bytes / per_px / (h * w)))
        if s < 1.0:
            frame = F.interpolate(frame, (max(m, round(h * s)), max(m, round(w * s))), mode="bilinear",
                                  align_corners=False, antialias=True)

        def keep(mod, inputs, output):
            var, mean = torch.var_mean(inputs[0], dim=(2, 3), correction=0, keepdim=True)
            self.stats[mod] = (mean, var)

        hooks = [n.register_forward_hook(keep) for n in self.norms]
        try:
            _run(self.T, frame, m)
        finally:
            for hk in hooks:
                hk.remove()

    @staticmethod
    def _apply(stats, mod, inputs, output):
        mean, var = stats[mod]
        y = (inputs[0] - mean) * torch.rsqrt(var + mod.eps)
        if mod.affine:
            y = y * mod.weight[:, None, None] + mod.bias[:, None, None]
        return y

    def applied(self):
        import contextlib

        @contextlib.contextmanager
        def ctx():
            hooks = [n.register_forward_hook(lambda mod, i, o: self._apply(self.stats, mod, i, o))
                     for n in self.norms]
            try:
                yield
            finally:
                for hk in hooks:
                    hk.remove()
        return ctx()


def translate_tiled(T, x: torch.Tensor, tile: tuple[int, int], overlap: int,
                    check_interrupt: Callable[[], None] | None = None,
                    budget_bytes: int | None = None) -> torch.Tensor:
    """T over one NCHW frame (batch 1) in overlapping tiles blended with linear-ramp weights: inside an
    overlap each tile's weight falls from 1 to 0 towards its own edge, so seams fade instead of cut.
    InstanceNorms use whole-frame statistics (see FrameNormStats)."""
    n, _, h, w = x.shape
    th, tw = tile
    m = int(getattr(T, "size_multiple", 1))
    norm_stats = FrameNormStats(T)
    if norm_stats.norms:
        norm_stats.record(x, budget_bytes or activation_bytes(T, th, tw))
    out, weight = None, torch.zeros(1, 1, h, w, device=x.device, dtype=x.dtype)
    ys, xs = _starts(h, th, overlap), _starts(w, tw, overlap)
    for y0 in ys:
        for x0 in xs:
            if check_interrupt is not None:
                check_interrupt()
            y1, x1 = min(h, y0 + th), min(w, x0 + tw)
            if norm_stats.norms:
                with norm_stats.applied():
                    y = _run(T, x[..., y0:y1, x0:x1], m)
            else:
                y = _run(T, x[..., y0:y1, x0:x1], m)
            if out is None:
                out = torch.zeros(n, y.shape[1], h, w, device=x.device, dtype=x.dtype)
            wy = _ramp(y1 - y0, y0 > 0, y1 < h, overlap, x.device)
            wx = _ramp(x1 - x0, x0 > 0, x1 < w, overlap, x.device)
            wt = (wy[:, None] * wx[None, :]).to(x.dtype)
            out[..., y0:y1, x0:x1] += y * wt
            weight[..., y0:y1, x0:x1] += wt
    return out.div_(weight)


def _split_alpha(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    c = img.shape[-1]
    if c in (1, 3):
        return img, None
    if c in (2, 4):
        return img[..., :c - 1], img[..., c - 1:]
    raise ValueError(f"translate: images must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels, "
                     f"not {c}")


def _to_channels(img: torch.Tensor, c: int) -> torch.Tensor:
    """NHWC colour (1 or 3 channels) to c channels: gray repeated to RGB, RGB to BT.601 luma."""
    have = img.shape[-1]
    if have == c:
        return img
    if have == 1 and c == 3:
        return img.expand(*img.shape[:-1], 3)
    if have == 3 and c == 1:
        return (img * img.new_tensor(_LUMA)).sum(-1, keepdim=True)
    raise ValueError(f"translate: cannot feed {have}-channel images to a translator with {c} input channels")


def translate(T: nn.Module, images: torch.Tensor, *, strength: float = 1.0,
              process_resolution: int | None = None, max_tile: int | None = None, tile_overlap: int = 32,
              memory_budget_mb: float = 2048, chunk: int = 4,
              progress: Callable[[int, int], None] | None = None,
              check_interrupt: Callable[[], None] | None = None, fast: bool | None = None) -> torch.Tensor:
    """Translate ComfyUI images [N, H, W, C] in 0..1 with T (NCHW in [-1, 1] -> same).

    strength: 0 returns the input, 1 the translation, between them a linear blend.
    process_resolution: translate at this size of the longer side, then resize back to H x W.
    max_tile: largest tile side; tiles are also made small enough for memory_budget_mb.
    chunk: frames per pass; progress(done, total) and check_interrupt() run between chunks (and
    check_interrupt between tiles), so ComfyUI can show progress and cancel.
    fast: True runs a ResNet translator through `inference_copy` (Winograd 3x3 convolutions, equal
    to about 1e-5), False as it is; None (default) on the CPU takes whichever of those and a
    channels-last copy ran fastest here (`fastest_cpu_path`), on other devices the model as it is.
    """
    if getattr(T, "kind", "translator") == "generator":
        raise TypeError(f"translate: {getattr(T, 'arch_name', type(T).__name__)} is a noise-to-image "
                        f"generator (it takes z, not an image); use an image-to-image translator")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"translate: images must be a [N, H, W, C] tensor, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"translate: strength must be in [0, 1], not {strength}")
    if chunk < 1 or tile_overlap < 0 or not memory_budget_mb > 0:
        raise ValueError("translate: chunk must be >= 1, tile_overlap >= 0 and memory_budget_mb > 0")
    if process_resolution is not None and process_resolution < 1:
        raise ValueError(f"translate: process_resolution must be positive, not {process_resolution}")
    if 0 in images.shape[:3]:  # an empty batch or a 0-pixel side: nothing to tile, resize or blend
        raise ValueError(f"translate: empty images {list(images.shape)} (N, H, W must each be at least 1)")
    images = images.float()
    n, h, w, _ = images.shape
    colour, alpha = _split_alpha(images)
    c_in, c_out = _model_channels(T)
    if c_in not in (1, 3) and c_in != colour.shape[-1]:
        raise ValueError(f"translate: the translator takes {c_in} channels; images have {colour.shape[-1]}")
    c_res = 3 if 3 in (c_out, colour.shape[-1]) else c_out
    if strength == 0.0 and c_res == colour.shape[-1]:
        return images.clone()

    param = next(T.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    budget = int(memory_budget_mb * 2**20)
    m = int(getattr(T, "size_multiple", 1))
    if process_resolution is not None:
        s = process_resolution / max(h, w)
        ph, pw = max(1, round(h * s)), max(1, round(w * s))
    else:
        ph, pw = h, w
    frame_bytes = activation_bytes(T, -(-ph // m) * m, -(-pw // m) * m)
    tile = None
    if frame_bytes > budget or (max_tile is not None and max(ph, pw) > max_tile):
        tile = tile_shape(T, ph, pw, budget, max_tile, tile_overlap)
    per_pass = max(1, min(chunk, budget // max(frame_bytes, 1)))
    if fast is None and device.type == "cpu":
        th, tw = tile or (ph, pw)
        T = fastest_cpu_path(T, (1, c_in, th, tw), dtype)
    elif fast and isinstance(T, ResnetTranslator):
        T = inference_copy(T)

    out = torch.empty(n, h, w, c_res + (alpha.shape[-1] if alpha is not None else 0))
    with torch.inference_mode():
        for i in range(0, n, chunk):
            if check_interrupt is not None:
                check_interrupt()
            j = min(n, i + chunk)
            # one full-size copy per frame here; the rest works in place, which keeps a 2048^2 frame at
            # a few frame-sized buffers on top of the tiles' budget
            x = _to_channels(colour[i:j], c_in).permute(0, 3, 1, 2).to(device, dtype, copy=True).mul_(2).sub_(1)
            if (ph, pw) != (h, w):
                x = F.interpolate(x, (ph, pw), mode="bilinear", align_corners=False, antialias=True)
            if tile is None:
                parts = [_run(T, x[k:k + per_pass], m) for k in range(0, j - i, per_pass)]
            else:
                parts = [translate_tiled(T, x[k:k + 1], tile, tile_overlap, check_interrupt, budget)
                         for k in range(j - i)]
            y = parts[0] if len(parts) == 1 else torch.cat(parts)  # no frame-sized copy for one part
            del parts
            if (ph, pw) != (h, w):
                y = F.interpolate(y, (h, w), mode="bilinear", align_corners=False, antialias=True)
            del x
            y = y.float().cpu().add_(1).div_(2).clamp_(0, 1).permute(0, 2, 3, 1)
            y = _to_channels(y, c_res)
            if strength < 1.0:
                y = torch.lerp(_to_channels(colour[i:j], c_res), y, strength)
            out[i:j, ..., :c_res] = y
            if alpha is not None:
                out[i:j, ..., c_res:] = alpha[i:j]
            if progress is not None:
                progress(j, n)
    return out


# ------------------------------------------------------------------------------------------------
# python -m gan_models.translate: CycleGAN's test.py over files and folders, with the node's options

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _inputs(paths) -> list:
    """Files as given, and each folder's images in name order (video frames keep their order)."""
    from pathlib import Path

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{p}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    return files


def _read(path) -> torch.Tensor:
    """One image file as [1, H, W, C] in 0..1 (ComfyUI's IMAGE), C as stored (1, 3 or 4)."""
    from .images import read_image_array
    return torch.from_numpy(read_image_array(path) / 255.0)[None]


def main(argv=None) -> int:
    import argparse
    from pathlib import Path

    from tqdm import tqdm

    from . import devices, load_generator
    from .checkpoint import CheckpointError, OutputPathError
    from .cli import nonneg_int, positive_float, positive_int, unit_interval
    from .images import image_format, save_image

    p = argparse.ArgumentParser(
        prog="python -m gan_models.translate",
        description="Image-to-image GAN translation (CycleGAN, pix2pix) of image files and folders of images "
                    "(video frames), with Style Transfer (GAN)'s options. Each output keeps its input's name.")
    p.add_argument("ckpt", help="translator checkpoint (.safetensors)")
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", required=True, help="folder for the results (created if absent)")
    p.add_argument("--ext", default=".png", help="output format by suffix (default .png)")
    p.add_argument("--strength", type=unit_interval, default=1.0,
                   help="1 = the translation, 0 = the input, between = a blend (default 1)")
    p.add_argument("--process-resolution", type=nonneg_int, default=0,
                   help="translate with the longer side at this size, then scale back; 0 = full size")
    p.add_argument("--tile-size", type=nonneg_int, default=0,
                   help="largest tile side; 0 = tile only when the memory budget needs it")
    p.add_argument("--tile-overlap", type=nonneg_int, default=32, help="overlap between tiles (default 32)")
    p.add_argument("--memory-budget-mb", type=positive_float, default=2048,
                   help="activation memory allowed per pass; larger images are tiled (default 2048)")
    p.add_argument("--chunk", type=positive_int, default=4, help="same-size images per pass (default 4)")
    devices.add_argument(p)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        files = _inputs(a.inputs)
        out_dir = Path(a.out)
        targets = [out_dir / (f.stem + a.ext) for f in files]
        seen: dict[Path, Path] = {}
        for f, t in zip(files, targets):
            if t in seen:
                raise ValueError(f"{seen[t]} and {f} would both be written as {t}: translate them into "
                                 f"separate --out folders")
            seen[t] = f
            if t.resolve() == f.resolve():
                raise OutputPathError(f"{t}: the result would replace its own input; choose another --out or --ext")
        image_format(targets[0])  # an unwritable suffix is refused before the model loads
        T = load_generator(a.ckpt, device=a.device, dtype=DTYPES[a.dtype])
        if getattr(T, "kind", "translator") == "generator":
            raise ValueError(f"{Path(a.ckpt).name} is a noise-to-image generator, not an image-to-image "
                             f"translator: use python -m gan_models.generate")
        out_dir.mkdir(parents=True, exist_ok=True)
        # consecutive same-size images go through together, as frames of one video do; read as they
        # are needed, so a folder of 10,000 frames never sits in memory at once
        bar = tqdm(total=len(files), unit="img", disable=a.no_progress)
        pending: list[tuple[torch.Tensor, Path]] = []

        def flush():
            y = translate(T, torch.cat([x for x, _ in pending]), strength=a.strength,
                          process_resolution=a.process_resolution or None, max_tile=a.tile_size or None,
                          tile_overlap=a.tile_overlap, memory_budget_mb=a.memory_budget_mb, chunk=a.chunk)
            for k, (_, target) in enumerate(pending):
                save_image((y[k].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy(), target)
            bar.update(len(pending))
            pending.clear()

        for f, target in zip(files, targets):
            x = _read(f)
            if pending and (pending[0][0].shape != x.shape or len(pending) >= a.chunk):
                flush()
            pending.append((x, target))
        flush()
        bar.close()
    except (CheckpointError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} image(s) to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
