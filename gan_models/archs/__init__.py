"""One module per architecture family; importing them registers them."""
from . import dcgan  # noqa: F401
