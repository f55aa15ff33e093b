"""StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020) as in
NVlabs' stylegan2-ada-pytorch, in plain PyTorch: no custom CUDA ops, no pickles.

Parameter and buffer names are NVlabs' (mapping.fc0.weight, synthesis.b4.conv1.affine.weight, ...)
so that an NVlabs ``G_ema.state_dict()`` loads as is. rosinality/stylegan2-pytorch checkpoints are the
same network under other names; `rosinality_to_nvlabs` renames them onto these modules.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .ops import (SQRT2, MinibatchStdLayer, bias_act, conv2d_resample, modulated_conv2d,  # noqa: F401
                  modulated_conv2d_lrelu_shared, normalize_2nd_moment, setup_filter, upfirdn2d, upsample2d)

class FullyConnectedLayer(nn.Module):
    """Equalized-learning-rate linear layer: weights are stored at N(0, 1/lr_multiplier^2) and
    scaled at run time, so the optimiser sees every layer at the same scale."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class MappingNetwork(nn.Module):
    """z (and a one-hot label c) -> w, broadcast to [N, num_ws, w_dim]; truncation towards w_avg.

    General enough for StyleGAN3's mapping too (num_layers=2, embed_features=w_dim)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        if z_dim <= 0 and c_dim <= 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1],
                                                           activation=activation, lr_multiplier=lr_multiplier))
        # the truncation centre: a running mean of w during training, a constant here
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else list(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"this generator is conditional: c must be a one-hot [N, {self.c_dim}], "
                                 f"got {None if c is None else list(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            # x stays float32 while a half-precision module keeps w_avg in half: lerp needs one dtype
            w_avg = self.w_avg.to(x.dtype)
            if self.num_ws is None or truncation_cutoff is None:
                x = w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


# ------------------------------------------------------------------------------------------------
# Resampling: an FIR filter applied around zero-insertion upsampling (upfirdn2d), written with
# stock PyTorch ops so it runs anywhere; NVlabs' CUDA kernel computes the same thing.

NOISE_MODES = ("const", "random", "none")


class Conv2dLayer(nn.Module):
    """Plain equalized-lr convolution with optional 2x resampling: up in the generator's 'resnet' skip,
    down in the discriminator."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None):
        super().__init__()
        if up not in (1, 2) or down not in (1, 2) or up * down > 2:
            raise ValueError(f"Conv2dLayer resamples by 2 up or down, not up={up}, down={down}")
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1, separable: bool = False) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=(self.up == 1), separable=separable)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        act_gain = (SQRT2 if self.activation in ("lrelu", "relu") else 1.0) * gain
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=clamp)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up), per-pixel noise, bias, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = SQRT2 if activation in ("lrelu", "relu") else 1.0
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                fused_modconv: bool = True, gain: float = 1, noise: torch.Tensor | None = None,
                separable: bool = False) -> torch.Tensor:
        styles = self.affine(w)
        if self.use_noise:
            if noise is not None:
                noise = _as_noise(noise, x.shape[0], self.resolution) * self.noise_strength
            elif noise_mode == "random":
                noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                    dtype=torch.float32) * self.noise_strength
            elif noise_mode == "const":
                noise = self.noise_const * self.noise_strength
            else:
                noise = None
        else:
            noise = None
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        # the shared-kernel epilogue writes in place (out=), which autograd refuses: inference only
        if (not fused_modconv and x.dtype == torch.float32 and self.activation == "lrelu" and not separable
                and not torch.is_grad_enabled()):
            return modulated_conv2d_lrelu_shared(x, self.weight, styles, self.bias, noise, self.act_gain * gain,
                                                 up=self.up, padding=self.padding,
                                                 resample_filter=self.resample_filter,
                                                 flip_weight=(self.up == 1), clamp=clamp)
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv, separable=separable)
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, "
                f"up={self.up}, activation={self.activation}")


