"""CycleGAN training (Zhu et al. 2017): two translators learnt from two unpaired image folders;
and pix2pix (Isola et al. 2017) for folders of aligned pairs.

    python -m gan_models.train --arch cyclegan --data-a DIR_A --data-b DIR_B --out RUN_DIR [options]
    python -m gan_models.train --arch pix2pix --data-a DIR_A --data-b DIR_B --out RUN_DIR [options]

Naming follows the paper's code: G_A maps A -> B and G_B maps B -> A; D_A judges G_A's outputs
(domain B images), D_B judges G_B's (domain A). The recipe is the paper's: LSGAN loss, cycle loss
L1 x lambda_cycle, identity loss L1 x lambda_cycle x lambda_identity, a 50-image history pool for the
discriminators, Adam(2e-4, 0.5, 0.999) and a linear learning-rate decay to 0; only the schedule is
counted in steps rather than epochs. The translators are the ResNet translator of
gan_models.archs.translators, beside the 70x70 PatchGAN discriminator that only training builds.

Both are recipes of the one training loop (loop.py). Everything a resumed run needs (four nets, both
optimizers and schedulers, both pools, every random generator and the data order) goes into its
snapshot, so resuming gives the weights an uninterrupted run would have. At the end both directions are exported as translator checkpoints
(RUN_DIR/translator_A2B.safetensors, translator_B2A.safetensors) that gan_models.load_generator reads.
pix2pix shares the data, schedule, snapshots and export, with a U-Net and a conditional PatchGAN.
"""
from __future__ import annotations

import copy
import itertools
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import registry, save_generator
from ..archs.dcgan import init_weights
from ..archs.translators import NORMS, PatchDiscriminator, ResnetTranslator, UnetTranslator
from ..cli import nonneg_float, nonneg_int, positive_int
from ..data import IMAGE_SUFFIXES, BatchOrder, DataError, Dataset, load_dataset
from ..images import save_grid
from .loop import Phase, Recipe, hardware, linear_decay, register

# ------------------------------------------------------------------------------------- networks


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


# --------------------------------------------------------------------------------------- recipes


