"""Every example workflow opened as a user opens it, in the real editor (headless Chromium): from the
template browser (Comfy.BrowseTemplates -> the pack's entry under Extensions -> the template's card), and
as a file (Workflow > Open); with no missing-node or validation message; run with the Run button; and
then its outputs' previews loaded and on screen, at 1280x800 and at 1920x1080, without panning or
zooming: the view the editor shows as it opens the workflow is the one that must show the whole graph
(every node inside the page and clear of the editor's panels: side bar, tab bar, Run toolbar, minimap,
zoom buttons) and its outputs' previews, at a zoom where the editor still draws the nodes' text (below
its level-of-detail threshold it draws bare boxes).

The two ways give different views. From the template browser the editor ignores the workflow's saved
extra.ds and fits the graph (loadGraphData(..., {openSource: 'template'}) -> fitView(): the graph's
bounds at 75% of the canvas, centred), so what counts there is the layout's proportions; a file opened
with Workflow > Open shows its saved extra.ds (the editor fits only when no node would be in view).
Output nodes grow when their previews arrive, so the checks are made after the run as well.

A screenshot per template, size and way is kept: <template>-<W>x<H>.png (template browser) and
<template>-<W>x<H>-file.png; the folder is printed at the start and at the end of the run, and
TEMPLATE_SCREENSHOTS=<dir> puts them there instead of pytest's temporary folder.
"""
import json
import os
import re
import time
from pathlib import Path

import pytest

from comfyui_host import Editor

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
VIEWPORTS = [(1280, 800), (1920, 1080)]
OUTPUT_TYPES = {"SaveImage", "SaveAnimatedWEBP", "SaveVideo", "PreviewImage"}
RUN_TIMEOUT = 600  # the inversion examples run 100 steps through VGG19 on CPU
PREVIEW_TIMEOUT = 60

# leaf elements of the editor's own UI (not a node's DOM widget, such as a Note's text) that say something
# is wrong: the error panel ("Missing node: X", "2 errors found", a missing model or input file), a
# failed validation after Run, an error toast or dialog
ALERTS = r"""
() => {
  const bad = /missing|error|failed|invalid|not found|not installed|required input/i;
  const shown = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const texts = [...document.querySelectorAll('body *')]
    .filter((el) => !el.children.length && !el.closest('.dom-widget') && bad.test(el.textContent) && shown(el))
    .map((el) => el.textContent.trim().slice(0, 200));
  for (const el of document.querySelectorAll('.p-toast-message-error, .p-dialog, [role=dialog], [role=alertdialog]'))
    if (shown(el)) texts.push('dialog/toast: ' + el.textContent.trim().slice(0, 200));
  return texts;
}
"""

UNKNOWN_TYPES = "() => app.graph._nodes.filter((n) => !LiteGraph.registered_node_types[n.type]).map((n) => n.type)"

# the queue's "Job queued" / "Job completed" pop-ups cover the top-right corner for a few seconds
NO_JOB_POPUPS = """
() => ![...document.querySelectorAll('body *')].some(
  (el) => !el.children.length && /Job (queued|completed)/.test(el.textContent))
"""

