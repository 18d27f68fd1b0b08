"""Self-supervised galaxy embeddings: ContrastiveEmbedder against PCA.
=====================================================================

Run::

    python examples/contrastive_embedder.py --out contrastive   # built-in galaxies, minutes
    python examples/contrastive_embedder.py --quick --out tmp   # a tiny run (seconds)

ContrastiveEmbedder learns, without any labels, an embedding in which two
augmented views of the same galaxy (GalaxyAugmentation: any rotation, a flip,
a slightly different size and position, another PSF blur, noise level,
brightness and colour) land together and other galaxies apart. Its nearest
neighbours are then compared with PCA's by the share that have the galaxy's
own class (the labels are used only for this score). The example saves the
augmented views a training step sees, and both embeddings' maps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from galaxysim import ContrastiveEmbedder, GalaxyAugmentation
from galaxysim.datasets import SYNTHETIC_CLASSES, make_galaxies
from galaxysim.images import ImagePreprocessor
from galaxysim.metrics import same_class_rate
from galaxysim.plotting import plot_image_grid, plot_latent_map


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny data and model, for a smoke test"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("contrastive"), help="folder for the figures"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    size = 32 if args.quick else 64
    X, y = make_galaxies(100 if args.quick else 2000, image_size=size, random_state=0)

    # What the network is asked to match: each galaxy (top row) and two random views of it.
    augmentation = GalaxyAugmentation()
    originals = torch.from_numpy(np.ascontiguousarray(X[:8].transpose(0, 3, 1, 2)))
    generator = torch.Generator().manual_seed(0)
    views = [augmentation(originals, generator) for _ in range(2)]
    grid = torch.cat([originals, *views]).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    plot_image_grid(
        grid,
        n_cols=8,
        row_labels=["galaxy", "view 1", "view 2"],
        suptitle="Augmented views the contrastive loss pairs up",
    ).savefig(args.out / "views.png", dpi=100)

    if args.quick:
        embedder = ContrastiveEmbedder(
            n_components=16,
            n_stages=2,
            base_channels=8,
            max_epochs=2,
            batch_size=32,
            random_state=0,
        )
    else:
        embedder = ContrastiveEmbedder(max_epochs=15, random_state=0, verbose=1)
    embedding = embedder.fit_transform(X)
    pca = make_pipeline(
        ImagePreprocessor(crop=None, flatten=True),
        PCA(32 if not args.quick else 8, whiten=True, random_state=0),
    )
    pca_embedding = pca.fit_transform(X)

    # Leave-one-out: the share of each galaxy's 10 nearest neighbours in its own class.
    results = {
        "contrastive": same_class_rate(embedding, y),
        "pca_whitened": same_class_rate(pca_embedding, y),
    }
    for name, rate in results.items():
        print(f"{name:>13}: same-class@10 {rate:.3f}")
    for name, values in (("contrastive", embedding), ("pca", pca_embedding)):
        plot_latent_map(values, y, target_names=SYNTHETIC_CLASSES).savefig(
            args.out / f"map_{name}.png", dpi=100
        )
    print(f"training: {embedder.history_.n_epochs} epochs, best {embedder.history_.best_epoch + 1}")
    return results


if __name__ == "__main__":
    main()
