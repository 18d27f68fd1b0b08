"""Doctests of modules that need an optional extra skip, with a reason, where it is absent.

The README's test command installs only the ``test`` extra; the examples in
these modules' docstrings use zarr (the ``dask`` extra), so they run where it
is installed (as in CI) and are reported as skipped elsewhere.
"""

from __future__ import annotations

import importlib.util

import pytest

# Module file (relative to this folder) -> the importable names its doctests need.
_DOCTEST_NEEDS = {
    "galaxysim/scale.py": ("zarr",),
    "galaxysim/datasets/chunks.py": ("zarr",),
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        if type(item).__name__ != "DoctestItem":
            continue
        relative = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        missing = [
            name
            for name in _DOCTEST_NEEDS.get(relative, ())
            if importlib.util.find_spec(name) is None
        ]
        if missing:
            item.add_marker(
                pytest.mark.skip(
                    reason=f'the example needs {", ".join(missing)} (pip install "galaxysim[dask]")'
                )
            )
