"""Discriminators, and the per-architecture recipe that pairs one with a generator.

The DCGAN pairing: a plain conditional DCGAN on Fashion-MNIST collapses to one prototype per class,
because a concat-conditioned discriminator lets G satisfy each class with a single convincing image.
Three things counter that here:
- spectral normalisation (Miyato et al. 2018) on every D layer keeps D Lipschitz, so its gradients
  stay informative instead of saturating on a few modes;
- a projection head (Miyato & Koyama 2018): the class enters as <embed(y), phi(x)>, which scores
  how well the *features* match the class rather than memorising a class template;
- minibatch standard deviation (Karras et al. 2018): D sees how varied a group of images is, so a
  batch of near-copies is easy to reject.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..archs import dcgan


def sn(m: nn.Module) -> nn.Module:
    return spectral_norm(m)


class MinibatchStd(nn.Module):
    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group, n)
        while n % g:  # a last, smaller batch: fall back to a group size that divides it
            g -= 1
        y = x.reshape(g, -1, c, h, w)
        y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [n/g]
        y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, y], 1)


class ProjectionDiscriminator(nn.Module):
    """SN-CNN: stride-2 convs halve the image down to the 4..7 px base (widths doubling from ndf),
    minibatch-stddev, one 3x3 conv, global sum pooling, then linear + projection of the label."""

    def __init__(self, resolution: int, img_channels: int, c_dim: int = 0, ndf: int = 32,
                 max_ch: int = 256, mbstd_group: int = 4):
        super().__init__()
        act = lambda: nn.LeakyReLU(0.1, inplace=True)  # noqa: E731
        layers: list[nn.Module] = [sn(nn.Conv2d(img_channels, ndf, 3, 1, 1)), act()]
        ch, res = ndf, resolution
        while res > 7:
            if res % 2:
                raise ValueError(f"discriminator: resolution {resolution} does not halve down to 4..7 px")
            nxt = min(ch * 2, max_ch)
            layers += [sn(nn.Conv2d(ch, nxt, 4, 2, 1)), act()]
            ch, res = nxt, res // 2
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group else None
        self.head = nn.Sequential(sn(nn.Conv2d(ch + (1 if mbstd_group else 0), ch, 3, 1, 1)), act())
        self.out = sn(nn.Linear(ch, 1))
        self.c_dim = c_dim
        self.embed = sn(nn.Embedding(c_dim, ch)) if c_dim else None

    def forward(self, x, y=None):
        h = self.features(x)
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = self.head(h).sum(dim=(2, 3))
        out = self.out(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass integer labels y")
            out = out + (self.embed(y) * h).sum(1)
        return out


def init_dcgan_weights(m: nn.Module) -> None:
    # Radford et al.: N(0, 0.02) conv weights, N(1, 0.02) BN scales
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@dataclass
class Recipe:
    """What the loop needs from an architecture: networks, export description and defaults.
    A new `--arch` (e.g. stylegan2) adds one Recipe; the loop stays as it is."""
    name: str
    make_G: Callable[[dict], nn.Module]            # config dict -> generator
    make_D: Callable[[dict], nn.Module]            # config dict -> discriminator
    export_meta: Callable[[nn.Module, dict], dict]  # (G, config) -> checkpoint description fields
    defaults: dict
    # raises ValueError naming the resolutions the networks can be built at; the command line calls it
    # so a bad --resolution stops before any data is decoded
    check_resolution: Callable[[int], None] = lambda r: None


def _dcgan_resolution(r: int) -> None:
    dcgan.first_kernel(r)  # 28 or a power of two >= 8: what both networks halve down to 4..7 px


def _dcgan_G(cfg: dict) -> nn.Module:
    layout = dcgan.make_layout(cfg["z_dim"], cfg["c_dim"], cfg["resolution"], cfg["channels"],
                               ngf=cfg["ngf"], bias=False)
    G = dcgan.Generator(layout, cfg["c_dim"])
    G.apply(init_dcgan_weights)
    return G


def _dcgan_D(cfg: dict) -> nn.Module:
    return ProjectionDiscriminator(cfg["resolution"], cfg["channels"], cfg["c_dim"], ndf=cfg["ndf"],
                                   mbstd_group=cfg["mbstd_group"])


def _dcgan_meta(G: nn.Module, cfg: dict) -> dict:
    return {"arch": "dcgan", "kind": "generator", "z_dim": G.z_dim, "c_dim": G.c_dim,
            "img_resolution": G.img_resolution, "img_channels": G.img_channels}


RECIPES: dict[str, Recipe] = {
    "dcgan": Recipe("dcgan", _dcgan_G, _dcgan_D, _dcgan_meta,
                    defaults=dict(z_dim=100, ngf=64, ndf=32, mbstd_group=4, lr=2e-4, betas=(0.5, 0.999),
                                  ema_beta=0.999, loss="hinge", augment="translation",
                                  channels_last=False),  # about 1.0x on CPU (bench_train.py): not worth it
                    check_resolution=_dcgan_resolution),
}
