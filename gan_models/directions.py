"""Semantic edit directions in StyleGAN's W space, found without labels, and latents moved along them.

Two ways to find them, for StyleGAN2 and StyleGAN3:

- SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021): the
  directions n that the style affines A of the chosen layers amplify most, argmax |A n|, i.e. the
  eigenvectors of A^T A: a closed form in the weights, no sampling. As in the authors' release
  (genforce/sefa), every row of A is normalised to unit length first, so no layer outweighs the
  others by the scale of its weights; ToRGB layers are left out, as the paper's "style layers" are.
- GANSpace (Haerkoenen et al., "GANSpace: Discovering Interpretable GAN Controls", NeurIPS 2020):
  the principal axes of w = mapping(z) over many sampled z.

A direction is a unit vector n in W stored with sigma, the standard deviation of w along n
(measured on sampled w for both methods), so
`w + strength * sigma * n` moves a latent by `strength` standard deviations of the model's own W
distribution, whatever the model. Directions are applied to a range of ws (the layers they were
found for, by default): coarse ws move pose and shape, fine ones colour and texture.

Usage: python -m gan_models.directions CKPT --method sefa|ganspace [--layers all|coarse|middle|fine|A-B]
                                            [--num K] [--samples N] [--seed S] --out DIRS.safetensors
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from safetensors.torch import save_file

from . import latents as L
from .checkpoint import CheckpointError, atomic_write_bytes, read_small

DIRECTIONS_FORMAT = "comfyui-gan-directions/1"
METHODS = ("sefa", "ganspace")
LAYER_SPECS = ("all", "coarse", "middle", "fine")
DEFAULT_SAMPLES = 10_000


# ------------------------------------------------------------------------------------------------
# Which model, which layers

def require_style_generator(G) -> None:
    """Directions live in W: only a noise-to-image generator with a mapping network has one."""
    name = getattr(G, "arch_name", type(G).__name__)
    if getattr(G, "kind", "generator") != "generator":
        raise ValueError(f"{name} is an image-to-image translator: it has no latent space, so there are no "
                         "directions to find or apply; directions need a StyleGAN2 or StyleGAN3 generator")
    if not L.is_style_based(G):
        raise ValueError(f"{name} has no W space (no mapping network): directions need a style-based "
                         "generator, StyleGAN2 or StyleGAN3")


def layer_range(num_ws: int, spec: str = "all") -> list[int]:
    """ws indices for 'all', 'coarse', 'middle', 'fine' (thirds, split where latents.mixing_presets
    splits them) or 'A-B' (inclusive; 'A' alone is one layer)."""
    spec = str(spec).strip().lower()
    last = num_ws - 1
    valid = f"all, coarse, middle, fine, or A-B within 0-{last} (this generator has {num_ws} ws)"
    if spec == "all":
        return list(range(num_ws))
    if spec in LAYER_SPECS:
        cut = L.mixing_presets(num_ws)
        lo, hi = {"coarse": (0, cut["middle"]), "middle": (cut["middle"], cut["fine"]),
                  "fine": (cut["fine"], num_ws)}[spec]
        return list(range(lo, hi))
    m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", spec)
    if not m:
        raise ValueError(f"layers {spec!r}: use {valid}")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    if b < a:
        raise ValueError(f"layers {spec!r} run backwards: use {valid}")
    if b > last:
        raise ValueError(f"layers {spec!r} reach past ws {last}: use {valid}")
    return list(range(a, b + 1))


def _indices(num_ws: int, layers) -> list[int]:
    """ws indices from a layer_range spec or a list of indices."""
    if isinstance(layers, str):
        return layer_range(num_ws, layers)
    layers = [int(i) for i in layers]
    bad = [i for i in layers if not 0 <= i < num_ws]
    if not layers or bad:
        raise ValueError(f"layers {layers}: need ws indices within 0-{num_ws - 1}")
    return sorted(set(layers))


def _describe_layers(layers: list[int]) -> str:
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))


class StyleLayer(NamedTuple):
    ws_index: int                   # which w of ws [N, num_ws, w_dim] this layer's affine reads
    name: str
    affine: torch.nn.Module         # FullyConnectedLayer, weight [out, w_dim]
    is_style: bool                  # False for ToRGB and StyleGAN3's input transform


def style_layers(G) -> list[StyleLayer]:
    """Every synthesis layer that reads a w, with the index of the w it reads, in ws order.

    StyleGAN2: block b{res} reads ws[i : i + num_conv + num_torgb] with i advancing by num_conv, so
    each block's ToRGB shares its w with the next block's conv0. StyleGAN3: ws[0] drives the Fourier
    input's transform (not a style: it rotates and shifts), ws[1 + i] layer L_i; the last L is ToRGB."""
    syn = G.synthesis
    out = []
    if hasattr(syn, "block_resolutions"):
        i = 0
        for res in syn.block_resolutions:
            block = getattr(syn, f"b{res}")
            convs = ([] if block.in_channels == 0 else ["conv0"]) + ["conv1"]
            for k, conv in enumerate(convs):
                out.append(StyleLayer(i + k, f"b{res}.{conv}", getattr(block, conv).affine, True))
            if block.num_torgb:
                out.append(StyleLayer(i + len(convs), f"b{res}.torgb", block.torgb.affine, False))
            i += block.num_conv
    elif hasattr(syn, "layer_names"):
        out.append(StyleLayer(0, "input", syn.input.affine, False))
        for i, name in enumerate(syn.layer_names):
            layer = getattr(syn, name)
            out.append(StyleLayer(1 + i, name, layer.affine, not layer.is_torgb))
    else:
        raise ValueError(f"{getattr(G, 'arch_name', type(G).__name__)}: its synthesis network is neither "
                         "StyleGAN2's nor StyleGAN3's, so its style layers are unknown")
    return out


