"""The training loop: architecture-agnostic, driven by a TrainConfig and a Recipe from nets.py.

Built to grow: the recipe supplies the networks and loss choice, `augment` names a differentiable
augmentation, and the device is a parameter, so StyleGAN2, ADA and torchrun/AMP slot in as a recipe
plus a wrapper around `train_step` rather than a new loop.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint, metrics, save_generator
from ..cli import public_command
from ..images import save_grid
from . import augment as augment_mod, distributed, snapshot, transfer
from ..data import BatchOrder, Dataset, load_dataset
from .fid_hook import FIDHook
from .losses import AUGMENTS, d_loss, g_loss
from .nets import RECIPES


@dataclass
class TrainConfig:
    arch: str = "dcgan"
    data: str = ""
    out: str = ""
    data_cache: str = ""             # folder the decoded images are mapped from; "": RUN/data; "none": in memory
    resolution: int = 28
    channels: int = 1
    fit: str = "resize"              # IDX data: "resize" or "pad" to the resolution (data.load_idx)
    batch: int = 64
    steps: int = 10000
    lr: float | None = None
    lr_decay_from: int | None = None  # step where the learning rate starts its linear fall to 0 at `steps`
    betas: tuple[float, float] | None = None
    seed: int = 0
    sample_every: int = 500
    snapshot_every: int = 1000
    keep_snapshots: int = 2
    resume: bool = False
    restart: bool = False            # discard the run already in `out` (snapshot.Resumable.clear_run)
    init: str = ""                   # generator checkpoint to start from (transfer.py); "": random
    init_d: str = ""                 # discriminator file (convert --discriminator) to start from
    z_dim: int | None = None
    ngf: int | None = None
    ndf: int | None = None
    mbstd_group: int | None = None
    ema_beta: float | None = None
    loss: str | None = None
    augment: str | None = None
    aug: str | None = None           # --aug none|diffaug|ada (augment.py); None: the recipe's `augment`
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    mirror: bool = False             # random x-flips of the reals
    mode_seeking: float = 0.0        # DCGAN: weight of the mode-seeking term (Mao et al. 2019); 0: off
    precision: str = "fp32"          # fp32 | bf16 | fp16 (autocast; fp16 with a GradScaler)
    batch_gpu: int | None = None     # micro-batch per process (gradient accumulation); None: batch / world
    channels_last: bool | None = None  # NHWC activations; None: the recipe's default (stylegan2 on, dcgan off)
    deterministic: bool = False      # torch.use_deterministic_algorithms
    tf32: bool = False               # CUDA: TF32 matmuls and convolutions (off, as in NVlabs' loop)
    log_every: int = 100             # steps between log.jsonl lines
    bn_recal_batches: int = 32   # batches of 256 used to re-estimate G_ema's BatchNorm statistics
    fid_every: float = 0.0           # kimg between FID measurements of the export copy (0: off)
    fid_num_gen: int = 5000
    fid_data: str = ""               # real set for FID; "": the training data
    fid_split: str = "train"         # IDX data: train or t10k images (image folders have no split)
    fid_network: str = ""            # TorchScript feature network; "": the packaged FID Inception
    device: str = "cpu"
    threads: int = 0
    license: str = ""
    description: str = ""
    command: str = ""
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def resolved(self, ds: Dataset) -> dict:
        if self.arch not in RECIPES:
            raise ValueError(f"unknown --arch {self.arch!r}; available: {sorted(RECIPES)}")
        cfg = dict(RECIPES[self.arch].defaults)
        cfg.update({k: v for k, v in asdict(self).items() if v is not None and k != "extra"})
        cfg.update({k: v for k, v in self.extra.items() if v is not None})  # arch-specific options
        cfg.update(c_dim=ds.c_dim, class_names=list(ds.class_names), betas=tuple(cfg["betas"]))
        if cfg["augment"] not in AUGMENTS:
            raise ValueError(f"unknown augment {cfg['augment']!r}; available: {sorted(AUGMENTS)}")
        return cfg


def mode_seeking_penalty(z: torch.Tensor, fake: torch.Tensor, eps: float = 1e-5, reduce=None) -> torch.Tensor:
    """Mode-seeking regularisation (Mao et al., CVPR 2019): pairs (first half, second half of the
    batch, same labels) whose images are close while their z's are far are penalised, which fights
    a conditional generator's collapse to a few prototypes per class. 1 / (ratio + eps) as in MSGAN.
    `reduce` (a gradient-carrying sum over ranks) makes both means those of the global batch."""
    h = z.shape[0] // 2
    dfake, dz = (fake[:h] - fake[h:2 * h]).abs(), (z[:h] - z[h:2 * h]).abs()
    sums = torch.stack([dfake.sum(), dz.sum().to(dfake.dtype),
                        torch.tensor(float(dfake.numel()), dtype=dfake.dtype, device=dfake.device),
                        torch.tensor(float(dz.numel()), dtype=dfake.dtype, device=dfake.device)])
    if reduce is not None:
        sums = reduce(sums)
    ratio = (sums[0] / sums[2]) / (sums[1] / sums[3])
    return 1.0 / (ratio + eps)


def linear_decay(step: int, start: int, end: int) -> float:
    """Learning-rate factor: 1 until `start`, then linearly to 0 at `end` (CycleGAN's schedule)."""
    return max(0.0, 1.0 - max(0, step - start) / max(end - start, 1))


def one_hot(y: torch.Tensor | None, c_dim: int) -> torch.Tensor | None:
    return F.one_hot(y, c_dim).float() if (c_dim and y is not None) else None


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    for pe, p in zip(G_ema.parameters(), G.parameters()):
        pe.lerp_(p, 1.0 - beta)
    # BatchNorm running statistics are not averaged weights: copy them (they are re-estimated for
    # the averaged weights at export, see recalibrate_bn)
    for be, b in zip(G_ema.buffers(), G.buffers()):
        be.copy_(b)


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
        n = cfg["c_dim"] * per_row
        z = torch.randn(per_row, cfg["z_dim"], generator=gen).repeat(cfg["c_dim"], 1)
        y = torch.arange(cfg["c_dim"]).repeat_interleave(per_row)
        return z, y, per_row
    n = 64
    return torch.randn(n, cfg["z_dim"], generator=gen), None, 8


def export_copy(G_ema: nn.Module, cfg: dict, device) -> nn.Module:
    G = copy.deepcopy(G_ema)
    recalibrate_bn(G, cfg, cfg["bn_recal_batches"], cfg["seed"] + 777, device)
    return G.eval().requires_grad_(False)


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    desc = f"{cpu}, {cores} CPU core(s), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


class Trainer(snapshot.Resumable):
    EXPORTS = ("generator.safetensors",)
    INTERIM = ("best.safetensors",)
    SNAPSHOT_KEYS = ("step", "wall", "G", "D", "G_ema", "opt_G", "opt_D", "rng", "config")

    def __init__(self, tc: TrainConfig, fid_net: metrics.FeatureNet | None = None):
        """`fid_net` replaces the FID feature network (tests pass a tiny stand-in)."""
        self.out = Path(tc.out)
        # first, before the data cache or anything else is written into the run folder
        self.check_run_folder(tc.resume, tc.restart)
        if tc.threads:
            torch.set_num_threads(tc.threads)
        if tc.deterministic:
            # cuBLAS is deterministic only with a fixed workspace, set before its first handle; a CUDA
            # op with no deterministic kernel (grid_sample's backward, under ADA) warns, not stops
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.tc = tc
        self.dist = distributed.from_env(tc.device)
        if self.dist.device.type == "cuda":
            # as NVlabs' training loop: cuDNN picks its fastest kernels, and TF32 (10-bit inputs) only
            # when asked for, since it changes what is trained rather than only how fast
            torch.backends.cudnn.benchmark = not tc.deterministic
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tc.tf32
        self.is_main = self.dist.is_main
        # the first process to get there decodes into the cache (RUN/data) while the others wait for it
        # (data._building); then they all map the same file: one copy of the pixels per machine
        cache = None if tc.data_cache == "none" else (tc.data_cache or self.out / "data")
        self.ds = load_dataset(tc.data, tc.resolution, tc.channels, cache_dir=cache, fit=tc.fit)
        if self.ds.skipped:
            print(f"data: skipped {self.ds.skipped} undecodable image file(s)", file=sys.stderr)
        self.cfg = tc.resolved(self.ds)
        self.recipe = RECIPES[tc.arch]
        self.device = self.dist.device
        torch.manual_seed(tc.seed)
        self.G = self.recipe.make_G(self.cfg).to(self.device).train()
        self.D = self.recipe.make_D(self.cfg).to(self.device).train()
        for path, net, what in ((tc.init, self.G, "generator"), (tc.init_d, self.D, "discriminator")):
            if path:  # a snapshot found by --resume replaces these weights later, as it should
                n = transfer.load_into(net, path, what)
                if self.dist.is_main:
                    print(f"{what}: {n} tensors from {Path(path).name}", file=sys.stderr)
        self.dist.broadcast_module(self.G)
        self.dist.broadcast_module(self.D)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        lr, betas = self.cfg["lr"], self.cfg["betas"]
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas)
        self.order = BatchOrder(len(self.ds), tc.batch, tc.seed)
        # z, fake-label and augmentation draws come from this generator, not the global one, so
        # the data order and the noise cannot perturb each other
        self.noise = torch.Generator().manual_seed(tc.seed + 1)
        self.augment = AUGMENTS[self.cfg["augment"]]
        if self.cfg.get("aug"):
            self.augment = augment_mod.build(self.cfg["aug"], batch=tc.batch, target=self.cfg["ada_target"],
                                             ada_kimg=self.cfg["ada_kimg"], reduce=self.dist.all_reduce_sum)
        # a recipe may bring its own step (stylegan2.py: lazy regularisation, AMP, accumulation, ranks)
        make_step = getattr(self.recipe, "make_step", None)
        self.stepper = make_step(self) if make_step is not None else None
        if self.stepper is None:
            if tc.batch % self.dist.world:
                raise ValueError(f"--batch {tc.batch} does not split over {self.dist.world} processes")
            # the generator's BatchNorm normalises over the global batch, as in one process
            distributed.cross_rank_batchnorm(self.G, self.dist)
            if self.cfg["precision"] not in ("fp32", "bf16"):
                raise ValueError(f"--arch {tc.arch} supports --precision fp32 or bf16, not "
                                 f"{self.cfg['precision']!r}")
            if self.cfg["channels_last"]:
                self.G.to(memory_format=torch.channels_last)
                self.D.to(memory_format=torch.channels_last)
        self.step = 0
        self.wall = 0.0
        self.fid = self._make_fid_hook(fid_net)
        self._fid_state: dict = {}  # a resumed run's hook state, carried on while FID is off

    def _make_fid_hook(self, net: metrics.FeatureNet | None) -> FIDHook | None:
        tc = self.tc
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
        if not self.is_main:  # rank 0 measures; the others only train on
            return None
        # load the network now: a missing Inception should stop the run before training, not at
        # the first measurement hours later
        net = net or metrics.FeatureNet(tc.fid_network or None, device=self.device)
        return FIDHook(real, self.out, every_kimg=tc.fid_every, num_gen=tc.fid_num_gen, device=self.device,
                       split=tc.fid_split, seed=tc.seed, net=net, progress=tc.progress)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"step": self.step, "wall": self.wall, "G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.G_ema.state_dict(), "opt_G": self.opt_G.state_dict(),
                "opt_D": self.opt_D.state_dict(),
                "rng": {**snapshot.rng_state(), "noise": self.noise.get_state(),
                        "data": self.order.state_dict()},
                "augment": self.augment.state_dict() if hasattr(self.augment, "state_dict") else {},
                "stepper": self.stepper.state_dict() if self.stepper is not None else {},
                "fid": ({**self.fid.state_dict(), "every_kimg": self.fid.every_kimg} if self.fid is not None
                        else self._fid_state),
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.cfg.items()
                           if isinstance(v, (int, float, str, bool, list, tuple))}}

    def load_state_dict(self, s: dict) -> None:
        for key in ("arch", "z_dim", "c_dim", "resolution", "channels", "ngf", "ndf",
                    *getattr(self.recipe, "shape_keys", ())):
            if key in s["config"] and s["config"][key] != self.cfg[key]:
                raise ValueError(f"--resume: the snapshot was trained with {key}={s['config'][key]!r}, "
                                 f"this run asks for {self.cfg[key]!r}")
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.G_ema.load_state_dict(s["G_ema"])
        self.opt_G.load_state_dict(s["opt_G"])
        self.opt_D.load_state_dict(s["opt_D"])
        snapshot.set_rng_state(s["rng"])
        self.noise.set_state(s["rng"]["noise"])
        self.order.load_state_dict(s["rng"]["data"])
        self.step, self.wall = int(s["step"]), float(s["wall"])
        if s.get("augment") and hasattr(self.augment, "load_state_dict"):
            self.augment.load_state_dict(s["augment"])
        if self.stepper is not None and s.get("stepper"):
            self.stepper.load_state_dict(s["stepper"])
        self._fid_state = dict(s.get("fid") or {})
        if self.fid is not None and self._fid_state:
            self.fid.load_state_dict(self._fid_state)
            if self._fid_state.get("every_kimg") != self.fid.every_kimg:  # --fid-every changed on resume
                self.fid.schedule_after(self.kimg)
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

    # -- one step -------------------------------------------------------------------------------
    def _set_lr(self) -> None:
        # From each group's initial_lr (kept in the optimizer state, so a snapshot written before
        # the decay began, or by a run without one, resumes onto the schedule this run asks for).
        start = self.tc.lr_decay_from
        if start is None:
            return
        f = linear_decay(self.step, start, self.tc.steps)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * f

    def train_step(self) -> dict:
        self._set_lr()
        if self.stepper is not None:
            stats = self.stepper()
            self.step += 1
            return stats
        with (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.cfg["precision"] == "bf16"
              else contextlib.nullcontext()):
            return self._dcgan_step()

    def _dcgan_step(self) -> dict:
        cfg, dev, c_dim, dist = self.cfg, self.device, self.cfg["c_dim"], self.dist
        # every rank draws the whole batch's data and noise and keeps its rows (distributed.py), so
        # the run is the same on any number of ranks; losses are scaled to the global mean
        B, mine = self.tc.batch, dist.shard()
        share = 1.0 / dist.world
        x, y = self.ds.batch(self.order.next()[mine])
        x = x.to(dev)
        y = y.to(dev) if y is not None else None

        # D: real vs fake, fakes asked for the real batch's labels (so both sides share one class mix)
        z = torch.randn(B, cfg["z_dim"], generator=self.noise)[mine].to(dev)
        with torch.no_grad():
            fake = self.G(z, one_hot(y, c_dim))
        real_logits = self.D(self.augment(x, gen=self.noise, total=B, offset=mine), y)
        fake_logits = self.D(self.augment(fake, gen=self.noise, total=B, offset=mine), y)
        loss_d = d_loss(cfg["loss"], real_logits, fake_logits)
        if hasattr(self.augment, "observe"):  # ADA's overfitting heuristic reads D(real)
            self.augment.observe(real_logits)
        self.opt_D.zero_grad(set_to_none=True)
        (loss_d * share).backward()
        dist.sync_grads(self.D.parameters(), nan_to_num=False)  # no-op in one process
        self.opt_D.step()

        # G: fresh z, uniform labels so rare classes get as many G updates as common ones
        z = torch.randn(B, cfg["z_dim"], generator=self.noise)[mine].to(dev)
        ms = cfg.get("mode_seeking", 0.0)
        if ms and c_dim:
            # mode seeking pairs two z's under one label, so each label is drawn once per pair
            yg = torch.randint(0, c_dim, (B // 2,), generator=self.noise).repeat(2)
            if B % 2:
                yg = torch.cat([yg, yg[:1]])
            yg = yg[mine].to(dev)
        else:
            yg = torch.randint(0, c_dim, (B,), generator=self.noise)[mine].to(dev) if c_dim else None
        fake = self.G(z, one_hot(yg, c_dim))
        self.D.requires_grad_(False)
        loss_g = g_loss(cfg["loss"], self.D(self.augment(fake, gen=self.noise, total=B, offset=mine), yg))
        total_g = loss_g * share
        if ms:
            # the penalty is already a global-batch value on every rank; its gradient is summed back
            ms_term = ms * mode_seeking_penalty(z, fake, reduce=dist.all_reduce_sum_grad)
            loss_g = loss_g + ms_term
            total_g = total_g + ms_term * share
        self.opt_G.zero_grad(set_to_none=True)
        total_g.backward()
        dist.sync_grads(self.G.parameters(), nan_to_num=False)  # no-op in one process
        self.opt_G.step()
        self.D.requires_grad_(True)

        # EMA warm-up: early weights move fast, a fixed 0.999 would average in the random init
        beta = min(cfg["ema_beta"], (1 + self.step) / (10 + self.step))
        ema_update(self.G_ema, self.G, beta)
        if hasattr(self.augment, "step"):
            self.augment.step()
        self.step += 1
        stats = torch.stack([loss_d.detach(), loss_g.detach(), real_logits.detach().mean(),
                             fake_logits.detach().mean()]).double().cpu()
        stats = dist.all_reduce_sum(stats) / dist.world  # equal shards: the mean of rank means
        return dict(zip(("loss_d", "loss_g", "d_real", "d_fake"), stats.tolist()))

    @property
    def kimg(self) -> float:
        return self.step * self.tc.batch / 1000

    # -- outputs --------------------------------------------------------------------------------
    def sample_grid(self, path: Path) -> None:
        z, y, nrow = fixed_grid_inputs(self.cfg, self.tc.seed)
        G = export_copy(self.G_ema, self.cfg, self.device)
        with torch.no_grad():
            img = G(z.to(self.device), one_hot(y, self.cfg["c_dim"]) if y is not None else None)
        save_grid(img.cpu(), path, nrow=nrow)

    def export_meta(self, G: nn.Module) -> dict:
        kimg = self.kimg
        cls = self.cfg["class_names"]
        return {**self.recipe.export_meta(G, self.cfg),
                "output_range": [-1, 1],
                "class_names": cls,
                **({"arch_kwargs": {"ngf": self.cfg["ngf"]}} if "ngf" in self.cfg else {}),
                "source": {"type": "train", "command": self.tc.command, "steps": self.step,
                           "kimg": round(kimg, 3), "batch": self.tc.batch, "seed": self.tc.seed,
                           **({"init": Path(self.tc.init).name} if self.tc.init else {}),
                           **({"init_d": Path(self.tc.init_d).name} if self.tc.init_d else {}),
                           "data": self.ds.source, "images": len(self.ds),
                           "wall_time_s": self.wall, "hardware": hardware(),  # unrounded: a short run is not 0.0
                           "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.cfg.items()
                                      if k in ("lr", "lr_decay_from", "betas", "ema_beta", "loss", "augment", "ngf", "ndf",
                                               "mbstd_group", "z_dim", *getattr(self.recipe, "record_keys", ()))}},
                "license": self.tc.license or "unspecified: inherits the training data's license",
                "description": self.tc.description or
                (f"{self.tc.arch} trained on {Path(self.ds.source).name}"
                 + (f", class-conditional over {len(cls)} classes" if cls else ""))}

    def export(self) -> Path:
        G = export_copy(self.G_ema, self.cfg, self.device)
        path = self.out / "generator.safetensors"
        save_generator(path, G, self.export_meta(G))
        return path

    def measure_fid(self) -> dict:
        """FID of exactly what export() would write now; a new best goes to RUN/best.safetensors."""
        G = export_copy(self.G_ema, self.cfg, self.device)
        return self.fid(G, self.kimg, self.export_meta(G), force=True)

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> Path:
        tc = self.tc
        self.out.mkdir(parents=True, exist_ok=True)
        if tc.restart and self.is_main:
            gone = self.clear_run()
            print(f"--restart: removed {len(gone)} file(s) of the previous run in {self.out}; starting at step 0",
                  file=sys.stderr)
        if tc.resume and self.try_resume():
            print(f"resumed from {self.resumed_from.name} at step {self.step}", file=sys.stderr)
        elif tc.resume:
            print(f"--resume: no snapshot in {self.out / 'snapshots'}; starting at step 0", file=sys.stderr)
        # the step whose snapshot this run has on disk: not the newest file's name, which may be a
        # damaged snapshot the resume passed over
        saved = self.step if self.resumed_from is not None else None
        if self.step == 0 and self.is_main:
            x, y = self.ds.batch(torch.arange(min(len(self.ds), 100)))
            save_grid(x, self.out / "reals.png", nrow=10)
        log = open(self.out / "log.jsonl", "a") if self.is_main else None
        bar = None
        if tc.progress and self.is_main:
            from tqdm import tqdm
            bar = tqdm(total=tc.steps, initial=self.step, unit="step", dynamic_ncols=True, file=sys.stderr)
        try:
            while self.step < tc.steps:
                t0 = time.perf_counter()
                stats = self.train_step()
                dt = time.perf_counter() - t0
                if bar is not None:
                    bar.update(1)
                    if self.step % 10 == 0:
                        post = dict(kimg=f"{self.step * tc.batch / 1000:.2f}",
                                    s_kimg=f"{dt * 1000 / tc.batch:.1f}",
                                    d=f"{stats['loss_d']:.3f}", g=f"{stats['loss_g']:.3f}")
                        if "aug_p" in stats:
                            post["p"] = f"{stats['aug_p']:.3f}"
                        bar.set_postfix(post)
                if not math.isfinite(stats["loss_d"]) or not math.isfinite(stats["loss_g"]):
                    raise FloatingPointError(f"step {self.step}: loss is not finite ({stats}); "
                                             f"resume from the last snapshot with a lower --lr")
                if log is not None and tc.log_every and self.step % tc.log_every == 0:
                    log.write(json.dumps({"step": self.step, "kimg": self.step * tc.batch / 1000,
                                          "wall": round(self.wall, 1), "s_per_kimg": round(dt * 1000 / tc.batch, 4),
                                          **stats}) + "\n")
                    log.flush()
                if self.is_main and tc.sample_every and self.step % tc.sample_every == 0:
                    self.sample_grid(self.out / "samples" / f"grid-{self.step:08d}.png")
                # before the snapshot of this step, so a resume neither repeats nor skips it
                if self.fid is not None and self.fid.due(self.kimg):
                    r = self.measure_fid()
                    msg = (f"kimg {r['kimg']:g}: FID {r['fid']:.3f}, KID {r['kid']:.5f}"
                           + (" (best so far)" if r["best"] else f" (best {self.fid.best_fid:.3f})"))
                    if bar is not None:
                        bar.write(msg, file=sys.stderr)
                    else:
                        print(msg, file=sys.stderr)
                self.wall += time.perf_counter() - t0  # sampling included: the cost of the run as run
                if self.is_main and tc.snapshot_every and self.step % tc.snapshot_every == 0:
                    snapshot.save(self.out, self.step, self.state_dict(), tc.keep_snapshots)
                    saved = self.step
        finally:
            if log is not None:
                log.close()
            if bar is not None:
                bar.close()
        if not self.is_main:  # rank 0 writes the last snapshot, the grid and the export
            self.dist.barrier()
            return self.out / "generator.safetensors"
        if saved != self.step:
            snapshot.save(self.out, self.step, self.state_dict(), tc.keep_snapshots)
        self.sample_grid(self.out / "samples" / f"grid-{self.step:08d}.png")
        path = self.export()
        self.dist.barrier()
        return path


def command_line() -> str:
    return public_command(["python", "-m", "gan_models.train"], sys.argv[1:])
