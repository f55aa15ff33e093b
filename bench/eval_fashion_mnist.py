"""Evaluate a class-conditional Fashion-MNIST generator with a classifier trained on the real data.

    python bench/eval_fashion_mnist.py [CHECKPOINT] [--data /usr/share/datasets/fashion-mnist]

1. Trains a small CNN on the real Fashion-MNIST training set (cached after the first run) and states
   its accuracy on the real test set.
2. Generates --per-class samples (default 1000) for every class and reports
   (a) label fidelity: the fraction the classifier labels with the class that was asked for (bar: >= 0.85);
   (b) diversity: per class, the mean pairwise distance of generated samples in the classifier's
       penultimate feature space, divided by the same measure on the real test images of that class
       (bar: every class >= 0.80). A generator that collapses to one prototype per class scores near 0.
3. Seeds -> images: z for seed s is torch.Generator().manual_seed(s) -> randn(1, z_dim); the same seeds
   must give the same images again, alone or in a batch, and different seeds different images.

Writes bench/results/eval_<checkpoint stem>.json and exits 1 when a bar is missed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gan_models  # noqa: E402
from gan_models.checkpoint import atomic_write_bytes  # noqa: E402
from gan_models.cli import public_path  # noqa: E402
from gan_models.data import FASHION_MNIST_CLASSES, load_idx  # noqa: E402

FIDELITY_BAR = 0.85
DIVERSITY_BAR = 0.80
CLASSIFIER_ARCH = "conv16-conv32 (3x3, BN, ReLU, maxpool) + FC128"


class Classifier(nn.Module):
    """Two small conv blocks and a 128-d penultimate layer: cheap enough to train on a busy CPU in
    minutes, about 90% accurate on the real test set (the number is measured and reported)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 7 * 7, 128), nn.ReLU())
        self.fc = nn.Linear(128, 10)

    def embed(self, x):
        return self.features(x)

    def forward(self, x):
        return self.fc(self.features(x))


def to_input(u8: torch.Tensor) -> torch.Tensor:
    return u8.float().div(127.5).sub(1)  # the generator's [-1, 1] range: both sides get one transform


@torch.no_grad()
def batched(fn, x: torch.Tensor, bs: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i:i + bs]) for i in range(0, len(x), bs)])


def train_classifier(train, test, epochs: int, seed: int) -> tuple[Classifier, float]:
    torch.manual_seed(seed)
    net = Classifier()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = to_input(train.images), train.labels
    gen = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"classifier epoch {ep + 1}/{epochs}: last batch loss {loss.item():.3f}", file=sys.stderr)
    net.eval()
    acc = (batched(net, to_input(test.images)).argmax(1) == test.labels).float().mean().item()
    return net, acc


def load_or_train_classifier(data: Path, cache: Path, epochs: int, seed: int):
    train = load_idx(data, 28, 1, "train", FASHION_MNIST_CLASSES)
    test = load_idx(data, 28, 1, "test", FASHION_MNIST_CLASSES)
    net = Classifier()
    if cache.is_file():
        blob = torch.load(cache, map_location="cpu", weights_only=True)
        if blob.get("epochs") == epochs and blob.get("seed") == seed and blob.get("arch") == CLASSIFIER_ARCH:
            net.load_state_dict(blob["state"])
            net.eval()
            acc = (batched(net, to_input(test.images)).argmax(1) == test.labels).float().mean().item()
            return net, acc, test, True
    net, acc = train_classifier(train, test, epochs, seed)
    atomic_write_bytes(cache, lambda tmp: torch.save({"state": net.state_dict(), "epochs": epochs, "seed": seed,
                                                          "arch": CLASSIFIER_ARCH}, tmp))
    return net, acc, test, False


def mean_pairwise_distance(f: torch.Tensor) -> float:
    n = len(f)
    d = torch.cdist(f.double(), f.double())
    return (d.sum() / (n * (n - 1))).item()


