"""ComfyUI adapters: each node turns sockets and widgets into one gan_models call."""
from .direction_files import LoadGANDirections, SaveGANDirections
from .directions import ApplyGANDirection, FindGANDirections, GANDirectionSweep
from .generate import GenerateGANImage
from .interpolate import GANLatentInterpolate
from .invert import InvertGANImage
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
    "ComfyGAN_InvertImage": InvertGANImage,
    "ComfyGAN_FindDirections": FindGANDirections,
    "ComfyGAN_ApplyDirection": ApplyGANDirection,
    "ComfyGAN_DirectionSweep": GANDirectionSweep,
    "ComfyGAN_SaveDirections": SaveGANDirections,
    "ComfyGAN_LoadDirections": LoadGANDirections,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ComfyGAN_LoadGANGenerator": "Load GAN Generator",
    "ComfyGAN_SampleLatent": "Sample Latent (GAN)",
    "ComfyGAN_GenerateImage": "Generate Image (GAN)",
    "ComfyGAN_LatentInterpolate": "Interpolate Latents (GAN)",
    "ComfyGAN_SaveLatent": "Save GAN Latent",
    "ComfyGAN_LoadLatent": "Load GAN Latent",
    "ComfyGAN_GANStyleTransfer": "Style Transfer (GAN)",
    "ComfyGAN_InvertImage": "Invert Image (GAN)",
    "ComfyGAN_FindDirections": "Find Directions (GAN)",
    "ComfyGAN_ApplyDirection": "Apply Direction (GAN)",
    "ComfyGAN_DirectionSweep": "Direction Sweep (GAN)",
    "ComfyGAN_SaveDirections": "Save GAN Directions",
    "ComfyGAN_LoadDirections": "Load GAN Directions",
}
