"""The training loop: one Trainer for every family, each family a Recipe.

A recipe (dcgan.py, stylegan2.py, cyclegan.py) declares its options and their defaults, builds its
networks and optimizers, names what its snapshot holds, and splits a training step into phases as
NVlabs' loop does (G main, G reg, D main, D reg, each with the interval it runs at). The Trainer owns
the rest, the same for every family: the run folder, seeding, snapshots and resume, the log and the
progress bar, sample grids and exports on schedule, FID during training, torchrun ranks.

Adding a family: one module with a Recipe subclass, registered with `@register`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..cli import public_command
from ..images import save_grid
from . import distributed, snapshot


@dataclass
class TrainConfig:
    """Every option of `python -m gan_models.train`, under the option's name. None: the recipe's
    default (Recipe.defaults), then the loop's (DEFAULTS); an option no recipe of the run reads stays
    None and out of the run's record."""
    arch: str = "dcgan"
    data: str = ""                   # image folder or IDX files (noise-to-image families)
    data_a: str | None = None        # image-to-image families: the two domains (or aligned pairs)
    data_b: str | None = None
    out: str = ""
    data_cache: str = ""             # folder the decoded images are mapped from; "": RUN/data; "none": in memory
    resolution: int | None = None
    channels: int | None = None
    fit: str = "resize"              # IDX data: "resize" or "pad" to the resolution (data.load_idx)
    batch: int | None = None
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
    bn_recal_batches: int = 32       # batches of 256 used to re-estimate G_ema's BatchNorm statistics
    fid_every: float = 0.0           # kimg between FID measurements of the export copy (0: off)
    fid_num_gen: int = 5000
    fid_data: str = ""               # real set for FID; "": the training data
    fid_split: str = "train"         # IDX data: train or t10k images (image folders have no split)
    fid_network: str = ""            # TorchScript feature network; "": the packaged FID Inception
    # stylegan2
    w_dim: int | None = None
    map_layers: int | None = None
    cbase: int | None = None
    cmax: int | None = None
    r1_gamma: float | None = None
    r1_interval: int | None = None
    pl_weight: float | None = None
    pl_interval: int | None = None
    style_mixing: float | None = None
    ema_kimg: float | None = None
    ema_rampup: float | None = None
    # cyclegan and pix2pix
    name_a: str | None = None
    name_b: str | None = None
    n_blocks: int | None = None
    norm: str | None = None
    n_layers_d: int | None = None
    lambda_cycle: float | None = None
    lambda_identity: float | None = None
    lambda_l1: float | None = None
    dropout: bool | None = None
    pool_size: int | None = None
    flip: bool | None = None
    export_dtype: str | None = None
    device: str = "cpu"
    threads: int = 0
    license: str = ""
    description: str = ""
    command: str = ""
    progress: bool | None = None
    extra: dict = field(default_factory=dict)  # overrides by name (tests, scripts)


# what a run gets where neither the command line nor the recipe says
DEFAULTS = dict(resolution=28, channels=1, batch=64, progress=True)


@dataclass
class Phase:
    """One part of a training step: `run(ctx)` every `interval` steps (NVlabs' phases: the lazy
    regularisers run every 4 or 16 steps, weighted by the interval they stand for)."""
    name: str
    run: Callable[[dict], None]
    interval: int = 1

    def due(self, step: int) -> bool:
        return self.interval > 0 and step % self.interval == 0


RECIPES: dict[str, type[Recipe]] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    RECIPES[cls.name] = cls
    return cls


class Recipe:
    """A family's part of training. The class declares; an instance, made by the Trainer for one run,
    holds the family's networks, optimizers and state (which read as the trainer's: trainer.G)."""
    name = ""
    kind = "generator"                 # generator (run() returns its path) or translator (a list of paths)
    defaults: dict = {}
    EXPORTS: tuple[str, ...] = ()      # what a finished run leaves in its folder
    INTERIM: tuple[str, ...] = ()      # models written during a run (best.safetensors)
    STATE: tuple[str, ...] = ()        # attributes whose state_dict() the snapshot holds under that name
    RNG: tuple[str, ...] = ()          # attributes (torch.Generator or BatchOrder) saved under snapshot["rng"]
    shape_keys: tuple[str, ...] = ()   # config entries that fix tensor shapes: a resume must match them
    config_keys: tuple[str, ...] | None = None  # entries the snapshot records (None: all)
    distributed = True                 # runs under torchrun
    log_means = False                  # log rows: means since the last row (True) or the step's values
    log_digits: int | None = None      # rounding of logged values
    log_kimg = True                    # rows and the progress bar count kimg

    @staticmethod
    def add_options(group) -> None:
        """The family's own options, into its argparse group (dest = a TrainConfig field)."""

    @classmethod
    def check(cls, cfg: dict) -> None:
        """Options checked against each other; ValueError names the option. Runs before any data is read."""

    @classmethod
    def derive(cls, cfg: dict) -> None:
        """Defaults that follow from other options (NVlabs' R1 weight from the resolution and batch)."""

    def __init__(self, tr: Trainer):
        self.tr = tr

    def load_data(self) -> None:
        raise NotImplementedError

    def build(self) -> None:
        """Networks and optimizers, from the global RNG the Trainer has just seeded."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def begin_step(self) -> dict:
        return {}

    def end_step(self, ctx: dict) -> dict:
        """After the phases: EMA, schedules. Returns the step's statistics (floats)."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, s: dict) -> None:
        pass

    def save_reals(self) -> None:
        pass

    def sample_grid(self, path: Path) -> None:
        raise NotImplementedError

    def export(self) -> Path | list[Path]:
        """The generator's path, or the translators' paths."""
        raise NotImplementedError

    def at_step_end(self) -> None:
        """After logging and sampling, before the snapshot (FID during training)."""


