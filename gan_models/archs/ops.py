"""The resampling and convolution operations of the StyleGAN family, in plain PyTorch: what NVlabs'
torch_utils/ops provide as CUDA kernels (bias_act, upfirdn2d, conv2d_resample), StyleGAN2's
modulated convolution, and the minibatch standard deviation layer that the StyleGAN2 and DCGAN
discriminators share. stylegan2.py and stylegan3.py both use these; StyleGAN3 keeps its own modulated
convolution and filtered_lrelu, which are other operations (input gain, pre-normalised styles,
resampling around the nonlinearity), as in NVlabs' code.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None, dim: int = 1) -> torch.Tensor:
    """Bias, activation, gain and clamp, in NVlabs' order. `gain=None` means the activation's own
    gain (sqrt 2 for (leaky) ReLU, so that activations keep unit variance)."""
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
        def_gain = SQRT2
    elif act == "relu":
        x = F.relu(x)
        def_gain = SQRT2
    elif act == "linear":
        def_gain = 1.0
    else:
        raise ValueError(f"unsupported activation {act!r} (linear, relu, lrelu)")
    gain = def_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(f) -> torch.Tensor:
    """A 2-D low-pass filter normalised to unit DC gain from 1-D taps ([1,3,3,1]) or a 2-D array."""
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1:
        f = torch.outer(f, f)
    if f.ndim != 2:
        raise ValueError(f"resample filter must be 1-D or 2-D, got shape {list(f.shape)}")
    return f / f.sum()


def _separate(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(column, row) taps when f is an outer product, which turns one k*k depthwise pass into two k-tap
    passes; None when it is not separable."""
    col = f[:, f.abs().sum(0).argmax()]
    row = f[col.abs().argmax()] / col[col.abs().argmax()]
    return (col, row) if torch.allclose(torch.outer(col, row), f, rtol=1e-6, atol=1e-8) else None


# The separable path (StyleGAN3's 1-D filters): NVlabs' semantics (upsample by zero insertion, pad,
# convolve with the *unflipped* filter i.e. a true convolution, keep every down-th sample), one axis
# at a time with channels folded into the batch, so every convolution is single-channel.

def _pad_axis(x: torch.Tensor, lo: int, hi: int, axis: int) -> torch.Tensor:
    # negative amounts crop, as upfirdn2d's padding does
    if lo == 0 and hi == 0:
        return x
    return F.pad(x, [lo, hi, 0, 0] if axis == 3 else [0, 0, lo, hi])


def _fir_axis(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad0: int, pad1: int,
              axis: int) -> torch.Tensor:
    """One axis of upfirdn2d on x [B, 1, H, W] with a 1-D filter f (gain already folded in)."""
    k = f.numel()
    shape = [1, 1, 1, k] if axis == 3 else [1, 1, k, 1]
    stride = (1, up) if axis == 3 else (up, 1)
    if up > 1:
        # The transposed convolution scatters each input sample through the filter, i.e. it is the
        # full convolution of the zero-stuffed signal; upstream's output starts k-1-pad0 samples in.
        x = F.conv_transpose2d(x, f.reshape(shape), stride=stride)
        x = _pad_axis(x, pad0 - (k - 1), up + pad1 - k, axis)
        if down > 1:
            x = x[:, :, :, ::down] if axis == 3 else x[:, :, ::down, :]
        return x
    x = _pad_axis(x, pad0, pad1, axis)
    if k == 1 and down == 1:
        return x * f.reshape(())
    stride = (1, down) if axis == 3 else (down, 1)
    return F.conv2d(x, f.flip(0).reshape(shape), stride=stride)


