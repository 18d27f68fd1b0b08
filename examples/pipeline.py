"""galaxysim estimators in one scikit-learn pipeline: preprocess, embed, model the density.
========================================================================================

Run::

    python examples/pipeline.py           # built-in galaxies
    python examples/pipeline.py --quick   # a tiny run (seconds)

make_pipeline(ImagePreprocessor(), AutoencoderEmbedder(), FlowDensityEstimator())
is an ordinary sklearn estimator: fit it on images, then ask how typical new
images are (score_samples), embed them (the pipeline without its last step),
and generate new galaxies (sample from the flow, decode with the autoencoder).
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.pipeline import make_pipeline

from galaxysim import AutoencoderEmbedder, FlowDensityEstimator
from galaxysim.datasets import make_galaxies, make_milky_way
from galaxysim.images import ImagePreprocessor


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny data and model, for a smoke test"
    )
    args = parser.parse_args(argv)

    # Built-in cutouts at 2x the model's size: the preprocessor crops their centre.
    size = 16 if args.quick else 64
    X, _y = make_galaxies(120 if args.quick else 2000, image_size=2 * size, random_state=0)
    X_train, X_test = X[: len(X) * 3 // 4], X[len(X) * 3 // 4 :]

    if args.quick:
        embedder = AutoencoderEmbedder(
            n_components=4, n_stages=1, n_blocks=1, base_channels=4, max_epochs=1, random_state=0
        )
        flow = FlowDensityEstimator(n_layers=2, hidden_features=(16,), max_epochs=3, random_state=0)
    else:
        embedder = AutoencoderEmbedder(
            n_components=16, n_stages=4, n_blocks=2, max_epochs=15, random_state=0
        )
        flow = FlowDensityEstimator(n_layers=4, random_state=0)
    pipe = make_pipeline(ImagePreprocessor(crop=size), embedder, flow).fit(X_train)

    # How typical are held-out galaxies, and a drawing of the Milky Way?
    log_density = pipe.score_samples(X_test)
    milky_way = np.zeros((1, 2 * size, 2 * size, 3), dtype=np.float32)
    milky_way[0, size // 2 : size // 2 + size, size // 2 : size // 2 + size] = make_milky_way(
        image_size=size
    )
    milky_way_log_density = float(pipe.score_samples(milky_way)[0])
    percentile = 100.0 * np.mean(log_density <= milky_way_log_density)
    print(
        f"held-out mean log-density: {log_density.mean():.2f} "
        f"(pipe.score: {pipe.score(X_test):.2f})"
    )
    print(
        f"Milky Way drawing: log-density {milky_way_log_density:.2f}, "
        f"percentile {percentile:.0f} among held-out galaxies"
    )

    # The embedding: every step but the density.
    embedding = pipe[:-1].transform(X_test)
    print(f"embedding of the held-out galaxies: {embedding.shape}")

    # New galaxies: sample the flow's latent space, decode with the autoencoder.
    generated = pipe[1].inverse_transform(pipe[-1].sample(8, random_state=0))
    print(
        f"generated galaxies: {generated.shape}, "
        f"pixel range [{generated.min():.2f}, {generated.max():.2f}]"
    )
    return {
        "mean_log_density": float(log_density.mean()),
        "milky_way_percentile": float(percentile),
        "embedding_shape": embedding.shape,
        "generated_shape": generated.shape,
    }


if __name__ == "__main__":
    main()
