"""Normalizing-flow densities: :class:`FlowDensityEstimator` and the flow networks it trains.

* :mod:`~galaxysim.flows.estimator`: the scikit-learn estimator.
* :mod:`~galaxysim.flows.vector`: coupling and autoregressive flows on vectors (zuko).
* :mod:`~galaxysim.flows.image`: the multiscale Glow-style flow on images.
* :mod:`~galaxysim.flows.jammy`: the jammy_flows adapter (optional ``jammy`` extra).
* :mod:`~galaxysim.flows.ood`: out-of-distribution scores (typicality, complexity correction).
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
