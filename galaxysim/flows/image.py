"""A multiscale normalizing flow on images (Glow / RealNVP style).

The flow follows Glow (Kingma & Dhariwal 2018, arXiv:1807.03039) built into
the multiscale architecture of RealNVP (Dinh et al. 2016, arXiv:1605.08803).
Each of ``n_levels`` levels squeezes the image (2x2 pixel blocks become
channels), applies ``n_steps`` steps of

* :class:`ActNorm`: a per-channel affine map initialised from the first batch,
* :class:`InvertibleConv1x1`: a learned channel mixing, LU-parametrised,
* :class:`AffineCoupling`: half of the channels are scaled and shifted by
  a small convolutional network of the other half,

and then (except at the last level) factors half of the channels out to the
standard normal base, so that deeper levels work on fewer, coarser channels.

Pixel intensities are 8-bit: an image ``x`` in [0, 1] has levels
``k = 255 x`` and the flow models the continuous ``y = (k + u) / 256`` with
``u`` uniform on [0, 1) (uniform dequantization, Theis et al. 2016,
arXiv:1511.01844). Then ``P(k) ~= p(y_mid) / 256**D`` with ``y_mid`` the centre
of the pixel cell, which is what :func:`discrete_log_likelihood` computes.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DensityFlow

__all__ = [
    "N_INTENSITY_LEVELS",
    "ActNorm",
    "AffineCoupling",
    "FlowStep",
    "InvertibleConv1x1",
    "MultiscaleImageFlow",
    "bits_per_dim",
    "discrete_log_likelihood",
    "levels_to_unit",
    "quantize_unit",
    "squeeze",
    "unit_to_images",
    "unsqueeze",
]

#: Number of intensity levels of an 8-bit image channel.
N_INTENSITY_LEVELS = 256

# A channel that is constant in the first batch (e.g. a blank border) would get an
# infinite ActNorm scale; this floor keeps the initial scale finite.
_MIN_INIT_STD = 1e-2


def squeeze(x: Tensor) -> Tensor:
    """Move each 2x2 block of pixels into channels: ``(n, C, H, W) -> (n, 4C, H/2, W/2)``.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W)
        H and W even.

    Returns
    -------
    y : torch.Tensor of shape (n, 4 C, H / 2, W / 2)

    Examples
    --------
    >>> squeeze(torch.zeros(1, 3, 4, 4)).shape
    torch.Size([1, 12, 2, 2])
    """
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """Inverse of :func:`squeeze`: ``(n, 4C, H, W) -> (n, C, 2H, 2W)``.

    Parameters
    ----------
    x : torch.Tensor of shape (n, 4 C, H, W)

    Returns
    -------
    y : torch.Tensor of shape (n, C, 2 H, 2 W)

    Examples
    --------
    >>> x = torch.randn(2, 3, 4, 6)
    >>> bool(torch.equal(unsqueeze(squeeze(x)), x))
    True
    """
    n, c, h, w = x.shape
    x = x.reshape(n, c // 4, 2, 2, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)


class ActNorm(nn.Module):
    """Per-channel affine map ``y = (x + loc) * exp(log_scale)`` (Glow, section 3.1).

    On its first forward call it sets ``loc`` and ``log_scale`` so that that
    batch comes out with zero mean and unit variance per channel
    (data-dependent initialisation); a loaded state dict counts as initialised.

    Parameters
    ----------
    channels : int
        Number of channels.

    Examples
    --------
    >>> norm = ActNorm(2)
    >>> y, log_det = norm(3.0 + 2.0 * torch.randn(64, 2, 4, 4))
    >>> abs(float(y.detach().mean())) < 1e-5, round(float(y.detach().std()), 1)
    (True, 1.0)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        # A Python copy of the flag avoids a device sync on every forward call.
        self._ready = False

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, *args, **kwargs
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ready = bool(self.initialized)

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(_MIN_INIT_STD)
        self.loc.copy_(-mean)
        self.log_scale.copy_(-torch.log(std))
        self.initialized.fill_(True)
        self._ready = True

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``y`` and ``log |det dy/dx|`` per sample."""
        if not self._ready:
            self._initialize(x)
        y = (x + self.loc) * torch.exp(self.log_scale)
        log_det = x.shape[2] * x.shape[3] * self.log_scale.sum()
        return y, log_det.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        """Return ``x`` such that ``forward(x)[0] == y``."""
        return y * torch.exp(-self.log_scale) - self.loc


class InvertibleConv1x1(nn.Module):
    """Learned invertible channel mixing, ``W = P L (U + diag(s))`` (Glow, section 3.2).

    The LU parametrisation makes ``log |det W| = sum(log |s|)`` cheap and
    keeps ``W`` invertible; ``P`` is a fixed permutation and the initial
    ``W`` a random rotation.

    Parameters
    ----------
    channels : int
        Number of channels.

    Examples
    --------
    >>> conv = InvertibleConv1x1(4)
    >>> x = torch.randn(2, 4, 3, 3)
    >>> y, log_det = conv(x)
    >>> bool(torch.allclose(conv.inverse(y), x, atol=1e-5))
    True
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        rotation, _ = torch.linalg.qr(torch.randn(channels, channels))
        permutation, lower, upper = torch.linalg.lu(rotation)
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign_s", torch.sign(diagonal))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("identity", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(diagonal)))

    def weight(self) -> Tensor:
        """Return the ``(C, C)`` mixing matrix."""
        lower = self.lower * self.lower_mask + self.identity
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.permutation @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``W x`` at every pixel and ``log |det|`` per sample."""
        c = x.shape[1]
        y = F.conv2d(x, self.weight().view(c, c, 1, 1))
        log_det = x.shape[2] * x.shape[3] * self.log_s.sum()
        return y, log_det.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        """Return ``W^-1 y`` at every pixel."""
        c = y.shape[1]
        return F.conv2d(y, torch.linalg.inv(self.weight()).view(c, c, 1, 1))


class AffineCoupling(nn.Module):
    """Affine coupling: ``y_b = x_b * s(x_a) + t(x_a)``, ``y_a = x_a`` (RealNVP, Glow).

    ``x_a`` is the first half of the channels. ``s`` and ``t`` come from a
    small convolutional network (3x3 convolution, 1x1 convolutions, 3x3
    convolution) whose last layer starts at zero, so that every coupling
    starts as the same fixed scaling; ``s = sigmoid(h + 2)`` as in Glow keeps
    the scale in (0, 1) and the training stable.

    Parameters
    ----------
    channels : int
        Number of channels, at least 2.
    hidden_features : sequence of int
        Channels of the hidden convolutions (at least one).

    Examples
    --------
    >>> coupling = AffineCoupling(4, (8,))
    >>> x = torch.randn(2, 4, 3, 3)
    >>> y, log_det = coupling(x)
    >>> bool(torch.equal(y[:, :2], x[:, :2]))  # the conditioning half passes unchanged
    True
    >>> bool(torch.allclose(coupling.inverse(y), x, atol=1e-6))
    True
    """

    def __init__(self, channels: int, hidden_features: Sequence[int]) -> None:
        super().__init__()
        self.n_conditioning = channels // 2
        n_transformed = channels - self.n_conditioning
        widths = [self.n_conditioning, *(int(h) for h in hidden_features)]
        layers: list[nn.Module] = [nn.Conv2d(widths[0], widths[1], 3, padding=1), nn.ReLU()]
        for width_in, width_out in zip(widths[1:-1], widths[2:]):
            layers += [nn.Conv2d(width_in, width_out, 1), nn.ReLU()]
        last = nn.Conv2d(widths[-1], 2 * n_transformed, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)

    def _shift_and_log_scale(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        # oneDNN convolutions run markedly faster on channels-last tensors on the CPU.
        h = self.net(x_a.contiguous(memory_format=torch.channels_last))
        return h[:, 0::2], F.logsigmoid(h[:, 1::2] + 2.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``y`` and ``log |det dy/dx|`` per sample."""
        x_a, x_b = x[:, : self.n_conditioning], x[:, self.n_conditioning :]
        shift, log_scale = self._shift_and_log_scale(x_a)
        y_b = x_b * torch.exp(log_scale) + shift
        return torch.cat([x_a, y_b], dim=1), log_scale.flatten(1).sum(dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        """Return ``x`` such that ``forward(x)[0] == y``."""
        y_a, y_b = y[:, : self.n_conditioning], y[:, self.n_conditioning :]
        shift, log_scale = self._shift_and_log_scale(y_a)
        return torch.cat([y_a, (y_b - shift) * torch.exp(-log_scale)], dim=1)


class FlowStep(nn.Module):
    """One Glow step: :class:`ActNorm`, :class:`InvertibleConv1x1`, :class:`AffineCoupling`.

    Parameters
    ----------
    channels : int
        Number of channels, at least 2.
    hidden_features : sequence of int
        Hidden channels of the coupling network.

    Examples
    --------
    >>> step = FlowStep(4, (8,))
    >>> x = torch.randn(3, 4, 2, 2)
    >>> y, log_det = step(x)
    >>> bool(torch.allclose(step.inverse(y), x, atol=1e-5))
    True
    """

    def __init__(self, channels: int, hidden_features: Sequence[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                ActNorm(channels),
                InvertibleConv1x1(channels),
                AffineCoupling(channels, hidden_features),
            ]
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``y`` and ``log |det dy/dx|`` per sample."""
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, layer_log_det = layer(x)
            log_det = log_det + layer_log_det
        return x, log_det

    def inverse(self, y: Tensor) -> Tensor:
        """Return ``x`` such that ``forward(x)[0] == y``."""
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


class MultiscaleImageFlow(DensityFlow):
    """Multiscale Glow-style flow on ``(n, H, W, C)`` images with intensities in (0, 1).

    Parameters
    ----------
    image_shape : tuple of int
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
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
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
            for step in steps:
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
            for step in reversed(self.levels[index]):
                h = step.inverse(h)
            h = unsqueeze(h)
        return h.permute(0, 2, 3, 1) + 0.5


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


def bits_per_dim(log_likelihood: Tensor, n_dims: int) -> Tensor:
    """Convert the log-likelihood of a discrete image (nats) to bits per dimension.

    Parameters
    ----------
    log_likelihood : torch.Tensor of shape (n,)
        From :func:`discrete_log_likelihood`.
    n_dims : int
        Number of intensities per image.

    Returns
    -------
    bits : torch.Tensor of shape (n,)
        ``-log_likelihood / (D log 2)``; 8 for a uniform distribution over
        8-bit values.

    Examples
    --------
    >>> float(bits_per_dim(discrete_log_likelihood(torch.tensor([0.0]), 4), 4)[0])
    8.0
    """
    return -log_likelihood / (n_dims * math.log(2.0))