# ------------------------------------------------------------------------------------------------
# Finding directions

def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """An eigenvector's sign is arbitrary; make each row's largest-magnitude component positive so
    that the same model always gives the same file."""
    idx = vectors.abs().argmax(dim=1, keepdim=True)
    return vectors * vectors.gather(1, idx).sign()


def _descending_eigh(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues, eigenvectors as rows), largest first, of a symmetric matrix, in float64."""
    vals, vecs = torch.linalg.eigh(m.double())
    return vals.flip(0), _fix_signs(vecs.flip(1).t().contiguous())


def _sefa_layers(G, layers) -> list[StyleLayer]:
    require_style_generator(G)
    layers = set(_indices(int(G.num_ws), layers))
    chosen = [s for s in style_layers(G) if s.ws_index in layers and s.is_style]
    if not chosen:
        raise ValueError(f"ws {_describe_layers(sorted(layers))} drive no style layer (only ToRGB or StyleGAN3's "
                         "input transform, which SeFa leaves out): choose a wider --layers range")
    return chosen


def sefa(G, layers: str | list[int] = "all") -> tuple[torch.Tensor, torch.Tensor]:
    """SeFa's closed form: (eigenvalues, directions [w_dim, w_dim]) of A^T A, strongest first, where
    A stacks the row-normalised style-affine weights of the non-ToRGB layers reading `layers`."""
    # row-normalised, the equalized-lr weight gain drops out: stored weights are enough
    A = torch.cat([s.affine.weight.detach().to("cpu", torch.float64) for s in _sefa_layers(G, layers)])
    A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return _descending_eigh(A.t() @ A)


def sampled_w(G, samples: int, seed: int = 0, chunk: int = 1000):
    """w = mapping(z) for `samples` z, yielded as float64 CPU chunks [n, w_dim]. Each chunk draws its
    z [n, z_dim] from one CPU torch.Generator seeded with `seed`, then (conditional models) n random
    classes, so z depends on the seed alone, whatever the device G runs on."""
    require_style_generator(G)
    p = next(G.parameters())
    gen = torch.Generator().manual_seed(int(seed))
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        z = torch.randn(n, int(G.z_dim), generator=gen)
        c = None
        if G.c_dim:
            c = torch.nn.functional.one_hot(torch.randint(int(G.c_dim), (n,), generator=gen), int(G.c_dim))
            c = c.to(p.device, p.dtype)
        with torch.no_grad():
            ws = G.mapping(z.to(p.device, p.dtype), c)
        yield (ws[:, 0] if ws.ndim == 3 else ws).float().cpu().double()  # float64 on the CPU: MPS has none


def sample_w(G, samples: int, seed: int = 0) -> torch.Tensor:
    """All of sampled_w at once, [samples, w_dim] float64."""
    return torch.cat(list(sampled_w(G, samples, seed)))


def w_covariance(G, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, unbiased covariance) of sampled_w, accumulated chunk by chunk: memory stays
    O(w_dim^2) whatever the number of samples."""
    require_style_generator(G)
    w_dim = int(G.w_dim)
    if samples <= w_dim:
        raise ValueError(f"{samples} samples cannot span W: need more than w_dim={w_dim} "
                         f"(default {DEFAULT_SAMPLES})")
    shift = s1 = s2 = None
    done = 0
    for w in sampled_w(G, samples, seed):
        if shift is None:  # moments about a nearby point, not 0: no cancellation when w is far from 0
            shift = w.mean(0)
            s1, s2 = torch.zeros_like(shift), torch.zeros(w_dim, w_dim, dtype=w.dtype)
        w = w - shift
        s1 += w.sum(0)
        s2 += w.t() @ w
        done += len(w)
        if progress:
            progress(done, samples)
    mean = s1 / samples
    cov = (s2 - samples * torch.outer(mean, mean)) / (samples - 1)
    return mean + shift, cov


