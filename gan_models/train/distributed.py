"""Multi-process data parallel training: the same command under torchrun scales out.

    torchrun --nproc_per_node 4 -m gan_models.train --arch stylegan2 --data D --out RUN --batch 64
    torchrun --nproc_per_node 2 -m gan_models.train --arch dcgan --data D --out RUN --batch 64

Each process is one rank (gloo on CPU, nccl on CUDA, one GPU per local rank). The networks start
identical (same seed, then a broadcast from rank 0) and stay identical because every optimiser step
uses gradients summed over all ranks. That sum is done here with one flat all-reduce per network
and phase, as NVlabs' training loop does, instead of wrapping the nets in DistributedDataParallel:
a StyleGAN2 step runs four phases (G main, G path length, D main, D R1) over different parts of
the graph, with double backward and gradient accumulation, and the wrapper's per-backward hooks
would need find_unused_parameters and no_sync bookkeeping to give the same result.

Data and noise are sharded, not re-drawn: every rank draws the random numbers of the whole global
batch from the same seeded generators and keeps its own rows. So the run is a function of the
global batch only - a snapshot resumes with any world size, and two ranks compute what one process
would with the same micro-batches.

DCGAN's generator has BatchNorm, which in one process normalises over the whole batch. Under
torchrun its BatchNorm2d layers become CrossRankBatchNorm2d, whose statistics are summed over ranks
(gradients too), so R ranks of B/R images train the model one process trains with B.
"""
from __future__ import annotations

import datetime
import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) as an autograd op: every rank uses the sum, so the gradient of each rank's
    input is the sum of all ranks' gradients of the output."""

    @staticmethod
    def forward(ctx, t):
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return t
        out = t.to(self.device)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(t.device)

    def sync_grads(self, params, nan_to_num: bool = True) -> None:
        """Sum gradients over ranks (each rank's losses are already scaled to the global batch).
        A parameter without a gradient counts as zero. nan_to_num as NVlabs, except under a
        GradScaler, which must see the infinities to skip the step."""
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        if self.active:
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad = g.reshape(p.shape).clone()
        if nan_to_num:
            for p in params:
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)

    def all_reduce_sum_grad(self, t: torch.Tensor) -> torch.Tensor:
        """A sum over ranks that gradients flow back through (each rank gets the sum of all ranks'
        gradients of the result), for statistics of the global batch inside a loss."""
        return _SumOverRanks.apply(t) if self.active else t

    def shard(self) -> slice:
        """This rank's rows of a global batch: every world-th row. Strided, not blocked, so a
        group of rows i, i + n/k, i + 2n/k, ... of the global batch (minibatch-stddev groups,
        mode-seeking pairs) lands whole on one rank whenever n is a multiple of k * world."""
        return slice(self.rank, None, self.world)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        if not self.active:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch: the sums go
    through an all-reduce that gradients flow back through, so R ranks normalise, back-propagate
    and update their running statistics as one process with the whole batch would. torch's
    SyncBatchNorm does the same on GPUs only; this one runs on gloo too. Same parameters and
    buffers as BatchNorm2d, so state dicts and exports are unchanged."""

    group = Dist()  # one process; cross_rank_batchnorm sets the run's group on each layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.group.active):
            return super().forward(x)
        reduce, c = self.group.all_reduce_sum_grad, x.shape[1]
        xf = x.float()  # statistics in fp32 under autocast too, as BatchNorm keeps them
        count = reduce(torch.tensor([xf.numel() / c], dtype=xf.dtype, device=x.device))
        # two passes (mean, then centred squares) as BatchNorm does, not E[x^2] - E[x]^2
        mean = reduce(xf.sum(dim=(0, 2, 3))) / count
        var = reduce(((xf - mean[:, None, None]) ** 2).sum(dim=(0, 2, 3))) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * (count / (count - 1)), m)
        out = (xf - mean[:, None, None]) * torch.rsqrt(var + self.eps)[:, None, None]
        if self.affine:
            out = out * self.weight[:, None, None] + self.bias[:, None, None]
        return out.to(x.dtype)


def cross_rank_batchnorm(module: nn.Module, group: Dist) -> nn.Module:
    """Swap every BatchNorm2d of `module` for a CrossRankBatchNorm2d over `group`, in place
    (parameters and buffers are kept, so optimisers and state dicts still match)."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = CrossRankBatchNorm2d
            m.group = group
    return module


def launched_world() -> int:
    """How many processes torchrun started (WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def from_env(device: str = "cpu") -> Dist:
    """The process group torchrun describes in RANK/WORLD_SIZE/LOCAL_RANK (a single process when
    absent). CUDA ranks each take the GPU of their local rank."""
    world = launched_world()
    dev = torch.device(device)
    if world <= 1:
        return Dist(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise ValueError(f"torchrun local rank {local} has no GPU: this node has {count} CUDA GPU(s), so "
                             f"start at most --nproc_per_node {count} (or train on --device cpu with gloo)")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        # torch.optim imports torch._dynamo on first use, and with it modules (torch.distributed.nn.functional
        # and others) whose default arguments are `group=group.WORLD`, read at import. Imported after this
        # call they hold the group for good: destroy_process_group then cannot join gloo's worker threads,
        # which meet the interpreter's finalisation and abort the rank now and then (SIGABRT after a good
        # run, "terminate called without an active exception"). Imported first, they hold None.
        importlib.import_module("torch._dynamo")
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=30))
    return Dist(rank=rank, world=world, local_rank=local, device=dev)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
