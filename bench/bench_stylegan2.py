"""CPU throughput of the StyleGAN2 generator at 256 px, full widths (NVlabs config-f at 256:
channel_base=16384, channel_max=512, z=w=512, 8 mapping layers), random weights.

    python bench/bench_stylegan2.py [--upstream /path/to/stylegan2-ada-pytorch] [--batch 4] [--iters 3]

Paths timed: ours eager fp32 as NVlabs computes it (fused per-sample grouped conv), ours fast CPU path
(shared-weight conv around modulation, channels_last), and with --upstream the NVlabs Generator with
the same weights in this process (its CPU reference ops), checking outputs agree to 1e-4.
Runs are interleaved and the best of each path is kept, since the machine is shared.
Writes bench/results/stylegan2_cpu_<resolution>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gan_models.archs.stylegan2 import Generator  # noqa: E402
from gan_models.devices import cpu_model  # noqa: E402

KWARGS = dict(z_dim=512, c_dim=0, w_dim=512, img_channels=3, mapping_kwargs=dict(num_layers=8))


def load_upstream(path: str, kwargs: dict, state: dict):
    sys.path.insert(0, str(Path(path).resolve()))
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib imports it for downloads only
    from training.networks import Generator as UpstreamGenerator
    G = UpstreamGenerator(**kwargs).eval().requires_grad_(False)
    G.load_state_dict(state)
    return G


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", help="an NVlabs stylegan2-ada-pytorch checkout to compare against")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    kwargs = dict(KWARGS, img_resolution=a.resolution,
                  synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=0, conv_clamp=None))
    torch.manual_seed(0)
    G = Generator(**kwargs).eval().requires_grad_(False)
    with torch.no_grad():  # non-zero noise strengths so the noise path is part of the work
        for name, t in G.named_parameters():
            if name.endswith("noise_strength"):
                t.fill_(0.1)
    z = torch.randn(a.batch, G.z_dim, generator=torch.Generator().manual_seed(1))

    paths = {
        "ours_eager_fp32": lambda: G(z, noise_mode="const"),
        "ours_fast_cpu": lambda: G(z, noise_mode="const", fused_modconv=False, channels_last=True),
    }
    if a.upstream:
        U = load_upstream(a.upstream, {k: v for k, v in kwargs.items()}, G.state_dict())
        paths["upstream"] = lambda: U(z, None, noise_mode="const")

    outputs, best = {}, {k: float("inf") for k in paths}
    with torch.no_grad():
        for name, f in paths.items():  # warm-up, and the outputs to compare
            outputs[name] = f()
        for _ in range(a.iters):
            for name, f in paths.items():
                t0 = time.perf_counter()
                f()
                best[name] = min(best[name], time.perf_counter() - t0)

    ref = outputs.get("upstream", outputs["ours_eager_fp32"])
    result = {
        "resolution": a.resolution, "batch": a.batch, "iters": a.iters, "threads": a.threads,
        "config": {"channel_base": 16384, "channel_max": 512, "z_dim": 512, "w_dim": 512},
        "torch": torch.__version__, "platform": platform.platform(), "processor": cpu_model(),
        "images_per_s": {k: a.batch / v for k, v in best.items()},
        "seconds_per_batch": best,
        "max_abs_diff_vs_" + ("upstream" if a.upstream else "ours_eager_fp32"):
            {k: (v - ref).abs().max().item() for k, v in outputs.items()},
    }
    if a.upstream:
        result["speedup_vs_upstream"] = {k: best["upstream"] / v for k, v in best.items() if k != "upstream"}
        bad = {k: d for k, d in result["max_abs_diff_vs_upstream"].items() if d > 1e-4}
        result["outputs_equal_1e-4"] = not bad
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"stylegan2_cpu_{a.resolution}.json"
    path.write_text(json.dumps(result, indent=1))
    for k, v in result["images_per_s"].items():
        extra = f"  x{result['speedup_vs_upstream'][k]:.2f} vs upstream" if "speedup_vs_upstream" in result \
            and k in result["speedup_vs_upstream"] else ""
        print(f"{k:18s} {v:7.3f} img/s{extra}")
    print(json.dumps({k: result[k] for k in result if k.startswith("max_abs") or k == "outputs_equal_1e-4"}))
    print(f"wrote {path}")
    if a.upstream and bad:
        print(f"error: outputs differ from upstream by more than 1e-4: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
