"""The package's shape: layers that only import downward, small modules, one definition per concept.

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
    package = _module_name(path).rsplit(".", 1)[0]
    if path.name == "__init__.py":
        package = _module_name(path).removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
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


def test_the_library_never_imports_the_app():
    for path in MODULES:
        module = _module_name(path)
        if _top_part(module) in ("app", "__main__"):
            continue
        assert not any(name.startswith("galaxysim.app") for name in _imported_modules(path)), module


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