def _signature_tensors(G) -> list[tuple[str, torch.Tensor]]:
    """What identifies a model's W space: its mapping network and every style affine."""
    named = [(f"mapping.{k}", v) for k, v in G.mapping.state_dict().items()]
    for s in style_layers(G):
        named += [(f"synthesis.{s.name}.affine.{k}", v) for k, v in s.affine.state_dict().items()]
    return sorted(named, key=lambda kv: kv[0])


def fingerprint(G) -> str:
    """16 hex digits of sha256 over the mapping and affine tensors (names, shapes, float32 bytes):
    the same for a model saved and loaded again or moved to another device."""
    h = hashlib.sha256()
    for name, t in _signature_tensors(G):
        h.update(f"{name}{list(t.shape)};".encode())
        h.update(np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy()))
    return h.hexdigest()[:16]


SKETCH_PERIOD = 4099     # a prime, so the pattern never lines up with power-of-two rows
SKETCH_TOLERANCE = 0.05  # bfloat16 rounding moves a sketch number by < 0.005, another model by ~1


def sketch(G) -> list[float]:
    """One number per signature tensor: its dot product with a fixed pseudo-random pattern, over
    the tensor's norm. Unlike the digest it survives rounding: a model loaded in float16 or bfloat16
    moves each number by ~1e-3 (the relative rounding error), another model's differ by ~1, so a
    half-precision copy of the model the directions were found on is still recognised."""
    k = torch.arange(SKETCH_PERIOD, dtype=torch.int64)
    r = ((k * 2654435761 + 12345) % 65521).double() / 65521 - 0.5  # Knuth's multiplicative hash
    r = r / r.square().mean().sqrt()
    out = []
    for _, t in _signature_tensors(G):
        x = t.detach().to("cpu", torch.float64).flatten()
        norm = x.norm()
        # x . tile(r): fold x into rows of the pattern's period, one pass over x
        folded = torch.nn.functional.pad(x, (0, -x.numel() % SKETCH_PERIOD)).reshape(-1, SKETCH_PERIOD).sum(0)
        out.append(0.0 if norm == 0 else round(float(folded @ r / norm), 6))
    return out


def model_name(G) -> str:
    src = (getattr(G, "meta", None) or {}).get("source")
    if isinstance(src, dict) and src.get("file"):
        return str(src["file"])
    arch = getattr(G, "arch_name", None)
    return f"a {arch} generator" if arch else "this generator"


