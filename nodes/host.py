"""The only module that touches ComfyUI, imported lazily so the nodes also run (and are tested) as
plain classes outside it: progress bar, interruption, devices, the models/gan and models/gan_perceptual
folders, the example inputs and the folders of latent and direction files."""
from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import torch

from ..gan_models import checkpoint, devices

PACK_DIR = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = PACK_DIR / "weights"
FOLDER = "gan"
EXTENSIONS = {".safetensors"}
# files from the wild the loader converts on first use (gan_models.convert: nothing in them is run)
CONVERTIBLE = {".pkl", ".pt", ".pth", ".bin", ".tar"}
# perceptual networks for inversion: NVlabs' vgg16.pt, torchvision's VGG16 (+ lpips' vgg.pth heads), ...
PERCEPTUAL_FOLDER = "gan_perceptual"
PERCEPTUAL_EXTENSIONS = {".pt", ".pth", ".bin", ".safetensors"}
EXAMPLE_INPUTS_DIR = PACK_DIR / "example_inputs"
EXAMPLE_INPUT_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".mp4"}  # LoadImage and LoadVideo read these
log = logging.getLogger(__name__)


def _comfy():
    try:
        import comfy.model_management as mm
        import comfy.utils as utils
        import folder_paths
    except ImportError:
        return None
    return mm, utils, folder_paths


def plain_error_names() -> None:
    """ComfyUI's error panel names a node's exception by module path and class
    (execution.full_type_name), which for the pack's own errors is the install folder's name:
    'comfyui-gan.gan_models.checkpoint.CheckpointError'. A class whose module is 'builtins' is shown by
    its name alone, as ValueError is, so inside ComfyUI the pack's user-facing errors read
    'CheckpointError: ...'. Outside ComfyUI the classes keep their real module."""
    if _comfy() is None:
        return
    from ..gan_models.metrics import MetricsError
    for cls in (checkpoint.CheckpointError, checkpoint.OutputPathError, MetricsError):
        cls.__module__ = "builtins"


def register_model_folder() -> None:
    """Register models/gan and the pack's weights/ with folder_paths. extra_model_paths.yaml is read
    before packs load and gives a key it does not know an empty extension set, so merge the paths
    already there and set the extensions ourselves."""
    c = _comfy()
    if c is None:
        return
    fp = c[2]
    for folder, extra, extensions in ((FOLDER, [str(WEIGHTS_DIR)], EXTENSIONS | CONVERTIBLE),
                                      (PERCEPTUAL_FOLDER, [], PERCEPTUAL_EXTENSIONS)):
        paths, exts = fp.folder_names_and_paths.get(folder, ([], set()))
        paths = list(paths)
        for p in [os.path.join(fp.models_dir, folder)] + extra:
            if p not in paths:
                paths.append(p)
        fp.folder_names_and_paths[folder] = (paths, set(exts) | extensions)


def install_example_inputs() -> list[str]:
    """Copy the pack's example_inputs/ images into ComfyUI's input folder, where core's LoadImage
    finds them: the example workflows load them by name on a fresh install. A file of that name
    already there is the user's and is never replaced; a folder we cannot write to only costs the
    examples their image, so it is logged, not raised."""
    c = _comfy()
    if c is None or not EXAMPLE_INPUTS_DIR.is_dir():
        return []
    dest = Path(c[2].get_input_directory())
    copied = []
    for src in sorted(EXAMPLE_INPUTS_DIR.iterdir()):
        if src.suffix.lower() not in EXAMPLE_INPUT_EXTENSIONS or not src.is_file():
            continue
        target = dest / src.name
        if target.exists() or target.is_symlink():
            continue
        try:
            dest.mkdir(parents=True, exist_ok=True)
            tmp = dest / f".{src.name}.comfyui-gan.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)  # never a half-copied image under the name LoadImage lists
            copied.append(src.name)
        except OSError as e:
            log.warning("comfyui-gan: could not copy example input %s to %s: %s", src.name, dest, e)
    return copied


def _is_discriminator(path) -> bool:
    """A discriminator kept beside its generator for fine-tuning (convert --discriminator) is no
    choice for the loader. Only the header is read; a file that cannot be read stays listed, and
    loading it says what is wrong."""
    try:
        return checkpoint.read_meta(path).get("kind") == "discriminator"
    except Exception:
        return False


def list_checkpoints() -> list[str]:
    """Generators and translators in models/gan and weights/: .safetensors files, and the files from
    the wild (.pkl, .pt, .pth, .bin, .tar) that loading converts; a conversion cached beside its
    source is not listed twice, nor is a discriminator."""
    c = _comfy()
    if c is not None:
        register_model_folder()
        found = {n: Path(c[2].get_full_path(FOLDER, n)) for n in c[2].get_filename_list(FOLDER)}
    else:
        found = {p.relative_to(d).as_posix(): p for d in _checkpoint_dirs() if d.is_dir()
                 for p in d.rglob("*") if p.suffix.lower() in EXTENSIONS | CONVERTIBLE}
    return sorted(n for n, p in found.items()
                  if not (p.suffix.lower() == ".safetensors" and (_is_cache(n, found) or _is_discriminator(p))))


