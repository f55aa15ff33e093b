"""BigGAN-deep as pytorch-pretrained-biggan releases it: a folder holding config.json (BigGANConfig as
JSON) and pytorch_model.bin (torch.save of `BigGAN.state_dict()`, read here by the restricted reader).

    python -m gan_models.convert FOLDER out.safetensors
    python -m gan_models.convert FOLDER/pytorch_model.bin out.safetensors

The tensors keep their names (gan_models.archs.biggan loads them as they are); config.json is read as
data, bounded in size, every field checked for its type and against the tensors' shapes, and becomes
the header's `arch_kwargs` (which blocks up-sample, the batch-norm epsilon: what shapes cannot say)
and `init_kwargs` (the config, validated). The package's download names
(`biggan-deep-128-pytorch_model.bin` beside `biggan-deep-128-config.json`) are found too. A 1000-class
model is an ImageNet model: its header gets ImageNet's class names (gan_models/data/imagenet_classes.txt).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..archs import biggan as arch
from ..checkpoint import CheckpointError
from . import Converter, register_converter, state_detector, state_or_none

WEIGHTS_NAME, CONFIG_NAME = "pytorch_model.bin", "config.json"
MAX_CONFIG_BYTES = 64 * 1024      # a released config.json is about 600 bytes
MAX_BLOCKS = 64                   # the 512 px release has 14
IMAGENET_CLASSES = Path(__file__).resolve().parent.parent / "data" / "imagenet_classes.txt"

# BigGANConfig's defaults (the 128 px model): upstream's from_dict starts from them, so a field a
# config.json leaves out takes its default there and here
DEFAULTS = {"output_dim": 128, "z_dim": 128, "class_embed_dim": 128, "channel_width": 128, "num_classes": 1000,
            "layers": [list(layer) for layer in arch.DEFAULT_LAYERS], "attention_layer_position": 8,
            "eps": 1e-4, "n_stats": 51}


detect_format = state_detector(arch.detect)


def config_path(source: Path) -> Path:
    """config.json for a weights file (or a folder): beside it, or under the package's download name
    (NAME-config.json beside NAME-pytorch_model.bin)."""
    folder = source if source.is_dir() else source.parent
    tried = []
    if not source.is_dir() and source.name.endswith(WEIGHTS_NAME) and source.name != WEIGHTS_NAME:
        tried.append(source.name[: -len(WEIGHTS_NAME)] + CONFIG_NAME)
    tried.append(CONFIG_NAME)
    for name in tried:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{source.name}: a BigGAN state dict needs its {CONFIG_NAME} (pytorch-pretrained-biggan "
                          f"keeps it beside {WEIGHTS_NAME}); none found in {folder.name or folder}: looked for "
                          f"{', '.join(tried)}")


def read_config(path: Path) -> dict:
    """config.json as a dict, bounded and checked field by field (upstream's defaults for fields it
    leaves out); a CheckpointError names the first bad field. Fields BigGANConfig does not have are
    left out; class_embed_dim is checked but, as upstream, unused (the embedding is z_dim wide)."""
    with open(path, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path.name}: larger than {MAX_CONFIG_BYTES} bytes; a BigGAN config.json is a few "
                              "hundred bytes, so this is not one")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path.name}: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name}: must hold a JSON object (BigGANConfig's fields), not a "
                              f"{type(data).__name__}")
    cfg = {**DEFAULTS, **{k: v for k, v in data.items() if k in DEFAULTS}}

    def bad(field, want):
        return CheckpointError(f"{path.name}: field {field!r} must be {want}, not {cfg[field]!r}")

    def count(v):
        return isinstance(v, int) and not isinstance(v, bool)

    for field in ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes"):
        if not count(cfg[field]) or not 1 <= cfg[field] <= 1 << 20:
            raise bad(field, "a positive integer")
    if not count(cfg["n_stats"]) or not 2 <= cfg["n_stats"] <= 100_000:
        raise bad("n_stats", "an integer >= 2 (statistics at truncation levels 0 ... 1)")
    if not count(cfg["attention_layer_position"]) or cfg["attention_layer_position"] < 0:
        raise bad("attention_layer_position", "an integer >= 0")
    eps = cfg["eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise bad("eps", "a number in (0, 1)")
    layers = cfg["layers"]
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_BLOCKS:
        raise bad("layers", f"a list of 1 to {MAX_BLOCKS} [up_sample, in, out] entries")
    for i, layer in enumerate(layers):
        if not (isinstance(layer, list) and len(layer) == 3 and isinstance(layer[0], bool)
                and count(layer[1]) and count(layer[2]) and 1 <= layer[2] <= layer[1] <= 1 << 10):
            raise CheckpointError(f"{path.name}: field 'layers' entry {i} must be [up_sample (true/false), in, out] "
                                  f"with 1 <= out <= in, not {layer!r}")
    cfg["eps"] = float(eps)
    return cfg


def _check_against_tensors(cfg: dict, kw: dict, name: str) -> None:
    """Every config field the tensors also say must agree with them: a config.json from another model
    is named, field by field, instead of drawing noise."""
    said = {"z_dim": kw["z_dim"], "num_classes": kw["c_dim"], "channel_width": kw["channel_width"],
            "n_stats": kw["n_stats"], "layers": len(kw["layers"])}
    for field, v in said.items():
        have = len(cfg[field]) if field == "layers" else cfg[field]
        if have != v:
            what = "blocks in field 'layers'" if field == "layers" else f"field {field!r}"
            raise CheckpointError(f"{name}: {what} is {have}, the tensors in the weights file make it {v}")
    for i, (layer, (_, cin, cout)) in enumerate(zip(cfg["layers"], kw["layers"])):
        if (layer[1], layer[2]) != (cin, cout):
            raise CheckpointError(f"{name}: field 'layers' entry {i} says {layer[1]} -> {layer[2]} (x channel_width), "
                                  f"the tensors say {cin} -> {cout}")
    pos = cfg["attention_layer_position"]
    want = pos if pos < len(cfg["layers"]) else len(cfg["layers"])  # upstream: past the end, no attention
    if want != kw["attention_layer_position"]:
        has = kw["attention_layer_position"]
        raise CheckpointError(f"{name}: field 'attention_layer_position' is {pos}, the tensors put the self-attention "
                              + (f"before block {has}" if has < len(kw["layers"]) else "nowhere"))
    res = 4 * 2 ** sum(bool(layer[0]) for layer in cfg["layers"])
    if res != cfg["output_dim"]:
        raise CheckpointError(f"{name}: field 'output_dim' is {cfg['output_dim']}, the up-sampling blocks in field "
                              f"'layers' make {res} px")


def imagenet_class_names() -> list[str]:
    """ImageNet-1k's class names in index order (the short names torchvision lists), for 1000-class models."""
    names = IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines()
    if len(names) != 1000 or len(set(names)) != 1000 or not all(names):
        raise CheckpointError(f"{IMAGENET_CLASSES.name}: expected 1000 distinct names, found {len(names)}")
    return names


