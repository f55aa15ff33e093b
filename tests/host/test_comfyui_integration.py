"""The pack on a real ComfyUI: it loads, its nodes are listed and distinct from core's, the example
workflows run to files, and bad input fails clearly without taking the server down."""
import json
import re

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_host import PromptRejected, execution_error, ui_to_api
from gan_models import save_generator
from gan_models.archs import dcgan

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "example_workflows").glob("*.json"))
# the Fashion-MNIST examples, run with the shipped generator (StyleGAN, inversion and style transfer: their
# own files); the inversion examples are named gan_ too, but load the emoji StyleGAN2
FMNIST_WORKFLOWS = [p for p in WORKFLOWS if p.stem.startswith("gan_") and "fashion_mnist" in p.read_text()]
CORE_MODULES = ("nodes", "comfy_extras", "comfy_api_nodes")
SD_TYPES = {"LATENT", "MODEL", "CONDITIONING", "VAE", "CLIP"}


def outputs_of(entry):
    return {nid: out for nid, out in entry.get("outputs", {}).items()}


# -- loading -----------------------------------------------------------------------------------------
def test_pack_imports_without_failure(comfy_host):
    log = comfy_host.log()
    ours = [line for line in log.splitlines() if comfy_host.link_name in line]
    assert any("seconds" in line for line in ours), f"the pack was not among the custom nodes loaded:\n{log[-3000:]}"
    failed = [line for line in ours if "IMPORT FAILED" in line or "Cannot import" in line]
    assert not failed, "\n".join(failed) + "\n" + log[-4000:]


def test_object_info_lists_every_node_of_the_pack(object_info, pack_ids, comfy_host):
    missing = [i for i in pack_ids if i not in object_info]
    assert not missing, f"not in /object_info: {missing}"
    for node_id in pack_ids:
        info = object_info[node_id]
        assert info["python_module"] == f"custom_nodes.{comfy_host.link_name}", (node_id, info["python_module"])
        assert info["category"].split("/")[0] == "GAN", (node_id, info["category"])
        assert info["display_name"] and info["description"], node_id


def test_no_pack_id_is_a_core_id(object_info, pack_ids):
    core = {k for k, v in object_info.items() if v["python_module"].split(".")[0] in CORE_MODULES}
    assert len(core) > 100, "core nodes missing from /object_info?"
    assert not core & set(pack_ids), f"ComfyUI ignores custom nodes with core ids: {sorted(core & set(pack_ids))}"


def test_gan_sockets_are_types_of_their_own(object_info, pack_ids):
    types = set()
    for node_id in pack_ids:
        info = object_info[node_id]
        types |= set(info["output"])
        for section in ("required", "optional"):
            types |= {spec[0] for spec in info["input"].get(section, {}).values() if isinstance(spec[0], str)}
    assert {"GAN_GENERATOR", "GAN_LATENT"} <= types
    assert not types & SD_TYPES, f"GAN nodes must not claim Stable Diffusion socket types: {types & SD_TYPES}"


def test_example_workflows_are_served_as_templates(comfy_host):
    listed = comfy_host.get("/api/workflow_templates").get(comfy_host.link_name, [])
    assert sorted(listed) == sorted(p.stem for p in WORKFLOWS)
    for path in WORKFLOWS:
        served = comfy_host.get(f"/api/workflow_templates/{comfy_host.link_name}/{path.name}")
        assert served == json.loads(path.read_text())


# -- the example workflows ---------------------------------------------------------------------------
def test_there_are_example_workflows():
    names = {p.stem for p in WORKFLOWS}
    assert {"gan_seeds_grid", "gan_class_sweep", "gan_interpolation_webp",
            "stylegan_truncation", "stylegan_style_mixing", "stylegan_w_interpolation_webp",
            "style_transfer_image", "style_transfer_video"} <= names


