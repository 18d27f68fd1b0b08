"""Tune a SimilarityRanker with GridSearchCV when labels exist.
============================================================

SimilarityRanker.score(X, y) is the mean share of each image's nearest
galaxies that share its class, so GridSearchCV can choose the embedding size
(or any nested parameter) of the whole ranker by cross-validation.

Run::

    python examples/gridsearch_ranker.py           # built-in galaxies
    python examples/gridsearch_ranker.py --quick   # a tiny run (seconds)
"""

from __future__ import annotations

import argparse

from sklearn.model_selection import GridSearchCV

from galaxysim import AutoencoderEmbedder, SimilarityRanker
from galaxysim.datasets import make_galaxies


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny data and model, for a smoke test"
    )
    args = parser.parse_args(argv)

    if args.quick:
        X, y = make_galaxies(60, image_size=16, random_state=0)
        embedder = AutoencoderEmbedder(
            n_stages=1, n_blocks=1, base_channels=4, max_epochs=1, random_state=0
        )
        grid = {"embedder__n_components": [2, 4]}
    else:
        X, y = make_galaxies(1500, image_size=32, random_state=0)
        embedder = AutoencoderEmbedder(n_stages=3, n_blocks=2, max_epochs=15, random_state=0)
        grid = {"embedder__n_components": [8, 16, 32]}
    # The density plays no part in the score, so it is turned off to save time.
    ranker = SimilarityRanker(embedder=embedder, density="drop", n_neighbors=10, invariance=None)
    search = GridSearchCV(ranker, grid, cv=3, n_jobs=1).fit(X, y)
    for params, mean, std in zip(
        search.cv_results_["params"],
        search.cv_results_["mean_test_score"],
        search.cv_results_["std_test_score"],
    ):
        print(f"{params}: same-class share of the 10 nearest = {mean:.3f} +/- {std:.3f}")
    print(f"best: {search.best_params_} ({search.best_score_:.3f})")
    return {"best_params": search.best_params_, "best_score": float(search.best_score_)}


if __name__ == "__main__":
    main()
