"""The style-transfer example workflows on a real ComfyUI (an image, and a video through core's
video nodes), and an interrupt in the middle of a long batch that stops it without harm."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_host import execution_error, ui_to_api

EXAMPLES = Path(__file__).resolve().parents[2] / "example_workflows"
IMAGE_SIZE = (90, 70)  # neither side a multiple of the translator's stride of 4
VIDEO = {"frames": 30, "width": 64, "height": 48, "fps": 24}

# run by the host's interpreter, which has PyAV (ComfyUI's video nodes use it)
WRITE_VIDEO = """
import sys, av, numpy as np
path, n, w, h, fps = sys.argv[1], *map(int, sys.argv[2:])
with av.open(path, "w") as out:
    s = out.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    y, x = np.mgrid[0:h, 0:w]
    for t in range(n):
        rgb = np.stack([(x * 4 + t * 8) % 256, (y * 5) % 256, ((x + y + t * 3) * 3) % 256], -1).astype(np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
"""
PROBE_VIDEO = """
import sys, json, av
with av.open(sys.argv[1]) as f:
    s = f.streams.video[0]
    frames = sum(1 for _ in f.decode(s))
    print(json.dumps({"frames": frames, "width": s.codec_context.width, "height": s.codec_context.height,
                      "fps": float(s.average_rate), "codec": s.codec_context.name}))
"""


def _host_python(comfy_host, script, *args):
    done = subprocess.run([comfy_host.python, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _workflow(name, object_info):
    return ui_to_api(json.loads((EXAMPLES / f"{name}.json").read_text()), object_info)


def _only(prompt, class_type):
    (inputs,) = [n["inputs"] for n in prompt.values() if n["class_type"] == class_type]
    return inputs


@pytest.fixture(scope="module")
def input_image(comfy_host, object_info):
    name = _only(_workflow("style_transfer_image", object_info), "LoadImage")["image"]
    w, h = IMAGE_SIZE
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, ((x - w / 2) ** 2 + (y - h / 2) ** 2 < 600) * 255], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(comfy_host.input_dir / name)
    return name


@pytest.fixture(scope="module")
def input_video(comfy_host, object_info):
    name = _only(_workflow("style_transfer_video", object_info), "LoadVideo")["file"]
    _host_python(comfy_host, WRITE_VIDEO, comfy_host.input_dir / name, *VIDEO.values())
    return name


def test_style_transfer_image_workflow(comfy_host, object_info, translator, input_image):
    prompt = _workflow("style_transfer_image", object_info)
    assert _only(prompt, "ComfyGAN_LoadGANGenerator")["checkpoint"] == translator
    entry = comfy_host.run(prompt, timeout=180)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    (out,) = comfy_host.output_files(entry)
    with Image.open(out) as im:
        assert im.size == IMAGE_SIZE
        styled = np.asarray(im.convert("RGB"), dtype=np.int16)
    with Image.open(comfy_host.input_dir / input_image) as im:
        original = np.asarray(im.convert("RGB"), dtype=np.int16)
    assert np.abs(styled - original).mean() > 2, "strength 1 left the image as it was"


def test_style_transfer_video_workflow(comfy_host, object_info, translator, input_video):
    prompt = _workflow("style_transfer_video", object_info)
    save = _only(prompt, "SaveVideo")
    assert save["format"] == "mp4" and save["format.codec"] == "h264", save
    entry = comfy_host.run(prompt, timeout=180)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    (out,) = comfy_host.output_files(entry)
    assert out.suffix == ".mp4" and out.stat().st_size > 0
    got = json.loads(_host_python(comfy_host, PROBE_VIDEO, out))
    want = {k: VIDEO[k] for k in ("frames", "width", "height")}
    assert {k: got[k] for k in want} == want, got
    assert got["fps"] == pytest.approx(VIDEO["fps"]), "the frame rate did not come through from the source"
    assert got["codec"] == "h264", got


def _long_batch(translator, frames, size, prefix):
    return {
        "1": {"class_type": "ComfyGAN_LoadGANGenerator",
              "inputs": {"checkpoint": translator, "device": "cpu", "dtype": "float32"}},
        "2": {"class_type": "EmptyImage",
              "inputs": {"width": size, "height": size, "batch_size": frames, "color": 0x4080C0}},
        "3": {"class_type": "ComfyGAN_GANStyleTransfer",
              "inputs": {"translator": ["1", 0], "image": ["2", 0], "strength": 1.0, "chunk_size": 4}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def test_interrupt_stops_a_long_style_transfer_and_the_server_keeps_serving(comfy_host, translator):
    # Timed by the host's progress messages, not by the clock: the interrupt goes out once the translation
    # has reported its first chunk of 4 frames, so it lands inside the node with 74 chunks still to do (a
    # local round trip against seconds of CPU work on a machine 10x faster), and the node's reports then
    # show that it stopped short of its last frame. The timeouts only guard against a hang.
    frames = 300
    with comfy_host.events() as events:
        pid = comfy_host.queue(_long_batch(translator, frames, 256, "gan_test/interrupted"),
                               client_id=events.client_id)

        def translated(m):
            return m["type"] == "progress" and m["data"]["prompt_id"] == pid and m["data"]["node"] == "3"

        seen = events.until(translated, timeout=300)
        status, _ = comfy_host.request("POST", "/interrupt", {"prompt_id": pid})
        assert status == 200
        seen += events.until(lambda m: m["type"] in ("execution_success", "execution_error", "execution_interrupted")
                            and m["data"].get("prompt_id") == pid, timeout=300)
    entry = comfy_host.wait(pid, timeout=60)
    assert entry["status"]["status_str"] == "error", "the batch ran to the end despite the interrupt"
    kinds = [kind for kind, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds and "execution_error" not in kinds, kinds
    interrupted = dict(entry["status"]["messages"])["execution_interrupted"]
    assert interrupted["node_type"] == "ComfyGAN_GANStyleTransfer", interrupted
    # the last frame's report is never held back (ComfyUI throttles only those between)
    assert max(m["data"]["value"] for m in seen if translated(m)) < frames, "the translation reached its end"
    assert not comfy_host.output_files(entry)

    after = comfy_host.run(_long_batch(translator, 2, 32, "gan_test/after_interrupt"), timeout=120)
    assert after["status"]["status_str"] == "success", execution_error(after)
    assert len(comfy_host.output_files(after)) == 2
