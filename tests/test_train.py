"""gan_models.train on tiny data: loading, resume determinism, export, atomic snapshots."""
from __future__ import annotations

import gzip
import math
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models.train import TrainConfig, Trainer, snapshot
from gan_models.train.__main__ import main as cli_main, parse
from gan_models.data import BatchOrder, DataError, load_dataset, read_idx
from gan_models.train.losses import translate

N_PER_CLASS = 12


def _digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.images * (255 / 16)).round().astype(np.uint8), d.target


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """sklearn's 8x8 digits as PNGs in one subfolder per class, in mixed colour modes."""
    root = tmp_path_factory.mktemp("digits")
    imgs, target = _digits()
    for k in range(10):
        (root / f"d{k}").mkdir()
        for j, i in enumerate(np.flatnonzero(target == k)[:N_PER_CLASS]):
            im = Image.fromarray(imgs[i], "L")
            if j % 3 == 1:
                im = im.convert("RGB")
            elif j % 3 == 2:
                im = im.convert("RGBA")
            im.save(root / f"d{k}" / f"{j:03d}.png")
    return root


def _write_idx(path: Path, arr: np.ndarray, code: int, gz: bool):
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _tiny_config(data, out, steps, **kw):
    base = dict(arch="dcgan", data=str(data), out=str(out), resolution=8, channels=1, batch=8, steps=steps,
                seed=3, sample_every=0, snapshot_every=2, z_dim=8, ngf=8, ndf=8, bn_recal_batches=2,
                progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


# -- data ---------------------------------------------------------------------------------------

def test_folder_with_labels(digits_folder):
    ds = load_dataset(digits_folder, resolution=8, channels=1)
    imgs, target = _digits()
    assert ds.images.shape == (10 * N_PER_CLASS, 1, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.class_names == [f"d{k}" for k in range(10)] and ds.c_dim == 10
    assert torch.bincount(ds.labels).tolist() == [N_PER_CLASS] * 10
    # grayscale, RGB and RGBA files of the same digit decode to the same pixels
    first_of_0 = imgs[np.flatnonzero(target == 0)[0]]
    assert torch.equal(ds.images[0, 0], torch.from_numpy(first_of_0))
    rgb = load_dataset(digits_folder, resolution=16, channels=3)
    assert rgb.images.shape == (10 * N_PER_CLASS, 3, 16, 16)
    x, y = ds.batch(torch.tensor([0, 13]))
    assert x.min() >= -1 and x.max() <= 1 and y.tolist() == [0, 1]


def test_folder_without_subfolders_is_unconditional(tmp_path):
    for i in range(3):
        Image.new("RGB", (10, 14), (i * 50, 0, 0)).save(tmp_path / f"{i}.jpg")
    ds = load_dataset(tmp_path, resolution=8, channels=3)
    assert ds.labels is None and ds.c_dim == 0 and ds.images.shape == (3, 3, 8, 8)


def test_corrupt_file_skipped_and_counted(tmp_path, digits_folder):
    root = tmp_path / "data"
    for k in range(2):
        (root / f"c{k}").mkdir(parents=True)
        for j, p in enumerate(sorted((digits_folder / f"d{k}").glob("*.png"))[:3]):
            (root / f"c{k}" / p.name).write_bytes(p.read_bytes())
    (root / "c0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "c1" / "empty.webp").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipped 2 undecodable image file\(s\) of 8"):
        ds = load_dataset(root, resolution=8, channels=1)
    assert ds.skipped == 2 and len(ds) == 6


def test_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = (np.arange(20) % 10).astype(np.uint8)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", imgs, 0x08, gz=True)
    _write_idx(folder / "train-labels-idx1-ubyte", labels, 0x08, gz=False)
    assert np.array_equal(read_idx(folder / "train-images-idx3-ubyte.gz"), imgs)
    ds = load_dataset(folder, resolution=28, channels=1)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(imgs))
    assert ds.labels.tolist() == labels.tolist()
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert load_dataset(folder, resolution=8, channels=1).images.shape == (20, 1, 8, 8)
    # a truncated file is named in the error
    _write_idx(folder / "train-images-idx3-ubyte.gz", imgs, 0x08, gz=True)
    raw = gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())[:-10]
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: truncated"):
        load_dataset(folder, resolution=28)


def _same(a, b) -> bool:
    return (torch.equal(a.images, b.images) and a.class_names == b.class_names and a.skipped == b.skipped
            and (a.labels is None) == (b.labels is None) and (a.labels is None or torch.equal(a.labels, b.labels)))


@pytest.fixture
def mixed_folder(tmp_path, digits_folder):
    """Labelled digits in three colour modes plus an undecodable file and a non-square RGBA WebP."""
    import shutil
    root = tmp_path / "mixed"
    shutil.copytree(digits_folder, root)
    (root / "d3" / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("RGBA", (10, 14), (200, 0, 0, 120)).save(root / "d5" / "wide.webp")
    return root


def test_data_cache_equals_decoding_and_is_read_back_without_decoding(mixed_folder, tmp_path, monkeypatch):
    from gan_models import data
    idx = tmp_path / "fashion-mnist"
    idx.mkdir()
    _write_idx(idx / "train-images-idx3-ubyte.gz", np.random.default_rng(0).integers(0, 256, (30, 28, 28), np.uint8),
               0x08, gz=True)
    _write_idx(idx / "train-labels-idx1-ubyte", (np.arange(30) % 10).astype(np.uint8), 0x08, gz=False)
    cache = tmp_path / "cache"
    cases = [(mixed_folder, 8, 3), (mixed_folder, 16, 1), (idx, 12, 3), (idx, 28, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the broken file's warning; counted in .skipped below
        decoded = [load_dataset(p, r, c) for p, r, c in cases]
        built = [load_dataset(p, r, c, cache_dir=cache) for p, r, c in cases]
    assert decoded[0].skipped == 1 and decoded[0].labels is not None
    assert all(_same(a, b) for a, b in zip(decoded, built))
    assert len(list(cache.glob("*.npy"))) == len(list(cache.glob("*.json"))) == 4
    assert not list(cache.glob(".*"))  # no temp file left behind

    def no_decoding(*a, **k):
        raise AssertionError("a cache hit decoded the images again")
    monkeypatch.setattr(data, "_decode_into", no_decoding)
    monkeypatch.setattr(data, "load_idx", no_decoding)
    again = [load_dataset(p, r, c, cache_dir=cache) for p, r, c in cases]
    assert all(_same(a, b) for a, b in zip(decoded, again))
    x, y = again[0].batch(torch.tensor([5, 0]))
    assert x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    assert y.tolist() == decoded[0].labels[[5, 0]].tolist()


def test_data_cache_follows_the_files(mixed_folder, tmp_path):
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = load_dataset(mixed_folder, 8, 1, cache_dir=cache)
        Image.new("L", (8, 8), 255).save(mixed_folder / "d0" / "white.png")  # a new file
        grown = load_dataset(mixed_folder, 8, 1, cache_dir=cache)
        Image.new("L", (8, 8), 0).save(mixed_folder / "d0" / "white.png")  # the same name, rewritten
        st = (mixed_folder / "d0" / "white.png").stat()
        os.utime(mixed_folder / "d0" / "white.png", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        rewritten = load_dataset(mixed_folder, 8, 1, cache_dir=cache)
        fresh = load_dataset(mixed_folder, 8, 1)
    assert len(grown) == len(first) + 1 and len(list(cache.glob("*.npy"))) == 3
    assert _same(rewritten, fresh) and not torch.equal(rewritten.images, grown.images)


@pytest.mark.filterwarnings("ignore:.*undecodable image file")
def test_data_cache_survives_interruption_damage_and_no_room(mixed_folder, tmp_path, monkeypatch):
    from gan_models import data
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = load_dataset(mixed_folder, 8, 3)
    opened = []
    real_open = Image.open

    def interrupted(p, *a, **k):  # Ctrl-C (or a kill) in the middle of the decoding
        opened.append(p)
        if len(opened) == 20:
            raise KeyboardInterrupt
        return real_open(p, *a, **k)
    monkeypatch.setattr(data.Image, "open", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(mixed_folder, 8, 3, cache_dir=cache)
    monkeypatch.setattr(data.Image, "open", real_open)
    assert not list(cache.glob("*.npy")) + list(cache.glob("*.json")) + list(cache.glob(".*"))  # nor a temp file
    assert _same(load_dataset(mixed_folder, 8, 3, cache_dir=cache), reference)
    # what a kill -9 leaves mid-build (no entry, a temp file) is rebuilt, and the temp file removed
    npy = next(cache.glob("*.npy"))
    orphan = cache / f".{npy.name}.k1ll3d.tmp"
    orphan.write_bytes(npy.read_bytes()[:1000])
    npy.with_suffix(".json").unlink()
    npy.unlink()
    assert _same(load_dataset(mixed_folder, 8, 3, cache_dir=cache), reference)
    assert not orphan.exists() and npy.is_file()
    # a damaged entry is named, then decoded again
    npy = next(cache.glob("*.npy"))
    npy.write_bytes(npy.read_bytes()[:200])
    with pytest.warns(UserWarning, match="ignoring unreadable data cache entry"):
        assert _same(load_dataset(mixed_folder, 8, 3, cache_dir=cache), reference)
    assert _same(load_dataset(mixed_folder, 8, 3, cache_dir=cache), reference)
    # no room for a cache: the images are held in memory instead, and the run goes on
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.warns(UserWarning, match="could not write the data cache"):
        assert _same(load_dataset(mixed_folder, 8, 3, cache_dir=blocked / "data"), reference)


def test_training_maps_its_data_from_the_run_folder(digits_folder, tmp_path):
    run = tmp_path / "run"
    Trainer(_tiny_config(digits_folder, run, 2)).run()
    assert len(list((run / "data").glob("*.npy"))) == 1
    off = tmp_path / "off"
    Trainer(_tiny_config(digits_folder, off, 2, data_cache="none")).run()
    assert not (off / "data").exists()
    a, _ = gan_models.checkpoint.read(run / "generator.safetensors")
    b, _ = gan_models.checkpoint.read(off / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same pixels, so the same run


def test_bad_paths(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope", 8)
    with pytest.raises(DataError, match="no PNG/JPEG/WebP"):
        load_dataset(tmp_path, 8)
    assert cli_main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2


def test_batch_order_covers_each_epoch_and_resumes():
    a = BatchOrder(10, 4, seed=1)
    epoch = torch.cat([a.next(), a.next(), a.next()])[:10]
    assert sorted(epoch.tolist()) == list(range(10))
    state = a.state_dict()
    expect = [a.next() for _ in range(3)]
    b = BatchOrder(10, 4, seed=99)
    b.load_state_dict(state)
    assert all(torch.equal(e, b.next()) for e in expect)


def test_translate_shifts_with_background():
    x = -torch.ones(64, 1, 8, 8)
    x[:, :, 3, 4] = 1.0
    y = translate(x, ratio=0.25, gen=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.all((y == 1).sum(dim=(1, 2, 3)) == 1)  # the dot moved, not lost
    pos = (y[:, 0] == 1).nonzero()[:, 1:]
    assert (pos - torch.tensor([3, 4])).abs().max() <= 2 and len({tuple(p) for p in pos.tolist()}) > 1


# -- training -----------------------------------------------------------------------------------

def _all_states(run: Path) -> dict:
    state, _ = snapshot.load_latest(run)
    return state


def _assert_same(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif where.endswith(".wall"):
        return
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def straight_run(digits_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    path = Trainer(_tiny_config(digits_folder, out, steps=6)).run()
    return out, path


def test_resume_is_bit_exact(digits_folder, straight_run, tmp_path):
    out, _ = straight_run
    # stop after 3 steps (snapshot at 2 and at the stop), then continue to 6 in a fresh Trainer
    Trainer(_tiny_config(digits_folder, tmp_path, steps=3)).run()
    assert [s for s, _ in snapshot.list_snapshots(tmp_path)] == [3, 2]
    torch.manual_seed(1234)  # disturb the global RNG: resume must restore it
    resumed = Trainer(_tiny_config(digits_folder, tmp_path, steps=6, resume=True))
    path = resumed.run()
    assert resumed.resumed_from.name == "snapshot-00000003.pt"
    a, b = _all_states(out), _all_states(tmp_path)
    assert a["step"] == b["step"] == 6
    for key in ("G", "D", "G_ema", "opt_G", "opt_D", "rng"):
        _assert_same(a[key], b[key], key)
    ga, _ = gan_models.checkpoint.read(out / "generator.safetensors")
    gb, _ = gan_models.checkpoint.read(path)
    _assert_same(ga, gb, "exported")
    # a changed network shape is refused rather than silently mixed
    with pytest.raises(ValueError, match="ngf=8"):
        Trainer(_tiny_config(digits_folder, tmp_path, steps=8, resume=True, ngf=16)).run()


def test_exported_generator_loads_and_is_conditional(straight_run):
    out, path = straight_run
    G = gan_models.load_generator(path)
    assert G.arch_name == "dcgan" and G.kind == "generator"
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (8, 10, 8, 1)
    m = G.meta
    assert m["class_names"] == [f"d{k}" for k in range(10)] and m["output_range"] == [-1, 1]
    src = m["source"]
    assert src["type"] == "train" and src["steps"] == 6 and src["kimg"] == 0.048 and src["seed"] == 3
    # the measured float, unrounded: six steps take microseconds at least on any machine, so > 0 holds however fast
    assert src["hardware"] and 0 < src["wall_time_s"] < math.inf and "data" in src and "license" in m
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    c0 = torch.nn.functional.one_hot(torch.zeros(4, dtype=torch.long), 10).float()
    c5 = torch.nn.functional.one_hot(torch.full((4,), 5), 10).float()
    a, b = G(z, c0), G(z, c5)
    assert a.shape == (4, 1, 8, 8) and a.abs().max() <= 1
    assert not torch.allclose(a, b), "the label must change the image"
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)
    assert (out / "reals.png").is_file() and any((out / "samples").glob("grid-*.png"))


def test_failed_snapshot_write_keeps_previous(straight_run, monkeypatch):
    out, _ = straight_run
    before = {p.name: p.read_bytes() for _, p in snapshot.list_snapshots(out)}
    newest = max(before)

    def dying_save(obj, f):
        Path(f).write_bytes(b"half a snapshot")
        raise OSError("disk full")

    monkeypatch.setattr(snapshot.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        snapshot.save(out, 99, {"step": 99}, keep=1)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for _, p in snapshot.list_snapshots(out)}
    assert after == before  # nothing pruned, nothing half-written left under a snapshot name
    assert not [p for p in (out / "snapshots").iterdir() if p.name not in before]
    state, path = snapshot.load_latest(out)
    assert path.name == newest and state["step"] == 6
    # and a damaged newest file is passed over for the older complete one
    bad = snapshot.path_for(out, 100)
    bad.write_bytes(b"garbage")
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            state, path = snapshot.load_latest(out)
        assert path.name == newest
    finally:
        bad.unlink()


def test_cli_help_and_kimg():
    r = subprocess.run([sys.executable, "-m", "gan_models.train", "--help"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert r.returncode == 0 and "--resume" in r.stdout and "--kimg" in r.stdout
    tc = parse(["--data", "d", "--out", "o", "--kimg", "1", "--batch", "64"])
    assert tc.steps == 16 and "gan_models.train" in tc.command


def test_cli_names_every_arch_when_one_is_wrong(capsys):
    # the translators have their own parser; a typo must still list them beside dcgan and stylegan2
    with pytest.raises(SystemExit):
        parse(["--arch", "stylegan", "--data", "d", "--out", "o"])
    err = capsys.readouterr().err
    assert "invalid choice: 'stylegan'" in err
    assert all(f"'{a}'" in err for a in ("dcgan", "stylegan2", "cyclegan", "pix2pix")), err


def test_mode_seeking_penalty_punishes_collapse_and_pushes_pairs_apart():
    from gan_models.train.losses import mode_seeking_penalty
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    collapsed = torch.randn(1, 1, 4, 4).expand(8, -1, -1, -1)
    varied = torch.randn(8, 1, 4, 4)
    assert mode_seeking_penalty(z, collapsed) > 1000 * mode_seeking_penalty(z, varied)
    fake = varied.clone().requires_grad_(True)
    mode_seeking_penalty(z, fake).backward()
    # descending the penalty moves each pair's images apart
    moved = fake.detach() - 0.1 * fake.grad
    assert (moved[:4] - moved[4:]).abs().mean() > (varied[:4] - varied[4:]).abs().mean()


def test_resume_clears_temp_files_of_a_killed_write(tmp_path):
    from gan_models.train import snapshot
    snapshot.save(tmp_path, 5, {"x": torch.ones(1)})
    stale = tmp_path / "snapshots" / ".snapshot-00000010.pt.abc123.tmp"
    stale.write_bytes(b"half a snapshot")

    class Run(snapshot.Resumable):
        out = tmp_path

        def load_state_dict(self, s):
            self.loaded = s
    run = Run()
    assert run.try_resume() and run.loaded["x"].item() == 1
    assert run.resumed_from.name == "snapshot-00000005.pt" and not stale.exists()


def test_lr_decay_reaches_schedule_and_resumes_onto_it(digits_folder, tmp_path):
    # 6 steps, decay from step 2: the step taken at step s uses lr * (1 - (s - 2) / 4)
    tr = Trainer(_tiny_config(digits_folder, tmp_path / "a", steps=6, lr_decay_from=2))
    seen = []
    step = tr.train_step
    tr.train_step = lambda: (seen.append(tr.step), step(), seen.append(tr.opt_G.param_groups[0]["lr"]))[1]
    tr.run()
    lrs = dict(zip(seen[0::2], seen[1::2]))
    base = 2e-4
    assert [round(lrs[s] / base, 6) for s in range(6)] == [1, 1, 1, 0.75, 0.5, 0.25]
    assert all(g["lr"] == pytest.approx(base * 0.25) for g in tr.opt_D.param_groups)
    # a run without decay, resumed with one, lands on the same schedule and the same weights
    Trainer(_tiny_config(digits_folder, tmp_path / "b", steps=3)).run()
    Trainer(_tiny_config(digits_folder, tmp_path / "b", steps=6, lr_decay_from=2, resume=True)).run()
    a, b = _all_states(tmp_path / "a"), _all_states(tmp_path / "b")
    for key in ("G", "D", "G_ema"):
        _assert_same(a[key], b[key], key)


@pytest.mark.parametrize("keep, left", [(2, [4, 3]), (1, [4]), (0, [4, 3, 2, 1])])
def test_keep_snapshots(tmp_path, keep, left):
    # keep=0 means all: it must never delete the snapshot it has just written
    for step in range(1, 5):
        snapshot.save(tmp_path, step, {"step": step}, keep=keep)
    assert [s for s, _ in snapshot.list_snapshots(tmp_path)] == left


def test_the_command_line_is_built_from_the_recipes(capsys):
    """Every option lands in a TrainConfig field of its own name, each family's group holds its own
    options, and one family's option given to another is refused by name."""
    import dataclasses
    from gan_models.train.__main__ import parser
    from gan_models.train.loop import RECIPES
    p, own = parser()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {a.dest for a in p._actions} - {"help", "kimg"} <= fields
    assert set(own) == set(RECIPES) == {"dcgan", "stylegan2", "cyclegan", "pix2pix"}
    assert "lambda_cycle" in own["cyclegan"] and own["cyclegan"] is own["pix2pix"]
    assert "w_dim" in own["stylegan2"] and "loss" in own["dcgan"]
    assert not any("mode_seeking" in o for o in own.values())  # dcgan and stylegan2 share it
    assert cli_main(["--arch", "dcgan", "--data", "x", "--out", "y", "--lambda-cycle", "3"]) == 2
    assert "--lambda-cycle: not an option of --arch dcgan" in capsys.readouterr().err
    assert cli_main(["--arch", "pix2pix", "--data-a", "a", "--data-b", "b", "--out", "y", "--w-dim", "8"]) == 2
    assert "--w-dim: not an option of --arch pix2pix" in capsys.readouterr().err
