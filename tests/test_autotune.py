"""Speed choices made by measuring: the chunk tuner's memory bound and search, with timings given to it
(so the test does not depend on this machine's speed), and that the automatic paths draw what the
fixed ones draw."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_models import autotune, latents as L, load_generator
from gan_models.generate import synthesize
from gan_models.translate import fastest_cpu_path, translate


@pytest.fixture(autouse=True)
def _fresh():
    autotune.forget()
    yield
    autotune.forget()


class Wide(nn.Module):
    """One activation of 1000 floats per item (4000 bytes)."""

    def forward(self, x):
        return x.new_zeros(x.shape[0], 1000)


def _tuner(budget, key=("k",), device="cpu"):
    t = autotune.ChunkTuner(key, torch.device(device), budget_bytes=budget)
    net = Wide()
    t.measure_first(lambda n: net(torch.zeros(n, 1)), net)
    return t


def test_memory_bounds_the_chunk():
    t = _tuner(budget=4000 * 4 * 10)  # room for 10 items at 4x their largest activation
    assert t.limit == 10
    sizes = []
    while t._trials:
        s = t.next_chunk(10_000)
        sizes.append(s)
        t.record(s, 1.0 * s)
    assert max(sizes) <= 10 and sorted(set(sizes)) == [4, 8]
    assert _tuner(budget=100).limit == 1  # nothing fits twice: one item at a time


def test_search_keeps_the_fastest_and_stops_when_larger_is_clearly_slower():
    # 32 and 64 are >15% slower than 16: the search ends there (one slower size alone does not end it)
    per_item = {4: 3.0, 8: 2.0, 16: 1.0, 32: 1.3, 64: 9.9, 128: 0.1}
    t = _tuner(budget=1 << 40)
    tried = []
    while t._trials:
        s = t.next_chunk(10_000)
        # a size's first chunk creates kernels: far slower, and not counted
        t.record(s, per_item[s] * s * (40 if s not in tried else 1))
        tried.append(s)
    # each size: one warm-up chunk, then two samples of at least 32 items
    assert tried == [4] * 17 + [8] * 9 + [16] * 5 + [32] * 3 + [64] * 3 and t.best == 16
    assert t.next_chunk(10_000) == 16 and t.next_chunk(5) == 5
    again = _tuner(budget=1 << 40)  # the same key later: no new trials
    assert not again._trials and again.best == 16
    assert _tuner(budget=1 << 40, key=("other",))._trials  # another model searches for itself


def test_one_slower_size_does_not_end_the_search():
    """A burst of load can make one size look slow: the search goes on to the next size."""
    per_item = {4: 3.0, 8: 2.0, 16: 2.5, 32: 1.0, 64: 1.3, 128: 1.4, 256: 0.1}
    t = _tuner(budget=1 << 40)
    while t._trials:
        s = t.next_chunk(10_000)
        t.record(s, per_item[s] * s)
    assert t.best == 32 and sorted(t.state["times"]) == [4, 8, 16, 32, 64, 128]


def test_a_short_job_leaves_the_search_for_the_next():
    t = _tuner(budget=1 << 40)
    remaining = 17 * 4 + 8 + 3  # the job ends inside the second size's trials
    while remaining:
        s = t.next_chunk(remaining)
        t.record(s, 1.0 * s)
        remaining -= s
    later = _tuner(budget=1 << 40)
    # size 8 warmed up in the first job: the next one goes on with its two samples, not a new warm-up
    assert later._trials == [8] * 8 + [16] * 5 + [32] * 3 + [64] * 3 + [128] * 3 + [256] * 3


def test_jobs_shorter_than_a_trial_still_finish_the_search():
    """Jobs of 300 items with sizes up to 256: each job times what fits (a chunk cut short by the end of
    a job is no trial) and the next goes on, so the search ends instead of warming up 256 every job."""
    per_item = {4: 3.0, 8: 2.0, 16: 1.5, 32: 1.2, 64: 1.1, 128: 1.0, 256: 0.9}
    for _ in range(10):
        t = _tuner(budget=1 << 40)
        remaining = 300
        while remaining:
            s = t.next_chunk(remaining)
            t.record(s, per_item.get(s, 1.0) * s)  # a cut-short chunk: its time is not used
            remaining -= s
        if t.state["done"]:
            break
    assert t.state["done"] and t.best == 256


def test_gpu_takes_the_largest_power_of_two_within_memory():
    t = _tuner(budget=4000 * 4 * 100, device="cuda")  # device type only: nothing runs on a GPU here
    assert t.best == 64 and not t._trials


def test_auto_chunk_draws_what_a_fixed_chunk_draws():
    G = load_generator()  # the shipped Fashion-MNIST DCGAN
    lat = L.sample(G, list(range(40)), "random")
    done = []
    auto = synthesize(G, lat, chunk=0, progress=lambda d, n: done.append(d))
    fixed = synthesize(G, lat, chunk=16)
    assert done[0] == 1 and done[-1] == 40 and done == sorted(done)
    assert torch.allclose(auto, fixed, atol=1e-5)


def test_translator_cpu_path_is_timed_once_and_gives_the_same_images():
    T = load_generator(__import__("gan_models").DEFAULT_CHECKPOINT.parent / "emoji_noto2openmoji.safetensors")
    img = torch.rand(2, 40, 56, 3)
    ref = translate(T, img, fast=False)
    auto = translate(T, img)
    assert torch.allclose(auto, ref, atol=1e-4)
    keys = [k for k in autotune._CHOSEN if k[0] == "translator"]
    assert len(keys) == 1 and autotune._CHOSEN[keys[0]] in ("eager", "channels_last", "winograd")
    net = fastest_cpu_path(T, (1, 3, 40, 56), torch.float32)  # cached: no timing, the same kind of copy
    assert (net is T) == (autotune._CHOSEN[keys[0]] == "eager")
