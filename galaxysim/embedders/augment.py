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

from .._validation import check_bool
from ._augment_checks import _check_amount, _check_inputs, _check_scale, _uniform
from ._photometric import (
    LARGEST_GAMMA,
    random_blur,
    random_brightness,
    random_color,
    random_gamma,
    random_noise,
)

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
# The geometric parts, off; the amounts' upper bounds (GalaxyAugmentation's names).
_NO_GEOMETRY = {"rotation": False, "flip": False, "scale": None, "max_shift": 0.0}
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
        and hurts on others (measured in :func:`random_gamma`); tune it on
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
        checked = {
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
