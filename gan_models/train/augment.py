"""Differentiable augmentation applied to every image D sees, real and fake alike, so D cannot
memorise a small training set while G still gets gradients through the augmentation.

Two pipelines, chosen with ``--aug``:

- ``diffaug``: DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
  Training"), policy color,translation,cutout, applied to every image with probability 1:
  brightness +U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5); translation by up to 1/8
  of the size with zero fill; one cutout square of half the size filled with zero.
- ``ada``: adaptive augmentation after Karras et al. 2020 ("Training Generative Adversarial Networks
  with Limited Data"). Each transform is applied to each image with probability p, and p follows
  the overfitting heuristic r_t = E[sign(D(real))]: every `interval` steps p moves by
  sign(r_t - target) * batch * interval / (ada_kimg * 1000), so p can cross 0..1 in ada_kimg
  thousand images (NVlabs' speed: ada_kimg=500). Transforms, NVlabs' 'bgc' set less hue and luma
  flip: x-flip, rotation by multiples of 90 degrees, integer translation (up to 1/8), isotropic
  scale (lognormal, std 0.2 ln 2), arbitrary rotation, anisotropic scale, fractional translation
  (std 1/8), brightness (+N(0, 0.2)), contrast (x lognormal, std 0.5 ln 2), saturation (x lognormal,
  std ln 2, colour images only). The geometric ones are composed into one affine matrix per image
  and resampled once with bilinear `grid_sample` and reflection padding; NVlabs resamples through a
  symmetric wavelet filter at 2x, which leaks less aliasing. Their inverse is not needed: every
  parameter distribution is symmetric, so the sampling matrix is itself a draw of the transform.

Random draws: every call draws parameters for the *whole* global batch (`total` images) from the
generator it is given and uses rows [offset, offset + n) (or the rows of `offset` where it is a slice:
DCGAN ranks take every world-th row), so an image gets the same augmentation whichever rank or
accumulation round processes it, and the draws never depend on the world size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def row_slice(offset: int | slice, n: int) -> slice:
    return offset if isinstance(offset, slice) else slice(offset, offset + n)


def _rows(t: torch.Tensor, offset: int | slice, n: int, device) -> torch.Tensor:
    return t[row_slice(offset, n)].to(device)


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, sh: int, sw: int, value: float = 0.0) -> torch.Tensor:
    """Move image i by (dy[i], dx[i]) whole pixels, |dy| <= sh and |dx| <= sw, filling with `value`.
    A gather from a padded copy rather than a roll: what leaves the frame is gone, and the gradient
    reaches every pixel that stays."""
    _, c, h, w = x.shape
    padded = F.pad(x, (sw, sw, sh, sh), value=value)
    iy = torch.arange(h, device=x.device)[None, :] + sh - dy[:, None].to(x.device)  # [n, h]
    ix = torch.arange(w, device=x.device)[None, :] + sw - dx[:, None].to(x.device)  # [n, w]
    rows = padded.gather(2, iy[:, None, :, None].expand(-1, c, -1, padded.shape[3]))
    return rows.gather(3, ix[:, None, None, :].expand(-1, c, h, -1))


class Identity:
    name = "none"
    p = 0.0

    def __call__(self, x, gen=None, total=None, offset=0):
        return x

    def state_dict(self) -> dict:
        return {"name": self.name}

    def load_state_dict(self, s: dict) -> None:
        pass


class DiffAugment(Identity):
    name = "diffaug"
    p = 1.0

    def __init__(self, translation: float = 0.125, cutout: float = 0.5):
        self.translation, self.cutout = translation, cutout

    def __call__(self, x, gen=None, total=None, offset=0):
        n, c, h, w = x.shape
        total = n if total is None else total
        dev, dt = x.device, x.dtype
        u = torch.rand(total, 3, generator=gen)
        sh, sw = int(h * self.translation + 0.5), int(w * self.translation + 0.5)
        offsets = torch.stack([torch.randint(-sh, sh + 1, (total,), generator=gen),
                               torch.randint(-sw, sw + 1, (total,), generator=gen)], 1)
        ch, cw = int(h * self.cutout + 0.5), int(w * self.cutout + 0.5)
        corner = torch.stack([torch.randint(0, h + (1 - ch % 2), (total,), generator=gen),
                              torch.randint(0, w + (1 - cw % 2), (total,), generator=gen)], 1)
        u, offsets, corner = (_rows(t, offset, n, dev) for t in (u, offsets, corner))
        # colour
        x = x + (u[:, 0:1] - 0.5).to(dt).reshape(n, 1, 1, 1)
        if c > 1:
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (u[:, 1] * 2).to(dt).reshape(n, 1, 1, 1) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (u[:, 2] + 0.5).to(dt).reshape(n, 1, 1, 1) + mean
        # translation, zero fill
        if sh or sw:
            x = shift(x, offsets[:, 0], offsets[:, 1], sh, sw)
        # cutout: one square per image, centred anywhere (it may overhang the border)
        if ch and cw:
            ys = torch.arange(h, device=dev)[None, :] - (corner[:, 0:1] - ch // 2)
            xs = torch.arange(w, device=dev)[None, :] - (corner[:, 1:2] - cw // 2)
            inside = ((ys >= 0) & (ys < ch))[:, :, None] & ((xs >= 0) & (xs < cw))[:, None, :]
            x = x * (~inside).to(dt)[:, None]
        return x


class AdaptiveAugment(Identity):
    """ADA: the transforms above with probability p each; p adapts to D's overfitting."""
    name = "ada"

    def __init__(self, target: float = 0.6, ada_kimg: float = 500.0, interval: int = 4, p: float = 0.0,
                 batch: int = 1, reduce=None):
        if not 0.0 < target < 1.0:
            raise ValueError(f"--ada-target must be in (0, 1), not {target}")
        if ada_kimg <= 0:
            raise ValueError(f"--ada-kimg must be positive, not {ada_kimg}")
        self.target, self.ada_kimg, self.interval = float(target), float(ada_kimg), int(interval)
        self.p = float(p)
        self.batch = int(batch)
        self.reduce = reduce  # sums a [2] tensor over ranks under torchrun; None in one process
        self.sign_sum, self.count, self.calls = 0.0, 0, 0
        self.rt: float | None = None

    # -- the heuristic --------------------------------------------------------------------------
    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate sign(D(real)) of one micro-batch (call per micro-batch, then `step()`)."""
        self.sign_sum += float(real_logits.detach().float().sign().sum())
        self.count += int(real_logits.numel())

    def step(self) -> None:
        """One training step done: every `interval` steps move p towards r_t = target."""
        self.calls += 1
        if self.calls % self.interval:
            return
        stats = torch.tensor([self.sign_sum, float(self.count)], dtype=torch.float64)
        if self.reduce is not None:
            stats = self.reduce(stats)
        self.sign_sum, self.count = 0.0, 0
        if stats[1] <= 0:
            return
        self.rt = float(stats[0] / stats[1])
        adjust = math.copysign(1.0, self.rt - self.target) if self.rt != self.target else 0.0
        self.p = min(max(self.p + adjust * self.batch * self.interval / (self.ada_kimg * 1000), 0.0), 1.0)

    def state_dict(self) -> dict:
        return {"name": self.name, "p": self.p, "sign_sum": self.sign_sum, "count": self.count,
                "calls": self.calls, "rt": -2.0 if self.rt is None else self.rt}

    def load_state_dict(self, s: dict) -> None:
        if s.get("name") != self.name:
            raise ValueError(f"--resume: the snapshot used --aug {s.get('name')!r}, this run asks for 'ada'")
        self.p, self.sign_sum = float(s["p"]), float(s["sign_sum"])
        self.count, self.calls = int(s["count"]), int(s["calls"])
        self.rt = None if float(s["rt"]) == -2.0 else float(s["rt"])

    # -- the pipeline ---------------------------------------------------------------------------
    def __call__(self, x, gen=None, total=None, offset=0):
        n, c, h, w = x.shape
        total = n if total is None else total
        p = self.p
        if p <= 0:
            return x
        dev, dt = x.device, x.dtype
        # one fixed-size draw per call, whatever p is, so the generator advances identically
        on = torch.rand(total, 10, generator=gen) < p
        u = torch.rand(total, 4, generator=gen)
        g = torch.randn(total, 8, generator=gen)
        one = torch.ones(total)
        flip = torch.where(on[:, 0], 1 - 2 * torch.floor(u[:, 0] * 2), one)          # x-flip
        rot90 = torch.where(on[:, 1], torch.floor(u[:, 1] * 4), 0 * one) * (math.pi / 2)
        tint = torch.where(on[:, 2, None], torch.round((u[:, 2:4] * 2 - 1) * 0.125 * torch.tensor([w, h])),
                           torch.zeros(total, 2)) * 2 / torch.tensor([w, h])       # whole pixels, normalised
        iso = torch.where(on[:, 3], torch.exp2(g[:, 0] * 0.2), one)
        rot = torch.where(on[:, 4], (torch.rand(total, generator=gen) * 2 - 1) * math.pi, 0 * one)
        aniso = torch.where(on[:, 5], torch.exp2(g[:, 1] * 0.2), one)
        tfrac = torch.where(on[:, 6, None], g[:, 2:4] * 0.125 * 2, torch.zeros(total, 2))
        bright = torch.where(on[:, 7], g[:, 4] * 0.2, 0 * one)
        contrast = torch.where(on[:, 8], torch.exp2(g[:, 5] * 0.5), one)
        sat = torch.where(on[:, 9], torch.exp2(g[:, 6] * 1.0), one)
        geometric = on[:, :7].any(dim=1)

        sl = row_slice(offset, n)
        if bool(geometric[sl].any()):
            a = rot90[sl] + rot[sl]
            cos, sin = torch.cos(a), torch.sin(a)
            sx, sy = flip[sl] * iso[sl] * aniso[sl], iso[sl] / aniso[sl]
            t = tint[sl] + tfrac[sl]
            theta = torch.stack([torch.stack([cos * sx, -sin * sy, t[:, 0]], 1),
                                 torch.stack([sin * sx, cos * sy, t[:, 1]], 1)], 1)  # [n, 2, 3]
            grid = F.affine_grid(theta.to(device=dev, dtype=torch.float32), [n, c, h, w], align_corners=False)
            x = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection",
                              align_corners=False).to(dt)
        b, k, s = (t[sl].to(device=dev, dtype=dt).reshape(n, 1, 1, 1) for t in (bright, contrast, sat))
        x = x + b
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * k + mean
        if c == 3:
            luma = x.mean(dim=1, keepdim=True)
            x = (x - luma) * s + luma
        return x


AUGMENT_NAMES = ("none", "diffaug", "ada")


def build(name: str, *, batch: int = 1, target: float = 0.6, ada_kimg: float = 500.0, interval: int = 4,
          p: float = 0.0, reduce=None):
    if name == "none":
        return Identity()
    if name == "diffaug":
        return DiffAugment()
    if name == "ada":
        return AdaptiveAugment(target=target, ada_kimg=ada_kimg, interval=interval, p=p, batch=batch,
                               reduce=reduce)
    raise ValueError(f"unknown --aug {name!r}; choose one of {AUGMENT_NAMES}")
