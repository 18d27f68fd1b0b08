"""Fitting and embedding collections on disk (ImageCollection): h5, zarr, folders; bad input."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from galaxysim import AutoencoderEmbedder, ContrastiveEmbedder
from galaxysim.datasets import ImageCollection
from galaxysim.datasets.chunks import ImageChunks
from galaxysim.embedders import contrastive as contrastive_module

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

zarr = pytest.importorskip("zarr")

CONTRASTIVE = dict(
    representation_dim=8,
    n_stages=2,
    base_channels=4,
    projection_dim=8,
    max_epochs=2,
    batch_size=16,
    random_state=0,
    device="cpu",
)
AUTOENCODER = dict(
    n_components=3,
    n_stages=2,
    n_blocks=1,
    base_channels=4,
    max_epochs=2,
    batch_size=16,
    random_state=0,
    device="cpu",
)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """40 uint8 images of 24x24 with something to learn: a bright blob of varying size."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:24, :24]
    radius = rng.uniform(2, 8, size=(40, 1, 1))
    blob = np.exp(-((yy - 12) ** 2 + (xx - 12) ** 2) / (2 * radius**2))
    images = blob[..., None] * rng.uniform(0.5, 1.0, size=(40, 1, 1, 3))
    return np.clip(images * 255 + rng.normal(0, 8, images.shape), 0, 255).astype(np.uint8)


def write_h5(path: Path, images: np.ndarray, keys=("ans", "ra", "dec", "redshift", "pxscale")):
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images", data=images, chunks=(1, *images.shape[1:]))
        for key in keys:
            handle[key] = np.zeros(len(images))
    return path


def write_zarr(path: Path, images: np.ndarray) -> Path:
    zarr.open_array(
        str(path), mode="w", shape=images.shape, dtype=images.dtype, chunks=(8, *images.shape[1:])
    )[:] = images
    return path


def write_folder(path: Path, images: np.ndarray) -> Path:
    path.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(path / f"galaxy_{i:03d}.png")
    return path


