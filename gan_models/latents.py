"""Latents that know what they are: sampling, truncation, interpolation, style-mixing ranges, files.

A `Latent` carries its space ('z' or 'w'), the generator dimensions it was made for and its labels,
so that wiring it into the wrong generator is a clear error instead of a shape mismatch deep inside.
Seeds follow NVlabs' gen_images.py (`np.random.RandomState(seed).randn(z_dim)`), so a seed found
with NVlabs' tools gives the same image here. BigGAN's z is a truncated normal instead (see `sample`
and `z_for_truncation`: sampled unscaled, scaled by the truncation when the image is drawn).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from safetensors.torch import save_file

from .checkpoint import CheckpointError, atomic_write_bytes, read_small

LATENT_FORMAT = "comfyui-gan-latent/1"


def dims_of(G) -> dict:
    d = {"z_dim": int(G.z_dim), "c_dim": int(G.c_dim)}
    if is_style_based(G):
        d.update(w_dim=int(G.w_dim), num_ws=int(G.num_ws))
    return d


def is_style_based(G) -> bool:
    return hasattr(G, "mapping") and hasattr(G, "synthesis")


@dataclass
class Latent:
    space: str                      # 'z': [N, z_dim]; 'w': [N, num_ws, w_dim]
    values: torch.Tensor
    c: torch.Tensor | None          # one-hot [N, c_dim] (soft after interpolation), or None
    dims: dict                      # the generator dimensions it was made for (see dims_of)
    seeds: list = field(default_factory=list)
    # per-item noise maps [N, 1, r, r], one per conv layer, that an inversion fitted along with w: the
    # image is drawn with them in noise_mode 'const'. None: the generator's own noise_const.
    noise: list | None = None
    info: dict = field(default_factory=dict)   # how it was made (e.g. inversion space, steps, loss)

    def __len__(self):
        return self.values.shape[0]

    def check_fits(self, G) -> None:
        want = dims_of(G)
        for k, v in self.dims.items():
            if k in want and want[k] != v:
                raise ValueError(f"latent was made for a generator with {k}={v}, this one has {k}={want[k]}: "
                                 "sample the latent from the same generator")
        if self.space == "w" and not is_style_based(G):
            raise ValueError("a W latent needs a style-based generator (StyleGAN); this one only takes z")

    def index(self, idx) -> "Latent":
        if isinstance(idx, slice):
            seeds = self.seeds[idx]
        else:
            seeds = [self.seeds[i] for i in idx] if self.seeds else []
        noise = None if self.noise is None else [v[idx] for v in self.noise]
        return replace(self, values=self.values[idx], c=None if self.c is None else self.c[idx], seeds=seeds,
                       noise=noise)


MAX_SEED = 2 ** 32 - 1


def parse_seeds(spec: str, max_count: int = 100_000) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (NVlabs' range syntax)."""
    out = []
    if not re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*,?\s*", str(spec)):
        raise ValueError(f"seeds must look like '0-15' or '1,5,9-12', not {spec!r}")
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = (int(x) for x in part.split("-", 1))
            if b < a:
                raise ValueError(f"seed range {part!r} runs backwards")
            if b - a >= max_count:  # before the list is built: '0-99999999999' would fill the memory
                raise ValueError(f"seed range {part!r} holds {b - a + 1} seeds, more than {max_count} in one go")
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError(f"no seeds in {spec!r}")
    if max(out) > MAX_SEED:  # NVlabs' seeds are uint32: a larger one would silently wrap to another
        raise ValueError(f"seed {max(out)} is above {MAX_SEED}, the largest seed")
    if len(out) > max_count:
        raise ValueError(f"{spec!r} names {len(out)} seeds, more than {max_count} in one go")
    return out


def class_vector(G, classes, n: int) -> torch.Tensor | None:
    """One-hot labels for n items. classes: None (unconditional), an int for all, or a list of ints."""
    c_dim = int(G.c_dim)
    if c_dim == 0:
        if classes is not None and not (isinstance(classes, list) and not classes):
            raise ValueError("this generator is unconditional: it takes no class")
        return None
    if classes is None:
        raise ValueError(f"this generator is class-conditional: choose a class in 0..{c_dim - 1} (or random)")
    idx = [classes] * n if isinstance(classes, int) else list(classes)
    bad = [k for k in idx if not 0 <= k < c_dim]
    if bad:
        raise ValueError(f"class {bad[0]} is out of range: this generator has {c_dim} classes (0..{c_dim - 1})")
    return torch.nn.functional.one_hot(torch.tensor(idx), c_dim).float()


