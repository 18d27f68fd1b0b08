"""Lanczos resampling of one float32 image, at full precision.

Package-private: serves :func:`~galaxysim.images.resize` (a batch, image by
image) and :func:`~galaxysim.images.load_image` (a crop box of a JPEG decoded
at a reduced scale).
"""

from __future__ import annotations

import numpy as np

__all__ = ["lanczos_resize"]


def lanczos_resize(
    image: np.ndarray,
    size: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Lanczos-resize one float32 ``(H, W, C)`` image, or its ``box`` (left, top, right, bottom).

    ``box`` may hold fractions of a pixel: :func:`~galaxysim.images.load_image`
    uses it to cut a crop out of a JPEG decoded at a reduced scale.
    """
    from PIL import Image

    height, width = size
    out = np.empty((height, width, image.shape[2]), dtype=np.float32)
    # Pillow's float mode ("F") resizes one channel at a time at full precision.
    for c in range(image.shape[2]):
        channel = Image.fromarray(np.ascontiguousarray(image[:, :, c]), mode="F")
        out[:, :, c] = np.asarray(
            channel.resize((width, height), Image.Resampling.LANCZOS, box=box)
        )
    return np.clip(out, 0.0, 1.0, out=out)
