"""--device on every command line: auto picks the GPU when torch sees one, and a device that is
named but absent stops the command at once with words that say so. The GPU branches run here
through a torch.cuda patched to report GPUs; tests/test_cuda.py runs them on a real one."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from gan_models import devices
from gan_models.train import distributed

ROOT = Path(__file__).resolve().parents[1]


def fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_is_the_gpu_when_torch_sees_one(monkeypatch):
    fake_gpus(monkeypatch, 0)
    assert devices.resolve("auto") == "cpu"
    fake_gpus(monkeypatch, 2)
    assert devices.resolve("auto") == "cuda"
    assert devices.resolve(" CUDA:1 ") == "cuda:1"
    assert devices.resolve("cpu") == "cpu"


@pytest.mark.parametrize("gpus, name, words", [
    (0, "cuda", "no CUDA GPU is visible to torch"),
    (0, "cuda:0", "no CUDA GPU is visible"),
    (1, "cuda:1", "this machine has 1 CUDA GPU(s), cuda:0 to cuda:0"),
    (1, "gpu", "'gpu' is not a torch device: use auto, cpu, cuda, cuda:N or mps"),
    (1, "meta", "only cpu, cuda and mps are supported"),
])
def test_absent_or_unknown_devices_are_named(monkeypatch, gpus, name, words):
    fake_gpus(monkeypatch, gpus)
    with pytest.raises(ValueError) as e:
        devices.resolve(name)
    assert words in str(e.value)


# each command line that takes --device, with the arguments it needs besides
COMMANDS = {
    "gan_models.train.__main__:parse": ["--data", "x", "--out", "y"],
    "gan_models.metrics:main": ["ckpt", "--data", "x"],
    "gan_models.generate:main": [],
    "bench.bench_train:main": [],
}


def command(name):
    module, func = name.split(":")
    if module.startswith("bench."):
        # by file: the pack's root holds an __init__.py, so pytest puts the folder above the checkout on
        # sys.path, where any bench.py would shadow the bench/ folder
        spec = importlib.util.spec_from_file_location(module.replace(".", "_"),
                                                      ROOT / (module.replace(".", "/") + ".py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return getattr(mod, func)
    return getattr(importlib.import_module(module), func)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_refuses_a_missing_gpu_before_it_starts(monkeypatch, capsys, name):
    fake_gpus(monkeypatch, 0)
    with pytest.raises(SystemExit) as e:
        command(name)([*COMMANDS[name], "--device", "cuda"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --device: device 'cuda': no CUDA GPU is visible to torch" in err, err


def test_training_defaults_to_the_gpu_when_there_is_one(monkeypatch):
    parse = command("gan_models.train.__main__:parse")
    fake_gpus(monkeypatch, 0)
    assert parse(COMMANDS["gan_models.train.__main__:parse"]).device == "cpu"
    fake_gpus(monkeypatch, 1)
    assert parse(COMMANDS["gan_models.train.__main__:parse"]).device == "cuda"
    assert parse([*COMMANDS["gan_models.train.__main__:parse"], "--device", "cpu"]).device == "cpu"


def test_torchrun_with_more_ranks_than_gpus_is_named(monkeypatch):
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match=r"local rank 2 has no GPU: this node has 2 CUDA GPU\(s\), so start at "
                                         r"most --nproc_per_node 2"):
        distributed.from_env("cuda")


def test_the_nodes_outside_comfyui_use_the_same_rule(pack, monkeypatch):
    host = sys.modules[pack.__name__ + ".nodes.host"]
    fake_gpus(monkeypatch, 0)
    assert host.torch_device("auto") == torch.device("cpu")
    fake_gpus(monkeypatch, 1)
    assert host.torch_device("auto") == torch.device("cuda") and host.torch_device("cpu") == torch.device("cpu")