def _frames_of(path):
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1), im.size


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("path", FMNIST_WORKFLOWS, ids=[p.stem for p in FMNIST_WORKFLOWS])
def test_example_workflow_runs_and_writes_images(path, comfy_host, object_info, default_checkpoint):
    workflow = json.loads(path.read_text())
    prompt = ui_to_api(workflow, object_info)
    loaders = [n for n in prompt.values() if n["class_type"] == "ComfyGAN_LoadGANGenerator"]
    assert loaders and all(n["inputs"]["checkpoint"] == default_checkpoint for n in loaders)
    entry = comfy_host.run(prompt, timeout=300)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    files = comfy_host.output_files(entry)
    assert files, f"no output files in {entry['outputs']}"
    for f in files:
        assert f.is_file() and f.stat().st_size > 0, f
    savers = {nid: n for nid, n in prompt.items() if n["class_type"] in ("SaveImage", "SaveAnimatedWEBP")}
    assert set(savers) <= set(outputs_of(entry)), "a save node wrote nothing"
    sizes = {_frames_of(f)[1] for f in files}
    assert len(sizes) == 1, f"images of different sizes: {sizes}"

    if path.stem == "gan_seeds_grid":
        sample = next(n for n in prompt.values() if n["class_type"] == "ComfyGAN_SampleLatent")
        assert len(files) == sample["inputs"]["batch_size"] == 16
        # different seeds give different images
        assert len({f.read_bytes() for f in files}) == len(files)
    elif path.stem == "gan_class_sweep":
        (sample,) = [n["inputs"] for n in prompt.values() if n["class_type"] == "ComfyGAN_SampleLatent"]
        classes = [int(c) for c in sample["class_list"].split(",")]
        batch = sample["batch_size"]
        assert len(classes) > 1 and len(files) == batch * len(classes)
        assert len({f.read_bytes() for f in files}) == len(files)
        # row k is class classes[k] drawn from the same seeds: the last row equals that class alone
        alone = comfy_host.run(_pipeline(default_checkpoint, class_index=classes[-1], batch=batch,
                                         seed=sample["seed"], prefix="gan_test/sweep_row"), timeout=120)
        assert alone["status"]["status_str"] == "success", execution_error(alone)
        scale = int(next(n for n in prompt.values() if n["class_type"] == "ImageScaleBy")["inputs"]["scale_by"])
        for swept, single in zip(files[-batch:], comfy_host.output_files(alone), strict=True):
            diff = np.abs(_pixels(swept)[::scale, ::scale] - _pixels(single)).max()
            assert diff <= 1, (swept.name, single.name, diff)
    elif path.stem == "gan_interpolation_webp":
        interp = next(n for n in prompt.values() if n["class_type"] == "ComfyGAN_LatentInterpolate")
        (webp,) = files
        n_frames, _ = _frames_of(webp)
        frames = interp["inputs"]["frames"]
        expected = 2 * frames - 2 if interp["inputs"]["ping_pong"] else frames
        assert webp.suffix == ".webp" and n_frames == expected


def test_editor_gives_the_same_prompt_as_the_conversion(editor, object_info):
    """ui_to_api (used above) against the editor's own app.graphToPrompt() on every example."""
    def strip(p):
        return {k: (v["class_type"], v["inputs"]) for k, v in p.items()}

    def without_stray_dynamic_copies(by_editor, converted):
        # The editor also sends the innermost widget of a nested V3 dynamic combo under its bare name
        # (Save Video: "codec" beside "format.codec"); the server reads only the dotted names.
        # It also sends a preview widget of its own that no node declares (LoadVideo's "video-preview", once
        # the video exists): the server reads only declared inputs.
        out = {}
        for nid, (ctype, inputs) in by_editor.items():
            dotted = {k.rsplit(".", 1)[1] for k in converted.get(nid, (None, {}))[1] if "." in k}
            extra = set(inputs) - set(converted.get(nid, (None, {}))[1])
            declared = {k for section in ("required", "optional")
                        for k in object_info.get(ctype, {}).get("input", {}).get(section, {})}
            out[nid] = (ctype, {k: v for k, v in inputs.items()
                                if not (k in extra and (k in dotted or (k.endswith("-preview") and k not in declared)))})
        return out

    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        editor.load(workflow)
        unknown = editor.js("() => app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type])"
                            ".map(n => n.type)")
        assert not unknown, f"{path.name}: the editor does not know {unknown}"
        converted = strip(ui_to_api(workflow, object_info))
        assert without_stray_dynamic_copies(strip(editor.graph_to_prompt()), converted) == converted, path.name


