import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from galaxysim import __version__
from galaxysim.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"galaxysim {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_demo_writes_grid_and_data(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-samples", "60", "--image-size", "32"]) == 0
    grid = Image.open(out / "galaxies.png")
    assert grid.size[0] > 200 and grid.size[1] > 200
    data = np.load(out / "dataset.npz")
    assert data["images"].shape == (60, 32, 32, 3)
    assert data["query"].shape == (32, 32, 3)
    assert set(np.unique(data["target"])) == set(range(5))
    assert "wrote" in capsys.readouterr().out


def test_demo_refuses_non_empty_folder_without_force(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    keep = out / "mine.txt"
    keep.write_text("user data")
    assert main(["demo", "--out", str(out), "--n-samples", "20", "--image-size", "16"]) == 1
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err and "Traceback" not in err
    assert not (out / "galaxies.png").exists()
    assert main(["demo", "--out", str(out), "--n-samples", "20", "--image-size", "16", "--force"]) == 0
    assert (out / "galaxies.png").exists()
    assert keep.read_text() == "user data"


def test_demo_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["demo", "--out", str(target)]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_bad_argument_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--n-samples", "-3"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_console_entry_point_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "galaxysim", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert __version__ in result.stdout
