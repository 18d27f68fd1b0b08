"""NeighborSearch and closest_values: exact answers, checked against brute force in numpy."""

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors

from galaxysim.ranking.search import (
    BACKEND_PARAMETERS,
    NeighborSearch,
    check_n_neighbors,
    closest_values,
)

BACKEND_PARAMETER_NAMES = [name for names in BACKEND_PARAMETERS.values() for name in names]


def _brute(queries, fitted, k, exclude_self=False, ord=2):
    """Top-k by (distance, index) from the full distance matrix."""
    dist = np.linalg.norm(queries[:, None] - fitted[None], ord=ord, axis=-1)
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(fitted)), dist.shape), dist), axis=1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 3)), rng.normal(size=(7, 3))


@pytest.mark.parametrize("algorithm", ["exact", "brute", "kd_tree", "ball_tree"])
@pytest.mark.parametrize("metric, ord", [("euclidean", 2), ("manhattan", 1)])
def test_kneighbors_equals_brute_force(points, algorithm, metric, ord):
    Z, Q = points
    search = NeighborSearch(algorithm=algorithm, metric=metric).fit(Z)
    dist, idx = search.kneighbors(Q, 6)
    expected_dist, expected_idx = _brute(Q, Z, 6, ord=ord)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, expected_dist, rtol=1e-10, atol=1e-12)
    assert dist.dtype == np.float64 and idx.shape == (7, 6)


def test_ties_are_broken_by_index():
    Z = np.array([[1.0], [0.0], [1.0], [-1.0], [1.0]])
    dist, idx = NeighborSearch().fit(Z).kneighbors(np.array([[0.0], [1.0]]), 4)
    assert idx.tolist() == [[1, 0, 2, 3], [0, 2, 4, 1]]
    assert dist.tolist() == [[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]]


def test_fitted_collection_query_excludes_self_like_sklearn(points):
    Z, _ = points
    search = NeighborSearch().fit(Z)
    dist, idx = search.kneighbors(None, 4)
    assert not np.any(idx == np.arange(len(Z))[:, None])
    sk_dist, sk_idx = NearestNeighbors().fit(Z).kneighbors(n_neighbors=4)
    np.testing.assert_array_equal(idx, sk_idx)
    np.testing.assert_array_equal(dist, sk_dist)


def test_exclude_self_with_the_fitted_embeddings_as_queries(points):
    Z, _ = points
    Z = np.concatenate([Z, Z[:3]])  # duplicates: a copy is not the item itself
    dist, idx = NeighborSearch().fit(Z).kneighbors(Z, 5, exclude_self=True)
    expected_dist, expected_idx = _brute(Z, Z, 5, exclude_self=True)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, expected_dist, atol=1e-12)
    assert idx[0, 0] == 50 and idx[50, 0] == 0 and dist[0, 0] == 0.0


def test_view_merge_takes_the_closest_view(points):
    Z, Q = points
    views = [Q, -Q, Q[:, ::-1]]
    search = NeighborSearch().fit(Z)
    dist, idx = search.kneighbors_views(views, 8)
    full = np.min([np.linalg.norm(v[:, None] - Z[None], axis=-1) for v in views], axis=0)
    expected_idx = np.argsort(full, axis=1, kind="stable")[:, :8]
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, np.take_along_axis(full, expected_idx, axis=1), atol=1e-12)
    assert all(len(set(row)) == 8 for row in idx.tolist())  # each galaxy once
    # One view is the plain search; the whole collection can be ranked.
    np.testing.assert_array_equal(search.kneighbors_views([Q], 3)[1], search.kneighbors(Q, 3)[1])
    assert sorted(search.kneighbors_views(views, 50)[1][0]) == list(range(50))


def test_view_merge_with_exclude_self(points):
    Z, _ = points
    views = [Z, Z * 1.01]
    _dist, idx = NeighborSearch().fit(Z).kneighbors_views(views, 49, exclude_self=True)
    full = np.min([np.linalg.norm(v[:, None] - Z[None], axis=-1) for v in views], axis=0)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :49])
    assert not np.any(idx == np.arange(50)[:, None])


def test_params_reach_the_backend_and_clone(points):
    Z, _Q = points
    search = NeighborSearch(algorithm="ball_tree", leaf_size=5)
    params = search.get_params()
    assert params["algorithm"] == "ball_tree" and params["leaf_size"] == 5
    # Every backend parameter is a constructor parameter, None until set.
    assert set(params) == {"algorithm", "metric", *BACKEND_PARAMETER_NAMES}
    assert search.backend_params == {"leaf_size": 5}
    assert repr(search) == "NeighborSearch(algorithm='ball_tree', leaf_size=5)"
    search.fit(Z)
    assert search.backend_.index.leaf_size == 5 and search.backend_.index.algorithm == "ball_tree"
    copy = clone(search.set_params(leaf_size=7, metric="manhattan", n_jobs=1))
    assert copy.backend_params == {"leaf_size": 7, "n_jobs": 1} and copy.metric == "manhattan"
    assert not hasattr(copy, "backend_")
    assert search.n_samples_fit_ == 50 and search.n_features_in_ == 3


