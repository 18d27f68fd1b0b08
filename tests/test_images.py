import csv

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from galaxysim.images import (
    ImagePreprocessor,
    center_crop,
    load_image,
    load_images,
    preprocess_images,
    resize,
)


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return path


@pytest.fixture
def rgb_u8():
    return np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_load_lossless_rgb_exactly(tmp_path, rgb_u8, suffix):
    path = _save(tmp_path / f"img{suffix}", rgb_u8)
    image = load_image(path)
    assert image.dtype == np.float32 and image.shape == (12, 10, 3)
    np.testing.assert_allclose(image, rgb_u8 / 255.0, atol=1e-6)


def test_load_jpeg_approximately(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (16, 1, 3))
    path = tmp_path / "img.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    image = load_image(path)
    assert image.shape == (16, 16, 3)
    assert np.abs(image - smooth / 255.0).max() < 0.06


def test_grayscale_becomes_rgb(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    image = load_image(_save(tmp_path / "g.png", gray))
    assert image.shape == (4, 5, 3)
    np.testing.assert_allclose(image[..., 0], image[..., 2])
    np.testing.assert_allclose(image[..., 1], gray / 255.0, atol=1e-6)


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[0, 0, 3] = 255  # one opaque white pixel, the rest transparent
    image = load_image(_save(tmp_path / "a.png", rgba))
    assert image.shape == (2, 2, 3)
    np.testing.assert_allclose(image[0, 0], 1.0)
    np.testing.assert_allclose(image[1, 1], 0.0)


def test_sixteen_bit_png_keeps_its_range(tmp_path):
    data = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(data).save(path)
    image = load_image(path)
    assert image.shape == (2, 2, 3)
    assert image[0, 1, 0] == pytest.approx(1.0)
    assert image[1, 0, 0] == pytest.approx(32768 / 65535, abs=1e-4)


def test_load_image_with_size(tmp_path, rgb_u8):
    image = load_image(_save(tmp_path / "i.png", rgb_u8), image_size=(6, 5))
    assert image.shape == (6, 5, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        load_image(tmp_path / "nothere.png")


def test_corrupt_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match="broken.png"):
        load_image(path)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg"):
        load_image(text)


def test_truncated_jpeg(tmp_path, rgb_u8):
    path = tmp_path / "cut.jpg"
    Image.fromarray(rgb_u8).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="cut.jpg"):
        load_image(path)


def test_folder_and_wrong_type_given_to_load_image(tmp_path):
    with pytest.raises(IsADirectoryError, match="load_images"):
        load_image(tmp_path)
    with pytest.raises(TypeError, match="path"):
        load_image(42)


def test_fits_without_astropy_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_astropy(name, *args, **kwargs):
        if name.startswith("astropy"):
            raise ImportError("no astropy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_astropy)
    path = tmp_path / "x.fits"
    path.write_bytes(b"SIMPLE  =                    T")
    with pytest.raises(ImportError, match=r"galaxysim\[fits\]"):
        load_image(path)


def test_fits_with_astropy(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "x.fits"
    fits.PrimaryHDU(data).writeto(path)
    image = load_image(path)
    assert image.shape == (3, 4, 3)
    assert image.min() == 0.0 and image.max() == 1.0


def test_load_images_from_folder_sorted_and_filtered(tmp_path, rgb_u8):
    for name in ("b.png", "a.jpg", "c.tiff"):
        _save(tmp_path / name, rgb_u8)
    (tmp_path / "labels.csv").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    images, names = load_images(tmp_path)
    assert names == ["a.jpg", "b.png", "c.tiff"]
    assert images.shape == (3, 12, 10, 3)


def test_load_images_from_list_keeps_order(tmp_path, rgb_u8):
    paths = [_save(tmp_path / "z.png", rgb_u8), _save(tmp_path / "y.png", rgb_u8[::-1])]
    images, names = load_images([str(p) for p in paths])
    assert names == ["z.png", "y.png"]
    np.testing.assert_allclose(images[1], rgb_u8[::-1] / 255.0, atol=1e-6)


def test_load_images_errors(tmp_path, rgb_u8):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="no image files"):
        load_images(tmp_path)
    with pytest.raises(ValueError, match="empty list"):
        load_images([])
    _save(tmp_path / "a.png", rgb_u8)
    _save(tmp_path / "b.png", rgb_u8[:5])
    with pytest.raises(ValueError, match="different shapes"):
        load_images(tmp_path)
    images, _ = load_images(tmp_path, image_size=8)
    assert images.shape == (2, 8, 8, 3)


def test_center_crop_single_and_batch():
    image = np.arange(36).reshape(6, 6, 1)
    np.testing.assert_array_equal(center_crop(image, 2)[..., 0], [[14, 15], [20, 21]])
    batch = np.stack([image, image + 100])
    out = center_crop(batch, (2, 4))
    assert out.shape == (2, 2, 4, 1) and out.dtype == batch.dtype
    assert out[1, 0, 0, 0] == 113
    out[:] = -1
    assert image.min() == 0  # a copy, not a view


def test_center_crop_errors():
    with pytest.raises(ValueError, match="larger than the images"):
        center_crop(np.zeros((4, 4, 3)), 5)
    with pytest.raises(ValueError, match="size"):
        center_crop(np.zeros((4, 4, 3)), 0)
    with pytest.raises(ValueError, match="images must be one image"):
        center_crop(np.zeros((4, 4)), 2)
    with pytest.raises(TypeError, match="size"):
        center_crop(np.zeros((4, 4, 3)), "2")


def test_resize_is_anti_aliased():
    # A one-pixel checkerboard averages to grey when downsampled with a proper
    # low-pass filter; plain decimation would keep only black or only white.
    board = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)[..., None]
    small = resize(board, 8)
    assert small.shape == (8, 8, 1) and small.dtype == np.float32
    assert np.abs(small - 0.5).max() < 0.1


def test_resize_preserves_constant_images_and_batches():
    batch = np.full((3, 10, 10, 3), 0.25, dtype=np.float32)
    np.testing.assert_allclose(resize(batch, (5, 7)), 0.25, atol=1e-5)
    up = resize(np.full((4, 4, 3), 255, dtype=np.uint8), 9)
    np.testing.assert_allclose(up, 1.0, atol=1e-5)


def test_resize_rejects_bad_values():
    with pytest.raises(ValueError, match=r"images must hold floats in \[0, 1\]"):
        resize(np.full((4, 4, 3), 2.0), 2)


def test_preprocess_images_crop_then_resize():
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    out = preprocess_images(batch, crop=16, image_size=8)
    assert out.shape == (2, 8, 8, 3) and out.dtype == np.float32
    expected = resize(center_crop(batch, 16), 8)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="images must be a batch"):
        preprocess_images(batch[0])


def test_image_preprocessor_transform_and_pipeline():
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    prep = ImagePreprocessor(crop=16, image_size=8)
    out = prep.fit_transform(X)
    assert out.shape == (6, 8, 8, 3)
    assert prep.image_shape_in_ == (32, 32, 3) and prep.image_shape_out_ == (8, 8, 3)
    assert prep.n_features_in_ == 32 * 32 * 3
    flat = clone(prep).set_params(flatten=True)
    pipe = make_pipeline(flat, PCA(n_components=3))
    assert pipe.fit_transform(X).shape == (6, 3)
    assert len(flat.get_feature_names_out()) == 8 * 8 * 3


def test_image_preprocessor_flattened_input():
    X = np.random.default_rng(3).random((4, 8, 8, 3))
    prep = ImagePreprocessor(crop=4, image_shape=(8, 8, 3)).fit(X.reshape(4, -1))
    np.testing.assert_allclose(prep.transform(X.reshape(4, -1)), X[:, 2:6, 2:6].astype(np.float32))


