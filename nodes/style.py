from __future__ import annotations

import torch

from ..gan_models.translate import translate
from . import host


def _is_oom(e: BaseException) -> bool:
    # CUDA says "out of memory"; a CPU allocation that fails says "can't allocate memory" (ENOMEM)
    msg = str(e).lower()
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in msg or "allocate memory" in msg


class GANStyleTransfer:
    CATEGORY = "GAN"
    DESCRIPTION = ("Image-to-image GAN translation (CycleGAN, pix2pix): any size, large images in feathered "
                   "tiles, video frames in chunks.")
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The styled images, exactly the input size.",)
    FUNCTION = "transfer"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "translator": ("GAN_GENERATOR", {"tooltip": "An image-to-image translator from Load GAN Generator."}),
            "image": ("IMAGE", {"tooltip": "Images or video frames to style."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "1 = the translation, 0 = the input, between = a blend."}),
        }, "optional": {
            "process_resolution": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                           "tooltip": "Translate with the longer side at this size, then scale "
                                                      "back (models trained at 256 px often look best near it); "
                                                      "0 = full size."}),
            "tile_size": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                  "tooltip": "Largest tile side; 0 = tile only when the memory budget needs it."}),
            "tile_overlap": ("INT", {"default": 32, "min": 0, "max": 512,
                                     "tooltip": "Overlap between tiles, blended with feathered weights."}),
            "memory_budget_mb": ("INT", {"default": 2048, "min": 64, "max": 262144,
                                         "tooltip": "Activation memory allowed per pass; larger frames are tiled. "
                                                    "Halved and retried automatically on out-of-memory."}),
            "chunk_size": ("INT", {"default": 4, "min": 1, "max": 256,
                                   "tooltip": "Frames per pass: bounds memory for long videos."}),
        }}

    def transfer(self, translator, image, strength, process_resolution=0, tile_size=0, tile_overlap=32,
                 memory_budget_mb=2048, chunk_size=4):
        budget = float(memory_budget_mb)
        while True:
            try:
                out = translate(translator, image, strength=strength,
                                process_resolution=process_resolution or None, max_tile=tile_size or None,
                                tile_overlap=tile_overlap, memory_budget_mb=budget, chunk=chunk_size,
                                progress=host.progress_bar(image.shape[0]), check_interrupt=host.check_interrupt)
                return (out,)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                if not _is_oom(e) or budget <= 64:
                    raise
                host.soft_empty_cache()
                budget /= 2  # as core's upscale nodes do: retry with smaller tiles
