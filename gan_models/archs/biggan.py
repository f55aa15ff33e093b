"""BigGAN-deep (Brock, Donahue and Simonyan, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis", ICLR 2019) in the layout that pytorch-pretrained-biggan releases (config.json beside a
pytorch_model.bin of `BigGAN.state_dict()`), in plain PyTorch, for inference.

The network, as the paper's appendix (BigGAN-deep) and the released PyTorch port have it:

- a class embedding: a linear map of the class vector c (one-hot, or a soft mixture of classes), so a
  blend of classes is a blend of embeddings;
- the conditioning vector cond = [z, embed(c)], fed to a spectrally normalised linear layer that makes
  a 4x4 map of 16 * ch channels (TF's NHWC order, permuted to NCHW), and to every batch norm;
- residual bottleneck blocks (`GBlock`): four class-conditional batch norms, each followed by ReLU and
  a conv (1x1 down by 4, 3x3, 3x3, 1x1 up), nearest x2 up-sampling inside the block and on the skip
  path, the skip dropping its last channels where the block halves the width;
- one non-local self-attention block (Zhang et al., SAGAN) before a chosen block;
- batch norm, ReLU, a 3x3 conv of which the first three channels are the image, tanh.

Every conv and linear layer is spectrally normalised (Miyato et al. 2018). In eval mode PyTorch's
`spectral_norm` divides the stored `weight_orig` by sigma = u . (W v) with the stored u and v, doing
no power iteration; so does `SNLinear` / `SNConv2d` here, on every call.

The batch norms keep no single running mean: the release stores statistics measured at n_stats
truncation levels 0, 1/(n_stats-1), ..., 1 (`running_means` [n_stats, C]) and picks them by the
truncation the image is drawn at (`truncation_statistics`, which interpolates exactly as upstream).

Call it as NVlabs' generators are called: ``G(z, c, truncation_psi=t)`` returns NCHW in [-1, 1] and
equals upstream ``BigGAN(z, c, t)``. As upstream, z is taken as given: BigGAN's z is a truncated normal
in [-2, 2] that the caller has *already scaled by t* (`truncated_noise_sample(truncation=t)` returns
truncnorm * t), and t also picks the batch-norm statistics. The pack's sampling draws the unscaled
truncated normal (`latents.sample`), and `generate.synthesize` scales it by the same t it passes
here (`latents.z_for_truncation`), so one truncation value drives both.

Parameter and buffer names are the release's (embeddings.weight, generator.gen_z.weight_orig,
generator.layers.3.bn_1.scale.weight_u, ...): its state dict loads as is. What the shapes cannot say
comes from the header's `arch_kwargs`: which blocks up-sample (`up`, default every second block, as in
all released configs) and the batch-norm epsilon (`eps`, default 1e-4).
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError
from ..registry import Architecture, load_state_dict_strict, register

# BigGAN's z: a standard normal truncated to [-Z_BOUND, Z_BOUND] (then scaled by the truncation)
Z_BOUND = 2.0

# pytorch-pretrained-biggan's BigGANConfig defaults: the 128 px model, (up-sample?, in, out) in units of
# channel_width per block
DEFAULT_LAYERS = ((False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
                  (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1))

_BLOCK = re.compile(r"^generator\.layers\.(\d+)\.")


def spectral_normalized(weight_orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """weight_orig / sigma, sigma = u . (W v) with W the weight as a [out, rest] matrix: what PyTorch's
    spectral_norm computes in eval mode (no power iteration) from the u and v the file stores."""
    sigma = torch.dot(u, torch.mv(weight_orig.reshape(weight_orig.shape[0], -1), v))
    return weight_orig / sigma


class SNLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight_orig = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.register_buffer("weight_u", torch.empty(out_features))
        self.register_buffer("weight_v", torch.empty(in_features))

    def weight(self) -> torch.Tensor:
        return spectral_normalized(self.weight_orig, self.weight_u, self.weight_v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class SNConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self.padding = kernel_size // 2
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("weight_u", torch.empty(out_channels))
        self.register_buffer("weight_v", torch.empty(in_channels * kernel_size * kernel_size))

    def weight(self) -> torch.Tensor:
        return spectral_normalized(self.weight_orig, self.weight_u, self.weight_v)

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        """out_channels: compute only the first ones (sigma still comes from the whole weight)."""
        w, b = self.weight(), self.bias
        if out_channels is not None:
            w, b = w[:out_channels], None if b is None else b[:out_channels]
        return F.conv2d(x, w, b, padding=self.padding)


def truncation_statistics(running_means: torch.Tensor, running_vars: torch.Tensor,
                          truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, var) stored for `truncation`, from statistics measured at the n_stats levels
    0, 1/(n_stats-1), ..., 1. Exactly as pytorch-pretrained-biggan picks them: with
    coef, k = modf(t / step), level k's statistics weighted by coef plus level k+1's by 1 - coef
    (a truncation between two levels leans towards the *farther* one, and float rounding of t / step
    decides the level: t = 0.7 of 11 levels reads 6.999..., so level 6 with weight ~1, not level 7).
    Reproduced, not fixed: the released images were made with this lookup."""
    n_stats = running_means.shape[0]
    coef, start = math.modf(truncation / (1.0 / (n_stats - 1)))
    start = int(start)
    if coef != 0.0:
        mean = running_means[start] * coef + running_means[start + 1] * (1 - coef)
        var = running_vars[start] * coef + running_vars[start + 1] * (1 - coef)
    else:
        mean, var = running_means[start], running_vars[start]
    return mean, var


