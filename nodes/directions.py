from __future__ import annotations

from ..gan_models import directions as D, latents as L
from . import host

LAYERS_TOOLTIP = ("Which ws: all, coarse (pose, shape), middle (features), fine (colour, texture), or a range "
                  "such as 0-3 (from the model's own layer count).")
APPLY_LAYERS_TOOLTIP = ("Which ws to move: empty = those the directions were found for; else all, coarse, "
                        "middle, fine or a range such as 0-3.")
GENERATOR_TOOLTIP = ("The StyleGAN the directions were found on (it maps z latents to W), or a PTI-tuned copy of it "
                     "from Invert Image: tuning keeps the latent space, so its base's directions hold.")


def _layers(text: str):
    return text.strip() or None


class FindGANDirections:
    CATEGORY = "GAN"
    DESCRIPTION = ("Finds semantic edit directions in a StyleGAN's W space without labels: SeFa (closed form, "
                   "from the style weights) or GANSpace (principal axes of sampled w). Strongest first.")
    RETURN_TYPES = ("GAN_DIRECTIONS",)
    RETURN_NAMES = ("directions",)
    OUTPUT_TOOLTIPS = ("Unit directions in W with the spread of w along each, tied to this generator: feed "
                       "Apply Direction (GAN), Direction Sweep (GAN) or Save GAN Directions.",)
    FUNCTION = "find"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("GAN_GENERATOR", {"tooltip": "A StyleGAN2 or StyleGAN3 generator (DCGANs and "
                                                       "translators have no W space)."}),
            "method": (list(D.METHODS), {"default": "sefa",
                                         "tooltip": "sefa: eigenvectors of the chosen layers' style weights "
                                                    "(fast, no sampling). ganspace: PCA of sampled w."}),
            "layers": ("STRING", {"default": "all", "tooltip": LAYERS_TOOLTIP + " Edits later move these ws "
                                                                               "by default."}),
            "num": ("INT", {"default": 0, "min": 0, "max": 4096,
                            "tooltip": "How many directions to keep, strongest first; 0 = all that carry "
                                       "meaning."}),
            "samples": ("INT", {"default": D.DEFAULT_SAMPLES, "min": 100, "max": 1000000,
                                "tooltip": "w sampled to measure the spread along each direction (and for "
                                           "GANSpace's PCA); must exceed w_dim."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF,
                             "tooltip": "Seed of the sampled z: the same seed gives the same directions."}),
        }}

    def find(self, generator, method="sefa", layers="all", num=0, samples=D.DEFAULT_SAMPLES, seed=0):
        D.require_style_generator(generator)
        bar = host.progress_bar(samples)

        def progress(done, total):
            bar(done, total)
            host.check_interrupt()  # find_directions has no hook of its own: stop between chunks of w

        return (D.find_directions(generator, method, layers.strip() or "all", num or None, samples, seed,
                                  progress=progress),)


class ApplyGANDirection:
    CATEGORY = "GAN"
    DESCRIPTION = ("Moves GAN latents along one edit direction by a number of standard deviations. Chain "
                   "several for several edits; z latents are mapped to W first.")
    RETURN_TYPES = ("GAN_LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The edited W latents (an inverted latent keeps its noise maps): feed Generate Image (GAN) "
                       "(GAN) or another Apply Direction (GAN).",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("GAN_GENERATOR", {"tooltip": GENERATOR_TOOLTIP}),
            "latent": ("GAN_LATENT", {"tooltip": "Latents to edit: sampled, inverted, or from an earlier edit."}),
            "directions": ("GAN_DIRECTIONS", {"tooltip": "From Find Directions (GAN) or Load GAN Directions, "
                                                         "for this generator."}),
            "index": ("INT", {"default": 0, "min": 0, "max": 4095,
                              "tooltip": "Which direction: 0 is the strongest. Try a few with Direction Sweep "
                                         "(GAN) to see what each one changes."}),
            "strength": ("FLOAT", {"default": 2.0, "min": -100.0, "max": 100.0, "step": 0.1,
                                   "tooltip": "How far, in standard deviations of w along the direction; "
                                              "negative goes the other way. 1-3 is a clear edit."}),
            "layers": ("STRING", {"default": "", "tooltip": APPLY_LAYERS_TOOLTIP}),
        }}

    def apply(self, generator, latent, directions, index=0, strength=2.0, layers=""):
        return (D.apply(generator, latent, directions, index, strength, _layers(layers)),)


class GANDirectionSweep:
    CATEGORY = "GAN"
    DESCRIPTION = ("Frames along one edit direction, from -strength to +strength, as a latent batch: feed "
                   "Generate Image (GAN), then Save Animated WEBP or a video node.")
    RETURN_TYPES = ("GAN_LATENT",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("One latent per frame (per item, frame-major, for batches); with an odd frame count "
                       "the middle frame is the latent itself.",)
    FUNCTION = "sweep"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("GAN_GENERATOR", {"tooltip": GENERATOR_TOOLTIP}),
            "latent": ("GAN_LATENT", {"tooltip": "The latents at the middle of the sweep."}),
            "directions": ("GAN_DIRECTIONS", {"tooltip": "From Find Directions (GAN) or Load GAN Directions, "
                                                         "for this generator."}),
            "index": ("INT", {"default": 0, "min": 0, "max": 4095, "tooltip": "Which direction: 0 is the "
                                                                              "strongest."}),
            "strength": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.1,
                                   "tooltip": "The sweep runs from -strength to +strength standard deviations."}),
            "frames": ("INT", {"default": 16, "min": 2, "max": 4096, "tooltip": "Frames, both ends included."}),
            "layers": ("STRING", {"default": "", "tooltip": APPLY_LAYERS_TOOLTIP}),
            "ping_pong": ("BOOLEAN", {"default": False,
                                      "tooltip": "Go there and back for a seamless loop (ends not repeated)."}),
        }}

    def sweep(self, generator, latent, directions, index=0, strength=3.0, frames=16, layers="", ping_pong=False):
        out = D.sweep(generator, latent, directions, index, strength, frames, _layers(layers))
        if ping_pong and frames > 2:
            n = len(latent)
            back = [f * n + i for f in range(frames - 2, 0, -1) for i in range(n)]
            out = L.concat([out, out.index(back)])
        return (out,)
