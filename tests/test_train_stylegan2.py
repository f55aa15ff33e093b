"""--arch stylegan2 on tiny data: the discriminator, augmentation, one step's partition independence,
resume, mixed precision and the exported checkpoint through load_generator and the nodes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

import gan_models
from gan_models.train import TrainConfig, Trainer, snapshot
from gan_models.train import augment
from gan_models.train.losses import AUGMENTS
from gan_models.archs.stylegan2 import Conv2dLayer, Discriminator, MinibatchStdLayer
import _nets

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
TINY = dict(w_dim=16, map_layers=2, cbase=128, cmax=16)


@pytest.fixture(scope="module")
def digits3(tmp_path_factory):
    """Three classes of sklearn's 8x8 digits, 8 images each."""
    return _nets.digit_class_folders(tmp_path_factory.mktemp("digits3"), 3, 8, "digit")


def config(data, out, steps, **kw):
    extra = {**TINY, **kw.pop("extra", {})}
    base = dict(arch="stylegan2", data=str(data), out=str(out), resolution=16, channels=1, batch=8, steps=steps,
                seed=5, sample_every=0, snapshot_every=2, z_dim=16, progress=False, threads=1, log_every=1,
                extra=extra)
    base.update(kw)
    return TrainConfig(**base)


# -- the discriminator ---------------------------------------------------------------------------

def test_discriminator_takes_nvlabs_weights():
    pkl = FIXTURES / "upstream" / "sg2ada_r32_map8" / "network-snapshot-000000.src-stripped.pkl"
    if not pkl.is_file():
        pytest.skip(f"upstream fixture not found at {pkl} (../shared is absent in a user's clone)")
    from gan_models.convert import safe_unpickle
    up = safe_unpickle.load(pkl)["D"]
    kw = up.init_kwargs
    D = Discriminator(kw["c_dim"], kw["img_resolution"], kw["img_channels"], channel_base=kw["channel_base"],
                      channel_max=kw["channel_max"], conv_clamp=kw["conv_clamp"],
                      mbstd_group_size=kw["epilogue_kwargs"]["mbstd_group_size"])
    D.load_state_dict(up.state_dict(), strict=True)  # same names, same shapes, nothing left over
    out = D(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 1) and torch.isfinite(out).all()


def test_down_conv_and_conditioning():
    x = torch.randn(2, 3, 16, 16)
    assert Conv2dLayer(3, 5, 3, down=2)(x).shape == (2, 5, 8, 8)
    assert Conv2dLayer(3, 5, 1, bias=False, down=2)(x).shape == (2, 5, 8, 8)
    # a constant image stays constant through the low-pass (away from the zero padding)
    const = Conv2dLayer(1, 1, 1, bias=False, down=2)
    with torch.no_grad():
        const.weight.fill_(1.0)
    y = const(torch.ones(1, 1, 16, 16))
    torch.testing.assert_close(y[..., 1:-1, 1:-1], torch.ones(1, 1, 6, 6))
    torch.manual_seed(0)
    D = Discriminator(3, 16, 1, channel_base=128, channel_max=16, mapping_kwargs={"num_layers": 2})
    img = torch.randn(4, 1, 16, 16)
    c0, c1 = torch.eye(3)[[0, 0, 0, 0]], torch.eye(3)[[1, 1, 1, 1]]
    assert not torch.allclose(D(img, c0), D(img, c1)), "the label must change the score"
    with pytest.raises(ValueError, match="class-conditional"):
        D(img)
    with pytest.raises(ValueError, match=r"expects \[N, 1, 16, 16\]"):
        D(torch.randn(4, 3, 16, 16), c0)


def test_minibatch_std_groups_are_consecutive_images():
    x = torch.randn(8, 4, 2, 2)
    y = MinibatchStdLayer(group_size=4)(x)
    assert y.shape == (8, 5, 2, 2)
    expect = x[:4].var(0, unbiased=False).add(1e-8).sqrt().mean()
    torch.testing.assert_close(y[0, 4, 0, 0], expect)
    # the first group's statistic does not depend on the second group
    x2 = x.clone()
    x2[4:] *= 10
    torch.testing.assert_close(MinibatchStdLayer(4)(x2)[:4], y[:4])


