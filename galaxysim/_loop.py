"""The one PyTorch training loop that every galaxysim estimator uses.

Seeding, the validation split, shuffled mini-batches, Adam, early stopping on
the validation loss (restoring the best weights), a tqdm progress bar when
asked, the loss history and graceful Ctrl-C live here, so that the estimators
only describe their network and their loss.
"""

from __future__ import annotations

import math
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ._device import seeded, torch_seed
from ._limits import InsufficientMemoryError
from ._parameters import check_early_stopping, check_training_parameters, validation_split
from ._validation import check_bool

__all__ = [
    "TrainingHistory",
    "check_early_stopping",
    "fit_module",
    "validation_split",
]

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]
AugmentFn = Callable[[Batch, torch.Generator], Batch]

# Share of free GPU memory the training data may take when it is moved to the
# device once, instead of copying each batch from pinned host memory.
_GPU_RESIDENT_SHARE = 0.25


@dataclass
class TrainingHistory:
    """What happened during one call of :func:`fit_module`.

    Parameters
    ----------
    train_loss : list of float
        Mean training loss of each epoch (over the epoch's batches, as the
        weights changed during it).
    val_loss : list of float
        Mean validation loss after each epoch; empty when there was no
        validation data.
    best_epoch : int
        Index (0-based, into the lists above) of the epoch whose weights the
        module holds at the end: the lowest validation loss when early
        stopping was on, else the last completed epoch (-1 when no epoch
        completed).
    n_epochs : int
        Number of completed epochs.
    stopped_early : bool
        True when early stopping ended training before ``max_epochs``.
    interrupted : bool
        True when training was interrupted (KeyboardInterrupt).

    Examples
    --------
    >>> TrainingHistory([1.0, 0.5], [1.1, 0.6], 1, 2, False, False).as_dict()["best_epoch"]
    1
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    n_epochs: int = 0
    stopped_early: bool = False
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the history as a plain dict (e.g. for JSON or a DataFrame).

        Returns
        -------
        history : dict
            Keys ``train_loss``, ``val_loss``, ``best_epoch``, ``n_epochs``,
            ``stopped_early``, ``interrupted``; the lists are copies.

        Examples
        --------
        >>> sorted(TrainingHistory().as_dict())[:2]
        ['best_epoch', 'interrupted']
        """
        return asdict(self)


def _as_tensor_tuple(data: Any, name: str) -> Batch:
    tensors = (data,) if isinstance(data, torch.Tensor) else data
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TypeError(
            f"{name} must be a torch.Tensor or a non-empty tuple of tensors, "
            f"got {type(data).__name__}."
        )
    for i, tensor in enumerate(tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{name}[{i}] must be a torch.Tensor, got {type(tensor).__name__}."
            )
        if tensor.ndim == 0:
            raise ValueError(f"{name}[{i}] must have a first (sample) dimension, got a scalar.")
    lengths = {int(t.shape[0]) for t in tensors}
    if len(lengths) != 1:
        raise ValueError(
            f"{name} tensors must all have the same number of samples; "
            f"got first dimensions {[int(t.shape[0]) for t in tensors]}."
        )
    return tuple(tensors)


def _split(
    data: Batch, validation_fraction: float, generator: torch.Generator
) -> tuple[Batch, Batch | None]:
    train_idx, val_idx = validation_split(
        int(data[0].shape[0]),
        validation_fraction,
        lambda n: torch.randperm(n, generator=generator),
    )
    if len(val_idx) == 0:
        return data, None
    return tuple(t[train_idx] for t in data), tuple(t[val_idx] for t in data)


def _place(data: Batch, device: torch.device) -> tuple[Batch, bool]:
    """Put the data where batches are cut from it; True when it lives on ``device``."""
    if device.type == "cpu":
        return data, True
    n_bytes = sum(t.element_size() * t.nelement() for t in data)
    free, _ = torch.cuda.mem_get_info(device)
    if n_bytes <= _GPU_RESIDENT_SHARE * free:
        return tuple(t.to(device) for t in data), True
    # Too large to keep on the GPU: pinned host memory makes each batch copy asynchronous.
    return tuple(t.pin_memory() for t in data), False