class TranslatorRecipe(Recipe):
    """What CycleGAN and pix2pix share: two image folders, the schedule (constant, then linear to 0),
    the image-pool-free part of the state, and the export of translators. A subclass builds its
    networks and optimizers (opt_G, opt_D) in `build_nets` and lists its state in STATE."""
    kind = "translator"
    distributed = False
    EXPORTS = ("translator_A2B.safetensors", "translator_B2A.safetensors")
    RNG = (("noise", "noise"), ("data_a", "order_a"), ("data_b", "order_b"))
    shape_keys = ("arch", "resolution", "channels", "ngf", "ndf", "n_blocks", "n_layers_d", "norm", "pool_size")
    # what the snapshot's config records: the options these families read
    config_keys = ("arch", "data_a", "data_b", "out", "name_a", "name_b", "resolution", "channels", "ngf",
                   "n_blocks", "norm", "ndf", "n_layers_d", "batch", "steps", "lr_decay_from", "lr", "betas",
                   "lambda_cycle", "lambda_identity", "lambda_l1", "dropout", "pool_size", "flip", "seed",
                   "sample_every", "snapshot_every", "keep_snapshots", "log_every", "resume", "restart",
                   "export_dtype", "device", "threads", "license", "description", "command", "progress")
    defaults = dict(resolution=64, channels=3, ngf=32, n_blocks=6, norm="instance", ndf=64, n_layers_d=3, batch=1,
                    lr=2e-4, betas=(0.5, 0.999), lambda_cycle=10.0, lambda_identity=0.5, lambda_l1=100.0,
                    dropout=True, pool_size=50, flip=True, name_a="A", name_b="B", export_dtype="float32",
                    progress=False)
    log_means, log_digits, log_kimg = True, 5, False

    @staticmethod
    def add_options(g) -> None:
        g.add_argument("--data-a", help="folder of domain A images (recursive)")
        g.add_argument("--data-b", help="folder of domain B images (recursive; pix2pix: the same file names)")
        g.add_argument("--name-a", help="domain A's name in the exported style_name (e.g. noto)")
        g.add_argument("--name-b", help="domain B's name (e.g. openmoji)")
        g.add_argument("--n-blocks", type=nonneg_int, help="cyclegan: residual blocks (default 6; the paper: 9 at 256px)")
        g.add_argument("--norm", choices=NORMS,
                       help="default instance, also for pix2pix: at batch 1 it equals the batch statistics "
                            "pix2pix was evaluated with, where BatchNorm's running averages would not")
        g.add_argument("--n-layers-d", type=positive_int, help="PatchGAN stride-2 layers (3: 70x70 patches)")
        g.add_argument("--lambda-cycle", type=nonneg_float, help="cyclegan: cycle loss weight (default 10)")
        g.add_argument("--lambda-identity", type=nonneg_float,
                       help="cyclegan: identity loss weight, x lambda-cycle (default 0.5; 0 turns it off)")
        g.add_argument("--lambda-l1", type=nonneg_float, help="pix2pix: weight of the L1 loss (default 100)")
        g.add_argument("--no-dropout", dest="dropout", action="store_false", default=None,
                       help="pix2pix: no dropout in the U-Net")
        g.add_argument("--pool-size", type=nonneg_int, help="cyclegan: history of fakes shown to D (default 50; 0: none)")
        g.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                       help="no random horizontal flips of training images")
        g.add_argument("--export-dtype", choices=("float32", "float16"),
                       help="storage dtype of the exported translators (float16 halves the file)")

    @classmethod
    def check(cls, cfg: dict) -> None:
        for flag, key in (("--data-a", "data_a"), ("--data-b", "data_b")):
            if not cfg.get(key):
                raise DataError(f"{flag} is required: a folder of images")
        res = cfg["resolution"]
        if res % 4 or res < 8:
            raise ValueError(f"--resolution must be a multiple of 4 and at least 8 (the translator "
                             f"halves it twice), not {res}")
        if cfg["batch"] < 1 or cfg["steps"] < 1:
            raise ValueError("--batch and --steps must be at least 1")
        if cfg["norm"] not in NORMS:
            raise ValueError(f"--norm must be one of {NORMS}, not {cfg['norm']!r}")
        start = cfg.get("lr_decay_from")
        if start is not None and not 0 <= start <= cfg["steps"]:
            raise ValueError(f"--decay-from must be a step of the run, 0 to --steps {cfg['steps']}, not {start}")
        if cfg["export_dtype"] not in ("float32", "float16"):
            raise ValueError("--export-dtype must be float32 or float16")
        for n, k in (("--ngf", "ngf"), ("--ndf", "ndf"), ("--n-layers-d", "n_layers_d")):
            if cfg[k] < 1:
                raise ValueError(f"{n} must be at least 1")
        if res // 2 ** cfg["n_layers_d"] < 3:
            raise ValueError(f"--resolution {res} is too small for a PatchGAN with {cfg['n_layers_d']} "
                             f"stride-2 layers (needs at least {3 * 2 ** cfg['n_layers_d']}); lower --n-layers-d")
        if cfg["n_blocks"] < 0 or cfg["pool_size"] < 0:
            raise ValueError("--n-blocks and --pool-size must be >= 0")

    @property
    def decay_start(self) -> int:
        tc = self.tr.tc
        return tc.steps // 2 if tc.lr_decay_from is None else tc.lr_decay_from

    def load_data(self) -> None:
        self.ds_a = self._load(self.tr.tc.data_a, "--data-a")
        self.ds_b = self._load(self.tr.tc.data_b, "--data-b")

    def _load(self, path: str, flag: str) -> Dataset:
        try:
            ds = load_dataset(path, self.tr.tc.resolution, self.tr.tc.channels)
        except DataError as e:
            raise DataError(f"{flag}: {e}") from None
        if ds.skipped:
            print(f"{flag}: skipped {ds.skipped} undecodable image file(s)", file=sys.stderr)
        return ds

    def build(self) -> None:
        tc = self.tr.tc
        self.build_nets()
        # plain functions, not the bound method: LambdaLR would try to save a method's __dict__
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, lambda s: self.lr_factor(s))
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, lambda s: self.lr_factor(s))
        self.order_a = BatchOrder(len(self.ds_a), tc.batch, tc.seed)
        self.order_b = BatchOrder(len(self.ds_b), tc.batch, tc.seed + 1)
        self.noise = torch.Generator().manual_seed(tc.seed + 4)  # flips

    def build_nets(self) -> None:
        raise NotImplementedError

    def _init(self, net: nn.Module) -> nn.Module:
        return init_weights(net).to(self.tr.device).train()

    def _adam(self, *nets: nn.Module) -> torch.optim.Adam:
        tc = self.tr.tc
        return torch.optim.Adam(itertools.chain(*(n.parameters() for n in nets)), lr=tc.lr, betas=tuple(tc.betas))

    def lr_factor(self, step: int) -> float:
        """1 until decay_start, then linearly to 0 at `steps`."""
        return linear_decay(step, self.decay_start, self.tr.tc.steps)

    def end_step(self, ctx: dict) -> dict:
        lr = self.opt_G.param_groups[0]["lr"]
        self.sched_G.step()
        self.sched_D.step()
        return {**{k: v.item() for k, v in ctx["stats"].items()}, "lr": lr}

    def _flip(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        """One random horizontal flip per sample, the same for every tensor given (pairs stay pairs)."""
        if not self.tr.tc.flip:
            return list(xs)
        flip = (torch.rand(xs[0].shape[0], generator=self.noise) < 0.5)[:, None, None, None]
        return [torch.where(flip, x.flip(-1), x) for x in xs]

    def load_extra_state(self, s: dict) -> None:
        # The optimizers come back with the learning rate the snapshot's schedule set for this step;
        # a resume may change --steps or --decay-from, so set it from this run's schedule instead.
        for opt, sched in ((self.opt_G, self.sched_G), (self.opt_D, self.sched_D)):
            for group, base in zip(opt.param_groups, sched.base_lrs):
                group["lr"] = base * self.lr_factor(self.tr.step)
            sched._last_lr = [g["lr"] for g in opt.param_groups]

    # -- outputs --------------------------------------------------------------------------------
    def save_reals(self) -> None:
        self.tr.write_reals("reals_A.png", self.ds_a, 50)
        self.tr.write_reals("reals_B.png", self.ds_b, 50)

    def fixed_images(self, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """The same A and B images in every sample grid of a run."""
        gen = torch.Generator().manual_seed(self.tr.tc.seed + 12345)
        ia = torch.randperm(len(self.ds_a), generator=gen)[:k]
        ib = torch.randperm(len(self.ds_b), generator=gen)[:k]
        return self.ds_a.batch(ia)[0], self.ds_b.batch(ib)[0]

    def _export_one(self, G: nn.Module, src: str, dst: str, fname: str, arch_kwargs: dict,
                    data: dict, recipe: dict, description: str) -> Path:
        tr, cc = self.tr, self.tr.tc
        T = copy.deepcopy(G).cpu().eval().requires_grad_(False)
        if cc.export_dtype == "float16":
            T = T.half()
        meta = {"arch": registry.detect(T.state_dict()).name, "kind": "translator", "style_name": f"{src}->{dst}",
                "arch_kwargs": {"in_channels": cc.channels, "out_channels": cc.channels, "ngf": cc.ngf,
                                "norm": cc.norm, **arch_kwargs},
                "in_channels": cc.channels, "img_channels": cc.channels,
                "input_range": [-1, 1], "output_range": [-1, 1],
                "source": {"type": "train", "method": cc.arch, "command": cc.command,
                           "steps": tr.step, "batch": cc.batch, "seed": cc.seed,
                           "resolution": cc.resolution, "wall_time_s": tr.wall,  # unrounded: a short run is not 0.0
                           "hardware": hardware(), "data": data, "storage_dtype": cc.export_dtype,
                           "recipe": {"lr": cc.lr, "betas": list(cc.betas), "decay_from": self.decay_start,
                                      "ndf": cc.ndf, "n_layers_d": cc.n_layers_d, "flip": cc.flip, **recipe}},
                "license": cc.license or "unspecified: inherits the training data's licenses",
                "description": cc.description or description}
        path = tr.out / f"{fname}.safetensors"
        save_generator(path, T, meta)
        return path



@register
class CycleGAN(TranslatorRecipe):
    name = "cyclegan"
    STATE = ("G_A", "G_B", "D_A", "D_B", "opt_G", "opt_D", "pool_A", "pool_B", "sched_G", "sched_D")

    def build_nets(self) -> None:
        cc = self.tr.tc
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

    def phases(self) -> list[Phase]:
        return [Phase("Gmain", self.g_main), Phase("Dmain", self.d_main)]

    def begin_step(self) -> dict:
        (real_A,) = self._flip(self.ds_a.batch(self.order_a.next())[0])
        (real_B,) = self._flip(self.ds_b.batch(self.order_b.next())[0])
        return {"real_A": real_A.to(self.tr.device), "real_B": real_B.to(self.tr.device), "stats": {}}

    def g_main(self, ctx: dict) -> None:
        """Both generators, with the discriminators frozen so their grads stay clean for their own step."""
        cc, real_A, real_B = self.tr.tc, ctx["real_A"], ctx["real_B"]
        for D in (self.D_A, self.D_B):
            D.requires_grad_(False)
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)
        loss_idt = torch.zeros((), device=self.tr.device)
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
        ctx.update(fake_A=fake_A, fake_B=fake_B)
        ctx["stats"].update(loss_G_gan=loss_gan, loss_cycle=loss_cycle, loss_idt=loss_idt)

    def d_main(self, ctx: dict) -> None:
        """Both discriminators on pooled fakes; halved so D learns slower than G, as in the paper."""
        real_A, real_B, fake_A, fake_B = ctx["real_A"], ctx["real_B"], ctx["fake_A"], ctx["fake_B"]
        old_B = self.pool_B.query(fake_B)
        old_A = self.pool_A.query(fake_A)
        loss_D_A = 0.5 * (lsgan(self.D_A(real_B), True) + lsgan(self.D_A(old_B.detach()), False))
        loss_D_B = 0.5 * (lsgan(self.D_B(real_A), True) + lsgan(self.D_B(old_A.detach()), False))
        self.opt_D.zero_grad(set_to_none=True)
        (loss_D_A + loss_D_B).backward()
        self.opt_D.step()
        ctx["stats"].update(loss_D_A=loss_D_A, loss_D_B=loss_D_B)

    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:
        """Rows: A, G_A(A), B, G_B(B)."""
        a, b = self.fixed_images()
        k = max(len(a), len(b))
        pad = lambda x: torch.cat([x, torch.ones(k - len(x), *x.shape[1:])]) if len(x) < k else x  # noqa: E731
        fa = self.G_A(a.to(self.tr.device)).cpu()
        fb = self.G_B(b.to(self.tr.device)).cpu()
        save_grid(torch.cat([pad(a), pad(fa), pad(b), pad(fb)]), path, nrow=k)

    def export(self) -> list[Path]:
        cc = self.tr.tc
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


@register
class Pix2Pix(TranslatorRecipe):
    """pix2pix (Isola et al. 2017): a U-Net translator trained on aligned pairs with a conditional
    PatchGAN (it sees input and output stacked) and an L1 loss to the paired target. Pairs are the
    files with the same relative path in --data-a and --data-b; one A -> B translator is exported."""

    name = "pix2pix"
    EXPORTS = ("translator_A2B.safetensors",)
    STATE = ("G", "D", "opt_G", "opt_D", "sched_G", "sched_D")

    @classmethod
    def check(cls, cfg: dict) -> None:
        res = cfg["resolution"]
        if res & (res - 1) or res < 8:
            raise ValueError(f"pix2pix: --resolution must be a power of two >= 8 (the U-Net halves it down "
                             f"to 1x1), not {res}")
        super().check(cfg)

    def _load(self, path: str, flag: str) -> Dataset:
        ds = super()._load(path, flag)
        if ds.skipped:
            raise DataError(f"{flag}: {ds.skipped} undecodable image(s) would break the pairing; remove them")
        return ds

    def build_nets(self) -> None:
        cc = self.tr.tc
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
        return int(math.log2(self.tr.tc.resolution))

    def phases(self) -> list[Phase]:
        return [Phase("Dmain", self.d_main), Phase("Gmain", self.g_main)]

    def begin_step(self) -> dict:
        idx = self.order_a.next()
        real_A, real_B = self._flip(self.ds_a.batch(idx)[0], self.ds_b.batch(idx)[0])
        real_A, real_B = real_A.to(self.tr.device), real_B.to(self.tr.device)
        # the old loop's key order, so log rows read as before
        stats = dict.fromkeys(("loss_G_gan", "loss_l1", "loss_D"))
        return {"real_A": real_A, "real_B": real_B, "fake_B": self.G(real_A), "stats": stats}

    def d_main(self, ctx: dict) -> None:
        """The conditional PatchGAN on (input, output) pairs."""
        real_A, real_B, fake_B = ctx["real_A"], ctx["real_B"], ctx["fake_B"]

        pred_fake = self.D(torch.cat([real_A, fake_B.detach()], 1))
        pred_real = self.D(torch.cat([real_A, real_B], 1))
        loss_D = 0.5 * (bce(pred_fake, False) + bce(pred_real, True))
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        ctx["stats"]["loss_D"] = loss_D

    def g_main(self, ctx: dict) -> None:
        """Fool D, and stay near the paired target in L1."""
        real_A, real_B, fake_B = ctx["real_A"], ctx["real_B"], ctx["fake_B"]
        self.D.requires_grad_(False)
        loss_gan = bce(self.D(torch.cat([real_A, fake_B], 1)), True)
        loss_l1 = F.l1_loss(fake_B, real_B) * self.tr.tc.lambda_l1
        self.opt_G.zero_grad(set_to_none=True)
        (loss_gan + loss_l1).backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        ctx["stats"].update(loss_G_gan=loss_gan, loss_l1=loss_l1)

    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:
        """Rows: A, G(A), B (the paired targets)."""
        gen = torch.Generator().manual_seed(self.tr.tc.seed + 12345)
        idx = torch.randperm(len(self.ds_a), generator=gen)[:8]
        a, b = self.ds_a.batch(idx)[0], self.ds_b.batch(idx)[0]
        # eval mode: what the exported translator will do (BatchNorm running stats, no dropout)
        self.G.eval()
        fake = self.G(a.to(self.tr.device)).cpu()
        self.G.train()
        save_grid(torch.cat([a, fake, b]), path, nrow=len(idx))

    def export(self) -> list[Path]:
        cc = self.tr.tc
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
