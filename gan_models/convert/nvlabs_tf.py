"""TF-era NVlabs network pickles: the StyleGAN2 TensorFlow releases and snapshots, stylegan2-ada's
TensorFlow version, and the community models trained with either (2019-2020).

Such a file is a tuple (G, D, Gs) of `dnnlib.tflib.network.Network`s, which `safe_unpickle` reads as
`TFNetwork`s without running the graph-building source each one carries. **Gs** is converted: the
weight-averaged generator, what NVlabs' own TF generator scripts draw with (G is the raw training
copy). Its variables, with those of its mapping and synthesis components, are renamed onto the NVlabs
PyTorch StyleGAN2 layout (`archs.stylegan2`) by the table of stylegan2-ada-pytorch's legacy.py
(convert_tf_generator): the same kwargs mapping and defaults, dense and convolution weights
transposed out of TF's [in, out] / [kh, kw, in, out], the upsampling convolutions' kernels flipped
(TF's transposed convolution runs them the other way round), +1 on the modulation biases (TF adds it
at run time, PyTorch keeps it in the bias), dlatent_avg as the truncation centre w_avg. As there, a
static kwarg the table does not know is refused by name (StyleGAN2 configs A-D, StyleGAN1 and the ADA
paper's comparison networks carry others), and so is a variable the network needs that the file lacks.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch

from ..archs.stylegan2 import setup_filter
from ..checkpoint import CheckpointError
from . import Converter, register_converter
from .nvlabs import _json_safe
from .safe_unpickle import Budget, TFNetwork, _brief

# legacy.py reads these and nothing else; the last four only steer training or TF's own sampling
# (Gs carries truncation as a baked-in default, the project takes it per call)
_KNOWN_KWARGS = ("latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "mapping_layers",
                 "label_fmaps", "mapping_fmaps", "mapping_nonlinearity", "mapping_lrmul", "w_avg_beta",
                 "fmap_base", "fmap_max", "num_fp16_res", "conv_clamp", "architecture", "resample_kernel",
                 "use_noise", "nonlinearity", "truncation_psi", "truncation_cutoff", "style_mixing_prob",
                 "structure")
_ACTIVATIONS = ("linear", "relu", "lrelu")  # what archs.stylegan2 runs; NVlabs' TF code used lrelu
_MAX_SIZE = 1 << 20  # any feature count or resolution beyond this is not a network anyone trained


def _networks(obj) -> tuple[TFNetwork, str] | None:
    if isinstance(obj, TFNetwork):
        return obj, str(obj.name)
    if isinstance(obj, (tuple, list)) and len(obj) == 3 and all(isinstance(n, TFNetwork) for n in obj):
        return obj[2], "Gs"
    return None


def detect_format(obj) -> bool:
    return _networks(obj) is not None


class _Kwargs:
    """A network's static kwargs, read the way legacy.py reads them: each name asked for is known,
    a missing one (or an explicit None) takes the given default."""

    def __init__(self, static_kwargs: dict, where: str):
        self.kw, self.where, self.known = static_kwargs, where, set()

    def get(self, name: str, default=None, none=None):
        self.known.add(name)
        value = self.kw.get(name, default)
        return value if value is not None else none

    def size(self, name: str, default, minimum: int = 1) -> int:
        v = self.get(name, default)
        if type(v) is not int or not minimum <= v <= _MAX_SIZE:
            raise CheckpointError(f"{self.where}: static kwarg {name}={_brief(v)} is not an integer in "
                                  f"[{minimum}, {_MAX_SIZE}]")
        return v

    def optional_size(self, name: str) -> int | None:
        return None if self.get(name) is None else self.size(name, None)

    def number(self, name: str, default, none=None, positive: bool = True) -> float | None:
        v = self.get(name, default, none)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(v)) or (positive and float(v) <= 0):
            raise CheckpointError(f"{self.where}: static kwarg {name}={_brief(v)} is not a "
                                  f"{'positive ' if positive else ''}finite number")
        return float(v)

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        v = self.get(name, default)
        if v not in allowed or not isinstance(v, str):
            raise CheckpointError(f"{self.where}: static kwarg {name}={_brief(v)}; this converter knows "
                                  f"{', '.join(allowed)}")
        return v

    def unknown(self) -> list[str]:
        return sorted(str(k) for k in self.kw if k not in self.known)


def _resample_kernel(kw: _Kwargs) -> list[float]:
    v = kw.get("resample_kernel", [1, 3, 3, 1])
    if not isinstance(v, (list, tuple)) or not 1 <= len(v) <= 16 \
            or not all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
                       and math.isfinite(float(x)) for x in v) or sum(float(x) for x in v) == 0:
        raise CheckpointError(f"{kw.where}: static kwarg resample_kernel={_brief(v)} is not a short 1-D "
                              f"list of taps with a non-zero sum")
    return [float(x) for x in v]


def _init_kwargs(net: TFNetwork, where: str) -> dict:
    """Generator(**kwargs) in NVlabs' PyTorch terms, from Gs's static kwargs, as legacy.py maps them."""
    kw = _Kwargs(net.static_kwargs, where)
    z_dim = kw.size("latent_size", 512)
    c_dim = kw.size("label_size", 0, minimum=0)
    w_dim = kw.size("dlatent_size", 512)
    resolution = kw.size("resolution", 1024, minimum=4)
    if resolution & (resolution - 1):
        raise CheckpointError(f"{where}: static kwarg resolution={resolution} is not a power of two")
    img_channels = kw.size("num_channels", 3)
    mapping = dict(num_layers=kw.size("mapping_layers", 8), embed_features=kw.optional_size("label_fmaps"),
                   layer_features=kw.optional_size("mapping_fmaps"),
                   activation=kw.choice("mapping_nonlinearity", "lrelu", _ACTIVATIONS),
                   lr_multiplier=kw.number("mapping_lrmul", 0.01),
                   w_avg_beta=kw.number("w_avg_beta", 0.995, none=1.0, positive=False))
    # TF's nf(stage) = min(fmap_base / 2^stage, fmap_max) with stage = log2(res) - 1
    synthesis = dict(channel_base=kw.size("fmap_base", 16384) * 2, channel_max=kw.size("fmap_max", 512),
                     num_fp16_res=kw.size("num_fp16_res", 0, minimum=0), conv_clamp=kw.number("conv_clamp", None),
                     architecture=kw.choice("architecture", "skip", ("orig", "skip", "resnet")),
                     resample_filter=_resample_kernel(kw), use_noise=kw.get("use_noise", True),
                     activation=kw.choice("nonlinearity", "lrelu", _ACTIVATIONS))
    if not isinstance(synthesis["use_noise"], bool):
        raise CheckpointError(f"{where}: static kwarg use_noise={_brief(synthesis['use_noise'])} is not a bool")
    for name in ("truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure"):
        kw.get(name)
    unknown = kw.unknown()
    if unknown:
        raise CheckpointError(f"{where}: unknown TensorFlow static kwarg(s) {', '.join(map(repr, unknown))}: "
                              f"not the StyleGAN2 / stylegan2-ada generator NVlabs' legacy.py converts "
                              f"(configs A-D, StyleGAN1 and the ADA paper's comparison networks are not)")
    return dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
                mapping_kwargs=mapping, synthesis_kwargs=synthesis)


def _tf_params(net: TFNetwork, where: str) -> dict[str, np.ndarray]:
    """Every variable of net and its components by TF name ('dlatent_avg', 'mapping/Dense0/weight'),
    as legacy.py's _collect_tf_params names them."""
    out: dict[str, np.ndarray] = {}
    budget = Budget(f"{where}: network components")

    def collect(prefix: str, n, depth: int):
        budget.step(depth, "network components")
        if not isinstance(n, TFNetwork) or "state" not in n.__dict__:
            raise CheckpointError(f"{where}: component {prefix.rstrip('/') or '(top)'} is {_brief(n)}, "
                                  f"not a TF network")
        for item in n.variables:
            budget.step(depth + 1, "network variables")
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
                raise CheckpointError(f"{where}: a variable of {prefix or 'the top level'} is {_brief(item)}, "
                                      f"not a (name, array) pair")
            name, value = item
            if not isinstance(value, (np.ndarray, np.generic)) or np.asarray(value).dtype.kind != "f":
                raise CheckpointError(f"{where}: variable {prefix + name!r} is {_brief(value)}, not a float array")
            out[prefix + name] = np.asarray(value)
        for cname, comp in n.components.items():
            if not isinstance(cname, str):
                raise CheckpointError(f"{where}: component name {_brief(cname)} is not a string")
            collect(f"{prefix}{cname}/", comp, depth + 1)

    collect("", net, 0)
    return out


