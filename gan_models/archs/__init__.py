"""One module per architecture family; importing them registers them."""
from . import dcgan  # noqa: F401
from . import stylegan2  # noqa: F401
from . import translators  # noqa: F401
from . import stylegan3  # noqa: F401
from . import biggan  # noqa: F401
