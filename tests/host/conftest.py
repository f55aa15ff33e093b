"""A real ComfyUI for the integration tests, started once per session with this pack linked into its
custom_nodes. Runs only where COMFYUI_PATH points at a ComfyUI checkout (COMFYUI_PYTHON: its
interpreter, default this one); CI and a user's clone have none, and these tests then skip."""
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from comfyui_host import CHROMIUM, ComfyUIHost  # noqa: E402

WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
DEFAULT_CHECKPOINT = REPO / "weights" / "fashion_mnist_cdcgan.safetensors"


@pytest.fixture(scope="session")
def comfy_host():
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip("COMFYUI_PATH not set: point it at a ComfyUI checkout (and COMFYUI_PYTHON at its "
                    "interpreter) to run the integration tests against a real host")
    host = ComfyUIHost(path, os.environ.get("COMFYUI_PYTHON") or sys.executable)
    host.start(timeout=float(os.environ.get("COMFYUI_START_TIMEOUT", 120)))
    try:
        yield host
    finally:
        host.cleanup()


@pytest.fixture(scope="session")
def object_info(comfy_host):
    return comfy_host.object_info()


@pytest.fixture(scope="session")
def pack_ids(pack):
    ids = sorted(pack.NODE_CLASS_MAPPINGS)
    assert ids, "the pack registers no nodes"
    return ids


@pytest.fixture(scope="session")
def default_checkpoint():
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.fail(f"{DEFAULT_CHECKPOINT.relative_to(REPO)} is missing: the example workflows load it")
    return DEFAULT_CHECKPOINT.name


@pytest.fixture(scope="session")
def editor(comfy_host):
    """The host's editor in headless Chromium (Playwright driving Debian's chromium)."""
    pytest.importorskip("playwright", reason="playwright is not installed: pip install playwright")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium chromium-driver")
    from comfyui_host import Editor

    with Editor(comfy_host.url) as ed:
        yield ed
