"""Where the training loop's batches come from: tensors in memory, or a Dataset read by workers.

:class:`TensorBatches` cuts batches from tensors held in memory (moved to the
GPU once when they fit there). :class:`StreamedBatches` reads them from a
map-style :class:`torch.utils.data.Dataset` whose item is a whole batch
(``dataset[positions]`` gives a tuple of tensors): a
:class:`~torch.utils.data.DataLoader` with worker processes reads and decodes
the next batches while the current one trains, hands them over in pinned
memory for an asynchronous copy to a GPU, and ``prepare`` finishes each batch
on the device (scaling uint8 pixels, say), where batched work is cheapest.
Both cut an epoch into the same batches for the same order, so the two give
the same training.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ._parameters import check_early_stopping, validation_split

__all__ = [
    "Batch",
    "Rows",
    "StreamedBatches",
    "TensorBatches",
    "batch_bounds",
    "batch_sources",
    "default_num_workers",
]

Batch = tuple[torch.Tensor, ...]
PrepareFn = Callable[[Batch], Batch]

# Share of free GPU memory the training data may take when it is moved to the
# device once, instead of copying each batch from pinned host memory.
_GPU_RESIDENT_SHARE = 0.25
# Most reading processes that default_num_workers gives: decoding cutouts
# rarely needs more to keep up with one device.
_MAX_DEFAULT_WORKERS = 4


def batch_bounds(n_samples: int, batch_size: int, even: bool) -> list[int]:
    """Where the batches of ``n_samples`` start and stop: ``n_batches + 1`` increasing numbers.

    ``even`` gives ``ceil(n / batch_size)`` batches whose sizes differ by at
    most one; otherwise full batches and a smaller last one.

    Examples
    --------
    >>> batch_bounds(10, 4, even=False), batch_bounds(10, 4, even=True)
    ([0, 4, 8, 10], [0, 3, 6, 10])
    """
    n_batches = -(-n_samples // batch_size)
    if even:
        return [n_samples * i // n_batches for i in range(n_batches + 1)]
    return [min(batch_size * i, n_samples) for i in range(n_batches + 1)]


def default_num_workers() -> int:
    """Reading processes to use by default: one per core beyond the first, at most 4.

    Examples
    --------
    >>> 0 <= default_num_workers() <= 4
    True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores - 1, _MAX_DEFAULT_WORKERS))


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


class TensorBatches:
    """Batches cut from tensors in memory (on the device when they fit there)."""

    def __init__(self, data: Batch, device: torch.device) -> None:
        self.device = device
        self.data, self.resident = _place(data, device)
        self.n_samples = int(data[0].shape[0])

    def __call__(
        self, order: torch.Tensor | None, batch_size: int, even: bool = False
    ) -> Iterator[Batch]:
        """The batches of one pass, in ``order`` (None: as stored)."""
        if order is not None and self.resident and self.device.type != "cpu":
            order = order.to(self.device)
        bounds = batch_bounds(self.n_samples, batch_size, even)
        for start, stop in itertools.pairwise(bounds):
            if order is None:
                batch = tuple(t[start:stop] for t in self.data)
            else:
                idx = order[start:stop]
                batch = tuple(t[idx] for t in self.data)
            if not self.resident:
                batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
            yield batch

    def close(self) -> None:
        """Nothing to release; present for symmetry with :class:`StreamedBatches`."""


class Rows(torch.utils.data.Dataset):
    """The items of ``dataset`` at ``rows``: ``Rows(d, rows)[p]`` is ``d[rows[p]]``.

    Examples
    --------
    >>> Rows(list(range(10)), np.array([7, 3]))[1]
    3
    """

    def __init__(self, dataset: Any, rows: Sequence[int] | np.ndarray | torch.Tensor) -> None:
        self.dataset = dataset
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions: Any) -> Any:
        return self.dataset[self.rows[positions]]