def _as_noise(noise: torch.Tensor, n: int, resolution: int) -> torch.Tensor:
    """Explicit noise as [N or 1, 1, r, r] (also accepts [r, r], as stored in noise_const)."""
    if noise.ndim == 2:
        noise = noise[None, None]
    if noise.ndim != 4 or noise.shape[1] != 1 or tuple(noise.shape[2:]) != (resolution, resolution) \
            or noise.shape[0] not in (1, n):
        raise ValueError(f"noise for a {resolution}x{resolution} layer must be [1 or {n}, 1, {resolution}, "
                         f"{resolution}], got {list(noise.shape)}")
    return noise


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const or 2x-upsampling conv0) + conv1, and an RGB output per architecture:
    'orig' only at the last block, 'skip' summed over upsampled RGB outputs of every block,
    'resnet' with a 1x1 upsampling shortcut around the two convs."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, is_last: bool, architecture: str = "skip",
                 resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None, use_fp16: bool = False,
                 **layer_kwargs):
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', not {architecture!r}")
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                    resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x, img, ws, dtype=torch.float32, fused_modconv=None, noise_mode="const",
                noises=(None, None), separable=False, channels_last=False):
        w_iter = iter(ws.unbind(dim=1))
        if fused_modconv is None:
            # NVlabs' rule: per-sample weights only when they stay cheap and exact enough
            fused_modconv = (not self.training) and (dtype == torch.float32 or ws.shape[0] == 1)
        # channels_last pays off only with a shared kernel; the fused path regroups the batch into channels
        fmt = torch.channels_last if channels_last and not fused_modconv else torch.contiguous_format
        kw = dict(fused_modconv=fused_modconv, noise_mode=noise_mode, separable=separable)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1]).to(memory_format=fmt)
            x = self.conv1(x, next(w_iter), noise=noises[0], **kw)
        elif self.architecture == "resnet":
            x = x.to(dtype=dtype, memory_format=fmt)
            y = self.skip(x, gain=math.sqrt(0.5), separable=separable)
            x = self.conv0(x, next(w_iter), noise=noises[0], **kw)
            x = self.conv1(x, next(w_iter), gain=math.sqrt(0.5), noise=noises[1], **kw)
            x = y + x
        else:
            x = x.to(dtype=dtype, memory_format=fmt)
            x = self.conv0(x, next(w_iter), noise=noises[0], **kw)
            x = self.conv1(x, next(w_iter), noise=noises[1], **kw)
        if img is not None:
            img = upsample2d(img, self.resample_filter, separable=separable)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R]. Block b{res} reads ws[:, i:i+k] where
    consecutive blocks share one w between the ToRGB of one and conv0 of the next."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, channels: dict | None = None,
                 **block_kwargs):
        super().__init__()
        log2 = int(math.log2(img_resolution)) if img_resolution > 0 else 0
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        if channels is None:
            channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        channels = {int(k): int(v) for k, v in channels.items()}
        if min(channels.values()) < 1:
            raise ValueError(f"channel_base {channel_base} and channel_max {channel_max} leave no channels at "
                             f"{img_resolution} px (the width at r is min(channel_base // r, channel_max))")
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_fp16_res = num_fp16_res
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res,
                                   img_channels, is_last=(res == img_resolution),
                                   use_fp16=(res >= fp16_resolution), **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """Shapes of the explicit `noise` list, one per conv layer in order (as rosinality's make_noise)."""
        return [(1, 1, res, res) for res in self.block_resolutions
                for _ in range(getattr(self, f"b{res}").num_conv)]

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", noise=None,
                force_fp32: bool | None = None, fused_modconv: bool | None = None,
                separable: bool = False, channels_last: bool = False) -> torch.Tensor:
        """noise_mode: 'const' (the stored noise_const buffers, reproducible), 'random' or 'none'.
        noise: explicit per-layer noise (see noise_shapes), overrides noise_mode.
        force_fp32: None = fp16 blocks (num_fp16_res) only on CUDA; False = wherever configured;
        True = never.
        fused_modconv: None = NVlabs' choice (per-sample grouped conv in eval fp32, bit-equal to
        upstream); False = modulate activations around one shared-weight conv, which with
        channels_last=True is the fast CPU path (same result to ~1e-5)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, not {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        layer_noise = [None] * sum(getattr(self, f"b{r}").num_conv for r in self.block_resolutions)
        if noise is not None:
            noise = list(noise)
            if len(noise) != len(layer_noise):
                raise ValueError(f"noise must be a list of {len(layer_noise)} tensors (one per conv layer), "
                                 f"got {len(noise)}")
            layer_noise = noise
        if force_fp32 is None:
            force_fp32 = ws.device.type != "cuda"
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = n_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            cur_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            dtype = torch.float16 if block.use_fp16 and not force_fp32 else torch.float32
            noises = layer_noise[n_idx: n_idx + block.num_conv]
            x, img = block(x, img, cur_ws, dtype=dtype, fused_modconv=fused_modconv, noise_mode=noise_mode,
                           noises=noises if block.in_channels else (noises[0], None), separable=separable,
                           channels_last=channels_last)
            w_idx += block.num_conv
            n_idx += block.num_conv
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


class Generator(nn.Module):
    """z [N, z_dim] (+ one-hot c [N, c_dim]) -> image [N, img_channels, R, R] in about [-1, 1]."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, noise_mode: str = "const", **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)