def linear_decay(step: int, start: int, end: int) -> float:
    """Learning-rate factor: 1 until `start`, then linearly to 0 at `end` (CycleGAN's schedule)."""
    return max(0.0, 1.0 - max(0, step - start) / max(end - start, 1))


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


def resolve(tc: TrainConfig) -> TrainConfig:
    """tc with every None the recipe or the loop gives a default filled in."""
    if tc.arch not in RECIPES:
        raise ValueError(f"unknown --arch {tc.arch!r}; available: {sorted(RECIPES)}")
    recipe = RECIPES[tc.arch]
    fill = {k: v for k, v in {**DEFAULTS, **recipe.defaults}.items()
            if k in _FIELDS and getattr(tc, k) is None}
    fill.update({k: v for k, v in tc.extra.items() if k in _FIELDS and v is not None})
    return dataclasses.replace(tc, **fill)


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"extra"}


class Trainer(snapshot.Resumable):
    def __init__(self, tc: TrainConfig, fid_net=None):
        """`fid_net` replaces the FID feature network (tests pass a tiny stand-in)."""
        tc = resolve(tc)
        cls = RECIPES[tc.arch]
        self.EXPORTS, self.INTERIM = cls.EXPORTS, cls.INTERIM
        self.SNAPSHOT_KEYS = ("step", "wall", "rng", "config", *cls.STATE)
        self.out = Path(tc.out)
        self.tc = tc
        cls.check(self._config())
        # first, before the data cache or anything else is written into the run folder
        self.check_run_folder(tc.resume, tc.restart)
        world = distributed.launched_world()
        if world > 1 and not cls.distributed:  # each rank would train the whole run into the same --out
            raise ValueError(f"--arch {tc.arch} trains in one process, and torchrun started {world}: run it "
                             f"as python -m gan_models.train (with --device cuda for a GPU)")
        if tc.threads:
            torch.set_num_threads(tc.threads)
        if tc.deterministic:
            # cuBLAS is deterministic only with a fixed workspace, set before its first handle; a CUDA
            # op with no deterministic kernel (grid_sample's backward, under ADA) warns, not stops
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.dist = distributed.from_env(tc.device)
        if self.dist.device.type == "cuda":
            # as NVlabs' training loop: cuDNN picks its fastest kernels, and TF32 (10-bit inputs) only
            # when asked for, since it changes what is trained rather than only how fast
            torch.backends.cudnn.benchmark = not tc.deterministic
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tc.tf32
        self.is_main = self.dist.is_main
        self.device = self.dist.device
        self.fid_net = fid_net
        self.recipe = cls(self)
        self.recipe.load_data()
        self.cfg = self._config()
        torch.manual_seed(tc.seed)
        self.recipe.build()
        self.step = 0
        self.wall = 0.0

    def __getattr__(self, name: str):
        # the family's networks, optimizers and data read as the trainer's own (trainer.G, trainer.ds)
        recipe = self.__dict__.get("recipe")
        if recipe is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(recipe, name)

    def _config(self) -> dict:
        """The run's options as a dict: what the recipe builds from, and the snapshot records."""
        recipe = RECIPES[self.tc.arch]
        cfg = {k: None for k in recipe.defaults}  # a default of None (derived later) is still a known key
        cfg.update({k: v for k, v in dataclasses.asdict(self.tc).items() if v is not None and k != "extra"})
        cfg.update(self.__dict__.get("data_facts", {}))
        if cfg.get("betas") is not None:
            cfg["betas"] = tuple(cfg["betas"])
        recipe.derive(cfg)
        return cfg

    @property
    def kimg(self) -> float:
        return self.step * self.tc.batch / 1000

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        r = self.recipe
        keys = r.config_keys
        return {"step": self.step, "wall": self.wall,
                **{name: getattr(r, name).state_dict() for name in r.STATE},
                "rng": {**snapshot.rng_state(), **{name: getattr(r, attr).get_state() if
                                                   isinstance(getattr(r, attr), torch.Generator)
                                                   else getattr(r, attr).state_dict()
                                                   for name, attr in r.RNG}},
                **r.extra_state(),
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.cfg.items()
                           if isinstance(v, (int, float, str, bool, list, tuple))
                           and (keys is None or k in keys)}}

    def load_state_dict(self, s: dict) -> None:
        r = self.recipe
        for key in r.shape_keys:
            if key in s["config"] and s["config"][key] != self.cfg.get(key):
                raise ValueError(f"--resume: the snapshot was trained with {key}={s['config'][key]!r}, "
                                 f"this run asks for {self.cfg.get(key)!r}")
        for name in r.STATE:
            getattr(r, name).load_state_dict(s[name])
        snapshot.set_rng_state(s["rng"])
        for name, attr in r.RNG:
            obj = getattr(r, attr)
            if isinstance(obj, torch.Generator):
                obj.set_state(s["rng"][name])
            else:
                obj.load_state_dict(s["rng"][name])
        self.step, self.wall = int(s["step"]), float(s["wall"])
        r.load_extra_state(s)

    # -- the loop -------------------------------------------------------------------------------
    def train_step(self) -> dict:
        r = self.recipe
        ctx = r.begin_step()
        due = [ph for ph in r.phases() if ph.due(self.step)]
        ctx["due"] = {ph.name for ph in due}  # a phase may act on another's being due (G main and G reg share a step)
        for ph in due:
            ph.run(ctx)
        stats = r.end_step(ctx)
        self.step += 1
        return stats

    def run(self) -> Path | list[Path]:
        tc, r = self.tc, self.recipe
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
            r.save_reals()
        log = open(self.out / "log.jsonl", "a") if self.is_main else None
        bar = None
        if tc.progress and self.is_main:
            from tqdm import tqdm
            bar = tqdm(total=tc.steps, initial=self.step, unit="step", dynamic_ncols=True, file=sys.stderr)
        sums, count, t_log = {}, 0, time.perf_counter()
        try:
            while self.step < tc.steps:
                t0 = time.perf_counter()
                stats = self.train_step()
                dt = time.perf_counter() - t0
                if not all(math.isfinite(v) for v in stats.values()):
                    raise FloatingPointError(f"step {self.step}: loss is not finite ({stats}); "
                                             f"resume from the last snapshot with a lower --lr")
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if bar is not None:
                    bar.update(1)
                    if self.step % 10 == 0:
                        bar.set_postfix(self._postfix(stats, dt))
                if log is not None and tc.log_every and self.step % tc.log_every == 0:
                    # single GAN losses at batch 1 are too noisy to read: such families log means
                    row = {k: v / count for k, v in sums.items()} if r.log_means else stats
                    if r.log_digits is not None:
                        row = {k: round(v, r.log_digits) for k, v in row.items()}
                    head = {"step": self.step}
                    if r.log_kimg:
                        head.update(kimg=self.kimg, wall=round(self.wall, 1),
                                    s_per_kimg=round(dt * 1000 / tc.batch, 4))
                    else:
                        head.update(wall=round(self.wall, 1))
                    log.write(json.dumps({**head, **row}) + "\n")
                    log.flush()
                    if bar is None:
                        rate = (time.perf_counter() - t_log) / count
                        print(f"step {self.step}/{tc.steps} {rate:.3f}s/step "
                              + " ".join(f"{k}={v:.4g}" for k, v in row.items()), file=sys.stderr, flush=True)
                    sums, count, t_log = {}, 0, time.perf_counter()
                if self.is_main and tc.sample_every and self.step % tc.sample_every == 0:
                    r.sample_grid(self.out / "samples" / f"grid-{self.step:08d}.png")
                # before the snapshot of this step, so a resume neither repeats nor skips it
                r.at_step_end()
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
            paths = [self.out / n for n in self.EXPORTS]
            return paths[0] if r.kind == "generator" else paths
        if saved != self.step:
            snapshot.save(self.out, self.step, self.state_dict(), tc.keep_snapshots)
        r.sample_grid(self.out / "samples" / f"grid-{self.step:08d}.png")
        result = r.export()
        self.dist.barrier()
        return result

    def _postfix(self, stats: dict, dt: float) -> dict:
        post = {}
        if self.recipe.log_kimg:
            post.update(kimg=f"{self.kimg:.2f}", s_kimg=f"{dt * 1000 / self.tc.batch:.1f}")
        for k, short in (("loss_d", "d"), ("loss_g", "g"), ("aug_p", "p")):
            if k in stats:
                post[short] = f"{stats[k]:.3f}"
        return post

    def write_reals(self, name: str, ds, n: int) -> None:
        x, _ = ds.batch(torch.arange(min(len(ds), n)))
        save_grid(x, self.out / name, nrow=10)


def command_line(argv: list[str] | None = None) -> str:
    """The run's command as recorded in its exports (argv: this process's arguments by default)."""
    return public_command(["python", "-m", "gan_models.train"], sys.argv[1:] if argv is None else argv)
