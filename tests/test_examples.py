"""Every example runs in its tiny configuration and produces sensible results."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_milky_way_challenge(tmp_path, capsys):
    results = _load("milky_way_challenge").main(["--quick", "--out", str(tmp_path)])
    assert 0.0 <= results["precision_at_10"] <= 1.0
    assert results["chance"] == pytest.approx(0.2)
    assert (tmp_path / "top50.csv").is_file() and (tmp_path / "neighbours.png").is_file()
    assert "mean rank of Barred Spiral" in capsys.readouterr().out


def test_milky_way_challenge_with_the_real_illustration(tmp_path, milky_way_png):
    results = _load("milky_way_challenge").main(
        ["--quick", "--out", str(tmp_path), "--milky-way", str(milky_way_png)]
    )
    assert 0.0 <= results["precision_at_50"] <= 1.0


def test_pipeline_example():
    results = _load("pipeline").main(["--quick"])
    assert np.isfinite(results["mean_log_density"])
    assert 0.0 <= results["milky_way_percentile"] <= 100.0
    assert results["embedding_shape"] == (30, 4)
    assert results["generated_shape"] == (8, 16, 16, 3)


def test_gridsearch_ranker_example():
    results = _load("gridsearch_ranker").main(["--quick"])
    assert results["best_params"]["embedder__n_components"] in (2, 4)
    assert 0.0 <= results["best_score"] <= 1.0


def test_contrastive_embedder_example(tmp_path, capsys):
    results = _load("contrastive_embedder").main(["--quick", "--out", str(tmp_path)])
    assert set(results) == {"contrastive", "pca_whitened"}
    assert all(0.0 <= rate <= 1.0 for rate in results.values())
    assert {p.name for p in tmp_path.iterdir()} == {
        "views.png",
        "map_contrastive.png",
        "map_pca.png",
    }
    assert "same-class@10" in capsys.readouterr().out
