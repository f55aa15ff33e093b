"""What the noise-to-image recipes (dcgan, stylegan2) share: one labelled image set, G and D with an
EMA copy of G, Adam for each, augmentation before D, FID during training, and the export of the EMA
generator (generator.safetensors, which load_generator reads)."""
from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint, metrics, save_generator
from ..data import BatchOrder, load_dataset
from ..images import save_grid
from . import augment as augment_mod, transfer
from .fid_hook import FIDHook
from .loop import Recipe, hardware
from .losses import AUGMENTS


def one_hot(y: torch.Tensor | None, c_dim: int) -> torch.Tensor | None:
    return F.one_hot(y, c_dim).float() if (c_dim and y is not None) else None


@torch.no_grad()
def recalibrate_bn(G: nn.Module, cfg: dict, batches: int, seed: int, device) -> nn.Module:
    """Re-estimate BatchNorm statistics for these exact weights with a cumulative average over
    class-balanced batches. The copied running stats belong to the raw G, whose weights differ from
    the EMA average; left as they are, eval-mode samples drift in contrast and shape."""
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or batches <= 0:
        return G
    saved = [(m.momentum, m.training) for m in bns]
    gen = torch.Generator().manual_seed(seed)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    n = 256
    for _ in range(batches):
        z = torch.randn(n, cfg["z_dim"], generator=gen).to(device)
        c = one_hot(torch.arange(n) % cfg["c_dim"], cfg["c_dim"]) if cfg["c_dim"] else None
        G(z, None if c is None else c.to(device))
    for m, (mom, tr) in zip(bns, saved):
        m.momentum = mom
        m.train(tr)
    return G