@pytest.fixture(scope="module")
def sources(pixels, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("collections")
    return {
        "h5": write_h5(root / "galaxies.h5", pixels),
        "zarr": write_zarr(root / "galaxies.zarr", pixels),
        "folder": write_folder(root / "folder", pixels),
    }


# --- the collection ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["h5", "zarr", "folder"])
def test_a_collection_reads_rows_in_any_order_as_the_images_in_memory(kind, sources, pixels):
    collection = ImageCollection(sources[kind], crop=16, num_workers=0)
    assert len(collection) == 40 and collection.image_shape == (16, 16, 3)
    assert collection.kind == kind and "40 images of (16, 16, 3)" in repr(collection)
    expected = pixels[[7, 2, 7], 4:20, 4:20].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(collection.read([7, 2, 7]), expected)
    np.testing.assert_array_equal(collection[2], expected[1])
    np.testing.assert_array_equal(collection[-33], expected[0])
    assert collection[1:3].shape == (2, 16, 16, 3)
    raw = collection.read([3], raw=True)
    assert raw.dtype == (np.float32 if kind == "folder" else np.uint8)


def test_a_collection_is_a_torch_dataset_for_a_dataloader(sources):
    collection = ImageCollection(sources["h5"], image_size=8, num_workers=0)
    batch = next(iter(torch.utils.data.DataLoader(collection, batch_size=5)))
    assert batch.shape == (5, 8, 8, 3) and batch.dtype == torch.float32
    assert pickle.loads(pickle.dumps(collection)).image_shape == (8, 8, 3)


def test_num_workers_defaults_to_the_spare_cores_and_is_checked(sources):
    assert 0 <= ImageCollection(sources["zarr"]).num_workers <= 4
    with pytest.raises(ValueError, match="num_workers"):
        ImageCollection(sources["zarr"], num_workers=-1)
    with pytest.raises(TypeError, match="num_workers"):
        ImageCollection(sources["zarr"], num_workers=1.5)


def test_rows_outside_the_collection_are_named(sources):
    collection = ImageCollection(sources["zarr"], num_workers=0)
    with pytest.raises(ValueError, match="rows must lie in 0:40"):
        collection.read([40])
    with pytest.raises(IndexError, match="out of range for 40 images"):
        collection[40]


# --- fitting from disk gives the in-memory fit ----------------------------------------


@pytest.mark.parametrize("kind", ["h5", "zarr", "folder"])
def test_streamed_fit_trains_and_embeds_exactly_as_in_memory(kind, sources, pixels):
    # Without early stopping: the validation views are drawn per batch when streaming
    # instead of all at once (see docs/scale.md), so with it the two fits may keep
    # different epochs; the training itself is the same.
    params = {**CONTRASTIVE, "early_stopping": False}
    in_memory = ContrastiveEmbedder(**params).fit(pixels)
    streamed = ContrastiveEmbedder(**params).fit(ImageCollection(sources[kind], num_workers=1))
    # The same batches and augmentations, so the same training loss and weights.
    assert streamed.history_.train_loss == in_memory.history_.train_loss
    assert streamed.history_.best_epoch == in_memory.history_.best_epoch
    np.testing.assert_allclose(streamed.history_.val_loss, in_memory.history_.val_loss, rtol=0.05)
    expected = in_memory.transform(pixels)
    np.testing.assert_array_equal(streamed.transform(pixels), expected)
    np.testing.assert_array_equal(streamed.transform(sources[kind]), expected)
    assert streamed.image_shape_ == (24, 24, 3) and streamed.n_features_in_ == 24 * 24 * 3
    assert streamed.input_format_ == "images"


def test_streamed_autoencoder_is_the_in_memory_one_validation_included(sources, pixels):
    in_memory = AutoencoderEmbedder(**AUTOENCODER).fit(pixels)
    streamed = AutoencoderEmbedder(**AUTOENCODER).fit(str(sources["h5"]))
    assert streamed.history_.as_dict() == in_memory.history_.as_dict()
    np.testing.assert_array_equal(streamed.transform(sources["h5"]), in_memory.transform(pixels))
    np.testing.assert_array_equal(
        streamed.reconstruction_error(sources["zarr"]), in_memory.reconstruction_error(pixels)
    )
    assert streamed.score(sources["folder"]) == in_memory.score(pixels)


def test_crop_and_resize_of_the_collection_frame_the_training(sources, pixels):
    collection = ImageCollection(sources["zarr"], crop=16, image_size=8, num_workers=0)
    embedder = ContrastiveEmbedder(**{**CONTRASTIVE, "dihedral_average": True}).fit(collection)
    assert embedder.image_shape_ == (8, 8, 3)
    assert embedder.transform(collection).shape == (40, 8)
    assert np.isfinite(embedder.score(collection))
    with pytest.raises(ValueError, match=r"fitted on images of shape \(8, 8, 3\).*crop="):
        embedder.transform(sources["zarr"])


def test_fit_transform_and_pickling_of_an_embedder_fitted_from_disk(sources, tmp_path):
    embedder = ContrastiveEmbedder(**CONTRASTIVE)
    embedding = embedder.fit_transform(sources["zarr"])
    assert embedding.shape == (40, 8)
    loaded = pickle.loads(pickle.dumps(embedder))
    np.testing.assert_array_equal(loaded.transform(sources["zarr"]), embedding)


def test_a_streamed_fit_reads_one_batch_at_a_time(sources, monkeypatch):
    sizes = []
    read_rows = ImageChunks.read_rows

    def recording(self, rows, **kwargs):
        sizes.append(len(rows))
        return read_rows(self, rows, **kwargs)

    monkeypatch.setattr(ImageChunks, "read_rows", recording)
    ContrastiveEmbedder(**CONTRASTIVE).fit(ImageCollection(sources["h5"], num_workers=0))
    assert max(sizes) <= 40 and sizes.count(40) <= 1  # at most the one whitening batch
    assert max(sizes[:-1]) <= CONTRASTIVE["batch_size"]


# --- bad input ----------------------------------------------------------------------


def test_a_corrupt_file_in_a_folder_is_one_line_naming_it(pixels, tmp_path):
    folder = write_folder(tmp_path / "images", pixels)
    (folder / "galaxy_017.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image at all")
    collection = ImageCollection(folder, num_workers=1)  # the first image is fine
    with pytest.raises(ValueError) as error:
        ContrastiveEmbedder(**CONTRASTIVE).fit(collection)
    message = str(error.value)
    assert "galaxy_017.png" in message and "\n" not in message
    assert "Traceback" not in message and "worker" not in message


def test_a_truncated_jpeg_in_a_folder_names_the_file(pixels, tmp_path):
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for i, image in enumerate(pixels[:20]):
        Image.fromarray(image).save(folder / f"g{i:02d}.jpg", quality=90)
    data = (folder / "g11.jpg").read_bytes()
    (folder / "g11.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"g11\.jpg") as error:
        AutoencoderEmbedder(**AUTOENCODER).fit(ImageCollection(folder, num_workers=0))
    assert "\n" not in str(error.value)


def test_images_of_another_size_in_a_folder_are_named(pixels, tmp_path):
    folder = write_folder(tmp_path / "sizes", pixels[:20])
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(folder / "galaxy_999.png")
    with pytest.raises(ValueError, match=r"galaxy_999\.png.*crop= or image_size="):
        ContrastiveEmbedder(**CONTRASTIVE).fit(ImageCollection(folder, num_workers=0))
    collection = ImageCollection(folder, crop=20, num_workers=0)
    assert ContrastiveEmbedder(**CONTRASTIVE).fit(collection).image_shape_ == (20, 20, 3)


def test_an_h5_file_without_the_galaxy10_keys_is_named(pixels, tmp_path):
    path = write_h5(tmp_path / "other.h5", pixels, keys=("labels",))
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['ans'"):
        ContrastiveEmbedder(**CONTRASTIVE).fit(str(path))


def test_empty_collections_are_named(pixels, tmp_path):
    with pytest.raises(ValueError, match="holds no images"):
        ImageCollection(write_zarr(tmp_path / "empty.zarr", pixels[:0]))
    with pytest.raises(ValueError, match="holds no image files"):
        (tmp_path / "nothing").mkdir()
        ContrastiveEmbedder(**CONTRASTIVE).fit(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ContrastiveEmbedder(**CONTRASTIVE).fit(str(tmp_path / "absent.h5"))


def test_a_collection_of_one_image_is_too_few_to_train(pixels, tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        ContrastiveEmbedder(**CONTRASTIVE).fit(write_zarr(tmp_path / "one.zarr", pixels[:1]))


def test_an_embedder_fitted_on_features_refuses_a_collection(sources):
    features = np.random.default_rng(0).random((30, 5))
    embedder = ContrastiveEmbedder(**CONTRASTIVE).fit(features)
    with pytest.raises(ValueError, match="fitted on generic features"):
        embedder.transform(sources["zarr"])


def test_image_shape_must_agree_with_the_collection(sources):
    with pytest.raises(ValueError, match=r"image_shape=\(8, 8, 3\)"):
        ContrastiveEmbedder(**CONTRASTIVE, image_shape=(8, 8, 3)).fit(sources["zarr"])


def test_keyboard_interrupt_in_a_streamed_fit_keeps_the_weights_so_far(sources, monkeypatch):
    calls = {"n": 0}
    loss = contrastive_module._views_loss

    def interrupting(module, batch, **kwargs):
        if module.training:
            calls["n"] += 1
            if calls["n"] > 3:  # 36 training images in batches of 12: 3 per epoch
                raise KeyboardInterrupt
        return loss(module, batch, **kwargs)

    collection = ImageCollection(sources["h5"], num_workers=1)
    monkeypatch.setattr(contrastive_module, "_views_loss", interrupting)
    with pytest.warns(RuntimeWarning, match="interrupted after 1 complete epoch"):
        est = ContrastiveEmbedder(**{**CONTRASTIVE, "max_epochs": 5}).fit(collection)
    assert est.history_.interrupted and est.history_.n_epochs == 1
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]
    monkeypatch.setattr(contrastive_module, "_views_loss", loss)
    one_epoch = ContrastiveEmbedder(**{**CONTRASTIVE, "max_epochs": 1}).fit(collection)
    np.testing.assert_array_equal(est.transform(collection), one_epoch.transform(collection))


# --- real images (skipped where ../shared/data is absent) ---------------------------------


def test_real_galaxy10_cutouts_stream_as_they_load(galaxy10_samples):
    from galaxysim.images import load_images

    images, _ = load_images(galaxy10_samples, crop=32)
    in_memory = ContrastiveEmbedder(**CONTRASTIVE).fit(images)
    streamed = ContrastiveEmbedder(**CONTRASTIVE).fit(
        ImageCollection(galaxy10_samples, crop=32, num_workers=1)
    )
    assert streamed.history_.train_loss == in_memory.history_.train_loss
    np.testing.assert_array_equal(streamed.transform(images), in_memory.transform(images))


@pytest.fixture(scope="module")
def sdss_folder(shared_data) -> Path:
    folder = shared_data / "sdss_gz1_unlabeled"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


def test_the_sdss_folder_reads_random_batches_framed(sdss_folder):
    collection = ImageCollection(sdss_folder, crop=212, image_size=32, num_workers=0)
    assert len(collection) == 3332 and collection.image_shape == (32, 32, 3)
    batch = collection.read(np.random.default_rng(0).choice(3332, 16, replace=False))
    assert batch.shape == (16, 32, 32, 3) and batch.min() >= 0 and batch.max() <= 1


@pytest.mark.slow
def test_a_contrastive_embedder_trains_on_the_3332_sdss_jpegs_streamed(sdss_folder):
    collection = ImageCollection(sdss_folder, crop=212, image_size=32, num_workers=1)
    embedder = ContrastiveEmbedder(**{**CONTRASTIVE, "max_epochs": 1, "batch_size": 128})
    embedding = embedder.fit_transform(collection)
    assert embedding.shape == (3332, 8) and np.all(np.isfinite(embedding))
    assert embedder.history_.n_epochs == 1


def test_a_model_fitted_from_disk_saves_and_loads_as_a_weights_only_file(sources, tmp_path):
    from galaxysim import load_model, save_model

    embedder = AutoencoderEmbedder(**AUTOENCODER).fit(sources["zarr"])
    path = save_model(embedder, tmp_path / "model.safetensors")
    loaded = load_model(path, expected=AutoencoderEmbedder)
    np.testing.assert_array_equal(
        loaded.transform(sources["zarr"]), embedder.transform(sources["zarr"])
    )


def test_one_image_file_is_not_a_collection(pixels, tmp_path, sources):
    Image.fromarray(pixels[0]).save(tmp_path / "query.png")
    with pytest.raises(ValueError, match=r"one image file.*load_image"):
        ImageCollection(tmp_path / "query.png")
    embedder = AutoencoderEmbedder(**AUTOENCODER).fit(pixels)
    with pytest.raises(ValueError, match=r"query\.png' is one image file"):
        embedder.transform(str(tmp_path / "query.png"))
