"""Training for the generators of gan_models: `python -m gan_models.train --help`."""
from .loop import TrainConfig, Trainer  # noqa: F401
from . import stylegan2  # noqa: F401,E402  (registers --arch stylegan2 in nets.RECIPES)
