"""The Milky Way challenge as one call: rank a collection and write every output.

:func:`write_ranking_outputs` turns a fitted :class:`SimilarityRanker`, its
collection and a query into the files a person looks at: ``ranking.csv``,
``neighbours.png``, ``latent.png``, ``training.png``, ``reconstructions.png``,
``generated.png``, ``summary.json``, ``report.html`` and ``model.safetensors`` (a weights-only
model file, see :mod:`galaxysim.persistence`). Both ``galaxysim demo`` and
``galaxysim rank`` use it, writing into a staged folder
(:mod:`galaxysim.app.output_folder`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import PathLike
from ..metrics import summarize_ranking
from ..persistence import save_model
from ..plotting import plot_image_grid, plot_latent_map, plot_training_curves
from ..ranking import Ranking, SimilarityRanker
from .collections import Collection
from .report import diagnosis_record, diagnosis_rows, write_html_report

__all__ = ["RankingReport", "write_ranking_outputs"]


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _training_histories(
    ranker: SimilarityRanker, study: SimilarityRanker | None
) -> dict[str, dict]:
    """Loss histories of the fitted models that kept one, named after their estimators."""
    models = [ranker.embedder_, ranker.density_]
    if study is not None:
        models += [study.embedder_, study.density_]
    names = ["embedder", "density", "autoencoder (study)", "flow on its codes (study)"]
    return {
        f"{name}: {type(model).__name__}": model.history_
        for name, model in zip(names, models)
        if model is not None and getattr(model, "history_", None) is not None
    }


def _decoder(ranker: SimilarityRanker, study: SimilarityRanker | None) -> SimilarityRanker | None:
    """The ranker whose embedder decodes (the study's, else the ranker's own), or None."""
    for candidate in (study, ranker):
        if candidate is not None and hasattr(candidate.embedder_, "inverse_transform"):
            return candidate
    return None


def _reconstructions(
    decoder: SimilarityRanker,
    images: np.ndarray,
    query: np.ndarray,
    *,
    labels: np.ndarray | None,
    target_names: Sequence[str] | None,
    query_name: str,
    n_galaxies: int = 7,
) -> Any:
    """Figure: galaxies and the query (top row) and the embedder's output for each (below)."""
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(len(images), size=min(n_galaxies, len(images)), replace=False))
    inputs = np.concatenate([np.asarray(images)[chosen], np.asarray(query)[np.newaxis]])
    outputs = decoder.embedder_.inverse_transform(decoder.embedder_.transform(inputs))
    outputs = np.clip(np.asarray(outputs).reshape(inputs.shape), 0.0, 1.0)
    titles = [
        str(target_names[labels[i]])
        if labels is not None and target_names is not None
        else f"galaxy {i}"
        for i in chosen
    ]
    titles = [*titles, "query"] + [""] * len(inputs)
    pictures = np.concatenate(
        [inputs.astype(np.float32) / (255.0 if inputs.dtype == np.uint8 else 1.0), outputs]
    )
    return plot_image_grid(
        pictures,
        titles,
        n_cols=len(inputs),
        row_labels=["input", "output"],
        suptitle=f"{query_name} and galaxies through the "
        f"{type(decoder.embedder_).__name__}: inputs above, outputs below",
    )


def _generated_images(
    decoder: SimilarityRanker | None, n_generate: int, random_state: int | None
) -> np.ndarray | None:
    """Embeddings sampled from the density and decoded; None when either cannot."""
    if decoder is None:
        return None
    density, embedder, ranker = decoder.density_, decoder.embedder_, decoder
    if density is None or not hasattr(density, "sample"):
        return None
    sampled = np.asarray(density.sample(n_generate, random_state=random_state))
    generated = np.clip(embedder.inverse_transform(sampled), 0.0, 1.0)
    if generated.ndim == 2 and ranker.image_shape_ is not None:
        generated = generated.reshape((len(generated), *ranker.image_shape_))
    return generated


def _write_figures(
    out: Path,
    ranker: SimilarityRanker,
    ranking: Ranking,
    query: np.ndarray,
    collection: Collection,
    report: RankingReport,
) -> dict[str, Path]:
    """neighbours.png, latent.png; training, reconstructions and generated where possible."""
    images, labels, target_names = collection.images, collection.target, collection.target_names
    query_name, study = report.query_name, report.study
    files = {
        "neighbours": _save(ranking.plot(n_neighbors=report.n_neighbors), out / "neighbours.png")
    }
    query_embedding = ranker.transform(np.asarray(query)[np.newaxis])
    files["latent"] = _save(
        plot_latent_map(
            ranker.embedding_,
            labels,
            target_names=target_names,
            query=query_embedding,
            query_label=query_name,
        ),
        out / "latent.png",
    )
    histories = _training_histories(ranker, study)
    if histories:
        files["training"] = _save(plot_training_curves(histories), out / "training.png")
    decoder = _decoder(ranker, study)
    if decoder is not None:
        files["reconstructions"] = _save(
            _reconstructions(
                decoder,
                images,
                query,
                labels=labels,
                target_names=target_names,
                query_name=query_name,
            ),
            out / "reconstructions.png",
        )
    generated = _generated_images(decoder, report.n_generate, report.random_state)
    if generated is not None:
        files["generated"] = _save(
            plot_image_grid(
                generated, n_cols=8, suptitle="Galaxies sampled from the density and decoded"
            ),
            out / "generated.png",
        )
    return files


