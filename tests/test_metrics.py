import numpy as np
import pytest

from galaxysim.metrics import (
    bits_per_dim,
    bootstrap_interval,
    class_rank_profile,
    neighbor_label_shares,
    precision_at_k,
    same_class_rate,
    same_class_shares,
    wilson_interval,
)


def test_precision_at_k_hand_computed():
    ranked = np.array([5, 5, 8, 5, 9, 9])
    assert precision_at_k(ranked, 5, 1) == 1.0
    assert precision_at_k(ranked, 5, 4) == 0.75
    assert precision_at_k(ranked, 9, 6) == pytest.approx(2 / 6)
    assert precision_at_k(ranked, 7, 6) == 0.0


def test_precision_at_k_errors():
    with pytest.raises(ValueError, match="k=7 exceeds the 6"):
        precision_at_k(np.zeros(6), 0, 7)
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(np.zeros(6), 0, 0)
    with pytest.raises(ValueError, match="ranked_labels is empty"):
        precision_at_k([], 0, 1)
    with pytest.raises(ValueError, match="ranked_labels must be 1-D"):
        precision_at_k(np.zeros((2, 2)), 0, 1)


def test_same_class_rate_hand_computed():
    # Points on a line: 0, 1, 2 (class a) and 10, 11 (class b), 3 (class b).
    Z = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [3.0]])
    y = np.array(["a", "a", "a", "b", "b", "b"])
    # With k=2 (ties at equal distance both included): 0: {1, 2} -> 2/2; 1: {0, 2} -> 2/2;
    # 2: {1, 3} -> 1/2; 10: {11, 3} -> 2/2; 11: {10, 3} -> 2/2; 3: {2, 1} -> 0/2.
    # Mean = (1 + 1 + .5 + 1 + 1 + 0) / 6
    assert same_class_rate(Z, y, n_neighbors=2) == pytest.approx(4.5 / 6)


def test_same_class_rate_perfect_and_chance():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    separated = rng.normal(size=(100, 2)) + 100 * y[:, None]
    assert same_class_rate(separated, y, n_neighbors=5) == 1.0
    mixed = rng.normal(size=(100, 2))
    assert abs(same_class_rate(mixed, y, n_neighbors=10) - 0.5) < 0.15


def test_same_class_rate_errors():
    Z = np.zeros((4, 2))
    with pytest.raises(ValueError, match="n_neighbors=4 must be smaller"):
        same_class_rate(Z, [0, 0, 1, 1], n_neighbors=4)
    with pytest.raises(ValueError, match="labels has 3 entries but embedding has 4"):
        same_class_rate(Z, [0, 0, 1], n_neighbors=1)
    with pytest.raises(ValueError, match="embedding must be 2-D"):
        same_class_rate(np.zeros(4), [0, 0, 1, 1], n_neighbors=1)
    bad = Z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        same_class_rate(bad, [0, 0, 1, 1], n_neighbors=1)


def test_class_rank_profile_hand_computed():
    profile = class_rank_profile(np.array([1, 0, 1, 2, 0]), classes=[0, 1, 2, 3])
    assert profile[0] == {"mean_rank": 3.5, "median_rank": 3.5, "count": 2}
    assert profile[1] == {"mean_rank": 2.0, "median_rank": 2.0, "count": 2}
    assert profile[2]["mean_rank"] == 4.0
    assert profile[3]["count"] == 0 and np.isnan(profile[3]["mean_rank"])
    assert list(profile) == [0, 1, 2, 3]
    assert all(type(k) is int for k in profile)


def test_bits_per_dim():
    d = 64 * 64 * 3
    uniform = -d * np.log(256.0)
    assert bits_per_dim(uniform, d) == pytest.approx(8.0)
    out = bits_per_dim(np.array([uniform, uniform / 2]), d)
    np.testing.assert_allclose(out, [8.0, 4.0])
    with pytest.raises(ValueError, match="n_dims"):
        bits_per_dim(1.0, 0)
    with pytest.raises(ValueError, match="NaN"):
        bits_per_dim([np.nan], 3)


# --- per-item same-class shares ----------------------------------------------------


def test_same_class_shares_hand_computed_and_average_to_the_rate():
    # The points of test_same_class_rate_hand_computed, item by item.
    Z = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [3.0]])
    y = np.array(["a", "a", "a", "b", "b", "b"])
    shares = same_class_shares(Z, y, n_neighbors=2)
    np.testing.assert_array_equal(shares, [1.0, 1.0, 0.5, 1.0, 1.0, 0.0])
    assert shares.mean() == pytest.approx(same_class_rate(Z, y, n_neighbors=2), abs=1e-15)


def test_per_class_shares_weighted_by_class_size_give_the_rate():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], [7, 12, 21])  # unequal classes, so the weights matter
    Z = rng.normal(size=(40, 3)) + 1.5 * y[:, None]
    shares = same_class_shares(Z, y, n_neighbors=4)
    per_class = np.array([shares[y == c].mean() for c in range(3)])
    counts = np.bincount(y)
    assert np.sum(per_class * counts) / counts.sum() == pytest.approx(same_class_rate(Z, y, 4))
    assert not np.allclose(per_class.mean(), shares.mean())  # the plain mean of classes is not it


