"""Reading image files: PNG, JPEG and TIFF with Pillow, FITS with astropy.

Files become float32 RGB arrays in [0, 1], channels last, as everywhere in
galaxysim. Image files come from other people, so reading them is bounded:
only regular files are opened (a FIFO would block forever), the size in the
header is checked against :data:`MAX_IMAGE_PIXELS` before any pixel is
decoded, and a ``crop`` is cut from the decoded 8- or 16-bit data before
the float conversion (JPEG files are even decoded at a reduced scale when
the requested ``image_size`` allows), so that a large file costs one
decoded image at its native bit depth, not a float copy of it.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._limits import check_allocation, check_regular_file
from .._validation import PathLike, check_image_size
from ._lanczos import lanczos_resize
from .preprocessing import resize

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "list_image_files",
    "load_image",
    "load_images",
]

#: File name endings that :func:`load_images` picks up in a folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".fits", ".fit", ".fts")
_FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")

#: Most pixels :func:`load_image` decodes from one file: Pillow's own default
#: (``PIL.Image.MAX_IMAGE_PIXELS``, 89,478,485: 256 MiB as 8-bit RGB with
#: Pillow's four bytes per pixel). A JPEG counts at the scale it is decoded
#: at. Set ``galaxysim.images.io.MAX_IMAGE_PIXELS`` to a larger number, or
#: to None, to read larger files you trust.
MAX_IMAGE_PIXELS: int | None = 89_478_485

_Box = tuple[int, int, int, int]
# Pillow's own limit is lifted (by whoever holds this lock) only while a
# header is parsed, so that galaxysim's limit, which knows the decoding
# scale, decides instead of Pillow's warning or error.
_PILLOW_LIMIT_LOCK = threading.Lock()


class _ImageTooLargeError(ValueError):
    """More pixels than :data:`MAX_IMAGE_PIXELS` (a ValueError like any bad file)."""


def _check_pixels(width: int, height: int, path: Path, scale: int = 1) -> None:
    limit = MAX_IMAGE_PIXELS
    if limit is None or width * height <= limit:
        return
    decoded = f", decoded at 1/{scale} scale," if scale > 1 else ""
    raise _ImageTooLargeError(
        f"Image file {str(path)!r} is {width}x{height} pixels{decoded} "
        f"({width * height / 1e6:,.0f} megapixels); galaxysim decodes at most "
        f"{limit / 1e6:,.0f} megapixels per image, so that a small file cannot take "
        "gigabytes of memory. If you trust the file, raise "
        "galaxysim.images.io.MAX_IMAGE_PIXELS (None lifts the limit), or shrink the "
        "image first."
    )


def _crop_box(width: int, height: int, crop: tuple[int, int] | None, path: Path) -> _Box:
    """(left, top, right, bottom) of the centre crop, placed as :func:`center_crop` places it."""
    if crop is None:
        return 0, 0, width, height
    crop_h, crop_w = crop
    if crop_h > height or crop_w > width:
        raise ValueError(
            f"crop={(crop_h, crop_w)} is larger than image file {str(path)!r}, which is "
            f"{height}x{width} pixels."
        )
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return left, top, left + crop_w, top + crop_h


def _read_fits(path: Path, crop: tuple[int, int] | None) -> np.ndarray:
    try:
        from astropy.io import fits
    except ImportError:
        raise ImportError(
            f'Reading FITS file {str(path)!r} needs astropy: pip install "galaxysim[fits]".'
        ) from None
    try:
        with fits.open(path, memmap=False) as hdul:
            data = None
            for hdu in hdul:
                shape = tuple(getattr(hdu, "shape", ()) or ())
                # The header gives the shape before the data is read.
                if len(shape) >= 2 and MAX_IMAGE_PIXELS is not None:
                    _check_pixels(shape[-1], math.prod(shape[:-1]), path)
                data = getattr(hdu, "data", None)
                if data is not None:
                    break
    except _ImageTooLargeError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"Could not read FITS file {str(path)!r}: {exc}") from None
    if data is None:
        raise ValueError(f"FITS file {str(path)!r} holds no image data.")
    data = np.asarray(data, dtype=np.float64)
    stored = data.shape
    if data.ndim == 3 and data.shape[0] < min(data.shape[1:]):
        data = np.moveaxis(data, 0, -1)  # FITS cubes store the band first
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[-1] not in (1, 3)):
        raise ValueError(
            f"FITS file {str(path)!r} holds data of shape {stored}; galaxysim reads a 2-D "
            "image or a cube of 1 or 3 bands (bands, H, W): write the 3 bands to compare "
            "(as red, green, blue) into a file of their own."
        )
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = data.min(), data.max()
    left, top, right, bottom = _crop_box(data.shape[1], data.shape[0], crop, path)
    data = data[top:bottom, left:right]
    # Survey FITS are in flux units, not [0, 1]: a linear min-max stretch (over
    # the whole image, crop or not) is the one choice that needs no assumption
    # about the instrument.
    scaled = (data - low) / (high - low) if high > low else np.zeros_like(data)
    if scaled.ndim == 2:
        scaled = scaled[..., np.newaxis]
    return scaled.astype(np.float32)


def _open_pillow(path: Path) -> Any:
    from PIL import Image

    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        pass
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _draft_scale(img: Any, box: _Box, image_size: tuple[int, int] | None) -> int:
    """The JPEG reduction (1, 2, 4 or 8) whose crop still has ``image_size`` pixels."""
    if image_size is None or getattr(img, "format", None) != "JPEG":
        return 1
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    out_h, out_w = image_size
    scale = next((s for s in (8, 4, 2) if crop_h // s >= out_h and crop_w // s >= out_w), 1)
    if scale == 1:
        return 1
    width, height = img.size
    # Pillow picks the largest reduction with at least the requested size; asking
    # for the size at ``scale`` makes it pick exactly ``scale``.
    drafted = img.draft(None, (width // scale, height // scale))
    return 1 if drafted is None else round(width / drafted[1][2])


def _pixels(img: Any, box: _Box) -> np.ndarray:
    """The ``box`` of a Pillow image as float32 (H, W, 1 or 3) in [0, 1].

    Scaling that depends on the whole image (the maximum of 32-bit integer
    images, the range of float images) is taken before the crop, so a crop
    of the result equals the result of the crop.
    """
    from PIL import Image

    full = box == (0, 0, *img.size)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(img.getextrema()[1]), 1.0)
        data = np.asarray(img if full else img.crop(box), dtype=np.float64)
        return (np.clip(data, 0, peak) / peak).astype(np.float32)[..., np.newaxis]
    if img.mode == "F":
        low, high = (float(v) for v in img.getextrema())
        data = np.asarray(img if full else img.crop(box), dtype=np.float32)
        scaled = (data - low) / (high - low) if high > low else np.zeros_like(data)
        return scaled[..., np.newaxis].astype(np.float32)
    region = img if full else img.crop(box)
    if region.mode in ("RGBA", "LA", "P", "PA"):
        # Composite transparency onto black sky rather than dropping alpha
        # blindly, so transparent margins read as empty sky.
        rgba = region.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        region = Image.alpha_composite(background, rgba)
    return np.asarray(region.convert("RGB"), dtype=np.float32) / np.float32(255.0)


def _decode(
    img: Any, path: Path, crop: tuple[int, int] | None, image_size: tuple[int, int] | None
) -> np.ndarray:
    """Crop (and, for a reduced JPEG, resize) an opened image while decoding it."""
    width, height = img.size
    box = _crop_box(width, height, crop, path)
    scale = _draft_scale(img, box, image_size)
    _check_pixels(img.size[0], img.size[1], path, scale)  # the size after draft()
    if scale == 1:
        return _pixels(img, box)
    # _draft_scale reduces only when there is an image_size to reach.
    assert image_size is not None
    # The crop in the coordinates of the reduced image, as fractions of a pixel:
    # the whole pixels around it are converted, the Lanczos filter reads the rest.
    exact = tuple(v / scale for v in box)
    outer = (
        math.floor(exact[0]),
        math.floor(exact[1]),
        min(math.ceil(exact[2]), img.size[0]),
        min(math.ceil(exact[3]), img.size[1]),
    )
    inner = (exact[0] - outer[0], exact[1] - outer[1], exact[2] - outer[0], exact[3] - outer[1])
    return lanczos_resize(_pixels(img, outer), image_size, box=inner)


# The EXIF orientations (2-8) as the array operations that show the picture upright,
# as a viewer (and Pillow's ImageOps.exif_transpose) shows it; 5-8 swap height and width.
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}
_EXIF_ORIENTATION = 0x0112


def _orientation(img: Any) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # a damaged EXIF block: as stored
        return 1
    return value if value in _ORIENTATIONS else 1


def _upright(
    img: Any, path: Path, crop: tuple[int, int] | None, image_size: tuple[int, int] | None
) -> np.ndarray:
    """Decode with the crop and size of the upright picture, then turn it upright."""
    orientation = _orientation(img)
    if orientation >= 5:  # the stored picture is the upright one turned by 90 degrees
        crop = crop[::-1] if crop is not None else None
        image_size = image_size[::-1] if image_size is not None else None
    pixels = _decode(img, path, crop, image_size)
    if orientation == 1:
        return pixels
    return np.ascontiguousarray(_ORIENTATIONS[orientation](pixels))


def _read_pillow(
    path: Path, crop: tuple[int, int] | None, image_size: tuple[int, int] | None
) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # galaxysim's own limit has been applied; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open_pillow(path) as img:
                return _upright(img, path, crop, image_size)
    except Image.DecompressionBombError as exc:
        raise ValueError(
            f"Image file {str(path)!r} is larger than Pillow allows ({exc}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS as well as galaxysim.images.io.MAX_IMAGE_PIXELS "
            "if you trust it."
        ) from None
    except UnidentifiedImageError:
        raise ValueError(
            f"Could not read image file {str(path)!r}: not a PNG/JPEG/TIFF image Pillow "
            "understands, or the file is corrupt."
        ) from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"Could not read image file {str(path)!r}: {exc}") from None


def load_image(
    path: PathLike,
    image_size: int | Sequence[int] | None = None,
    *,
    crop: int | Sequence[int] | None = None,
) -> np.ndarray:
    """Read one image file as float32 RGB in [0, 1], centre-cropped and resized while decoding.

    Parameters
    ----------
    path : str or path-like
        A regular file: PNG, JPEG or TIFF (read with Pillow), or FITS (needs
        astropy: ``pip install "galaxysim[fits]"``; scaled linearly from its
        minimum to its maximum). Grayscale becomes RGB by repeating the
        channel; transparency is composited onto black. An EXIF orientation
        (a phone's JPEG) is applied: the image is returned upright, as a
        viewer shows it, and ``crop`` and ``image_size`` are of the upright
        image.
    image_size : int or (height, width), optional
        Resize to this size (after ``crop``) with an anti-aliasing (Lanczos)
        filter. A JPEG is decoded at 1/2, 1/4 or 1/8 scale when the crop
        at that scale still has at least ``image_size`` pixels.
    crop : int or (height, width), optional
        Centre crop at native scale, as
        :func:`~galaxysim.images.center_crop` cuts it, taken from the
        decoded 8- or 16-bit pixels before they become float.

    Returns
    -------
    image : ndarray of shape (H, W, 3), dtype float32
        Values in [0, 1]. Without a reduced JPEG decode it equals
        ``preprocess_images(load_image(path)[None], crop=crop,
        image_size=image_size)[0]``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a regular file (a FIFO, a device) or not a
        readable image, if it has more than :data:`MAX_IMAGE_PIXELS` pixels
        to decode, or if ``crop`` is larger than the image.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from PIL import Image
    >>> from galaxysim.images import load_image
    >>> path = os.path.join(tempfile.mkdtemp(), "gray.png")
    >>> Image.fromarray(np.full((8, 6), 255, dtype=np.uint8)).save(path)
    >>> load_image(path).shape
    (8, 6, 3)
    >>> load_image(path, image_size=4).shape
    (4, 4, 3)
    >>> load_image(path, crop=(4, 2)).shape
    (4, 2, 3)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a file path (str or os.PathLike), got {type(path).__name__}."
        )
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"path {str(path)!r} is a folder; use load_images() to read a folder of images."
        )
    check_regular_file(path, "Image file")
    size = check_image_size(image_size, "image_size") if image_size is not None else None
    crop = check_image_size(crop, "crop") if crop is not None else None
    if size is not None:  # the resized image, and the filter's work on it
        check_allocation(
            16 * size[0] * size[1],
            f"an image resized to {size[0]}x{size[1]}",
            "Pass a smaller image_size.",
        )
    if path.name.lower().endswith(_FITS_EXTENSIONS):
        image = _read_fits(path, crop)
    else:
        image = _read_pillow(path, crop, size)
    if size is not None and image.shape[:2] != size:
        image = resize(image, size)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def list_image_files(folder: PathLike) -> list[Path]:
    """The image files in ``folder`` that :func:`load_images` reads, in the order it reads them.

    Files are matched by their endings (:data:`IMAGE_EXTENSIONS`, and ``.gz``
    FITS files), hidden files are skipped, sub-folders are not entered, and
    the order is sorted by name: the row order of every collection read from
    a folder.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder of images.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ValueError
        If the folder holds no image file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from galaxysim.images import list_image_files
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("b.png", "a.jpg", "notes.txt", ".hidden.png"):
    ...     Image.new("RGB", (4, 4)).save(folder / name, format="PNG")
    >>> [path.name for path in list_image_files(folder)]
    ['a.jpg', 'b.png']
    """
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.name.lower().endswith(IMAGE_EXTENSIONS + _FITS_EXTENSIONS)
    )
    if not files:
        raise ValueError(
            f"Folder {str(folder)!r} holds no image files (expected endings: "
            f"{', '.join(IMAGE_EXTENSIONS)})."
        )
    return files


