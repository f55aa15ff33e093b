"""StyleGAN3 (Karras et al., "Alias-Free Generative Adversarial Networks", 2021), configs T and R, as
in NVlabs/stylegan3 `training/networks_stylegan3.py`, in plain PyTorch.

Parameter and buffer names are NVlabs' (synthesis.input.freqs, synthesis.L0_36_512.affine.weight,
..., up_filter / down_filter / magnitude_ema), so an NVlabs ``G_ema.state_dict()`` loads as is.
The custom CUDA op `filtered_lrelu` is replaced by `filtered_lrelu` below: the same arithmetic as
upstream's reference path, but the zero-stuffed upsampling is done with a strided transposed
convolution and the decimation with a strided convolution, so no sample that is thrown away is
ever computed.

Config T and config R differ only in hyper-parameters (R: 1x1 convolutions, radially symmetric
down-sampling filters, twice the width), so one set of modules serves both; a state dict says
which it is through its kernel sizes and the rank of its down-sampling filters.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError
from ..registry import Architecture, load_state_dict_strict, register
from .ops import upfirdn2d
from .stylegan2 import FullyConnectedLayer, MappingNetwork

# --------------------------------------------------------------------------------------------------
# Filter design. Re-derived from the definitions scipy uses (firwin with a Kaiser window; a jinc
# windowed by the outer product of two Kaiser windows), so a freshly built network gets the same
# buffers as upstream without scipy.


def _kaiser_beta(atten: float) -> float:
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def _kaiser_window(numtaps: int, width: float, fs: float) -> np.ndarray:
    # Kaiser's formula for the attenuation a transition band of `width` allows at `numtaps` taps
    atten = 2.285 * (numtaps - 1) * np.pi * (width / (fs / 2)) + 7.95
    return np.kaiser(numtaps, _kaiser_beta(atten))


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """Windowed-sinc low-pass filter, unit DC gain. None stands for the identity (one tap)."""
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, not {numtaps}")
    if numtaps == 1:
        return None
    window = _kaiser_window(numtaps, width, fs)
    if not radial:
        c = cutoff / (fs / 2)
        m = np.arange(numtaps) - (numtaps - 1) / 2
        h = c * np.sinc(c * m) * window
        return torch.as_tensor(h / h.sum(), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = torch.as_tensor(np.hypot(*np.meshgrid(x, x)), dtype=torch.float64)
    f = (torch.special.bessel_j1(2 * cutoff * np.pi * r) / (np.pi * r)).numpy()
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# --------------------------------------------------------------------------------------------------
# Resampling around the nonlinearity, on ops.upfirdn2d (separable filters one axis at a time, with
# channels folded into the batch; radial filters as one 2-D convolution).


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None,
                   b: torch.Tensor | None, up: int = 1, down: int = 1, padding=(0, 0, 0, 0),
                   gain: float = math.sqrt(2), slope: float = 0.2,
                   clamp: float | None = None) -> torch.Tensor:
    """Bias, upsample (fu), leaky ReLU with gain, clamp, downsample (fd): NVlabs' filtered_lrelu.
    Half-precision inputs are computed in float32 and returned in their own dtype, as the CUDA
    kernel does."""
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2)
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    x = upfirdn2d(x, fd, down=down)
    return x.to(dtype)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, padding: int = 0,
                     input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample modulated convolution, run as one grouped convolution over the batch."""
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    w, s = weight.float(), styles.float()
    if demodulate:
        # pre-normalising keeps the products below in a safe range for fp16; demodulation undoes it
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s[:, None, :, None, None]  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    if input_gain is not None:
        w = w * input_gain.float().expand(n, in_ch)[:, None, :, None, None]
    x = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, in_ch, kh, kw).to(x.dtype),
                 padding=padding, groups=n)
    return x.reshape(n, out_ch, *x.shape[2:])


# --------------------------------------------------------------------------------------------------
# Network.


