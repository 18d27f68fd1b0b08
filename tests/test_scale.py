"""embed_collection: chunked embedding into zarr, resume, Dask equal to one process bit for bit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from sklearn.decomposition import PCA  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from galaxysim import (  # noqa: E402
    AutoencoderEmbedder,
    ImagePreprocessor,
    load_model,
    save_model,
    scale,
)
from galaxysim.scale import DONE_FOLDER, ChunkError, embed_collection  # noqa: E402

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

N, SIDE, CROP, CHUNK = 23, 20, 16, 5
N_CHUNKS = -(-N // CHUNK)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (N, SIDE, SIDE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def cropped(images):
    top = (SIDE - CROP) // 2
    return images[:, top : top + CROP, top : top + CROP]


@pytest.fixture(scope="module")
def pca(cropped):
    return make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3)).fit(cropped)


@pytest.fixture(scope="module")
def autoencoder(cropped):
    return AutoencoderEmbedder(
        n_components=4,
        n_stages=1,
        n_blocks=1,
        base_channels=2,
        max_epochs=1,
        batch_size=8,
        device="cpu",
        random_state=0,
    ).fit(cropped)


def _write_h5(path, images, keys=("ans", "ra", "dec", "redshift", "pxscale")):
    with h5py.File(path, "w") as handle:
        handle["images"] = images
        for key in keys:
            handle[key] = np.zeros(len(images))
    return path


def _write_zarr(path, images):
    zarr.open_array(
        str(path), mode="w", shape=images.shape, dtype=images.dtype, chunks=(7, *images.shape[1:])
    )[:] = images
    return path


def _write_folder(path, images):
    from PIL import Image

    path.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(path / f"g{i:03d}.png")
    return path


@pytest.fixture(params=["h5", "zarr", "folder"])
def source(request, tmp_path, images):
    writer = {"h5": _write_h5, "zarr": _write_zarr, "folder": _write_folder}[request.param]
    suffix = {"h5": ".h5", "zarr": ".zarr", "folder": ""}[request.param]
    return writer(tmp_path / f"collection{suffix}", images)


def _chunked(model, cropped, tmp_path):
    """The chunks transformed one by one by the model as saved, with one thread.

    That is how embed_collection embeds: the model it runs is the one its model file
    holds, in every process.
    """
    path = tmp_path / "expected_model.safetensors"
    model = load_model(save_model(model, path, overwrite=True))
    with scale._threads(1):
        return np.concatenate([model.transform(cropped[i : i + CHUNK]) for i in range(0, N, CHUNK)])


def test_sequential_equals_transform_of_every_source(source, tmp_path, pca, cropped):
    result = embed_collection(source, pca, tmp_path / "emb.zarr", chunk_size=CHUNK, crop=CROP)
    assert result.shape == (N, 3) and result.dtype == np.float64 and result.chunks == (CHUNK, 3)
    assert np.array_equal(result[:], _chunked(pca, cropped, tmp_path).astype(np.float64))
    np.testing.assert_allclose(result[:], pca.transform(cropped), rtol=1e-5, atol=1e-5)
    assert sorted((tmp_path / "emb.zarr" / DONE_FOLDER).iterdir()) != []


def test_a_model_file_and_resize_work(tmp_path, images, autoencoder, cropped):
    model = save_model(autoencoder, tmp_path / "ae.safetensors")
    source = _write_zarr(tmp_path / "images.zarr", images)
    result = embed_collection(source, model, tmp_path / "emb.zarr", chunk_size=CHUNK, crop=CROP)
    assert np.array_equal(result[:], _chunked(autoencoder, cropped, tmp_path).astype(np.float64))
    small = embed_collection(
        source, model, tmp_path / "small.zarr", chunk_size=CHUNK, crop=None, image_size=CROP
    )
    assert small.shape == (N, 4) and np.isfinite(small[:]).all()


def _counting(monkeypatch, fail_at=None):
    calls = []
    original = scale._write_piece

    def counted(chunk, *args):
        calls.append(chunk)
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("power cut")
        return original(chunk, *args)

    monkeypatch.setattr(scale, "_write_piece", counted)
    return calls


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, images, pca, cropped, monkeypatch):
    source = _write_zarr(tmp_path / "images.zarr", images)
    out = tmp_path / "emb.zarr"
    calls = _counting(monkeypatch, fail_at=3)
    with pytest.raises(ChunkError, match=r"chunk 2 \(rows 10:15 .*power cut") as caught:
        embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    assert caught.value.chunk == 2
    assert sorted(p.name for p in (out / DONE_FOLDER).iterdir()) == ["0", "1"]
    monkeypatch.undo()
    calls = _counting(monkeypatch)
    result = embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    assert calls == [2, 3, 4]
    assert np.array_equal(result[:], _chunked(pca, cropped, tmp_path).astype(np.float64))
    calls.clear()
    embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    assert calls == []  # everything done: nothing recomputed


def test_a_chunk_written_but_not_marked_is_done_again(tmp_path, images, pca, cropped, monkeypatch):
    source = _write_zarr(tmp_path / "images.zarr", images)
    out = tmp_path / "emb.zarr"
    expected = embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)[:]
    zarr.open_array(str(out), mode="r+")[5:10] = 0.0  # a crash mid-write ...
    (out / DONE_FOLDER / "1").unlink()  # ... happens before the marker
    calls = _counting(monkeypatch)
    assert np.array_equal(
        embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)[:], expected
    )
    assert calls == [1]


def test_another_job_in_out_is_refused_unless_overwrite(tmp_path, images, pca):
    source = _write_zarr(tmp_path / "images.zarr", images)
    out = tmp_path / "emb.zarr"
    embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    with pytest.raises(ValueError, match="another job.*overwrite=True"):
        embed_collection(source, pca, out, chunk_size=CHUNK + 1, crop=CROP)
    result = embed_collection(source, pca, out, chunk_size=CHUNK + 1, crop=CROP, overwrite=True)
    assert result.chunks == (CHUNK + 1, 3)
    plain = tmp_path / "notes"
    plain.mkdir()
    with pytest.raises(ValueError, match="not a zarr store"):
        embed_collection(source, pca, plain, crop=CROP, overwrite=True)
    assert plain.is_dir()


def test_bad_inputs_get_clear_errors(tmp_path, images, pca):
    source = _write_zarr(tmp_path / "images.zarr", images)
    out = tmp_path / "emb.zarr"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        embed_collection(tmp_path / "missing.h5", pca, out)
    with pytest.raises(ValueError, match="lacks the key"):
        embed_collection(_write_h5(tmp_path / "x.h5", images, keys=("ans",)), pca, out)
    flat = _write_zarr(tmp_path / "flat.zarr", images.reshape(N, -1))
    with pytest.raises(ValueError, match="expected images"):
        embed_collection(flat, pca, out)
    with pytest.raises(ValueError, match="chunk_size"):
        embed_collection(source, pca, out, chunk_size=0, crop=CROP)
    with pytest.raises(ValueError, match="larger than the images"):
        embed_collection(source, pca, out, crop=SIDE + 1)
    with pytest.raises(ValueError, match="not fitted"):
        embed_collection(source, PCA(2), out, crop=CROP)
    with pytest.raises(TypeError, match="transform"):
        embed_collection(source, object(), out, crop=CROP)
    with pytest.raises(FileNotFoundError, match="folder of out"):
        embed_collection(source, pca, tmp_path / "no" / "emb.zarr", crop=CROP)
    assert not out.exists()


# ----------------------------------------------------------------------------- Dask

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as dask_client:
            yield dask_client


def test_dask_equals_one_process_bit_for_bit_and_ships_the_model_once(
    client, tmp_path, images, autoencoder
):
    source = _write_h5(tmp_path / "images.h5", images)
    here = embed_collection(
        source, autoencoder, tmp_path / "here.zarr", chunk_size=CHUNK, crop=CROP
    )
    before = client.run(scale._worker_model_loads)
    there = embed_collection(
        source, autoencoder, tmp_path / "there.zarr", chunk_size=CHUNK, crop=CROP, client=client
    )
    assert np.array_equal(here[:], there[:])
    assert len(list((tmp_path / "there.zarr" / DONE_FOLDER).iterdir())) == N_CHUNKS
    loads = {
        worker: n - before[worker] for worker, n in client.run(scale._worker_model_loads).items()
    }
    assert len(loads) == 2 and all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1
    # A second job with the same model reuses each worker's copy.
    embed_collection(
        source, autoencoder, tmp_path / "again.zarr", chunk_size=CHUNK + 1, crop=CROP, client=client
    )
    after = client.run(scale._worker_model_loads)
    assert all(after[worker] - before[worker] <= 1 for worker in before)


def test_a_dask_worker_reuses_freed_memory_instead_of_mapping_it_again(
    client, tmp_path, images, autoencoder
):
    """The nanny's MALLOC_TRIM_THRESHOLD_ made every large tensor a fresh mapping (page faults)."""

    def page_faults_of_repeated_megabytes() -> int:
        import resource

        import numpy

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(50):
            numpy.ones(1 << 20, dtype=numpy.uint8)  # 1 MB, filled, then freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    source = _write_h5(tmp_path / "images.h5", images)
    embed_collection(
        source, autoencoder, tmp_path / "e.zarr", chunk_size=CHUNK, crop=CROP, client=client
    )
    loads = client.run(scale._worker_model_loads)
    faults = client.run(page_faults_of_repeated_megabytes)
    used = [worker for worker, n in loads.items() if n >= 1]
    assert used
    # Mapped afresh, each megabyte costs 256 page faults: 12,800 in all.
    assert all(faults[worker] < 1_000 for worker in used), faults


