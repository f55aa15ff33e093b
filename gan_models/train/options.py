"""What the two training command lines (dcgan/stylegan2 and cyclegan/pix2pix) share beyond
gan_models.cli's number types: a probability type and the error handling of their main()."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..cli import finite_float

# what a run can meet that its message explains: bad data or options, a folder holding another run,
# a diverged loss, a full disk. Anything else is a bug, and its traceback is what finds it.
ERRORS = (ValueError, FloatingPointError, OSError)


def probability(text: str) -> float:
    """A number in [0, 1], ends included (a style-mixing probability of 1 mixes every image)."""
    v = finite_float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{v:g} must be in [0, 1]")
    return v


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
