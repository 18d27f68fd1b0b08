"""Normalizing-flow densities: :class:`FlowDensityEstimator` and the flow networks it trains.

* :mod:`~galaxysim.flows.estimator`: the scikit-learn estimator (one code path for all flows).
* :mod:`~galaxysim.flows.base`: :class:`DensityFlow`, the bijection and data model every
  flow network implements.
* :mod:`~galaxysim.flows.vector`: coupling and autoregressive flows on vectors (zuko).
* :mod:`~galaxysim.flows.glow`: the Glow layers (ActNorm, 1x1 convolution, coupling).
* :mod:`~galaxysim.flows.image`: the multiscale flow on images and its 8-bit data model.
* :mod:`~galaxysim.flows.jammy`: the jammy_flows adapter (optional ``jammy`` extra).
* :mod:`~galaxysim.flows.ood`: scores built on the likelihood (bits/dim, typicality,
  complexity correction).
"""

from .base import DensityFlow
from .estimator import FlowDensityEstimator
from .image import MultiscaleImageFlow
from .jammy import JammyFlow
from .vector import VectorFlow

__all__ = [
    "DensityFlow",
    "FlowDensityEstimator",
    "JammyFlow",
    "MultiscaleImageFlow",
    "VectorFlow",
]
