"""Deprecations of the 0.3 renames: one place for the warnings and for reading 0.2 model files.

Serves the public estimators (:mod:`galaxysim.embedders`, :mod:`galaxysim.images`,
:mod:`galaxysim.ranking`), which warn through :func:`warn_renamed` and
:func:`positional_deprecated`, and :mod:`galaxysim.persistence`, which turns
the parameters of a model file written by galaxysim 0.2 into today's with
:func:`upgrade_saved_state`.

The scheme follows scikit-learn's: a renamed constructor parameter keeps its
old name in the signature with the default :data:`DEPRECATED`, so that
``get_params``, ``set_params`` and ``clone`` carry it; ``fit`` warns with a
:class:`FutureWarning` when it is set and uses its value under the new name.
Deprecated in 0.3, removed in 0.4.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "DEPRECATED",
    "REMOVED_IN",
    "is_set",
    "positional_deprecated",
    "upgrade_saved_state",
    "warn_deprecated",
    "warn_renamed",
]

#: The default of a deprecated parameter: "not given".
DEPRECATED = "deprecated"
#: The version in which the deprecated names stop working.
REMOVED_IN = "0.4"

_Init = TypeVar("_Init", bound=Callable[..., None])


def is_set(value: Any) -> bool:
    """Whether a deprecated parameter was given (its value is not :data:`DEPRECATED`).

    Examples
    --------
    >>> is_set(DEPRECATED), is_set(None), is_set(16)
    (False, True, True)
    """
    return not (isinstance(value, str) and value == DEPRECATED)


def warn_deprecated(message: str) -> None:
    """Warn with a FutureWarning that ends with when the old spelling stops working.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_deprecated("x is deprecated.")
    >>> str(caught[0].message)
    'x is deprecated. It was deprecated in galaxysim 0.3 and will be removed in 0.4.'
    """
    warnings.warn(
        f"{message} It was deprecated in galaxysim 0.3 and will be removed in {REMOVED_IN}.",
        FutureWarning,
        stacklevel=3,
    )


def warn_renamed(owner: str, old: str, new: str) -> None:
    """Warn that parameter ``old`` of ``owner`` is now called ``new``.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_renamed("AutoencoderEmbedder", "latent_dim", "n_components")
    >>> str(caught[0].message).split(".")[0]
    "AutoencoderEmbedder's parameter latent_dim was renamed n_components; pass n_components instead"
    """
    warn_deprecated(f"{owner}'s parameter {old} was renamed {new}; pass {new} instead.")


def positional_deprecated(init: _Init) -> _Init:
    """Let a keyword-only ``__init__`` take positional arguments for one more version.

    The positional values are given to the keyword-only parameters in
    signature order, with a FutureWarning; more positional arguments than
    there are parameters raise a TypeError. ``inspect.signature`` (and so
    scikit-learn's ``get_params``) sees the keyword-only signature.

    Examples
    --------
    >>> import warnings
    >>> class Thing:
    ...     @positional_deprecated
    ...     def __init__(self, *, size=1, name="a"):
    ...         self.size, self.name = size, name
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     thing = Thing(3)
    >>> thing.size, caught[0].category.__name__
    (3, 'FutureWarning')
    >>> list(inspect.signature(Thing.__init__).parameters)
    ['self', 'size', 'name']
    """
    names = [
        name
        for name, parameter in inspect.signature(init).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            owner = type(self).__name__
            if len(args) > len(names):
                raise TypeError(
                    f"{owner}() takes keyword arguments only; got {len(args)} positional ones."
                )
            given = names[: len(args)]
            twice = [name for name in given if name in kwargs]
            if twice:
                raise TypeError(f"{owner}() got multiple values for argument {twice[0]!r}.")
            spelled = ", ".join(f"{name}=..." for name in given)
            warn_deprecated(
                f"{owner} takes keyword arguments only: pass {spelled} by name, as "
                "scikit-learn estimators do (positional arguments will raise a TypeError)."
            )
            kwargs.update(zip(given, args))
        init(self, **kwargs)

    return wrapper  # type: ignore[return-value]


# What each class's parameters were called in galaxysim 0.2, for model files written by it.
def _upgrade_autoencoder(state: dict[str, Any]) -> None:
    if "latent_dim" in state and "n_components" not in state:
        state["n_components"] = state.pop("latent_dim")
    if "augment" in state and "random_dihedral" not in state:
        state["random_dihedral"] = state.pop("augment")


def _upgrade_contrastive(state: dict[str, Any]) -> None:
    # 0.2: n_components was the network's width and whiten the output's.
    if "whiten" in state and "representation_dim" not in state:
        state["representation_dim"] = state.pop("n_components", 128)
        state["n_components"] = state.pop("whiten")


def _upgrade_ranker(state: dict[str, Any]) -> None:
    if state.get("density") is False:
        state["density"] = "drop"
    params = state.get("neighbors_params")
    if isinstance(params, dict) and "algorithm" in params:
        params = dict(params)
        algorithm = params.pop("algorithm")
        if state.get("search", "auto") == "auto":
            state["search"] = algorithm
        state["neighbors_params"] = params or None


_UPGRADES: dict[str, Callable[[dict[str, Any]], None]] = {
    "AutoencoderEmbedder": _upgrade_autoencoder,
    "ContrastiveEmbedder": _upgrade_contrastive,
    "SimilarityRanker": _upgrade_ranker,
}


def upgrade_saved_state(class_name: str, state: dict[str, Any]) -> dict[str, Any]:
    """The stored attributes of a ``class_name`` estimator under today's parameter names.

    A model file written by galaxysim 0.2 names parameters as 0.2 did
    (``latent_dim``, ``augment``, ``whiten``, ``density=False``,
    ``neighbors_params["algorithm"]``); this maps them to their 0.3 names
    and values. State already in today's names is returned unchanged.

    Parameters
    ----------
    class_name : str
        The estimator's class name, as the model file gives it.
    state : dict
        Its stored attributes (parameters and fitted state), decoded.

    Returns
    -------
    state : dict
        A new dict.

    Examples
    --------
    >>> upgrade_saved_state("AutoencoderEmbedder", {"latent_dim": 8, "augment": True})
    {'n_components': 8, 'random_dihedral': True}
    >>> upgrade_saved_state("ContrastiveEmbedder", {"n_components": 128, "whiten": 64})
    {'representation_dim': 128, 'n_components': 64}
    """
    state = dict(state)
    upgrade = _UPGRADES.get(class_name)
    if upgrade is not None:
        upgrade(state)
    return state
