"""Tests for loading Galaxy10 DECaLS from an HDF5 file and from a folder of images."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from galaxysim.datasets import galaxy10
from galaxysim.datasets._home import get_data_home
from galaxysim.datasets.galaxy10 import (
    GALAXY10_CLASSES,
    GALAXY10_FILENAME,
    SEED_CLASSES,
    load_galaxy10_decals,
)
from galaxysim.datasets.galaxy10_folder import load_galaxy10_folder
from galaxysim.images import center_crop, load_image, preprocess_images

N_IMAGES, HEIGHT, WIDTH = 40, 36, 44


def write_galaxy10_h5(path: Path, *, ans=None, images=None, drop=(), **replace) -> dict:
    """Write a small file with Galaxy10's layout; return what was written."""
    rng = np.random.default_rng(0)
    if ans is None:
        ans = rng.permutation(np.arange(N_IMAGES) % 10).astype(np.uint8)
    if images is None:
        images = rng.integers(0, 256, size=(len(ans), HEIGHT, WIDTH, 3), dtype=np.uint8)
    content = {
        "images": images,
        "ans": ans,
        "ra": rng.uniform(0, 360, len(ans)),
        "dec": rng.uniform(-30, 60, len(ans)),
        "redshift": rng.uniform(0, 0.3, len(ans)),
        "pxscale": np.full(len(ans), 0.262),
    }
    content.update(replace)
    with h5py.File(path, "w") as handle:
        for key, value in content.items():
            if key not in drop:
                handle.create_dataset(key, data=value)
    return content


