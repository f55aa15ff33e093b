"""CycleGAN training on tiny unpaired folders: the recipe's pieces, resume determinism, export."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import gan_models
from gan_models.train import TrainConfig, Trainer, snapshot
from gan_models.train.__main__ import main as cli_main, parse
from gan_models.archs.translators import PatchDiscriminator
from gan_models.train.cyclegan import CycleGAN, ImagePool
from gan_models.train.loop import resolve
from gan_models.data import DataError

RES = 16


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """sklearn digits upsampled to 16 px: domain A red ink on white, domain B dark blue on yellow."""
    from sklearn.datasets import load_digits
    root = tmp_path_factory.mktemp("unpaired")
    d = load_digits()
    ink = d.images[:24] / 16.0  # [N, 8, 8] in 0..1
    styles = {"a": ((255, 255, 255), (200, 20, 20)), "b": ((250, 230, 120), (20, 30, 120))}
    for dom, (paper, pen) in styles.items():
        (root / dom).mkdir()
        sel = ink[:12] if dom == "a" else ink[12:]  # unpaired: different digits in each domain
        for i, m in enumerate(sel):
            m = np.kron(m, np.ones((2, 2)))[..., None]
            img = (1 - m) * np.array(paper) + m * np.array(pen)
            Image.fromarray(img.round().astype(np.uint8), "RGB").save(root / dom / f"{i:02d}.png")
    return root


def _cfg(folders, out, steps, **kw):
    base = dict(arch="cyclegan", data_a=str(folders / "a"), data_b=str(folders / "b"), out=str(out), resolution=RES,
                ngf=4, n_blocks=1, ndf=4, n_layers_d=2, batch=2, steps=steps, lr_decay_from=1, pool_size=3,
                seed=5, sample_every=0, snapshot_every=2, log_every=0, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _nets(tr):
    return {f"{n}.{k}": v for n in ("G_A", "G_B", "D_A", "D_B") for k, v in getattr(tr, n).state_dict().items()}


def test_patch_discriminator_receptive_field_is_70():
    D = PatchDiscriminator(3, 8, n_layers=3, norm="none")  # InstanceNorm would mix in every pixel
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    out = D(x)
    assert out.shape == (1, 1, 14, 14)
    # the gradient of one output reaches exactly the pixels of its patch
    out[0, 0, 7, 7].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3)) > 0).flatten()
    assert rows.max() - rows.min() + 1 == 70


def test_image_pool_fills_then_mixes_history():
    pool = ImagePool(4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # while filling, the pool hands back what it got
    seen_old = False
    for k in range(20):
        batch = torch.full((2, 1, 1, 1), 100.0 + k)
        before = set(torch.cat(pool.images).flatten().tolist())
        out = pool.query(batch)
        assert out.shape == batch.shape and len(pool.images) == 4
        # what comes back is this batch's image or one the pool held, which the new one replaced
        assert set(out.flatten().tolist()) <= before | {100.0 + k}
        after = torch.cat(pool.images).flatten().tolist()
        assert sorted(after + out.flatten().tolist()) == sorted(list(before) + [100.0 + k] * 2) or len(before) < 4
        seen_old |= bool((out < 100 + k).any())
    assert seen_old
    assert torch.equal(ImagePool(0, 0).query(first), first)
    # the state round-trips: a restored pool answers the same as the original
    clone = ImagePool(4, seed=9)
    clone.load_state_dict(pool.state_dict())
    x = torch.full((3, 1, 1, 1), -1.0)
    assert torch.equal(clone.query(x), pool.query(x))


def test_learning_rate_decays_linearly_to_zero(folders, tmp_path):
    tr = Trainer(_cfg(folders, tmp_path, steps=10, lr_decay_from=6))
    assert [tr.lr_factor(s) for s in (0, 5, 6, 8, 10)] == pytest.approx([1, 1, 1, 0.5, 0])
    lrs = [tr.train_step()["lr"] for _ in range(10)]
    assert lrs[:7] == pytest.approx([2e-4] * 7) and lrs[8] == pytest.approx(1e-4) and lrs[9] == pytest.approx(0.5e-4)
    assert tr.opt_D.param_groups[0]["lr"] == pytest.approx(0.0)


def test_resume_equals_uninterrupted(folders, tmp_path):
    full = Trainer(_cfg(folders, tmp_path / "full", steps=4))
    full.run()
    # first half, then a fresh process-like trainer that resumes; lr_decay_from=1 makes the lr differ
    # between the two schedules (steps=2 vs 4), so a resume that kept the snapshot's lr would differ
    Trainer(_cfg(folders, tmp_path / "split", steps=2)).run()
    part = Trainer(_cfg(folders, tmp_path / "split", steps=4, resume=True))
    part.run()
    assert part.resumed_from is not None and part.resumed_from.name == "snapshot-00000002.pt"
    assert part.step == full.step == 4
    a, b = _nets(full), _nets(part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(torch.cat(full.pool_A.images), torch.cat(part.pool_A.images))
    assert full.opt_G.state_dict()["state"][0]["exp_avg"].equal(part.opt_G.state_dict()["state"][0]["exp_avg"])
    # and it really trained: the weights moved away from a fresh init with the same seed
    fresh = _nets(Trainer(_cfg(folders, tmp_path / "fresh", steps=4)))
    assert any(not torch.equal(a[k], fresh[k]) for k in a if k.startswith("G_A"))


def test_resume_refuses_other_shapes(folders, tmp_path):
    Trainer(_cfg(folders, tmp_path, steps=2)).run()
    with pytest.raises(ValueError, match="ngf=4"):
        Trainer(_cfg(folders, tmp_path, steps=4, ngf=8, resume=True)).run()


def test_cli_trains_and_exports_translators(folders, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--arch", "cyclegan", "--data-a", str(folders / "a"), "--data-b", str(folders / "b"),
            "--out", str(out), "--resolution", str(RES), "--ngf", "4", "--n-blocks", "2", "--ndf", "4",
            "--n-layers-d", "2", "--steps", "3", "--batch", "2", "--sample-every", "2", "--log-every", "1",
            "--name-a", "red", "--name-b", "blue", "--export-dtype", "float16", "--threads", "1",
            "--license", "MIT"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr()
    assert "step 3/3" in printed.err
    assert (out / "samples" / "grid-00000002.png").is_file()
    grid = Image.open(out / "samples" / "grid-00000003.png")
    assert grid.size == (2 + 8 * (RES + 2), 2 + 4 * (RES + 2))  # 8 images per row; rows A, G_A(A), B, G_B(B)
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    assert snapshot.list_snapshots(out)[0][0] == 3

    for name, style in (("translator_A2B", "red->blue"), ("translator_B2A", "blue->red")):
        path = out / f"{name}.safetensors"
        assert path.stat().st_size < 40_000
        T = gan_models.load_generator(path)
        assert T.kind == "translator" and T.arch_name == "resnet_translator"
        m = T.meta
        assert m["style_name"] == style and m["input_range"] == [-1, 1] and m["output_range"] == [-1, 1]
        assert m["in_channels"] == 3 and m["img_channels"] == 3 and m["license"] == "MIT"
        src = m["source"]
        assert src["type"] == "train" and src["steps"] == 3 and "--arch cyclegan" in src["command"]
        # the measured float, unrounded: three steps take microseconds at least on any machine
        assert 0 < src["wall_time_s"] < math.inf and "CPU" in src["hardware"] and src["storage_dtype"] == "float16"
        assert T.n_blocks == 2 and T.ngf == 4
        x = torch.rand(2, 3, 24, 20) * 2 - 1  # any size divisible by 4, not only the training size
        y = T(x)
        assert y.shape == x.shape and y.dtype == torch.float32 and y.abs().max() <= 1


def test_exported_weights_are_the_trained_ones(folders, tmp_path):
    tr = Trainer(_cfg(folders, tmp_path, steps=2))
    tr.run()
    T = gan_models.load_generator(tmp_path / "translator_B2A.safetensors")
    x = torch.rand(1, 3, RES, RES) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(T(x), tr.G_B.eval()(x), atol=1e-6)


def test_cycle_loss_falls_on_a_colour_swap(folders, tmp_path):
    tr = Trainer(_cfg(folders, tmp_path, steps=40, lr_decay_from=40, ngf=8, ndf=8, lr=2e-3))
    cyc = [tr.train_step()["loss_cycle"] for _ in range(40)]
    assert np.mean(cyc[-8:]) < 0.6 * np.mean(cyc[:4])


@pytest.mark.parametrize("kw, match", [
    (dict(resolution=18), "multiple of 4"),
    (dict(n_layers_d=3), "too small for a PatchGAN"),
    (dict(norm="group"), "--norm"),
    (dict(batch=0), "at least 1"),
])
def test_bad_options_are_named(folders, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        Trainer(_cfg(folders, tmp_path, steps=1, **kw))


def test_missing_folder_is_named(folders, tmp_path, capsys):
    with pytest.raises(DataError, match="--data-b: data path not found"):
        Trainer(_cfg(folders, tmp_path, steps=1, data_b=str(tmp_path / "nope")))
    argv = ["--arch=cyclegan", "--data-a", str(folders / "a"), "--data-b", str(tmp_path / "empty"),
            "--out", str(tmp_path / "o"), "--resolution", "16", "--n-layers-d", "2"]
    (tmp_path / "empty").mkdir()
    assert cli_main(argv) == 2
    assert "--data-b" in capsys.readouterr().err


def test_parse_defaults_follow_the_paper():
    from types import SimpleNamespace
    cc = resolve(parse(["--arch", "cyclegan", "--data-a", "x", "--data-b", "y", "--out", "z", "--steps", "100"]))
    assert (cc.lr, cc.betas, cc.lambda_cycle, cc.lambda_identity, cc.pool_size) == (2e-4, (0.5, 0.999), 10, 0.5, 50)
    assert CycleGAN(SimpleNamespace(tc=cc)).decay_start == 50 and cc.n_layers_d == 3 and cc.norm == "instance"


# ------------------------------------------------------------------------------------------ pix2pix


@pytest.fixture(scope="module")
def paired(tmp_path_factory, folders):
    """The same digits in both styles under the same names: aligned pairs."""
    root = tmp_path_factory.mktemp("paired")
    for dom in ("a", "b"):
        (root / dom).mkdir()
    for i in range(12):
        a = np.asarray(Image.open(folders / "a" / f"{i:02d}.png")).astype(float)
        ink = (255 - a[..., 1]) / (255 - 20)  # green channel: 255 on paper, 20 under the red pen
        ink = ink[..., None].clip(0, 1)
        b = (1 - ink) * np.array([250, 230, 120]) + ink * np.array([20, 30, 120])
        Image.fromarray(a.astype(np.uint8)).save(root / "a" / f"{i:02d}.png")
        Image.fromarray(b.round().astype(np.uint8)).save(root / "b" / f"{i:02d}.png")
    return root


def test_pix2pix_resume_and_export(paired, tmp_path):
    kw = dict(arch="pix2pix", ndf=4, ngf=4)
    full = Trainer(_cfg(paired, tmp_path / "full", steps=4, **kw))
    full.run()
    Trainer(_cfg(paired, tmp_path / "split", steps=2, **kw)).run()
    part = Trainer(_cfg(paired, tmp_path / "split", steps=4, resume=True, **kw))
    part.run()
    for n in ("G", "D"):
        a, b = getattr(full, n).state_dict(), getattr(part, n).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), n
    T = gan_models.load_generator(tmp_path / "full" / "translator_A2B.safetensors")
    assert T.kind == "translator" and T.arch_name == "unet_translator" and T.depth == 4
    assert T.meta["source"]["method"] == "pix2pix" and T.meta["style_name"] == "A->B"
    assert not (tmp_path / "full" / "translator_B2A.safetensors").exists()
    x = torch.rand(1, 3, RES, RES) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(T(x), full.G.eval()(x), atol=1e-6)


def test_pix2pix_learns_the_paired_mapping(paired, tmp_path):
    tr = Trainer(_cfg(paired, tmp_path, arch="pix2pix", steps=60, lr_decay_from=60, ngf=8, ndf=4,
                             lr=2e-3, batch=4, dropout=False))
    l1 = [tr.train_step()["loss_l1"] for _ in range(60)]
    assert np.mean(l1[-10:]) < 0.5 * np.mean(l1[:3])


def test_pix2pix_needs_pairs(folders, paired, tmp_path):
    (tmp_path / "b").mkdir()
    Image.open(paired / "b" / "00.png").save(tmp_path / "b" / "other.png")
    with pytest.raises(DataError, match="same file names"):
        Trainer(_cfg(paired, tmp_path, arch="pix2pix", steps=1, data_b=str(tmp_path / "b")))
    with pytest.raises(ValueError, match="power of two"):
        Trainer(_cfg(paired, tmp_path, arch="pix2pix", steps=1, resolution=24, n_layers_d=2))


def test_pix2pix_cli(paired, tmp_path):
    out = tmp_path / "run"
    assert cli_main(["--arch=pix2pix", "--data-a", str(paired / "a"), "--data-b", str(paired / "b"),
                     "--out", str(out), "--resolution", str(RES), "--ngf", "4", "--ndf", "4", "--n-layers-d", "2",
                     "--steps", "2", "--log-every", "0", "--threads", "1"]) == 0
    T = gan_models.load_generator(out / "translator_A2B.safetensors")
    assert T.meta["source"]["command"].startswith("python -m gan_models.train --arch=pix2pix")


def test_translators_refuse_torchrun(paired, tmp_path, monkeypatch, capsys):
    """Under torchrun every rank would run the whole CycleGAN/pix2pix loop into the same folder."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli_main(["--arch", "cyclegan", "--data-a", str(paired / "a"), "--data-b", str(paired / "b"),
                     "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "--arch cyclegan trains in one process, and torchrun started 2" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
