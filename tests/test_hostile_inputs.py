"""The hostile-input matrix: bad or malicious input at every entry point (load, convert, generate,
invert/directions, train, nodes, latent files), each case stated before it runs.

A case names its entry point, what it feeds in, and what must come back: for a command line, exit
status 2 and a message matching `expect` with no traceback; for a library call or a node, the
exception type and a message matching `expect`. After every case the good files of the world (a
class-conditional checkpoint, a finished training run, a converted file, latents, directions) must
hash as before, and no marker file of a payload may exist.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import gan_models
from gan_models import latents as L
from gan_models.archs import dcgan, stylegan2
from gan_models.archs.translators import build_resnet_translator
from gan_models.checkpoint import CheckpointError
from gan_models.convert.__main__ import main as convert_main
from gan_models.directions import main as directions_main
from gan_models.generate import main as generate_main
from gan_models.invert import main as invert_main
from gan_models.train.__main__ import main as train_main

from _nets import digit_class_folders


# ------------------------------------------------------------------------------------------------
# The world: good files every case must leave byte for byte as they were

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    cond = dcgan.Generator(dcgan.make_layout(16, 3, 28, 1, ngf=4), c_dim=3)
    gan_models.save_generator(root / "cond.safetensors", cond, {"arch": "dcgan", "class_names": ["a", "b", "c"]})
    sg2 = stylegan2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=4,
                              mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 128,
                                                                                  "channel_max": 16})
    gan_models.save_generator(root / "sg2.safetensors", sg2, {"arch": "stylegan2"})
    T = build_resnet_translator(3, 3, ngf=4, n_blocks=2, norm="instance")
    gan_models.save_generator(root / "style.safetensors", T, {"arch": "resnet_translator"})
    # a PyTorch-tutorial DCGAN .pth and its conversion: the "good converted file"
    tut = dcgan.Generator(dcgan.make_layout(16, 0, 64, 3, ngf=4))
    torch.save(tut.state_dict(), root / "tutorial.pth")
    assert convert_main([str(root / "tutorial.pth"), str(root / "converted.safetensors")]) == 0
    G = gan_models.load_generator(root / "sg2.safetensors")
    L.save_latent(root / "lat.safetensors", L.sample(G, [0, 1]))
    from gan_models import directions as D
    D.save_directions(root / "dirs.safetensors", D.find_directions(G, "sefa", num=2, samples=64,
                                                                   name="sg2.safetensors"))
    # a finished training run (tiny DCGAN on sklearn's digits): its snapshots and generator are good files
    (root / "digits").mkdir()
    digits = digit_class_folders(root / "digits", classes=3, per_class=8, prefix="d")
    run = root / "run"
    assert train_main(["--arch", "dcgan", "--data", str(digits), "--out", str(run), "--resolution", "8",
                       "--batch", "8", "--steps", "4", "--z-dim", "8", "--ngf", "8", "--ndf", "8",
                       "--sample-every", "0", "--snapshot-every", "2", "--threads", "1", "--no-progress"]) == 0
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(root / "photo.png")
    return root


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "data" not in p.relative_to(root).parts[:2]}


# ------------------------------------------------------------------------------------------------
# Hostile files, made on demand in the case's own folder

class Reduce:
    """A pickle payload: unpickling it calls func(*args)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def marker_cmd(tmp: Path) -> str:
    return f"touch {tmp / 'PWNED'}"


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def edited_checkpoint(world: Path, tmp: Path, edit: Callable[[dict, dict], None], src="cond.safetensors") -> Path:
    """A copy of a good checkpoint with its tensors or header edited."""
    from safetensors import safe_open
    with safe_open(str(world / src), framework="pt") as f:
        header = dict(f.metadata())
    state = load_file(world / src)
    meta = json.loads(header["gan"])
    edit(state, meta)
    header["gan"] = json.dumps(meta)
    save_file(state, tmp / "bad.safetensors", metadata=header)
    return tmp / "bad.safetensors"


def first_weight(state: dict) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.ndim >= 2)


