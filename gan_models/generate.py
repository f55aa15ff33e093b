"""Latents to images, in chunks, and the `python -m gan_models.generate` command line.

Usage: python -m gan_models.generate [CKPT] --seeds 0-15 [--class K] [--trunc PSI] --out grid.png
With no CKPT it uses the shipped default weights. StyleGAN edits along directions found by
python -m gan_models.directions: [--edit DIRS.safetensors:INDEX:STRENGTH ...]
[--sweep DIRS.safetensors:INDEX:STRENGTH --frames N --out FOLDER|sweep.webp|sweep.gif]
"""
from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from . import autotune, devices, latents as L
from .checkpoint import CheckpointError
from .cli import finite_float, nonneg_int, positive_float, positive_int


def require_generator(G) -> None:
    if getattr(G, "kind", "generator") != "generator":
        raise ValueError(f"{getattr(G, 'arch_name', 'this model')} is an image-to-image translator, not a "
                         "noise-to-image generator: use it with Style Transfer (GAN)")


def fast_synthesis_kwargs(G, device: torch.device, dtype: torch.dtype = torch.float32) -> dict:
    """On the CPU, StyleGAN2's shared-kernel channels_last path runs about 1.5x faster than the
    per-sample grouped convolution (bench/bench_stylegan2.py) and agrees with it to ~1e-5. It is
    written for float32 (its demodulation matmul mixes float32 styles with the weights), so a
    generator loaded in half precision takes NVlabs' path. The conformance tests call G directly
    and keep NVlabs' bit-exact default."""
    synthesis = getattr(G, "synthesis", None)
    if device.type != "cpu" or dtype != torch.float32 or synthesis is None:
        return {}
    params = inspect.signature(synthesis.forward).parameters
    return {"fused_modconv": False, "channels_last": True} if "channels_last" in params else {}


@torch.inference_mode()
def synthesize(G, lat: L.Latent, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
               noise_mode: str = "const", mix_with: L.Latent | None = None, crossover: int | None = None,
               chunk: int = 0, progress: Callable[[int, int], None] | None = None,
               check_interrupt: Callable[[], None] | None = None,
               memory_budget: int | None = None) -> torch.Tensor:
    """Images NCHW float32 in [-1, 1] on the CPU for every item of `lat`, `chunk` items at a time so
    a large batch never needs all of its activations at once. chunk 0 (the default) picks the size
    from the model's measured activation memory within memory_budget bytes (default: half a GPU's
    free memory, a quarter of the available RAM up to 4 GiB) and, on the CPU, from timing sizes on
    the job's own first items (`autotune.ChunkTuner`). A BigGAN z latent (unscaled truncnorm)
    is scaled here by truncation_psi, the value that also picks its batch-norm statistics
    (latents.z_for_truncation)."""
    require_generator(G)
    lat.check_fits(G)
    L.check_truncation(truncation_psi, truncation_cutoff)
    if noise_mode not in ("const", "random", "none"):
        raise ValueError(f"noise_mode must be const, random or none, not {noise_mode!r}")
    style = L.is_style_based(G)
    if mix_with is not None:
        if not style:
            raise ValueError("style mixing needs a style-based generator (StyleGAN)")
        mix_with.check_fits(G)
    p = next(G.parameters())
    fast = fast_synthesis_kwargs(G, p.device, p.dtype)
    n, out = len(lat), []

    def run(start: int, size: int) -> None:
        part = lat.index(slice(start, start + size))
        if style and (part.space == "w" or mix_with is not None):
            ws = L.to_w(G, part, truncation_psi, truncation_cutoff).values
            if mix_with is not None:
                m = mix_with if len(mix_with) == 1 else mix_with.index(slice(start, start + size))
                ws2 = L.to_w(G, m, truncation_psi, truncation_cutoff).values
                ws = L.mix(G, ws, ws2, G.num_ws if crossover is None else crossover)
            kw = {}
            if part.noise is not None and noise_mode == "const":  # the noise maps an inversion fitted
                kw["noise"] = [v.to(p.device, p.dtype) for v in part.noise]
            img = G.synthesis(ws.to(p.device, p.dtype), noise_mode=noise_mode, **kw, **fast)
        else:
            c = None if part.c is None else part.c.to(p.device, p.dtype)
            z = L.z_for_truncation(G, part.values.to(p.device, p.dtype), truncation_psi)  # BigGAN: z * psi
            img = G(z, c, truncation_psi=truncation_psi,
                    truncation_cutoff=truncation_cutoff, noise_mode=noise_mode, **fast)
        out.append(img.float().cpu())

    tuner = None
    if not chunk or chunk < 1:
        key = (type(G).__name__, getattr(G, "img_resolution", None), sum(t.numel() for t in G.parameters()),
               str(p.device), str(p.dtype), bool(fast), style and lat.space == "w")
        tuner = autotune.ChunkTuner(key, p.device, memory_budget)
    start = 0
    while start < n:
        if check_interrupt:
            check_interrupt()
        if tuner is not None and tuner.limit is None:
            tuner.measure_first(lambda size: run(start, size), G)
            size = 1
        else:
            size = tuner.next_chunk(n - start) if tuner is not None else min(chunk, n - start)
            t0 = time.perf_counter()
            run(start, size)
            if tuner is not None:
                tuner.record(size, time.perf_counter() - t0)
        start += size
        if progress:
            progress(start, n)
    return torch.cat(out)


