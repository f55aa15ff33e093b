"""Images/s of Generate Image (GAN)'s synthesis at fixed chunk sizes against chunk 0 (auto: memory bound,
then sizes timed on the job's own first images), side by side in one process, for the shipped
generators. The ratio auto / best fixed size is what matters: auto must find the best size on
whatever machine it runs on.

    python bench/bench_chunk.py [--images 512] [--threads 1] [--out bench/results]
"""
from __future__ import annotations

import argparse
import json
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
FIXED = (4, 16, 64, 256)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    results = {}
    for name in MODELS:
        G = load_generator(ROOT / "weights" / name)
        lat = L.sample(G, list(range(a.images)), "random" if G.c_dim else None)
        autotune.forget()
        row = {}
        # auto runs first (its search is part of its cost) and again once it has settled
        for label, chunk in [("auto_first", 0), *[(f"chunk_{c}", c) for c in FIXED], ("auto_settled", 0)]:
            synthesize(G, lat.index(slice(0, 4)), chunk=chunk or 4)  # the allocator and kernels warm
            t = time.perf_counter()
            synthesize(G, lat, chunk=chunk)
            row[label] = a.images / (time.perf_counter() - t)
        best = max((k for k in row if k.startswith("chunk_")), key=row.get)
        row["best_fixed"] = best
        row["auto_settled_vs_best_fixed"] = row["auto_settled"] / row[best]
        row["auto_first_vs_best_fixed"] = row["auto_first"] / row[best]
        row["auto_settled_vs_chunk_16"] = row["auto_settled"] / row["chunk_16"]
        results[name] = row
        print(name, " ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    record = {"images": a.images, "threads": a.threads, "cpu": cpu_model(), "torch": torch.__version__,
              "images_per_s": results, "chosen": {str(k): v for k, v in autotune._CHOSEN.items()}}
    a.out.mkdir(parents=True, exist_ok=True)
    dst = a.out / f"chunk-{time.strftime('%Y%m%d-%H%M%S')}.json"
    dst.write_text(json.dumps(record, indent=2) + "\n")
    print("wrote", dst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
