"""Inversion and edit directions on a real ComfyUI: the three example workflows as shipped (their input
image comes with the pack), an interrupt in the middle of a long inversion, and an inversion of images
that nodes generated earlier in the same prompt (tensors made under ComfyUI's inference mode)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_host import execution_error, ui_to_api

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_workflows"
INVERT_WORKFLOWS = ["gan_invert_edit", "gan_direction_sweep_webp", "gan_img2img_style_mix"]
CHECKPOINT = "emoji_stylegan2.safetensors"
INPUT = "gan_invert_emoji.png"


def _workflow(name, object_info):
    return ui_to_api(json.loads((EXAMPLES / f"{name}.json").read_text()), object_info)


def _nodes(prompt, class_type):
    return {nid: n["inputs"] for nid, n in prompt.items() if n["class_type"] == class_type}


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _temp_files(comfy_host, entry, node_id):
    """What a PreviewImage showed: files in the host's temp folder (ComfyUI adds a temp/ of its own
    under --temp-directory)."""
    out = []
    for i in entry["outputs"][node_id]["images"]:
        assert i["type"] == "temp", i
        (path,) = (comfy_host.workdir / "temp").rglob(f"{i['filename']}")
        out.append(path)
    return out


def test_the_pack_put_its_example_input_where_load_image_finds_it(comfy_host, object_info):
    copied = comfy_host.input_dir / INPUT
    assert copied.read_bytes() == (REPO / "example_inputs" / INPUT).read_bytes()
    assert INPUT in object_info["LoadImage"]["input"]["required"]["image"][0]
    for name in INVERT_WORKFLOWS:
        prompt = _workflow(name, object_info)
        assert all(n["checkpoint"] == CHECKPOINT for n in _nodes(prompt, "ComfyGAN_LoadGANGenerator").values())
        assert all(n["image"] == INPUT for n in _nodes(prompt, "LoadImage").values())


@pytest.mark.parametrize("name", INVERT_WORKFLOWS)
def test_invert_workflow_runs_as_shipped(name, comfy_host, object_info):
    prompt = _workflow(name, object_info)
    entry = comfy_host.run(prompt, timeout=900)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    files = comfy_host.output_files(entry)
    assert files and all(f.is_file() and f.stat().st_size > 0 for f in files), entry["outputs"]
    photo = _pixels(comfy_host.input_dir / INPUT)
    white = np.full_like(photo, 255)

    if name == "gan_invert_edit":
        (edited,) = files
        (preview,) = _nodes(prompt, "PreviewImage")
        (recon,) = _temp_files(comfy_host, entry, preview)
        recon, edited = _pixels(recon), _pixels(edited)
        assert recon.shape == edited.shape == photo.shape
        # the reconstruction is the photo, roughly; the two edits change it
        assert np.abs(recon - photo).mean() < 0.5 * np.abs(white - photo).mean()
        assert np.abs(edited - recon).mean() > 2
        edits = _nodes(prompt, "ComfyGAN_ApplyDirection")
        assert len(edits) == 2 and any(e["latent"][0] in edits for e in edits.values()), "the edits are not chained"
    elif name == "gan_direction_sweep_webp":
        (sweep,) = _nodes(prompt, "ComfyGAN_DirectionSweep").values()
        (webp,) = files
        with Image.open(webp) as im:
            n = sweep["frames"]
            assert im.n_frames == (2 * n - 2 if sweep["ping_pong"] else n)
            frames = []
            for i in (0, n // 2, n - 1):
                im.seek(i)
                frames.append(np.asarray(im.convert("RGB"), dtype=np.float64))
        assert np.abs(frames[0] - frames[2]).mean() > 2 and np.abs(frames[0] - frames[1]).max() > 0
    else:
        recon, sample, mixed = (_pixels(f) for f in files)  # Batch Images in link order
        assert np.abs(recon - photo).mean() < 0.5 * np.abs(white - photo).mean()
        assert np.abs(mixed - recon).mean() > 1 and np.abs(mixed - sample).mean() > 1


def _invert_prompt(steps, prefix, pti_steps=0):
    return {
        "1": {"class_type": "ComfyGAN_LoadGANGenerator",
              "inputs": {"checkpoint": CHECKPOINT, "device": "cpu", "dtype": "float32"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": INPUT}},
        "3": {"class_type": "ComfyGAN_InvertImage",
              "inputs": {"generator": ["1", 0], "image": ["2", 0], "space": "auto", "steps": steps, "fit": "crop",
                         "perceptual": "none (pixels only)", "pixel_weight": 1.0, "perceptual_weight": 1.0,
                         "pti_steps": pti_steps, "seed": 0, "class_index": -1}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 2], "filename_prefix": prefix}},
    }


def test_interrupt_stops_a_long_inversion_and_the_next_prompt_runs(comfy_host):
    # Timed by the host's progress messages: the interrupt goes out once the inversion has reported a
    # step, so it lands inside the node with most of its 1000 steps still to do, whatever the speed.
    steps = 1000
    with comfy_host.events() as events:
        pid = comfy_host.queue(_invert_prompt(steps, "gan_test/invert_interrupted"), client_id=events.client_id)

        def inverting(m):
            return m["type"] == "progress" and m["data"]["prompt_id"] == pid and m["data"]["node"] == "3"

        seen = events.until(inverting, timeout=600)
        status, _ = comfy_host.request("POST", "/interrupt", {"prompt_id": pid})
        assert status == 200
        seen += events.until(lambda m: m["type"] in ("execution_success", "execution_error", "execution_interrupted")
                            and m["data"].get("prompt_id") == pid, timeout=600)
    entry = comfy_host.wait(pid, timeout=60)
    assert entry["status"]["status_str"] == "error", "the inversion ran to the end despite the interrupt"
    kinds = [kind for kind, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds and "execution_error" not in kinds, kinds
    interrupted = dict(entry["status"]["messages"])["execution_interrupted"]
    assert interrupted["node_type"] == "ComfyGAN_InvertImage", interrupted
    assert max(m["data"]["value"] for m in seen if inverting(m)) < steps, "the inversion reached its end"
    assert all(m["data"]["max"] == steps for m in seen if inverting(m))
    assert not comfy_host.output_files(entry)

    after = comfy_host.run(_invert_prompt(3, "gan_test/invert_after_interrupt"), timeout=600)
    assert after["status"]["status_str"] == "success", execution_error(after)
    assert len(comfy_host.output_files(after)) == 1


def test_inversion_of_images_generated_earlier_in_the_prompt(comfy_host):
    """GenerateImage's output and the loaded generator were made under inference mode; the inversion
    (with pivotal tuning, which trains a copy) and an edit of its latent still run, and the tuned
    generator draws the result."""
    prompt = {
        "1": {"class_type": "ComfyGAN_LoadGANGenerator",
              "inputs": {"checkpoint": CHECKPOINT, "device": "cpu", "dtype": "float32"}},
        "2": {"class_type": "ComfyGAN_SampleLatent",
              "inputs": {"generator": ["1", 0], "seed": 11, "batch_size": 2, "class_index": -1}},
        "3": {"class_type": "ComfyGAN_GenerateImage",
              "inputs": {"generator": ["1", 0], "latent": ["2", 0], "truncation_psi": 0.7}},
        "4": {"class_type": "ComfyGAN_InvertImage",
              "inputs": {"generator": ["1", 0], "image": ["3", 0], "space": "w", "steps": 8, "fit": "crop",
                         "perceptual": "none (pixels only)", "pixel_weight": 1.0, "perceptual_weight": 1.0,
                         "pti_steps": 2, "seed": 0, "class_index": -1}},
        "5": {"class_type": "ComfyGAN_FindDirections",
              "inputs": {"generator": ["1", 0], "method": "sefa", "layers": "coarse", "num": 4, "samples": 1000,
                         "seed": 0}},
        "6": {"class_type": "ComfyGAN_ApplyDirection",
              "inputs": {"generator": ["1", 0], "latent": ["4", 0], "directions": ["5", 0], "index": 0,
                         "strength": 1.0, "layers": ""}},
        "7": {"class_type": "ComfyGAN_GenerateImage",
              "inputs": {"generator": ["4", 1], "latent": ["6", 0], "truncation_psi": 1.0}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "gan_test/regen"}},
        "9": {"class_type": "ComfyGAN_SaveDirections",
              "inputs": {"directions": ["5", 0], "filename_prefix": "gan_test_dirs"}},
    }
    entry = comfy_host.run(prompt, timeout=600)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    files = comfy_host.output_files(entry)
    assert len(files) == 2 and all(_pixels(f).shape == (64, 64, 3) for f in files)
    (saved,) = entry["outputs"]["9"]["text"]
    assert (comfy_host.output_dir / "gan_directions" / saved).is_file()

    # the saved file is listed by Load GAN Directions and edits a latent in a later prompt
    info = comfy_host.get("/object_info/ComfyGAN_LoadDirections")["ComfyGAN_LoadDirections"]
    assert saved in info["input"]["required"]["directions_file"][0]
    again = {k: prompt[k] for k in ("1", "2")}
    again.update({
        "5": {"class_type": "ComfyGAN_LoadDirections", "inputs": {"directions_file": saved}},
        "6": {"class_type": "ComfyGAN_ApplyDirection",
              "inputs": {"generator": ["1", 0], "latent": ["2", 0], "directions": ["5", 0], "index": 3,
                         "strength": -2.0, "layers": ""}},
        "7": {"class_type": "ComfyGAN_GenerateImage",
              "inputs": {"generator": ["1", 0], "latent": ["6", 0], "truncation_psi": 1.0}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "gan_test/loaded_dirs"}},
    })
    entry = comfy_host.run(again, timeout=300)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    assert len(comfy_host.output_files(entry)) == 2


def test_directions_for_a_translator_fail_by_name(comfy_host, translator):
    prompt = {
        "1": {"class_type": "ComfyGAN_LoadGANGenerator",
              "inputs": {"checkpoint": translator, "device": "cpu", "dtype": "float32"}},
        "2": {"class_type": "ComfyGAN_FindDirections",
              "inputs": {"generator": ["1", 0], "method": "sefa", "layers": "all", "num": 0, "samples": 1000,
                         "seed": 0}},
        "3": {"class_type": "ComfyGAN_SaveDirections", "inputs": {"directions": ["2", 0],
                                                                  "filename_prefix": "never"}},
    }
    entry = comfy_host.run(prompt, timeout=120)
    assert entry["status"]["status_str"] == "error"
    err = execution_error(entry)
    assert err["node_type"] == "ComfyGAN_FindDirections" and "translator" in err["exception_message"], err
