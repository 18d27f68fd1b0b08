"""Out-of-distribution scores built on a density's log-likelihoods.

A likelihood alone is a poor detector of unfamiliar inputs: flows trained on
one image collection can give *higher* likelihood to another, simpler one
(Nalisnick et al. 2019, arXiv:1810.09136), because the likelihood is
dominated by low-level image statistics such as smoothness. Two corrections:

* :func:`likelihood_percentile`: where a log-likelihood falls among the
  log-likelihoods of held-out training data (a typicality check: both very
  low *and* very high percentiles are unusual).
* :func:`complexity_corrected_score` (Serra et al. 2020, arXiv:1909.11480):
  the negative log-likelihood in bits minus the length of a generic lossless
  compression of the image (PNG), which removes the part of the likelihood
  that only measures how simple the image is.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["complexity_corrected_score", "likelihood_percentile", "png_bits"]


def likelihood_percentile(log_likelihood: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percentile of each log-likelihood among reference log-likelihoods.

    Ties count half (mid-rank), so a value equal to every reference value
    sits at 50.

    Parameters
    ----------
    log_likelihood : ndarray of shape (n,)
        Log-likelihoods to place.
    reference : ndarray of shape (m,)
        Log-likelihoods of held-out in-distribution data.

    Returns
    -------
    percentile : ndarray of shape (n,), float64
        In [0, 100]: the share of reference values below (ties half), times 100.

    Examples
    --------
    >>> likelihood_percentile(np.array([-10.0, 0.5, 10.0]), np.array([0.0, 1.0]))
    array([  0.,  50., 100.])
    """
    reference = np.sort(np.asarray(reference, dtype=np.float64))
    values = np.asarray(log_likelihood, dtype=np.float64)
    below = np.searchsorted(reference, values, side="left")
    not_above = np.searchsorted(reference, values, side="right")
    return 100.0 * (below + not_above) / (2.0 * reference.size)


def png_bits(images: np.ndarray) -> np.ndarray:
    """Length in bits of each 8-bit image compressed as PNG (zlib level 9).

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)
        Images in [0, 1] (float); they are rounded to 8 bits.

    Returns
    -------
    bits : ndarray of shape (n,), float64
        ``8 *`` the PNG file size in bytes.

    Examples
    --------
    >>> flat = np.zeros((1, 32, 32, 3))
    >>> noisy = np.random.default_rng(0).random((1, 32, 32, 3))
    >>> bool(png_bits(flat)[0] < png_bits(noisy)[0])
    True
    """
    levels = np.rint(np.asarray(images, dtype=np.float64) * 255.0).clip(0, 255).astype(np.uint8)
    bits = np.zeros(levels.shape[0], dtype=np.float64)
    for index, image in enumerate(levels):
        # PNG holds gray, gray+alpha, RGB and RGBA; other channel counts are
        # compressed one gray channel at a time.
        planes = [image] if image.shape[-1] in (2, 3, 4) else np.moveaxis(image, -1, 0)[..., None]
        for plane in planes:
            buffer = io.BytesIO()
            Image.fromarray(plane[..., 0] if plane.shape[-1] == 1 else plane).save(
                buffer, format="PNG", compress_level=9
            )
            bits[index] += 8.0 * buffer.getbuffer().nbytes
    return bits


def complexity_corrected_score(log_likelihood: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Serra et al.'s complexity-corrected out-of-distribution score, in bits.

    ``S(x) = -log2 P(x) - L(x)``, with ``P(x)`` the model's probability of the
    8-bit image and ``L(x)`` its PNG length in bits. A generic compressor is a
    reference model of "any image"; ``S`` is how many more bits the flow needs
    than that reference. **Larger S means more out-of-distribution**; a
    negative S means the flow compresses the image better than PNG does,
    as it should for images like its training data.

    Parameters
    ----------
    log_likelihood : ndarray of shape (n,)
        ``log P(x)`` of each discrete image, in nats.
    images : ndarray of shape (n, H, W, C)
        The same images, in [0, 1].

    Returns
    -------
    score : ndarray of shape (n,), float64
        ``S(x)`` in bits.

    Examples
    --------
    >>> images = np.zeros((1, 8, 8, 1))
    >>> bool(complexity_corrected_score(np.array([0.0]), images)[0] == -png_bits(images)[0])
    True
    """
    negative_log2 = -np.asarray(log_likelihood, dtype=np.float64) / np.log(2.0)
    return negative_log2 - png_bits(images)