def z_for_seeds(seeds, z_dim: int) -> torch.Tensor:
    return torch.cat([torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def seeds_check(G, n: int = 8) -> dict:
    seeds = list(range(n))
    c = F.one_hot(torch.arange(n) % G.c_dim, G.c_dim).float() if G.c_dim else None
    a = G(z_for_seeds(seeds, G.z_dim), c)
    b = G(z_for_seeds(seeds, G.z_dim), c)
    alone = torch.cat([G(z_for_seeds([s], G.z_dim), None if c is None else c[i:i + 1]) for i, s in enumerate(seeds)])
    flat = a.flatten(1)
    dist = torch.cdist(flat, flat) + torch.eye(n) * 1e9
    return {"seeds": seeds, "repeat_identical": bool(torch.equal(a, b)),
            "batch_vs_single_max_abs_diff": (a - alone).abs().max().item(),
            "min_distance_between_seeds": dist.min().item(),
            "pass": bool(torch.equal(a, b) and (a - alone).abs().max().item() < 1e-4 and dist.min().item() > 1e-3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?", default=str(gan_models.DEFAULT_CHECKPOINT))
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="folder with the Fashion-MNIST IDX files (train-* and t10k-*)")
    p.add_argument("--per-class", type=int, default=1000)
    p.add_argument("--psi", type=float, default=1.0, help="truncation psi (default 1: no truncation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2, help="classifier training epochs")
    p.add_argument("--classifier-cache", default=str(Path.home() / ".cache" / "comfyui-gan" / "fmnist_classifier.pt"))
    p.add_argument("--out", help="JSON path (default bench/results/eval_<checkpoint stem>.json)")
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.time()

    ckpt = Path(a.checkpoint)
    G = gan_models.load_generator(ckpt)
    # a model trained on the 28 px images padded to 32 (train.py --fit pad) is judged on its middle 28 px
    padded = G.img_resolution == 32 and (G.meta.get("source") or {}).get("fit") == "pad"
    if G.c_dim != 10 or G.img_channels != 1 or not (G.img_resolution == 28 or padded):
        print(f"error: {ckpt.name} is not a 10-class 28x28 grayscale generator, nor one trained on them padded to "
              f"32 px (c_dim={G.c_dim}, {G.img_resolution}px, {G.img_channels} channel(s))", file=sys.stderr)
        return 2
    crop = (G.img_resolution - 28) // 2
    net, test_acc, test, cached = load_or_train_classifier(Path(a.data), Path(a.classifier_cache), a.epochs, 0)
    print(f"classifier test accuracy {test_acc:.4f}{' (cached)' if cached else ''}", file=sys.stderr)

    names = G.meta.get("class_names") or FASHION_MNIST_CLASSES
    real_feat = batched(net.embed, to_input(test.images))
    per_class, hits = [], 0
    for k in range(10):
        z = torch.randn(a.per_class, G.z_dim, generator=torch.Generator().manual_seed(a.seed * 1000 + k))
        c = F.one_hot(torch.full((a.per_class,), k), 10).float()
        with torch.no_grad():
            img = batched(lambda i: G(z[i], c[i], truncation_psi=a.psi), torch.arange(a.per_class), 500)
        img = img[..., crop:crop + 28, crop:crop + 28]
        # quantise as a saved PNG would be, so the numbers describe the pictures users get
        img = to_input(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
        feat = batched(net.embed, img)
        pred = net.fc(feat).argmax(1)
        fid = (pred == k).float().mean().item()
        hits += int((pred == k).sum())
        ratio = mean_pairwise_distance(feat) / mean_pairwise_distance(real_feat[test.labels == k])
        per_class.append({"class": k, "name": names[k], "fidelity": round(fid, 4), "diversity_ratio": round(ratio, 4),
                          "predicted_histogram": torch.bincount(pred, minlength=10).tolist()})
        print(f"{k} {names[k]:<12} fidelity {fid:.3f}  diversity ratio {ratio:.3f}", file=sys.stderr)
    fidelity = hits / (10 * a.per_class)
    seeds = seeds_check(G)
    ok = fidelity >= FIDELITY_BAR and all(r["diversity_ratio"] >= DIVERSITY_BAR for r in per_class) and seeds["pass"]
    result = {
        "checkpoint": public_path(str(ckpt)), "checkpoint_source": G.meta.get("source", {}),
        "classifier": {"arch": CLASSIFIER_ARCH, "epochs": a.epochs,
                       "test_accuracy": round(test_acc, 4), "data": public_path(str(a.data))},
        "samples_per_class": a.per_class, "truncation_psi": a.psi, "seed": a.seed,
        "fidelity": round(fidelity, 4), "fidelity_bar": FIDELITY_BAR,
        "min_diversity_ratio": min(r["diversity_ratio"] for r in per_class), "diversity_bar": DIVERSITY_BAR,
        "per_class": per_class, "seeds_to_images": seeds, "pass": bool(ok),
        "eval_time_s": round(time.time() - t0, 1),
    }
    out = Path(a.out) if a.out else ROOT / "bench" / "results" / f"eval_{ckpt.stem}.json"
    text = json.dumps(result, indent=2)
    atomic_write_bytes(out, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(f"fidelity {fidelity:.4f} (bar {FIDELITY_BAR}), min diversity ratio {result['min_diversity_ratio']:.3f} "
          f"(bar {DIVERSITY_BAR}), seeds check {'ok' if seeds['pass'] else 'FAILED'} -> {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
