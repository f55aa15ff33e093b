"""NVlabs network pickles (stylegan2-ada-pytorch, stylegan3): training snapshots and released .pkl files.

`safe_unpickle.load` has already turned every persistent module into a `PersistentObject` without
running its embedded source; this converter takes **G_ema** (the weight-averaged generator that
NVlabs' own generate.py uses; `G` is the raw training copy and gives different images), flattens its
module tree into NVlabs' state-dict names and keeps its constructor arguments in meta['init_kwargs'],
so the architecture's build() can read what tensor shapes cannot show (architecture, conv_clamp,
fp16 resolutions, mapping learning-rate multiplier, ...). The architecture itself (stylegan2,
stylegan3, ...) is then recognised from the tensors by the registry.
"""
from __future__ import annotations

import math

from ..checkpoint import CheckpointError
from . import Converter, register_converter
from .safe_unpickle import PersistentObject, TFNetwork, _plain

_PREFERRED_KEY = "G_ema"


def _generator(obj) -> tuple[PersistentObject, str]:
    if isinstance(obj, PersistentObject):
        return obj, "(top level)"
    if not isinstance(obj, dict):
        raise CheckpointError(f"not an NVlabs network pickle: found a {type(obj).__name__}")
    g = obj.get(_PREFERRED_KEY)
    if not isinstance(g, PersistentObject):
        found = sorted(str(k) for k in obj)
        hint = " ('G' is the non-averaged training copy and is deliberately not used)" if "G" in obj else ""
        raise CheckpointError(f"NVlabs pickle without a '{_PREFERRED_KEY}' network; keys: {found}{hint}")
    return g, _PREFERRED_KEY


def detect_format(obj) -> bool:
    if isinstance(obj, PersistentObject):
        return True
    return isinstance(obj, dict) and isinstance(obj.get(_PREFERRED_KEY), PersistentObject)


def _json_safe(v):
    v = _plain(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def convert(obj, options: dict):
    g, key = _generator(obj)
    if g.type not in (None, "class"):
        raise CheckpointError(f"{key}: unsupported persistent object type {g.type!r}")
    sd = g.state_dict()
    if not sd:
        raise CheckpointError(f"{key} ({g.class_name}) holds no parameters")
    init_kwargs = _json_safe(g.init_kwargs)
    if g.init_args:
        raise CheckpointError(f"{key} ({g.class_name}) was built with positional arguments; "
                              f"only keyword-constructed NVlabs networks are understood")
    meta = {"init_kwargs": init_kwargs,
            "source": {"format": "nvlabs-pickle", "network": key, "class_name": g.class_name,
                       "persistence_version": g.version}}
    if isinstance(obj, dict) and isinstance(obj.get("training_set_kwargs"), dict):
        ts = _json_safe(obj["training_set_kwargs"])
        meta["source"]["training_set"] = {k: ts[k] for k in ("resolution", "use_labels", "xflip") if k in ts}
    if options.get("arch"):
        meta["arch"] = options["arch"]
    if options.get("class_names"):
        meta["class_names"] = list(options["class_names"])
    return sd, meta


def discriminator(obj) -> tuple[dict, dict]:
    """The D of an NVlabs training pickle, for `train --init-d`: fine-tuning a pretrained G against a
    random D discards half of what transfer learning keeps. Released pickles (ffhq.pkl, ...) hold it
    too; some generator-only exports do not."""
    d = obj.get("D") if isinstance(obj, dict) else None
    if isinstance(obj, (tuple, list)) and any(isinstance(n, TFNetwork) for n in obj):
        raise CheckpointError("--discriminator: this is a TF-era NVlabs pickle; only its generator (Gs) is "
                              "converted, its D is not (convert without --discriminator)")
    if not isinstance(d, PersistentObject):
        raise CheckpointError("--discriminator: the file holds no NVlabs 'D' network"
                              + (f" (its keys: {sorted(str(k) for k in obj)})" if isinstance(obj, dict) else ""))
    sd = d.state_dict()
    if not sd or d.init_args:
        raise CheckpointError(f"--discriminator: D ({d.class_name}) holds no parameters or was built with "
                              f"positional arguments")
    # StyleGAN3's pickles carry the StyleGAN2(-ADA) discriminator too
    return sd, {"arch": "stylegan2", "kind": "discriminator", "init_kwargs": _json_safe(d.init_kwargs),
                "source": {"format": "nvlabs-pickle", "network": "D", "class_name": d.class_name,
                           "persistence_version": d.version}}


register_converter(Converter(name="nvlabs", detect=detect_format, convert=convert))
