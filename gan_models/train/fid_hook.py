"""FID during training: measure every N kimg and keep the generator with the best score.

A training loop calls the hook after each step with the export copy of its generator; the hook
returns None until a measurement is due. Real features are computed once (from the disk cache when
the real source is a path) and reused for every later measurement.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .. import metrics, save_generator

_EPS = 1e-6  # relative tolerance of the schedule, far below one step of any real batch


class FIDHook:
    def __init__(self, real_source, out_dir, every_kimg: float = 50.0, num_gen: int = 5000, batch: int = 64,
                 device="cpu", *, split: str = "test", num_real: int | None = None, kid_subsets: int = 50,
                 seed: int = 0, cache_dir=None, net: metrics.FeatureNet | None = None,
                 best_name: str = "best.safetensors", progress: bool = False, fit: str = "resize"):
        if every_kimg <= 0:
            raise ValueError(f"every_kimg must be positive, not {every_kimg}")
        self.real_source, self.out = real_source, Path(out_dir)
        self.every_kimg, self.num_gen, self.batch, self.device = float(every_kimg), num_gen, batch, device
        self.split, self.num_real, self.kid_subsets, self.seed = split, num_real, kid_subsets, seed
        self.cache_dir, self.net, self.best_name, self.progress = cache_dir, net, best_name, progress
        self.fit = fit  # IDX reals: resized or padded to the model's size, as its training data was
        self.real: metrics.RealFeatures | None = None
        self.next_kimg = self.every_kimg
        self.best_fid = math.inf
        self.best_kimg: float | None = None

    @property
    def best_path(self) -> Path:
        return self.out / self.best_name

    def due(self, kimg: float) -> bool:
        # kimg = step * batch / 1000 and multiples of a decimal interval are both rounded binary
        # fractions: 30 * 8 / 1000 < 3 * 0.08, so an exact comparison would slip a step late
        return kimg >= self.next_kimg - _EPS * self.every_kimg

    def __call__(self, G, kimg: float, meta: dict | None = None, force: bool = False) -> dict | None:
        """Measure G if a measurement is due at `kimg` (or `force`); returns the result, else None.
        `meta` is the checkpoint description to save with a new best generator."""
        if not force and not self.due(kimg):
            return None
        if self.net is None:
            self.net = metrics.FeatureNet(device=self.device)
        if self.real is None:
            self.real = metrics.real_features(
                self.real_source, self.net, resolution=int(G.img_resolution),
                channels=1 if int(G.img_channels) == 1 else 3, split=self.split, num_real=self.num_real,
                seed=self.seed, cache_dir=self.cache_dir, batch=self.batch, progress=self.progress,
                fit=self.fit)
        was_training = G.training
        G.eval()
        try:
            # one seed for every measurement: scores then differ by the generator, not by the noise
            res = metrics.compute_fid_kid(G, self.real, self.num_gen, self.batch, self.device, net=self.net,
                                          kid_subsets=self.kid_subsets, seed=self.seed, progress=self.progress)
        finally:
            G.train(was_training)
        res = {"kimg": round(float(kimg), 3), **res}
        res["best"] = res["fid"] < self.best_fid
        if res["best"]:
            self.best_fid, self.best_kimg = res["fid"], float(kimg)
            meta = dict(meta or {})
            meta["source"] = {**meta.get("source", {}), "fid": round(res["fid"], 4), "fid_kimg": res["kimg"],
                              "fid_num_gen": self.num_gen, "fid_real": res["real"].get("source"),
                              "fid_real_count": res["num_real"]}
            save_generator(self.best_path, G, meta)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({k: res[k] for k in ("kimg", "fid", "kid", "kid_std", "num_gen", "num_real",
                                                     "seconds", "best")}) + "\n")
        self.schedule_after(kimg)
        return res

    def schedule_after(self, kimg: float) -> None:
        """The next measurement at the first multiple of every_kimg past `kimg`."""
        self.next_kimg = (math.floor(float(kimg) / self.every_kimg + _EPS) + 1) * self.every_kimg

    # kept in the training snapshot so a resumed run neither re-measures nor forgets its best
    def state_dict(self) -> dict:
        return {"next_kimg": self.next_kimg, "best_fid": self.best_fid, "best_kimg": self.best_kimg}

    def load_state_dict(self, s: dict) -> None:
        self.next_kimg = float(s["next_kimg"])
        self.best_fid = float(s["best_fid"])
        self.best_kimg = s.get("best_kimg")
