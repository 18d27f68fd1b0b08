"""Tests of galaxysim.app.evaluation: the method comparison, its table, figure and reports."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from matplotlib.container import BarContainer
from sklearn.decomposition import PCA

from galaxysim.app.evaluation import (
    METHOD_DESCRIPTIONS,
    METHODS,
    EvaluationSettings,
    EvaluationTable,
    evaluate_methods,
    plot_evaluation,
    run_evaluation,
)
from galaxysim.app.evaluation_methods import _n_stages_for
from galaxysim.datasets import SYNTHETIC_CLASSES, make_galaxies, make_milky_way
from galaxysim.metrics import same_class_rate, wilson_interval

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`galaxysim evaluate --data builtin --quick`, once for the whole module."""
    out = tmp_path_factory.mktemp("evaluation")
    table = run_evaluation("builtin", out, settings=EvaluationSettings(quick=True))
    return table, out


def _two_class_images(n_per_class: int = 12, size: int = 8):
    """Dark and bright images with a little noise: any sane method separates them."""
    rng = np.random.default_rng(0)
    dark = 0.1 + 0.02 * rng.random((n_per_class, size, size, 3))
    bright = 0.9 - 0.02 * rng.random((n_per_class, size, size, 3))
    X = np.concatenate([dark, bright]).astype(np.float32)
    y = np.repeat([0, 1], n_per_class)
    return X, y


# --- the quick run that CI uses --------------------------------------------------


def test_quick_run_evaluates_every_method_with_finite_numbers(quick_run):
    table, _ = quick_run
    assert table.methods == list(METHODS)
    n = sum(table.class_counts)
    assert n == 200 and table.image_shape == (32, 32, 3)
    for row in table.rows:
        numbers = {k: v for k, v in row.items() if k not in ("method", "kind")}
        assert all(math.isfinite(v) for v in numbers.values()), row
        assert 0.0 <= row["same_class_at_10"] <= 1.0
        assert 0.0 <= row["target_share_at_10"] <= 1.0 and 0.0 <= row["target_share_at_50"] <= 1.0
        assert row["fit_seconds"] >= 0 and row["query_seconds"] > 0
        # Mean ranks of a full ranking: count-weighted, they add up to 1 + 2 + ... + n.
        total = sum(
            row[f"mean_rank:{name}"] * count
            for name, count in zip(table.target_names, table.class_counts)
        )
        assert total == pytest.approx(n * (n + 1) / 2)
    assert table["pixels"]["embedding_dim"] == 32 * 32 * 3
    assert {
        table[m]["embedding_dim"] for m in ("pca", "pca-whitened", "autoencoder", "flow-latent")
    } == {8}
    assert table["pca"]["same_class_vs_pca"] == 0.0
    assert [row["kind"] for row in table.rows] == ["baseline"] * 3 + ["learned"] * 7
    # The three autoencoder methods share one trained autoencoder, counted in each fit time.
    assert table["autoencoder+dihedral"]["fit_seconds"] >= 0.5 * table["autoencoder"]["fit_seconds"]


def test_quick_run_intervals_hold_their_figures_and_classes_average_to_the_rate(quick_run):
    table, _ = quick_run
    counts = np.array(table.class_counts)
    figures = [
        table.same_class_key,
        "same_class_vs_pca",
        *(f"target_share_at_{k}" for k in table.ks),
        *(f"mean_rank:{name}" for name in table.target_names),
        *(f"{table.same_class_key}:{name}" for name in table.target_names),
    ]
    for row in table.rows:  # every method, the dihedral and likelihood ones included
        for column in figures:
            low, high = (row[name] for name in table.interval_columns(column))
            assert low - 1e-12 <= row[column] <= high + 1e-12, (row["method"], column)
        per_class = np.array([row[f"{table.same_class_key}:{name}"] for name in table.target_names])
        assert np.sum(per_class * counts) / counts.sum() == pytest.approx(row[table.same_class_key])
    assert (
        table["pca"]["same_class_vs_pca_ci_low"],
        table["pca"]["same_class_vs_pca_ci_high"],
    ) == (0.0, 0.0)


