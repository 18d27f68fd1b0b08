"""SimilarityRanker and Ranking, on fast sklearn parts (PCA embedder, KDE density)."""

import csv
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from galaxysim.images import ImagePreprocessor
from galaxysim.metrics import neighbor_label_shares, percentile_rank
from galaxysim.ranking import Ranking, SimilarityRanker
from galaxysim.ranking.search import NeighborSearch
from galaxysim.symmetry import dihedral_views


def _pca(n=6):
    return make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(n, random_state=0))


def _blobs(n_per_class=20, size=12, seed=0):
    """Two visually different classes: a bar and a ring, at random brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    bar = (np.abs(yy) < 1.5) & (np.abs(xx) < size / 3)
    ring = np.abs(np.hypot(yy, xx) - size / 3) < 1.2
    images, labels = [], []
    for label, shape in enumerate((bar, ring)):
        for _ in range(n_per_class):
            img = 0.05 + 0.6 * shape * rng.uniform(0.6, 1.0) + rng.normal(0, 0.03, shape.shape)
            images.append(np.clip(np.repeat(img[..., None], 3, axis=-1), 0, 1))
            labels.append(label)
    return np.asarray(images, dtype=np.float32), np.asarray(labels)


@pytest.fixture(scope="module")
def data():
    return _blobs()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return SimilarityRanker(
        embedder=_pca(),
        density=KernelDensity(bandwidth=1.0),
        n_neighbors=5,
        target_names=["bar", "ring"],
    ).fit(X, y)


def test_dihedral_views_are_the_eight_symmetries():
    image = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    views = dihedral_views(image)
    assert len(views) == 8
    assert len({v.tobytes() for v in views}) == 8
    np.testing.assert_array_equal(views[0], image)
    rect = dihedral_views(np.zeros((2, 3, 5, 1)))
    assert len(rect) == 4 and all(v.shape == (2, 3, 5, 1) for v in rect)


def test_fit_attributes(fitted, data):
    _X, y = data
    assert fitted.embedding_.shape == (40, 6)
    assert fitted.log_density_.shape == (40,)
    np.testing.assert_array_equal(fitted.labels_, y)
    assert fitted.n_samples_fit_ == 40 and fitted.image_shape_ == (12, 12, 3)
    reference = fitted.diagnostics_.isolation_reference_
    assert reference.shape == (40,) and np.all(reference > 0)


def test_rank_finds_the_query_itself_first(fitted, data):
    X, _y = data
    ranking = fitted.rank(X[7])
    assert isinstance(ranking, Ranking) and len(ranking) == 5
    assert ranking.indices[0] == 7 and ranking.distances[0] == pytest.approx(0.0, abs=1e-5)
    assert ranking.similarity[0] == 100.0
    assert np.all(np.diff(ranking.similarity) < 0)
    assert np.all(np.diff(ranking.distances) >= 0)
    assert list(ranking.class_names) == ["bar"] * 5
    assert ranking.warning is None
    assert 0 <= ranking.diagnostics.typicality <= 100


def test_search_seam_and_query_percentiles(fitted, data):
    X, _ = data
    assert isinstance(fitted.search_, NeighborSearch) and fitted.search_.n_samples_fit_ == 40
    reference = fitted.diagnostics_.isolation_reference_
    np.testing.assert_array_equal(reference, fitted.search_.kneighbors(None, 1)[0][:, 0])
    query = X[7] * 0.8
    ranking = fitted.rank(query)
    Z = fitted.transform(query[None])
    nn = np.linalg.norm(fitted.embedding_ - Z, axis=1).min()
    diagnosis = ranking.diagnostics
    assert diagnosis.isolation == pytest.approx(percentile_rank([nn], reference)[0])
    expected = percentile_rank([diagnosis.log_density], fitted.log_density_)[0]
    assert diagnosis.typicality == expected


def test_positional_parameters_are_deprecated_then_refused():
    with pytest.warns(FutureWarning, match="keyword arguments only: pass embedder=..., density="):
        ranker = SimilarityRanker(_pca(), "drop")
    assert ranker.density == "drop" and ranker.get_params()["n_neighbors"] == 10
    # More positional arguments than parameters, or a value given twice: a TypeError.
    with pytest.raises(TypeError, match="keyword arguments only"):
        SimilarityRanker(*range(20))
    with pytest.raises(TypeError, match="multiple values for argument 'embedder'"):
        SimilarityRanker(_pca(), embedder=_pca())


def test_rank_the_whole_collection_orders_classes(fitted, data):
    X, _y = data
    ranking = fitted.rank(X[25], n_neighbors=fitted.n_samples_fit_)
    assert sorted(ranking.indices) == list(range(40))
    assert ranking.similarity[-1] == 0.0
    # The ring query puts the rings before the bars.
    assert ranking.labels[:20].mean() > 0.9


def test_dihedral_invariance_matches_rotated_queries(data):
    X, _y = data
    ranker = SimilarityRanker(embedder=_pca(), density="drop", n_neighbors=3).fit(X)
    rotated = np.rot90(X[3], k=1, axes=(0, 1))
    assert ranker.rank(rotated).indices[0] == 3
    assert ranker.rank(rotated).distances[0] == pytest.approx(0.0, abs=1e-5)
    plain = clone(ranker).set_params(invariance=None).fit(X)
    assert plain.rank(rotated).distances[0] > 1e-3


def test_dihedral_merge_equals_brute_force(data):
    X, _ = data
    ranker = SimilarityRanker(embedder=_pca(), density="drop", n_neighbors=7).fit(X)
    queries = X[[1, 30]] * 0.9
    dist, idx = ranker.kneighbors(queries)
    views = [ranker.embedder_.transform(v) for v in dihedral_views(queries)]
    full = np.min(
        [np.linalg.norm(v[:, None] - ranker.embedding_[None], axis=-1) for v in views], axis=0
    )
    for row in range(2):
        np.testing.assert_allclose(dist[row], np.sort(full[row])[:7], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(idx[row], np.argsort(full[row], kind="stable")[:7])


def test_likelihood_method_ranks_by_log_density_gap(data):
    X, y = data
    ranker = SimilarityRanker(
        embedder=_pca(),
        density=KernelDensity(bandwidth=1.0),
        method="likelihood",
        invariance=None,
        n_neighbors=4,
    ).fit(X, y)
    ranking = ranker.rank(X[10])
    gaps = np.abs(ranker.log_density_ - ranker.log_density_[10])
    np.testing.assert_allclose(ranking.distances, np.sort(gaps)[:4], atol=1e-5)
    assert ranking.indices[0] == 10


def test_batch_query_returns_one_ranking_each(fitted, data):
    X, _ = data
    rankings = fitted.rank(X[:3])
    assert isinstance(rankings, list) and [r.indices[0] for r in rankings] == [0, 1, 2]


def test_kneighbors_like_sklearn(fitted, data):
    X, _ = data
    dist, idx = fitted.kneighbors(X[:4], n_neighbors=3)
    assert dist.shape == idx.shape == (4, 3)
    np.testing.assert_array_equal(idx[:, 0], [0, 1, 2, 3])
    only_idx = fitted.kneighbors(X[:4], n_neighbors=3, return_distance=False)
    np.testing.assert_array_equal(only_idx, idx)
    plain = clone(fitted).set_params(invariance=None).fit(*data)
    _self_dist, self_idx = plain.kneighbors(n_neighbors=2)
    assert self_idx.shape == (40, 2) and not np.any(self_idx == np.arange(40)[:, None])
    with pytest.raises(ValueError, match="does not keep"):
        fitted.kneighbors(n_neighbors=2)


@pytest.mark.parametrize(
    "settings",
    [
        {"invariance": "dihedral"},
        {"invariance": None},
        {"invariance": None, "method": "likelihood"},
    ],
)
def test_kneighbors_exclude_self_gives_the_lists_behind_score(fitted, data, settings):
    X, y = data
    ranker = clone(fitted).set_params(**settings).fit(X, y)
    idx = ranker.kneighbors(X, return_distance=False, exclude_self=True)
    assert idx.shape == (40, 5) and not np.any(idx == np.arange(40)[:, None])
    shares = neighbor_label_shares(idx, y)
    assert shares.mean() == pytest.approx(ranker.score(X, y), abs=1e-12)
    dist, same = ranker.kneighbors(X, exclude_self=True)
    np.testing.assert_array_equal(same, idx)
    assert np.all(np.diff(dist, axis=1) >= 0)
    if settings == {"invariance": None}:  # the same lists as asking without X
        np.testing.assert_array_equal(ranker.kneighbors(return_distance=False), idx)


def test_kneighbors_exclude_self_needs_the_fitted_collection(fitted, data):
    X, _ = data
    with pytest.raises(ValueError, match="exclude_self=True needs X to be the fitted collection"):
        fitted.kneighbors(X[:10], exclude_self=True)
    with pytest.raises(ValueError, match="exclude_self=True needs X"):
        fitted.kneighbors(X[::-1], exclude_self=True)  # same images, another order
    with pytest.raises(ValueError, match="n_neighbors=40 exceeds the 39"):
        fitted.kneighbors(X, n_neighbors=40, exclude_self=True)
    with pytest.raises(TypeError, match="exclude_self must be True or False"):
        fitted.kneighbors(X, exclude_self="yes")


def test_score_excludes_self_matches_on_the_fitted_data(fitted, data):
    X, y = data
    on_fit = fitted.score(X, y)
    assert 0.8 <= on_fit <= 1.0
    # Shuffled labels give chance-level agreement, so the score really uses labels.
    shuffled = np.random.default_rng(0).permutation(y)
    assert fitted.score(X, shuffled) < on_fit
    # A copy of the data is recognised as the fitted data (no self-match credit).
    degenerate = SimilarityRanker(
        embedder=_pca(), density="drop", n_neighbors=1, invariance=None
    ).fit(X, np.arange(40))
    assert degenerate.score(X.copy(), np.arange(40)) == 0.0
    assert degenerate.score(X * 0.999, np.arange(40)) > 0.9  # new images: matched to the originals


def test_grid_search_tunes_the_embedder(data):
    X, y = data
    search = GridSearchCV(
        SimilarityRanker(embedder=_pca(), density="drop", n_neighbors=3, invariance=None),
        {"embedder__pca__n_components": [1, 4]},
        cv=2,
    ).fit(X, y)
    assert search.best_params_["embedder__pca__n_components"] in (1, 4)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_prefitted_embedder_is_used_as_is_with_a_future_warning(data):
    X, _y = data
    embedder = _pca().fit(X[:20])
    components = embedder[-1].components_.copy()
    ranker = SimilarityRanker(embedder=embedder, density="drop", n_neighbors=2)
    with pytest.warns(FutureWarning, match="Wrap it in sklearn.frozen.FrozenEstimator"):
        ranker.fit(X)
    assert ranker.embedder_ is embedder
    np.testing.assert_array_equal(embedder[-1].components_, components)


def test_frozen_embedder_is_used_as_is_and_kept_by_clone_and_grid_search(data):
    X, y = data
    embedder = _pca().fit(X[:20])
    components = embedder[-1].components_.copy()
    frozen = FrozenEstimator(embedder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning for a frozen embedder
        ranker = SimilarityRanker(embedder=frozen, density="drop", n_neighbors=2).fit(X)
    assert ranker.embedder_ is embedder
    # clone keeps the frozen embedder itself, fitted, so a clone ranks alike.
    copy = clone(ranker)
    assert copy.embedder is frozen
    np.testing.assert_array_equal(copy.fit(X).embedding_, ranker.embedding_)
    search = GridSearchCV(
        SimilarityRanker(embedder=frozen, density="drop", invariance=None),
        {"n_neighbors": [1, 3]},
        cv=2,
    ).fit(X, y)
    assert search.best_estimator_.embedder_ is embedder
    np.testing.assert_array_equal(embedder[-1].components_, components)  # never refitted


def test_frozen_unfitted_embedder_is_refused(data):
    X, _y = data
    with pytest.raises(ValueError, match="FrozenEstimator around an unfitted Pipeline"):
        SimilarityRanker(embedder=FrozenEstimator(_pca()), density="drop").fit(X)


def test_frozen_density_is_used_as_is(data):
    X, _y = data
    density = KernelDensity(bandwidth=2.0).fit(np.zeros((3, 6)))
    ranker = SimilarityRanker(
        embedder=_pca(), density=FrozenEstimator(density), invariance=None
    ).fit(X)
    assert ranker.density_ is density
    np.testing.assert_array_equal(ranker.log_density_, density.score_samples(ranker.embedding_))


def test_density_false_is_deprecated_for_drop(data):
    X, _y = data
    ranker = SimilarityRanker(embedder=_pca(), density=False, invariance=None)
    with pytest.warns(FutureWarning, match='density="drop"'):
        ranker.fit(X)
    assert ranker.density_ is None and ranker.log_density_ is None
    assert clone(ranker).get_params()["density"] is False
    with pytest.raises(ValueError, match='density must be None, "drop" or an estimator'):
        SimilarityRanker(embedder=_pca(), density="off").fit(X)


def test_neighbors_params_algorithm_is_deprecated_for_search(data):
    X, _y = data
    ranker = SimilarityRanker(
        embedder=_pca(), density="drop", invariance=None, neighbors_params={"algorithm": "brute"}
    )
    with pytest.warns(FutureWarning, match="pass search='brute'"):
        ranker.fit(X)
    assert ranker.search_.algorithm_ == "brute"
    new = SimilarityRanker(embedder=_pca(), density="drop", invariance=None, search="brute")
    np.testing.assert_array_equal(new.fit(X).kneighbors(X[:3])[1], ranker.kneighbors(X[:3])[1])
    # A name NeighborSearch does not take fails before anything is trained.
    with pytest.raises(TypeError, match="neighbors_params holds 'radius'"):
        SimilarityRanker(embedder=_pca(), neighbors_params={"radius": 1.0}).fit(X)


def test_ranker_names_its_output_columns(data):
    X, _y = data
    pca = SimilarityRanker(embedder=_pca(4), density="drop", invariance=None).fit(X)
    assert pca.get_feature_names_out().tolist() == ["pca0", "pca1", "pca2", "pca3"]
    # An embedder without names: the ranker's own. A stateless embedder, which
    # needs no fit, is not taken for a pre-fitted one (no FutureWarning).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = SimilarityRanker(
            embedder=FunctionTransformer(lambda A: A.reshape(len(A), -1)[:, :2]),
            density="drop",
            invariance=None,
        ).fit(X)
    assert pixels.get_feature_names_out().tolist() == ["similarityranker0", "similarityranker1"]


def test_ranker_transform_gives_a_dataframe_with_pandas_output(data):
    pytest.importorskip("pandas")
    X, _y = data
    pca = SimilarityRanker(embedder=_pca(4), density="drop", invariance=None).fit(X)
    table = pca.set_output(transform="pandas").transform(X[:2])
    assert table.columns.tolist() == ["pca0", "pca1", "pca2", "pca3"]
    np.testing.assert_array_equal(
        table.to_numpy(), pca.set_output(transform="default").transform(X[:2])
    )


def test_out_of_distribution_query_is_flagged(fitted):
    odd = np.ones((12, 12, 3), dtype=np.float32)
    odd[::2] = 0.0
    ranking = fitted.rank(odd)
    assert ranking.warning is not None and "unlike the collection" in ranking.warning
    assert ranking.diagnostics.isolation > 99


def test_vector_input_without_invariance():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(30, 4))
    ranker = SimilarityRanker(
        embedder=PCA(2), density=KernelDensity(), invariance=None, n_neighbors=3
    ).fit(Z)
    assert ranker.rank(Z[5]).indices[0] == 5
    with pytest.raises(ValueError, match="invariance='dihedral' needs images"):
        SimilarityRanker(embedder=PCA(2), density="drop").fit(Z)


def test_bad_input_and_parameters(fitted, data):
    X, y = data
    with pytest.raises(ValueError, match="method must be one of"):
        SimilarityRanker(embedder=_pca(), density="drop", method="magic").fit(X)
    with pytest.raises(ValueError, match="invariance"):
        SimilarityRanker(embedder=_pca(), density="drop", invariance="rotations").fit(X)
    with pytest.raises(ValueError, match="needs a density"):
        SimilarityRanker(embedder=_pca(), density="drop", method="likelihood").fit(X)
    with pytest.raises(ValueError, match="n_neighbors"):
        SimilarityRanker(embedder=_pca(), density="drop", n_neighbors=0).fit(X)
    with pytest.raises(ValueError, match="y has 5 labels but there are 40"):
        SimilarityRanker(embedder=_pca(), density="drop").fit(X, y[:5])
    with pytest.raises(ValueError, match="at least 2"):
        SimilarityRanker(embedder=_pca(), density="drop").fit(X[:1])
    with pytest.raises(ValueError, match="1 target_names"):
        SimilarityRanker(embedder=_pca(), density="drop", target_names=["a"]).fit(X, y)
    with pytest.raises(TypeError, match="embedder must have fit and transform"):
        SimilarityRanker(embedder=object(), density="drop").fit(X)
    with pytest.raises(ValueError, match="query holds images of shape"):
        fitted.rank(np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="NaN"):
        fitted.rank(np.full((12, 12, 3), np.nan))
    with pytest.raises(ValueError, match="n_neighbors=41 exceeds the 40"):
        fitted.rank(X[0], n_neighbors=41)
    with pytest.raises(ValueError, match="images has 3 entries"):
        fitted.rank(X[0], images=X[:3])
    with pytest.raises(ValueError, match="names has 2 entries"):
        fitted.rank(X[0], names=["a", "b"])
    with pytest.raises(NotFittedError):
        SimilarityRanker().rank(X[0])
    no_labels = SimilarityRanker(embedder=_pca(), density="drop").fit(X)
    with pytest.raises(ValueError, match="fit the ranker with y"):
        no_labels.score(X, y)
    with pytest.raises(ValueError, match='density="drop"'):
        no_labels.score_samples(X)


def test_transform_and_score_samples(fitted, data):
    X, _ = data
    # PCA runs in the images' float32, where BLAS sums a 3-row and a 40-row product
    # in different orders: equal to float32 precision, not to the last bit.
    np.testing.assert_allclose(fitted.transform(X[:3]), fitted.embedding_[:3], atol=1e-6)
    np.testing.assert_allclose(fitted.score_samples(X[:3]), fitted.log_density_[:3], atol=1e-5)


def test_ranking_table_csv_plot_and_html(fitted, data, tmp_path):
    X, _ = data
    ranking = fitted.rank(X[2], images=X, names=[f"g{i}.png" for i in range(40)])
    assert ranking.names[0] == "g2.png"
    table = ranking.to_frame()
    assert [int(i) for i in table["index"]] == list(ranking.indices)
    path = ranking.to_csv(tmp_path / "ranking.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and rows[0]["rank"] == "1" and rows[0]["class_name"] == "bar"
    assert rows[0]["name"] == "g2.png"
    assert int(rows[1]["index"]) == ranking.indices[1]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ranking.to_csv(path)
    assert ranking.to_csv(path, overwrite=True) == path
    fig = ranking.plot(n_neighbors=4)
    assert len([ax for ax in fig.axes if ax.images]) == 5
    assert fig.axes[0].get_title() == "query" and fig.axes[1].get_title().startswith("#1")
    html = ranking._repr_html_()
    assert html.count("data:image/png;base64") == 6 and "bar" in html
    bare = fitted.rank(X[2])
    with pytest.raises(ValueError, match="needs the collection's images"):
        bare.plot()
    assert len([ax for ax in bare.plot(X, n_neighbors=3).axes if ax.images]) == 3


@parametrize_with_checks(
    [
        SimilarityRanker(
            embedder=StandardScaler(), density=KernelDensity(), n_neighbors=3, invariance=None
        )
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_a_query_of_a_one_channel_collection_may_be_given_as_h_w():
    rng = np.random.default_rng(0)
    X = rng.random((30, 8, 8)).astype(np.float32)
    ranker = SimilarityRanker(embedder=_pca(), density="drop", invariance=None, n_neighbors=3).fit(
        X
    )
    as_2d = ranker.rank(X[4])
    as_3d = ranker.rank(X[4][..., None])
    np.testing.assert_array_equal(as_2d.indices, as_3d.indices)
    assert as_2d.indices[0] == 4


def test_ranking_csv_neutralises_spreadsheet_formulas(fitted, data, tmp_path):
    import csv as csv_module

    X, _ = data
    names = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "plain"] + [
        f"g{i}" for i in range(34)
    ]
    fitted.rank(X[0], n_neighbors=40, names=names).to_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as handle:
        table = list(csv_module.DictReader(handle))
    written = {row["name"] for row in table}
    assert {"'" + name for name in names[:5]} <= written
    assert "plain" in written
    assert not any(name.startswith(("=", "+", "-", "@", "\t")) for name in written)
    assert any(float(row["log_density"]) < 0 for row in table)  # numbers keep their sign
