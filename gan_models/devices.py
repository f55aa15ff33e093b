"""The torch device a command runs on. `auto`, every command's default, is the first CUDA GPU when
torch sees one and the CPU otherwise, as NVlabs' tools train and generate on the GPU without being
told. A device that is named but absent is an error that says so before any work starts, rather
than a CUDA initialisation traceback from deep inside the first `.to()`."""
from __future__ import annotations

import argparse

import torch


def resolve(name: str = "auto") -> str:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps` checked against this machine's torch; returns the
    device string to use."""
    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {name!r} is not a torch device: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a build without CUDA")
            raise ValueError(f"device {name!r}: no CUDA GPU is visible to {build}; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r}: Apple's MPS backend is not available in this torch")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r}: only cpu, cuda and mps are supported")
    return str(dev)


def _argument(value: str) -> str:
    try:
        return resolve(value)
    except ValueError as e:  # argparse shows an ArgumentTypeError's own words; a ValueError it rewords
        raise argparse.ArgumentTypeError(str(e)) from None


def add_argument(parser: argparse.ArgumentParser) -> None:
    """The one --device option of every command line (train, metrics, generate, the benchmarks)."""
    parser.add_argument("--device", type=_argument, default="auto",
                        help="auto (default: the first CUDA GPU if torch sees one, else the CPU), cpu, cuda, "
                             "cuda:N or mps")


def cpu_model() -> str:
    """The CPU's name, for benchmark records: a speed figure names the machine it was measured on."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()
