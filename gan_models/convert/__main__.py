"""python -m gan_models.convert SRC DST.safetensors: turn a checkpoint found in the wild into this
project's format, executing nothing stored in the source file."""
from __future__ import annotations

import argparse
import json
import sys

from ..checkpoint import CheckpointError, OutputPathError
from . import convert_file, converters


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gan_models.convert",
        description="Convert a GAN checkpoint (NVlabs .pkl, rosinality .pt, CycleGAN/pix2pix .pth, "
                    "PyTorch-tutorial DCGAN .pth/.tar, pytorch-pretrained-biggan config.json + "
                    "pytorch_model.bin folder) to .safetensors. The source is read by a restricted "
                    "loader: no code stored in it is ever executed.")
    p.add_argument("src", help="checkpoint to convert (a BigGAN: its folder, or its pytorch_model.bin with "
                               "config.json beside it)")
    p.add_argument("dst", help="output .safetensors path")
    p.add_argument("--from", dest="fmt", choices=sorted(converters()),
                   help="source format (default: recognised from the file's contents)")
    p.add_argument("--key", metavar="PATH",
                   help="where the generator is inside the file, as '/'-joined keys and list indices "
                        "(e.g. models/netG_ema; a Lightning prefix ends in a dot: state_dict/generator.); "
                        "needed only where a file holds several generators, which the error then lists")
    p.add_argument("--arch", help="architecture hint passed to the converter")
    p.add_argument("--z-dim", type=int, help="DCGAN: size of z when the first layer also takes a label")
    p.add_argument("--num-classes", type=int, help="DCGAN: one-hot label width concatenated to z")
    p.add_argument("--style-name", help="translators: name / direction of the style, e.g. 'horse2zebra G_A'")
    p.add_argument("--class-names", help="comma-separated class names for a conditional generator")
    p.add_argument("--discriminator", metavar="D.safetensors",
                   help="NVlabs training pickles: also write the discriminator here, for fine-tuning with "
                        "python -m gan_models.train --init G.safetensors --init-d D.safetensors")
    a = p.parse_args(argv)
    options = {k: v for k, v in dict(key=a.key, arch=a.arch, z_dim=a.z_dim, num_classes=a.num_classes,
                                     style_name=a.style_name).items() if v is not None}
    if a.class_names:
        options["class_names"] = [s.strip() for s in a.class_names.split(",")]
    try:
        meta = convert_file(a.src, a.dst, a.fmt, discriminator=a.discriminator, **options)
    except (CheckpointError, OutputPathError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shown = {k: meta[k] for k in ("arch", "kind", "z_dim", "c_dim", "img_resolution", "img_channels") if k in meta}
    print(f"wrote {a.dst}: {json.dumps(shown)}")
    if a.discriminator:
        print(f"wrote {a.discriminator}: the discriminator, for train --init-d")
    return 0


if __name__ == "__main__":
    sys.exit(main())