# -- errors ------------------------------------------------------------------------------------------
def _pipeline(checkpoint, class_index=-1, batch=2, prefix="gan_test/pipeline", seed=3):
    return {
        "1": {"class_type": "ComfyGAN_LoadGANGenerator",
              "inputs": {"checkpoint": checkpoint, "device": "cpu", "dtype": "float32"}},
        "2": {"class_type": "ComfyGAN_SampleLatent",
              "inputs": {"generator": ["1", 0], "seed": seed, "batch_size": batch, "class_index": class_index}},
        "3": {"class_type": "ComfyGAN_GenerateImage",
              "inputs": {"generator": ["1", 0], "latent": ["2", 0], "truncation_psi": 1.0}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


@pytest.fixture(scope="module")
def tiny_checkpoint(comfy_host):
    """A tiny 3-class DCGAN put in an extra_model_paths folder (not the pack's weights/): shows that
    the pack merges extra_model_paths.yaml's `gan` entry into its folder."""
    torch.manual_seed(0)
    G = dcgan.Generator(dcgan.make_layout(8, 3, 8, 3, ngf=8), c_dim=3)
    name = "tiny_test_cdcgan.safetensors"
    save_generator(comfy_host.models_dir / "gan" / name, G,
                   {"arch": "dcgan", "z_dim": 8, "c_dim": 3, "img_resolution": 8, "img_channels": 3})
    return name


def test_checkpoint_in_extra_model_paths_is_listed_and_runs(comfy_host, tiny_checkpoint):
    info = comfy_host.get("/object_info/ComfyGAN_LoadGANGenerator")["ComfyGAN_LoadGANGenerator"]
    choices = info["input"]["required"]["checkpoint"][0]
    assert tiny_checkpoint in choices, choices
    entry = comfy_host.run(_pipeline(tiny_checkpoint, class_index=2, batch=3), timeout=120)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    files = comfy_host.output_files(entry)
    assert len(files) == 3 and {_frames_of(f)[1] for f in files} == {(8, 8)}


def test_missing_checkpoint_is_a_clear_400(comfy_host):
    with pytest.raises(PromptRejected) as e:
        comfy_host.queue(_pipeline("no_such_model.safetensors"))
    assert e.value.status == 400
    errors = e.value.body["node_errors"]
    assert set(errors) == {"1"}, errors
    assert "no_such_model.safetensors" in json.dumps(errors["1"])


def test_class_index_out_of_range_fails_clearly_and_server_keeps_serving(comfy_host, tiny_checkpoint):
    entry = comfy_host.run(_pipeline(tiny_checkpoint, class_index=7), timeout=120)
    assert entry["status"]["status_str"] == "error"
    err = execution_error(entry)
    assert err and err["node_type"] == "ComfyGAN_SampleLatent", err
    msg = err["exception_message"]
    assert re.search(r"\b7\b", msg) and "class" in msg.lower() and "3" in msg, msg

    good = comfy_host.run(_pipeline(tiny_checkpoint, class_index=0, prefix="gan_test/after_error"), timeout=120)
    assert good["status"]["status_str"] == "success", execution_error(good)


def test_class_index_on_unconditional_model_fails_clearly(comfy_host):
    torch.manual_seed(1)
    G = dcgan.Generator(dcgan.make_layout(8, 0, 8, 3, ngf=8), c_dim=0)
    name = "tiny_test_dcgan.safetensors"
    save_generator(comfy_host.models_dir / "gan" / name, G,
                   {"arch": "dcgan", "z_dim": 8, "img_resolution": 8, "img_channels": 3})
    entry = comfy_host.run(_pipeline(name, class_index=1), timeout=120)
    assert entry["status"]["status_str"] == "error"
    msg = execution_error(entry)["exception_message"]
    assert "unconditional" in msg, msg
