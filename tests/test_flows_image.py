"""The multiscale image flow: layers, dequantization, and the estimator on images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from galaxysim.flows import FlowDensityEstimator
from galaxysim.flows.glow import ActNorm, AffineCoupling, InvertibleConv1x1, squeeze, unsqueeze
from galaxysim.flows.image import (
    MultiscaleImageFlow,
    dequantize,
    discrete_log_likelihood,
    levels_to_unit,
    quantize_unit,
    unit_to_images,
)
from galaxysim.flows.ood import png_bits
from galaxysim.metrics import bits_per_dim


def _perturbed_image_flow(image_shape=(4, 4, 2), n_levels=2, seed=0) -> MultiscaleImageFlow:
    """A float64 flow with ActNorm initialised and every weight moved off its initial value."""
    torch.manual_seed(seed)
    net = MultiscaleImageFlow(image_shape, n_levels=n_levels, n_steps=2, hidden_features=(6, 5))
    net = net.double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.latent(torch.rand(32, *image_shape, dtype=torch.float64, generator=generator))
        for parameter in net.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_(0.2 * noise)
    return net


def _blob_images(n: int, size: int = 8, seed: int = 0) -> np.ndarray:
    """Gray images of one Gaussian blob with random centre, width and brightness, 8-bit levels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    centre = rng.uniform(2, size - 2, size=(n, 2))
    width = rng.uniform(1.0, 2.5, size=n)
    amplitude = rng.uniform(0.4, 0.9, size=n)
    r2 = (yy - centre[:, :1, None]) ** 2 + (xx - centre[:, 1:, None]) ** 2
    images = amplitude[:, None, None] * np.exp(-r2 / (2 * width[:, None, None] ** 2))
    images = images + rng.normal(0, 0.02, size=images.shape) + 0.05
    return (np.clip(np.rint(images * 255), 0, 255) / 255).astype(np.float32)[..., None]


@pytest.fixture(scope="module")
def fitted_blobs():
    images = _blob_images(400)
    est = FlowDensityEstimator(
        n_layers=2,
        n_levels=2,
        hidden_features=(16,),
        max_epochs=15,
        batch_size=64,
        learning_rate=3e-3,
        device="cpu",
        random_state=0,
    )
    return est.fit(images), images


# ----------------------------------------------------------------------- layers


def test_squeeze_moves_2x2_blocks_into_channels():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = squeeze(x)
    assert y.shape == (1, 4, 2, 2)
    # The first output pixel holds the top-left 2x2 block of the input.
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    torch.testing.assert_close(unsqueeze(y), x)


@pytest.mark.parametrize("layer_class", [ActNorm, InvertibleConv1x1])
def test_channel_layers_invert_and_log_det_is_exact(layer_class):
    torch.manual_seed(0)
    layer = layer_class(3).double()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        layer(torch.randn(16, 3, 2, 2, dtype=torch.float64) * 3 + 1)  # ActNorm initialises here
        for parameter in layer.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    y, log_det = layer(x)
    torch.testing.assert_close(layer.inverse(y), x)
    jacobian = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    expected = torch.linalg.slogdet(jacobian.reshape(12, 12)).logabsdet
    torch.testing.assert_close(log_det[0], expected)


def test_actnorm_initialises_on_first_batch_only_and_after_loading():
    norm = ActNorm(2)
    batch = torch.randn(256, 2, 3, 3) * torch.tensor([2.0, 0.5]).view(1, 2, 1, 1) + 4.0
    y, _ = norm(batch)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    std = y.std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(std, torch.ones(2), atol=1e-4, rtol=0)
    state = norm.state_dict()
    fresh = ActNorm(2)
    fresh.load_state_dict(state)
    # A loaded ActNorm must not re-initialise itself on the next (different) batch.
    y_fresh, _ = fresh(batch * 10)
    torch.testing.assert_close(y_fresh, norm(batch * 10)[0])


def test_coupling_keeps_conditioning_half_and_inverts():
    torch.manual_seed(0)
    coupling = AffineCoupling(4, (8, 8)).double()
    with torch.no_grad():
        for parameter in coupling.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    x = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    y, _ = coupling(x)
    torch.testing.assert_close(y[:, :2], x[:, :2])
    assert not torch.allclose(y[:, 2:], x[:, 2:])
    torch.testing.assert_close(coupling.inverse(y), x)