def main(argv=None) -> int:
    from tqdm import tqdm

    from . import DEFAULT_CHECKPOINT, load_generator
    from .images import image_format, save_grid

    p = argparse.ArgumentParser(prog="python -m gan_models.generate",
                                description="Generate a grid of images from a GAN checkpoint (.safetensors).")
    p.add_argument("ckpt", nargs="?", default=None,
                   help=f"generator checkpoint (default: the shipped {DEFAULT_CHECKPOINT.name})")
    p.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-15 or 1,5,9-12 (default 0-15)")
    p.add_argument("--class", dest="cls", default=None,
                   help="class index or name for conditional models; 'random' draws one per seed; "
                        "'all' makes one row per class (default: all)")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="truncation psi (default 1.0 = none)")
    p.add_argument("--trunc-cutoff", type=nonneg_int, default=None, help="truncate only the first N layers (StyleGAN)")
    p.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    p.add_argument("--out", default=None,
                   help="output picture (default grid.png); with --sweep a folder of frames (default sweep) "
                        "or one animated .webp/.gif")
    p.add_argument("--nrow", type=positive_int, default=None, help="images per row")
    devices.add_argument(p)
    p.add_argument("--batch", type=nonneg_int, default=0,
                   help="images per forward pass (default 0: as memory allows, and on a CPU the size that "
                        "runs fastest here, timed on the first images)")
    p.add_argument("--edit", action="append", default=[], metavar="DIRS.safetensors:INDEX:STRENGTH",
                   help="move every latent STRENGTH standard deviations along direction INDEX of a file written "
                        "by python -m gan_models.directions (StyleGAN; repeatable, applied in order, in W)")
    p.add_argument("--sweep", default=None, metavar="DIRS.safetensors:INDEX:STRENGTH",
                   help="render --frames steps from -STRENGTH to +STRENGTH along a direction, one grid per frame")
    p.add_argument("--frames", type=positive_int, default=9, help="frames of --sweep (default 9: odd keeps the "
                                                          "unedited latent as the middle frame)")
    p.add_argument("--fps", type=positive_float, default=10, help="frame rate of an animated --sweep (default 10)")
    a = p.parse_args(argv)
    try:
        seeds = L.parse_seeds(a.seeds)
        if not (a.edit or a.sweep):
            image_format(a.out or "grid.png")  # before the model loads: a bad name costs nothing
        G = load_generator(a.ckpt, device=a.device)
        require_generator(G)
        nrow = a.nrow
        if G.c_dim and (a.cls is None or a.cls == "all"):
            # one row per class, the same seeds in every row: shows the label control at a glance
            classes = [k for k in range(G.c_dim) for _ in seeds]
            seeds = seeds * G.c_dim
            nrow = nrow or len(seeds) // G.c_dim
        elif a.cls in (None, "random"):
            classes = a.cls
        else:
            classes = class_index(G, a.cls)
        lat = L.sample(G, seeds, classes)
        if a.edit or a.sweep:
            print(render_edits(G, lat, a, nrow))
            return 0
        a.out = a.out or "grid.png"
        bar = tqdm(total=len(seeds), desc="generating", unit="img")
        imgs = synthesize(G, lat, a.trunc, a.trunc_cutoff, a.noise_mode, chunk=a.batch,
                          progress=lambda done, total: bar.update(done - bar.n))
        bar.close()
        save_grid(imgs, a.out, nrow)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(a.out)}: {len(seeds)} images at {G.img_resolution}px from {G.arch_name}")
    return 0


