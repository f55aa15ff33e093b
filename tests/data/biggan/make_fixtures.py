"""Makes the BigGAN conformance fixtures in this folder by running pytorch-pretrained-biggan itself.

Not part of the test suite (nothing imports it) and never run by CI: it needs the upstream package,
which the project does not ship or install. How the committed fixtures were made:

    pip download pytorch-pretrained-biggan==0.1.1 --no-deps -d /tmp/pb
    unzip /tmp/pb/pytorch_pretrained_biggan-0.1.1-py3-none-any.whl -d /tmp/pb/src
    PYTHONPATH=/tmp/pb/src .venv/bin/python tests/data/biggan/make_fixtures.py

(torch 2.13.0+cpu, numpy, scipy; upstream's file_utils imports boto3 and botocore only to download
released weights, so where they are not installed this script puts empty stand-ins in sys.modules.)
The package runs unmodified. For each config below it builds `BigGAN(config)`, replaces every tensor
of its state dict with seeded random values (u and v of each spectral norm: the top singular pair of
weight_orig plus 1% noise, renormalised, as a trained file has them), writes config.json and
pytorch_model.bin exactly as the package releases them, loads them back with
`BigGAN.from_pretrained(folder)` (upstream's own loader), and records its outputs in eval mode.
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

try:
    import boto3  # noqa: F401
except ImportError:  # used by upstream only to download released weights
    for name in ("boto3", "botocore", "botocore.exceptions"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["botocore.exceptions"].ClientError = Exception

import pytorch_pretrained_biggan as pb  # noqa: E402

HERE = Path(__file__).resolve().parent
LAYERS_128 = [[False, 16, 16], [True, 16, 16], [False, 16, 16], [True, 16, 8], [False, 8, 8],
              [True, 8, 4], [False, 4, 4], [True, 4, 2], [False, 2, 2], [True, 2, 1]]

FIXTURES = {
    # 32 px, channel width 5 (conv_to_rgb has 5 channels: the image is the first 3), up-sampling in the
    # even blocks (not the released odd ones: the converter must read it from config.json), the width
    # halved in blocks of both kinds, attention before block 3, 51 truncation levels; a batch of 4
    "biggan_r32_ch5_c7": dict(output_dim=32, z_dim=12, class_embed_dim=12, channel_width=5, num_classes=7,
                              layers=[[True, 16, 16], [False, 16, 8], [True, 8, 4], [False, 4, 4],
                                      [True, 4, 2], [False, 2, 1]],
                              attention_layer_position=3, eps=1e-4, n_stats=51, seed=1, batch=4),
    # 128 px with the released 128 px layer list and attention position, channel width 4, 11 truncation
    # levels and a batch-norm epsilon of 1e-5 (both read from config.json); a batch of 1 keeps the
    # expected images under 600 kB
    "biggan_r128_ch4_c10": dict(output_dim=128, z_dim=12, class_embed_dim=12, channel_width=4, num_classes=10,
                                layers=LAYERS_128, attention_layer_position=8, eps=1e-5, n_stats=11, seed=2,
                                batch=1),
}
CALLS = {"img_t1.0": (1.0, "c"), "img_t0.4": (0.4, "c"), "img_mix_t0.7": (0.7, "c_mix")}


def randomize(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    new = {}
    for k, v in sd.items():
        if k.endswith("running_means"):
            new[k] = torch.randn(v.shape, generator=g) * 0.3
        elif k.endswith("running_vars"):
            new[k] = 0.3 + 1.2 * torch.rand(v.shape, generator=g)
        elif k.endswith("weight_orig"):
            new[k] = torch.randn(v.shape, generator=g) * 0.2
        elif k.endswith("gamma"):
            new[k] = torch.full(v.shape, 0.7)
        elif k == "generator.bn.weight":
            new[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith(("weight_u", "weight_v")):
            continue
        else:  # biases, embeddings
            new[k] = torch.randn(v.shape, generator=g) * (0.5 if k == "embeddings.weight" else 0.1)
    for k in sd:
        if k.endswith("weight_orig"):
            w = new[k].reshape(new[k].shape[0], -1).double()
            U, S, Vh = torch.linalg.svd(w, full_matrices=False)
            u = U[:, 0] + 0.01 * torch.randn(U.shape[0], generator=g, dtype=torch.float64)
            v = Vh[0] + 0.01 * torch.randn(Vh.shape[1], generator=g, dtype=torch.float64)
            base = k[: -len("weight_orig")]
            new[base + "weight_u"] = (u / u.norm()).float()
            new[base + "weight_v"] = (v / v.norm()).float()
    model.load_state_dict(new, strict=True)


def make(name: str, spec: dict) -> None:
    spec = dict(spec)
    seed, n = spec.pop("seed"), spec.pop("batch")
    out = HERE / name
    out.mkdir(exist_ok=True)
    config = pb.BigGANConfig.from_dict(spec)
    torch.manual_seed(seed)
    model = pb.BigGAN(config)
    randomize(model, seed)
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    (out / "config.json").write_text(config.to_json_string())
    model = pb.BigGAN.from_pretrained(str(out)).eval()  # upstream's own loading route

    k = spec["num_classes"]
    z = torch.from_numpy(pb.truncated_noise_sample(batch_size=n, dim_z=spec["z_dim"], truncation=1.0, seed=seed))
    c = torch.nn.functional.one_hot(torch.tensor([k - 1, 0, 1, 2][:n]), k).float()
    rs = np.random.RandomState(seed)
    c_mix = torch.zeros(n, k)
    for i in range(n):  # two or three classes blended per row
        idx = rs.choice(k, 2 + i % 2, replace=False)
        w = rs.dirichlet(np.ones(len(idx)))
        c_mix[i, torch.from_numpy(idx)] = torch.from_numpy(w).float()
    inputs = {"z": z.contiguous(), "c": c, "c_mix": c_mix}
    expected = {}
    with torch.no_grad():
        for call, (t, cname) in CALLS.items():
            expected[call] = model(z * t, inputs[cname], t).contiguous()
    save_file(inputs, str(out / "inputs.safetensors"))
    save_file(expected, str(out / "expected.safetensors"))
    sat = {kk: round(float((v.abs() > 0.99).float().mean()), 4) for kk, v in expected.items()}
    std = {kk: round(float(v.std()), 4) for kk, v in expected.items()}
    manifest = {
        "fixture": name,
        "upstream": {"package": "pytorch-pretrained-biggan==0.1.1 (PyPI wheel, unpacked, imported unmodified)",
                     "module": "pytorch_pretrained_biggan/model.py (BigGAN), utils.py (truncated_noise_sample)",
                     "torch": torch.__version__, "patches": "none"},
        "made_by": "tests/data/biggan/make_fixtures.py (its docstring gives the commands)",
        "config": spec,
        "files": {
            "pytorch_model.bin": "torch.save(BigGAN(config).state_dict()) after randomize(): as the package releases it",
            "config.json": "BigGANConfig.to_json_string(), as the package releases it",
            "inputs.safetensors": f"z [{n},{spec['z_dim']}] = truncated_noise_sample(batch_size={n}, "
                                  f"dim_z={spec['z_dim']}, truncation=1.0, seed={seed}) (truncnorm in [-2,2], "
                                  f"NOT yet scaled); c one-hot classes {[k - 1, 0, 1, 2][:n]}; c_mix soft vectors "
                                  f"(2 or 3 classes per row, Dirichlet weights, RandomState({seed}))",
            "expected.safetensors": "outputs of BigGAN.from_pretrained(folder).eval(), NCHW in [-1,1]",
        },
        "calls": {call: f"BigGAN(z * {t}, {cname}, truncation={t})" for call, (t, cname) in CALLS.items()},
        "notes": [
            "weights random: every tensor replaced from torch.Generator().manual_seed(seed): running_means "
            "N(0, 0.3^2), running_vars U(0.3, 1.5), weight_orig N(0, 0.2^2), biases N(0, 0.1^2), embeddings "
            "N(0, 0.5^2), attention gamma 0.7, final bn weight 1 + N(0, 0.1^2)",
            "spectral norm u, v: top singular pair of weight_orig (SVD) + N(0, 0.01^2), normalised; eval mode "
            "uses them as stored (weight_orig / (u . W v)), no power iteration",
            f"output std {std}, fraction with |x| > 0.99 {sat}",
        ],
        "tolerance": "1e-4 absolute",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(name, f"{size / 1e6:.2f} MB", "std", std, "saturated", sat)


if __name__ == "__main__":
    for name, spec in FIXTURES.items():
        make(name, spec)