@dataclass
class Directions:
    directions: torch.Tensor        # [K, w_dim] unit rows, strongest first
    std: torch.Tensor               # [K] standard deviation of w along each row
    method: str                     # 'sefa' or 'ganspace'
    layers: list[int]               # the ws the directions were found for, and are applied to by default
    fingerprint: str                # of the generator they were found on (see fingerprint())
    w_dim: int
    num_ws: int
    model: str = ""                 # that generator's name, for messages
    arch: str = ""
    layer_spec: str = ""            # as asked: 'coarse', '3-5', ...
    samples: int = 0                # w sampled for std (and GANSpace's PCA)
    seed: int = 0
    sketch: list = field(default_factory=list)
    file: str = ""                  # where it was loaded from (not stored)

    def __len__(self):
        return self.directions.shape[0]


def find_directions(G, method: str = "sefa", layers: str | list[int] = "all", num: int | None = None,
                    samples: int = DEFAULT_SAMPLES, seed: int = 0, name: str | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Directions:
    """The top `num` directions (all that carry meaning by default) by SeFa or GANSpace, with the
    std of w along each from `samples` seeded w. `name` names the model in later messages."""
    require_style_generator(G)
    if method not in METHODS:
        raise ValueError(f"method {method!r}: use one of {', '.join(METHODS)}")
    num_ws, w_dim = int(G.num_ws), int(G.w_dim)
    spec = layers if isinstance(layers, str) else _describe_layers(list(layers))
    idx = _indices(num_ws, layers)
    if method == "sefa":
        vals, dirs = sefa(G, idx)
        # A^T A has rank <= rows of A: eigenvalues past that are 0 and their vectors arbitrary
        rank = min(w_dim, sum(s.affine.weight.shape[0] for s in _sefa_layers(G, idx)))
    else:
        rank = w_dim
    if num is None:
        num = rank
    if not 1 <= int(num) <= rank:
        why = f"SeFa on ws {_describe_layers(idx)} finds at most {rank}" if method == "sefa" \
            else f"W has {w_dim} dimensions, so there are at most {w_dim}"
        raise ValueError(f"{num} directions asked for: {why}")
    num = int(num)
    _, cov = w_covariance(G, samples, seed, progress=progress)
    if method == "ganspace":
        vals, dirs = _descending_eigh(cov)
        std = vals[:num].clamp_min(0).sqrt()
    else:
        std = ((dirs[:num] @ cov) * dirs[:num]).sum(1).clamp_min(0).sqrt()
    return Directions(dirs[:num].float().contiguous(), std.float().contiguous(), method, idx, fingerprint(G),
                      w_dim, num_ws, name or model_name(G), getattr(G, "arch_name", ""), spec, int(samples),
                      int(seed), sketch(G))


# ------------------------------------------------------------------------------------------------
# Files

def save_directions(path: str | os.PathLike, d: Directions) -> None:
    meta = {"format": DIRECTIONS_FORMAT, "method": d.method, "layers": json.dumps(list(d.layers)),
            "layer_spec": d.layer_spec, "fingerprint": d.fingerprint, "sketch": json.dumps(list(d.sketch)),
            "model": d.model, "arch": d.arch, "w_dim": str(d.w_dim), "num_ws": str(d.num_ws),
            "samples": str(d.samples), "seed": str(d.seed)}
    tensors = {"directions": d.directions.detach().float().cpu().contiguous(),
               "std": d.std.detach().float().cpu().contiguous()}
    atomic_write_bytes(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_directions(path: str | os.PathLike) -> Directions:
    name = os.path.basename(str(path))

    def bad(problem: str):
        return CheckpointError(f"{name}: {problem}")

    if not os.path.isfile(path):
        raise bad("no such directions file")
    try:
        tensors, meta = read_small(path)
    except Exception as e:
        raise bad(f"not a readable safetensors file ({e})") from e
    if meta.get("format") != DIRECTIONS_FORMAT:
        raise bad("not a comfyui-gan directions file (python -m gan_models.directions writes them)")
    try:
        w_dim, num_ws = int(meta["w_dim"]), int(meta["num_ws"])
        layers = [int(i) for i in json.loads(meta["layers"])]
        d = Directions(tensors["directions"].float(), tensors["std"].float(), meta["method"], layers,
                       meta["fingerprint"], w_dim, num_ws, meta.get("model", ""), meta.get("arch", ""),
                       meta.get("layer_spec", ""), int(meta.get("samples", 0)), int(meta.get("seed", 0)),
                       [float(x) for x in json.loads(meta.get("sketch", "[]"))], name)
    except KeyError as e:
        raise bad(f"missing {e.args[0]!r}") from e
    except (ValueError, TypeError) as e:
        raise bad(f"malformed header ({e})") from e
    D, std = d.directions, d.std
    if D.ndim != 2 or D.shape[0] < 1 or D.shape[1] != w_dim:
        raise bad(f"directions must be [K, w_dim={w_dim}], found {list(D.shape)}")
    if std.shape != (D.shape[0],):
        raise bad(f"std must be [{D.shape[0]}], one per direction, found {list(std.shape)}")
    if not (torch.isfinite(D).all() and torch.isfinite(std).all()):
        raise bad("directions or std hold NaN or infinite values")
    if (std < 0).any():
        raise bad("std holds negative values")
    norms = D.double().norm(dim=1)
    if (norms - 1).abs().max() > 1e-4:
        raise bad(f"directions are not unit vectors (row norms {norms.min():.4g} to {norms.max():.4g})")
    if d.method not in METHODS:
        raise bad(f"unknown method {d.method!r} (known: {', '.join(METHODS)})")
    if not layers or any(not 0 <= i < num_ws for i in layers):
        raise bad(f"layers {layers} outside 0-{num_ws - 1}")
    if not re.fullmatch(r"[0-9a-f]{16}", d.fingerprint):
        raise bad(f"fingerprint {d.fingerprint!r} is not 16 hex digits")
    return d


# ------------------------------------------------------------------------------------------------
# Applying

def check_generator(G, d: Directions, name: str | None = None) -> None:
    """ValueError unless `d` was found on G (or on the same weights, G holding them in half precision)."""
    require_style_generator(G)
    this = name or model_name(G)
    theirs = f"the directions in {d.file}" if d.file else "these directions"
    if (int(G.w_dim), int(G.num_ws)) != (d.w_dim, d.num_ws):
        raise ValueError(f"{theirs} were found on {d.model or 'another generator'} (w_dim={d.w_dim}, "
                         f"{d.num_ws} ws), not on {this} (w_dim={int(G.w_dim)}, {int(G.num_ws)} ws)")
    fp = fingerprint(G)
    # a pivotally tuned copy (invert.py's PTI) keeps its base's latent space by construction (the
    # locality regulariser), so the base's directions hold for it
    base = (getattr(G, "meta", {}).get("source") or {})
    if d.fingerprint in (fp, base.get("base_fingerprint") if base.get("type") == "pti" else None):
        return
    half = next(G.parameters()).dtype in (torch.float16, torch.bfloat16)
    mine = sketch(G) if half and d.sketch else []
    if mine and len(mine) == len(d.sketch) and max(abs(a - b) for a, b in zip(mine, d.sketch)) < SKETCH_TOLERANCE:
        return
    raise ValueError(f"{theirs} were found on {d.model or 'another generator'} (fingerprint {d.fingerprint}), "
                     f"not on {this} (fingerprint {fp}): find directions for this generator with "
                     "python -m gan_models.directions")


def _check_edit(d: Directions, index, strength) -> tuple[int, float]:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"direction index must be a whole number, not {index!r}")
    if not 0 <= int(index) < len(d):
        raise ValueError(f"direction {index} is out of range: {d.file or 'these directions'} has {len(d)} "
                         f"(0..{len(d) - 1})")
    try:
        strength = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"strength must be a number, not {strength!r}") from None
    if not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, not {strength}")
    return int(index), strength


