"""The documentation site builds without warnings, and its key pages are there.

The build needs the ``docs`` extra (``pip install -e ".[docs]"``); without
it the build test is skipped. It runs the gallery examples in their quick
mode and executes the tutorial notebook, so it is marked ``slow`` (deselect
with ``-m "not slow"``); the other tests here read files only.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import galaxysim

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorials" / "your_own_galaxies.ipynb"

# The modules the API reference covers, each with every name in its __all__.
DOCUMENTED_MODULES = (
    "galaxysim",
    "galaxysim.datasets",
    "galaxysim.images",
    "galaxysim.metrics",
    "galaxysim.plotting",
    "galaxysim.ranking",
    "galaxysim.flows",
    "galaxysim.embedders",
    "galaxysim.embedders.augment",
    "galaxysim.persistence",
    "galaxysim.symmetry",
)

BUILD_REQUIREMENTS = (
    "sphinx",
    "numpydoc",
    "myst_parser",
    "myst_nb",
    "sphinx_gallery",
    "pydata_sphinx_theme",
    "ipykernel",
)


def _api_entries() -> set[str]:
    """Full names listed in the autosummary tables of docs/api.rst."""
    names, module, in_table = set(), None, False
    for line in (DOCS / "api.rst").read_text().splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = match.group(1)
        elif line.startswith(".. autosummary::"):
            in_table = True
        elif in_table and line.startswith("   "):
            if not line.strip().startswith(":"):  # not an option such as :toctree:
                names.add(f"{module}.{line.strip()}")
        elif line.strip():
            in_table = False
    return names


def test_api_reference_lists_every_public_name():
    listed = _api_entries()
    text = (DOCS / "api.rst").read_text()
    missing = []
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name == "__version__":
                found = "galaxysim.__version__" in text
            else:
                obj = getattr(module, name)
                # A name galaxysim re-exports is documented once, under galaxysim.
                found = f"{module_name}.{name}" in listed or any(
                    getattr(galaxysim, top) is obj and f"galaxysim.{top}" in listed
                    for top in galaxysim.__all__
                )
            if not found:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"not in docs/api.rst: {missing}"


def test_tutorial_is_committed_without_outputs():
    notebook = json.loads(TUTORIAL.read_text())
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code_cells)


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    for module in BUILD_REQUIREMENTS:
        pytest.importorskip(
            module, reason='the docs extra is not installed (pip install -e ".[docs]")'
        )
    html = tmp_path / "html"
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "-d",
        str(tmp_path / "doctrees"),
        str(DOCS),
        str(html),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"sphinx failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    )

    for page in ("index", "api", "architecture", "evaluation", "benchmarks", "reliability"):
        assert (html / f"{page}.html").is_file(), page

    ranker = (html / "generated" / "galaxysim.SimilarityRanker.html").read_text()
    assert "galaxysim.SimilarityRanker.rank" in ranker and "Parameters" in ranker

    gallery = (html / "auto_examples" / "milky_way_challenge.html").read_text()
    images = re.findall(r'<img src="\.\./(_images/sphx_glr_milky_way_challenge_\d+\.png)"', gallery)
    assert images and all((html / image).is_file() for image in images)
    assert "Barred Spiral in the top 10" in gallery  # what the example printed

    tutorial = (html / "tutorials" / "your_own_galaxies.html").read_text()
    assert "cell_output" in tutorial
    assert "same ranking:" in tutorial  # printed by the last steps, after loading the saved model
    figures = re.findall(r'<img [^>]*src="\.\./(_images/[0-9a-f]+\.png)"', tutorial)
    assert figures and all((html / figure).is_file() for figure in figures)


def test_every_test_named_in_reliability_md_exists():
    text = (ROOT / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(test_[a-z_0-9]+\.py)::(test_[a-z_0-9]+)`", text))
    assert len(named) > 60
    missing = []
    for module, name in sorted(named):
        source = (ROOT / "tests" / module).read_text()
        if not re.search(rf"^def {name}\(", source, flags=re.MULTILINE):
            missing.append(f"{module}::{name}")
    assert not missing, missing
