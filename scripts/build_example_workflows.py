"""Rebuild example_workflows/*.json in the real ComfyUI editor, so they are exactly what the editor
saves (node sizes, widget lists, link table) rather than hand-written guesses.

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python python scripts/build_example_workflows.py

Each workflow is given as nodes (type, position, widget values by name) and links by input name; the
editor creates the nodes from the live /object_info, wires them and serializes the graph.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_host import REPO, ComfyUIHost, Editor  # noqa: E402

CKPT = "fashion_mnist_cdcgan.safetensors"
FIXED = {"control_after_generate": "fixed"}  # examples reproduce the same images on every run
# Fashion-MNIST is 28 px: the editor never draws a preview larger than the image itself, so the
# examples enlarge the pixels (nearest, no smoothing) with core's Upscale Image By before saving.
UPSCALE = {"upscale_method": "nearest-exact", "scale_by": 4.0}
LOADER = {"id": "loader", "type": "ComfyGAN_LoadGANGenerator", "pos": [40, 160],
          "widgets": {"checkpoint": CKPT, "device": "auto", "dtype": "float32"}}


def seeds_grid():
    return {"nodes": [
        LOADER,
        {"id": "sample", "type": "ComfyGAN_SampleLatent", "pos": [380, 160],
         "widgets": {"seed": 0, **FIXED, "batch_size": 16, "class_index": -1}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [720, 160], "widgets": {"truncation_psi": 1.0}},
        {"id": "upscale", "type": "ImageScaleBy", "pos": [1060, 160], "widgets": UPSCALE},
        {"id": "save", "type": "SaveImage", "pos": [1400, 160], "size": [440, 500],
         "widgets": {"filename_prefix": "gan/seeds_grid"}},
    ], "links": [
        ("loader", 0, "sample", "generator"), ("loader", 0, "generate", "generator"),
        ("sample", 0, "generate", "latent"), ("generate", 0, "upscale", "image"), ("upscale", 0, "save", "images"),
    ]}


SWEEP_CLASSES = [(0, "T-shirt/top"), (1, "Trouser"), (7, "Sneaker"), (9, "Ankle boot")]


def class_sweep():
    """The same seeds drawn as each of a few classes, batched into one grid: a row per class."""
    nodes, links = [LOADER], []
    for row, (cls, name) in enumerate(SWEEP_CLASSES):
        y = 40 + row * 300
        nodes += [
            {"id": f"sample{cls}", "type": "ComfyGAN_SampleLatent", "pos": [380, y], "title": f"Sample: {name}",
             "widgets": {"seed": 100, **FIXED, "batch_size": 4, "class_index": cls}},
            {"id": f"gen{cls}", "type": "ComfyGAN_GenerateImage", "pos": [720, y], "widgets": {"truncation_psi": 1.0}},
        ]
        links += [("loader", 0, f"sample{cls}", "generator"), ("loader", 0, f"gen{cls}", "generator"),
                  (f"sample{cls}", 0, f"gen{cls}", "latent")]
    # Batch Images grows an input per connection; each link goes to its newest, empty one.
    nodes.append({"id": "batch", "type": "BatchImagesNode", "pos": [1060, 400]})
    links += [(f"gen{cls}", 0, "batch", None) for cls, _ in SWEEP_CLASSES]
    nodes.append({"id": "upscale", "type": "ImageScaleBy", "pos": [1400, 400], "widgets": UPSCALE})
    nodes.append({"id": "save", "type": "SaveImage", "pos": [1740, 300], "size": [440, 500],
                  "widgets": {"filename_prefix": "gan/class_sweep"}})
    links += [("batch", 0, "upscale", "image"), ("upscale", 0, "save", "images")]
    return {"nodes": nodes, "links": links}


def interpolation_webp():
    return {"nodes": [
        LOADER,
        {"id": "a", "type": "ComfyGAN_SampleLatent", "pos": [380, 40], "title": "Start (seed 1)",
         "widgets": {"seed": 1, **FIXED, "batch_size": 1, "class_index": 7}},
        {"id": "b", "type": "ComfyGAN_SampleLatent", "pos": [380, 330], "title": "End (seed 2)",
         "widgets": {"seed": 2, **FIXED, "batch_size": 1, "class_index": 9}},
        {"id": "interp", "type": "ComfyGAN_LatentInterpolate", "pos": [720, 160],
         "widgets": {"frames": 16, "method": "auto", "ping_pong": True}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [1060, 160], "widgets": {"truncation_psi": 1.0}},
        {"id": "upscale", "type": "ImageScaleBy", "pos": [1400, 160], "widgets": UPSCALE},
        {"id": "save", "type": "SaveAnimatedWEBP", "pos": [1740, 160], "size": [400, 460],
         "widgets": {"filename_prefix": "gan/interpolation", "fps": 12.0, "lossless": True,
                     "quality": 90, "method": "default"}},
    ], "links": [
        ("loader", 0, "a", "generator"), ("loader", 0, "b", "generator"), ("loader", 0, "generate", "generator"),
        ("a", 0, "interp", "latent_a"), ("b", 0, "interp", "latent_b"),
        ("interp", 0, "generate", "latent"), ("generate", 0, "upscale", "image"), ("upscale", 0, "save", "images"),
    ]}


WORKFLOWS = {
    "gan_seeds_grid": seeds_grid,
    "gan_class_sweep": class_sweep,
    "gan_interpolation_webp": interpolation_webp,
}

BUILD_JS = """
async (spec) => {
  const graph = window.app.graph;
  graph.clear();
  const made = {};
  for (const n of spec.nodes) {
    const node = LiteGraph.createNode(n.type);
    if (!node) throw new Error(`the editor does not know node type ${n.type}`);
    if (n.title) node.title = n.title;
    node.pos = n.pos;
    graph.add(node);
    for (const [name, value] of Object.entries(n.widgets || {})) {
      const w = (node.widgets || []).find((w) => w.name === name);
      if (!w) throw new Error(`${n.type} has no widget ${name}: ${(node.widgets || []).map((w) => w.name)}`);
      w.value = value;
    }
    const size = node.computeSize();
    node.size = n.size || [Math.max(size[0], 300), size[1]];
    made[n.id] = node;
  }
  for (const [src, slot, dst, input] of spec.links) {
    const to = made[dst];
    const idx = input === null ? to.inputs.findIndex((i) => i.link == null)
                               : to.inputs.findIndex((i) => i.name === input);
    if (idx < 0) throw new Error(`${to.type} has no input ${input ?? '(free)'}`);
    if (!made[src].connect(slot, to, idx)) throw new Error(`cannot connect ${src} -> ${dst}.${input}`);
    await new Promise((r) => setTimeout(r, 50));  // dynamic inputs are added after the link settles
  }
  graph.setDirtyCanvas(true, true);
  // what the editor's Export writes
  return (await window.app.graphToPrompt()).workflow;
}
"""


def build_all(host: ComfyUIHost, out_dir: Path, names=None) -> list[Path]:
    written = []
    with Editor(host.url) as ed:
        for name, make in WORKFLOWS.items():
            if names and name not in names:
                continue
            wf = ed.js(BUILD_JS, make())
            path = out_dir / f"{name}.json"
            path.write_text(json.dumps(wf, indent=2) + "\n")
            written.append(path)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"))
    ap.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON"))
    ap.add_argument("--out", type=Path, default=REPO / "example_workflows")
    ap.add_argument("names", nargs="*", help=f"which to build (default all: {', '.join(WORKFLOWS)})")
    args = ap.parse_args(argv)
    if not args.comfyui:
        ap.error("give --comfyui or set COMFYUI_PATH")
    host = ComfyUIHost(args.comfyui, args.python)
    host.start()
    try:
        for p in build_all(host, args.out, args.names):
            print("wrote", p)
    finally:
        host.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
