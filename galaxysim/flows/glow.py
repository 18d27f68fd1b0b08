"""The layers of Glow (Kingma & Dhariwal 2018, arXiv:1807.03039) on image tensors.

Tensors are channels-first, ``(n, C, H, W)``. :func:`squeeze` and
:func:`unsqueeze` trade resolution for channels (RealNVP's multiscale trick,
Dinh et al. 2016, arXiv:1605.08803); a :class:`FlowStep` chains

* :class:`ActNorm`: a per-channel affine map initialised from the first batch,
* :class:`InvertibleConv1x1`: a learned channel mixing, LU-parametrised,
* :class:`AffineCoupling`: half of the channels are scaled and shifted by
  a small convolutional network of the other half.

Every layer returns ``(y, log |det dy/dx|)`` from ``forward`` and has an
exact ``inverse``. :class:`~galaxysim.flows.image.MultiscaleImageFlow`
assembles them into a flow on images.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "FlowStep",
    "InvertibleConv1x1",
    "squeeze",
    "unsqueeze",
]

# A channel that is constant in the first batch (e.g. a blank border) would get an
# infinite ActNorm scale; this floor keeps the initial scale finite.
_MIN_INIT_STD = 1e-2


class _Invertible(Protocol):
    """A layer of a :class:`FlowStep`: it can be undone."""

    def inverse(self, y: Tensor) -> Tensor: ...


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

    # Buffers: torch types them as Tensor | Module.
    initialized: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        # A Python copy of the flag avoids a device sync on every forward call.
        self._ready = False

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
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

    # Buffers: torch types them as Tensor | Module.
    permutation: Tensor
    sign_s: Tensor
    lower_mask: Tensor
    identity: Tensor

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
        for width_in, width_out in itertools.pairwise(widths[1:]):
            layers += [nn.Conv2d(width_in, width_out, 1), nn.ReLU()]
        last = nn.Conv2d(widths[-1], 2 * n_transformed, 3, padding=1)
        nn.init.zeros_(last.weight)
        assert last.bias is not None  # a Conv2d has a bias unless made with bias=False
        nn.init.zeros_(last.bias)
        layers.append(last)
        net = nn.Sequential(*layers)
        # Module.to takes memory_format, as Tensor.to does; torch's overloads of it omit it.
        self.net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

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
        # torch types a ModuleList's items as Module.
        for layer in reversed(cast("Sequence[_Invertible]", self.layers)):
            y = layer.inverse(y)
        return y
