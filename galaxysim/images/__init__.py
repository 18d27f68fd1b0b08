"""Images in and out: reading files, cropping, resizing, and ImagePreprocessor.

Images in galaxysim are arrays of shape ``(n, H, W, C)``, channels last as
Pillow and Galaxy10 store them, float32 in [0, 1].

* :mod:`~galaxysim.images.io`: :func:`load_image`, :func:`load_images`.
* :mod:`~galaxysim.images.preprocessing`: :func:`center_crop`,
  :func:`resize`, :func:`preprocess_images`, :class:`ImagePreprocessor`.
"""

from .io import IMAGE_EXTENSIONS, load_image, load_images
from .preprocessing import ImagePreprocessor, center_crop, preprocess_images, resize

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImagePreprocessor",
    "center_crop",
    "load_image",
    "load_images",
    "preprocess_images",
    "resize",
]
