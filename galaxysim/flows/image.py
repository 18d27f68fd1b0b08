"""A multiscale normalizing flow on 8-bit images, and its data model.

:class:`MultiscaleImageFlow` follows Glow (Kingma & Dhariwal 2018,
arXiv:1807.03039) built into the multiscale architecture of RealNVP (Dinh et
al. 2016, arXiv:1605.08803), with the layers of :mod:`galaxysim.flows.glow`.
Each of ``n_levels`` levels squeezes the image (2x2 pixel blocks become
channels), applies ``n_steps`` :class:`~galaxysim.flows.glow.FlowStep` s, and
then (except at the last level) factors half of the channels out to the
standard normal base, so that deeper levels work on fewer, coarser channels.

The flow owns the data model of 8-bit images. An image ``x`` in [0, 1] has
levels ``k = 255 x``, and the flow models the continuous ``y = (k + u) / 256``
with ``u`` uniform on [0, 1) (uniform dequantization, Theis et al. 2016,
arXiv:1511.01844; :func:`dequantize` during training). Then
``P(k) ~= p(y_mid) / 256**D`` with ``y_mid`` the centre of the pixel cell,
which is what :func:`discrete_log_likelihood` computes; the training loss is
that likelihood in bits per dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from ..metrics import bits_per_dim
from .base import Augmentation, DensityFlow
from .glow import FlowStep, squeeze, unsqueeze

__all__ = [
    "N_INTENSITY_LEVELS",
    "MultiscaleImageFlow",
    "dequantize",
    "discrete_log_likelihood",
    "levels_to_unit",
    "quantize_unit",
    "unit_to_images",
]

#: Number of intensity levels of an 8-bit image channel.
N_INTENSITY_LEVELS = 256


class MultiscaleImageFlow(DensityFlow):
    """Multiscale Glow-style flow on ``(n, H, W, C)`` images with intensities in (0, 1).

    :meth:`latent` and :meth:`inverse` act on the continuous intensities
    ``y`` of the flow's input space. The data-model methods
    (:meth:`log_likelihood`, :meth:`to_latent`, :meth:`from_latent`,
    :meth:`sample_from_latent`) take and give 8-bit images in [0, 1], and
    training reads 8-bit levels (:meth:`training_tensor`), dequantized on
    the fly (:attr:`augmentation`), with a loss in bits per dimension.

    Parameters
    ----------
    image_shape : sequence of 3 int
        ``(H, W, C)``; ``H`` and ``W`` must be divisible by ``2**n_levels``.
    n_levels : int, default=3
        Number of squeeze levels.
    n_steps : int, default=4
        Flow steps per level.
    hidden_features : sequence of int, default=(64, 64)
        Hidden channels of each coupling network.

    Attributes
    ----------
    latent_shapes : list of tuple of int
        ``(C, H, W)`` of the latent block factored out at each level; the
        latent vector is their flattened concatenation.
    n_latent : int
        ``H * W * C``.

    Examples
    --------
    >>> net = MultiscaleImageFlow((8, 8, 3), n_levels=2, n_steps=1, hidden_features=(8,))
    >>> y = torch.rand(2, 8, 8, 3)
    >>> z, log_det = net.latent(y)
    >>> z.shape, net.latent_shapes
    (torch.Size([2, 192]), [(6, 4, 4), (24, 2, 2)])
    >>> bool(torch.allclose(net.inverse(z), y, atol=1e-5))
    True
    >>> images = torch.randint(0, 256, (2, 8, 8, 3)) / 255.0
    >>> bool((net.log_likelihood(images) < 0).all())  # the probability of 8-bit images
    True
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        n_levels: int = 3,
        n_steps: int = 4,
        hidden_features: Sequence[int] = (64, 64),
    ) -> None:
        super().__init__()
        height, width, channels = (int(s) for s in image_shape)
        factor = 2**n_levels
        if height % factor or width % factor:
            raise ValueError(
                f"image_shape={tuple(image_shape)} cannot be squeezed {n_levels} times: "
                f"height and width must be divisible by 2**n_levels={factor}."
            )
        self.image_shape = (height, width, channels)
        self.n_latent = height * width * channels
        self.latent_shapes: list[tuple[int, int, int]] = []
        self.levels = nn.ModuleList()
        c, h, w = channels, height, width
        for level in range(n_levels):
            c, h, w = 4 * c, h // 2, w // 2
            self.levels.append(
                nn.ModuleList([FlowStep(c, hidden_features) for _ in range(n_steps)])
            )
            if level < n_levels - 1:
                self.latent_shapes.append((c - c // 2, h, w))
                c = c // 2
        self.latent_shapes.append((c, h, w))

    def latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``(n, H, W, C)`` intensities in (0, 1) to ``(n, H*W*C)`` latents.

        Parameters
        ----------
        x : torch.Tensor of shape (n, H, W, C)
            Continuous (dequantized) intensities.

        Returns
        -------
        z : torch.Tensor of shape (n, H*W*C)
            Latent points under the standard normal base.
        log_det : torch.Tensor of shape (n,)
            ``log |det dz/dx|``.
        """
        n = x.shape[0]
        # Centring on 0 has unit Jacobian; it only spares the first ActNorm a large shift.
        h = (x - 0.5).permute(0, 3, 1, 2)
        log_det = torch.zeros(n, dtype=x.dtype, device=x.device)
        parts = []
        last = len(self.levels) - 1
        for index, steps in enumerate(self.levels):
            h = squeeze(h)
            # torch types a ModuleList's items as Module; each level is a ModuleList of steps.
            for step in cast("Sequence[FlowStep]", steps):
                h, step_log_det = step(h)
                log_det = log_det + step_log_det
            if index < last:
                keep = h.shape[1] // 2
                parts.append(h[:, keep:].reshape(n, -1))
                h = h[:, :keep]
        parts.append(h.reshape(n, -1))
        return torch.cat(parts, dim=1), log_det

    def inverse(self, z: Tensor) -> Tensor:
        """Map ``(n, H*W*C)`` latents back to ``(n, H, W, C)`` intensities.

        Parameters
        ----------
        z : torch.Tensor of shape (n, H*W*C)
            Latent points.

        Returns
        -------
        x : torch.Tensor of shape (n, H, W, C)
            Continuous intensities (not clipped).
        """
        n = z.shape[0]
        sizes = [math.prod(shape) for shape in self.latent_shapes]
        parts = [
            part.reshape(n, *shape)
            for part, shape in zip(torch.split(z, sizes, dim=1), self.latent_shapes)
        ]
        h = parts[-1]
        for index in range(len(self.levels) - 1, -1, -1):
            if index < len(self.levels) - 1:
                h = torch.cat([h, parts[index]], dim=1)
            for step in reversed(cast("Sequence[FlowStep]", self.levels[index])):
                h = step.inverse(h)
            h = unsqueeze(h)
        return h.permute(0, 2, 3, 1) + 0.5

    # ----------------------------------------------------------------- data model

    def training_tensor(self, data: np.ndarray) -> Tensor:
        """The training images as 8-bit levels ``k = 255 x`` (float32), before dequantization.

        Parameters
        ----------
        data : ndarray of shape (n, H, W, C)
            Images in [0, 1], float32.

        Returns
        -------
        levels : torch.Tensor of shape (n, H, W, C)
        """
        return torch.from_numpy(np.asarray(data, dtype=np.float32) * np.float32(255.0))

    @torch.no_grad()
    def initialize(self, levels: Tensor) -> None:
        """Initialise every ActNorm layer on dequantized training levels.

        Parameters
        ----------
        levels : torch.Tensor of shape (n, H, W, C)
            Training levels (from :meth:`training_tensor`), a random subset of a
            few hundred images; the noise comes from torch's global generator.
        """
        noise = torch.rand(levels.shape) - 0.5
        self.log_prob(levels_to_unit(levels + noise))

    def training_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """Mean bits per dimension of a batch of (dequantized) levels.

        Parameters
        ----------
        batch : tuple of torch.Tensor
            ``batch[0]`` holds levels ``k + u - 1/2`` (see :func:`dequantize`).

        Returns
        -------
        loss : torch.Tensor
            ``-log P / (D log 2)`` averaged over the batch (8 for a uniform model).
        """
        log_likelihood = discrete_log_likelihood(
            self.log_prob(levels_to_unit(batch[0])), self.n_latent
        )
        # A tensor of log-likelihoods gives a tensor of bits.
        return cast(Tensor, bits_per_dim(log_likelihood, self.n_latent)).mean()

    @property
    def augmentation(self) -> Augmentation:
        """Uniform dequantization noise on each training batch (:func:`dequantize`)."""
        return dequantize

    def log_likelihood(self, x: Tensor) -> Tensor:
        """Log-probability of each 8-bit image ``x`` in [0, 1] (nats), at its cells' centres.

        Parameters
        ----------
        x : torch.Tensor of shape (n, H, W, C)
            Images in [0, 1] whose values are multiples of 1/255.

        Returns
        -------
        log_likelihood : torch.Tensor of shape (n,)
            ``log p(y_mid) - D log 256`` (see :func:`discrete_log_likelihood`).
        """
        log_density = self.log_prob(levels_to_unit(x * 255.0))
        return discrete_log_likelihood(log_density, self.n_latent)

    def to_latent(self, x: Tensor) -> Tensor:
        """Latent points of the centres of the pixel cells of images ``x`` in [0, 1]."""
        return self.latent(levels_to_unit(x * 255.0))[0]

    def from_latent(self, z: Tensor) -> Tensor:
        """Images in [0, 1] at latent points: clipped, not quantised (exact inverse)."""
        return unit_to_images(self.inverse(z))

    def sample_from_latent(self, z: Tensor) -> Tensor:
        """8-bit images in [0, 1] from latent draws: the cells that contain their points."""
        return quantize_unit(self.inverse(z))

    def for_inference(self) -> MultiscaleImageFlow:
        """Eval mode in float32: the image flow is large, and scores it in its own precision."""
        return self.eval()


def levels_to_unit(levels: Tensor) -> Tensor:
    """Map 8-bit levels ``k`` (plus dequantization noise) to ``y = (k + 1/2) / 256``.

    Parameters
    ----------
    levels : torch.Tensor
        ``255 * x`` for images ``x`` in [0, 1], optionally plus noise in
        [-1/2, 1/2) (uniform dequantization); without noise the result is
        the centre of the pixel's cell.

    Returns
    -------
    y : torch.Tensor
        Intensities in (0, 1), the flow's input space.

    Examples
    --------
    >>> levels_to_unit(torch.tensor([0.0, 255.0])) * 256
    tensor([  0.5000, 255.5000])
    """
    return (levels + 0.5) / N_INTENSITY_LEVELS


def unit_to_images(y: Tensor) -> Tensor:
    """Inverse of :func:`levels_to_unit` (noise-free), as images in [0, 1], clipped.

    Parameters
    ----------
    y : torch.Tensor
        Intensities in the flow's input space.

    Returns
    -------
    images : torch.Tensor
        ``(256 y - 1/2) / 255`` clipped to [0, 1]; exact inverse inside the range.

    Examples
    --------
    >>> unit_to_images(levels_to_unit(torch.tensor([51.0]))) * 255
    tensor([51.])
    """
    return ((y * N_INTENSITY_LEVELS - 0.5) / (N_INTENSITY_LEVELS - 1)).clamp(0.0, 1.0)


def quantize_unit(y: Tensor) -> Tensor:
    """Return the 8-bit image whose pixel cells contain ``y``, scaled to [0, 1].

    Parameters
    ----------
    y : torch.Tensor
        Intensities in the flow's input space (e.g. a sample).

    Returns
    -------
    images : torch.Tensor
        ``floor(256 y)`` clipped to [0, 255], divided by 255.

    Examples
    --------
    >>> quantize_unit(torch.tensor([-0.1, 0.5, 1.2])) * 255
    tensor([  0., 128., 255.])
    """
    levels = torch.floor(y * N_INTENSITY_LEVELS).clamp(0, N_INTENSITY_LEVELS - 1)
    return levels / (N_INTENSITY_LEVELS - 1)


def discrete_log_likelihood(log_density: Tensor, n_dims: int) -> Tensor:
    """Turn the density of dequantized intensities into the log-probability of the 8-bit image.

    ``log P(k) ~= log p(y_mid) - D log 256``: the probability of a pixel cell
    of side 1/256 is the density at its centre times its volume.

    Parameters
    ----------
    log_density : torch.Tensor of shape (n,)
        ``log p(y)`` in nats.
    n_dims : int
        Number of intensities per image, ``D = H * W * C``.

    Returns
    -------
    log_likelihood : torch.Tensor of shape (n,)
        Log-probability of the discrete image, nats (always <= 0 for a normalised p).

    Examples
    --------
    >>> round(float(discrete_log_likelihood(torch.tensor([0.0]), 1)[0]), 4)  # -log 256
    -5.5452
    """
    return log_density - n_dims * math.log(N_INTENSITY_LEVELS)


def dequantize(batch: tuple[Tensor, ...], generator: torch.Generator) -> tuple[Tensor, ...]:
    """Add uniform noise in [-1/2, 1/2) to a batch of 8-bit levels (uniform dequantization).

    Parameters
    ----------
    batch : tuple of torch.Tensor
        ``batch[0]`` holds levels ``k`` in [0, 255].
    generator : torch.Generator
        On the batch's device; the source of the noise.

    Returns
    -------
    batch : tuple of torch.Tensor
        ``(k + u - 1/2,)`` with ``u`` uniform on [0, 1): after
        :func:`levels_to_unit`, a uniform point of each pixel's cell.

    Examples
    --------
    >>> levels = torch.full((2, 3), 7.0)
    >>> (noisy,) = dequantize((levels,), torch.Generator().manual_seed(0))
    >>> bool(((noisy >= 6.5) & (noisy < 7.5)).all())
    True
    """
    levels = batch[0]
    noise = torch.rand(levels.shape, generator=generator, device=levels.device, dtype=levels.dtype)
    return (levels + noise - 0.5,)
