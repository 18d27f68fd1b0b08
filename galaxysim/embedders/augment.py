"""Batched random augmentations of galaxy images (torch), for self-supervised training.

Contrastive training compares two random views of each galaxy; a denoising
autoencoder learns to undo a degradation. As in Stein et al. (2021) and SimCLR,
the views change only what leaves a galaxy's identity alone: orientation
(rotation, mirror), apparent size (zoom about 10%) and position (sub-pixel
jitter), as one affine map and one bilinear resampling reflecting at the edges
(the sky continues); then seeing (Gaussian PSF blur), optionally the display
stretch (a random gamma), brightness, colour (an independent gain per band)
and sky noise. Each function works on a whole batch ``(n, C, H, W)`` on any
device, returns a new tensor and draws all its randomness from ``generator``
(a :class:`torch.Generator` on the images' device; torch's global one when
None): the same seed gives the same output.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator

from .._validation import check_bool, check_positive_float

__all__ = [
    "GalaxyAugmentation",
    "random_affine",
    "random_blur",
    "random_brightness",
    "random_color",
    "random_gamma",
    "random_noise",
    "random_rotation",
    "random_scale",
    "random_shift",
]

#: The largest ``max_gamma``: powers from exp(-2) to exp(2), about 0.14 to 7.4.
LARGEST_GAMMA = 2.0

# The geometric parts, off; the amounts' upper bounds (GalaxyAugmentation's names).
_NO_GEOMETRY: dict[str, Any] = {"rotation": False, "flip": False, "scale": None, "max_shift": 0.0}
_LARGEST = {
    "max_shift": 0.5,
    "max_blur": math.inf,
    "max_gamma": LARGEST_GAMMA,
    "max_noise": math.inf,
    "max_brightness": 1.0,
    "max_color": 1.0,
}


def _affine(
    images: torch.Tensor,
    angle: torch.Tensor,
    mirror: torch.Tensor,
    zoom: torch.Tensor,
    shift: torch.Tensor,
) -> torch.Tensor:
    """Resample each image once under its own affine map, in pixel units.

    Output pixel ``p`` (pixels from the centre, x right, y down) takes the input
    at ``R(angle) M (p - shift) / zoom``, ``M`` mirroring x where ``mirror``: each image
    is mirrored, turned by ``angle`` (counter-clockwise as displayed: pi / 2 is
    ``torch.rot90(images, 1, (2, 3))``), enlarged ``zoom`` times, moved ``shift`` (dx, dy).
    """
    _, _, height, width = images.shape
    cos, sin = torch.cos(angle), torch.sin(angle)
    sign = 1.0 - 2.0 * mirror.to(angle.dtype)
    linear = (
        torch.stack([torch.stack([cos * sign, -sin], -1), torch.stack([sin * sign, cos], -1)], -2)
        / zoom[:, None, None]
    )
    offset = -(linear @ shift.unsqueeze(-1))
    # affine_grid's coordinates are normalised to [-1, 1] on each axis: with
    # D = diag(W / 2, H / 2), theta = D^-1 [A D | t].
    half = torch.tensor([width / 2, height / 2], dtype=angle.dtype, device=angle.device)
    theta = torch.cat([linear * half / half[:, None], offset / half[:, None]], -1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, "bilinear", "reflection", align_corners=False)


def random_affine(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    rotation: bool = True,
    flip: bool = True,
    scale: tuple[float, float] | None = (0.9, 1.1),
    max_shift: float | None = 0.075,
) -> torch.Tensor:
    """Randomly rotate, mirror, zoom and shift each image, in one resampling.

    Parameters
    ----------
    images : torch.Tensor of shape (n, C, H, W)
        Float images, on any device.
    generator : torch.Generator, optional
        Source of all the random draws, on the images' device.
    rotation : bool, default=True
        Turn each image by an angle uniform in [0, 2 pi).
    flip : bool, default=True
        Mirror each image with probability 1/2.
    scale : (float, float) or None, default=(0.9, 1.1)
        Range of the zoom factor (log-uniform; > 1 enlarges); None or (1, 1)
        is no zoom.
    max_shift : float or None, default=0.075
        Largest shift on each axis (uniform), as a fraction of the image side
        (at most 0.5); 0 or None is no shift.

    Returns
    -------
    augmented : torch.Tensor
        New images of the same shape, dtype and device; a copy with every part off.

    Examples
    --------
    >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> y = random_affine(x, generator=torch.Generator().manual_seed(1))
    >>> y.shape, torch.equal(y, random_affine(x, generator=torch.Generator().manual_seed(1)))
    (torch.Size([2, 3, 16, 16]), True)
    """
    images = _check_inputs(images, generator)
    rotation, flip = check_bool(rotation, "rotation"), check_bool(flip, "flip")
    low, high = _check_scale(scale)
    max_shift = _check_amount(max_shift, "max_shift", _LARGEST["max_shift"])
    if not (rotation or flip or max_shift or low != 1.0 or high != 1.0):
        return images.clone()
    n, _, height, width = images.shape
    draws = _uniform(images, generator, n, 5)
    angle = draws[:, 0] * (2 * math.pi if rotation else 0.0)
    mirror = (draws[:, 1] < 0.5) & flip
    zoom = torch.exp(math.log(low) + draws[:, 2] * (math.log(high) - math.log(low)))
    sides = torch.tensor([width, height], dtype=draws.dtype, device=draws.device)
    shift = (2 * draws[:, 3:] - 1) * max_shift * sides
    return _affine(images, angle, mirror, zoom, shift)


def random_rotation(
    images: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image by a random angle in [0, 2 pi): :func:`random_affine`'s rotation alone.

    Parameters
    ----------
    images, generator
        As for :func:`random_affine`.

    Returns
    -------
    rotated : torch.Tensor
        New images of the same shape, dtype and device.

    Examples
    --------
    >>> random_rotation(torch.ones(2, 1, 8, 8), generator=torch.Generator().manual_seed(0)).sum()
    tensor(128.)
    """
    return random_affine(images, generator=generator, **{**_NO_GEOMETRY, "rotation": True})


