"""Finding the generator inside a checkpoint by its structure.

Training scripts save whatever they like around the generator: `{"netG_state_dict": ..., "netD_state_dict":
..., "optimizerG_state_dict": ...}`, `{"models": {"gen": ...}}`, `[G, D]`, or a Lightning `state_dict`
whose keys carry `generator.` and `discriminator.` prefixes. A list of wrapper names never ends, so
the checkpoint is walked instead (bounded: it is untrusted), each part that a registered converter
recognises becomes a candidate, and names only rank candidates: an EMA copy before the generator,
a generator before anything else, discriminators and optimizer states never.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..checkpoint import CheckpointError

MAX_DEPTH = 8           # a training script nests its generator a few levels deep at most
MAX_VISITS = 100_000    # containers and tensors looked at, each path to a shared object counted again
_NOT_A_GENERATOR = {"d", "disc", "discriminator", "critic", "netd", "optim", "optimizer", "opt", "optimizers",
                    "scheduler", "sched", "scaler", "ema_model_d"}
_EMA = {"ema", "averaged", "avg", "running"}
_GENERATOR = {"g", "gen", "generator", "netg", "generators"}


@dataclass
class Candidate:
    path: str            # '/'-joined keys and list indices; a key prefix inside a flat dict ends in '.'
    obj: object
    converter: str
    tensors: int

    def rank(self) -> int:
        words = _words(self.path)
        if words & _EMA:
            return 0
        return 1 if words & _GENERATOR else 2


def _words(path: str) -> set[str]:
    """The words of a path, case and camelCase split: 'optimizerG_state_dict' -> optimizer, g, state, dict."""
    out = set()
    for part in re.split(r"[/._\-\s\[\]]+", path):
        out |= {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", part)}
        out.add(part.lower())
    return out


def _excluded(path: str) -> bool:
    return bool(_words(path) & _NOT_A_GENERATOR)


def _tensor_count(obj) -> int:
    return sum(isinstance(v, torch.Tensor) for v in obj.values()) if isinstance(obj, Mapping) else 0


def _children(obj):
    if isinstance(obj, Mapping):
        return [(str(k), v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(obj)]
    return []


def _prefix_groups(obj: Mapping) -> dict[str, dict]:
    """A flat state dict that holds several networks side by side ('generator.x', 'discriminator.y'),
    split at its first dotted name: each group is tried as a network of its own."""
    groups: dict[str, dict] = {}
    for k, v in obj.items():
        if isinstance(k, str) and isinstance(v, torch.Tensor) and "." in k:
            head, rest = k.split(".", 1)
            groups.setdefault(head + ".", {})[rest] = v
    return groups if len(groups) > 1 else {}


def resolve(obj, path: str):
    """The part of obj at `path` (what --key names); a last part ending in '.' selects a key prefix."""
    here, walked = obj, []
    for part in (p for p in path.strip("/").split("/") if p):
        if part.endswith(".") and isinstance(here, Mapping):
            group = _prefix_groups(here).get(part) if _prefix_groups(here) else None
            if group is None:
                group = {k[len(part):]: v for k, v in here.items()
                         if isinstance(k, str) and k.startswith(part) and isinstance(v, torch.Tensor)}
            if not group:
                raise CheckpointError(f"--key {path}: no tensor names start with {part!r} at "
                                      f"{'/'.join(walked) or 'the top level'}")
            here = group
        else:
            kids = dict(_children(here))
            if part not in kids:
                shown = ", ".join(repr(k) for k in list(kids)[:12]) or "nothing to look into"
                raise CheckpointError(f"--key {path}: no {part!r} at {'/'.join(walked) or 'the top level'} "
                                      f"(there: {shown})")
            here = kids[part]
        walked.append(part)
    return here


def candidates(obj, converters: dict) -> list[Candidate]:
    """Every part of obj that a converter recognises, outermost first; a recognised part is not
    looked into (its own converter knows its insides)."""
    found: list[Candidate] = []
    visits = 0
    stack = [("", obj, 0)]
    while stack:
        path, here, depth = stack.pop(0)
        visits += 1
        if visits > MAX_VISITS:
            raise CheckpointError(f"looking for the generator: more than {MAX_VISITS:,} parts to look at; "
                                  f"name it with --key")
        if isinstance(here, torch.Tensor):
            continue
        names = [name for name, c in converters.items() if _detects(c, here)]
        if names and path:
            found.append(Candidate(path, here, names[0], _tensor_count(here)))
            continue
        if depth >= MAX_DEPTH:
            continue
        kids = _children(here)
        visits += len(kids)
        stack += [(f"{path}/{k}" if path else k, v, depth + 1) for k, v in kids
                  if not isinstance(v, torch.Tensor)]
        if isinstance(here, Mapping):
            for prefix, group in _prefix_groups(here).items():
                names = [name for name, c in converters.items() if _detects(c, group)]
                if names:
                    found.append(Candidate(f"{path}/{prefix}" if path else prefix, group, names[0], len(group)))
    return found


def _detects(conv, obj) -> bool:
    try:
        return bool(conv.detect(obj))
    except CheckpointError:
        return False


def choose(found: list[Candidate]) -> Candidate | None:
    """The generator among the candidates, or a CheckpointError naming each where names cannot decide."""
    usable = [c for c in found if not _excluded(c.path)]
    if not usable:
        return None
    best = min(c.rank() for c in usable)
    top = [c for c in usable if c.rank() == best]
    if len(top) > 1:
        listed = "; ".join(f"{c.path} ({c.converter}, {c.tensors} tensors)" for c in top)
        raise CheckpointError(f"{len(top)} generators in this file: {listed}. Name one with --key PATH "
                              f"(e.g. --key {top[0].path})")
    return top[0]


def describe(obj) -> str:
    """What a file holds at its top level, for an error that has found nothing: keys, types, tensor counts."""
    kids = _children(obj)
    if not kids:
        return f"only a value of type {type(obj).__name__}"
    parts = []
    for k, v in kids[:16]:
        n = _tensor_count(v)
        kind = f"{type(v).__name__}" + (f", {n} tensors" if n else "")
        parts.append(f"{k!r} ({kind})")
    more = f", and {len(kids) - 16} more" if len(kids) > 16 else ""
    return "top-level " + ", ".join(parts) + more


def closest(obj) -> str:
    """The biggest state dict in obj and what the registry says of it: the nearest thing to a generator."""
    from .. import registry

    best, stack, visits = ("", {}), [("", obj, 0)], 0
    while stack and visits < MAX_VISITS:
        path, here, depth = stack.pop()
        visits += 1
        if isinstance(here, Mapping) and _tensor_count(here) > _tensor_count(best[1]):
            best = (path, here)
        if depth < MAX_DEPTH:
            stack += [(f"{path}/{k}" if path else k, v, depth + 1) for k, v in _children(here)
                      if not isinstance(v, torch.Tensor)]
    path, sd = best
    if not sd:
        return "no tensors anywhere in it"
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    where = path or "the top level"
    try:
        arch = registry.detect({str(k): v for k, v in sd.items()}, {})
    except CheckpointError as e:
        return f"the largest state dict, at {where} ({len(sd)} tensors), matches no architecture: {e}"
    return (f"the largest state dict, at {where} ({len(sd)} tensors), looks like {arch.name} but does not "
            f"build{registry._why_not(arch, sd, {})}")
