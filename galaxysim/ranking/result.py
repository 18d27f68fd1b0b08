"""The answer of a similarity search: :class:`Ranking`.

A ranking is what a person reads, plots and saves: the most similar galaxies
in order, with distances, a similarity percentile, log-densities, labels, and
a warning when the query is unlike the collection.
"""

from __future__ import annotations

import csv
import html
import textwrap
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_open
from .._validation import PathLike, check_image, check_positive_int
from ..plotting import plot_image_grid, png_data_uri
from .diagnostics import (
    OUT_OF_DISTRIBUTION_PERCENTILE,
    QueryDiagnosis,
    out_of_distribution_warning,
)

# OUT_OF_DISTRIBUTION_PERCENTILE and out_of_distribution_warning live in .diagnostics; they
# are imported here too, where code written for 0.2 finds them.
__all__ = [
    "OUT_OF_DISTRIBUTION_PERCENTILE",
    "Ranking",
    "make_ranking",
    "out_of_distribution_warning",
]


@dataclass
class Ranking:
    """The galaxies most similar to one query, best first.

    Returned by :meth:`galaxysim.ranking.SimilarityRanker.rank`; not usually
    built by hand.

    Attributes
    ----------
    indices : ndarray of shape (k,)
        Index of each galaxy in the fitted collection.
    distances : ndarray of shape (k,)
        Distance to the query (embedding distance, or absolute log-likelihood
        difference for ``method="likelihood"``); smaller is more similar.
    similarity : ndarray of shape (k,)
        Percentile a person can read: 100 for the closest galaxy of the
        collection, 0 for the farthest; the share of the collection that is
        less similar than this galaxy.
    log_density : ndarray of shape (k,) or None
        Log-density of each galaxy's embedding (None without a density).
    labels : ndarray of shape (k,) or None
        Label of each galaxy, when the ranker was fitted with ``y``.
    class_names : ndarray of shape (k,) or None
        Class name of each galaxy, when the ranker knows ``target_names``
        (the ``class_name`` column of the table).
    names : ndarray of shape (k,) or None
        An identifier of each galaxy (a file name), when ``rank`` was given
        ``names``.
    method : str
        The ranking method that produced this ranking.
    diagnostics : QueryDiagnosis or None
        How unusual the query is for the collection (isolation, typicality,
        pixel outlyingness) and the warning that follows; None for a ranking
        built without one.
    warning : str or None
        ``diagnostics.warning``: set when the query looks out of distribution
        (isolation or pixel outlyingness above 99; a typicality below 1 is
        named then), saying why. Read-only.
    query_image, neighbor_images : ndarray or None
        Thumbnails, kept when ``rank`` was given the collection's images.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.ranking import Ranking
    >>> from galaxysim.ranking import QueryDiagnosis, Ranking
    >>> r = Ranking(indices=np.array([4, 2]), distances=np.array([0.1, 0.3]),
    ...             similarity=np.array([100.0, 90.0]), method="embedding",
    ...             diagnostics=QueryDiagnosis(isolation=10.0))
    >>> table = r.to_frame()  # a pandas DataFrame, or a dict without pandas
    >>> [int(i) for i in table["index"]]
    [4, 2]
    >>> r.diagnostics.isolation, r.warning
    (10.0, None)
    """

    indices: np.ndarray
    distances: np.ndarray
    similarity: np.ndarray
    method: str
    diagnostics: QueryDiagnosis | None = None
    log_density: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: np.ndarray | None = None
    names: np.ndarray | None = None
    query_image: np.ndarray | None = field(default=None, repr=False)
    neighbor_images: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def warning(self) -> str | None:
        """The out-of-distribution warning of :attr:`diagnostics`, or None."""
        return None if self.diagnostics is None else self.diagnostics.warning

    def _deprecated(self, old: str, new: str) -> Any:
        warnings.warn(
            f"Ranking.{old} was deprecated in 0.3 and will be removed in 0.4; use "
            f"Ranking.diagnostics.{new}.",
            FutureWarning,
            stacklevel=3,
        )
        return None if self.diagnostics is None else getattr(self.diagnostics, new)

    @property
    def query_isolation(self) -> float | None:
        """Deprecated (0.3, removed in 0.4): ``diagnostics.isolation``."""
        return self._deprecated("query_isolation", "isolation")

    @property
    def query_typicality(self) -> float | None:
        """Deprecated (0.3, removed in 0.4): ``diagnostics.typicality``."""
        return self._deprecated("query_typicality", "typicality")

    @property
    def query_log_density(self) -> float | None:
        """Deprecated (0.3, removed in 0.4): ``diagnostics.log_density``."""
        return self._deprecated("query_log_density", "log_density")

    @property
    def query_pixel_outlyingness(self) -> float | None:
        """Deprecated (0.3, removed in 0.4): ``diagnostics.pixel_outlyingness``."""
        return self._deprecated("query_pixel_outlyingness", "pixel_outlyingness")

    @property
    def query_checks(self) -> Mapping[str, float] | None:
        """Deprecated (0.3, removed in 0.4): ``diagnostics.pixel_percentiles``."""
        return self._deprecated("query_checks", "pixel_percentiles")

    _PER_GALAXY = (
        "indices",
        "distances",
        "similarity",
        "log_density",
        "labels",
        "class_names",
        "names",
        "neighbor_images",
    )

    def head(self, n: int = 10) -> Ranking:
        """The first ``n`` galaxies of the ranking, as a new Ranking.

        Parameters
        ----------
        n : int, default=10

        Returns
        -------
        ranking : Ranking

        Examples
        --------
        >>> r = Ranking(indices=np.array([4, 2, 7]), distances=np.array([0.1, 0.3, 0.4]),
        ...             similarity=np.array([100.0, 50.0, 0.0]), method="embedding")
        >>> r.head(2).indices
        array([4, 2])
        """
        n = check_positive_int(n, "n")
        cut = {
            name: None if getattr(self, name) is None else getattr(self, name)[:n]
            for name in self._PER_GALAXY
        }
        return replace(self, **cut)

    def _columns(self) -> dict[str, list]:
        columns: dict[str, list] = {
            "rank": list(range(1, len(self) + 1)),
            "index": [int(i) for i in self.indices],
        }
        if self.names is not None:
            columns["name"] = [str(v) for v in self.names]
        columns |= {
            "distance": [float(d) for d in self.distances],
            "similarity": [float(s) for s in self.similarity],
        }
        if self.log_density is not None:
            columns["log_density"] = [float(v) for v in self.log_density]
        if self.labels is not None:
            columns["label"] = [v.item() if isinstance(v, np.generic) else v for v in self.labels]
        if self.class_names is not None:
            columns["class_name"] = [str(v) for v in self.class_names]
        return columns

    def to_frame(self) -> Any:
        """The ranking as a table, one row per galaxy.

        Returns
        -------
        table : pandas.DataFrame or dict of lists
            A DataFrame when pandas is installed, otherwise a dict of
            columns (rank, index, distance, similarity, and log_density,
            label, class_name when known).

        Examples
        --------
        >>> r = Ranking(indices=np.array([4, 2]), distances=np.array([0.1, 0.3]),
        ...             similarity=np.array([100.0, 0.0]), method="embedding",
        ...             class_names=np.array(["bar", "ring"]))
        >>> table = r.to_frame()
        >>> list(table["class_name"]), [float(d) for d in table["distance"]]
        (['bar', 'ring'], [0.1, 0.3])
        """
        columns = self._columns()
        try:
            import pandas as pd
        except ImportError:
            return columns
        return pd.DataFrame(columns)

    def to_csv(self, path: PathLike, *, overwrite: bool = False) -> Path:
        """Write the table of :meth:`to_frame` as CSV.

        Parameters
        ----------
        path : str or path-like
            The file to write.
        overwrite : bool, default=False
            Replace an existing file; without it an existing file is an error,
            so nothing is lost by accident.

        Returns
        -------
        path : pathlib.Path

        Notes
        -----
        The file appears complete or not at all. Text cells that a
        spreadsheet would run as a formula (starting with ``=``, ``+``,
        ``-``, ``@``, a tab or a carriage return, as a file name from
        someone else may) are written with a leading apostrophe.

        Examples
        --------
        >>> import tempfile
        >>> r = Ranking(indices=np.array([4, 2]), distances=np.array([0.1, 0.3]),
        ...             similarity=np.array([100.0, 0.0]), method="embedding")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = r.to_csv(Path(folder) / "ranking.csv")
        ...     print(path.read_text().splitlines()[:2])
        ['rank,index,distance,similarity', '1,4,0.1,100.0']
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"path {str(path)!r} exists; pass overwrite=True to replace it.")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"The folder of path {str(path)!r} does not exist.")
        columns = {
            name: [_csv_cell(value) for value in values] for name, values in self._columns().items()
        }
        with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(list(columns))
            writer.writerows(zip(*columns.values()))
        return path

    def _captions(self, n: int) -> list[str]:
        captions = []
        for i in range(n):
            text = f"#{i + 1}  {self.similarity[i]:.1f}%"
            if self.class_names is not None:
                text += f"\n{self.class_names[i]}"
            elif self.labels is not None:
                text += f"\nlabel {self.labels[i]}"
            captions.append(text)
        return captions

    def plot(
        self,
        images: np.ndarray | None = None,
        n_neighbors: int = 16,
        *,
        query: np.ndarray | None = None,
        n_cols: int = 6,
    ):
        """Draw the query and its ``n_neighbors`` most similar galaxies.

        Parameters
        ----------
        images : ndarray of shape (n_collection, H, W, C), optional
            The fitted collection's images (indexed with ``indices``). Not
            needed when the ranking already holds thumbnails.
        n_neighbors : int, default=16
            How many neighbours to draw (all of the ranking when it holds
            fewer).
        query : ndarray of shape (H, W, C), optional
            The query image, when the ranking does not hold it.
        n_cols : int, default=6
            Panels per row.

        Returns
        -------
        fig : matplotlib.figure.Figure
            Captions give rank, similarity percentile and class.

        Examples
        --------
        >>> r = Ranking(indices=np.array([1, 0]), distances=np.array([0.0, 0.5]),
        ...             similarity=np.array([100.0, 0.0]), method="embedding")
        >>> fig = r.plot(np.zeros((2, 8, 8, 3)), n_neighbors=1, query=np.ones((8, 8, 3)))
        >>> [ax.get_title() for ax in fig.axes if ax.images]
        ['query', '#1  100.0%']
        """
        n = min(check_positive_int(n_neighbors, "n_neighbors"), len(self))
        if images is not None:
            neighbours = np.asarray(images)[self.indices[:n]]
        elif self.neighbor_images is not None:
            neighbours = self.neighbor_images[:n]
        else:
            raise ValueError(
                "plot needs the collection's images: pass images=, or rank with images=."
            )
        query = self.query_image if query is None else query
        panels = [check_image(image, name="images") for image in neighbours]
        titles = self._captions(n)
        if query is not None:
            panels.insert(0, check_image(query, name="query"))
            titles.insert(0, "query")
        fig = plot_image_grid(np.stack(panels), titles=titles, n_cols=n_cols, image_size=1.6)
        if self.warning:
            text = textwrap.fill(self.warning, int(15 * fig.get_figwidth()))  # 7 points
            fig.suptitle(text, fontsize=7, color="darkred")
        return fig

    def _repr_html_(self) -> str:
        columns = self._columns()
        head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
        has_images = self.neighbor_images is not None
        if has_images:
            head = "<th>image</th>" + head
        rows = []
        for i in range(len(self)):
            cells = []
            if has_images:
                alt = f"Galaxy ranked {i + 1}" + (
                    f", {self.class_names[i]}" if self.class_names is not None else ""
                )
                cells.append(
                    f'<td><img src="{png_data_uri(self.neighbor_images[i])}" '
                    f'alt="{html.escape(alt)}" width="64"></td>'
                )
            for values in columns.values():
                value = values[i]
                text = f"{value:.4g}" if isinstance(value, float) else str(value)
                cells.append(f"<td>{html.escape(text)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        header = [f"<b>Ranking</b> ({html.escape(self.method)}, {len(self)} galaxies)"]
        if self.query_image is not None:
            header.append(
                f'<br>query: <img src="{png_data_uri(self.query_image)}" '
                'alt="The query galaxy" width="64">'
            )
        header.extend(_diagnostics_html(self.diagnostics))
        if self.warning:
            header.append(f'<br><span style="color:darkred">{html.escape(self.warning)}</span>')
        return (
            "<div>"
            + "".join(header)
            + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


def _diagnostics_html(diagnostics: QueryDiagnosis | None) -> list[str]:
    """The query's percentiles as the header of the HTML table (nothing without a diagnosis)."""
    if diagnostics is None:
        return []
    parts = []
    if diagnostics.typicality is not None:
        parts.append(f"<br>query typicality: {diagnostics.typicality:.1f} percentile")
    parts.append(f"; isolation: {diagnostics.isolation:.1f} percentile")
    if diagnostics.pixel_outlyingness is not None:
        parts.append(f"; pixel outlyingness: {diagnostics.pixel_outlyingness:.1f} percentile")
    return parts


