"""galaxysim embed, index and rank --index: a collection embedded once, queried from its index."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from galaxysim.app.cli import main

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

pytest.importorskip("zarr")

TINY = [
    "--embedder",
    "autoencoder",
    "--n-samples",
    "60",
    "--image-size",
    "16",
    "--n-stages",
    "2",
    "--max-epochs",
    "1",
    "--flow-max-epochs",
    "1",
    "--n-components",
    "4",
    "--quiet",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A Galaxy10-layout h5 of 50 galaxies, 16 pixels a side (the demo model's size)."""
    import h5py

    from galaxysim.datasets import make_galaxies

    images, labels = make_galaxies(50, image_size=16, random_state=1)
    path = tmp_path_factory.mktemp("data") / "galaxies.h5"
    with h5py.File(path, "w") as handle:
        handle["images"] = (images * 255).round().astype(np.uint8)
        handle["ans"] = labels + 5
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = np.zeros(len(images))
    return path, images


def test_embed_index_and_rank_from_the_index(demo, collection, tmp_path):
    from galaxysim import load_model

    data, images = collection
    model = demo / "model.safetensors"
    embeddings = tmp_path / "embeddings.zarr"
    assert (
        main(
            [
                "embed",
                "--data",
                str(data),
                "--model",
                str(model),
                "--out",
                str(embeddings),
                "--crop",
                "16",
                "--chunk-size",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    index = tmp_path / "index"
    assert (
        main(["index", "--embeddings", str(embeddings), "--out", str(index), "--search", "exact"])
        == 0
    )
    query = tmp_path / "query.png"
    from PIL import Image

    Image.fromarray((images[7] * 255).round().astype(np.uint8)).save(query)
    out = tmp_path / "ranked"
    assert (
        main(
            [
                "rank",
                "--index",
                str(index),
                "--model",
                str(model),
                "--query",
                str(query),
                "--data",
                str(data),
                "--crop",
                "16",
                "--query-framing",
                "full",
                "--n-neighbors",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with open(out / "ranking.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and rows[0]["index"] == "7"  # the query's own galaxy comes first
    assert (out / "neighbours.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_neighbors"] == 5 and "provenance" in summary
    # The same neighbours as the ranker that embeds the whole collection itself.
    ranker = load_model(model)
    from sklearn.frozen import FrozenEstimator

    from galaxysim.images import load_image

    # The saved, fitted embedder embeds the collection (fit would retrain an unfitted one).
    expected = (
        ranker.set_params(n_neighbors=5, embedder=FrozenEstimator(ranker.embedder_))
        .fit(images)
        .kneighbors(load_image(query)[None])[1][0]
    )
    assert [int(row["index"]) for row in rows] == list(expected)


def test_rank_index_needs_a_model_and_refuses_pickles(demo, tmp_path):
    query = tmp_path / "q.png"
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(query)
    assert (
        main(
            ["rank", "--index", str(tmp_path), "--query", str(query), "--out", str(tmp_path / "o")]
        )
        == 1
    )
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(b"\x80\x04junk")
    assert (
        main(
            [
                "rank",
                "--index",
                str(tmp_path),
                "--model",
                str(evil),
                "--query",
                str(query),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )


def test_rank_without_data_or_index_is_one_line(tmp_path, capsys):
    assert main(["rank", "--query", "q.png", "--out", str(tmp_path / "o")]) == 1
    assert "--data" in capsys.readouterr().err


def test_embed_resumes_by_content_not_by_path_and_refuses_other_images(
    demo, collection, tmp_path, monkeypatch, capsys
):
    import shutil

    import h5py

    data, _images = collection
    local = tmp_path / "galaxies.h5"
    shutil.copy(data, local)
    model = demo / "model.safetensors"
    monkeypatch.chdir(tmp_path)
    embed = ["embed", "--model", str(model), "--crop", "16", "--chunk-size", "16", "--quiet"]
    assert main([*embed, "--data", "galaxies.h5", "--out", "e.zarr"]) == 0  # relative paths
    (tmp_path / "e.zarr" / ".galaxysim-done" / "2").unlink()  # as if killed in chunk 2
    capsys.readouterr()
    assert main([*embed, "--data", str(local), "--out", str(tmp_path / "e.zarr")]) == 0
    with h5py.File(local, "r+") as handle:  # other galaxies, the same shape
        handle["images"][...] = handle["images"][:][::-1]
    (tmp_path / "e.zarr" / ".galaxysim-done" / "3").unlink()
    capsys.readouterr()
    assert main([*embed, "--data", str(local), "--out", str(tmp_path / "e.zarr")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "embeddings of other images: rows 0:16" in err
    import zarr

    stored = zarr.open_array(str(tmp_path / "e.zarr"), mode="r")
    encode = getattr(stored.metadata, "encode_chunk_key", None)
    (tmp_path / "e.zarr" / (encode((3, 0)) if encode else "3.0")).unlink()  # a chunk lost
    assert main(["index", "--embeddings", "e.zarr", "--out", "idx"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "rows never written (first: row 48)" in err


# The model options of a tiny ranker fitted by galaxysim rank (16-pixel galaxies).
TINY_RANK = [
    "--embedder",
    "autoencoder",
    "--n-stages",
    "2",
    "--max-epochs",
    "1",
    "--flow-max-epochs",
    "1",
    "--latent-dim",
    "4",
    "--crop",
    "16",
    "--query-framing",
    "full",
    "--quiet",
]


def test_rank_and_rank_index_diagnose_the_query_alike(collection, tmp_path, capsys):
    """The same model and query: the same warning (or none) with and without the index."""
    from PIL import Image

    from galaxysim.datasets import make_milky_way

    data, images = collection
    queries = {
        "galaxy": images[7],
        "drawing": make_milky_way(16),
        "blank": np.zeros((16, 16, 3)),
    }
    for name, image in queries.items():
        Image.fromarray((image * 255).round().astype(np.uint8)).save(tmp_path / f"{name}.png")
    fitted = tmp_path / "fitted"
    assert main(["rank", "--data", str(data), "--query", str(tmp_path / "galaxy.png"),
                 "--out", str(fitted), *TINY_RANK]) == 0  # fmt: skip
    model = fitted / "model.safetensors"
    embeddings, index = tmp_path / "embeddings.zarr", tmp_path / "index"
    assert main(["embed", "--data", str(data), "--model", str(model), "--out", str(embeddings),
                 "--crop", "16", "--quiet"]) == 0  # fmt: skip
    assert main(["index", "--embeddings", str(embeddings), "--out", str(index)]) == 0
    warnings = {}
    for name in queries:
        query = str(tmp_path / f"{name}.png")
        direct = fitted
        if name != "galaxy":  # the model of the first run, refitted on the same collection
            direct = tmp_path / f"direct-{name}"
            assert main(["rank", "--data", str(data), "--model", str(model), "--query", query,
                         "--out", str(direct), *TINY_RANK]) == 0  # fmt: skip
        indexed = tmp_path / f"indexed-{name}"
        capsys.readouterr()
        assert main(["rank", "--index", str(index), "--model", str(model), "--query", query,
                     "--out", str(indexed), "--query-framing", "full"]) == 0  # fmt: skip
        printed = capsys.readouterr().out
        expected = json.loads((direct / "summary.json").read_text())
        got = json.loads((indexed / "summary.json").read_text())
        assert (got["warning"] is None) == (expected["warning"] is None), name
        assert ("warning:" in printed) == (got["warning"] is not None)
        assert got["query_isolation"] == pytest.approx(expected["query_isolation"], abs=1e-9)
        assert got["query_typicality"] == pytest.approx(expected["query_typicality"], abs=1e-9)
        warnings[name] = got["warning"]
    assert "pixels are unlike" in warnings["drawing"] and "pixels are unlike" in warnings["blank"]
