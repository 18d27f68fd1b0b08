"""The training loop fed by a Dataset (batches read by DataLoader workers) instead of tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from galaxysim._batches import Rows, batch_bounds, default_num_workers
from galaxysim._loop import TrainingSettings
from galaxysim._training import fit_module, seeded

# fit_module's arguments besides its TrainingSettings.
_CALLABLES = ("augment", "validation_data", "prepare", "validation_augment")


def _data(n: int = 90) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3


class Batches(torch.utils.data.Dataset):
    """``dataset[positions]`` -> the batch of those rows, as the loop's Dataset input expects."""

    def __init__(self, x, y, fail_at=None):
        self.x, self.y, self.fail_at = x, y, fail_at
        self.reads = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, positions):
        positions = np.asarray(positions)
        self.reads.append(positions.copy())
        if self.fail_at is not None and self.fail_at in positions:
            return ValueError(f"Could not read row {self.fail_at}: it is corrupt.")
        return self.x[positions], self.y[positions]


def _mse(module, batch):
    inputs, targets = batch
    return F.mse_loss(module(inputs), targets)


def _net():
    with seeded(0):
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _fit(data, **kwargs):
    net = _net()
    options = dict(max_epochs=3, batch_size=16, learning_rate=0.01, device="cpu", random_state=0)
    options.update(kwargs)
    callables = {k: options.pop(k) for k in _CALLABLES if k in options}
    return net, fit_module(net, data, _mse, TrainingSettings(**options), **callables)


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("even_batches", [False, True])
def test_a_dataset_trains_exactly_as_the_same_tensors(even_batches):
    x, y = _data()
    in_memory, history = _fit((x, y), even_batches=even_batches)
    streamed, streamed_history = _fit(Batches(x, y), even_batches=even_batches)
    assert _same(in_memory, streamed)
    assert history.as_dict() == streamed_history.as_dict()


@pytest.mark.slow
def test_worker_processes_read_ahead_and_give_the_same_training():
    x, y = _data()
    in_memory, history = _fit((x, y))
    streamed, streamed_history = _fit(Batches(x, y), num_workers=1)
    assert _same(in_memory, streamed)
    assert history.train_loss == streamed_history.train_loss


def test_prepare_runs_on_every_batch_before_augment():
    x, y = _data()
    seen = []

    def prepare(batch):
        return batch[0] * 2, batch[1]

    def augment(batch, generator):
        seen.append(batch[0].abs().max().item())
        return batch

    _fit(Batches(x / 2, y), prepare=prepare, augment=augment, max_epochs=1, early_stopping=False)
    assert max(seen) == pytest.approx(x.abs().max().item())


def test_validation_augment_draws_the_same_views_every_epoch():
    x, y = _data()
    draws = []

    def noisy(batch, generator):
        noise = torch.rand(batch[0].shape, generator=generator)
        draws.append(noise)
        return batch[0] + noise, batch[1]

    _, history = _fit(Batches(x, y), validation_augment=noisy, max_epochs=2, early_stopping=False)
    assert len(history.val_loss) == 2 and len(draws) == 2  # 9 validation rows: one batch
    assert torch.equal(draws[0], draws[1])


def test_an_exception_returned_by_the_dataset_is_raised_as_it_is():
    x, y = _data()
    with pytest.raises(ValueError, match=r"^Could not read row 5: it is corrupt\.$"):
        _fit(Batches(x, y, fail_at=5), num_workers=1)


def test_the_split_of_a_dataset_holds_out_the_rows_the_tensors_would():
    x, y = _data()
    dataset = Batches(x, y)
    _fit(dataset, max_epochs=1, early_stopping=False)
    validation = dataset.reads[-1]  # the last pass is the validation one
    assert len(validation) == 9
    training = np.concatenate(dataset.reads[:-1])
    assert sorted(np.concatenate([training, validation]).tolist()) == list(range(90))


def test_bad_streaming_arguments_are_named():
    x, y = _data()
    with pytest.raises(TypeError, match="validation_data must be a torch Dataset"):
        _fit(Batches(x, y), validation_data=(x, y))
    with pytest.raises(ValueError, match="validation_data is empty"):
        _fit(Batches(x, y), validation_data=Batches(x[:0], y[:0]))
    with pytest.raises(ValueError, match="data is empty"):
        _fit(Batches(x[:0], y[:0]))
    with pytest.raises(ValueError, match="num_workers"):
        _fit(Batches(x, y), num_workers=-1)
    with pytest.raises(TypeError, match="prepare"):
        _fit(Batches(x, y), prepare="scale")
    with pytest.raises(TypeError, match="autocast_dtype"):
        _fit(Batches(x, y), autocast_dtype="bf16")


@pytest.mark.slow
def test_keyboard_interrupt_while_streaming_keeps_the_weights_and_stops_the_workers():
    x, y = _data()
    calls = {"n": 0}

    def interrupting(module, batch):
        if module.training:
            calls["n"] += 1
            if calls["n"] > 6:  # 81 training rows in batches of 16: 6 per epoch
                raise KeyboardInterrupt
        return _mse(module, batch)

    net = _net()
    with pytest.warns(RuntimeWarning, match="interrupted after 1 complete epoch"):
        history = fit_module(
            net,
            Batches(x, y),
            interrupting,
            TrainingSettings(
                max_epochs=5,
                batch_size=16,
                learning_rate=0.01,
                device="cpu",
                random_state=0,
                num_workers=1,
            ),
        )
    assert history.interrupted and history.n_epochs == 1
    one_epoch, _ = _fit((x, y), max_epochs=1)
    assert _same(net, one_epoch)
    import torch.multiprocessing as mp

    assert not [p for p in mp.active_children() if p.is_alive()]


def test_bfloat16_autocast_trains_to_a_finite_loss():
    x, y = _data()
    _, history = _fit((x, y), autocast_dtype=torch.bfloat16, max_epochs=2)
    assert np.all(np.isfinite(history.train_loss + history.val_loss))


def test_helpers():
    assert batch_bounds(0, 4, even=False) == [0]
    assert Rows(Batches(*_data()), [4, 2])[np.array([1])][0].shape == (1, 3)
    assert 0 <= default_num_workers() <= 4
