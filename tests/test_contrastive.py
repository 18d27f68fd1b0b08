"""Tests of galaxysim.embedders.contrastive: the network, the losses and ContrastiveEmbedder.

The estimator tests use tiny networks (2 stages of 4 and 8 channels) on 16x16
images, trained for a few epochs on one CPU thread, so that the whole file
runs in well under a minute. The last section covers the ``augmentation``
(denoising) option of AutoencoderEmbedder, which shares GalaxyAugmentation.
"""

from __future__ import annotations

import math
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import galaxysim.embedders.autoencoder as autoencoder_module
import galaxysim.embedders.contrastive as contrastive_module
from galaxysim import ImagePreprocessor, SimilarityRanker, load_model, save_model
from galaxysim.embedders import (
    AutoencoderEmbedder,
    ContrastiveEmbedder,
    ContrastiveEncoder,
    DihedralEncoder,
    GalaxyAugmentation,
)
from galaxysim.embedders.contrastive_network import encoder_channels, nt_xent_loss, vicreg_loss
from galaxysim.embedders.whitening import shrunk_whitening
from galaxysim.metrics import same_class_rate

TINY = dict(
    representation_dim=8,
    n_stages=2,
    base_channels=4,
    projection_dim=16,
    max_epochs=2,
    batch_size=16,
    device="cpu",
)
# Every part of the augmentation switched off: the views are the images themselves.
NO_AUGMENTATION = dict(
    rotation=False,
    flip=False,
    scale=None,
    max_shift=0.0,
    max_blur=0.0,
    max_gamma=0.0,
    max_noise=0.0,
    max_brightness=0.0,
    max_color=0.0,
)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Forty smooth random 16x16 RGB images in [0, 1]."""
    rng = np.random.default_rng(0)
    coarse = rng.random((40, 4, 4, 3))
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(images) -> ContrastiveEmbedder:
    return ContrastiveEmbedder(**TINY, random_state=0).fit(images)


def shapes(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-channel images of a bar (at any angle), a ring or a disc, anywhere near the centre.

    Labels 0, 1, 2 in turn; the shapes sit on a grey sky with Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] + 0.5
    images = np.empty((n, size, size, 1), np.float32)
    labels = np.arange(n) % 3
    unit = size / 16
    for i, label in enumerate(labels):
        dx, dy = xx - rng.uniform(0.35, 0.65) * size, yy - rng.uniform(0.35, 0.65) * size
        if label == 0:
            angle = rng.uniform(0, np.pi)
            along = dx * np.cos(angle) + dy * np.sin(angle)
            across = -dx * np.sin(angle) + dy * np.cos(angle)
            shape = (np.abs(along) < 5 * unit) & (np.abs(across) < 1.2 * unit)
        elif label == 1:
            shape = np.abs(np.hypot(dx, dy) - 4.5 * unit) < unit
        else:
            shape = np.hypot(dx, dy) < 3.5 * unit
        sky = 0.1 + 0.7 * shape + rng.normal(0, 0.05, (size, size))
        images[i, ..., 0] = np.clip(sky, 0, 1)
    return images, labels


# --- network and losses --------------------------------------------------------------------


def test_encoder_channels_double_up_to_the_embedding_size():
    assert encoder_channels(4, 32, 128) == [32, 64, 128, 128]
    assert encoder_channels(2, 4, 8) == [4, 8]
    assert encoder_channels(3, 16, 8) == [8, 8, 8]  # never wider than the embedding
    assert encoder_channels(1, 32, 5) == [5]  # the last stage is the embedding


def test_encoder_shapes_for_non_square_and_one_pixel_images():
    net = ContrastiveEncoder(3, n_components=8, n_stages=3, base_channels=4, projection_dim=5)
    x = torch.rand(2, 3, 20, 12)
    embedding = net(x)
    assert embedding.shape == (2, 8) and net.project(embedding).shape == (2, 5)
    assert net.n_components == 8 and net.in_channels == 3
    # Generic features arrive as 1x1 images with d channels; stride-2 convolutions keep 1x1.
    features = ContrastiveEncoder(6, n_components=4, n_stages=2, base_channels=4, projection_dim=3)
    assert features(torch.rand(5, 6, 1, 1)).shape == (5, 4)
    features.eval()
    with torch.no_grad():  # a single sample goes through in eval mode (BatchNorm running stats)
        assert features.project(features(torch.rand(1, 6, 1, 1))).shape == (1, 3)


def _nt_xent_by_hand(first: np.ndarray, second: np.ndarray, temperature: float) -> float:
    """The definition, one projection at a time."""
    z = np.concatenate([first, second]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(first)
    losses = []
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        denominator = sum(math.exp(z[i] @ z[k] / temperature) for k in others)
        losses.append(-math.log(math.exp(z[i] @ z[partner] / temperature) / denominator))
    return float(np.mean(losses))


def test_nt_xent_matches_the_definition():
    # Two pairs of orthogonal unit vectors: each projection has its partner at
    # similarity 1 and two others at 0, so the loss is log(1 + 2 exp(-1 / t)).
    eye = torch.eye(2)
    for temperature in (1.0, 0.5):
        expected = math.log(1 + 2 * math.exp(-1 / temperature))
        assert float(nt_xent_loss(eye, eye, temperature)) == pytest.approx(expected, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    first, second = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    assert float(nt_xent_loss(first, second, 0.2)) == pytest.approx(
        _nt_xent_by_hand(first.numpy(), second.numpy(), 0.2), rel=1e-5
    )
    # Cosine similarity: the lengths of the projections do not matter.
    assert float(nt_xent_loss(3 * first, second, 0.2)) == pytest.approx(
        float(nt_xent_loss(first, second, 0.2)), rel=1e-5
    )


def test_nt_xent_prefers_matched_pairs_and_has_gradients():
    g = torch.Generator().manual_seed(0)
    first = torch.randn(16, 8, generator=g)
    second = first + 0.1 * torch.randn(16, 8, generator=g)
    matched = nt_xent_loss(first, second)
    shuffled = nt_xent_loss(first, second[torch.randperm(16, generator=g)])
    assert float(matched) < float(shuffled) - 1.0
    leaf = first.clone().requires_grad_(True)
    nt_xent_loss(leaf, second).backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_nt_xent_of_more_views_counts_every_other_view_as_a_positive():
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(5, 6, generator=g) for _ in range(3)]
    z = torch.nn.functional.normalize(torch.cat(views), dim=1)
    logits = (z @ z.T / 0.3).fill_diagonal_(float("-inf"))
    log_p = logits.log_softmax(dim=1)
    expected = 0.0
    for row in range(15):
        partners = [(row + 5) % 15, (row + 10) % 15]  # the same image's two other views
        expected -= float(log_p[row, partners].mean()) / 15
    assert float(nt_xent_loss(views[0], views[1], 0.3, views[2])) == pytest.approx(
        expected, rel=1e-5
    )
    # Three identical views of orthogonal images: lower than with the third view shuffled.
    eye = torch.eye(4)
    assert nt_xent_loss(eye, eye, 0.2, eye) < nt_xent_loss(eye, eye, 0.2, eye.roll(1, dims=0))


def test_vicreg_penalises_collapse_and_has_gradients():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(64, 8, generator=g) * 2
    collapsed = torch.ones(64, 8)
    # Collapsed views agree perfectly and have no covariance, but every dimension's
    # standard deviation is sqrt(1e-4) = 0.01: the variance hinge gives 25 * 0.99.
    assert float(vicreg_loss(collapsed, collapsed)) == pytest.approx(25 * 0.99, rel=1e-5)
    # Spread views pay only the (small) covariance of random dimensions.
    assert float(vicreg_loss(spread, spread)) < 0.25 * float(vicreg_loss(collapsed, collapsed))
    noisy = spread + 0.5 * torch.randn(64, 8, generator=g)
    assert float(vicreg_loss(spread, spread)) < float(vicreg_loss(spread, noisy))
    leaf = collapsed.clone().requires_grad_(True)
    vicreg_loss(leaf, spread).backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


# --- estimator: shapes and behaviour --------------------------------------------------------


@pytest.mark.slow
def test_fit_transform_shapes_attributes_and_history(fitted, images):
    embedding = fitted.transform(images)
    assert embedding.shape == (40, 8) and embedding.dtype == np.float64
    assert np.all(np.isfinite(embedding))
    assert fitted.image_shape_ == (16, 16, 3) and fitted.n_features_in_ == 768
    assert fitted.input_format_ == "images" and fitted.input_range_ == (0.0, 1.0)
    assert fitted.device_ == torch.device("cpu")
    # The default encoder is the dihedral one; encoder="conv" builds the plain network.
    assert isinstance(fitted.network_, DihedralEncoder) and not fitted.network_.training
    assert list(fitted.get_feature_names_out()) == [f"contrastiveembedder{i}" for i in range(8)]
    history = fitted.history_
    assert history.n_epochs == 2 and len(history.train_loss) == len(history.val_loss) == 2
    assert np.all(np.isfinite(history.train_loss + history.val_loss))
    assert history.val_loss[history.best_epoch] == min(history.val_loss)
    score = fitted.score(images)
    assert np.isfinite(score) and score < 0
    assert fitted.score(images) == score  # fixed views: the same X, the same score
    np.testing.assert_allclose(
        ContrastiveEmbedder(**TINY, random_state=0).fit_transform(images), embedding, atol=1e-12
    )


@pytest.mark.slow
def test_same_random_state_same_embedding(images, fitted):
    torch.manual_seed(99)  # the global stream does not matter
    again = ContrastiveEmbedder(**TINY, random_state=0).fit(images)
    other = ContrastiveEmbedder(**TINY, random_state=1).fit(images)
    np.testing.assert_array_equal(again.transform(images), fitted.transform(images))
    assert not np.allclose(other.transform(images), fitted.transform(images))


@pytest.mark.slow
def test_one_image_embeds_as_in_a_batch(fitted, images):
    batch = fitted.transform(images)
    alone = np.concatenate([fitted.transform(images[i : i + 1]) for i in range(len(images))])
    np.testing.assert_allclose(alone, batch, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(fitted.transform(images), batch)  # no augmentation


def _pca_whitening_by_hand(raw: np.ndarray, kept: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``kept`` principal components of ``raw``, whitened with shrinkage, by numpy's SVD.

    Returns the whitened data and each kept direction's variance. Each direction
    is divided by ``sqrt(variance + total variance / n_samples)``: the mean
    variance times ``n_dimensions / n_samples`` pulls a covariance estimated
    from few samples towards a multiple of the identity.
    """
    centred = raw - raw.mean(axis=0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2 / (len(raw) - 1)
    shrinkage = variance.sum() / len(raw)
    return centred @ directions[:kept].T / np.sqrt(variance[:kept] + shrinkage), variance[:kept]


def _distances(x: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances: the same whatever the signs of the columns."""
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


@pytest.fixture(scope="module")
def raw(images) -> ContrastiveEmbedder:
    return ContrastiveEmbedder(**TINY, n_components=None, normalize=False, random_state=0).fit(
        images
    )


@pytest.fixture(scope="module")
def unnormalized(images) -> ContrastiveEmbedder:
    """The default embedder without the final normalisation: the whitened embedding."""
    return ContrastiveEmbedder(**TINY, normalize=False, random_state=0).fit(images)


def test_defaults():
    params = ContrastiveEmbedder().get_params()
    assert (
        params["n_components"] == 64
        and params["representation_dim"] == 128
        and params["batch_size"] == 128
        and params["n_views"] == 2
    )
    assert "standardize" not in params


def test_n_components_none_returns_the_raw_network_embedding(raw, images):
    np.testing.assert_array_equal(raw.whitening_mean_, np.zeros(8))
    np.testing.assert_array_equal(raw.whitening_components_, np.eye(8))
    embedding = raw.transform(images)
    with torch.no_grad():
        network = raw.network_(torch.from_numpy(images).permute(0, 3, 1, 2)).double().numpy()
    np.testing.assert_allclose(embedding, network, atol=1e-6)
    assert np.all(embedding >= 0)  # a mean of ReLU outputs: not centred
    assert len(raw.get_feature_names_out()) == 8


@pytest.mark.slow
def test_whitened_embedding_of_the_training_images(unnormalized, raw, images):
    fitted = unnormalized
    embedding = fitted.transform(images)  # the default, n_components=64: min(64, 8, 40) = 8 columns
    assert embedding.shape == (40, 8)
    assert fitted.whitening_mean_.shape == (8,) and fitted.whitening_components_.shape == (8, 8)
    # The same network either way: whitening is an affine map of the raw embedding.
    raw_embedding = raw.transform(images)
    np.testing.assert_allclose(fitted.whitening_mean_, raw_embedding.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(
        (raw_embedding - fitted.whitening_mean_) @ fitted.whitening_components_.T,
        embedding,
        atol=1e-9,
    )
    # Centred and uncorrelated; each direction's variance is v / (v + shrinkage) < 1,
    # close to 1 for the strong directions, small for the weak ones.
    whitened, variance = _pca_whitening_by_hand(raw_embedding, 8)
    shrinkage = np.linalg.svd(raw_embedding - raw_embedding.mean(0), compute_uv=False)
    shrinkage = (shrinkage**2).sum() / (len(raw_embedding) - 1) / len(raw_embedding)
    covariance = np.cov(embedding, rowvar=False)
    np.testing.assert_allclose(embedding.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(np.diag(covariance), variance / (variance + shrinkage), atol=1e-8)
    np.testing.assert_allclose(covariance - np.diag(np.diag(covariance)), 0, atol=1e-8)
    # Principal directions are only defined up to sign: compare what is sign-free.
    np.testing.assert_allclose(_distances(embedding), _distances(whitened), atol=1e-8)
    np.testing.assert_allclose(np.abs(embedding), np.abs(whitened), atol=1e-8)
    # scikit-learn's PCA finds the same directions, only scaled otherwise.
    reference = PCA().fit_transform(raw_embedding)
    np.testing.assert_allclose(
        np.abs(embedding), np.abs(reference) / np.sqrt(variance + shrinkage), atol=1e-7
    )
    # Whitening changes the geometry: the raw embedding's distances differ.
    assert not np.allclose(_distances(embedding), _distances(raw_embedding))


def test_normalize_scales_the_whitened_embedding_to_unit_length(fitted, unnormalized, images):
    normalized, whitened = fitted.transform(images), unnormalized.transform(images)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        normalized, whitened / np.linalg.norm(whitened, axis=1, keepdims=True), atol=1e-12
    )
    # Euclidean distances then rank neighbours as cosine similarities of the whitened ones.
    cosine = (whitened / np.linalg.norm(whitened, axis=1, keepdims=True)) @ normalized.T
    np.testing.assert_allclose(_distances(normalized) ** 2, 2 - 2 * cosine, atol=1e-9)


def test_n_components_keeps_the_strongest_directions(raw, images):
    est = ContrastiveEmbedder(**TINY, n_components=3, normalize=False, random_state=0).fit(images)
    embedding = est.transform(images)
    assert embedding.shape == (40, 3) and est.whitening_components_.shape == (3, 8)
    assert list(est.get_feature_names_out()) == [f"contrastiveembedder{i}" for i in range(3)]
    # The top three directions of the raw embedding, whitened with shrinkage.
    whitened, _ = _pca_whitening_by_hand(raw.transform(images), 3)
    np.testing.assert_allclose(np.abs(embedding), np.abs(whitened), atol=1e-8)
    np.testing.assert_allclose(embedding.mean(axis=0), 0, atol=1e-9)


def test_n_components_keeps_no_more_directions_than_training_images(images):
    est = ContrastiveEmbedder(**{**TINY, "batch_size": 4}, random_state=0).fit(images[:5])
    assert est.whitening_components_.shape == (5, 8)
    assert est.transform(images).shape == (40, 5)
    assert len(est.get_feature_names_out()) == 5
    assert np.all(np.isfinite(est.transform(images)))


def test_shrinkage_limits_the_amplification_of_weak_directions():
    rng = np.random.default_rng(0)
    scales = np.array([3.0, 2.0, 1.0, 1e-3])
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    embedding = (rng.normal(size=(500, 4)) * scales) @ rotation.T + 7.0
    mean, components = shrunk_whitening(embedding, 4, 64)
    assert components.shape == (4, 4)
    whitened = (embedding - mean) @ components.T
    # Many samples (500 for 4 dimensions): little shrinkage, the strong directions
    # end near unit variance; the near-constant one is not blown up to it.
    spread = whitened.std(axis=0, ddof=1)
    assert np.all(np.abs(spread[:3] - 1) < 0.03) and spread[3] < 0.01
    assert PCA(whiten=True).fit_transform(embedding)[:, 3].std(ddof=1) == pytest.approx(1)
    # Few samples (8 for 4 dimensions): much more shrinkage, a milder whitening.
    few = embedding[:8]
    mean, components = shrunk_whitening(few, 4, 64)
    few_spread = ((few - mean) @ components.T).std(axis=0, ddof=1)
    assert few_spread[0] < 0.95 and few_spread[2] < spread[2]
    # A constant embedding whitens to zeros rather than to NaN.
    mean, components = shrunk_whitening(np.ones((6, 4)), 4, 2)
    assert components.shape == (2, 4) and np.all(np.isfinite(components))
    np.testing.assert_array_equal((np.ones((6, 4)) - mean) @ components.T, 0)
    # None: the identity.
    mean, components = shrunk_whitening(None, 5, None)
    np.testing.assert_array_equal(mean, np.zeros(5))
    np.testing.assert_array_equal(components, np.eye(5))


def test_n_components_accepts_numpy_integers(images, fitted):
    est = ContrastiveEmbedder(**TINY, n_components=np.int64(64), random_state=0).fit(images)
    np.testing.assert_array_equal(est.transform(images), fitted.transform(images))


@pytest.mark.slow
def test_dihedral_average_is_invariant_to_turns_and_flips(images):
    est = ContrastiveEmbedder(**TINY, dihedral_average=True, normalize=False, random_state=0).fit(
        images
    )
    base = est.transform(images)
    # Whitened over the averaged embedding, the one transform returns.
    np.testing.assert_allclose(base.mean(axis=0), 0, atol=1e-9)
    variants = [np.rot90(images, k, axes=(1, 2)) for k in (1, 2, 3)]
    variants += [images[:, ::-1], images[:, :, ::-1], images.transpose(0, 2, 1, 3)]
    for variant in variants:
        np.testing.assert_allclose(
            est.transform(np.ascontiguousarray(variant)), base, rtol=0, atol=1e-5
        )
    plain = ContrastiveEmbedder(**TINY, encoder="conv", random_state=0).fit(images)
    assert not np.allclose(plain.transform(images[:, ::-1]), plain.transform(images), atol=1e-3)


@pytest.mark.slow
def test_dihedral_average_of_non_square_images_uses_flips_and_the_half_turn(images):
    wide = np.ascontiguousarray(images[:, :8])  # 8x16
    est = ContrastiveEmbedder(**TINY, dihedral_average=True, random_state=0).fit(wide)
    base = est.transform(wide)
    for variant in (wide[:, ::-1], wide[:, :, ::-1], wide[:, ::-1, ::-1]):
        np.testing.assert_allclose(
            est.transform(np.ascontiguousarray(variant)), base, rtol=0, atol=1e-5
        )


@pytest.mark.slow
def test_input_layouts(images, fitted):
    as_uint8 = np.round(images * 255).astype(np.uint8)
    a = ContrastiveEmbedder(**TINY, random_state=0).fit(as_uint8)
    b = ContrastiveEmbedder(**TINY, random_state=0).fit(as_uint8.astype(np.float32) / 255)
    np.testing.assert_allclose(a.transform(as_uint8), b.transform(as_uint8 / 255.0), atol=1e-5)
    flat = images.reshape(len(images), -1)
    est = ContrastiveEmbedder(**TINY, image_shape=(16, 16, 3), random_state=0).fit(flat)
    assert est.input_format_ == "flattened"
    np.testing.assert_allclose(est.transform(flat), fitted.transform(images), atol=1e-6)
    gray = ContrastiveEmbedder(**TINY, random_state=0).fit(images[..., 0])
    assert gray.image_shape_ == (16, 16, 1) and gray.transform(images[..., 0]).shape == (40, 8)


def test_generic_features_are_scaled_and_only_photometrically_augmented():
    table = np.random.default_rng(0).normal(5.0, 3.0, size=(30, 6))
    est = ContrastiveEmbedder(**TINY, random_state=0).fit(table)
    assert est.input_format_ == "features" and est.image_shape_ == (1, 1, 6)
    assert est.input_range_ == (table.min(), table.max())
    assert est.transform(table).shape == (30, 8) and np.isfinite(est.score(table))
    augmentation = est._augmentation("features")
    assert not augmentation.rotation and not augmentation.flip
    assert augmentation.max_shift == 0 and augmentation.max_blur == 0
    assert est.augmentation is None  # the parameter itself is left alone


def test_the_augmentation_parameter_is_not_modified(images):
    augmentation = GalaxyAugmentation(max_noise=0.02)
    est = ContrastiveEmbedder(**TINY, augmentation=augmentation, random_state=0)
    est.fit(np.random.default_rng(0).normal(size=(20, 4)))  # features: geometry switched off
    assert augmentation.get_params() == GalaxyAugmentation(max_noise=0.02).get_params()
    assert est.augmentation is augmentation


def test_augmentation_changes_the_training(images, fitted):
    none = ContrastiveEmbedder(
        **TINY, augmentation=GalaxyAugmentation(**NO_AUGMENTATION), random_state=0
    ).fit(images)
    assert not np.allclose(none.transform(images), fitted.transform(images))
    # Identical views: the positive pair is the most similar one from the start.
    assert none.history_.train_loss[0] < fitted.history_.train_loss[0]


@pytest.mark.slow
def test_training_learns_to_group_shapes():
    # Bars, rings and discs (120 images, chance 1/3). Measured on a CPU over eight
    # seeds, with the default whitening (all 8 directions kept): the untrained network
    # (one epoch at learning rate 1e-9, so that BatchNorm has seen the data) groups
    # 0.52-0.74 of the 5 nearest neighbours by class; after 8 epochs 0.87-0.96 (0.905
    # against 0.575 for random_state=0). The raw embedding of the same trained networks
    # does better on this toy, 0.99-1.0 over seeds 0-3 (0.993 for random_state=0):
    # whitening gives its weakest directions, noise here, as much weight as the rest.
    X, y = shapes(120)
    settings = dict(
        TINY,
        base_channels=8,
        batch_size=32,
        early_stopping=False,
        validation_fraction=0.0,
        random_state=0,
    )
    untrained = ContrastiveEmbedder(**{**settings, "max_epochs": 1}, learning_rate=1e-9).fit(X)
    trained = ContrastiveEmbedder(**{**settings, "max_epochs": 8}, learning_rate=5e-3).fit(X)
    before = same_class_rate(untrained.transform(X), y, n_neighbors=5)
    after = same_class_rate(trained.transform(X), y, n_neighbors=5)
    assert after > 0.85 and after > before + 0.15, (before, after)
    with torch.no_grad():
        raw = trained.network_(torch.from_numpy(X).permute(0, 3, 1, 2)).double().numpy()
    assert same_class_rate(raw, y, n_neighbors=5) > 0.95
    assert trained.history_.train_loss[-1] < trained.history_.train_loss[0]


@pytest.mark.slow
def test_vicreg_trains_to_finite_embeddings(images):
    est = ContrastiveEmbedder(
        **{**TINY, "max_epochs": 3}, loss="vicreg", normalize=False, random_state=0
    )
    est.fit(images)
    history = est.history_
    assert np.all(np.isfinite(history.train_loss + history.val_loss))
    embedding = est.transform(images)
    assert np.all(np.isfinite(embedding)) and (embedding.std(axis=0) > 0.5).sum() >= 4
    assert np.isfinite(est.score(images))


@pytest.mark.slow
def test_training_without_early_stopping_still_records_the_validation_loss(images):
    # The validation views are drawn by the estimator; the loop must not split the
    # images again (it once did, and the view-pair loss failed on plain images).
    est = ContrastiveEmbedder(**TINY, early_stopping=False, random_state=0).fit(images)
    history = est.history_
    assert history.n_epochs == 2 and not history.stopped_early
    assert len(history.val_loss) == 2 and history.best_epoch == 1
    none = ContrastiveEmbedder(
        **TINY, early_stopping=False, validation_fraction=0.0, random_state=0
    ).fit(images)
    assert none.history_.val_loss == [] and none.history_.n_epochs == 2


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["nt-xent", "vicreg"])
def test_more_views_per_galaxy_train_and_score(images, monkeypatch, loss):
    shapes = []
    views = contrastive_module._views

    def record(batch, generator, **kwargs):
        out = views(batch, generator, **kwargs)
        shapes.append(tuple(out[0].shape[:2]))
        return out

    monkeypatch.setattr(contrastive_module, "_views", record)
    est = ContrastiveEmbedder(**TINY, n_views=3, loss=loss, random_state=0).fit(images)
    assert shapes[0] == (4, 3) and shapes[1][1] == 3  # validation views, then a training batch
    assert np.all(np.isfinite(est.history_.train_loss + est.history_.val_loss))
    assert np.isfinite(est.score(images)) and est.transform(images).shape == (40, 8)
    two = ContrastiveEmbedder(**TINY, loss=loss, random_state=0).fit(images)
    assert not np.allclose(two.transform(images), est.transform(images))


def test_training_batches_are_even_so_no_batch_is_a_tiny_remainder(images, monkeypatch):
    sizes = []
    views = contrastive_module._views

    def record(batch, generator, **kwargs):
        sizes.append(batch[0].shape[0])
        return views(batch, generator, **kwargs)

    monkeypatch.setattr(contrastive_module, "_views", record)
    # 36 of the 40 images train; in batches of at most 16: 12, 12, 12 (not 16, 16, 4).
    ContrastiveEmbedder(**{**TINY, "max_epochs": 1}, random_state=0).fit(images)
    assert sizes[-3:] == [12, 12, 12]


@pytest.mark.parametrize("n_images, batch_size", [(10, 16), (2, 1)])
def test_vicreg_survives_a_batch_of_one_image(images, n_images, batch_size):
    # 10 images: 1 held out for validation. 2 images: 1 to train and 1 to validate.
    est = ContrastiveEmbedder(
        **{**TINY, "batch_size": batch_size}, loss="vicreg", random_state=0
    ).fit(images[:n_images])
    assert np.all(np.isfinite(est.history_.train_loss + est.history_.val_loss))


def test_keyboard_interrupt_keeps_a_usable_model(images, monkeypatch):
    calls = {"n": 0}
    loss = contrastive_module._views_loss

    def interrupting(module, batch, **kwargs):
        if module.training:
            calls["n"] += 1
            if calls["n"] > 3:  # 36 training images in batches of 16: 3 per epoch
                raise KeyboardInterrupt
        return loss(module, batch, **kwargs)

    monkeypatch.setattr(contrastive_module, "_views_loss", interrupting)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        est = ContrastiveEmbedder(**{**TINY, "max_epochs": 5}, random_state=0).fit(images)
    assert est.history_.interrupted and est.history_.n_epochs == 1
    monkeypatch.setattr(contrastive_module, "_views_loss", loss)
    one_epoch = ContrastiveEmbedder(**{**TINY, "max_epochs": 1}, random_state=0).fit(images)
    np.testing.assert_array_equal(est.transform(images), one_epoch.transform(images))


def test_verbose_shows_progress(images, capsys):
    ContrastiveEmbedder(**{**TINY, "max_epochs": 1}, random_state=0).fit(images)
    assert "ContrastiveEmbedder" not in capsys.readouterr().err
    ContrastiveEmbedder(**{**TINY, "max_epochs": 1}, random_state=0, verbose=1).fit(images)
    assert "ContrastiveEmbedder" in capsys.readouterr().err


# --- estimator: errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "param, value, error",
    [
        ("loss", "simclr", ValueError),
        ("temperature", 0.0, ValueError),
        ("temperature", -0.5, ValueError),
        ("augmentation", "noise", TypeError),
        ("augmentation", {"max_noise": 0.1}, TypeError),
        ("dihedral_average", "yes", TypeError),
        ("n_components", 0, ValueError),
        ("n_views", 1, ValueError),
        ("n_views", 2.0, TypeError),
        ("n_components", -1, ValueError),
        ("n_components", 1.5, TypeError),
        ("n_components", "a", TypeError),
        ("n_components", True, TypeError),
        ("n_components", False, TypeError),
        ("normalize", "yes", TypeError),
        ("representation_dim", 0, ValueError),
        ("n_stages", 0, ValueError),
        ("projection_dim", 2.5, TypeError),
        ("learning_rate", 0.0, ValueError),
        ("device", "tpu", ValueError),
    ],
)
def test_bad_parameters_are_named(images, param, value, error):
    est = ContrastiveEmbedder(**{**TINY, param: value})
    with pytest.raises(error, match=param):
        est.fit(images)
    with pytest.raises(NotFittedError):  # a failed fit leaves no half-fitted state
        est.transform(images)


def test_a_bad_augmentation_parameter_is_named_before_training(images):
    est = ContrastiveEmbedder(**TINY, augmentation=GalaxyAugmentation(max_noise=-1.0))
    with pytest.raises(ValueError, match="max_noise"):
        est.fit(images)
    with pytest.raises(NotFittedError):
        est.transform(images)


def test_bad_inputs_are_clear_errors(images, fitted):
    with pytest.raises(ValueError, match="at least 2"):
        ContrastiveEmbedder(**TINY).fit(images[:1])
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ContrastiveEmbedder(**TINY).fit(bad)
    with pytest.raises(ValueError, match=r"fitted on images of shape \(16, 16, 3\)"):
        fitted.transform(images[..., :1])
    with pytest.raises(ValueError, match=r"fitted on images of shape \(16, 16, 3\)"):
        fitted.transform(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        fitted.score(images[:1])
    with pytest.raises(TypeError, match="sparse"):
        from scipy import sparse

        ContrastiveEmbedder(**TINY).fit(sparse.random(10, 5, format="csr"))


def test_methods_need_a_fit(images):
    est = ContrastiveEmbedder(**TINY)
    for method in (est.transform, est.score):
        with pytest.raises(NotFittedError):
            method(images)
    with pytest.raises(NotFittedError):
        est.get_feature_names_out()


# --- persistence and scikit-learn integration ------------------------------------------------


def test_pickle_and_joblib_round_trips(fitted, images, tmp_path):
    expected = fitted.transform(images)
    path = tmp_path / "embedder.joblib"
    joblib.dump(fitted, path)
    for loaded in (joblib.load(path), pickle.loads(pickle.dumps(fitted))):
        np.testing.assert_array_equal(loaded.transform(images), expected)
        assert loaded.device_ == torch.device("cpu")
        assert loaded.history_.as_dict() == fitted.history_.as_dict()
        assert loaded.score(images) == fitted.score(images)


@pytest.mark.slow
def test_save_model_round_trips_the_embedder_and_a_ranker(images, tmp_path):
    est = ContrastiveEmbedder(
        **TINY,
        augmentation=GalaxyAugmentation(max_noise=0.02),
        dihedral_average=True,
        random_state=0,
    ).fit(images)
    loaded = load_model(save_model(est, tmp_path / "c.safetensors"), expected=ContrastiveEmbedder)
    np.testing.assert_array_equal(loaded.transform(images), est.transform(images))
    assert loaded.score(images) == est.score(images)
    assert loaded.augmentation.get_params() == est.augmentation.get_params()
    assert loaded.history_.as_dict() == est.history_.as_dict()

    labels = np.arange(len(images)) % 4
    ranker = SimilarityRanker(embedder=ContrastiveEmbedder(**TINY, random_state=0), density="drop")
    ranker.fit(images, labels)
    again = load_model(save_model(ranker, tmp_path / "r.safetensors"), expected=SimilarityRanker)
    np.testing.assert_array_equal(again.transform(images), ranker.transform(images))
    before, after = ranker.rank(images[0], n_neighbors=5), again.rank(images[0], n_neighbors=5)
    np.testing.assert_array_equal(after.indices, before.indices)
    np.testing.assert_array_equal(after.distances, before.distances)


@pytest.mark.slow
def test_pipeline_after_an_image_step(images):
    as_uint8 = np.round(images * 255).astype(np.uint8)
    pipe = Pipeline(
        [
            ("prep", ImagePreprocessor(crop=None)),
            ("embed", ContrastiveEmbedder(**TINY, random_state=0)),
        ]
    ).fit(as_uint8)
    embedding = pipe.transform(as_uint8)
    assert embedding.shape == (40, 8) and np.all(np.isfinite(embedding))
    assert np.isfinite(pipe.score(as_uint8))
    names = list(pipe.get_feature_names_out())
    assert names == [f"contrastiveembedder{i}" for i in range(8)]


@pytest.mark.slow
def test_grid_search_over_temperature_and_a_nested_augmentation_parameter(images):
    search = GridSearchCV(
        ContrastiveEmbedder(**TINY, random_state=0), {"temperature": [0.1, 0.5]}, cv=2
    ).fit(images)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)
    assert search.best_params_["temperature"] in (0.1, 0.5)
    assert search.best_estimator_.transform(images).shape == (40, 8)

    base = ContrastiveEmbedder(**TINY, augmentation=GalaxyAugmentation(), random_state=0)
    search = GridSearchCV(base, {"augmentation__max_noise": [0.0, 0.1]}, cv=2).fit(images)
    assert [p["augmentation__max_noise"] for p in search.cv_results_["params"]] == [0.0, 0.1]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert (
        search.best_estimator_.augmentation.max_noise
        == search.best_params_["augmentation__max_noise"]
    )
    assert base.augmentation.max_noise == 0.05  # the searched estimator's copy is changed
    # The nested parameter reaches the training: different noise, different embedding.
    quiet = clone(base).set_params(augmentation__max_noise=0.0).fit(images)
    loud = clone(base).set_params(augmentation__max_noise=0.1).fit(images)
    assert not np.allclose(quiet.transform(images), loud.transform(images))


# Generic 2-D inputs are read as 1x1 images with d channels (the estimator checks use
# such tables). check_methods_subset_invariance compares one-row batches with the full
# batch to 1e-7: the float32 convolutions pick kernels by batch size and differ by
# about 1e-7 relative (test_one_image_embeds_as_in_a_batch holds them to 1e-5).
@pytest.mark.slow
@parametrize_with_checks(
    [
        ContrastiveEmbedder(
            representation_dim=4,
            n_stages=1,
            base_channels=4,
            projection_dim=8,
            max_epochs=2,
            batch_size=32,
            device="cpu",
        )
    ],
    expected_failed_checks=lambda estimator: {
        "check_methods_subset_invariance": (
            "float32 network: a sample embedded alone and in a batch differ by ~1e-7 "
            "relative, above the check's 1e-7 tolerance"
        ),
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --- AutoencoderEmbedder(augmentation=...): the denoising autoencoder -------------------------

TINY_AE = dict(n_components=4, n_stages=2, n_blocks=1, base_channels=4, max_epochs=2, device="cpu")


def test_denoising_autoencoder_trains_on_augmented_inputs(images, monkeypatch):
    seen = []
    loss = autoencoder_module.reconstruction_loss

    def recording(module, batch):
        seen.append((module.training, [t.detach().clone() for t in batch]))
        return loss(module, batch)

    monkeypatch.setattr(autoencoder_module, "reconstruction_loss", recording)
    augmentation = GalaxyAugmentation(**{**NO_AUGMENTATION, "max_noise": 0.1})
    est = AutoencoderEmbedder(
        **TINY_AE, random_dihedral=False, augmentation=augmentation, random_state=0
    ).fit(images)
    training = [batch for in_training, batch in seen if in_training]
    assert training and all(len(batch) == 2 for batch in training)
    for noisy, clean in training:
        # The target is a clean training image; the input is that image plus noise.
        assert any(
            torch.equal(clean[0], torch.from_numpy(image).permute(2, 0, 1)) for image in images
        )
        assert 0.02 < float((noisy - clean).std()) < 0.1
    assert np.all(np.isfinite(est.history_.train_loss + est.history_.val_loss))
    assert est.transform(images).shape == (40, 4)


def test_denoising_with_every_part_off_equals_no_augmentation(images):
    plain = AutoencoderEmbedder(**TINY_AE, random_state=0).fit(images)
    off = AutoencoderEmbedder(
        **TINY_AE, augmentation=GalaxyAugmentation(**NO_AUGMENTATION), random_state=0
    ).fit(images)
    np.testing.assert_array_equal(off.transform(images), plain.transform(images))
    assert off.history_.as_dict() == plain.history_.as_dict()
    noisy = AutoencoderEmbedder(**TINY_AE, augmentation=GalaxyAugmentation(), random_state=0)
    assert not np.allclose(noisy.fit(images).transform(images), plain.transform(images))


def test_autoencoder_rejects_a_bad_augmentation(images):
    for value in ("noise", True, {"max_noise": 0.1}):
        with pytest.raises(TypeError, match="augmentation"):
            AutoencoderEmbedder(**TINY_AE, augmentation=value).fit(images)


# --- ContrastiveEmbedder(init=...): continue from a pretrained model ---------------------------


def test_init_starts_from_the_pretrained_weights(fitted, images, monkeypatch):
    from sklearn.frozen import FrozenEstimator

    started = {}
    original = contrastive_module.ContrastiveEmbedder._fit_module

    def spy(self, network, *args, **kwargs):
        started.update({k: v.clone() for k, v in network.state_dict().items()})
        return original(self, network, *args, **kwargs)

    monkeypatch.setattr(contrastive_module.ContrastiveEmbedder, "_fit_module", spy)
    adapted = ContrastiveEmbedder(**TINY, random_state=1, init=FrozenEstimator(fitted)).fit(images)
    for name, tensor in fitted.network_.state_dict().items():
        assert torch.equal(started[name], tensor), name
    # Training went on from there, and the pretrained model is untouched.
    first = next(iter(fitted.network_.state_dict()))
    assert not torch.equal(
        adapted.network_.state_dict()[first], fitted.network_.state_dict()[first]
    )
    assert fitted.history_.n_epochs == TINY["max_epochs"]


@pytest.mark.slow
def test_init_from_a_model_file_equals_init_from_the_estimator(fitted, images, tmp_path):
    from sklearn.frozen import FrozenEstimator

    path = save_model(fitted, tmp_path / "pretrained.safetensors")
    from_file = ContrastiveEmbedder(**TINY, random_state=1, init=str(path)).fit(images)
    from_estimator = ContrastiveEmbedder(**TINY, random_state=1, init=FrozenEstimator(fitted)).fit(
        images
    )
    np.testing.assert_allclose(
        from_file.transform(images), from_estimator.transform(images), atol=1e-6
    )
    fresh = ContrastiveEmbedder(**TINY, random_state=1).fit(images)
    assert not np.allclose(fresh.transform(images), from_file.transform(images), atol=1e-3)


@pytest.mark.slow
def test_init_survives_clone_and_grid_search_when_frozen(fitted, images):
    from sklearn.frozen import FrozenEstimator

    estimator = ContrastiveEmbedder(**TINY, random_state=0, init=FrozenEstimator(fitted))
    cloned = clone(estimator)
    assert cloned.init.estimator is fitted  # FrozenEstimator is kept as it is
    search = GridSearchCV(estimator, {"temperature": [0.1, 0.5]}, cv=2).fit(images)
    assert search.best_estimator_.init.estimator is fitted
    assert np.isfinite(search.best_score_)


@pytest.mark.slow
def test_a_model_fitted_from_init_saves_and_loads(fitted, images, tmp_path):
    from sklearn.frozen import FrozenEstimator

    adapted = ContrastiveEmbedder(**TINY, random_state=0, init=FrozenEstimator(fitted)).fit(images)
    loaded = load_model(save_model(adapted, tmp_path / "adapted.safetensors"))
    np.testing.assert_array_equal(loaded.transform(images), adapted.transform(images))
    assert loaded.init.estimator.__sklearn_is_fitted__()


@pytest.mark.parametrize(
    "init, error, match",
    [
        ("no-such-model.safetensors", FileNotFoundError, "no-such-model"),
        (42, TypeError, "init must be"),
        (PCA(2), TypeError, "init must be"),
        (ContrastiveEmbedder(), ValueError, "not fitted.*FrozenEstimator"),
    ],
)
def test_bad_init_is_named(images, init, error, match):
    est = ContrastiveEmbedder(**TINY, init=init)
    with pytest.raises(error, match=match):
        est.fit(images)
    with pytest.raises(NotFittedError):
        est.transform(images)


def test_init_of_another_architecture_is_refused(fitted, images):
    from sklearn.frozen import FrozenEstimator

    with pytest.raises(ValueError, match="representation_dim=8"):
        ContrastiveEmbedder(**{**TINY, "representation_dim": 16}, init=FrozenEstimator(fitted)).fit(
            images
        )
    with pytest.raises(ValueError, match="channels"):
        ContrastiveEmbedder(**TINY, init=FrozenEstimator(fitted)).fit(images[..., :1])


def test_clone_of_a_bare_fitted_init_explains_frozen_estimator(fitted, images):
    with pytest.raises(ValueError, match="FrozenEstimator"):
        clone(ContrastiveEmbedder(**TINY, init=fitted)).fit(images)


@pytest.mark.slow
def test_init_from_a_saved_ranker_takes_its_embedder(fitted, images, tmp_path):
    from sklearn.frozen import FrozenEstimator

    ranker = SimilarityRanker(
        embedder=FrozenEstimator(fitted), density="drop", invariance=None
    ).fit(images)
    path = save_model(ranker, tmp_path / "ranker.safetensors")
    from_ranker = ContrastiveEmbedder(**TINY, random_state=1, init=path).fit(images)
    from_embedder = ContrastiveEmbedder(**TINY, random_state=1, init=FrozenEstimator(fitted)).fit(
        images
    )
    np.testing.assert_allclose(
        from_ranker.transform(images), from_embedder.transform(images), atol=1e-6
    )
    pca_path = save_model(PCA(2).fit(images.reshape(len(images), -1)), tmp_path / "pca.safetensors")
    with pytest.raises(ValueError, match="holds a PCA, not a ContrastiveEmbedder"):
        ContrastiveEmbedder(**TINY, init=pca_path).fit(images)


def test_the_plain_encoder_is_still_available(images):
    plain = ContrastiveEmbedder(**TINY, encoder="conv", random_state=0).fit(images)
    assert isinstance(plain.network_, ContrastiveEncoder)
    assert plain.transform(images).shape == (40, 8)


# -- the 0.3 names: n_components is the output's width, representation_dim the network's -----


def test_whiten_is_deprecated_and_read_as_in_version_02(images, unnormalized):
    old = dict(TINY)
    old["n_components"] = old.pop("representation_dim")  # 0.2: the network's width
    est = ContrastiveEmbedder(**old, whiten=3, normalize=False, random_state=0)
    assert est.get_params()["whiten"] == 3 and clone(est).whiten == 3
    with pytest.warns(FutureWarning, match="n_components=3, representation_dim=8"):
        est.fit(images)
    new = ContrastiveEmbedder(**TINY, n_components=3, normalize=False, random_state=0).fit(images)
    np.testing.assert_array_equal(est.transform(images), new.transform(images))
    assert est.transform(images).shape == (40, 3)
    # whiten=None: the raw network embedding, as n_components=None gives it.
    with pytest.warns(FutureWarning):
        raw_old = ContrastiveEmbedder(**old, whiten=None, normalize=False, random_state=0)
        raw_old.fit(images)
    assert raw_old.transform(images).shape == (40, 8)
    assert not np.allclose(raw_old.whitening_components_, unnormalized.whitening_components_)


def test_n_components_is_the_width_of_transform_by_default():
    est = ContrastiveEmbedder()
    assert (est.n_components, est.representation_dim) == (64, 128)
    with pytest.raises(ValueError, match="representation_dim"):
        ContrastiveEmbedder(**{**TINY, "representation_dim": 0}).fit(np.zeros((4, 8, 8, 3)))
