"""The README's two commands are the project's contract with a new user and with CI."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_readme_starts_with_demo_and_test_commands():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2
    demo, tests = blocks[0].strip(), blocks[1].strip()
    assert "galaxysim demo" in demo
    assert "pytest" in tests
    # Both start from nothing but Python.
    assert demo.startswith("python3 -m venv") and tests.startswith("python3 -m venv")
    # torch comes first, pinned to the CPU build, before the package.
    assert tests.index("torch==2.13.0") < tests.index('-e ".[test]"')


def test_ci_runs_the_readme_test_command_verbatim():
    tests_command = _bash_blocks((ROOT / "README.md").read_text())[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests_command in ci.splitlines()
    assert "set -euo pipefail" in ci


def test_declared_dependencies_cover_the_design():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~ \[]", d)[0].lower() for d in meta["dependencies"]}
    assert {
        "numpy",
        "scikit-learn",
        "torch",
        "h5py",
        "joblib",
        "pillow",
        "tqdm",
        "matplotlib",
    } <= names
    assert {"test", "jammy", "milkyway", "fits"} <= set(meta["optional-dependencies"])
    assert meta["scripts"]["galaxysim"] == "galaxysim.app.cli:main"
