"""GAN losses and differentiable augmentation.

Hinge loss (Lim & Ye 2017; used with spectral norm by Miyato et al.) is the default: D stops pushing
on samples it already separates by a margin, which keeps it from over-fitting a few modes. The
non-saturating logistic loss is kept for recipes (StyleGAN2) that expect it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .augment import Identity, row_slice, shift


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "logistic":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}; use 'hinge' or 'logistic'")


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "logistic":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}; use 'hinge' or 'logistic'")


def translate(x: torch.Tensor, ratio: float = 0.125, gen: torch.Generator | None = None,
              total: int | None = None, offset: int | slice = 0) -> torch.Tensor:
    """DiffAugment's translation (Zhao et al. 2020): shift each image by up to ratio * size pixels,
    filling with the background value -1. Applied to real and fake alike, and differentiable, so D
    cannot memorise exact pixel positions and G still gets gradients through it. Shifts are drawn
    for `total` images and x takes the rows `offset` names (see augment.py)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if not (sh or sw):
        return x
    total = n if total is None else total
    dy = torch.randint(-sh, sh + 1, (total,), generator=gen)
    dx = torch.randint(-sw, sw + 1, (total,), generator=gen)
    sel = row_slice(offset, n)
    dy, dx = dy[sel], dx[sel]
    return shift(x, dy, dx, sh, sw, value=-1.0)


AUGMENTS = {"none": Identity(), "translation": translate}


def mode_seeking_penalty(z: torch.Tensor, fake: torch.Tensor, eps: float = 1e-5, reduce=None) -> torch.Tensor:
    """Mode-seeking regularisation (Mao et al., CVPR 2019): pairs (first half, second half of the
    batch, same labels) whose images are close while their z's are far are penalised, which fights
    a conditional generator's collapse to a few prototypes per class. 1 / (ratio + eps) as in MSGAN.
    `reduce` (a gradient-carrying sum over ranks) makes both means those of the global batch."""
    h = z.shape[0] // 2
    dfake, dz = (fake[:h] - fake[h:2 * h]).abs(), (z[:h] - z[h:2 * h]).abs()
    sums = torch.stack([dfake.sum(), dz.sum().to(dfake.dtype),
                        torch.tensor(float(dfake.numel()), dtype=dfake.dtype, device=dfake.device),
                        torch.tensor(float(dz.numel()), dtype=dfake.dtype, device=dfake.device)])
    if reduce is not None:
        sums = reduce(sums)
    ratio = (sums[0] / sums[2]) / (sums[1] / sums[3])
    return 1.0 / (ratio + eps)