def test_quick_run_writes_csv_markdown_and_figure(quick_run):
    table, out = quick_run
    with open(out / "evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == [*METHODS, "chance"]
    # Each interval follows its figure; the per-class rates come last.
    header = list(rows[0])
    figures = ("same_class_at_10", "same_class_vs_pca")
    assert header[3:9] == [
        f"{figure}{suffix}" for figure in figures for suffix in ("", "_ci_low", "_ci_high")
    ]
    assert header[-3:] == [
        f"same_class_at_10:{table.target_names[-1]}{suffix}"
        for suffix in ("", "_ci_low", "_ci_high")
    ]
    assert float(rows[0]["mean_rank:Barred Spiral_ci_low"]) == pytest.approx(
        table["pixels"]["mean_rank:Barred Spiral_ci_low"]
    )
    for row in rows[:-1]:
        assert math.isfinite(float(row["same_class_at_10"]))
        assert float(row["same_class_at_10"]) == pytest.approx(
            table[row["method"]]["same_class_at_10"]
        )
    assert float(rows[-1]["same_class_at_10"]) == pytest.approx(table.chance["same_class_at_10"])
    markdown = (out / "evaluation.md").read_text()
    assert markdown.startswith("# Ranking methods compared")
    for method in METHODS:
        assert f"| {method} |" in markdown and METHOD_DESCRIPTIONS[method] in markdown
    png = (out / "evaluation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# --- hand-checkable cases --------------------------------------------------------


def test_separable_classes_give_perfect_baselines():
    X, y = _two_class_images()
    query = np.full((8, 8, 3), 0.85, dtype=np.float32)
    table = evaluate_methods(
        X,
        y,
        query,
        target_names=["dark", "bright"],
        target_label="bright",
        settings=EvaluationSettings(
            methods=["pca-whitened", "pca", "pixels"], n_components=2, n_neighbors=5, ks=(10, 12)
        ),
    )
    assert table.methods == ["pixels", "pca", "pca-whitened"]  # canonical order
    for method in table.methods:
        row = table[method]
        assert row["same_class_at_5"] == 1.0
        assert row["target_share_at_10"] == 1.0 and row["target_share_at_12"] == 1.0
        # The 12 bright images take ranks 1..12 and the dark ones 13..24.
        assert row["mean_rank:bright"] == pytest.approx(6.5)
        assert row["mean_rank:dark"] == pytest.approx(18.5)
    # Chance: a random other image shares the class with probability 11/23.
    assert table.chance["same_class_at_5"] == pytest.approx(11 / 23)
    assert table.chance["target_share_at_10"] == 0.5
    assert table.chance["mean_rank:dark"] == 12.5
    assert table.class_counts == [12, 12] and table.target_name == "bright"


def test_separable_classes_give_intervals_of_one():
    X, y = _two_class_images()
    query = np.full((8, 8, 3), 0.85, dtype=np.float32)
    table = evaluate_methods(
        X,
        y,
        query,
        target_names=["dark", "bright"],
        target_label="bright",
        settings=EvaluationSettings(
            methods=["pixels", "pca"], n_components=2, n_neighbors=5, ks=(10, 24)
        ),
    )
    for method in table.methods:
        row = table[method]
        # Every galaxy's five neighbours are of its class: no resample can change that.
        assert (row["same_class_at_5_ci_low"], row["same_class_at_5_ci_high"]) == (1.0, 1.0)
        for name in ("dark", "bright"):
            assert row[f"same_class_at_5:{name}"] == 1.0
            low, high = table.interval_columns(f"same_class_at_5:{name}")
            assert row[low] == row[high] == 1.0
        # 10 bright galaxies of 10: Wilson's interval, not the certainty [1, 1].
        share_interval = (row["target_share_at_10_ci_low"], row["target_share_at_10_ci_high"])
        assert share_interval == wilson_interval(10, 10)
        assert row["target_share_at_10_ci_low"] == pytest.approx(0.7225, abs=1e-4)
        # The top 24 is the whole collection: its share is the class share, whatever the ranking.
        assert (row["target_share_at_24_ci_low"], row["target_share_at_24_ci_high"]) == (0.5, 0.5)
        # The bright galaxies hold ranks 1..12: resampling them keeps the mean within [1, 12].
        low, high = row["mean_rank:bright_ci_low"], row["mean_rank:bright_ci_high"]
        assert 1 < low < 6.5 < high < 12
        assert 13 < row["mean_rank:dark_ci_low"] < 18.5 < row["mean_rank:dark_ci_high"] < 24
    pixels = table["pixels"]
    assert (pixels["same_class_vs_pca_ci_low"], pixels["same_class_vs_pca_ci_high"]) == (0.0, 0.0)
    assert table.chance["same_class_at_5:dark"] == pytest.approx(11 / 23)


def test_intervals_are_reproducible_for_a_seed():
    X, y = make_galaxies(40, image_size=8, random_state=3)

    def run(seed):
        return evaluate_methods(
            X,
            y,
            X[0],
            target_names=SYNTHETIC_CLASSES,
            target_label=0,
            settings=EvaluationSettings(
                methods=["pixels", "pca"], n_components=3, n_neighbors=3, ks=(5,), random_state=seed
            ),
        )

    first, again, other = run(0)["pixels"], run(0)["pixels"], run(1)["pixels"]
    intervals = [name for name in first if name.endswith(("_ci_low", "_ci_high"))]
    assert len(intervals) == 2 * (1 + 1 + 1 + 5 + 5)
    assert all(np.isfinite(first[name]) for name in intervals)
    assert {name: first[name] for name in intervals} == {name: again[name] for name in intervals}
    # The pixels do not depend on the seed: only the bootstrap does.
    assert first["same_class_at_3"] == other["same_class_at_3"]
    assert [first[name] for name in intervals] != [other[name] for name in intervals]


def test_per_class_rates_weighted_by_class_size_give_the_rate():
    X, y = make_galaxies(40, image_size=8, random_state=1)
    keep = np.flatnonzero((y != 1) | (np.arange(40) % 2 == 0))  # classes of unequal size
    X, y = X[keep], y[keep]
    table = evaluate_methods(
        X,
        y,
        X[0],
        target_names=SYNTHETIC_CLASSES,
        target_label=0,
        settings=EvaluationSettings(
            methods=["pixels", "pca"], n_components=5, n_neighbors=3, ks=(5,)
        ),
    )
    counts = np.bincount(y, minlength=5)
    assert len(set(counts.tolist())) > 1 and table.class_counts == counts.tolist()
    for row in table.rows:
        per_class = np.array([row[f"same_class_at_3:{name}"] for name in SYNTHETIC_CLASSES])
        assert np.sum(per_class * counts) / counts.sum() == pytest.approx(row["same_class_at_3"])


def test_baseline_same_class_rates_match_the_metric():
    X, y = make_galaxies(40, image_size=8, random_state=1)
    table = evaluate_methods(
        X,
        y,
        X[0],
        target_names=SYNTHETIC_CLASSES,
        target_label=0,
        settings=EvaluationSettings(
            methods=["pixels", "pca", "pca-whitened"], n_components=5, n_neighbors=3, ks=(5,)
        ),
    )
    pixels = X.reshape(len(X), -1)
    embeddings = {
        "pixels": pixels,
        "pca": PCA(5, random_state=0).fit_transform(pixels),
        "pca-whitened": PCA(5, whiten=True, random_state=0).fit_transform(pixels),
    }
    for method, embedding in embeddings.items():
        expected = same_class_rate(embedding, y, n_neighbors=3)
        assert table[method]["same_class_at_3"] == pytest.approx(expected), method


def test_input_is_left_unchanged():
    X, y = _two_class_images()
    X_before, y_before = X.copy(), y.copy()
    query = X[0].copy()
    evaluate_methods(
        X,
        y,
        query,
        target_names=["dark", "bright"],
        target_label=0,
        settings=EvaluationSettings(methods=["pixels"], n_neighbors=2, ks=(3,)),
    )
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(query, X[0])


def test_same_class_vs_pca_is_the_difference_to_pca():
    X, y = make_galaxies(40, image_size=8, random_state=2)
    table = evaluate_methods(
        X,
        y,
        make_milky_way(8),
        target_names=SYNTHETIC_CLASSES,
        target_label="Barred Spiral",
        settings=EvaluationSettings(methods=["pixels", "pca"], n_components=3, ks=(10,)),
    )
    assert table["pixels"]["same_class_vs_pca"] == pytest.approx(
        table["pixels"]["same_class_at_10"] - table["pca"]["same_class_at_10"]
    )
    without_pca = evaluate_methods(
        X,
        y,
        make_milky_way(8),
        target_names=SYNTHETIC_CLASSES,
        target_label=0,
        settings=EvaluationSettings(methods=["pixels"], ks=(10,)),
    )
    assert math.isnan(without_pca["pixels"]["same_class_vs_pca"])


def test_autoencoder_stages_follow_the_image_size():
    assert [_n_stages_for(side) for side in (64, 32, 16, 8, 48, 50)] == [5, 5, 4, 3, 4, 1]
    assert _n_stages_for(256, default=5) == 5


# --- the table and the figure ------------------------------------------------------


def _small_table() -> EvaluationTable:
    return EvaluationTable(
        rows=[
            {
                "method": "pca",
                "kind": "baseline",
                "embedding_dim": 4,
                "same_class_at_1": 0.5,
                "same_class_vs_pca": 0.0,
                "target_share_at_2": 0.5,
                "mean_rank:a": 1.5,
                "mean_rank:b": 3.5,
                "query_isolation": 10.0,
                "fit_seconds": 0.25,
                "query_seconds": 0.001,
            },
            {
                "method": "autoencoder",
                "kind": "learned",
                "embedding_dim": 4,
                "same_class_at_1": 0.25,
                "same_class_vs_pca": -0.25,
                "target_share_at_2": 0.0,
                "mean_rank:a": 3.5,
                "mean_rank:b": 1.5,
                "query_isolation": 99.0,
                "fit_seconds": 12.0,
                "query_seconds": 0.002,
            },
        ],
        chance={
            "same_class_at_1": 1 / 3,
            "target_share_at_2": 0.5,
            "mean_rank:a": 2.5,
            "mean_rank:b": 2.5,
        },
        target_names=["a", "b"],
        target_label=0,
        class_counts=[2, 2],
        n_neighbors=1,
        ks=(2,),
        image_shape=(8, 8, 3),
        data_name="toy",
        query_name="q",
    )


def test_markdown_shows_rows_chance_and_a_method_below_pca():
    text = _small_table().to_markdown()
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + 2 + 1  # header, rule, two methods, chance
    assert len({line.count("|") for line in table_lines}) == 1
    assert "| autoencoder | learned | 4 | 0.250 | -0.250 |" in text
    assert "| *chance* | reference |  | 0.333 |" in text
    assert "a in top 2" in text and "toy, 4 images of 8x8x3 (a 2, b 2)" in text


def _table_with_intervals() -> EvaluationTable:
    table = _small_table()
    intervals = {
        "pca": {
            "same_class_at_1": (0.25, 0.75),
            "same_class_vs_pca": (0.0, 0.0),
            "target_share_at_2": (0.0945, 0.9055),
            "mean_rank:a": (1.0, 2.0),
            "mean_rank:b": (3.0, 4.0),
        },
        "autoencoder": {
            "same_class_at_1": (0.0, 0.5),
            "same_class_vs_pca": (-0.5, 0.0),
            "target_share_at_2": (0.0, 0.6576),
            "mean_rank:a": (3.0, 4.0),
            "mean_rank:b": (1.0, 2.0),
        },
    }
    for row in table.rows:
        for column, (low, high) in intervals[row["method"]].items():
            row.update(zip(table.interval_columns(column), (low, high)))
        rate = row["same_class_at_1"]
        for name, value in (("a", 0.5 * rate), ("b", 1.5 * rate)):
            row[f"same_class_at_1:{name}"] = value
            row.update(zip(table.interval_columns(f"same_class_at_1:{name}"), (0.0, 1.0)))
    table.chance.update({"same_class_at_1:a": 1 / 3, "same_class_at_1:b": 1 / 3})
    return table


def test_markdown_shows_intervals_in_the_cells_and_a_table_by_class():
    table = _table_with_intervals()
    text = table.to_markdown(details=False)
    main, by_class = text.split("\n\n")
    assert main.splitlines()[0] == (
        "| method | kind | dim | same-class@1 | vs PCA | a in top 2 | mean rank a | mean rank b "
        "| isolation | fit s | query s |"
    )
    assert (
        "| pca | baseline | 4 | 0.500 [0.25, 0.75] | +0.000 [+0.00, +0.00] "
        "| 0.500 [0.09, 0.91] | 2 [1, 2] | 4 [3, 4] | 10.0 | 0.25 | 0.001 |"
    ) in main
    assert "| autoencoder | learned | 4 | 0.250 [0.00, 0.50] | -0.250 [-0.50, +0.00] |" in main
    assert "| *chance* | reference |  | 0.333 |  |" in main  # no interval for chance
    assert "_ci_" not in text
    assert by_class.splitlines() == [
        "| method | same-class@1 a | same-class@1 b |",
        "|---|---:|---:|",
        "| pca | 0.250 [0.00, 1.00] | 0.750 [0.00, 1.00] |",
        "| autoencoder | 0.125 [0.00, 1.00] | 0.375 [0.00, 1.00] |",
        "| *chance* | 0.333 | 0.333 |",
    ]
    assert "95 % interval; a percentile bootstrap of 2,000 resamples" in table.to_markdown()
    assert "is not a result" in table.to_markdown()


def test_markdown_cell_of_an_interval_with_a_blank_bound_is_the_figure_alone():
    assert EvaluationTable._cell("same_class_at_10", 0.2857, 0.241, 0.333) == "0.286 [0.24, 0.33]"
    assert EvaluationTable._cell("same_class_at_10", 0.2857, float("nan"), 0.333) == "0.286"
    assert EvaluationTable._cell("same_class_at_10", 0.2857, "", "") == "0.286"
    assert EvaluationTable._cell("mean_rank:a", 18.4, 14.2, 23.0) == "18 [14, 23]"
    assert EvaluationTable._cell("query_isolation", 66.0, 1.0, 2.0) == "66.0"


def test_csv_carries_every_interval(tmp_path):
    table = _table_with_intervals()
    with open(table.to_csv(tmp_path / "t.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header == table.columns and len(header) == 11 + 2 * 5 + 3 * 2
    assert "same_class_at_1:b_ci_high" in header and "mean_rank:a_ci_low" in header
    assert float(rows[1]["target_share_at_2_ci_high"]) == pytest.approx(0.6576)
    assert rows[2]["method"] == "chance" and rows[2]["same_class_at_1_ci_low"] == ""
    assert float(rows[2]["same_class_at_1:a"]) == pytest.approx(1 / 3)


def test_interval_columns_are_named_after_their_figure():
    assert EvaluationTable.interval_columns("target_share_at_10") == (
        "target_share_at_10_ci_low",
        "target_share_at_10_ci_high",
    )
    with pytest.raises(TypeError, match="column must be a column name"):
        EvaluationTable.interval_columns("")


def test_figure_draws_the_intervals_as_error_bars():
    fig = plot_evaluation(_table_with_intervals())
    rate, share = fig.axes[:2]
    expected_bars = {rate: [(0.25, 0.75), (0.0, 0.5)], share: [(0.0945, 0.9055), (0.0, 0.6576)]}
    for ax, expected in expected_bars.items():
        (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
        segments = bars.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([(seg[0][0], seg[1][0]) for seg in segments], expected)
        assert "95 % interval" in [text.get_text() for text in ax.get_legend().get_texts()]
    # Without intervals (a table built by hand) the bars have none.
    (bars,) = [
        c for c in plot_evaluation(_small_table()).axes[0].containers if isinstance(c, BarContainer)
    ]
    assert bars.errorbar is None


def test_csv_refuses_to_overwrite_and_needs_a_folder(tmp_path):
    table = _small_table()
    path = table.to_csv(tmp_path / "t.csv")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        table.to_csv(path)
    table.to_csv(path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="folder"):
        table.to_csv(tmp_path / "missing" / "t.csv")


def test_table_lookup_names_the_known_methods():
    with pytest.raises(KeyError, match="autoencoder"):
        _small_table()["pixels"]


def test_figure_panels_and_baseline_lines():
    fig = plot_evaluation(_small_table())
    rate, _share, rank = fig.axes[:3]
    assert [t.get_text() for t in rate.get_yticklabels()] == ["pca", "autoencoder"]
    # Chance and PCA lines on the same-class panel, at their values.
    x_lines = sorted(line.get_xdata()[0] for line in rate.get_lines())
    assert x_lines == pytest.approx([1 / 3, 0.5])
    bar_widths = [patch.get_width() for patch in rate.patches]
    assert bar_widths == pytest.approx([0.5, 0.25])
    # Mean ranks scaled to the collection: (rank - 1) / (n - 1) with n = 4.
    np.testing.assert_allclose(rank.get_images()[0].get_array(), [[1 / 6, 5 / 6], [5 / 6, 1 / 6]])


def test_figure_rejects_other_input():
    with pytest.raises(TypeError, match="EvaluationTable"):
        plot_evaluation({"rows": []})


# --- bad input ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_data():
    X, y = _two_class_images(6, 8)
    return X, y, X[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"methods": ["pixels", "umap"]}, ValueError, r"Unknown method\(s\) \['umap'\].*pixels"),
        ({"methods": []}, ValueError, "methods is empty"),
        ({"methods": ["pca", "pca"]}, ValueError, "more than once"),
        ({"methods": [3]}, TypeError, "method names"),
        ({"target_label": "spiral"}, ValueError, "not one of target_names"),
        ({"target_label": 5}, ValueError, r"target_label must be in \[0, 1\]"),
        ({"target_label": 1.0}, TypeError, "target_label"),
        ({"target_names": "dark"}, TypeError, "target_names"),
        ({"ks": (10, 50)}, ValueError, r"ks \[50\] exceed the 12 images"),
        ({"n_neighbors": 12}, ValueError, "n_neighbors=12 must be smaller"),
        ({"n_components": 20, "methods": ["pca"]}, ValueError, "n_components=20 is too large"),
        ({"autoencoder_params": [1]}, TypeError, "autoencoder_params must be a dict"),
        ({"quick": "yes"}, TypeError, "quick must be True or False"),
        ({"random_state": -1}, ValueError, "random_state must be an integer >= 0"),
        ({"random_state": 0.5}, TypeError, "random_state must be an integer"),
    ],
)
def test_bad_arguments_are_named(small_data, kwargs, error, match):
    X, y, query = small_data
    arguments = {"target_names": ["dark", "bright"], "target_label": 1}
    fields = {"methods": ["pixels"], "ks": (5,), "n_neighbors": 3}
    for name, value in kwargs.items():
        (arguments if name in arguments else fields)[name] = value
    with pytest.raises(error, match=match):
        evaluate_methods(X, y, query, settings=EvaluationSettings(**fields), **arguments)


def test_mismatched_labels_and_query_are_named(small_data):
    X, y, query = small_data
    common = {
        "target_names": ["dark", "bright"],
        "target_label": 1,
        "settings": EvaluationSettings(methods=["pixels"], ks=(5,)),
    }
    with pytest.raises(ValueError, match="y has 11 labels but there are 12 images"):
        evaluate_methods(X, y[:-1], query, **common)
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 1\]"):
        evaluate_methods(X, y + 1, query, **common)
    with pytest.raises(TypeError, match="integer class labels"):
        evaluate_methods(X, y.astype(float), query, **common)
    with pytest.raises(ValueError, match=r"query has shape \(4, 4, 3\)"):
        evaluate_methods(X, y, query[:4, :4], **common)


def test_run_evaluation_checks_its_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        run_evaluation("builtin", tmp_path / "absent", settings=EvaluationSettings(quick=True))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_evaluation(tmp_path / "absent.h5", tmp_path, settings=EvaluationSettings(quick=True))
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(ValueError, match="neither 'builtin', a Galaxy10 .h5 file nor a folder"):
        run_evaluation(other, tmp_path, settings=EvaluationSettings(quick=True))
    with pytest.raises(TypeError, match="data must be 'builtin' or a path"):
        run_evaluation(42, tmp_path, settings=EvaluationSettings(quick=True))
    with pytest.raises(ValueError, match="Unknown method"):
        run_evaluation(
            "builtin", tmp_path, settings=EvaluationSettings(methods=["best"], quick=True)
        )
    assert not any(tmp_path.glob("evaluation.*"))  # nothing written on a bad call


# --- real images ------------------------------------------------------------------------


def test_run_evaluation_on_the_real_sample_folder(galaxy10_samples, milky_way_png, tmp_path):
    table = run_evaluation(
        galaxy10_samples,
        tmp_path,
        query=milky_way_png,
        settings=EvaluationSettings(methods=["pixels", "pca"], quick=True),
    )
    assert table.class_counts == [10] * 5 and table.image_shape == (32, 32, 3)
    assert table.target_name == "Barred Spiral" and table.ks == (10, 50)
    assert "milky_way_artist_impression_256.png" in table.query_name
    # With 50 images the top 50 is the whole collection: its share is the class share.
    assert table["pca"]["target_share_at_50"] == pytest.approx(0.2)
    assert (tmp_path / "evaluation.csv").is_file() and (tmp_path / "evaluation.png").is_file()


def test_pretrained_models_are_used_as_they_are_and_their_seconds_reported():
    from galaxysim.embedders import ContrastiveEmbedder

    X, y = make_galaxies(60, image_size=16, random_state=0)
    query = make_milky_way(16)
    names = list(SYNTHETIC_CLASSES)
    other, _ = make_galaxies(40, image_size=16, random_state=1)
    model = ContrastiveEmbedder(
        representation_dim=8,
        n_stages=2,
        base_channels=8,
        max_epochs=1,
        batch_size=16,
        random_state=0,
        device="cpu",
    ).fit(other)
    before = model.transform(X)
    table = evaluate_methods(
        X,
        y,
        query,
        target_names=names,
        target_label="Barred Spiral",
        train_X=other,
        settings=EvaluationSettings(
            methods=["contrastive"],
            pretrained={"contrastive": (model, 12.5)},
            n_components=4,
            ks=(10,),
        ),
    )
    assert table["contrastive"]["fit_seconds"] >= 12.5
    np.testing.assert_array_equal(model.transform(X), before)  # not trained further
    with pytest.raises(ValueError, match="pretrained has the key 'pca'"):
        evaluate_methods(
            X,
            y,
            query,
            target_names=names,
            target_label="Barred Spiral",
            settings=EvaluationSettings(
                methods=["pca"], pretrained={"pca": (model, 1.0)}, n_components=4, ks=(10,)
            ),
        )
    with pytest.raises(TypeError, match="pair"):
        evaluate_methods(
            X,
            y,
            query,
            target_names=names,
            target_label="Barred Spiral",
            settings=EvaluationSettings(
                methods=["contrastive"], pretrained={"contrastive": model}, n_components=4, ks=(10,)
            ),
        )


def test_the_keywords_of_0_2_still_work_with_a_future_warning(small_data, tmp_path):
    X, y, query = small_data
    names = {"target_names": ["dark", "bright"], "target_label": 1}
    new = evaluate_methods(
        X, y, query, settings=EvaluationSettings(methods=["pca"], n_components=3, ks=(5,)), **names
    )
    with pytest.warns(FutureWarning, match=r"settings=EvaluationSettings\(methods=\.\.\., n_comp"):
        old = evaluate_methods(X, y, query, methods=["pca"], latent_dim=3, ks=(5,), **names)
    assert old["pca"]["same_class_at_10"] == new["pca"]["same_class_at_10"]
    assert old.settings == new.settings
    with pytest.warns(FutureWarning, match="run_evaluation"):
        table = run_evaluation("builtin", tmp_path, methods=["pca"], quick=True, n_samples=30)
    assert table.methods == ["pca"]
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['n_neigbors'\]"):
        evaluate_methods(X, y, query, n_neigbors=3, **names)
    with pytest.raises(TypeError, match="settings must be an EvaluationSettings"):
        evaluate_methods(X, y, query, settings={"methods": ["pca"]}, **names)