def test_dask_resumes_and_names_the_failing_chunk(client, tmp_path, images, pca, cropped):
    folder = _write_folder(tmp_path / "images", images)
    (folder / "g012.png").write_bytes(b"not a png")  # in chunk 2 (rows 10:15)
    out = tmp_path / "emb.zarr"
    with pytest.raises(ChunkError, match=r"chunk 2 \(rows 10:15") as caught:
        embed_collection(folder, pca, out, chunk_size=CHUNK, crop=CROP, client=client)
    assert caught.value.chunk == 2
    assert "2" not in {p.name for p in (out / DONE_FOLDER).iterdir()}
    from PIL import Image

    Image.fromarray(images[12]).save(folder / "g012.png")
    result = embed_collection(folder, pca, out, chunk_size=CHUNK, crop=CROP, client=client)
    assert np.array_equal(result[:], _chunked(pca, cropped, tmp_path).astype(np.float64))


# ----------------------------------------------------------------------------- resuming safely


def _chunk_file(out, chunk):
    """The file of zarr chunk (chunk, 0) in the store ``out`` (zarr 3 or 2 layout)."""
    array = zarr.open_array(str(out), mode="r")
    encode = getattr(array.metadata, "encode_chunk_key", None)
    return out / (encode((chunk, 0)) if encode else f"{chunk}.0")


