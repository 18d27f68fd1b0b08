"""The faiss backends of NeighborSearch: same answers as exact (flat), sane recall, files."""

import json

import numpy as np
import pytest

from galaxysim.ranking import search as search_module
from galaxysim.ranking.search import NeighborSearch, choose_algorithm

faiss = pytest.importorskip("faiss")

APPROXIMATE = [("faiss-hnsw", {}), ("faiss-ivf", {}), ("faiss-ivf", {"pq": 8, "nprobe": 32})]


def _clustered(n, d=16, seed=0):
    """A mixture of 20 clusters on an 8-d subspace, with a little noise: no exact ties."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, 8)))[0].T
    centres = 3 * rng.standard_normal((20, 8))
    coords = centres[rng.integers(0, 20, n)] + rng.standard_normal((n, 8))
    return coords @ basis + 0.05 * rng.standard_normal((n, d))


@pytest.fixture(scope="module")
def data():
    Z = _clustered(3_000)
    return Z[:2_900], Z[2_900:]


def test_flat_returns_the_exact_neighbours(data):
    Z, Q = data
    exact = NeighborSearch(algorithm="exact").fit(Z)
    flat = NeighborSearch(algorithm="faiss-flat").fit(Z)
    d_exact, i_exact = exact.kneighbors(Q, 10)
    d_flat, i_flat = flat.kneighbors(Q, 10)
    np.testing.assert_array_equal(i_flat, i_exact)
    np.testing.assert_allclose(d_flat, d_exact, rtol=1e-4, atol=1e-4)  # float32 precision
    assert d_flat.dtype == np.float64 and i_flat.dtype == np.intp
    np.testing.assert_array_equal(flat.kneighbors(None, 5)[1], exact.kneighbors(None, 5)[1])
    assert flat.estimate_recall(n_queries=50) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, params", APPROXIMATE)
def test_approximate_backends_report_a_sane_recall(data, algorithm, params):
    Z, Q = data
    search = NeighborSearch(algorithm=algorithm, **params).fit(Z)
    recall = search.estimate_recall(n_queries=200, n_neighbors=10, random_state=1)
    assert search.recall_ == recall
    assert recall >= (0.5 if "pq" in params else 0.9)
    # Against the original embeddings (the compression of pq is then counted).
    assert 0.3 <= search.estimate_recall(Z, n_queries=50) <= 1.0
    _, idx = search.kneighbors(Q, 10)
    _, truth = NeighborSearch().fit(Z).kneighbors(Q, 10)
    found = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, truth)])
    assert found >= (0.5 if "pq" in params else 0.9)


@pytest.mark.parametrize("algorithm", ["faiss-flat", "faiss-hnsw", "faiss-ivf"])
def test_fitted_set_query_leaves_each_point_out(data, algorithm):
    Z, _ = data
    dist, idx = NeighborSearch(algorithm=algorithm).fit(Z).kneighbors(None, 3)
    assert idx.shape == (len(Z), 3)
    assert not np.any(idx == np.arange(len(Z))[:, None])
    assert np.all(np.diff(dist, axis=1) >= 0) and np.all(dist > 0)


@pytest.mark.parametrize("algorithm", ["faiss-flat", "faiss-hnsw", "faiss-ivf"])
def test_view_merge_works_for_faiss(data, algorithm):
    Z, Q = data
    mirrored = Q[:, ::-1].copy()
    search = NeighborSearch(algorithm=algorithm).fit(Z)
    dist, idx = search.kneighbors_views([Q, mirrored], 5)
    _, single = NeighborSearch().fit(Z).kneighbors_views([Q, mirrored], 5)
    assert np.mean(idx == single) >= 0.9
    assert np.all(np.diff(dist, axis=1) >= 0)
    assert all(len(set(row)) == 5 for row in idx)


def test_ivf_small_collections_and_missing_candidates():
    Z = _clustered(200)
    search = NeighborSearch(algorithm="faiss-ivf", nlist=20, nprobe=1).fit(Z)
    dist, idx = search.kneighbors(Z[:5], 150)  # one list cannot hold 150: the search widens
    assert np.all(idx >= 0) and np.all(np.isfinite(dist))
    np.testing.assert_array_equal(idx, NeighborSearch().fit(Z).kneighbors(Z[:5], 150)[1])


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, params", [("faiss-flat", {}), *APPROXIMATE, ("exact", {})])
def test_save_load_round_trip(tmp_path, data, algorithm, params):
    Z, Q = data
    search = NeighborSearch(algorithm=algorithm, **params).fit(Z)
    folder = search.save(tmp_path / "index")
    loaded = NeighborSearch.load(folder)
    assert loaded.get_params() == search.get_params() and loaded.algorithm_ == search.algorithm_
    assert (loaded.n_samples_fit_, loaded.n_features_in_) == (len(Z), Z.shape[1])
    for a, b in zip(loaded.kneighbors(Q, 7), search.kneighbors(Q, 7)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        search.save(folder)
    search.save(folder, overwrite=True)


def test_load_refuses_missing_corrupt_and_inconsistent_files(tmp_path, data):
    Z, _ = data
    folder = NeighborSearch(algorithm="faiss-flat").fit(Z).save(tmp_path / "a")
    header = json.loads((folder / "search.json").read_text())
    header["n_samples"] = 5
    (folder / "search.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="holds 2900 vectors of 16 values; search.json says 5"):
        NeighborSearch.load(folder)
    (folder / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="faiss index file is refused"):
        NeighborSearch.load(folder)
    (folder / "index.faiss").unlink()
    with pytest.raises(FileNotFoundError, match="saved faiss index"):
        NeighborSearch.load(folder)
    (folder / "search.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        NeighborSearch.load(folder)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        NeighborSearch.load(tmp_path / "nothing")
    exact = NeighborSearch().fit(Z).save(tmp_path / "b")
    np.save(exact / "embeddings.npy", Z[:10])
    with pytest.raises(ValueError, match=r"shape \(10, 16\)"):
        NeighborSearch.load(exact)
    np.save(exact / "embeddings.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot be read"):
        NeighborSearch.load(exact)


def test_faiss_errors(data):
    Z, _ = data
    with pytest.raises(ValueError, match="metric='euclidean' only"):
        NeighborSearch(algorithm="faiss-hnsw", metric="manhattan").fit(Z)
    with pytest.raises(TypeError, match="unknown.*leaf_size"):
        NeighborSearch(algorithm="faiss-flat", leaf_size=3).fit(Z)
    with pytest.raises(ValueError, match="M must be a positive int"):
        NeighborSearch(algorithm="faiss-hnsw", M=0).fit(Z)
    with pytest.raises(ValueError, match="pq=5 must divide"):
        NeighborSearch(algorithm="faiss-ivf", pq=5).fit(Z)


def test_auto_picks_hnsw_for_large_collections(monkeypatch):
    assert choose_algorithm(99_999) == "exact"
    assert choose_algorithm(100_000) == "faiss-hnsw"
    assert choose_algorithm(100_000, "manhattan") == "exact"
    assert choose_algorithm(100_000, params={"leaf_size": 5}) == "exact"
    monkeypatch.setattr(search_module, "AUTO_EXACT_BELOW", 100)
    assert NeighborSearch(algorithm="auto").fit(_clustered(150)).algorithm_ == "faiss-hnsw"
    assert NeighborSearch(algorithm="auto").fit(_clustered(99)).algorithm_ == "exact"


def test_ranker_uses_the_faiss_backends(data):
    from sklearn.decomposition import PCA

    from galaxysim.ranking import SimilarityRanker

    Z, Q = data
    exact = SimilarityRanker(embedder=PCA(8), density="drop", invariance=None).fit(Z)
    flat = SimilarityRanker(
        embedder=PCA(8), density="drop", invariance=None, search="faiss-flat"
    ).fit(Z)
    assert exact.search_.algorithm_ == "exact" and flat.search_.algorithm_ == "faiss-flat"
    np.testing.assert_array_equal(flat.kneighbors(Q)[1], exact.kneighbors(Q)[1])
    np.testing.assert_allclose(
        flat.diagnostics_.isolation_reference_,
        exact.diagnostics_.isolation_reference_,
        rtol=1e-4,
        atol=1e-4,
    )


def _peak_rss_bytes() -> int:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@pytest.mark.parametrize("value", [2_147_483_647, 10**12, 0, "64", None])
def test_search_parameters_from_a_file_are_bounded(tmp_path, data, value):
    folder = NeighborSearch(algorithm="faiss-hnsw", M=8).fit(data[0][:300]).save(tmp_path / "s")
    header = json.loads((folder / "search.json").read_text())
    header["params"]["ef_search"] = value
    (folder / "search.json").write_text(json.dumps(header))
    if value is None:  # the default is used
        assert NeighborSearch.load(folder).backend_.index.hnsw.efSearch == 64
        return
    with pytest.raises(ValueError, match="ef_search must be a positive int of at most 65,536"):
        NeighborSearch.load(folder)
    for name, largest in (("M", 512), ("nprobe", 2**20)):
        with pytest.raises(
            ValueError, match=f"{name} must be a positive int of at most {largest:,}"
        ):
            algorithm = "faiss-hnsw" if name == "M" else "faiss-ivf"
            NeighborSearch(algorithm=algorithm, **{name: largest + 1}).fit(data[0][:300])


def _flat_file(n=50, d=4):
    index = faiss.IndexFlatL2(d)
    index.add(np.random.default_rng(0).random((n, d), dtype=np.float32))
    return faiss.serialize_index(index).tobytes()


def test_a_small_index_file_declaring_gigabytes_is_refused_before_faiss_reads_it(tmp_path, data):
    folder = NeighborSearch(algorithm="faiss-flat").fit(data[0][:40]).save(tmp_path / "s")
    small = _flat_file(n=40, d=4)
    assert len(small) == 685  # the attacker's file: 685 bytes, as in the report
    header = json.loads((folder / "search.json").read_text())
    header["n_features"] = 4
    (folder / "search.json").write_text(json.dumps(header))
    for declared in (2**29, 2**40, 2**63):
        hostile = small[:37] + declared.to_bytes(8, "little") + small[45:]
        (folder / "index.faiss").write_bytes(hostile)
        before = _peak_rss_bytes()
        with pytest.raises(ValueError, match="faiss index file is refused: it declares"):
            NeighborSearch.load(folder)
        assert _peak_rss_bytes() - before < 200 * 2**20
    (folder / "index.faiss").write_bytes(small)
    assert NeighborSearch.load(folder).n_samples_fit_ == 40


@pytest.mark.slow
@pytest.mark.parametrize(
    "algorithm, params", [("faiss-hnsw", {"M": 8}), ("faiss-ivf", {}), ("faiss-ivf", {"pq": 4})]
)
def test_every_declared_size_of_an_index_file_is_checked(data, algorithm, params):
    from galaxysim.ranking._faiss_file import IndexFileError, check_index_file

    backend = NeighborSearch(algorithm=algorithm, **params).fit(data[0][:1000]).backend_
    good = backend.to_bytes()
    assert check_index_file(good, algorithm)[:2] == (16, 1000)
    with pytest.raises(IndexFileError, match="follow the end"):
        check_index_file(good + b"\0", algorithm)
    with pytest.raises(IndexFileError, match="left in the file"):
        check_index_file(good[:-1], algorithm)
    # Every 8-byte field set to a huge length: refused by the check, never read by faiss.
    for start in range(4, len(good) - 8, 97):
        hostile = good[:start] + (2**40).to_bytes(8, "little") + good[start + 8 :]
        try:
            check_index_file(hostile, algorithm)
        except IndexFileError:
            continue
        try:  # a field that sizes nothing: faiss reads it, and may refuse its value
            backend.load_bytes(hostile)
        except ValueError as error:
            assert "cannot be read" in str(error)
    with pytest.raises(IndexFileError, match="not one that"):
        check_index_file(_flat_file(), algorithm)
