"""The one PyTorch training loop that every galaxysim estimator uses.

Seeding, the validation split, shuffled mini-batches, Adam, early stopping on
the validation loss (restoring the best weights), a tqdm progress bar when
asked, the loss history and graceful Ctrl-C live here, so that the estimators
only describe their network and their loss. The batches come from tensors in
memory or, for collections larger than memory, from a Dataset read by worker
processes (:mod:`galaxysim._batches`); the training is the same either way.
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from tqdm.auto import tqdm

from ._batches import Batch, PrepareFn, StreamedBatches, TensorBatches, batch_sources
from ._device import seeded, torch_seed
from ._limits import InsufficientMemoryError
from ._parameters import check_early_stopping, check_training_parameters, validation_split
from ._validation import check_bool, check_positive_int

__all__ = [
    "TrainingHistory",
    "TrainingSettings",
    "check_early_stopping",
    "fit_module",
    "validation_split",
]

_Module = TypeVar("_Module", bound=torch.nn.Module)
#: ``loss_fn(module, batch) -> loss`` for a module of type ``_Module``.
LossFn = Callable[[_Module, Batch], torch.Tensor]
AugmentFn = Callable[[Batch, torch.Generator], Batch]


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


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_callables(module: Any, loss_fn: Any, **optional: Any) -> None:
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    for name, value in optional.items():
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, got {type(value).__name__}.")


def _loop_options(even_batches: Any, num_workers: Any, autocast_dtype: Any) -> dict[str, Any]:
    """The checked options of the loop that are not shared training parameters."""
    if autocast_dtype is not None and not isinstance(autocast_dtype, torch.dtype):
        raise TypeError(f"autocast_dtype must be a torch.dtype or None, got {autocast_dtype!r}.")
    return {
        "even_batches": check_bool(even_batches, "even_batches"),
        "num_workers": check_positive_int(num_workers, "num_workers", minimum=0),
        "autocast_dtype": autocast_dtype,
    }


class _Loop:
    """The state of one training run: where the batches come from, optimiser, generators."""

    def __init__(
        self,
        module: torch.nn.Module,
        loss_fn: LossFn[Any],
        sources: tuple[TensorBatches | StreamedBatches, TensorBatches | StreamedBatches | None],
        options: dict[str, Any],
        seed: int,
        split_gen: torch.Generator,
    ) -> None:
        self.module, self.loss_fn, self.device = module, loss_fn, options["device"]
        self.augment, self.validation_augment = options["augment"], options["validation_augment"]
        self.autocast_dtype = options["autocast_dtype"]
        self.batch_size = options["batch_size"]
        self.even_batches = options["even_batches"]
        self.max_grad_norm = options["max_grad_norm"]
        self.learning_rate = options["learning_rate"]
        device = self.device
        module.to(device)
        self.train, self.val = sources
        self.validation_seed = seed + 3
        self.split_gen = split_gen
        self.augment_gen = torch.Generator(device=device).manual_seed(seed + 1)
        weight_decay = options["weight_decay"]
        optimizer_cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
        self.optimizer = optimizer_cls(
            module.parameters(), lr=self.learning_rate, weight_decay=weight_decay
        )
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.n_train = self.train.n_samples
        self.best_state: dict[str, torch.Tensor] | None = None

    def close(self) -> None:
        """Stop any reading processes."""
        for source in (self.train, self.val):
            if source is not None:
                source.close()

    def _loss(self, batch: Batch) -> torch.Tensor:
        if self.autocast_dtype is None:
            return self.loss_fn(self.module, batch)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            return self.loss_fn(self.module, batch).float()

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the shuffled training data; the mean training loss."""
        self.module.train()
        order = torch.randperm(self.n_train, generator=self.split_gen)
        # Summed on the device so that no batch waits for a host sync.
        total = torch.zeros((), device=self.device)
        for batch in self.train(order, self.batch_size, self.even_batches):
            if self.augment is not None:
                batch = self.augment(batch, self.augment_gen)
            loss = self._loss(batch)
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
        # Called only when there is validation data.
        assert self.val is not None
        total = torch.zeros((), device=self.device)
        n_samples = self.val.n_samples
        # A fresh generator for every pass: the same validation views each epoch.
        generator = torch.Generator(device=self.device).manual_seed(self.validation_seed)
        with torch.no_grad():
            for batch in self.val(None, self.batch_size, self.even_batches):
                if self.validation_augment is not None:
                    batch = self.validation_augment(batch, generator)
                total += self._loss(batch).detach() * batch[0].shape[0]
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
    loop: _Loop,
    history: TrainingHistory,
    bar: Any,
    *,
    max_epochs: int,
    early_stopping: bool,
    patience: int,
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
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "could not allocate",
    "not enough memory",
    "failed to allocate",
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


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """How :func:`fit_module` trains: the shared training parameters and the loop's options.

    ``max_epochs``, ``batch_size``, ``learning_rate``, ``weight_decay``,
    ``max_grad_norm``, ``validation_fraction``, ``early_stopping``,
    ``patience``, ``device``, ``random_state`` and ``verbose`` are the
    estimators' training parameters, as
    :data:`~galaxysim._parameters.TRAINING_PARAMETERS` describes and checks
    them (:func:`fit_module` checks them); ``random_state`` also seeds any
    randomness inside the module during training.

    Attributes
    ----------
    desc : str, default="fit"
        Label of the progress bar.
    even_batches : bool, default=False
        Cut the data into ``ceil(n / batch_size)`` batches whose sizes differ
        by at most one, instead of full batches and a smaller last one. For
        losses that compare the samples of a batch with each other, such as
        contrastive ones, a small last batch is an easier, noisier problem
        (docs/contrastive.md, "Even batches").
    num_workers : int, default=0
        Worker processes reading a Dataset (0: read in this process). They
        persist from epoch to epoch, each holding two batches read ahead;
        on a GPU the batches arrive in pinned memory.
    autocast_dtype : torch.dtype, optional
        Run ``loss_fn`` (forward pass and loss) under :func:`torch.autocast`
        with this dtype (e.g. ``torch.bfloat16``); None trains in float32.

    Examples
    --------
    >>> TrainingSettings(max_epochs=3, batch_size=16, learning_rate=0.05, device="cpu").patience
    10
    """

    #: The fields that are the estimators' shared training parameters.
    SHARED: ClassVar[tuple[str, ...]] = (
        "max_epochs",
        "batch_size",
        "learning_rate",
        "weight_decay",
        "max_grad_norm",
        "validation_fraction",
        "early_stopping",
        "patience",
        "device",
        "random_state",
        "verbose",
    )

    max_epochs: int
    batch_size: int
    learning_rate: float
    device: torch.device | str
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    validation_fraction: float = 0.1
    early_stopping: bool = True
    patience: int = 10
    random_state: Any = None
    verbose: int = 0
    desc: str = "fit"
    even_batches: bool = False
    num_workers: int = 0
    autocast_dtype: torch.dtype | None = None


