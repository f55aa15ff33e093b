"""example_inputs/gan_style_input.png and .mp4: what the style-transfer example workflows load.

Four Noto Color Emoji glyphs (the shipped translator's source style) at the 64 px it was trained on,
as a 2x2 picture, and as a short video in which they slide past one another. Rendered with
make_emoji_data.render; the video is encoded by ffmpeg (Debian's), H.264 in an MP4, as LoadVideo reads.

    python scripts/make_style_inputs.py [--out example_inputs]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_emoji_data import NOTO_FONT, NOTO_SIZE, render  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GLYPHS = (0x1F431, 0x1F34E, 0x1F31E, 0x1F697)  # cat face, red apple, sun with face, automobile


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "example_inputs")
    p.add_argument("--frames", type=int, default=32)
    a = p.parse_args(argv)
    font = ImageFont.truetype(str(NOTO_FONT), NOTO_SIZE)
    tiles = [render(font, cp, 64, 56) for cp in GLYPHS]
    still = Image.new("RGB", (128, 128), (255, 255, 255))
    for i, t in enumerate(tiles):
        still.paste(t, (64 * (i % 2), 64 * (i // 2)))
    still.save(a.out / "gan_style_input.png", optimize=True)
    with tempfile.TemporaryDirectory() as tmp:
        for f in range(a.frames):
            frame = Image.new("RGB", (128, 128), (255, 255, 255))
            s = round(64 * f / a.frames)  # the top row slides right, the bottom row left, wrapping round
            for i, t in enumerate(tiles):
                x = (64 * (i % 2) + (s if i < 2 else -s)) % 128
                for dx in (x - 128, x):
                    frame.paste(t, (dx, 64 * (i // 2)))
            frame.save(Path(tmp) / f"{f:04d}.png")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-framerate", "16", "-i", str(Path(tmp) / "%04d.png"),
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-movflags", "+faststart",
                        str(a.out / "gan_style_input.mp4")], check=True)
    print("wrote", a.out / "gan_style_input.png", a.out / "gan_style_input.mp4")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
