"""Batched galaxy image augmentations (galaxysim.embedders.augment)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

from galaxysim.embedders.augment import (
    GalaxyAugmentation,
    _affine,
    random_affine,
    random_blur,
    random_brightness,
    random_color,
    random_gamma,
    random_noise,
    random_rotation,
    random_scale,
    random_shift,
)

FUNCTIONS = [
    random_affine,
    random_rotation,
    random_scale,
    random_shift,
    random_blur,
    random_gamma,
    random_noise,
    random_brightness,
    random_color,
]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NO_PHOTOMETRY = dict(max_blur=0, max_gamma=0, max_noise=0, max_brightness=0, max_color=0)
NO_GEOMETRY = dict(rotation=False, flip=False, scale=None, max_shift=0)


def _seed(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _images(
    n: int = 4,
    channels: int = 3,
    height: int = 16,
    width: int = 16,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    return torch.rand(n, channels, height, width, generator=_seed(seed), dtype=dtype)


def _blob(
    n: int = 1, side: int = 64, sigma: float = 5.0, centre: tuple = (0.0, 0.0)
) -> torch.Tensor:
    """Centred (or offset by ``centre`` = (dx, dy) pixels) Gaussian blobs, (n, 1, side, side)."""
    axis = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
    y, x = torch.meshgrid(axis - centre[1], axis - centre[0], indexing="ij")
    return torch.exp(-(x**2 + y**2) / (2 * sigma**2)).float().expand(n, 1, -1, -1).clone()


def _moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image centroid (x, y) from the centre, in pixels, and mean squared radius."""
    side = images.shape[-1]
    axis = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
    weights = images.double().sum(1)
    total = weights.sum((1, 2))
    cx = (weights * axis).sum((1, 2)) / total
    cy = (weights * axis[:, None]).sum((1, 2)) / total
    r2 = (weights * (axis**2 + axis[:, None] ** 2)).sum((1, 2)) / total
    return torch.stack([cx, cy], 1), r2


# ---- contracts shared by every function ---------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_shape_dtype_device_kept_and_input_untouched(function, dtype, device):
    images = _images(dtype=dtype).to(device)
    before = images.clone()
    out = function(images, generator=_seed(0, device))
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
    assert out.data_ptr() != images.data_ptr()
    assert torch.equal(images, before)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_same_seed_same_output_other_seed_other_output(function):
    images = _images()
    first = function(images, generator=_seed(1))
    assert torch.equal(first, function(images, generator=_seed(1)))
    assert not torch.equal(first, function(images, generator=_seed(2)))


def test_the_augmentation_is_reproducible_and_uses_the_global_generator_without_one():
    images, augment = _images(), GalaxyAugmentation()
    assert torch.equal(augment(images, _seed(3)), augment(images, _seed(3)))
    assert not torch.equal(augment(images, _seed(3)), augment(images, _seed(4)))
    torch.manual_seed(5)
    first = augment(images)
    torch.manual_seed(5)
    assert torch.equal(first, augment(images))


@pytest.mark.slow
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_channels_last_input_gives_the_same_values(function):
    images = _images()
    fast = images.contiguous(memory_format=torch.channels_last)
    out = function(fast, generator=_seed(0))
    torch.testing.assert_close(out, function(images, generator=_seed(0)), atol=1e-6, rtol=0)


def test_channels_last_through_the_whole_augmentation():
    images, augment = _images(), GalaxyAugmentation()
    fast = images.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(
        augment(fast, _seed(0)), augment(images, _seed(0)), atol=1e-6, rtol=0
    )


# ---- geometry ----------------------------------------------------------------------------


def _only(n: int, **values) -> tuple:
    defaults = dict(angle=0.0, mirror=False, zoom=1.0, shift=(0.0, 0.0))
    defaults.update(values)
    return (
        torch.full((n,), float(defaults["angle"])),
        torch.full((n,), defaults["mirror"]),
        torch.full((n,), float(defaults["zoom"])),
        torch.tensor([defaults["shift"]] * n),
    )


def test_quarter_turn_is_rot90_and_half_turn_of_a_rectangle_is_rot180():
    square = _images(3, 3, 12, 12)
    turned = _affine(square, *_only(3, angle=math.pi / 2))
    torch.testing.assert_close(turned, torch.rot90(square, 1, (2, 3)), atol=1e-5, rtol=0)
    rectangle = _images(2, 3, 10, 17)
    turned = _affine(rectangle, *_only(2, angle=math.pi))
    torch.testing.assert_close(turned, torch.rot90(rectangle, 2, (2, 3)), atol=1e-5, rtol=0)


