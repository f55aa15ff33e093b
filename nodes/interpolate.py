from __future__ import annotations

from ..gan_models import latents as L


class GANLatentInterpolate:
    CATEGORY = "GAN"
    DESCRIPTION = ("Frames between two GAN latents: slerp in Z, lerp in W. Feed to Generate Image (GAN), "
                   "then to Save Animated WEBP for an animation.")
    RETURN_TYPES = ("GAN_LATENT",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("One latent per frame (per item, frame-major, for batches).",)
    FUNCTION = "interpolate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latent_a": ("GAN_LATENT", {"tooltip": "Start of the path."}),
            "latent_b": ("GAN_LATENT", {"tooltip": "End of the path (same generator and space as latent_a)."}),
            "frames": ("INT", {"default": 16, "min": 2, "max": 4096, "tooltip": "Frames, both ends included."}),
            "method": (["auto", "slerp", "lerp"], {
                "default": "auto", "tooltip": "auto: slerp for z (Gaussian noise lives near a sphere), "
                                              "lerp for w."}),
            "ping_pong": ("BOOLEAN", {"default": False,
                                      "tooltip": "Go there and back for a seamless loop (ends not repeated)."}),
        }}

    def interpolate(self, latent_a, latent_b, frames, method="auto", ping_pong=False):
        return (L.interpolate(latent_a, latent_b, frames, method, ping_pong),)