@pytest.mark.parametrize("kind", ["folder", "h5"])
def test_a_source_replaced_by_other_images_is_refused_on_resume(
    tmp_path, images, pca, monkeypatch, kind
):
    writer = {"folder": _write_folder, "h5": _write_h5}[kind]
    source = writer(tmp_path / ("images" if kind == "folder" else "images.h5"), images)
    out = tmp_path / "emb.zarr"
    _counting(monkeypatch, fail_at=3)
    with pytest.raises(ChunkError):
        embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    monkeypatch.undo()
    markers = {p.name: p.read_bytes() for p in (out / DONE_FOLDER).iterdir()}
    other = images[::-1].copy()  # other galaxies, the same shape and number
    if kind == "folder":
        for path in source.iterdir():
            path.unlink()
        source.rmdir()
    writer(source, other)
    calls = _counting(monkeypatch)
    with pytest.raises(ValueError, match=r"embeddings of other images: rows 0:5 .*overwrite=True"):
        embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    assert (
        calls == [] and {p.name: p.read_bytes() for p in (out / DONE_FOLDER).iterdir()} == markers
    )
    result = embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP, overwrite=True)
    top = (SIDE - CROP) // 2
    np.testing.assert_allclose(
        result[:], pca.transform(other[:, top : top + CROP, top : top + CROP]), rtol=1e-5, atol=1e-5
    )


