"""The scikit-learn surface across estimators: feature names through whole pipelines.

Every galaxysim estimator with ``transform`` names its output columns
(``get_feature_names_out``), so that ``set_output(transform="pandas")`` works
through a whole pipeline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline

from galaxysim import (
    AutoencoderEmbedder,
    ContrastiveEmbedder,
    FlowDensityEstimator,
    ImagePreprocessor,
)

CONTRASTIVE = dict(
    n_components=4,
    representation_dim=8,
    n_stages=1,
    base_channels=4,
    projection_dim=4,
    max_epochs=1,
    batch_size=8,
    device="cpu",
    random_state=0,
)
FLOW = dict(n_layers=1, hidden_features=(8,), max_epochs=1, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((24, 12, 12, 3)).astype(np.float32)


def _pipeline():
    return make_pipeline(
        ImagePreprocessor(crop=8),
        ContrastiveEmbedder(**CONTRASTIVE),
        FlowDensityEstimator(**FLOW),
    )


def test_every_transform_names_its_columns(images):
    pipe = _pipeline().fit(images)
    assert pipe[:2].get_feature_names_out().tolist() == [
        f"contrastiveembedder{i}" for i in range(4)
    ]
    assert pipe.get_feature_names_out().tolist() == [f"flowdensityestimator{i}" for i in range(4)]
    flow = FlowDensityEstimator(**FLOW).fit(np.random.default_rng(0).normal(size=(30, 3)))
    assert flow.get_feature_names_out().tolist() == [f"flowdensityestimator{i}" for i in range(3)]
    autoencoder = AutoencoderEmbedder(
        n_components=2, n_stages=1, n_blocks=1, base_channels=2, max_epochs=1, device="cpu"
    ).fit(images)
    assert autoencoder.get_feature_names_out().tolist() == [
        "autoencoderembedder0",
        "autoencoderembedder1",
    ]


def test_set_output_default_goes_through_a_whole_pipeline(images):
    plain = _pipeline().fit(images).transform(images)
    pipe = _pipeline().set_output(transform="default").fit(images)
    np.testing.assert_array_equal(pipe.transform(images), plain)


def test_set_output_pandas_goes_through_a_whole_pipeline(images):
    pd = pytest.importorskip("pandas")
    plain = _pipeline().fit(images)
    # The issue's own example, then the same behind an ImagePreprocessor of images.
    short = make_pipeline(ContrastiveEmbedder(**CONTRASTIVE), FlowDensityEstimator(**FLOW))
    table = short.set_output(transform="pandas").fit(images[:, :8, :8]).transform(images[:, :8, :8])
    assert isinstance(table, pd.DataFrame)
    assert table.columns.tolist() == [f"flowdensityestimator{i}" for i in range(4)]
    pipe = _pipeline().set_output(transform="pandas").fit(images)
    embedded = pipe[:2].transform(images)
    assert isinstance(embedded, pd.DataFrame)
    assert embedded.columns.tolist() == [f"contrastiveembedder{i}" for i in range(4)]
    table = pipe.transform(images)
    assert isinstance(table, pd.DataFrame)
    assert table.columns.tolist() == [f"flowdensityestimator{i}" for i in range(4)]
    # The same numbers as without pandas.
    np.testing.assert_allclose(table.to_numpy(), plain.transform(images), rtol=1e-12)


def test_grid_search_keeps_a_frozen_torch_embedder_and_its_weights(images):
    from sklearn.base import clone
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import GridSearchCV

    from galaxysim import SimilarityRanker

    embedder = ContrastiveEmbedder(**CONTRASTIVE).fit(images)
    weights = {k: v.clone() for k, v in embedder.network_.state_dict().items()}
    whitening = embedder.whitening_components_.copy()
    ranker = SimilarityRanker(
        embedder=FrozenEstimator(embedder), density="drop", invariance=None, n_neighbors=2
    )
    assert clone(ranker).embedder.estimator is embedder
    labels = np.arange(len(images)) % 2
    search = GridSearchCV(ranker, {"n_neighbors": [1, 3]}, cv=2).fit(images, labels)
    assert search.best_estimator_.embedder_ is embedder
    for name, tensor in embedder.network_.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    np.testing.assert_array_equal(embedder.whitening_components_, whitening)


PUBLIC_ESTIMATORS = [
    "AutoencoderEmbedder",
    "ContrastiveEmbedder",
    "FlowDensityEstimator",
    "GalaxyAugmentation",
    "ImagePreprocessor",
    "SimilarityRanker",
    "NeighborSearch",
]
# Keyword-only since 0.3: a positional call still works for one version, with a FutureWarning.
NEWLY_KEYWORD_ONLY = {"ImagePreprocessor", "SimilarityRanker", "NeighborSearch"}


def _estimator_class(name):
    import galaxysim
    from galaxysim.ranking.search import NeighborSearch

    return NeighborSearch if name == "NeighborSearch" else getattr(galaxysim, name)


@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_public_estimators_take_keyword_arguments_only(name):
    import inspect

    cls = _estimator_class(name)
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert parameters and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    first = parameters[0]
    value = cls().get_params()[first.name]
    if name in NEWLY_KEYWORD_ONLY:
        with pytest.warns(FutureWarning, match="keyword arguments only"):
            assert cls(value).get_params()[first.name] == value
    else:
        with pytest.raises(TypeError):
            cls(value)