def random_scale(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] | None = (0.9, 1.1),
) -> torch.Tensor:
    """Zoom each image about its centre by a random factor: :func:`random_affine`'s zoom alone.

    Parameters
    ----------
    images, generator, scale
        As for :func:`random_affine`.

    Returns
    -------
    zoomed : torch.Tensor
        New images of the same shape, dtype and device.

    Examples
    --------
    >>> random_scale(torch.ones(1, 3, 8, 8), scale=(2.0, 2.0)).mean()
    tensor(1.)
    """
    return random_affine(images, generator=generator, **{**_NO_GEOMETRY, "scale": scale})


def random_shift(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    max_shift: float | None = 0.075,
) -> torch.Tensor:
    """Move each image by a random sub-pixel shift (jitter crop): :func:`random_affine`'s alone.

    Parameters
    ----------
    images, generator, max_shift
        As for :func:`random_affine`.

    Returns
    -------
    shifted : torch.Tensor
        New images of the same shape, dtype and device.

    Examples
    --------
    >>> random_shift(torch.zeros(2, 3, 8, 8), max_shift=0.25).shape
    torch.Size([2, 3, 8, 8])
    """
    return random_affine(images, generator=generator, **{**_NO_GEOMETRY, "max_shift": max_shift})


# ---------------------------------------------------------------- input checks

_SCALE_RULE = "a pair (low, high) of finite numbers > 0 with low <= high, or None"


def _check_inputs(images: Any, generator: Any) -> torch.Tensor:
    """``images`` after checking that it is a 4-D float tensor and ``generator`` a Generator."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (n, C, H, W), got {type(images).__name__}.")
    if images.ndim != 4 or not images.is_floating_point():
        kind = ValueError if images.is_floating_point() else TypeError
        raise kind(
            f"images must be a 4-D (n, C, H, W) float tensor, got {images.dtype} "
            f"of shape {tuple(images.shape)}."
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}.")
    return images


def _check_amount(value: Any, name: str, upper: float = math.inf) -> float:
    """``value`` as a float in [0, upper]; None means 0 (switched off)."""
    if value is None:
        return 0.0
    value = check_positive_float(value, name, allow_zero=True)
    if value > upper:
        raise ValueError(f"{name} must be in [0, {upper}], got {value!r}.")
    return value


def _check_scale(value: Any, name: str = "scale") -> tuple[float, float]:
    if value is None:
        return 1.0, 1.0
    try:
        low, high = (check_positive_float(v, name) for v in value)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name} must be {_SCALE_RULE}, got {value!r}.") from None
    # check_positive_float returns None only when allow_none is given.
    assert low is not None and high is not None
    if low > high:
        raise ValueError(f"{name} must be {_SCALE_RULE}, got {value!r}.")
    return low, high


def _uniform(images: torch.Tensor, generator: torch.Generator | None, *size: int) -> torch.Tensor:
    """Uniform [0, 1) numbers on the images' device (float64 for float64 images)."""
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    return torch.rand(size, generator=generator, device=images.device, dtype=dtype)


