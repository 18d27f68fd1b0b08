"""Where galaxysim keeps downloaded data sets.

One folder holds every downloaded file, so a data set is fetched once per
machine and shared by all scripts. The rule follows scikit-learn's
``get_data_home``: an explicit argument wins, then the ``GALAXYSIM_DATA``
environment variable, then ``~/galaxysim_data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._validation import PathLike

__all__ = ["DATA_HOME_ENV", "get_data_home"]

#: Environment variable that overrides the default data folder.
DATA_HOME_ENV = "GALAXYSIM_DATA"


def get_data_home(data_home: PathLike | None = None, *, create: bool = True) -> Path:
    """Return the folder that holds galaxysim's downloaded data sets.

    Parameters
    ----------
    data_home : str or path-like, optional
        The folder to use. When None, the ``GALAXYSIM_DATA`` environment
        variable is used if set, else ``~/galaxysim_data``. A leading ``~``
        is expanded.
    create : bool, default=True
        Create the folder (and its parents) when it does not exist.

    Returns
    -------
    data_home : pathlib.Path
        The folder, with ``~`` expanded.

    Raises
    ------
    TypeError
        If ``data_home`` is not a path.
    NotADirectoryError
        If the path exists but is a file.

    Examples
    --------
    >>> import tempfile
    >>> from galaxysim.datasets._home import get_data_home
    >>> folder = tempfile.mkdtemp()
    >>> get_data_home(folder).is_dir()
    True
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or os.path.join("~", "galaxysim_data")
    if not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            f"data_home must be a folder path (str or os.PathLike) or None, "
            f"got {type(data_home).__name__}."
        )
    folder = Path(data_home).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"data_home {str(folder)!r} exists but is a file; give a folder instead."
        )
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder
