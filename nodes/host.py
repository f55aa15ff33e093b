"""The only module that touches ComfyUI, imported lazily so the nodes also run (and are tested) as
plain classes outside it: progress bar, interruption, devices and the models/gan folder."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..gan_models import checkpoint, devices

PACK_DIR = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = PACK_DIR / "weights"
FOLDER = "gan"
EXTENSIONS = {".safetensors"}


def _comfy():
    try:
        import comfy.model_management as mm
        import comfy.utils as utils
        import folder_paths
    except ImportError:
        return None
    return mm, utils, folder_paths


def register_model_folder() -> None:
    """Register models/gan and the pack's weights/ with folder_paths. extra_model_paths.yaml is read
    before packs load and gives a key it does not know an empty extension set, so merge the paths
    already there and set the extensions ourselves."""
    c = _comfy()
    if c is None:
        return
    fp = c[2]
    default = os.path.join(fp.models_dir, FOLDER)
    paths, exts = fp.folder_names_and_paths.get(FOLDER, ([], set()))
    paths = list(paths)
    for p in (default, str(WEIGHTS_DIR)):
        if p not in paths:
            paths.append(p)
    fp.folder_names_and_paths[FOLDER] = (paths, set(exts) | EXTENSIONS)


def _is_discriminator(path) -> bool:
    """A discriminator kept beside its generator for fine-tuning (convert --discriminator) is no
    choice for the loader. Only the header is read; a file that cannot be read stays listed, and
    loading it says what is wrong."""
    try:
        return checkpoint.read_meta(path).get("kind") == "discriminator"
    except Exception:
        return False


def list_checkpoints() -> list[str]:
    c = _comfy()
    if c is not None:
        register_model_folder()
        return sorted(n for n in c[2].get_filename_list(FOLDER)
                      if not _is_discriminator(c[2].get_full_path(FOLDER, n)))
    extra = os.environ.get("COMFYUI_GAN_MODELS")
    dirs = [WEIGHTS_DIR] + ([Path(extra)] if extra else [])
    return sorted({p.relative_to(d).as_posix() for d in dirs if d.is_dir()
                   for p in d.rglob("*") if p.suffix.lower() in EXTENSIONS and not _is_discriminator(p)})


def checkpoint_path(name: str) -> Path:
    """Full path of a combo entry; a clear error when it is gone (renamed, or a shared workflow)."""
    c = _comfy()
    if c is not None:
        register_model_folder()
        full = c[2].get_full_path(FOLDER, name)
        if full:
            return Path(full)
    else:
        extra = os.environ.get("COMFYUI_GAN_MODELS")
        for d in [WEIGHTS_DIR] + ([Path(extra)] if extra else []):
            if (d / name).is_file():
                return d / name
    raise FileNotFoundError(f"GAN checkpoint {name!r} not found in models/{FOLDER} or the pack's weights/ "
                            f"folder: put the .safetensors file there (convert .pkl/.pt/.pth files first with "
                            f"python -m gan_models.convert)")


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
