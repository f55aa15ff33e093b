"""Speed choices made by measuring on the machine that runs them.

Which of several equivalent ways of computing the same thing is fastest depends on the CPU (its
vector units, caches and core count), the thread count and the shapes: Generate Image (GAN)'s best chunk
size was 16 on one 2-core Xeon and 256 on another machine, and the translator's Winograd path 1.8x
upstream on one CPU and 1.03x on another, where channels-last won. A fixed choice is wrong somewhere,
so each is timed once per process for its (shapes, dtype, threads) key and the winner is kept.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import torch

_CHOSEN: dict[tuple, object] = {}


def machine_key() -> tuple:
    """What a timing depends on besides the work itself."""
    return (torch.get_num_threads(),)


def chosen(key: tuple):
    return _CHOSEN.get((*key, *machine_key()))


def remember(key: tuple, value) -> None:
    _CHOSEN[(*key, *machine_key())] = value


def forget() -> None:
    """Drop every choice (tests; or after the thread count or the load on the machine changed)."""
    _CHOSEN.clear()


def fastest(key: tuple, candidates: dict[str, Callable[[], object]], repeats: int = 2) -> str:
    """The name of the candidate that ran fastest, each called once to warm up (the first call packs
    weights and creates kernels) and then `repeats` times; cached under key."""
    name = chosen(key)
    if name is not None:
        return name
    if len(candidates) == 1:
        (name,) = candidates
    else:
        times = {}
        for cand, fn in candidates.items():
            fn()
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            times[cand] = (time.perf_counter() - t0) / repeats
        name = min(times, key=times.get)
    remember(key, name)
    return name


def available_memory(device: torch.device) -> int:
    """Bytes free for activations on device: CUDA's free memory, or the CPU's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30  # a guess that no machine running this pack lacks


class ChunkTuner:
    """Picks how many items go through a network per call, from its memory and its speed.

    The first item runs alone with hooks that measure its largest activation; an upper bound on the
    chunk follows from the memory budget. On the CPU, chunk sizes from 4 up to that bound are then
    tried on the next items of the same job (real work, nothing is thrown away), each twice, and the
    fastest per item is used for the rest. What was measured is kept for the key, so a later job goes
    on where a short one stopped and a search that ended is not run again; it ends when a larger
    chunk is clearly slower per item than the best so far. On a GPU the largest power of two within
    the bound (at most 256) is used: a GPU gains from a large batch."""

    CANDIDATES = (4, 8, 16, 32, 64, 128, 256)
    PEAK_FACTOR = 4  # an op's input, output and the temporaries beside them, over its output alone
    SLOWER = 1.15  # per-item time over the best that ends the search (timing noise stays below it)

    def __init__(self, key: tuple, device: torch.device, budget_bytes: int | None = None):
        self.key, self.device = ("chunk", *key), device
        if budget_bytes is None:
            avail = available_memory(device)
            budget_bytes = avail // 2 if device.type == "cuda" else min(avail // 4, 4 << 30)
        self.budget = max(1, int(budget_bytes))
        self.state = chosen(self.key) or {"times": {}, "done": False}
        self.limit: int | None = None
        self.best = 1
        self._trials: list[int] = []
        self._pending: dict[int, list[float]] = {}

    def measure_first(self, run: Callable[[int], object], module: torch.nn.Module) -> None:
        """Run one item under hooks that record the largest tensor a module returns."""
        largest = [0]

        def hook(_mod, _inp, out):
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    largest[0] = max(largest[0], t.numel() * t.element_size())

        handles = [m.register_forward_hook(hook) for m in module.modules()]
        try:
            run(1)
        finally:
            for h in handles:
                h.remove()
        self.limit = max(1, self.budget // max(1, largest[0] * self.PEAK_FACTOR))
        ok = [c for c in self.CANDIDATES if c <= self.limit] or [self.limit]
        if self.device.type != "cpu":
            self.best = ok[-1]
            return
        self._trials = [] if self.state["done"] else [c for c in ok if c not in self.state["times"] for _ in (0, 1)]
        self._choose(ok)

    def _choose(self, ok=None) -> None:
        times = {c: t for c, t in self.state["times"].items() if c <= (self.limit or c)}
        if times:
            self.best = min(times, key=times.get)
        elif ok:
            self.best = ok[0]

    def next_chunk(self, remaining: int) -> int:
        return min(self._trials[0] if self._trials else self.best, remaining)

    def record(self, size: int, seconds: float) -> None:
        """After a chunk of `size` items took `seconds`: the trial it was, if it was one (a chunk cut
        short by the end of the job is not: that trial waits for the next job)."""
        if not self._trials or size != self._trials[0]:
            return
        self._trials.pop(0)
        self._pending.setdefault(size, []).append(seconds / size)
        if len(self._pending[size]) < 2:
            return
        times = self.state["times"]
        times[size] = min(self._pending.pop(size))
        self._choose()
        if not self._trials or (size > self.best and times[size] > self.SLOWER * times[self.best]):
            self._trials = []
            self.state["done"] = True
        remember(self.key, self.state)
