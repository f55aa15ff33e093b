"""Reading checkpoint files from the wild without executing anything stored in them.

First version: torch zip archives through torch.load(weights_only=True). The NVlabs legacy-pickle
reader (persistent objects turned into plain data) extends this module.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import CheckpointError


def load(path) -> object:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"file not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path.name}: refused by the restricted loader: {e}") from e