def test_image_preprocessor_errors():
    X = np.zeros((2, 16, 16, 3))
    with pytest.raises(ValueError, match="image_shape"):
        ImagePreprocessor().fit(np.zeros((2, 48)))
    with pytest.raises(ValueError, match="larger than the images"):
        ImagePreprocessor(crop=64).fit(X)
    with pytest.raises(ValueError, match="crop"):
        ImagePreprocessor(crop=-1).fit(X)
    prep = ImagePreprocessor(crop=8).fit(X)
    with pytest.raises(ValueError, match="fitted on"):
        prep.transform(np.zeros((2, 12, 12, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ImagePreprocessor(crop=None).fit(np.full((1, 4, 4, 3), np.nan))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ImagePreprocessor().transform(X)


def test_load_real_galaxy10_samples(galaxy10_samples):
    with open(galaxy10_samples / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100
    paths = [galaxy10_samples / r["filename"] for r in rows[:10]]
    images, names = load_images(paths)
    assert images.shape == (10, 256, 256, 3)
    assert names == [r["filename"] for r in rows[:10]]
    cropped = ImagePreprocessor(crop=64).fit_transform(images)
    assert cropped.shape == (10, 64, 64, 3)
    # A galaxy sits in the middle of each cutout: the centre is brighter than the border.
    centre = cropped[:, 24:40, 24:40].mean()
    border = images[:, :16].mean()
    assert centre > border


def test_load_real_milky_way(milky_way_png):
    image = load_image(milky_way_png, image_size=64)
    assert image.shape == (64, 64, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.05


def test_image_preprocessor_follows_sklearn_conventions(tmp_path):
    # sklearn's parametrize_with_checks skips image-only transformers (their
    # generic data are 2-D tables with negative values), so the conventions it
    # would check are tested here.
    import joblib

    prep = ImagePreprocessor(crop=(8, 6), image_size=4)
    assert clone(prep).get_params() == prep.get_params()
    X = np.random.default_rng(4).random((3, 12, 12, 3))
    X_before = X.copy()
    assert prep.fit(X) is prep
    np.testing.assert_array_equal(X, X_before)  # the input is not modified
    path = tmp_path / "prep.joblib"
    joblib.dump(prep, path)
    np.testing.assert_array_equal(joblib.load(path).transform(X), prep.transform(X))
    assert prep.transform(X).shape == (3, 4, 4, 3)


def test_list_image_files_is_the_order_load_images_reads(tmp_path):
    from galaxysim.images import list_image_files

    for i, name in enumerate(["c.png", "a.tif", "b.jpeg", "skip.txt", ".hidden.png"]):
        Image.fromarray(np.full((4, 4, 3), 40 * i, dtype=np.uint8)).save(
            tmp_path / name, format="PNG" if not name.endswith("tif") else "TIFF"
        )
    (tmp_path / "sub.png").mkdir()
    files = list_image_files(str(tmp_path))
    assert [f.name for f in files] == ["a.tif", "b.jpeg", "c.png"]
    loaded, names = load_images(tmp_path)
    assert names == ["a.tif", "b.jpeg", "c.png"]
    np.testing.assert_allclose(loaded[:, 0, 0, 0] * 255, [40, 80, 0], atol=1e-4)


def test_list_image_files_names_a_folder_without_images(tmp_path):
    from galaxysim.images import list_image_files

    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="holds no image files"):
        list_image_files(tmp_path)


def test_image_preprocessor_takes_keywords_only():
    with pytest.warns(FutureWarning, match="pass crop=..., image_size=... by name"):
        prep = ImagePreprocessor(16, 8)
    assert (prep.crop, prep.image_size) == (16, 8)
    with pytest.raises(TypeError, match="keyword arguments only"):
        ImagePreprocessor(16, 8, None, False, "extra")


def test_image_preprocessor_output_container():
    X = np.random.default_rng(0).random((3, 4, 4, 2)).astype(np.float32)
    images = ImagePreprocessor(crop=None).set_output(transform="pandas")
    # Images fit in no table: an array, whatever the container asked for.
    assert isinstance(images.fit_transform(X), np.ndarray)
    names = images.get_feature_names_out()
    assert names.tolist() == [f"pixel{i}" for i in range(32)]
    # The names follow the flattened layout of one output image.
    flat = ImagePreprocessor(crop=None, flatten=True).set_output(transform="default")
    assert flat.fit_transform(X).shape == (3, len(names))
    assert clone(flat.set_output(transform="polars"))._sklearn_output_config == {
        "transform": "polars"
    }
    with pytest.raises(ValueError, match="transform must be one of"):
        flat.set_output(transform="table")
    pd = pytest.importorskip("pandas")
    table = (
        ImagePreprocessor(crop=None, flatten=True).set_output(transform="pandas").fit_transform(X)
    )
    assert isinstance(table, pd.DataFrame) and table.columns.tolist() == names.tolist()
    np.testing.assert_array_equal(table.to_numpy(), X.reshape(3, -1))
