"""Tests of the shared training loop in galaxysim._training."""

from __future__ import annotations

import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from galaxysim._training import (
    TorchEstimatorMixin,
    TrainingHistory,
    TrainingSettings,
    fit_module,
    resolve_device,
    seeded,
    torch_seed,
)

# fit_module's arguments besides its TrainingSettings.
_CALLABLES = ("augment", "validation_data", "prepare", "validation_augment")


def _regression_data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return x, y


def _mse(module: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    inputs, targets = batch
    return F.mse_loss(module(inputs), targets)


def _net(seed: int = 0) -> torch.nn.Module:
    with seeded(seed):
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _fit(module=None, data=None, **kwargs) -> tuple[torch.nn.Module, TrainingHistory]:
    module = _net() if module is None else module
    data = _regression_data() if data is None else data
    options = dict(max_epochs=4, batch_size=16, learning_rate=0.01, device="cpu", random_state=0)
    options.update(kwargs)
    callables = {k: options.pop(k) for k in _CALLABLES if k in options}
    return module, fit_module(module, data, _mse, TrainingSettings(**options), **callables)


# --- devices and seeds -------------------------------------------------------------


def test_resolve_device_auto_and_explicit():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_resolve_device_rejects_unknown_devices():
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu0")
    with pytest.raises(TypeError, match="device must be"):
        resolve_device(3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_cuda_missing_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_torch_seed_follows_sklearn_random_state():
    assert torch_seed(3) == torch_seed(3)
    assert torch_seed(3) != torch_seed(4)
    rng = np.random.RandomState(0)
    first, second = torch_seed(rng), torch_seed(rng)
    assert first != second  # a RandomState is advanced, as in scikit-learn
    assert 0 <= first < 2**31


def test_seeded_restores_the_global_generator():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        torch.rand(5)
    assert torch.equal(torch.rand(3), expected)


# --- training --------------------------------------------------------------------


def test_fit_module_lowers_the_loss_and_records_history():
    module, history = _fit(max_epochs=15, early_stopping=False)
    assert history.n_epochs == 15
    assert len(history.train_loss) == len(history.val_loss) == 15
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.best_epoch == 14
    assert not history.stopped_early and not history.interrupted
    assert not module.training  # left in eval mode
    assert set(history.as_dict()) == {
        "train_loss",
        "val_loss",
        "best_epoch",
        "n_epochs",
        "stopped_early",
        "interrupted",
    }


def test_fit_module_is_reproducible_with_a_seed():
    a, history_a = _fit(_net(0), random_state=5)
    b, history_b = _fit(_net(0), random_state=5)
    _c, history_c = _fit(_net(0), random_state=6)
    assert history_a.train_loss == history_b.train_loss
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b)))
    assert history_a.train_loss != history_c.train_loss


def test_fit_module_does_not_modify_the_data():
    data = _regression_data()
    before = tuple(t.clone() for t in data)
    _fit(data=data, augment=lambda batch, gen: tuple(t.mul_(1.0) for t in batch))
    assert all(torch.equal(t, u) for t, u in zip(data, before))


def test_early_stopping_restores_the_best_weights():
    # Validation targets are the negated training targets: once the fit follows the
    # training data, the validation loss can only grow.
    x, y = _regression_data(64)
    val_x, _val_y = _regression_data(32, seed=1)
    val = (val_x, -(val_x @ torch.tensor([[1.0], [-2.0], [0.5]])))
    module, history = _fit(
        data=(x, y), validation_data=val, max_epochs=40, patience=3, learning_rate=0.05
    )
    assert history.stopped_early
    assert history.n_epochs == history.best_epoch + 1 + 3
    assert history.val_loss[history.best_epoch] == min(history.val_loss)
    with torch.no_grad():
        final_val = float(_mse(module, val))
    assert final_val == pytest.approx(min(history.val_loss), rel=1e-5)
    assert final_val < history.val_loss[-1]


def test_keyboard_interrupt_keeps_the_best_weights_so_far():
    data = _regression_data(80)
    n_batches_per_epoch = 5  # 72 training samples in batches of 16
    calls = {"train": 0}

    def interrupting_loss(module, batch):
        if module.training:
            calls["train"] += 1
            if calls["train"] > n_batches_per_epoch:  # first batch of the second epoch
                raise KeyboardInterrupt
        return _mse(module, batch)

    interrupted = _net()
    with pytest.warns(RuntimeWarning, match="interrupted after 1 complete epoch"):
        history = fit_module(
            interrupted,
            data,
            interrupting_loss,
            TrainingSettings(
                max_epochs=10, batch_size=16, learning_rate=0.01, device="cpu", random_state=0
            ),
        )
    assert history.interrupted and history.n_epochs == 1 and history.best_epoch == 0
    one_epoch, _ = _fit(data=data, max_epochs=1, batch_size=16, learning_rate=0.01)
    assert all(torch.equal(p, q) for p, q in zip(_weights(interrupted), _weights(one_epoch)))
    assert not interrupted.training


