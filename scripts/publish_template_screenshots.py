"""Copy the template browser test's screenshots into docs/templates/ as small JPEGs, with an index.

    TEMPLATE_SCREENSHOTS=SHOTS COMFYUI_PATH=... pytest tests/host/test_template_browser.py
    python scripts/publish_template_screenshots.py SHOTS [--size 1280x800]

One picture per template: the editor as a user sees it after opening the template from the template
browser and pressing Run, at --size. docs/templates/README.md lists them with the size and the date.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("shots", type=Path, help="the TEMPLATE_SCREENSHOTS folder of a passed browser test")
    p.add_argument("--size", default="1280x800", help="which window size to publish (default 1280x800)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "templates")
    p.add_argument("--quality", type=int, default=80)
    a = p.parse_args(argv)
    templates = sorted(t.stem for t in (ROOT / "example_workflows").glob("*.json"))
    missing = [t for t in templates if not (a.shots / f"{t}-{a.size}.png").is_file()]
    failed = sorted(s.name for s in a.shots.glob("*.failed.png"))
    if missing or failed:
        print(f"error: {a.shots} lacks {missing} or holds failed runs {failed}: publish a passed run only",
              file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for t in templates:
        im = Image.open(a.shots / f"{t}-{a.size}.png").convert("RGB")
        im.save(a.out / f"{t}.jpg", quality=a.quality, optimize=True)
        rows.append(f"### {t}\n\n![{t}]({t}.jpg)\n")
    (a.out / "README.md").write_text(
        f"# The example workflows in the editor\n\nEach template opened from ComfyUI's template browser and run "
        f"with the Run button, in headless Chromium at {a.size}, as `tests/host/test_template_browser.py` checks "
        f"it (no missing node or validation message, status success, every node and output preview in view "
        f"without panning); published {datetime.date.today().isoformat()} by "
        f"`scripts/publish_template_screenshots.py`.\n\n" + "\n".join(rows))
    print(f"wrote {len(templates)} screenshots to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