def fixed_grid_inputs(cfg: dict, seed: int, per_row: int = 10):
    """The same z for every sample grid of a run: one row per class (or an 8x8 grid)."""
    gen = torch.Generator().manual_seed(seed + 12345)
    if cfg["c_dim"]:
        z = torch.randn(per_row, cfg["z_dim"], generator=gen).repeat(cfg["c_dim"], 1)
        y = torch.arange(cfg["c_dim"]).repeat_interleave(per_row)
        return z, y, per_row
    return torch.randn(64, cfg["z_dim"], generator=gen), None, 8


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G, written as NVlabs' training loop writes it (p.lerp(p_ema,
    beta)), so that a StyleGAN2 run rounds as theirs does. Buffers are copied, not averaged: w_avg is
    already a running mean, and BatchNorm statistics are re-estimated for the averaged weights at
    export (recalibrate_bn)."""
    for pe, p in zip(G_ema.parameters(), G.parameters()):
        pe.copy_(p.detach().lerp(pe, beta))
    for be, b in zip(G_ema.buffers(), G.buffers()):
        be.copy_(b)


def export_copy(G_ema: nn.Module, cfg: dict, device) -> nn.Module:
    G = copy.deepcopy(G_ema)
    recalibrate_bn(G, cfg, cfg["bn_recal_batches"], cfg["seed"] + 777, device)
    return G.eval().requires_grad_(False)


class GeneratorRecipe(Recipe):
    """A noise-to-image family. Subclasses give make_G, make_D, export_meta, their phases and
    end_step; `record_keys` are the options the export's recipe record adds to the common ones."""
    kind = "generator"
    EXPORTS = ("generator.safetensors",)
    INTERIM = ("best.safetensors",)
    STATE = ("G", "D", "G_ema", "opt_G", "opt_D")
    RNG = (("noise", "noise"), ("data", "order"))
    shape_keys = ("arch", "z_dim", "c_dim", "resolution", "channels", "ngf", "ndf")
    record_keys: tuple[str, ...] = ()

    @staticmethod
    def check_resolution(r: int) -> None:
        """ValueError naming the resolutions the networks can be built at."""

    @classmethod
    def check(cls, cfg: dict) -> None:
        if not cfg.get("data"):
            raise ValueError(f"--arch {cfg['arch']} needs --data: an image folder or (Fashion-)MNIST IDX files")
        cls.check_resolution(cfg["resolution"])
        if cfg["augment"] not in AUGMENTS:
            raise ValueError(f"unknown augment {cfg['augment']!r}; available: {sorted(AUGMENTS)}")

    def make_G(self, cfg: dict) -> nn.Module:
        raise NotImplementedError

    def make_D(self, cfg: dict) -> nn.Module:
        raise NotImplementedError

    def export_meta_arch(self, G: nn.Module, cfg: dict) -> dict:
        raise NotImplementedError

    def load_data(self) -> None:
        tr, tc = self.tr, self.tr.tc
        # the first process to get there decodes into the cache (RUN/data) while the others wait for it
        # (data._building); then they all map the same file: one copy of the pixels per machine
        cache = None if tc.data_cache == "none" else (tc.data_cache or tr.out / "data")
        self.ds = load_dataset(tc.data, tc.resolution, tc.channels, cache_dir=cache, fit=tc.fit)
        if self.ds.skipped:
            print(f"data: skipped {self.ds.skipped} undecodable image file(s)", file=sys.stderr)
        tr.data_facts = dict(c_dim=self.ds.c_dim, class_names=list(self.ds.class_names))

    def build(self) -> None:
        tr, tc, cfg = self.tr, self.tr.tc, self.tr.cfg
        dev = tr.device
        self.G = self.make_G(cfg).to(dev).train()
        self.D = self.make_D(cfg).to(dev).train()
        for path, net, what in ((tc.init, self.G, "generator"), (tc.init_d, self.D, "discriminator")):
            if path:  # a snapshot found by --resume replaces these weights later, as it should
                n = transfer.load_into(net, path, what)
                if tr.is_main:
                    print(f"{what}: {n} tensors from {Path(path).name}", file=sys.stderr)
        tr.dist.broadcast_module(self.G)
        tr.dist.broadcast_module(self.D)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G, self.opt_D = self.make_optimizers(cfg)
        self.order = BatchOrder(len(self.ds), tc.batch, tc.seed)
        # z, fake-label and augmentation draws come from this generator, not the global one, so
        # the data order and the noise cannot perturb each other
        self.noise = torch.Generator().manual_seed(tc.seed + 1)
        self.augment = AUGMENTS[cfg["augment"]]
        if cfg.get("aug"):
            self.augment = augment_mod.build(cfg["aug"], batch=tc.batch, target=cfg["ada_target"],
                                             ada_kimg=cfg["ada_kimg"], reduce=tr.dist.all_reduce_sum)
        self.fid = self._make_fid_hook()
        self._fid_state: dict = {}  # a resumed run's hook state, carried on while FID is off

    def make_optimizers(self, cfg: dict):
        lr, betas = cfg["lr"], cfg["betas"]
        return (torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas),
                torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas))

    def _make_fid_hook(self) -> FIDHook | None:
        tr, tc = self.tr, self.tr.tc
        if tc.fid_every < 0 or not math.isfinite(tc.fid_every):
            raise ValueError(f"--fid-every must be a number of kimg >= 0 (0: off), not {tc.fid_every}")
        if not tc.fid_every:
            return None
        if tc.fid_num_gen < 2:
            raise ValueError(f"--fid-num-gen must be at least 2, not {tc.fid_num_gen}")
        if tc.fid_split not in ("train", "test"):
            raise ValueError(f"--fid-split must be 'train' or 'test', not {tc.fid_split!r}")
        real = Path(tc.fid_data or tc.data)
        if not real.is_dir():
            raise ValueError(f"--fid-data {real}: not found or not a folder")
        if not tr.is_main:  # rank 0 measures; the others only train on
            return None
        # load the network now: a missing Inception should stop the run before training, not at
        # the first measurement hours later
        net = tr.fid_net or metrics.FeatureNet(tc.fid_network or None, device=tr.device)
        return FIDHook(real, tr.out, every_kimg=tc.fid_every, num_gen=tc.fid_num_gen, device=tr.device,
                       split=tc.fid_split, seed=tc.seed, net=net, progress=tc.progress, fit=tc.fit)

    # -- state ----------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"augment": self.augment.state_dict() if hasattr(self.augment, "state_dict") else {},
                "fid": ({**self.fid.state_dict(), "every_kimg": self.fid.every_kimg} if self.fid is not None
                        else self._fid_state)}

    def load_extra_state(self, s: dict) -> None:
        if s.get("augment") and hasattr(self.augment, "load_state_dict"):
            self.augment.load_state_dict(s["augment"])
        self._fid_state = dict(s.get("fid") or {})
        if self.fid is not None and self._fid_state:
            self.fid.load_state_dict(self._fid_state)
            if self._fid_state.get("every_kimg") != self.fid.every_kimg:  # --fid-every changed on resume
                self.fid.schedule_after(self.tr.kimg)
        if self.fid is not None:
            self._adopt_best_file()

    def _adopt_best_file(self) -> None:
        """A crash after a new best was written but before the next snapshot leaves best.safetensors
        better than the snapshot remembers; the file is still the best generator measured, so keep
        it rather than let a worse score from the replayed steps overwrite it."""
        path = self.fid.best_path
        if not path.is_file():
            return
        try:
            _, meta = checkpoint.read(path)
        except checkpoint.CheckpointError as e:
            print(f"FID: ignoring unreadable {path.name} ({e})", file=sys.stderr)
            return
        src = meta.get("source") or {}
        fid = src.get("fid")
        # scores are comparable only against the same real set and sample count; the file keeps
        # 4 decimals, so its copy of the snapshot's own best reads a hair lower
        if (isinstance(fid, (int, float)) and fid < self.fid.best_fid - 1e-4
                and src.get("fid_num_gen") == self.fid.num_gen
                and src.get("fid_real") == str(Path(self.fid.real_source).resolve())):
            self.fid.best_fid, self.fid.best_kimg = float(fid), src.get("fid_kimg")

    # -- outputs --------------------------------------------------------------------------------
    def save_reals(self) -> None:
        self.tr.write_reals("reals.png", self.ds, 100)

    def sample_grid(self, path: Path) -> None:
        cfg, dev = self.tr.cfg, self.tr.device
        z, y, nrow = fixed_grid_inputs(cfg, self.tr.tc.seed)
        G = export_copy(self.G_ema, cfg, dev)
        with torch.no_grad():
            img = G(z.to(dev), one_hot(y, cfg["c_dim"]) if y is not None else None)
        save_grid(img.cpu(), path, nrow=nrow)

    def export_meta(self, G: nn.Module) -> dict:
        tr, tc, cfg = self.tr, self.tr.tc, self.tr.cfg
        cls = cfg["class_names"]
        return {**self.export_meta_arch(G, cfg),
                "output_range": [-1, 1],
                "class_names": cls,
                **({"arch_kwargs": {"ngf": cfg["ngf"]}} if "ngf" in cfg else {}),
                "source": {"type": "train", "command": tc.command, "steps": tr.step,
                           "kimg": round(tr.kimg, 3), "batch": tc.batch, "seed": tc.seed,
                           **({"init": Path(tc.init).name} if tc.init else {}),
                           **({"init_d": Path(tc.init_d).name} if tc.init_d else {}),
                           "data": self.ds.source, "images": len(self.ds),
                           "wall_time_s": tr.wall, "hardware": hardware(),  # unrounded: a short run is not 0.0
                           "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
                                      if k in ("lr", "lr_decay_from", "betas", "ema_beta", "loss", "augment", "ngf",
                                               "ndf", "mbstd_group", "z_dim", *self.record_keys)},
                           # how 28 px IDX data met the resolution; metrics compare with reals fitted so
                           **({"fit": tc.fit} if tc.fit != "resize" else {})},
                "license": tc.license or "unspecified: inherits the training data's license",
                "description": tc.description or
                (f"{tc.arch} trained on {Path(self.ds.source).name}"
                 + (f", class-conditional over {len(cls)} classes" if cls else ""))}

    def export(self) -> Path:
        G = export_copy(self.G_ema, self.tr.cfg, self.tr.device)
        path = self.tr.out / "generator.safetensors"
        save_generator(path, G, self.export_meta(G))
        return path

    def measure_fid(self) -> dict:
        """FID of exactly what export() would write now; a new best goes to RUN/best.safetensors."""
        G = export_copy(self.G_ema, self.tr.cfg, self.tr.device)
        return self.fid(G, self.tr.kimg, self.export_meta(G), force=True)

    def at_step_end(self) -> None:
        if self.fid is not None and self.fid.due(self.tr.kimg):
            from tqdm import tqdm
            r = self.measure_fid()
            tqdm.write(f"kimg {r['kimg']:g}: FID {r['fid']:.3f}, KID {r['kid']:.5f}"
                  + (" (best so far)" if r["best"] else f" (best {self.fid.best_fid:.3f})"), file=sys.stderr)
