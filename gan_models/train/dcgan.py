"""DCGAN training (`--arch dcgan`): the recipe and its step.

The networks are gan_models.archs.dcgan's Generator and ProjectionDiscriminator, initialised
with N(0, 0.02) as Radford et al.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..archs import dcgan
from ..cli import unit_interval
from . import distributed
from .generators import GeneratorRecipe, ema_update, one_hot
from .loop import Phase, linear_decay, register
from .losses import AUGMENTS as AUGMENT_CHOICES, d_loss, g_loss, mode_seeking_penalty


@register
class DCGAN(GeneratorRecipe):
    """Radford et al.'s generator against the projection discriminator above; hinge loss, EMA of G,
    translation augmentation, each step one D update then one G update."""
    name = "dcgan"
    defaults = dict(z_dim=100, ngf=64, ndf=32, mbstd_group=4, lr=2e-4, betas=(0.5, 0.999), ema_beta=0.999,
                    loss="hinge", augment="translation",
                    channels_last=False)  # about 1.0x on CPU (bench_train.py): not worth it

    @staticmethod
    def add_options(g) -> None:
        g.add_argument("--loss", choices=("hinge", "logistic"), help="(default hinge)")
        g.add_argument("--augment", choices=sorted(AUGMENT_CHOICES),
                       help="differentiable augmentation (default translation); --aug replaces it")
        g.add_argument("--ema-beta", type=unit_interval, help="EMA decay of the exported generator (default 0.999)")

    @staticmethod
    def check_resolution(r: int) -> None:
        dcgan.first_kernel(r)  # 28 or a power of two >= 8: what both networks halve down to 4..7 px

    @classmethod
    def check(cls, cfg: dict) -> None:
        super().check(cfg)
        if cfg["precision"] not in ("fp32", "bf16"):
            raise ValueError(f"--arch dcgan supports --precision fp32 or bf16, not {cfg['precision']!r}")

    def make_G(self, cfg: dict) -> nn.Module:
        layout = dcgan.make_layout(cfg["z_dim"], cfg["c_dim"], cfg["resolution"], cfg["channels"],
                                   ngf=cfg["ngf"], bias=False)
        G = dcgan.Generator(layout, cfg["c_dim"])
        return dcgan.init_weights(G)

    def make_D(self, cfg: dict) -> nn.Module:
        return dcgan.ProjectionDiscriminator(cfg["resolution"], cfg["channels"], cfg["c_dim"], ndf=cfg["ndf"],
                                       mbstd_group=cfg["mbstd_group"])

    def export_meta_arch(self, G: nn.Module, cfg: dict) -> dict:
        return {"arch": "dcgan", "kind": "generator", "z_dim": G.z_dim, "c_dim": G.c_dim,
                "img_resolution": G.img_resolution, "img_channels": G.img_channels}

    def build(self) -> None:
        super().build()
        tr = self.tr
        if tr.tc.batch % tr.dist.world:
            raise ValueError(f"--batch {tr.tc.batch} does not split over {tr.dist.world} processes")
        # the generator's BatchNorm normalises over the global batch, as in one process
        distributed.cross_rank_batchnorm(self.G, tr.dist)
        if tr.cfg["channels_last"]:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)

    # -- one step: D main, then G main ------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("Dmain", self.d_main), Phase("Gmain", self.g_main)]

    def begin_step(self) -> dict:
        tr = self.tr
        start = tr.tc.lr_decay_from
        if start is not None:
            # From each group's initial_lr (kept in the optimizer state, so a snapshot written before
            # the decay began, or by a run without one, resumes onto the schedule this run asks for).
            f = linear_decay(tr.step, start, tr.tc.steps)
            for opt in (self.opt_G, self.opt_D):
                for group in opt.param_groups:
                    group["lr"] = group.setdefault("initial_lr", group["lr"]) * f
        # every rank draws the whole batch's data and noise and keeps its rows (distributed.py), so
        # the run is the same on any number of ranks; losses are scaled to the global mean
        return {"B": tr.tc.batch, "mine": tr.dist.shard(), "share": 1.0 / tr.dist.world}

    def autocast(self):
        return (torch.autocast(self.tr.device.type, dtype=torch.bfloat16) if self.tr.cfg["precision"] == "bf16"
                else contextlib.nullcontext())

    def d_main(self, ctx: dict) -> None:
        """Real vs fake, fakes asked for the real batch's labels (so both sides share one class mix)."""
        tr, cfg, dev = self.tr, self.tr.cfg, self.tr.device
        B, mine, c_dim = ctx["B"], ctx["mine"], cfg["c_dim"]
        with self.autocast():
            x, y = self.ds.batch(self.order.next()[mine])
            x = x.to(dev)
            y = y.to(dev) if y is not None else None
            z = torch.randn(B, cfg["z_dim"], generator=self.noise)[mine].to(dev)
            with torch.no_grad():
                fake = self.G(z, one_hot(y, c_dim))
            real_logits = self.D(self.augment(x, gen=self.noise, total=B, offset=mine), y)
            fake_logits = self.D(self.augment(fake, gen=self.noise, total=B, offset=mine), y)
            loss_d = d_loss(cfg["loss"], real_logits, fake_logits)
            if hasattr(self.augment, "observe"):  # ADA's overfitting heuristic reads D(real)
                self.augment.observe(real_logits)
            self.opt_D.zero_grad(set_to_none=True)
            (loss_d * ctx["share"]).backward()
        tr.dist.sync_grads(self.D.parameters(), nan_to_num=False)  # no-op in one process
        self.opt_D.step()
        ctx.update(loss_d=loss_d, real_logits=real_logits, fake_logits=fake_logits)

    def g_main(self, ctx: dict) -> None:
        """Fresh z, uniform labels so rare classes get as many G updates as common ones."""
        tr, cfg, dev = self.tr, self.tr.cfg, self.tr.device
        B, mine, c_dim, share = ctx["B"], ctx["mine"], cfg["c_dim"], ctx["share"]
        with self.autocast():
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
                ms_term = ms * mode_seeking_penalty(z, fake, reduce=tr.dist.all_reduce_sum_grad)
                loss_g = loss_g + ms_term
                total_g = total_g + ms_term * share
            self.opt_G.zero_grad(set_to_none=True)
            total_g.backward()
        tr.dist.sync_grads(self.G.parameters(), nan_to_num=False)  # no-op in one process
        self.opt_G.step()
        self.D.requires_grad_(True)
        ctx["loss_g"] = loss_g

    def end_step(self, ctx: dict) -> dict:
        tr = self.tr
        # EMA warm-up: early weights move fast, a fixed 0.999 would average in the random init
        beta = min(tr.cfg["ema_beta"], (1 + tr.step) / (10 + tr.step))
        ema_update(self.G_ema, self.G, beta)
        if hasattr(self.augment, "step"):
            self.augment.step()
        stats = torch.stack([ctx["loss_d"].detach(), ctx["loss_g"].detach(), ctx["real_logits"].detach().mean(),
                             ctx["fake_logits"].detach().mean()]).double().cpu()
        stats = tr.dist.all_reduce_sum(stats) / tr.dist.world  # equal shards: the mean of rank means
        return dict(zip(("loss_d", "loss_g", "d_real", "d_fake"), stats.tolist()))
