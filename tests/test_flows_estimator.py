"""FlowDensityEstimator on vectors: scikit-learn contract, correctness, persistence, errors."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from galaxysim._training import TRAINING_PARAMETERS
from galaxysim.flows import FlowDensityEstimator

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _tiny(**params) -> FlowDensityEstimator:
    defaults = dict(n_layers=2, hidden_features=(8,), max_epochs=2, device="cpu", random_state=0)
    return FlowDensityEstimator(**{**defaults, **params})


# No expected failures: every check passes for each vector flow.
@parametrize_with_checks([_tiny(flow=flow) for flow in ("affine", "spline", "autoregressive")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ----------------------------------------------------------------- correctness


@pytest.fixture(scope="module")
def gaussian_8d():
    """A correlated 8-D Gaussian (condition number 10) with its exact log-density."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    cov = rotation @ np.diag(np.linspace(0.3, 3.0, 8)) @ rotation.T
    mean = rng.normal(scale=3.0, size=8)
    truth = multivariate_normal(mean, cov)
    return truth.rvs(4000, random_state=1), truth.rvs(2000, random_state=2), truth


@pytest.mark.parametrize(
    ("flow", "max_epochs", "learning_rate"), [("affine", 30, 1e-2), ("autoregressive", 40, 5e-3)]
)
def test_gaussian_held_out_log_likelihood_is_near_the_truth(
    gaussian_8d, flow, max_epochs, learning_rate
):
    train, test, truth = gaussian_8d
    est = FlowDensityEstimator(
        flow=flow,
        n_layers=4,
        hidden_features=(16,),
        max_epochs=max_epochs,
        batch_size=512,
        learning_rate=learning_rate,
        device="cpu",
        random_state=0,
    ).fit(train)
    gap = est.score(test) - truth.logpdf(test).mean()
    # A Gaussian fit by maximum likelihood lands ~0.01 nats below; the flows overfit a little.
    assert abs(gap) < 0.12, gap
    samples = est.sample(4000, random_state=0)
    mean_error = (samples.mean(axis=0) - train.mean(axis=0)) / train.std(axis=0)
    assert np.abs(mean_error).max() < 0.15
    np.testing.assert_allclose(np.cov(samples.T), np.cov(train.T), atol=0.3)
    latent = est.transform(test)
    np.testing.assert_allclose(latent.mean(axis=0), 0.0, atol=0.15)
    np.testing.assert_allclose(latent.std(axis=0), 1.0, atol=0.15)


def _mixture_2d():
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    scales = np.array([0.6, 0.4, 0.5])

    def sample(n, seed):
        rng = np.random.default_rng(seed)
        component = rng.choice(3, size=n, p=weights)
        return means[component] + scales[component, None] * rng.normal(size=(n, 2))

    def log_density(x):
        parts = [
            np.log(w) + multivariate_normal(m, s**2 * np.eye(2)).logpdf(x)
            for w, m, s in zip(weights, means, scales)
        ]
        return np.logaddexp.reduce(parts, axis=0)

    return sample, log_density


def test_mixture_held_out_log_likelihood_is_near_the_truth():
    sample, log_density = _mixture_2d()
    train, test = sample(1500, 0), sample(2000, 1)
    est = FlowDensityEstimator(
        flow="spline",
        n_layers=2,
        hidden_features=(32,),
        max_epochs=30,
        batch_size=256,
        learning_rate=2e-2,
        device="cpu",
        random_state=0,
    ).fit(train)
    gap = est.score(test) - log_density(test).mean()
    assert abs(gap) < 0.1, gap
    # A single Gaussian is far worse on this mixture: the margin above is meaningful.
    gaussian = multivariate_normal(train.mean(axis=0), np.cov(train.T)).logpdf(test).mean()
    assert gaussian < log_density(test).mean() - 0.4


def test_density_integrates_to_one_in_the_units_of_x():
    x = np.random.default_rng(0).gamma(2.0, 30.0, size=(500, 1)) + 100.0
    est = FlowDensityEstimator(
        n_layers=2, hidden_features=(16,), max_epochs=20, device="cpu", random_state=0
    ).fit(x)
    grid = np.linspace(-400.0, 1200.0, 8001)[:, None]
    total = np.exp(est.score_samples(grid)).sum() * (grid[1, 0] - grid[0, 0])
    assert total == pytest.approx(1.0, abs=0.01)


