from __future__ import annotations

from ..gan_models import latents as L
from . import host


EMPTY = "(no latent files yet)"


class SaveGANLatent:
    CATEGORY = "GAN"
    DESCRIPTION = "Saves GAN latents (with their seeds and labels) as a small .safetensors file to reuse or share."
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latent": ("GAN_LATENT", {"tooltip": "The latents to keep."}),
            "filename_prefix": ("STRING", {"default": "gan_latent",
                                           "tooltip": "File name start; a counter is added. Saved under "
                                                      "output/gan_latents."}),
        }}

    def save(self, latent, filename_prefix="gan_latent"):
        path = host.numbered_file(host.latent_dirs()[0], filename_prefix)
        L.save_latent(path, latent)
        return {"ui": {"text": [path.name]}}


class LoadGANLatent:
    CATEGORY = "GAN"
    DESCRIPTION = "Loads GAN latents saved by Save GAN Latent (from output/gan_latents or input/gan_latents)."
    RETURN_TYPES = ("GAN_LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The saved latents, with their seeds and labels.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent_file": (host.listing(host.latent_dirs()[1], EMPTY), {"tooltip": "A latent file saved by Save GAN Latent."})}}

    def load(self, latent_file):
        _, dirs = host.latent_dirs()
        if latent_file == EMPTY:
            raise FileNotFoundError("no latent files yet: save some with Save GAN Latent, or put files in "
                                    f"{', '.join(str(d) for d in dirs)}")
        return (L.load_latent(host.find_file(dirs, latent_file, "latent file")),)