def test_mirror_is_a_left_right_flip_and_random_flips_give_both():
    images = _images(2)
    torch.testing.assert_close(
        _affine(images, *_only(2, mirror=True)), images.flip(3), atol=1e-6, rtol=0
    )
    images = _images(32)
    flipped = random_affine(images, generator=_seed(0), rotation=False, scale=None, max_shift=0)
    same = (flipped - images).abs().amax((1, 2, 3)) < 1e-6
    mirrored = (flipped - images.flip(3)).abs().amax((1, 2, 3)) < 1e-6
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_rotation_keeps_the_flux_of_a_centred_blob():
    blobs = _blob(16)
    rotated = random_rotation(blobs, generator=_seed(0))
    torch.testing.assert_close(rotated.sum((1, 2, 3)), blobs.sum((1, 2, 3)), rtol=0.01, atol=0)
    assert not torch.equal(rotated, blobs)  # and the blob was really resampled
    assert (rotated - blobs).abs().max() < 0.01  # a round blob looks the same at any angle


def test_zoom_above_one_enlarges_a_centred_blob():
    blobs = _blob(4)
    _, before = _moments(blobs)
    _, after = _moments(random_scale(blobs, generator=_seed(0), scale=(1.2, 1.2)))
    torch.testing.assert_close(after / before, torch.full_like(before, 1.44), rtol=0.03, atol=0)
    _, varied = _moments(random_scale(_blob(64), generator=_seed(0), scale=(0.8, 1.25)))
    ratio = varied / before[0]
    assert ratio.min() >= 0.8**2 * 0.97 and ratio.max() <= 1.25**2 * 1.03 and ratio.std() > 0.05


def test_shift_moves_the_centroid_by_the_asked_pixels_and_stays_in_range():
    blobs = _blob(2, sigma=4.0)
    centroid, _ = _moments(_affine(blobs, *_only(2, shift=(3.0, -2.5))))
    torch.testing.assert_close(
        centroid, torch.tensor([[3.0, -2.5]] * 2, dtype=torch.float64), atol=0.02, rtol=0
    )
    centroid, _ = _moments(random_shift(_blob(200, sigma=4.0), generator=_seed(0), max_shift=0.1))
    assert centroid.abs().max() <= 0.1 * 64 + 0.02
    assert centroid.abs().max() > 0.08 * 64  # the range is used, on both axes and signs
    assert (centroid > 1).any(0).all() and (centroid < -1).any(0).all()


