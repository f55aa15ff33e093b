"""CycleGAN training (Zhu et al. 2017): two translators learnt from two unpaired image folders;
and pix2pix (Isola et al. 2017) for folders of aligned pairs.

    python -m gan_models.train --arch cyclegan --data-a DIR_A --data-b DIR_B --out RUN_DIR [options]
    python -m gan_models.train --arch pix2pix --data-a DIR_A --data-b DIR_B --out RUN_DIR [options]

Naming follows the paper's code: G_A maps A -> B and G_B maps B -> A; D_A judges G_A's outputs
(domain B images), D_B judges G_B's (domain A). The recipe is the paper's: LSGAN loss, cycle loss
L1 x lambda_cycle, identity loss L1 x lambda_cycle x lambda_identity, a 50-image history pool for the
discriminators, Adam(2e-4, 0.5, 0.999) and a linear learning-rate decay to 0; only the schedule is
counted in steps rather than epochs. The translators are the ResNet translator of
gan_models.archs.translators; the discriminator is the 70x70 PatchGAN, built here because only
training needs it.

Everything a resumed run needs (four nets, both optimizers and schedulers, both pools, every random
generator and the data order) goes into one snapshot, so resuming gives the weights an uninterrupted
run would have. At the end both directions are exported as translator checkpoints
(RUN_DIR/translator_A2B.safetensors, translator_B2A.safetensors) that gan_models.load_generator reads.
pix2pix shares the data, schedule, snapshots and export, with a U-Net and a conditional PatchGAN.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import devices, registry, save_generator
from ..cli import nonneg_float, nonneg_int, positive_float, positive_int, public_command, unit_interval
from ..archs.translators import NORMS, ResnetTranslator, UnetTranslator, default_bias, norm_layer
from ..images import save_grid
from . import distributed, snapshot
from ..data import IMAGE_SUFFIXES, BatchOrder, DataError, Dataset, load_dataset
from .loop import hardware, linear_decay
from .options import run_main

# snapshot config entries that fix the shapes of the saved tensors: a resume must match them
_SHAPE_KEYS = ("arch", "resolution", "channels", "ngf", "ndf", "n_blocks", "n_layers_d", "norm", "pool_size")


@dataclass
class CycleConfig:
    arch: str = "cyclegan"          # or "pix2pix"
    data_a: str = ""
    data_b: str = ""
    out: str = ""
    name_a: str = "A"
    name_b: str = "B"
    resolution: int = 64
    channels: int = 3
    ngf: int = 32
    n_blocks: int = 6
    norm: str = "instance"
    ndf: int = 64
    n_layers_d: int = 3
    batch: int = 1
    steps: int = 10000
    decay_from: int | None = None   # default: steps // 2, as the paper's 100 + 100 epochs
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_l1: float = 100.0        # pix2pix
    dropout: bool = True            # pix2pix: dropout in the U-Net's inner levels, as in the paper
    pool_size: int = 50
    flip: bool = True
    seed: int = 0
    sample_every: int = 500
    snapshot_every: int = 1000
    keep_snapshots: int = 2
    log_every: int = 100
    resume: bool = False
    restart: bool = False           # discard the run already in `out` (snapshot.Resumable.clear_run)
    export_dtype: str = "float32"
    device: str = "cpu"
    threads: int = 0
    license: str = ""
    description: str = ""
    command: str = ""
    progress: bool = False

    def check(self) -> None:
        if self.arch not in ("cyclegan", "pix2pix"):
            raise ValueError(f"arch must be cyclegan or pix2pix, not {self.arch!r}")
        if self.arch == "pix2pix" and (self.resolution & (self.resolution - 1) or self.resolution < 8):
            raise ValueError(f"pix2pix: --resolution must be a power of two >= 8 (the U-Net halves it down "
                             f"to 1x1), not {self.resolution}")
        if self.resolution % 4 or self.resolution < 8:
            raise ValueError(f"--resolution must be a multiple of 4 and at least 8 (the translator "
                             f"halves it twice), not {self.resolution}")
        if self.batch < 1 or self.steps < 1:
            raise ValueError("--batch and --steps must be at least 1")
        if self.norm not in NORMS:
            raise ValueError(f"--norm must be one of {NORMS}, not {self.norm!r}")
        if self.decay_from is not None and not 0 <= self.decay_from <= self.steps:
            raise ValueError(f"--decay-from must be a step of the run, 0 to --steps {self.steps}, "
                             f"not {self.decay_from}")
        if self.export_dtype not in ("float32", "float16"):
            raise ValueError("--export-dtype must be float32 or float16")
        for n, v in (("--ngf", self.ngf), ("--ndf", self.ndf), ("--n-layers-d", self.n_layers_d)):
            if v < 1:
                raise ValueError(f"{n} must be at least 1")
        if self.resolution // 2 ** self.n_layers_d < 3:
            raise ValueError(f"--resolution {self.resolution} is too small for a PatchGAN with {self.n_layers_d} "
                             f"stride-2 layers (needs at least {3 * 2 ** self.n_layers_d}); lower --n-layers-d")
        if self.n_blocks < 0 or self.pool_size < 0:
            raise ValueError("--n-blocks and --pool-size must be >= 0")

    @property
    def decay_start(self) -> int:
        return self.steps // 2 if self.decay_from is None else self.decay_from


# ------------------------------------------------------------------------------------- networks


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): a fully convolutional net whose every output judges one patch.
    With n_layers=3 each output sees a 70x70 window, big enough for texture and local shape but
    blind to layout, which the cycle loss keeps."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = default_bias(norm)
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """N(0, 0.02) convs and N(1, 0.02) norm scales, the paper's init; torch's default Kaiming-uniform
    starts the LSGAN discriminators too confident."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