class SynthesisInput(nn.Module):
    """Fourier features: `channels` sinusoids of fixed random frequency inside a disc of radius
    `bandwidth`, rotated and translated per sample by an affine of w, then mixed by a learned
    matrix. `transform` is the user's inverse transform of the output image (gen_video.py's)."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)

        # uniform on the disc of radius `bandwidth`, denser towards the centre
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5

        self.weight = nn.Parameter(torch.randn([channels, channels]))
        # starts as the identity transform: r = (1, 0), t = (0, 0)
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n, dev = w.shape[0], w.device
        t = self.affine(w.float())
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # a pure rotation (r_c, r_s) and translation
        m_r = torch.eye(3, device=dev).repeat([n, 1, 1])
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = torch.eye(3, device=dev).repeat([n, 1, 1])
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = m_r @ m_t @ self.transform.float().unsqueeze(0)

        freqs = self.freqs.float().unsqueeze(0)
        phases = self.phases.float().unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # a user transform that scales up may push frequencies past the band: fade them out
        # before they alias
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        theta = torch.eye(2, 3, device=dev)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)

        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1)[:, None, None]).squeeze(3)  # [N, H, W, C]
        x = torch.sin((x + phases[:, None, None]) * (2 * np.pi)) * amplitudes[:, None, None]
        x = x @ (self.weight.float() / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """Modulated convolution, then the alias-free non-linearity: upsample to `tmp_sampling_rate`,
    leaky ReLU, low-pass and decimate to `out_sampling_rate`. The last layer (ToRGB) is a plain
    modulated 1x1 convolution with neither filter."""

    def __init__(self, w_dim: int, is_torgb: bool, in_channels: int, out_channels: int,
                 in_size: int, out_size: int, in_sampling_rate: int, out_sampling_rate: int,
                 up_factor: int, down_factor: int, up_taps: int, down_taps: int,
                 down_radial: bool = False, conv_kernel: int = 3, use_fp16: bool = False,
                 conv_clamp: float | None = 256, magnitude_ema_beta: float = 0.999,
                 filters: tuple | None = None):
        super().__init__()
        self.w_dim, self.is_torgb, self.use_fp16 = w_dim, bool(is_torgb), bool(use_fp16)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.up_factor, self.down_factor = int(up_factor), int(down_factor)
        self.up_taps, self.down_taps, self.down_radial = int(up_taps), int(down_taps), bool(down_radial)
        self.conv_kernel = 1 if is_torgb else int(conv_kernel)
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        # mean square of this layer's input over training: dividing by its root keeps activations
        # at unit scale without normalising per sample
        self.register_buffer("magnitude_ema", torch.ones([]))

        fu, fd = filters if filters is not None else (None, None)
        if fu is None and self.up_taps > 1:
            fu = torch.zeros([self.up_taps])
        if fd is None and self.down_taps > 1:
            fd = torch.zeros([self.down_taps] * (2 if self.down_radial else 1))
        self.register_buffer("up_filter", fu)
        self.register_buffer("down_filter", fd)

        # Pad so that the output lands on the output grid; the extra `up_factor` shifts samples to
        # the symmetric interpretation of pixel centres (the paper's appendix C.3).
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = (pad_lo, pad_hi, pad_lo, pad_hi)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                force_fp32: bool = False) -> torch.Tensor:
        if x.shape[1:] != (self.in_channels, self.in_size, self.in_size):
            raise ValueError(f"SynthesisLayer: input must be [N, {self.in_channels}, {self.in_size}, "
                             f"{self.in_size}], got {list(x.shape)}")
        input_gain = self.magnitude_ema.float().rsqrt()
        styles = self.affine(w.float())
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * self.conv_kernel ** 2))

        # upstream runs the high-resolution layers in fp16 on CUDA only
        half = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if half else torch.float32
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=input_gain)
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias,
                           up=self.up_factor, down=self.down_factor, padding=self.padding,
                           gain=1 if self.is_torgb else np.sqrt(2), slope=1 if self.is_torgb else 0.2,
                           clamp=self.conv_clamp)
        return x

    def extra_repr(self) -> str:
        return (f"is_torgb={self.is_torgb}, in={self.in_channels}x{self.in_size}@{self.in_sampling_rate}, "
                f"out={self.out_channels}x{self.out_size}@{self.out_sampling_rate}, "
                f"up={self.up_factor}, down={self.down_factor}, kernel={self.conv_kernel}, "
                f"radial={self.down_radial}, fp16={self.use_fp16}")


def synthesis_geometry(img_resolution: int, img_channels: int, channel_base: int = 32768,
                       channel_max: int = 512, num_layers: int = 14, num_critical: int = 2,
                       first_cutoff: float = 2, first_stopband: float = 2 ** 2.1,
                       last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                       num_fp16_res: int = 4, conv_kernel: int = 3, filter_size: int = 6,
                       lrelu_upsampling: int = 2, use_radial_filters: bool = False) -> dict:
    """The paper's layer schedule: cutoffs and stopbands grow geometrically from the first layer to
    the last critically sampled ones; sampling rates are the powers of two that hold the stopband;
    widths follow the cutoff. Returns {'input': kwargs, 'layers': [kwargs + 'filter_design']}."""
    n = num_layers
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels

    layers = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == n
        is_critical = idx >= n - num_critical
        in_sr, out_sr = int(sampling_rates[prev]), int(sampling_rates[idx])
        tmp_sr = max(in_sr, out_sr) * (1 if is_torgb else lrelu_upsampling)
        up, down = int(np.rint(tmp_sr / in_sr)), int(np.rint(tmp_sr / out_sr))
        if in_sr * up != tmp_sr or out_sr * down != tmp_sr:
            raise ValueError(f"layer {idx}: sampling rates {in_sr} -> {tmp_sr} -> {out_sr} are not "
                             f"integer multiples")
        layers.append(dict(
            is_torgb=is_torgb, in_channels=int(channels[prev]), out_channels=int(channels[idx]),
            in_size=int(sizes[prev]), out_size=int(sizes[idx]),
            in_sampling_rate=in_sr, out_sampling_rate=out_sr, up_factor=up, down_factor=down,
            up_taps=filter_size * up if up > 1 and not is_torgb else 1,
            down_taps=filter_size * down if down > 1 and not is_torgb else 1,
            down_radial=use_radial_filters and not is_critical, conv_kernel=conv_kernel,
            use_fp16=bool(sampling_rates[idx] * 2 ** num_fp16_res > img_resolution),
            filter_design=dict(in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                               in_half_width=half_widths[prev], out_half_width=half_widths[idx],
                               tmp_sampling_rate=tmp_sr)))
    inp = dict(channels=int(channels[0]), size=int(sizes[0]), sampling_rate=float(sampling_rates[0]),
               bandwidth=float(cutoffs[0]))
    return dict(input=inp, layers=layers)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, res, res]: Fourier input, then
    `num_layers` alias-free layers and ToRGB, each with its own w."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2,
                 first_cutoff: float = 2, first_stopband: float = 2 ** 2.1,
                 last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10, output_scale: float = 0.25,
                 num_fp16_res: int = 4, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False,
                 conv_clamp: float | None = 256, magnitude_ema_beta: float = 0.999,
                 geometry: dict | None = None):
        super().__init__()
        designed = geometry is None
        if designed:
            geometry = synthesis_geometry(
                img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                first_cutoff, first_stopband, last_stopband_rel, margin_size, num_fp16_res,
                conv_kernel, filter_size, lrelu_upsampling, use_radial_filters)
        specs = geometry["layers"]
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_layers = len(specs) - 1
        self.num_ws = self.num_layers + 2
        self.output_scale = output_scale

        self.input = SynthesisInput(w_dim=w_dim, **geometry["input"])
        self.layer_names = []
        for idx, spec in enumerate(specs):
            spec = dict(spec)
            design = spec.pop("filter_design", None)
            filters = None
            if design is not None:
                tmp = design["tmp_sampling_rate"]
                filters = (design_lowpass_filter(spec["up_taps"], design["in_cutoff"],
                                                 design["in_half_width"] * 2, tmp),
                           design_lowpass_filter(spec["down_taps"], design["out_cutoff"],
                                                 design["out_half_width"] * 2, tmp,
                                                 radial=spec["down_radial"]))
            layer = SynthesisLayer(w_dim=w_dim, conv_clamp=conv_clamp,
                                   magnitude_ema_beta=magnitude_ema_beta, filters=filters, **spec)
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
        last = getattr(self, self.layer_names[-1])
        if (last.out_size, last.out_channels) != (img_resolution, img_channels):
            raise ValueError(f"last layer makes {last.out_channels}x{last.out_size}px, expected "
                             f"{img_channels}x{img_resolution}px")

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = False) -> torch.Tensor:
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', not {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.float().unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, force_fp32=force_fp32)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.float()

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_layers={self.num_layers}")


class Generator(nn.Module):
    """z (and one-hot c) -> image, NVlabs' signature. `synthesis_kwargs` are SynthesisNetwork's
    (channel_base, channel_max, conv_kernel=1 and use_radial_filters=True for config R, ...)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, **synthesis_kwargs):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                          img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        mapping_kwargs = {"num_layers": 2, "w_avg_beta": 0.998, **(mapping_kwargs or {})}
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **mapping_kwargs)
        # what save_generator writes, so that the settings shapes cannot show survive a reload
        init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                           img_channels=img_channels, mapping_kwargs=mapping_kwargs,
                           **{k: v for k, v in synthesis_kwargs.items() if k != "geometry"})
        self.arch_name, self.kind = "stylegan3", "generator"
        self.meta = {"arch": "stylegan3", "kind": "generator", "init_kwargs": init_kwargs}

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, noise_mode: str = "const",
                force_fp32: bool = False) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32)

    @classmethod
    def from_state_dict(cls, sd, **kwargs) -> "Generator":
        """Build from an NVlabs G_ema state dict, weights loaded. `kwargs` are upstream's
        constructor arguments if known (an NVlabs pickle's init_kwargs): the shapes decide all
        they can, these fill in the rest and must agree with the shapes."""
        return _from_state_dict(cls, sd, **kwargs)


