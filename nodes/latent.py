from __future__ import annotations

from ..gan_models import latents as L
from ..gan_models.generate import require_generator

MAX_BATCH = 4096
TRUNC_TOOLTIP = ("Truncation psi: 1 = no truncation; lower values trade variety for typical, cleaner "
                 "images; 0 gives the average image.")


class SampleGANLatent:
    CATEGORY = "GAN"
    DESCRIPTION = "Samples one latent per image from a seed, as NVlabs' gen_images.py does (seed, seed+1, ...)."
    RETURN_TYPES = ("GAN_LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("GAN latents: feed to Generate Image (GAN) or Interpolate Latents (GAN). "
                       "Not a Stable Diffusion LATENT.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("GAN_GENERATOR", {"tooltip": "The generator the latent is for."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF,
                             "tooltip": "Item i of the batch uses seed + i, so any single image can be found again."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": MAX_BATCH, "tooltip": "How many latents."}),
            "class_index": ("INT", {"default": -1, "min": -1, "max": 100000,
                                    "tooltip": "Class-conditional models: the class of every item "
                                               "(see the model card for names); -1 draws a random class per item. "
                                               "Must stay -1 for unconditional models."}),
        }, "optional": {
            "space": (["z", "w"], {"default": "z",
                                   "tooltip": "z: the input noise. w: mapped through a StyleGAN's mapping network "
                                              "(with truncation), for W-space interpolation and mixing."}),
            "truncation_psi": ("FLOAT", {"default": 1.0, "min": -2.0, "max": 2.0, "step": 0.05,
                                         "tooltip": TRUNC_TOOLTIP + " Used when space is w."}),
            "truncation_cutoff": ("INT", {"default": 0, "min": 0, "max": 64,
                                          "tooltip": "Truncate only the first N layers; 0 = all layers. "
                                                     "Used when space is w."}),
            "class_list": ("STRING", {"default": "",
                                      "tooltip": "Class sweep: e.g. '0,1,7-9'. When set, every class in the list "
                                                 "gets the same batch_size seeds, class by class (overrides "
                                                 "class_index)."}),
        }}

    def sample(self, generator, seed, batch_size, class_index=-1, space="z", truncation_psi=1.0,
               truncation_cutoff=0, class_list=""):
        require_generator(generator)  # a translator has no latent space: say so, as Generate Image (GAN) does
        if seed + batch_size - 1 > 0xFFFFFFFF:  # NVlabs' seeds are uint32: past it they would wrap to 0
            raise ValueError(f"seed {seed} + batch_size {batch_size} runs past the last seed 4294967295: "
                             f"lower the seed")
        seeds = [seed + i for i in range(batch_size)]
        if class_list.strip():
            if not generator.c_dim:
                raise ValueError("class_list given, but this generator is unconditional: leave it empty")
            try:
                sweep = L.parse_seeds(class_list)  # same range syntax: '0,1,7-9'
            except ValueError:
                raise ValueError(f"class_list must look like '0,1,7-9', not {class_list!r}") from None
            if len(sweep) * len(seeds) > MAX_BATCH:
                raise ValueError(f"class_list gives {len(sweep)} classes x batch_size {len(seeds)} = "
                                 f"{len(sweep) * len(seeds)} latents, more than {MAX_BATCH}: lower batch_size")
            classes = [k for k in sweep for _ in seeds]
            seeds = seeds * len(sweep)
        elif generator.c_dim:
            classes = "random" if class_index < 0 else class_index
        else:
            if class_index >= 0:
                raise ValueError(f"class_index {class_index} given, but this generator is unconditional: "
                                 "set class_index to -1")
            classes = None
        lat = L.sample(generator, seeds, classes)
        if space == "w":
            lat = L.to_w(generator, lat, truncation_psi, truncation_cutoff or None)
        return (lat,)