def _batches(
    data: Batch,
    order: torch.Tensor | None,
    batch_size: int,
    device: torch.device,
    resident: bool,
    even: bool = False,
) -> Iterator[Batch]:
    n_samples = int(data[0].shape[0])
    n_batches = -(-n_samples // batch_size)
    if even:  # n_batches batches whose sizes differ by at most one
        bounds = [n_samples * i // n_batches for i in range(n_batches + 1)]
    else:  # full batches, the last one smaller
        bounds = [min(batch_size * i, n_samples) for i in range(n_batches + 1)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if order is None:
            batch = tuple(t[start:stop] for t in data)
        else:
            idx = order[start:stop]
            batch = tuple(t[idx] for t in data)
        if not resident:
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
        yield batch


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_callables(module: Any, loss_fn: Any, augment: Any) -> None:
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable or None, got {type(augment).__name__}.")


def _train_and_validation(
    data: Batch,
    validation_data: Any,
    validation_fraction: float,
    early_stopping: bool,
    generator: torch.Generator,
) -> tuple[Batch, Batch | None]:
    if validation_data is None:
        check_early_stopping(early_stopping, validation_fraction)
        return _split(data, validation_fraction, generator)
    val = _as_tensor_tuple(validation_data, "validation_data")
    if len(val) != len(data):
        raise ValueError(
            f"validation_data must hold {len(data)} tensor(s) like data, got {len(val)}."
        )
    if val[0].shape[0] == 0:
        raise ValueError("validation_data is empty (0 samples).")
    if data[0].shape[0] == 0:
        raise ValueError("data is empty (n_samples=0); at least one sample is needed to fit.")
    return data, val


class _Loop:
    """The state of one training run: data on the device, optimiser, generators."""

    def __init__(
        self,
        module: torch.nn.Module,
        loss_fn: LossFn,
        train: Batch,
        val: Batch | None,
        options: dict[str, Any],
        device: torch.device,
        seed: int,
        split_gen: torch.Generator,
        augment: AugmentFn | None,
    ) -> None:
        self.module, self.loss_fn, self.device, self.augment = module, loss_fn, device, augment
        self.batch_size = options["batch_size"]
        self.even_batches = options["even_batches"]
        self.max_grad_norm = options["max_grad_norm"]
        self.learning_rate = options["learning_rate"]
        module.to(device)
        self.train, self.train_resident = _place(train, device)
        self.val, self.val_resident = (None, True) if val is None else _place(val, device)
        self.split_gen = split_gen
        self.augment_gen = torch.Generator(device=device).manual_seed(seed + 1)
        weight_decay = options["weight_decay"]
        optimizer_cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
        self.optimizer = optimizer_cls(
            module.parameters(), lr=self.learning_rate, weight_decay=weight_decay
        )
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.n_train = int(self.train[0].shape[0])
        self.best_state: dict[str, torch.Tensor] | None = None

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the shuffled training data; the mean training loss."""
        self.module.train()
        order = torch.randperm(self.n_train, generator=self.split_gen)
        if self.train_resident and self.device.type != "cpu":
            order = order.to(self.device)
        # Summed on the device so that no batch waits for a host sync.
        total = torch.zeros((), device=self.device)
        batches = _batches(self.train, order, self.batch_size, self.device, self.train_resident,
                           self.even_batches)
        for batch in batches:
            if self.augment is not None:
                batch = self.augment(batch, self.augment_gen)
            loss = self.loss_fn(self.module, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
            self.optimizer.step()
            total += loss.detach() * batch[0].shape[0]
        self.module.eval()
        return self._finite(float(total) / self.n_train, "training", epoch)

    def validation_loss(self, epoch: int) -> float:
        """Mean loss over the validation data, without gradients."""
        total = torch.zeros((), device=self.device)
        n_samples = int(self.val[0].shape[0])
        with torch.no_grad():
            for batch in _batches(self.val, None, self.batch_size, self.device, self.val_resident,
                                  self.even_batches):
                total += self.loss_fn(self.module, batch).detach() * batch[0].shape[0]
        return self._finite(float(total / n_samples), "validation", epoch)

    def _finite(self, loss: float, which: str, epoch: int) -> float:
        if math.isfinite(loss):
            return loss
        self.restore_best()
        raise RuntimeError(
            f"The {which} loss became {loss} in epoch {epoch}; training diverged. "
            f"Try a lower learning_rate (it is {self.learning_rate:g}), and check the input data."
        )


def _run_epochs(
    loop: _Loop, history: TrainingHistory, bar: Any, *, max_epochs: int,
    early_stopping: bool, patience: int,
) -> None:
    """Train epoch after epoch, recording ``history``, until done or stopped early."""
    best_loss = math.inf
    epochs_without_gain = 0
    for epoch in range(max_epochs):
        train_loss = loop.train_epoch(epoch)
        history.train_loss.append(train_loss)
        if loop.val is None:
            history.n_epochs, history.best_epoch = epoch + 1, epoch
            bar.set_postfix(train_loss=f"{train_loss:.4g}")
            bar.update()
            continue
        val_loss = loop.validation_loss(epoch)
        history.val_loss.append(val_loss)
        history.n_epochs = epoch + 1
        bar.set_postfix(train_loss=f"{train_loss:.4g}", val_loss=f"{val_loss:.4g}")
        bar.update()
        if not early_stopping:
            history.best_epoch = epoch
        elif val_loss < best_loss:
            best_loss, loop.best_state = val_loss, _snapshot(loop.module)
            history.best_epoch, epochs_without_gain = epoch, 0
        else:
            epochs_without_gain += 1
            if epochs_without_gain >= patience:
                history.stopped_early = epoch + 1 < max_epochs
                return


def _interrupted(history: TrainingHistory, loop: _Loop, early_stopping: bool, desc: str) -> None:
    history.interrupted = True
    kept_best = early_stopping and loop.best_state is not None
    if kept_best:
        what = f"the weights of the best epoch so far ({history.best_epoch}) are restored"
    else:
        what = "the weights reached so far are kept"
        history.best_epoch = history.n_epochs - 1
    warnings.warn(
        f"{desc}: training interrupted after {history.n_epochs} complete epoch(s); {what}.",
        RuntimeWarning,
        stacklevel=3,
    )


# How the allocators of PyTorch's backends word a failed allocation.
_OUT_OF_MEMORY_MESSAGES = (
    "out of memory", "can't allocate memory", "cannot allocate memory",
    "could not allocate", "not enough memory", "failed to allocate",
)


def _is_out_of_memory(exc: BaseException) -> bool:
    out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, (MemoryError, out_of_memory)):
        return True
    message = str(exc).lower()
    return any(words in message for words in _OUT_OF_MEMORY_MESSAGES)


def _out_of_memory(
    exc: BaseException, desc: str, batch_size: int, device: torch.device
) -> MemoryError:
    """One clear error, with a hint, for an allocation that failed during training."""
    # The frames of the failed step hold its tensors; the traceback is kept for
    # the report, the memory is given back.
    traceback.clear_frames(exc.__traceback__)
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return InsufficientMemoryError(
        f"{desc}: training ran out of memory on {device} ({first_line}). Pass a smaller "
        f"batch_size (now {batch_size}), or smaller images: a smaller crop or image_size "
        "when loading them."
    )


def fit_module(
    module: torch.nn.Module,
    data: torch.Tensor | Sequence[torch.Tensor],
    loss_fn: LossFn,
    *,
    max_epochs: int,
    batch_size: int,
    learning_rate: float,
    validation_fraction: float = 0.1,
    early_stopping: bool = True,
    patience: int = 10,
    device: torch.device | str,
    random_state: Any = None,
    verbose: int = 0,
    augment: AugmentFn | None = None,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = None,
    desc: str = "fit",
    validation_data: torch.Tensor | Sequence[torch.Tensor] | None = None,
    even_batches: bool = False,
) -> TrainingHistory:
    """Train ``module`` in place by mini-batch Adam on ``loss_fn``.

    A random ``validation_fraction`` of the samples is held out (unless
    ``validation_data`` is given); each epoch shuffles the rest, takes one
    optimiser step per batch and then measures the validation loss. With
    ``early_stopping`` training ends once the validation loss has not
    improved for ``patience`` epochs and the weights of the best epoch are
    put back. Ctrl-C (KeyboardInterrupt) ends training the same way, with a
    warning, and returns normally. The module is left in ``eval()`` mode.

    Parameters
    ----------
    module : torch.nn.Module
        The network; it is moved to ``device`` and trained in place.
    data : torch.Tensor or tuple of torch.Tensor
        Training data on the CPU, samples along the first dimension. A tuple
        is cut into batches together (e.g. inputs and targets).
    loss_fn : callable
        ``loss_fn(module, batch) -> scalar tensor``: the mean loss of one
        batch, ``batch`` being a tuple of tensors already on ``device``.
    max_epochs, batch_size, learning_rate, weight_decay, max_grad_norm, \
    validation_fraction, early_stopping, patience, device, random_state, verbose
        The training parameters, as
        :data:`~galaxysim._parameters.TRAINING_PARAMETERS` describes and
        checks them. ``random_state`` also seeds any randomness inside the
        module during training.
    augment : callable, optional
        ``augment(batch, generator) -> batch``, applied to each training
        batch on ``device``; ``generator`` is a :class:`torch.Generator` on
        ``device`` to draw the random choices from.
    desc : str, default="fit"
        Label of the progress bar.
    validation_data : torch.Tensor or tuple of torch.Tensor, optional
        Explicit validation data, used instead of holding out part of
        ``data`` (``validation_fraction`` is then ignored).
    even_batches : bool, default=False
        Cut the data into ``ceil(n / batch_size)`` batches whose sizes differ
        by at most one, instead of full batches and a smaller last one. For
        losses that compare the samples of a batch with each other, such as
        contrastive ones, a small last batch is an easier, noisier problem
        (measured on 2,000 built-in galaxies: same-class rate 0.69 in batches
        of 128, the last of 80, against 0.72 in 16 batches of 125).

    Returns
    -------
    history : TrainingHistory
        Losses per epoch, the best epoch, and how training ended.

    Raises
    ------
    ValueError
        For bad arguments, empty data, or too few samples for both a
        training and a validation set.
    RuntimeError
        When the loss becomes NaN or infinite (the best weights so far are
        restored first).
    MemoryError
        When an allocation fails during training (torch's out-of-memory
        errors become one ``InsufficientMemoryError``, also a ValueError,
        with a hint; the original is its ``__cause__``).

    Examples
    --------
    >>> net = torch.nn.Linear(2, 1)
    >>> x = torch.randn(64, 2)
    >>> y = x.sum(dim=1, keepdim=True)
    >>> def mse(module, batch):
    ...     inputs, targets = batch
    ...     return torch.nn.functional.mse_loss(module(inputs), targets)
    >>> history = fit_module(net, (x, y), mse, max_epochs=3, batch_size=16,
    ...                      learning_rate=0.05, device="cpu", random_state=0)
    >>> history.n_epochs
    3
    """
    _check_callables(module, loss_fn, augment)
    options = check_training_parameters({
        "max_epochs": max_epochs, "batch_size": batch_size, "learning_rate": learning_rate,
        "weight_decay": weight_decay, "max_grad_norm": max_grad_norm,
        "validation_fraction": validation_fraction, "early_stopping": early_stopping,
        "patience": patience, "device": device, "random_state": random_state,
        "verbose": verbose,
    })
    options["even_batches"] = check_bool(even_batches, "even_batches")
    device = options["device"]
    data = _as_tensor_tuple(data, "data")
    seed = torch_seed(random_state)
    split_gen = torch.Generator().manual_seed(seed)
    train, val = _train_and_validation(
        data, validation_data, options["validation_fraction"], early_stopping, split_gen
    )
    loop = _Loop(module, loss_fn, train, val, options, device, seed, split_gen, augment)
    history = TrainingHistory()
    bar = tqdm(total=options["max_epochs"], desc=desc, disable=not verbose, unit="epoch",
               leave=True)
    try:
        with seeded(seed + 2, device):
            _run_epochs(loop, history, bar, max_epochs=options["max_epochs"],
                        early_stopping=early_stopping, patience=options["patience"])
    except KeyboardInterrupt:
        _interrupted(history, loop, early_stopping, desc)
    except (MemoryError, RuntimeError) as exc:
        if not _is_out_of_memory(exc):
            raise
        raise _out_of_memory(exc, desc, options["batch_size"], device) from exc
    finally:
        bar.close()
        if early_stopping:
            loop.restore_best()
        module.eval()
    return history
