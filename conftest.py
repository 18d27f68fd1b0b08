"""Doctests: those needing an optional extra skip where it is absent; the slow ones are marked.

The README's test command installs only the ``test`` extra; the examples in
these modules' docstrings use zarr (the ``dask`` extra), so they run where it
is installed (as in CI) and are reported as skipped elsewhere. Docstring
examples cannot carry a ``pytest.mark``, so the few that train networks are
marked ``slow`` here (``pytest -m "not slow"`` leaves them out).
"""

from __future__ import annotations

import importlib.util

import pytest

# Module file (relative to this folder) -> the importable names its doctests need.
_DOCTEST_NEEDS = {
    "galaxysim/scale.py": ("zarr",),
    "galaxysim/datasets/chunks.py": ("zarr",),
}


# Docstring examples that train networks or run whole evaluations (seconds each).
_SLOW_DOCTESTS = {
    "galaxysim.app.evaluation.run_evaluation",
    "galaxysim.app.evaluation.evaluate_methods",
    "galaxysim.app.outputs.write_ranking_outputs",
    "galaxysim.embedders.contrastive.ContrastiveEmbedder",
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        if type(item).__name__ != "DoctestItem":
            continue
        if item.name in _SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
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
