"""Time and memory the converter spends refusing hostile checkpoints, each in a fresh process.

    python bench/bench_converter_bounds.py [--cases NAME,...] [--timeout 120]

Each case is a small file built here in a temporary folder: a ~1 KB NVlabs-layout pickle whose init
kwargs double at every level when walked (2^60 paths), 10,000-deep list nesting, torch archives (zip
and legacy) whose storage record claims 10^12 elements, and a few more (a dict key that takes 2^60
steps to hash, the same embedded storage bytes decoded thousands of times, a storage class called with
10^12, a reference cycle, a zero-stride tensor) plus one good tutorial DCGAN file as the control.
Each runs `python -m gan_models.convert FILE out.safetensors` (its main(), in a child that has already
imported torch and the converter) and reports the wall time of the call and the growth of the child's
peak resident memory (VmHWM) over its peak after those imports. Writes
bench/results/converter_bounds-<time>.json.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import pickle
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
ELEMENTS_CLAIMED = 10 ** 12


# ------------------------------------------------------------------------------------------------
# Hostile files. Pickles whose construction would itself hash, recurse or allocate are written as
# opcodes; the others by pickle with stand-in objects that reduce to the names upstream files use.

def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _body(obj) -> bytes:
    """obj as protocol-2 opcodes without PROTO and STOP, to splice into a hand-written stream (its
    memo indices start at 0; the splices around it use none)."""
    data = pickle.dumps(obj, protocol=2)
    assert data[:2] == b"\x80\x02" and data[-1:] == b"."
    return data[2:-1]


def _unicode(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def nvlabs_pickle_bytes(meta: dict) -> bytes:
    """{'G_ema': torch_utils.persistence._reconstruct_persistent_obj(meta)}, as NVlabs pickles a
    network, without needing their modules to exist here."""
    return (b"\x80\x02}" + _unicode("G_ema") + _global("torch_utils.persistence", "_reconstruct_persistent_obj")
            + _body(meta) + b"\x85R" + b"s.")


def shared_reference_bomb(folder: Path) -> Path:
    a: list = []
    for _ in range(60):
        a = [a, a]  # 61 lists; walked as a tree, 2^61 of them
    meta = {"type": "class", "version": 6, "module_src": "", "class_name": "training.networks.Generator",
            "state": {"_init_args": [], "_init_kwargs": {"mapping_kwargs": a}, "_parameters": {},
                      "_buffers": {}, "_modules": {}}}
    return _write(folder / "shared_bomb.pkl", nvlabs_pickle_bytes(meta))


def deep_nesting(folder: Path, depth: int = 10_000) -> Path:
    # EMPTY_LIST depth times, APPEND depth-1 times: [[[...]]]; pickle.dumps would recurse to build it
    return _write(folder / "deep.pkl", b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b".")


def hash_bomb_key(folder: Path, levels: int = 60) -> Path:
    """{t: 1} where t = (t', t'), t' = (t'', t'') ...: hashing t visits 2^levels tuples."""
    out = bytearray(b"\x80\x04}" + b")\x94" + b"0")  # {} ; () memo 0, popped
    for i in range(levels):  # memo i+1 = (memo i, memo i)
        out += b"j" + struct.pack("<I", i) + b"j" + struct.pack("<I", i) + b"\x86\x94" + b"0"
    out += b"j" + struct.pack("<I", levels) + b"K\x01s."
    return _write(folder / "hash_bomb.pkl", bytes(out))


class _StorageRef:
    """Stands for a storage in a pickle written with `_ArchivePickler`: becomes its persistent id."""

    def __init__(self, pid: tuple):
        self.pid = pid


class _Tensor:
    def __init__(self, storage: _StorageRef, size: tuple, stride: tuple):
        self.args = (storage, 0, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _ArchivePickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _StorageRef) else None