def _is_cache(name: str, found: dict) -> bool:
    return name.endswith(CACHE_SUFFIX) and name[:-len(CACHE_SUFFIX)] in found


CACHE_SUFFIX = ".converted.safetensors"


def converted(path: Path, key: str = "") -> Path:
    """The .safetensors conversion of a checkpoint from the wild, made on first use with the safe
    converter and kept beside the source (in a cache folder where that folder is read-only). The
    cache is keyed by the size and modification time of the source and of the files beside it that
    converting it reads (`convert.source_files`), and by the --key chosen inside it: a replaced source
    is converted again."""
    from ..gan_models.convert import convert_file, source_files
    if path.suffix.lower() == ".safetensors":
        return path
    st = path.stat()
    cache_key = {"file": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "key": key}
    for extra in source_files(path)[1:]:  # a file beside it that the conversion reads (BigGAN's config.json)
        est = extra.stat()
        cache_key.setdefault("beside", {})[extra.name] = {"size": est.st_size, "mtime_ns": est.st_mtime_ns}
    candidates = [path.with_name(path.name + CACHE_SUFFIX), _cache_dir() / f"{_path_key(path)}{CACHE_SUFFIX}"]
    for cache in candidates:
        if cache.is_file():
            try:
                if checkpoint.read_meta(cache).get("source", {}).get("cache_key") == cache_key:
                    return cache
            except Exception:  # a damaged cache is converted again, not trusted
                pass
    progress = progress_bar(2)  # only a conversion shows a bar: a cached load is instant
    progress(0, 2)
    for cache in candidates:
        if _writable(cache.parent):
            try:
                convert_file(path, cache, source_extra={"cache_key": cache_key}, key=key or None)
            except PermissionError:
                continue
            progress(2, 2)
            return cache
    raise PermissionError(f"{path.name}: no writable folder for its conversion (tried {candidates[0].parent} "
                          f"and {candidates[1].parent})")


def _writable(folder: Path) -> bool:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _path_key(path: Path) -> str:
    import hashlib
    return f"{path.name}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"


def _cache_dir() -> Path:
    c = _comfy()
    if c is not None:
        return Path(c[2].get_user_directory()) / "comfyui-gan" / "converted"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "comfyui-gan" / "converted"


def _checkpoint_dirs() -> list[Path]:
    c = _comfy()
    if c is not None:
        register_model_folder()
        return [Path(p) for p in c[2].folder_names_and_paths[FOLDER][0]]
    extra = os.environ.get("COMFYUI_GAN_MODELS")
    return [WEIGHTS_DIR] + ([Path(extra)] if extra else [])


def checkpoint_path(name: str) -> Path:
    """Full path of a combo entry, only ever inside models/gan or weights/; a clear error when it is
    gone (renamed, or a shared workflow)."""
    return find_file(_checkpoint_dirs(), name, "GAN checkpoint",
                     f"put the .safetensors file in models/{FOLDER} or the pack's weights/ folder (convert "
                     f".pkl/.pt/.pth files first with python -m gan_models.convert)", links_out=True)


def find_file(dirs: list[Path], name: str, what: str, hint: str = "", links_out: bool = False) -> Path:
    """The file `name` names in the first of `dirs` that holds it. A name that leads outside every
    folder ('../', an absolute path) is refused whether or not ComfyUI is running: combos list only
    files inside, but a prompt posted to the API, or a caller of the plain class, can say anything.
    `links_out`: a link inside the folder may point elsewhere (users link large checkpoints into
    models/ from other disks; that is their choice, a name in a prompt is not)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what}: no file name given")
    resolved = [(d, (_named_inside if links_out else inside)(d, name)) for d in dirs]
    if dirs and all(full is None for _, full in resolved):
        raise ValueError(f"{what} {name!r} leads outside {', '.join(str(d) for d in dirs)}: only files inside "
                         f"those folders are opened")
    for _, full in resolved:
        if full is not None and full.is_file():
            return full
    where = ", ".join(str(d) for d in dirs) or "(no folder)"
    raise FileNotFoundError(f"{what} {name!r} not found in {where}" + (f": {hint}" if hint else ""))


def _named_inside(folder: Path, name: str) -> Path | None:
    """folder/name where the name itself stays inside folder; unlike inside(), links are not followed."""
    root = Path(os.path.abspath(folder))
    full = Path(os.path.normpath(root / name))
    return full if full != root and full.is_relative_to(root) else None


def listing(dirs: list[Path], empty: str) -> list[str]:
    """The .safetensors names directly in `dirs`, for a combo; `empty` stands in when there are none."""
    names = sorted({p.name for d in dirs if d.is_dir() for p in d.glob("*.safetensors") if p.is_file()})
    return names or [empty]


def torch_device(choice: str = "auto") -> torch.device:
    if choice == "cpu":
        return torch.device("cpu")
    c = _comfy()
    if c is not None:
        return c[0].get_torch_device()
    return torch.device(devices.resolve("auto"))


def check_interrupt() -> None:
    c = _comfy()
    if c is not None:
        c[0].throw_exception_if_processing_interrupted()


def progress_bar(total: int):
    """A callback(done, total) driving ComfyUI's progress bar; a no-op outside ComfyUI."""
    c = _comfy()
    if c is None:
        return lambda done, total: None
    bar = c[1].ProgressBar(total)
    return lambda done, total: bar.update_absolute(done, total)


