"""The package's shape: layers that import downward, seams not sizes, one definition per concept.

These tests read the source with :mod:`ast`; they fail when a change breaks
the layout described in docs/index.md ("Architecture").
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import galaxysim

PACKAGE = Path(galaxysim.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))

# Layers, bottom to top: a module may import from its own layer or below.
LAYERS = {
    "_version": 0,
    "_deprecation": 0,
    "_validation": 0,
    "_device": 0,
    "_parameters": 0,
    "_limits": 0,
    "_atomic": 0,
    "_filelock": 0,
    "_json_input": 0,
    "_network_shape": 0,
    "_loop": 1,
    "_batches": 1,
    "_training": 1,
    "symmetry": 1,
    "metrics": 1,
    "images": 1,
    "plotting": 1,
    "datasets": 2,
    "embedders": 2,
    "flows": 2,
    "ranking": 3,
    "persistence": 4,
    "scale": 4,
    "app": 5,
    "__main__": 5,
    "__init__": 5,
}

# Concepts that must be defined exactly once in the package.
SINGLE_DEFINITIONS = (
    "bits_per_dim",
    "percentile_rank",
    "validation_split",
    "dihedral_views",
    "dihedral_index_maps",
    "random_dihedral",
    "is_image_input",
    "check_positive_float",
    "check_labels",
    "png_data_uri",
    "summarize_ranking",
    "PathLike",
    "TRAINING_PARAMETERS",
    "check_training_parameters",
    "check_early_stopping",
    "check_image_size",
    "check_bool",
    "check_augmentation",
)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _top_part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the galaxysim modules that ``path`` imports (lazily too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add(_resolved(path, node))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "galaxysim" or name.startswith("galaxysim.")}


def _definitions(name: str) -> list[str]:
    """Module-level functions, classes and assignments called ``name`` (methods aside)."""
    places = []
    for path in MODULES:
        for node in ast.parse(path.read_text()).body:
            defined = (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name) or (
                isinstance(node, (ast.Assign, ast.AnnAssign))
                and any(
                    isinstance(target, ast.Name) and target.id == name
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                )
            )
            if defined:
                places.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return places


# Upward imports allowed by name, each done lazily inside one function, with the reason.
ALLOWED_UPWARD = {
    # resolve_init: an estimator's ``init`` may name a model file, which only persistence reads.
    ("galaxysim._training", "galaxysim.persistence"),
}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_point_down(path):
    module = _module_name(path)
    own = LAYERS[_top_part(module)]
    for imported in _imported_modules(path):
        if (module, imported) in ALLOWED_UPWARD:
            continue
        if imported == "galaxysim":
            assert own == LAYERS["__init__"], f"{module} imports the top-level package"
            continue
        target = _top_part(imported)
        assert LAYERS[target] <= own, (
            f"{module} (layer {own}) imports {imported} (layer {LAYERS[target]})"
        )


@pytest.mark.slow
def test_the_library_never_imports_the_app():
    for path in MODULES:
        module = _module_name(path)
        if _top_part(module) in ("app", "__main__"):
            continue
        assert not any(name.startswith("galaxysim.app") for name in _imported_modules(path)), module


@pytest.mark.slow
@pytest.mark.parametrize("name", SINGLE_DEFINITIONS)
def test_each_concept_is_defined_once(name):
    places = _definitions(name)
    assert len(places) == 1, f"{name} is defined at {places}"


def test_no_two_private_helpers_share_the_name_check_labels():
    assert _definitions("_check_labels") == []


def test_every_public_name_imports_from_the_top():
    for name in galaxysim.__all__:
        assert getattr(galaxysim, name) is not None


@pytest.mark.parametrize("name", ["AutoencoderEmbedder", "FlowDensityEstimator"])
def test_torch_estimators_share_the_training_spec_and_take_keywords_only(name):
    from galaxysim._training import TRAINING_PARAMETERS

    estimator = getattr(galaxysim, name)
    parameters = inspect.signature(estimator.__init__).parameters
    shared = [param.name for param in TRAINING_PARAMETERS]
    assert list(parameters)[-len(shared) :] == shared
    assert all(
        p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in parameters.items() if n != "self"
    )
    for parameter in shared:
        assert f"{parameter} : " in estimator.__doc__


# ------------------------------------------------------------------ seams, not sizes

# Functions may take at most this many parameters (self and cls aside); the
# constructors of public classes are exempt, since an estimator's parameters
# are its API.
MAX_PARAMETERS = 8
# Public functions allowed more, each with the reason.
MANY_PARAMETERS = {
    # Every knob of a resumable download is a keyword of the one call users make,
    # as in scikit-learn's fetchers.
    "datasets/_download.py:download_file",
    # Its source, model, store, chunking, crop, size, client and progress are the one
    # call a survey pipeline makes; each is a keyword with a default.
    "scale.py:embed_collection",
}
# The formatter's line width (pyproject.toml, [tool.ruff]).
LINE_WIDTH = 100


def _underscore_imports(path: Path) -> list[str]:
    """``module:name`` for every underscore name ``path`` imports from another galaxysim module."""
    found = []
    own = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        source = _resolved(path, node)
        if not source.startswith("galaxysim") or source == own:
            continue
        found += [
            f"{source}:{alias.name}"
            for alias in node.names
            if alias.name.startswith("_") and not alias.name.startswith("__")
        ]
    return found


def _resolved(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).rsplit(".", 1)[0]
    if path.name == "__init__.py":
        package = _module_name(path).removesuffix(".__init__")
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_another_modules_underscore_names(path):
    assert not _underscore_imports(path), (
        f"{path.relative_to(PACKAGE)} imports {_underscore_imports(path)}: share a helper "
        "through a package-private _name.py module whose names are plain."
    )


def _parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    arguments = node.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def test_functions_take_at_most_eight_parameters():
    too_many = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        public_classes = {
            id(item)
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
            for item in node.body
        }
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            where = f"{path.relative_to(PACKAGE)}:{node.name}"
            constructor = node.name == "__init__" and id(node) in public_classes
            if constructor or where in MANY_PARAMETERS:
                continue
            if _parameter_count(node) > MAX_PARAMETERS:
                too_many.append(f"{where} ({_parameter_count(node)} parameters)")
    assert not too_many, "\n".join(too_many)


def test_the_allowed_exceptions_still_exist():
    for where in MANY_PARAMETERS:
        module, name = where.split(":")
        tree = ast.parse((PACKAGE / module).read_text())
        assert any(
            isinstance(node, ast.FunctionDef) and node.name == name for node in ast.walk(tree)
        ), where


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lines_stay_within_the_formatters_width(path):
    long = [
        number
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if len(line) > LINE_WIDTH and "noqa: E501" not in line
    ]
    assert not long, f"{path.relative_to(PACKAGE)}: lines {long} exceed {LINE_WIDTH} characters"
