"""StyleGAN2 training (`--arch stylegan2`): the recipe and one training step. The networks are
gan_models.archs.stylegan2's Generator and Discriminator.

One step is NVlabs' four phases: G main (non-saturating logistic), G path length (lazy, every
pl_interval steps), D main (logistic on reals and fakes), D R1 (lazy, every r1_interval steps); the
lazy phases are weighted by their interval and the Adam hyper-parameters of each net are adjusted
for the extra steps (lr * c, beta ** c with c = interval / (interval + 1)), as in the paper.
Style mixing (probability 0.9) at every G call, the EMA generator with NVlabs' ramp-up and a
running w_avg complete it.

Where it departs from NVlabs, so that a step depends on the global batch only, never on how it is
split into ranks and accumulation rounds (see distributed.py):
- the loss of each micro-batch is its per-image sum divided by the global batch, so summed
  gradients are the global mean (NVlabs sums the rounds' means);
- all random numbers (z, labels, crossover layer, per-pixel noise, augmentation parameters) are
  drawn for the whole global batch from seeds taken once per step from the run's generator, and
  each micro-batch keeps its rows; style mixing draws one crossover per image rather than per batch;
- minibatch-stddev groups are consecutive images (NVlabs: strided), so a group never straddles
  two micro-batches as long as batch_gpu is a multiple of the group size;
- w_avg and the path-length mean are updated once per step from the global batch mean, and the
  path-length penalty uses the mean from before the step.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..archs.stylegan2 import Discriminator, Generator
from ..cli import nonneg_float, positive_int, probability
from .generators import GeneratorRecipe, ema_update, one_hot
from .losses import mode_seeking_penalty
from .loop import Phase, register


def generator_kwargs(cfg: dict) -> dict:
    return dict(z_dim=cfg["z_dim"], c_dim=cfg["c_dim"], w_dim=cfg["w_dim"], img_resolution=cfg["resolution"],
                img_channels=cfg["channels"],
                mapping_kwargs=dict(num_layers=cfg["map_layers"], lr_multiplier=0.01),
                synthesis_kwargs=dict(channel_base=cfg["cbase"], channel_max=cfg["cmax"], num_fp16_res=0,
                                      conv_clamp=256, architecture="skip"))


def _check_resolution(r: int) -> None:
    if r < 8 or r & (r - 1):
        raise ValueError(f"--arch stylegan2 needs a power-of-two --resolution >= 8, not {r}")


def _check(cfg: dict) -> None:
    r = cfg["resolution"]
    _check_resolution(r)
    if min(cfg["cbase"] // r, cfg["cmax"]) < 1:
        raise ValueError(f"--cbase {cfg['cbase']} --cmax {cfg['cmax']} leave no channels at {r} px (the width at "
                         f"resolution r is min(cbase // r, cmax)): use --cbase {r} or more and --cmax 1 or more")


# ------------------------------------------------------------------------------------------------
# The training step

def lazy_adams(G: nn.Module, D: nn.Module, cfg: dict) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and D under lazy regularisation, as NVlabs' training loop: a net whose penalty runs
    every k steps gets lr * c and betas ** c, c = k / (k + 1), since Adam sees fewer, larger steps."""
    def adam(module, interval):
        c = interval / (interval + 1) if interval else 1.0
        b1, b2 = cfg["betas"]
        return torch.optim.Adam(module.parameters(), lr=cfg["lr"] * c, betas=(b1 ** c, b2 ** c), eps=1e-8)
    return (adam(G, cfg["pl_interval"] if cfg["pl_weight"] > 0 else 0),
            adam(D, cfg["r1_interval"] if cfg["r1_gamma"] > 0 else 0))


@dataclass
class _Inputs:
    """Generator inputs drawn for the whole global batch (rows are sliced per micro-batch)."""
    z: torch.Tensor
    c: torch.Tensor | None
    z2: torch.Tensor
    cutoff: torch.Tensor
    noise: list = field(default_factory=list)


