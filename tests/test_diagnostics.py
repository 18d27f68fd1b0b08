"""QueryDiagnostics: one object for how unusual a query is, fitted by the ranker and saved with it.

The rates of the warning are tested in test_query_warning.py; these tests
hold the object's contract: what it learns, what it answers, its errors, its
place in SimilarityRanker, Ranking and model files, and the 0.2 names that
still read with a FutureWarning.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline

from galaxysim.datasets import make_galaxies, make_milky_way
from galaxysim.images import IMAGE_STATISTICS, ImagePreprocessor, image_statistics
from galaxysim.metrics import percentile_rank
from galaxysim.persistence import ModelFileError, load_model, save_model
from galaxysim.ranking import (
    NeighborSearch,
    QueryDiagnosis,
    QueryDiagnostics,
    Ranking,
    SimilarityRanker,
)


@pytest.fixture(scope="module")
def galaxies():
    X, _ = make_galaxies(120, image_size=16, random_state=0)
    return X


@pytest.fixture(scope="module")
def ranker(galaxies):
    embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(6, random_state=0))
    ranker = SimilarityRanker(embedder=embedder, density=KernelDensity(), n_neighbors=4)
    return ranker.fit(galaxies[:100])


def test_it_places_queries_among_the_references():
    rng = np.random.default_rng(0)
    nn, ll = rng.uniform(1, 2, 60), rng.normal(size=60)
    stats = rng.normal(size=(60, len(IMAGE_STATISTICS)))
    diagnostics = QueryDiagnostics().fit(nn, ll, stats)
    assert diagnostics.n_samples_fit_ == 60
    assert sorted(diagnostics.pixel_reference_) == ["center", "distances", "precision", "scale"]
    usual, far = diagnostics.diagnose([1.5, 5.0], log_density=[0.1, -9.0])
    assert (
        usual.isolation == percentile_rank([1.5], nn)[0]
        and usual.typicality == (percentile_rank([0.1], ll)[0])
    )
    assert usual.log_density == 0.1 and usual.pixel_outlyingness is None  # no images given
    assert not usual.out_of_distribution and usual.warning is None
    assert far.isolation == 100.0 and far.typicality == 0.0
    assert far.reasons == ("isolation",) and far.out_of_distribution
    assert "log-density is lower" in far.warning and "farther from its nearest" in far.warning


def test_the_pixel_check_needs_images_statistics_and_a_large_enough_collection(galaxies):
    nn = np.linspace(1, 2, len(galaxies))
    diagnostics = QueryDiagnostics().fit(nn, image_statistics=image_statistics(galaxies))
    drawing, galaxy = diagnostics.diagnose(
        [1.5, 1.5], images=np.stack([make_milky_way(16), galaxies[0]])
    )
    assert drawing.pixel_outlyingness > 99 and drawing.reasons == ("pixels",)
    assert len(drawing.unusual_statistics) == 2
    assert set(drawing.unusual_statistics) <= set(IMAGE_STATISTICS)
    assert set(drawing.pixel_percentiles) == set(IMAGE_STATISTICS)
    assert galaxy.pixel_outlyingness < 99
    small = QueryDiagnostics(min_collection=len(galaxies) + 1).fit(
        nn, image_statistics=image_statistics(galaxies)
    )
    assert small.pixel_reference_ is None
    assert small.diagnose([1.5], images=galaxies[:1])[0].pixel_outlyingness is None


def test_the_threshold_is_a_parameter_read_when_diagnosing():
    diagnostics = QueryDiagnostics().fit(np.linspace(0, 1, 101))
    assert not diagnostics.diagnose([0.985])[0].out_of_distribution
    diagnostics.set_params(percentile=5.0)
    diagnosis = diagnostics.diagnose([0.985])[0]
    assert diagnosis.out_of_distribution and diagnosis.percentile == 5.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.fit(np.zeros((3, 2))), "nn_distance must be a non-empty 1-D array"),
        (lambda d: d.fit([1.0, 2.0], [0.0]), "log_density must be a 1-D array of 2 values"),
        (lambda d: d.fit([1.0, np.nan]), "nn_distance holds NaN"),
        (lambda d: d.fit([1.0, 2.0], image_statistics=np.zeros((2, 3))), "image_statistics"),
        (lambda d: d.set_params(percentile=60).fit([1.0, 2.0]), "percentile must be"),
        (lambda d: d.set_params(min_collection=0).fit([1.0, 2.0]), "min_collection"),
        (lambda d: d.fit([1.0, 2.0]).diagnose([1.0], log_density=[0.0]), "without the collection"),
        (
            lambda d: d.fit([1.0, 2.0]).diagnose([1.0, 2.0], images=np.zeros((1, 8, 8, 3))),
            r"images must be an array of shape \(2, H, W, C\)",
        ),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(QueryDiagnostics())


def test_diagnose_needs_a_fit():
    with pytest.raises(NotFittedError):
        QueryDiagnostics().diagnose([1.0])


def test_a_diagnosis_is_frozen():
    diagnosis = QueryDiagnosis(isolation=50.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        diagnosis.isolation = 100.0


def test_the_ranker_fits_it_and_rank_uses_it(ranker, galaxies):
    diagnostics = ranker.diagnostics_
    assert isinstance(diagnostics, QueryDiagnostics)
    np.testing.assert_array_equal(
        diagnostics.isolation_reference_, ranker.search_.kneighbors(None, 1)[0][:, 0]
    )
    np.testing.assert_array_equal(diagnostics.typicality_reference_, ranker.log_density_)
    np.testing.assert_array_equal(diagnostics.pixel_statistics_, image_statistics(galaxies[:100]))
    queries = np.concatenate([galaxies[100:103], make_milky_way(16)[None]])
    rankings = ranker.rank(queries)
    assert [r.diagnostics for r in rankings] == ranker.diagnose(queries)
    assert ranker.diagnose(queries[-1]) == ranker.rank(queries[-1]).diagnostics  # one: one
    blank = ranker.rank(np.zeros((16, 16, 3), np.float32))
    assert blank.warning == blank.diagnostics.warning is not None


def test_a_search_elsewhere_gives_the_same_diagnosis(ranker, galaxies):
    # What rank --index does: its own index finds the nearest galaxy, the ranker diagnoses.
    index = NeighborSearch("exact").fit(ranker.embedding_)
    query = make_milky_way(16)[None]
    views = ranker.embed_views(query)
    nearest = index.kneighbors(views[0], 1)[0][:, 0]
    from_index = ranker.diagnose(query, embedding=views[0], nn_distance=nearest)
    assert from_index == ranker.diagnose(query)
    moved = ranker.diagnose(query, nn_distance=nearest * 100)[0]
    assert moved.isolation == 100.0 != from_index[0].isolation  # the distance given is used
    with pytest.raises(ValueError, match=r"nn_distance must have shape \(1,\)"):
        ranker.diagnose(query, nn_distance=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"embedding must have shape \(1, 6\)"):
        ranker.diagnose(query, embedding=np.zeros((1, 3)))


def test_embed_views_are_the_views_rank_searches(ranker, galaxies):
    views = ranker.embed_views(galaxies[:2])
    assert len(views) == 8
    np.testing.assert_allclose(views[0], ranker.transform(galaxies[:2]))
    distances, indices = ranker.search_.kneighbors_views(views, 4)
    ranking = ranker.rank(galaxies[1])
    np.testing.assert_array_equal(indices[1], ranking.indices)
    np.testing.assert_array_equal(distances[1], ranking.distances)
    frozen = FrozenEstimator(ranker.embedder_)
    plain = SimilarityRanker(embedder=frozen, density="drop", invariance=None).fit(galaxies[:30])
    assert len(plain.embed_views(galaxies[:2])) == 1


def test_the_0_2_names_of_a_ranking_still_read_with_a_future_warning(ranker, galaxies):
    ranking = ranker.rank(make_milky_way(16))
    diagnosis = ranking.diagnostics
    old_names = {
        "query_isolation": diagnosis.isolation,
        "query_typicality": diagnosis.typicality,
        "query_log_density": diagnosis.log_density,
        "query_pixel_outlyingness": diagnosis.pixel_outlyingness,
        "query_checks": diagnosis.pixel_percentiles,
    }
    for old, value in old_names.items():
        with pytest.warns(FutureWarning, match=rf"Ranking.{old} was deprecated in 0.3.*0.4"):
            assert getattr(ranking, old) == value
    with pytest.raises(AttributeError):
        ranking.query_isolation = 1.0  # read-only


def test_the_0_2_names_of_a_ranker_still_read_with_a_future_warning(ranker):
    diagnostics = ranker.diagnostics_
    with pytest.warns(FutureWarning, match=r"nn_distance_ was deprecated in 0.3.*isolation_ref"):
        assert ranker.nn_distance_ is diagnostics.isolation_reference_
    with pytest.warns(FutureWarning, match=r"image_statistics_ was deprecated in 0.3"):
        assert ranker.image_statistics_ is diagnostics.pixel_statistics_
    assert not hasattr(SimilarityRanker(), "nn_distance_")  # unfitted: no attribute at all
    with pytest.raises(AttributeError, match="no attribute 'nonsense_'"):
        ranker.nonsense_  # noqa: B018


def test_a_ranking_without_a_diagnosis():
    ranking = Ranking(
        indices=np.array([1]), distances=np.array([0.0]), similarity=np.array([100.0]), method="m"
    )
    assert ranking.warning is None and "isolation" not in ranking._repr_html_()
    with pytest.warns(FutureWarning):
        assert ranking.query_isolation is None


def test_model_files_hold_the_diagnostics_and_refuse_altered_ones(galaxies, tmp_path):
    from safetensors.torch import load_file, save_file

    embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(6, random_state=0))
    ranker = SimilarityRanker(embedder=embedder, density="drop").fit(
        galaxies[:100]
    )  # KernelDensity is no file's
    path = save_model(ranker, tmp_path / "ranker.safetensors")
    loaded = load_model(path, expected=SimilarityRanker)
    query = make_milky_way(16)
    assert loaded.diagnose(query) == ranker.diagnose(query)
    assert loaded.diagnostics_.pixel_reference_ is not None  # rebuilt, not stored
    tensors = load_file(str(path))
    assert "model.diagnostics_.pixel_statistics_" in tensors
    assert not any("pixel_reference_" in name for name in tensors)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors["model.diagnostics_.pixel_statistics_"] = tensors[
        "model.diagnostics_.pixel_statistics_"
    ][:, :3].contiguous()
    altered = tmp_path / "altered.safetensors"
    save_file(tensors, str(altered), metadata=metadata)
    with pytest.raises(ModelFileError, match=r"diagnostics_ could not be read.*shape"):
        load_model(altered)
