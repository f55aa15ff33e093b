"""DCGAN (Radford et al., 2015), unconditional and class-conditional.

One layout serves both this project's own checkpoints and the PyTorch-tutorial DCGAN found in the
wild: a `main` nn.Sequential of ConvTranspose2d / BatchNorm2d / ReLU (/ Dropout) ending in Tanh, fed
with z (and, for class-conditional models, a one-hot label concatenated to z) as an [N, C, 1, 1] map.
Everything is read back from the state dict: parameterised layers come from the keys, the
parameterless ones (ReLU, Dropout, Tanh) from the gaps they leave in the `main.N` numbering.
"""
from __future__ import annotations

import math
import re

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..checkpoint import CheckpointError
from ..registry import Architecture, load_state_dict_strict, register
from .ops import MinibatchStdLayer

_KEY = re.compile(r"^main\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def first_kernel(resolution: int) -> tuple[int, int]:
    """(kernel of the 1x1 -> k x k projection, number of x2 up-sampling layers) for a resolution.
    28 px (MNIST-like data) starts from 7x7; powers of two start from the tutorial's 4x4."""
    if resolution == 28:
        return 7, 2
    n = int(math.log2(resolution)) - 2
    if resolution < 8 or 4 * 2 ** n != resolution:
        raise ValueError(f"DCGAN resolution must be 28 or a power of two >= 8, not {resolution}")
    return 4, n


def make_layout(z_dim: int, c_dim: int, resolution: int, img_channels: int, ngf: int = 64,
                bias: bool = False, dropout: float = 0.0) -> list[dict]:
    """The tutorial's layout scaled to a resolution: widths halve at each up-sampling, from
    ngf * 2**(n-1) down to ngf, then a last layer to the image channels."""
    k0, n_up = first_kernel(resolution)
    widths = [ngf * 2 ** i for i in reversed(range(n_up))]
    layout, ch = [], z_dim + c_dim
    for i, w in enumerate(widths):
        s, p, k = (1, 0, k0) if i == 0 else (2, 1, 4)
        layout += [dict(op="convT", cin=ch, cout=w, k=k, s=s, p=p, bias=bias),
                   dict(op="bn", ch=w), dict(op="relu")]
        if dropout:
            layout.append(dict(op="dropout", p=dropout))
        ch = w
    layout += [dict(op="convT", cin=ch, cout=img_channels, k=4, s=2, p=1, bias=bias), dict(op="tanh")]
    return layout


def _layer(spec: dict) -> nn.Module:
    op = spec["op"]
    if op == "convT":
        return nn.ConvTranspose2d(spec["cin"], spec["cout"], spec["k"], spec["s"], spec["p"], bias=spec["bias"])
    if op == "bn":
        return nn.BatchNorm2d(spec["ch"])
    return {"relu": lambda: nn.ReLU(True), "dropout": lambda: nn.Dropout(spec.get("p", 0.5)),
            "tanh": nn.Tanh, "identity": nn.Identity}[op]()


class Generator(nn.Module):
    def __init__(self, layout: list[dict], c_dim: int = 0):
        super().__init__()
        self.layout = layout
        self.main = nn.Sequential(*[_layer(s) for s in layout])
        self.c_dim = int(c_dim)
        in_ch = layout[0]["cin"]
        if not 0 <= self.c_dim < in_ch:
            raise CheckpointError(f"dcgan: c_dim {c_dim} does not fit an input of {in_ch} channels")
        self.z_dim = in_ch - self.c_dim
        self.img_channels = next(s["cout"] for s in reversed(layout) if s["op"] == "convT")
        res = 1
        for s in layout:
            if s["op"] == "convT":
                res = (res - 1) * s["s"] - 2 * s["p"] + s["k"]
        self.img_resolution = res

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        # DCGAN has no mapping network: truncation pulls z towards its mean (0), as for BigGAN-style
        # models; cutoff and noise_mode exist for API parity with style-based generators.
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        z = z * truncation_psi
        if self.c_dim:
            if c is None or c.shape != (z.shape[0], self.c_dim):
                raise ValueError(f"this generator is class-conditional: c must be one-hot [N, {self.c_dim}], "
                                 f"got {None if c is None else list(c.shape)}")
            z = torch.cat([z, c.to(z.dtype)], dim=1)
        elif c is not None and c.numel():
            raise ValueError("this generator is unconditional: pass c=None")
        return self.main(z[:, :, None, None])


def layout_from_state_dict(sd, meta: dict) -> list[dict]:
    idx: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        m = _KEY.match(k)
        if not m:
            raise CheckpointError(f"dcgan: unexpected key {k!r}")
        idx.setdefault(int(m.group(1)), {})[m.group(2)] = v
    if not idx:
        raise CheckpointError("dcgan: no main.N keys")
    strides = (meta.get("arch_kwargs") or {}).get("strides")
    layout: list[dict] = []
    last = max(idx)
    n_conv = 0
    for i in range(last + 1):
        p = idx.get(i)
        if p is None:
            # a parameterless layer: after a conv/BN it is the activation; a second one in the same gap
            # is a Dropout (identity at inference; tutorial variants put it on either side of ReLU)
            prev = layout[-1]["op"] if layout else None
            layout.append(dict(op="relu") if prev in ("convT", "bn") else dict(op="dropout", p=0.5))
            continue
        w = p["weight"]
        if w.ndim == 4:
            first = n_conv == 0
            s = strides[n_conv] if strides else (1 if first else 2)
            k = w.shape[2]
            layout.append(dict(op="convT", cin=w.shape[0], cout=w.shape[1], k=k, s=s,
                               p=0 if first else (k - 1) // 2, bias="bias" in p))
            n_conv += 1
        elif w.ndim == 1 and "running_mean" in p:
            layout.append(dict(op="bn", ch=w.shape[0]))
        else:
            raise CheckpointError(f"dcgan: layer main.{i} is neither ConvTranspose2d nor BatchNorm2d")
    layout.append(dict(op="tanh"))  # the tutorial's final Tanh sits after the last parameterised layer
    return layout



# ------------------------------------------------------------------------------------------------
# Training only: the discriminator and the init. A plain conditional DCGAN on Fashion-MNIST collapses
# to one prototype per class, because a concat-conditioned discriminator lets G satisfy each class
# with a single convincing image. Three things counter that here:
# - spectral normalisation (Miyato et al. 2018) on every D layer keeps D Lipschitz, so its gradients
#   stay informative instead of saturating on a few modes;
# - a projection head (Miyato & Koyama 2018): the class enters as <embed(y), phi(x)>, which scores
#   how well the *features* match the class rather than memorising a class template;
# - minibatch standard deviation (Karras et al. 2018): D sees how varied a group of images is, so a
#   batch of near-copies is easy to reject.

def sn(m: nn.Module) -> nn.Module:
    return spectral_norm(m)


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
        self.mbstd = MinibatchStdLayer(mbstd_group, strided=True) if mbstd_group else None
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


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """Radford et al.'s init, which the CycleGAN and pix2pix code use too: N(0, 0.02) convolutions and
    N(1, 0.02) norm scales. Torch's default Kaiming-uniform starts an LSGAN discriminator too confident."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def detect(sd, meta) -> float:
    keys = list(sd)
    if not keys or not all(_KEY.match(k) for k in keys):
        return 0.0
    w0 = sd.get("main.0.weight")
    if w0 is None or w0.ndim != 4:
        return 0.0
    return 1.0


def build(sd, meta) -> Generator:
    c_dim = int(meta.get("c_dim", 0))
    if "z_dim" in meta and c_dim == 0:
        c_dim = sd["main.0.weight"].shape[0] - int(meta["z_dim"])
    G = Generator(layout_from_state_dict(sd, meta), c_dim=c_dim)
    return load_state_dict_strict(G, sd, "dcgan")


register(Architecture(name="dcgan", kind="generator", detect=detect, build=build))
