"""ComfyUI adapters: each node turns sockets and widgets into one gan_models call."""
from .generate import GenerateGANImage
from .interpolate import GANLatentInterpolate
from .latent import SampleGANLatent
from .latent_files import LoadGANLatent, SaveGANLatent
from .loader import LoadGANGenerator
from .style import GANStyleTransfer

# Ids carry a pack prefix: ComfyUI silently drops a custom node whose id is a core id (core has
# LatentInterpolate), and short ids collide with other packs. Display names carry the roles.
NODE_CLASS_MAPPINGS = {
    "ComfyGAN_LoadGANGenerator": LoadGANGenerator,
    "ComfyGAN_SampleLatent": SampleGANLatent,
    "ComfyGAN_GenerateImage": GenerateGANImage,
    "ComfyGAN_LatentInterpolate": GANLatentInterpolate,
    "ComfyGAN_SaveLatent": SaveGANLatent,
    "ComfyGAN_LoadLatent": LoadGANLatent,
    "ComfyGAN_GANStyleTransfer": GANStyleTransfer,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ComfyGAN_LoadGANGenerator": "LoadGANGenerator",
    "ComfyGAN_SampleLatent": "SampleLatent (GAN)",
    "ComfyGAN_GenerateImage": "GenerateImage (GAN)",
    "ComfyGAN_LatentInterpolate": "LatentInterpolate (GAN)",
    "ComfyGAN_SaveLatent": "Save GAN Latent",
    "ComfyGAN_LoadLatent": "Load GAN Latent",
    "ComfyGAN_GANStyleTransfer": "GANStyleTransfer",
}