def _t(a):  # dense: TF [in, out] -> [out, in]
    return a.transpose()


def _conv(a):  # TF [kh, kw, in, out] -> [out, in, kh, kw]
    return a.transpose(3, 2, 0, 1)


def _conv_up(a):
    return a[::-1, ::-1].transpose(3, 2, 0, 1)


def _plus1(a):
    return a + 1


def _same(a):
    return a


def _table(k: dict) -> list[tuple[str, str, tuple, object]]:
    """(PyTorch name, TF name, TF shape, TF -> PyTorch) for every parameter and persistent buffer of
    archs.stylegan2.Generator(**k), resample filters aside: legacy.py's patterns, run forwards."""
    m, s = k["mapping_kwargs"], k["synthesis_kwargs"]
    w_dim, c_dim = k["w_dim"], k["c_dim"]
    rows = [("mapping.w_avg", "dlatent_avg", (w_dim,), _same)]
    embed = (m["embed_features"] or w_dim) if c_dim else 0
    if c_dim:
        rows += [("mapping.embed.weight", "mapping/LabelEmbed/weight", (c_dim, embed), _t),
                 ("mapping.embed.bias", "mapping/LabelEmbed/bias", (embed,), _same)]
    layer = m["layer_features"] or w_dim
    features = [k["z_dim"] + embed] + [layer] * (m["num_layers"] - 1) + [w_dim]
    for i in range(m["num_layers"]):
        rows += [(f"mapping.fc{i}.weight", f"mapping/Dense{i}/weight", (features[i], features[i + 1]), _t),
                 (f"mapping.fc{i}.bias", f"mapping/Dense{i}/bias", (features[i + 1],), _same)]

    def layer_rows(torch_name, tf_name, cin, cout, res, noise_index, up=False):
        out = [(f"{torch_name}.weight", f"{tf_name}/weight", (3, 3, cin, cout), _conv_up if up else _conv),
               (f"{torch_name}.bias", f"{tf_name}/bias", (cout,), _same),
               (f"{torch_name}.affine.weight", f"{tf_name}/mod_weight", (w_dim, cin), _t),
               (f"{torch_name}.affine.bias", f"{tf_name}/mod_bias", (cin,), _plus1)]
        if s["use_noise"]:
            out += [(f"{torch_name}.noise_const", f"synthesis/noise{noise_index}", (1, 1, res, res), lambda a: a[0, 0]),
                    (f"{torch_name}.noise_strength", f"{tf_name}/noise_strength", (), _same)]
        return out

    log2 = int(math.log2(k["img_resolution"]))
    channels = {2 ** i: min(s["channel_base"] // 2 ** i, s["channel_max"]) for i in range(2, log2 + 1)}
    for res, ch in channels.items():
        if ch < 1:
            raise CheckpointError(f"fmap_base {s['channel_base'] // 2} and fmap_max {s['channel_max']} leave no "
                                  f"channels at {res} px")
        b, tf, r = f"synthesis.b{res}", f"synthesis/{res}x{res}", int(math.log2(res))
        if res == 4:
            rows.append((f"{b}.const", f"{tf}/Const/const", (1, ch, 4, 4), lambda a: a[0]))
            rows += layer_rows(f"{b}.conv1", f"{tf}/Conv", ch, ch, res, 0)
        else:
            rows += layer_rows(f"{b}.conv0", f"{tf}/Conv0_up", channels[res // 2], ch, res, r * 2 - 5, up=True)
            rows += layer_rows(f"{b}.conv1", f"{tf}/Conv1", ch, ch, res, r * 2 - 4)
        if res == k["img_resolution"] or s["architecture"] == "skip":
            rows += [(f"{b}.torgb.weight", f"{tf}/ToRGB/weight", (1, 1, ch, k["img_channels"]), _conv),
                     (f"{b}.torgb.bias", f"{tf}/ToRGB/bias", (k["img_channels"],), _same),
                     (f"{b}.torgb.affine.weight", f"{tf}/ToRGB/mod_weight", (w_dim, ch), _t),
                     (f"{b}.torgb.affine.bias", f"{tf}/ToRGB/mod_bias", (ch,), _plus1)]
        if res > 4 and s["architecture"] == "resnet":
            rows.append((f"{b}.skip.weight", f"{tf}/Skip/weight", (1, 1, channels[res // 2], ch), _conv_up))
    return rows


def _resample_filters(k: dict) -> dict[str, torch.Tensor]:
    f = setup_filter(k["synthesis_kwargs"]["resample_filter"])
    out = {}
    for i in range(2, int(math.log2(k["img_resolution"])) + 1):
        b = f"synthesis.b{2 ** i}"
        names = [b, f"{b}.conv1"] + ([f"{b}.conv0"] if i > 2 else [])
        if i > 2 and k["synthesis_kwargs"]["architecture"] == "resnet":
            names.append(f"{b}.skip")
        out.update({f"{n}.resample_filter": f.clone() for n in names})
    return out


def convert(obj, options: dict):
    found = _networks(obj)
    if found is None:
        raise CheckpointError("not a TF-era NVlabs pickle: expected (G, D, Gs) or one dnnlib.tflib Network")
    net, key = found
    where = f"{key} ({_brief(net.name)})" if net.name != key else key
    if "state" not in net.__dict__:
        raise CheckpointError(f"{where}: a TF network without its pickled state")
    if net.version < 4:
        raise CheckpointError(f"{where}: TF network pickle version {net.version}: older than StyleGAN2 "
                              f"(version 4), which is what legacy.py converts")
    if options.get("arch") not in (None, "stylegan2"):
        raise CheckpointError(f"{where}: a TF StyleGAN2 network converts to arch 'stylegan2', not "
                              f"{options['arch']!r}")
    kwargs = _init_kwargs(net, where)
    params = _tf_params(net, where)
    lod = sorted(n for n in params if re.fullmatch(r"(.*/)?ToRGB_lod\d+/.*", n))
    if lod:  # legacy.py means to rename these but fails on them (a typo in its kwargs path)
        raise CheckpointError(f"{where}: variable {lod[0]!r}: a progressive-growing synthesis network "
                              f"(StyleGAN2 configs A-D), which is not converted")
    sd: dict[str, torch.Tensor] = {}
    used = set()
    for torch_name, tf_name, shape, fn in _table(kwargs):
        value = params.get(tf_name)
        if value is None:
            raise CheckpointError(f"{where}: variable {tf_name!r} is missing: the static kwargs describe a "
                                  f"network that needs it (for {torch_name})")
        if tuple(value.shape) != shape:
            raise CheckpointError(f"{where}: variable {tf_name!r} has shape {list(value.shape)}, the static "
                                  f"kwargs describe {list(shape)}")
        sd[torch_name] = torch.from_numpy(np.array(fn(value), dtype=np.float32))
        used.add(tf_name)
    sd.update(_resample_filters(kwargs))
    ignored = sorted(set(params) - used)
    meta = {"arch": "stylegan2", "init_kwargs": _json_safe(kwargs),
            "source": {"format": "nvlabs-tf-pickle", "network": key, "tf_network_name": net.name,
                       "tf_pickle_version": net.version, "build_func_name": _json_safe(net.build_func_name),
                       "static_kwargs": _json_safe(net.static_kwargs),
                       **({"ignored_variables": ignored[:32], "ignored_variable_count": len(ignored)}
                          if ignored else {})}}
    if options.get("class_names"):
        meta["class_names"] = list(options["class_names"])
    return sd, meta


register_converter(Converter(name="nvlabs-tf", detect=detect_format, convert=convert))