def shared_reference_bomb(tmp: Path) -> Path:
    """About 1 KB in NVlabs' layout whose init kwargs double at every level when walked as a tree."""
    a: list = []
    for _ in range(60):
        a = [a, a]
    meta = {"type": "class", "version": 4, "module_src": "", "class_name": "training.networks.Generator",
            "state": {"_init_args": [], "_init_kwargs": {"mapping_kwargs": a}, "_parameters": {},
                      "_buffers": {}, "_modules": {}}}
    import sys
    import types
    fake = types.ModuleType("torch_utils.persistence")
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": fake})
    try:
        data = pickle.dumps({"G_ema": _Persistent(meta)}, protocol=4)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert len(data) < 4096
    return write_bytes(tmp / "bomb.pkl", data)


class _Persistent:
    """Pickles as NVlabs' torch_utils.persistence._reconstruct_persistent_obj(meta), without the code."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return _reconstruct_persistent_obj, (self.meta,)


def _reconstruct_persistent_obj(meta):  # never called: the name is what gets pickled
    raise AssertionError


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


def deep_nesting(tmp: Path, depth=10_000) -> Path:
    # built as opcodes: pickle.dumps itself would recurse 10,000 deep
    body = b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."
    return write_bytes(tmp / "deep.pkl", body)


def huge_storage_zip(tmp: Path) -> Path:
    """A torch.save zip archive whose one storage record claims 10^12 float elements."""
    torch.save({"w": torch.zeros(4)}, tmp / "small.pt")
    src = zipfile.ZipFile(tmp / "small.pt")
    out = tmp / "huge.pt"
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                # every pickled 4 (BININT1) becomes 10^12 (LONG1): the storage's numel and the size
                data = data.replace(b"K\x04", b"\x8a\x06" + (10 ** 12).to_bytes(6, "little"))
            z.writestr(info, data)
    return out


def huge_storage_legacy(tmp: Path) -> Path:
    """Legacy (non-zip) torch.save whose storage declares 10^12 elements."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    # the storage's element count is written as an 8-byte little-endian number before its raw bytes
    raw = struct.pack("<q", 4) + bytes(16)
    assert data.endswith(raw)
    return write_bytes(tmp / "huge_legacy.pt", data[:-len(raw)] + struct.pack("<q", 10 ** 12) + bytes(16))


def torch_zip_payload(tmp: Path) -> Path:
    torch.save({"g_ema": {"w": torch.zeros(1)}, "args": Reduce(os.system, marker_cmd(tmp))}, tmp / "evil.pt")
    return tmp / "evil.pt"


def torch_legacy_payload(tmp: Path) -> Path:
    torch.save({"w": torch.zeros(1), "x": Reduce(os.system, marker_cmd(tmp))}, tmp / "evil_legacy.pt",
               _use_new_zipfile_serialization=False)
    return tmp / "evil_legacy.pt"


def plain_payload(tmp: Path) -> Path:
    return write_bytes(tmp / "evil.pkl", pickle.dumps({"G_ema": Reduce(os.system, marker_cmd(tmp))}, protocol=4))