class _Epoch:
    """The DataLoader's sampler: the batches (arrays of positions) of the pass under way."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _as_is(batch: Any) -> Any:
    return batch


class StreamedBatches:
    """Batches read from a Dataset by DataLoader workers while the device trains.

    ``dataset[positions]`` (an int64 array) must return a tensor or a tuple
    of tensors holding those samples, or an exception instance, which is
    raised here in the main process (one clear error, not a worker's
    traceback). ``prepare`` runs on each batch once it is on ``device``.
    """

    def __init__(
        self,
        dataset: Any,
        device: torch.device,
        *,
        num_workers: int = 0,
        prepare: PrepareFn | None = None,
    ) -> None:
        self.device, self.prepare = device, prepare
        self.n_samples = len(dataset)
        self._epoch = _Epoch()
        self._loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            sampler=self._epoch,
            collate_fn=_as_is,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            prefetch_factor=2 if num_workers > 0 else None,
            pin_memory=device.type == "cuda",
        )

    def __call__(
        self, order: torch.Tensor | None, batch_size: int, even: bool = False
    ) -> Iterator[Batch]:
        """The batches of one pass, in ``order`` (None: as stored)."""
        positions = np.arange(self.n_samples) if order is None else order.cpu().numpy()
        bounds = batch_bounds(self.n_samples, batch_size, even)
        self._epoch.batches = [positions[a:b] for a, b in itertools.pairwise(bounds)]
        for batch in self._loader:
            if isinstance(batch, BaseException):
                raise batch
            batch = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)
            batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
            yield batch if self.prepare is None else self.prepare(batch)

    def close(self) -> None:
        """Stop the worker processes (they persist from one pass to the next until then)."""
        iterator = getattr(self._loader, "_iterator", None)
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._loader._iterator = None


# ----------------------------------------------------------------------------- the split


def _as_tensor_tuple(data: Any, name: str) -> Batch:
    tensors = (data,) if isinstance(data, torch.Tensor) else data
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TypeError(
            f"{name} must be a torch.Tensor or a non-empty tuple of tensors, "
            f"got {type(data).__name__}."
        )
    for i, tensor in enumerate(tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(tensor).__name__}.")
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


def _is_dataset(data: Any) -> bool:
    return isinstance(data, torch.utils.data.Dataset)


def _streamed_train_and_validation(
    data: Any,
    validation_data: Any,
    validation_fraction: float,
    early_stopping: bool,
    generator: torch.Generator,
) -> tuple[Any, Any]:
    """The split of :func:`_train_and_validation` for Datasets: the same rows, as views."""
    if validation_data is None:
        check_early_stopping(early_stopping, validation_fraction)
        train_idx, val_idx = validation_split(
            len(data), validation_fraction, lambda n: torch.randperm(n, generator=generator)
        )
        if len(val_idx) == 0:
            return data, None
        return Rows(data, train_idx), Rows(data, val_idx)
    if not _is_dataset(validation_data):
        raise TypeError(
            "validation_data must be a torch Dataset when data is one, got "
            f"{type(validation_data).__name__}."
        )
    if len(validation_data) == 0:
        raise ValueError("validation_data is empty (0 samples).")
    if len(data) == 0:
        raise ValueError("data is empty (n_samples=0); at least one sample is needed to fit.")
    return data, validation_data


def batch_sources(
    data: Any,
    validation_data: Any,
    options: dict[str, Any],
    generator: torch.Generator,
) -> tuple[TensorBatches | StreamedBatches, TensorBatches | StreamedBatches | None]:
    """Where the training and validation batches of :func:`~galaxysim._loop.fit_module` come from.

    ``options`` holds the checked ``device``, ``validation_fraction``,
    ``early_stopping``, ``num_workers`` and ``prepare``; a Dataset is split
    with the same draws from ``generator`` as tensors of the same length.
    """
    device = options["device"]
    if not _is_dataset(data):
        train, val = _train_and_validation(
            _as_tensor_tuple(data, "data"),
            validation_data,
            options["validation_fraction"],
            options["early_stopping"],
            generator,
        )
        return TensorBatches(train, device), None if val is None else TensorBatches(val, device)
    train, val = _streamed_train_and_validation(
        data,
        validation_data,
        options["validation_fraction"],
        options["early_stopping"],
        generator,
    )
    stream = {"num_workers": options["num_workers"], "prepare": options["prepare"]}
    return (
        StreamedBatches(train, device, **stream),
        None if val is None else StreamedBatches(val, device, **stream),
    )
