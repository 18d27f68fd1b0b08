"""Data sets: Galaxy10 DECaLS (load and fetch), built-in synthetic galaxies, the Milky Way,
and ImageCollection for collections on disk that are read a batch at a time."""

from ._download import (
    ChecksumMismatchError,
    DownloadError,
    DownloadInProgressError,
    IncompleteDownloadError,
)
from ._home import get_data_home
from .galaxy10 import (
    GALAXY10_CLASSES,
    SEED_CLASSES,
    fetch_galaxy10_decals,
    load_galaxy10_decals,
)
from .galaxy10_folder import load_galaxy10_folder
from .image_collection import ImageCollection
from .milky_way import illustration_path, load_milky_way
from .synthetic import SYNTHETIC_CLASSES, make_galaxies, make_milky_way

__all__ = [
    "GALAXY10_CLASSES",
    "SEED_CLASSES",
    "SYNTHETIC_CLASSES",
    "ChecksumMismatchError",
    "DownloadError",
    "DownloadInProgressError",
    "ImageCollection",
    "IncompleteDownloadError",
    "fetch_galaxy10_decals",
    "get_data_home",
    "illustration_path",
    "load_galaxy10_decals",
    "load_galaxy10_folder",
    "load_milky_way",
    "make_galaxies",
    "make_milky_way",
]