def convert(obj, options: dict):
    sd = state_or_none(obj)
    if sd is None or arch.detect(sd, {}) <= 0:
        raise CheckpointError("not a pytorch-pretrained-biggan state dict: expected embeddings.weight and "
                              "generator.gen_z.weight_orig, generator.bn.*, generator.conv_to_rgb.*")
    src = Path(options.get("source_name") or WEIGHTS_NAME)
    cfg_path = config_path(src)
    cfg = read_config(cfg_path)
    arch_kwargs = {"up": [bool(layer[0]) for layer in cfg["layers"]], "eps": cfg["eps"]}
    try:
        kw = arch.config_from_state_dict(sd, {"arch_kwargs": {"eps": cfg["eps"]}})
    except KeyError as e:
        raise CheckpointError(f"biggan: missing tensor {e.args[0]!r}") from None
    _check_against_tensors(cfg, kw, cfg_path.name)
    meta = {"arch": "biggan", "arch_kwargs": arch_kwargs, "z_dim": kw["z_dim"], "c_dim": kw["c_dim"],
            "img_resolution": cfg["output_dim"], "output_range": [-1, 1], "init_kwargs": cfg,
            "source": {"config": cfg_path.name}}
    if kw["c_dim"] == 1000:
        meta["class_names"] = imagenet_class_names()
    return dict(sd), meta


def sidecars(source: Path) -> list[Path]:
    """The config.json a weights file's conversion reads, where there is one."""
    if source.suffix.lower() != ".bin" and not source.is_dir():
        return []
    try:
        return [config_path(source)]
    except CheckpointError:
        return []  # none: converting says so


register_converter(Converter(name="biggan", detect=detect_format, convert=convert, sidecars=sidecars))
