"""The shape of a network before it exists: its tensors' names, shapes and bytes, nothing allocated.

A model file describes a network by its parameters (widths, depths) and
holds its weights. A hostile file can declare widths of 30,000 or a
thousand stages: building that network allocates gigabytes before a single
shape can be compared with the weights stored. :func:`network_shape` builds
it with every floating-point tensor on PyTorch's ``meta`` device (shapes
without memory), keeping on the CPU only the small integer and boolean
tensors that some layers read while they are built (a coupling layer counts
the ones in its mask). It stops as soon as the network has more parts than
the caller allows, so a declared depth costs nothing either.

Reference: PyTorch's meta device,
https://pytorch.org/docs/stable/meta.html.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["NetworkShape", "NetworkTooLargeError", "network_shape"]

# Bytes of integer and boolean tensors (masks, index tables) a build may allocate for real.
_SMALL_TENSOR_BYTES = 16 * 2**20


class NetworkTooLargeError(ValueError):
    """The network being described has more parts, or more small tensors, than allowed."""


@dataclass(frozen=True)
class NetworkShape:
    """What a network would hold, found without allocating it.

    Attributes
    ----------
    tensors : dict of str to (shape, dtype)
        Its ``state_dict``, each entry as its shape and dtype.
    n_bytes : int
        Bytes of all its parameters and buffers (persistent or not): the
        memory building it for real takes.
    """

    tensors: dict[str, tuple[tuple[int, ...], torch.dtype]]
    n_bytes: int


def _constructors() -> set[Callable[..., Any]]:
    from torch.utils._device import _device_constructors

    return set(_device_constructors())


# In-place fills that initialisers call on a new tensor (torch.nn.init).
_FILLS = frozenset(
    ("normal_", "uniform_", "fill_", "zero_", "trunc_normal_", "bernoulli_", "exponential_")
)


def _fills_a_meta_tensor(func: Callable[..., Any], args: tuple, kwargs: dict) -> bool:
    """Whether ``func`` fills a tensor of the meta device in place (``Tensor.normal_``, or
    ``torch.nn.init.normal_``, which passes the tensor by keyword)."""
    if getattr(func, "__name__", None) not in _FILLS:
        return False
    target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
    return isinstance(target, torch.Tensor) and target.is_meta


def _all_ints(args: tuple) -> bool:
    return 1 <= len(args) <= 3 and all(isinstance(a, int) and not isinstance(a, bool) for a in args)


class _ShapesOnly(TorchFunctionMode):
    """Sends floating-point tensor constructors to the meta device; counts the others."""

    def __init__(self) -> None:
        super().__init__()
        self.constructors = _constructors()
        self.small_bytes = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _fills_a_meta_tensor(func, args, kwargs):
            # A meta tensor has no values to fill; PyTorch's meta implementation of the
            # random fills imports torch._dynamo (1-2 s) on its first call.
            return args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        if func not in self.constructors or kwargs.get("device") is not None:
            return func(*args, **kwargs)
        if func is torch.arange and kwargs.get("dtype") is None and _all_ints(args):
            # An index range (int64), counted from its length: PyTorch's meta arange imports
            # sympy (1-3 s) on its first call.
            self._count(len(range(*args)) * 8)
            return func(*args, **kwargs)
        shaped = func(*args, **{**kwargs, "device": "meta"})
        if shaped.is_floating_point() or shaped.is_complex():
            return shaped
        self._count(shaped.nelement() * shaped.element_size())
        return func(*args, **kwargs)

    def _count(self, n_bytes: int) -> None:
        """Count ``n_bytes`` of small tensors built for real; refuse past the limit."""
        self.small_bytes += n_bytes
        if self.small_bytes > _SMALL_TENSOR_BYTES:
            raise NetworkTooLargeError(
                f"building the network needs more than {_SMALL_TENSOR_BYTES:,} bytes of index "
                "tensors; its parameters describe a network far larger than a model file holds."
            )


@contextlib.contextmanager
def _at_most(max_parts: int) -> Iterator[None]:
    """Raise NetworkTooLargeError once over ``max_parts`` modules, parameters and buffers exist."""
    from torch.nn.modules import module as nn_module

    count = 0

    def counted(*args: Any) -> None:
        nonlocal count
        count += 1
        if count > max_parts:
            raise NetworkTooLargeError(
                f"the network has more than {max_parts:,} parts (layers, weights, buffers); "
                "its parameters describe a network far larger than the weights stored."
            )

    handles = [
        nn_module.register_module_module_registration_hook(counted),
        nn_module.register_module_parameter_registration_hook(counted),
        nn_module.register_module_buffer_registration_hook(counted),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def network_shape(build: Callable[[], torch.nn.Module], *, max_parts: int) -> NetworkShape | None:
    """Describe the network ``build()`` makes, without allocating its weights.

    Parameters
    ----------
    build : callable
        Makes the network (for example an estimator's empty network from its
        parameters). Run once, with floating-point tensors on the meta device.
    max_parts : int
        Most modules, parameters and buffers the network may have; building
        stops with :class:`NetworkTooLargeError` beyond it.

    Returns
    -------
    shape : NetworkShape or None
        None when the network cannot be built on the meta device (a layer
        that reads floating-point values while it is built); the caller
        then has no shape to compare before building for real.

    Raises
    ------
    NetworkTooLargeError
        More than ``max_parts`` parts, or more than 16 MiB of integer tensors.

    Examples
    --------
    >>> import torch
    >>> from galaxysim._network_shape import network_shape
    >>> shape = network_shape(lambda: torch.nn.Linear(30000, 30000), max_parts=10)
    >>> shape.tensors["weight"], shape.n_bytes > 3 * 2**30
    (((30000, 30000), torch.float32), True)
    >>> many = lambda: torch.nn.Sequential(*[torch.nn.ReLU()] * 50)
    >>> network_shape(many, max_parts=10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim._network_shape.NetworkTooLargeError: the network has more than 10 parts ...
    """
    try:
        with _at_most(max_parts), _ShapesOnly():
            network = build()
    except NetworkTooLargeError:
        raise
    except (RuntimeError, NotImplementedError) as error:
        if "meta" in str(error):
            return None
        raise
    tensors = {
        name: (tuple(tensor.shape), tensor.dtype) for name, tensor in network.state_dict().items()
    }
    n_bytes = sum(
        t.nelement() * t.element_size() for t in [*network.parameters(), *network.buffers()]
    )
    return NetworkShape(tensors, n_bytes)