# Every node's rectangle on screen (CSS pixels of the page: graph coordinates through app.canvas.ds, title
# bar included); its outputs' previews: node.imgs loaded, and the rectangles the previews take on screen
# (the canvas preview widget's area for SaveImage / PreviewImage, the <img> / <video> DOM widget for an
# animated WEBP / a video); and what hides each rectangle: points on an 11x11 grid over it, a point being
# hidden when the topmost element there is neither the graph canvas nor a node's DOM widget. The panel
# named for a hidden point is the largest element around it under 6% of the page (the minimap, the side
# bar, the tab bar, the Run toolbar, the zoom buttons), with its rectangle.
MEASURE = r"""
() => {
  const c = app.canvas, ds = c.ds, el = c.canvas.getBoundingClientRect();
  const T = LiteGraph.NODE_TITLE_HEIGHT;
  const screen = (x0, y0, x1, y1) => [el.left + (x0 + ds.offset[0]) * ds.scale, el.top + (y0 + ds.offset[1]) * ds.scale,
                                      el.left + (x1 + ds.offset[0]) * ds.scale, el.top + (y1 + ds.offset[1]) * ds.scale];
  const area = (e) => { const r = e.getBoundingClientRect(); return r.width * r.height; };
  const page = innerWidth * innerHeight;
  const covers = (r, own) => {
    const panels = {};
    for (let i = 0; i <= 10; i++) for (let j = 0; j <= 10; j++) {
      const x = r[0] + 1 + (r[2] - r[0] - 2) * i / 10, y = r[1] + 1 + (r[3] - r[1] - 2) * j / 10;
      if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;  // outside the page: checked apart
      const hit = document.elementFromPoint(x, y);
      if (!hit || hit === c.canvas || hit.closest('.dom-widget') || (own && own.contains(hit))) continue;
      let k = hit;
      while (k.parentElement && k.parentElement !== document.body && area(k.parentElement) > 0
             && area(k.parentElement) < 0.06 * page) k = k.parentElement;
      const b = k.getBoundingClientRect();
      const name = typeof k.className === 'string' && k.className ? k.className.split(' ').slice(0, 2).join('.') : k.tagName;
      const key = name + ' ' + [b.left, b.top, b.right, b.bottom].map(Math.round).join(',');
      panels[key] = panels[key] || {name, rect: [b.left, b.top, b.right, b.bottom], points: 0};
      panels[key].points++;
    }
    return Object.values(panels);
  };
  const nodes = app.graph._nodes.map((n) => {
    const r = screen(n.pos[0], n.pos[1] - T, n.pos[0] + n.size[0], n.pos[1] + n.size[1]);
    const out = {id: String(n.id), type: n.type, rect: r, covered: covers(r),
                 imgs: (n.imgs || []).map((i) => ({complete: i.complete, w: i.naturalWidth, src: i.src || ''})), previews: []};
    for (const w of n.widgets || []) {
      if (w.constructor.name === 'ImagePreviewWidget' || w.name === '$$canvas-image-preview') {
        if (!(n.imgs || []).length) continue;
        const rr = screen(n.pos[0], n.pos[1] + w.y, n.pos[0] + n.size[0], n.pos[1] + w.y + w.computedHeight);
        out.previews.push({widget: w.name, tag: 'canvas', src: '', rect: rr, covered: covers(rr), loaded: true});
        continue;
      }
      const e = w.element;
      if (!e || !e.querySelectorAll) continue;
      const media = ['IMG', 'VIDEO'].includes(e.tagName) ? [e] : [...e.querySelectorAll('video, img')];
      for (const m of media) {
        const src = m.currentSrc || m.src || '';
        if (!/\/view\?/.test(src) || /type=input/.test(src)) continue;  // a loader's own input, not an output
        const b = m.getBoundingClientRect(), rr = [b.left, b.top, b.right, b.bottom];
        out.previews.push({widget: w.name, tag: m.tagName, src, rect: rr, covered: covers(rr, m),
                           loaded: m.tagName === 'VIDEO' ? m.readyState >= 2 && m.videoWidth > 0 : m.complete && m.naturalWidth > 0});
      }
    }
    return out;
  });
  return {viewport: [innerWidth, innerHeight], canvas: [el.left, el.top, el.right, el.bottom],
          ds: {scale: ds.scale, offset: [...ds.offset]}, nodes,
          // below this zoom the editor draws nodes as bare boxes, without titles, widgets or text
          low_quality: !!c.low_quality, lod_scale: c._lowQualityZoomThreshold ?? null};
}
"""