def apply(G, lat: L.Latent, d: Directions, index: int, strength: float, layers=None) -> L.Latent:
    """A W latent moved `strength` standard deviations along direction `index`, on the ws in
    `layers` (indices or a layer_range spec; default: those the directions were found for). A z
    latent is mapped first (psi 1). Chainable: apply to the result again for a second edit."""
    index, strength = _check_edit(d, index, strength)
    check_generator(G, d)
    return _shift(G, L.to_w(G, lat), d, index, strength, layers)


def sweep(G, lat: L.Latent, d: Directions, index: int, strength: float, frames: int,
          layers=None) -> L.Latent:
    """`frames` edits from -strength to +strength (frame-major like latents.interpolate: frame 0's N
    items, then frame 1's ...); with an odd count the middle frame is the latent itself."""
    index, strength = _check_edit(d, index, strength)
    if int(frames) < 2:
        raise ValueError(f"a sweep needs at least 2 frames, not {frames}")
    check_generator(G, d)
    w = L.to_w(G, lat)
    frames = int(frames)
    ts = [strength * (2 * i / (frames - 1) - 1) for i in range(frames)]  # exactly 0 in the middle
    return L.concat([_shift(G, w, d, index, t, layers) for t in ts])


def _shift(G, w: L.Latent, d: Directions, index: int, t: float, layers) -> L.Latent:
    layers = _indices(int(G.num_ws), d.layers if layers is None else layers)
    values = w.values.clone()
    values[:, layers] += t * d.std[index] * d.directions[index]
    return replace(w, values=values)


