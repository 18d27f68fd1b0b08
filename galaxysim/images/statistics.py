"""Pixel statistics that tell a survey image from a drawing, whatever the embedder.

A survey cutout has sky noise everywhere, a dark and nearly grey background,
and fine-scale detail whose colour follows the survey's processing (JPEG
cutouts: almost grey). A drawing, a painting or a heavily processed image
differs on some of these even when it shows the same kind of galaxy.
:func:`image_statistics` measures them, one row per image; the
:class:`~galaxysim.ranking.SimilarityRanker` keeps the collection's rows and
warns when a query's row lies outside them. :func:`sky_noise` is the noise
level alone. :func:`radial_profile` and :func:`radial_power_spectrum`
average an image, or its spectrum, in rings about the centre: the light
profile of a centred galaxy, and the grain of sky noise.

The fine-scale detail is the high-pass residual of each channel: the
discrete Laplacian (4 times a pixel minus its 4 neighbours, divided by the
square root of 20 so that white noise of standard deviation s gives a residual of standard
deviation s).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .._validation import check_bool, check_images

__all__ = [
    "IMAGE_STATISTICS",
    "image_statistics",
    "radial_power_spectrum",
    "radial_profile",
    "sky_noise",
]

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
    """Mean of the smaller half of ``|R|`` per image: a noise level galaxies and stars spare."""
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
    share = np.median(chroma, axis=1) / np.maximum(
        np.median(np.sqrt((F**2).sum(axis=-1)), axis=1), 1e-12
    )
    F = F - F.mean(axis=1, keepdims=True)
    var = (F**2).sum(axis=1)
    corr = [
        (F[..., i] * F[..., j]).sum(axis=1) / np.maximum(np.sqrt(var[:, i] * var[:, j]), 1e-20)
        for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    return share, sum(corr) / 3.0


def _noise_floor(X: np.ndarray) -> np.ndarray:
    """Fine-scale energy of the calmest tenth of blocks relative to the median block (0 to ~1)."""
    n, h, w = X.shape[:3]
    R = X - ndimage.gaussian_filter(X, sigma=(0, 1.0, 1.0, 0), mode="reflect")
    b = max(2, min(h, w) // 8)
    h2, w2 = h // b * b, w // b * b
    energy = (
        (R[:, :h2, :w2] ** 2).mean(axis=-1).reshape(n, h2 // b, b, w2 // b, b).mean(axis=(2, 4))
    )
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


def _checked_values(images: Any) -> np.ndarray:
    """(n, H, W, C) finite real values in any range (sky-subtracted light, residuals), float64."""
    try:
        array = np.asarray(images, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"images must be a numeric array of shape (n, H, W, C), got {type(images).__name__}."
        ) from None
    if array.ndim != 4:
        raise ValueError(f"images must be 4-D (n, H, W, C), got shape {array.shape}.")
    if min(array.shape[1:3]) < _MIN_SIDE or 0 in array.shape:
        raise ValueError(
            f"images of shape {array.shape} are too small or empty; each needs at least "
            f"{_MIN_SIDE}x{_MIN_SIDE} pixels and one channel."
        )
    if not np.isfinite(array).all():
        raise ValueError("images contain NaN or infinite values.")
    return array


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
        _chunk_statistics(np.asarray(images[start : start + _CHUNK], dtype=np.float64))
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
    return np.concatenate(
        [
            _trimmed_abs(_laplacian(np.asarray(images[start : start + _CHUNK], dtype=np.float64)))
            for start in range(0, len(images), _CHUNK)
        ]
    )


def _ring_means(values: np.ndarray, rings: np.ndarray, n_rings: int) -> np.ndarray:
    """Mean of ``values`` (n, P, C) over the pixels of each ring (P,) in 0..n_rings-1.

    Returns an array of shape (n, n_rings, C).
    """
    inside = rings < n_rings
    weights = np.zeros((n_rings, int(inside.sum())))
    weights[rings[inside], np.arange(weights.shape[1])] = 1.0
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return np.einsum("rp,npc->nrc", weights, values[:, inside])


def radial_profile(images: Any) -> np.ndarray:
    """Azimuthally averaged profile of each image and channel about the image centre.

    Pixel ``(i, j)`` lies at radius ``hypot(i - (H - 1) / 2, j - (W - 1) / 2)``
    from the centre; ring ``k`` holds the pixels with ``k <= radius < k + 1``,
    out to the inscribed circle (``min(H, W) // 2`` rings). For a galaxy
    centred in its cutout this is its radial light profile; subtract the sky
    first to profile the light alone.

    Parameters
    ----------
    images : array-like of shape (n, H, W, C)
        Finite values in any range (an image, or its light above the sky);
        at least 8x8 pixels.

    Returns
    -------
    profile : ndarray of shape (n, min(H, W) // 2, C), float64
        The mean value of each ring, channel by channel.

    See Also
    --------
    galaxysim.datasets.milky_way.half_light_radius : The radius holding half the light.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import radial_profile
    >>> yy, xx = np.mgrid[:16, :16] - 7.5
    >>> disk = (np.hypot(yy, xx) < 4).astype(float)[None, :, :, None]
    >>> radial_profile(disk)[0, :, 0].round(2).tolist()
    [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """
    images = _checked_values(images)
    n, height, width, channels = images.shape
    yy, xx = np.indices((height, width))
    radius = np.hypot(yy - (height - 1) / 2.0, xx - (width - 1) / 2.0)
    rings = np.floor(radius).astype(np.int64).ravel()
    n_rings = min(height, width) // 2
    return np.concatenate(
        [
            _ring_means(
                images[s : s + _CHUNK].reshape(-1, height * width, channels), rings, n_rings
            )
            for s in range(0, n, _CHUNK)
        ]
    )


def radial_power_spectrum(images: Any, *, window: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthally averaged 2-D power spectrum of each image and channel.

    Each channel minus its mean is (optionally) tapered by a 2-D Hann
    window, Fourier transformed, and its power averaged in rings of
    spatial frequency ``|f| = hypot(f_y, f_x)`` one frequency step
    (``1 / min(H, W)`` cycles per pixel) wide, from the lowest non-zero
    frequency to 0.5 (Nyquist). The power is normalised so that white
    noise of standard deviation ``s`` gives about ``s**2`` at every
    frequency: a flat spectrum is uncorrelated noise, one that falls
    toward high frequencies is noise correlated between neighbouring
    pixels (smoothed, resampled or compressed). Use it on patches of sky.

    Parameters
    ----------
    images : array-like of shape (n, H, W, C)
        Finite values in any range (sky patches, or their residuals after
        removing a fit); at least 8x8 pixels.
    window : bool, default=True
        Taper by a Hann window, so that gradients across a patch (galaxy
        light, a sky slope) leak less power into high frequencies.

    Returns
    -------
    frequency : ndarray of shape (min(H, W) // 2,)
        The centre of each ring, in cycles per pixel (``k / min(H, W)``,
        ``k = 1 .. min(H, W) // 2``).
    power : ndarray of shape (n, min(H, W) // 2, C), float64
        The mean power in each ring.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import radial_power_spectrum
    >>> rng = np.random.default_rng(0)
    >>> white = np.clip(0.5 + 0.05 * rng.normal(size=(200, 16, 16, 1)), 0, 1)
    >>> frequency, power = radial_power_spectrum(white)
    >>> frequency.tolist()
    [0.0625, 0.125, 0.1875, 0.25, 0.3125, 0.375, 0.4375, 0.5]
    >>> bool(np.allclose(power.mean(axis=0)[:, 0], 0.05**2, rtol=0.15))
    True
    """
    images = _checked_values(images)
    window = check_bool(window, "window")
    n, height, width, channels = images.shape
    side = min(height, width)
    taper = np.ones((height, width))
    if window:
        taper = np.outer(np.hanning(height + 2)[1:-1], np.hanning(width + 2)[1:-1])
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    # Ring k (1 .. side // 2) holds frequencies within half a step of k / side.
    rings = np.rint(np.hypot(fy, fx) * side).astype(np.int64).ravel() - 1
    rings[rings < 0] = side  # the zero frequency, left out
    n_rings = side // 2
    parts = []
    for start in range(0, n, _CHUNK):
        chunk = images[start : start + _CHUNK]
        chunk = (chunk - chunk.mean(axis=(1, 2), keepdims=True)) * taper[None, :, :, None]
        power = np.abs(np.fft.fft2(chunk, axes=(1, 2))) ** 2 / (taper**2).sum()
        parts.append(
            _ring_means(power.reshape(len(chunk), height * width, channels), rings, n_rings)
        )
    return np.arange(1, n_rings + 1) / side, np.concatenate(parts)
