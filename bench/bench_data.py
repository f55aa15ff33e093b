"""Memory and start-up time of train.py's data, N processes on one machine (N torchrun ranks).

    python bench/bench_data.py DATA [--resolution 256] [--channels 3] [--procs 2] [--baseline CHECKOUT]

Modes, each in fresh processes that load the data, then read every pixel once (as an epoch does):
- `memory`: every process decodes the whole set into its own memory (`--data-cache none`);
- `cache_build`: one process decodes into the data cache, a file it then memory-maps;
- `cache_hit`: N processes map that file at once (ranks after the first, and every resumed run);
- `baseline` (with --baseline): `memory` with the gan_models of another checkout, e.g. a commit
  before the cache, for the peak memory of its decoding.
Memory is read from /proc/self/smaps while all N processes of a mode are alive: the anonymous pages
each gained while loading (decoded arrays), plus its Pss of the mapped cache file (a page shared by k
processes counts 1/k in each), so the sum over the processes is what the machine holds for the data.
Peak: the highest RSS while loading, over the RSS before; RSS counts a mapped file's pages in full in
every process that maps them, so a cache mode's peak is the file's size even where the pages are
shared. Every process checks the same pixel sum.
Linux only (/proc). Writes bench/results/data-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_models.train.loop import hardware  # noqa: E402
from gan_models.cli import public_path  # noqa: E402

WORKER = r"""
import ctypes, json, resource, sys, time, warnings
sys.path.insert(0, sys.argv[1])
import torch
from gan_models.data import load_dataset
path, res, ch, cache = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
warnings.simplefilter("ignore")

def held():
    # anonymous pages (private heap: decoded arrays) and this process's share (Pss) of mapped .npy
    # files; library mappings are left out, since their Pss moves with how many processes map them
    anon = npy = 0
    name = ""
    for line in open("/proc/self/smaps"):
        tok = line.split()
        if not tok[0].endswith(":"):
            name = tok[5] if len(tok) > 5 else ""
        elif tok[0] == "Anonymous:":
            anon += int(tok[1])
        elif tok[0] == "Pss:" and name.endswith(".npy"):
            npy += int(tok[1])
    return anon / 1024, npy / 1024

def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024

def trim():  # give freed heap back to the system, so `held` counts what is still in use
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass

int(torch.zeros(256, ch, res, res, dtype=torch.uint8).numpy().sum(dtype="int64"))  # lazy start-ups
trim()
anon0, _ = held()
rss0 = rss()
t = time.perf_counter()
ds = load_dataset(path, res, ch, **({"cache_dir": cache} if cache else {}))
load_s = time.perf_counter() - t
total = 0
for i in range(0, len(ds), 256):  # every pixel once, as an epoch reads them (numpy sums in small buffers)
    total += int(ds.images[i:i + 256].numpy().sum(dtype="int64"))
print("ready", flush=True)
sys.stdin.readline()  # every process of the mode has loaded: shared pages are shared now
trim()
anon, npy = held()
print(json.dumps({"load_s": load_s, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0,
                  "anon_mb": anon - anon0, "mapped_mb": npy, "images": len(ds), "pixel_sum": total}), flush=True)
"""


def run_procs(n: int, code_root: Path, data: str, res: int, ch: int, cache: str) -> list[dict]:
    """n processes at once; each reports its memory only when all have loaded, so shared pages
    are shared at the moment of counting."""
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(code_root), data, str(res), str(ch), cache],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"a worker failed (exit {p.wait()})")
    for p in procs:
        p.stdin.write("\n")
        p.stdin.flush()
    out = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    return out


def summary(rows: list[dict]) -> dict:
    return {"procs": len(rows), "load_s": round(statistics.median(r["load_s"] for r in rows), 3),
            "peak_extra_rss_mb_per_proc": round(max(r["peak_mb"] for r in rows), 1),
            "data_mb_per_proc": round(max(r["anon_mb"] + r["mapped_mb"] for r in rows), 1),
            "data_mb_all_procs": round(sum(r["anon_mb"] + r["mapped_mb"] for r in rows), 1),
            "images": rows[0]["images"], "pixel_sum": rows[0]["pixel_sum"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="image folder or IDX folder")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--procs", type=int, default=2, help="processes at once, as ranks on one machine")
    ap.add_argument("--baseline", type=Path, help="another checkout of this project, run in `memory` mode")
    a = ap.parse_args()
    args = (a.data, a.resolution, a.channels)
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        if a.baseline:
            results["baseline"] = summary(run_procs(a.procs, a.baseline.resolve(), *args, ""))
        results["memory"] = summary(run_procs(a.procs, ROOT, *args, ""))
        results["cache_build"] = summary(run_procs(1, ROOT, *args, cache))
        results["cache_hit"] = summary(run_procs(a.procs, ROOT, *args, cache))
        cache_mb = sum(f.stat().st_size for f in Path(cache).iterdir()) / 2 ** 20
    sums = {r["pixel_sum"] for r in results.values()}
    if len(sums) != 1:
        raise SystemExit(f"the modes read different pixels: {results}")
    mem = results["memory"]
    report = {
        "hardware": hardware(),
        "data": public_path(str(Path(a.data).resolve())), "resolution": a.resolution, "channels": a.channels,
        "images": mem["images"], "cache_file_mb": round(cache_mb, 1),
        "baseline": public_path(str(a.baseline.resolve())) if a.baseline else None,
        "results": results,
        "data_mb": round(mem["data_mb_per_proc"], 1),
        "ratios": {"machine_memory_memory_over_cache_hit":
                   round(mem["data_mb_all_procs"] / max(results["cache_hit"]["data_mb_all_procs"], 1e-9), 2),
                   "load_s_memory_over_cache_hit": round(mem["load_s"] / max(results["cache_hit"]["load_s"], 1e-9), 1)},
    }
    if a.baseline:
        report["ratios"]["peak_rss_baseline_over_memory"] = round(
            results["baseline"]["peak_extra_rss_mb_per_proc"] / max(mem["peak_extra_rss_mb_per_proc"], 1e-9), 2)
    print(json.dumps(report, indent=2))
    out = ROOT / "bench" / "results" / f"data-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