@pytest.fixture(scope="module")
def shots(tmp_path_factory, request):
    folder = Path(os.environ.get("TEMPLATE_SCREENSHOTS") or tmp_path_factory.mktemp("template_screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\ntemplate screenshots: {folder}")
    yield folder
    if reporter is not None:
        reporter.write_line(f"\ntemplate screenshots: {folder}")


@pytest.fixture(scope="module")
def browser(editor, comfy_host):
    """The session's editor page (one Playwright per process: a second sync Playwright cannot start
    beside it), opened afresh on a host whose history is cleared: the tests before these fail jobs on
    purpose, and their "Job failed" notices would read as this module's. Each check sizes the page
    (page.set_viewport_size) before it opens a template, so that the editor fits its view to that size."""
    comfy_host.request("POST", "/history", {"clear": True})
    editor.page.reload(wait_until="domcontentloaded")
    editor.page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
    editor.page.set_default_timeout(60_000)
    editor.page.set_viewport_size({"width": VIEWPORTS[0][0], "height": VIEWPORTS[0][1]})
    yield editor
    editor.page.set_viewport_size({"width": editor.viewport[0], "height": editor.viewport[1]})


@pytest.fixture(scope="module")
def output_node_types(object_info):
    return {k for k, v in object_info.items() if v.get("output_node")}


def open_from_template_browser(ed: Editor, pack_folder: str, name: str) -> str:
    """Opens template `name` as a user does; returns the name of the editor tab it opened in."""
    page = ed.page
    before = ed.js("() => app.extensionManager.workflow.activeWorkflow?.path ?? null")
    # what the sidebar's Templates button and the Workflow menu's "Browse Templates" run
    ed.js("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    # the left nav: Extensions -> the folder the pack is installed under in custom_nodes/
    dialog.locator("nav [role=button]", has_text=re.compile(rf"^\s*{re.escape(pack_folder)}\s*$")).first.click()
    dialog.locator("header", has_text=pack_folder).first.wait_for()
    card = dialog.get_by_test_id(f"template-workflow-{name}")
    card.scroll_into_view_if_needed()
    card.click()
    dialog.wait_for(state="detached")
    page.wait_for_function(
        """([before, name]) => { const w = app.extensionManager.workflow.activeWorkflow;
             return w && w.path !== before && (w.filename === name || w.filename.startsWith(name + ' (')); }""",
        arg=[before, name])
    # the editor lays the graph out and fits its view in the frames after loadGraphData; let them pass
    page.wait_for_function("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
    time.sleep(0.5)
    return ed.js("() => app.extensionManager.workflow.activeWorkflow.filename")


def open_as_file(ed: Editor, path: Path) -> str:
    """Opens a workflow file as a user does with Workflow > Open (Comfy.OpenWorkflow: the file chooser);
    the editor then shows the view saved in the workflow's extra.ds (unless no node would be in it)."""
    page = ed.page
    before = ed.js("() => app.extensionManager.workflow.activeWorkflow?.path ?? null")
    with page.expect_file_chooser() as chooser:
        ed.js("() => app.extensionManager.command.execute('Comfy.OpenWorkflow')")
    chooser.value.set_files(str(path))
    page.wait_for_function(
        """([before, name]) => { const w = app.extensionManager.workflow.activeWorkflow;
             return w && w.path !== before && (w.filename === name || w.filename.startsWith(name + ' (')); }""",
        arg=[before, path.stem])
    page.wait_for_function("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
    time.sleep(0.5)
    return ed.js("() => app.extensionManager.workflow.activeWorkflow.filename")


def history_ids(host) -> set:
    return set(host.get("/history"))


def run_with_the_run_button(ed: Editor, host, timeout: float) -> tuple[str, dict]:
    """Clicks Run; waits until the prompt it queued has finished; returns (prompt id, history entry)."""
    known = history_ids(host)
    started = time.monotonic()
    ed.page.locator("button", has_text=re.compile(r"^\s*Run\s*$")).first.click()
    deadline = time.monotonic() + timeout
    while True:
        queue = host.get("/queue")
        if not queue["queue_running"] and not queue["queue_pending"]:
            new = [(k, v) for k, v in host.get("/history").items() if k not in known]
            done = [(k, v) for k, v in new if v.get("status", {}).get("completed") is not None]
            if done:
                return done[-1]
            alerts = ed.js(ALERTS)
            if alerts and time.monotonic() > started + 5:  # nothing queued: rejected
                raise AssertionError(f"Run queued nothing; the editor shows {alerts}")
        if host.proc is not None and host.proc.poll() is not None:
            raise AssertionError(f"ComfyUI died:\n{host.log()[-3000:]}")
        if time.monotonic() > deadline:
            host.request("POST", "/interrupt", {})
            raise AssertionError(f"the run did not finish within {timeout:.0f} s")
        time.sleep(0.5)


def _px(rect):
    return [round(v) for v in rect]


def _sticks_out(rect, box):
    """How far rect sticks out of box on each side, in px: (left, top, right, bottom); all 0 inside."""
    return [round(max(0, box[0] - rect[0])), round(max(0, box[1] - rect[1])),
            round(max(0, rect[2] - box[2])), round(max(0, rect[3] - box[3]))]


def _where(what: str, rect, covered, box) -> list[str]:
    problems = []
    out = _sticks_out(rect, box)
    if any(out):
        problems.append(f"{what} {_px(rect)} sticks out of the {box[2]}x{box[3]} page by (left, top, right, "
                        f"bottom) = {out} px")
    for panel in covered:
        p = panel["rect"]
        inter = [max(rect[0], p[0]), max(rect[1], p[1]), min(rect[2], p[2]), min(rect[3], p[3])]
        problems.append(f"{what} {_px(rect)} lies under the editor's {panel['name']} {_px(p)}: overlap "
                        f"{_px(inter)}, {round(inter[2] - inter[0])} x {round(inter[3] - inter[1])} px "
                        f"({panel['points']} of 121 sampled points hidden)")
    return problems


def check_view(m: dict, outputs: set) -> list[str]:
    """What is wrong with the view: nodes that stick out of the page or lie under the editor's panels;
    outputs (node ids) whose preview did not load or sticks out or lies under a panel."""
    box = [max(0, m["canvas"][0]), max(0, m["canvas"][1]), min(m["viewport"][0], m["canvas"][2]),
           min(m["viewport"][1], m["canvas"][3])]
    problems = []
    if m.get("low_quality"):
        problems.append(f"zoomed out to {m['ds']['scale']:.3f}, below the editor's {m['lod_scale']:.3f}: the nodes "
                        "are drawn without their text")
    for n in m["nodes"]:
        label = f"node {n['id']} {n['type']}"
        problems += _where(label, n["rect"], n["covered"], box)
        if n["id"] not in outputs:
            continue
        if not n["previews"]:
            problems.append(f"{label}: no preview of its output")
        for i in n["imgs"]:
            if not (i["complete"] and i["w"] > 0):
                problems.append(f"{label}: preview image not loaded: {i['src'][:200]}")
        for pv in n["previews"]:
            what = f"{label}: its {pv['tag']} preview"
            if not pv["loaded"]:
                problems.append(f"{what} did not load: {pv['src'][:200]}")
            problems += _where(what, pv["rect"], pv["covered"], box)
    return problems


def previews_loaded(ed: Editor, outputs: set, timeout: float) -> bool:
    try:
        ed.page.wait_for_function(
            """(ids) => ids.every((id) => { const n = app.graph.getNodeById(id); if (!n) return false;
                 const imgs = n.imgs || [];
                 const media = (n.widgets || []).flatMap((w) => !w.element || !w.element.querySelectorAll ? []
                     : ['IMG', 'VIDEO'].includes(w.element.tagName) ? [w.element] : [...w.element.querySelectorAll('video, img')])
                   .filter((m) => /\\/view\\?/.test(m.currentSrc || m.src || '') && !/type=input/.test(m.currentSrc || m.src || ''));
                 if (!imgs.length && !media.length) return false;
                 return imgs.every((i) => i.complete && i.naturalWidth > 0) &&
                        media.every((m) => m.tagName === 'VIDEO' ? m.readyState >= 2 && m.videoWidth > 0
                                                                  : m.complete && m.naturalWidth > 0); })""",
            arg=sorted(outputs), timeout=timeout * 1000)
        return True
    except Exception:
        return False


def open_run_and_measure(ed: Editor, host, name: str, way: str, size: tuple, shot: Path, output_node_types: set):
    """Opens `name` one way at one page size, runs it, waits for its previews; returns (a line for the
    report, the problems with the view)."""
    workflow_path = REPO / "example_workflows" / f"{name}.json"
    workflow = json.loads(workflow_path.read_text())
    width, height = size
    ed.page.set_viewport_size({"width": width, "height": height})
    ed.page.wait_for_function("([w, h]) => app.canvas.canvas.clientWidth === w && app.canvas.canvas.clientHeight === h",
                              arg=[width, height])
    what = f"{name} ({way}, {width}x{height})"
    t0 = time.monotonic()
    try:
        if way == "template browser":
            tab = open_from_template_browser(ed, host.link_name, name)
        else:
            tab = open_as_file(ed, workflow_path)
        opened = time.monotonic() - t0
        # the pointer rests where it clicked, maybe over the graph: move it to the canvas' right edge
        ed.page.mouse.move(width - 2, height // 2)

        # -- as opened: every node there and known, nothing reported missing ----------------------------
        assert ed.js("() => app.graph._nodes.length") == len(workflow["nodes"]), what
        assert not ed.js(UNKNOWN_TYPES), f"{what}: node types the editor does not know: {ed.js(UNKNOWN_TYPES)}"
        alerts = ed.js(ALERTS)
        assert not alerts, f"{what}: as opened, the editor reports {alerts}"
        assert not [c for c in ed.console if "Error loading workflow template" in c], ed.console[-10:]
        graph_types = ed.js("() => app.graph._nodes.map((n) => [String(n.id), n.type])")
        outputs = {nid for nid, t in graph_types if t in output_node_types}
        assert outputs, f"{what}: no output node"
        assert {t for nid, t in graph_types if nid in outputs} <= OUTPUT_TYPES, graph_types
        as_opened = ed.js(MEASURE)

        # -- Run, as a user does (after the first time the host answers from its cache) -----------------
        t1 = time.monotonic()
        prompt_id, entry = run_with_the_run_button(ed, host, RUN_TIMEOUT)
        ran = time.monotonic() - t1
        status = entry["status"]
        assert status["status_str"] == "success", f"{what}: {json.dumps(status)[:3000]}"
        assert outputs <= set(entry["outputs"]), (what, outputs, sorted(entry["outputs"]))
        alerts = ed.js(ALERTS)
        assert not alerts, f"{what}: after the run the editor reports {alerts}"

        # -- the outputs' previews, where the view already is (no pan, no zoom, no fit) -----------------
        loaded = previews_loaded(ed, outputs, PREVIEW_TIMEOUT)
        try:
            ed.page.wait_for_function(NO_JOB_POPUPS, timeout=30_000)
        except Exception:
            pass  # a pop-up still there counts as a panel over whatever it covers
        time.sleep(0.5)
        after_run = ed.js(MEASURE)
        ed.page.screenshot(path=str(shot))
    except BaseException:
        ed.page.screenshot(path=str(shot.with_suffix(".failed.png")))
        raise
    assert after_run["ds"] == as_opened["ds"], f"{what}: the view moved: {as_opened['ds']} -> {after_run['ds']}"
    problems = [f"as opened: {p}" for p in check_view(as_opened, set())]
    problems += [f"after the run: {p}" for p in check_view(after_run, outputs)]
    if not loaded:
        problems.insert(0, f"the outputs' previews did not all load within {PREVIEW_TIMEOUT} s")
    ds = after_run["ds"]
    line = (f"{way} {width}x{height}: tab {tab!r}, opened in {opened:.1f} s, ran in {ran:.1f} s, view scale "
            f"{ds['scale']:.3f}, {'ok' if not problems else f'{len(problems)} problems'}")
    if problems:
        problems = [f"{what}, view scale {ds['scale']:.3f}, offset {[round(v, 1) for v in ds['offset']]}, "
                    f"screenshot {shot}:"] + [f"  {p}" for p in problems]
    return line, problems


# the template browser is how the users open them; Workflow > Open is the path that shows the view
# saved in the file (extra.ds), which the template browser replaces with a fit of the whole graph
WAYS = {"template browser": "", "file": "-file"}


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_opens_runs_and_shows_its_outputs(name, browser, comfy_host, shots, output_node_types):
    lines, failures = [], []
    for size in VIEWPORTS:
        for way, suffix in WAYS.items():
            shot = shots / f"{name}-{size[0]}x{size[1]}{suffix}.png"
            line, problems = open_run_and_measure(browser, comfy_host, name, way, size, shot, output_node_types)
            lines.append(line)
            failures += problems
    print(f"\n{name}:\n  " + "\n  ".join(lines))
    assert not failures, "\n".join(failures)
