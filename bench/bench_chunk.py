"""Images/s of Generate Image (GAN)'s synthesis at fixed chunk sizes against chunk 0 (auto: memory bound,
then sizes timed on the job's own first images), side by side in one process, for the shipped
generators. The ratio auto / best fixed size is what matters: auto must find the best size on
whatever machine it runs on. Every size auto may pick is timed; the sizes and the settled auto run are
interleaved over --repeats rounds and each one's median is reported, so a burst of load on a shared
machine does not decide the comparison.

    python bench/bench_chunk.py [--images 512] [--threads 1] [--repeats 5] [--out bench/results]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gan_models import autotune, latents as L, load_generator  # noqa: E402
from gan_models.devices import cpu_model  # noqa: E402
from gan_models.generate import synthesize  # noqa: E402

MODELS = ("emoji_stylegan2.safetensors", "fashion_mnist_cdcgan.safetensors")
FIXED = autotune.ChunkTuner.CANDIDATES


def chunk_state() -> dict | None:
    """The chunk search's state; autotune.forget() before each model leaves that model's the only one."""
    return next((v for k, v in autotune._CHOSEN.items() if k[0] == "chunk"), None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    results = {}
    for name in MODELS:
        G = load_generator(ROOT / "weights" / name)
        lat = L.sample(G, list(range(a.images)), "random" if G.c_dim else None)
        autotune.forget()

        def rate(chunk):
            synthesize(G, lat.index(slice(0, 4)), chunk=chunk or 4)  # the allocator and kernels warm
            t = time.perf_counter()
            synthesize(G, lat, chunk=chunk)
            return a.images / (time.perf_counter() - t)

        # auto runs first (its search is part of its cost), then the fixed sizes and the settled auto
        # in turn, round after round
        row = {"auto_first": rate(0)}
        searched = a.images
        # let the search finish (a job ends inside it when the sizes it still has to try need more images)
        while not (chunk_state() or {}).get("done"):
            if searched > 20 * a.images:
                break
            rate(0)
            searched += a.images
        row["search_images"] = searched
        runs = {label: [] for label in [*(f"chunk_{c}" for c in FIXED), "auto_settled"]}
        for _ in range(a.repeats):
            for label in runs:
                runs[label].append(rate(0 if label == "auto_settled" else int(label.split("_")[1])))
        row.update({label: statistics.median(v) for label, v in runs.items()})
        state = chunk_state()
        best = max((k for k in row if k.startswith("chunk_")), key=row.get)
        row["best_fixed"] = best
        row["auto_settled_vs_best_fixed"] = row["auto_settled"] / row[best]
        row["auto_first_vs_best_fixed"] = row["auto_first"] / row[best]
        row["auto_settled_vs_chunk_16"] = row["auto_settled"] / row["chunk_16"]
        row["auto_picked"] = min(state["times"], key=state["times"].get) if state and state["times"] else None
        row["runs"] = runs
        results[name] = row
        print(name, " ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    record = {"images": a.images, "threads": a.threads, "repeats": a.repeats, "cpu": cpu_model(), "torch": torch.__version__,
              "images_per_s": results, "chosen": {str(k): v for k, v in autotune._CHOSEN.items()}}
    a.out.mkdir(parents=True, exist_ok=True)
    dst = a.out / f"chunk-{time.strftime('%Y%m%d-%H%M%S')}.json"
    dst.write_text(json.dumps(record, indent=2) + "\n")
    print("wrote", dst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
