import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def pack():
    """The pack imported the way ComfyUI imports it: its folder as a package (any folder name), so the
    relative imports inside it resolve and its `nodes` never shadows ComfyUI's."""
    name = "comfyui_gan_pack_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="session")
def fixtures_dir():
    if not FIXTURES.is_dir():
        pytest.skip(f"upstream conformance fixtures not found at {FIXTURES} (../shared is absent in a user's clone)")
    return FIXTURES / "upstream"