# --------------------------------------------------------------------------------------------------
# Reading a state dict.

_LAYER = re.compile(r"^synthesis\.L(\d+)_(\d+)_(\d+)\.weight$")
_SIGNATURE = ("mapping.w_avg", "mapping.fc0.weight", "synthesis.input.freqs", "synthesis.input.phases",
              "synthesis.input.transform", "synthesis.input.weight", "synthesis.input.affine.weight")

# Upstream constructor arguments that shapes cannot tell, with upstream's defaults.
_UNSEEN_DEFAULTS = dict(first_cutoff=2.0, output_scale=0.25, conv_clamp=256, lrelu_upsampling=2,
                        num_fp16_res=4, magnitude_ema_beta=0.999)
_MAPPING_DEFAULTS = dict(lr_multiplier=0.01, w_avg_beta=0.998)
# Arguments that only shape the schedule; the state dict's shapes and filters supersede them.
_SCHEDULE_ONLY = {"channel_base", "channel_max", "num_layers", "num_critical", "first_stopband",
                  "last_stopband_rel", "margin_size", "conv_kernel", "filter_size",
                  "use_radial_filters"}


def _layers_in(sd) -> list[tuple[int, int, int]]:
    found = sorted((int(m[1]), int(m[2]), int(m[3])) for k in sd if (m := _LAYER.match(k)))
    if not found or [i for i, _, _ in found] != list(range(len(found))):
        raise CheckpointError(f"stylegan3: synthesis layers must be L0..LN, found "
                              f"{[f'L{i}' for i, _, _ in found]}")
    return found


