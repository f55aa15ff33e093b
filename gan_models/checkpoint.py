"""The checkpoint format: a .safetensors file whose header carries a JSON description of the network.

Loading never touches pickle: tensors come from safetensors and everything else from one JSON string
in the header's ``__metadata__`` (key ``gan``). Writes go to a temporary file in the same folder and are
renamed into place, so a crash mid-write never replaces a good checkpoint with half of one.
"""
from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "comfyui-gan/1"
META_KEY = "gan"

# What a description may hold. Only `arch` is required; the rest are filled from the built module
# where they can be (see `describe`). Listed so a typo in a converter is caught, not stored.
META_FIELDS = {
    "arch",            # registry name, e.g. "dcgan", "stylegan2", "stylegan3", "resnet_translator"
    "kind",            # "generator" (noise -> image) or "translator" (image -> image)
    "arch_kwargs",     # constructor keyword arguments the arch's build() understands
    "z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels", "in_channels",
    "output_range",    # [lo, hi] of the network's raw output, normally [-1, 1]
    "input_range",     # translators: range they expect
    "class_names",     # list of label names for conditional generators
    "style_name",      # translators: name / direction of the style, e.g. "noto->openmoji"
    "source",          # where the weights came from: {"type": "train"|"convert", ...}
    "init_kwargs",     # upstream constructor kwargs kept verbatim (NVlabs pickles)
    "license", "description",
}


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint. The message names the file and the problem."""


def read(path: str | os.PathLike, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state_dict, meta). meta is {} for a plain safetensors file with no description."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(
            f"{path.name}: only .safetensors checkpoints are loaded (no pickle is opened at run time); "
            f"convert it first with: python -m gan_models.convert {path.name} OUT.safetensors")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt headers
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({e})") from e
    meta = {}
    if META_KEY in header:
        try:
            meta = json.loads(header[META_KEY])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path.name}: header entry '{META_KEY}' is not valid JSON ({e})") from e
        if not isinstance(meta, dict):
            raise CheckpointError(f"{path.name}: header entry '{META_KEY}' must be a JSON object")
    return state, meta


def read_meta(path: str | os.PathLike) -> dict:
    """The description alone, without reading any tensor (cheap: for listings and UIs)."""
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    return json.loads(header[META_KEY]) if META_KEY in header else {}


def validate_meta(meta: dict) -> None:
    unknown = set(meta) - META_FIELDS
    if unknown:
        raise CheckpointError(f"unknown checkpoint description fields: {sorted(unknown)}")
    if "arch" not in meta:
        raise CheckpointError("checkpoint description needs an 'arch'")


class OutputPathError(ValueError):
    """An output path nothing can be written to: a folder, a path under a regular file, a wrong suffix."""


def check_output_path(path: str | os.PathLike, suffixes: tuple[str, ...] | None = None) -> Path:
    """Refuse, before any work is done, an output that cannot be written: the message names the path
    and the reason. `suffixes`: the endings allowed (lower case, with the dot)."""
    path = Path(path)
    if str(path) in ("", ".") or path.name in ("", ".", ".."):
        raise OutputPathError(f"{str(path)!r} is not a file name")
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder: name a file inside it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{path}: {parent} is a file, not a folder")
            break
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{path}: the file must end in {' or '.join(suffixes)}")
    return path


def _temp_owner(name: str, target: str) -> int | None:
    """The pid in a temp file name `.TARGET.<pid>.<random>.tmp`, or None for any other name."""
    m = re.fullmatch(rf"\.{re.escape(target)}\.(\d{{1,10}})\.[A-Za-z0-9_]+\.tmp", name)
    return int(m[1]) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's live process, or not a pid we could have written: keep it
    return True


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of earlier writes to `path` whose writer is dead: a write killed with SIGKILL
    (or a power cut) never reaches its cleanup and would leave a model-sized file behind for good.
    A temp of a live process is another write in progress and is kept."""
    if os.name != "posix":
        return  # os.kill(pid, 0) would terminate the process on Windows
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = _temp_owner(tmp.name, path.name)
        if pid is not None and pid > 0 and not _alive(pid):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), then rename tmp over path. The temp file sits in the target folder so the
    rename is atomic on one file system; on any failure the temp is removed and path is untouched.
    The temp's name carries this process's pid, so the next write to path can tell a stale one."""
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp (and safetensors' own writer) make the file 0600; give it the mode any new file gets
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], meta: dict) -> None:
    validate_meta(meta)
    # safetensors refuses shared storage and non-contiguous tensors; checkpoints are small, copy them.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    header = {"format": FORMAT, META_KEY: json.dumps(meta, sort_keys=True)}
    atomic_write_bytes(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def read_small(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of one of this project's small safetensors files (latents,
    directions), whose callers check the format tag and name the problem in their own words."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
