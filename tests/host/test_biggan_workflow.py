"""A BigGAN release folder (config.json + pytorch_model.bin, as pytorch-pretrained-biggan ships it)
dropped into models/gan, on a real ComfyUI: Load GAN Generator lists its weights, converts them on first
use, and a class sweep (SampleLatent's class_list) draws one image per class at truncation 0.4 that
equals the library's own drawing of the same latents."""
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from comfyui_host import execution_error
from gan_models import latents as L, load_generator
from gan_models.convert import convert_file
from gan_models.generate import synthesize

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "biggan" / "biggan_r128_ch4_c10"  # 128 px, 10 classes


def test_biggan_folder_runs_a_class_sweep(comfy_host, tmp_path):
    folder = comfy_host.models_dir / "gan" / "biggan-deep-tiny"
    shutil.copytree(FIXTURE, folder, dirs_exist_ok=True)
    name = "biggan-deep-tiny/pytorch_model.bin"
    info = comfy_host.get("/object_info/ComfyGAN_LoadGANGenerator")["ComfyGAN_LoadGANGenerator"]
    assert name in info["input"]["required"]["checkpoint"][0]
    prompt = {
        "1": {"class_type": "ComfyGAN_LoadGANGenerator", "inputs": {"checkpoint": name, "device": "cpu",
                                                                     "dtype": "float32"}},
        "2": {"class_type": "ComfyGAN_SampleLatent",
              "inputs": {"generator": ["1", 0], "seed": 11, "batch_size": 1, "class_index": -1,
                         "class_list": "0-9"}},
        "3": {"class_type": "ComfyGAN_GenerateImage",
              "inputs": {"generator": ["1", 0], "latent": ["2", 0], "truncation_psi": 0.4}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "gan_test/biggan_sweep"}},
    }
    entry = comfy_host.run(prompt, timeout=300)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    files = sorted(comfy_host.output_files(entry))
    assert len(files) == 10
    got = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.int16) for f in files])
    assert got.shape == (10, 128, 128, 3)
    assert all(np.abs(got[i] - got[j]).max() > 0 for i in range(10) for j in range(i))  # the class matters

    convert_file(FIXTURE, tmp_path / "biggan.safetensors")
    G = load_generator(tmp_path / "biggan.safetensors")
    want = synthesize(G, L.sample(G, [11] * 10, list(range(10))), truncation_psi=0.4, chunk=16)
    want = ((want + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.int16).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - want).max() <= 1  # one 8-bit level: the node rounds as ComfyUI's SaveImage does
