"""Shrunk PCA whitening: the post-processing that makes an embedding a retrieval space.

A learned embedding spreads most of its variance over a few directions; the
weaker ones, which tell similar galaxies apart, hardly count in a Euclidean
distance. Whitening (projecting on the principal directions and scaling each
to unit variance) makes every direction count as much (Jégou & Chum, "Negative
evidences and co-occurrences in image retrieval", ECCV 2012). Estimated from
few images, the weak directions are mostly noise, so the variances are shrunk
towards their mean first, as the Ledoit-Wolf covariance estimator does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shrunk_whitening"]


def shrunk_whitening(
    embedding: np.ndarray | None, n_components: int, n_kept: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the whitening map of training embeddings; the identity for None.

    Each kept principal direction is divided by ``sqrt(variance + shrinkage)``,
    the shrinkage being the mean variance times ``n_components / n_samples``:
    a covariance estimated from few images is pulled towards a multiple of
    the identity, so that the weak directions of a small collection are not
    magnified.

    Parameters
    ----------
    embedding : ndarray of shape (n_samples, n_components) or None
        The training embeddings; None for no whitening.
    n_components : int
        Width of the embedding (used for the identity map when ``embedding`` is None).
    n_kept : int or None
        Number of principal directions kept (at most ``n_samples``); None
        only together with ``embedding=None``.

    Returns
    -------
    mean : ndarray of shape (n_components,)
        Mean of the training embeddings (zeros for None).
    components : ndarray of shape (n_kept, n_components)
        The map: a whitened embedding is ``(embedding - mean) @ components.T``.

    Raises
    ------
    ValueError
        If ``embedding`` is given and ``n_kept`` is None.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(500, 3)) * [10.0, 1.0, 0.1]
    >>> mean, components = shrunk_whitening(Z, 3, 3)
    >>> np.round(((Z - mean) @ components.T).std(axis=0), 2)  # near 1, shrunk for the weakest
    array([1.  , 0.91, 0.23])
    >>> shrunk_whitening(Z, 3, None)
    Traceback (most recent call last):
    ...
    ValueError: n_kept must be an int when embedding is given, got None.
    """
    if embedding is None:
        return np.zeros(n_components), np.eye(n_components)
    if n_kept is None:
        raise ValueError("n_kept must be an int when embedding is given, got None.")
    n_samples = len(embedding)
    mean = embedding.mean(axis=0)
    _, singular, directions = np.linalg.svd(embedding - mean, full_matrices=False)
    variance = singular**2 / max(n_samples - 1, 1)
    kept = min(n_kept, len(singular))
    # (mean variance over the n_components dimensions) * n_components / n_samples
    shrinkage = variance.sum() / n_samples
    scale = np.sqrt(variance[:kept] + shrinkage)
    scale = np.where(scale > 0, scale, 1.0)
    return mean, directions[:kept] / scale[:, np.newaxis]
