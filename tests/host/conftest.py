"""A real ComfyUI for the integration tests, started once per session with this pack linked into its
custom_nodes. Runs only where COMFYUI_PATH points at a ComfyUI checkout (COMFYUI_PYTHON: its
interpreter, default this one); CI and a user's clone have none, and these tests then skip."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from comfyui_host import CHROMIUM, ComfyUIHost  # noqa: E402

WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
DEFAULT_CHECKPOINT = REPO / "weights" / "fashion_mnist_cdcgan.safetensors"
# upstream conformance fixtures beside the checkout (../shared); a user's clone has none
FIXTURES = REPO.parent / "shared" / "fixtures" / "upstream"
# the checkpoint names the StyleGAN and style-transfer example workflows use
STYLEGAN_PICKLES = {
    "stylegan2.safetensors": FIXTURES / "sg2ada_r32_map8" / "network-snapshot-000000.src-stripped.pkl",
    "stylegan3.safetensors": FIXTURES / "sg3t_r32_map2" / "network-snapshot-000000.src-stripped.pkl",
}
SHIPPED_STYLEGAN = "emoji_stylegan2.safetensors"  # weights/: what the StyleGAN workflows load as saved
TRANSLATOR = "emoji_noto2openmoji.safetensors"
CYCLEGAN_PTH = FIXTURES / "cyclegan_resnet9_ngf8" / "latest_net_G.pth"


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


def convert(src: Path, dst: Path) -> None:
    """`python -m gan_models.convert SRC DST`, as a user converts a checkpoint for the host."""
    if not src.is_file():
        pytest.skip(f"{src} is absent: the upstream fixtures (../shared/fixtures beside the checkout) "
                    "are not on this machine")
    dst.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "gan_models.convert", str(src), str(dst)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and dst.is_file(), f"conversion of {src.name} failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="session")
def stylegan_checkpoints(comfy_host):
    """{name: img_resolution}: the pack's shipped StyleGAN2, and the upstream StyleGAN2-ADA and
    StyleGAN3-T pickles converted into the host's models/gan as a user converts theirs ({name: why
    not} where a pickle is absent)."""
    from gan_models.checkpoint import read

    sizes = {SHIPPED_STYLEGAN: int(read(REPO / "weights" / SHIPPED_STYLEGAN)[1]["img_resolution"])}
    for name, pkl in STYLEGAN_PICKLES.items():
        if not pkl.is_file():  # the tests of that checkpoint skip with this reason; the shipped one still runs
            sizes[name] = sizes[dropped_name(name)] = (
                f"{pkl} is absent: the upstream fixtures (../shared/fixtures beside the checkout) are not on "
                "this machine")
            continue
        dst = comfy_host.models_dir / "gan" / name
        convert(pkl, dst)
        sizes[name] = int(read(dst)[1]["img_resolution"])
        # the same pickle dropped into models/gan as it is: the loader converts it on first use
        shutil.copyfile(pkl, dst.with_name(dropped_name(name)))
        sizes[dropped_name(name)] = sizes[name]
    return sizes


def dropped_name(converted: str) -> str:
    return "dropped_" + converted.replace(".safetensors", ".pkl")


@pytest.fixture(scope="session")
def translator(comfy_host):
    """The translator the style-transfer workflows load: the pack's shipped emoji model when it is
    committed, else the upstream CycleGAN fixture converted under its name into models/gan."""
    if not (REPO / "weights" / TRANSLATOR).is_file():
        convert(CYCLEGAN_PTH, comfy_host.models_dir / "gan" / TRANSLATOR)
    return TRANSLATOR
