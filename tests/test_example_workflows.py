"""The templates as shipped, without a host: every input file they load comes with the pack (the pack
copies example_inputs/ into ComfyUI's input folder), each has a thumbnail for the template browser,
and each saved view is the fitted one (not the editor's default offset). tests/host runs them."""
import json
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))
LOADERS = {"LoadImage": 0, "LoadVideo": 0}  # widget index of the file name


def test_every_loaded_input_ships_and_is_copied_at_registration(pack):
    import sys
    extensions = sys.modules[pack.__name__ + ".nodes.host"].EXAMPLE_INPUT_EXTENSIONS
    for path in WORKFLOWS:
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] in LOADERS:
                name = node["widgets_values"][LOADERS[node["type"]]]
                assert (ROOT / "example_inputs" / name).is_file(), f"{path.name} loads {name}, which the pack lacks"
                assert Path(name).suffix.lower() in extensions, name


def test_every_template_has_a_thumbnail_made_from_its_output():
    assert WORKFLOWS
    for path in WORKFLOWS:
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file(), f"{path.name} has no thumbnail"
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and min(im.size) >= 128
            assert len(set(im.convert("L").getdata())) > 8, f"{thumb.name} is blank"


def test_every_template_opens_at_a_fitted_view():
    for path in WORKFLOWS:
        ds = json.loads(path.read_text())["extra"]["ds"]
        assert ds["offset"] != [416, 110] and 0.2 < ds["scale"] <= 1, (path.name, ds)