def test_the_same_source_by_a_relative_or_an_absolute_path_resumes(
    tmp_path, images, pca, monkeypatch
):
    source = _write_zarr(tmp_path / "images.zarr", images)
    monkeypatch.chdir(tmp_path)
    _counting(monkeypatch, fail_at=2)
    with pytest.raises(ChunkError):
        embed_collection("images.zarr", pca, "emb.zarr", chunk_size=CHUNK, crop=CROP)
    monkeypatch.undo()
    calls = _counting(monkeypatch)
    embed_collection(source.resolve(), pca, tmp_path / "emb.zarr", chunk_size=CHUNK, crop=CROP)
    assert calls == [1, 2, 3, 4]


def test_a_done_marker_whose_chunk_is_missing_is_redone(tmp_path, images, pca, monkeypatch):
    source = _write_zarr(tmp_path / "images.zarr", images)
    out = tmp_path / "emb.zarr"
    expected = embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)[:]
    _chunk_file(out, 1).unlink()  # the chunk is gone, its marker stays
    assert (out / DONE_FOLDER / "1").is_file()
    (out / DONE_FOLDER / "3").write_text("3:4\n")  # a marker of an older galaxysim, or damaged
    calls = _counting(monkeypatch)
    result = embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    assert calls == [1, 3] and np.array_equal(result[:], expected)


def test_another_model_or_a_running_job_is_refused(tmp_path, images, pca, cropped):
    source = _write_zarr(tmp_path / "images.zarr", images)
    out = tmp_path / "emb.zarr"
    embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    other = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3)).fit(
        cropped[::-1][:20]
    )
    with pytest.raises(ValueError, match="another job.*model_sha256"):
        embed_collection(source, other, out, chunk_size=CHUNK, crop=CROP)
    from galaxysim._filelock import FileLock

    with FileLock(tmp_path / ".emb.zarr.lock"):  # another run holds the store
        with pytest.raises(ValueError, match="another run is writing into out"):
            embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    embed_collection(source, pca, out, chunk_size=CHUNK, crop=CROP)
    assert not (tmp_path / ".emb.zarr.lock").exists()


def test_zarr_metadata_nested_100000_deep_is_one_clear_error(tmp_path, images, pca):
    source = _write_zarr(tmp_path / "images.zarr", images)
    meta = source / ("zarr.json" if (source / "zarr.json").exists() else ".zattrs")
    text = meta.read_text()
    meta.write_text(text.rstrip()[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        embed_collection(source, pca, tmp_path / "emb.zarr", chunk_size=CHUNK, crop=CROP)


def test_a_zarr_array_declaring_a_trillion_images_is_refused_before_listing_them(tmp_path, pca):
    source = tmp_path / "declared.zarr"
    zarr.open_array(
        str(source),
        mode="w",
        shape=(10**12, SIDE, SIDE, 3),
        dtype="uint8",
        chunks=(7, SIDE, SIDE, 3),
    )[:7] = 1
    with pytest.raises(MemoryError, match="chunks of .*larger chunk_size"):
        embed_collection(source, pca, tmp_path / "emb.zarr", chunk_size=CHUNK, crop=CROP)
    assert not (tmp_path / "emb.zarr").exists()
