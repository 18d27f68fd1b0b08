"""Which contrastive embedder works on real telescope images: encoders, training data, distance.

Each setting is a ``+``-separated list of options, trained with
``random_state`` = each of ``--seeds`` and scored on the 50 real Galaxy10
DECaLS images of the five seed classes (``../shared/data``, centre crop 64):
the leave-one-out same-class rate among their 10 nearest neighbours, with
Euclidean distance on the whitened embedding (``euc``) and on the whitened
embedding scaled to unit length (``cos``, what ``normalize=True`` does), and
the share of Barred Spirals among the 10 nearest to the Milky Way
illustration. The whitening is always fitted on the 100 real images.

Options:

- ``dihedral`` / ``conv``: the encoder (default ``dihedral``);
- ``ep=N``: epochs (default 30), ``temp=T``, ``views=V``, ``bc=C`` (base
  channels), ``scale=S`` (zoom between 1/S and S in the augmentation);
- ``train=builtin``: train on 2,000 built-in galaxies, score them (same-class
  rate on themselves, ``builtin_``) and the transfer to the real images
  (``transfer_``); default: train on the 100 real images (``real_``);
- ``pre=sdss``: pretrain on the 3,332 unlabelled SDSS galaxies (crop 96 of
  423, resized to 64) for ``epre=N`` epochs (default 30), score that
  (``pre_``), then adapt on the 100 real images for ``adapt=N`` epochs
  (default 30) with ``init=`` (``real_``).

Usage::

    python benchmarks/compare_encoders.py conv dihedral --seeds 0 1 2 --device cuda
    python benchmarks/compare_encoders.py "train=builtin+dihedral" "pre=sdss+dihedral"
    python benchmarks/compare_encoders.py --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from galaxysim import ContrastiveEmbedder, GalaxyAugmentation
from galaxysim.datasets import load_galaxy10_folder, load_milky_way, make_galaxies
from galaxysim.embedders.whitening import shrunk_whitening
from galaxysim.images import load_images
from galaxysim.metrics import same_class_rate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@cache
def data(name: str, shared: Path, quick: bool) -> tuple[np.ndarray, ...]:
    """The image sets, loaded once: "real", "sdss" or "builtin"."""
    if name == "real":
        folder = shared / "galaxy10_decals_samples"
        seed_classes = load_galaxy10_folder(folder, crop=64)
        everything = load_galaxy10_folder(folder, crop=64, classes=range(10))
        query = load_milky_way(
            64, path=shared / "milky_way" / "milky_way_artist_impression_256.png"
        )
        return everything.images, seed_classes.images, seed_classes.target, query
    if name == "sdss":
        paths = sorted((shared / "sdss_gz1_unlabeled").glob("*.jpeg"))[: 64 if quick else None]
        return (load_images(paths, 64, crop=96)[0],)
    return make_galaxies(100 if quick else 2000, image_size=64, random_state=0)


def _whitened(embedder: ContrastiveEmbedder, fit_on: np.ndarray, *others: np.ndarray) -> list:
    """``others`` embedded and whitened as ``fit`` on ``fit_on`` would (the raw embedding:
    the embedders here are fitted with ``n_components=None, normalize=False``)."""
    mean, components = shrunk_whitening(embedder.transform(fit_on), embedder.representation_dim, 64)
    return [(embedder.transform(X) - mean) @ components.T for X in others]


def _scores(Z: np.ndarray, y: np.ndarray, query: np.ndarray | None, prefix: str) -> dict:
    out = {}
    for kind, scale in (("euc", lambda a: a), ("cos", normalize)):
        out[prefix + kind] = round(same_class_rate(scale(Z), y, 10), 3)
        if query is not None:
            nearest = (
                NearestNeighbors(n_neighbors=10)
                .fit(scale(Z))
                .kneighbors(scale(query), return_distance=False)[0]
            )
            out[prefix + kind + "_barred"] = float(np.mean(y[nearest] == 0))
    return out


def parse(setting: str) -> tuple[dict, dict]:
    """Estimator parameters and the training plan of one setting."""
    params: dict = {"encoder": "dihedral", "max_epochs": 30}
    plan = {"train": "real", "pre": None, "epre": 30, "adapt": 30}
    for part in filter(None, setting.split("+")):
        key, _, value = part.partition("=")
        if key in ("dihedral", "conv"):
            params["encoder"] = key
        elif key in ("train", "pre"):
            plan[key] = value
        elif key in ("epre", "adapt"):
            plan[key] = int(value)
        elif key in ("ep", "views", "bc"):
            params[{"ep": "max_epochs", "views": "n_views", "bc": "base_channels"}[key]] = int(
                value
            )
        elif key == "temp":
            params["temperature"] = float(value)
        elif key == "scale":
            params["augmentation"] = GalaxyAugmentation(scale=(1 / float(value), float(value)))
        else:
            raise ValueError(f"unknown option {part!r} in setting {setting!r}")
    return params, plan


def run(setting: str, seed: int, args: argparse.Namespace) -> dict:
    params, plan = parse(setting)
    params.update(
        device=args.device,
        random_state=seed,
        early_stopping=False,
        validation_fraction=0.0,
        n_components=None,
        normalize=False,
    )
    if args.quick:
        params.update(representation_dim=8, n_stages=2, base_channels=8, max_epochs=1)
        plan.update(epre=1, adapt=1)
    X100, X50, y50, query = data("real", args.shared, args.quick)
    result = {"setting": setting, "seed": seed}
    start = time.perf_counter()
    if plan["train"] == "builtin":
        images, labels = data("builtin", args.shared, args.quick)
        embedder = ContrastiveEmbedder(**params).fit(images)
        (Z,) = _whitened(embedder, images, images)
        result.update(_scores(Z, labels, None, "builtin_"))
        Z50, zq = _whitened(embedder, X100, X50, query[None])
        result.update(_scores(Z50, y50, zq, "transfer_"))
    else:
        init = None
        if plan["pre"]:
            pretrained = ContrastiveEmbedder(**{**params, "max_epochs": plan["epre"]})
            pretrained.fit(data(plan["pre"], args.shared, args.quick)[0])
            Z50, zq = _whitened(pretrained, X100, X50, query[None])
            result.update(_scores(Z50, y50, zq, "pre_"))
            init = FrozenEstimator(pretrained)
            params["max_epochs"] = plan["adapt"]
        embedder = ContrastiveEmbedder(**params, init=init).fit(X100)
        Z50, zq = _whitened(embedder, X100, X50, query[None])
        result.update(_scores(Z50, y50, zq, "real_"))
    result["seconds"] = round(time.perf_counter() - start)
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", default=["conv", "dihedral"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--quick", action="store_true", help="tiny networks, 1 epoch")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.shared / "galaxy10_decals_samples").is_dir():
        print(f"{args.shared} holds no real images; nothing to compare.", file=sys.stderr)
        return []
    results = []
    for setting in args.settings:
        for seed in args.seeds:
            results.append(run(setting, seed, args))
            print(json.dumps(results[-1]), flush=True)
    return results


if __name__ == "__main__":
    main()