class ConditionalBatchNorm(nn.Module):
    """Class-conditional batch norm (de Vries et al. 2017; BigGAN's conditional BN): the gain 1 + scale(cond)
    and bias offset(cond) are linear in the conditioning vector [z, embed(c)]; the statistics are the
    stored ones for the truncation."""

    def __init__(self, num_features: int, cond_dim: int, n_stats: int = 51, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        self.scale = SNLinear(cond_dim, num_features, bias=False)
        self.offset = SNLinear(cond_dim, num_features, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        mean, var = truncation_statistics(self.running_means, self.running_vars, truncation)
        gain = 1 + self.scale(cond)[:, :, None, None]
        bias = self.offset(cond)[:, :, None, None]
        return (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps) * gain + bias


class BatchNorm(nn.Module):
    """The last, unconditional batch norm, with per-truncation statistics like the others."""

    def __init__(self, num_features: int, n_stats: int = 51, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, truncation: float) -> torch.Tensor:
        mean, var = truncation_statistics(self.running_means, self.running_vars, truncation)
        return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)


class GBlock(nn.Module):
    """BigGAN-deep's residual block: BN-ReLU-conv four times, 1x1 (down by `bottleneck`), 3x3 (after the
    x2 up-sampling), 3x3, 1x1 (up to the output width). The skip path keeps the first out channels and
    is up-sampled alike; the two are added."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, up: bool = False,
                 bottleneck: int = 4, n_stats: int = 51, eps: float = 1e-4):
        super().__init__()
        if out_channels not in (in_channels, in_channels // 2):
            raise CheckpointError(f"biggan: a block maps {in_channels} -> {out_channels} channels; BigGAN-deep "
                                  "blocks keep or halve the width (the skip path drops the second half)")
        self.up, self.out_channels = up, out_channels
        mid = in_channels // bottleneck
        self.bn_0 = ConditionalBatchNorm(in_channels, cond_dim, n_stats, eps)
        self.conv_0 = SNConv2d(in_channels, mid, 1)
        self.bn_1 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_1 = SNConv2d(mid, mid, 3)
        self.bn_2 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_2 = SNConv2d(mid, mid, 3)
        self.bn_3 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_3 = SNConv2d(mid, out_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        skip = x
        x = self.conv_0(F.relu(self.bn_0(x, cond, truncation)))
        x = F.relu(self.bn_1(x, cond, truncation))
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv_1(x)
        x = self.conv_2(F.relu(self.bn_2(x, cond, truncation)))
        x = self.conv_3(F.relu(self.bn_3(x, cond, truncation)))
        if skip.shape[1] != self.out_channels:
            skip = skip[:, :self.out_channels]  # the first half
        if self.up:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return x + skip


class SelfAttention(nn.Module):
    """SAGAN's non-local block: queries (theta) at every position, keys (phi) and values (g) max-pooled
    2x2, the attended values projected back (o) and added with a learnt gain gamma."""

    def __init__(self, channels: int):
        super().__init__()
        self.snconv1x1_theta = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_phi = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_g = SNConv2d(channels, channels // 2, 1, bias=False)
        self.snconv1x1_o_conv = SNConv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = x.shape
        theta = self.snconv1x1_theta(x).reshape(n, ch // 8, h * w)
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).reshape(n, ch // 8, h * w // 4)
        attn = torch.softmax(torch.bmm(theta.permute(0, 2, 1), phi), dim=-1)
        g = F.max_pool2d(self.snconv1x1_g(x), 2).reshape(n, ch // 2, h * w // 4)
        o = torch.bmm(g, attn.permute(0, 2, 1)).reshape(n, ch // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(o)


class Synthesis(nn.Module):
    """cond -> image: the 4x4 projection, the blocks (with the attention before block
    `attention_layer_position`), the last BN, ReLU, conv and tanh."""

    def __init__(self, cond_dim: int, channel_width: int, layers, attention_layer_position: int,
                 n_stats: int, eps: float):
        super().__init__()
        ch = self.channel_width = channel_width
        self.gen_z = SNLinear(cond_dim, 4 * 4 * 16 * ch)
        blocks: list[nn.Module] = []
        for i, (up, cin, cout) in enumerate(layers):
            if i == attention_layer_position:
                blocks.append(SelfAttention(ch * cin))
            blocks.append(GBlock(ch * cin, ch * cout, cond_dim, up=bool(up), n_stats=n_stats, eps=eps))
        self.layers = nn.ModuleList(blocks)
        self.bn = BatchNorm(ch, n_stats, eps)
        self.conv_to_rgb = SNConv2d(ch, ch, 3)
        self.img_channels = min(3, ch)

    def forward(self, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        x = self.gen_z(cond)
        # the weights came from TF, whose maps are NHWC
        x = x.reshape(-1, 4, 4, 16 * self.channel_width).permute(0, 3, 1, 2).contiguous()
        for layer in self.layers:
            x = layer(x, cond, truncation) if isinstance(layer, GBlock) else layer(x)
        x = F.relu(self.bn(x, truncation))
        return torch.tanh(self.conv_to_rgb(x, out_channels=self.img_channels))


class Generator(nn.Module):
    """G(z, c, truncation_psi=t): NCHW in [-1, 1], upstream's BigGAN(z, c, t). The constructor takes
    BigGANConfig's fields (layers as (up-sample?, in, out) in units of channel_width)."""

    # how the pack samples this generator's z (latents.sample) and who scales it (see the module doc)
    z_distribution = "truncated_normal"
    z_bound = Z_BOUND

    def __init__(self, z_dim: int = 128, c_dim: int = 1000, channel_width: int = 128, layers=DEFAULT_LAYERS,
                 attention_layer_position: int = 8, n_stats: int = 51, eps: float = 1e-4):
        super().__init__()
        if n_stats < 2:
            raise CheckpointError(f"biggan: batch-norm statistics for {n_stats} truncation level(s); at least 2 "
                                  "are needed (levels 0 and 1)")
        self.z_dim, self.c_dim = int(z_dim), int(c_dim)
        self.layers_config = [(bool(u), int(i), int(o)) for u, i, o in layers]
        self.attention_layer_position = int(attention_layer_position)
        self.n_stats, self.eps = int(n_stats), float(eps)
        self.embeddings = nn.Linear(self.c_dim, self.z_dim, bias=False)
        self.generator = Synthesis(2 * self.z_dim, int(channel_width), self.layers_config,
                                   self.attention_layer_position, self.n_stats, self.eps)
        self.img_resolution = 4 * 2 ** sum(u for u, _, _ in self.layers_config)
        self.img_channels = self.generator.img_channels

    def truncation_levels(self) -> list[float]:
        """The truncations the batch-norm statistics were measured at."""
        return [k / (self.n_stats - 1) for k in range(self.n_stats)]

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff=None, noise_mode: str = "const") -> torch.Tensor:
        """z [N, z_dim], already scaled by the truncation (truncnorm(-2, 2) * t); c [N, c_dim], one-hot
        or a soft mixture of classes; truncation_psi the t in (0, 1] that picks the batch-norm statistics.
        truncation_cutoff and noise_mode exist for API parity with the style-based generators
        (BigGAN has no per-layer truncation and no noise inputs)."""
        t = float(truncation_psi)
        if not 0 < t <= 1:
            raise ValueError(f"BigGAN's truncation must be in (0, 1] (its batch-norm statistics were measured "
                             f"there), not {truncation_psi}")
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        if c is None or c.ndim != 2 or c.shape != (z.shape[0], self.c_dim) or not c.is_floating_point():
            raise ValueError(f"BigGAN is class-conditional: c must be a class vector [N, {self.c_dim}] of floats "
                             f"(one-hot, or a soft mixture), got "
                             f"{None if c is None else f'{list(c.shape)} {c.dtype}'}")
        cond = torch.cat((z, self.embeddings(c.to(z.dtype))), dim=1)
        return self.generator(cond, t)


