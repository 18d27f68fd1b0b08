"""Which ContrastiveEmbedder settings group galaxies best: the loss, whitening, averaging.

Trains one ContrastiveEmbedder per loss (NT-Xent, the default, and VICReg) on
built-in galaxies and reports, for each, the leave-one-out same-class rate of
10 neighbours (``galaxysim.metrics.same_class_rate``) of the embedding as it
comes out of the network (``n_components=None``), standardised per dimension, PCA
whitened (the default, ``n_components=64``) and whitened after averaging over the 8
rotations and flips, beside whitened PCA of the pixels; and the training time.

Usage::

    python benchmarks/compare_contrastive.py            # 2,000 galaxies of 64x64, 15 epochs
    python benchmarks/compare_contrastive.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.decomposition import PCA

from galaxysim import ContrastiveEmbedder
from galaxysim.datasets import make_galaxies
from galaxysim.metrics import same_class_rate

try:
    from _shared import print_report
except ImportError:  # imported from elsewhere (the tests load scripts by path)
    from benchmarks._shared import print_report


def _rates(embedder: ContrastiveEmbedder, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Same-class rates of the raw, standardised, whitened and dihedral-averaged embeddings."""
    whitened = embedder.transform(X)
    raw = embedder._embed(torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2))))
    # (the network's own embedding, before the whitening that transform applies)
    standardised = (raw - raw.mean(axis=0)) / np.maximum(raw.std(axis=0), 1e-12)
    averaged = embedder.set_params(dihedral_average=True).transform(X)
    embedder.set_params(dihedral_average=False)
    return {
        "raw": same_class_rate(raw, y),
        "standardised": same_class_rate(standardised, y),
        "whitened": same_class_rate(whitened, y),
        "dihedral average": same_class_rate(averaged, y),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and network")
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    size, n = (16, 80) if args.quick else (64, args.n_samples)
    X, y = make_galaxies(n, image_size=size, random_state=0)
    settings = (
        {
            "representation_dim": 8,
            "n_stages": 2,
            "base_channels": 4,
            "max_epochs": 2,
            "batch_size": 32,
        }
        if args.quick
        else {"max_epochs": args.epochs}
    )
    pca = PCA(min(32, n - 1), whiten=True, random_state=0).fit_transform(X.reshape(n, -1))
    results: dict = {"pca-whitened": same_class_rate(pca, y)}
    lines = [
        "| model | raw | standardised | whitened (default) | whitened, dihedral average | "
        "fit s | epochs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for loss in ("nt-xent", "vicreg"):
        start = time.perf_counter()
        embedder = ContrastiveEmbedder(loss=loss, random_state=0, **settings).fit(X)
        seconds = time.perf_counter() - start
        rates = _rates(embedder, X, y)
        results[loss] = rates
        lines.append(
            f"| ContrastiveEmbedder(loss={loss!r}) | {rates['raw']:.3f} | "
            f"{rates['standardised']:.3f} | {rates['whitened']:.3f} | "
            f"{rates['dihedral average']:.3f} | {seconds:.0f} | "
            f"{embedder.history_.n_epochs} |"
        )
    lines.append(
        f"| PCA(32, whiten=True) of the pixels | | | {results['pca-whitened']:.3f} | | | |"
    )
    report = (
        f"make_galaxies({n}, image_size={size}, random_state=0); same-class rate of 10 "
        f"neighbours, leave-one-out (chance 0.2); {settings}; "
        f"{torch.get_num_threads()} torch threads.\n\n" + "\n".join(lines)
    )
    print_report(
        "ContrastiveEmbedder settings compared", report, "compare_contrastive.py", args.quick
    )
    return results


if __name__ == "__main__":
    main()
