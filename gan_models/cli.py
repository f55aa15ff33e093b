"""What every command line shares: argparse types that refuse a bad number by name, before any work.

argparse turns the ValueError of a `type=` into `error: argument --batch: ...` with exit status 2 and
no traceback, so a count of 0, a negative size or a `nan` never reaches the code that would divide by
it, loop forever, or draw black images.
"""
from __future__ import annotations

import argparse
import math
import shlex


def _number(text: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") \
            from None


def positive_int(text: str) -> int:
    v = _number(text, int)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def nonneg_int(text: str) -> int:
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be 0 or more")
    return v


def finite_float(text: str) -> float:
    v = _number(text, float)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return v


def positive_float(text: str) -> float:
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{v:g} must be greater than 0")
    return v


def nonneg_float(text: str) -> float:
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v:g} must be 0 or more")
    return v


def unit_interval(text: str) -> float:
    """A number in [0, 1): Adam betas, EMA decays."""
    v = finite_float(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"{v:g} must be in [0, 1)")
    return v


def probability(text: str) -> float:
    """A number in [0, 1], ends included (a style-mixing probability of 1 mixes every image)."""
    v = finite_float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{v:g} must be in [0, 1]")
    return v


# Debian's packaged datasets and fonts are at the same place on every machine: naming them tells a
# reader where the data came from. Every other absolute path is the author's own disk.
_SHARED_PREFIXES = ("/usr/share/",)


def public_path(text: str) -> str:
    """An absolute local path as it may be published: its last component (`/home/me/runs/emoji` ->
    `emoji`). Relative paths, and system data paths, stay as written."""
    if not text.startswith("/") or text.startswith(_SHARED_PREFIXES):
        return text
    return text.rstrip("/").rsplit("/", 1)[-1] or text


def public_command(prog: list[str], argv: list[str]) -> str:
    """The command line recorded in a file the project may publish (a checkpoint's header, a benchmark
    result): the arguments as given, local absolute paths reduced by `public_path`, including the
    value of an `--opt=/path` argument."""
    words = []
    for a in argv:
        if a.startswith("--") and "=" in a:
            opt, _, val = a.partition("=")
            a = f"{opt}={public_path(val)}"
        else:
            a = public_path(a)
        words.append(a)
    return " ".join(shlex.quote(x) for x in [*prog, *words])
