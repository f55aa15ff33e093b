"""Projection speed side by side: gan_models.invert.project against NVlabs' projector.py
(stylegan2-ada-pytorch) on the same generator, in one process, reported as ratios.

    python bench/bench_invert.py --upstream /path/to/stylegan2-ada-pytorch \
        [--models emoji:100:8:4,random128:30:4:1] [--repeats 2] [--device auto|cpu|cuda] [--threads N]

--models: NAME[:STEPS[:BATCH[:IMAGES]]], comma-separated. emoji is the shipped
weights/emoji_stylegan2.safetensors (64 px RGB); randomR a random config-f StyleGAN2 at R px
(channel_base 16384, channel_max 512, z = w = 512, 8 mapping layers, noise strengths 0.1, ToRGB
rescaled so its images lie mostly inside [-1, 1]). NVlabs' Generator is built from the same state dict.
Perceptual network: NVlabs' projector downloads vgg16.pt (LPIPS-VGG16, TorchScript); here a
TorchScript module of the same architecture and calling convention with random weights (seeded,
He-scaled) stands in for it, saved to a temporary folder. NVlabs' projector runs it (open_url is
redirected to the local file); our side reads its tensors with gan_models.perceptual.load, which
never runs the file. Only its speed matters; both sides are also scored with it (LPIPS).

Paths, all at NVlabs' default schedule (lr 0.1, ramps, w noise 0.05, noise maps with reg 1e5):
- nvlabs_w           projector.project(G, target uint8 CHW, num_steps=S): one w + noise maps, LPIPS only;
- ours_w             invert.project in space 'w', perceptual_weight 1, pixel_weight 0: the same settings,
                     the VGG's precision as the pack picks it (auto: on a CPU fp32 or bf16, whichever runs
                     faster there; the choice is in the result);
- ours_w_fp32        the same in fp32 throughout, NVlabs' precision;
- ours_w_batchB      the same, B images in one call; steps/s is per image (B x the call's steps/s);
- ours_wplus_default space 'w+' with the default loss (pixels + LPIPS): the pack's own default.
Targets are the generator's own images from fixed seeds (noise_mode const), quantised to 8 bits and
given to both sides identically; each path projects IMAGES of them per round (the batch path the
first B), and each round uses other seeds. On the CPU, with the same seed both sides draw the same
noise maps and w noise (NVlabs from torch's global generator, ours from a torch.Generator), so
nvlabs_w and ours_w differ only by float rounding, which can grow over a long run; a run can also
settle in a poor basin by its draws alone, hence quality is pooled over images x rounds (mean and
median of the final PSNR and LPIPS against the targets).

Timing: each step's end is stamped (NVlabs: its verbose per-step print, redirected to a clock; ours:
the progress callback), so setup (10k-sample w_avg, deep copy, loading the VGG) and the first
`--warmup` steps are excluded; steps/s = (S - warmup) / (t_S - t_warmup). Both sides read the loss
back every step (a sync on a GPU). Calls are interleaved (A, B, C, D, A, B, ...) over `--repeats`
rounds; the best and the median call of each path are kept, with ratios ours/NVlabs of both. Before
the runs, the pieces of a batch-1 step (generator, LPIPS network, noise regularisation; forward and
backward) are timed alone on each side, to show where the time goes. On a shared CPU, --threads 1
is steadier: two OpenMP threads on a loaded 2-core machine ran the VGG 3-5x slower.
Writes bench/results/invert-<cpu or gpu>-<timestamp>.json (the upstream commit, no local paths).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from gan_models import devices, invert, load_generator, perceptual as P  # noqa: E402
from gan_models.archs.stylegan2 import Generator  # noqa: E402
from bench_stylegan2 import KWARGS as RANDOM_KWARGS, load_upstream  # noqa: E402

VGG16_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


# ------------------------------------------------------------------------------------------------
# The stand-in for NVlabs' vgg16.pt

class LPIPSVGG16(nn.Module):
    """NVlabs' vgg16.pt calling convention: vgg16(img NCHW in 0..255, resize_images, return_lpips).
    return_lpips: per block (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) the activations unit-normalised
    over channels, times sqrt(lpips head), over sqrt(H*W), flattened and concatenated, so that
    (a - b).square().sum() is LPIPS. Input: RGB in 0..1 normalised by ImageNet's mean and std."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.layers = nn.Module()
        cin = 3
        for i, cout in enumerate(VGG16_WIDTHS, 1):
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5)
                conv.bias.copy_(torch.randn(cout, generator=g) * 0.01)
            self.layers.add_module(f"conv{i}", conv)
            cin = cout
        for i, c in enumerate((64, 128, 256, 512, 512)):
            self.register_parameter(f"lpips{i}", nn.Parameter(torch.rand(c, 1, 1, generator=g)))
        self.register_buffer("mean", torch.tensor(P.IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(P.IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _unit(self, f: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
        f = f * head.sqrt() / float(f.shape[2] * f.shape[3]) ** 0.5
        return f.flatten(1)

    def forward(self, img: torch.Tensor, resize_images: bool = False, return_lpips: bool = False) -> torch.Tensor:
        x = img.to(torch.float32) / 255.0
        if resize_images:
            x = F.interpolate(x, size=(224, 224), mode="area")
        x = (x - self.mean) / self.std
        L = self.layers
        x = F.relu(L.conv2(F.relu(L.conv1(x))))
        f1 = x
        x = F.max_pool2d(x, 2)
        x = F.relu(L.conv4(F.relu(L.conv3(x))))
        f2 = x
        x = F.max_pool2d(x, 2)
        x = F.relu(L.conv7(F.relu(L.conv6(F.relu(L.conv5(x))))))
        f3 = x
        x = F.max_pool2d(x, 2)
        x = F.relu(L.conv10(F.relu(L.conv9(F.relu(L.conv8(x))))))
        f4 = x
        x = F.max_pool2d(x, 2)
        x = F.relu(L.conv13(F.relu(L.conv12(F.relu(L.conv11(x))))))
        f5 = x
        if not return_lpips:
            return f5.flatten(1)
        return torch.cat([self._unit(f1, self.lpips0), self._unit(f2, self.lpips1), self._unit(f3, self.lpips2),
                          self._unit(f4, self.lpips3), self._unit(f5, self.lpips4)], 1)


def save_vgg16(folder: Path, seed: int = 0) -> Path:
    path = folder / "vgg16.pt"
    torch.jit.save(torch.jit.script(LPIPSVGG16(seed)), str(path))
    return path


# ------------------------------------------------------------------------------------------------
# Generators and targets

def emoji_generator():
    G = load_generator(ROOT / "weights" / "emoji_stylegan2.safetensors").eval().requires_grad_(False)
    init = G.meta["init_kwargs"]
    kwargs = {k: init[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    kwargs.update(mapping_kwargs=dict(init.get("mapping_kwargs") or {}),
                  synthesis_kwargs=dict(init.get("synthesis_kwargs") or {}))
    desc = {"name": "emoji_stylegan2", "weights": "weights/emoji_stylegan2.safetensors", **kwargs}
    return G, kwargs, desc


def random_generator(resolution: int):
    kwargs = dict(RANDOM_KWARGS, img_resolution=resolution,
                  synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=0, conv_clamp=None))
    torch.manual_seed(0)
    G = Generator(**kwargs).eval().requires_grad_(False)
    with torch.no_grad():  # non-zero noise strengths, so the noise maps matter to the fit
        for name, t in G.named_parameters():
            if name.endswith("noise_strength"):
                t.fill_(0.1)
        # untrained, its images spread far outside [-1, 1] (mean -1.7, std 2 at 128 px) and 8-bit targets
        # would be mostly clipped: the ToRGB layers' weights and biases (the image is linear in them) are
        # scaled to an image std of 0.4, and the last one's bias re-centres each channel on 0
        z = torch.from_numpy(np.random.RandomState(0).randn(8, G.z_dim)).float()
        scale = 0.4 / G(z, None, noise_mode="const").std().item()
        for name, t in G.named_parameters():
            if ".torgb." in name and ".affine." not in name:
                t.mul_(scale)
        getattr(G.synthesis, f"b{resolution}").torgb.bias.sub_(G(z, None, noise_mode="const").mean((0, 2, 3)))
    desc = {"name": f"random{resolution}", "weights": f"random (torch.manual_seed(0), noise_strength 0.1, ToRGB "
                                                      f"scaled by {scale:.4f} and re-centred: image mean 0, "
                                                      f"std 0.4)", **kwargs}
    return G, kwargs, desc


def make_targets(G, n: int, seed: int = 1000) -> torch.Tensor:
    """n images of G from seeds seed.., noise const, psi 1, as uint8 NCHW."""
    z = torch.from_numpy(np.stack([np.random.RandomState(seed + i).randn(G.z_dim) for i in range(n)])).float()
    with torch.no_grad():
        img = G(z, None, noise_mode="const")
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------------
# The two projectors

def import_projector(upstream: str, vgg_path: Path):
    sys.path.insert(0, str(Path(upstream).resolve()))
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib: downloads only
    sys.modules.setdefault("imageio", types.ModuleType("imageio"))    # projector.py: its video writer only
    import dnnlib
    import projector
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
    dnnlib.util.open_url = lambda url, *a, **k: open(vgg_path, "rb")  # their vgg16.pt URL -> the stand-in
    return projector


class StepClock:
    def __init__(self):
        self.stamps: list[float] = []

    def rate(self, steps: int, warmup: int, per_call_images: int = 1) -> float:
        if len(self.stamps) != steps:
            raise RuntimeError(f"{len(self.stamps)} step stamps for {steps} steps")
        return per_call_images * (steps - warmup) / (self.stamps[-1] - self.stamps[warmup - 1])


def run_nvlabs(projector, G_up, target_u8: torch.Tensor, steps: int, warmup: int, device, seed: int):
    """One image. Returns (steps/s, call seconds, final image in [-1, 1] NCHW on the CPU). The final
    image is drawn with the fitted w and the fitted noise maps (projector.py optimises them on its deep
    copy of G, which is kept here; its own run_projection would draw with G's original noise)."""
    import copy as _copy
    clock, kept = StepClock(), {}

    def deepcopy(obj):
        kept["G"] = _copy.deepcopy(obj)
        return kept["G"]

    def stamp(*args, **kwargs):
        if args and str(args[0]).startswith("step "):
            if device.type == "cuda":
                torch.cuda.synchronize()
            clock.stamps.append(time.perf_counter())

    projector.copy = types.SimpleNamespace(deepcopy=deepcopy)
    projector.print = stamp  # logprint (verbose=True) calls print once per step, after optimizer.step()
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    w_out = projector.project(G_up, target=target_u8.to(device), num_steps=steps, device=device, verbose=True)
    call_s = time.perf_counter() - t0
    Gc = kept["G"]
    with torch.no_grad():
        ws = w_out[-1:]  # project() returns [num_steps, num_ws, w_dim]
        img = Gc.synthesis(ws, noise_mode="const").float().cpu()
    return clock.rate(steps, warmup), call_s, img


def run_ours(G, targets_u8: torch.Tensor, cfg: invert.InvertConfig, net, warmup: int, device):
    clock = StepClock()

    def progress(done, total):
        clock.stamps.append(time.perf_counter())  # the loss was read back (float) before this: synced

    target = targets_u8.to(device).float() / 127.5 - 1
    t0 = time.perf_counter()
    res = invert.project(G, target, cfg, perceptual=net, progress=progress)
    call_s = time.perf_counter() - t0
    return clock.rate(cfg.steps, warmup, targets_u8.shape[0]), call_s, res.images


def step_components(G, U, net, vgg_script, device, rounds: int) -> dict:
    """Where a batch-1 step's time goes, each side's pieces timed alone (forward + backward, best of
    `rounds`, interleaved): the generator from w (theirs: noise_const buffers as leaves, its CPU reference
    ops; ours: explicit noise maps and the fast CPU kwargs project() uses), the LPIPS network from the
    image, and the noise regularisation."""
    import copy as _copy
    from gan_models.generate import fast_synthesis_kwargs
    Uc = _copy.deepcopy(U).to(device)
    bufs = [b for n, b in Uc.synthesis.named_buffers() if "noise_const" in n]
    for b in bufs:
        b.requires_grad = True
    gen = torch.Generator().manual_seed(0)
    noises = [torch.randn((1, 1) + tuple(s[2:]), generator=gen).to(device).requires_grad_(True)
              for s in G.synthesis.noise_shapes()]
    fast = fast_synthesis_kwargs(G, device)
    with torch.no_grad():
        w = G.mapping(torch.randn(1, G.z_dim, generator=gen).to(device), None)[:, :1]
    R = G.img_resolution
    x = torch.rand(1, G.img_channels, R, R, generator=gen).to(device) * 2 - 1
    net = net.to(device)
    vgg_script = vgg_script.to(device)

    def nvlabs_generator():
        wi = w.clone().requires_grad_(True)
        Uc.synthesis(wi.repeat(1, G.num_ws, 1), noise_mode="const").square().sum().backward()

    def ours_generator():
        wi = w.clone().requires_grad_(True)
        G.synthesis(wi.expand(-1, G.num_ws, -1), noise_mode="const", noise=noises, **fast).square().sum().backward()

    def nvlabs_lpips():
        y = (x.clone().requires_grad_(True) + 1) * (255 / 2)
        if y.shape[2] > 256:
            y = F.interpolate(y, size=(256, 256), mode="area")
        vgg_script(y, resize_images=False, return_lpips=True).square().sum().backward()

    def ours_lpips():
        net.features(x.clone().requires_grad_(True)).square().sum().backward()

    def nvlabs_noise_reg():  # projector.py's loop
        reg = 0.0
        for v in bufs:
            n = v[None, None, :, :]
            while True:
                reg += (n * torch.roll(n, shifts=1, dims=3)).mean() ** 2
                reg += (n * torch.roll(n, shifts=1, dims=2)).mean() ** 2
                if n.shape[2] <= 8:
                    break
                n = F.avg_pool2d(n, kernel_size=2)
        (reg * 1e5).backward()

    def ours_noise_reg():
        (1e5 * invert.noise_regularization(noises).sum()).backward()

    fs = {"nvlabs_generator": nvlabs_generator, "ours_generator": ours_generator, "nvlabs_lpips": nvlabs_lpips,
          "ours_lpips": ours_lpips, "nvlabs_noise_reg": nvlabs_noise_reg, "ours_noise_reg": ours_noise_reg}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = {k: float("inf") for k in fs}
    for f in fs.values():
        f()
    for _ in range(rounds):
        for k, f in fs.items():
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            best[k] = min(best[k], time.perf_counter() - t0)
    return {k: 1000 * v for k, v in best.items()}


# ------------------------------------------------------------------------------------------------

def machine_info(device: torch.device) -> dict:
    info = {"cpu": devices.cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def upstream_commit(path: str) -> str:
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def command_line(argv, a) -> str:
    """The arguments as given, with the local paths (upstream checkout, --out) named, not written out."""
    words = []
    for x in (sys.argv[1:] if argv is None else argv):
        for path, name in ((a.upstream, "UPSTREAM"), (a.out, "OUT")):
            if path != str(ROOT / "bench" / "results"):
                x = x.replace(path, name)
        words.append(x)
    return " ".join(["python bench/bench_invert.py"] + words)


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "unknown"


def bench_model(spec: str, a, device, projector, net, vgg_script) -> dict:
    name, *rest = spec.split(":")
    steps = int(rest[0]) if rest and rest[0] else a.steps
    batch = int(rest[1]) if len(rest) > 1 and rest[1] else a.batch
    n_single = int(rest[2]) if len(rest) > 2 and rest[2] else a.images
    warmup = a.warmup
    if not 1 <= warmup < steps:
        raise SystemExit(f"{spec}: need 1 <= --warmup < steps")
    if name == "emoji":
        G, kwargs, desc = emoji_generator()
    elif re.fullmatch(r"random\d+", name):
        G, kwargs, desc = random_generator(int(name[6:]))
    else:
        raise SystemExit(f"unknown model {name!r}: emoji or randomR (e.g. random128)")
    U = load_upstream(a.upstream, kwargs, G.state_dict())
    targets = make_targets(G, max(batch, n_single))
    G, U = G.to(device), U.to(device)
    tf = targets.float() / 127.5 - 1
    with torch.no_grad():  # the two generators draw the same image from the same w
        w = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(5)).to(device), None)
        gen_diff = (G.synthesis(w, noise_mode="const") - U.synthesis(w, noise_mode="const")).abs().max().item()
        # and the stand-in's LPIPS features, run as TorchScript, equal our reader's (which never runs it)
        vs = vgg_script.to(device)(targets[:2].to(device).float(), resize_images=False, return_lpips=True)
        ours_f = net.to(device).features(tf[:2].to(device))
        feat_diff = (vs - ours_f).abs().max().item()

    # each round draws with other seeds (NVlabs: torch.manual_seed; ours: InvertConfig.seed), so the
    # quality is pooled over images x rounds: one run can settle in a poor basin by its draws alone
    def eq(seed, precision="auto"):
        return invert.InvertConfig(space="w", steps=steps, pixel_weight=0.0, perceptual_weight=1.0, seed=seed,
                                   perceptual_precision=precision)

    paths = {
        "nvlabs_w": lambda i, seed: run_nvlabs(projector, U, targets[i], steps, warmup, device, seed=seed),
        "ours_w": lambda i, seed: run_ours(G, targets[i:i + 1], eq(seed), net, warmup, device),
        "ours_w_fp32": lambda i, seed: run_ours(G, targets[i:i + 1], eq(seed, "fp32"), net, warmup, device),
        f"ours_w_batch{batch}": lambda i, seed: run_ours(G, targets[:batch], eq(seed), net, warmup, device),
        "ours_wplus_default": lambda i, seed: run_ours(G, targets[i:i + 1],
                                                       invert.InvertConfig(space="w+", steps=steps, seed=seed),
                                                       net, warmup, device),
    }
    batched = {f"ours_w_batch{batch}"}
    rates = {k: [] for k in paths}
    calls = {k: [] for k in paths}
    samples = {k: [] for k in paths}  # (round, image, psnr, lpips)
    components = None
    if a.component_rounds:
        components = step_components(G, U, net, vgg_script, device, a.component_rounds)
        print(f"[{name}] batch-1 step pieces, fwd+bwd, best of {a.component_rounds} (ms): "
              + ", ".join(f"{k} {v:.1f}" for k, v in components.items()), flush=True)
    load = [os.getloadavg()[0]]
    print(f"[{name}] {desc['img_resolution']} px, {steps} steps, {n_single} image(s) per path, "
          f"batch {batch}, {a.repeats} rounds", flush=True)
    for r in range(a.repeats):
        for k, f in paths.items():
            for i in ([0] if k in batched else range(n_single)):
                rate, call_s, img = f(i, 1000 * r + i)
                if k == "ours_w":
                    chosen_precision = net.precision
                net.precision = "fp32"  # every path is scored in fp32
                rates[k].append(rate)
                calls[k].append(call_s)
                j = torch.arange(i, i + img.shape[0])
                with torch.no_grad():
                    q = invert.psnr(img, tf[j])
                    lp = net.to("cpu")(img, tf[j])
                samples[k] += [(r, int(jj), float(qq), float(ll)) for jj, qq, ll in zip(j, q, lp)]
                print(f"  round {r + 1} {k:22s} image {i}: {rate:7.3f} steps/s (per image), call {call_s:6.1f} s, "
                      f"PSNR {q[:1].item():5.2f} dB, LPIPS {lp[:1].item():.4f}", flush=True)
        load.append(os.getloadavg()[0])

    # final PSNR / LPIPS against the targets, over the (round, image) runs of the first `images` targets,
    # which every path projected (the batch path projected more: all its runs are in `runs`)
    quality = {}
    for k, ss in samples.items():
        common = [x for x in ss if x[1] < n_single]
        quality[k] = {"psnr_db": statistics.mean(x[2] for x in common),
                      "psnr_db_median": statistics.median(x[2] for x in common),
                      "lpips": statistics.mean(x[3] for x in common),
                      "lpips_median": statistics.median(x[3] for x in common),
                      "runs": len(common),
                      "all_runs_round_image_psnr_lpips": ss}
    best = {k: max(v) for k, v in rates.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "model": {k: v for k, v in desc.items()},
        "parameters": sum(p.numel() for p in G.parameters()),
        "steps": steps, "warmup_steps_excluded": warmup, "images_single": n_single, "batch": batch,
        "repeats": a.repeats,
        "ours_w_perceptual_precision": chosen_precision,
        "generators_max_abs_diff": gen_diff, "lpips_features_script_vs_reader_max_abs_diff": feat_diff,
        "steps_per_s_per_image": {"best": best, "median": med, "all": rates},
        "ratio_vs_nvlabs": {"best": {k: best[k] / best["nvlabs_w"] for k in best if k != "nvlabs_w"},
                            "median": {k: med[k] / med["nvlabs_w"] for k in med if k != "nvlabs_w"}},
        "call_seconds_median": {k: statistics.median(v) for k, v in calls.items()},
        "quality_vs_target": quality,
        "batch1_step_pieces_ms_fwd_bwd_best": components,
        "load_average_1min_per_round": load,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="an NVlabs stylegan2-ada-pytorch checkout (its projector.py)")
    p.add_argument("--models", default="emoji,random128",
                   help="comma-separated NAME[:STEPS[:BATCH[:IMAGES]]]: emoji (the shipped 64 px weights), "
                        "randomR (config-f at R px); the numbers override --steps, --batch, --images for it")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=3, help="first steps left out of steps/s")
    p.add_argument("--images", type=int, default=1, help="targets per single-image path per round")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--component-rounds", type=int, default=5,
                   help="rounds for timing a step's pieces alone (generator, LPIPS, noise reg); 0: skip")
    devices.add_argument(p)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)

    with tempfile.TemporaryDirectory() as tmp:
        vgg_path = save_vgg16(Path(tmp))
        projector = import_projector(a.upstream, vgg_path)
        net = P.load(vgg_path)
        vgg_script = torch.jit.load(str(vgg_path))
        info = machine_info(device)
        info["load_average_1min_at_start"] = os.getloadavg()[0]
        result = {
            "what": "projection steps/s, gan_models.invert.project vs NVlabs projector.py, same generator, "
                    "same stand-in LPIPS-VGG16 (random weights, TorchScript), same targets",
            "upstream": {"repo": "NVlabs/stylegan2-ada-pytorch", "commit": upstream_commit(a.upstream),
                         "file": "projector.py"},
            "perceptual": {"stand_in": "LPIPS-VGG16 TorchScript, NVlabs' calling convention, random He-scaled "
                                       "weights (seed 0), heads U(0,1)", "ours_reads_it_as": net.name},
            "machine": info,
            "command": command_line(argv, a),
            "models": {},
        }
        for m in [s.strip() for s in a.models.split(",") if s.strip()]:
            result["models"][m.split(":")[0]] = bench_model(m, a, device, projector, net, vgg_script)
    info["load_average_1min_at_end"] = os.getloadavg()[0]

    print(f"\nmachine: {info['cpu']}" + (f", {info['gpu']}" if "gpu" in info else "") +
          f", torch {info['torch']}, {info['threads']} thread(s), load {info['load_average_1min_at_start']:.2f}"
          f" -> {info['load_average_1min_at_end']:.2f}; upstream {result['upstream']['commit'][:12]}")
    for m, r in result["models"].items():
        print(f"\n{m} ({r['model']['img_resolution']} px, {r['steps']} steps; generators agree to "
              f"{r['generators_max_abs_diff']:.1e}, LPIPS features to {r['lpips_features_script_vs_reader_max_abs_diff']:.1e})")
        print(f"  {'path':22s} {'steps/s/img best':>16s} {'median':>7s} {'ratio best':>10s} {'median':>7s} "
              f"{'PSNR dB mean':>12s} {'median':>7s} {'LPIPS mean':>10s} {'median':>7s} {'runs':>4s}")
        for k, best in r["steps_per_s_per_image"]["best"].items():
            q = r["quality_vs_target"][k]
            print(f"  {k:22s} {best:16.3f} {r['steps_per_s_per_image']['median'][k]:7.3f} "
                  f"{r['ratio_vs_nvlabs']['best'].get(k, 1.0):10.2f} {r['ratio_vs_nvlabs']['median'].get(k, 1.0):7.2f} "
                  f"{q['psnr_db']:12.2f} {q['psnr_db_median']:7.2f} {q['lpips']:10.4f} {q['lpips_median']:7.4f} "
                  f"{q['runs']:4d}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    where = info.get("gpu", info["cpu"])
    path = out / f"invert-{slug(where)}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
