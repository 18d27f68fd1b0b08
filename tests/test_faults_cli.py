"""Faults at the command line: untrusted model files, interrupted and concurrent runs, bad paths.

Each test gives the ``galaxysim`` command something that went wrong before:
a pickle that runs code, Ctrl-C while outputs are written, two runs into one
folder, a read-only folder, a FIFO, an impossible allocation. The command
must end quickly with one line and exit status 1 (130 when interrupted),
never run code from a model file, and never leave ``--out`` half-written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from galaxysim.app.cli import main

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

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
DEMO = ["--n-samples", "60", "--image-size", "16", *TINY]
OUTPUTS = {
    "ranking.csv",
    "neighbours.png",
    "latent.png",
    "training.png",
    "reconstructions.png",
    "generated.png",
    "summary.json",
    "report.html",
    "model.safetensors",
}
ROOT = Path(__file__).resolve().parents[1]

# Runs the command in a child process that pauses once its figures are written
# (after ranking.csv, before summary.json, the report and the model): it prints
# PAUSED, then waits until the file named by GALAXYSIM_TEST_GO exists.
PAUSING_DRIVER = textwrap.dedent("""
    import os, sys, time
    import galaxysim.app.outputs as outputs
    from galaxysim.app.cli import main

    original = outputs._write_figures

    def paused(*args, **kwargs):
        files = original(*args, **kwargs)
        print("PAUSED", flush=True)
        deadline = time.monotonic() + 120
        while not os.path.exists(os.environ["GALAXYSIM_TEST_GO"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        return files

    outputs._write_figures = paused
    sys.exit(main(sys.argv[1:]))
""")


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _start_paused(args: list[str], go: Path) -> subprocess.Popen:
    env = dict(_env(), GALAXYSIM_TEST_GO=str(go))
    return subprocess.Popen(
        [sys.executable, "-c", PAUSING_DRIVER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_pause(process: subprocess.Popen) -> None:
    for line in process.stdout:
        if line.strip() == "PAUSED":
            return
    raise AssertionError(f"the run ended before pausing: {process.wait()} {process.stderr.read()}")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _leftovers(parent: Path, out: Path) -> list[str]:
    """Anything beside ``out`` that a run created (temporary folders, lock files)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}"))


def _image_folder(
    folder: Path,
    n: int = 12,
    size: int = 16,
    labelled: bool = False,
    names: list[str] | None = None,
) -> Path:
    from galaxysim.datasets import make_galaxies

    X, y = make_galaxies(n, image_size=size, random_state=2)
    folder.mkdir()
    names = names or []
    names = names + [f"g{i:02d}.png" for i in range(len(names), n)]
    for name, image in zip(names, X):
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / name, format="PNG")
    if labelled:
        rows = [f"{name},{int(label) + 5}" for name, label in zip(names, y)]
        (folder / "labels.csv").write_text("filename,ans\n" + "\n".join(rows) + "\n")
    return folder / names[0]


def _mark_as_earlier_outputs(folder: Path) -> None:
    """A summary.json with a provenance record, as every run writes: --force may replace it."""
    record = {"provenance": {"argv": ["galaxysim", "demo"], "versions": {"galaxysim": "0"}}}
    (folder / "summary.json").write_text(json.dumps(record))


def _rank_args(data: Path, query: Path, out: Path, *more: str) -> list[str]:
    return [
        "rank",
        "--data",
        str(data),
        "--query",
        str(query),
        "--out",
        str(out),
        "--crop",
        "16",
        "--query-framing",
        "full",
        *more,
        *TINY,
    ]


# ----------------------------------------------------------------------------- model files