def memory_budget(device: torch.device) -> int | None:
    """Bytes a node's activations may take on device: half of what ComfyUI's memory manager reports
    free on a GPU (it counts the models it keeps loaded); None elsewhere, for the library's default."""
    c = _comfy()
    if c is None or device.type != "cuda":
        return None
    return int(c[0].get_free_memory(device)) // 2


def soft_empty_cache() -> None:
    c = _comfy()
    if c is not None:
        c[0].soft_empty_cache()


def latent_dirs() -> tuple[Path, list[Path]]:
    """(where SaveGANLatent writes, where LoadGANLatent looks): ComfyUI's output/gan_latents, and
    input/gan_latents for files shared by others; outside ComfyUI, $COMFYUI_GAN_LATENTS or ./gan_latents."""
    c = _comfy()
    if c is not None:
        out = Path(c[2].get_output_directory()) / "gan_latents"
        return out, [out, Path(c[2].get_input_directory()) / "gan_latents"]
    d = Path(os.environ.get("COMFYUI_GAN_LATENTS", "gan_latents"))
    return d, [d]


def directions_dirs() -> tuple[Path, list[Path]]:
    """(where SaveGANDirections writes, where LoadGANDirections looks): ComfyUI's output/gan_directions
    and input/gan_directions; outside ComfyUI, $COMFYUI_GAN_DIRECTIONS or ./gan_directions."""
    c = _comfy()
    if c is not None:
        out = Path(c[2].get_output_directory()) / "gan_directions"
        return out, [out, Path(c[2].get_input_directory()) / "gan_directions"]
    d = Path(os.environ.get("COMFYUI_GAN_DIRECTIONS", "gan_directions"))
    return d, [d]


def numbered_file(folder: Path, prefix: str) -> Path:
    """folder/PREFIX_NNNNN.safetensors one past the highest counter already there, as ComfyUI numbers
    its saved images; a prefix that is no plain file name is refused, so nothing lands outside."""
    if not re.fullmatch(r"[\w\-. ]+", prefix) or prefix.strip(". ") == "":
        raise ValueError(f"filename_prefix {prefix!r}: a plain file name is needed (letters, digits, spaces, "
                         f"'-', '_', '.'; no folders)")
    folder.mkdir(parents=True, exist_ok=True)
    n = 1 + max([int(m.group(1)) for p in folder.glob(f"{prefix}_*.safetensors")
                 if (m := re.fullmatch(re.escape(prefix) + r"_(\d+)\.safetensors", p.name))] or [0])
    path = inside(folder, f"{prefix}_{n:05d}.safetensors")
    if path is None:
        raise ValueError(f"filename_prefix {prefix!r} leads outside {folder}")
    return path


def inside(folder: Path, name: str) -> Path | None:
    """folder/name resolved, or None where it lies outside folder ('../', an absolute path, a link
    out): names come from a combo, but a prompt posted to the API can say anything."""
    root = Path(folder).resolve()
    full = (root / name).resolve()
    return full if full != root and full.is_relative_to(root) else None


def _perceptual_dirs() -> list[Path]:
    c = _comfy()
    if c is not None:
        register_model_folder()
        return [Path(p) for p in c[2].folder_names_and_paths[PERCEPTUAL_FOLDER][0]]
    extra = os.environ.get("COMFYUI_GAN_PERCEPTUAL")
    return [Path(extra)] if extra else []


def list_perceptual() -> list[str]:
    """Files in models/gan_perceptual, and each subfolder holding such files as 'name/': torchvision's
    VGG16 with lpips' vgg.pth heads is two files that load together as their folder."""
    names = set()
    for d in _perceptual_dirs():
        if not d.is_dir():
            continue
        for p in d.rglob("*"):
            if p.is_file() and p.suffix.lower() in PERCEPTUAL_EXTENSIONS:
                rel = p.relative_to(d)
                names.add(rel.as_posix())
                if rel.parent != Path("."):
                    names.add(rel.parent.as_posix() + "/")
    return sorted(names)


def perceptual_path(name: str) -> Path:
    for d in _perceptual_dirs():
        full = inside(d, name.rstrip("/"))
        if full is not None and (full.is_file() or (name.endswith("/") and full.is_dir())):
            return full
    raise FileNotFoundError(f"perceptual network {name!r} not found in models/{PERCEPTUAL_FOLDER}: put NVlabs' "
                            "vgg16.pt there, or torchvision's VGG16 with lpips' vgg.pth in a subfolder")
