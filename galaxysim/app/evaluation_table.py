"""The result of an evaluation: :class:`EvaluationTable` and its figure.

:class:`EvaluationTable` holds one row of measurements per ranking method
(see :func:`~galaxysim.app.evaluation.evaluate_methods`) and writes them as
CSV or Markdown, with a row for what chance scores; :func:`plot_evaluation`
draws them as bar charts. A figure's 95 % interval is kept in two columns
next to it, ``<column>_ci_low`` and ``<column>_ci_high``
(:meth:`EvaluationTable.interval_columns`); the Markdown shows it in the
figure's cell, as ``0.286 [0.24, 0.33]``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import PathLike
from .evaluation_methods import METHOD_DESCRIPTIONS

__all__ = ["BOOTSTRAP_RESAMPLES", "INTERVAL_CONFIDENCE", "EvaluationTable", "plot_evaluation"]

#: Coverage of the intervals of an evaluation.
INTERVAL_CONFIDENCE = 0.95
#: Bootstrap resamples behind each interval of an evaluation.
BOOTSTRAP_RESAMPLES = 2000

_LOW, _HIGH = "_ci_low", "_ci_high"


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
        ``query_seconds`` (ranking the whole collection for the query),
        and ``same_class_at_<n>:<class>`` (the same-class rate of each
        class's galaxies; weighted by the class sizes they average to
        ``same_class_at_<n>``). Each figure of the collection is followed by
        its 95 % interval, ``<column>_ci_low`` and ``<column>_ci_high``
        (:meth:`interval_columns`): a percentile bootstrap over the galaxies
        for the same-class rates, the difference to PCA (paired) and the
        mean ranks, a Wilson interval for the target shares.
    chance : dict
        What a random ranking scores: ``same_class_at_<n>`` (the probability
        that a random other galaxy shares a galaxy's class),
        ``target_share_at_<k>`` (the target class's share of the collection),
        ``mean_rank:<class>`` (``(n + 1) / 2``) and
        ``same_class_at_<n>:<class>`` (``(n_class - 1) / (n - 1)``).
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
    >>> from galaxysim.app.evaluation_table import EvaluationTable
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

    @staticmethod
    def interval_columns(column: str) -> tuple[str, str]:
        """Names of the columns of the 95 % interval of ``column``.

        Parameters
        ----------
        column : str
            A column of figures, such as ``"same_class_at_10"``.

        Returns
        -------
        low, high : str
            ``<column>_ci_low`` and ``<column>_ci_high``.

        Examples
        --------
        >>> from galaxysim.app.evaluation_table import EvaluationTable
        >>> EvaluationTable.interval_columns("mean_rank:Barred Spiral")
        ('mean_rank:Barred Spiral_ci_low', 'mean_rank:Barred Spiral_ci_high')
        """
        if not isinstance(column, str) or not column:
            raise TypeError(f"column must be a column name (a non-empty str), got {column!r}.")
        return column + _LOW, column + _HIGH

    @property
    def target_name(self) -> str:
        """Name of the target class."""
        return self.target_names[self.target_label]

    @property
    def same_class_key(self) -> str:
        """Column of the same-class rate, ``same_class_at_<n_neighbors>``."""
        return f"same_class_at_{self.n_neighbors}"

    def _chance_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {name: "" for name in self.columns}
        row.update(method="chance", kind="reference")
        row.update(self.chance)
        return row

    def to_csv(self, path: PathLike, *, overwrite: bool = False) -> Path:
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
        >>> from galaxysim.app.evaluation_table import EvaluationTable
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
        >>> from galaxysim.app.evaluation_table import EvaluationTable
        >>> table = EvaluationTable(rows=[{"method": "pca", "kind": "baseline",
        ...     "same_class_at_1": 0.5}], chance={"same_class_at_1": 0.25},
        ...     target_names=["a"], target_label=0, class_counts=[2], n_neighbors=1, ks=())
        >>> print(table.to_markdown(details=False))
        | method | kind | same-class@1 |
        |---|---|---:|
        | pca | baseline | 0.500 |
        | *chance* | reference | 0.250 |
        """
        table = self._markdown_table()
        if not details:
            return table
        legend = [
            f"- `{row['method']}`: {METHOD_DESCRIPTIONS.get(row['method'], '')}"
            for row in self.rows
        ]
        return (
            "\n".join([self._markdown_intro(), "", table, "", self._markdown_legend(), "", *legend])
            + "\n"
        )

    def _markdown_table(self) -> str:
        """The main table and, when the rows have them, the table of per-class rates."""
        shown = [name for name in self.columns if not name.endswith((_LOW, _HIGH))]
        per_class = f"{self.same_class_key}:"
        tables = [[name for name in shown if not name.startswith(per_class)]]
        by_class = [name for name in shown if name.startswith(per_class)]
        if by_class:
            tables.append(["method", *by_class])
        return "\n\n".join(self._markdown_lines(columns) for columns in tables)

    def _markdown_lines(self, columns: list[str]) -> str:
        align = ["---" if name in ("method", "kind") else "---:" for name in columns]
        lines = [
            "| " + " | ".join(self._header(name) for name in columns) + " |",
            "|" + "|".join(align) + "|",
        ]
        chance = {**self._chance_row(), "method": "*chance*"}
        for row in [*self.rows, chance]:
            cells = []
            for name in columns:
                low, high = self.interval_columns(name)
                cells.append(self._cell(name, row.get(name), row.get(low), row.get(high)))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def _markdown_intro(self) -> str:
        counts = ", ".join(
            f"{name} {count}" for name, count in zip(self.target_names, self.class_counts)
        )
        shape = "x".join(str(s) for s in self.image_shape) if self.image_shape else "?"
        intro = (
            f"Collection: {self.data_name}, {sum(self.class_counts)} images of {shape} "
            f"({counts}). Query: {self.query_name}; target class: {self.target_name}."
        )
        if self.settings:
            intro += " Settings: " + "; ".join(f"{k}={v}" for k, v in self.settings.items()) + "."
        return intro

    def _markdown_legend(self) -> str:
        return (
            f"same-class@{self.n_neighbors}: leave-one-out share of each galaxy's "
            f"{self.n_neighbors} nearest neighbours that share its class. vs PCA: the same "
            "minus PCA's (negative: the method groups classes worse than PCA). "
            f"{self.target_name} in top k: share of that class among the query's k most "
            "similar galaxies. mean rank: mean position (1 = most similar) of each class in "
            "the query's full ranking. isolation: percentile of the query's distance to its "
            "nearest galaxy among the galaxies' own nearest-neighbour distances (near 100: "
            "the query is unlike the collection). fit s: seconds to fit the method "
            "(shared models counted in full); query s: seconds to rank the collection for "
            "the query. [low, high]: 95 % interval; a percentile bootstrap of "
            f"{BOOTSTRAP_RESAMPLES:,} resamples of the galaxies (for vs PCA, of the "
            "per-galaxy differences to PCA; for a mean rank, of that class's galaxies), a "
            "Wilson interval for a share of the top k. With few galaxies a class the "
            "intervals are wide, and a difference between two methods that lies inside them "
            "is not a result (against PCA: a vs PCA interval that holds 0)."
        )

    def _header(self, name: str) -> str:
        if name == "embedding_dim":
            return "dim"
        if name.startswith("same_class_at_"):
            n_neighbors, _, class_name = name.removeprefix("same_class_at_").partition(":")
            return f"same-class@{n_neighbors} {class_name}".rstrip()
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
    def _cell(name: str, value: Any, low: Any = None, high: Any = None) -> str:
        """A figure as Markdown, followed by its interval as ``[low, high]`` when it has one."""
        if value is None or (isinstance(value, str) and not value):
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, np.bool_, Integral)):
            return str(int(value))
        value = float(value)
        if math.isnan(value):
            return ""
        if name == "same_class_vs_pca":
            text, bound = f"{value:+.3f}", "{:+.2f}"
        elif name.startswith("mean_rank:"):
            text, bound = f"{value:.0f}", "{:.0f}"
        elif name == "query_isolation":
            return f"{value:.1f}"
        elif name.endswith("_seconds"):
            return f"{value:.3g}"
        else:
            text, bound = f"{value:.3f}", "{:.2f}"
        bounds = [_number(low), _number(high)]
        if any(b is None for b in bounds):
            return text
        return f"{text} [{bound.format(bounds[0])}, {bound.format(bounds[1])}]"


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None for a blank, missing or NaN cell."""
    if value is None or isinstance(value, (str, bool, np.bool_)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------- figure

_BASELINE_COLOUR, _LEARNED_COLOUR = "0.6", "tab:blue"


def plot_evaluation(table: EvaluationTable):
    """Draw a table as bar charts: same-class rate, target share, class ranks.

    Three panels: the same-class rate of each method (with PCA's and
    chance's levels as lines, so a learned method below PCA is plain to
    see); the target class's share of the query's top ``k`` (chance as a
    line); and each class's mean rank for the query, scaled to the
    collection (0 = ranked first, 1 = last). The rates and shares carry
    their 95 % intervals as error bars when the table has them.

    Parameters
    ----------
    table : EvaluationTable

    Returns
    -------
    fig : matplotlib.figure.Figure
        Baselines are drawn in grey, learned methods in colour.

    Examples
    --------
    >>> from galaxysim.app.evaluation_table import EvaluationTable, plot_evaluation
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

    if not isinstance(table, EvaluationTable):
        raise TypeError(f"table must be an EvaluationTable, got {type(table).__name__}.")
    if not table.rows:
        raise ValueError("table has no rows to plot.")
    colours = [
        _BASELINE_COLOUR if row.get("kind") == "baseline" else _LEARNED_COLOUR for row in table.rows
    ]
    fig = Figure(figsize=(15, 2.2 + 0.5 * len(table.rows)), layout="constrained")
    fig.suptitle(f"{table.data_name}\nquery: {table.query_name}", fontsize=9)
    ax_rate, ax_share, ax_rank = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    _plot_same_class_rate(ax_rate, table, colours)
    _plot_target_share(ax_share, table, colours)
    _plot_mean_ranks(ax_rank, table)
    return fig


