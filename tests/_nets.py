"""Helpers shared by the tests (tests/ is on sys.path under pytest's default import mode)."""
import contextlib
from pathlib import Path

import pytest
import torch


def fixture_dir(local: Path, name: str, request) -> Path:
    """An upstream fixture committed under `local`, else from ../shared/fixtures (the test skips, saying
    why, where neither has it)."""
    if (local / name).is_dir():
        return local / name
    folder = request.getfixturevalue("fixtures_dir") / name  # skips without ../shared
    if not folder.is_dir():
        pytest.skip(f"upstream fixture {name} not present at {folder}")
    return folder


@contextlib.contextmanager
def no_tf32():
    """float32 that means float32 on CUDA: TF32 rounds matmul and convolution inputs to 10 bits, right
    for training speed, wrong for a check that two devices compute the same thing. Restored by hand:
    torch.backends.cuda.matmul's flags are properties that monkeypatch cannot undo."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def randomize(net: torch.nn.Module, seed: int = 0, weight_scale: float = 0.15,
              bias_scale: float = 0.05) -> torch.nn.Module:
    """Every tensor of the state dict redrawn (BatchNorm variances kept positive), so a test sees
    non-trivial norms, biases and running statistics rather than a fresh init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (weight_scale if t.ndim > 1 else bias_scale))
    return net.eval()


def digit_class_folders(root, classes: int, per_class: int, prefix: str, name: str = "{}.png"):
    """sklearn's bundled 8x8 digits as grayscale PNGs, one subfolder (prefix + class) per class: the
    tiny labelled image folder the training tests train on."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits()
    imgs = (d.images * (255 / 16)).round().astype(np.uint8)
    for k in range(classes):
        (root / f"{prefix}{k}").mkdir()
        for j, i in enumerate(np.flatnonzero(d.target == k)[:per_class]):
            Image.fromarray(imgs[i], "L").save(root / f"{prefix}{k}" / name.format(j))
    return root
