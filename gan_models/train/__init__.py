"""Training for the generators of gan_models: `python -m gan_models.train --help`."""
from .loop import TrainConfig, Trainer  # noqa: F401