# ------------------------------------------------------------------------------------------------
# Checkpoints: NVlabs keys are the module's own; rosinality's are renamed onto them.

# ------------------------------------------------------------------------------------------------
# Discriminator: NVlabs' 'resnet' one (stylegan2-ada-pytorch), which only training builds:
# equalized-lr convolutions, blocks that halve the resolution with a [1,3,3,1] low-pass before the
# stride and a 1x1 shortcut, then an epilogue with minibatch standard deviation, a 3x3 conv and two
# dense layers. A class-conditional D scores by projection: a mapping network embeds the label into
# cmap and the output is <phi(x), cmap> / sqrt(cmap_dim).

SQRT_HALF = math.sqrt(0.5)


class DiscriminatorBlock(nn.Module):
    """'resnet' block: (fromrgb at the first block) conv0, conv1 with 2x down, 1x1 down shortcut."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = in_channels
        # unused by 'resnet' (its layers hold their own), kept so NVlabs' D state dicts load as they are
        self.register_buffer("resample_filter", setup_filter([1, 3, 3, 1]))
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2,
                                 conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(x)
        y = self.skip(x, gain=SQRT_HALF)
        x = self.conv1(self.conv0(x), gain=SQRT_HALF)
        return y + x  # sqrt(1/2) on both paths keeps the sum at unit variance


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim else 1)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1).float())
        x = self.out(x)
        if self.cmap_dim:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """img [N, C, R, R] (+ one-hot c [N, c_dim]) -> logits [N, 1]."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, cmap_dim: int | None = None, conv_clamp: float | None = 256,
                 mbstd_group_size: int = 4, mbstd_num_channels: int = 1, mapping_kwargs: dict | None = None):
        super().__init__()
        log2 = int(math.log2(img_resolution)) if img_resolution > 0 else 0
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        ch = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        if min(ch.values()) < 1:
            raise ValueError(f"channel_base {channel_base} is too small for {img_resolution} px")
        cmap_dim = (ch[4] if cmap_dim is None else cmap_dim) if c_dim else 0
        for res in self.block_resolutions:
            in_ch = ch[res] if res < img_resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_ch, ch[res], ch[res // 2], img_channels,
                                                        conv_clamp=conv_clamp))
        if c_dim:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
            # no truncation in D: NVlabs' D mapping has no w_avg, so it is left out of the state dict
            self.mapping._non_persistent_buffers_set.add("w_avg")
        self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim, mbstd_group_size=mbstd_group_size,
                                        mbstd_num_channels=mbstd_num_channels, conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f"D expects [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
                             f"got {list(img.shape)}")
        x = img
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)
        cmap = None
        if self.c_dim:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"this discriminator is class-conditional: pass a one-hot c [N, {self.c_dim}]")
            cmap = self.mapping(None, c)
        return self.b4(x, cmap)


# ------------------------------------------------------------------------------------------------
# Recipe


def _is_nvlabs(sd) -> bool:
    return ("mapping.fc0.weight" in sd and "synthesis.b4.const" in sd
            and "synthesis.b4.conv1.affine.weight" in sd)


