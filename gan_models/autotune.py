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
    tried on the next items of the same job (real work, nothing is thrown away), each in two samples of
    at least SAMPLE_ITEMS items after one warm-up chunk (the first call at a new shape creates its
    kernels), and the fastest per item is used for the rest. What was measured is kept for the key, so
    a later job goes on where a short one stopped and a search that ended is not run again; it ends
    when two larger sizes in a row are clearly slower per item than the best so far. On a shared
    2-core machine, one chunk timed alone and a stop at the first slower size picked chunk 8 where 16
    and 32 ran 1.1x faster. On a GPU the largest power of two within the bound (at most 256) is used:
    a GPU gains from a large batch."""

    CANDIDATES = (4, 8, 16, 32, 64, 128, 256)
    PEAK_FACTOR = 4  # an op's input, output and the temporaries beside them, over its output alone
    SLOWER = 1.15  # per-item time over the best that ends the search (timing noise stays below it)
    SAMPLE_ITEMS = 32  # a timing sample spans at least this many items: a few-ms chunk alone is at the
    # mercy of the scheduler on a shared machine (one chunk of 8 emoji images took 2.3 to 6.4 ms)

    def __init__(self, key: tuple, device: torch.device, budget_bytes: int | None = None):
        self.key, self.device = ("chunk", *key), device
        if budget_bytes is None:
            avail = available_memory(device)
            budget_bytes = avail // 2 if device.type == "cuda" else min(avail // 4, 4 << 30)
        self.budget = max(1, int(budget_bytes))
        # what was measured, kept per process for the key: per-item times, whether the search ended, the
        # sizes whose kernels exist (warmed up) and samples of sizes not finished yet, so that a job too
        # short for a size's trials leaves them to the next job rather than starting them over
        self.state = chosen(self.key) or {"times": {}, "done": False, "warm": [], "pending": {},
                                           "slower": 0}
        self.limit: int | None = None
        self.best = 1
        self._trials: list[int] = []
        self._acc: dict[int, list[float]] = {}  # size -> [seconds, items] of the sample being timed

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
        st = self.state
        self._trials = [] if st["done"] else [
            c for c in ok if c not in st["times"]
            for _ in range((c not in st["warm"]) + (2 - len(st["pending"].get(c, ()))) * self._chunks_per_sample(c))]
        self._choose(ok)

    def _choose(self, ok=None) -> None:
        times = {c: t for c, t in self.state["times"].items() if c <= (self.limit or c)}
        if times:
            self.best = min(times, key=times.get)
        elif ok:
            self.best = ok[0]

    def _chunks_per_sample(self, size: int) -> int:
        return -(-self.SAMPLE_ITEMS // size)

    def next_chunk(self, remaining: int) -> int:
        return min(self._trials[0] if self._trials else self.best, remaining)

    def record(self, size: int, seconds: float) -> None:
        """After a chunk of `size` items took `seconds`: the trial it was, if it was one (a chunk cut
        short by the end of the job is not: that trial waits for the next job)."""
        if not self._trials or size != self._trials[0]:
            return
        self._trials.pop(0)
        st = self.state
        if size not in st["warm"]:  # the warm-up chunk of this size
            st["warm"].append(size)
            remember(self.key, st)
            return
        acc = self._acc.setdefault(size, [0.0, 0])
        acc[0] += seconds
        acc[1] += size
        if acc[1] < size * self._chunks_per_sample(size):
            return
        st["pending"].setdefault(size, []).append(acc[0] / acc[1])
        del self._acc[size]
        remember(self.key, st)
        if len(st["pending"][size]) < 2:
            return
        times = st["times"]
        times[size] = min(st["pending"].pop(size))
        self._choose()
        slower = size > self.best and times[size] > self.SLOWER * times[self.best]
        st["slower"] = st["slower"] + 1 if slower else 0
        # two larger sizes in a row clearly slower: one alone could be a burst of load on a shared machine
        if not self._trials or st["slower"] >= 2:
            self._trials = []
            self.state["done"] = True
        remember(self.key, self.state)