# -- augmentation -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["diffaug", "ada"])
def test_augmentation_is_differentiable_and_split_invariant(name):
    pipe = augment.build(name, batch=8)
    pipe.p = 0.8 if name == "ada" else pipe.p
    x = torch.rand(8, 3, 16, 16, requires_grad=True) * 2 - 1
    full = pipe(x, gen=torch.Generator().manual_seed(7))
    parts = torch.cat([pipe(x[:4], gen=torch.Generator().manual_seed(7), total=8, offset=0),
                       pipe(x[4:], gen=torch.Generator().manual_seed(7), total=8, offset=4)])
    torch.testing.assert_close(parts, full, atol=1e-6, rtol=0)  # one image, one augmentation
    assert full.shape == x.shape and not torch.allclose(full, x)
    (g,) = torch.autograd.grad(full.square().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("name", ["translation", "diffaug", "ada"])
def test_augmentation_of_strided_rows_matches_the_global_batch(name):
    """DCGAN ranks hold every world-th row (Dist.shard): each image keeps its own augmentation."""
    if name == "translation":
        pipe = AUGMENTS[name]
    else:
        pipe = augment.build(name, batch=8)
        pipe.p = 0.8 if name == "ada" else pipe.p
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    full = pipe(x, gen=torch.Generator().manual_seed(7))
    for rank in range(2):
        rows = slice(rank, None, 2)
        part = pipe(x[rows], gen=torch.Generator().manual_seed(7), total=8, offset=rows)
        torch.testing.assert_close(part, full[rows], atol=1e-6, rtol=0)
    assert not torch.allclose(full, x)


def test_ada_p_zero_is_identity_and_p_follows_the_heuristic():
    pipe = augment.build("ada", batch=64, ada_kimg=1.0)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(pipe(x, gen=torch.Generator().manual_seed(0)), x)
    for _ in range(3):
        pipe.observe(torch.ones(64))  # D sure of every real: overfitting
        pipe.step()
    assert pipe.p == 0.0  # adjusted only every 4th step
    pipe.observe(torch.ones(64))
    pipe.step()
    assert pipe.rt == 1.0 and pipe.p == pytest.approx(64 * 4 / 1000)
    for _ in range(8):
        pipe.observe(-torch.ones(64))
        pipe.step()
    assert pipe.p == 0.0 and pipe.rt == -1.0  # back down, never below 0
    s = pipe.state_dict()
    other = augment.build("ada", batch=64)
    other.load_state_dict(s)
    assert other.state_dict() == s
    with pytest.raises(ValueError, match="unknown --aug"):
        augment.build("flip")


def test_ada_geometry_keeps_content():
    pipe = augment.build("ada")
    pipe.p = 1.0
    x = -torch.ones(16, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0
    y = pipe(x, gen=torch.Generator().manual_seed(3))
    assert not torch.allclose(y, x)
    # brightness/contrast shift values, but a bright square stays brighter than the background
    centre = y[:, 0, 4:12, 4:12].amax(dim=(1, 2))
    assert (centre > y[:, 0].median(dim=-1).values.median(dim=-1).values).float().mean() >= 0.75


# -- training -----------------------------------------------------------------------------------

def _weights(run):
    state, _ = snapshot.load_latest(run)
    return state


@pytest.fixture(scope="module")
def trained(digits3, tmp_path_factory):
    out = tmp_path_factory.mktemp("sg2run")
    tc = config(digits3, out, steps=4, aug="ada", ada_kimg=0.05, mirror=True, sample_every=2,
                extra=dict(pl_weight=2.0, pl_interval=2, r1_interval=2))
    path = Trainer(tc).run()
    return out, path


def test_training_logs_regularisers_and_ada(trained):
    out, _ = trained
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in rows)
    # R1 and path length every 2nd step (0 and 2, logged as steps 1 and 3); rows between carry the last
    assert rows[1]["r1"] == rows[0]["r1"] and rows[2]["r1"] != rows[1]["r1"]
    assert rows[1]["pl"] == rows[0]["pl"] and rows[2]["pl"] != rows[1]["pl"] and rows[2]["pl_mean"] > 0
    # p moves every 4 steps by batch * 4 / (ada_kimg * 1000) = 0.64, up or down by D's signs
    assert rows[2]["aug_p"] == 0.0 and rows[3]["aug_p"] in (0.0, pytest.approx(0.64))
    state = _weights(out)
    assert state["augment"]["name"] == "ada" and state["augment"]["p"] == rows[3]["aug_p"]
    assert float(state["stepper"]["pl_mean"]) > 0
    assert any((out / "samples").glob("grid-*.png"))


def test_exported_generator_loads_and_runs_through_the_nodes(trained, pack, monkeypatch):
    out, path = trained
    G = gan_models.load_generator(path)
    assert G.arch_name == "stylegan2" and G.kind == "generator"
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels) == (16, 3, 16, 16, 1)
    m = G.meta
    assert m["class_names"] == ["digit0", "digit1", "digit2"]
    assert m["init_kwargs"]["synthesis_kwargs"]["conv_clamp"] == 256
    assert m["source"]["recipe"]["aug"] == "ada" and m["source"]["steps"] == 4
    state = _weights(out)
    for k, v in G.state_dict().items():  # the export is G_ema as trained (no BatchNorm to recalibrate)
        torch.testing.assert_close(v, state["G_ema"][k], rtol=0, atol=0)
    assert G.mapping.w_avg.abs().sum() > 0  # tracked during training
    torch.testing.assert_close(G.mapping.w_avg, state["G"]["mapping.w_avg"], rtol=0, atol=0)
    z = torch.randn(2, 16)
    a, b = G(z, torch.eye(3)[[0, 0]]), G(z, torch.eye(3)[[2, 2]])
    assert a.shape == (2, 1, 16, 16) and not torch.allclose(a, b)

    monkeypatch.setenv("COMFYUI_GAN_MODELS", str(out))
    nodes = pack.NODE_CLASS_MAPPINGS
    Gn = nodes["ComfyGAN_LoadGANGenerator"]().load("generator.safetensors", "cpu", "float32")[0]
    lat = nodes["ComfyGAN_SampleLatent"]().sample(Gn, 3, 2, 1)[0]
    img = nodes["ComfyGAN_GenerateImage"]().generate(Gn, lat, 0.7)[0]
    assert img.shape == (2, 16, 16, 3) and 0 <= float(img.min()) and float(img.max()) <= 1


