"""The interface every flow network in :mod:`galaxysim.flows` implements.

A flow network maps data ``x`` to a latent ``z`` under a standard normal base
distribution. :class:`DensityFlow` fixes two things:

* the **bijection** (``latent``, ``inverse``, ``log_prob``, ``n_latent``);
* the **data model**: how the estimator's arrays become training batches and
  network input, what the training loss is, and what a log-likelihood, a
  latent point and a sample of the user's data are (``training_tensor``,
  ``training_loss``, ``augmentation``, ``log_likelihood``, ``to_latent``,
  ``from_latent``, ``sample_from_latent``, ``for_inference``, ``dtype``).

The defaults are those of continuous vector data; the image flow overrides the
data model with its 8-bit one. So
:class:`~galaxysim.flows.FlowDensityEstimator` treats the zuko vector flows,
the multiscale image flow and the jammy_flows adapter alike, through one code
path. :class:`Standardization` is the fixed affine map in front of the vector
flows.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Augmentation", "DensityFlow", "Standardization", "standard_normal_log_prob"]

#: ``augment(batch, generator) -> batch``: a random change of each training batch.
Augmentation = Callable[[tuple[Tensor, ...], torch.Generator], tuple[Tensor, ...]]

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
    """A bijection from data to a standard normal latent, with its data model.

    Subclasses implement :meth:`latent` and :meth:`inverse`; the density
    follows from the change of variables,
    ``log p(x) = log N(z; 0, I) + log |det dz/dx|``.

    The remaining methods are the data model that the estimator uses. Their
    defaults treat the data as continuous vectors: the network sees the data
    as it is, the loss is the mean negative log-likelihood in nats, there is
    no training augmentation, and the trained network scores in float64. A
    flow on other data (the 8-bit images of
    :class:`~galaxysim.flows.image.MultiscaleImageFlow`) overrides them.

    Examples
    --------
    >>> class Shift(DensityFlow):
    ...     n_latent = 1
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.offset = nn.Parameter(torch.ones(1))
    ...     def latent(self, x):
    ...         return x - self.offset, torch.zeros(x.shape[0])
    ...     def inverse(self, z):
    ...         return z + self.offset
    >>> flow = Shift()
    >>> round(float(flow.log_likelihood(torch.ones(1, 1)).detach()[0]), 4)  # log N(0; 0, 1)
    -0.9189
    >>> flow.training_tensor(np.zeros((3, 1))).dtype
    torch.float32
    """

    #: Number of latent dimensions (the flattened size of one sample).
    n_latent: int

    # ------------------------------------------------------------------ bijection

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

    # ----------------------------------------------------------------- data model

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type of the weights, in which the network takes its input."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.get_default_dtype()

    def training_tensor(self, data: np.ndarray) -> Tensor:
        """The training set as :meth:`training_loss` reads it: ``data`` in :attr:`dtype`.

        Parameters
        ----------
        data : ndarray of shape (n, ...)
            Validated training data.

        Returns
        -------
        tensor : torch.Tensor of shape (n, ...)
            On the CPU; batches are cut from it.
        """
        return torch.tensor(data, dtype=self.dtype)

    def training_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """Mean loss of a batch of :meth:`training_tensor`: here the negative log-likelihood.

        Parameters
        ----------
        batch : tuple of torch.Tensor
            One batch, samples along the first dimension, in ``batch[0]``.

        Returns
        -------
        loss : torch.Tensor
            A differentiable scalar, nats per sample.
        """
        return -self.log_prob(batch[0]).mean()

    @property
    def augmentation(self) -> Augmentation | None:
        """Random change of each training batch (e.g. dequantization noise); None here."""
        return None

    def log_likelihood(self, x: Tensor) -> Tensor:
        """Log-likelihood of each sample of user data (nats); here :meth:`log_prob`.

        Parameters
        ----------
        x : torch.Tensor
            A batch of data as the user gives it, in :attr:`dtype`.

        Returns
        -------
        log_likelihood : torch.Tensor of shape (n,)
        """
        return self.log_prob(x)

    def to_latent(self, x: Tensor) -> Tensor:
        """Latent points of user data, ``(n, n_latent)``; here ``latent(x)[0]``."""
        return self.latent(x)[0]

    def from_latent(self, z: Tensor) -> Tensor:
        """User data at latent points, the inverse of :meth:`to_latent`; here :meth:`inverse`."""
        return self.inverse(z)

    def sample_from_latent(self, z: Tensor) -> Tensor:
        """A sample of user data from latent draws; here :meth:`from_latent`."""
        return self.from_latent(z)

    def for_inference(self) -> DensityFlow:
        """Put the trained network in eval mode at its scoring precision; return it.

        Vector flows train in float32 and score in float64, so that a score
        depends on the batch it was computed in only at float64 rounding.
        """
        return self.double().eval()


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

    # Buffers: torch types them as Tensor | Module.
    loc: Tensor
    scale: Tensor

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