def latent_file(world: Path, tmp: Path, values=None, meta_edit=None) -> Path:
    from safetensors import safe_open
    with safe_open(str(world / "lat.safetensors"), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(world / "lat.safetensors")
    if values is not None:
        tensors["values"] = values(tensors["values"])
    if meta_edit is not None:
        meta_edit(meta)
    save_file(tensors, tmp / "bad_lat.safetensors", metadata=meta)
    return tmp / "bad_lat.safetensors"


# ------------------------------------------------------------------------------------------------
# The matrix

@dataclass(frozen=True)
class Case:
    id: str
    entry: str                   # load | convert | generate | invert | directions | train | node | latent
    run: Callable                # (world, tmp) -> argv for a CLI, or a callable that must raise
    expect: str                  # regex the message must match
    raises: type = Exception     # library and node cases: the exception type


def cli(entry, argv_fn, expect):
    return Case(f"{entry}:{expect[:40]}", entry, argv_fn, expect)


W = "{w}"  # stands for the world folder in argv templates


def argv(*items):
    return lambda w, t: [str(x).replace(W, str(w)).replace("{t}", str(t)) for x in items]


def gen(*items):
    return argv(W + "/cond.safetensors", "--seeds", "0-1", *items)


CASES: list[Case] = [
    # -- load: library calls that must raise CheckpointError naming the file and the problem
    Case("load-missing", "load", lambda w, t: gan_models.load_generator(t / "nope.safetensors"),
         r"not found", CheckpointError),
    Case("load-folder", "load", lambda w, t: gan_models.load_generator(t), r"not found", CheckpointError),
    Case("load-pickle-suffix", "load", lambda w, t: gan_models.load_generator(w / "tutorial.pth"),
         r"only \.safetensors.*convert", CheckpointError),
    Case("load-truncated", "load", lambda w, t: gan_models.load_generator(
        write_bytes(t / "x.safetensors", (w / "cond.safetensors").read_bytes()[:300])),
         r"not a readable safetensors", CheckpointError),
    Case("load-random-bytes", "load", lambda w, t: gan_models.load_generator(
        write_bytes(t / "x.safetensors", os.urandom(4096))), r"not a readable safetensors", CheckpointError),
    Case("load-empty-file", "load", lambda w, t: gan_models.load_generator(write_bytes(t / "x.safetensors", b"")),
         r"not a readable safetensors", CheckpointError),
    Case("load-header-not-json", "load", lambda w, t: gan_models.load_generator(_raw_header(w, t, "{nope")),
         r"not valid JSON", CheckpointError),
    Case("load-header-list", "load", lambda w, t: gan_models.load_generator(_raw_header(w, t, "[1, 2]")),
         r"must be a JSON object", CheckpointError),
    Case("load-unknown-arch", "load", lambda w, t: gan_models.load_generator(
        edited_checkpoint(w, t, lambda s, m: m.update(arch="biggan9000"))), r"unknown architecture", CheckpointError),
    Case("load-wrong-shape", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: s.update({k: torch.zeros(*s[k].shape[:-1], s[k].shape[-1] + 1) for k in
                                     [sorted(k for k in s if k.endswith("weight") and s[k].ndim == 4)[-1]]}))),
         r"has shape .* needs|does not fit|do not match", CheckpointError),
    Case("load-missing-tensor", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: s.pop(sorted(k for k in s if k.endswith("running_var"))[0]))),
         r"missing", CheckpointError),
    Case("load-extra-tensor", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: s.update(stowaway=torch.zeros(3)))), r"unexpected.*stowaway", CheckpointError),
    Case("load-nan-weight", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: s[first_weight(s)].view(-1).__setitem__(0, float("nan")))),
         r"tensor '.*' holds NaN or infinite", CheckpointError),
    Case("load-inf-buffer", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: s[sorted(k for k in s if k.endswith("running_mean"))[0]].fill_(float("inf")))),
         r"running_mean' holds NaN or infinite", CheckpointError),
    Case("load-nan-stylegan", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: s["mapping.w_avg"].fill_(float("nan")), src="sg2.safetensors")),
         r"w_avg' holds NaN", CheckpointError),
    Case("load-header-contradicts-tensors", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: m.update(z_dim=100))), r"header says z_dim=100, the tensors make z_dim=16",
         CheckpointError),
    Case("load-class-names-count", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: m.update(class_names=["a"]))), r"1 class names for a generator with 3 classes",
         CheckpointError),
    Case("load-discriminator", "load", lambda w, t: gan_models.load_generator(edited_checkpoint(
        w, t, lambda s, m: m.update(kind="discriminator"))), r"is a discriminator", CheckpointError),
    Case("load-no-tensors-known", "load", lambda w, t: gan_models.load_generator(_plain_safetensors(t)),
         r"unrecognised architecture", CheckpointError),
    # -- convert: the CLI, exit 2, the message names the problem, nothing written
    cli("convert", argv("{t}/nope.pth", "{t}/o.safetensors"), r"file not found"),
    cli("convert", argv(W + "/converted.safetensors", W + "/converted.safetensors"), r"same file|already"),
    cli("convert", argv(W + "/tutorial.pth", W + "/tutorial.pth"), r"same file|must end in \.safetensors"),
    cli("convert", argv(W + "/cond.safetensors", "{t}/o.safetensors"), r"already .*converted|already in"),
    cli("convert", argv(W + "/tutorial.pth", "{t}"), r"must end in \.safetensors|is a folder"),
    cli("convert", argv(W + "/tutorial.pth", "{t}/o.pt"), r"must end in \.safetensors"),
    cli("convert", argv(W + "/tutorial.pth", W + "/photo.png/o.safetensors"), r"is a file, not a folder"),
    cli("convert", argv(W + "/tutorial.pth", W + "/converted.safetensors", "--class-names", "a,b"),
        r"2 class names for a generator with 0 classes"),
    cli("convert", argv(W + "/tutorial.pth", "{t}/o.safetensors", "--from", "nonsense"), r"invalid choice"),
    Case("convert:plain-pickle-payload", "convert",
         lambda w, t: [str(plain_payload(t)), str(w / "converted.safetensors")], r"refused .*'posix\.system'"),
    Case("convert:zip-archive-payload", "convert",
         lambda w, t: [str(torch_zip_payload(t)), str(t / "o.safetensors")], r"system"),
    Case("convert:legacy-archive-payload", "convert",
         lambda w, t: [str(torch_legacy_payload(t)), str(t / "o.safetensors")], r"system"),
    Case("convert:shared-reference-bomb", "convert",
         lambda w, t: [str(shared_reference_bomb(t)), str(t / "o.safetensors")], r"objects|bound|limit"),
    Case("convert:deep-nesting", "convert",
         lambda w, t: [str(deep_nesting(t)), str(t / "o.safetensors")], r"deep|depth|nest"),
    Case("convert:storage-claims-1e12-zip", "convert",
         lambda w, t: [str(huge_storage_zip(t)), str(t / "o.safetensors")], r"storage|bytes|elements"),
    Case("convert:storage-claims-1e12-legacy", "convert",
         lambda w, t: [str(huge_storage_legacy(t)), str(t / "o.safetensors")], r"storage|bytes|elements|size"),
    Case("convert:truncated-pickle", "convert", lambda w, t: [str(write_bytes(
        t / "x.pkl", pickle.dumps({"a": list(range(100))}, protocol=4)[:40])), str(t / "o.safetensors")],
         r"not a readable pickle"),
    Case("convert:random-bytes", "convert", lambda w, t: [str(write_bytes(t / "x.pth", os.urandom(2048))),
                                                          str(t / "o.safetensors")], r"refused|not a|unreadable"),
    Case("convert:empty-file", "convert", lambda w, t: [str(write_bytes(t / "x.pth", b"")),
                                                        str(t / "o.safetensors")], r"refused|empty|not a"),
    Case("convert:not-a-checkpoint", "convert", lambda w, t: [str(write_bytes(
        t / "x.pkl", pickle.dumps(42, protocol=4))), str(t / "o.safetensors")], r"not a checkpoint layout"),
    # -- generate
    cli("generate", gen("--batch", "-3"), r"--batch: -3 must be 0 or more"),  # 0 is auto
    cli("generate", gen("--batch", "2.5"), r"--batch: '2.5' is not an integer"),
    cli("generate", gen("--nrow", "0"), r"--nrow: 0 must be at least 1"),
    cli("generate", argv(W + "/cond.safetensors", "--seeds", "abc"), r"seeds must look like"),
    cli("generate", argv(W + "/cond.safetensors", "--seeds", "9-3"), r"runs backwards"),
    cli("generate", argv(W + "/cond.safetensors", "--seeds", "4294967296"), r"above 4294967295"),
    cli("generate", argv(W + "/cond.safetensors", "--seeds", "0-99999999999"), r"more than 100000"),
    cli("generate", gen("--trunc", "nan"), r"--trunc: 'nan' must be a finite number"),
    cli("generate", gen("--trunc", "inf"), r"--trunc: 'inf' must be a finite number"),
    cli("generate", gen("--class", "zebra"), r"'zebra': no such class.*0 a, 1 b, 2 c"),
    cli("generate", gen("--class", "7"), r"--class 7 is out of range"),
    cli("generate", argv(W + "/converted.safetensors", "--class", "1"), r"unconditional"),
    cli("generate", gen("--out", "{t}"), r"is a folder"),
    cli("generate", gen("--out", W + "/photo.png/grid.png"), r"is a file, not a folder"),
    cli("generate", gen("--out", "{t}/grid.xyz"), r"\.xyz is not an image format Pillow can write"),
    cli("generate", gen("--out", "{t}/grid.psd"), r"\.psd is not an image format Pillow can write"),
    cli("generate", argv(W + "/sg2.safetensors", "--seeds", "0", "--out", "{t}/g.jpg"),
        r"cannot write a RGBA picture as JPEG"),
    cli("generate", argv(W + "/style.safetensors", "--out", "{t}/g.png"), r"translator"),
    cli("generate", argv("{t}/none.safetensors", "--out", "{t}/g.png"), r"not found"),
    cli("generate", argv(W + "/sg2.safetensors", "--sweep", W + "/dirs.safetensors:0:1", "--frames", "0"),
        r"--frames: 0 must be at least 1"),
    cli("generate", argv(W + "/sg2.safetensors", "--sweep", W + "/dirs.safetensors:0:1", "--fps", "nan",
                         "--out", "{t}/s.webp"), r"--fps: 'nan' must be a finite"),
    cli("generate", argv(W + "/sg2.safetensors", "--edit", W + "/dirs.safetensors:0:nan", "--out", "{t}/g.png"),
        r"finite"),
    cli("generate", argv(W + "/cond.safetensors", "--edit", W + "/dirs.safetensors:0:1", "--out", "{t}/g.png"),
        r"has no W space|style"),
    cli("generate", gen("--class", "zebra", "--out", W + "/photo.png"), r"no such class"),
    # -- invert and directions
    cli("invert", argv(W + "/sg2.safetensors", W + "/photo.png", "--out", "{t}/l.safetensors", "--steps", "0"),
        r"--steps: 0 must be at least 1"),
    cli("invert", argv(W + "/sg2.safetensors", W + "/photo.png", "--out", "{t}/l.pt"), r"must end in \.safetensors"),
    cli("invert", argv(W + "/sg2.safetensors", W + "/photo.png", "--out", "{t}/l.safetensors",
                       "--perceptual-weight", "nan"), r"must be a finite number"),
    cli("invert", argv(W + "/sg2.safetensors", "{t}/missing.png", "--out", "{t}/l.safetensors",
                       "--perceptual", "none"), r"missing\.png"),
    cli("invert", argv(W + "/sg2.safetensors", W + "/photo.png", "--out", "{t}/l.safetensors",
                       "--out-images", "{t}/r.xyz"), r"\.xyz is not an image format"),
    cli("directions", argv(W + "/sg2.safetensors", "--samples", "0", "--out", "{t}/d.safetensors"),
        r"--samples: 0 must be at least 1"),
    cli("directions", argv(W + "/sg2.safetensors", "--out", "{t}"), r"is a folder|must end in"),
    cli("directions", argv(W + "/style.safetensors", "--out", "{t}/d.safetensors"), r"translator"),
    # -- train: no data lost, bad numbers refused before any work
    cli("train", argv("--data", W + "/digits", "--out", "{t}/r", "--steps", "0"), r"--steps"),
    cli("train", argv("--data", W + "/digits", "--out", "{t}/r", "--steps", "-5"), r"--steps"),
    cli("train", argv("--data", W + "/digits", "--out", "{t}/r", "--kimg", "0"), r"--kimg"),
    cli("train", argv("--data", W + "/digits", "--out", "{t}/r", "--batch", "0"), r"--batch"),
    cli("train", argv("--data", W + "/digits", "--out", "{t}/r", "--lr", "nan"), r"--lr"),
    cli("train", argv("--data", W + "/digits", "--out", "{t}/r", "--resolution", "-8"), r"--resolution"),
    cli("train", argv("--data", "{t}/nowhere", "--out", "{t}/r"), r"nowhere"),
    Case("train:empty-data-folder", "train", lambda w, t: (t / "empty").mkdir() or
         ["--data", str(t / "empty"), "--out", str(t / "r"), "--no-progress"], r"empty|no images"),
    Case("train:existing-run-without-resume", "train", lambda w, t: [
        "--data", str(w / "digits"), "--out", str(w / "run"), "--resolution", "8", "--steps", "4",
        "--no-progress"], r"--resume"),
    Case("train:resume-every-snapshot-damaged", "train", lambda w, t: _damaged_run(w, t), r"snapshot"),
    # -- nodes, as plain classes (ComfyUI checks only min/max; an API prompt or a caller can send anything)
    Case("node:sample-latent-translator", "node", lambda w, t: _node(w, "ComfyGAN_SampleLatent").sample(
        _load(w, "style.safetensors"), 0, 1), r"translator", ValueError),
    Case("node:generate-nan-truncation", "node", lambda w, t: _node(w, "ComfyGAN_GenerateImage").generate(
        _load(w, "cond.safetensors"), L.sample(_load(w, "cond.safetensors"), [0], 0), float("nan")),
         r"truncation psi must be a finite number", ValueError),
    Case("node:style-transfer-empty-image", "node", lambda w, t: _node(w, "ComfyGAN_GANStyleTransfer").transfer(
        _load(w, "style.safetensors"), torch.zeros(1, 0, 0, 3), 1.0), r"empty images", ValueError),
    Case("node:style-transfer-generator", "node", lambda w, t: _node(w, "ComfyGAN_GANStyleTransfer").transfer(
        _load(w, "cond.safetensors"), torch.zeros(1, 8, 8, 3), 1.0), r"noise-to-image generator", TypeError),
    Case("node:loader-climbs-out", "node", lambda w, t: _load(w, os.path.relpath(_outside(w, t), w)),
         r"leads outside", ValueError),
    Case("node:loader-absolute-path", "node", lambda w, t: _load(w, str(_outside(w, t))),
         r"leads outside", ValueError),
    Case("node:loader-missing", "node", lambda w, t: _load(w, "gone.safetensors"), r"not found", FileNotFoundError),
    Case("node:load-latent-climbs-out", "node", lambda w, t: _node(w, "ComfyGAN_LoadLatent").load(
        "../lat.safetensors"), r"leads outside", ValueError),
    Case("node:load-latent-absolute", "node", lambda w, t: _node(w, "ComfyGAN_LoadLatent").load(
        str(w / "lat.safetensors")), r"leads outside", ValueError),
    Case("node:save-latent-prefix-climbs", "node", lambda w, t: _node(w, "ComfyGAN_SaveLatent").save(
        L.sample(_load(w, "cond.safetensors"), [0], 0), "../escape"), r"filename_prefix", ValueError),
    Case("node:load-directions-absolute", "node", lambda w, t: _node(w, "ComfyGAN_LoadDirections").load(
        str(w / "dirs.safetensors")), r"leads outside", ValueError),
    Case("node:class-list-past-cap", "node", lambda w, t: _node(w, "ComfyGAN_SampleLatent").sample(
        _load(w, "cond.safetensors"), 0, 4096, -1, class_list="0-2"), r"more than 4096", ValueError),
    Case("node:apply-direction-nan", "node", lambda w, t: _node(w, "ComfyGAN_ApplyDirection").apply(
        _load(w, "sg2.safetensors"), L.sample(_load(w, "sg2.safetensors"), [0]),
        gan_models.directions.load_directions(w / "dirs.safetensors"), 0, float("nan")), r"finite", ValueError),
    Case("node:latent-from-other-generator", "node", lambda w, t: _node(w, "ComfyGAN_GenerateImage").generate(
        _load(w, "sg2.safetensors"), L.sample(_load(w, "cond.safetensors"), [0], 0), 1.0),
         r"made for a generator with", ValueError),
    # -- latent files
    Case("latent:nan-values", "latent", lambda w, t: L.load_latent(latent_file(
        w, t, values=lambda v: v.fill_(float("nan")))), r"NaN or infinite", CheckpointError),
    Case("latent:wrong-shape", "latent", lambda w, t: L.load_latent(latent_file(
        w, t, values=lambda v: v[:, :5].contiguous())), r"values are \[2, 5\]", CheckpointError),
    Case("latent:unknown-space", "latent", lambda w, t: L.load_latent(latent_file(
        w, t, meta_edit=lambda m: m.update(space="q"))), r"space must be 'z' or 'w'", CheckpointError),
    Case("latent:malformed-dims", "latent", lambda w, t: L.load_latent(latent_file(
        w, t, meta_edit=lambda m: m.update(dims="{oops"))), r"malformed latent file header", CheckpointError),
    Case("latent:missing-space", "latent", lambda w, t: L.load_latent(latent_file(
        w, t, meta_edit=lambda m: m.pop("space"))), r"lacks 'space'", CheckpointError),
    Case("latent:seed-count", "latent", lambda w, t: L.load_latent(latent_file(
        w, t, meta_edit=lambda m: m.update(seeds="[1, 2, 3]"))), r"3 seeds for 2 latents", CheckpointError),
    Case("latent:a-checkpoint", "latent", lambda w, t: L.load_latent(w / "cond.safetensors"),
         r"not a comfyui-gan latent file", CheckpointError),
    Case("latent:garbage", "latent", lambda w, t: L.load_latent(write_bytes(t / "l.safetensors", b"\x00" * 64)),
         r"not a latent file", CheckpointError),
]