def _blocks(sd) -> tuple[list[tuple[int, int, int]], int]:
    """([(index in generator.layers, in channels, out channels)] of the GBlocks, the attention's
    position among them: the number of blocks before it, or the block count when there is none)."""
    idx = sorted({int(m.group(1)) for k in sd for m in [_BLOCK.match(k)] if m})
    if idx != list(range(len(idx))):
        raise CheckpointError(f"biggan: generator.layers must be numbered 0..N, found {idx}")
    blocks, attention = [], None
    for i in idx:
        if f"generator.layers.{i}.snconv1x1_theta.weight_orig" in sd:
            if attention is not None:
                raise CheckpointError("biggan: more than one self-attention layer")
            attention = len(blocks)
            continue
        w0, w3 = sd.get(f"generator.layers.{i}.bn_0.running_means"), sd.get(f"generator.layers.{i}.conv_3.weight_orig")
        if w0 is None or w3 is None or w0.ndim != 2 or w3.ndim != 4:
            raise CheckpointError(f"biggan: generator.layers.{i} is neither a residual block (bn_0 ... conv_3) "
                                  "nor the self-attention (snconv1x1_*)")
        blocks.append((i, int(w0.shape[1]), int(w3.shape[0])))
    return blocks, len(blocks) if attention is None else attention