def test_with_no_geometric_part_nothing_is_resampled(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("resampled")

    monkeypatch.setattr(torch.nn.functional, "grid_sample", fail)
    images = _images()
    assert torch.equal(GalaxyAugmentation(**NO_GEOMETRY).geometric(images, _seed(0)), images)
    assert torch.equal(
        random_affine(images, rotation=False, flip=False, scale=(1, 1), max_shift=0), images
    )


# ---- photometry --------------------------------------------------------------------------


def test_blur_of_width_zero_is_the_identity():
    images = _images()
    assert torch.equal(random_blur(images, max_sigma=0), images)
    assert torch.equal(random_blur(images, max_sigma=None), images)
    # Widths below 1e-4 pixels go through the convolution with a one-pixel kernel.
    torch.testing.assert_close(
        random_blur(images, generator=_seed(0), max_sigma=1e-4), images, atol=1e-6, rtol=0
    )


def test_blur_keeps_the_flux_and_lowers_the_peak_by_a_random_amount():
    point = torch.zeros(32, 3, 33, 33)
    point[:, :, 16, 16] = 1.0
    blurred = random_blur(point, generator=_seed(0), max_sigma=2.0)
    torch.testing.assert_close(blurred.sum((2, 3)), torch.ones(32, 3), atol=1e-5, rtol=0)
    peaks = blurred.amax((2, 3))
    assert (peaks <= 1).all() and (peaks < 0.5).float().mean() > 0.5 and peaks.std() > 0.01
    assert torch.equal(peaks[:, 0], peaks[:, 2])  # one PSF for all the bands of an image
    _, r2 = _moments(blurred)
    assert r2.max() <= 2 * 2.0**2 + 1e-3  # variance 2 sigma^2 at most (x and y)


def test_blur_works_on_images_smaller_than_its_kernel():
    images = _images(2, 1, 3, 5)
    out = random_blur(images, generator=_seed(0), max_sigma=5.0)
    assert out.shape == images.shape and torch.isfinite(out).all()


def test_noise_std_follows_the_uniform_level():
    noisy = random_noise(torch.zeros(400, 1, 32, 32), generator=_seed(0), max_sigma=0.1)
    std = noisy.std((1, 2, 3))
    assert std.max() <= 0.1 * 1.1 and std.min() < 0.01
    assert abs(std.mean().item() - 0.05) < 0.005  # the mean of uniform [0, 0.1]
    assert noisy.mean().abs() < 1e-3


def test_brightness_gain_stays_in_range_and_spans_it():
    out = random_brightness(torch.ones(200, 3, 2, 2), generator=_seed(0), max_change=0.2)
    gains = out[:, 0, 0, 0]
    assert torch.equal(out, gains[:, None, None, None].expand_as(out))
    assert gains.min() >= 0.8 and gains.max() <= 1.2
    assert gains.min() < 0.85 and gains.max() > 1.15


def test_colour_gains_are_independent_per_channel():
    gains = random_color(torch.ones(2000, 3, 1, 1), generator=_seed(0), max_change=0.1)[..., 0, 0]
    assert gains.min() >= 0.9 - 1e-6 and gains.max() <= 1.1 + 1e-6
    assert gains.min() < 0.91 and gains.max() > 1.09
    # No combination of the channels survives: their log-gains are uncorrelated, so
    # for example G**2 / (R * B), which a linear tilt across the bands keeps, varies.
    correlation = torch.corrcoef(gains.log().T)
    assert (correlation - torch.eye(3)).abs().max() < 0.1
    invariant = gains[:, 1] ** 2 / (gains[:, 0] * gains[:, 2])
    assert invariant.std() > 0.05
    grey = _images(4, 1)
    assert torch.equal(random_color(grey, generator=_seed(0), max_change=0.5), grey)


def test_gamma_keeps_0_and_1_the_order_of_pixels_and_spans_its_range():
    ramp = torch.linspace(0, 1, 11).expand(500, 3, 1, 11).contiguous()
    out = random_gamma(ramp, generator=_seed(0), max_gamma=0.5)
    assert torch.equal(out[..., 0], torch.zeros(500, 3, 1)) and torch.equal(
        out[..., -1], torch.ones(500, 3, 1)
    )
    assert (out.diff(dim=-1) > 0).all()  # a monotone curve: the galaxy's shape is kept
    # One gamma per image, the same for every band; log(gamma) spans [-0.5, 0.5].
    gamma = torch.log(out[:, :, 0, 5]) / math.log(0.5)
    torch.testing.assert_close(gamma, gamma[:, :1].expand(-1, 3))
    assert gamma.min() >= math.exp(-0.5) - 1e-5 and gamma.max() <= math.exp(0.5) + 1e-5
    assert gamma.min() < math.exp(-0.45) and gamma.max() > math.exp(0.45)
    assert (gamma > 1).float().mean().sub(0.5).abs() < 0.1  # as often stronger as weaker


def test_gamma_keeps_the_sign_of_negative_pixels_and_zero_is_the_identity():
    noisy = _images() - 0.5
    out = random_gamma(noisy, generator=_seed(0), max_gamma=0.3)
    assert torch.equal(out.sign(), noisy.sign()) and torch.isfinite(out).all()
    assert torch.equal(random_gamma(noisy, max_gamma=0), noisy)
    assert torch.equal(random_gamma(noisy, max_gamma=None), noisy)


# ---- the estimator -----------------------------------------------------------------------


def test_pair_without_photometry_gives_two_equal_views():
    augmented, target = GalaxyAugmentation(**NO_PHOTOMETRY).pair(_images(), _seed(0))
    assert torch.equal(augmented, target) and augmented is not target


def test_pair_target_is_the_geometric_part_and_the_difference_is_the_noise():
    images = _blob(300, side=32)
    augment = GalaxyAugmentation(**{**NO_PHOTOMETRY, "max_noise": 0.1})
    augmented, target = augment.pair(images, _seed(0))
    assert torch.equal(target, augment.geometric(images, _seed(0)))
    assert not torch.equal(target, images)
    std = (augmented - target).std((1, 2, 3))
    assert std.max() <= 0.11 and abs(std.mean().item() - 0.05) < 0.006


def test_call_is_geometric_then_photometric_with_one_generator():
    images, augment = _images(), GalaxyAugmentation()
    generator = _seed(0)
    expected = augment.photometric(augment.geometric(images, generator), generator)
    assert torch.equal(augment(images, _seed(0)), expected)


def test_clip_keeps_the_views_in_the_unit_range():
    images = _images(16)
    loud = dict(max_noise=0.5, max_brightness=0.5)
    assert (GalaxyAugmentation(**loud)(images, _seed(0)) > 1).any()
    out = GalaxyAugmentation(**loud, clip=True)(images, _seed(0))
    assert out.min() >= 0 and out.max() <= 1


def test_photometry_switched_off_returns_a_copy():
    images = _images()
    out = GalaxyAugmentation(**NO_PHOTOMETRY).photometric(images, _seed(0))
    assert torch.equal(out, images) and out is not images


def test_sklearn_clone_get_and_set_params():
    augment = GalaxyAugmentation(max_noise=0.02, scale=(0.8, 1.2))
    copy = clone(augment)
    assert copy is not augment and copy.get_params() == augment.get_params()
    assert copy.get_params()["scale"] == (0.8, 1.2)
    copy.set_params(max_noise=0.0, rotation=False)
    assert copy.max_noise == 0.0 and copy.rotation is False and augment.max_noise == 0.02
    assert set(augment.get_params()) == {
        "rotation",
        "flip",
        "scale",
        "max_shift",
        "max_blur",
        "max_gamma",
        "max_noise",
        "max_brightness",
        "max_color",
        "clip",
    }
    with pytest.raises(TypeError):
        GalaxyAugmentation(0.1)  # keyword-only


# ---- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters, error, name",
    [
        (dict(scale=(1.1, 0.9)), ValueError, "scale"),
        (dict(scale=(0.0, 1.0)), ValueError, "scale"),
        (dict(scale=(0.9, float("nan"))), ValueError, "scale"),
        (dict(scale=(0.9, 1.0, 1.1)), ValueError, "scale"),
        (dict(scale=0.9), TypeError, "scale"),
        (dict(scale="ab"), TypeError, "scale"),
        (dict(max_shift=-0.1), ValueError, "max_shift"),
        (dict(max_shift=0.6), ValueError, "max_shift"),
        (dict(max_blur=float("nan")), ValueError, "max_blur"),
        (dict(max_noise=-1.0), ValueError, "max_noise"),
        (dict(max_noise="0.1"), TypeError, "max_noise"),
        (dict(max_brightness=1.5), ValueError, "max_brightness"),
        (dict(max_color=float("inf")), ValueError, "max_color"),
        (dict(max_gamma=2.5), ValueError, "max_gamma"),
        (dict(max_gamma=-0.1), ValueError, "max_gamma"),
        (dict(rotation="yes"), TypeError, "rotation"),
        (dict(flip=1), TypeError, "flip"),
        (dict(clip=None), TypeError, "clip"),
    ],
)
def test_bad_parameters_are_named_at_use(parameters, error, name):
    augment = GalaxyAugmentation(**parameters)  # stored unchecked, as sklearn wants
    for method in (augment, augment.pair):
        with pytest.raises(error, match=name):
            method(_images(), _seed(0))


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda x: random_affine(x, scale=(2.0, 1.0)), ValueError, "scale"),
        (lambda x: random_affine(x, max_shift=1.0), ValueError, "max_shift"),
        (lambda x: random_affine(x, rotation=None), TypeError, "rotation"),
        (lambda x: random_blur(x, max_sigma=-1.0), ValueError, "max_sigma"),
        (lambda x: random_noise(x, max_sigma=float("nan")), ValueError, "max_sigma"),
        (lambda x: random_brightness(x, max_change=2.0), ValueError, "max_change"),
        (lambda x: random_color(x, max_change=-0.1), ValueError, "max_change"),
        (lambda x: random_gamma(x, max_gamma=float("nan")), ValueError, "max_gamma"),
        (lambda x: random_gamma(x, max_gamma=2.5), ValueError, "max_gamma"),
        (lambda x: random_noise(x, generator=0), TypeError, "generator"),
        (lambda x: GalaxyAugmentation()(x, np.random.default_rng(0)), TypeError, "generator"),
    ],
)
def test_bad_function_arguments_are_named(call, error, name):
    with pytest.raises(error, match=name):
        call(_images())


@pytest.mark.parametrize(
    "images, error",
    [
        (np.zeros((2, 3, 8, 8), dtype=np.float32), TypeError),
        ([[[[0.0]]]], TypeError),
        (torch.zeros(3, 8, 8), ValueError),
        (torch.zeros(2, 3, 8, 8, 1), ValueError),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), TypeError),
    ],
    ids=["numpy", "list", "3-D", "5-D", "uint8"],
)
@pytest.mark.parametrize("use", ["call", "pair", "photometric", *[f.__name__ for f in FUNCTIONS]])
def test_bad_images_are_named(images, error, use):
    augment = GalaxyAugmentation()
    call = {"call": augment, "pair": augment.pair, "photometric": augment.photometric}.get(use)
    call = call or (lambda x: globals()[use](x))
    with pytest.raises(error, match="images"):
        call(images)