def _upfirdn2d_1d(x: torch.Tensor, f: torch.Tensor | None, up: int, down: int, padding, gain: float,
                  flip_filter: bool) -> torch.Tensor:
    """The separable case, one axis at a time on [N*C, 1, H, W]: how StyleGAN3 runs its long filters."""
    px0, px1, py0, py1 = padding
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    if f is None:
        f = torch.ones([1], dtype=x.dtype, device=x.device)
    f = f.to(device=x.device, dtype=x.dtype) * math.sqrt(gain)
    if flip_filter:
        f = f.flip(0)
    x = _fir_axis(x, f, up, down, px0, px1, axis=3)
    x = _fir_axis(x, f, up, down, py0, py1, axis=2)
    return x.reshape(n, c, x.shape[2], x.shape[3])


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1, padding=(0, 0, 0, 0),
              gain: float = 1.0, flip_filter: bool = False, separable: bool = False) -> torch.Tensor:
    """NVlabs' upfirdn2d: upsample by zero insertion, pad (negative = crop) as [x0, x1, y0, y1], convolve
    with f, keep every `down`-th pixel. f 2-D (StyleGAN2's [1,3,3,1] outer product; StyleGAN3's radial
    filters), 1-D (StyleGAN3's separable filters, applied along x then y) or None (no filtering).
    `separable=True` filters a separable 2-D f by rows and columns apart (same result up to rounding)."""
    if f is None or f.ndim == 1:
        return _upfirdn2d_1d(x, f, up, down, padding, gain, flip_filter)
    if f.ndim != 2:
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {list(f.shape)}")
    f = f.to(x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    conv_pad = 0
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        conv_pad = (py0, px0)  # conv2d pads internally: no padded copy (several times faster on CPU)
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = f.to(x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:  # conv2d correlates; a true convolution flips the taps
        f = f.flip(list(range(f.ndim)))
    parts = _separate(f) if separable else None
    if parts is not None:
        col, row = parts
        py, px = conv_pad if conv_pad else (0, 0)
        x = F.conv2d(x, row.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c, padding=(0, px))
        x = F.conv2d(x, col.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c, padding=(py, 0))
    else:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c, padding=conv_pad)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, gain: float = 1.0, separable: bool = False):
    fh, fw = f.shape
    p = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up, separable=separable)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                    down: int = 1, padding: int = 0, groups: int = 1, flip_weight: bool = True,
                    separable: bool = False) -> torch.Tensor:
    """Convolution with optional 2x resampling. Up (the generator): a strided transposed convolution
    followed by the low-pass filter, so no zero-stuffed tensor is convolved with the full kernel. Down
    (the discriminator): the low-pass filter, then a strided convolution."""
    out_channels, in_per_group, kh, kw = w.shape
    if down > 1:
        if not flip_weight:
            w = w.flip([2, 3])
        # the filter's support (4 taps, stride 2) adds one pixel each side to the conv's own padding
        fw = f.shape[-1]
        p0, p1 = padding + (fw - 1) // 2, padding + (fw - 2) // 2
        if kh == 1 and kw == 1:  # filter and subsample in one pass, then a 1x1 conv on a quarter of the pixels
            x = upfirdn2d(x, f, down=down, padding=[p0, p1, p0, p1], separable=separable)
            return F.conv2d(x, w, groups=groups)
        x = upfirdn2d(x, f, padding=[p0, p1, p0, p1], separable=separable)
        return F.conv2d(x, w, stride=down, groups=groups)
    if up == 1:
        if not flip_weight:
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=padding, groups=groups)
    fh, fw = f.shape
    px0, px1 = padding + (fw + up - 1) // 2, padding + (fw - up) // 2
    py0, py1 = padding + (fh + up - 1) // 2, padding + (fh - up) // 2
    if kh == 1 and kw == 1:
        x = F.conv2d(x, w, groups=groups)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up, separable=separable)
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    if flip_weight:  # conv_transpose2d already convolves; the correlation convention needs the flip
        w = w.flip([2, 3])
    px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, w, stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up,
                     separable=separable)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: torch.Tensor | None = None, up: int = 1, padding: int = 0,
                     resample_filter: torch.Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True,
                     separable: bool = False) -> torch.Tensor:
    """The StyleGAN2 convolution: the input channels of `weight` scaled per sample by `styles`, then
    each output channel renormalised to unit expected variance (demodulation, replacing AdaIN).

    fused: one grouped convolution over per-sample weights. Not fused: the same arithmetic moved onto
    the activations (scale in, shared-weight conv, scale out), which lets a batch share one kernel."""
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # keep the products in fp16 range; demodulation cancels the rescaling
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding,
                            flip_weight=flip_weight, separable=separable)
        if demodulate and noise is not None:  # one rounding step, as NVlabs' fma
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x
    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, padding=padding, groups=n,
                        flip_weight=flip_weight, separable=separable)
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def modulated_conv2d_lrelu_shared(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                                  bias: torch.Tensor, noise: torch.Tensor | None, gain: float,
                                  up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                                  flip_weight: bool = True, clamp: float | None = None) -> torch.Tensor:
    """Demodulated conv + noise + bias + leaky ReLU * gain in float32 for the CPU fast path: the same
    function as modulated_conv2d(fused_modconv=False) followed by bias_act, with fewer passes:
    - demodulation from sum_i s_i^2 * sum_k w_oik^2 (one [N,I]x[I,O] matmul) instead of building the
      [N,O,I,k,k] per-sample weights only to square and sum them;
    - the gain folded into the epilogue (lrelu(g*v) = g*lrelu(v) for g > 0), so scale, noise and
      bias are one addcmul and the activation runs in place."""
    n = x.shape[0]
    dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
    x = x * styles.reshape(n, -1, 1, 1)
    x = conv2d_resample(x, weight, f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
    shift = bias.reshape(1, -1, 1, 1) * gain
    if noise is not None:
        shift = shift + noise * gain
    out = torch.empty_like(x)  # keeps x's memory format (channels_last) whatever `shift` has
    torch.addcmul(shift, x, (dcoefs * gain).reshape(n, -1, 1, 1), out=out)
    F.leaky_relu_(out, 0.2)
    if clamp is not None and clamp >= 0:
        out.clamp_(-clamp, clamp)
    return out


# ------------------------------------------------------------------------------------------------
# Synthesis network


class MinibatchStdLayer(nn.Module):
    """Append the average standard deviation over groups of `group_size` images (split into
    `num_channels` feature groups), so D can tell a varied batch from near-copies (Karras et al. 2018).
    Groups are consecutive images (a group never straddles two micro-batches); `strided` takes every
    (n/g)-th image instead, as NVlabs' original layer and this project's DCGAN discriminator do."""

    def __init__(self, group_size: int = 4, num_channels: int = 1, strided: bool = False):
        super().__init__()
        self.group_size, self.num_channels, self.strided = group_size, num_channels, strided

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size else n
        while n % g:  # a batch the group does not divide: the largest group size that does
            g -= 1
        f = self.num_channels
        if self.strided:
            y = x.float().reshape(g, n // g, f, c // f, h, w)
            y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n/g, f]
            y = y.reshape(1, n // g, f, 1, 1).expand(g, -1, -1, h, w).reshape(n, f, h, w)
        else:
            y = x.float().reshape(n // g, g, f, c // f, h, w)
            y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n/g, f]
            y = y.reshape(n // g, 1, f, 1, 1).expand(-1, g, -1, h, w).reshape(n, f, h, w)
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}, strided={self.strided}"