def test_errors_name_the_argument(points):
    Z, Q = points
    with pytest.raises(NotFittedError):
        NeighborSearch().kneighbors(Q, 1)
    with pytest.raises(ValueError, match="algorithm must be 'auto' or one of"):
        NeighborSearch(algorithm="faiss-pq").fit(Z)
    with pytest.raises(TypeError, match="no_such_param"):
        NeighborSearch(no_such_param=1)
    with pytest.raises(ValueError, match="Invalid parameter 'no_such_param'"):
        NeighborSearch().set_params(no_such_param=1)
    with pytest.raises(TypeError, match="NearestNeighbors.*'M'"):
        NeighborSearch(algorithm="exact", M=16).fit(Z)
    with pytest.raises(ValueError, match="embeddings must be a non-empty 2-D"):
        NeighborSearch().fit(Z[0])
    with pytest.raises(ValueError, match="embeddings must hold finite"):
        NeighborSearch().fit(np.full((3, 2), np.nan))
    search = NeighborSearch().fit(Z)
    with pytest.raises(ValueError, match="queries has 2 features per row"):
        search.kneighbors(Q[:, :2], 1)
    with pytest.raises(ValueError, match="n_neighbors=51 exceeds the 50"):
        search.kneighbors(Q, 51)
    with pytest.raises(ValueError, match="n_neighbors=50 exceeds the 49"):
        search.kneighbors(None, 50)
    with pytest.raises(TypeError, match="n_neighbors"):
        search.kneighbors(Q, 2.5)
    with pytest.raises(ValueError, match="n_neighbors"):
        search.kneighbors(Q, 0)
    with pytest.raises(ValueError, match="exclude_self=True needs the fitted embeddings"):
        search.kneighbors(Q, 1, exclude_self=True)
    with pytest.raises(ValueError, match="view_embeddings is empty"):
        search.kneighbors_views([], 1)
    with pytest.raises(ValueError, match="same number of rows"):
        search.kneighbors_views([Q, Q[:2]], 1)
    with pytest.raises(ValueError, match=r"view_embeddings\[1\] has 2 features"):
        search.kneighbors_views([Q, Q[:, :2]], 1)


def test_closest_values_is_exact_with_ties():
    reference = np.array([0.0, 2.0, 5.0, 2.0, 2.0])
    dist, idx = closest_values(reference, [[2.1, 9.0], [4.0, 0.5]], 4)
    assert idx.tolist() == [[1, 3, 4, 0], [0, 2, 1, 3]]  # equal gaps: lowest index first
    np.testing.assert_allclose(dist, [[0.1, 0.1, 0.1, 2.1], [0.5, 1.0, 1.5, 1.5]])
    dist, idx = closest_values(reference, reference[:, None], 2, exclude_self=True)
    assert idx.tolist() == [[1, 3], [3, 4], [1, 3], [1, 4], [1, 3]]
    rng = np.random.default_rng(1)
    values, queries = rng.normal(size=200), rng.normal(size=(70, 2))  # more than one chunk
    gaps = np.abs(values[None, None] - queries[:, :, None]).min(axis=1)
    dist, idx = closest_values(values, queries, 10)
    np.testing.assert_array_equal(idx, np.argsort(gaps, axis=1, kind="stable")[:, :10])
    np.testing.assert_array_equal(dist, np.sort(gaps, axis=1)[:, :10])


def test_closest_values_errors():
    with pytest.raises(ValueError, match="query_values must be 2-D"):
        closest_values([0.0, 1.0], [0.5], 1)
    with pytest.raises(ValueError, match="n_neighbors=3 exceeds the 2"):
        closest_values([0.0, 1.0], [[0.5]], 3)
    with pytest.raises(ValueError, match="exclude_self=True needs one query per item"):
        closest_values([0.0, 1.0], [[0.5]], 1, exclude_self=True)


def test_check_n_neighbors():
    assert check_n_neighbors(3, 3) == 3
    with pytest.raises(ValueError, match="n_neighbors=3 exceeds the 2 galaxies"):
        check_n_neighbors(3, 3, exclude_self=True)
    with pytest.raises(TypeError, match="n_neighbors must be an integer"):
        check_n_neighbors(True, 3)


def test_without_faiss_auto_stays_exact_and_faiss_names_the_extra(monkeypatch, points):
    import sys

    from galaxysim.ranking import search as search_module

    Z, _ = points
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now fails
    monkeypatch.setattr(search_module, "AUTO_EXACT_BELOW", 10)
    assert NeighborSearch(algorithm="auto").fit(Z).algorithm_ == "exact"
    for algorithm in ("faiss-flat", "faiss-hnsw", "faiss-ivf"):
        with pytest.raises(ImportError, match=r'pip install "galaxysim\[faiss\]"'):
            NeighborSearch(algorithm=algorithm).fit(Z)


