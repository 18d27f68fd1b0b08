"""Pixel statistics that tell a survey image from a drawing, whatever the embedder.

A survey cutout has sky noise everywhere, a dark and nearly grey background,
and fine-scale detail whose colour follows the survey's processing (JPEG
cutouts: almost grey). A drawing, a painting or a heavily processed image
differs on some of these even when it shows the same kind of galaxy.
:func:`image_statistics` measures them, one row per image; the
:class:`~galaxysim.ranking.SimilarityRanker` keeps the collection's rows and
warns when a query's row lies outside them. :func:`sky_noise` is the noise
level alone.

The fine-scale detail is the high-pass residual of each channel: the
discrete Laplacian (4 times a pixel minus its 4 neighbours, divided by the
square root of 20 so that white noise of standard deviation s gives a residual of standard
deviation s).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .._validation import check_images

__all__ = ["IMAGE_STATISTICS", "image_statistics", "sky_noise"]

#: Names of the columns of :func:`image_statistics`, in order, with what each measures.
IMAGE_STATISTICS = {
    "log_noise": "the level of the pixel noise",
    "noise_chroma": "the share of colour in the fine-scale detail",
    "noise_channel_correlation": "how alike the fine-scale detail is in the three colours",
    "noise_floor": "how evenly the fine-scale detail covers the image",
    "background_level": "the brightness of the background (the border)",
    "background_colour": "the colour of the background (blue minus red)",
    "colour": "the colour of the whole image (blue minus red)",
    "saturation": "how saturated the colours are",
}

_MIN_SIDE = 8
_CHUNK = 256


def _laplacian(X: np.ndarray) -> np.ndarray:
    """High-pass residual (n, H-2, W-2, C), unit gain for white noise."""
    core = X[:, 1:-1, 1:-1]
    residual = 4.0 * core - X[:, :-2, 1:-1] - X[:, 2:, 1:-1] - X[:, 1:-1, :-2] - X[:, 1:-1, 2:]
    return residual / np.sqrt(20.0)


def _trimmed_abs(R: np.ndarray) -> np.ndarray:
    """Mean of the smaller half of ``|R|`` per image: a noise level galaxies and stars barely move."""
    a = np.sort(np.abs(R).reshape(len(R), -1), axis=1)
    return a[:, : max(1, a.shape[1] // 2)].mean(axis=1)


def _border(X: np.ndarray) -> np.ndarray:
    """The pixels (n, p, C) of a frame a tenth of the side wide."""
    h, w = X.shape[1:3]
    width = max(1, min(h, w) // 10)
    mask = np.zeros((h, w), dtype=bool)
    mask[:width] = mask[-width:] = True
    mask[:, :width] = mask[:, -width:] = True
    return X[:, mask]


def _blue_minus_red(rgb: np.ndarray) -> np.ndarray:
    """(B - R) / (R + G + B) of (..., 3) values summed over their last-but-one axis."""
    total = rgb.sum(axis=(-2, -1))
    return (rgb[..., 2] - rgb[..., 0]).sum(axis=-1) / np.maximum(total, 1e-9)


def _colour_of_detail(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of colour in the residual, and the mean correlation of its channels."""
    n = len(R)
    F = R.reshape(n, -1, 3)
    chroma = np.sqrt(((F - F.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1))
    share = np.median(chroma, axis=1) / np.maximum(np.median(np.sqrt((F**2).sum(axis=-1)), axis=1), 1e-12)
    F = F - F.mean(axis=1, keepdims=True)
    var = (F**2).sum(axis=1)
    corr = [
        (F[..., i] * F[..., j]).sum(axis=1) / np.maximum(np.sqrt(var[:, i] * var[:, j]), 1e-20)
        for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    return share, sum(corr) / 3.0


def _noise_floor(X: np.ndarray) -> np.ndarray:
    """Fine-scale energy of the calmest tenth of blocks relative to the median block (0 to about 1)."""
    n, h, w = X.shape[:3]
    R = X - ndimage.gaussian_filter(X, sigma=(0, 1.0, 1.0, 0), mode="reflect")
    b = max(2, min(h, w) // 8)
    h2, w2 = h // b * b, w // b * b
    energy = (R[:, :h2, :w2] ** 2).mean(axis=-1).reshape(n, h2 // b, b, w2 // b, b).mean(axis=(2, 4))
    energy = energy.reshape(n, -1)
    return np.sqrt(np.quantile(energy, 0.1, axis=1) / np.maximum(np.median(energy, axis=1), 1e-20))


def _saturation(X: np.ndarray) -> np.ndarray:
    smooth = ndimage.gaussian_filter(X, sigma=(0, 1.5, 1.5, 0), mode="reflect")
    grey = smooth.mean(axis=-1, keepdims=True)
    chroma = np.linalg.norm(smooth - grey, axis=-1).reshape(len(X), -1).sum(axis=1)
    return chroma / np.maximum(grey.reshape(len(X), -1).sum(axis=1), 1e-9)


def _chunk_statistics(X: np.ndarray) -> np.ndarray:
    R = _laplacian(X)
    out = np.zeros((len(X), len(IMAGE_STATISTICS)))
    out[:, 0] = np.log(_trimmed_abs(R) + 1e-4)
    out[:, 3] = _noise_floor(X)
    border = _border(X)
    out[:, 4] = np.median(border.mean(axis=-1), axis=1)
    if X.shape[-1] == 3:
        out[:, 1], out[:, 2] = _colour_of_detail(R)
        out[:, 5] = _blue_minus_red(np.median(border, axis=1)[:, None, :])
        out[:, 6] = _blue_minus_red(X.reshape(len(X), -1, 3))
        out[:, 7] = _saturation(X)
    return out


def _checked(images: Any) -> np.ndarray:
    images = check_images(images, name="images")
    if min(images.shape[1:3]) < _MIN_SIDE:
        raise ValueError(
            f"images of {images.shape[1]}x{images.shape[2]} pixels are too small for pixel "
            f"statistics; they need at least {_MIN_SIDE}x{_MIN_SIDE}."
        )
    return images


def image_statistics(images: Any) -> np.ndarray:
    """Pixel statistics of each image: noise, fine-scale colour, background and colour.

    Parameters
    ----------
    images : array-like of shape (n, H, W, C)
        uint8, or float in [0, 1]; at least 8x8 pixels. The colour columns
        are 0 unless C is 3 (RGB).

    Returns
    -------
    statistics : ndarray of shape (n, len(IMAGE_STATISTICS)), float64
        One column per entry of :data:`IMAGE_STATISTICS`, in its order.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import IMAGE_STATISTICS, image_statistics
    >>> rng = np.random.default_rng(0)
    >>> noisy = np.clip(0.2 + 0.05 * rng.normal(size=(2, 16, 16, 3)), 0, 1)
    >>> smooth = np.full((1, 16, 16, 3), 0.2)
    >>> stats = image_statistics(np.concatenate([noisy, smooth]))
    >>> stats.shape == (3, len(IMAGE_STATISTICS))
    True
    >>> bool(stats[2, 0] < stats[0, 0])  # log_noise: the flat image has none
    True
    """
    images = _checked(images)
    parts = [
        _chunk_statistics(np.asarray(images[start:start + _CHUNK], dtype=np.float64))
        for start in range(0, len(images), _CHUNK)
    ]
    return np.concatenate(parts)


def sky_noise(images: Any) -> np.ndarray:
    """The pixel noise of each image: a robust level of its fine-scale residual.

    The mean absolute Laplacian residual over the calmer half of the pixels
    (all channels), so that a galaxy's own structure and stars barely move
    it. For white Gaussian noise of standard deviation s it is about
    ``0.32 * s``; a smooth drawing gives nearly 0.

    Parameters
    ----------
    images : array-like of shape (n, H, W, C)
        uint8, or float in [0, 1]; at least 8x8 pixels.

    Returns
    -------
    noise : ndarray of shape (n,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import sky_noise
    >>> rng = np.random.default_rng(0)
    >>> noisy = np.clip(0.3 + 0.04 * rng.normal(size=(1, 32, 32, 3)), 0, 1)
    >>> flat = np.full((1, 32, 32, 3), 0.3)
    >>> [round(float(v), 3) for v in sky_noise(np.concatenate([noisy, flat]))]
    [0.013, 0.0]
    """
    images = _checked(images)
    return np.concatenate([
        _trimmed_abs(_laplacian(np.asarray(images[start:start + _CHUNK], dtype=np.float64)))
        for start in range(0, len(images), _CHUNK)
    ])