_ERROR_STYLE = {"ecolor": "0.15", "elinewidth": 1.0, "capsize": 2.5}


def _interval_handle():
    """The legend entry of the error bars."""
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        color=_ERROR_STYLE["ecolor"],
        marker="|",
        markersize=7,
        linewidth=_ERROR_STYLE["elinewidth"],
        label="95 % interval",
    )


def _error_bars(table: EvaluationTable, column: str) -> np.ndarray | None:
    """``xerr`` of a column's bars, (2, n_rows): distance to each row's interval bounds.

    None when any row lacks the interval (a table built by hand, say), so a
    bar is never drawn with half an error bar.
    """
    low, high = table.interval_columns(column)
    try:
        values = np.array([[row[column], row[low], row[high]] for row in table.rows], dtype=float)
    except KeyError:
        return None
    if not np.isfinite(values).all():
        return None
    # A percentile interval may, rarely, sit just beside the figure; never draw a negative bar.
    return np.clip(np.stack([values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]]), 0, None)


def _plot_same_class_rate(ax, table: EvaluationTable, colours: list[str]) -> None:
    """Bars of the same-class rate, with chance's and PCA's levels as lines."""
    from matplotlib.patches import Patch

    y_pos = np.arange(len(table.rows))
    key = table.same_class_key
    rates = [row[key] for row in table.rows]
    errors = _error_bars(table, key)
    ax.barh(y_pos, rates, color=colours, xerr=errors, error_kw=_ERROR_STYLE)
    ends = rates if errors is None else np.asarray(rates) + errors[1]
    for pos, value, end in zip(y_pos, rates, ends):
        ax.text(end, pos, f" {value:.2f}", va="center", fontsize=8)
    handles = [
        Patch(color=_BASELINE_COLOUR, label="baseline"),
        Patch(color=_LEARNED_COLOUR, label="learned"),
    ]
    handles.append(ax.axvline(table.chance[key], color="k", linestyle=":", label="chance"))
    if "pca" in table.methods:
        handles.append(ax.axvline(table["pca"][key], color="0.3", linestyle="--", label="PCA"))
    ax.set_yticks(y_pos, table.methods)
    ax.invert_yaxis()
    if errors is not None:
        handles.append(_interval_handle())
    ax.set_xlim(0, 1.15)
    ax.set_xlabel(f"share of the {table.n_neighbors} nearest neighbours of the same class")
    ax.set_title(f"Same-class rate@{table.n_neighbors} (leave-one-out)", fontsize=10)
    ax.legend(handles=handles, loc="lower right", fontsize=8)