def _unique_ids(cases: list[Case]) -> list[Case]:
    from dataclasses import replace
    seen: dict[str, int] = {}
    out = []
    for c in cases:
        seen[c.id] = seen.get(c.id, 0) + 1
        out.append(c if seen[c.id] == 1 else replace(c, id=f"{c.id}#{seen[c.id]}"))
    return out


CASES = _unique_ids(CASES)
MAINS = {"convert": convert_main, "generate": generate_main, "invert": invert_main,
         "directions": directions_main, "train": train_main}


def _outside(w: Path, t: Path) -> Path:
    """A good checkpoint outside every allowed folder: only a name that climbs out reaches it."""
    (t / "x.safetensors").write_bytes((w / "cond.safetensors").read_bytes())
    return t / "x.safetensors"


def _raw_header(w: Path, t: Path, text: str) -> Path:
    save_file(load_file(w / "cond.safetensors"), t / "h.safetensors", metadata={"gan": text})
    return t / "h.safetensors"


def _plain_safetensors(t: Path) -> Path:
    save_file({"foo.bar": torch.zeros(3, 3)}, t / "p.safetensors")
    return t / "p.safetensors"


def _damaged_run(w: Path, t: Path) -> list[str]:
    """A copy of the finished run with every snapshot cut short: --resume must stop, not start over."""
    import shutil
    run = t / "run"
    shutil.copytree(w / "run", run)
    for p in (run / "snapshots").iterdir():
        p.write_bytes(p.read_bytes()[:100])
    t.joinpath("run_hashes.json").write_text(json.dumps(hashes(run)))
    return ["--arch", "dcgan", "--data", str(w / "digits"), "--out", str(run), "--resolution", "8", "--batch", "8",
            "--steps", "8", "--z-dim", "8", "--ngf", "8", "--ndf", "8", "--resume", "--no-progress"]