def test_rescaling_x_shifts_the_log_density_by_the_jacobian():
    x = np.random.default_rng(0).normal(size=(300, 3))
    scale = np.array([100.0, 0.01, 5.0])
    est = _tiny(max_epochs=3).fit(x)
    est_scaled = _tiny(max_epochs=3).fit(x * scale + 7.0)
    np.testing.assert_allclose(
        est_scaled.score_samples(x[:20] * scale + 7.0),
        est.score_samples(x[:20]) - np.log(scale).sum(),
        rtol=1e-4,
    )


def test_without_standardization_scores_still_integrate_consistently():
    x = np.random.default_rng(0).normal(size=(300, 2)) * 0.5
    est = _tiny(standardize=False, max_epochs=3).fit(x)
    assert np.array_equal(est.flow_.standardization.scale.numpy(), np.ones(2))
    np.testing.assert_allclose(est.inverse_transform(est.transform(x)), x, atol=1e-4)


@pytest.mark.parametrize("flow", ["affine", "spline", "autoregressive"])
def test_transform_inverse_round_trip(flow):
    x = np.random.default_rng(0).normal(size=(200, 4)) * [1.0, 10.0, 0.1, 3.0]
    est = _tiny(flow=flow, max_epochs=5).fit(x)
    z = est.transform(x)
    assert z.dtype == np.float64 and z.shape == x.shape
    np.testing.assert_allclose(est.inverse_transform(z), x, atol=1e-4)


def test_fit_is_reproducible_and_seeds_matter():
    x = np.random.default_rng(0).normal(size=(200, 3))
    first = _tiny(max_epochs=3, random_state=1).fit(x).score_samples(x)
    second = _tiny(max_epochs=3, random_state=1).fit(x).score_samples(x)
    other = _tiny(max_epochs=3, random_state=2).fit(x).score_samples(x)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_sample_is_seeded_and_temperature_shrinks_the_spread():
    x = np.random.default_rng(0).normal(size=(300, 2))
    est = _tiny(max_epochs=3).fit(x)
    np.testing.assert_array_equal(est.sample(50, random_state=3), est.sample(50, random_state=3))
    assert not np.array_equal(est.sample(50, random_state=3), est.sample(50, random_state=4))
    z_cold = est.transform(est.sample(500, random_state=0, temperature=0.5))
    np.testing.assert_allclose(z_cold.std(axis=0), 0.5, atol=0.06)


def test_typicality_is_uniform_on_held_out_data_and_zero_far_away():
    x = np.random.default_rng(0).normal(size=(2000, 2))
    est = _tiny(max_epochs=5).fit(x)
    assert est.heldout_log_likelihood_.shape == (200,)
    fresh = est.typicality(np.random.default_rng(1).normal(size=(2000, 2)))
    assert 40.0 < fresh.mean() < 60.0
    assert (fresh <= 100.0).all() and (fresh >= 0.0).all()
    np.testing.assert_array_equal(est.typicality(np.array([[25.0, -25.0]])), [0.0])


def test_without_validation_the_training_data_is_the_reference():
    x = np.random.default_rng(0).normal(size=(50, 2))
    est = _tiny(validation_fraction=0.0, early_stopping=False).fit(x)
    assert est.history_.val_loss == []
    np.testing.assert_allclose(est.heldout_log_likelihood_, est.score_samples(x))


def test_history_records_the_training():
    x = np.random.default_rng(0).normal(size=(200, 2))
    est = _tiny(max_epochs=4, early_stopping=False).fit(x)
    assert est.history_.n_epochs == 4 and len(est.history_.val_loss) == 4
    assert est.history_.train_loss[-1] < est.history_.train_loss[0]


def test_init_is_keyword_only_and_documents_the_training_parameters():
    with pytest.raises(TypeError):
        FlowDensityEstimator("affine")  # positional: the point of the test
    params = FlowDensityEstimator().get_params()
    for param in TRAINING_PARAMETERS:
        assert param.name in params
        assert f"{param.name} : {param.kind}, default=" in FlowDensityEstimator.__doc__
    assert "[training parameters]" not in FlowDensityEstimator.__doc__


def test_training_parameters_reach_the_loop():
    x = np.random.default_rng(0).normal(size=(100, 2))
    plain = _tiny(max_epochs=2).fit(x).score_samples(x)
    decayed = _tiny(max_epochs=2, weight_decay=0.5).fit(x).score_samples(x)
    clipped = _tiny(max_epochs=2, max_grad_norm=1e-3).fit(x).score_samples(x)
    assert not np.array_equal(plain, decayed) and not np.array_equal(plain, clipped)


# ----------------------------------------------------------------- persistence