def test_exact_search_saves_and_loads_without_pickles(tmp_path, points):
    Z, Q = points
    search = NeighborSearch(algorithm="ball_tree", leaf_size=5).fit(Z)
    folder = search.save(tmp_path / "exact")
    assert sorted(p.name for p in folder.iterdir()) == ["embeddings.npy", "search.json"]
    loaded = NeighborSearch.load(folder)
    assert loaded.get_params() == search.get_params()
    for a, b in zip(loaded.kneighbors(Q, 4), search.kneighbors(Q, 4)):
        np.testing.assert_array_equal(a, b)
    assert loaded.estimate_recall(n_queries=10, n_neighbors=3) == 1.0
    with pytest.raises(TypeError, match="callable"):
        NeighborSearch(metric=lambda a, b: 0.0).fit(Z).save(tmp_path / "callable")


def test_ranker_search_parameter(points):
    from sklearn.decomposition import PCA

    from galaxysim.ranking import SimilarityRanker

    Z, _ = points
    ranker = SimilarityRanker(embedder=PCA(2), density="drop", invariance=None).fit(Z)
    assert ranker.search == "auto" and ranker.search_.algorithm_ == "exact"
    tree = SimilarityRanker(embedder=PCA(2), density="drop", invariance=None, search="kd_tree")
    assert tree.fit(Z).search_.algorithm_ == "kd_tree"
    leaves = SimilarityRanker(
        embedder=PCA(2), density="drop", search="ball_tree", neighbors_params={"leaf_size": 3}
    )
    assert leaves.set_params(invariance=None).fit(Z).search_.backend_.index.leaf_size == 3
    with pytest.raises(ValueError, match="search must be 'auto' or one of"):
        SimilarityRanker(embedder=PCA(2), density="drop", invariance=None, search="annoy").fit(Z)
    with pytest.raises(ValueError, match="disagree"):
        SimilarityRanker(
            embedder=PCA(2),
            density="drop",
            invariance=None,
            search="exact",
            neighbors_params={"algorithm": "kd_tree"},
        ).fit(Z)


def test_positional_arguments_are_deprecated():
    with pytest.warns(FutureWarning, match="pass algorithm=..., metric=... by name"):
        search = NeighborSearch("brute", "manhattan")
    assert (search.algorithm, search.metric) == ("brute", "manhattan")
    with pytest.raises(TypeError, match="keyword arguments only"):
        NeighborSearch(*range(20))


def test_a_saved_search_of_version_02_loads(tmp_path, points):
    Z, _Q = points
    folder = NeighborSearch(algorithm="kd_tree", leaf_size=4).fit(Z).save(tmp_path / "s")
    header = json.loads((folder / "search.json").read_text())
    # 0.2 wrote the **params it was given; the same names are parameters now.
    assert header["params"] == {"leaf_size": 4}
    loaded = NeighborSearch.load(folder)
    assert (
        loaded.leaf_size == 4
        and loaded.get_params() == NeighborSearch(algorithm="kd_tree", leaf_size=4).get_params()
    )
    header["params"] = {"radius": 2.0}
    (folder / "search.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="backend parameters NeighborSearch does not take"):
        NeighborSearch.load(folder)


def _edited_search(tmp_path, points, **changes):
    folder = NeighborSearch().fit(points[0]).save(tmp_path / "saved")
    header = json.loads((folder / "search.json").read_text())
    header.update(changes)
    (folder / "search.json").write_text(json.dumps(header))
    return folder


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"params": [1, 2]}, "params must be an object"),
        ({"params": {"leaf_size": [1]}}, "params.leaf_size must be"),
        ({"params": {"n_jobs": 10**9}}, "n_jobs must be at most 1024"),
        ({"params": {"algorithm": "brute"}}, "may not hold 'algorithm'"),
        ({"n_samples": "50"}, "n_samples must be an integer"),
        ({"n_samples": True}, "n_samples must be an integer"),
        ({"algorithm": ["exact"]}, "algorithm must be a string"),
        ({"version": 10**12}, "format version"),
    ],
)
def test_a_saved_search_of_the_wrong_types_is_refused(tmp_path, points, changes, match):
    with pytest.raises(ValueError, match=match):
        NeighborSearch.load(_edited_search(tmp_path, points, **changes))


def test_a_search_json_nested_100000_deep_is_one_clear_error(tmp_path, points):
    folder = _edited_search(tmp_path, points)
    text = (folder / "search.json").read_text()
    (folder / "search.json").write_text(text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        NeighborSearch.load(folder)


def test_saved_embeddings_that_declare_more_than_they_hold_are_refused(tmp_path, points):
    folder = _edited_search(tmp_path, points)
    npy = (folder / "embeddings.npy").read_bytes()
    header_end = npy.index(b"\n") + 1
    header = npy[:header_end].replace(b"(50, 3)", b"(50000000000, 3)")
    header = (
        header[:-1].rstrip(b" ") + b" " * (header_end - len(header[:-1].rstrip(b" ")) - 1) + b"\n"
    )
    (folder / "embeddings.npy").write_bytes(header[:header_end] + npy[header_end:])
    with pytest.raises(ValueError, match="declares 1,200,000,000,000 bytes"):
        NeighborSearch.load(folder)
