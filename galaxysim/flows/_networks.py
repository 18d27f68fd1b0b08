"""The flow network that :meth:`FlowDensityEstimator.fit` trains: one factory per kind of data.

Each factory builds the network from the estimator's parameters, seeded, runs
any data-dependent initialisation on training samples, and returns the network
with its training tensor (:meth:`~galaxysim.flows.base.DensityFlow.training_tensor`).
Everything after that, training included, is the same for every kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._training import seeded
from .base import DensityFlow
from .image import MultiscaleImageFlow
from .jammy import JammyFlow, jammy_layers
from .vector import VectorFlow

if TYPE_CHECKING:
    from .estimator import FlowDensityEstimator

__all__ = ["FlowFactory", "empty_network", "image_network", "jammy_network", "zuko_network"]

# ActNorm layers of the image flow are initialised on this many training images.
_N_INIT_IMAGES = 256

#: ``factory(estimator, data, train_idx, rng, seed) -> (network, training tensor)``: the
#: validated training data, the indices of its training part, the estimator's random
#: generator (after the validation split) and the torch seed drawn from it.
FlowFactory = Callable[
    ["FlowDensityEstimator", np.ndarray, np.ndarray, np.random.RandomState, int],
    "tuple[DensityFlow, torch.Tensor]",
]


def _standardization(
    est: FlowDensityEstimator, train: np.ndarray, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loc, scale)`` of the training features, or (0, 1) without ``standardize``."""
    if est.standardize:
        loc, scale = train.mean(axis=0), train.std(axis=0)
        # Constant features keep their scale, as in StandardScaler.
        scale = np.where(scale > np.finfo(np.float64).eps * 10, scale, 1.0)
    else:
        loc, scale = np.zeros(train.shape[1]), np.ones(train.shape[1])
    return torch.as_tensor(loc, dtype=dtype), torch.as_tensor(scale, dtype=dtype)


def zuko_network(
    est: FlowDensityEstimator,
    X: np.ndarray,
    train_idx: np.ndarray,
    rng: np.random.RandomState,
    seed: int,
) -> tuple[DensityFlow, torch.Tensor]:
    """A zuko :class:`VectorFlow` (trained in float32) behind the standardisation."""
    loc, scale = _standardization(est, X[train_idx], torch.float32)
    with seeded(seed):
        module = VectorFlow(
            X.shape[1],
            flow=est.flow,
            n_layers=est.n_layers,
            hidden_features=tuple(est.hidden_features),
            loc=loc,
            scale=scale,
        )
    return module, module.training_tensor(X)


def jammy_network(
    est: FlowDensityEstimator,
    X: np.ndarray,
    train_idx: np.ndarray,
    rng: np.random.RandomState,
    seed: int,
) -> tuple[DensityFlow, torch.Tensor]:
    """A float64 :class:`JammyFlow`, initialised on the training vectors."""
    loc, scale = _standardization(est, X[train_idx], torch.float64)
    with seeded(seed):
        module = JammyFlow(X.shape[1], jammy_layers(est.flow, est.n_layers), loc=loc, scale=scale)
        data = module.training_tensor(X)
        module.initialize(data[train_idx], seed=seed)
    return module, data


def image_network(
    est: FlowDensityEstimator,
    images: np.ndarray,
    train_idx: np.ndarray,
    rng: np.random.RandomState,
    seed: int,
) -> tuple[DensityFlow, torch.Tensor]:
    """A :class:`MultiscaleImageFlow` with ActNorm initialised on random training images."""
    with seeded(seed):
        module = MultiscaleImageFlow(
            images.shape[1:],
            n_levels=est.n_levels,
            n_steps=est.n_layers,
            hidden_features=tuple(est.hidden_features),
        )
        levels = module.training_tensor(images)
        # A random subset: the training images may be sorted, e.g. by class.
        n_init = min(len(train_idx), _N_INIT_IMAGES)
        init_idx = rng.choice(train_idx, size=n_init, replace=False)
        module.initialize(levels[np.sort(init_idx)])
    return module, levels


def empty_network(est: FlowDensityEstimator) -> DensityFlow:
    """The untrained network of a fitted estimator, at its scoring precision.

    Built from the parameters and the fitted shapes alone, without data, so
    that saved weights can be loaded into it (:mod:`galaxysim.persistence`);
    the weights overwrite every parameter and buffer, data-initialised ones
    included.
    """
    if est.image_shape_ is not None:
        module: DensityFlow = MultiscaleImageFlow(
            est.image_shape_,
            n_levels=est.n_levels,
            n_steps=est.n_layers,
            hidden_features=tuple(est.hidden_features),
        )
    elif est.backend == "jammy":
        module = JammyFlow(est.n_features_in_, jammy_layers(est.flow, est.n_layers))
    else:
        module = VectorFlow(
            est.n_features_in_,
            flow=est.flow,
            n_layers=est.n_layers,
            hidden_features=tuple(est.hidden_features),
        )
    return module.for_inference()