def class_index(G, spec: str) -> int:
    """A class given by name (as the model card lists them) or by index, refused by name when the model
    has no such class."""
    names = G.meta.get("class_names") or []
    if not G.c_dim:
        raise ValueError(f"--class {spec}: this generator is unconditional; leave --class out")
    if spec in names:
        return names.index(spec)
    try:
        k = int(spec)
    except ValueError:
        listed = ", ".join(f"{i} {n}" for i, n in enumerate(names)) if names else f"0..{G.c_dim - 1}"
        raise ValueError(f"--class {spec!r}: no such class; this generator's classes are {listed}") from None
    if not 0 <= k < G.c_dim:
        raise ValueError(f"--class {k} is out of range: this generator has {G.c_dim} classes (0..{G.c_dim - 1})")
    return k


def render_edits(G, lat: L.Latent, a, nrow: int | None) -> str:
    """--edit and --sweep: the latents moved along directions (gan_models.directions) in W, after
    truncation, so that a strength is the same number of standard deviations whatever --trunc."""
    import math

    from PIL import Image
    from tqdm import tqdm

    from . import DEFAULT_CHECKPOINT
    from . import directions as D
    from .checkpoint import check_output_path
    from .images import grid, image_format, save_grid, save_image

    name = Path(a.ckpt).name if a.ckpt else DEFAULT_CHECKPOINT.name
    edits = [D.parse_edit(spec) for spec in a.edit]
    sweep = D.parse_edit(a.sweep) if a.sweep else None
    out = Path(a.out or ("sweep" if sweep else "grid.png"))
    animated = out.suffix.lower() in (".webp", ".gif")
    if sweep and not animated and out.suffix.lower() in Image.registered_extensions():
        raise ValueError(f"--sweep writes frames: --out must be a folder or a .webp/.gif file, not {out.name}")
    if sweep and not animated and (out.exists() and not out.is_dir()):
        raise ValueError(f"--sweep writes frames into a folder: {out} is a file")
    if sweep and animated:
        check_output_path(out)
    elif not sweep:
        image_format(out)
    if sweep and a.frames < 2:
        raise ValueError(f"--frames {a.frames}: a sweep needs at least 2 frames")
    if sweep and animated and not (math.isfinite(a.fps) and a.fps > 0):
        raise ValueError(f"--fps {a.fps}: the frame rate must be a positive number")
    loaded = {}
    for path, _, _ in edits + ([sweep] if sweep else []):  # every file checked before any work
        if path not in loaded:
            loaded[path] = D.load_directions(path)
            D.check_generator(G, loaded[path], name)
    w = L.to_w(G, lat, a.trunc, a.trunc_cutoff)
    for path, index, strength in edits:
        w = D.apply(G, w, loaded[path], index, strength)
    if sweep is None:
        bar = tqdm(total=len(w), desc="generating", unit="img")
        imgs = synthesize(G, w, noise_mode=a.noise_mode, chunk=a.batch,
                          progress=lambda done, total: bar.update(done - bar.n))
        bar.close()
        save_grid(imgs, out, nrow)
        return f"wrote {out}: {len(w)} images at {G.img_resolution}px from {G.arch_name}, {len(edits)} edit(s)"
    path, index, strength = sweep
    frames = D.sweep(G, w, loaded[path], index, strength, a.frames)
    n, grids = len(w), []
    bar = tqdm(total=len(frames), desc="sweeping", unit="img")
    for f in range(a.frames):  # one frame at a time: a long sweep of large images never sits in memory
        imgs = synthesize(G, frames.index(slice(f * n, (f + 1) * n)), noise_mode=a.noise_mode, chunk=a.batch,
                          progress=lambda done, total: bar.update(f * n + done - bar.n))
        if animated:
            grids.append(grid(imgs, nrow))
        else:
            save_image(grid(imgs, nrow), out / f"frame_{f:04d}.png")
    bar.close()
    if animated:
        save_animation(grids, out, a.fps)
    what = "an animation" if animated else f"frame_0000.png to frame_{a.frames - 1:04d}.png"
    return (f"wrote {out}: {what}, direction {index} of {Path(path).name} from {-strength:g} to {strength:g} "
            f"over {a.frames} frames of {n} images")


def save_animation(frames: list, path: str | Path, fps: float = 10) -> None:
    """HWC uint8 pictures as one looping animated .gif or .webp, written atomically."""
    from PIL import Image

    from .checkpoint import atomic_write_bytes

    pics = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    fmt = "GIF" if str(path).lower().endswith(".gif") else "WEBP"
    extra = {"lossless": True} if fmt == "WEBP" else {}
    atomic_write_bytes(path, lambda tmp: pics[0].save(tmp, format=fmt, save_all=True, append_images=pics[1:],
                                                      duration=round(1000 / fps), loop=0, **extra))


if __name__ == "__main__":
    sys.exit(main())
