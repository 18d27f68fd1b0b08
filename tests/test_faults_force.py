"""--force never deletes what the user owns: folders a run refuses to replace, checked first.

Every case runs in a scratch folder with HOME pointed at a scratch home
first, so no test ever names the real home folder. Each refused run must end
with exit status 1 and one line, and leave every file under the scratch
folder as it was (no lock file, no temporary folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from galaxysim.app.cli import main
from galaxysim.app.output_folder import OutputFolderError, check_out_folder, staged_output

TINY = [
    "--n-stages",
    "1",
    "--n-blocks",
    "1",
    "--base-channels",
    "4",
    "--max-epochs",
    "1",
    "--flow-max-epochs",
    "1",
    "--n-components",
    "4",
    "--quiet",
]


def earlier_outputs(folder: Path) -> Path:
    """Make ``folder`` look like an earlier run's outputs (summary.json with provenance)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"provenance": {"argv": ["galaxysim", "demo"], "versions": {"galaxysim": "0.1"}}}
    (folder / "summary.json").write_text(json.dumps(record))
    (folder / "ranking.csv").write_text("rank,index\n")
    return folder


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(current, name), root)] = None
        for name in files:
            path = Path(current, name)
            found[os.path.relpath(path, root)] = (
                os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            )
    return found


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch folder holding a scratch HOME (set before anything expands ``~``)."""
    home = earlier_outputs(tmp_path / "home")
    (home / "thesis.tex").write_text("years of work")
    monkeypatch.setenv("HOME", str(home))
    assert Path(os.path.expanduser("~")) == home

    import galaxysim.app.cli as cli

    def no_work(*args, **kwargs):
        raise AssertionError("the run started working")

    monkeypatch.setattr(cli, "_fit_or_reuse", no_work)
    return tmp_path


def _refused(args: list[str], root: Path, capsys, *words: str) -> None:
    before = _tree(root)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    assert _tree(root) == before


def test_the_home_folder_root_and_the_current_folder_are_never_replaced(
    scratch, capsys, monkeypatch
):
    home = scratch / "home"
    _refused(["demo", "--out", str(home), "--force", *TINY], scratch, capsys, "home folder")
    _refused(["demo", "--out", str(scratch), "--force", *TINY], scratch, capsys, "holds your home")
    _refused(["demo", "--out", "/", "--force", *TINY], scratch, capsys, "root folder")
    deep = scratch / "work" / "a" / "b"
    deep.mkdir(parents=True)
    earlier_outputs(scratch / "work")
    earlier_outputs(scratch / "work" / "a")
    monkeypatch.chdir(deep)
    _refused(["demo", "--out", ".", "--force", *TINY], scratch, capsys, "the current folder")
    _refused(["demo", "--out", str(deep), *TINY], scratch, capsys, "the current folder")
    _refused(["demo", "--out", "..", "--force", *TINY], scratch, capsys, "holds the current folder")
    _refused(
        ["demo", "--out", "../..", "--force", *TINY], scratch, capsys, "holds the current folder"
    )
    assert (home / "thesis.tex").read_text() == "years of work"


def _data(folder: Path) -> Path:
    from galaxysim.datasets import make_galaxies

    folder.mkdir(parents=True)
    for i, image in enumerate(make_galaxies(6, image_size=16, random_state=0)[0]):
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"g{i}.png")
    return folder


def test_a_folder_holding_or_inside_an_input_is_never_replaced(scratch, capsys):
    data = _data(scratch / "data")
    queries = earlier_outputs(scratch / "Q")
    query = queries / "q.png"
    Image.new("RGB", (16, 16)).save(query)

    def rank(out: Path, *more: str) -> list[str]:
        return [
            "rank",
            "--data",
            str(data),
            "--query",
            str(query),
            "--out",
            str(out),
            "--force",
            "--crop",
            "16",
            *more,
            *TINY,
        ]

    _refused(rank(queries), scratch, capsys, "--query")
    _refused(rank(data), scratch, capsys, "--data")
    _refused(rank(data / "results"), scratch, capsys, "inside the --data")
    models = earlier_outputs(scratch / "models")
    (models / "model.safetensors").write_bytes(b"weights")
    _refused(rank(models, "--model", str(models / "model.safetensors")), scratch, capsys, "--model")
    outer = earlier_outputs(scratch / "outer")
    index = earlier_outputs(outer / "index")
    for out, words in ((index / "ranked", "inside the --index"), (outer, "holds the --index")):
        _refused(
            [
                "rank",
                "--index",
                str(index),
                "--model",
                str(models / "model.safetensors"),
                "--query",
                str(query),
                "--out",
                str(out),
                "--force",
            ],
            scratch,
            capsys,
            words,
        )
    embeddings = scratch / "embeddings.zarr"
    embeddings.mkdir()
    pytest.importorskip("zarr")
    _refused(
        ["index", "--embeddings", str(embeddings), "--out", str(embeddings), "--force"],
        scratch,
        capsys,
        "--embeddings",
    )
    _refused(
        [
            "embed",
            "--data",
            str(data),
            "--model",
            str(models / "model.safetensors"),
            "--out",
            str(data / "e.zarr"),
        ],
        scratch,
        capsys,
        "inside the --data",
    )


def test_force_replaces_only_an_earlier_runs_outputs(scratch, capsys):
    mine = scratch / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    _refused(
        ["demo", "--out", str(mine), "--force", *TINY],
        scratch,
        capsys,
        "not the outputs of an earlier galaxysim run",
    )
    # A summary.json that is not galaxysim's (no provenance, or nested to exhaustion) is not enough.
    (mine / "summary.json").write_text(json.dumps({"score": 1}))
    _refused(["demo", "--out", str(mine), "--force", *TINY], scratch, capsys, "summary.json")
    (mine / "summary.json").write_text('{"provenance": ' * 100_000 + "1" + "}" * 100_000)
    _refused(["demo", "--out", str(mine), "--force", *TINY], scratch, capsys, "summary.json")
    # An earlier run's folder is replaced as a whole, as documented.
    earlier = earlier_outputs(scratch / "earlier")
    with staged_output(earlier, force=True) as staging:
        (staging / "summary.json").write_text("{}")
    assert sorted(os.listdir(earlier)) == ["summary.json"]


def test_a_dangling_symlink_out_is_one_clear_line(scratch, capsys):
    link = scratch / "link"
    link.symlink_to(scratch / "missing" / "target")
    _refused(
        ["demo", "--out", str(link), *TINY], scratch, capsys, "symbolic link", "does not exist"
    )
    with pytest.raises(OutputFolderError, match="symbolic link"):
        check_out_folder(link)