def test_multiscale_flow_round_trips():
    net = _perturbed_image_flow()
    y = torch.rand(8, 4, 4, 2, dtype=torch.float64)
    z, _ = net.latent(y)
    assert z.shape == (8, 32)
    torch.testing.assert_close(net.inverse(z), y, atol=1e-4, rtol=0)


def test_multiscale_log_det_matches_brute_force_jacobian():
    net = _perturbed_image_flow(seed=1)
    y = torch.rand(2, 4, 4, 2, dtype=torch.float64)
    _, log_det = net.latent(y)
    for i in range(2):
        jacobian = torch.autograd.functional.jacobian(
            lambda v: net.latent(v.reshape(1, 4, 4, 2))[0][0], y[i].reshape(-1)
        )
        expected = torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(log_det[i], expected, atol=1e-8, rtol=1e-8)


def test_image_size_must_allow_every_squeeze():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*n_levels=8"):
        MultiscaleImageFlow((12, 12, 3), n_levels=3)


# -------------------------------------------------------------- dequantization


def test_levels_cells_and_quantization_agree():
    levels = torch.arange(256.0)
    centres = levels_to_unit(levels)
    # Cell k is [k/256, (k+1)/256): its centre, and anything inside it, quantises back to k.
    torch.testing.assert_close(quantize_unit(centres) * 255, levels)
    torch.testing.assert_close(quantize_unit(levels_to_unit(levels + 0.49)) * 255, levels)
    torch.testing.assert_close(unit_to_images(centres) * 255, levels)


def test_uniform_density_is_eight_bits_per_dim():
    # The uniform density on the unit cube has log p = 0.
    log_likelihood = discrete_log_likelihood(torch.zeros(3), n_dims=12)
    torch.testing.assert_close(log_likelihood, torch.full((3,), -12 * math.log(256)))
    torch.testing.assert_close(bits_per_dim(log_likelihood, 12), torch.full((3,), 8.0))


def test_dequantize_keeps_each_value_in_its_cell():
    levels = torch.arange(256.0).repeat(4, 1)
    (noisy,) = dequantize((levels,), torch.Generator().manual_seed(0))
    assert ((noisy >= levels - 0.5) & (noisy < levels + 0.5)).all()
    assert not torch.equal(noisy, levels)
    torch.testing.assert_close(quantize_unit(levels_to_unit(noisy)) * 255, levels)


def test_image_data_model_speaks_8_bit_images():
    net = _perturbed_image_flow().float()
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 4, 2)) / np.float32(255.0)
    images = images.astype(np.float32)
    levels = net.training_tensor(images)
    assert levels.dtype == torch.float32
    torch.testing.assert_close(levels, torch.from_numpy(images * np.float32(255.0)))
    assert net.augmentation is dequantize
    x = torch.from_numpy(images)
    centres = levels_to_unit(x * 255.0)
    log_likelihood = net.log_likelihood(x)
    torch.testing.assert_close(log_likelihood, discrete_log_likelihood(net.log_prob(centres), 32))
    # Without noise the loss is the mean bits/dim of the cell centres.
    torch.testing.assert_close(
        net.training_loss((levels,)), bits_per_dim(log_likelihood, 32).mean()
    )
    z = net.to_latent(x)
    torch.testing.assert_close(net.from_latent(z), x, atol=1e-4, rtol=0)
    samples = net.sample_from_latent(z + 0.01 * torch.randn(z.shape))
    torch.testing.assert_close(samples * 255, torch.round(samples * 255))
    assert net.for_inference().dtype == torch.float32 and not net.training


# ------------------------------------------------------------------- estimator


@pytest.mark.slow
def test_fitted_flow_beats_uniform_and_generalises(fitted_blobs):
    est, _images = fitted_blobs
    held_out = _blob_images(100, seed=1)
    bits = est.bits_per_dim(held_out)
    assert bits.dtype == np.float64
    # Noise of sd 0.02 (about 5 levels) alone costs ~4.4 bits; a useless model costs 8.
    assert bits.mean() < 6.0
    assert est.history_.val_loss[-1] < est.history_.val_loss[0]
    np.testing.assert_allclose(est.score_samples(held_out), -bits * 64 * math.log(2.0), rtol=1e-12)


def test_image_transform_round_trips_and_latent_is_roughly_standard(fitted_blobs):
    est, images = fitted_blobs
    Z = est.transform(images[:100])
    assert Z.shape == (100, 64)
    np.testing.assert_allclose(est.inverse_transform(Z), images[:100], atol=1e-4)
    assert abs(Z.mean()) < 0.3 and 0.7 < Z.std() < 1.3