class _Payload:
    """Unpickling this runs ``code`` and returns what it evaluates to."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


def test_a_pickle_model_never_runs_without_trust_pickle(tmp_path, capsys):
    import joblib
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    from galaxysim import ImagePreprocessor, SimilarityRanker
    from galaxysim.datasets import make_galaxies

    query = _image_folder(tmp_path / "data")
    embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3))
    ranker = SimilarityRanker(embedder=embedder, density="drop").fit(
        make_galaxies(20, image_size=16, random_state=0)[0]
    )
    real = tmp_path / "real.joblib"
    joblib.dump(ranker, real)
    marker = tmp_path / "marker"
    # The variant that also hands back a real model, so nothing looks wrong afterwards.
    code = f"(open({str(marker)!r}, 'w').write('ran'), __import__('joblib').load({str(real)!r}))[1]"
    capsys.readouterr()
    for name in ("evil.joblib", "evil.pkl", "evil.safetensors"):
        evil = tmp_path / name
        evil.write_bytes(pickle.dumps(_Payload(code)))
        assert (
            main(_rank_args(tmp_path / "data", query, tmp_path / f"o-{name}", "--model", str(evil)))
            == 1
        )
        err = capsys.readouterr().err
        assert not marker.exists(), f"{name}: the pickle ran"
        assert len(err.splitlines()) == 1 and "pickle" in err and "Traceback" not in err
        assert name.endswith(".safetensors") or "--trust-pickle" in err
        assert not (tmp_path / f"o-{name}").exists()
    # A .safetensors name is always read as data, even with --trust-pickle.
    assert (
        main(
            _rank_args(
                tmp_path / "data",
                query,
                tmp_path / "o-st",
                "--trust-pickle",
                "--model",
                str(tmp_path / "evil.safetensors"),
            )
        )
        == 1
    )
    assert not marker.exists()
    # The user may choose to trust a pickle: then it loads, with a warning.
    assert (
        main(
            _rank_args(
                tmp_path / "data",
                query,
                tmp_path / "trusted",
                "--trust-pickle",
                "--model",
                str(tmp_path / "evil.joblib"),
            )
        )
        == 0
    )
    assert marker.exists() and "warning" in capsys.readouterr().err


# ----------------------------------------------------------------------------- output folders


def test_ctrl_c_while_writing_leaves_the_previous_outputs_untouched(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *DEMO]) == 0
    before = _snapshot(out)
    assert {"ranking.csv", "summary.json", "report.html", "neighbours.png"} <= set(before)
    process = _start_paused(
        ["demo", "--out", str(out), "--force", "--random-state", "1", *DEMO], tmp_path / "never"
    )
    try:
        _wait_for_pause(process)  # the new ranking.csv and figures are written by now
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
    assert "interrupted" in process.stderr.read()
    assert _snapshot(out) == before  # every file, byte for byte: one run, not a mix
    summary = json.loads(before["summary.json"])
    with open(out / "ranking.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == summary["n_galaxies"] == 60
    assert _leftovers(tmp_path, out) == []


def test_two_runs_into_one_folder_one_is_refused(tmp_path, capsys):
    out = tmp_path / "shared"
    go = tmp_path / "go"
    first = _start_paused(["demo", "--out", str(out), "--force", *DEMO], go)
    try:
        _wait_for_pause(first)
        started = time.perf_counter()
        assert main(["demo", "--out", str(out), "--force", *DEMO]) == 1
        assert time.perf_counter() - started < 5  # refused at once, not after training
        err = capsys.readouterr().err
        assert "another galaxysim run" in err and len(err.splitlines()) == 1
        go.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
    assert set(os.listdir(out)) == OUTPUTS
    assert json.loads((out / "summary.json").read_text())["provenance"]["random_state"] == 0
    assert _leftovers(tmp_path, out) == []


def test_a_read_only_out_fails_before_training(tmp_path, capsys, monkeypatch):
    import galaxysim.app.cli as cli

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    out = tmp_path / "locked"
    out.mkdir()
    (out / "old.txt").write_text("old")
    _mark_as_earlier_outputs(out)
    parent = tmp_path / "closed"
    parent.mkdir()
    out.chmod(0o555)
    parent.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            # chmod does not stop root: let os.access say what it says to other users.
            access = os.access
            monkeypatch.setattr(
                os,
                "access",
                lambda path, mode, **kw: (
                    False
                    if Path(path).resolve() in (out.resolve(), parent.resolve()) and mode & os.W_OK
                    else access(path, mode, **kw)
                ),
            )
        monkeypatch.setattr(cli, "_fit_or_reuse", no_training)
        assert main(["demo", "--out", str(out), "--force", *DEMO]) == 1
        assert "not writable" in capsys.readouterr().err
        assert main(["demo", "--out", str(parent / "new"), *DEMO]) == 1
        assert "not writable" in capsys.readouterr().err
        assert sorted(os.listdir(out)) == ["old.txt", "summary.json"] and os.listdir(parent) == []
    finally:
        out.chmod(0o755)
        parent.chmod(0o755)


def test_out_may_not_be_or_hold_an_input(tmp_path, capsys):
    query = _image_folder(tmp_path / "data")
    before = _snapshot(tmp_path / "data")
    for out in (tmp_path / "data", tmp_path):
        assert main(_rank_args(tmp_path / "data", query, out, "--force")) == 1
        assert "--data" in capsys.readouterr().err
    assert _snapshot(tmp_path / "data") == before
    first = tmp_path / "first"
    assert main(_rank_args(tmp_path / "data", query, first)) == 0
    model = first / "model.safetensors"
    assert main(_rank_args(tmp_path / "data", query, first, "--force", "--model", str(model))) == 1
    assert "--model" in capsys.readouterr().err and model.exists()


# ----------------------------------------------------------------------------- bad inputs


def test_fifos_as_query_data_or_model_end_at_once(tmp_path):
    query = _image_folder(tmp_path / "data")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = {
        "--query": _rank_args(tmp_path / "data", fifo, tmp_path / "o1"),
        "--data": _rank_args(fifo, query, tmp_path / "o2"),
        "--model": _rank_args(tmp_path / "data", query, tmp_path / "o3", "--model", str(fifo)),
    }
    runs = {
        flag: subprocess.Popen(
            [sys.executable, "-m", "galaxysim", *args],
            text=True,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for flag, args in cases.items()
    }
    try:
        for flag, run in runs.items():
            _, err = run.communicate(timeout=60)  # a read of the FIFO would block for ever
            assert run.returncode == 1, (flag, err)
            assert err.count("\n") == 1 and "FIFO" in err and flag in err
    finally:
        for run in runs.values():
            run.kill()


def test_classes_without_labels_is_an_error(tmp_path, capsys):
    query = _image_folder(tmp_path / "data")
    assert main(_rank_args(tmp_path / "data", query, tmp_path / "out", "--classes", "5")) == 1
    err = capsys.readouterr().err
    assert "--classes" in err and "labels.csv" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [["--image-size", "100000"], ["--n-samples", "10000000"]])
def test_impossible_allocations_are_one_line(tmp_path, capsys, size):
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--quiet", *size]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "memory" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- what is written


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_summary_records_the_provenance_of_every_input(tmp_path):
    import sklearn
    import torch

    import galaxysim

    query = _image_folder(tmp_path / "data", labelled=True)
    first = tmp_path / "first"
    assert main(_rank_args(tmp_path / "data", query, first, "--random-state", "3")) == 0
    earlier = json.loads((first / "summary.json").read_text())["provenance"]
    assert earlier["random_state"] == 3 and earlier["model"] is None
    assert earlier["query"]["sha256"] == _sha256(query)
    lines = sorted(f"{p.name}\t{_sha256(p)}\n" for p in (tmp_path / "data").iterdir())
    assert earlier["data"]["sha256"] == hashlib.sha256("".join(lines).encode()).hexdigest()
    model = first / "model.safetensors"
    again = tmp_path / "again"
    args = _rank_args(tmp_path / "data", query, again, "--model", str(model))
    assert main(args) == 0
    record = json.loads((again / "summary.json").read_text())["provenance"]
    assert record["argv"] == ["galaxysim", *args]
    assert record["versions"] == {
        "galaxysim": galaxysim.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }
    assert record["random_state"] == 0
    assert record["model"]["sha256"] == _sha256(model)
    assert (record["data"], record["query"]) == (earlier["data"], earlier["query"])
    demo = tmp_path / "demo"
    assert main(["demo", "--out", str(demo), *DEMO]) == 0
    generated = json.loads((demo / "summary.json").read_text())["provenance"]["data"]
    assert (generated["n_samples"], generated["image_size"], generated["random_state"]) == (
        60,
        16,
        0,
    )


def test_a_formula_file_name_is_escaped_in_ranking_csv(tmp_path):
    query = _image_folder(tmp_path / "data", names=["=cmd.png", "+sum.png"])
    out = tmp_path / "out"
    assert main(_rank_args(tmp_path / "data", query, out)) == 0
    with open(out / "ranking.csv", newline="") as handle:
        written = {row["name"] for row in csv.DictReader(handle)}
    assert {"'=cmd.png", "'+sum.png"} <= written
    assert not any(name.startswith(("=", "+", "-", "@")) for name in written)


def test_a_killed_run_leaves_nothing_the_next_run_cannot_tidy(tmp_path):
    from galaxysim.app.output_folder import staged_output

    out = tmp_path / "out"
    # Killed between its two renames: the previous outputs are aside, --out is gone,
    # and its half-written temporary folder is still there.
    aside = tmp_path / ".out.galaxysim-old-abcd1234"
    aside.mkdir()
    (aside / "ranking.csv").write_text("previous")
    _mark_as_earlier_outputs(aside)
    (tmp_path / ".out.galaxysim-tmp-efgh5678").mkdir()
    other = tmp_path / ".out.v2.galaxysim-tmp-ijkl9012"  # another folder's run: not ours
    other.mkdir()
    with pytest.raises(RuntimeError, match="fails"):
        with staged_output(out, force=True):
            raise RuntimeError("this run fails too")
    assert (out / "ranking.csv").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "out"]


def test_ctrl_c_is_held_while_the_folders_are_swapped(tmp_path, monkeypatch):
    import galaxysim.app.output_folder as output_folder

    out = tmp_path / "out"
    out.mkdir()
    (out / "ranking.csv").write_text("previous")
    _mark_as_earlier_outputs(out)
    replace = os.replace

    def interrupted_replace(source, target):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the swap
        replace(source, target)

    monkeypatch.setattr(output_folder.os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        with output_folder.staged_output(out, force=True) as staging:
            (staging / "ranking.csv").write_text("new")
    monkeypatch.undo()
    assert (out / "ranking.csv").read_text() == "new"  # the swap ran to its end first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
