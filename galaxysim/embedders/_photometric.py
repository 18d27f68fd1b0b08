"""The photometric augmentations: PSF blur, stretch, brightness, colour and sky noise.

Re-exported by :mod:`galaxysim.embedders.augment`, where they are documented
together with the geometric ones; see that module for the conventions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._augment_checks import _check_amount, _check_inputs, _uniform

__all__ = [
    "LARGEST_GAMMA",
    "random_blur",
    "random_brightness",
    "random_color",
    "random_gamma",
    "random_noise",
]

#: The largest ``max_gamma``: powers from exp(-2) to exp(2), about 0.14 to 7.4.
LARGEST_GAMMA = 2.0


def random_blur(
    images: torch.Tensor, *, generator: torch.Generator | None = None, max_sigma: float | None = 1.0
) -> torch.Tensor:
    """Blur each image with a Gaussian PSF of random width.

    Parameters
    ----------
    images, generator
        As for :func:`random_affine`.
    max_sigma : float or None, default=1.0
        The PSF's standard deviation is uniform in [0, max_sigma] pixels, one
        per image; 0 or None is no blur.

    Returns
    -------
    blurred : torch.Tensor
        New images of the same shape, dtype and device; the flux is kept (the
        kernel sums to 1, reaches ``3 * max_sigma`` pixels, reflects at edges).

    Examples
    --------
    >>> x = torch.nn.functional.pad(torch.ones(1, 1, 1, 1), (7, 7, 7, 7))  # a point source
    >>> y = random_blur(x, max_sigma=2.0, generator=torch.Generator().manual_seed(0))
    >>> round(y.sum().item(), 4), bool(y.max() < 1.0)
    (1.0, True)
    """
    images = _check_inputs(images, generator)
    max_sigma = _check_amount(max_sigma, "max_sigma")
    if not max_sigma:
        return images.clone()
    sigma = max_sigma * _uniform(images, generator, images.shape[0])
    # Separable; a plane (image, channel) per group; sigma 0: kernel (0, .., 1, .., 0).
    n, channels, height, width = images.shape
    radius = max(0, min(math.ceil(3 * max_sigma), height - 1, width - 1))
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=sigma.dtype)
    kernels = torch.exp(-0.5 * (x / sigma.clamp_min(1e-3)[:, None]) ** 2)
    kernels = kernels.masked_fill(kernels < 1e-7, 0.0)  # denormal weights slow CPUs down
    kernels = (
        (kernels / kernels.sum(1, keepdim=True)).to(images.dtype).repeat_interleave(channels, 0)
    )
    planes = F.pad(images.reshape(1, n * channels, height, width), (radius,) * 4, "reflect")
    planes = F.conv2d(planes, kernels[:, None, None, :], groups=n * channels)  # along rows
    planes = F.conv2d(planes, kernels[:, None, :, None], groups=n * channels)  # along columns
    return planes.reshape(n, channels, height, width)


def random_gamma(
    images: torch.Tensor, *, generator: torch.Generator | None = None, max_gamma: float | None = 0.3
) -> torch.Tensor:
    """Change each image's display stretch: raise its pixel values to a random power.

    A survey image shows flux through a non-linear stretch (asinh, a
    logarithm, a gamma curve); where a galaxy's light lands on that curve
    depends on the survey, the cutout service and the galaxy's own surface
    brightness. Raising each image to its own power ``gamma`` (0 and 1 stay
    put; negatives keep their sign) changes the contrast between faint and
    bright parts but not the galaxy's shape, so a contrastive network cannot
    match two views by their pixel-value histogram. Whether that helps
    depends on the collection. Measured by ``benchmarks/compare_augmentations.py``
    (``ContrastiveEmbedder``, 15 epochs, same-class rate of 10 neighbours):
    on 2,000 built-in galaxies 0.69 without and 0.77 with ``max_gamma=0.3``;
    on toy galaxies of another generator, on a black sky, 0.89-0.93 without
    and 0.79-0.81 with; on the 100 real Galaxy10 images about 0.29 either
    way (0.24 with 0.5, in a separate run). So
    :class:`~galaxysim.embedders.augment.GalaxyAugmentation` leaves it off.

    Parameters
    ----------
    images, generator
        As for :func:`~galaxysim.embedders.augment.random_affine`; the images in [0, 1].
    max_gamma : float or None, default=0.3
        ``log(gamma)`` is uniform in [-max_gamma, max_gamma], one per image
        (0.3: gamma from 0.74 to 1.35); at most 2; 0 or None leaves the
        images unchanged.

    Returns
    -------
    stretched : torch.Tensor
        New images of the same shape, dtype and device.

    Examples
    --------
    >>> x = torch.tensor([0.0, 0.25, 1.0]).reshape(1, 1, 1, 3)
    >>> y = random_gamma(x, max_gamma=0.5, generator=torch.Generator().manual_seed(0))
    >>> y[0, 0, 0, 0].item(), y[0, 0, 0, 2].item(), bool(y[0, 0, 0, 1] != 0.25)
    (0.0, 1.0, True)
    """
    images = _check_inputs(images, generator)
    max_gamma = _check_amount(max_gamma, "max_gamma", LARGEST_GAMMA)
    if not max_gamma:
        return images.clone()
    gamma = torch.exp(max_gamma * (2 * _uniform(images, generator, images.shape[0]) - 1))
    gamma = gamma.to(images.dtype)[:, None, None, None]
    return images.sign() * images.abs().pow(gamma)


def random_noise(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    max_sigma: float | None = 0.05,
) -> torch.Tensor:
    """Add Gaussian noise of a random level to each image.

    Parameters
    ----------
    images, generator
        As for :func:`random_affine`.
    max_sigma : float or None, default=0.05
        Each image's noise standard deviation is uniform in [0, max_sigma].

    Returns
    -------
    noisy : torch.Tensor
        New images of the same shape, dtype and device (not clipped).

    Examples
    --------
    >>> bool(random_noise(torch.zeros(2, 3, 8, 8)).abs().max() < 0.5)
    True
    """
    images = _check_inputs(images, generator)
    max_sigma = _check_amount(max_sigma, "max_sigma")
    if not max_sigma:
        return images.clone()
    sigma = max_sigma * _uniform(images, generator, images.shape[0])
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=sigma.dtype)
    return noise.to(images.dtype).mul_(sigma.to(images.dtype)[:, None, None, None]).add_(images)


def random_brightness(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    max_change: float | None = 0.15,
) -> torch.Tensor:
    """Multiply each image by a random gain uniform in [1 - max_change, 1 + max_change].

    Parameters
    ----------
    images, generator
        As for :func:`random_affine`.
    max_change : float or None, default=0.15
        Largest relative change, in [0, 1].

    Returns
    -------
    brightened : torch.Tensor
        New images of the same shape, dtype and device.

    Examples
    --------
    >>> y = random_brightness(torch.ones(4, 3, 2, 2), max_change=0.5)
    >>> bool(((y >= 0.5) & (y <= 1.5)).all())
    True
    """
    images = _check_inputs(images, generator)
    max_change = _check_amount(max_change, "max_change", 1.0)
    gain = 1 + max_change * (2 * _uniform(images, generator, images.shape[0]) - 1)
    return images * gain.to(images.dtype)[:, None, None, None]


def random_color(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    max_change: float | None = 0.05,
) -> torch.Tensor:
    """Scale each channel of each image by its own gain: a random change of colour.

    Every channel gets a gain uniform in [1 - max_change, 1 + max_change],
    independently. Independent gains leave no combination of the channels
    unchanged: a linear tilt across the bands (reddening alone) keeps, for
    example, ``G**2 / (R * B)`` exact, which a contrastive network then
    learns to match views by instead of their shape (measured: same-class
    rate 0.44 against 0.62 on built-in galaxies). One channel: a copy.

    Parameters
    ----------
    images, generator
        As for :func:`random_affine`.
    max_change : float or None, default=0.05
        Largest relative change of a channel, in [0, 1].

    Returns
    -------
    coloured : torch.Tensor
        New images of the same shape, dtype and device.

    Examples
    --------
    >>> y = random_color(torch.ones(1, 3, 1, 1), generator=torch.Generator().manual_seed(0))
    >>> bool(((y - 1).abs() <= 0.05).all()), len(set(y.flatten().tolist()))
    (True, 3)
    """
    images = _check_inputs(images, generator)
    max_change = _check_amount(max_change, "max_change", 1.0)
    n, channels = images.shape[:2]
    if channels == 1 or not max_change:
        return images.clone()
    gains = 1 + max_change * (2 * _uniform(images, generator, n, channels) - 1)
    return images * gains.to(images.dtype)[:, :, None, None]
