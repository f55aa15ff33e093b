"""rosinality/stylegan2-pytorch checkpoints (.pt): convert_weight.py output {'g_ema', 'latent_avg'} and
train.py snapshots {'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args', 'ada_aug_p'}.

The weights of g_ema are renamed onto NVlabs' keys (`archs.stylegan2.rosinality_to_nvlabs`), so the
written file is an ordinary 'stylegan2' checkpoint. `latent_avg` becomes the truncation centre
mapping.w_avg; train.py snapshots carry none, so it is estimated the way rosinality's generate.py does
(mean of w over 4096 random z, here with a fixed seed) and the header says so. `args`, when present,
is recorded in meta['source']['args'].
"""
from __future__ import annotations

import torch

from ..archs.stylegan2 import Generator, _is_rosinality, config_from_state_dict, rosinality_to_nvlabs
from ..checkpoint import CheckpointError
from . import Converter, register_converter

W_AVG_SAMPLES = 4096
W_AVG_SEED = 0


def _g_ema(obj):
    if isinstance(obj, dict) and isinstance(obj.get("g_ema"), dict):
        return obj["g_ema"]
    return None


def detect_format(obj) -> bool:
    sd = _g_ema(obj)
    return sd is not None and _is_rosinality(sd)


def _args(obj) -> dict | None:
    a = obj.get("args")
    if not isinstance(a, dict):
        return None
    return {k: v for k, v in a.items()
            if k != "__namespace__" and (v is None or isinstance(v, (bool, int, float, str))
                                         or (isinstance(v, (list, tuple))
                                             and all(isinstance(x, (bool, int, float, str)) for x in v)))}


def convert(obj, options: dict):
    sd = _g_ema(obj)
    if sd is None:
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"not a rosinality checkpoint: no 'g_ema' state dict (found {found})")
    if not _is_rosinality(sd):
        raise CheckpointError("'g_ema' is not a rosinality StyleGAN2 generator (need style.N, input.input, "
                              "conv1, to_rgb1 with 3 output channels; SWAGAN is not supported)")
    odd = next((k for k, v in sd.items() if isinstance(v, torch.Tensor) and not isinstance(k, str)), None)
    if odd is not None:
        raise CheckpointError(f"'g_ema' holds a tensor under the key {odd!r:.60}, not a name")
    latent_avg = obj.get("latent_avg")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"'latent_avg' is a {type(latent_avg).__name__}, not a tensor")
    try:
        out = rosinality_to_nvlabs({k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}, latent_avg)
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    args = _args(obj)
    source = {"format": "rosinality", "w_avg": "latent_avg" if latent_avg is not None else None}
    meta: dict = {"arch": "stylegan2", "source": source}
    if args is not None:
        source["args"] = args
        if "lr_mlp" in args:  # not a train.py flag upstream, but forks add it
            meta["arch_kwargs"] = {"mapping_kwargs": {"lr_multiplier": float(args["lr_mlp"])}}
    if latent_avg is None:
        G = Generator(**config_from_state_dict(out, meta)).eval()
        G.load_state_dict(out)
        gen = torch.Generator().manual_seed(W_AVG_SEED)
        with torch.no_grad():
            z = torch.randn([W_AVG_SAMPLES, G.z_dim], generator=gen)
            out["mapping.w_avg"] = G.mapping(z, None)[:, 0].mean(0)
        source["w_avg"] = f"estimated: mean of w over {W_AVG_SAMPLES} z (seed {W_AVG_SEED})"
    if options.get("class_names"):
        meta["class_names"] = list(options["class_names"])
    return out, meta


register_converter(Converter(name="rosinality", detect=detect_format, convert=convert))