def _is_rosinality(sd) -> bool:
    need = ("style.1.weight", "input.input", "conv1.conv.weight", "conv1.conv.modulation.weight",
            "to_rgb1.conv.weight")
    # swagan.py shares these names but its ToRGB emits 4 wavelet bands (12 channels): not this network
    return all(k in sd for k in need) and sd["to_rgb1.conv.weight"].shape[1] == 3


def detect(sd, meta: dict) -> float:
    if _is_nvlabs(sd):
        return 1.0
    if _is_rosinality(sd):
        return 0.9
    return 0.0


def rosinality_to_nvlabs(sd, latent_avg: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Rename a rosinality Generator state dict (g_ema) onto NVlabs' keys.

    rosinality folds the equalized-lr scale 1/sqrt(fan_in) into ModulatedConv2d at run time; NVlabs'
    demodulated layers have none, so it is folded into the weights here (same product, same order).
    ToRGB keeps it in both (on the styles). `latent_avg` (saved beside g_ema) becomes mapping.w_avg."""
    if not _is_rosinality(sd):
        raise ValueError("not a rosinality StyleGAN2 generator state dict (need style.N, input.input, conv1, "
                         "to_rgb1)")
    sd = dict(sd)
    out: dict[str, torch.Tensor] = {}
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        out[f"mapping.fc{n_mlp}.weight"] = sd[f"style.{n_mlp + 1}.weight"]
        out[f"mapping.fc{n_mlp}.bias"] = sd[f"style.{n_mlp + 1}.bias"]
        n_mlp += 1
    w_dim = out[f"mapping.fc{n_mlp - 1}.weight"].shape[0]
    avg = latent_avg if latent_avg is not None else sd.get("latent_avg")
    if avg is not None:
        avg = avg.reshape(-1)
        if avg.numel() != w_dim:
            raise ValueError(f"latent_avg has {avg.numel()} values, the mapping outputs {w_dim}")
    out["mapping.w_avg"] = avg.float() if avg is not None else torch.zeros([w_dim])

    kernel = next((sd[k] for k in sorted(sd) if k.endswith(".blur.kernel") or k.endswith(".upsample.kernel")),
                  None)
    filt = (kernel / kernel.sum()) if kernel is not None else setup_filter([1, 3, 3, 1])

    def styled_conv(src: str, dst: str, noise_key: str):
        w = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.weight"] = w * (1 / math.sqrt(w[0].numel()))
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
        noise = sd.get(noise_key)
        out[f"{dst}.noise_const"] = noise.reshape(noise.shape[-2:]) if noise is not None else None
        out[f"{dst}.resample_filter"] = filt

    def to_rgb(src: str, dst: str):
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

    out["synthesis.b4.const"] = sd["input.input"][0]
    out["synthesis.b4.resample_filter"] = filt
    styled_conv("conv1", "synthesis.b4.conv1", "noises.noise_0")
    to_rgb("to_rgb1", "synthesis.b4.torgb")
    j = 0
    while f"convs.{2 * j}.conv.weight" in sd:
        b = f"synthesis.b{2 ** (j + 3)}"
        out[f"{b}.resample_filter"] = filt
        styled_conv(f"convs.{2 * j}", f"{b}.conv0", f"noises.noise_{2 * j + 1}")
        styled_conv(f"convs.{2 * j + 1}", f"{b}.conv1", f"noises.noise_{2 * j + 2}")
        to_rgb(f"to_rgbs.{j}", f"{b}.torgb")
        j += 1
    for k, v in list(out.items()):
        if v is None:  # no stored noise (a state dict saved without buffers): fresh N(0, 1) like upstream
            res = int(k.split(".")[1][1:])
            out[k] = torch.randn([res, res])
    return out


def _layers(sd, prefix: str) -> int:
    n = 0
    while f"{prefix}{n}.weight" in sd:
        n += 1
    return n


def config_from_state_dict(sd, meta: dict | None = None) -> dict:
    """Generator(**kwargs) for an NVlabs-keyed state dict: sizes from tensor shapes, the rest
    (conv_clamp, num_fp16_res, mapping lr_multiplier, activation) from meta['init_kwargs'] or
    meta['arch_kwargs'], with NVlabs' defaults."""
    meta = meta or {}
    init = dict(meta.get("init_kwargs") or {})
    extra = dict(meta.get("arch_kwargs") or {})
    map_init = {**dict(init.get("mapping_kwargs") or {}), **dict(extra.get("mapping_kwargs") or {})}
    syn_init = {**dict(init.get("synthesis_kwargs") or {}), **dict(extra.get("synthesis_kwargs") or {})}

    num_layers = _layers(sd, "mapping.fc")
    if num_layers == 0:
        raise ValueError("no mapping.fc0.weight: not a StyleGAN2 generator")
    embed = sd.get("mapping.embed.weight")
    c_dim = int(embed.shape[1]) if embed is not None else 0
    embed_features = int(embed.shape[0]) if embed is not None else 0
    z_dim = int(sd["mapping.fc0.weight"].shape[1]) - embed_features
    w_dim = int(sd[f"mapping.fc{num_layers - 1}.weight"].shape[0])
    layer_features = int(sd["mapping.fc0.weight"].shape[0]) if num_layers > 1 else None

    resolutions = sorted({int(k.split(".")[1][1:]) for k in sd if k.startswith("synthesis.b")})
    expected = [2 ** i for i in range(2, 2 + len(resolutions))]
    if resolutions != expected:
        raise ValueError(f"synthesis blocks {resolutions} are not the consecutive powers of two from 4")
    img_resolution = resolutions[-1]
    channels = {r: int(sd[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions}
    img_channels = int(sd[f"synthesis.b{img_resolution}.torgb.weight"].shape[0])
    for r in resolutions[1:]:
        cin = int(sd[f"synthesis.b{r}.conv0.weight"].shape[1])
        if cin != channels[r // 2]:
            raise ValueError(f"synthesis.b{r}.conv0 takes {cin} channels, b{r // 2} gives {channels[r // 2]}")
    if any(f"synthesis.b{r}.skip.weight" in sd for r in resolutions):
        architecture = "resnet"
    elif any(f"synthesis.b{r}.torgb.weight" in sd for r in resolutions[:-1]):
        architecture = "skip"
    elif len(resolutions) > 1:
        architecture = "orig"
    else:  # a 4x4 generator looks the same in all three
        architecture = syn_init.get("architecture", "skip")
    if syn_init.get("architecture", architecture) != architecture:
        raise ValueError(f"init_kwargs say architecture {syn_init['architecture']!r}, the tensors are "
                         f"{architecture!r}")

    ks = int(sd["synthesis.b4.conv1.weight"].shape[-1])
    synthesis_kwargs = dict(channels=channels, architecture=architecture,
                            num_fp16_res=int(syn_init.get("num_fp16_res", 0)),
                            conv_clamp=syn_init.get("conv_clamp"), kernel_size=ks,
                            use_noise="synthesis.b4.conv1.noise_strength" in sd,
                            resample_filter=sd.get("synthesis.b4.resample_filter", [1, 3, 3, 1]))
    if "activation" in syn_init:
        synthesis_kwargs["activation"] = syn_init["activation"]
    mapping_kwargs = dict(num_layers=num_layers, embed_features=embed_features or None,
                          layer_features=layer_features,
                          lr_multiplier=float(map_init.get("lr_multiplier", 0.01)),
                          activation=map_init.get("activation", "lrelu"))
    for name, have in (("z_dim", z_dim), ("c_dim", c_dim), ("w_dim", w_dim), ("img_resolution", img_resolution),
                       ("img_channels", img_channels)):
        if name in init and int(init[name]) != have:
            raise ValueError(f"init_kwargs say {name}={init[name]}, the tensors say {have}")
    return dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                img_channels=img_channels, mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs)


def build(sd, meta: dict) -> Generator:
    from ..checkpoint import CheckpointError
    from ..registry import load_state_dict_strict

    try:
        if not _is_nvlabs(sd):
            sd = rosinality_to_nvlabs(sd)
        G = Generator(**config_from_state_dict(sd, meta))
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"stylegan2: {e}") from e
    return load_state_dict_strict(G, sd, "stylegan2")


def _register():
    from ..registry import Architecture, register
    register(Architecture(name="stylegan2", kind="generator", detect=detect, build=build))


_register()
