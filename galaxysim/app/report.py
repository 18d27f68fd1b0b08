"""A self-contained HTML report: figures embedded, no files beside it needed."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._validation import PathLike
from ..plotting import png_data_uri
from ..ranking import QueryDiagnosis, Ranking

__all__ = ["diagnosis_record", "diagnosis_rows", "write_html_report"]


def diagnosis_rows(diagnosis: QueryDiagnosis | None) -> dict[str, Any]:
    """The query's diagnosis as rows of the report's summary table, in words.

    Parameters
    ----------
    diagnosis : QueryDiagnosis or None
        A ranking's ``diagnostics`` (None: no rows).

    Returns
    -------
    rows : dict
        Isolation and typicality percentiles (rounded), and the warning when
        there is one.

    Examples
    --------
    >>> from galaxysim.ranking import QueryDiagnosis
    >>> diagnosis_rows(QueryDiagnosis(isolation=12.345, typicality=50.0))
    {'query isolation (percentile)': 12.3, 'query typicality (percentile)': 50.0}
    """
    if diagnosis is None:
        return {}
    rows: dict[str, Any] = {"query isolation (percentile)": round(diagnosis.isolation, 1)}
    if diagnosis.typicality is not None:
        rows["query typicality (percentile)"] = round(diagnosis.typicality, 1)
    if diagnosis.warning:
        rows["warning"] = diagnosis.warning
    return rows


def diagnosis_record(diagnosis: QueryDiagnosis | None) -> dict[str, Any]:
    """The query's diagnosis as the entries of summary.json (for programs).

    Parameters
    ----------
    diagnosis : QueryDiagnosis or None
        A ranking's ``diagnostics`` (None: every entry None).

    Returns
    -------
    record : dict
        ``query_typicality``, ``query_isolation`` and ``warning``.

    Examples
    --------
    >>> from galaxysim.ranking import QueryDiagnosis
    >>> diagnosis_record(QueryDiagnosis(isolation=100.0))["warning"][:36]
    'The query is unlike the collection: '
    """
    if diagnosis is None:
        return {"query_typicality": None, "query_isolation": None, "warning": None}
    return {
        "query_typicality": diagnosis.typicality,
        "query_isolation": diagnosis.isolation,
        "warning": diagnosis.warning,
    }


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f2f2f2; }
table.summary th { text-align: left; white-space: nowrap; }
table.summary td { text-align: left; max-width: 60em; }
td img { image-rendering: pixelated; }
.warning { color: #8b0000; font-weight: bold; }
img.figure { max-width: 100%; border: 1px solid #ddd; }
"""


def _embed_png(path: Path, alt: str) -> str:
    uri = png_data_uri(Path(path).read_bytes())
    return f'<img class="figure" src="{uri}" alt="{html.escape(alt)}">'


def write_html_report(
    path: PathLike,
    *,
    title: str,
    summary: Mapping[str, object],
    figures: Mapping[str, PathLike | tuple[PathLike, str]],
    ranking: Ranking | None = None,
    n_rows: int = 50,
    notes: str | None = None,
) -> Path:
    """Write one HTML page holding a summary, figures and a ranking table.

    The PNG figures are embedded (base64), so the page can be mailed or
    archived on its own.

    Parameters
    ----------
    path : str or path-like
        The HTML file to write (replaced if it exists; the caller decides
        whether that is allowed).
    title : str
        Page title.
    summary : mapping
        ``{label: value}`` rows of the summary table.
    figures : mapping
        ``{caption: PNG path}`` or ``{caption: (PNG path, description)}``,
        drawn in order. The description (what the figure shows) becomes the
        image's alt text; without one the caption does.
    ranking : Ranking, optional
        Its first ``n_rows`` rows become a table (with thumbnails when the
        ranking holds them).
    n_rows : int, default=50
        Rows of the ranking to show.
    notes : str, optional
        A paragraph of plain text under the title.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, os
    >>> from galaxysim.app.report import write_html_report
    >>> out = os.path.join(tempfile.mkdtemp(), "report.html")
    >>> page = write_html_report(out, title="t", summary={"galaxies": 3}, figures={})
    >>> "<td>3</td>" in page.read_text()
    True
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    if ranking is not None and ranking.warning:
        parts.append(f'<p class="warning">{html.escape(ranking.warning)}</p>')
    parts.append('<h2>Summary</h2><table class="summary">')
    for key, value in summary.items():
        parts.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>")
    parts.append("</table>")
    for caption, entry in figures.items():
        figure, alt = entry if isinstance(entry, tuple) else (entry, f"Figure: {caption}.")
        figure = Path(figure)
        if not figure.is_file():
            raise FileNotFoundError(f"figures[{caption!r}] = {str(figure)!r} does not exist.")
        parts.append(f"<h2>{html.escape(caption)}</h2>{_embed_png(figure, alt)}")
    if ranking is not None:
        shown = ranking.head(n_rows)
        parts.append(f"<h2>Top {len(shown)} of the ranking</h2>")
        parts.append(shown._repr_html_())
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
