"""Speed of make_galaxies, and whether its classes differ by shape rather than brightness.

Full run (the figures in docs/datasets_synthetic.md):

    python benchmarks/bench_synthetic.py

Quick run (seconds; used by the tests):

    python benchmarks/bench_synthetic.py --quick
"""

from __future__ import annotations

import argparse
import time

from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from galaxysim.datasets import make_galaxies


def run(n_timed: int, n_classify: int, image_size: int, n_components: int) -> dict[str, float]:
    start = time.perf_counter()
    X, y = make_galaxies(n_timed, image_size=image_size, random_state=0)
    results = {"seconds": time.perf_counter() - start}
    X, y = X[:n_classify], y[:n_classify]
    pixels = X.reshape(len(X), -1)
    models = {
        "mean pixel value -> logistic regression": (
            X.mean(axis=(1, 2, 3))[:, None],
            LogisticRegression(),
        ),
        "mean RGB colour -> logistic regression": (X.mean(axis=(1, 2)), LogisticRegression()),
        f"pixels -> PCA({n_components}) -> logistic regression": (
            pixels,
            make_pipeline(
                PCA(n_components, random_state=0),
                StandardScaler(),
                LogisticRegression(max_iter=2000),
            ),
        ),
        f"pixels -> PCA({n_components}) -> 5-nearest neighbours": (
            pixels,
            make_pipeline(PCA(n_components, random_state=0), KNeighborsClassifier(5)),
        ),
    }
    for name, (features, model) in models.items():
        results[name] = float(cross_val_score(model, features, y, cv=5).mean())
    return results


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        n_timed, n_classify, size, comps = 300, 300, 32, 20
    else:
        n_timed, n_classify, size, comps = 10_000, 3_000, 64, 50
    results = run(n_timed, n_classify, size, comps)
    print(f"make_galaxies({n_timed}, image_size={size}): {results['seconds']:.1f} s")
    print(f"\n5-fold accuracy on {n_classify} images (chance 0.20):\n")
    print("| features -> classifier | accuracy |\n|---|---:|")
    for name, value in results.items():
        if name != "seconds":
            print(f"| {name} | {value:.3f} |")
    return results


if __name__ == "__main__":
    main()