# What ``make_ranking`` picks at the neighbours' indices from ``collection``.
_COLLECTION_KEYS = ("log_density", "labels", "target_names", "names", "images")


def make_ranking(
    indices: np.ndarray,
    distances: np.ndarray,
    *,
    n_collection: int,
    method: str,
    diagnostics: QueryDiagnosis | None = None,
    collection: Mapping[str, Any] | None = None,
    query_image: np.ndarray | None = None,
) -> Ranking:
    """Build the :class:`Ranking` of one query from its search result.

    Per-galaxy values of the whole collection are picked at ``indices``; the
    similarity percentile is derived here.

    Parameters
    ----------
    indices, distances : ndarray of shape (k,)
        The query's neighbours in the collection, most similar first.
    n_collection : int
        Size of the collection (the similarity percentile is relative to it).
    method : str
        The ranking method.
    diagnostics : QueryDiagnosis, optional
        The query's diagnosis (its warning becomes the ranking's).
    collection : mapping, optional
        Values of the whole collection, each optional: ``log_density`` and
        ``labels`` (arrays of length ``n_collection``), ``target_names``
        (class names of the integer labels), ``names`` (an identifier per
        galaxy) and ``images`` (``(n_collection, H, W, C)``; thumbnails of
        the neighbours are kept when given, and so is ``query_image``).
    query_image : ndarray of shape (H, W, C), optional

    Returns
    -------
    ranking : Ranking

    Examples
    --------
    >>> r = make_ranking(np.array([2, 0]), np.array([0.0, 1.5]), n_collection=3,
    ...                  method="embedding",
    ...                  collection={"labels": np.array([0, 1, 1]),
    ...                              "target_names": ["bar", "ring"]})
    >>> r.similarity.tolist(), r.class_names.tolist()
    ([100.0, 50.0], ['ring', 'bar'])
    """
    collection = dict(collection or {})
    unknown = sorted(set(collection) - set(_COLLECTION_KEYS))
    if unknown:
        raise ValueError(
            f"collection has unknown keys {unknown}; expected some of {list(_COLLECTION_KEYS)}."
        )
    log_density, labels, target_names, names, images = (
        collection.get(key) for key in _COLLECTION_KEYS
    )
    positions = np.arange(1, len(indices) + 1)
    # 100 for the closest galaxy of the collection, 0 for the farthest.
    similarity = 100.0 * (n_collection - positions) / max(n_collection - 1, 1)
    picked_labels = None if labels is None else labels[indices]
    class_names = None
    if picked_labels is not None and target_names is not None:
        class_names = np.asarray(target_names, dtype=object)[picked_labels.astype(np.intp)]
    return Ranking(
        indices=np.asarray(indices),
        distances=np.asarray(distances, dtype=np.float64),
        similarity=similarity,
        log_density=None if log_density is None else log_density[indices],
        labels=picked_labels,
        class_names=class_names,
        names=None if names is None else np.asarray(names, dtype=object)[indices],
        method=method,
        diagnostics=diagnostics,
        query_image=None if images is None else query_image,
        neighbor_images=None if images is None else np.asarray(images)[indices],
    )


# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """Neutralise text that a spreadsheet would run as a formula (a file name such as ``=cmd``).

    The text gets a leading apostrophe, the convention spreadsheets read as
    "this is text"; numbers are written as they are.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
