"""Images in and out: reading files, cropping, resizing, and ImagePreprocessor.

Images in galaxysim are arrays of shape ``(n, H, W, C)``, channels last as
Pillow and Galaxy10 store them, float32 in [0, 1].

* :mod:`~galaxysim.images.io`: :func:`load_image`, :func:`load_images`,
  :func:`list_image_files`.
* :mod:`~galaxysim.images.preprocessing`: :func:`center_crop`,
  :func:`resize`, :func:`preprocess_images`, :class:`ImagePreprocessor`.
* :mod:`~galaxysim.images.statistics`: :func:`image_statistics`,
  :func:`sky_noise` (pixel statistics that tell survey images from drawings),
  :func:`radial_profile`, :func:`radial_power_spectrum`.
"""

from .io import IMAGE_EXTENSIONS, list_image_files, load_image, load_images
from .preprocessing import ImagePreprocessor, center_crop, preprocess_images, resize
from .statistics import (
    IMAGE_STATISTICS,
    image_statistics,
    radial_power_spectrum,
    radial_profile,
    sky_noise,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_STATISTICS",
    "ImagePreprocessor",
    "center_crop",
    "image_statistics",
    "list_image_files",
    "load_image",
    "load_images",
    "preprocess_images",
    "radial_power_spectrum",
    "radial_profile",
    "resize",
    "sky_noise",
]