def _plot_target_share(ax, table: EvaluationTable, colours: list[str]) -> None:
    """Grouped bars of the target class's share of the query's top k, one per cut-off."""
    from matplotlib.patches import Patch

    y_pos = np.arange(len(table.rows))
    ks = list(table.ks)
    if ks:
        height = 0.8 / len(ks)
        handles = []
        for i, k in enumerate(ks):
            shares = [row[f"target_share_at_{k}"] for row in table.rows]
            offset = (i - (len(ks) - 1) / 2) * height
            # Later cut-offs are hatched so that colour keeps meaning baseline/learned.
            hatch = None if i == 0 else "///"
            ax.barh(
                y_pos + offset,
                shares,
                height=height,
                color=colours,
                alpha=1.0 if i == 0 else 0.5,
                hatch=hatch,
                edgecolor="white",
                xerr=_error_bars(table, f"target_share_at_{k}"),
                error_kw=_ERROR_STYLE,
            )
            handles.append(
                Patch(
                    facecolor="0.35" if i == 0 else "0.8",
                    hatch=hatch,
                    edgecolor="white",
                    label=f"top {k}",
                )
            )
        handles.append(
            ax.axvline(
                table.chance[f"target_share_at_{ks[0]}"], color="k", linestyle=":", label="chance"
            )
        )
        if any(_error_bars(table, f"target_share_at_{k}") is not None for k in ks):
            handles.append(_interval_handle())
        ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.set_yticks(y_pos, [""] * len(y_pos))
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel(f"share of {table.target_name} among the query's top k")
    ax.set_title(f"{table.target_name} in the query's top k", fontsize=10)


def _plot_mean_ranks(ax, table: EvaluationTable) -> None:
    """A heat map of each class's mean rank, scaled to the collection, with a colour bar."""
    n = sum(table.class_counts)
    ranks = np.array(
        [[row[f"mean_rank:{name}"] for name in table.target_names] for row in table.rows],
        dtype=float,
    )
    scaled = (ranks - 1) / max(n - 1, 1)
    image = ax.imshow(scaled, cmap="RdYlGn_r", vmin=0, vmax=1, aspect="auto")
    for (row, col), value in np.ndenumerate(ranks):
        if np.isfinite(value):
            ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8)
    ax.set_yticks(np.arange(len(table.rows)), [""] * len(table.rows))
    ax.set_xticks(
        np.arange(len(table.target_names)),
        [name.replace(" ", "\n", 1) for name in table.target_names],
        fontsize=7,
    )
    ax.set_title(
        f"Mean rank of each class for the query (of {n}; chance {(n + 1) / 2:.0f})", fontsize=10
    )
    ax.figure.colorbar(image, ax=ax, label="mean rank / collection size", shrink=0.8)