def test_image_samples_are_8_bit_images_like_the_data(fitted_blobs):
    est, images = fitted_blobs
    samples = est.sample(200, random_state=0)
    assert samples.shape == (200, 8, 8, 1) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    np.testing.assert_allclose(samples * 255, np.rint(samples * 255), atol=1e-4)
    # Mean brightness per pixel follows the data's (blobs sit near the centre).
    assert np.abs(samples.mean(axis=0) - images.mean(axis=0)).max() < 0.1
    np.testing.assert_array_equal(samples, est.sample(200, random_state=0))


def test_flattened_and_gray_inputs_keep_their_layout():
    images = _blob_images(60)
    flat = images.reshape(60, -1)
    est = FlowDensityEstimator(
        n_layers=1,
        n_levels=1,
        hidden_features=(4,),
        max_epochs=1,
        image_shape=(8, 8, 1),
        device="cpu",
        random_state=0,
    ).fit(flat)
    assert est.image_shape_ == (8, 8, 1) and est.n_features_in_ == 64
    assert est.sample(3, random_state=0).shape == (3, 64)
    np.testing.assert_allclose(est.score_samples(flat[:5]), est.score_samples(images[:5]))
    gray = FlowDensityEstimator(
        n_layers=1, n_levels=1, hidden_features=(4,), max_epochs=1, device="cpu", random_state=0
    ).fit(images[..., 0])
    assert gray.sample(2, random_state=0).shape == (2, 8, 8)
    assert gray.inverse_transform(gray.transform(images[:2, ..., 0])).shape == (2, 8, 8)


def test_uint8_images_give_the_same_scores_as_floats(fitted_blobs):
    est, images = fitted_blobs
    as_uint8 = np.rint(images[:10] * 255).astype(np.uint8)
    np.testing.assert_allclose(
        est.score_samples(as_uint8), est.score_samples(images[:10]), rtol=1e-6
    )


def test_ood_scores_flag_unlike_images(fitted_blobs):
    est, _images = fitted_blobs
    rng = np.random.default_rng(3)
    noise = rng.random((20, 8, 8, 1)).astype(np.float32)
    in_dist = _blob_images(20, seed=2)
    assert est.typicality(noise).max() == 0.0
    assert 20.0 < est.typicality(in_dist).mean() < 80.0
    ccs_noise = est.complexity_corrected_score(noise)
    ccs_in = est.complexity_corrected_score(in_dist)
    assert ccs_noise.min() > ccs_in.max()  # larger = more out of distribution
    expected = -est.score_samples(in_dist) / math.log(2.0) - png_bits(in_dist)
    np.testing.assert_allclose(ccs_in, expected)


def test_heldout_reference_is_the_validation_split(fitted_blobs):
    est, images = fitted_blobs
    assert est.heldout_log_likelihood_.shape == (math.ceil(0.1 * len(images)),)
    assert np.isin(est.heldout_log_likelihood_, est.score_samples(images)).all()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"flow": "spline"}, 'flow must be "affine" for images'),
        ({"backend": "jammy"}, "handles vectors only"),
        ({"n_levels": 4}, "divisible by 2\\*\\*n_levels=16"),
        ({"image_shape": (8, 8, 3)}, "image_shape"),
    ],
)
def test_bad_image_settings_raise_clear_errors(params, match):
    est = FlowDensityEstimator(max_epochs=1, device="cpu", **params)
    with pytest.raises(ValueError, match=match):
        est.fit(_blob_images(10))


def test_image_inputs_are_validated_against_the_fit(fitted_blobs):
    est, images = fitted_blobs
    with pytest.raises(ValueError, match="image_shape"):
        est.score_samples(np.zeros((2, 16, 16, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        est.score_samples(images[:2] * 3)


def test_input_images_are_not_modified(fitted_blobs):
    est, images = fitted_blobs
    before = images.copy()
    est.score_samples(images[:5])
    est.complexity_corrected_score(images[:5])
    np.testing.assert_array_equal(images, before)


def test_image_only_methods_refuse_vectors():
    est = FlowDensityEstimator(n_layers=1, hidden_features=(4,), max_epochs=1, device="cpu")
    est.fit(np.random.default_rng(0).normal(size=(30, 2)))
    with pytest.raises(ValueError, match="image densities only"):
        est.bits_per_dim(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="image densities only"):
        est.complexity_corrected_score(np.zeros((1, 2)))