def _taps(t: torch.Tensor | None) -> int:
    return 1 if t is None else int(t.shape[0])


def geometry_from_state_dict(sd, lrelu_upsampling: int = 2, first_cutoff: float = 2.0,
                             num_fp16_res: int = 4) -> dict:
    """The layer schedule read back from a state dict: widths and kernels from the weights, sizes
    from the layer names, sampling rates from the filter lengths (a layer's filters are
    `filter_size * factor` taps long, so up_taps / down_taps = out_rate / in_rate, and the
    last layer runs at the image resolution). `lrelu_upsampling` and `first_cutoff` cannot be
    read from shapes."""
    layers = _layers_in(sd)
    n = len(layers) - 1
    res = layers[-1][1]
    prefix = [f"synthesis.L{i}_{s}_{c}." for i, s, c in layers]
    up_taps = [_taps(sd.get(p + "up_filter")) for p in prefix]
    down_taps = [_taps(sd.get(p + "down_filter")) for p in prefix]

    # walk back from the image resolution
    out_sr = [0] * (n + 1)
    out_sr[n] = out_sr[n - 1] = res
    for i in range(n - 1, 0, -1):
        if (up_taps[i] > 1) != (down_taps[i] > 1):
            raise CheckpointError(f"stylegan3: {prefix[i]}* has one resampling filter but not the other")
        ratio = down_taps[i] / up_taps[i]
        out_sr[i - 1] = out_sr[i] * ratio
        if out_sr[i - 1] != int(out_sr[i - 1]) or out_sr[i - 1] < 1:
            raise CheckpointError(f"stylegan3: filter lengths {up_taps[i]}/{down_taps[i]} of "
                                  f"{prefix[i]}* give no integer sampling rate")
        out_sr[i - 1] = int(out_sr[i - 1])

    specs = []
    for i, (_, size, ch) in enumerate(layers):
        w = sd[prefix[i] + "weight"]
        if w.ndim != 4 or w.shape[0] != ch or w.shape[2] != w.shape[3]:
            raise CheckpointError(f"stylegan3: {prefix[i]}weight has shape {list(w.shape)}")
        prev = max(i - 1, 0)
        in_sr = out_sr[prev]
        is_torgb = i == n
        tmp = max(in_sr, out_sr[i]) * (1 if is_torgb else lrelu_upsampling)
        up, down = tmp // in_sr, tmp // out_sr[i]
        for taps, factor, what in ((up_taps[i], up, "up"), (down_taps[i], down, "down")):
            if taps > 1 and taps % factor:
                raise CheckpointError(f"stylegan3: {prefix[i]}{what}_filter has {taps} taps, not a multiple "
                                      f"of its factor {factor} (is lrelu_upsampling={lrelu_upsampling} right?)")
        fd = sd.get(prefix[i] + "down_filter")
        specs.append(dict(
            is_torgb=is_torgb, in_channels=int(w.shape[1]), out_channels=ch,
            in_size=layers[prev][1], out_size=size, in_sampling_rate=in_sr, out_sampling_rate=out_sr[i],
            up_factor=up, down_factor=down, up_taps=up_taps[i], down_taps=down_taps[i],
            down_radial=fd is not None and fd.ndim == 2, conv_kernel=int(w.shape[2]),
            use_fp16=out_sr[i] * 2 ** num_fp16_res > res))
    inp = dict(channels=int(sd["synthesis.input.weight"].shape[0]), size=layers[0][1],
               sampling_rate=float(out_sr[0]), bandwidth=float(first_cutoff))
    return dict(input=inp, layers=specs)


