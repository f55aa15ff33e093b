"""Images/s of a 256^2 CycleGAN ResNet-9 translator (ngf 64): our paths against upstream's.

    python bench/bench_translator.py [--upstream /path/to/pytorch-CycleGAN-and-pix2pix] [--iters 5]

Our paths: `eager` (fp32, inference_mode, InstanceNorm through group_norm), `channels_last`,
`winograd` (what Style Transfer (GAN) runs on CPU: the 3x3 convolutions as Winograd F(4x4, 3x3), fp32),
`jit_freeze` (traced, frozen: oneDNN weight prepacking), `bf16` (autocast bfloat16: uses AMX/AVX512-BF16
where the CPU has them; approximate, its error is reported, not hidden), `compile` (torch.compile,
opt-in with --compile: minutes of compilation on a small machine). With --upstream, upstream's
ResnetGenerator is imported from that checkout (models/networks.py only, nothing of it is copied),
given the same weights, and timed in the same process, interleaved with ours so that load from other
processes hits every path alike. Wall-clock and process CPU time are both
reported: on a machine shared with other jobs the CPU-time ratio is the steadier one. Each path's
output is checked against upstream's (or our eager
output without --upstream). The result is written to bench/results/translator-<time>.json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_models.archs.translators import ResnetTranslator, inference_copy  # noqa: E402
from gan_models.cli import public_path  # noqa: E402

FP32_TOL = 1e-4  # fp32 paths differ from upstream by float rounding only (~2e-6 measured)


def upstream_generator(checkout: Path, state_dict: dict) -> torch.nn.Module:
    path = checkout / "models" / "networks.py"
    if not path.is_file():
        raise SystemExit(f"--upstream: {path} not found (give the root of a pytorch-CycleGAN-and-pix2pix checkout)")
    spec = importlib.util.spec_from_file_location("upstream_networks", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.ResnetGenerator(3, 3, 64, mod.get_norm_layer("instance"), False, 9)
    net.load_state_dict(state_dict)
    return net.eval()


def make_paths(T: torch.nn.Module, x: torch.Tensor, with_compile: bool) -> dict:
    paths = {"eager": T}
    Tcl = ResnetTranslator(ngf=T.ngf, n_blocks=T.n_blocks).eval()
    Tcl.load_state_dict(T.state_dict())
    Tcl = Tcl.to(memory_format=torch.channels_last)
    paths["channels_last"] = lambda a: Tcl(a.contiguous(memory_format=torch.channels_last))
    # what Style Transfer (GAN) runs on CPU (translate.py): Winograd F(4x4, 3x3) blocks, channels-last
    paths["winograd"] = inference_copy(T)
    with torch.inference_mode():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(T, x)))
    paths["jit_freeze"] = frozen

    def bf16(a):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return T(a).float()
    paths["bf16"] = bf16
    if with_compile:
        paths["compile"] = torch.compile(T)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", type=Path, help="root of a junyanz/pytorch-CycleGAN-and-pix2pix checkout")
    p.add_argument("--iters", type=int, default=3, help="timed rounds per path (median is reported)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--paths", default="eager,channels_last,winograd",
                   help="comma-separated subset of our paths to time")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    T = ResnetTranslator(3, 3, ngf=64, n_blocks=9).eval()
    with torch.no_grad():  # non-trivial weights so that every layer matters in the comparison
        for q in T.parameters():
            q.normal_(0, 0.02 if q.ndim > 1 else 0.1)
    x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1

    wanted = set(a.paths.split(",")) | ({"compile"} if a.compile else set())
    paths = {k: v for k, v in make_paths(T, x, a.compile).items() if k in wanted}
    if a.upstream:
        paths = {"upstream": upstream_generator(a.upstream, T.state_dict()), **paths}

    outputs, times, cpu = {}, {k: [] for k in paths}, {k: [] for k in paths}
    with torch.inference_mode():
        for name, f in paths.items():  # warm-up: oneDNN primitive creation, compilation
            t = time.perf_counter()
            outputs[name] = f(x)
            print(f"warm-up {name:14s} {time.perf_counter() - t:7.2f} s", flush=True)
        for r in range(a.iters):
            for name, f in paths.items():
                t, c = time.perf_counter(), time.process_time()
                f(x)
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    ref_name = "upstream" if "upstream" in paths else "eager"
    ref = outputs[ref_name]
    results = {}
    for name in paths:
        med = statistics.median(times[name])
        err = (outputs[name].float() - ref).abs().max().item()
        exact = name != "bf16"
        cpu_med = statistics.median(cpu[name])
        results[name] = {"median_s": med, "images_per_s": a.batch / med, "times_s": times[name],
                         "median_cpu_s": cpu_med, "images_per_cpu_s": a.batch / cpu_med, "cpu_times_s": cpu[name],
                         f"max_abs_diff_vs_{ref_name}": err,
                         "check": ("ok" if err <= FP32_TOL else "MISMATCH") if exact else "approximate (bf16)"}
    base = results.get("upstream")
    print(f"\n{a.batch}x3x{a.size}x{a.size}, {a.threads} threads, median of {a.iters}; reference: {ref_name}")
    for name, r in results.items():
        ratio = f"{r['images_per_s'] / base['images_per_s']:5.2f}x upstream" if base else ""
        r["speedup_vs_upstream"] = r["images_per_s"] / base["images_per_s"] if base else None
        r["cpu_speedup_vs_upstream"] = r["images_per_cpu_s"] / base["images_per_cpu_s"] if base else None
        cpu_ratio = f"{r['cpu_speedup_vs_upstream']:5.2f}x upstream" if base else ""
        print(f"{name:14s} {r['images_per_s']:7.3f} img/s  {ratio:18s} {r['images_per_cpu_s']:7.3f} img/CPU-s  "
              f"{cpu_ratio:18s} max|diff| {r[f'max_abs_diff_vs_{ref_name}']:.2e}  {r['check']}")
    record = {"benchmark": "resnet9_ngf64_translator", "size": a.size, "batch": a.batch, "threads": a.threads,
              "iters": a.iters, "torch": torch.__version__, "machine": platform.machine(),
              "processor": platform.processor(), "cpu_count": os.cpu_count(),
              "loadavg_at_end": os.getloadavg(), "upstream": public_path(str(a.upstream)) if a.upstream else None,
              "results": results}
    a.out.mkdir(parents=True, exist_ok=True)
    dst = a.out / f"translator-{time.strftime('%Y%m%d-%H%M%S')}.json"
    dst.write_text(json.dumps(record, indent=2))
    print(f"wrote {dst}")
    return 1 if any(r["check"] == "MISMATCH" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
