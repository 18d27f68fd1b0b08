"""Observing the built-in galaxies: PSF blur, foreground stars, stretch, sky and noise.

What a survey camera and its image pipeline do to the light drawn by
:mod:`~galaxysim.datasets._galaxy_models`. Package-private: serves
:mod:`~galaxysim.datasets.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from ._galaxy_models import REFERENCE_SIZE, Canvas, column

_STAR_RGB = np.array(
    [[1.0, 0.62, 0.42], [1.0, 0.9, 0.72], [0.95, 0.95, 1.0], [0.62, 0.76, 1.0]],
    dtype=np.float32,
)
# Softening of the asinh stretch, in units of the flux that saturates.
_STRETCH_SOFTENING = 0.03
_ASINH_NORM = float(np.arcsinh(1.0 / _STRETCH_SOFTENING))
_STRETCH_SLOPE = 1.0 / (_STRETCH_SOFTENING * _ASINH_NORM)  # d stretch / d flux at 0
# Expected number of foreground stars in a 64-pixel frame.
_STARS_PER_FRAME = 0.45
# Width of the PSF's wing, in units of the core's standard deviation.
_PSF_WING_WIDTH = 2.5
# Correlation between the noise of the three channels on the sky: the
# sky of Galaxy10 cutouts is grey-grained (JPEG keeps colour at half
# resolution), with a correlation of about 0.95 between channels.
_NOISE_CHANNEL_CORRELATION = 0.93


# --------------------------------------------------------------------------
# Observation: PSF, stars, stretch, sky and noise
# --------------------------------------------------------------------------


def _gaussian_blur(images: np.ndarray, sigma_px: np.ndarray, wing: float = 0.0) -> np.ndarray:
    """Blur each image of a batch (n, C, H, W) by its own PSF (sigma in pixels).

    The PSF is a Gaussian core of standard deviation ``sigma_px`` plus, with
    a share ``wing`` of the light, a Gaussian _PSF_WING_WIDTH times wider:
    survey PSFs have extended wings (Moffat-like), which a single Gaussian
    lacks. Both are applied at once in Fourier space.
    """
    height, width = images.shape[-2:]
    fy = np.fft.fftfreq(height).astype(np.float32)[:, np.newaxis]
    fx = np.fft.rfftfreq(width).astype(np.float32)[np.newaxis, :]
    exponent = -2.0 * np.pi**2 * column(sigma_px) ** 2 * (fy**2 + fx**2)
    transfer = np.exp(exponent)
    if wing > 0:
        core = np.float32(1.0 - wing) * transfer
        transfer = core + np.float32(wing) * np.exp(exponent * np.float32(_PSF_WING_WIDTH**2))
    spectrum = scipy.fft.rfft2(images) * transfer[:, np.newaxis]
    return scipy.fft.irfft2(spectrum, s=(height, width)).astype(np.float32, copy=False)


def _stretch(flux: np.ndarray) -> np.ndarray:
    """asinh stretch of RGB flux (n, 3, H, W) into [-1, 1], as survey colour images use.

    The stretch acts on the mean of the three channels and scales them alike
    (Lupton et al. 2004), so faint light keeps its colour; flux 1 saturates.
    A saturated pixel is the average of clipping each channel (which bleaches
    a bright core white) and dividing by its largest channel (which keeps its
    hue), so bright cores come out pale yellow, as in Legacy Surveys images.
    The stretch is odd, so noise around zero flux stays symmetric.
    """
    magnitude = np.maximum(np.abs(flux.mean(axis=1, keepdims=True)), np.float32(1e-6))
    softening = np.float32(_STRETCH_SOFTENING)
    stretched = flux * (np.arcsinh(magnitude / softening) / (np.float32(_ASINH_NORM) * magnitude))
    peak = np.maximum(stretched.max(axis=1, keepdims=True), np.float32(1.0))
    return np.float32(0.5) * (np.minimum(stretched, np.float32(1.0)) + stretched / peak)


def _brightness_gain(flux: np.ndarray, target: np.ndarray, n_steps: int = 12) -> np.ndarray:
    """Per-image gain ``g`` with ``mean(stretch(g * flux)) == target``.

    The mean grows with ``g``, so bisection on ``log g`` (all images at once)
    finds it; 12 halvings of the bracket pin ``g`` to 0.3 %. ``flux`` may be
    a subsample: the mean of a blurred image hardly changes.
    """
    peak = flux.reshape(len(flux), -1).max(axis=1)
    scale = 1.0 / np.where(peak > 0, peak, 1.0)
    # Gains that bring a galaxy's brightest pixel to 0.05 ... 20000 times
    # saturation span every galaxy the samplers draw.
    low = np.full(len(flux), np.log(0.05))
    high = np.full(len(flux), np.log(2e4))
    for _ in range(n_steps):
        middle = 0.5 * (low + high)
        mean = _stretch(flux * column(scale * np.exp(middle))[:, np.newaxis]).mean(axis=(1, 2, 3))
        too_bright = mean > target
        high = np.where(too_bright, middle, high)
        low = np.where(too_bright, low, middle)
    return scale * np.exp(0.5 * (low + high))


def _add_stars(
    rng: np.random.Generator, light: np.ndarray, sigma_px: np.ndarray, wing: float = 0.0
) -> None:
    """Add a Poisson number of foreground stars to ``light`` (n, 3, H, W) in place.

    Stars are few, so each is drawn directly as a stamp of its image's PSF
    (the Gaussian core and, with a share ``wing`` of the light, the wider
    wing) instead of going through the FFT blur; a stamp may hang over the
    edge of the frame.
    """
    n, _, height, width = light.shape
    reach = int(np.ceil(3.0 * sigma_px.max()))
    counts = rng.poisson(_STARS_PER_FRAME * height * width / REFERENCE_SIZE**2, size=n)
    owner = np.repeat(np.arange(n), counts)
    rows = rng.uniform(-reach, height + reach, size=owner.size)
    cols = rng.uniform(-reach, width + reach, size=owner.size)
    # Peak brightness from just above the noise to saturated (1 saturates),
    # the same at every sampling.
    peak = np.exp(rng.uniform(np.log(0.02), np.log(2.5), size=owner.size))
    colors = _STAR_RGB[rng.integers(0, len(_STAR_RGB), size=owner.size)]
    if wing > 0:
        reach = int(np.ceil(3.0 * _PSF_WING_WIDTH * sigma_px.max()))
    steps = np.arange(-reach, reach + 1)
    top, left = np.floor(rows).astype(int), np.floor(cols).astype(int)
    dy = (top[:, None] + steps + 0.5 - rows[:, None]) / sigma_px[owner][:, np.newaxis]
    dx = (left[:, None] + steps + 0.5 - cols[:, None]) / sigma_px[owner][:, np.newaxis]
    stamps = np.exp(-0.5 * dy**2)[:, :, None] * np.exp(-0.5 * dx**2)[:, None, :]
    if wing > 0:
        # The wing's peak relative to the core's, for the same total light.
        relative = wing / ((1.0 - wing) * _PSF_WING_WIDTH**2)
        wide = np.float32(0.5 / _PSF_WING_WIDTH**2)
        stamps += relative * np.exp(-wide * dy**2)[:, :, None] * np.exp(-wide * dx**2)[:, None, :]
    stamps *= peak[:, None, None]
    # Stamp into a frame with a margin wide enough for every stamp, then crop.
    margin = 2 * reach
    canvas = np.zeros((n, 3, height + 2 * margin, width + 2 * margin), dtype=np.float32)
    index = (
        owner[:, None, None],
        (top[:, None] + steps + margin)[:, :, None],
        (left[:, None] + steps + margin)[:, None, :],
    )
    for channel in range(3):
        light_of_channel = (stamps * colors[:, channel, None, None]).astype(np.float32)
        np.add.at(canvas[:, channel], index, light_of_channel)
    light += canvas[:, :, margin : margin + height, margin : margin + width]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Gaussian noise (..., H, W), correlated between neighbouring pixels.

    Survey cutouts are resampled and JPEG-compressed, so their noise is
    blotchy: in Galaxy10 crops neighbouring sky pixels correlate by about
    0.55 and pixels two apart by under 0.1. A separable [a, 1, a] filter
    with a = 0.35 gives 0.56 and 0.10.
    """
    a = np.float32(0.35)
    white = rng.standard_normal((*shape[:-2], shape[-2] + 2, shape[-1] + 2), dtype=np.float32)
    rows = a * white[..., :-2, :] + white[..., 1:-1, :] + a * white[..., 2:, :]
    smooth = a * rows[..., :-2] + rows[..., 1:-1] + a * rows[..., 2:]
    return smooth / (1 + 2 * a**2)  # each pass scales the std by sqrt(1 + 2 a^2)