@pytest.fixture
def h5_file(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / GALAXY10_FILENAME
    return path, write_galaxy10_h5(path)


def test_selects_classes_in_file_order_and_relabels(h5_file):
    path, content = h5_file
    data = load_galaxy10_decals(path, classes=(7, 5), crop=16)
    rows = np.flatnonzero(np.isin(content["ans"], (5, 7)))
    assert data.images.shape == (len(rows), 16, 16, 3)
    assert data.images.dtype == np.float32
    np.testing.assert_array_equal(data.indices, rows)
    np.testing.assert_array_equal(data.ans, content["ans"][rows])
    # target numbers the classes in the order they were asked for: 7 -> 0, 5 -> 1.
    np.testing.assert_array_equal(data.target, np.where(content["ans"][rows] == 7, 0, 1))
    assert list(data.target_names) == ["Unbarred Loose Spiral", "Barred Spiral"]
    expected = center_crop(content["images"][rows], 16).astype(np.float32) / 255
    np.testing.assert_allclose(data.images, expected, atol=1e-7)
    for key in ("ra", "dec", "redshift", "pxscale"):
        np.testing.assert_array_equal(data[key], content[key][rows])
    assert "Leung" in data.DESCR and "Legacy Imaging Surveys" in data.DESCR


def test_default_classes_are_the_seed_classes(h5_file):
    path, content = h5_file
    data = load_galaxy10_decals(path, crop=8)
    assert SEED_CLASSES == (5, 6, 7, 8, 9)
    assert len(data.target) == int(np.isin(content["ans"], SEED_CLASSES).sum())
    np.testing.assert_array_equal(data.target, data.ans - 5)


def test_class_names_are_accepted_case_insensitively(h5_file):
    path, _ = h5_file
    by_label = load_galaxy10_decals(path, classes=[8, 2], crop=8)
    by_name = load_galaxy10_decals(path, classes=["edge-on WITHOUT bulge", "Round Smooth"], crop=8)
    mixed = load_galaxy10_decals(path, classes=np.array([8, 2]), crop=8)
    for other in (by_name, mixed):
        np.testing.assert_array_equal(other.images, by_label.images)
        np.testing.assert_array_equal(other.target, by_label.target)


def test_single_class_may_be_given_alone(h5_file):
    path, content = h5_file
    data = load_galaxy10_decals(path, classes="Merging", crop=8)
    assert set(data.ans) == {1} and len(data.ans) == int((content["ans"] == 1).sum())
    assert set(data.target) == {0}


def test_crop_none_keeps_full_images(h5_file):
    path, content = h5_file
    data = load_galaxy10_decals(path, classes=range(10), crop=None)
    assert data.images.shape == (N_IMAGES, HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(data.images, content["images"] / 255, atol=1e-7)


def test_rectangular_crop_and_resize_match_preprocess_images(h5_file):
    path, content = h5_file
    data = load_galaxy10_decals(path, classes=range(10), crop=(20, 30), image_size=10)
    assert data.images.shape == (N_IMAGES, 10, 10, 3)
    expected = preprocess_images(content["images"], crop=(20, 30), image_size=10)
    np.testing.assert_allclose(data.images, expected, atol=1e-6)


def test_return_X_y(h5_file):
    path, _ = h5_file
    data = load_galaxy10_decals(path, crop=8)
    X, y = load_galaxy10_decals(path, crop=8, return_X_y=True)
    np.testing.assert_array_equal(X, data.images)
    np.testing.assert_array_equal(y, data.target)


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 64])
def test_chunked_reads_give_the_same_result_and_stay_small(h5_file, monkeypatch, chunk_rows):
    path, content = h5_file
    reads = []
    real_read = galaxy10.read_dataset

    def recording_read(dataset, selection, where):
        if dataset.name == "/images":
            reads.append(selection)
        return real_read(dataset, selection, where)

    monkeypatch.setattr(galaxy10, "_CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(galaxy10, "read_dataset", recording_read)
    data = load_galaxy10_decals(path, classes=(0, 5, 9), crop=12)
    rows = np.flatnonzero(np.isin(content["ans"], (0, 5, 9)))
    expected = center_crop(content["images"][rows], 12).astype(np.float32) / 255
    np.testing.assert_allclose(data.images, expected, atol=1e-7)
    # Every read is one slice of rows inside an aligned block of chunk_rows, and
    # only the crop window of those rows.
    assert reads
    for rows, top_bottom, left_right, _channels in reads:
        assert rows.stop - rows.start <= chunk_rows
        assert rows.start // chunk_rows == (rows.stop - 1) // chunk_rows
        assert (top_bottom, left_right) == (slice(12, 24), slice(16, 28))


def test_compressed_chunked_file_reads_whole_chunks(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(N_IMAGES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    ans = np.arange(N_IMAGES) % 10
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images", data=images, chunks=(6, 8, 8, 3), compression="gzip")
        handle["ans"] = ans
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = np.zeros(N_IMAGES)
    reads = []
    real_read = galaxy10.read_dataset
    monkeypatch.setattr(galaxy10, "_CHUNK_ROWS", 4)

    def recording_read(dataset, selection, where):
        if dataset.name == "/images":
            reads.append(selection)
        return real_read(dataset, selection, where)

    monkeypatch.setattr(galaxy10, "read_dataset", recording_read)
    data = load_galaxy10_decals(path, classes=range(10), crop=(10, 20))
    expected = center_crop(images, (10, 20)).astype(np.float32) / 255
    np.testing.assert_allclose(data.images, expected, atol=1e-7)
    # Blocks grow from 4 rows to the 6-row HDF5 chunk, so no chunk is decoded twice.
    assert [s[0].start for s in reads] == list(range(0, N_IMAGES, 6))


def test_path_none_looks_in_data_home_and_env_var(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    content = write_galaxy10_h5(home / GALAXY10_FILENAME)
    n_seed = int(np.isin(content["ans"], SEED_CLASSES).sum())
    assert len(load_galaxy10_decals(data_home=home, crop=8).target) == n_seed
    monkeypatch.setenv("GALAXYSIM_DATA", str(home))
    assert len(load_galaxy10_decals(crop=8).target) == n_seed


def test_missing_file_in_data_home_explains_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch_galaxy10_decals.*download=True"):
        load_galaxy10_decals(data_home=tmp_path / "empty")
    assert not (tmp_path / "empty").exists()  # looking must not create folders


def test_missing_explicit_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_galaxy10_decals(tmp_path / "missing.h5")


def test_folder_given_as_path(tmp_path):
    with pytest.raises(IsADirectoryError, match="load_galaxy10_folder"):
        load_galaxy10_decals(tmp_path)


def test_corrupt_file_raises_oserror_naming_it(tmp_path):
    path = tmp_path / "corrupt.h5"
    original = np.random.default_rng(1).bytes(4096)
    path.write_bytes(original)
    with pytest.raises(OSError, match="corrupt.h5.*HDF5") as info:
        load_galaxy10_decals(path)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert path.read_bytes() == original


def test_truncated_file_raises_oserror(tmp_path, h5_file):
    path, _ = h5_file
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(OSError, match="cut.h5"):
        load_galaxy10_decals(cut, crop=8)


def test_damaged_bytes_give_oserror_or_valueerror_only(tmp_path):
    source = tmp_path / "good.h5"
    with h5py.File(source, "w") as handle:
        handle.create_dataset(
            "images",
            data=np.zeros((N_IMAGES, 16, 16, 3), np.uint8),
            chunks=(4, 8, 8, 3),
            compression="gzip",
        )
        handle["ans"] = np.arange(N_IMAGES) % 10
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = np.zeros(N_IMAGES)
    original = source.read_bytes()
    rng = np.random.default_rng(6)
    damaged = tmp_path / "damaged.h5"
    outcomes = set()
    for _ in range(40):
        data = bytearray(original)
        for position in rng.integers(0, len(data), 20):
            data[position] = rng.integers(0, 256)
        damaged.write_bytes(bytes(data))
        try:
            load_galaxy10_decals(damaged, crop=8)
            outcomes.add("loaded")
        except (OSError, ValueError) as exc:
            assert "damaged.h5" in str(exc)
            outcomes.add(type(exc).__name__)
    assert "OSError" in outcomes


def test_missing_key_is_named_and_found_keys_listed(tmp_path):
    path = tmp_path / "nokey.h5"
    write_galaxy10_h5(path, drop=("redshift",))
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['redshift'\].*Keys found: \['ans'"):
        load_galaxy10_decals(path)


@pytest.mark.parametrize(
    "replace, message",
    [
        (
            {"images": np.zeros((N_IMAGES, 32, 32, 3), dtype=np.float32)},
            "dtype float32; expected uint8",
        ),
        ({"images": np.zeros((N_IMAGES, 32, 32), dtype=np.uint8)}, r"shape \(40, 32, 32\)"),
        ({"ra": np.zeros(N_IMAGES - 1)}, r"'ra' has shape \(39,\)"),
        ({"ans": np.full(N_IMAGES, 12)}, r"labels in \[0, 9\].*to 12"),
        ({"ans": np.full(N_IMAGES, 5.5)}, "non-integer labels"),
    ],
)
def test_wrong_layout_is_reported(tmp_path, replace, message):
    path = tmp_path / "bad.h5"
    write_galaxy10_h5(path, **replace)
    with pytest.raises(ValueError, match=message):
        load_galaxy10_decals(path, classes=range(10), crop=8)


@pytest.mark.parametrize(
    "classes, error, message",
    [
        ([], ValueError, "empty"),
        ([10], ValueError, "0 to 9"),
        ([-1], ValueError, "0 to 9"),
        (["Spiral"], ValueError, "not a Galaxy10 class"),
        ([5, "Barred Spiral"], ValueError, "more than once"),
        ([1.5], TypeError, "ints 0-9 or class names"),
        ([True], TypeError, "ints 0-9 or class names"),
        (None, TypeError, "classes must be"),
    ],
)
def test_bad_classes(h5_file, classes, error, message):
    path, _ = h5_file
    with pytest.raises(error, match=message):
        load_galaxy10_decals(path, classes=classes)


def test_no_image_of_the_requested_classes(tmp_path):
    path = tmp_path / "no_spirals.h5"
    write_galaxy10_h5(path, ans=np.arange(N_IMAGES) % 5)
    message = r"no images of classes \[5, 6, 7, 8, 9\].*\[0, 1, 2, 3, 4\]"
    with pytest.raises(ValueError, match=message):
        load_galaxy10_decals(path, crop=8)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"crop": 100}, ValueError, r"crop=100 is larger than the images.*36x44"),
        ({"crop": 0}, ValueError, "crop"),
        ({"crop": "64"}, TypeError, "crop"),
        ({"crop": 8, "image_size": -2}, ValueError, "image_size"),
    ],
)
def test_bad_crop_or_size(h5_file, kwargs, error, message):
    path, _ = h5_file
    with pytest.raises(error, match=message):
        load_galaxy10_decals(path, **kwargs)


def test_bad_path_type():
    with pytest.raises(TypeError, match="path must be a file path"):
        load_galaxy10_decals(42)


# --- the data folder ----------------------------------------------------------


def test_get_data_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("GALAXYSIM_DATA", raising=False)
    assert get_data_home(create=False) == tmp_path / "user" / "galaxysim_data"
    assert not (tmp_path / "user").exists()
    monkeypatch.setenv("GALAXYSIM_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env" and (tmp_path / "env").is_dir()
    assert get_data_home(str(tmp_path / "arg")) == tmp_path / "arg"


def test_get_data_home_rejects_files_and_non_paths(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists but is a file"):
        get_data_home(tmp_path / "file")
    with pytest.raises(TypeError, match="data_home must be a folder path"):
        get_data_home(3)


# --- folders of image files -------------------------------------------------


def _write_folder(folder: Path, labels: list[int], size=(40, 40), header="filename,ans,extra"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    lines = [header]
    pixels = []
    for i, label in enumerate(labels):
        image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"img_{i}.png")
        pixels.append(image)
        lines.append(f"img_{i}.png,{label},ignored")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return np.stack(pixels)


def test_folder_selects_relabels_and_crops(tmp_path):
    labels = [5, 0, 9, 5, 2, 7]
    pixels = _write_folder(tmp_path / "f", labels)
    data = load_galaxy10_folder(tmp_path / "f", classes=[9, 5], crop=20)
    np.testing.assert_array_equal(data.ans, [5, 9, 5])
    np.testing.assert_array_equal(data.target, [1, 0, 1])
    assert [Path(p).name for p in data.filenames] == ["img_0.png", "img_2.png", "img_3.png"]
    expected = center_crop(pixels[[0, 2, 3]], 20).astype(np.float32) / 255
    np.testing.assert_allclose(data.images, expected, atol=1e-6)
    resized = load_galaxy10_folder(tmp_path / "f", classes=[9, 5], crop=None, image_size=8)
    assert resized.images.shape == (3, 8, 8, 3)


@pytest.mark.parametrize(
    "csv_text, error, message",
    [
        ("name,ans\nimg_0.png,5\n", ValueError, r"lacks the column\(s\) \['filename'\]"),
        ("filename,ans\nimg_0.png,five\n", ValueError, "line 2: ans must be an integer"),
        ("filename,ans\nimg_0.png,11\n", ValueError, "line 2: ans is 11"),
        ("filename,ans\nnot_there.png,5\n", FileNotFoundError, "not_there.png"),
        ("filename,ans\n", ValueError, "lists no images"),
        ("", ValueError, "is empty"),
        ("filename,ans\nimg_0.png,1\n", ValueError, r"no images of classes \[5, 6, 7, 8, 9\]"),
    ],
)
def test_folder_bad_labels(tmp_path, csv_text, error, message):
    _write_folder(tmp_path, [5])
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(error, match=message):
        load_galaxy10_folder(tmp_path)


def test_folder_without_labels_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="no labels.csv"):
        load_galaxy10_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_galaxy10_folder(tmp_path / "nowhere")


def test_folder_image_smaller_than_crop_is_named(tmp_path):
    _write_folder(tmp_path, [5, 6], size=(30, 30))
    with pytest.raises(ValueError, match=r"img_0.png.*30x30"):
        load_galaxy10_folder(tmp_path, crop=64)


def test_folder_images_of_different_sizes_need_crop_or_size(tmp_path):
    _write_folder(tmp_path, [5], size=(30, 30))
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "small.png")
    with open(tmp_path / "labels.csv", "a") as stream:
        stream.write("small.png,6,x\n")
    with pytest.raises(ValueError, match="small.png.*crop= or image_size="):
        load_galaxy10_folder(tmp_path, crop=None)
    assert load_galaxy10_folder(tmp_path, crop=16).images.shape == (2, 16, 16, 3)


# --- real data ---------------------------------------------------------------


def test_real_samples_seed_classes(galaxy10_samples):
    data = load_galaxy10_folder(galaxy10_samples)
    assert data.images.shape == (50, 64, 64, 3)
    assert np.bincount(data.target).tolist() == [10] * 5
    # The sample files are named class_<ans>_<i>.jpg, an independent check of the labels.
    from_names = [int(Path(p).name.split("_")[1]) for p in data.filenames]
    np.testing.assert_array_equal(data.ans, from_names)
    np.testing.assert_array_equal(data.target, data.ans - 5)
    assert list(data.target_names) == list(GALAXY10_CLASSES[5:])
    first = load_image(data.filenames[0])
    np.testing.assert_allclose(data.images[0], center_crop(first, 64), atol=1e-6)
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0


def test_real_samples_all_classes(galaxy10_samples):
    data = load_galaxy10_folder(galaxy10_samples, classes=range(10), crop=32)
    assert data.images.shape == (100, 32, 32, 3)
    np.testing.assert_array_equal(data.target, data.ans)
    assert np.bincount(data.ans).tolist() == [10] * 10


# --- the memory benchmark stays runnable ---------------------------------------


def _benchmark_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_galaxy10_memory.py"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    spec = importlib.util.spec_from_file_location("bench_galaxy10_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_file_and_measurement_are_well_formed(tmp_path, capsys):
    import json

    bench = _benchmark_module()
    assert bench.class_counts(17_736).tolist() == list(bench.REAL_CLASS_COUNTS)
    counts = bench.class_counts(300)
    assert counts.sum() == 300 and counts.min() >= 1 and np.argmax(counts) == 2
    path = tmp_path / "bench.h5"
    ans = bench.write_file(path, 30)
    assert np.bincount(ans, minlength=10).tolist() == bench.class_counts(30).tolist()
    bench._child("loader", str(path))
    result = json.loads(capsys.readouterr().out)
    n_selected = int(np.isin(ans, SEED_CLASSES).sum())
    assert result["output_bytes"] == n_selected * 64 * 64 * 3 * 4
    assert result["maxrss_bytes"] > 0 and np.isfinite(result["seconds"])