def test_joblib_round_trip_keeps_scores_and_samples(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 3))
    est = _tiny(flow="spline", max_epochs=3).fit(x)
    path = tmp_path / "flow.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.score_samples(x), est.score_samples(x))
    np.testing.assert_array_equal(loaded.sample(5, random_state=0), est.sample(5, random_state=0))
    np.testing.assert_array_equal(loaded.typicality(x[:5]), est.typicality(x[:5]))


def test_pickled_image_estimator_keeps_its_layout():
    images = np.random.default_rng(0).random((20, 4, 4, 1)).astype(np.float32)
    est = _tiny(n_levels=1, max_epochs=1).fit(images)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.score_samples(images), est.score_samples(images))
    assert loaded.sample(2, random_state=0).shape == (2, 4, 4, 1)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"flow": "planar"}, ValueError, "flow must be one of"),
        ({"flow": 3}, TypeError, "flow must be a string"),
        ({"backend": "tf"}, ValueError, "backend must be one of"),
        ({"n_layers": 0}, ValueError, "n_layers"),
        ({"hidden_features": 8}, TypeError, "hidden_features must be a sequence"),
        ({"hidden_features": ()}, ValueError, "hidden_features must hold at least one"),
        ({"hidden_features": (8, -1)}, ValueError, "hidden_features"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"max_grad_norm": 0.0}, ValueError, "max_grad_norm"),
        ({"patience": 0}, ValueError, "patience"),
        ({"validation_fraction": 1.5}, ValueError, "validation_fraction"),
        ({"validation_fraction": 0.0}, ValueError, "early_stopping=True needs held-out data"),
        ({"standardize": "yes"}, TypeError, "standardize"),
        ({"device": "tpu"}, ValueError, "device"),
    ],
)
def test_bad_parameters_raise_clear_errors(params, error, match):
    with pytest.raises(error, match=match):
        _tiny(**params).fit(np.zeros((20, 2)))


def test_one_sample_is_too_few_to_hold_out_validation_data():
    with pytest.raises(ValueError, match="n_samples=1 with validation_fraction=0.1"):
        _tiny().fit(np.zeros((1, 2)))


def test_methods_need_a_fit():
    est = _tiny()
    for method in (est.score_samples, est.transform, est.typicality, est.inverse_transform):
        with pytest.raises(NotFittedError):
            method(np.zeros((2, 2)))
    with pytest.raises(NotFittedError):
        est.sample(2)


def test_wrong_latent_width_and_bad_sample_arguments():
    est = _tiny().fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(ValueError, match="Z has 2 latent dimensions"):
        est.inverse_transform(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(0)
    with pytest.raises(ValueError, match="temperature"):
        est.sample(2, temperature=0.0)
    with pytest.raises(TypeError, match="temperature"):
        est.sample(2, temperature="hot")


def test_fit_does_not_modify_its_input():
    x = np.random.default_rng(0).normal(size=(100, 3))
    before = x.copy()
    est = _tiny().fit(x)
    est.score_samples(x)
    est.transform(x)
    np.testing.assert_array_equal(x, before)


# -------------------------------------------------------------------- scripts


def _run_script(path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_gridsearch_example_picks_by_held_out_log_likelihood():
    output = _run_script(ROOT / "examples" / "gridsearch_flow.py", "--quick")
    assert "best parameters:" in output
    scores = [
        float(line.split("|")[3])
        for line in output.splitlines()
        if line.startswith("| ")
        and line.split("|")[3].strip().lstrip("-").replace(".", "", 1).isdigit()
    ]
    best = float(output.split("best held-out log-likelihood:")[1].split()[0])
    assert scores and math.isclose(best, max(scores), abs_tol=1e-3)


def test_benchmark_quick_mode_prints_a_finite_table():
    output = _run_script(ROOT / "benchmarks" / "bench_flows.py", "--quick")
    rows = [line for line in output.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= 3 and "python benchmarks/bench_flows.py --quick" in output
    numbers = [
        float(cell)
        for row in rows[1:]
        for cell in row.strip("| ").split(" | ")[2:]
        if cell.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()
    ]
    assert numbers and all(math.isfinite(n) for n in numbers)


def test_vector_scores_of_a_batch_and_of_single_samples_agree_as_documented():
    """The docs promise agreement to float64 rounding for vector flows."""
    x = np.random.default_rng(0).normal(size=(64, 3))
    est = FlowDensityEstimator(
        max_epochs=2, hidden_features=(8,), device="cpu", random_state=0
    ).fit(x)
    alone = np.concatenate([est.score_samples(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(alone, est.score_samples(x), rtol=1e-12, atol=1e-12)
