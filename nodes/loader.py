from __future__ import annotations

from collections import OrderedDict

import torch

from ..gan_models import load_generator
from . import host

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CACHE: "OrderedDict[tuple, torch.nn.Module]" = OrderedDict()
_CACHE_SIZE = 4


def cached_load(path, device: torch.device, dtype: torch.dtype):
    """Generators are cached by path, modification time, device and dtype: re-running a workflow
    costs nothing, and replacing the file on disk is picked up."""
    key = (str(path), path.stat().st_mtime_ns, str(device), str(dtype))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    G = load_generator(path, device=device, dtype=dtype)
    _CACHE[key] = G
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return G


class LoadGANGenerator:
    CATEGORY = "GAN"
    DESCRIPTION = ("Loads a GAN generator or image-to-image translator: .safetensors, or a .pkl/.pt/.pth/.bin/.tar "
                   "converted safely on first use.")
    RETURN_TYPES = ("GAN_GENERATOR",)
    RETURN_NAMES = ("generator",)
    OUTPUT_TOOLTIPS = ("The loaded network: feed it to Sample Latent (GAN) and Generate Image (GAN), "
                       "or to Style Transfer (GAN) for a translator.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "checkpoint": (host.list_checkpoints(), {
                "tooltip": "A checkpoint from models/gan or the pack's weights/ folder: .safetensors, or an "
                           "NVlabs .pkl, rosinality .pt, CycleGAN .pth, or DCGAN .pth/.tar, converted "
                           "on first use into a .safetensors beside it (read as data: nothing stored in the "
                           "file is run)."}),
            "device": (["auto", "cpu"], {"default": "auto",
                                         "tooltip": "auto: ComfyUI's compute device; cpu: always the CPU."}),
            "dtype": (["float32", "float16", "bfloat16"], {
                "default": "float32",
                "tooltip": "Weights precision. float16/bfloat16 halve memory and are faster on GPUs; "
                           "keep float32 on the CPU."}),
        }, "optional": {
            "key": ("STRING", {
                "default": "",
                "tooltip": "Only for a training checkpoint holding several generators (the error lists them): "
                           "which one to convert, as '/'-joined keys, e.g. models/netG_ema."}),
        }}

    def load(self, checkpoint, device="auto", dtype="float32", key=""):
        path = host.converted(host.checkpoint_path(checkpoint), key.strip())
        G = cached_load(path, host.torch_device(device), DTYPES[dtype])
        return (G,)
