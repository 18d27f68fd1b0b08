"""The answer of a similarity search: :class:`Ranking`.

A ranking is what a person reads, plots and saves: the most similar galaxies
in order, with distances, a similarity percentile, log-densities, labels, and
a warning when the query is unlike the collection.
"""

from __future__ import annotations

import csv
import html
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_open
from .._validation import PathLike, check_image, check_positive_int
from ..images import IMAGE_STATISTICS
from ..plotting import plot_image_grid, png_data_uri

__all__ = [
    "OUT_OF_DISTRIBUTION_PERCENTILE",
    "Ranking",
    "make_ranking",
    "out_of_distribution_warning",
]

#: Above 100 minus this isolation or pixel-outlyingness percentile, a query is unlike the collection.
OUT_OF_DISTRIBUTION_PERCENTILE = 1.0


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
    query_log_density : float or None
        Log-density of the query's embedding.
    query_typicality : float or None
        Percentile of the query's log-density among the collection's: about
        50 for a typical galaxy, near 0 for one less likely than all of them.
    query_isolation : float
        Percentile of the query's distance to its nearest galaxy among the
        collection's own nearest-neighbour distances: near 100 means the
        query is farther from everything than any galaxy is from its closest
        neighbour.
    query_pixel_outlyingness : float or None
        Percentile of how unusual the query's pixel statistics
        (:func:`~galaxysim.images.image_statistics`) are among the galaxies'
        own: near 100 for pixels unlike every galaxy's, as a drawing's; the
        same for every embedder. None for feature vectors, images under 8
        pixels, collections under 20 galaxies and rankers saved before it.
    query_checks : dict or None
        The query's percentile among the collection on each pixel statistic
        (keys: :data:`~galaxysim.images.IMAGE_STATISTICS`).
    warning : str or None
        Set when the query looks out of distribution (isolation or pixel
        outlyingness above 99; a typicality below 1 is named then), saying why.
    query_image, neighbor_images : ndarray or None
        Thumbnails, kept when ``rank`` was given the collection's images.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.ranking import Ranking
    >>> r = Ranking(indices=np.array([4, 2]), distances=np.array([0.1, 0.3]),
    ...             similarity=np.array([100.0, 90.0]), method="embedding", query_isolation=10.0)
    >>> table = r.to_frame()  # a pandas DataFrame, or a dict without pandas
    >>> [int(i) for i in table["index"]]
    [4, 2]
    """

    indices: np.ndarray
    distances: np.ndarray
    similarity: np.ndarray
    method: str
    query_isolation: float
    log_density: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: np.ndarray | None = None
    names: np.ndarray | None = None
    query_log_density: float | None = None
    query_typicality: float | None = None
    warning: str | None = None
    query_image: np.ndarray | None = field(default=None, repr=False)
    neighbor_images: np.ndarray | None = field(default=None, repr=False)
    query_pixel_outlyingness: float | None = None
    query_checks: dict[str, float] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

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
        ...             similarity=np.array([100.0, 50.0, 0.0]), method="embedding",
        ...             query_isolation=10.0)
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
        ...             query_isolation=10.0, class_names=np.array(["bar", "ring"]))
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
        ...             similarity=np.array([100.0, 0.0]), method="embedding", query_isolation=10.0)
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
        ...             similarity=np.array([100.0, 0.0]), method="embedding", query_isolation=10.0)
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
        if self.query_typicality is not None:
            header.append(f"<br>query typicality: {self.query_typicality:.1f} percentile")
        header.append(f"; isolation: {self.query_isolation:.1f} percentile")
        if self.query_pixel_outlyingness is not None:
            header.append(f"; pixel outlyingness: {self.query_pixel_outlyingness:.1f} percentile")
        if self.warning:
            header.append(f'<br><span style="color:darkred">{html.escape(self.warning)}</span>')
        return (
            "<div>"
            + "".join(header)
            + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


def out_of_distribution_warning(
    typicality: float | None,
    isolation: float,
    percentile: float = OUT_OF_DISTRIBUTION_PERCENTILE,
    *,
    pixel_outlyingness: float | None = None,
    unusual: Sequence[str] = (),
) -> str | None:
    """The warning for a query unlike the collection, saying why, or None for a usual one.

    Parameters
    ----------
    typicality : float or None
        Percentile of the query's log-density among the collection's (None
        without a density).
    isolation : float
        Percentile of the query's nearest-galaxy distance among the
        collection's own nearest-neighbour distances.
    percentile : float, default=OUT_OF_DISTRIBUTION_PERCENTILE
        An isolation or pixel outlyingness above ``100 - percentile`` flags
        the query; a typicality below ``percentile`` is then named too, but
        does not flag a query alone (held-out survey galaxies fall there
        about 5 % of the time, as the density has seen the collection).
    pixel_outlyingness : float, optional
        Percentile of the query's pixel statistics' distance from the
        collection's among the galaxies' own (None: not measured).
    unusual : sequence of str, default=()
        Names from :data:`~galaxysim.images.IMAGE_STATISTICS` on which the
        query is most unusual, named in the warning.

    Returns
    -------
    warning : str or None

    Examples
    --------
    >>> out_of_distribution_warning(40.0, 50.0) is None
    True
    >>> out_of_distribution_warning(0.0, 50.0) is None  # a low typicality alone
    True
    >>> out_of_distribution_warning(0.0, 100.0).startswith("The query is unlike the collection")
    True
    >>> print(out_of_distribution_warning(40.0, 50.0, pixel_outlyingness=100.0,
    ...                                   unusual=["log_noise"]))  # doctest: +NORMALIZE_WHITESPACE
    The query's pixels are unlike those of every galaxy in the collection (most of all in
    the level of the pixel noise): it may be a drawing or a processed image, and the
    similarities may be meaningless.
    """
    pixels_unusual = pixel_outlyingness is not None and pixel_outlyingness > 100.0 - percentile
    if not (pixels_unusual or isolation > 100.0 - percentile):
        # A low typicality alone does not warn: the density was fitted on the collection,
        # so 5 % of held-out survey galaxies fall below 1 % of it (docs/ranking.md).
        return None
    reasons = []
    if typicality is not None and typicality < percentile:
        reasons.append(
            f"its log-density is lower than that of {100 - typicality:.1f}% of the collection"
        )
    if isolation > 100.0 - percentile:
        reasons.append(
            f"it is farther from its nearest galaxy than {isolation:.1f}% of the collection "
            "are from theirs"
        )
    sentences = []
    if reasons:
        sentences.append("The query is unlike the collection: " + "; ".join(reasons) + ".")
    if pixels_unusual:
        which = " and ".join(IMAGE_STATISTICS.get(name, name) for name in unusual)
        sentences.append(
            "The query's pixels are unlike those of every galaxy in the collection"
            + (f" (most of all in {which})" if which else "")
            + ": it may be a drawing or a processed image, and the similarities may be meaningless."
        )
    return " ".join(sentences) or None


def make_ranking(
    indices: np.ndarray,
    distances: np.ndarray,
    *,
    n_collection: int,
    method: str,
    query_isolation: float,
    query_log_density: float | None = None,
    query_typicality: float | None = None,
    query_pixel_outlyingness: float | None = None,
    query_checks: dict[str, float] | None = None,
    unusual: Sequence[str] = (),
    log_density: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    target_names: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    images: np.ndarray | None = None,
    query_image: np.ndarray | None = None,
) -> Ranking:
    """Build the :class:`Ranking` of one query from its search result.

    Per-galaxy values of the whole collection (``log_density``, ``labels``,
    ``names``, ``images``) are picked at ``indices``; the similarity
    percentile and the out-of-distribution warning are derived here.

    Parameters
    ----------
    indices, distances : ndarray of shape (k,)
        The query's neighbours in the collection, most similar first.
    n_collection : int
        Size of the collection (the similarity percentile is relative to it).
    method : str
        The ranking method.
    query_isolation : float
    query_log_density, query_typicality, query_pixel_outlyingness : float, optional
    query_checks : dict, optional
        The query's percentile on each pixel statistic.
    unusual : sequence of str, default=()
        The pixel statistics named in the warning.
    log_density, labels : ndarray of shape (n_collection,), optional
    target_names : sequence of str, optional
        Class names of the integer ``labels``.
    names : sequence of str of length n_collection, optional
    images : ndarray of shape (n_collection, H, W, C), optional
        Thumbnails of the neighbours are kept when given; so is
        ``query_image``.
    query_image : ndarray of shape (H, W, C), optional

    Returns
    -------
    ranking : Ranking

    Examples
    --------
    >>> r = make_ranking(np.array([2, 0]), np.array([0.0, 1.5]), n_collection=3,
    ...                  method="embedding", query_isolation=50.0, labels=np.array([0, 1, 1]),
    ...                  target_names=["bar", "ring"])
    >>> r.similarity.tolist(), r.class_names.tolist()
    ([100.0, 50.0], ['ring', 'bar'])
    """
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
        query_log_density=query_log_density,
        query_typicality=query_typicality,
        query_isolation=query_isolation,
        query_pixel_outlyingness=query_pixel_outlyingness,
        query_checks=query_checks,
        warning=out_of_distribution_warning(
            query_typicality,
            query_isolation,
            pixel_outlyingness=query_pixel_outlyingness,
            unusual=unusual,
        ),
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
