"""What every command line shares: argparse types that refuse a bad number by name, before any work.

argparse turns the ValueError of a `type=` into `error: argument --batch: ...` with exit status 2 and
no traceback, so a count of 0, a negative size or a `nan` never reaches the code that would divide by
it, loop forever, or draw black images.
"""
from __future__ import annotations

import argparse
import math


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
