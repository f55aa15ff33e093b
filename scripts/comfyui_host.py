"""Run a real ComfyUI with this pack linked into its custom_nodes, and talk to it.

Used by tests/host (integration tests), docs/screenshot.py and by hand:

    python scripts/comfyui_host.py --comfyui /path/to/ComfyUI [--python /path/to/venv/bin/python]

The ComfyUI checkout and its Python live outside this repository. Each start gets a base directory
of its own (--base-directory: custom_nodes, models, output, input, temp, user) and an in-memory
database, so a run never touches the checkout or the user's files, and two runs side by side (or a
user's own install of the pack in the checkout's custom_nodes/) never load each other's packs.

Also here: `ui_to_api`, which turns a workflow as the editor saves it (UI format) into the API format
POST /prompt takes, from the node definitions in /object_info.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Chromium flags for the editor on a machine without a display, GPU or outside network: without the
# resolver rule the page keeps trying to reach outside hosts and never goes idle.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


class HostError(RuntimeError):
    pass


class PromptRejected(HostError):
    """POST /prompt answered 400: the prompt failed validation (`body` has error and node_errors)."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        super().__init__(f"/prompt rejected ({status}): {json.dumps(body)[:2000]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyUIHost:
    def __init__(self, comfyui_path, python=None, pack_dir=REPO, port=None, workdir=None,
                 link_name=None, extra_args=()):
        self.comfyui = Path(comfyui_path).resolve()
        if not (self.comfyui / "main.py").is_file() or not (self.comfyui / "custom_nodes").is_dir():
            raise HostError(f"{self.comfyui} is not a ComfyUI checkout (no main.py / custom_nodes/)")
        self.python = str(python or sys.executable)
        self.pack_dir = Path(pack_dir).resolve()
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="comfyui-gan-host-"))
        # the node badges and python_module show this folder name
        self.link_name = link_name or "comfyui-gan"
        self.link = self.workdir / "custom_nodes" / self.link_name
        self.output_dir = self.workdir / "output"
        self.input_dir = self.workdir / "input"
        # an extra_model_paths.yaml base apart from the base directory's models/: models/gan there is
        # ours to fill, and shows that the pack merges the yaml's `gan` entry
        self.models_dir = self.workdir / "extra_models"
        self.log_path = self.workdir / "comfyui.log"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self._linked = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> "ComfyUIHost":
        for d in ("output", "input", "temp", "user", "custom_nodes", "models", "extra_models/gan"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        settings = self.workdir / "user" / "default" / "comfy.settings.json"
        if not settings.exists():
            # a fresh user dir would greet the editor with the templates dialog, over the graph
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
        extra_paths = self.workdir / "extra_model_paths.yaml"
        extra_paths.write_text(f"comfyui_gan_test:\n    base_path: {self.models_dir}\n    gan: gan/\n")
        self._prepare_link()
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.workdir), "--output-directory", str(self.output_dir), "--input-directory", str(self.workdir / "input"),
               "--temp-directory", str(self.workdir / "temp"), "--user-directory", str(self.workdir / "user"),
               "--database-url", "sqlite:///:memory:", "--extra-model-paths-config", str(extra_paths),
               *self.extra_args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.comfyui, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                log = self.log()
                self.stop()
                raise HostError(f"ComfyUI exited with code {self.proc.returncode} while starting:\n{log[-4000:]}")
            try:
                self.get("/object_info/SaveImage", timeout=5)
                return self
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise HostError(f"ComfyUI did not answer /object_info within {timeout:.0f} s:\n{log[-4000:]}")
            time.sleep(0.5)

    def _prepare_link(self) -> None:
        if self.link.is_symlink() and self.link.resolve() == self.pack_dir:
            return  # a restart in the same workdir
        if self.link.exists() or self.link.is_symlink():
            raise HostError(f"{self.link} already exists and is not this pack; pass another link_name")
        self.link.symlink_to(self.pack_dir, target_is_directory=True)
        self._linked = True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only what it started
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()
        if self._linked and self.link.is_symlink():
            self.link.unlink()
            self._linked = False

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- HTTP -------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body=None, timeout: float = 60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def get(self, path: str, timeout: float = 60):
        status, body = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise HostError(f"GET {path}: {status} {body!r:.500}")
        return body

    def object_info(self) -> dict:
        return self.get("/object_info")

    def queue(self, prompt: dict, extra_data: dict | None = None, client_id: str | None = None) -> str:
        """client_id: that of an open `events()`, to receive the prompt's progress there."""
        body = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex}
        if extra_data:
            body["extra_data"] = extra_data
        status, answer = self.request("POST", "/prompt", body)
        if status != 200:
            raise PromptRejected(status, answer if isinstance(answer, dict) else {"error": answer})
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """The /history entry of a finished prompt (status.status_str is 'success' or 'error')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            entry = hist.get(prompt_id) if isinstance(hist, dict) else None
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise HostError(f"ComfyUI died while running {prompt_id}:\n{self.log()[-4000:]}")
            time.sleep(0.3)
        self.request("POST", "/interrupt", {})
        raise HostError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def run(self, prompt: dict, timeout: float = 300, extra_data: dict | None = None) -> dict:
        return self.wait(self.queue(prompt, extra_data), timeout)

    def events(self, timeout: float = 60) -> "Events":
        """The host's websocket for a new client id: the messages it sends while it runs that client's
        prompts, in order (executing, progress, execution_interrupted, ...)."""
        return Events(self.port, uuid.uuid4().hex, timeout)

    def output_files(self, entry: dict) -> list[Path]:
        """Files the output nodes of a finished prompt wrote, from its history entry."""
        files = []
        for out in entry.get("outputs", {}).values():
            for item in out.get("images", []) + out.get("gifs", []) + out.get("animated", []):
                if isinstance(item, dict) and item.get("type") == "output":
                    files.append(self.output_dir / item.get("subfolder", "") / item["filename"])
        return files


class Events:
    """A websocket client of the standard library alone (the tests' interpreter has no websocket
    package): the JSON messages of /ws, read in order. ComfyUI sends whole unmasked frames and never
    compresses unless asked; binary frames (previews) are skipped."""

    def __init__(self, port: int, client_id: str, timeout: float):
        self.client_id = client_id
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        while b"\r\n\r\n" not in self._buf:
            self._recv(time.monotonic() + timeout)
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            self.sock.close()
            raise HostError(f"/ws refused the upgrade: {head[:500]!r}")

    def _recv(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HostError("no websocket message in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            raise HostError("no websocket message in time") from None
        if not data:
            raise HostError("the host closed the websocket")
        self._buf += data

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._recv(deadline)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def next(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            b0, b1 = self._read(2, deadline)
            n = b1 & 0x7F
            if n >= 126:
                n = struct.unpack(">H" if n == 126 else ">Q", self._read(2 if n == 126 else 8, deadline))[0]
            payload = self._read(n, deadline)
            opcode = b0 & 0x0F
            if opcode == 1:
                return json.loads(payload)
            if opcode == 8:
                raise HostError("the host closed the websocket")
            if opcode == 9:  # ping: a client's frames are masked (RFC 6455 5.3)
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask
                                  + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def until(self, done, timeout: float) -> list[dict]:
        """The messages up to and including the first for which done(message) is true."""
        deadline = time.monotonic() + timeout
        seen = []
        while not seen or not done(seen[-1]):
            seen.append(self.next(deadline - time.monotonic()))
        return seen

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def execution_error(entry: dict) -> dict | None:
    """The execution_error message of a failed prompt's history entry, if any."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return None