def _detect(sd, meta) -> float:
    if not all(k in sd for k in _SIGNATURE):
        return 0.0
    if not any(_LAYER.match(k) for k in sd):
        return 0.0
    return 1.0


def _build(sd, meta) -> Generator:
    kwargs = {**(meta.get("init_kwargs") or {}), **(meta.get("arch_kwargs") or {})}
    return Generator.from_state_dict(sd, **kwargs)


def _from_state_dict(cls, sd, **kwargs) -> Generator:
    mapping_kwargs = dict(kwargs.pop("mapping_kwargs", None) or {})
    unknown = set(kwargs) - set(_UNSEEN_DEFAULTS) - _SCHEDULE_ONLY - {
        "z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"}
    if unknown:
        raise CheckpointError(f"stylegan3: unknown constructor arguments {sorted(unknown)}")
    unseen = {k: kwargs.get(k, v) for k, v in _UNSEEN_DEFAULTS.items()}
    geometry = geometry_from_state_dict(sd, unseen["lrelu_upsampling"], unseen["first_cutoff"],
                                        unseen["num_fp16_res"])

    w_dim = int(sd["mapping.w_avg"].shape[0])
    c_dim = int(sd["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in sd else 0
    embed = int(sd["mapping.embed.weight"].shape[0]) if c_dim else 0
    z_dim = int(sd["mapping.fc0.weight"].shape[1]) - embed
    num_map = sum(1 for k in sd if re.fullmatch(r"mapping\.fc\d+\.weight", k))
    last = geometry["layers"][-1]
    seen = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=last["out_size"],
                img_channels=last["out_channels"])
    for k, v in seen.items():
        if k in kwargs and int(kwargs[k]) != v:
            raise CheckpointError(f"stylegan3: {k}={kwargs[k]} in the description but the tensors say {v}")
    derived = dict(num_layers=len(geometry["layers"]) - 1, conv_kernel=geometry["layers"][0]["conv_kernel"],
                   use_radial_filters=any(s["down_radial"] for s in geometry["layers"]))
    for k, v in derived.items():
        if k in kwargs and kwargs[k] != v:
            raise CheckpointError(f"stylegan3: {k}={kwargs[k]} in the description but the tensors say {v}")
    if mapping_kwargs.get("num_layers", num_map) != num_map:
        raise CheckpointError(f"stylegan3: mapping num_layers={mapping_kwargs['num_layers']} in the "
                              f"description but the tensors have {num_map}")
    mapping = {**_MAPPING_DEFAULTS, **mapping_kwargs, "num_layers": num_map}
    if embed not in (0, w_dim):
        mapping["embed_features"] = embed

    G = cls(**seen, mapping_kwargs=mapping, output_scale=unseen["output_scale"],
            conv_clamp=unseen["conv_clamp"], magnitude_ema_beta=unseen["magnitude_ema_beta"],
            geometry=geometry)
    return load_state_dict_strict(G, sd, "stylegan3")

register(Architecture(name="stylegan3", kind="generator", detect=_detect, build=_build))