def _source_paths(paths_or_folder: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(paths_or_folder, (str, os.PathLike)):
        source = Path(paths_or_folder)
        if not source.exists():
            raise FileNotFoundError(f"paths_or_folder {str(source)!r} does not exist.")
        return list_image_files(source) if source.is_dir() else [source]
    try:
        paths = [Path(p) for p in paths_or_folder]
    except TypeError:
        raise TypeError(
            "paths_or_folder must be a folder path or an iterable of file paths, "
            f"got {type(paths_or_folder).__name__}."
        ) from None
    if not paths:
        raise ValueError("paths_or_folder is an empty list; give at least one image file.")
    return paths


def load_images(
    paths_or_folder: PathLike | Iterable[PathLike],
    image_size: int | Sequence[int] | None = None,
    *,
    crop: int | Sequence[int] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Read several image files into one ``(n, H, W, 3)`` float32 array, one file at a time.

    Each file is decoded, cropped and resized by :func:`load_image` straight
    into a preallocated result, so the memory needed is the result plus one
    decoded image.

    Parameters
    ----------
    paths_or_folder : path-like or iterable of path-like
        A folder (every image file in it, sorted by name; subfolders and
        hidden files are skipped) or a list of files.
    image_size : int or (height, width), optional
        Resize every image (after ``crop``) to this size. Without it all
        images (or crops) must share one size.
    crop : int or (height, width), optional
        Centre crop of every image at native scale, before any resize.

    Returns
    -------
    images : ndarray of shape (n, H, W, 3), dtype float32
        Values in [0, 1].
    names : list of str
        The file name (without folder) of each image, in order.

    Raises
    ------
    InsufficientMemoryError
        (a MemoryError and a ValueError) If the result would not fit in the
        memory available.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from PIL import Image
    >>> from galaxysim.images import load_images
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("a.png", "b.png"):
    ...     Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(os.path.join(folder, name))
    >>> images, names = load_images(folder)
    >>> images.shape, names
    ((2, 8, 8, 3), ['a.png', 'b.png'])
    >>> load_images(folder, image_size=2, crop=4)[0].shape
    (2, 2, 2, 3)
    """
    paths = _source_paths(paths_or_folder)
    images = None
    for i, path in enumerate(paths):
        image = load_image(path, image_size=image_size, crop=crop)
        if images is None:
            check_allocation(
                len(paths) * image.nbytes,
                f"{len(paths)} images of shape {image.shape}",
                "Pass crop= and/or image_size= to read them smaller, or read fewer files.",
            )
            images = np.empty((len(paths), *image.shape), dtype=np.float32)
        elif image.shape != images.shape[1:]:
            raise ValueError(
                f"The images have different shapes (height, width, channels): {str(path)!r} "
                f"is {image.shape}, {str(paths[0])!r} is {images.shape[1:]}; pass crop= or "
                "image_size=(height, width) so that all images end up the same size."
            )
        images[i] = image
    # _source_paths refuses an empty list, so the loop ran and made ``images``.
    assert images is not None
    return images, [p.name for p in paths]
