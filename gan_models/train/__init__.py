"""Training for the generators of gan_models: `python -m gan_models.train --help`."""
from ..registry import import_families
from .loop import RECIPES, TrainConfig, Trainer  # noqa: F401

# every module here is imported: a family's module registers its recipe in loop.RECIPES
import_families(__name__, __path__)
