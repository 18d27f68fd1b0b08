"""What the torch estimators share: their training parameters, the loop, pickling.

:func:`documents_training_parameters` writes the one spec of the shared
training parameters (:data:`~galaxysim._parameters.TRAINING_PARAMETERS`)
into an estimator's docstring, and :class:`TorchEstimatorMixin` checks the
parameters, runs the training loop with them
(:func:`~galaxysim._loop.fit_module`) and pickles fitted torch state on the
CPU. The spec, the loop, the devices and the seeding are re-exported here, so
that an estimator imports everything it needs for training from one place.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar, cast

import torch

from ._device import resolve_device, seeded, torch_seed
from ._loop import LossFn, TrainingHistory, TrainingSettings, fit_module
from ._parameters import (
    TRAINING_PARAMETERS,
    check_early_stopping,
    check_training_parameters,
    validation_split,
)

__all__ = [
    "TRAINING_PARAMETERS",
    "TorchEstimatorMixin",
    "TrainingHistory",
    "documents_training_parameters",
    "fit_module",
    "resolve_device",
    "resolve_init",
    "seeded",
    "torch_seed",
    "validation_split",
]


_DOC_MARKER = "[training parameters]"
# The arguments of fit_module that are not TrainingSettings fields.
_FIT_CALLABLES = ("augment", "validation_data", "prepare", "validation_augment")

_Estimator = TypeVar("_Estimator", bound=type)
_Module = TypeVar("_Module", bound=torch.nn.Module)


class _Fittable(Protocol):
    """An estimator that says whether it is fitted (every galaxysim estimator does)."""

    def __sklearn_is_fitted__(self) -> bool: ...


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
    defaults = inspect.signature(cls).parameters
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

    # The host estimator's ``init`` parameter (set by its constructor): what
    # _initial_weights continues from.
    init: Any

    def _check_training_params(self) -> torch.device:
        """Check every shared training parameter; return the device to train on."""
        values = check_training_parameters(
            {param.name: getattr(self, param.name) for param in TRAINING_PARAMETERS}
        )
        check_early_stopping(values["early_stopping"], values["validation_fraction"])
        return values["device"]

    def _fit_module(
        self,
        module: _Module,
        data: torch.Tensor | Sequence[torch.Tensor],
        loss_fn: LossFn[_Module],
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
        callables = {name: options.pop(name) for name in _FIT_CALLABLES if name in options}
        settings = TrainingSettings(random_state=random_state, **options)
        return fit_module(module, data, loss_fn, settings, **callables)

    def _resolved(self, name: str) -> Any:
        """The value parameter ``name`` takes effect with (an estimator with deprecated
        aliases of a parameter returns the alias's value when that is set)."""
        return getattr(self, name)

    def _initial_weights(
        self, network: torch.nn.Module, module: str, architecture: Sequence[str]
    ) -> None:
        """Load the weights of the ``init`` model's ``module`` into the new ``network``.

        ``init`` (a parameter of the estimator) is a model file, a fitted
        estimator of this class, or one inside a
        :class:`~sklearn.frozen.FrozenEstimator`. The parameters named in
        ``architecture`` must be equal in both, and every weight must have
        the shape the new network needs.
        """
        source = resolve_init(self.init, type(self))
        for name in architecture:
            mine, theirs = self._resolved(name), source._resolved(name)
            if mine != theirs:
                raise ValueError(
                    f"init was trained with {name}={theirs!r} but this estimator has "
                    f"{name}={mine!r}; set {name}={theirs!r} to continue from it."
                )
        weights = getattr(source, module).state_dict()
        for name, target in network.state_dict().items():
            if name not in weights or weights[name].shape != target.shape:
                found = tuple(weights[name].shape) if name in weights else "nothing"
                raise ValueError(
                    f"init's network does not fit this one: {name} is {found} there, "
                    f"{tuple(target.shape)} here (images with another number of channels?)."
                )
        network.load_state_dict(
            {name: tensor.detach().to("cpu") for name, tensor in weights.items()}
        )

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


def resolve_init(init: Any, cls: type) -> Any:
    """The fitted estimator of class ``cls`` that an ``init`` parameter names.

    Parameters
    ----------
    init : str, path-like, estimator or FrozenEstimator
        A model file written by :func:`galaxysim.save_model` (read without
        running code) that holds a ``cls`` or a SimilarityRanker whose
        embedder is one, a fitted ``cls``, or one inside a
        :class:`~sklearn.frozen.FrozenEstimator`.
    cls : type
        The estimator class ``init`` must be.

    Returns
    -------
    estimator : cls
        Fitted.

    Raises
    ------
    TypeError
        ``init`` is of another kind or class.
    ValueError
        ``init`` is not fitted, or the model file is not one of ``cls``.

    Examples
    --------
    >>> from galaxysim.embedders import ContrastiveEmbedder
    >>> resolve_init(ContrastiveEmbedder(), ContrastiveEmbedder)
    Traceback (most recent call last):
    ...
    ValueError: init is a ContrastiveEmbedder that is not fitted. ...
    """
    from sklearn.frozen import FrozenEstimator

    if isinstance(init, FrozenEstimator):
        init = init.estimator
    if isinstance(init, (str, os.PathLike)):
        # The one place below the persistence layer that reads a model file.
        from .persistence import ModelFileError, load_model

        model = load_model(init)
        # A saved ranker (what `galaxysim demo` and `rank` write) holds its fitted embedder.
        model = getattr(model, "embedder_", model)
        if isinstance(model, FrozenEstimator):
            model = model.estimator
        if not isinstance(model, cls):
            raise ModelFileError(
                f"init {str(init)!r} holds a {type(model).__name__}, not a {cls.__name__} "
                f"(nor a SimilarityRanker whose embedder is one)."
            )
        return model
    if not isinstance(init, cls):
        raise TypeError(
            f"init must be the path of a saved {cls.__name__} model file or a fitted "
            f"{cls.__name__} (optionally in a FrozenEstimator); got {type(init).__name__}."
        )
    if not cast(_Fittable, init).__sklearn_is_fitted__():
        raise ValueError(
            f"init is a {cls.__name__} that is not fitted. If it went through clone "
            "(GridSearchCV clones parameters), wrap the fitted estimator in "
            "sklearn.frozen.FrozenEstimator, which clone keeps as it is."
        )
    return init


def _module_tensors(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()