# ------------------------------------------------------------- photometric views


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
    depends on the collection: it helped on the built-in galaxies and hurt
    on toy galaxies of another generator (docs/contrastive.md, "Even batches,
    the display stretch and more views"), so
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
    learns to match views by instead of their shape (docs/contrastive.md,
    "The views"). One channel: a copy.

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


# GalaxyAugmentation's photometric parts in order: (parameter, function, its keyword).
_PHOTOMETRY = (
    ("max_blur", random_blur, "max_sigma"),
    ("max_gamma", random_gamma, "max_gamma"),
    ("max_brightness", random_brightness, "max_change"),
    ("max_color", random_color, "max_change"),
    ("max_noise", random_noise, "max_sigma"),
)


class GalaxyAugmentation(BaseEstimator):
    """Random views of galaxy images: geometric, then photometric changes, batched in torch.

    The defaults suit Galaxy10-like 64x64 crops (a centred galaxy on noisy sky).
    A part set to 0, None or False is off (no resampling without geometry).
    The parameters are checked at use, with errors naming them.

    Parameters
    ----------
    rotation : bool, default=True
        Rotate by a random angle (:func:`random_affine`).
    flip : bool, default=True
        Mirror with probability 1/2.
    scale : (float, float) or None, default=(0.9, 1.1)
        Range of the zoom factor.
    max_shift : float or None, default=0.075
        Largest shift, as a fraction of the image side.
    max_blur : float or None, default=1.0
        Largest PSF standard deviation, in pixels (:func:`random_blur`).
    max_gamma : float or None, default=0.0
        Largest change of the display stretch, as ``|log(gamma)|``, at most 2
        (:func:`random_gamma`). Off by default: it helps on some collections
        and hurts on others (docs/contrastive.md); tune it on
        yours, for example as ``augmentation__max_gamma`` in a grid search.
    max_noise : float or None, default=0.05
        Largest noise standard deviation (:func:`random_noise`).
    max_brightness : float or None, default=0.15
        Largest relative brightness change (:func:`random_brightness`).
    max_color : float or None, default=0.05
        Largest change of one channel's gain (:func:`random_color`).
    clip : bool, default=False
        Clip the augmented images to [0, 1].

    Examples
    --------
    >>> augment = GalaxyAugmentation(max_noise=0.02)
    >>> x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> augment(x, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([4, 3, 32, 32])
    """

    def __init__(
        self,
        *,
        rotation: bool = True,
        flip: bool = True,
        scale: tuple[float, float] | None = (0.9, 1.1),
        max_shift: float | None = 0.075,
        max_blur: float | None = 1.0,
        max_gamma: float | None = 0.0,
        max_noise: float | None = 0.05,
        max_brightness: float | None = 0.15,
        max_color: float | None = 0.05,
        clip: bool = False,
    ) -> None:
        self.rotation = rotation
        self.flip = flip
        self.scale = scale
        self.max_shift = max_shift
        self.max_blur = max_blur
        self.max_gamma = max_gamma
        self.max_noise = max_noise
        self.max_brightness = max_brightness
        self.max_color = max_color
        self.clip = clip

    def _check_parameters(self) -> dict[str, Any]:
        """The parameters, checked (None read as off); raises naming a bad one."""
        checked: dict[str, Any] = {
            name: check_bool(getattr(self, name), name) for name in ("rotation", "flip", "clip")
        }
        checked["scale"] = _check_scale(self.scale, "scale")
        for name, upper in _LARGEST.items():
            checked[name] = _check_amount(getattr(self, name), name, upper)
        return checked

    def geometric(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The geometric part alone: rotation, flip, zoom and shift, in one resampling.

        Parameters
        ----------
        images, generator
            As for :meth:`__call__`.

        Returns
        -------
        moved : torch.Tensor
            New images of the same shape, dtype and device.

        Examples
        --------
        >>> GalaxyAugmentation(scale=None).geometric(torch.ones(2, 3, 8, 8)).mean()
        tensor(1.)
        """
        p, images = self._check_parameters(), _check_inputs(images, generator)
        return random_affine(images, generator=generator, **{k: p[k] for k in _NO_GEOMETRY})

    def photometric(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The photometric part alone: blur, stretch, brightness, colour, noise, optional clip.

        Parameters
        ----------
        images, generator
            As for :meth:`__call__`.

        Returns
        -------
        changed : torch.Tensor
            New images of the same shape, dtype and device.

        Examples
        --------
        >>> GalaxyAugmentation(clip=True).photometric(torch.ones(2, 3, 8, 8)).max()
        tensor(1.)
        """
        p = self._check_parameters()
        out = _check_inputs(images, generator)
        for name, augment, keyword in _PHOTOMETRY:
            if p[name]:  # a part switched off costs nothing
                out = augment(out, generator=generator, **{keyword: p[name]})
        if p["clip"]:
            return out.clamp(0.0, 1.0)
        return out.clone() if out is images else out

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Augment a batch: :meth:`geometric`, then :meth:`photometric`.

        Parameters
        ----------
        images, generator
            As for :func:`random_affine` (images in [0, 1] for the default strengths).

        Returns
        -------
        augmented : torch.Tensor
            New images of the same shape, dtype and device.

        Examples
        --------
        >>> GalaxyAugmentation(clip=True)(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
        """
        return self.photometric(self.geometric(images, generator), generator)

    def pair(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An (input, target) pair for denoising training: one geometry, photometry on one.

        Parameters
        ----------
        images, generator
            As for :meth:`__call__`.

        Returns
        -------
        augmented : torch.Tensor
            ``photometric(target)``: the degraded view.
        target : torch.Tensor
            ``geometric(images)``: the clean view, aligned with ``augmented``.

        Examples
        --------
        >>> only_noise = GalaxyAugmentation(max_blur=0, max_brightness=0, max_color=0)
        >>> noisy, clean = only_noise.pair(torch.full((2, 3, 16, 16), 0.5), torch.Generator())
        >>> bool(0 < (noisy - clean).std() < 0.05)
        True
        """
        target = self.geometric(images, generator)
        return self.photometric(target, generator), target
