"""What only a GPU can show: StyleGAN3 on CUDA against the CPU (the shipped weights in each precision
on CUDA are in test_weights.py, the mixed-precision steps in test_train_stylegan2.py); the training
step on CUDA against the same step on the CPU; snapshots moving between the two; torchrun over NCCL
against one process.

They skip, saying so, where torch sees no CUDA GPU (CI, and this project's 2-core machines). On a
machine with one: `python -m pytest tests -k cuda`.

Comparisons are fp32 against fp32 with TF32 off (TF32 rounds matmul and convolution inputs to 10
bits: right for training speed, wrong for a check that the two devices compute the same thing)."""
from __future__ import annotations

import json

import pytest
import torch

import gan_models
from gan_models.archs import stylegan3 as sg3
from gan_models.train import Trainer, snapshot
import _nets
from test_train_distributed import ARGS, assert_close_runs, single, torchrun
from test_train_stylegan2 import config


pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU visible to torch: these compare CUDA with the CPU")


@pytest.fixture(autouse=True)
def no_tf32():
    with _nets.no_tf32():
        yield


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return _nets.digit_class_folders(tmp_path_factory.mktemp("digits"), 3, 8, "digit")


def test_stylegan3_on_cuda_matches_the_cpu():
    """SG3's filtered leaky ReLU is plain torch here (no custom CUDA op to build), so the same code runs on both."""
    torch.manual_seed(0)
    G = sg3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=64, img_channels=3, channel_base=256,
                      channel_max=16).eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        want = G(z, None, truncation_psi=0.7)
        got = G.cuda()(z.cuda(), None, truncation_psi=0.7).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


COMMON = dict(aug="diffaug", mirror=True, extra=dict(r1_interval=2, pl_weight=1.0, pl_interval=2))


def test_training_on_cuda_follows_the_cpu(digits, tmp_path):
    """Images, latents, noise and augmentation are drawn on the CPU whatever the device, so both runs
    see the same numbers. The first step's losses come from the same weights and agree to float32
    rounding. After that Adam divides each gradient by its own RMS, so a coordinate whose gradient is
    near zero may turn a rounding difference into a step of up to lr, in either direction: the
    weights are held to 2 lr per step at most, and to 1e-4 on all but 1% of coordinates (different
    data or noise moves most coordinates by far more)."""
    steps = 3
    Trainer(config(digits, tmp_path / "cpu", steps, snapshot_every=0, **COMMON)).run()
    Trainer(config(digits, tmp_path / "cuda", steps, snapshot_every=0, device="cuda", **COMMON)).run()
    rows = [[json.loads(x) for x in (tmp_path / d / "log.jsonl").read_text().splitlines()] for d in ("cpu", "cuda")]
    for key in ("loss_d", "loss_g", "r1", "pl"):
        assert rows[1][0][key] == pytest.approx(rows[0][0][key], rel=1e-4, abs=1e-6), key
    a, _ = snapshot.load_latest(tmp_path / "cpu")
    b, _ = snapshot.load_latest(tmp_path / "cuda")
    lr = a["opt_G"]["param_groups"][0]["lr"]
    for net in ("G", "D"):
        diff = torch.cat([(a[net][k].float() - b[net][k].float()).abs().flatten() for k in a[net]])
        assert float(diff.max()) <= 2 * lr * steps, net
        assert float((diff > 1e-4).float().mean()) < 0.01, net


@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_snapshots_resume_on_the_other_device(digits, tmp_path, first, then):
    """A run started on one machine goes on on another: the snapshot holds CPU tensors only, the
    optimiser state follows the parameters, and CUDA RNG states are kept for as many GPUs as exist."""
    Trainer(config(digits, tmp_path, 2, device=first, **COMMON)).run()
    state, _ = snapshot.load_latest(tmp_path)
    assert all(v.device.type == "cpu" for net in ("G", "D", "G_ema") for v in state[net].values())
    Trainer(config(digits, tmp_path, 4, device=then, resume=True, **COMMON)).run()
    state, _ = snapshot.load_latest(tmp_path)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for net in ("G", "D", "G_ema") for v in state[net].values())
    G = gan_models.load_generator(tmp_path / "generator.safetensors", device=then)
    assert next(G.parameters()).device.type == then


@pytest.mark.skipif(torch.cuda.device_count() < 2,
                    reason=f"NCCL needs one GPU per rank: 2 GPUs, this machine has {torch.cuda.device_count()}")
@pytest.mark.parametrize("arch", sorted(ARGS))
def test_two_gpu_ranks_over_nccl_match_one_gpu(arch, digits, tmp_path):
    """The gloo test (test_train_distributed.py) on GPUs: torchrun --nproc_per_node 2 with NCCL
    against one process with the whole batch on one GPU, to the same tolerance and for the same reasons."""
    single(arch, digits, tmp_path / "one", 4, "--device", "cuda")
    torchrun(arch, digits, tmp_path / "two", 4, "--device", "cuda")
    assert_close_runs(tmp_path / "one", tmp_path / "two")
