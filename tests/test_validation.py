import numpy as np
import pytest

from galaxysim._validation import (
    check_bool,
    check_fraction,
    check_image,
    check_image_shape,
    check_images,
    check_positive_int,
)


def test_uint8_is_scaled_to_unit_float():
    X = np.array([[[[0, 128, 255]]]], dtype=np.uint8)
    out = check_images(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 128 / 255, 1.0])


def test_float_input_is_copied_not_modified():
    X = np.full((2, 4, 4, 3), 0.5, dtype=np.float64)
    out = check_images(X)
    out[:] = 0.0
    assert np.all(X == 0.5)
    assert out.dtype == np.float32


def test_three_dimensional_input_gets_one_channel():
    out = check_images(np.zeros((5, 4, 6)))
    assert out.shape == (5, 4, 6, 1)


def test_flattened_input_with_image_shape_round_trips():
    images = np.random.default_rng(0).random((3, 4, 5, 3))
    out = check_images(images.reshape(3, -1), image_shape=(4, 5, 3))
    np.testing.assert_allclose(out, images.astype(np.float32))


def test_flattened_input_without_image_shape_is_rejected():
    with pytest.raises(ValueError, match="image_shape"):
        check_images(np.zeros((3, 48)))


def test_flattened_input_with_wrong_feature_count():
    with pytest.raises(
        ValueError, match=r"47 features per sample but image_shape=\(4, 4, 3\) needs 48"
    ):
        check_images(np.zeros((3, 47)), image_shape=(4, 4, 3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected(bad):
    X = np.zeros((2, 4, 4, 3))
    X[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_images(X, name="query")


@pytest.mark.parametrize("low, high", [(-0.1, 0.5), (0.0, 1.5), (0.0, 255.0)])
def test_float_values_outside_unit_range_are_rejected(low, high):
    X = np.full((2, 4, 4, 3), low)
    X[0, 0, 0, 0] = high
    with pytest.raises(ValueError, match=r"X must hold floats in \[0, 1\]"):
        check_images(X)


def test_integer_values_beyond_uint8_are_rejected():
    with pytest.raises(ValueError, match="int64"):
        check_images(np.full((1, 2, 2, 3), 300, dtype=np.int64))


def test_small_integer_dtypes_are_treated_as_8_bit():
    out = check_images(np.full((1, 2, 2, 3), 255, dtype=np.int32))
    assert out.max() == pytest.approx(1.0)


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match="X is empty"):
        check_images(np.zeros((0, 4, 4, 3)))


def test_min_samples_is_enforced():
    with pytest.raises(ValueError, match="has 2 image"):
        check_images(np.zeros((2, 4, 4, 3)), min_samples=3)


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4, 5, 3)])
def test_wrong_ndim_is_rejected(shape):
    with pytest.raises(ValueError, match=r"\(n, H, W, C\)"):
        check_images(np.zeros(shape))


def test_wrong_channel_count_is_rejected():
    with pytest.raises(ValueError, match="must have 3 channel"):
        check_images(np.zeros((2, 4, 4, 1)), n_channels=3)


def test_image_shape_disagreeing_with_4d_input():
    with pytest.raises(ValueError, match="image_shape"):
        check_images(np.zeros((2, 4, 4, 3)), image_shape=(8, 8, 3))


def test_non_numeric_dtypes_are_rejected():
    with pytest.raises(TypeError, match="numbers"):
        check_images(np.array([[[["a"]]]]))
    with pytest.raises(TypeError, match="numbers"):
        check_images(np.zeros((1, 2, 2, 3), dtype=bool))
    with pytest.raises(TypeError, match="Python objects"):
        check_images(np.array([np.zeros((2, 2, 3)), np.zeros((3, 3))], dtype=object))


def test_none_is_rejected_with_the_argument_name():
    with pytest.raises(ValueError, match="images must be an array"):
        check_images(None, name="images")


def test_check_image_returns_one_image():
    assert check_image(np.zeros((4, 4, 3), dtype=np.uint8)).shape == (4, 4, 3)
    assert check_image(np.zeros((4, 4))).shape == (4, 4, 1)
    with pytest.raises(ValueError, match="query must be one image"):
        check_image(np.zeros((2, 4, 4, 3)), name="query")


def test_check_image_shape():
    assert check_image_shape((4, 5)) == (4, 5, 1)
    assert check_image_shape([4, 5, 3]) == (4, 5, 3)
    with pytest.raises(ValueError, match="image_shape"):
        check_image_shape((4, 0, 3))
    with pytest.raises(ValueError, match="image_shape"):
        check_image_shape((4, 4, 3, 1))
    with pytest.raises(TypeError, match="image_shape"):
        check_image_shape(12)


def test_scalar_checks():
    assert check_positive_int(3, "n") == 3
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1, got 0"):
        check_positive_int(0, "n_samples")
    with pytest.raises(TypeError, match="n_samples"):
        check_positive_int(2.5, "n_samples")
    with pytest.raises(TypeError, match="n_samples"):
        check_positive_int(True, "n_samples")
    assert check_fraction(0.25, "f") == 0.25
    assert check_fraction(0, "f", inclusive=True) == 0.0
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\)"):
        check_fraction(1.0, "validation_fraction")
    with pytest.raises(TypeError, match="validation_fraction"):
        check_fraction("0.1", "validation_fraction")


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_check_bool_accepts_booleans(value):
    assert check_bool(value, "flag") is bool(value)


@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0])
def test_check_bool_names_the_argument(value):
    with pytest.raises(TypeError, match="flag must be True or False"):
        check_bool(value, "flag")
