"""Normalizing flows on feature vectors, built from zuko's flows.

Three kinds, picked by name:

* ``"affine"``: affine coupling layers (RealNVP, Dinh et al. 2016,
  arXiv:1605.08803) with alternating masks; the original study's
  "4 affine flow layers".
* ``"spline"``: rational-quadratic spline coupling layers (neural spline
  flow, Durkan et al. 2019, arXiv:1906.04032): each layer transforms half of
  the features with monotonic splines whose knots an MLP computes from the
  other half; as fast as affine coupling in both directions, more flexible.
* ``"autoregressive"``: masked autoregressive affine layers (MAF,
  Papamakarios et al. 2017, arXiv:1705.07057), alternating feature orders;
  the density is one pass, sampling and the inverse take ``d`` passes.

A fixed :class:`~galaxysim.flows.base.Standardization` in front lets the flow
see unit-scale features while the density stays in the units of the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import zuko
from torch import Tensor

from .base import DensityFlow, Standardization

__all__ = ["VECTOR_FLOWS", "VectorFlow", "zuko_flow"]

#: Names accepted by :class:`VectorFlow` for its ``flow`` argument.
VECTOR_FLOWS = ("affine", "spline", "autoregressive")


def zuko_flow(
    n_features: int, flow: str, n_layers: int, hidden_features: Sequence[int]
) -> zuko.flows.Flow:
    """Build the zuko flow of one of the :data:`VECTOR_FLOWS` kinds.

    Parameters
    ----------
    n_features : int
        Dimension of the vectors.
    flow : {"affine", "spline", "autoregressive"}
        RealNVP, a neural spline coupling flow, or MAF (see the module docstring).
    n_layers : int
        Number of transforms.
    hidden_features : sequence of int
        Hidden widths of the MLP inside each transform.

    Returns
    -------
    flow : zuko.flows.Flow
        Unconditional: ``flow()`` is the distribution.

    Examples
    --------
    >>> zuko_flow(3, "spline", 2, (8,))().sample((4,)).shape
    torch.Size([4, 3])
    """
    hidden = tuple(int(h) for h in hidden_features)
    if flow == "affine":
        return zuko.flows.RealNVP(n_features, transforms=n_layers, hidden_features=hidden)
    if flow == "spline":
        # passes=2 turns zuko's autoregressive spline flow into a coupling flow.
        return zuko.flows.NSF(n_features, transforms=n_layers, hidden_features=hidden, passes=2)
    if flow == "autoregressive":
        return zuko.flows.MAF(n_features, transforms=n_layers, hidden_features=hidden)
    raise ValueError(f"flow must be one of {VECTOR_FLOWS}, got {flow!r}.")


class VectorFlow(DensityFlow):
    """A zuko normalizing flow on ``(n, d)`` vectors, after a fixed standardisation.

    Parameters
    ----------
    n_features : int
        Dimension ``d`` of the vectors.
    flow : {"affine", "spline", "autoregressive"}, default="affine"
        Kind of layer (see the module docstring).
    n_layers : int, default=4
        Number of flow layers.
    hidden_features : sequence of int, default=(128, 128)
        Hidden layer widths of the MLP inside each layer.
    loc, scale : torch.Tensor of shape (d,), optional
        Standardisation ``(x - loc) / scale`` applied first; zeros and ones
        (no standardisation) when omitted.

    Attributes
    ----------
    standardization : Standardization
        The fixed affine map in front.
    flow : zuko.flows.Flow
        The trainable flow on the standardised features.
    n_latent : int
        Equal to ``n_features``.

    Examples
    --------
    >>> net = VectorFlow(3, flow="affine", n_layers=2, hidden_features=(8,))
    >>> x = torch.randn(5, 3)
    >>> z, log_det = net.latent(x)
    >>> bool(torch.allclose(net.inverse(z), x, atol=1e-5))
    True
    >>> net.log_prob(x).shape
    torch.Size([5])
    """

    def __init__(
        self,
        n_features: int,
        flow: str = "affine",
        n_layers: int = 4,
        hidden_features: Sequence[int] = (128, 128),
        loc: Tensor | None = None,
        scale: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_latent = int(n_features)
        self.kind = flow
        if loc is None:
            loc = torch.zeros(n_features)
        if scale is None:
            scale = torch.ones(n_features)
        self.standardization = Standardization(loc, scale)
        self.flow = zuko_flow(self.n_latent, flow, n_layers, hidden_features)

    def latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``(n, d)`` data to latent points and ``log |det dz/dx|``.

        Parameters
        ----------
        x : torch.Tensor of shape (n, d)
            Data in its own units.

        Returns
        -------
        z : torch.Tensor of shape (n, d)
            Latent points under the standard normal base.
        log_det : torch.Tensor of shape (n,)
            Log-determinant, standardisation included.

        Examples
        --------
        >>> net = VectorFlow(2, n_layers=1, hidden_features=(4,))
        >>> net.latent(torch.zeros(3, 2))[0].shape
        torch.Size([3, 2])
        """
        u, log_det_std = self.standardization(x)
        z, log_det_flow = self.flow().transform.call_and_ladj(u)
        return z, log_det_flow + log_det_std

    def inverse(self, z: Tensor) -> Tensor:
        """Map ``(n, d)`` latent points back to data.

        Parameters
        ----------
        z : torch.Tensor of shape (n, d)
            Latent points.

        Returns
        -------
        x : torch.Tensor of shape (n, d)
            Data in its own units.

        Examples
        --------
        >>> net = VectorFlow(2, n_layers=1, hidden_features=(4,))
        >>> net.inverse(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
        """
        u = self.flow().transform.inv(z)
        return self.standardization.inverse(u)
