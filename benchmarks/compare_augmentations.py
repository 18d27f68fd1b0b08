"""Which view settings of ContrastiveEmbedder group galaxies best, on three kinds of galaxy.

A setting that only helps on ``make_galaxies`` is tuned for the built-in model,
not for galaxies. So each setting is trained and scored (leave-one-out
same-class rate of 10 neighbours, ``galaxysim.metrics.same_class_rate``) on:

* ``builtin``: 2,000 ``make_galaxies`` images (five classes, 64x64);
* ``other generator``: 1,250 toy galaxies drawn by :func:`toy_galaxies` below,
  a deliberately different and simpler model (black sky, exponential disc,
  logarithmic arms whose pitch sets the class, a bar, a bulge), with two
  random seeds of the embedder;
* ``real``: trained on the 100 real Galaxy10 images of ``../shared/data``
  (skipped when absent), scored on the 50 of the five seed classes, with three
  seeds (so few images give noisy single figures).

The settings are the defaults, a random display stretch
(``GalaxyAugmentation(max_gamma=0.3)``), four views per galaxy
(``n_views=4``) and a leaner encoder (``base_channels=16``, half the
channels of every stage but the last: about half the training time). Whitened PCA of the
pixels is printed beside each as the baseline.

Usage::

    python benchmarks/compare_augmentations.py            # about 20 minutes on 2 cores
    python benchmarks/compare_augmentations.py --settings n_views=4   # some of the settings
    python benchmarks/compare_augmentations.py --collections builtin real  # some collections
    python benchmarks/compare_augmentations.py --quick    # seconds
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from galaxysim import ContrastiveEmbedder
from galaxysim.datasets import load_galaxy10_folder, make_galaxies
from galaxysim.embedders import GalaxyAugmentation
from galaxysim.metrics import same_class_rate

try:
    from _shared import print_report
except ImportError:  # imported from elsewhere (the tests load scripts by path)
    from benchmarks._shared import print_report

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COLLECTIONS = ["builtin", "other generator", "real"]
# The settings compared: (GalaxyAugmentation parameters, ContrastiveEmbedder parameters)
# changed from their defaults.
SETTINGS = {
    "defaults": ({}, {}),
    "max_gamma=0.3": ({"max_gamma": 0.3}, {}),
    "n_views=4": ({}, {"n_views": 4}),
    "base_channels=16": ({}, {"base_channels": 16}),
}


def toy_galaxies(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Five classes of toy galaxies from a model unrelated to ``make_galaxies``.

    Barred, tight and loose two-armed spirals (pitch 0.35, 0.15 and 0.5 rad),
    thin edge-on discs, and edge-on discs with a round bulge; random
    orientation, inclination, size (0.7-1.3), brightness and noise level, on a
    black sky, asinh-stretched to [0, 1].
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 5
    rng.shuffle(labels)
    axis = (np.arange(size) - size / 2 + 0.5) / (size / 2)
    xx, yy = np.meshgrid(axis, axis)
    images = np.empty((n, size, size, 3), np.float32)
    for i, label in enumerate(labels):
        angle, scale = rng.uniform(0, np.pi), rng.uniform(0.7, 1.3)
        dx, dy = xx - rng.normal(0, 0.03), yy - rng.normal(0, 0.03)
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / scale
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / scale
        if label < 3:
            v_face = v / rng.uniform(0.5, 1.0)
            radius, theta = np.hypot(u, v_face) + 1e-6, np.arctan2(v_face, u)
            pitch = (0.35, 0.15, 0.5)[label] * rng.uniform(0.8, 1.2)
            arms = np.cos(2 * (theta - np.log(radius) / np.tan(pitch)) + rng.uniform(0, 2 * np.pi))
            light = np.exp(-radius / 0.35) * (0.5 + 0.5 * np.clip(arms, 0, None) ** 2)
            light = light + 0.8 * np.exp(-((radius / 0.07) ** 2))
            if label == 0:
                light = light + 0.7 * np.exp(-((u / 0.3) ** 4) - (v / 0.05) ** 2)
            rgb = light[..., None] * np.array([0.8, 0.85, 1.0]) * rng.uniform(0.9, 1.1, 3)
        else:
            thickness = rng.uniform(0.03, 0.06)
            disc = np.exp(-np.abs(u) / 0.25 - (v / thickness) ** 2)
            rgb = disc[..., None] * np.array([1.0, 0.9, 0.75])
            if label == 4:
                width = rng.uniform(0.08, 0.12)
                bulge = 1.2 * np.exp(-(u**2 + v**2) / (2 * width**2))
                rgb = rgb + bulge[..., None] * np.array([1.0, 0.85, 0.6])
        rgb = rgb * rng.uniform(0.6, 1.2) + rng.normal(0, rng.uniform(0.02, 0.05), rgb.shape)
        images[i] = np.clip(np.arcsinh(3 * rgb) / np.arcsinh(3), 0, 1)
    return images, labels.astype(np.int64)


def _collections(quick: bool, shared: Path) -> dict:
    """name -> (training images, scored images, their labels, embedder seeds)."""
    size, n_builtin, n_toy = (16, 80, 60) if quick else (64, 2000, 1250)
    X, y = make_galaxies(n_builtin, image_size=size, random_state=0)
    toy, toy_labels = toy_galaxies(n_toy, size=size, seed=1)
    collections = {"builtin": (X, X, y, (0,)), "other generator": (toy, toy, toy_labels, (0, 1))}
    folder = shared / "galaxy10_decals_samples"
    if folder.is_dir() and not quick:
        everything = load_galaxy10_folder(folder, crop=64, classes=range(10))
        seed_classes = load_galaxy10_folder(folder, crop=64)
        collections["real"] = (
            everything.images,
            seed_classes.images,
            seed_classes.target,
            (0, 1, 2),
        )
    return collections


def _whitened_pca(train: np.ndarray, scored: np.ndarray, labels: np.ndarray) -> float:
    pca = PCA(min(32, len(train) - 1), whiten=True, random_state=0).fit(
        train.reshape(len(train), -1)
    )
    return same_class_rate(pca.transform(scored.reshape(len(scored), -1)), labels)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and network")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        default=list(SETTINGS),
        help="the settings to compare (default: all)",
    )
    parser.add_argument(
        "--collections",
        nargs="+",
        choices=COLLECTIONS,
        default=COLLECTIONS,
        help="the collections to train on (default: all)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = (
        {"n_components": 8, "n_stages": 2, "base_channels": 4, "max_epochs": 2, "batch_size": 32}
        if args.quick
        else {"max_epochs": args.epochs}
    )
    collections = {
        name: value
        for name, value in _collections(args.quick, args.shared).items()
        if name in args.collections
    }
    results: dict = {}
    lines = [
        "| collection | whitened PCA | " + " | ".join(args.settings) + " |",
        "|---|---:|" + "---:|" * len(args.settings),
    ]
    for name, (train, scored, labels, seeds) in collections.items():
        results[name] = {"pca-whitened": _whitened_pca(train, scored, labels)}
        cells = [f"{results[name]['pca-whitened']:.3f}"]
        for setting in args.settings:
            views, embedder = SETTINGS[setting]
            rates = [
                same_class_rate(
                    ContrastiveEmbedder(
                        augmentation=GalaxyAugmentation(**views),
                        random_state=seed,
                        **{**model, **embedder},
                    )
                    .fit(train)
                    .transform(scored),
                    labels,
                )
                for seed in seeds
            ]
            results[name][setting] = rates
            cells.append(" / ".join(f"{rate:.3f}" for rate in rates))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    report = (
        f"Same-class rate of 10 neighbours, leave-one-out (one figure per embedder seed); "
        f"ContrastiveEmbedder({model}) with its or GalaxyAugmentation's defaults changed "
        f"as the column says; {torch.get_num_threads()} torch threads.\n\n" + "\n".join(lines)
    )
    print_report(
        "View settings on three kinds of galaxy", report, "compare_augmentations.py", args.quick
    )
    return results


if __name__ == "__main__":
    main()
