"""Image-to-image translators of CycleGAN and pix2pix (Zhu et al. 2017; Isola et al. 2017).

Both keep the key layout of junyanz/pytorch-CycleGAN-and-pix2pix, so a `*_net_G.pth` state dict loads
as it is and what we train loads back there:

- ResNet translator (Johnson et al.'s fast style-transfer net): `model.N` Sequential of a 7x7 stem,
  stride-2 down-sampling convs, residual blocks `model.N.conv_block.M`, transposed-conv up-sampling and
  a 7x7 head ending in tanh.
- U-Net translator: nested skip blocks `model.model.1.model.3.model...`, 4x4 stride-2 convs down to
  1x1 at the design resolution, transposed convs back up, each level concatenated with its skip.

Every hyper-parameter is read back from keys and shapes: the layers without parameters (padding,
ReLU, dropout, Identity norms) show as gaps in the Sequential numbering.
"""
from __future__ import annotations

import copy
import re
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError
from ..registry import Architecture, load_state_dict_strict, register

NORMS = ("instance", "instance_affine", "batch", "none")
_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_STATS = ("running_mean", "running_var", "num_batches_tracked")


class InstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm as GroupNorm with one channel per group: the same statistics (biased variance,
    eps 1e-5) and parameter names, but PyTorch's CPU group_norm kernel is several times faster than
    instance_norm, which reshapes to a [1, N*C, H, W] batch norm (7x at 256 channels x 64^2)."""

    def forward(self, x):
        if self.track_running_stats:
            return super().forward(x)
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


def norm_layer(norm: str, ch: int) -> nn.Module:
    if norm == "instance":
        return InstanceNorm2d(ch, affine=False, track_running_stats=False)
    if norm == "instance_affine":
        return InstanceNorm2d(ch, affine=True, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(ch)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")


def default_bias(norm: str) -> bool:
    # Upstream gives the convs a bias only when the norm after them is an InstanceNorm: BatchNorm's
    # shift makes it redundant, and with norm='none' upstream still leaves it out.
    return norm.startswith("instance")


def _pad(padding: str, p: int) -> list[nn.Module]:
    if padding == "reflect":
        return [nn.ReflectionPad2d(p)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(p)]
    if padding == "zero":
        return []
    raise ValueError(f"padding must be reflect, replicate or zero, not {padding!r}")


# ------------------------------------------------------------------------ fast CPU inference


def _winograd_matrices() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B^T, G, A^T of F(4x4, 3x3) (Lavin & Gray 2016), interpolation points 0, +-1, +-2, inf."""
    BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
          [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
    AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    return tuple(torch.tensor(t, dtype=torch.float64) for t in (BT, G, AT))


def winograd_applies(conv: nn.Module) -> bool:
    """A plain 3x3, stride-1, ungrouped nn.Conv2d with numeric zero padding: what Winograd3x3 replaces."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))


class Winograd3x3(nn.Module):
    """Inference stand-in for a 3x3, stride-1 nn.Conv2d through Winograd's minimal filtering
    F(4x4, 3x3): each 6x6 input tile becomes a 4x4 output tile with 36 multiplies per channel pair
    instead of 144. The 36 per-position products are one batched matrix multiply [36, tiles, C] x
    [36, C, K], which MKL runs near peak, where oneDNN's direct fp32 convolution cannot go faster than
    the multiplies it has to do. The weights are transformed once, in float64. The result differs from
    the direct convolution by float rounding of the transforms (about 1e-5 of the output's scale).
    Output is channels-last, the layout the transforms produce."""

    m, a = 4, 6  # output and input tile sides

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not winograd_applies(conv):
            raise ValueError(f"Winograd3x3 takes a plain 3x3 stride-1 convolution, not {conv}")
        BT, G, AT = _winograd_matrices()
        self.pad = tuple(conv.padding)
        w = conv.weight.detach().to(torch.float64)
        U = torch.einsum("ik,ockl,jl->ijco", G, w, G)  # G g G^T for every (c_in, c_out) pair
        self.register_buffer("U", U.reshape(self.a ** 2, w.shape[1], w.shape[0]).to(conv.weight.dtype))
        # vec(B^T d B) = (B^T kron B^T) vec(d), and likewise A^T M A: one small matrix each
        self.register_buffer("BB", torch.kron(BT, BT).to(conv.weight.dtype))
        self.register_buffer("AA", torch.kron(AT, AT).to(conv.weight.dtype))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x):
        ph, pw = self.pad
        n, c, h, w = x.shape
        m, a = self.m, self.a
        h, w = h + 2 * ph - 2, w + 2 * pw - 2                  # output size
        th, tw = -(-h // m), -(-w // m)                          # tiles; the last row/column may overhang
        xl = x.permute(0, 2, 3, 1)                               # NHWC: a free view of a channels-last x
        # the conv's own zero padding, plus zeros for overhanging tiles (cropped off below)
        xl = F.pad(xl, (0, 0, pw, pw + tw * m - w, ph, ph + th * m - h))
        d = xl.unfold(1, a, m).unfold(2, a, m).permute(4, 5, 0, 1, 2, 3).reshape(a * a, -1)
        v = (self.BB @ d).view(a * a, -1, c)                     # [36, tiles, C]
        mm = torch.bmm(v, self.U)                                # [36, tiles, K]
        k = mm.shape[-1]
        y = (self.AA @ mm.view(a * a, -1)).view(m, m, n, th, tw, k)
        y = y.permute(2, 3, 0, 4, 1, 5).reshape(n, th * m, tw * m, k)
        if self.bias is not None:
            y = y + self.bias
        y = y.permute(0, 3, 1, 2)
        return y[:, :, :h, :w] if (th * m, tw * m) != (h, w) else y


def inference_copy(T: nn.Module) -> nn.Module:
    """A copy of a translator for fast CPU inference: every 3x3 stride-1 convolution (the ResNet
    blocks', nearly all of a ResNet translator's work) as Winograd3x3, the rest channels-last. Same
    inputs and outputs as T, to about 1e-5; T itself is left as it is."""
    fast = copy.deepcopy(T).eval()
    for mod in list(fast.modules()):
        for name, child in mod.named_children():
            if winograd_applies(child):
                setattr(mod, name, Winograd3x3(child))
    return fast.to(memory_format=torch.channels_last)


# --------------------------------------------------------------------------------------- ResNet


class ResnetBlock(nn.Module):
    """x + F(x), F = pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm."""

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False,
                 padding: str = "reflect", bias: bool = True):
        super().__init__()
        p = 1 if padding == "zero" else 0
        layers = _pad(padding, 1) + [nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm_layer(norm, dim),
                                     nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += _pad(padding, 1) + [nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetTranslator(nn.Module):
    kind = "translator"

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False, n_downsampling: int = 2,
                 padding: str = "reflect", bias: bool | None = None):
        super().__init__()
        if n_blocks < 0 or n_downsampling < 0:
            raise ValueError("n_blocks and n_downsampling must be >= 0")
        bias = default_bias(norm) if bias is None else bool(bias)
        self.in_channels, self.img_channels, self.ngf = int(in_channels), int(out_channels), int(ngf)
        self.n_blocks, self.n_downsampling, self.norm = int(n_blocks), int(n_downsampling), norm
        self.dropout, self.padding, self.bias = bool(dropout), padding, bias
        # each stride-2 conv halves H and W; the transposed convs restore them only from even sizes
        self.size_multiple = 2 ** n_downsampling
        # reflect padding needs more pixels than it pads: 3 at the stem, 1 at the 2x2+ bottleneck
        self.min_size = max(4, 2 * self.size_multiple)

        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm_layer(norm, ngf),
                  nn.ReLU(True)]
        for i in range(n_downsampling):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * c),
                       nn.ReLU(True)]
        dim = ngf * 2 ** n_downsampling
        layers += [ResnetBlock(dim, norm, dropout, padding, bias) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            c = ngf * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)

    def activation_bytes(self, height: int, width: int, batch: int = 1) -> int:
        """Peak bytes of float32 activations for one forward of a [batch, C, height, width] input.

        The last full-resolution stage holds the transposed conv output, its norm output and the
        reflect-padded input of the 7x7 head at once (ngf channels each), plus the convolution's own
        workspace; the deeper stages are 4x smaller per halving and never dominate. Measured peak RSS
        (ngf 16 at 1024^2: 238 MB, ngf 32 at 768^2: 282 MB) stays under
        bytes = 4 * batch * H * W * (4 * ngf + in_channels + out_channels)"""
        return 4 * batch * height * width * (4 * self.ngf + self.in_channels + self.img_channels)


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): a fully convolutional net whose every output judges one patch.
    With n_layers=3 each output sees a 70x70 window, big enough for texture and local shape but
    blind to layout, which the cycle loss keeps."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = default_bias(norm)
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def build_resnet_translator(in_channels=3, out_channels=3, ngf=64, n_blocks=9, norm="instance",
                            dropout=False, **kw) -> ResnetTranslator:
    return ResnetTranslator(in_channels, out_channels, ngf, n_blocks, norm, dropout, **kw)


_TOP = re.compile(r"^model\.(\d+)\.(%s)$" % "|".join(_PARAMS))
_BLOCK = re.compile(r"^model\.(\d+)\.([A-Za-z_][\w.]*?)\.(\d+)\.(%s)$" % "|".join(_PARAMS))


def _with_model_prefix(sd: dict) -> dict:
    # the Sequential's own state dict ("1.weight", ...) as some scripts save it
    if sd and all(re.match(r"^\d+\.", k) for k in sd):
        return {"model." + k: v for k, v in sd.items()}
    return dict(sd)


def _norm_kind(params: set[str], conv_bias: bool) -> str:
    if "running_mean" in params and not conv_bias:
        return "batch"
    # weight/bias without running stats, or pre-0.4 InstanceNorm (running stats next to a biased conv)
    if "weight" in params:
        return "instance_affine"
    return "instance" if conv_bias else "none"


def _parse_resnet(sd: dict) -> dict | None:
    """Hyper-parameters of a ResNet translator state dict, or None when it is not one."""
    top, blocks, names = defaultdict(dict), defaultdict(lambda: defaultdict(dict)), set()
    for k, v in sd.items():
        m = _TOP.match(k)
        if m:
            top[int(m[1])][m[2]] = v
            continue
        m = _BLOCK.match(k)
        if m:
            blocks[int(m[1])][int(m[3])][m[4]] = v
            names.add(m[2])
            continue
        return None
    stem = top.get(1, {}).get("weight")
    if stem is None or stem.ndim != 4 or stem.shape[-1] != 7 or not blocks and len(top) < 3 or len(names) > 1:
        return None
    ngf, in_ch = stem.shape[:2]
    bias = "bias" in top[1]
    convs = sorted(i for i, p in top.items() if p.get("weight") is not None and p["weight"].ndim == 4)
    first_block = min(blocks) if blocks else None
    if first_block is not None:
        n_down = sum(1 for i in convs if 1 < i < first_block)
        idx = sorted(blocks)
        if idx != list(range(first_block, first_block + len(idx))) or first_block != 4 + 3 * n_down:
            return None
        end = first_block + len(idx)
    else:
        # no residual block: down and up convs sit symmetrically between stem and head
        n_down = (len(convs) - 2) // 2
        end = 4 + 3 * n_down
    if len(convs) != 2 + 2 * n_down or convs[-1] != end + 3 * n_down + 1:
        return None
    head = top[convs[-1]]["weight"]
    if head.shape[-1] != 7 or head.shape[1] != ngf:
        return None
    norm = _norm_kind(set(top.get(2, {})), bias)
    dropout, padding = False, "reflect"
    if blocks:
        inner = blocks[first_block]
        bconvs = sorted(j for j, p in inner.items() if p.get("weight") is not None and p["weight"].ndim == 4)
        layouts = {(1, 5): (False, "reflect"), (1, 6): (True, "reflect"),
                   (0, 3): (False, "zero"), (0, 4): (True, "zero")}
        if tuple(bconvs) not in layouts:
            return None
        dropout, padding = layouts[tuple(bconvs)]
    return dict(in_channels=int(in_ch), out_channels=int(head.shape[0]), ngf=int(ngf),
                n_blocks=len(blocks), norm=norm, dropout=dropout, n_downsampling=n_down,
                padding=padding, bias=bias, block_name=next(iter(names), "conv_block"))


def _drop_instance_stats(sd: dict, norm: str, norm_prefixes) -> dict:
    # InstanceNorm before torch 0.4 saved running stats it never uses in our (and upstream's) eval;
    # upstream's BaseModel.__patch_instance_norm_state_dict drops them the same way.
    if not norm.startswith("instance"):
        return sd
    return {k: v for k, v in sd.items()
            if not (k.rsplit(".", 1)[-1] in _STATS and k.rsplit(".", 1)[0] in norm_prefixes)}


def resnet_state_dict(sd: dict) -> tuple[dict, dict]:
    """(canonical state dict, hyper-parameters): block submodules renamed to `conv_block`, stale
    InstanceNorm buffers dropped. Raises CheckpointError when sd is no ResNet translator."""
    sd = _with_model_prefix(sd)
    hp = _parse_resnet(sd)
    if hp is None:
        raise CheckpointError("not a ResNet translator state dict (expected model.1 = 7x7 conv, "
                              "model.N.<block>.M residual blocks, a 7x7 head conv)")
    name = hp.pop("block_name")
    if name != "conv_block":
        sd = {re.sub(r"^(model\.\d+)\.%s\.(\d+\.)" % re.escape(name), r"\1.conv_block.\2", k): v
              for k, v in sd.items()}
    net = ResnetTranslator(**hp)
    norms = {n for n, m in net.named_modules() if isinstance(m, nn.InstanceNorm2d)}
    return _drop_instance_stats(sd, hp["norm"], norms), hp


def _detect_resnet(sd, meta) -> float:
    return 0.9 if _parse_resnet(_with_model_prefix(sd)) is not None else 0.0


def _build_resnet(sd, meta) -> ResnetTranslator:
    sd, hp = resnet_state_dict(sd)
    net = ResnetTranslator(**hp)
    return load_state_dict_strict(net, sd, "resnet_translator")


# ---------------------------------------------------------------------------------------- U-Net


class UnetBlock(nn.Module):
    """One level: down (LeakyReLU, conv4x4/2, norm), the inner levels, up (ReLU, convT4x4/2, norm);
    the output is the level's input concatenated with what came back up."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, norm: str = "batch",
                 dropout: bool = False, bias: bool = False):
        super().__init__()
        self.outermost = outermost
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            layers = [down, submodule, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif submodule is None:  # innermost: no norm at the 1x1 bottleneck on the way down
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), norm_layer(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, norm_layer(norm, inner), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias), norm_layer(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        # The in-place LeakyReLU at the head of self.model also rewrites x, so the skip carries
        # LeakyReLU(x): the published checkpoints were trained that way.
        return torch.cat([x, self.model(x)], 1)


def unet_widths(ngf: int, depth: int) -> list[int]:
    """Inner widths per level, outermost first: ngf, 2ngf, 4ngf, then 8ngf down to the bottleneck."""
    return [ngf * min(2 ** i, 8) for i in range(depth)]


class UnetTranslator(nn.Module):
    kind = "translator"

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, depth: int = 8,
                 norm: str = "batch", dropout: bool = False, widths: list[int] | None = None,
                 bias: bool | None = None):
        super().__init__()
        widths = list(widths) if widths is not None else unet_widths(ngf, depth)
        if depth < 2 or len(widths) != depth:
            raise ValueError(f"U-Net needs depth >= 2 and one width per level, got depth {depth}, widths {widths}")
        bias = default_bias(norm) if bias is None else bool(bias)
        self.in_channels, self.img_channels, self.ngf, self.depth = int(in_channels), int(out_channels), int(ngf), int(depth)
        self.norm, self.dropout, self.bias, self.widths = norm, bool(dropout), bias, widths
        # every level halves H and W with a 4x4/2 conv; odd sizes would not come back to shape
        self.size_multiple = 2 ** depth
        block = None
        for i in reversed(range(1, depth)):
            # upstream's dropout sits in the intermediate ngf*8 -> ngf*8 levels only
            drop = dropout and block is not None and widths[i - 1] == widths[i]
            block = UnetBlock(widths[i - 1], widths[i], submodule=block, norm=norm, dropout=drop, bias=bias)
        self.model = UnetBlock(out_channels, widths[0], in_channels, block, outermost=True, norm=norm, bias=bias)

    def forward(self, x):
        return self.model(x)

    def activation_bytes(self, height: int, width: int, batch: int = 1) -> int:
        """Peak bytes of float32 activations for one forward.

        The skips keep every level's down-path output alive until its up path returns, and each level
        then holds its up-conv output and the concatenation at 1/4**(level+1) of the pixels. With w_i
        the inner width of level i (outermost i = 0), measured peak RSS (ngf 16 at 1024^2: 104 MB,
        ngf 32 at 768^2: 124-133 MB) stays under
        bytes = 4 * batch * H * W * (2 * in_channels + 2 * out_channels + sum_i 4 * w_i / 4**(i+1))"""
        per_px = 2 * self.in_channels + 2 * self.img_channels
        per_px += sum(4 * w / 4 ** (i + 1) for i, w in enumerate(self.widths))
        return int(4 * batch * height * width * per_px)


def build_unet_translator(in_channels=3, out_channels=3, ngf=64, depth=8, norm="batch", dropout=False,
                          **kw) -> UnetTranslator:
    return UnetTranslator(in_channels, out_channels, ngf, depth, norm, dropout, **kw)


def _parse_unet(sd: dict) -> dict | None:
    if not any(k.startswith("model.model.0.") for k in sd):
        return None
    outer_down = sd.get("model.model.0.weight")
    if outer_down is None or outer_down.ndim != 4 or outer_down.shape[-1] != 4:
        return None
    widths, prefix, innermost = [int(outer_down.shape[0])], "model.model.1", False
    norm_params = set()
    while not innermost:
        down = sd.get(prefix + ".model.1.weight")
        if down is None or down.ndim != 4 or down.shape[-1] != 4:
            return None
        widths.append(int(down.shape[0]))
        innermost = (prefix + ".model.3.weight") in sd
        norm_at = (".model.4.",) if innermost else (".model.2.", ".model.6.")
        norm_params |= {k.rsplit(".", 1)[1] for k in sd for n in norm_at if k.startswith(prefix + n)}
        if not innermost:
            prefix += ".model.3"
    up = sd.get("model.model.3.weight")
    if up is None or up.ndim != 4 or up.shape[0] != 2 * widths[0]:
        return None
    bias = "model.model.0.bias" in sd
    norm = _norm_kind(norm_params, bias)
    return dict(in_channels=int(outer_down.shape[1]), out_channels=int(up.shape[1]), ngf=widths[0],
                depth=len(widths), norm=norm, widths=widths, bias=bias)


def unet_state_dict(sd: dict) -> tuple[dict, dict]:
    sd = dict(sd)
    hp = _parse_unet(sd)
    if hp is None:
        raise CheckpointError("not a U-Net translator state dict (expected model.model.0 = 4x4 conv and "
                              "nested model.model.1.model.3... skip blocks)")
    net = UnetTranslator(**hp)
    norms = {n for n, m in net.named_modules() if isinstance(m, nn.InstanceNorm2d)}
    return _drop_instance_stats(sd, hp["norm"], norms), hp


def _detect_unet(sd, meta) -> float:
    return 0.9 if _parse_unet(sd) is not None else 0.0


def _build_unet(sd, meta) -> UnetTranslator:
    sd, hp = unet_state_dict(sd)
    # dropout leaves no trace in the keys; it only matters for training, which says so in arch_kwargs
    hp["dropout"] = bool((meta.get("arch_kwargs") or {}).get("dropout", False))
    net = UnetTranslator(**hp)
    return load_state_dict_strict(net, sd, "unet_translator")


def translator_state_dict(sd: dict) -> tuple[str, dict, dict]:
    """(arch name, canonical state dict, hyper-parameters) of a CycleGAN/pix2pix generator."""
    sd = _with_model_prefix(sd)
    if _parse_unet(sd) is not None:
        return ("unet_translator",) + unet_state_dict(sd)
    return ("resnet_translator",) + resnet_state_dict(sd)


register(Architecture("resnet_translator", "translator", _detect_resnet, _build_resnet))
register(Architecture("unet_translator", "translator", _detect_unet, _build_unet))
