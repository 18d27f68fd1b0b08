"""The one spec of the training parameters shared by the torch estimators.

:data:`TRAINING_PARAMETERS` says, once, what each shared parameter of
:class:`~galaxysim.AutoencoderEmbedder` and
:class:`~galaxysim.FlowDensityEstimator` means and how it is checked;
:func:`documents_training_parameters` writes it into their docstrings, and
:class:`TorchEstimatorMixin` checks the parameters, runs the training loop
with them (:func:`~galaxysim._loop.fit_module`) and pickles fitted torch
state on the CPU. The loop, the devices and the seeding are re-exported here,
so that an estimator imports everything it needs for training from one place.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._device import resolve_device, seeded, torch_seed
from ._loop import LossFn, TrainingHistory, check_early_stopping, fit_module, validation_split
from ._validation import check_fraction, check_positive_float, check_positive_int

__all__ = [
    "TRAINING_PARAMETERS",
    "TorchEstimatorMixin",
    "TrainingHistory",
    "documents_training_parameters",
    "fit_module",
    "resolve_device",
    "seeded",
    "torch_seed",
    "validation_split",
]


@dataclass(frozen=True)
class _TrainingParameter:
    """One parameter that every torch estimator shares: its type, meaning and check."""

    name: str
    kind: str
    doc: str
    check: Callable[[Any, str], Any]


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


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
        "max_epochs", "int", "Largest number of passes over the training data.",
        check_positive_int,
    ),
    _TrainingParameter(
        "batch_size", "int", "Samples per optimiser step (and per batch at prediction time).",
        check_positive_int,
    ),
    _TrainingParameter(
        "learning_rate", "float", "Step size of Adam (AdamW when ``weight_decay`` > 0).",
        check_positive_float,
    ),
    _TrainingParameter(
        "weight_decay", "float", "Decoupled weight decay (AdamW); 0 trains with plain Adam.",
        lambda value, name: check_positive_float(value, name, allow_zero=True),
    ),
    _TrainingParameter(
        "max_grad_norm", "float or None",
        "Clip the gradients to this global norm before each step; None does not clip.",
        lambda value, name: check_positive_float(value, name, allow_none=True),
    ),
    _TrainingParameter(
        "validation_fraction", "float",
        "Share of the samples held out at random to measure the validation loss, in "
        "[0, 1). 0 needs ``early_stopping=False``.",
        lambda value, name: check_fraction(value, name, inclusive=True),
    ),
    _TrainingParameter(
        "early_stopping", "bool",
        "Stop once the validation loss has not improved for ``patience`` epochs, and keep "
        "the weights of the best epoch.",
        _check_bool,
    ),
    _TrainingParameter(
        "patience", "int", "Epochs without improvement tolerated by early stopping.",
        check_positive_int,
    ),
    _TrainingParameter(
        "device", "str or torch.device",
        "``\"auto\"`` (CUDA when available, else the CPU), ``\"cpu\"``, ``\"cuda\"`` or "
        "``\"cuda:N\"``.",
        _check_device,
    ),
    _TrainingParameter(
        "random_state", "int, RandomState instance or None",
        "Seeds the initial weights, the validation split, the shuffling and any random "
        "augmentation; an int makes a CPU fit repeatable (with the same number of torch "
        "threads).",
        _check_random_state,
    ),
    _TrainingParameter(
        "verbose", "int", "When positive, show a progress bar with the losses of each epoch.",
        lambda value, name: check_positive_int(value, name, minimum=0),
    ),
)

_DOC_MARKER = "[training parameters]"

_Estimator = TypeVar("_Estimator", bound=type)


def documents_training_parameters(cls: _Estimator) -> _Estimator:
    """Class decorator: write the shared training parameters into the class docstring.

    The line ``[training parameters]`` of the Parameters section is replaced
    by one numpydoc entry per entry of :data:`TRAINING_PARAMETERS`, with the
    default taken from the class's own ``__init__``, so the meaning of each
    parameter is written once and the defaults can never drift from the code.
    """
    doc = cls.__doc__ or ""
    line = next((ln for ln in doc.splitlines() if ln.strip() == _DOC_MARKER), None)
    if line is None:
        raise ValueError(f"{cls.__name__}'s docstring has no {_DOC_MARKER} line.")
    indent = line[: len(line) - len(line.lstrip())]
    defaults = inspect.signature(cls.__init__).parameters
    entries = []
    for param in TRAINING_PARAMETERS:
        default = defaults[param.name].default
        entries.append(f"{indent}{param.name} : {param.kind}, default={default!r}")
        entries.append(f"{indent}    {param.doc}")
    cls.__doc__ = doc.replace(line, "\n".join(entries))
    return cls


class TorchEstimatorMixin:
    """Pickling support for estimators that hold fitted torch state.

    Fitted attributes (names ending in ``_``) that are torch modules or
    tensors are stored on the CPU when the estimator is pickled (joblib, the
    pickle module, :func:`copy.deepcopy`), so that a model fitted on a GPU
    loads on a machine without one. The device the model ran on is recorded
    in the fitted attribute ``device_``; on loading, the state goes back to
    that device when it is available there and to the CPU otherwise
    (``device_`` then says ``cpu``).

    Examples
    --------
    >>> class Holder(TorchEstimatorMixin):
    ...     pass
    >>> holder = Holder()
    >>> holder.net_ = torch.nn.Linear(2, 1)
    >>> holder.device_ = torch.device("cpu")
    >>> copy.deepcopy(holder).net_.weight.device.type  # deepcopy goes through pickling hooks
    'cpu'
    """

    def _check_training_params(self) -> torch.device:
        """Check every shared training parameter; return the device to train on."""
        for param in TRAINING_PARAMETERS:
            param.check(getattr(self, param.name), param.name)
        check_early_stopping(self.early_stopping, self.validation_fraction)
        return resolve_device(self.device)

    def _fit_module(
        self,
        module: torch.nn.Module,
        data: torch.Tensor | Sequence[torch.Tensor],
        loss_fn: LossFn,
        *,
        random_state: Any,
        **overrides: Any,
    ) -> TrainingHistory:
        """Run :func:`fit_module` with this estimator's training parameters.

        ``overrides`` replaces any of them for this call, and passes the
        other arguments of :func:`fit_module` (``augment``,
        ``validation_data``).
        """
        options = {
            param.name: getattr(self, param.name)
            for param in TRAINING_PARAMETERS
            if param.name != "random_state"
        }
        options.update(overrides)
        options.setdefault("desc", type(self).__name__)
        return fit_module(module, data, loss_fn, random_state=random_state, **options)

    def __getstate__(self) -> dict[str, Any]:
        getstate = getattr(super(), "__getstate__", None)
        state = dict(getstate() if getstate is not None else self.__dict__)
        for key, value in list(state.items()):
            if not key.endswith("_") or key.startswith("__"):
                continue
            if isinstance(value, torch.nn.Module):
                if any(t.device.type != "cpu" for t in _module_tensors(value)):
                    # Copy before moving: pickling must not move the live estimator.
                    value = copy.deepcopy(value).to("cpu")
                state[key] = value
            elif isinstance(value, torch.Tensor):
                state[key] = value.detach().to("cpu")
        if isinstance(state.get("device_"), torch.device):
            state["device_"] = str(state["device_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        recorded = state.get("device_")
        target = torch.device("cpu")
        if recorded is not None:
            try:
                target = resolve_device(recorded)
            except (TypeError, ValueError):
                target = torch.device("cpu")
            state["device_"] = target
        if target.type != "cpu":
            for key, value in state.items():
                if key.endswith("_") and isinstance(value, (torch.nn.Module, torch.Tensor)):
                    state[key] = value.to(target)
        setstate = getattr(super(), "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            self.__dict__.update(state)


def _module_tensors(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()
