"""The ranking methods of the evaluation: their registry and how each is built.

Each method (:data:`METHODS`, described in :data:`METHOD_DESCRIPTIONS`) is a
set of :class:`~galaxysim.ranking.SimilarityRanker` parameters made by a
builder from shared models (:class:`Models`), so that every method is
measured through one ranking code path:

* ``"pixels"``: raw pixels, flattened; Euclidean distance.
* ``"pca"``: PCA of the flattened pixels to ``n_components`` components.
* ``"pca-whitened"``: the same PCA with unit-variance components. The flow
  below standardises its input, so this is the baseline that tells the
  flow's non-linear warping apart from a mere rescaling of PCA.
* ``"contrastive"``: a :class:`~galaxysim.embedders.ContrastiveEmbedder`
  (its defaults: the group-convolutional encoder, whose embedding ignores
  flips and quarter turns) trained on augmented views of the collection.
* ``"contrastive-conv"``: the same with the plain convolutional encoder
  (``encoder="conv"``, the default before 0.2).
* ``"autoencoder"``: the codes of an :class:`~galaxysim.embedders.AutoencoderEmbedder`.
* ``"autoencoder+dihedral"``: the same autoencoder, comparing the query (and,
  for the same-class rate, every galaxy) in its 8 rotations and flips.
* ``"autoencoder+augmentation"``: an autoencoder trained as a denoising one,
  reconstructing galaxies from views changed by a
  :class:`~galaxysim.embedders.GalaxyAugmentation`.
* ``"flow-latent"``: a :class:`~galaxysim.flows.FlowDensityEstimator` fitted
  on the PCA vectors; distances in its Gaussianised latent space. Fitting it
  on PCA rather than on the autoencoder makes the comparison with the
  ``"pca"`` and ``"pca-whitened"`` rows measure what the flow alone adds.
* ``"likelihood"``: closeness of log-likelihood under a flow fitted on the
  autoencoder codes, the original study's flow approach
  (``SimilarityRanker(method="likelihood")``).

The plain autoencoder methods share one trained autoencoder; the two
contrastive methods train one embedder each. Each one's fit time includes
its full training time, so every fit time is what building that method alone
would cost. When the models are trained on other images than the ranked
collection (``train_images``), every embedder, PCA included, is fitted on
those.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from ..images import ImagePreprocessor

__all__ = [
    "BASELINES",
    "BUILDERS",
    "METHODS",
    "METHOD_DESCRIPTIONS",
    "PCA_METHODS",
    "Models",
    "check_methods",
    "check_pretrained",
    "describe_settings",
    "model_params",
]

#: Human-readable description of every method, in the table's order.
METHOD_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "pixels": "raw pixels, flattened; Euclidean distance (baseline)",
        "pca": (
            "PCA of the flattened pixels to n_components components; Euclidean distance (baseline)"
        ),
        "pca-whitened": (
            "the same PCA with every component scaled to unit variance (baseline: what the "
            "flow's standardisation alone does to PCA)"
        ),
        "contrastive": (
            "ContrastiveEmbedder (SimCLR on galaxy augmentations; its defaults: the "
            "group-convolutional encoder, invariant to flips and quarter turns), whitened and "
            "normalised embedding; Euclidean distance"
        ),
        "contrastive-conv": (
            "the same with the plain convolutional encoder (encoder='conv', the default before 0.2)"
        ),
        "autoencoder": "AutoencoderEmbedder codes (n_components); Euclidean distance",
        "autoencoder+dihedral": (
            "the same autoencoder; the query compared in its 8 rotations and flips, "
            "smallest distance kept"
        ),
        "autoencoder+augmentation": (
            "AutoencoderEmbedder trained to reconstruct each galaxy from an augmented view "
            "(GalaxyAugmentation: blur, noise, brightness, colour; any rotation, scale, shift)"
        ),
        "flow-latent": (
            "FlowDensityEstimator (affine coupling) fitted on the PCA vectors; Euclidean "
            "distance in its Gaussianised latent space"
        ),
        "likelihood": (
            "closeness of log-likelihood under a FlowDensityEstimator fitted on the "
            "autoencoder codes (the original study's flow approach)"
        ),
    }
)
#: Names of the methods :func:`~galaxysim.app.evaluation.evaluate_methods` knows, in table order.
METHODS: tuple[str, ...] = tuple(METHOD_DESCRIPTIONS)
BASELINES = ("pixels", "pca", "pca-whitened")
_AUTOENCODER_METHODS = (
    "autoencoder",
    "autoencoder+dihedral",
    "autoencoder+augmentation",
    "likelihood",
)
_CONTRASTIVE_METHODS = ("contrastive", "contrastive-conv")
PCA_METHODS = ("pca", "pca-whitened", "flow-latent")
_FLOW_METHODS = ("flow-latent", "likelihood")

# Small models for quick=True: a smoke test of every code path in seconds.
_QUICK_AUTOENCODER = {"n_blocks": 1, "base_channels": 8, "max_epochs": 3, "batch_size": 32}
_QUICK_FLOW = {"n_layers": 2, "hidden_features": (32,), "max_epochs": 5, "batch_size": 64}
#: The contrastive embedder of quick=True (also what a quick pretrained one must be).
QUICK_CONTRASTIVE = {
    "representation_dim": 16,
    "n_stages": 2,
    "base_channels": 8,
    "max_epochs": 2,
    "batch_size": 32,
}


# ------------------------------------------------------------------------ the methods


@dataclass
class Models:
    """Builds the models of the methods, training the shared autoencoder once."""

    X: np.ndarray
    n_components: int
    autoencoder_params: dict[str, Any]
    flow_params: dict[str, Any]
    random_state: int | None
    contrastive_params: dict[str, Any] = field(default_factory=dict)
    pretrained: dict[str, tuple[Any, float]] = field(default_factory=dict)
    _fitted: dict[str, tuple[Any, float]] = field(default_factory=dict)

    def _trained(self, key: str, model: Any) -> tuple[Any, float]:
        """``model`` fitted on ``X`` once per ``key``, and the seconds that took."""
        if key in self.pretrained:
            return self.pretrained[key]
        if key not in self._fitted:
            start = time.perf_counter()
            model.fit(self.X)
            self._fitted[key] = (model, time.perf_counter() - start)
        return self._fitted[key]

    def autoencoder(self, augmentation: bool = False) -> tuple[Any, float]:
        from ..embedders import AutoencoderEmbedder, GalaxyAugmentation

        model = AutoencoderEmbedder(n_components=self.n_components, random_state=self.random_state)
        model.set_params(**self.autoencoder_params)
        if augmentation:
            model.set_params(augmentation=GalaxyAugmentation())
        return self._trained(f"autoencoder{'+augmentation' * augmentation}", model)

    def contrastive(self, encoder: str | None = None) -> tuple[Any, float]:
        from ..embedders import ContrastiveEmbedder

        model = ContrastiveEmbedder(random_state=self.random_state)
        model.set_params(**self.contrastive_params)
        if encoder is not None:
            model.set_params(encoder=encoder)
        return self._trained("contrastive" if encoder is None else f"contrastive-{encoder}", model)

    def flow(self) -> Any:
        from ..flows import FlowDensityEstimator

        return FlowDensityEstimator(flow="affine", random_state=self.random_state).set_params(
            **self.flow_params
        )

    def pca(self, whiten: bool = False) -> Any:
        return make_pipeline(
            ImagePreprocessor(crop=None, flatten=True),
            PCA(self.n_components, whiten=whiten, random_state=self.random_state),
        )


def _pixels(models: Models) -> tuple[dict[str, Any], float]:
    return {"embedder": ImagePreprocessor(crop=None, flatten=True)}, 0.0


def _pca(models: Models) -> tuple[dict[str, Any], float]:
    return {"embedder": models.pca()}, 0.0


def _pca_whitened(models: Models) -> tuple[dict[str, Any], float]:
    return {"embedder": models.pca(whiten=True)}, 0.0


def _contrastive(models: Models) -> tuple[dict[str, Any], float]:
    embedder, seconds = models.contrastive()
    return {"embedder": embedder}, seconds


def _contrastive_conv(models: Models) -> tuple[dict[str, Any], float]:
    embedder, seconds = models.contrastive(encoder="conv")
    return {"embedder": embedder}, seconds


def _autoencoder(models: Models) -> tuple[dict[str, Any], float]:
    embedder, seconds = models.autoencoder()
    return {"embedder": embedder}, seconds


def _autoencoder_dihedral(models: Models) -> tuple[dict[str, Any], float]:
    embedder, seconds = models.autoencoder()
    return {"embedder": embedder, "invariance": "dihedral"}, seconds


def _autoencoder_augmentation(models: Models) -> tuple[dict[str, Any], float]:
    embedder, seconds = models.autoencoder(augmentation=True)
    return {"embedder": embedder}, seconds


def _flow_latent(models: Models) -> tuple[dict[str, Any], float]:
    embedder = models.pca()
    embedder.steps.append(("flowdensityestimator", models.flow()))
    return {"embedder": embedder}, 0.0


def _likelihood(models: Models) -> tuple[dict[str, Any], float]:
    embedder, seconds = models.autoencoder()
    return {"embedder": embedder, "density": models.flow(), "method": "likelihood"}, seconds


# Each builder returns the SimilarityRanker parameters of its method and the
# seconds already spent training shared models it reuses.
BUILDERS: Mapping[str, Callable[[Models], tuple[dict[str, Any], float]]] = MappingProxyType(
    {
        "pixels": _pixels,
        "pca": _pca,
        "pca-whitened": _pca_whitened,
        "contrastive": _contrastive,
        "contrastive-conv": _contrastive_conv,
        "autoencoder": _autoencoder,
        "autoencoder+dihedral": _autoencoder_dihedral,
        "autoencoder+augmentation": _autoencoder_augmentation,
        "flow-latent": _flow_latent,
        "likelihood": _likelihood,
    }
)


# ------------------------------------------------------------------------ validation


#: The shared models that ``pretrained`` may provide, by the method they serve.
PRETRAINABLE = ("contrastive", "contrastive-conv", "autoencoder")


def check_pretrained(pretrained: Mapping[str, Any] | None) -> dict[str, tuple[Any, float]]:
    """Check ``evaluate_methods``' ``pretrained``: known keys, fitted models, seconds.

    Examples
    --------
    >>> check_pretrained(None)
    {}
    >>> check_pretrained({"pca": (None, 1.0)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: pretrained has the key 'pca'; it takes ('contrastive', 'contrastive-conv', ...)...
    """
    from sklearn.utils.validation import check_is_fitted

    if pretrained is None:
        return {}
    if not isinstance(pretrained, Mapping):
        raise TypeError(f"pretrained must be a dict, got {type(pretrained).__name__}.")
    checked = {}
    for key, value in pretrained.items():
        if key not in PRETRAINABLE:
            raise ValueError(f"pretrained has the key {key!r}; it takes {PRETRAINABLE}.")
        if not (isinstance(value, tuple) and len(value) == 2):
            raise TypeError(
                f"pretrained[{key!r}] must be a pair (fitted estimator, seconds of training), "
                f"got {type(value).__name__}."
            )
        model, seconds = value
        check_is_fitted(model)
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(
                f"pretrained[{key!r}]'s seconds must be a number >= 0, got {seconds!r}."
            )
        checked[key] = (model, float(seconds))
    return checked


def check_methods(methods: Sequence[str] | str | None) -> list[str]:
    if methods is None:
        return list(METHODS)
    if isinstance(methods, str):
        methods = [methods]
    try:
        chosen = list(methods)
    except TypeError:
        raise TypeError(
            f"methods must be None or a sequence of method names, got {type(methods).__name__}."
        ) from None
    if not chosen:
        raise ValueError(f"methods is empty; choose from {list(METHODS)}.")
    for name in chosen:
        if not isinstance(name, str):
            raise TypeError(f"methods must hold method names (str), got {name!r}.")
    unknown = [name for name in chosen if name not in BUILDERS]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from {list(METHODS)}.")
    repeated = sorted({name for name in chosen if chosen.count(name) > 1})
    if repeated:
        raise ValueError(f"methods lists {repeated} more than once.")
    # Rows keep the canonical order, baselines first, whatever order was asked.
    return [name for name in METHODS if name in chosen]


def _check_params(params: Any, name: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{name} must be a dict of estimator parameters, got {type(params).__name__}."
        )
    return dict(params)


def _n_stages_for(side: int, default: int = 5) -> int:
    """The autoencoder's default number of halvings, or fewer where ``side`` needs it.

    The autoencoder needs sides divisible by ``2**n_stages``; the largest
    valid number up to its default keeps the default architecture wherever
    the image size allows it.
    """
    stages = default
    while stages > 0 and side % 2**stages:
        stages -= 1
    return stages


def model_params(
    methods: Sequence[str],
    image_shape: Sequence[int],
    *,
    quick: bool,
    params: Mapping[str, Any],
    verbose: bool,
) -> dict[str, dict[str, Any]]:
    """Each model's parameters (``"autoencoder"``, ``"contrastive"``, ``"flow"``).

    The defaults, then the quick presets, then the user's ``params``
    (``{"autoencoder_params": ..., "contrastive_params": ..., "flow_params": ...}``).
    """
    models: dict[str, dict[str, Any]] = {"autoencoder": {}, "contrastive": {}, "flow": {}}
    if set(_AUTOENCODER_METHODS) & set(methods):
        from ..embedders import AutoencoderEmbedder

        default_stages = AutoencoderEmbedder().n_stages
        models["autoencoder"]["n_stages"] = _n_stages_for(
            math.gcd(*image_shape[:2]), default_stages
        )
    if quick:
        models["autoencoder"].update(_QUICK_AUTOENCODER)
        models["contrastive"].update(QUICK_CONTRASTIVE)
        models["flow"].update(_QUICK_FLOW)
    for kind, chosen in models.items():
        chosen.update(_check_params(params.get(f"{kind}_params"), f"{kind}_params"))
        if verbose:
            chosen.setdefault("verbose", 1)
    return models


def describe_settings(
    methods: Sequence[str],
    params: Mapping[str, Mapping[str, Any]],
    *,
    n_components: int,
    quick: bool,
    random_state: int | None,
    n_train: int | None = None,
) -> dict[str, Any]:
    """The settings of an evaluation, for the record: the parameters of the models it used.

    Parameters
    ----------
    methods : sequence of str
        The methods evaluated.
    params : dict
        Each model's parameters, as :func:`model_params` returns them.
    n_components : int
    quick : bool
    random_state : int or None
    n_train : int, optional
        Number of other images the models were trained on, if any.

    Returns
    -------
    settings : dict
        Only the models that ``methods`` use.

    Examples
    --------
    >>> describe_settings(["pca"], {}, n_components=8, quick=True, random_state=0)
    {'n_components': 8, 'quick': True, 'random_state': 0}
    """
    settings: dict[str, Any] = {
        "n_components": n_components,
        "quick": bool(quick),
        "random_state": random_state,
    }
    if n_train is not None:
        settings["models trained on"] = f"the {n_train} images of train_X"
    for kind, kind_methods in (
        ("autoencoder", _AUTOENCODER_METHODS),
        ("contrastive", _CONTRASTIVE_METHODS),
        ("flow", _FLOW_METHODS),
    ):
        if set(kind_methods) & set(methods):
            settings[kind] = _describe_params(params[kind])
    return settings


def _describe_params(params: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if k != "verbose"}
    return "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "(defaults)"
