"""Training speed in kimg/s (thousands of real images per second) of gan_models.train, side by side:
eager fp32, bf16 autocast, channels_last, and both (on a GPU also fp16 autocast and TF32), for DCGAN
64 px, StyleGAN2 64 px and StyleGAN2 256 px.

    python bench/bench_train.py [--device cpu|cuda] [--steps 3] [--batch 16] [--full-width]
                                [--upstream /path/to/stylegan2-ada-pytorch]
    python bench/bench_train.py --baseline /path/to/an/older/checkout [--rounds 3] [other options]

A step is the whole training step of the Trainer (data, G and D updates, EMA, augmentation) on
random images. StyleGAN2 steps are timed without their lazy regularisers (the timed steps are 2..N+1,
none a multiple of 16, path length off), so the numbers are the main phases; R1 every 16 steps (and
path length every 4 with --pl-weight) add to that. The three modes run interleaved, best time of
each kept, because the machine is shared.

Widths on CPU (say so when quoting): by default StyleGAN2 uses channel_base 2048 / channel_max 128
at 64 px (32 channels at 64 px) and channel_base 2048 / channel_max 64 at 256 px (8 channels at
256 px), z = w = 256 and 2 mapping layers; NVlabs' config-f is 32768 / 512 and 16384 / 512 with
z = w = 512 and 8 mapping layers, which --full-width uses (GPU: one full-width 64 px step is about a
minute on two shared CPU cores). DCGAN is the recipe's own (ngf 64, ndf 32).
With --upstream, StyleGAN2 rows add NVlabs' own training step, imported from that checkout (nothing
of it is copied here) and timed interleaved with ours: their Generator and Discriminator with the same
widths and starting weights, their StyleGAN2Loss, and the phase loop of their training_loop.py (Gmain
then Dmain, Adam with the lazy-regularisation ratios, nan_to_num of the gradients, the G_ema update).
DCGAN has no NVlabs counterpart.
With --baseline, this benchmark runs as it is in that checkout of this project and as it is here, in
turns (--rounds of each, separate processes, so each side imports its own gan_models), and reports the
best seconds per step of each side and their ratio: whether a change to the training code kept its speed.
Writes bench/results/train_<device>-<date>.json (with --baseline, train_vs_baseline-<date>.json).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gan_models import devices  # noqa: E402
from gan_models.train import TrainConfig, Trainer  # noqa: E402
from gan_models.train.loop import hardware  # noqa: E402
from gan_models.cli import public_path  # noqa: E402


def configs(full: bool, batch: int) -> list[dict]:
    sg_small = {64: dict(cbase=2048, cmax=128), 256: dict(cbase=2048, cmax=64)}
    sg_full = {64: dict(cbase=32768, cmax=512), 256: dict(cbase=16384, cmax=512)}
    sg = sg_full if full else sg_small
    zw = 512 if full else 256
    out = [dict(name="dcgan-64", arch="dcgan", resolution=64, batch=batch, z_dim=100, ngf=64, ndf=32)]
    for res in (64, 256):
        out.append(dict(name=f"stylegan2-{res}", arch="stylegan2", resolution=res, batch=batch, z_dim=zw,
                        extra=dict(w_dim=zw, map_layers=8 if full else 2, **sg[res])))
    return out


def make_data(folder: Path, resolution: int, n: int = 64) -> Path:
    folder = folder / f"r{resolution}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


class UpstreamStep:
    """One main-phase step of NVlabs' training_loop.py, for the same config and starting weights as
    a Trainer `tr` (StyleGAN2 only)."""

    def __init__(self, checkout: str, tr):
        sys.path.insert(0, str(Path(checkout).resolve()))
        sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib imports it for downloads only
        from torch_utils import misc
        from training import networks
        from training.loss import StyleGAN2Loss
        from gan_models.train.stylegan2 import generator_kwargs, lazy_adams

        cfg, dev = tr.cfg, tr.device
        self.misc, self.batch, self.cfg, self.dev, self.ds = misc, tr.tc.batch, cfg, dev, tr.ds
        self.G = networks.Generator(**generator_kwargs(cfg)).to(dev).train().requires_grad_(False)
        self.D = networks.Discriminator(cfg["c_dim"], cfg["resolution"], cfg["channels"], architecture="resnet",
                                        channel_base=cfg["cbase"], channel_max=cfg["cmax"], num_fp16_res=0,
                                        conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=cfg["mbstd_group"]),
                                        mapping_kwargs=dict(num_layers=cfg["map_layers"])).to(dev).train()
        self.D.requires_grad_(False)
        self.G.load_state_dict(tr.G.state_dict())
        self.D.load_state_dict(tr.D.state_dict())
        self.G_ema = networks.Generator(**generator_kwargs(cfg)).to(dev).eval().requires_grad_(False)
        self.G_ema.load_state_dict(tr.G_ema.state_dict())
        self.loss = StyleGAN2Loss(dev, self.G.mapping, self.G.synthesis, self.D, style_mixing_prob=cfg["style_mixing"],
                                  r1_gamma=cfg["r1_gamma"], pl_weight=cfg["pl_weight"])
        # the same formula as training_loop.py's (lr * c, betas ** c for the lazy regularisers)
        self.opt_G, self.opt_D = lazy_adams(self.G, self.D, cfg)
        self.order = torch.Generator().manual_seed(0)

    def _phase(self, name, module, opt, real, c, z):
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        self.loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=z, gen_c=c, sync=True, gain=1)
        module.requires_grad_(False)
        for p in module.parameters():
            if p.grad is not None:
                self.misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    def train_step(self):
        idx = torch.randint(0, len(self.ds), (self.batch,), generator=self.order)
        x, _ = self.ds.batch(idx)
        real = x.to(self.dev)
        c = torch.zeros(self.batch, 0, device=self.dev)
        self._phase("Gmain", self.G, self.opt_G, real, c, torch.randn(self.batch, self.G.z_dim, device=self.dev))
        self._phase("Dmain", self.D, self.opt_D, real, c, torch.randn(self.batch, self.G.z_dim, device=self.dev))
        with torch.no_grad():
            beta = 0.5 ** (self.batch / max(self.cfg["ema_kimg"] * 1000, 1e-8))
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                pe.copy_(p.lerp(pe, beta))
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)


# explicit memory formats: the recipes default to their own (stylegan2 channels_last)
MODES = {"fp32": dict(channels_last=False), "bf16": dict(precision="bf16", channels_last=False),
         "channels_last": dict(channels_last=True), "bf16_channels_last": dict(precision="bf16", channels_last=True)}
# GPU only: fp16 autocast with its GradScaler, and TF32 (10-bit inputs to fp32 matmuls and convolutions)
CUDA_MODES = {"fp16": dict(precision="fp16"), "tf32": dict(tf32=True)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    devices.add_argument(p)
    p.add_argument("--steps", type=int, default=2, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=1, help="interleaved repetitions; the best is kept")
    p.add_argument("--batch", type=int, default=8)
    # 1 by default: on a CPU shared with other jobs, more threads than free cores are many times slower
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--full-width", action="store_true", help="NVlabs' StyleGAN2 widths (GPU)")
    p.add_argument("--only", nargs="*", help="config names to run (dcgan-64 stylegan2-64 stylegan2-256)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--upstream", help="NVlabs stylegan2-ada-pytorch checkout: time its training step too")
    p.add_argument("--baseline", help="another checkout of this project: time its training step and ours in turns")
    p.add_argument("--rounds", type=int, default=3, help="--baseline: runs of each side, alternating (default 3)")
    a = p.parse_args(argv)
    if a.baseline:
        return against_baseline(a, sys.argv[1:] if argv is None else list(argv))
    if a.upstream and not (Path(a.upstream) / "training" / "loss.py").is_file():
        p.error(f"--upstream: {a.upstream} is not a stylegan2-ada-pytorch checkout (no training/loss.py)")
    torch.set_num_threads(a.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for cfg in configs(a.full_width, a.batch):
            if a.only and cfg["name"] not in a.only:
                continue
            data = make_data(tmp, cfg["resolution"])
            trainers = {}
            for mode, kw in {**MODES, **(CUDA_MODES if a.device.startswith("cuda") else {})}.items():
                base = {k: v for k, v in cfg.items() if k != "name"}
                tc = TrainConfig(data=str(data), out=str(tmp / f"{cfg['name']}-{mode}"), channels=3, steps=10 ** 6,
                                 sample_every=0, snapshot_every=0, progress=False, device=a.device, seed=0,
                                 **base, **kw)
                tr = Trainer(tc)
                tr.step = 1  # step 0 would run the lazy R1: warm up and time main-phase steps only
                tr.train_step()  # warm-up: allocator, first-call costs
                trainers[mode] = tr
            if a.upstream and cfg["arch"] == "stylegan2":
                trainers["upstream"] = UpstreamStep(a.upstream, trainers["fp32"])
                trainers["upstream"].train_step()
            best = {m: float("inf") for m in trainers}
            for _ in range(a.reps):
                for mode, tr in trainers.items():
                    if a.device.startswith("cuda"):
                        # process-wide flags, set by the last Trainer built: each mode runs under its own
                        # (NVlabs' step under theirs, TF32 off)
                        tf32 = bool(getattr(getattr(tr, "tc", None), "tf32", False))
                        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    for _ in range(a.steps):
                        tr.train_step()
                    if a.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    best[mode] = min(best[mode], (time.perf_counter() - t0) / a.steps)
            row = {"config": cfg["name"], "batch": cfg["batch"], "resolution": cfg["resolution"],
                   "widths": cfg.get("extra", {"ngf": cfg.get("ngf"), "ndf": cfg.get("ndf")}),
                   "s_per_step": {m: round(t, 4) for m, t in best.items()},
                   "kimg_per_s": {m: round(cfg["batch"] / t / 1000, 5) for m, t in best.items()},
                   "speedup_vs_fp32": {m: round(best["fp32"] / t, 3) for m, t in best.items()}}
            if "upstream" in best:
                row["speedup_vs_upstream"] = {m: round(best["upstream"] / t, 3) for m, t in best.items()}
            results.append(row)
            print(f"{row['config']:>15}  batch {row['batch']}:  " + "  ".join(
                f"{m} {row['kimg_per_s'][m]:.4f} kimg/s (x{row['speedup_vs_fp32'][m]:.2f})" for m in best),
                flush=True)
            del trainers
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"train_{a.device.split(':')[0]}-{stamp}.json"
    path.write_text(json.dumps({"hardware": hardware(), "device": a.device, "threads": a.threads,
                                "steps": a.steps, "reps": a.reps, "full_width": a.full_width,
                                "upstream": public_path(str(a.upstream)) if a.upstream else None,
                                "note": "StyleGAN2 steps timed without lazy R1/path-length phases",
                                "results": results}, indent=2) + "\n")
    print(path)
    return results


def _git_commit(root: Path) -> str | None:
    import subprocess
    r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or None


def against_baseline(a, argv: list[str]) -> dict:
    import subprocess
    drop = {"--baseline": 1, "--rounds": 1, "--out": 1}
    child, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in drop:
            skip = 0 if "=" in arg else drop[name]
            continue
        child.append(arg)
    sides = {"baseline": Path(a.baseline).resolve(), "this": ROOT}
    torch.set_num_threads(a.threads)  # what the runs use, so that hardware() below says so
    best: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for side, root in sides.items():
                out = Path(tmp) / f"{side}-{r}"
                subprocess.run([sys.executable, str(root / "bench" / "bench_train.py"), *child, "--out", str(out)],
                               cwd=root, check=True, stdout=subprocess.DEVNULL)
                (res,) = out.glob("*.json")
                for row in json.loads(res.read_text())["results"]:
                    for mode, t in row["s_per_step"].items():
                        cell = best.setdefault((row["config"], mode), {})
                        cell[side] = min(cell.get(side, float("inf")), t)
    rows = [{"config": c, "mode": m, "s_per_step_baseline": v["baseline"], "s_per_step_this": v["this"],
             "this_over_baseline": round(v["this"] / v["baseline"], 3)} for (c, m), v in best.items()]
    for row in rows:
        print(f"{row['config']:>14} {row['mode']:>20}: baseline {row['s_per_step_baseline']:.4f} s/step, "
              f"this {row['s_per_step_this']:.4f} s/step, x{row['this_over_baseline']:.3f}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"train_vs_baseline-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    result = {"hardware": hardware(), "device": a.device, "threads": a.threads, "rounds": a.rounds,
              "note": "best s/step of each side over its rounds; the sides ran in turns, each in its own process",
              "baseline_commit": _git_commit(sides["baseline"]), "this_commit": _git_commit(ROOT),
              "command": " ".join(["python bench/bench_train.py --baseline BASELINE --rounds", str(a.rounds), *child]),
              "results": rows}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(path)
    return result


if __name__ == "__main__":
    main()
