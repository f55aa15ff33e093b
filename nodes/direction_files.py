from __future__ import annotations

from ..gan_models import directions as D
from . import host

EMPTY = "(no direction files yet)"


class SaveGANDirections:
    CATEGORY = "GAN"
    DESCRIPTION = ("Saves edit directions (with the generator they belong to) as a small .safetensors file "
                   "under output/gan_directions, to reuse without finding them again or to share.")
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "directions": ("GAN_DIRECTIONS", {"tooltip": "The directions to keep."}),
            "filename_prefix": ("STRING", {"default": "gan_directions",
                                           "tooltip": "File name start; a counter is added. Saved under "
                                                      "output/gan_directions."}),
        }}

    def save(self, directions, filename_prefix="gan_directions"):
        path = host.numbered_file(host.directions_dirs()[0], filename_prefix)
        D.save_directions(path, directions)
        return {"ui": {"text": [path.name]}}


class LoadGANDirections:
    CATEGORY = "GAN"
    DESCRIPTION = ("Loads edit directions saved by Save GAN Directions or python -m gan_models.directions "
                   "(from output/gan_directions or input/gan_directions).")
    RETURN_TYPES = ("GAN_DIRECTIONS",)
    RETURN_NAMES = ("directions",)
    OUTPUT_TOOLTIPS = ("The saved directions; Apply Direction (GAN) checks that they belong to its generator.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"directions_file": (host.listing(host.directions_dirs()[1], EMPTY), {
            "tooltip": "A directions file in output/gan_directions or input/gan_directions."})}}

    def load(self, directions_file):
        _, dirs = host.directions_dirs()
        if directions_file == EMPTY:
            raise FileNotFoundError("no direction files yet: save some with Save GAN Directions, or put files "
                                    f"in {', '.join(str(d) for d in dirs)}")
        return (D.load_directions(host.find_file(dirs, directions_file, "directions file")),)
