"""docs/editor.png: an example workflow run in the real ComfyUI editor (headless Chromium), with the
generated images showing in its Save Image node.

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python python docs/screenshot.py \
        [--workflow example_workflows/gan_seeds_grid.json] [--out docs/editor.png]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from comfyui_host import ComfyUIHost, Editor, HostError  # noqa: E402

IMAGES_SHOWN = """
() => {
  const savers = app.graph._nodes.filter((n) => n.type === 'SaveImage' || n.type === 'SaveAnimatedWEBP');
  return savers.length > 0 && savers.every((n) => (n.imgs || []).length > 0 &&
      n.imgs.every((img) => img.complete && img.naturalWidth > 0));
}
"""

# the queue's "Job queued" / "Job completed" pop-ups cover the top-right corner until they fade
NO_JOB_POPUPS = """
() => ![...document.querySelectorAll('body *')].some(
  (el) => !el.children.length && /Job (queued|completed)/.test(el.textContent))
"""


def take(host: ComfyUIHost, workflow: dict, out: Path, viewport=(1600, 760), timeout: float = 300) -> None:
    with Editor(host.url, viewport=viewport) as ed:
        # the minimap would cover the bottom-right corner of the graph
        ed.js("async () => { await app.extensionManager.setting.set('Comfy.Minimap.Visible', false); }")
        ed.page.add_style_tag(content=".p-toast { display: none !important; }")  # "job completed" pop-ups
        ed.load(workflow)
        ed.js("async () => { await app.queuePrompt(0, 1); }")
        deadline = time.monotonic() + timeout
        while True:
            queue = host.get("/queue")
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            if time.monotonic() > deadline:
                raise HostError("the workflow did not finish in time")
            time.sleep(0.5)
        history = host.get("/history")
        failed = [h["status"] for h in history.values() if h["status"]["status_str"] != "success"]
        if failed:
            raise HostError(f"the workflow failed: {json.dumps(failed)[:2000]}")
        # previews load only for nodes on screen: fit the whole graph first
        ed.js("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        try:
            ed.page.wait_for_function(IMAGES_SHOWN, timeout=60_000)
        except Exception:
            ed.page.screenshot(path=str(out.with_suffix(".failed.png")))
            raise HostError("the images did not show in the editor; its console:\n" + "\n".join(ed.console[-20:])
                            + f"\nhistory: {json.dumps(history)[:1500]}")
        # the grid of previews changes the node's layout: fit again, and let it settle
        ed.js("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        ed.page.keyboard.press("Escape")
        time.sleep(1.5)
        try:
            ed.page.wait_for_function(NO_JOB_POPUPS, timeout=30_000)
        except Exception:
            pass  # a pop-up in the corner does not spoil the picture
        out.parent.mkdir(parents=True, exist_ok=True)
        ed.page.screenshot(path=str(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"))
    ap.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON"))
    ap.add_argument("--workflow", type=Path, default=REPO / "example_workflows" / "gan_seeds_grid.json")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "editor.png")
    ap.add_argument("--models", type=Path, action="append", default=[],
                    help="extra .safetensors checkpoints to offer in the loader (copied to the host's models/gan)")
    args = ap.parse_args(argv)
    if not args.comfyui:
        ap.error("give --comfyui or set COMFYUI_PATH")
    # the node badges show the custom_nodes folder name: give it the pack's name when it is free
    free = not (Path(args.comfyui) / "custom_nodes" / "comfyui-gan").exists()
    host = ComfyUIHost(args.comfyui, args.python, link_name="comfyui-gan" if free else None)
    host.start()
    try:
        for m in args.models:
            shutil.copy(m, host.models_dir / "gan" / m.name)
        take(host, json.loads(args.workflow.read_text()), args.out)
        print("wrote", args.out)
    finally:
        host.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