def _model_name(model: Any) -> str:
    """The class name of a model, or of each step of a pipeline joined by ' + '."""
    steps = getattr(model, "steps", None)
    if steps is not None:
        return " + ".join(type(step).__name__ for _, step in steps)
    return type(model).__name__


def _summaries(
    ranker: SimilarityRanker,
    ranking: Ranking,
    *,
    labels: np.ndarray | None,
    target_names: Sequence[str] | None,
    target_label: int | None,
    query_name: str,
    extra_summary: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report's summary rows (for people) and summary.json's record (for programs)."""
    summary: dict[str, Any] = {
        "query": query_name,
        "galaxies in the collection": ranker.n_samples_fit_,
        "embedder": _model_name(ranker.embedder_),
        "method": ranker.method,
        "invariance": str(ranker.invariance),
        **diagnosis_rows(ranking.diagnostics),
    }
    record: dict[str, Any] = {
        "query": query_name,
        "n_galaxies": ranker.n_samples_fit_,
        "embedder": _model_name(ranker.embedder_),
        "method": ranker.method,
        "invariance": ranker.invariance,
        **diagnosis_record(ranking.diagnostics),
    }
    if labels is not None and target_names is not None:
        figures = summarize_ranking(np.asarray(labels)[ranking.indices], target_names, target_label)
        record.update(figures)
        summary.update(_class_summary(figures, target_names, target_label))
    if extra_summary:
        summary.update(extra_summary)
        record.update(extra_summary)
    return summary, record


def _class_summary(
    figures: dict[str, Any], target_names: Sequence[str], target_label: int | None
) -> dict[str, str]:
    """Summary rows, in words, of :func:`~galaxysim.metrics.summarize_ranking`'s figures."""
    rows = {}
    for key, value in figures.items():
        if key.startswith("precision_at_"):
            rows[f"{target_names[target_label]} share in top {key.rsplit('_', 1)[1]}"] = (
                f"{value:.0%}"
            )
    if "chance" in figures:
        rows[f"{target_names[target_label]} share of the collection"] = f"{figures['chance']:.0%}"
    for name, profile in figures["class_rank_profile"].items():
        rows[f"mean rank of {name}"] = f"{profile['mean_rank']:.0f} (n={profile['count']})"
    return rows


def _study_summary(
    study: SimilarityRanker,
    images: np.ndarray,
    query: np.ndarray,
    *,
    labels: np.ndarray | None,
    target_names: Sequence[str] | None,
    target_label: int | None,
) -> dict[str, Any]:
    """How the study's autoencoder ranks the query, in the summary's words."""
    if labels is None or target_names is None or target_label is None:
        return {}
    ranking = study.rank(query, n_neighbors=study.n_samples_fit_)
    figures = summarize_ranking(np.asarray(labels)[ranking.indices], target_names, target_label)
    name = target_names[target_label]
    return {
        f"{name} share in top 10, original study's autoencoder": f"{figures['precision_at_10']:.0%}"
    }


# Each figure's caption in the report, and what it shows (its alt text).
_CAPTIONS = {
    "neighbours": (
        "Query and its most similar galaxies",
        "The query galaxy followed by a grid of the collection's most similar "
        "galaxies, most similar first, each labelled with its rank, similarity and "
        "class.",
    ),
    "latent": (
        "Embedding map",
        "Scatter plot of the collection's embeddings on their first two principal "
        "components, coloured by class, with the query marked by a star.",
    ),
    "training": (
        "Training curves",
        "Loss curves of the models' training and validation per epoch, the best "
        "epoch marked by a dotted line.",
    ),
    "reconstructions": (
        "Autoencoder output of galaxies and of the query",
        "Top row: galaxies of the collection and the query; bottom row: each "
        "one encoded and decoded by the autoencoder (the original study's "
        "autoencoder output of the target image).",
    ),
    "generated": (
        "Generated galaxies",
        "A grid of galaxies sampled from the flow density on the embedding and "
        "decoded by the autoencoder.",
    ),
}


@dataclass(frozen=True, kw_only=True)
class RankingReport:
    """What :func:`write_ranking_outputs` writes besides the ranking itself.

    Parameters
    ----------
    query_name : str, default="query"
        How the query is called in figures and the summary.
    target_label : int, optional
        The class a good ranking puts first; adds its precision at 10 and 50.
    n_neighbors : int, default=16
        Neighbours drawn in ``neighbours.png``. ``ranking.csv`` always ranks
        the whole collection.
    n_generate : int, default=16
        Galaxies drawn in ``generated.png`` (sampled from the density on the
        embedding and decoded by the embedder; skipped when either cannot).
    random_state : int, optional
        Seed for sampling.
    title, notes : str
        Report title and an introductory paragraph.
    extra_summary : dict, optional
        More rows for the summary (for example fit time).
    provenance : dict, optional
        Stored under ``"provenance"`` in ``summary.json`` (see
        :func:`~galaxysim.app.provenance.run_provenance`).
    study : SimilarityRanker, optional
        The original study's autoencoder and flow, fitted on the collection
        beside the ranker: they draw ``reconstructions.png`` and
        ``generated.png`` when the ranker's embedder cannot decode, join the
        training curves, and their own ranking's figures are added to the
        summary, to compare.

    Examples
    --------
    >>> from galaxysim.app.outputs import RankingReport
    >>> RankingReport(query_name="Milky Way", title="demo").n_neighbors
    16
    """

    query_name: str = "query"
    target_label: int | None = None
    n_neighbors: int = 16
    n_generate: int = 16
    random_state: int | None = 0
    title: str = "galaxysim ranking"
    notes: str | None = None
    extra_summary: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    study: SimilarityRanker | None = None


def write_ranking_outputs(
    out: PathLike,
    ranker: SimilarityRanker,
    collection: Collection,
    query: np.ndarray,
    report: RankingReport | None = None,
) -> dict[str, Path]:
    """Rank the whole collection for ``query`` and write every output into ``out``.

    Parameters
    ----------
    out : path-like
        An existing folder; files of the names below are replaced.
    ranker : SimilarityRanker
        Fitted on ``images``.
    collection : Collection
        The galaxies the ranker was fitted on, in that order, with their
        classes (colours in the latent map, class figures) and names (for the
        CSV) where known.
    query : ndarray of shape (H, W, C)
        The query image.
    report : RankingReport, optional
        What the folder says besides the ranking (names, figures, the summary's
        extra rows, the original study's models to compare); default
        ``RankingReport()``.

    Returns
    -------
    files : dict
        ``{kind: path}`` of every file written.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.pipeline import make_pipeline
    >>> from galaxysim.images import ImagePreprocessor
    >>> from galaxysim.ranking import SimilarityRanker
    >>> from galaxysim.app.outputs import write_ranking_outputs
    >>> X = np.random.default_rng(0).random((30, 8, 8, 3))
    >>> embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3))
    >>> ranker = SimilarityRanker(embedder=embedder, density="drop", n_neighbors=5).fit(X)
    >>> from galaxysim.app.collections import Collection
    >>> collection = Collection(X, None, None, None, "noise")
    >>> files = write_ranking_outputs(tempfile.mkdtemp(), ranker, collection, X[0])
    >>> sorted(files)
    ['latent', 'model', 'neighbours', 'ranking_csv', 'report', 'summary']
    """
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"out {str(out)!r} is not an existing folder.")
    if report is None:
        report = RankingReport()
    if not isinstance(report, RankingReport):
        raise TypeError(f"report must be a RankingReport or None, got {type(report).__name__}.")
    images, labels, target_names = collection.images, collection.target, collection.target_names
    if len(images) != ranker.n_samples_fit_:
        raise ValueError(
            f"the collection holds {len(images)} images but the ranker was fitted on "
            f"{ranker.n_samples_fit_}."
        )
    ranking = ranker.rank(
        query, n_neighbors=ranker.n_samples_fit_, images=images, names=collection.names
    )
    files = {"ranking_csv": ranking.to_csv(out / "ranking.csv", overwrite=True)}
    figures = _write_figures(out, ranker, ranking, query, collection, report)
    files.update(figures)
    extra_summary = report.extra_summary
    if report.study is not None:
        extra_summary = {
            **_study_summary(
                report.study,
                images,
                query,
                labels=labels,
                target_names=target_names,
                target_label=report.target_label,
            ),
            **(extra_summary or {}),
        }
    summary, record = _summaries(
        ranker,
        ranking,
        labels=labels,
        target_names=target_names,
        target_label=report.target_label,
        query_name=report.query_name,
        extra_summary=extra_summary,
    )
    if report.provenance is not None:
        record["provenance"] = report.provenance
    files["summary"] = out / "summary.json"
    files["summary"].write_text(json.dumps(record, indent=2, default=str))
    files["report"] = write_html_report(
        out / "report.html",
        title=report.title,
        summary=summary,
        figures={_CAPTIONS[kind][0]: (path, _CAPTIONS[kind][1]) for kind, path in figures.items()},
        ranking=ranking,
        notes=report.notes,
    )
    files["model"] = save_model(ranker, out / "model.safetensors", overwrite=True)
    return files