# -- UI format -> API format ------------------------------------------------------------------------
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
VIRTUAL_NODES = {"Note", "MarkdownNote"}  # editor-only: never sent to the server
MUTED, BYPASSED = 2, 4
# A V3 combo whose chosen option brings inputs of its own (core's Save Video: format -> codec -> ...).
# The editor saves its value, then the chosen option's widgets, named "<combo>.<input>", depth first.
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


def _input_specs(info: dict):
    """(name, spec) of a node's inputs in the order the editor makes their widgets."""
    inputs = info["input"]
    order = info.get("input_order") or {k: list(v) for k, v in inputs.items()}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            yield name, inputs[section][name]


def _option_specs(inputs: dict):
    """(name, spec) of the inputs a dynamic combo's chosen option adds (no input_order there)."""
    for section in ("required", "optional"):
        yield from (inputs.get(section) or {}).items()


def _is_widget(spec) -> bool:
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES or kind == DYNAMIC_COMBO


def _has_control_widget(name: str, spec) -> bool:
    """The editor adds a 'control after generate' widget (whose value is saved right after the
    number's) to INT inputs that ask for it and to any INT named seed / noise_seed."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0] == "INT" and bool(opts.get("control_after_generate") or name in ("seed", "noise_seed"))


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """A UI-format workflow (what the editor saves) as the API-format prompt POST /prompt takes."""
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise ValueError("workflows with subgraphs are not supported by this converter")
    links = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"])
        else:
            link_id, from_node, from_slot = link[0], link[1], link[2]
            links[link_id] = (from_node, from_slot)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    prompt = {}
    for node in workflow["nodes"]:
        ntype = node["type"]
        if ntype in VIRTUAL_NODES or node.get("mode", 0) == MUTED:
            continue
        if node.get("mode", 0) == BYPASSED:
            raise ValueError(f"node {node['id']} ({ntype}) is bypassed; this converter does not pass inputs through")
        if ntype not in object_info:
            raise ValueError(f"node {node['id']}: type {ntype!r} is not known to this ComfyUI (/object_info)")
        linked = {}
        for inp in node.get("inputs") or []:
            if inp.get("link") is not None:
                src, slot = links[inp["link"]]
                if nodes[src].get("mode", 0) == MUTED:
                    continue
                linked[inp["name"]] = [str(src), slot]
        values = node.get("widgets_values") or []
        api_inputs = {}
        pos = 0

        def read(specs, prefix=""):
            nonlocal pos
            for name, spec in specs:
                key = prefix + name
                if not _is_widget(spec):
                    continue
                if isinstance(values, dict):
                    if key not in values:
                        continue
                    value = values[key]
                else:
                    if pos >= len(values) and isinstance(spec[1] if len(spec) > 1 else None, dict) \
                            and "default" in spec[1]:
                        # a widget added after the workflow was saved: the editor gives it its default
                        api_inputs[key] = spec[1]["default"]
                        continue
                    if pos >= len(values):
                        raise ValueError(f"node {node['id']} ({ntype}): widgets_values has {len(values)} "
                                         f"values, too few for widget {key!r}")
                    value = values[pos]
                    pos += 1 + _has_control_widget(name, spec)
                api_inputs[key] = value
                if spec[0] == DYNAMIC_COMBO:
                    options = {o["key"]: o["inputs"] for o in spec[1]["options"]}
                    if value not in options:
                        raise ValueError(f"node {node['id']} ({ntype}): {value!r} is not an option of {key!r} "
                                         f"({', '.join(options)})")
                    read(_option_specs(options[value]), key + ".")

        read(_input_specs(object_info[ntype]))
        # after the widgets, links: a linked widget input takes the link. V3 dynamic inputs (autogrow:
        # images.image0, images.image1, ...) exist only as links, under names the schema does not list.
        api_inputs.update(linked)
        prompt[str(node["id"])] = {"class_type": ntype, "inputs": api_inputs,
                                   "_meta": {"title": node.get("title") or object_info[ntype].get("display_name", ntype)}}
    return prompt


# -- the editor (headless Chromium through Playwright) ---------------------------------------------
class Editor:
    """The ComfyUI editor of a running host in headless Chromium. `page` is the Playwright page;
    `window.app` there is the editor's app (loadGraphData, graphToPrompt, queuePrompt, graph)."""

    def __init__(self, url: str, viewport=(1600, 1000), chromium: str = CHROMIUM, timeout_s: float = 90):
        self.url, self.viewport, self.chromium, self.timeout_ms = url, viewport, chromium, int(timeout_s * 1000)
        self.console: list[str] = []

    def __enter__(self) -> "Editor":
        from playwright.sync_api import sync_playwright  # optional: only the editor checks need it
        self._profile = tempfile.mkdtemp(prefix="comfyui-gan-chromium-")
        self._pw = sync_playwright().start()
        try:
            self.context = self._pw.chromium.launch_persistent_context(
                self._profile, executable_path=self.chromium, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": self.viewport[0], "height": self.viewport[1]})
            self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
            self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
            self.page.goto(self.url, wait_until="domcontentloaded", timeout=self.timeout_ms)
            self.page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph",
                                        timeout=self.timeout_ms)
            self.page.wait_for_selector("#graph-canvas", state="visible", timeout=self.timeout_ms)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            if getattr(self, "context", None) is not None:
                self.context.close()
        finally:
            self._pw.stop()
            shutil.rmtree(self._profile, ignore_errors=True)

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def load(self, workflow: dict) -> None:
        self.js("async (wf) => { await window.app.loadGraphData(wf); }", workflow)

    def graph_to_prompt(self) -> dict:
        """The API-format prompt the editor itself would queue for the loaded graph."""
        return self.js("async () => (await window.app.graphToPrompt()).output")

    def serialize(self) -> dict:
        return self.js("() => window.app.graph.serialize()")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Start ComfyUI with this pack linked into custom_nodes.")
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout (or COMFYUI_PATH)")
    ap.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON"), help="its interpreter (or COMFYUI_PYTHON)")
    ap.add_argument("--port", type=int, default=8188)
    args = ap.parse_args(argv)
    if not args.comfyui:
        ap.error("give --comfyui or set COMFYUI_PATH")
    host = ComfyUIHost(args.comfyui, args.python, port=args.port)
    host.start()
    print(f"ComfyUI at {host.url} (log {host.log_path}); Ctrl-C stops it", flush=True)
    try:
        while host.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        host.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
