"""Load time to a generator ready to run: this project's .safetensors against NVlabs' own way of
loading their .pkl (legacy.load_network_pkl, which unpickles and runs the module source stored in
the file), for a 1024 px config-f StyleGAN2 (stylegan2-ada-pytorch's `paper1024`: channel_base 32768,
channel_max 512, 8 mapping layers, fp16 in the last 4 resolutions, conv_clamp 256), random weights.

    python bench/bench_load.py --upstream /path/to/stylegan2-ada-pytorch [--repeats 5]

The upstream code builds the pickle here (as its training loop saves G_ema); the converter turns it
into .safetensors (timed once, as a first-use cost). Each load then runs in a fresh process, after
that process has imported torch and the loader, and the two are interleaved so that both see the
same page cache and machine load. Both results are checked to draw the same image for one z (upstream in fp32: its fp16 layers
are a different computation).
Writes bench/results/load-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

G_KWARGS = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                mapping_kwargs=dict(num_layers=8),
                synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))

# each child prints @@{"s": seconds} for the load alone; imports are done before the clock starts
CHILD_UPSTREAM = r"""
import json, sys, time, types
sys.path.insert(0, sys.argv[2])
sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib imports it for downloads only
import torch, legacy, dnnlib
torch.set_num_threads(int(sys.argv[3]))
import pickle
t0 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    # a released file through NVlabs' loader; a G_ema-only file through pickle (legacy.py wants G and D)
    data = legacy.load_network_pkl(f) if sys.argv[4] == "legacy" else pickle.load(f)
G = data["G_ema"].eval().requires_grad_(False)
print("@@" + json.dumps({"s": time.perf_counter() - t0}))
"""
CHILD_OURS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
import torch, gan_models
torch.set_num_threads(int(sys.argv[3]))
t0 = time.perf_counter()
G = gan_models.load_generator(sys.argv[1])
print("@@" + json.dumps({"s": time.perf_counter() - t0}))
"""


def _child(code: str, path: Path, where: str, threads: int, mode: str = "") -> float:
    r = subprocess.run([sys.executable, "-c", code, str(path), where, str(threads), mode], capture_output=True,
                       text=True, timeout=600)
    line = next((l for l in r.stdout.splitlines() if l.startswith("@@")), None)
    if r.returncode or line is None:
        raise SystemExit(f"load failed (rc {r.returncode}):\n{r.stderr[-2000:]}")
    return json.loads(line[2:])["s"]


def make_files(upstream: str, work: Path):
    """The upstream pickle as their training loop writes it (G, D, G_ema, ...), one with G_ema alone,
    and the conversion."""
    import pickle

    import torch
    sys.path.insert(0, str(Path(upstream).resolve()))
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    from training.networks import Discriminator as UpstreamDiscriminator
    from training.networks import Generator as UpstreamGenerator

    torch.manual_seed(0)
    G = UpstreamGenerator(**G_KWARGS).eval().requires_grad_(False)
    with torch.no_grad():  # non-zero noise strengths and biases, as a trained file has them
        for name, t in G.named_parameters():
            if name.endswith("noise_strength") or name.endswith("bias"):
                t.add_(torch.randn_like(t) * 0.05)
    G_train = UpstreamGenerator(**G_KWARGS).eval().requires_grad_(False)
    D = UpstreamDiscriminator(c_dim=0, img_resolution=1024, img_channels=3, channel_base=32768, channel_max=512,
                              num_fp16_res=4, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=4))
    pkl = work / "network-snapshot-paper1024.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"G": G_train, "D": D, "G_ema": G, "augment_pipe": None,
                     "training_set_kwargs": {"resolution": 1024}}, f)
    only = work / "g_ema-paper1024.pkl"
    with open(only, "wb") as f:
        pickle.dump({"G_ema": G}, f)
    sys.path.insert(0, str(ROOT))
    from gan_models.convert import convert_file
    st = work / "paper1024.safetensors"
    t0 = time.perf_counter()
    convert_file(pkl, st)
    return G, pkl, only, st, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="an NVlabs stylegan2-ada-pytorch checkout")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        G_up, pkl, only, st, convert_s = make_files(a.upstream, work)
        import gan_models
        G = gan_models.load_generator(st)
        z = torch.randn(1, 512, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            err = (G(z, None, noise_mode="const") - G_up(z, None, noise_mode="const", force_fp32=True)).abs().max().item()
        del G, G_up
        up, up_only, ours = [], [], []
        upstream = str(Path(a.upstream).resolve())
        for _ in range(a.repeats):  # interleaved: all see the same cache and the same machine load
            up.append(_child(CHILD_UPSTREAM, pkl, upstream, a.threads, "legacy"))
            up_only.append(_child(CHILD_UPSTREAM, only, upstream, a.threads, "pickle"))
            ours.append(_child(CHILD_OURS, st, str(ROOT), a.threads))
        sizes = {"pkl_mb": pkl.stat().st_size / 2**20, "g_ema_pkl_mb": only.stat().st_size / 2**20,
                 "safetensors_mb": st.stat().st_size / 2**20}

    up_s, only_s, ours_s = statistics.median(up), statistics.median(up_only), statistics.median(ours)
    res = {"bench": "load", "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.processor() or
           platform.machine(), "cpu": _cpu_name(), "threads": a.threads, "torch": torch.__version__,
           "model": "StyleGAN2 config-f 1024 px (stylegan2-ada-pytorch paper1024), random weights",
           "upstream": "legacy.load_network_pkl(f)['G_ema'] on the pickle as NVlabs writes it (G, D, G_ema)",
           "upstream_g_ema_only": "pickle.load(f)['G_ema'] with the upstream code importable, on a G_ema-only pickle",
           "ours": "gan_models.load_generator(.safetensors)", "repeats": a.repeats,
           "upstream_s": up, "ours_s": ours, "upstream_g_ema_only_s": up_only,
           "upstream_median_s": up_s, "upstream_g_ema_only_median_s": only_s, "ours_median_s": ours_s,
           "ratio": up_s / ours_s, "ratio_g_ema_only": only_s / ours_s, "goal_ratio": 10.0, "convert_once_s": convert_s,
           "max_abs_diff_one_image": err, **sizes}
    print(f"upstream: released file {up_s:.3f} s, G_ema alone {only_s:.3f} s   ours {ours_s:.3f} s   "
          f"ratio {up_s / ours_s:.1f}x ({only_s / ours_s:.1f}x against G_ema alone; goal 10x)   "
          f"one-time conversion {convert_s:.2f} s   same image to {err:.1e}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
