"""The one spec of the training parameters shared by every torch estimator.

:data:`TRAINING_PARAMETERS` says, once, what each shared training parameter
means and how it is checked. The training loop
(:func:`galaxysim._loop.fit_module`) checks its arguments against it, the
estimators check their parameters against it and
:func:`galaxysim._training.documents_training_parameters` writes it into
their docstrings. :func:`validation_split` is the one rule for holding out
validation data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._device import resolve_device
from ._validation import check_bool, check_fraction, check_positive_float, check_positive_int

__all__ = [
    "TRAINING_PARAMETERS",
    "check_early_stopping",
    "check_training_parameters",
    "validation_split",
]


@dataclass(frozen=True)
class _TrainingParameter:
    """One parameter that every torch estimator shares: its type, meaning and check."""

    name: str
    kind: str
    doc: str
    check: Callable[[Any, str], Any]


def _check_device(value: Any, name: str) -> torch.device:
    return resolve_device(value)


def _check_random_state(value: Any, name: str) -> Any:
    try:
        check_random_state(value)
    except ValueError:
        raise ValueError(
            f"{name} must be None, an int or a numpy RandomState, got {value!r}."
        ) from None
    return value


#: The training parameters of every torch estimator, in signature order: the one
#: place where their meaning and their checks are written down.
TRAINING_PARAMETERS: tuple[_TrainingParameter, ...] = (
    _TrainingParameter(
        "max_epochs",
        "int",
        "Largest number of passes over the training data.",
        check_positive_int,
    ),
    _TrainingParameter(
        "batch_size",
        "int",
        "Largest number of samples per optimiser step, and per batch at prediction time "
        "(``ContrastiveEmbedder`` cuts an epoch into ``ceil(n / batch_size)`` batches "
        "whose sizes differ by at most one).",
        check_positive_int,
    ),
    _TrainingParameter(
        "learning_rate",
        "float",
        "Step size of Adam (AdamW when ``weight_decay`` > 0).",
        check_positive_float,
    ),
    _TrainingParameter(
        "weight_decay",
        "float",
        "Decoupled weight decay (AdamW); 0 trains with plain Adam.",
        lambda value, name: check_positive_float(value, name, allow_zero=True),
    ),
    _TrainingParameter(
        "max_grad_norm",
        "float or None",
        "Clip the gradients to this global norm before each step; None does not clip.",
        lambda value, name: check_positive_float(value, name, allow_none=True),
    ),
    _TrainingParameter(
        "validation_fraction",
        "float",
        "Share of the samples held out at random to measure the validation loss, in "
        "[0, 1). 0 needs ``early_stopping=False``.",
        lambda value, name: check_fraction(value, name, inclusive=True),
    ),
    _TrainingParameter(
        "early_stopping",
        "bool",
        "Stop once the validation loss has not improved for ``patience`` epochs, and keep "
        "the weights of the best epoch.",
        check_bool,
    ),
    _TrainingParameter(
        "patience",
        "int",
        "Epochs without improvement tolerated by early stopping.",
        check_positive_int,
    ),
    _TrainingParameter(
        "device",
        "str or torch.device",
        '``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.',
        _check_device,
    ),
    _TrainingParameter(
        "random_state",
        "int, RandomState instance or None",
        "Seeds the initial weights, the validation split, the shuffling and any random "
        "augmentation; an int makes a CPU fit repeatable (with the same number of torch "
        "threads).",
        _check_random_state,
    ),
    _TrainingParameter(
        "verbose",
        "int",
        "When positive, show a progress bar with the losses of each epoch.",
        lambda value, name: check_positive_int(value, name, minimum=0),
    ),
)


def check_training_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check the training parameters among ``values``; return them normalised.

    Parameters
    ----------
    values : mapping
        ``{name: value}``; names that are not in :data:`TRAINING_PARAMETERS`
        are returned unchanged.

    Returns
    -------
    values : dict
        Numbers as int or float, ``device`` as a :class:`torch.device`.

    Examples
    --------
    >>> check_training_parameters({"max_epochs": 3, "device": "cpu"})
    {'max_epochs': 3, 'device': device(type='cpu')}
    """
    checks = {param.name: param.check for param in TRAINING_PARAMETERS}
    return {
        name: checks[name](value, name) if name in checks else value
        for name, value in values.items()
    }


def check_early_stopping(early_stopping: bool, validation_fraction: float) -> None:
    """Raise when early stopping is asked for without held-out data to stop on."""
    if early_stopping and validation_fraction == 0:
        raise ValueError(
            "early_stopping=True needs held-out data: set validation_fraction > 0 "
            "(e.g. 0.1), or early_stopping=False."
        )


def validation_split(
    n_samples: int, validation_fraction: float, permutation: Callable[[int], Any]
) -> tuple[Any, Any]:
    """Indices of the training and the held-out part of ``n_samples`` samples.

    The one rule for holding out validation data in galaxysim: the share
    ``validation_fraction`` of the samples, rounded up, is held out, and both
    parts must keep at least one sample.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    validation_fraction : float
        Share to hold out, in [0, 1); 0 holds out nothing.
    permutation : callable
        ``permutation(n)`` returns a random order of ``range(n)`` (for
        example ``numpy.random.RandomState.permutation``, or
        :func:`torch.randperm` with a generator); called only when something
        is held out, so that no random draw is spent otherwise.

    Returns
    -------
    train, validation : index arrays
        The first ``n - n_val`` and the last ``n_val`` entries of the order;
        ``(arange(n), empty)`` when ``validation_fraction`` is 0.

    Raises
    ------
    ValueError
        When there are no samples, or too few to keep a sample on each side.

    Examples
    --------
    >>> import numpy as np
    >>> train, val = validation_split(10, 0.25, np.random.RandomState(0).permutation)
    >>> len(train), len(val)
    (7, 3)
    """
    if n_samples == 0:
        raise ValueError("data is empty (n_samples=0); at least one sample is needed to fit.")
    if validation_fraction == 0:
        return np.arange(n_samples), np.arange(0)
    n_val = math.ceil(n_samples * validation_fraction)
    n_train = n_samples - n_val
    if n_train < 1 or n_val < 1:
        raise ValueError(
            f"Too few samples to hold out a validation set: n_samples={n_samples} with "
            f"validation_fraction={validation_fraction} leaves {n_train} for training and "
            f"{n_val} for validation; both need at least 1. Pass more samples, or set "
            "early_stopping=False and validation_fraction=0."
        )
    order = permutation(n_samples)
    return order[:n_train], order[n_train:]