_PACK: dict = {}


def _node(w: Path, node_id: str):
    return _PACK["nodes"][node_id]()


def _load(w: Path, name: str):
    return _node(w, "ComfyGAN_LoadGANGenerator").load(name, "cpu", "float32")[0]


def test_matrix_size_and_spread():
    by_entry: dict[str, int] = {}
    for c in CASES:
        by_entry[c.entry] = by_entry.get(c.entry, 0) + 1
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES), by_entry
    assert {"load", "convert", "generate", "train", "node", "latent"} <= set(by_entry), by_entry


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, world, pack, tmp_path, monkeypatch, capsys):
    _PACK["nodes"] = pack.NODE_CLASS_MAPPINGS
    monkeypatch.setenv("COMFYUI_GAN_MODELS", str(world))
    monkeypatch.setenv("COMFYUI_GAN_LATENTS", str(world / "latents"))
    monkeypatch.setenv("COMFYUI_GAN_DIRECTIONS", str(world / "directions"))
    (world / "latents").mkdir(exist_ok=True)
    (world / "directions").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)
    before = hashes(world)
    capsys.readouterr()
    if case.entry in MAINS:
        args = case.run(world, tmp_path)
        try:
            rc = MAINS[case.entry](args)
        except SystemExit as e:  # argparse refuses a bad option itself, with the same status
            rc = e.code
        err = capsys.readouterr().err
        assert rc == 2, f"{case.id}: exit {rc}, stderr: {err[-800:]}"
        assert "Traceback" not in err, err
        assert re.search(case.expect, err, re.S), f"{case.id}: {err[-800:]!r} does not match {case.expect!r}"
        assert "weights_only=False" not in err.replace("must not be loaded with weights_only=False", ""), err
    else:
        with pytest.raises(case.raises) as info:
            case.run(world, tmp_path)
        assert re.search(case.expect, str(info.value), re.S), f"{case.id}: {info.value!s:.800}"
    assert hashes(world) == before, f"{case.id} changed a good file"
    assert not (tmp_path / "PWNED").exists(), f"{case.id}: a payload ran"
    assert not list(tmp_path.glob("o.safetensors")) and not list(tmp_path.glob("*.tmp"))
    if (tmp_path / "run_hashes.json").exists():  # the damaged run: refused, and left as it was
        assert hashes(tmp_path / "run") == json.loads((tmp_path / "run_hashes.json").read_text())