def parse_edit(spec: str) -> tuple[str, int, float]:
    """'DIRS.safetensors:INDEX:STRENGTH' -> (path, index, strength), split from the right so that a
    path may hold ':'."""
    form = "DIRS.safetensors:INDEX:STRENGTH, e.g. dirs.safetensors:0:2.5"
    parts = str(spec).rsplit(":", 2)
    if len(parts) != 3 or not parts[0].strip():
        raise ValueError(f"{spec!r}: expected {form}")
    path, index, strength = parts
    try:
        index = int(index)
    except ValueError:
        raise ValueError(f"{spec!r}: the index {index!r} is not a whole number ({form})") from None
    try:
        strength = float(strength)
    except ValueError:
        raise ValueError(f"{spec!r}: the strength {strength!r} is not a number ({form})") from None
    if not math.isfinite(strength):
        raise ValueError(f"{spec!r}: the strength must be a finite number, not {strength}")
    if index < 0:
        raise ValueError(f"{spec!r}: the index must be 0 or more")
    return path, index, strength


# ------------------------------------------------------------------------------------------------
# Command line

def main(argv=None) -> int:
    from tqdm import tqdm

    from . import devices, load_generator
    from .checkpoint import check_output_path
    from .cli import nonneg_int, positive_int

    p = argparse.ArgumentParser(prog="python -m gan_models.directions",
                                description="Find semantic edit directions in a StyleGAN2/StyleGAN3 generator's W "
                                            "space (SeFa or GANSpace) and write them to a .safetensors file.")
    p.add_argument("ckpt", help="generator checkpoint (.safetensors)")
    p.add_argument("--method", choices=METHODS, default="sefa",
                   help="sefa: closed-form factorization of the style weights; ganspace: PCA of sampled w "
                        "(default sefa)")
    p.add_argument("--layers", default="all",
                   help="ws the directions are found for and applied to: all, coarse, middle, fine, or A-B "
                        "(default all)")
    p.add_argument("--num", type=positive_int, default=None, help="directions to keep (default: all that carry meaning)")
    p.add_argument("--samples", type=positive_int, default=DEFAULT_SAMPLES,
                   help=f"w sampled for the std of each direction and GANSpace's PCA (default {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the sampled z (default 0)")
    p.add_argument("--out", required=True, help="directions file to write (.safetensors)")
    devices.add_argument(p)
    a = p.parse_args(argv)
    try:
        check_output_path(a.out, (".safetensors",))
        G = load_generator(a.ckpt, device=a.device)
        bar = []  # opened at the first chunk, so that a refused request prints no empty bar

        def progress(done, total):
            if not bar:
                bar.append(tqdm(total=total, desc="sampling w", unit="w"))
            bar[0].update(done - bar[0].n)

        d = find_directions(G, a.method, a.layers, a.num, a.samples, a.seed, name=Path(a.ckpt).name,
                            progress=progress)
        if bar:
            bar[0].close()
        save_directions(a.out, d)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(a.out)}: {len(d)} {d.method} directions for ws {_describe_layers(d.layers)} "
          f"({d.layer_spec}) of {d.model} [{d.arch}, fingerprint {d.fingerprint}]")
    print("  index  std of w along it")
    for i in range(min(len(d), 8)):
        print(f"  {i:5d}  {float(d.std[i]):.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