def _archive_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _ArchivePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def torch_zip(path: Path, obj, storages: dict[str, bytes]) -> Path:
    """A torch.save zip archive laid out as torch writes it (uncompressed entries)."""
    root = path.stem
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", _archive_pickle(obj))
        z.writestr(f"{root}/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"{root}/data/{key}", data)
        z.writestr(f"{root}/version", "3\n")
    return path


def legacy_archive_bytes(obj, storages: dict[str, tuple[int, bytes]]) -> bytes:
    """torch.save(_use_new_zipfile_serialization=False): magic, protocol, sys_info, the pickle, the key
    list, then per key its element count (8 bytes, little-endian) and raw bytes."""
    head = b"".join(pickle.dumps(x, protocol=2) for x in (
        LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    tail = b"".join(struct.pack("<q", count) + data for count, data in storages.values())
    return head + _archive_pickle(obj) + pickle.dumps(sorted(storages), protocol=2) + tail


def storage_claim_zip(folder: Path) -> Path:
    ref = _StorageRef(("storage", torch.FloatStorage, "0", "cpu", ELEMENTS_CLAIMED))
    return torch_zip(folder / "claims_1e12.pt", {"w": _Tensor(ref, (ELEMENTS_CLAIMED,), (1,))}, {"0": bytes(16)})


def storage_claim_legacy(folder: Path) -> Path:
    ref = _StorageRef(("storage", torch.FloatStorage, "0", "cpu", ELEMENTS_CLAIMED, None))
    data = legacy_archive_bytes({"w": _Tensor(ref, (ELEMENTS_CLAIMED,), (1,))}, {"0": (ELEMENTS_CLAIMED, bytes(16))})
    return _write(folder / "claims_1e12_legacy.pt", data)


def embedded_bytes_reused(folder: Path, copies: int = 4000, numel: int = 1 << 18) -> Path:
    """An NVlabs-style pickle whose one embedded 1 MiB storage (torch.storage._load_from_bytes(b)) is
    decoded `copies` times from the same bytes object: 4 GiB from a 1 MiB file."""
    ref = _StorageRef(("storage", torch.FloatStorage, "0", "cpu", numel, None))
    b = legacy_archive_bytes(ref, {"0": (numel, bytes(4 * numel))})
    out = bytearray(b"\x80\x04]")  # the list that collects them
    out += _global("torch.storage", "_load_from_bytes") + b"\x94" + b"0"  # memo 0
    out += b"\x8e" + struct.pack("<Q", len(b)) + b + b"\x94" + b"0"  # BINBYTES8, memo 1
    out += b"(" + b"h\x00h\x01\x85R" * copies + b"e."  # MARK, (func, (b,) REDUCE) * copies, APPENDS
    return _write(folder / "bytes_reused.pkl", bytes(out))


class _Call:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def storage_class_called(folder: Path) -> Path:
    return _write(folder / "storage_call.pkl", pickle.dumps({"w": _Call(torch.FloatStorage, ELEMENTS_CLAIMED)}, 4))


def reference_cycle(folder: Path) -> Path:
    d: dict = {}
    d["g_ema"] = d  # canonicalize would unwrap it forever
    return _write(folder / "cycle.pkl", pickle.dumps(d, protocol=4))


def zero_stride_tensor(folder: Path) -> Path:
    """A 4-byte storage standing for 10^9 elements (stride 0): any copy of it allocates 4 GB."""
    ref = _StorageRef(("storage", torch.FloatStorage, "0", "cpu", 1))
    return torch_zip(folder / "stride0.pt", {"main.0.weight": _Tensor(ref, (10 ** 9,), (0,))}, {"0": bytes(4)})


def tutorial_dcgan_net(ngf: int = 64) -> torch.nn.Module:
    """The PyTorch tutorial's DCGAN generator: 64 px from nz 100, `main.N` layers."""
    from torch import nn
    layers, ch = [], 100
    for i, out in enumerate((ngf * 8, ngf * 4, ngf * 2, ngf)):
        layers += [nn.ConvTranspose2d(ch, out, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
                   nn.BatchNorm2d(out), nn.ReLU(True)]
        ch = out
    net = nn.Module()
    net.main = nn.Sequential(*layers, nn.ConvTranspose2d(ch, 3, 4, 2, 1, bias=False), nn.Tanh())
    return net.eval()


def tutorial_dcgan(folder: Path) -> Path:
    """The control: a good file, the tutorial's generator at its published size (ngf 64)."""
    torch.save(tutorial_dcgan_net().state_dict(), folder / "netG.pth")
    return folder / "netG.pth"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# name -> (builder, the words the refusal must contain; None for a file that converts)
CASES = {
    "nvlabs-shared-reference-bomb": (shared_reference_bomb, "object bound"),
    "deep-nesting-10000": (deep_nesting, "depth bound"),
    "zip-storage-claims-1e12": (storage_claim_zip, "declares 1,000,000,000,000"),
    "legacy-storage-claims-1e12": (storage_claim_legacy, "declares 1,000,000,000,000"),
    "dict-key-hash-bomb": (hash_bomb_key, "object bound"),
    "embedded-bytes-decoded-4000x": (embedded_bytes_reused, "storage bound"),
    "storage-class-called-1e12": (storage_class_called, "refused to call"),
    "reference-cycle": (reference_cycle, "reference cycle"),
    "zero-stride-1e9-tensor": (zero_stride_tensor, "overlapping strides"),
    "control-tutorial-dcgan": (tutorial_dcgan, None),
}
MUST_SHOW = ("nvlabs-shared-reference-bomb", "deep-nesting-10000", "zip-storage-claims-1e12",
             "legacy-storage-claims-1e12")


# ------------------------------------------------------------------------------------------------
# Measuring, in a fresh child per case

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
import torch
from gan_models.convert.__main__ import main

def peak_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r

before = peak_kib()
t0 = time.perf_counter()
rc = main([sys.argv[1], sys.argv[2]])
wall = time.perf_counter() - t0
print("@@" + json.dumps({"rc": rc, "wall_s": wall, "peak_growth_mb": (peak_kib() - before) / 1024,
                          "baseline_peak_mb": before / 1024}))
"""


def run_case(name: str, folder: Path, timeout: float = 120.0) -> dict:
    """Build case `name` in folder, convert it in a fresh process; the child's numbers, its error
    line and whether the refusal names what it should."""
    build, expect = CASES[name]
    src = build(folder)
    dst = folder / f"{name}.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst), str(ROOT)], capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=folder)
    except subprocess.TimeoutExpired:
        return {"case": name, "file_bytes": src.stat().st_size, "rc": None, "timed_out": True, "ok": False}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("@@")]
    result = json.loads(lines[-1][2:]) if lines else {"rc": r.returncode, "child_failed": r.stderr[-2000:]}
    message = next((ln for ln in r.stderr.splitlines() if ln.startswith("error: ")), "")
    refused_as_expected = (result["rc"] == 2 and expect in message and "Traceback" not in r.stderr) \
        if expect is not None else (result["rc"] == 0 and dst.is_file())
    return {"case": name, "file_bytes": src.stat().st_size, **result,
            "message": message.replace(str(folder), "<tmp>")[:400], "ok": bool(refused_as_expected),
            "wrote_output": dst.is_file()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a child is killed")
    a = p.parse_args(argv)
    names = [n.strip() for n in a.cases.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        p.error(f"unknown cases {unknown}; known: {sorted(CASES)}")
    sys.path.insert(0, str(ROOT))
    from gan_models import devices

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            folder = Path(tmp) / name
            folder.mkdir()
            rows.append(run_case(name, folder, a.timeout))
            r = rows[-1]
            print(f"{name:32s} {r['file_bytes']:>9,d} B  rc={r.get('rc')!s:4s} {r.get('wall_s', float('nan')):7.3f} s  "
                  f"peak +{r.get('peak_growth_mb', float('nan')):7.1f} MB  {'ok' if r['ok'] else 'FAILED'}  "
                  f"{r.get('message', '')[:110]}", flush=True)
    record = {"bench": "converter_bounds", "when": time.strftime("%Y-%m-%d %H:%M:%S"),
              "cpu": devices.cpu_model() if hasattr(devices, "cpu_model") else platform.processor(),
              "python": platform.python_version(), "torch": torch.__version__,
              "measure": "wall time of gan_models.convert main([FILE, out.safetensors]) in a fresh process; peak "
                         "RSS growth = VmHWM after minus VmHWM after importing torch and the converter",
              "bounds": {"wall_s": 2.0, "peak_growth_mb": 200.0}, "must_show": list(MUST_SHOW), "cases": rows}
    out = ROOT / "bench" / "results" / f"converter_bounds-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