def _sky_noise(rng: np.random.Generator, shape: tuple[int, int, int, int]) -> np.ndarray:
    """Unit-variance RGB sky noise (n, 3, H, W), grey-grained as in survey JPEG cutouts.

    A smooth field shared by the three channels (the grain) plus, for the
    rest of the variance, colour noise drawn on 2 x 2 pixel blocks (JPEG
    stores colour at half resolution), so that the channels correlate by
    _NOISE_CHANNEL_CORRELATION.
    """
    n, channels, height, width = shape
    grey = _smooth_noise(rng, (n, 1, height, width))
    blocks = rng.standard_normal(
        (n, channels, (height + 1) // 2, (width + 1) // 2), dtype=np.float32
    )
    colour = blocks.repeat(2, axis=2).repeat(2, axis=3)[:, :, :height, :width]
    rho = _NOISE_CHANNEL_CORRELATION
    return np.float32(np.sqrt(rho)) * grey + np.float32(np.sqrt(1.0 - rho)) * colour


@dataclass(frozen=True)
class Conditions:
    """How a batch of galaxies is observed.

    ``sigma_px`` (n,) is the PSF's standard deviation in canvas pixels,
    ``brightness`` (n,) the mean stretched galaxy light, ``sky`` (n, 3) the
    sky level and ``noise`` the sky noise, one level or one per image;
    ``stars`` adds foreground stars and ``psf_wing`` is the share of the
    light in the PSF's wing.
    """

    sigma_px: np.ndarray
    brightness: np.ndarray
    sky: np.ndarray
    noise: float | np.ndarray
    stars: bool
    psf_wing: float = 0.0


def observe(
    rng: np.random.Generator, flux: np.ndarray, canvas: Canvas, conditions: Conditions
) -> np.ndarray:
    """Turn canvas flux (n, 3, side, side) into finished images (n, H, W, 3) in [0, 1]."""
    sigma_px, brightness, sky = conditions.sigma_px, conditions.brightness, conditions.sky
    noise, stars, psf_wing = conditions.noise, conditions.stars, conditions.psf_wing
    galaxy = canvas.crop(_gaussian_blur(flux, sigma_px, psf_wing))
    # A 16 x 16 subsample sets the gain to within 0.1 % of the full image's.
    step = max(1, canvas.image_size // 16)
    gain = _brightness_gain(galaxy[:, :, ::step, ::step], brightness)
    light = galaxy * column(gain)[:, np.newaxis]
    if stars:
        _add_stars(rng, light, sigma_px, psf_wing)
    sky_level = sky.astype(np.float32)[:, :, np.newaxis, np.newaxis]
    noise_level = np.broadcast_to(np.asarray(noise, dtype=np.float32), len(flux))
    if noise_level.any():
        # Noise enters with the light, before the stretch, so it is as strong
        # as asked on the sky and compressed on bright parts, as in survey
        # images. Near zero the stretch multiplies by _STRETCH_SLOPE.
        flux_noise = noise_level[:, None, None, None] / (
            np.float32(_STRETCH_SLOPE) * (1.0 - sky_level)
        )
        light += flux_noise * _sky_noise(rng, light.shape)
    images = sky_level + (1.0 - sky_level) * _stretch(light)
    np.clip(images, 0.0, 1.0, out=images)
    return images.transpose(0, 2, 3, 1)
