"""Every error a command can meet is one line, and every misuse of the command line is named.

Part one walks the exception types a command may raise (the expected ones
and those a hostile file produces: RecursionError, OverflowError,
AttributeError, ChunkError...) and checks that each ends in one line and exit
status 1, then meets them for real: a corrupt PNG while embedding, hostile
model headers and saved searches. Part two is the catalogue of command-line
misuse: impossible numbers, missing and conflicting options, unicode and
spaces in paths, pickles, EXIF-rotated JPEGs, a disk that fills up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from galaxysim.app.cli import main

FAST = [
    "--embedder",
    "pca",
    "--n-components",
    "3",
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
    "--quiet",
]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("galaxysim: error: "), err
    assert "Traceback" not in err
    return err


def _folder(path: Path, n: int = 12, size: int = 16, names: list[str] | None = None) -> Path:
    from galaxysim.datasets import make_galaxies

    path.mkdir(parents=True)
    names = names or [f"g{i:02d}.png" for i in range(n)]
    for name, image in zip(names, make_galaxies(len(names), image_size=size, random_state=3)[0]):
        Image.fromarray((image * 255).astype(np.uint8)).save(path / name)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A fitted ranker (PCA of 16-pixel images, no density) as a model file."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    from galaxysim import ImagePreprocessor, SimilarityRanker, save_model
    from galaxysim.datasets import make_galaxies

    images = make_galaxies(30, image_size=16, random_state=0)[0]
    embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3))
    ranker = SimilarityRanker(embedder=embedder, density="drop").fit(images)
    return save_model(ranker, tmp_path_factory.mktemp("model") / "model.safetensors")


# ----------------------------------------------------------------------------- one line


def _exceptions() -> list[BaseException]:
    from PIL import UnidentifiedImageError
    from sklearn.exceptions import NotFittedError

    from galaxysim.scale import ChunkError

    chunk = ChunkError("Embedding chunk 2 (rows 10:15 of 'x') failed: ValueError: bad PNG\nmore", 2)
    return [
        ValueError("bad value"),
        TypeError("bad type"),
        KeyError("key"),
        MemoryError(),
        OSError(28, "No space left on device"),
        ImportError("no faiss"),
        RecursionError("maximum recursion depth exceeded"),
        OverflowError("int too large"),
        AttributeError("'list' object has no attribute 'items'"),
        chunk,
        RuntimeError("faiss: Error in ...\n  at line 2"),
        IndexError("index 9 is out of bounds"),
        ZeroDivisionError("division by zero"),
        NotImplementedError(),
        AssertionError("x"),
        json.JSONDecodeError("Expecting value", "{", 1),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
        UnidentifiedImageError("cannot identify image file"),
        NotFittedError("not fitted"),
        Exception(""),
    ] + (  # ExceptionGroup exists from Python 3.11
        [ExceptionGroup("several", [ValueError("a"), TypeError("b")])]  # noqa: F821
        if sys.version_info >= (3, 11)
        else []
    )


@pytest.mark.parametrize("error", _exceptions(), ids=lambda e: type(e).__name__)
def test_every_exception_type_ends_in_one_line_and_exit_1(error, monkeypatch, capsys):
    import galaxysim.app.cli as cli

    def fails(args):
        raise error

    monkeypatch.setattr(cli, "_run_info", fails)
    monkeypatch.delenv("GALAXYSIM_DEBUG", raising=False)
    assert main(["info"]) == 1
    err = _one_line_error(capsys)
    if isinstance(error, RecursionError):
        assert "nested too deeply" in err
    if isinstance(error, OverflowError):
        assert "too large" in err
    if not isinstance(error, (ValueError, TypeError, OSError, ImportError, KeyError, MemoryError)):
        assert type(error).__name__ in err  # an unexpected error is named, for a report


def test_ctrl_c_is_130_and_debug_shows_the_traceback(monkeypatch, capsys):
    import galaxysim.app.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run_info", interrupted)
    assert main(["info"]) == 130 and "interrupted" in capsys.readouterr().err

    def fails(args):
        raise AttributeError("boom")

    monkeypatch.setattr(cli, "_run_info", fails)
    monkeypatch.setenv("GALAXYSIM_DEBUG", "1")
    with pytest.raises(AttributeError, match="boom"):
        main(["info"])


def test_a_corrupt_png_while_embedding_is_one_line(tmp_path, model, capsys):
    pytest.importorskip("zarr")
    data = _folder(tmp_path / "data", n=8)
    (data / "g05.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    assert (
        main(
            [
                "embed",
                "--data",
                str(data),
                "--model",
                str(model),
                "--out",
                str(tmp_path / "e.zarr"),
                "--crop",
                "16",
                "--chunk-size",
                "4",
                "--quiet",
            ]
        )
        == 1
    )
    err = _one_line_error(capsys)
    assert "chunk 1 (rows 4:8" in err and "g05.png" in err


def _rewrite_model(model: Path, out: Path, edit) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from galaxysim.persistence import FORMAT

    with safe_open(str(model), framework="pt") as handle:
        text = handle.metadata()[FORMAT]
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    save_file(tensors, str(out), metadata={FORMAT: edit(text)})
    return out


def _edit_json(change):
    def edit(text):
        header = json.loads(text)
        change(header)
        return json.dumps(header)

    return edit


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda text: text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "nested more than",
        ),
        (_edit_json(lambda h: h["model"].update(state=[1])), "state must be an object"),
        (
            _edit_json(lambda h: h["model"]["state"].update(neighbors_params=[1])),
            "neighbors_params",
        ),
        (
            _edit_json(lambda h: h["model"]["state"].update(_rebuilt_after_loading=["x"])),
            "attribute of the class",
        ),
    ],
)
def test_hostile_model_headers_are_one_line(tmp_path, model, capsys, edit, words):
    hostile = _rewrite_model(model, tmp_path / "hostile.safetensors", edit)
    query = _folder(tmp_path / "data") / "g00.png"
    assert (
        main(
            [
                "rank",
                "--data",
                str(tmp_path / "data"),
                "--query",
                str(query),
                "--model",
                str(hostile),
                "--out",
                str(tmp_path / "out"),
                "--crop",
                "16",
                *FAST,
            ]
        )
        == 1
    )
    err = _one_line_error(capsys)
    assert "--model" in err and words in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "ef_search, words", [(10**12, "ef_search must be"), ("nested", "nested more than")]
)
def test_hostile_saved_searches_are_one_line(tmp_path, model, capsys, ef_search, words):
    pytest.importorskip("faiss")
    from galaxysim.ranking import NeighborSearch

    index = NeighborSearch(algorithm="faiss-hnsw", M=8).fit(
        np.random.default_rng(0).random((40, 3))
    )
    folder = index.save(tmp_path / "index")
    header = json.loads((folder / "search.json").read_text())
    if ef_search == "nested":
        header["x"] = 0
        text = json.dumps(header).replace("0}", "[" * 100_000 + "]" * 100_000 + "}")
    else:
        header["params"]["ef_search"] = ef_search
        text = json.dumps(header)
    (folder / "search.json").write_text(text)
    query = _folder(tmp_path / "data", n=1) / "g00.png"
    assert (
        main(
            [
                "rank",
                "--index",
                str(folder),
                "--model",
                str(model),
                "--query",
                str(query),
                "--out",
                str(tmp_path / "out"),
                "--query-framing",
                "full",
            ]
        )
        == 1
    )
    assert words in _one_line_error(capsys)


# ----------------------------------------------------------------------------- misuse


def test_impossible_numbers_are_named(tmp_path, model, capsys):
    data = _folder(tmp_path / "data")
    query = data / "g00.png"
    rank = ["rank", "--data", str(data), "--query", str(query), "--crop", "16", *FAST]
    assert main([*rank, "--out", str(tmp_path / "a"), "--n-neighbors", str(10**12)]) == 1
    assert "--n-neighbors 1000000000000 is more than the 12 galaxies" in _one_line_error(capsys)
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path / "b"),
                "--n-samples",
                "20",
                "--n-neighbors",
                "21",
                *FAST,
            ]
        )
        == 1
    )
    assert "--n-neighbors 21" in _one_line_error(capsys)
    assert main([*rank, "--out", str(tmp_path / "c"), "--image-size", "1000000000"]) == 1
    assert "memory" in _one_line_error(capsys)
    for value in ("0", "-1", "1e9", "sixteen"):
        with pytest.raises(SystemExit) as usage:
            main([*rank, "--out", str(tmp_path / "d"), "--image-size", value])
        assert usage.value.code == 2
        err = capsys.readouterr().err
        assert "--image-size" in err and "positive integer" in err
    assert main([*rank, "--out", str(tmp_path / "e"), "--query-framing", "nan"]) == 1
    assert "framing" in _one_line_error(capsys)
    assert main([*rank, "--out", str(tmp_path / "f"), "--random-state", str(10**20)]) == 1
    assert "random_state" in _one_line_error(capsys)
    assert not any(p.name != "data" for p in tmp_path.iterdir())


def test_missing_and_conflicting_options_are_named(tmp_path, model, capsys):
    data = _folder(tmp_path / "data")
    query = str(data / "g00.png")
    out = ["--out", str(tmp_path / "out")]
    usage_errors = {
        "--query": ["rank", "--data", str(data), *out],
        "--model": ["embed", "--data", str(data), "--out", str(tmp_path / "e.zarr")],
        "--scheduler": [
            "embed",
            "--data",
            str(data),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "e.zarr"),
            "--workers",
            "2",
            "--scheduler",
            "tcp://x:1",
        ],
    }
    for option, args in usage_errors.items():
        with pytest.raises(SystemExit) as usage:
            main(args)
        assert usage.value.code == 2 and option in capsys.readouterr().err
    one_line_errors = {
        "--data": ["rank", "--query", query, *out],
        "--index needs --model": ["rank", "--index", str(tmp_path), "--query", query, *out],
        "--query-crop and --query-framing": [
            "rank",
            "--data",
            str(data),
            "--query",
            query,
            *out,
            "--query-crop",
            "8",
            "--query-framing",
            "full",
        ],
        "--trust-pickle": ["rank", "--data", str(data), "--query", query, *out, "--trust-pickle"],
        "--classes": [
            "rank",
            "--index",
            str(tmp_path),
            "--model",
            str(model),
            "--query",
            query,
            *out,
            "--classes",
            "5",
        ],
    }
    for words, args in one_line_errors.items():
        assert main(args) == 1
        assert words in _one_line_error(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "e.zarr").exists()


@pytest.mark.slow
def test_unicode_and_spaces_in_every_path(tmp_path):
    import csv

    data = _folder(tmp_path / "données des galaxies", names=[f"é {i} ü.png" for i in range(12)])
    query = tmp_path / "requête de la Voie lactée.png"
    query.write_bytes((data / "é 0 ü.png").read_bytes())
    out = tmp_path / "résultats avec espaces"
    assert (
        main(
            [
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
                *FAST,
            ]
        )
        == 0
    )
    with open(out / "ranking.csv", newline="", encoding="utf-8") as handle:
        names = {row["name"] for row in csv.DictReader(handle)}
    assert names == {f"é {i} ü.png" for i in range(12)}
    provenance = json.loads((out / "summary.json").read_text(encoding="utf-8"))["provenance"]
    assert provenance["query"]["path"] == str(query.resolve())


@pytest.mark.slow
def test_trust_pickle_with_a_joblib_file(tmp_path, model, capsys):
    import joblib

    from galaxysim import load_model

    pickled = tmp_path / "model.joblib"
    joblib.dump(load_model(model), pickled)
    data = _folder(tmp_path / "data")
    common = ["--data", str(data), "--model", str(pickled), "--crop", "16"]
    assert (
        main(
            [
                "rank",
                *common,
                "--query",
                str(data / "g00.png"),
                "--out",
                str(tmp_path / "o"),
                "--query-framing",
                "full",
                "--trust-pickle",
                *FAST,
            ]
        )
        == 0
    )
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "--trust-pickle" in warnings[0]
    # embed has no --trust-pickle: a pickle is never loaded there.
    assert main(["embed", *common, "--out", str(tmp_path / "e.zarr"), "--quiet"]) == 1
    assert "pickle" in _one_line_error(capsys)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotated_jpegs_are_read_upright(tmp_path, orientation):
    from PIL import ImageOps

    from galaxysim.images import load_image

    rng = np.random.default_rng(orientation)
    pixels = np.kron(rng.integers(0, 256, (6, 10, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    stored = Image.fromarray(pixels)  # 48 x 80, not square: a turn shows in the shape
    exif = stored.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=95, exif=exif)
    with Image.open(path) as img:
        upright = np.asarray(ImageOps.exif_transpose(img), dtype=np.float32) / 255
    image = load_image(path)
    assert image.shape == upright.shape
    np.testing.assert_array_equal(image, upright)
    # crop and image_size are those of the upright picture
    assert load_image(path, crop=(upright.shape[0], 40)).shape == (upright.shape[0], 40, 3)
    assert load_image(path, image_size=(12, 20)).shape == (12, 20, 3)


# ----------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs of 64 inodes at tmp_path/disk (root only; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,nr_inodes=64", "tmpfs", str(disk)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> list[Path]:
    """Use up the space and the inodes of ``disk``; return the files made."""
    made = []
    try:
        with open(disk / "filler", "wb") as stream:
            made.append(disk / "filler")
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
    except OSError:
        pass
    try:
        for i in range(10_000):
            (disk / f"inode{i}").touch()
            made.append(disk / f"inode{i}")
    except OSError:
        pass
    return made


def test_a_full_disk_during_the_swap_leaves_the_previous_outputs(small_disk, monkeypatch):
    import galaxysim.app.output_folder as output_folder

    out = small_disk / "out"
    out.mkdir()
    previous = {"provenance": {"argv": ["galaxysim", "demo"], "versions": {"galaxysim": "0"}}}
    (out / "summary.json").write_text(json.dumps(previous))
    sibling = output_folder._sibling
    filled = []

    def full_before_aside(path, kind):
        if kind == output_folder._ASIDE:  # the swap begins: the disk is full now
            filled.extend(_fill(small_disk))
        return sibling(path, kind)

    monkeypatch.setattr(output_folder, "_sibling", full_before_aside)
    with pytest.raises(OSError) as error:
        with output_folder.staged_output(out, force=True) as staging:
            (staging / "summary.json").write_text("{}")
    assert error.value.errno == 28  # ENOSPC
    for path in filled:
        path.unlink()
    assert json.loads((out / "summary.json").read_text()) == previous
    assert sorted(p.name for p in small_disk.iterdir()) == ["out"]


@pytest.mark.slow
def test_a_disk_that_fills_while_outputs_are_written_is_one_line(small_disk, tmp_path, capsys):
    data = _folder(tmp_path / "data")
    out = small_disk / "out"
    out.mkdir()
    previous = {"provenance": {"argv": ["galaxysim", "demo"], "versions": {"galaxysim": "0"}}}
    (out / "summary.json").write_text(json.dumps(previous))
    assert (
        main(
            [
                "rank",
                "--data",
                str(data),
                "--query",
                str(data / "g00.png"),
                "--out",
                str(out),
                "--force",
                "--crop",
                "16",
                "--query-framing",
                "full",
                *FAST,
            ]
        )
        == 1
    )
    assert "No space left on device" in _one_line_error(capsys)
    assert json.loads((out / "summary.json").read_text()) == previous
    assert sorted(p.name for p in small_disk.iterdir()) == ["out"]


# ------------------------------------------------------------------ unclear errors made clear


def test_a_file_listed_twice_in_labels_csv_is_named(tmp_path, capsys):
    data = _folder(tmp_path / "data", n=4)
    (data / "labels.csv").write_text("filename,ans\ng00.png,5\ng01.png,6\n./g00.png,7\ng02.png,5\n")
    assert (
        main(
            [
                "rank",
                "--data",
                str(data),
                "--query",
                str(data / "g03.png"),
                "--out",
                str(tmp_path / "out"),
                "--crop",
                "16",
                *FAST,
            ]
        )
        == 1
    )
    err = _one_line_error(capsys)
    assert "line 4: './g00.png' is listed again (first on line 2)" in err


@pytest.mark.slow
def test_fits_cubes_of_four_bands_get_a_clear_error(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    from galaxysim.images import load_images

    rng = np.random.default_rng(0)
    folder = tmp_path / "cubes"
    folder.mkdir()
    for i in range(3):
        fits.PrimaryHDU(rng.random((4, 16, 16))).writeto(folder / f"g{i}.fits")
    with pytest.raises(
        ValueError,
        match=r"shape \(4, 16, 16\); galaxysim reads a 2-D image or a "
        r"cube of 1 or 3 bands",
    ):
        load_images(folder)
    for i in range(3):
        (folder / f"g{i}.fits").unlink()
        fits.PrimaryHDU(rng.random((3, 16, 16))).writeto(folder / f"g{i}.fits")
    assert load_images(folder)[0].shape == (3, 16, 16, 3)
