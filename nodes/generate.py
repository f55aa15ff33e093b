from __future__ import annotations

from ..gan_models import latents as L
from ..gan_models.generate import synthesize
from . import host
from .latent import TRUNC_TOOLTIP

MIX_PRESETS = ["none", "middle", "fine", "custom"]


def to_comfy_image(x):
    """NCHW in [-1, 1] -> IMAGE [B, H, W, C] in 0..1; grayscale becomes RGB so every image node takes it."""
    img = ((x.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
    return img.expand(-1, -1, -1, 3).contiguous() if img.shape[-1] == 1 else img


class GenerateGANImage:
    CATEGORY = "GAN"
    DESCRIPTION = "Turns GAN latents into images, in chunks, with truncation and (StyleGAN) style mixing."
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The generated images, one per latent.",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("GAN_GENERATOR", {"tooltip": "A noise-to-image generator from Load GAN Generator."}),
            "latent": ("GAN_LATENT", {"tooltip": "Latents from Sample Latent (GAN) or Interpolate Latents (GAN)."}),
            "truncation_psi": ("FLOAT", {"default": 1.0, "min": -2.0, "max": 2.0, "step": 0.05,
                                         "tooltip": TRUNC_TOOLTIP}),
        }, "optional": {
            "truncation_cutoff": ("INT", {"default": 0, "min": 0, "max": 64,
                                          "tooltip": "StyleGAN: truncate only the first N layers; 0 = all."}),
            "noise_mode": (["const", "random", "none"], {
                "default": "const", "tooltip": "StyleGAN per-pixel noise: const is reproducible, random varies "
                                               "fine detail on every run, none switches it off."}),
            "mix_latent": ("GAN_LATENT", {"tooltip": "StyleGAN style mixing: this latent supplies the layers "
                                                     "from the crossover on (one item, or one per image)."}),
            "mix_from": (MIX_PRESETS, {"default": "none",
                                       "tooltip": "Where the mix latent takes over: middle = middle and fine "
                                                  "layers (shape kept, look mixed), fine = fine layers only "
                                                  "(colours, texture); from the model's own layer count. "
                                                  "custom uses crossover."}),
            "crossover": ("INT", {"default": 4, "min": 0, "max": 64,
                                  "tooltip": "First layer taken from the mix latent when mix_from is custom."}),
            "chunk_size": ("INT", {"default": 0, "min": 0, "max": 1024,
                                   "tooltip": "Images per forward pass. 0 = auto: as many as the free memory "
                                              "allows, and on a CPU the size that ran fastest on this "
                                              "machine (timed on the first images). Lower it if memory "
                                              "runs out."}),
        }}

    def generate(self, generator, latent, truncation_psi, truncation_cutoff=0, noise_mode="const",
                 mix_latent=None, mix_from="none", crossover=4, chunk_size=0):
        crossover_layer = None
        if mix_latent is not None and mix_from != "none":
            if not L.is_style_based(generator):
                raise ValueError("style mixing needs a style-based generator (StyleGAN)")
            crossover_layer = crossover if mix_from == "custom" else L.mixing_presets(generator.num_ws)[mix_from]
        else:
            mix_latent = None
        images = synthesize(generator, latent, truncation_psi, truncation_cutoff or None, noise_mode,
                            mix_with=mix_latent, crossover=crossover_layer, chunk=chunk_size,
                            progress=host.progress_bar(len(latent)), check_interrupt=host.check_interrupt,
                            memory_budget=host.memory_budget(next(generator.parameters()).device))
        return (to_comfy_image(images),)