@register
class StyleGAN2(GeneratorRecipe):
    name = "stylegan2"
    defaults = dict(z_dim=512, w_dim=512, map_layers=8, cbase=32768, cmax=512, mbstd_group=4,
                    lr=0.0025, betas=(0.0, 0.99), loss="logistic", augment="none", ema_beta=None,
                    r1_gamma=None, r1_interval=16, pl_weight=0.0, pl_interval=4, style_mixing=0.9,
                    ema_kimg=None, ema_rampup=0.05,
                    # NHWC: 1.2x (64 px) to 1.6x (256 px) the steps per second on CPU in fp32, 1.3x in bf16
                    # (bench/results/train_cpu-20261122-172818.json); NVlabs use it for their fp16 layers
                    channels_last=True)
    shape_keys = GeneratorRecipe.shape_keys + ("w_dim", "map_layers", "cbase", "cmax", "mbstd_group")
    record_keys = ("w_dim", "map_layers", "cbase", "cmax", "r1_gamma", "r1_interval", "pl_weight", "pl_interval",
                   "style_mixing", "ema_kimg", "ema_rampup", "aug", "ada_target", "mirror", "precision")

    @staticmethod
    def add_options(g) -> None:
        g.add_argument("--w-dim", type=positive_int, help="intermediate latent size (default 512)")
        g.add_argument("--map-layers", type=positive_int, help="mapping network depth (default 8)")
        g.add_argument("--cbase", type=positive_int,
                       help="channel base: width at resolution r is min(cbase/r, cmax) (default 32768)")
        g.add_argument("--cmax", type=positive_int, help="maximum width (default 512)")
        g.add_argument("--r1-gamma", type=nonneg_float, help="R1 weight (default NVlabs' 0.0002 * res^2 / batch)")
        g.add_argument("--r1-interval", type=positive_int, help="steps between R1 steps (default 16)")
        g.add_argument("--pl-weight", type=nonneg_float,
                       help="path-length regularisation weight (default 0: off; the paper uses 2)")
        g.add_argument("--pl-interval", type=positive_int, help="steps between path-length steps (default 4)")
        g.add_argument("--style-mixing", type=probability, help="style-mixing probability (default 0.9)")
        g.add_argument("--ema-kimg", type=nonneg_float, help="EMA half-life in kimg (default batch * 10 / 32)")
        g.add_argument("--ema-rampup", type=nonneg_float, help="EMA ramp-up ratio (default 0.05; 0: none)")

    @staticmethod
    def check_resolution(r: int) -> None:
        _check_resolution(r)

    @classmethod
    def check(cls, cfg: dict) -> None:
        super().check(cfg)
        _check(cfg)
        if cfg["precision"] not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"--precision must be fp32, bf16 or fp16, not {cfg['precision']!r}")
        if not cfg.get("aug") and cfg["augment"] != "none":  # --augment translation is DCGAN's
            raise ValueError("--arch stylegan2 takes --aug none|diffaug|ada, not --augment")

    @classmethod
    def derive(cls, cfg: dict) -> None:
        if cfg.get("r1_gamma") is None:
            cfg["r1_gamma"] = 0.0002 * cfg["resolution"] ** 2 / cfg["batch"]  # NVlabs' 'auto' heuristic
        if cfg.get("ema_kimg") is None:
            cfg["ema_kimg"] = cfg["batch"] * 10 / 32

    def make_G(self, cfg: dict) -> nn.Module:
        return Generator(**generator_kwargs(cfg))

    def make_D(self, cfg: dict) -> nn.Module:
        return Discriminator(cfg["c_dim"], cfg["resolution"], cfg["channels"], channel_base=cfg["cbase"],
                             channel_max=cfg["cmax"], mbstd_group_size=cfg["mbstd_group"],
                             mbstd_num_channels=1 if cfg["mbstd_group"] else 0,
                             mapping_kwargs=dict(num_layers=cfg["map_layers"]))

    def make_optimizers(self, cfg: dict):
        return lazy_adams(self.G, self.D, cfg)

    def export_meta_arch(self, G: nn.Module, cfg: dict) -> dict:
        return {"arch": "stylegan2", "kind": "generator", "z_dim": G.z_dim, "c_dim": G.c_dim, "w_dim": G.w_dim,
                "num_ws": G.num_ws, "img_resolution": G.img_resolution, "img_channels": G.img_channels,
                "init_kwargs": generator_kwargs(cfg)}

    def build(self) -> None:
        super().build()
        tr, cfg = self.tr, self.tr.cfg
        B, world = tr.tc.batch, tr.dist.world
        if B % world:
            raise ValueError(f"--batch {B} does not split over {world} processes")
        bgpu = cfg.get("batch_gpu") or B // world
        if (B // world) % bgpu:
            raise ValueError(f"--batch {B} over {world} process(es) is {B // world} per process, "
                             f"which --batch-gpu {bgpu} does not divide")
        if bgpu % 2:
            raise ValueError(f"--batch-gpu must be even (the path-length batch is half of it), not {bgpu}")
        self.B, self.bgpu, self.rounds = B, bgpu, B // (world * bgpu)
        prec = cfg["precision"]
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]
        self.scaler_G = torch.amp.GradScaler(tr.device.type, enabled=prec == "fp16")
        self.scaler_D = torch.amp.GradScaler(tr.device.type, enabled=prec == "fp16")
        self.channels_last = bool(cfg.get("channels_last"))
        if self.channels_last:
            self.D.to(memory_format=torch.channels_last)
        self.pl_mean = torch.zeros([], dtype=torch.float64)
        self.last: dict[str, float] = {}
        self.noise_shapes = [s[2:] for s in self.G.synthesis.noise_shapes()]

    # -- state ----------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {**super().extra_state(),
                "stepper": {"pl_mean": self.pl_mean.clone(), "scaler_G": self.scaler_G.state_dict(),
                            "scaler_D": self.scaler_D.state_dict()}}

    def load_extra_state(self, s: dict) -> None:
        super().load_extra_state(s)
        st = s.get("stepper") or {}
        if "pl_mean" in st:
            self.pl_mean = st["pl_mean"].clone().to(torch.float64)
        if st.get("scaler_G"):
            self.scaler_G.load_state_dict(st["scaler_G"])
        if st.get("scaler_D"):
            self.scaler_D.load_state_dict(st["scaler_D"])

    # -- helpers --------------------------------------------------------------------------------
    def autocast(self, regulariser: bool = False):
        # fp16's gradients of D and G with respect to their inputs overflow long before the loss's do
        # (NaN at a loss scale of 2^10 already): the lazy penalties run in fp32 under fp16, their cost
        # spread over 4 or 16 steps. bf16 has float32's range and runs them as it runs the rest.
        if self.amp_dtype is None or (regulariser and self.amp_dtype == torch.float16):
            return contextlib.nullcontext()
        return torch.autocast(self.tr.device.type, dtype=self.amp_dtype)

    def chunks(self, total: int):
        """(rows, round index) of this rank's micro-batches of a phase over `total` global images:
        chunk k = rank * rounds + round, so one process with R rounds sees the chunks R ranks would."""
        cs = total // (self.tr.dist.world * self.rounds)
        for r in range(self.rounds):
            k = self.tr.dist.rank * self.rounds + r
            yield slice(k * cs, (k + 1) * cs)

    def draw_inputs(self, seed: int, n: int, paired: bool = False) -> _Inputs:
        """`paired`: in each micro-batch the second half has the labels of the first, row for row, so
        the mode-seeking term compares two z's under one label without crossing micro-batches."""
        g = torch.Generator().manual_seed(seed)
        cfg = self.tr.cfg
        z = torch.randn(n, cfg["z_dim"], generator=g)
        c = None
        if cfg["c_dim"]:
            # labels as often as the data has them
            c = self.ds.labels[torch.randint(0, len(self.ds.labels), (n,), generator=g)]
            if paired:
                c = c.view(-1, 2, n // (2 * self.tr.dist.world * self.rounds))
                c = c[:, :1].expand_as(c).reshape(n)
        z2 = torch.randn(n, cfg["z_dim"], generator=g)
        num_ws = self.G.num_ws
        mix = torch.rand(n, generator=g) < cfg["style_mixing"]
        cutoff = torch.where(mix, torch.randint(1, num_ws, (n,), generator=g), torch.full((n,), num_ws))
        noise = [torch.randn(n, 1, h, w, generator=g) for h, w in self.noise_shapes]
        return _Inputs(z, c, z2, cutoff, noise)

    def onehot(self, y):
        c = one_hot(y, self.tr.cfg["c_dim"])
        return None if c is None else c.to(self.tr.device)

    def run_G(self, inp: _Inputs, rows: slice, need_ws_mean: bool = False):
        dev, G = self.tr.device, self.G
        z, c = inp.z[rows].to(dev), self.onehot(inp.c[rows] if inp.c is not None else None)
        ws = G.mapping(z, c)
        w_sum = ws[:, 0].detach().float().sum(0) if need_ws_mean else None
        cut = inp.cutoff[rows].to(dev)
        if bool((cut < G.num_ws).any()):
            ws2 = G.mapping(inp.z2[rows].to(dev), c)
            layer = torch.arange(G.num_ws, device=dev)[None, :, None]
            ws = torch.where(layer < cut[:, None, None], ws, ws2)
        img = G.synthesis(ws, noise=[t[rows].to(dev) for t in inp.noise], channels_last=self.channels_last)
        return img, ws, w_sum, c

    def run_D(self, img, c, aug_seed: int, rows: slice, total: int):
        # the same seed for every micro-batch: each one re-draws the global parameters and keeps its rows
        img = self.augment(img, gen=torch.Generator().manual_seed(aug_seed), total=total, offset=rows.start)
        if self.channels_last:
            img = img.contiguous(memory_format=torch.channels_last)
        return self.D(img, c)

    def backward(self, loss, scaler):
        scaler.scale(loss).backward()

    def opt_step(self, module, opt, scaler):
        self.tr.dist.sync_grads(module.parameters(), nan_to_num=not scaler.is_enabled())
        scaler.step(opt)
        scaler.update()

    # -- one step: NVlabs' four phases ------------------------------------------------------------
    def phases(self) -> list[Phase]:
        cfg = self.tr.cfg
        return [Phase("Gmain", self.g_main),
                Phase("Greg", self.g_reg, cfg["pl_interval"] if cfg["pl_weight"] > 0 else 0),
                Phase("Dmain", self.d_main),
                Phase("Dreg", self.d_reg, cfg["r1_interval"] if cfg["r1_gamma"] > 0 else 0)]

    def begin_step(self) -> dict:
        seeds = torch.randint(0, 2 ** 62, (9,), generator=self.noise).tolist()
        idx = self.order.next()
        flips = torch.rand(self.B, generator=torch.Generator().manual_seed(seeds[0])) < 0.5
        # sums, reduced over ranks at the end
        return {"seeds": seeds, "idx": idx, "flips": flips, "stats": torch.zeros(10, dtype=torch.float64)}

    def g_main(self, ctx: dict) -> None:
        """Non-saturating logistic loss. When the path-length phase is due too, both add into one Adam step."""
        B, seeds, stats = self.B, ctx["seeds"], ctx["stats"]
        ms = self.tr.cfg.get("mode_seeking") or 0.0
        inp = self.draw_inputs(seeds[1], B, paired=bool(ms))
        self.opt_G.zero_grad(set_to_none=True)
        self.D.requires_grad_(False)
        for rows in self.chunks(B):
            with self.autocast():
                img, _, _, c = self.run_G(inp, rows)
                logits = self.run_D(img, c, seeds[2], rows, B).float()
            loss = F.softplus(-logits).sum()
            total = loss
            if ms:
                # per micro-batch; its weight is that micro-batch's share of the global batch
                term = ms * mode_seeking_penalty(inp.z[rows].to(img.device), img.float())
                total = total + term * (rows.stop - rows.start)
                stats[9] += term.detach().double().cpu() * (rows.stop - rows.start)
            self.backward(total / B, self.scaler_G)
            stats[0] += loss.item()
        if "Greg" not in ctx["due"]:
            self.opt_step(self.G, self.opt_G, self.scaler_G)

    def g_reg(self, ctx: dict) -> None:
        """Path length, lazily: E|J_w^T y| kept near its running mean (Karras et al. 2020, sec. 3.2)."""
        cfg, dev, seeds, stats = self.tr.cfg, self.tr.device, ctx["seeds"], ctx["stats"]
        Bp = self.B // 2
        inp = self.draw_inputs(seeds[3], Bp)
        pl_g = torch.Generator().manual_seed(seeds[4])
        res, ch = cfg["resolution"], cfg["channels"]
        pl_noise = torch.randn(Bp, ch, res, res, generator=pl_g) / res
        pl_sum = torch.zeros([], dtype=torch.float64)
        gain = cfg["pl_weight"] * cfg["pl_interval"]
        for rows in self.chunks(Bp):
            with self.autocast(regulariser=True):
                img, ws, _, _ = self.run_G(inp, rows)
                s = (img.float() * pl_noise[rows].to(dev)).sum()
            (grads,) = torch.autograd.grad(s, ws, create_graph=True)
            lengths = grads.float().square().sum(2).mean(1).sqrt()
            penalty = (lengths - self.pl_mean.to(dev, torch.float32)).square()
            # img * 0 keeps every synthesis parameter in the graph (gradient 0, not None)
            self.backward((penalty.sum() * gain + img[:, 0, 0, 0].float().sum() * 0) / Bp, self.scaler_G)
            pl_sum += lengths.detach().double().sum().cpu()
            stats[6] += penalty.detach().double().sum().cpu()
        self.opt_step(self.G, self.opt_G, self.scaler_G)
        tot = self.tr.dist.all_reduce_sum(pl_sum.reshape(1))[0]
        if torch.isfinite(tot):  # an fp16 overflow (the GradScaler skips that step) must not stick
            self.pl_mean = self.pl_mean.lerp(tot / Bp, 0.01)

    def d_main(self, ctx: dict) -> None:
        """Logistic loss on fakes and (mirrored, augmented) reals."""
        cfg, dev, B, seeds, stats = self.tr.cfg, self.tr.device, self.B, ctx["seeds"], ctx["stats"]
        self.D.requires_grad_(True)
        inp = self.draw_inputs(seeds[5], B)
        self.opt_D.zero_grad(set_to_none=True)
        w_sum = torch.zeros(cfg["w_dim"], dtype=torch.float64)
        reals = []
        for rows in self.chunks(B):
            with torch.no_grad(), self.autocast():
                fake, _, ws_sum, c_fake = self.run_G(inp, rows, need_ws_mean=True)
            w_sum += ws_sum.double().cpu()
            x, y = self.ds.batch(ctx["idx"][rows])
            if cfg.get("mirror"):
                x = torch.where(ctx["flips"][rows, None, None, None], x.flip(3), x)
            x = x.to(dev)
            c_real = self.onehot(y)
            reals.append((x, c_real, rows))
            with self.autocast():
                fake_logits = self.run_D(fake.detach(), c_fake, seeds[6], rows, B).float()
                real_logits = self.run_D(x, c_real, seeds[7], rows, B).float()
            loss_fake, loss_real = F.softplus(fake_logits).sum(), F.softplus(-real_logits).sum()
            self.backward((loss_fake + loss_real) / B, self.scaler_D)
            if hasattr(self.augment, "observe"):
                self.augment.observe(real_logits)
            stats[1] += (loss_fake + loss_real).item()
            stats[2] += real_logits.detach().double().sum().cpu()
            stats[3] += fake_logits.detach().double().sum().cpu()
        self.opt_step(self.D, self.opt_D, self.scaler_D)
        ctx.update(w_sum=w_sum, reals=reals)

    def d_reg(self, ctx: dict) -> None:
        """R1, lazily: gradient penalty on reals, weighted by the interval it stands for."""
        cfg, B, stats = self.tr.cfg, self.B, ctx["stats"]
        self.opt_D.zero_grad(set_to_none=True)
        gain = cfg["r1_gamma"] / 2 * cfg["r1_interval"]
        for x, c_real, rows in ctx["reals"]:
            x = x.detach().requires_grad_(True)
            with self.autocast(regulariser=True):
                logits = self.run_D(x, c_real, ctx["seeds"][8], rows, B).float()
            (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            penalty = g.float().square().sum(dim=[1, 2, 3])
            self.backward((penalty.sum() * gain + logits.sum() * 0) / B, self.scaler_D)
            stats[5] += penalty.detach().double().sum().cpu()
        self.opt_step(self.D, self.opt_D, self.scaler_D)

    def end_step(self, ctx: dict) -> dict:
        """w_avg: a running mean of the global batch's w; then the EMA generator (NVlabs' ramp-up)."""
        cfg, B, dist = self.tr.cfg, self.B, self.tr.dist
        w_sum = dist.all_reduce_sum(ctx["w_sum"])
        m = self.G.mapping
        with torch.no_grad():
            m.w_avg.copy_((w_sum / B).to(m.w_avg).lerp(m.w_avg, m.w_avg_beta))
            cur_nimg = self.tr.step * B
            ema_nimg = cfg["ema_kimg"] * 1000
            if cfg["ema_rampup"]:
                ema_nimg = min(ema_nimg, cur_nimg * cfg["ema_rampup"])
            beta = 0.5 ** (B / max(ema_nimg, 1e-8))
        ema_update(self.G_ema, self.G, beta)
        if hasattr(self.augment, "step"):
            self.augment.step()

        stats = dist.all_reduce_sum(ctx["stats"])
        out = {"loss_d": float(stats[1] / B), "loss_g": float(stats[0] / B),
               "d_real": float(stats[2] / B), "d_fake": float(stats[3] / B), "aug_p": float(self.augment.p)}
        if cfg.get("mode_seeking"):
            out["ms"] = float(stats[9] / B)
        # the lazy penalties are measured every few steps; each row carries the latest, so a log
        # written every N steps still has them
        if "Dreg" in ctx["due"]:
            self.last["r1"] = float(stats[5] / B)
        if "Greg" in ctx["due"]:
            self.last["pl"] = float(stats[6] / (B // 2))
            self.last["pl_mean"] = float(self.pl_mean)
        out.update(self.last)
        if getattr(self.augment, "rt", None) is not None:
            out["ada_rt"] = float(self.augment.rt)
        return out
