"""Checks and random draws shared by the batched augmentations of :mod:`.augment`."""

from __future__ import annotations

import math
from typing import Any

import torch

from .._validation import check_positive_float

_SCALE_RULE = "a pair (low, high) of finite numbers > 0 with low <= high, or None"


def _check_inputs(images: Any, generator: Any) -> torch.Tensor:
    """``images`` after checking that it is a 4-D float tensor and ``generator`` a Generator."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (n, C, H, W), got {type(images).__name__}.")
    if images.ndim != 4 or not images.is_floating_point():
        kind = ValueError if images.is_floating_point() else TypeError
        raise kind(
            f"images must be a 4-D (n, C, H, W) float tensor, got {images.dtype} "
            f"of shape {tuple(images.shape)}."
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}.")
    return images


def _check_amount(value: Any, name: str, upper: float = math.inf) -> float:
    """``value`` as a float in [0, upper]; None means 0 (switched off)."""
    if value is None:
        return 0.0
    value = check_positive_float(value, name, allow_zero=True)
    if value > upper:
        raise ValueError(f"{name} must be in [0, {upper}], got {value!r}.")
    return value


def _check_scale(value: Any, name: str = "scale") -> tuple[float, float]:
    if value is None:
        return 1.0, 1.0
    try:
        low, high = (check_positive_float(v, name) for v in value)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name} must be {_SCALE_RULE}, got {value!r}.") from None
    if low > high:
        raise ValueError(f"{name} must be {_SCALE_RULE}, got {value!r}.")
    return low, high


def _uniform(images: torch.Tensor, generator: torch.Generator | None, *size: int) -> torch.Tensor:
    """Uniform [0, 1) numbers on the images' device (float64 for float64 images)."""
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    return torch.rand(size, generator=generator, device=images.device, dtype=dtype)
