import numpy as np
import pytest

from galaxysim.metrics import bits_per_dim, class_rank_profile, precision_at_k, same_class_rate


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
    # With k=2 (ties at equal distance both included): 0: {1, 2} -> 2/2; 1: {0, 2} -> 2/2; 2: {1, 3} -> 1/2; 10: {11, 3} -> 2/2;
    # 11: {10, 3} -> 2/2; 3: {2, 1} -> 0/2.  Mean = (1 + 1 + .5 + 1 + 1 + 0) / 6
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