class ImagePool:
    """History of generated images (Shrivastava et al. 2017): the discriminators see a mix of this
    step's fakes and older ones, so the generators cannot win by oscillating between modes.

    Each image of a batch goes in while the pool is filling; once full, with probability 1/2 it
    replaces a random stored image, which is returned in its place. Its own random generator keeps
    it reproducible and part of the snapshot."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.cpu().clone())
                out.append(img)
            elif torch.rand((), generator=self.gen).item() < 0.5:
                i = int(torch.randint(0, self.size, (), generator=self.gen))
                old = self.images[i]
                self.images[i] = img.cpu().clone()
                out.append(old.to(images.device))
            else:
                out.append(img)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"images": torch.cat(self.images) if self.images else torch.zeros(0),
                "gen": self.gen.get_state()}

    def load_state_dict(self, s: dict) -> None:
        self.images = [t.unsqueeze(0).clone() for t in s["images"]] if s["images"].numel() else []
        self.gen.set_state(s["gen"])


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def bce(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, 1.0 if real else 0.0))


# --------------------------------------------------------------------------------------- trainers


class _Trainer(snapshot.Resumable):
    """What CycleGAN and pix2pix share: data, schedule, snapshots, the loop and the export. A
    subclass builds its networks in `_build` (setting opt_G, opt_D) and names the objects that make
    up its state in `_STATE`."""

    _STATE: tuple[str, ...] = ()
    EXPORTS = ("translator_A2B.safetensors", "translator_B2A.safetensors")

    def __init__(self, cc: CycleConfig):
        cc.check()
        self.out = Path(cc.out)
        self.SNAPSHOT_KEYS = ("step", "wall", "rng", "config", "sched_G", "sched_D", *self._STATE)
        # before anything (the data cache included) is written into the run folder
        self.check_run_folder(cc.resume, cc.restart)
        if cc.threads:
            torch.set_num_threads(cc.threads)
        self.cc = cc
        self.ds_a = self._load(cc.data_a, "--data-a")
        self.ds_b = self._load(cc.data_b, "--data-b")
        self.device = torch.device(cc.device)
        torch.manual_seed(cc.seed)
        self._build()
        # plain functions, not the bound method: LambdaLR would try to save a method's __dict__
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, lambda s: self.lr_factor(s))
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, lambda s: self.lr_factor(s))
        self.order_a = BatchOrder(len(self.ds_a), cc.batch, cc.seed)
        self.order_b = BatchOrder(len(self.ds_b), cc.batch, cc.seed + 1)
        self.noise = torch.Generator().manual_seed(cc.seed + 4)  # flips
        self.step = 0
        self.wall = 0.0

    def _build(self) -> None:
        raise NotImplementedError

    def _load(self, path: str, flag: str) -> Dataset:
        if not path:
            raise DataError(f"{flag} is required: a folder of images")
        try:
            ds = load_dataset(path, self.cc.resolution, self.cc.channels)
        except DataError as e:
            raise DataError(f"{flag}: {e}") from None
        if ds.skipped:
            print(f"{flag}: skipped {ds.skipped} undecodable image file(s)", file=sys.stderr)
        return ds

    def _init(self, net: nn.Module) -> nn.Module:
        return init_weights(net).to(self.device).train()

    def _adam(self, *nets: nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(itertools.chain(*(n.parameters() for n in nets)), lr=self.cc.lr,
                                betas=tuple(self.cc.betas))

    def lr_factor(self, step: int) -> float:
        """1 until decay_start, then linearly to 0 at `steps`."""
        return linear_decay(step, self.cc.decay_start, self.cc.steps)

    def _lr_step(self) -> float:
        lr = self.opt_G.param_groups[0]["lr"]
        self.sched_G.step()
        self.sched_D.step()
        self.step += 1
        return lr

    def _flip(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        """One random horizontal flip per sample, the same for every tensor given (pairs stay pairs)."""
        if not self.cc.flip:
            return list(xs)
        flip = (torch.rand(xs[0].shape[0], generator=self.noise) < 0.5)[:, None, None, None]
        return [torch.where(flip, x.flip(-1), x) for x in xs]

    # -- state ----------------------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.cc).items()
                if isinstance(v, (int, float, str, bool, tuple))}

    def state_dict(self) -> dict:
        return {"step": self.step, "wall": self.wall,
                **{name: getattr(self, name).state_dict() for name in self._STATE + ("sched_G", "sched_D")},
                "rng": {**snapshot.rng_state(), "noise": self.noise.get_state(),
                        "data_a": self.order_a.state_dict(), "data_b": self.order_b.state_dict()},
                "config": self.config_dict()}

    def load_state_dict(self, s: dict) -> None:
        cfg = s.get("config", {})
        for key in _SHAPE_KEYS:
            if key in cfg and cfg[key] != getattr(self.cc, key):
                raise ValueError(f"--resume: the snapshot was trained with {key}={cfg[key]!r}, "
                                 f"this run asks for {getattr(self.cc, key)!r}")
        for name in self._STATE + ("sched_G", "sched_D"):
            getattr(self, name).load_state_dict(s[name])
        snapshot.set_rng_state(s["rng"])
        self.noise.set_state(s["rng"]["noise"])
        self.order_a.load_state_dict(s["rng"]["data_a"])
        self.order_b.load_state_dict(s["rng"]["data_b"])
        self.step, self.wall = int(s["step"]), float(s["wall"])
        # The optimizers come back with the learning rate the snapshot's schedule set for this step;
        # a resume may change --steps or --decay-from, so set it from this run's schedule instead.
        for opt, sched in ((self.opt_G, self.sched_G), (self.opt_D, self.sched_D)):
            for group, base in zip(opt.param_groups, sched.base_lrs):
                group["lr"] = base * self.lr_factor(self.step)
            sched._last_lr = [g["lr"] for g in opt.param_groups]

    # -- outputs --------------------------------------------------------------------------------
    def fixed_images(self, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """The same A and B images in every sample grid of a run."""
        gen = torch.Generator().manual_seed(self.cc.seed + 12345)
        ia = torch.randperm(len(self.ds_a), generator=gen)[:k]
        ib = torch.randperm(len(self.ds_b), generator=gen)[:k]
        return self.ds_a.batch(ia)[0], self.ds_b.batch(ib)[0]

    def _export_one(self, G: nn.Module, src: str, dst: str, fname: str, arch_kwargs: dict,
                    data: dict, recipe: dict, description: str) -> Path:
        cc = self.cc
        T = copy.deepcopy(G).cpu().eval().requires_grad_(False)
        if cc.export_dtype == "float16":
            T = T.half()
        meta = {"arch": registry.detect(T.state_dict()).name, "kind": "translator", "style_name": f"{src}->{dst}",
                "arch_kwargs": {"in_channels": cc.channels, "out_channels": cc.channels, "ngf": cc.ngf,
                                "norm": cc.norm, **arch_kwargs},
                "in_channels": cc.channels, "img_channels": cc.channels,
                "input_range": [-1, 1], "output_range": [-1, 1],
                "source": {"type": "train", "method": cc.arch, "command": cc.command,
                           "steps": self.step, "batch": cc.batch, "seed": cc.seed,
                           "resolution": cc.resolution, "wall_time_s": self.wall,  # unrounded: a short run is not 0.0
                           "hardware": hardware(), "data": data, "storage_dtype": cc.export_dtype,
                           "recipe": {"lr": cc.lr, "betas": list(cc.betas), "decay_from": cc.decay_start,
                                      "ndf": cc.ndf, "n_layers_d": cc.n_layers_d, "flip": cc.flip, **recipe}},
                "license": cc.license or "unspecified: inherits the training data's licenses",
                "description": cc.description or description}
        path = self.out / f"{fname}.safetensors"
        save_generator(path, T, meta)
        return path

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> list[Path]:
        cc = self.cc
        self.out.mkdir(parents=True, exist_ok=True)
        if cc.restart:
            gone = self.clear_run()
            print(f"--restart: removed {len(gone)} file(s) of the previous run in {self.out}; starting at step 0",
                  file=sys.stderr)
        if cc.resume and self.try_resume():
            print(f"resumed from {self.resumed_from.name} at step {self.step}", file=sys.stderr)
        elif cc.resume:
            print(f"--resume: no snapshot in {self.out / 'snapshots'}; starting at step 0", file=sys.stderr)
        # the step whose snapshot this run has on disk (not the newest file's name: that may be a
        # damaged snapshot the resume passed over)
        saved = self.step if self.resumed_from is not None else None
        if self.step == 0:
            xa, _ = self.ds_a.batch(torch.arange(min(len(self.ds_a), 50)))
            xb, _ = self.ds_b.batch(torch.arange(min(len(self.ds_b), 50)))
            save_grid(xa, self.out / "reals_A.png", nrow=10)
            save_grid(xb, self.out / "reals_B.png", nrow=10)
        log = open(self.out / "log.jsonl", "a")
        bar = None
        if cc.progress:
            from tqdm import tqdm
            bar = tqdm(total=cc.steps, initial=self.step, unit="step", dynamic_ncols=True, file=sys.stderr)
        sums, count, t_log = {}, 0, time.perf_counter()
        try:
            while self.step < cc.steps:
                t0 = time.perf_counter()
                stats = self.train_step()
                if not all(math.isfinite(v) for v in stats.values()):
                    raise FloatingPointError(f"step {self.step}: loss is not finite ({stats}); "
                                             f"resume from the last snapshot with a lower --lr")
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if bar is not None:
                    bar.update(1)
                if cc.log_every and self.step % cc.log_every == 0:
                    # means over the interval: single GAN losses at batch 1 are too noisy to read
                    mean = {k: round(v / count, 5) for k, v in sums.items()}
                    rate = (time.perf_counter() - t_log) / count
                    log.write(json.dumps({"step": self.step, "wall": round(self.wall, 1), **mean}) + "\n")
                    log.flush()
                    if bar is None:
                        print(f"step {self.step}/{cc.steps} {rate:.3f}s/step "
                              + " ".join(f"{k}={v:.4g}" for k, v in mean.items()), file=sys.stderr, flush=True)
                    sums, count, t_log = {}, 0, time.perf_counter()
                if cc.sample_every and self.step % cc.sample_every == 0:
                    self.sample_grid(self.out / "samples" / f"grid-{self.step:08d}.png")
                self.wall += time.perf_counter() - t0
                if cc.snapshot_every and self.step % cc.snapshot_every == 0:
                    snapshot.save(self.out, self.step, self.state_dict(), cc.keep_snapshots)
                    saved = self.step
        finally:
            log.close()
            if bar is not None:
                bar.close()
        if saved != self.step:
            snapshot.save(self.out, self.step, self.state_dict(), cc.keep_snapshots)
        self.sample_grid(self.out / "samples" / f"grid-{self.step:08d}.png")
        return self.export()


class CycleGANTrainer(_Trainer):
    _STATE = ("G_A", "G_B", "D_A", "D_B", "opt_G", "opt_D", "pool_A", "pool_B")

    def _build(self) -> None:
        cc = self.cc
        kw = dict(in_channels=cc.channels, out_channels=cc.channels, ngf=cc.ngf, n_blocks=cc.n_blocks,
                  norm=cc.norm)
        self.G_A = self._init(ResnetTranslator(**kw))
        self.G_B = self._init(ResnetTranslator(**kw))
        self.D_A = self._init(PatchDiscriminator(cc.channels, cc.ndf, cc.n_layers_d, cc.norm))
        self.D_B = self._init(PatchDiscriminator(cc.channels, cc.ndf, cc.n_layers_d, cc.norm))
        self.opt_G = self._adam(self.G_A, self.G_B)
        self.opt_D = self._adam(self.D_A, self.D_B)
        self.pool_A = ImagePool(cc.pool_size, cc.seed + 2)   # fakes of domain A, for D_B
        self.pool_B = ImagePool(cc.pool_size, cc.seed + 3)   # fakes of domain B, for D_A

    def train_step(self) -> dict:
        cc = self.cc
        (real_A,) = self._flip(self.ds_a.batch(self.order_a.next())[0])
        (real_B,) = self._flip(self.ds_b.batch(self.order_b.next())[0])
        real_A, real_B = real_A.to(self.device), real_B.to(self.device)

        # generators, with the discriminators frozen so their grads stay clean for their own step
        for D in (self.D_A, self.D_B):
            D.requires_grad_(False)
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)
        loss_idt = torch.zeros((), device=self.device)
        if cc.lambda_identity > 0:
            # G_A fed a B image should leave it alone: keeps colours from drifting without need
            w = cc.lambda_cycle * cc.lambda_identity
            loss_idt = (F.l1_loss(self.G_A(real_B), real_B) + F.l1_loss(self.G_B(real_A), real_A)) * w
        loss_gan = lsgan(self.D_A(fake_B), True) + lsgan(self.D_B(fake_A), True)
        loss_cycle = (F.l1_loss(rec_A, real_A) + F.l1_loss(rec_B, real_B)) * cc.lambda_cycle
        loss_G = loss_gan + loss_cycle + loss_idt
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        for D in (self.D_A, self.D_B):
            D.requires_grad_(True)

        # discriminators; halved so D learns slower than G, as in the paper
        old_B = self.pool_B.query(fake_B)
        old_A = self.pool_A.query(fake_A)
        loss_D_A = 0.5 * (lsgan(self.D_A(real_B), True) + lsgan(self.D_A(old_B.detach()), False))
        loss_D_B = 0.5 * (lsgan(self.D_B(real_A), True) + lsgan(self.D_B(old_A.detach()), False))
        self.opt_D.zero_grad(set_to_none=True)
        (loss_D_A + loss_D_B).backward()
        self.opt_D.step()

        lr = self._lr_step()
        return {"loss_G_gan": loss_gan.item(), "loss_cycle": loss_cycle.item(), "loss_idt": loss_idt.item(),
                "loss_D_A": loss_D_A.item(), "loss_D_B": loss_D_B.item(), "lr": lr}

    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:
        """Rows: A, G_A(A), B, G_B(B)."""
        a, b = self.fixed_images()
        k = max(len(a), len(b))
        pad = lambda x: torch.cat([x, torch.ones(k - len(x), *x.shape[1:])]) if len(x) < k else x  # noqa: E731
        fa = self.G_A(a.to(self.device)).cpu()
        fb = self.G_B(b.to(self.device)).cpu()
        save_grid(torch.cat([pad(a), pad(fa), pad(b), pad(fb)]), path, nrow=k)

    def export(self) -> list[Path]:
        cc = self.cc
        recipe = {"loss": "lsgan", "lambda_cycle": cc.lambda_cycle, "lambda_identity": cc.lambda_identity,
                  "pool_size": cc.pool_size}
        paths = []
        for G, src, dst, ds, other, fname in (
                (self.G_A, cc.name_a, cc.name_b, self.ds_a, self.ds_b, "translator_A2B"),
                (self.G_B, cc.name_b, cc.name_a, self.ds_b, self.ds_a, "translator_B2A")):
            paths.append(self._export_one(
                G, src, dst, fname, {"n_blocks": cc.n_blocks},
                {"from": ds.source, "images": len(ds), "to": other.source, "images_to": len(other)}, recipe,
                f"CycleGAN ResNet translator ({cc.n_blocks} blocks, ngf {cc.ngf}) from {src} to {dst}, "
                f"trained at {cc.resolution}x{cc.resolution} on unpaired images"))
        return paths


class Pix2PixTrainer(_Trainer):
    """pix2pix (Isola et al. 2017): a U-Net translator trained on aligned pairs with a conditional
    PatchGAN (it sees input and output stacked) and an L1 loss to the paired target. Pairs are the
    files with the same relative path in --data-a and --data-b; one A -> B translator is exported."""

    _STATE = ("G", "D", "opt_G", "opt_D")

    def _load(self, path: str, flag: str) -> Dataset:
        ds = super()._load(path, flag)
        if ds.skipped:
            raise DataError(f"{flag}: {ds.skipped} undecodable image(s) would break the pairing; remove them")
        return ds

    def _build(self) -> None:
        cc = self.cc
        names = [_relative_images(Path(p)) for p in (cc.data_a, cc.data_b)]
        if names[0] != names[1]:
            only = sorted(set(names[0]) ^ set(names[1]))
            raise DataError(f"pix2pix needs the same file names in --data-a and --data-b (pairs); "
                            f"{len(only)} file(s) are in only one of them, e.g. {only[:3]}")
        self.G = self._init(UnetTranslator(cc.channels, cc.channels, cc.ngf, self.depth, cc.norm, cc.dropout))
        self.D = self._init(PatchDiscriminator(2 * cc.channels, cc.ndf, cc.n_layers_d, cc.norm))
        self.opt_G = self._adam(self.G)
        self.opt_D = self._adam(self.D)
        # the pairs come from order_a; order_b (built by the base class) is never drawn from

    @property
    def depth(self) -> int:
        # down to a 1x1 bottleneck at the training size, as upstream's unet_256 at 256 px
        return int(math.log2(self.cc.resolution))

    def train_step(self) -> dict:
        cc = self.cc
        idx = self.order_a.next()
        real_A, real_B = self._flip(self.ds_a.batch(idx)[0], self.ds_b.batch(idx)[0])
        real_A, real_B = real_A.to(self.device), real_B.to(self.device)
        fake_B = self.G(real_A)

        pred_fake = self.D(torch.cat([real_A, fake_B.detach()], 1))
        pred_real = self.D(torch.cat([real_A, real_B], 1))
        loss_D = 0.5 * (bce(pred_fake, False) + bce(pred_real, True))
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()

        self.D.requires_grad_(False)
        loss_gan = bce(self.D(torch.cat([real_A, fake_B], 1)), True)
        loss_l1 = F.l1_loss(fake_B, real_B) * cc.lambda_l1
        self.opt_G.zero_grad(set_to_none=True)
        (loss_gan + loss_l1).backward()
        self.opt_G.step()
        self.D.requires_grad_(True)

        lr = self._lr_step()
        return {"loss_G_gan": loss_gan.item(), "loss_l1": loss_l1.item(), "loss_D": loss_D.item(), "lr": lr}

    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:
        """Rows: A, G(A), B (the paired targets)."""
        gen = torch.Generator().manual_seed(self.cc.seed + 12345)
        idx = torch.randperm(len(self.ds_a), generator=gen)[:8]
        a, b = self.ds_a.batch(idx)[0], self.ds_b.batch(idx)[0]
        # eval mode: what the exported translator will do (BatchNorm running stats, no dropout)
        self.G.eval()
        fake = self.G(a.to(self.device)).cpu()
        self.G.train()
        save_grid(torch.cat([a, fake, b]), path, nrow=len(idx))

    def export(self) -> list[Path]:
        cc = self.cc
        return [self._export_one(
            self.G, cc.name_a, cc.name_b, "translator_A2B", {"depth": self.depth, "dropout": cc.dropout},
            {"from": self.ds_a.source, "to": self.ds_b.source, "pairs": len(self.ds_a)},
            {"loss": "vanilla", "lambda_l1": cc.lambda_l1},
            f"pix2pix U-Net translator (depth {self.depth}, ngf {cc.ngf}) from {cc.name_a} to {cc.name_b}, "
            f"trained at {cc.resolution}x{cc.resolution} on {len(self.ds_a)} aligned pairs")]


def _relative_images(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


TRAINERS = {"cyclegan": CycleGANTrainer, "pix2pix": Pix2PixTrainer}


# ------------------------------------------------------------------------------------------- CLI


def parse(argv=None) -> CycleConfig:
    p = argparse.ArgumentParser(
        prog="python -m gan_models.train --arch {cyclegan,pix2pix}",
        description="cyclegan: train two ResNet translators between two unpaired image folders; writes "
                    "sample grids (rows A, G_A(A), B, G_B(B)), resumable snapshots, and "
                    "RUN_DIR/translator_A2B.safetensors and translator_B2A.safetensors. pix2pix: train one "
                    "U-Net translator on aligned pairs (same file names in both folders); writes "
                    "RUN_DIR/translator_A2B.safetensors. Both load with gan_models.load_generator.")
    p.add_argument("--arch", choices=sorted(TRAINERS), default="cyclegan")
    p.add_argument("--data-a", required=True, help="folder of domain A images (recursive)")
    p.add_argument("--data-b", required=True, help="folder of domain B images (recursive)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--name-a", default="A", help="domain A's name in the exported style_name (e.g. noto)")
    p.add_argument("--name-b", default="B", help="domain B's name (e.g. openmoji)")
    p.add_argument("--resolution", type=positive_int, default=64,
                   help="training resolution, a multiple of 4 (default 64)")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3), help="image channels (default 3)")
    p.add_argument("--ngf", type=positive_int, default=32, help="translator base width (default 32; the papers: 64)")
    p.add_argument("--n-blocks", type=nonneg_int, default=6, help="residual blocks (default 6; the paper: 9 at 256px)")
    p.add_argument("--norm", default="instance", choices=NORMS,
                   help="default instance, also for pix2pix: at batch 1 it equals the batch statistics "
                        "pix2pix was evaluated with, where BatchNorm's running averages would not")
    p.add_argument("--ndf", type=positive_int, default=64, help="PatchGAN base width (default 64)")
    p.add_argument("--n-layers-d", type=positive_int, default=3, help="PatchGAN stride-2 layers (3: 70x70 patches)")
    p.add_argument("--batch", type=positive_int, default=1)
    p.add_argument("--steps", type=positive_int, default=10000)
    p.add_argument("--decay-from", type=nonneg_int, help="step where the linear lr decay to 0 starts (default steps/2)")
    p.add_argument("--lr", type=positive_float, default=2e-4)
    p.add_argument("--betas", type=unit_interval, nargs=2, default=(0.5, 0.999), metavar=("B1", "B2"))
    p.add_argument("--lambda-cycle", type=nonneg_float, default=10.0)
    p.add_argument("--lambda-identity", type=nonneg_float, default=0.5, help="x lambda-cycle; 0 turns it off")
    p.add_argument("--lambda-l1", type=nonneg_float, default=100.0, help="pix2pix: weight of the L1 loss")
    p.add_argument("--no-dropout", action="store_true", help="pix2pix: no dropout in the U-Net")
    p.add_argument("--pool-size", type=nonneg_int, default=50, help="history of fakes shown to D (0: none)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips of training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-every", type=nonneg_int, default=500, help="steps between sample grids (0: never)")
    snapshot.add_arguments(p)
    p.add_argument("--log-every", type=nonneg_int, default=100,
                   help="steps between log lines (RUN_DIR/log.jsonl and stderr; 0: none)")
    p.add_argument("--progress", action="store_true", help="a tqdm bar instead of log lines on stderr")
    p.add_argument("--export-dtype", default="float32", choices=("float32", "float16"),
                   help="storage dtype of the exported translators (float16 halves the file)")
    devices.add_argument(p)
    p.add_argument("--threads", type=nonneg_int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--license", default="", help="license recorded in the exported checkpoints")
    p.add_argument("--description", default="")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = p.parse_args(argv)
    if not any(x == "--arch" or x.startswith("--arch=") for x in argv):
        argv = ["--arch", "cyclegan", *argv]  # run as `-m gan_models.train.cyclegan`
    command = public_command(["python", "-m", "gan_models.train"], argv)
    cc = CycleConfig(arch=a.arch, data_a=a.data_a, data_b=a.data_b, out=a.out, name_a=a.name_a, name_b=a.name_b,
                     resolution=a.resolution, channels=a.channels, ngf=a.ngf, n_blocks=a.n_blocks,
                     norm=a.norm, ndf=a.ndf, n_layers_d=a.n_layers_d, batch=a.batch, steps=a.steps,
                     decay_from=a.decay_from, lr=a.lr, betas=tuple(a.betas), lambda_cycle=a.lambda_cycle,
                     lambda_identity=a.lambda_identity, lambda_l1=a.lambda_l1,
                     dropout=not a.no_dropout, pool_size=a.pool_size, flip=not a.no_flip,
                     seed=a.seed, sample_every=a.sample_every, snapshot_every=a.snapshot_every,
                     keep_snapshots=a.keep_snapshots, log_every=a.log_every, resume=a.resume, restart=a.restart,
                     export_dtype=a.export_dtype, device=a.device, threads=a.threads, license=a.license,
                     description=a.description, command=command, progress=a.progress)
    try:  # the checks that relate options to each other, reported like argparse's own
        cc.check()
    except ValueError as e:
        p.error(str(e))
    return cc


def main(argv=None) -> int:
    return run_main(parse, _train, sys.argv[1:] if argv is None else list(argv))


def _train(cc: CycleConfig) -> int:
    world = distributed.launched_world()
    if world > 1:  # the translators' loop has no ranks: each would train the whole run into the same --out
        raise ValueError(f"--arch {cc.arch} trains in one process, and torchrun started {world}: run it as "
                         f"python -m gan_models.train (with --device cuda for a GPU)")
    paths = TRAINERS[cc.arch](cc).run()
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