def test_neighbor_label_shares_hand_computed_and_bad_input_named():
    labels = np.array([0, 0, 1, 1])
    neighbours = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    np.testing.assert_array_equal(neighbor_label_shares(neighbours, labels), [0.5, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(neighbor_label_shares(neighbours[:, :1], labels), [1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"neighbors must be 2-D \(n, k\)"):
        neighbor_label_shares(np.arange(4), labels)
    with pytest.raises(ValueError, match="neighbors must be 2-D"):
        neighbor_label_shares(np.zeros((4, 0), dtype=int), labels)
    with pytest.raises(TypeError, match="integer indices"):
        neighbor_label_shares(neighbours.astype(float), labels)
    with pytest.raises(ValueError, match="neighbors has 3 rows but labels has 4"):
        neighbor_label_shares(neighbours[:3], labels)
    with pytest.raises(ValueError, match=r"indices in \[0, 3\]"):
        neighbor_label_shares(neighbours + 1, labels)


# --- bootstrap interval ----------------------------------------------------------------


def test_bootstrap_interval_contains_the_mean_and_is_reproducible():
    values = np.random.default_rng(0).random(30)
    low, high = bootstrap_interval(values, random_state=7)
    assert low < values.mean() < high
    assert values.min() <= low and high <= values.max()
    assert bootstrap_interval(values, random_state=7) == (low, high)
    assert bootstrap_interval(values, random_state=8) != (low, high)
    generator = bootstrap_interval(values, random_state=np.random.default_rng(7))
    assert generator == (low, high)  # an int seeds the same generator


def test_bootstrap_interval_matches_the_normal_approximation():
    # For a mean of many values the percentile bootstrap is close to mean +- 1.96 s / sqrt(n).
    values = np.random.default_rng(1).normal(size=400)
    low, high = bootstrap_interval(values, n_resamples=4000, random_state=0)
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.2 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.2 * half)


def test_bootstrap_interval_narrows_with_more_data_and_lower_confidence():
    rng = np.random.default_rng(2)
    small, large = rng.random(20), rng.random(2000)
    width = lambda interval: interval[1] - interval[0]  # noqa: E731
    assert width(bootstrap_interval(large)) < 0.3 * width(bootstrap_interval(small))
    assert width(bootstrap_interval(small, confidence=0.5)) < width(bootstrap_interval(small))


def test_bootstrap_interval_of_constant_values_is_a_point():
    assert bootstrap_interval(np.ones(10)) == (1.0, 1.0)
    assert bootstrap_interval([0.25]) == (0.25, 0.25)


def test_bootstrap_interval_is_the_same_in_chunks(monkeypatch):
    # Large collections are resampled a block at a time; the answer stays a bootstrap of the
    # same size and still holds the mean.
    import galaxysim.metrics as metrics

    values = np.random.default_rng(4).random(50)
    whole = bootstrap_interval(values, n_resamples=300)
    monkeypatch.setattr(metrics, "_MAX_DRAWS", 120)  # two resamples at a time
    chunked = bootstrap_interval(values, n_resamples=300)
    assert chunked[0] < values.mean() < chunked[1]
    assert chunked == pytest.approx(whole, abs=0.03)


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "values is empty"),
        ([0.1, np.nan], {}, ValueError, "values contains NaN"),
        ([0.1, np.inf], {}, ValueError, "values contains NaN or infinite"),
        (np.zeros((2, 2)), {}, ValueError, "values must be 1-D"),
        (["a", "b"], {}, TypeError, "values must be numbers"),
        ([0.1, 0.2], {"confidence": 95}, ValueError, r"confidence must be in \(0, 1\)"),
        ([0.1, 0.2], {"confidence": 0.0}, ValueError, "confidence must be in"),
        ([0.1, 0.2], {"confidence": True}, TypeError, "confidence must be a number"),
        ([0.1, 0.2], {"n_resamples": 0}, ValueError, "n_resamples must be an integer >= 1"),
        ([0.1, 0.2], {"n_resamples": 2.5}, TypeError, "n_resamples"),
        ([0.1, 0.2], {"random_state": -1}, ValueError, "random_state must be >= 0"),
        ([0.1, 0.2], {"random_state": "seed"}, TypeError, "random_state must be an int"),
    ],
)
def test_bootstrap_interval_bad_input_is_named(values, kwargs, error, match):
    with pytest.raises(error, match=match):
        bootstrap_interval(values, **kwargs)


# --- Wilson interval ------------------------------------------------------------------------


def test_wilson_interval_hand_computed():
    # 2 of 10 at 95 %: the textbook values (z = 1.96).
    low, high = wilson_interval(2, 10)
    assert low == pytest.approx(0.0567, abs=1e-4) and high == pytest.approx(0.5098, abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    # Symmetric in successes and failures, and narrower with more trials.
    assert wilson_interval(3, 10)[0] == pytest.approx(1 - wilson_interval(7, 10)[1])
    narrow = wilson_interval(200, 1000)
    assert narrow[0] < 0.2 < narrow[1] and narrow[1] - narrow[0] < 0.06


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((11, 10), {}, ValueError, r"successes must be in \[0, n_trials=10\]"),
        ((-1, 10), {}, ValueError, "successes must be in"),
        ((1.0, 10), {}, TypeError, "successes must be an integer"),
        ((0, 0), {}, ValueError, "n_trials must be an integer >= 1"),
        ((1, 10), {"confidence": 1.0}, ValueError, "confidence must be in"),
    ],
)
def test_wilson_interval_bad_input_is_named(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        wilson_interval(*args, **kwargs)
