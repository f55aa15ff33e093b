"""Draw a training run's curves from its JSON-lines log.

    python scripts/plot_training.py RUN_DIR/log.jsonl OUT.png [--metrics RUN_DIR/metrics.jsonl] [--smooth 20]

Panels: D and G losses against kimg (raw, faint, and a running mean); the regularisers (R1, path
length) when logged; ADA's augmentation probability p and r_t when p moves; FID when the log
rows carry `fid` or a metrics.jsonl (FIDHook's) lies beside the log. A resumed run repeats the
steps after its snapshot; the last line for a step is the one kept. Needs matplotlib.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill: the rest of the log is still good
            print(f"{path}:{n}: skipped an unreadable line", file=sys.stderr)
    return rows


def by_step(rows: list[dict]) -> list[dict]:
    last = {}
    for r in rows:
        if "step" in r:
            last[r["step"]] = r
    return [last[k] for k in sorted(last)]


def running_mean(v: list[float], k: int) -> list[float]:
    out, acc = [], []
    for x in v:
        acc.append(x)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def series(rows, key):
    pts = [(r["kimg"], r[key]) for r in rows if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot(log: Path, out: Path, metrics: Path | None = None, smooth: int = 20, title: str | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = by_step(read_jsonl(log))
    if not rows:
        raise SystemExit(f"{log}: no log rows with a 'step'")
    fid = series(rows, "fid")
    if metrics is None and (log.parent / "metrics.jsonl").is_file():
        metrics = log.parent / "metrics.jsonl"
    if metrics is not None and not fid[0]:
        m = [r for r in read_jsonl(metrics) if "fid" in r]
        fid = ([r["kimg"] for r in m], [r["fid"] for r in m])
    has_reg = any(k in r for r in rows for k in ("r1", "pl"))
    # DiffAugment logs p = 1 throughout: a flat line says nothing the command does not, so only a p that
    # moves (ADA) or ADA's r_t earns the panel
    has_aug = len(set(series(rows, "aug_p")[1])) > 1 or any("ada_rt" in r for r in rows)
    panels = ["loss"] + (["reg"] if has_reg else []) + (["aug"] if has_aug else []) + (["fid"] if fid[0] else [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels) + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, panel in zip(axes, panels):
        if panel == "loss":
            for key, colour in (("loss_d", "tab:blue"), ("loss_g", "tab:orange")):
                x, y = series(rows, key)
                ax.plot(x, y, color=colour, alpha=0.25, linewidth=0.8)
                ax.plot(x, running_mean(y, smooth), color=colour, label=key.replace("loss_", "") + " loss")
            ax.set_ylabel("loss")
        elif panel == "reg":
            for key, colour, label in (("r1", "tab:green", "R1 penalty"), ("pl", "tab:purple", "path-length penalty")):
                x, y = series(rows, key)
                if x:
                    ax.plot(x, running_mean(y, max(1, smooth // 4)), color=colour, label=label)
            ax.set_ylabel("penalty")
            ax.set_yscale("log")
        elif panel == "aug":
            x, y = series(rows, "aug_p")
            ax.plot(x, y, color="tab:red", label="augmentation p")
            x, y = series(rows, "ada_rt")
            if x:
                ax.plot(x, y, color="tab:gray", linewidth=0.8, label="ADA r_t = E[sign D(real)]")
            ax.set_ylabel("p / r_t")
        elif panel == "fid":
            ax.plot(fid[0], fid[1], "o-", color="black", label="FID")
            ax.set_ylabel("FID")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("kimg (thousands of real images shown)")
    fig.suptitle(title or f"{log.parent.name}: {rows[-1]['step']} steps, {rows[-1]['kimg']:.1f} kimg", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("log", type=Path, help="the run's log.jsonl")
    p.add_argument("out", type=Path, help="image to write (.png)")
    p.add_argument("--metrics", type=Path, help="FID log (default: metrics.jsonl beside the log, if any)")
    p.add_argument("--smooth", type=int, default=20, help="running-mean window in log rows (default 20)")
    p.add_argument("--title")
    a = p.parse_args(argv)
    if not a.log.is_file():
        p.error(f"{a.log}: not found")
    print(plot(a.log, a.out, a.metrics, a.smooth, a.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
