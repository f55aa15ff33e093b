"""Rebuild the training golden data: python tests/data/train_golden/make_golden.py

For each family a short deterministic run (tests/test_train_golden.py's FAMILIES) is trained from
scratch; its final state, its exports, its log and its last sample grid are written here as
<family>.safetensors + <family>.json, and its mid-run snapshot is kept as <family>-snapshot.pt. They
were made before the training code became one loop (issue: one training loop), so the test proves
that the redesign trains exactly what the old code trained, and that the old code's snapshots resume.
Rebuild them only for a change that is meant to change what is trained, and say so in the commit.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
sys.path.insert(0, str(HERE.parents[1]))

from test_train_golden import FAMILIES, make_data, record, run_family  # noqa: E402


def main() -> None:
    from safetensors.torch import save_file
    import json
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_data(tmp / "data")
        for name in FAMILIES:
            out = tmp / name
            run_family(name, data, out)
            tensors, facts = record(name, out, data)
            save_file(tensors, str(HERE / f"{name}.safetensors"))
            (HERE / f"{name}.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
            mid = FAMILIES[name]["resume_from"]
            shutil.copy(out / "snapshots" / f"snapshot-{mid:08d}.pt", HERE / f"{name}-snapshot.pt")
            print(name, len(tensors), "tensors")


if __name__ == "__main__":
    main()
