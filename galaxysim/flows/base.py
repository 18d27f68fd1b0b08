"""The interface every flow network in :mod:`galaxysim.flows` implements.

A flow network maps data ``x`` to a latent ``z`` under a standard normal base
distribution. :class:`DensityFlow` fixes the four operations the estimator
needs (``latent``, ``inverse``, ``log_prob``, ``n_latent``), so that
:class:`~galaxysim.flows.FlowDensityEstimator` treats the zuko vector flows,
the multiscale image flow and the jammy_flows adapter alike.
:class:`Standardization` is the fixed affine map in front of the vector flows.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor, nn

__all__ = ["DensityFlow", "Standardization", "standard_normal_log_prob"]

_LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Log density of the standard normal, summed over all but the first dimension.

    Parameters
    ----------
    z : torch.Tensor of shape (n, ...)
        Latent points.

    Returns
    -------
    log_prob : torch.Tensor of shape (n,)
        ``sum(-z**2 / 2 - log(2 pi) / 2)`` over each sample's entries.

    Examples
    --------
    >>> round(float(standard_normal_log_prob(torch.zeros(1, 2))[0]), 4)  # -log(2 pi)
    -1.8379
    """
    flat = z.reshape(z.shape[0], -1)
    return -0.5 * (flat.pow(2).sum(dim=1) + flat.shape[1] * _LOG_2PI)


class DensityFlow(nn.Module, abc.ABC):
    """A bijection from data to a standard normal latent, with its log-determinant.

    Subclasses implement :meth:`latent` and :meth:`inverse`; the density
    follows from the change of variables,
    ``log p(x) = log N(z; 0, I) + log |det dz/dx|``.

    Examples
    --------
    >>> class Shift(DensityFlow):
    ...     n_latent = 1
    ...     def latent(self, x):
    ...         return x - 1.0, torch.zeros(x.shape[0])
    ...     def inverse(self, z):
    ...         return z + 1.0
    >>> round(float(Shift().log_prob(torch.ones(1, 1))[0]), 4)  # log N(0; 0, 1)
    -0.9189
    """

    #: Number of latent dimensions (the flattened size of one sample).
    n_latent: int

    @abc.abstractmethod
    def latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map data to the latent space.

        Parameters
        ----------
        x : torch.Tensor
            A batch of data, samples along the first dimension.

        Returns
        -------
        z : torch.Tensor of shape (n, n_latent)
            Latent points.
        log_det : torch.Tensor of shape (n,)
            ``log |det dz/dx|`` of each sample.
        """

    @abc.abstractmethod
    def inverse(self, z: Tensor) -> Tensor:
        """Map latent points of shape ``(n, n_latent)`` back to data.

        Parameters
        ----------
        z : torch.Tensor of shape (n, n_latent)
            Latent points.

        Returns
        -------
        x : torch.Tensor
            Data, shaped like the input of :meth:`latent`.
        """

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density of each sample of ``x`` (nats).

        Parameters
        ----------
        x : torch.Tensor
            A batch of data.

        Returns
        -------
        log_prob : torch.Tensor of shape (n,)
            ``log N(z; 0, I) + log |det dz/dx|``.
        """
        z, log_det = self.latent(x)
        return standard_normal_log_prob(z) + log_det

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`log_prob`, so that the module can be called directly."""
        return self.log_prob(x)


class Standardization(nn.Module):
    """The fixed map ``u = (x - loc) / scale`` with its log-determinant.

    Parameters
    ----------
    loc : torch.Tensor of shape (d,)
        Per-feature shift (the training mean).
    scale : torch.Tensor of shape (d,)
        Per-feature positive scale (the training standard deviation).

    Examples
    --------
    >>> s = Standardization(torch.tensor([1.0]), torch.tensor([2.0]))
    >>> u, log_det = s(torch.tensor([[5.0]]))
    >>> float(u[0, 0]), round(float(log_det[0]), 4)  # log(1/2)
    (2.0, -0.6931)
    """

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("loc", torch.as_tensor(loc).clone())
        self.register_buffer("scale", torch.as_tensor(scale).clone())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(x - loc) / scale`` and ``-sum(log scale)`` per sample."""
        log_det = -torch.log(self.scale).sum().expand(x.shape[0])
        return (x - self.loc) / self.scale, log_det

    def inverse(self, u: Tensor) -> Tensor:
        """Return ``u * scale + loc``."""
        return u * self.scale + self.loc
