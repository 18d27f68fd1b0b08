"""Pretrain elsewhere, adapt to the real images: does it beat training on the real images alone?

The collection is the 100 real Galaxy10 DECaLS images of
``../shared/data/galaxy10_decals_samples`` (centre crop 64); the score is
the leave-one-out same-class rate among the 50 of the five seed classes
(with its 95 % bootstrap interval over galaxies) and the share of Barred
Spirals among the 10 galaxies nearest to the Milky Way illustration. Every
embedder ends with a fit on the 100 images (no labels), so its whitening is
theirs; what differs is where its weights start:

- ``real``: random weights, the estimator's defaults (``max_epochs`` on
  the 100 images);
- ``sdss``: pretrained on the 3,332 unlabelled SDSS galaxies of
  ``../shared/data/sdss_gz1_unlabeled`` (centre crop ``--sdss-crop`` of the
  423-pixel cutouts, resized to 64: they fill less of the frame than
  Galaxy10's), then adapted with ``init=``;
- ``builtin``: pretrained on 2,000 built-in galaxies (``make_galaxies``),
  then adapted.

Each for ``--encoders`` (``dihedral``, the default, and ``conv``) and
``--seeds``. On two CPU cores the SDSS pretraining of the dihedral encoder
takes about 15 minutes per seed and epoch count of 10 (``--pretrain-epochs``);
on a GPU (``--device cuda``) seconds.

Usage::

    python benchmarks/bench_pretrain.py                            # CPU, ~1 hour
    python benchmarks/bench_pretrain.py --device cuda --seeds 0 1 2
    python benchmarks/bench_pretrain.py --quick                    # seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import NearestNeighbors

from galaxysim import ContrastiveEmbedder
from galaxysim.datasets import load_galaxy10_folder, load_milky_way, make_galaxies
from galaxysim.images import load_images, resize
from galaxysim.metrics import bootstrap_interval, same_class_shares

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_report

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QUICK = {"representation_dim": 8, "n_stages": 2, "base_channels": 8, "projection_dim": 8}


def load_real(shared: Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 100 real images, the 50 seed-class ones with labels, and the illustration."""
    folder = shared / "galaxy10_decals_samples"
    seed_classes = load_galaxy10_folder(folder, crop=64)
    everything = load_galaxy10_folder(folder, crop=64, classes=range(10))
    query = load_milky_way(size, path=shared / "milky_way" / "milky_way_artist_impression_256.png")
    if size != 64:
        return (
            resize(everything.images, size),
            resize(seed_classes.images, size),
            seed_classes.target,
            query,
        )
    return everything.images, seed_classes.images, seed_classes.target, query


def pretraining_images(source: str, args: argparse.Namespace) -> np.ndarray:
    """The images a model is pretrained on: the SDSS folder or built-in galaxies."""
    if source == "sdss":
        paths = sorted((args.shared / "sdss_gz1_unlabeled").glob("*.jpeg"))
        if args.quick:
            paths = paths[:64]
        return load_images(paths, args.image_size, crop=args.sdss_crop)[0]
    n = 64 if args.quick else 2000
    return make_galaxies(n, image_size=args.image_size, random_state=0)[0]


def score(
    embedder: ContrastiveEmbedder, X50: np.ndarray, y50: np.ndarray, query: np.ndarray, seed: int
) -> dict[str, float]:
    """Same-class@10 of the 50 (with its interval) and the Barred Spiral share of the top 10."""
    Z = embedder.transform(X50)
    shares = same_class_shares(Z, y50, n_neighbors=10)
    low, high = bootstrap_interval(shares, random_state=seed)
    nearest = (
        NearestNeighbors(n_neighbors=10)
        .fit(Z)
        .kneighbors(embedder.transform(query[None]), return_distance=False)[0]
    )
    return {
        "same_class": float(shares.mean()),
        "low": low,
        "high": high,
        "barred_top10": float(np.mean(y50[nearest] == 0)),
    }


def run(args: argparse.Namespace) -> list[dict]:
    X100, X50, y50, query = load_real(args.shared, args.image_size)
    common = {
        "device": args.device,
        "early_stopping": False,
        "validation_fraction": 0.0,
        **(QUICK if args.quick else {}),
    }
    pretrain_sets = {source: pretraining_images(source, args) for source in args.pretrain}
    rows = []
    for encoder in args.encoders:
        for seed in args.seeds:
            params = {**common, "encoder": encoder, "random_state": seed}
            for start in ("real", *args.pretrain):
                began = time.perf_counter()
                init = None
                if start != "real":
                    pretrained = ContrastiveEmbedder(**params, max_epochs=args.pretrain_epochs).fit(
                        pretrain_sets[start]
                    )
                    init = FrozenEstimator(pretrained)
                epochs = args.real_epochs if init is None else args.adapt_epochs
                embedder = ContrastiveEmbedder(**params, max_epochs=epochs, init=init).fit(X100)
                row = {
                    "encoder": encoder,
                    "start": start,
                    "seed": seed,
                    **score(embedder, X50, y50, query, seed),
                    "seconds": time.perf_counter() - began,
                }
                rows.append(row)
                print(
                    f"[pretrain] {encoder} {start} seed {seed}: same-class "
                    f"{row['same_class']:.3f} [{row['low']:.2f}, {row['high']:.2f}], barred "
                    f"{row['barred_top10']:.1f}, {row['seconds']:.0f} s",
                    file=sys.stderr,
                )
    return rows


def report(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"Pretraining: {args.pretrain_epochs} epochs; adapting: {args.adapt_epochs} epochs; "
        f"trained on the 100 alone: {args.real_epochs} epochs. Device {args.device}, "
        f"torch {torch.__version__}. SDSS crop {args.sdss_crop} -> {args.image_size}.",
        "",
        "| encoder | start | seed | same-class@10 (50 real) | 95 % interval "
        "| Barred Spiral in top 10 | s |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['encoder']} | {row['start']} | {row['seed']} | "
            f"{row['same_class']:.3f} | [{row['low']:.2f}, {row['high']:.2f}] | "
            f"{row['barred_top10']:.1f} | {row['seconds']:.0f} |"
        )
    lines += [
        "",
        "| encoder | start | mean same-class@10 | mean Barred Spiral share |",
        "|---|---|---:|---:|",
    ]
    for encoder in args.encoders:
        for start in ("real", *args.pretrain):
            chosen = [r for r in rows if r["encoder"] == encoder and r["start"] == start]
            lines.append(
                f"| {encoder} | {start} | "
                f"{np.mean([r['same_class'] for r in chosen]):.3f} | "
                f"{np.mean([r['barred_top10'] for r in chosen]):.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--encoders", nargs="+", default=["dihedral"], choices=["dihedral", "conv"])
    parser.add_argument("--pretrain", nargs="*", default=["sdss"], choices=["sdss", "builtin"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--adapt-epochs", type=int, default=30)
    parser.add_argument(
        "--real-epochs", type=int, default=ContrastiveEmbedder().get_params()["max_epochs"]
    )
    parser.add_argument("--sdss-crop", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny networks, 64 pretraining images, 1 epoch each, 32-pixel images",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.pretrain_epochs = args.adapt_epochs = args.real_epochs = 1
        args.image_size = 32
    if not (args.shared / "galaxy10_decals_samples").is_dir():
        print(
            f"{args.shared / 'galaxy10_decals_samples'} is absent; nothing to measure.",
            file=sys.stderr,
        )
        return 0
    rows = run(args)
    print_report(
        "Pretraining and adapting the contrastive embedder",
        report(rows, args),
        "bench_pretrain.py",
        args.quick,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
