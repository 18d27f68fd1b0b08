"""Sphinx configuration of the galaxysim documentation.

Build (from the repository root, with the ``docs`` extra installed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The build writes three folders besides its output, all ignored by git:
``docs/generated/`` (autosummary pages of the API reference),
``docs/auto_examples/`` (the gallery made from ``examples/``) and
``docs/_build/``. The gallery runs every example with ``--quick`` and the
tutorial notebooks are executed on every build, so the site shows output the
code of this checkout produced.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import shutil
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

from sphinx.pycode import ModuleAnalyzer

import galaxysim

# -- Project -----------------------------------------------------------------

project = "galaxysim"
author = "The galaxysim developers"
copyright = "The galaxysim developers"
release = galaxysim.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions --------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # myst-nb reads Markdown pages (it brings myst-parser) and runs notebooks.
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    # sphinx-gallery writes a Jupyter notebook of every example next to its
    # page, for download; it is not a page of its own.
    "auto_examples/*.ipynb",
]

# -- API reference (autodoc, autosummary, numpydoc) --------------------------

autosummary_generate = True
# A class page is the class and its members, as autodoc_default_options says
# (the built-in template adds a table of every inherited scikit-learn method).
templates_path = ["_templates"]
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    # Methods a class inherits from galaxysim's own mixins and bases (such as
    # complexity_corrected_score or the DensityFlow interface) are shown;
    # those of scikit-learn, torch and Python are not.
    "inherited-members": ",".join(
        [
            "BaseEstimator",
            "TransformerMixin",
            "DensityMixin",
            "ClassNamePrefixFeaturesOutMixin",
            "_SetOutputMixin",
            "_MetadataRequester",
            "ReprHTMLMixin",
            "_HTMLDocumentationLinkMixin",
            "Module",
            "ABC",
            "object",
            "Exception",
            "OSError",
            "ValueError",
        ]
    ),
}


def _skip_foreign_member(app, what, name, obj, skip, options):
    """Leave out what scikit-learn attaches to every estimator class.

    scikit-learn writes ``set_fit_request``-style methods into each estimator
    class itself; they belong to scikit-learn's metadata routing and are
    documented there.
    """
    if what == "class" and (getattr(obj, "__module__", None) or "").startswith("sklearn."):
        return True
    return None


def _attribute_doc(app, what, name, obj, options, lines):
    """Give a re-exported constant the ``#:`` comment of the module that defines it.

    ``galaxysim.datasets.GALAXY10_CLASSES`` is defined (with its ``#:``
    documentation comment) in a submodule; autodoc reads comments only in the
    module it was asked about and would show the docstring of ``tuple``.
    """
    own = [line for line in lines if line.strip()]
    if what != "data" or own != [
        t for t in (inspect.getdoc(type(obj)) or "").splitlines() if t.strip()
    ]:
        return
    package_name, _, attribute = name.rpartition(".")
    package = importlib.import_module(package_name)
    names = [package_name]
    if hasattr(package, "__path__"):
        names += [info.name for info in pkgutil.walk_packages(package.__path__, package_name + ".")]
    for module_name in names:
        module = importlib.import_module(module_name)
        if getattr(module, attribute, None) is not obj:
            continue
        docs = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attribute))
        if docs:
            lines[:] = list(docs)
            return


autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autoclass_content = "class"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- Markdown and notebooks (myst-nb) -----------------------------------------

myst_enable_extensions = ["colon_fence", "dollarmath"]
# Anchors such as ``benchmarks.md#search-latency`` in the user guide.
myst_heading_anchors = 3
# Every build executes the notebooks afresh; a failing cell fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# -- Gallery (sphinx-gallery) ------------------------------------------------

# Examples that take ``--out`` write their figures into a fresh folder; the
# scraper below puts each figure such an example wrote on its gallery page.
_OUTPUT_FOLDERS: dict[str, tempfile.TemporaryDirectory] = {}


def _example_argv(gallery_conf, script_vars):
    """Command-line arguments of an example in the gallery: its quick mode.

    The gallery runs an example with ``__doc__`` set to ``""``; the examples
    use their docstring (as ``argparse`` description), so it is put back, as
    ``python examples/<name>.py`` would have it.
    """
    source = Path(script_vars["src_file"])
    text = source.read_text(encoding="utf-8")
    script_vars["example_globals"]["__doc__"] = ast.get_docstring(ast.parse(text), clean=False)
    argv = ["--quick"]
    if '"--out"' in text:
        folder = tempfile.TemporaryDirectory(prefix=f"galaxysim-gallery-{source.stem}-")
        _OUTPUT_FOLDERS[str(source)] = folder
        argv += ["--out", folder.name]
    return argv


def _written_figures_scraper(block, block_vars, gallery_conf):
    """Show the PNG files an example wrote into its ``--out`` folder.

    galaxysim's figures are :class:`matplotlib.figure.Figure` objects made
    without pyplot, so the gallery's pyplot scraper does not see them; the
    examples save them instead, and this scraper collects what was saved.
    """
    from sphinx_gallery.scrapers import figure_rst

    folder = _OUTPUT_FOLDERS.get(str(block_vars["src_file"]))
    if folder is None:
        return ""
    shown = block_vars.setdefault("galaxysim_shown_figures", set())
    image_paths = []
    for png in sorted(Path(folder.name).rglob("*.png")):
        if png in shown:
            continue
        shown.add(png)
        target = next(block_vars["image_path_iterator"])
        shutil.copyfile(png, target)
        image_paths.append(target)
    return figure_rst(image_paths, gallery_conf["src_dir"]) if image_paths else ""


sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Every example, not only files named plot_*.
    "filename_pattern": r"\.py$",
    "reset_argv": _example_argv,
    "image_scrapers": ("matplotlib", _written_figures_scraper),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    # No sg_execution_times.rst in docs/ (each example page shows its time).
    "write_computation_times": False,
    "show_memory": False,
    # The gallery's own cross-reference index is not used.
    "backreferences_dir": None,
    "doc_module": (),
}

# One torch thread: on a small shared machine more threads make the tiny
# quick-mode models slower, not faster.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# -- HTML --------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"galaxysim {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
# Quotes and ellipses only: command-line options such as --quick keep their two dashes.
smartquotes_action = "qe"
# The gallery configuration holds functions (above), which Sphinx cannot
# pickle with the environment; it says so once per build.
suppress_warnings = ["config.cache"]


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_member)
    # Before numpydoc (priority 500) reformats the docstring.
    app.connect("autodoc-process-docstring", _attribute_doc, priority=400)
