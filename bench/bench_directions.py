"""CPU time of SeFa (gan_models.directions) on a 1024 px config-f StyleGAN2 with random weights
(channel_base=32768, channel_max=512, z=w=512, 8 mapping layers, 18 ws: 30.4M parameters).

    python bench/bench_directions.py [--iters 5] [--threads 1,2] [--samples 10000]

Timed, best of --iters at each thread count: the closed form alone (stacking the row-normalised
style affines, A^T A and its eigendecomposition in float64) for --layers all and coarse; the
generator's fingerprint; and the whole of find_directions (the closed form plus the std of w along
each direction from --samples mapped z), which is what the command line does.
Writes bench/results/directions-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gan_models import devices, directions as D  # noqa: E402
from gan_models.archs.stylegan2 import Generator  # noqa: E402


def best_of(f, iters: int) -> float:
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                   help="comma-separated torch thread counts to time at")
    p.add_argument("--samples", type=int, default=D.DEFAULT_SAMPLES)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = p.parse_args(argv)
    default_threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other jobs slow the multi-thread runs most

    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512)).eval().requires_grad_(False)
    params = sum(t.numel() for t in G.parameters())
    rows = {spec: sum(s.affine.weight.shape[0] for s in D.style_layers(G)
                      if s.is_style and s.ws_index in D.layer_range(G.num_ws, spec)) for spec in ("all", "coarse")}
    print(f"StyleGAN2 1024 px config-f, random weights: {params / 1e6:.1f}M parameters, {G.num_ws} ws; "
          f"A is {rows['all']}x512 (all), {rows['coarse']}x512 (coarse)")
    print(f"machine: {devices.cpu_model()} ({platform.machine()}, {os.cpu_count()} cores, load {load if load is None else round(load, 2)}), {platform.system()}, "
          f"torch {torch.__version__}")

    timings = {}
    for threads in sorted({int(t) for t in a.threads.split(",")}):
        torch.set_num_threads(threads)
        D.sefa(G, "all")  # warm-up: first BLAS/LAPACK calls allocate
        t = {
            "sefa_all_s": best_of(lambda: D.sefa(G, "all"), a.iters),
            "sefa_coarse_s": best_of(lambda: D.sefa(G, "coarse"), a.iters),
            "fingerprint_s": best_of(lambda: D.fingerprint(G), a.iters),
            f"find_directions_sefa_all_{a.samples}_samples_s":
                best_of(lambda: D.find_directions(G, "sefa", "all", samples=a.samples), max(1, a.iters // 2)),
        }
        timings[str(threads)] = t
        print(f"torch threads {threads}: " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()))

    result = {
        "model": {"arch": "stylegan2", "img_resolution": 1024, "channel_base": 32768, "channel_max": 512,
                  "z_dim": 512, "w_dim": 512, "mapping_layers": 8, "num_ws": int(G.num_ws),
                  "parameters": params, "weights": "random (torch.manual_seed(0))", "A_rows": rows},
        "iters": a.iters, "samples": a.samples,
        "machine": {"cpu": devices.cpu_model(), "processor": platform.processor(), "machine": platform.machine(),
                    "system": platform.system(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "torch_default_threads": default_threads,
                    "load_average_1min_at_start": load},
        "best_seconds_by_threads": timings,
        "note": "best of iters; the machine was shared with other jobs, so medians would be slower",
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"directions-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}")


if __name__ == "__main__":
    main()