def test_non_finite_loss_is_a_clear_error():
    def nan_loss(module, batch):
        return _mse(module, batch) * float("nan")

    with pytest.raises(RuntimeError, match="learning_rate"):
        fit_module(
            _net(),
            _regression_data(),
            nan_loss,
            TrainingSettings(max_epochs=2, batch_size=16, learning_rate=0.01, device="cpu"),
        )


def test_too_few_samples_names_n_samples_and_validation_fraction():
    x, y = _regression_data(1)
    with pytest.raises(ValueError, match=r"n_samples=1.*validation_fraction=0.1"):
        _fit(data=(x, y))
    with pytest.raises(ValueError, match="empty"):
        _fit(data=(x[:0], y[:0]))


def test_validation_fraction_zero_needs_early_stopping_off():
    with pytest.raises(ValueError, match="early_stopping=True needs held-out data"):
        _fit(validation_fraction=0.0)
    _, history = _fit(validation_fraction=0.0, early_stopping=False, max_epochs=2)
    assert history.val_loss == [] and len(history.train_loss) == 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"max_epochs": 1.5}, TypeError, "max_epochs"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"max_grad_norm": 0.0}, ValueError, "max_grad_norm"),
        ({"device": "tpu"}, ValueError, "device"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        _fit(**kwargs)


def test_bad_data_is_named():
    x, y = _regression_data()
    with pytest.raises(ValueError, match="same number of samples"):
        _fit(data=(x, y[:10]))
    with pytest.raises(TypeError, match="data"):
        _fit(data=x.numpy())
    with pytest.raises(TypeError, match="loss_fn"):
        fit_module(
            _net(),
            (x, y),
            "mse",
            TrainingSettings(max_epochs=1, batch_size=8, learning_rate=0.1, device="cpu"),
        )


def test_augment_sees_every_training_sample_and_not_validation():
    seen = []

    def record(batch, generator):
        assert isinstance(generator, torch.Generator)
        seen.append(batch[0].shape[0])
        return batch

    _fit(data=_regression_data(100), max_epochs=3, augment=record, early_stopping=False)
    assert sum(seen) == 3 * 90  # 10 of 100 held out for validation


@pytest.mark.parametrize(
    "even_batches, sizes",
    [(False, [16, 16, 16, 16, 16, 10]), (True, [15, 15, 15, 15, 15, 15])],
)
def test_even_batches_spread_the_samples_over_batches_of_nearly_equal_size(even_batches, sizes):
    seen, validation = [], []

    def record(batch, generator):
        seen.append(batch[0].shape[0])
        return batch

    def mse(module, batch):
        if not module.training:
            validation.append(batch[0].shape[0])
        return _mse(module, batch)

    fit_module(
        _net(),
        _regression_data(90),
        mse,
        TrainingSettings(
            max_epochs=1,
            batch_size=16,
            learning_rate=0.01,
            device="cpu",
            random_state=0,
            early_stopping=False,
            validation_fraction=0.0,
            even_batches=even_batches,
        ),
        augment=record,
    )
    assert seen == sizes
    x, y = _regression_data(97)
    seen.clear()
    fit_module(
        _net(),
        (x[:70], y[:70]),
        mse,
        TrainingSettings(
            max_epochs=1,
            batch_size=32,
            learning_rate=0.01,
            device="cpu",
            random_state=0,
            even_batches=even_batches,
        ),
        augment=record,
        validation_data=(x[70:], y[70:]),
    )
    assert sorted(seen) == ([23, 23, 24] if even_batches else [6, 32, 32])
    assert validation == [27]
    with pytest.raises(TypeError, match="even_batches"):
        _fit(even_batches="yes")


def test_gradient_clipping_and_weight_decay_change_the_result():
    plain, _ = _fit()
    clipped, _ = _fit(max_grad_norm=1e-3)
    decayed, _ = _fit(weight_decay=0.5)
    assert not torch.equal(_weights(plain)[0], _weights(clipped)[0])
    assert not torch.equal(_weights(plain)[0], _weights(decayed)[0])


def test_progress_bar_only_when_verbose(capsys):
    _fit(max_epochs=2, desc="quiet")
    assert "quiet" not in capsys.readouterr().err
    _fit(max_epochs=2, desc="chatty", verbose=1)
    err = capsys.readouterr().err
    assert "chatty" in err and "val_loss" in err


# --- pickling ----------------------------------------------------------------------


class _Holder(TorchEstimatorMixin):
    """A stand-in for an estimator holding fitted torch state."""


def test_mixin_pickles_modules_and_tensors(tmp_path):
    holder = _Holder()
    holder.net_ = _net()
    holder.center_ = torch.arange(3.0)
    holder.device_ = torch.device("cpu")
    path = tmp_path / "holder.joblib"
    joblib.dump(holder, path)
    loaded = joblib.load(path)
    assert loaded.device_ == torch.device("cpu")
    assert torch.equal(loaded.center_, holder.center_)
    x = torch.randn(4, 3)
    assert torch.equal(loaded.net_(x), holder.net_(x))
    assert isinstance(holder.device_, torch.device)  # pickling left the original alone


def test_mixin_loads_gpu_state_on_a_cpu_only_machine(monkeypatch):
    holder = _Holder()
    state = {"net_": _net(), "device_": "cuda:0", "alpha": 1}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    holder.__setstate__(state)
    assert holder.device_ == torch.device("cpu")
    assert next(holder.net_.parameters()).device.type == "cpu"
    assert holder.alpha == 1
    again = pickle.loads(pickle.dumps(holder))
    assert again.device_ == torch.device("cpu")
    assert copy.deepcopy(holder).device_ == torch.device("cpu")


# --- the shared training-parameter spec --------------------------------------------


def test_documented_defaults_come_from_the_signature():
    from galaxysim._training import TRAINING_PARAMETERS, documents_training_parameters

    @documents_training_parameters
    class Estimator(TorchEstimatorMixin):
        """An estimator.

        Parameters
        ----------
        [training parameters]
        """

        def __init__(
            self,
            *,
            max_epochs=7,
            batch_size=3,
            learning_rate=0.5,
            weight_decay=0.0,
            max_grad_norm=None,
            validation_fraction=0.2,
            early_stopping=False,
            patience=2,
            device="cpu",
            random_state=None,
            verbose=0,
        ):
            pass

    assert "max_epochs : int, default=7" in Estimator.__doc__
    assert "max_grad_norm : float or None, default=None" in Estimator.__doc__
    assert "[training parameters]" not in Estimator.__doc__
    assert Estimator.__doc__.count(" : ") == len(TRAINING_PARAMETERS)


def test_a_docstring_without_the_marker_is_a_developer_error():
    from galaxysim._training import documents_training_parameters

    with pytest.raises(ValueError, match="training parameters"):
        documents_training_parameters(type("Bare", (), {"__doc__": "No parameters."}))


class _Holder(TorchEstimatorMixin):
    def __init__(self, **params):
        defaults = dict(
            max_epochs=2,
            batch_size=16,
            learning_rate=0.01,
            weight_decay=0.0,
            max_grad_norm=None,
            validation_fraction=0.1,
            early_stopping=True,
            patience=3,
            device="cpu",
            random_state=0,
            verbose=0,
        )
        defaults.update(params)
        self.__dict__.update(defaults)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"max_epochs": 0}, ValueError, "max_epochs"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"max_grad_norm": "big"}, TypeError, "max_grad_norm"),
        ({"early_stopping": "yes"}, TypeError, "early_stopping"),
        ({"validation_fraction": 0.0}, ValueError, "early_stopping=True needs held-out data"),
        ({"random_state": "seed"}, ValueError, "random_state"),
        ({"verbose": -1}, ValueError, "verbose"),
        ({"device": "tpu"}, ValueError, "device"),
    ],
)
def test_shared_parameters_are_checked_once_for_every_estimator(params, error, match):
    with pytest.raises(error, match=match):
        _Holder(**params)._check_training_params()


def test_the_mixin_trains_with_its_parameters_and_overrides():
    holder = _Holder(max_epochs=3, early_stopping=False, validation_fraction=0.0)
    assert holder._check_training_params() == torch.device("cpu")
    history = holder._fit_module(_net(), _regression_data(), _mse, random_state=0)
    assert history.n_epochs == 3
    history = holder._fit_module(_net(), _regression_data(), _mse, random_state=0, max_epochs=1)
    assert history.n_epochs == 1


def test_fit_module_names_settings_that_are_not_training_settings():
    with pytest.raises(TypeError, match="settings must be a TrainingSettings, got dict"):
        fit_module(_net(), _regression_data(), _mse, {"max_epochs": 1, "batch_size": 8})