def fit_module(
    module: _Module,
    data: torch.Tensor | Sequence[torch.Tensor] | torch.utils.data.Dataset,
    loss_fn: LossFn[_Module],
    settings: TrainingSettings,
    *,
    augment: AugmentFn | None = None,
    validation_data: torch.Tensor | Sequence[torch.Tensor] | torch.utils.data.Dataset | None = None,
    prepare: PrepareFn | None = None,
    validation_augment: AugmentFn | None = None,
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
    data : torch.Tensor or tuple of torch.Tensor or torch.utils.data.Dataset
        Training data on the CPU, samples along the first dimension. A tuple
        is cut into batches together (e.g. inputs and targets). A Dataset is
        read a batch at a time: ``data[positions]`` (an int64 array) returns
        those samples as a tensor or a tuple of tensors (or an exception
        instance, raised here), read by ``num_workers`` worker processes
        ahead of the training step. The batches, and so the training, are
        the same as from tensors holding the same samples.
    loss_fn : callable
        ``loss_fn(module, batch) -> scalar tensor``: the mean loss of one
        batch, ``batch`` being a tuple of tensors already on ``device``.
    settings : TrainingSettings
        How to train: the estimators' shared training parameters and the
        loop's own options (see :class:`TrainingSettings`).
    augment : callable, optional
        ``augment(batch, generator) -> batch``, applied to each training
        batch on ``device``; ``generator`` is a :class:`torch.Generator` on
        ``device`` to draw the random choices from.
    validation_data : torch.Tensor or tuple of torch.Tensor or Dataset, optional
        Explicit validation data, used instead of holding out part of
        ``data`` (``validation_fraction`` is then ignored); a Dataset when
        ``data`` is one.
    prepare : callable, optional
        ``prepare(batch) -> batch``, run on each batch of a Dataset once it
        is on ``device`` (before ``augment``), e.g. to scale uint8 pixels.
    validation_augment : callable, optional
        ``validation_augment(batch, generator)`` applied to each validation
        batch, with a generator seeded afresh for every pass, so that every
        epoch is measured on the same views.

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
    >>> settings = TrainingSettings(
    ...     max_epochs=3, batch_size=16, learning_rate=0.05, device="cpu", random_state=0
    ... )
    >>> history = fit_module(net, (x, y), mse, settings)
    >>> history.n_epochs
    3
    """
    _check_callables(
        module, loss_fn, augment=augment, prepare=prepare, validation_augment=validation_augment
    )
    if not isinstance(settings, TrainingSettings):
        raise TypeError(f"settings must be a TrainingSettings, got {type(settings).__name__}.")
    options = check_training_parameters(
        {name: getattr(settings, name) for name in TrainingSettings.SHARED}
    )
    options.update(
        _loop_options(settings.even_batches, settings.num_workers, settings.autocast_dtype),
        prepare=prepare,
        augment=augment,
        validation_augment=validation_augment,
    )
    seed = torch_seed(settings.random_state)
    split_gen = torch.Generator().manual_seed(seed)
    loop = _Loop(
        module,
        loss_fn,
        batch_sources(data, validation_data, options, split_gen),
        options,
        seed,
        split_gen,
    )
    history = TrainingHistory()
    bar = tqdm(
        total=options["max_epochs"],
        desc=settings.desc,
        disable=not settings.verbose,
        unit="epoch",
        leave=True,
    )
    try:
        with seeded(seed + 2, options["device"]):
            _run_epochs(
                loop,
                history,
                bar,
                max_epochs=options["max_epochs"],
                early_stopping=settings.early_stopping,
                patience=options["patience"],
            )
    except KeyboardInterrupt:
        _interrupted(history, loop, settings.early_stopping, settings.desc)
    except (MemoryError, RuntimeError) as exc:
        if not _is_out_of_memory(exc):
            raise
        raise _out_of_memory(exc, settings.desc, options["batch_size"], options["device"]) from exc
    finally:
        bar.close()
        loop.close()
        if settings.early_stopping:
            loop.restore_best()
        module.eval()
    return history