ARCH_KWARGS = {"up", "eps"}


def config_from_state_dict(sd, meta: dict) -> dict:
    """The Generator's constructor arguments: sizes from the tensors' shapes, the up-sampling pattern
    and the epsilon from the header's arch_kwargs (released defaults where it has none)."""
    kwargs = dict(meta.get("arch_kwargs") or {})
    unknown = set(kwargs) - ARCH_KWARGS
    if unknown:
        raise CheckpointError(f"biggan: unknown arch_kwargs {sorted(unknown)} (known: {sorted(ARCH_KWARGS)})")
    emb = sd["embeddings.weight"]
    z_dim, c_dim = int(emb.shape[0]), int(emb.shape[1])
    out_features = int(sd["generator.gen_z.weight_orig"].shape[0])
    if out_features % (4 * 4 * 16):
        raise CheckpointError(f"biggan: generator.gen_z makes {out_features} values, not 4 x 4 x 16 x channel_width")
    ch = out_features // (4 * 4 * 16)
    blocks, attention = _blocks(sd)
    if not blocks:
        raise CheckpointError("biggan: no residual blocks under generator.layers")
    up = kwargs.get("up")
    if up is None:  # every released config up-samples in every second block
        up = [i % 2 == 1 for i in range(len(blocks))]
    if not (isinstance(up, list) and len(up) == len(blocks) and all(isinstance(u, bool) for u in up)):
        raise CheckpointError(f"biggan: arch_kwargs 'up' must list {len(blocks)} booleans (one per block), "
                              f"not {up!r}")
    layers = []
    for (i, cin, cout), u in zip(blocks, up):
        if cin % ch or cout % ch:
            raise CheckpointError(f"biggan: generator.layers.{i} maps {cin} -> {cout} channels, not multiples of "
                                  f"the channel width {ch}")
        layers.append((u, cin // ch, cout // ch))
    eps = kwargs.get("eps", 1e-4)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise CheckpointError(f"biggan: arch_kwargs 'eps' must be a number in (0, 1), not {eps!r}")
    return dict(z_dim=z_dim, c_dim=c_dim, channel_width=ch, layers=layers, attention_layer_position=attention,
                n_stats=int(sd["generator.bn.running_means"].shape[0]), eps=float(eps))


def detect(sd, meta) -> float:
    emb, gen_z = sd.get("embeddings.weight"), sd.get("generator.gen_z.weight_orig")
    if emb is None or gen_z is None or emb.ndim != 2 or gen_z.ndim != 2:
        return 0.0
    if "generator.conv_to_rgb.weight_orig" not in sd or "generator.bn.running_means" not in sd:
        return 0.0
    return 1.0 if gen_z.shape[1] == 2 * emb.shape[0] else 0.0


def build(sd, meta) -> Generator:
    try:
        G = Generator(**config_from_state_dict(sd, meta))
    except KeyError as e:
        raise CheckpointError(f"biggan: missing tensor {e.args[0]!r}") from None
    return load_state_dict_strict(G, sd, "biggan")


register(Architecture(name="biggan", kind="generator", detect=detect, build=build))