def z_bound(G) -> float | None:
    """The bound of a generator whose z is a truncated normal (BigGAN: 2), None for a Gaussian z."""
    if getattr(G, "z_distribution", "normal") != "truncated_normal":
        return None
    return float(G.z_bound)


def truncated_normal(shape, bound: float = 2.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A standard normal truncated to [-bound, bound], float64, by the inverse CDF of a uniform draw
    (one torch.rand per value: the same generator state gives the same values on every platform)."""
    lo, hi = (0.5 * (1 + math.erf(x / math.sqrt(2))) for x in (-bound, bound))
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    z = math.sqrt(2) * torch.erfinv(2 * (lo + (hi - lo) * u) - 1)
    return z.clamp(-bound, bound)  # rounding at the ends of the CDF never leaves the interval


def truncated_noise(seeds: list[int], z_dim: int, truncation: float = 1.0, bound: float = 2.0) -> torch.Tensor:
    """BigGAN's z, as pytorch-pretrained-biggan's truncated_noise_sample makes it: truncnorm(-bound, bound)
    * truncation, [len(seeds), z_dim] float32, row i from torch.Generator().manual_seed(seeds[i]) (torch,
    not scipy: the values differ from upstream's for the same seed, the distribution is the same)."""
    rows = [truncated_normal((int(z_dim),), bound, torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows).float() * truncation


def z_for_truncation(G, z: torch.Tensor, psi: float) -> torch.Tensor:
    """z as G takes it at truncation psi. A Gaussian-z generator truncates inside its own call; BigGAN
    takes z already scaled by its truncation (truncnorm * t, as upstream's truncated_noise_sample returns
    it) and the same t picks its batch-norm statistics. The pack's BigGAN latents are the unscaled
    truncnorm (`sample`), so the one place that draws images (`generate.synthesize`) scales them here by
    the psi it passes on: Generate Image (GAN)'s truncation drives both halves, and a latent stays reusable at
    any truncation."""
    return z * psi if z_bound(G) is not None else z


def sample(G, seeds: list[int], classes=None) -> Latent:
    """z latents, one per seed. classes: None, an int, a list (one per seed) or 'random' (drawn per
    seed from the same RandomState, after z, so z stays NVlabs-compatible).

    A generator whose z is a truncated normal (BigGAN) gets truncnorm(-2, 2) per seed from
    torch.Generator().manual_seed(seed), *unscaled* (truncation 1): synthesis scales it by the
    truncation it draws at (`z_for_truncation`). A random class is drawn after z from the same generator."""
    zs, drawn = [], []
    bound = z_bound(G)
    for s in seeds:
        if bound is not None:
            gen = torch.Generator().manual_seed(int(s) % 2 ** 32)
            zs.append(truncated_normal((int(G.z_dim),), bound, gen).numpy())
            if classes == "random" and G.c_dim:
                drawn.append(int(torch.randint(int(G.c_dim), (1,), generator=gen)))
            continue
        rs = np.random.RandomState(int(s) % 2 ** 32)
        zs.append(rs.randn(int(G.z_dim)))
        if classes == "random" and G.c_dim:
            drawn.append(int(rs.randint(int(G.c_dim))))
    if classes == "random":
        classes = drawn if G.c_dim else None
    z = torch.from_numpy(np.stack(zs)).float()
    info = {"z_distribution": "truncated_normal", "z_bound": bound} if bound is not None else {}
    return Latent("z", z, class_vector(G, classes, len(seeds)), dims_of(G), list(seeds), info=info)


def truncate_w(G, ws: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """w_avg + psi * (w - w_avg) on the layers before cutoff (all layers when cutoff is None)."""
    if psi == 1:
        return ws
    w_avg = G.mapping.w_avg.to(ws.dtype)
    if w_avg.ndim == 1:
        w_avg = w_avg[None, None]
    else:  # per-class w_avg tables are [c_dim, w_dim] in some forks; use the global mean
        w_avg = w_avg.mean(0)[None, None]
    ws = ws.clone()
    n = ws.shape[1] if cutoff is None else min(int(cutoff), ws.shape[1])
    ws[:, :n] = w_avg + psi * (ws[:, :n] - w_avg)
    return ws


def check_truncation(psi: float, cutoff: int | None = None) -> None:
    # a NaN psi passes every range check (each comparison is False) and turns every image into NaN
    if not math.isfinite(psi):
        raise ValueError(f"truncation psi must be a finite number, not {psi}")
    if cutoff is not None and cutoff < 0:
        raise ValueError(f"truncation cutoff must be 0 or more, not {cutoff}")


def to_w(G, lat: Latent, psi: float = 1.0, cutoff: int | None = None) -> Latent:
    check_truncation(psi, cutoff)
    lat.check_fits(G)
    if lat.space == "w":
        return replace(lat, values=truncate_w(G, lat.values, psi, cutoff))
    if not is_style_based(G):
        raise ValueError("only style-based generators (StyleGAN) have a W space")
    p = next(G.parameters())
    c = None if lat.c is None else lat.c.to(p.device, p.dtype)
    ws = G.mapping(lat.values.to(p.device, p.dtype), c, truncation_psi=psi, truncation_cutoff=cutoff)
    return replace(lat, space="w", values=ws.float().cpu())


def mixing_presets(num_ws: int) -> dict[str, int]:
    """Crossover layers for style mixing, from the model's own layer count: the ws split in thirds
    into coarse (pose, shape), middle (features) and fine (colour, texture) layers, as Karras et al.
    group them by resolution. 'middle': the mix latent supplies middle and fine layers; 'fine': the
    fine layers only."""
    if num_ws < 3:
        raise ValueError(f"a generator with {num_ws} ws has no coarse/middle/fine split")
    return {"middle": round(num_ws / 3), "fine": round(2 * num_ws / 3)}


def mix(G, ws: torch.Tensor, ws2: torch.Tensor, crossover: int) -> torch.Tensor:
    """Layers from `crossover` on come from ws2 (style mixing, Karras et al. 2019)."""
    if ws2.shape[0] not in (1, ws.shape[0]):
        raise ValueError(f"mixing latent has {ws2.shape[0]} items; need 1 or {ws.shape[0]}")
    if not 0 <= crossover <= ws.shape[1]:
        raise ValueError(f"crossover {crossover} outside 0..{ws.shape[1]}")
    out = ws.clone()
    out[:, crossover:] = ws2[:, crossover:].expand(ws.shape[0], -1, -1)
    return out


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the last dim (for Gaussian z, whose mass lies near a sphere)."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    near = omega < 1e-4  # nearly parallel: fall back to lerp, which is exact there
    return torch.where(near, a + t * (b - a), out)


def interpolate(a: Latent, b: Latent, frames: int, method: str = "auto", pingpong: bool = False) -> Latent:
    """Frames from a to b, both ends included. A batch of N items (or 1 item against N) moves
    item by item; the result is frame-major: frame 0's N items, then frame 1's, and so on."""
    if a.space != b.space:
        raise ValueError(f"cannot interpolate a {a.space.upper()} latent with a {b.space.upper()} latent")
    if a.dims != b.dims:
        raise ValueError("the two latents were made for different generators")
    if frames < 2:
        raise ValueError("interpolation needs at least 2 frames")
    na, nb = len(a), len(b)
    if na != nb and 1 not in (na, nb):
        raise ValueError(f"latent batches of {na} and {nb} items: give equal sizes or one item")
    method = ("slerp" if a.space == "z" else "lerp") if method == "auto" else method
    n = max(na, nb)
    av, bv = a.values.expand(n, *a.values.shape[1:]), b.values.expand(n, *b.values.shape[1:])
    ts = torch.linspace(0, 1, frames)
    if pingpong:  # there and back, without repeating either end, so the loop is seamless
        ts = torch.cat([ts, ts.flip(0)[1:-1]])
    vals, cs = [], []
    for t in ts:
        shape = (1,) * av.ndim
        tt = t.reshape(shape)
        vals.append(slerp(av, bv, tt) if method == "slerp" else av + tt * (bv - av))
        if a.c is not None:
            cs.append(a.c.expand(n, -1) + t * (b.c.expand(n, -1) - a.c.expand(n, -1)))
    noise = None
    if a.noise is not None and b.noise is not None:  # two inversions: their fitted noise maps move too
        noise = [torch.cat([va.expand(n, -1, -1, -1) + t * (vb.expand(n, -1, -1, -1) - va.expand(n, -1, -1, -1))
                            for t in ts]) for va, vb in zip(a.noise, b.noise)]
    return Latent(a.space, torch.cat(vals), torch.cat(cs) if cs else None, dict(a.dims), [], noise)


def concat(latents: list[Latent]) -> Latent:
    first = latents[0]
    for l in latents[1:]:
        if l.space != first.space or l.dims != first.dims:
            raise ValueError("latents from different generators or spaces cannot be batched together")
    c = None if first.c is None else torch.cat([l.c for l in latents])
    # fitted noise maps survive only where every part has them (the others draw with noise_const)
    noise = None
    if all(l.noise is not None for l in latents):
        noise = [torch.cat(vs) for vs in zip(*(l.noise for l in latents))]
    return Latent(first.space, torch.cat([l.values for l in latents]), c, dict(first.dims),
                  sum((l.seeds for l in latents), []), noise)


def save_latent(path: str | os.PathLike, lat: Latent) -> None:
    tensors = {"values": lat.values.float().contiguous()}
    if lat.c is not None:
        tensors["c"] = lat.c.float().contiguous()
    for i, v in enumerate(lat.noise or []):
        tensors[f"noise.{i}"] = v.float().contiguous()
    meta = {"format": LATENT_FORMAT, "space": lat.space, "dims": json.dumps(lat.dims),
            "seeds": json.dumps(lat.seeds), "info": json.dumps(lat.info)}
    atomic_write_bytes(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_latent(path: str | os.PathLike) -> Latent:
    try:
        tensors, meta = read_small(path)
    except Exception as e:
        raise CheckpointError(f"{os.path.basename(str(path))}: not a latent file ({e})") from e
    name = os.path.basename(str(path))
    if meta.get("format") != LATENT_FORMAT or "values" not in tensors:
        raise CheckpointError(f"{name}: not a comfyui-gan latent file")
    try:
        noise = [tensors[f"noise.{i}"] for i in range(sum(k.startswith("noise.") for k in tensors))] or None
        lat = Latent(meta["space"], tensors["values"], tensors.get("c"), json.loads(meta["dims"]),
                     json.loads(meta.get("seeds", "[]")), noise, json.loads(meta.get("info", "{}")))
    except KeyError as e:
        raise CheckpointError(f"{name}: latent file header lacks {e.args[0]!r}") from e
    except ValueError as e:  # json's errors are ValueErrors
        raise CheckpointError(f"{name}: malformed latent file header ({e})") from e
    problem = _inconsistency(lat)
    if problem:
        raise CheckpointError(f"{name}: {problem}")
    return lat


def _inconsistency(lat: Latent) -> str | None:
    """What makes a loaded latent unusable, checked once at the door: past it a wrong shape fails deep
    in a forward pass and a NaN draws a black image without a word."""
    if lat.space not in ("z", "w"):
        return f"space must be 'z' or 'w', not {lat.space!r}"
    if not isinstance(lat.dims, dict) or not all(isinstance(v, int) and v >= 0 for v in lat.dims.values()):
        return f"dims must map names to sizes, not {lat.dims!r}"
    if not isinstance(lat.seeds, list) or not isinstance(lat.info, dict):
        return "seeds must be a list and info an object"
    v, n = lat.values, lat.values.shape[0] if lat.values.ndim else 0
    want = ([n, lat.dims.get("z_dim")] if lat.space == "z" else [n, lat.dims.get("num_ws"), lat.dims.get("w_dim")])
    if n < 1 or list(v.shape) != want:
        return f"values are {list(v.shape)}, a {lat.space} latent for these dims is [N>=1, " + \
            ", ".join(str(x) for x in want[1:]) + "]"
    if lat.c is not None and list(lat.c.shape) != [n, lat.dims.get("c_dim")]:
        return f"labels c are {list(lat.c.shape)}, expected [{n}, {lat.dims.get('c_dim')}]"
    if lat.seeds and len(lat.seeds) != n:
        return f"{len(lat.seeds)} seeds for {n} latents"
    if lat.noise is not None and any(t.ndim != 4 or t.shape[0] != n for t in lat.noise):
        return f"noise maps must be [{n}, 1, H, W]"
    for what, t in [("values", v), ("c", lat.c)] + [(f"noise.{i}", t) for i, t in enumerate(lat.noise or [])]:
        if t is not None and not (t.is_floating_point() and torch.isfinite(t).all()):
            return f"{what} holds NaN or infinite values (or is not floating point)"
    return None
