"""The nodes' help pages (docs.comfy.org/custom-nodes/help_page): WEB_DIRECTORY/docs/<node id>.md for every
registered node, shown in the editor's node documentation panel instead of the plain DESCRIPTION. Each page's
`## Inputs` names exactly the node's inputs, one bullet each ("- **name**: ..." or "- **name** (optional): ..."),
so a node that gains, loses or renames an input fails here until its page says so."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

BULLET = re.compile(r"- \*\*(?P<name>[^*]+)\*\*(?P<optional> \(optional\))?: \S")


def docs_dir(pack) -> Path:
    return (Path(pack.__file__).resolve().parent / pack.WEB_DIRECTORY / "docs").resolve()


def section(text: str, title: str) -> list[str] | None:
    """The lines under `## title` up to the next heading, or None where the page has no such section."""
    lines = text.splitlines()
    try:
        start = lines.index(f"## {title}")
    except ValueError:
        return None
    out = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        out.append(line)
    return out


def bullets(lines: list[str]) -> tuple[list[tuple[str, bool]], list[str]]:
    """(name, marked optional) per bullet, and the bullets that are not in the "- **name**: ..." form."""
    found, malformed = [], []
    for line in lines:
        if not line.startswith("- "):
            continue
        m = BULLET.match(line)
        if m:
            found.append((m["name"], bool(m["optional"])))
        else:
            malformed.append(line)
    return found, malformed


def page_problems(text: str, cls, display_name: str) -> list[str]:
    """Everything that keeps `text` from documenting node class `cls`; empty when it does."""
    problems = []
    if not text.startswith(f"# {display_name}\n"):
        problems.append(f"the title must be '# {display_name}' (the node's display name)")
    for title in ("Inputs", "Outputs", "Tips"):
        if section(text, title) is None:
            problems.append(f"no '## {title}' section")
    if "![" in text or "<img" in text:
        problems.append("images are not used in these pages")

    spec = cls.INPUT_TYPES()
    want = {name: False for name in spec.get("required", {})}
    want.update({name: True for name in spec.get("optional", {})})
    documented, malformed = bullets(section(text, "Inputs") or [])
    problems += [f"Inputs: bullet not in the form '- **name**: ...': {line!r}" for line in malformed]
    names = [n for n, _ in documented]
    problems += [f"Inputs: {n!r} is documented twice" for n in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"Inputs: {n!r} is an input of the node but not documented" for n in want if n not in names]
    problems += [f"Inputs: {n!r} is documented but the node has no such input" for n in names if n not in want]
    for n, marked in documented:
        if n in want and marked != want[n]:
            problems.append(f"Inputs: {n!r} is {'optional' if want[n] else 'required'}: "
                            f"{'add' if want[n] else 'remove'} the '(optional)' mark")

    outputs = list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)
    documented_out, malformed_out = bullets(section(text, "Outputs") or [])
    problems += [f"Outputs: bullet not in the form '- **name**: ...': {line!r}" for line in malformed_out]
    if [n for n, _ in documented_out] != outputs:
        problems.append(f"Outputs: documents {[n for n, _ in documented_out]}, the node returns {outputs}")
    return problems


def test_web_directory_is_exported_and_holds_the_docs(pack):
    assert pack.WEB_DIRECTORY == "./web"
    assert "WEB_DIRECTORY" in pack.__all__
    root = Path(pack.__file__).resolve().parent
    # ComfyUI resolves WEB_DIRECTORY against the pack's folder and serves it to the frontend
    assert docs_dir(pack).is_dir()
    assert docs_dir(pack).parent == (root / "web").resolve()


def test_every_node_has_a_page(pack):
    missing = [i for i in pack.NODE_CLASS_MAPPINGS if not (docs_dir(pack) / f"{i}.md").is_file()]
    assert not missing, f"no help page web/docs/<id>.md for {missing}"


def test_no_page_for_a_node_that_does_not_exist(pack):
    # NodeName.md, or localized NodeName/<locale>.md: either name must be a registered id
    stems = {p.stem if p.is_file() else p.name for p in docs_dir(pack).iterdir() if not p.name.startswith(".")}
    stray = sorted(stems - set(pack.NODE_CLASS_MAPPINGS))
    assert not stray, f"help pages for ids that are not registered: {stray}"
    assert all(p.suffix == ".md" for p in docs_dir(pack).rglob("*") if p.is_file())


def test_each_page_documents_exactly_its_node(pack):
    problems = []
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        path = docs_dir(pack) / f"{node_id}.md"
        if not path.is_file():
            continue  # test_every_node_has_a_page names it
        text = path.read_text(encoding="utf-8")
        problems += [f"{path.name}: {p}" for p in page_problems(text, cls, pack.NODE_DISPLAY_NAME_MAPPINGS[node_id])]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("change", ["new required", "new optional", "renamed", "made optional"])
def test_a_changed_input_without_docs_is_caught(pack, change):
    """The check above can fail: the same page against the node with one input changed."""
    node_id = "ComfyGAN_GenerateImage"
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    name = pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]
    text = (docs_dir(pack) / f"{node_id}.md").read_text(encoding="utf-8")
    assert page_problems(text, cls, name) == []

    spec = cls.INPUT_TYPES()
    required, optional = dict(spec["required"]), dict(spec.get("optional", {}))
    if change == "new required":
        required["seed_offset"] = ("INT", {"default": 0, "tooltip": "t"})
    elif change == "new optional":
        optional["upscale"] = ("INT", {"default": 1, "tooltip": "t"})
    elif change == "renamed":
        optional["chunk"] = optional.pop("chunk_size")
    else:
        optional["truncation_psi"] = required.pop("truncation_psi")
    changed = type("Changed", (cls,), {"INPUT_TYPES": classmethod(lambda c: {"required": required,
                                                                             "optional": optional})})
    assert page_problems(text, changed, name), f"a page that misses a {change} input passed"


def test_the_page_parser_reads_the_bullet_form():
    lines = ["Intro.", "- **image**: the input", "- **mask** (optional): which pixels", "- image: no bold"]
    assert bullets(lines) == ([("image", False), ("mask", True)], ["- image: no bold"])
    assert section("# T\n\n## Inputs\n- **a**: x\n## Outputs\n- **b**: y\n", "Inputs") == ["- **a**: x"]
    assert section("# T\n", "Inputs") is None
