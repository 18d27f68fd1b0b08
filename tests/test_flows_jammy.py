"""The jammy_flows backend: float64 densities, data initialisation, pickling by rebuilding."""

from __future__ import annotations

import copy
import pickle
import sys

import joblib
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from galaxysim.flows import FlowDensityEstimator
from galaxysim.flows.jammy import import_jammy_flows, jammy_layers

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow


def _jammy(**params) -> FlowDensityEstimator:
    defaults = dict(
        backend="jammy",
        flow="gaussianization",
        n_layers=2,
        max_epochs=2,
        device="cpu",
        random_state=0,
    )
    return FlowDensityEstimator(**{**defaults, **params})


# ------------------------------------------------------- without jammy_flows


def test_missing_jammy_flows_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "jammy_flows", None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install "galaxysim\[jammy\]"'):
        import_jammy_flows()
    with pytest.raises(ImportError, match=r"galaxysim\[jammy\]"):
        _jammy().fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_layer_strings():
    assert jammy_layers("gaussianization", 3) == "ggg"
    assert jammy_layers("affine", 2) == "tt"
    assert jammy_layers("gggt", 7) == "gggt"
    with pytest.raises(ValueError, match="'g' and 't'"):
        jammy_layers("spline", 2)
    with pytest.raises(ValueError, match="'g' and 't'"):
        _jammy(flow="ggx").fit(np.zeros((10, 2)))


# ---------------------------------------------------------- with jammy_flows


@pytest.fixture(scope="module")
def jammy_fit():
    pytest.importorskip("jammy_flows")
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.6], [0.6, 0.8]])
    truth = multivariate_normal([10.0, -5.0], cov)
    train = truth.rvs(1500, random_state=rng.integers(1 << 31))
    test = truth.rvs(1000, random_state=rng.integers(1 << 31))
    est = _jammy(n_layers=1, max_epochs=40, batch_size=128, learning_rate=3e-2).fit(train)
    return est, train, test, truth


def test_jammy_density_is_float64_and_near_the_truth(jammy_fit):
    est, _train, test, truth = jammy_fit
    scores = est.score_samples(test)
    assert scores.dtype == np.float64
    assert next(est.flow_.pdf.parameters()).dtype == torch.float64
    assert abs(scores.mean() - truth.logpdf(test).mean()) < 0.1


def test_jammy_density_integrates_to_one(jammy_fit):
    est, *_ = jammy_fit
    a = np.linspace(4.0, 16.0, 241)
    b = np.linspace(-11.0, 1.0, 241)
    grid = np.stack(np.meshgrid(a, b), axis=-1).reshape(-1, 2)
    total = np.exp(est.score_samples(grid)).sum() * (a[1] - a[0]) * (b[1] - b[0])
    assert total == pytest.approx(1.0, abs=0.02)


def test_jammy_round_trip_and_sample_moments(jammy_fit):
    est, train, test, _ = jammy_fit
    round_trip = est.inverse_transform(est.transform(test[:50]))
    np.testing.assert_allclose(round_trip, test[:50], atol=1e-4)
    samples = est.sample(3000, random_state=0)
    np.testing.assert_allclose(samples.mean(axis=0), train.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(np.cov(samples.T), np.cov(train.T), atol=0.15)


def test_jammy_pickles_by_rebuilding(jammy_fit, tmp_path):
    est, _, test, _ = jammy_fit
    with pytest.raises(Exception):  # noqa: B017 (whatever jammy's pdf raises)
        pickle.dumps(est.flow_.pdf)  # the reason for rebuilding: the raw pdf does not pickle
    path = tmp_path / "jammy.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.score_samples(test), est.score_samples(test))
    np.testing.assert_array_equal(loaded.sample(5, random_state=1), est.sample(5, random_state=1))
    cloned = copy.deepcopy(est)
    np.testing.assert_array_equal(cloned.score_samples(test[:5]), est.score_samples(test[:5]))


def test_jammy_unpickling_leaves_the_global_rng_alone(jammy_fit):
    est, *_ = jammy_fit
    payload = pickle.dumps(est)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pickle.loads(payload)
    torch.testing.assert_close(torch.rand(3), expected)


def test_jammy_fit_is_reproducible():
    pytest.importorskip("jammy_flows")
    x = np.random.default_rng(1).normal(size=(60, 2))
    first = _jammy(random_state=3).fit(x).score_samples(x)
    second = _jammy(random_state=3).fit(x).score_samples(x)
    np.testing.assert_array_equal(first, second)


def test_jammy_refuses_images():
    pytest.importorskip("jammy_flows")
    with pytest.raises(ValueError, match="vectors only"):
        _jammy().fit(np.zeros((4, 8, 8, 1), dtype=np.float32))


# The backend shares validation and plumbing with the torch flows, which pass every
# scikit-learn check (test_flows_estimator.py); these are the checks where jammy's own
# behaviour (seeding, pickling, dtypes, batching) could differ. Each jammy fit costs ~1 s.
JAMMY_CHECKS = [
    "check_fit_idempotent",
    "check_estimators_pickle",
    "check_methods_subset_invariance",
    "check_methods_sample_order_invariance",
    "check_estimators_dtypes",
    "check_fit2d_1feature",
    "check_transformer_general",
    "check_pipeline_consistency",
]


@pytest.mark.parametrize("check_name", JAMMY_CHECKS)
def test_jammy_passes_the_sklearn_checks(check_name):
    pytest.importorskip("jammy_flows")
    from sklearn.utils import estimator_checks

    estimator = _jammy(n_layers=1, max_epochs=1)
    getattr(estimator_checks, check_name)(type(estimator).__name__, estimator)
