"""Reading image files: PNG, JPEG and TIFF with Pillow, FITS with astropy.

Files become float32 RGB arrays in [0, 1], channels last, as everywhere in
galaxysim.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._validation import PathLike
from .preprocessing import resize

__all__ = ["IMAGE_EXTENSIONS", "load_image", "load_images"]

#: File name endings that :func:`load_images` picks up in a folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".fits", ".fit", ".fts")
_FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


def _read_fits(path: Path) -> np.ndarray:
    try:
        from astropy.io import fits
    except ImportError:
        raise ImportError(
            f"Reading FITS file {str(path)!r} needs astropy: "
            'pip install "galaxysim[fits]".'
        ) from None
    try:
        with fits.open(path, memmap=False) as hdul:
            data = next((hdu.data for hdu in hdul if getattr(hdu, "data", None) is not None), None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"Could not read FITS file {str(path)!r}: {exc}") from None
    if data is None:
        raise ValueError(f"FITS file {str(path)!r} holds no image data.")
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 3 and data.shape[0] in (1, 3, 4) and data.shape[-1] not in (1, 3, 4):
        data = np.moveaxis(data, 0, -1)  # FITS cubes store the band first
    if data.ndim not in (2, 3):
        raise ValueError(
            f"FITS file {str(path)!r} holds data of shape {data.shape}; expected a 2-D "
            "image or a (bands, H, W) cube."
        )
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = data.min(), data.max()
    # Survey FITS are in flux units, not [0, 1]: a linear min-max stretch is the
    # one choice that needs no assumption about the instrument.
    scaled = (data - low) / (high - low) if high > low else np.zeros_like(data)
    if scaled.ndim == 2:
        scaled = scaled[..., np.newaxis]
    return scaled.astype(np.float32)


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                data = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if img.mode.startswith("I;16") else max(float(data.max()), 1.0)
                return (np.clip(data, 0, peak) / peak).astype(np.float32)[..., np.newaxis]
            if img.mode == "F":
                data = np.asarray(img, dtype=np.float32)
                low, high = float(data.min()), float(data.max())
                scaled = (data - low) / (high - low) if high > low else np.zeros_like(data)
                return scaled[..., np.newaxis].astype(np.float32)
            if img.mode in ("RGBA", "LA", "P", "PA"):
                # Composite transparency onto black sky rather than dropping alpha
                # blindly, so transparent margins read as empty sky.
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
                img_rgb = Image.alpha_composite(background, rgba).convert("RGB")
            else:
                img_rgb = img.convert("RGB")
            return np.asarray(img_rgb, dtype=np.float32) / np.float32(255.0)
    except UnidentifiedImageError:
        raise ValueError(
            f"Could not read image file {str(path)!r}: not a PNG/JPEG/TIFF image Pillow "
            "understands, or the file is corrupt."
        ) from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"Could not read image file {str(path)!r}: {exc}") from None


def load_image(path: PathLike, image_size: int | Sequence[int] | None = None) -> np.ndarray:
    """Read one image file as float32 RGB in [0, 1].

    Parameters
    ----------
    path : str or path-like
        A PNG, JPEG or TIFF file (read with Pillow), or a FITS file (needs
        astropy: ``pip install "galaxysim[fits]"``; scaled linearly from its
        minimum to its maximum). Grayscale becomes RGB by repeating the
        channel; transparency is composited onto black.
    image_size : int or (height, width), optional
        Resize to this size with an anti-aliasing (Lanczos) filter.

    Returns
    -------
    image : ndarray of shape (H, W, 3), dtype float32
        Values in [0, 1].

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable image.

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
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Image file {str(path)!r} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(
            f"path {str(path)!r} is a folder; use load_images() to read a folder of images."
        )
    if path.name.lower().endswith(_FITS_EXTENSIONS):
        image = _read_fits(path)
    else:
        image = _read_pillow(path)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image_size is not None:
        image = resize(image, image_size)
    return image


def _list_folder(folder: Path) -> list[Path]:
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".")
        and p.name.lower().endswith(IMAGE_EXTENSIONS + _FITS_EXTENSIONS)
    )
    if not files:
        raise ValueError(
            f"Folder {str(folder)!r} holds no image files (expected endings: "
            f"{', '.join(IMAGE_EXTENSIONS)})."
        )
    return files


def load_images(
    paths_or_folder: PathLike | Iterable[PathLike],
    image_size: int | Sequence[int] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Read several image files into one ``(n, H, W, 3)`` float32 array.

    Parameters
    ----------
    paths_or_folder : path-like or iterable of path-like
        A folder (every image file in it, sorted by name; subfolders and
        hidden files are skipped) or a list of files.
    image_size : int or (height, width), optional
        Resize every image to this size. Without it all images must share
        one size.

    Returns
    -------
    images : ndarray of shape (n, H, W, 3), dtype float32
        Values in [0, 1].
    names : list of str
        The file name (without folder) of each image, in order.

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
    """
    if isinstance(paths_or_folder, (str, os.PathLike)):
        source = Path(paths_or_folder)
        if not source.exists():
            raise FileNotFoundError(f"paths_or_folder {str(source)!r} does not exist.")
        paths = _list_folder(source) if source.is_dir() else [source]
    else:
        try:
            paths = [Path(p) for p in paths_or_folder]
        except TypeError:
            raise TypeError(
                "paths_or_folder must be a folder path or an iterable of file paths, "
                f"got {type(paths_or_folder).__name__}."
            ) from None
        if not paths:
            raise ValueError("paths_or_folder is an empty list; give at least one image file.")
    images = [load_image(p, image_size=image_size) for p in paths]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"The images have different sizes {sorted(shapes)}; pass image_size=(height, width) "
            "to resize them to one size."
        )
    return np.stack(images), [p.name for p in paths]
