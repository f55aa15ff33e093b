"""One module per architecture family; importing them registers them (a new family is a new file here)."""
from ..registry import import_families

import_families(__name__, __path__)
