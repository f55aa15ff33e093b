"""Files from the wild dropped into models/gan, on a real ComfyUI: Load GAN Generator lists them,
converts one on first use with the safe converter (outputs identical to the command line's
conversion), reads its cache the next time, and refuses a malicious pickle by name without running
it while the server keeps serving."""
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from comfyui_host import execution_error
from gan_models.archs import dcgan

REPO = Path(__file__).resolve().parents[2]


def _pipeline(checkpoint, prefix, dtype="float32"):
    return {
        "1": {"class_type": "ComfyGAN_LoadGANGenerator",
              "inputs": {"checkpoint": checkpoint, "device": "cpu", "dtype": dtype}},
        "2": {"class_type": "ComfyGAN_SampleLatent",
              "inputs": {"generator": ["1", 0], "seed": 5, "batch_size": 2, "class_index": -1}},
        "3": {"class_type": "ComfyGAN_GenerateImage",
              "inputs": {"generator": ["1", 0], "latent": ["2", 0], "truncation_psi": 1.0}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def _seconds(entry) -> float:
    stamps = {name: data["timestamp"] for name, data in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


def _pixels(files):
    return [np.asarray(Image.open(f)) for f in sorted(files)]


def _choices(host):
    info = host.get("/object_info/ComfyGAN_LoadGANGenerator")["ComfyGAN_LoadGANGenerator"]
    return info["input"]["required"]["checkpoint"][0]


def test_a_dropped_pickle_is_listed_converted_once_and_equals_the_command_line(comfy_host):
    gan = comfy_host.models_dir / "gan"
    gan.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(4)
    G = dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=8))
    torch.save({"epoch": 7, "netG_state_dict": G.state_dict(), "optimizerG_state_dict": {}},
               gan / "dropped_tutorial.tar")
    assert "dropped_tutorial.tar" in _choices(comfy_host)

    first = comfy_host.run(_pipeline("dropped_tutorial.tar", "gan_test/dropped_first"), timeout=300)
    assert first["status"]["status_str"] == "success", execution_error(first)
    cache = gan / "dropped_tutorial.tar.converted.safetensors"
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    assert "dropped_tutorial.tar.converted.safetensors" not in _choices(comfy_host)

    # another dtype: ComfyUI runs the loader again (its inputs changed) and the loader reads the cache
    second = comfy_host.run(_pipeline("dropped_tutorial.tar", "gan_test/dropped_second", "bfloat16"), timeout=300)
    assert second["status"]["status_str"] == "success", execution_error(second)
    assert cache.stat().st_mtime_ns == stamp, "the second load converted again"
    print(f"\nfirst prompt (converts) {_seconds(first):.2f} s, second (reads the cache) {_seconds(second):.2f} s")

    # the command line's conversion of the same file, run through the same graph, draws the same pixels
    subprocess.run([sys.executable, "-m", "gan_models.convert", str(gan / "dropped_tutorial.tar"),
                    str(gan / "dropped_cli.safetensors")], check=True, cwd=REPO)
    cli = comfy_host.run(_pipeline("dropped_cli.safetensors", "gan_test/dropped_cli"), timeout=300)
    assert cli["status"]["status_str"] == "success", execution_error(cli)
    a, b = _pixels(comfy_host.output_files(first)), _pixels(comfy_host.output_files(cli))
    assert len(a) == len(b) == 2 and all(np.array_equal(x, y) for x, y in zip(a, b))


class _Payload:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


def test_a_malicious_pickle_is_refused_by_name_and_never_runs(comfy_host, tmp_path):
    gan = comfy_host.models_dir / "gan"
    gan.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "PWNED"
    (gan / "evil_network.pkl").write_bytes(pickle.dumps({"G_ema": _Payload(f"touch {marker}")}, protocol=4))
    assert "evil_network.pkl" in _choices(comfy_host)
    entry = comfy_host.run(_pipeline("evil_network.pkl", "gan_test/evil"), timeout=300)
    assert entry["status"]["status_str"] == "error"
    err = execution_error(entry)
    assert err["node_type"] == "ComfyGAN_LoadGANGenerator", err
    assert err["exception_type"] == "CheckpointError", err  # not the install folder's module path
    msg = err["exception_message"]
    assert "refused to load global" in msg and "system" in msg and "weights_only=False" in msg, msg
    time.sleep(0.5)
    assert not marker.exists() and not list(gan.glob("evil_network.pkl*.safetensors"))

    torch.manual_seed(1)
    torch.save(dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=8)).state_dict(), gan / "after_evil.pth")
    good = comfy_host.run(_pipeline("after_evil.pth", "gan_test/after_evil"), timeout=300)
    assert good["status"]["status_str"] == "success", execution_error(good)