def test_accumulation_matches_one_big_micro_batch(digits3, tmp_path):
    """batch 8 as one micro-batch of 8 or two of 4: the same images, noise and augmentation, the
    same mbstd groups, so the same step up to summation order."""
    common = dict(aug="diffaug", snapshot_every=0, extra=dict(r1_interval=2))
    Trainer(config(digits3, tmp_path / "one", 3, batch_gpu=8, **common)).run()
    Trainer(config(digits3, tmp_path / "two", 3, batch_gpu=4, **common)).run()
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for net in ("G", "D", "G_ema"):
        for k in a[net]:
            # float32 sums of 4+4 vs 8 per-image terms: ~1e-7 relative per step, grown by 3 Adam steps
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-4, atol=2e-5, msg=f"{net}.{k}")
    rows = [[json.loads(x) for x in (tmp_path / d / "log.jsonl").read_text().splitlines()] for d in ("one", "two")]
    for r1, r2 in zip(*rows):
        assert r1["loss_d"] == pytest.approx(r2["loss_d"], rel=1e-4)
        assert r1["loss_g"] == pytest.approx(r2["loss_g"], rel=1e-4)


def test_mode_seeking_pairs_labels_inside_each_micro_batch(digits3, tmp_path):
    """--mode-seeking compares the two halves of a micro-batch, so those halves must share labels row
    for row in every micro-batch; the term is logged, and a run with it trains to a different G."""
    probe = Trainer(config(digits3, tmp_path / "probe", 2, batch_gpu=4, mode_seeking=1.0))
    probe.build()
    inp = probe.recipe.draw_inputs(123, 8, paired=True)
    c = inp.c.view(2, 2, 2)  # micro-batch, half, row
    assert torch.equal(c[:, 0], c[:, 1]) and not torch.equal(inp.z[:2], inp.z[2:4])
    Trainer(config(digits3, tmp_path / "ms", 2, batch_gpu=4, mode_seeking=1.0)).run()
    rows = [json.loads(x) for x in (tmp_path / "ms" / "log.jsonl").read_text().splitlines()]
    assert all(r["ms"] > 0 for r in rows)
    Trainer(config(digits3, tmp_path / "off", 2, batch_gpu=4)).run()
    assert "ms" not in json.loads((tmp_path / "off" / "log.jsonl").read_text().splitlines()[0])
    a, b = _weights(tmp_path / "ms"), _weights(tmp_path / "off")
    assert any(not torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


def test_resume_is_bit_exact(digits3, tmp_path):
    common = dict(aug="ada", ada_kimg=0.05, extra=dict(r1_interval=2, pl_weight=1.0, pl_interval=2))
    Trainer(config(digits3, tmp_path / "straight", 5, **common)).run()
    Trainer(config(digits3, tmp_path / "split", 3, **common)).run()
    torch.manual_seed(99)
    Trainer(config(digits3, tmp_path / "split", 5, resume=True, **common)).run()
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    for net in ("G", "D", "G_ema"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
    assert a["augment"] == b["augment"] and torch.equal(a["stepper"]["pl_mean"], b["stepper"]["pl_mean"])
    with pytest.raises(ValueError, match="cmax"):
        Trainer(config(digits3, tmp_path / "split", 6, resume=True, **{**common, "extra": {"cmax": 32}})).run()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU visible to torch: the same steps on the GPU"))])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps(digits3, tmp_path, precision, device):
    tc = config(digits3, tmp_path, 3, precision=precision, channels_last=True, snapshot_every=0, device=device,
                extra=dict(r1_interval=1, pl_weight=1.0, pl_interval=1))
    Trainer(tc).run()
    state = _weights(tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in rows)
    # fp16: the penalties run in fp32 (their input gradients overflow in fp16), so they stay finite
    assert all(math.isfinite(r["r1"]) and math.isfinite(r["pl"]) for r in rows)
    assert math.isfinite(float(state["stepper"]["pl_mean"]))
    assert all(torch.isfinite(v).all() for net in ("G", "D", "G_ema") for v in state[net].values())
    if precision == "fp16":
        assert 0 < state["stepper"]["scaler_G"]["scale"] <= 2 ** 16  # the GradScaler's state is snapshotted


def test_bad_options(digits3, tmp_path):
    with pytest.raises(ValueError, match="does not divide"):
        Trainer(config(digits3, tmp_path, 1, batch_gpu=6))
    with pytest.raises(ValueError, match="power-of-two"):
        Trainer(config(digits3, tmp_path, 1, resolution=12))
    with pytest.raises(ValueError, match="--aug"):
        Trainer(config(digits3, tmp_path, 1, augment="translation"))
    with pytest.raises(ValueError, match="--cbase 8 --cmax 16 leave no channels at 16 px"):
        Trainer(config(digits3, tmp_path, 1, extra={"cbase": 8, "cmax": 16}))
    with pytest.raises(ValueError, match="precision"):
        Trainer(TrainConfig(arch="dcgan", data=str(digits3), out=str(tmp_path), resolution=8, batch=4,
                            precision="fp16", progress=False))


def plot_training():
    """scripts/plot_training.py as a module (scripts/ is no package)."""
    pytest.importorskip("matplotlib", reason="scripts/plot_training.py needs matplotlib (optional)")
    import importlib.util
    spec = importlib.util.spec_from_file_location("plot_training", Path(__file__).resolve().parents[1]
                                                  / "scripts" / "plot_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_plot_training_draws_the_log(trained, tmp_path):
    mod = plot_training()
    out, _ = trained
    log = tmp_path / "log.jsonl"
    # a resumed run's repeated step and a line cut short by a kill
    log.write_text((out / "log.jsonl").read_text() + (out / "log.jsonl").read_text().splitlines()[-1]
                   + "\n" + '{"step": 9, "kim')
    (tmp_path / "metrics.jsonl").write_text('{"kimg": 0.016, "fid": 300.0}\n{"kimg": 0.032, "fid": 250.0}\n')
    rows = mod.by_step(mod.read_jsonl(log))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    png = mod.plot(log, tmp_path / "chart.png")
    with Image.open(png) as im:
        # loss, regulariser, augmentation and FID panels stacked
        assert im.size[0] > 600 and im.size[1] > 4 * 250


def test_plot_training_leaves_out_a_constant_augmentation_p(tmp_path):
    mod = plot_training()
    rows = [{"step": s, "kimg": s * 0.016, "loss_d": 1.0, "loss_g": 1.5, "r1": 0.5} for s in range(1, 5)]
    heights = {}
    for name, p in (("diffaug", [1.0] * 4), ("ada", [0.0, 0.1, 0.2, 0.3])):
        log = tmp_path / f"{name}.jsonl"
        log.write_text("".join(json.dumps({**r, "aug_p": q}) + "\n" for r, q in zip(rows, p)))
        with Image.open(mod.plot(log, tmp_path / f"{name}.png")) as im:
            heights[name] = im.size[1]
    # loss and regulariser panels for DiffAugment's p = 1 throughout; a third for ADA's moving p
    assert heights["ada"] - heights["diffaug"] > 200


def test_channels_last_is_the_stylegan2_default_and_can_be_turned_off(digits3, tmp_path):
    """NHWC by default for stylegan2 (bench_train.py: 1.2-1.6x on CPU), NCHW for dcgan; the command
    line's --no-channels-last wins over the recipe."""
    from gan_models.train.__main__ import parse
    common = ["--data", str(digits3), "--out", str(tmp_path), "--resolution", "16", "--z-dim", "16", "--w-dim", "16",
              "--map-layers", "2", "--cbase", "128", "--cmax", "16", "--threads", "1"]
    on = Trainer(parse(["--arch", "stylegan2", *common]))
    assert on.cfg["channels_last"] and on.channels_last
    assert on.D.b16.conv0.weight.is_contiguous(memory_format=torch.channels_last)
    off = Trainer(parse(["--arch", "stylegan2", *common, "--no-channels-last"]))
    assert not off.cfg["channels_last"] and not off.channels_last
    assert Trainer(parse(["--arch", "dcgan", "--data", str(digits3), "--out", str(tmp_path), "--resolution", "16",
                          "--threads", "1"])).cfg["channels_last"] is False
