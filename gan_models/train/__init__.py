"""Training for the generators of gan_models: `python -m gan_models.train --help`."""
from .loop import RECIPES, TrainConfig, Trainer  # noqa: F401
# each family registers its recipe in loop.RECIPES
from . import cyclegan, dcgan, stylegan2  # noqa: F401,E402
