"""Where torch runs and how it is seeded: shared by training and inference.

:func:`resolve_device` turns the ``device`` parameter of every estimator into
a usable :class:`torch.device`; :func:`torch_seed` and :func:`seeded` make a
scikit-learn ``random_state`` drive torch's generators without disturbing the
caller's own random stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["resolve_device", "seeded", "torch_seed"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device argument into a usable :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"`` picks CUDA when it is available and the CPU otherwise;
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device` name a
        device explicitly.

    Returns
    -------
    device : torch.device
        The device, with CUDA checked to be present when it is asked for.

    Raises
    ------
    ValueError
        When ``device`` is not a known device, or names CUDA on a machine
        without it.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}."
        )
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}."
        ) from None
    if resolved.type == "cpu":
        return torch.device("cpu")
    if resolved.type != "cuda":
        raise ValueError(
            f"device must be 'auto', 'cpu' or a CUDA device, got {device!r} "
            f"(type {resolved.type!r} is not supported)."
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} asks for CUDA, but CUDA is not available on this machine; "
            "use device='cpu' or device='auto'."
        )
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} names CUDA device {resolved.index}, but only "
            f"{torch.cuda.device_count()} CUDA device(s) are present."
        )
    return resolved


def torch_seed(random_state: Any) -> int:
    """Draw an integer seed for torch from a scikit-learn ``random_state``.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None
        As everywhere in scikit-learn: an int gives the same seed every time,
        a RandomState is advanced by one draw, None draws from numpy's global
        generator.

    Returns
    -------
    seed : int
        A non-negative integer below 2**31, for :class:`torch.Generator`
        and :func:`torch.manual_seed`.

    Examples
    --------
    >>> torch_seed(0) == torch_seed(0)
    True
    """
    rng = check_random_state(random_state)
    return int(rng.randint(np.iinfo(np.int32).max))


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with torch's global generators seeded, restoring them afterwards.

    Network initialisation draws from torch's global generator; seeding it
    inside this block makes a fit reproducible without disturbing the
    caller's own random stream.

    Parameters
    ----------
    seed : int
        Seed for :func:`torch.manual_seed`.
    device : torch.device, optional
        When a CUDA device, its generator is saved and restored too.

    Returns
    -------
    context : contextlib.AbstractContextManager
        A context manager; nothing is bound by ``with ... as``.

    Examples
    --------
    >>> with seeded(0):
    ...     a = torch.rand(2)
    >>> with seeded(0):
    ...     b = torch.rand(2)
    >>> bool(torch.equal(a, b))
    True
    """
    devices: list[int] = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
