"""Image input/output and preprocessing.

Images in galaxysim are arrays of shape ``(n, H, W, C)``, channels last as
Pillow and Galaxy10 store them. Files become float32 RGB in [0, 1]; batches
are center-cropped (the original Milky Way study cropped 256 -> 64 pixels at
native scale) and optionally resized with an anti-aliasing filter (cropping
128 pixels and resizing to 64 keeps the spiral arms of large galaxies).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._validation import PathLike, check_image_shape, check_images, check_positive_int

__all__ = [
    "IMAGE_EXTENSIONS",
    "load_image",
    "load_images",
    "center_crop",
    "resize",
    "preprocess_images",
    "ImagePreprocessor",
]

#: File name endings that :func:`load_images` picks up in a folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".fits", ".fit", ".fts")
_FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


def _check_size(value: int | Sequence[int], name: str = "image_size") -> tuple[int, int]:
    """Return an image size ``value`` as ``(height, width)``; an int means a square."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        side = check_positive_int(int(value), name)
        return side, side
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a (height, width) pair, got {value!r}.")
    try:
        pair = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a (height, width) pair, got {value!r}."
        ) from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a (height, width) pair, got {value!r}.")
    return check_positive_int(pair[0], name), check_positive_int(pair[1], name)


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


def _as_batch(images: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    array = np.asarray(images)
    if array.ndim == 3:
        return array[np.newaxis], True
    if array.ndim == 4:
        return array, False
    raise ValueError(
        f"{name} must be one image (H, W, C) or a batch (n, H, W, C); got shape {array.shape}."
    )


def center_crop(images: np.ndarray, image_size: int | Sequence[int]) -> np.ndarray:
    """Cut the central ``image_size`` pixels out of one image or a batch.

    Parameters
    ----------
    images : ndarray of shape (H, W, C) or (n, H, W, C)
        Any dtype; it is kept.
    image_size : int or (height, width)
        Size of the crop; must not exceed the image.

    Returns
    -------
    cropped : ndarray of shape (image_size, image_size, C) or (n, image_size, image_size, C)
        A copy; ``images`` is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import center_crop
    >>> image = np.arange(16).reshape(4, 4, 1)
    >>> center_crop(image, 2)[..., 0]
    array([[ 5,  6],
           [ 9, 10]])
    """
    batch, single = _as_batch(images, "images")
    height, width = _check_size(image_size)
    H, W = batch.shape[1:3]
    if height > H or width > W:
        raise ValueError(
            f"image_size={(height, width)} is larger than the images, which are {H}x{W} pixels."
        )
    top, left = (H - height) // 2, (W - width) // 2
    cropped = batch[:, top:top + height, left:left + width].copy()
    return cropped[0] if single else cropped


def resize(images: np.ndarray, image_size: int | Sequence[int]) -> np.ndarray:
    """Resize one image or a batch with an anti-aliasing (Lanczos) filter.

    Parameters
    ----------
    images : ndarray of shape (H, W, C) or (n, H, W, C)
        uint8, or float in [0, 1].
    image_size : int or (height, width)
        Output size.

    Returns
    -------
    resized : ndarray of shape (..., height, width, C), dtype float32
        Values in [0, 1] (Lanczos overshoot is clipped).

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import resize
    >>> resize(np.ones((8, 8, 3), dtype=np.float32), 4).shape
    (4, 4, 3)
    """
    from PIL import Image

    batch, single = _as_batch(images, "images")
    height, width = _check_size(image_size)
    batch = check_images(batch, name="images")
    n, H, W, C = batch.shape
    if (H, W) == (height, width):
        out = batch
    else:
        out = np.empty((n, height, width, C), dtype=np.float32)
        # Pillow's float mode ("F") resizes one channel at a time at full precision.
        for i in range(n):
            for c in range(C):
                channel = Image.fromarray(batch[i, :, :, c], mode="F")
                out[i, :, :, c] = np.asarray(
                    channel.resize((width, height), Image.Resampling.LANCZOS)
                )
        np.clip(out, 0.0, 1.0, out=out)
    return out[0] if single else out


def preprocess_images(
    images: np.ndarray,
    *,
    crop: int | Sequence[int] | None = None,
    image_size: int | Sequence[int] | None = None,
    name: str = "images",
) -> np.ndarray:
    """Validate, center-crop and resize a batch into float32 in [0, 1].

    Parameters
    ----------
    images : array-like of shape (n, H, W, C)
        uint8 or float in [0, 1].
    crop : int or (height, width), optional
        Center crop applied first (at native scale).
    image_size : int or (height, width), optional
        Resize applied after the crop.
    name : str, default="images"
        Argument name used in error messages.

    Returns
    -------
    processed : ndarray of shape (n, h, w, C), dtype float32

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import preprocess_images
    >>> batch = np.zeros((2, 256, 256, 3), dtype=np.uint8)
    >>> preprocess_images(batch, crop=128, image_size=64).shape
    (2, 64, 64, 3)
    """
    array = np.asarray(images)
    if array.ndim != 4:
        raise ValueError(
            f"{name} must be a batch of images (n, H, W, C); got shape {array.shape}."
        )
    if crop is not None:
        # Cropping before the float conversion keeps the work (and memory)
        # proportional to the output when the input is large uint8.
        array = center_crop(array, crop)
    processed = check_images(array, name=name)
    if image_size is not None:
        processed = resize(processed, image_size)
    return processed


class ImagePreprocessor(TransformerMixin, BaseEstimator):
    """Center-crop and resize images to float32 in [0, 1], as a transformer.

    The first step of a galaxysim pipeline: it turns Galaxy10-style uint8
    cutouts (or float images in [0, 1]) into the fixed-size float images the
    estimators train on.

    Parameters
    ----------
    crop : int or (height, width) or None, default=64
        Center crop at native scale (Galaxy10's 256-pixel cutouts -> 64, as in
        the original study). None keeps the whole image.
    image_size : int or (height, width) or None, default=None
        Resize after cropping, with an anti-aliasing filter. ``crop=128,
        image_size=64`` keeps the arms of large galaxies in a 64-pixel image.
    image_shape : tuple (H, W, C), optional
        Shape of one input image, for flattened ``(n, H*W*C)`` input.
    flatten : bool, default=False
        Return ``(n, h*w*C)`` instead of ``(n, h, w, C)`` (for 2-D sklearn
        tools such as PCA).

    Attributes
    ----------
    image_shape_in_ : tuple of int
        ``(H, W, C)`` of the images seen in ``fit``.
    image_shape_out_ : tuple of int
        ``(h, w, C)`` of the images ``transform`` returns.
    n_features_in_ : int
        Number of values per input image.

    See Also
    --------
    preprocess_images : The function this transformer applies.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import ImagePreprocessor
    >>> X = np.zeros((3, 256, 256, 3), dtype=np.uint8)
    >>> ImagePreprocessor(crop=128, image_size=64).fit_transform(X).shape
    (3, 64, 64, 3)
    """

    def __init__(
        self,
        crop: int | Sequence[int] | None = 64,
        image_size: int | Sequence[int] | None = None,
        image_shape: Sequence[int] | None = None,
        flatten: bool = False,
    ) -> None:
        self.crop = crop
        self.image_size = image_size
        self.image_shape = image_shape
        self.flatten = flatten

    def _as_images(self, X: np.ndarray) -> np.ndarray:
        """Reshape flattened input to (n, H, W, C) without converting values."""
        array = np.asarray(X)
        if array.ndim == 2:
            if self.image_shape is None:
                raise ValueError(
                    f"X is 2-D with shape {array.shape}; ImagePreprocessor needs images "
                    "(n, H, W, C), or flattened images together with image_shape=(H, W, C)."
                )
            shape = check_image_shape(self.image_shape)
            if array.shape[1] != int(np.prod(shape)):
                raise ValueError(
                    f"X has {array.shape[1]} features per sample but image_shape={shape} "
                    f"needs {int(np.prod(shape))}."
                )
            return array.reshape((len(array), *shape))
        if array.ndim == 3:
            return array[..., np.newaxis]
        return array

    def fit(self, X: np.ndarray, y: object = None) -> "ImagePreprocessor":
        """Check the parameters and the images, and record their shapes.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C) or (n, H*W*C)
            Training images.
        y : ignored

        Returns
        -------
        self : ImagePreprocessor
        """
        if self.crop is not None:
            _check_size(self.crop, "crop")
        if self.image_size is not None:
            _check_size(self.image_size, "image_size")
        images = check_images(self._as_images(X), name="X")
        sample = preprocess_images(images[:1], crop=self.crop, image_size=self.image_size, name="X")
        self.image_shape_in_ = tuple(int(s) for s in images.shape[1:])
        self.image_shape_out_ = tuple(int(s) for s in sample.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_in_))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Crop and resize ``X``.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C) or (n, H*W*C)
            Images of the shape seen in ``fit``.

        Returns
        -------
        images : ndarray of shape (n, h, w, C), or (n, h*w*C) when flatten
        """
        check_is_fitted(self)
        array = self._as_images(X)
        if array.shape[1:] != self.image_shape_in_:
            raise ValueError(
                f"X holds images of shape {array.shape[1:]}, but the preprocessor was "
                f"fitted on {self.image_shape_in_}."
            )
        out = preprocess_images(array, crop=self.crop, image_size=self.image_size, name="X")
        return out.reshape(len(out), -1) if self.flatten else out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names ``pixel0 ... pixelN`` of the flattened output values."""
        check_is_fitted(self)
        n_out = int(np.prod(self.image_shape_out_))
        return np.asarray([f"pixel{i}" for i in range(n_out)], dtype=object)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags
