"""docs/icon.png, the pack's icon in the Comfy Registry and ComfyUI-Manager: a 3x3 grid drawn by the
shipped Fashion-MNIST generator, one class per cell, each tinted with its own colour so the square reads
at thumbnail size.

    python scripts/make_icon.py [--out docs/icon.png] [--size 256]
"""
from __future__ import annotations

import argparse
import colorsys
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from gan_models import load_generator  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "docs" / "icon.png"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args(argv)
    G = load_generator(REPO / "weights" / "fashion_mnist_cdcgan.safetensors")
    g = torch.Generator().manual_seed(a.seed)
    classes = [0, 1, 2, 3, 4, 5, 7, 8, 9]  # 6 (shirt) reads like 0 and 2 at this size
    z = torch.randn(len(classes), G.z_dim, generator=g)
    c = torch.nn.functional.one_hot(torch.tensor(classes), G.c_dim).float()
    with torch.no_grad():
        img = (G(z, c, truncation_psi=0.7) + 1) / 2  # [9,1,H,W] in 0..1
    cell = a.size // 3
    canvas = np.full((cell * 3, cell * 3, 3), 255, np.uint8)
    for i in range(len(classes)):
        rgb = np.array(colorsys.hsv_to_rgb(i / len(classes), 0.65, 0.95))
        x = img[i, 0].clamp(0, 1).numpy()
        tile = (1 - x[..., None]) * 1.0 + x[..., None] * rgb  # white paper, garment in its colour
        tile = Image.fromarray((tile * 255).round().astype(np.uint8)).resize((cell, cell), Image.LANCZOS)
        r, col = divmod(i, 3)
        canvas[r * cell:(r + 1) * cell, col * cell:(col + 1) * cell] = np.asarray(tile)
    out = Path(a.out)
    Image.fromarray(canvas).resize((a.size, a.size), Image.LANCZOS).save(out, optimize=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
