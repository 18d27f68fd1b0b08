"""Tests of radial_profile and radial_power_spectrum (galaxysim.images.statistics)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from galaxysim.images import radial_power_spectrum, radial_profile


def test_radial_profile_of_a_centred_gaussian_follows_it_channel_by_channel():
    yy, xx = np.mgrid[:40, :40] - 19.5
    radius = np.hypot(yy, xx)
    narrow, wide = np.exp(-0.5 * (radius / 4.0) ** 2), np.exp(-0.5 * (radius / 8.0) ** 2)
    images = np.stack([narrow, wide], axis=-1)[None]
    profile = radial_profile(images)
    assert profile.shape == (1, 20, 2)
    rings = np.floor(radius).astype(int)
    for k in (0, 5, 12, 19):
        np.testing.assert_allclose(profile[0, k], images[0][rings == k].mean(axis=0))
    assert np.all(np.diff(profile[0, :, 0]) < 0) and np.all(np.diff(profile[0, :, 1]) < 0)
    # The wider Gaussian holds more of its light outside.
    assert profile[0, 10, 1] > 5 * profile[0, 10, 0]


def test_radial_profile_takes_any_finite_values_and_the_inscribed_circle_of_a_rectangle():
    light = np.full((3, 12, 20, 1), -0.25)  # light below a subtracted sky is negative
    profile = radial_profile(light)
    assert profile.shape == (3, 6, 1)
    np.testing.assert_allclose(profile, -0.25)


def test_white_noise_has_a_flat_spectrum_at_its_variance_and_smoothed_noise_falls():
    rng = np.random.default_rng(0)
    white = 0.05 * rng.standard_normal((300, 16, 16, 2))
    frequency, power = radial_power_spectrum(white)
    np.testing.assert_allclose(frequency, np.arange(1, 9) / 16)
    assert power.shape == (300, 8, 2)
    np.testing.assert_allclose(power.mean(axis=0), 0.05**2, rtol=0.15)
    smooth = ndimage.gaussian_filter(white, sigma=(0, 1.0, 1.0, 0), mode="wrap")
    _, smooth_power = radial_power_spectrum(smooth)
    mean = smooth_power.mean(axis=(0, 2))
    assert np.all(np.diff(mean) < 0) and mean[-1] < 0.02 * mean[0]


def test_a_wave_puts_its_power_in_its_ring():
    _yy, xx = np.mgrid[:32, :32]
    wave = np.sin(2 * np.pi * 5 * xx / 32)[None, :, :, None]
    frequency, power = radial_power_spectrum(wave, window=False)
    assert frequency[np.argmax(power[0, :, 0])] == 5 / 32
    assert power[0, 4, 0] > 100 * np.delete(power[0, :, 0], 4).max()


@pytest.mark.parametrize("function", [radial_profile, radial_power_spectrum])
def test_bad_images_raise_errors_naming_them(function):
    with pytest.raises(ValueError, match="images must be 4-D"):
        function(np.zeros((16, 16, 3)))
    with pytest.raises(ValueError, match="at least 8x8"):
        function(np.zeros((2, 4, 16, 3)))
    with pytest.raises(ValueError, match="NaN"):
        function(np.full((1, 8, 8, 1), np.nan))
    with pytest.raises(TypeError, match="images must be a numeric array"):
        function([["a"]])


def test_window_must_be_a_bool():
    with pytest.raises(TypeError, match="window"):
        radial_power_spectrum(np.zeros((1, 8, 8, 1)), window="hann")
