"""The data reader's fit of IDX images to a resolution (gan_models.data.load_idx)."""
import gzip
import struct

import numpy as np
import pytest

from gan_models import data


def _write_idx(folder, images: np.ndarray, labels: np.ndarray) -> None:
    n, h, w = images.shape
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", n, h, w) + images.tobytes()))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", n) + labels.astype(np.uint8).tobytes()))


def test_pad_keeps_the_pixels_and_adds_a_black_border(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(1, 256, (5, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path, imgs, np.arange(5) % 3)
    ds = data.load_dataset(tmp_path, 32, 1, fit="pad")
    assert ds.images.shape == (5, 1, 32, 32)
    assert np.array_equal(ds.images[:, 0, 2:30, 2:30].numpy(), imgs)
    border = ds.images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.sum()) == 0
    resized = data.load_dataset(tmp_path, 32, 1)  # the default still resizes
    assert not np.array_equal(resized.images[:, 0, 2:30, 2:30].numpy(), imgs)


def test_pad_and_resize_are_separate_cache_entries(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write_idx(src, np.full((3, 28, 28), 200, np.uint8), np.zeros(3))
    padded = data.load_dataset(src, 32, 1, cache_dir=tmp_path / "cache", fit="pad")
    resized = data.load_dataset(src, 32, 1, cache_dir=tmp_path / "cache")
    assert int(padded.images[0, 0, 0, 0]) == 0 and int(resized.images[0, 0, 0, 0]) == 200
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


@pytest.mark.parametrize("res", [27, 31])
def test_pad_that_cannot_centre_is_refused(tmp_path, res):
    _write_idx(tmp_path, np.zeros((2, 28, 28), np.uint8), np.zeros(2))
    with pytest.raises(data.DataError, match="cannot pad"):
        data.load_dataset(tmp_path, res, 1, fit="pad")


def test_pad_of_an_image_folder_is_refused(tmp_path):
    from PIL import Image
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(data.DataError, match="for IDX data"):
        data.load_dataset(tmp_path, 16, 1, fit="pad")
