"""Every benchmark script's --quick mode runs and reports finite, well-formed numbers.

Speed and memory are never asserted: only that each script still runs and
that what it reports is a number where a number belongs. The flow benchmark
(tests/test_flows_estimator.py) and the memory benchmark's measuring child
(tests/test_galaxy10.py) have their own tests; this file covers the rest.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

torch = pytest.importorskip("torch")


def _load(name: str):
    path = BENCHMARKS / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _markdown_rows(text: str) -> list[list[str]]:
    """Body rows of the Markdown tables in ``text``: header and rule lines skipped."""
    rows, in_table = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
        elif not in_table:
            in_table = True  # the header line
        elif not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_search_quick(capsys):
    bench = _load("bench_search")
    result = bench.main(["--quick", "--queries", "25"])
    rows = result["rows"]
    algorithms = [a for a in bench.ALGORITHMS if a == "exact" or bench.faiss_available()]
    assert [(r["dim"], r["n_stored"], r["algorithm"]) for r in rows] == [
        (64, 10_000, algorithm) for algorithm in algorithms
    ]
    for row in rows:
        assert math.isfinite(row["build_seconds"]) and row["build_seconds"] >= 0
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["n_timed"] == 25
        assert 0.0 <= row["recall"] <= 1.0 and row["index_mb"] > 0
        if row["algorithm"] in ("exact", "faiss-flat"):
            assert row["recall"] == 1.0
    printed = capsys.readouterr().out
    assert len(_markdown_rows(printed)) == len(rows) + len(result["paper"])
    assert "python benchmarks/bench_search.py --quick --queries 25" in printed


def test_search_embeddings_are_clustered_and_the_paper_figures_add_up():
    bench = _load("bench_search")
    Z = bench.make_embeddings(2_000, 64, np.random.default_rng(0))
    assert Z.dtype == np.float32 and Z.shape == (2_000, 64)
    singular = np.linalg.svd(Z - Z.mean(axis=0), compute_uv=False)
    # Sixteen directions carry the clusters; the rest is the 5 % noise.
    assert singular[15] > 5 * singular[16]
    paper = {row["backend"]: row["bytes"] for row in bench.paper_estimate(10**8, 64, M=32, m=16)}
    assert paper["exact / faiss-flat"] == 4 * 64 * 10**8
    assert paper["faiss-ivf pq=16"] < paper["exact / faiss-flat"] / 10


def test_inference_quick(capsys):
    bench = _load("bench_inference")
    result = bench.main(["--quick"])
    rates = [row for row in result["rows"] if "per_second" in row]
    latencies = [row for row in result["rows"] if "seconds" in row]
    assert len(rates) == len(bench.VECTOR_FLOWS) + 1  # vector flows and one image size
    assert all(math.isfinite(r["per_second"]) and r["per_second"] > 0 for r in rates)
    assert len(latencies) == 4  # embedding/likelihood x without/with dihedral invariance
    assert all(math.isfinite(r["seconds"]) and r["seconds"] > 0 for r in latencies)
    printed = capsys.readouterr().out
    assert len(_markdown_rows(printed)) == len(rates) + len(latencies)
    assert "python benchmarks/bench_inference.py --quick" in printed


def test_evaluate_quick_writes_its_reports(tmp_path, capsys):
    bench = _load("bench_evaluate")
    result = bench.main(["--quick", "--out", str(tmp_path), "--parts", "builtin"])
    table = result["tables"]["builtin"]
    assert table.methods == list(bench.METHODS)
    for row in table.rows:
        numbers = [v for k, v in row.items() if k not in ("method", "kind")]
        assert all(math.isfinite(v) for v in numbers), row
    files = result["files"]["builtin"]
    assert Path(files["png"]).read_bytes()[:4] == b"\x89PNG"
    markdown = Path(files["md"]).read_text()
    assert (
        "Command: `python benchmarks/bench_evaluate.py --quick" in markdown and "Date: " in markdown
    )
    assert len(Path(files["csv"]).read_text().splitlines()) == len(bench.METHODS) + 2
    printed = capsys.readouterr().out
    # The main table and the same-class rate by class, each with the chance row.
    assert len(_markdown_rows(printed)) == 2 * (len(bench.METHODS) + 1)


def test_evaluate_quick_on_the_real_samples(shared_data, tmp_path):
    bench = _load("bench_evaluate")
    result = bench.main(
        [
            "--quick",
            "--out",
            str(tmp_path),
            "--parts",
            "real",
            "--shared",
            str(shared_data),
            "--methods",
            "pixels",
            "pca",
        ]
    )
    table = result["tables"]["real"]
    assert table.class_counts == [10] * 5 and table.methods == ["pixels", "pca"]
    assert all(math.isfinite(row["same_class_at_10"]) for row in table.rows)


def test_synthetic_quick(capsys):
    bench = _load("bench_synthetic")
    results = bench.main(["--quick"])
    assert results["seconds"] > 0
    accuracies = {k: v for k, v in results.items() if k != "seconds"}
    assert len(accuracies) == 4 and all(0.0 <= v <= 1.0 for v in accuracies.values())
    assert len(_markdown_rows(capsys.readouterr().out)) == 4


def test_memory_report_is_well_formed(tmp_path, monkeypatch, capsys):
    # The measuring child is tested in tests/test_galaxy10.py; here each method
    # runs in this process (no fresh interpreter, so no real peak), which is
    # enough to check the report that run() assembles from the measurements.
    import json

    bench = _load("bench_galaxy10_memory")

    def in_process(method, path):
        bench._child(method, str(path))
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    monkeypatch.setattr(bench, "measure", in_process)
    report = bench.run(40, tmp_path, keep=False)
    rows = _markdown_rows(report)
    assert [row[0] for row in rows] == list(bench.METHODS.values())
    for row in rows:
        assert all(math.isfinite(float(cell.replace(",", ""))) for cell in row[1:])
    assert not any(tmp_path.iterdir())  # the generated file is removed


def test_image_memory_quick_measures_both_ways(capsys):
    bench = _load("bench_image_memory")
    results = bench.main(["--quick"])
    assert set(results) == set(bench.CASES)
    for kind in ("png", "jpeg"):
        before = results[f"{kind}_before"]["above_imports_bytes"]
        after = results[f"{kind}_after"]["above_imports_bytes"]
        assert after < before  # cropping while decoding needs less than decoding whole
    assert len(_markdown_rows(capsys.readouterr().out)) == len(bench.CASES)


def test_scale_quick_measures_every_part(capsys):
    pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    bench = _load("bench_scale")
    results = bench.main(["--quick"])
    assert set(results) == set(bench.PARTS)
    dask = results["dask"]
    assert dask["bit_identical"] is True
    for value in (*dask["images_per_s"].values(), dask["worker_over_here"], dask["two_over_one"]):
        assert math.isfinite(value) and value > 0
    assert set(dask["profile"]) == {"worker, as started", "worker, after a task", "this process"}
    for steps in dask["profile"].values():
        assert all(math.isfinite(v) and v >= 0 for v in steps.values()) and steps["forward"] > 0
    for kind in ("contrastive", "autoencoder"):
        figures = results["inference"][kind]
        assert figures["ratio_to_bare"]["bare no_grad"] == 1.0
        assert all(v > 0 for v in figures["images_per_cpu_s"].values())
        assert figures["recall"]["bare no_grad"] == 1.0 and figures["identical"]["bare no_grad"]
        assert all(0.0 <= v <= 1.0 for v in figures["recall"].values())
    best = results["rank"]["best"]
    assert results["rank"]["n"] == bench.QUICK["index"]
    assert all(math.isfinite(v) and v >= 0 for v in best.values()) and best["command"] > 0
    assert [m["n"] for m in results["memory"]] == list(bench.QUICK["sizes"])
    assert all(m["above_imports_bytes"] > 0 and m["output_bytes"] > 0 for m in results["memory"])
    printed = capsys.readouterr().out
    n_inference = sum(len(f["images_per_cpu_s"]) for f in results["inference"].values())
    n_rank = 10  # two rows of imports, seven steps, the whole command
    assert len(_markdown_rows(printed)) == 3 + 3 + n_inference + n_rank + len(results["memory"])
    assert "python benchmarks/bench_scale.py --quick" in printed


def test_scale_runs_one_part_alone_and_names_it(capsys):
    bench = _load("bench_scale")
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--parts", "dask,nothing"])
    assert "--parts takes a comma-separated list of dask, inference, rank, memory" in (
        capsys.readouterr().err
    )
    results = bench.main(["--quick", "--parts", "memory"])
    assert set(results) == {"memory"}
    assert "python benchmarks/bench_scale.py --parts memory --quick" in capsys.readouterr().out


def test_contrastive_quick(capsys):
    bench = _load("bench_contrastive")
    results = bench.main(["--quick", "--threads", "1"])
    assert set(results["seconds_per_epoch"]) == {"bare", "estimator", "estimator_whiten"}
    assert set(results["ratios"]) == {"estimator", "estimator_whiten"}
    assert math.isfinite(results["whiten_seconds"])
    assert all(math.isfinite(s) and s > 0 for s in results["seconds_per_epoch"].values())
    assert all(math.isfinite(r) and r > 0 for r in results["ratios"].values())
    assert all(math.isfinite(v) and v > 0 for v in results["images_per_second"].values())
    assert 0 < results["augment_share"] < 1
    rates = results["rates"]
    assert 2 <= len(rates) <= bench.QUICK.max_epochs + 1  # the untrained network, then each epoch
    assert all(0.0 <= rate <= 1.0 for rate in rates)
    assert 0 <= results["epochs_to_converge"] < len(rates)
    assert math.isfinite(results["converge_minutes"]) and results["converge_minutes"] >= 0
    printed = capsys.readouterr().out
    assert len(_markdown_rows(printed)) == 3 + 4 + len(rates)
    assert "python benchmarks/bench_contrastive.py --quick" in printed
    assert "n_components=None" in printed
    assert f"n_components={bench.WHITEN} (default)" in printed
    assert "standardi" not in printed
    # The bare loop and the convergence curve follow the estimator's defaults.
    defaults = bench.ContrastiveEmbedder().get_params()
    assert defaults["batch_size"] == bench.BATCH and defaults["n_components"] == bench.WHITEN
    assert all(bench.NETWORK[name] == defaults[name] for name in bench.NETWORK)
    # The convergence curve scores the embedding whitened as transform whitens it.
    images = np.random.default_rng(0).random((20, 32, 32, 3)).astype(np.float32)
    embedding = bench.BareLoop(images, bench.QUICK).embed()
    width = min(bench.WHITEN, bench.QUICK.network["representation_dim"], len(images))
    assert embedding.shape == (20, width)
    np.testing.assert_allclose(embedding.mean(axis=0), 0, atol=1e-8)
    assert np.all(embedding.std(axis=0, ddof=1) <= 1 + 1e-8)


def test_compare_contrastive_quick(capsys):
    bench = _load("compare_contrastive")
    results = bench.main(["--quick", "--threads", "1"])
    assert set(results) == {"pca-whitened", "nt-xent", "vicreg"}
    for loss in ("nt-xent", "vicreg"):
        rates = results[loss]
        assert set(rates) == {"raw", "standardised", "whitened", "dihedral average"}
        assert all(0.0 <= rate <= 1.0 for rate in rates.values())
    assert len(_markdown_rows(capsys.readouterr().out)) == 3


def test_compare_augmentations_quick(capsys):
    bench = _load("compare_augmentations")
    results = bench.main(["--quick", "--threads", "1"])
    assert set(results) == {"builtin", "other generator"}  # the real images are full-size only
    for rates in results.values():
        assert set(rates) == {"pca-whitened", *bench.SETTINGS}
        seeds = [rate for setting in bench.SETTINGS for rate in rates[setting]]
        assert all(0.0 <= rate <= 1.0 for rate in [*seeds, rates["pca-whitened"]])
    assert len(results["other generator"]["defaults"]) == 2  # two embedder seeds
    assert len(_markdown_rows(capsys.readouterr().out)) == 2  # one row per collection


def test_the_other_generator_draws_five_balanced_classes_in_range():
    bench = _load("compare_augmentations")
    images, labels = bench.toy_galaxies(50, size=32, seed=0)
    assert images.shape == (50, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert np.bincount(labels).tolist() == [10] * 5
    again, _ = bench.toy_galaxies(50, size=32, seed=0)
    assert np.array_equal(images, again)
    # Edge-on discs (3, 4) are elongated; the bulge class is brighter at the centre.
    centre = images[:, 12:20, 12:20].mean(axis=(1, 2, 3))
    assert centre[labels == 4].mean() > centre[labels == 3].mean()


def test_query_warning_on_a_tiny_demo_model(tmp_path, capsys):
    from galaxysim.app.cli import main as cli

    out = tmp_path / "demo"
    assert (
        cli(
            [
                "demo",
                "--out",
                str(out),
                "--n-samples",
                "40",
                "--image-size",
                "16",
                "--embedder",
                "pca",
                "--n-components",
                "4",
                "--max-epochs",
                "1",
                "--n-stages",
                "1",
                "--n-blocks",
                "1",
                "--base-channels",
                "4",
                "--flow-max-epochs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    rates = _load("bench_query_warning").main(
        [str(out / "model.safetensors"), "--n-held-out", "10"]
    )
    assert all(0.0 <= rates[key] <= 1.0 for key in ("warning", "isolation above 99"))
    assert isinstance(rates["make_milky_way"], bool)
    assert "held-out galaxies, share flagged" in capsys.readouterr().out


def test_train_scale_quick(capsys, tmp_path):
    bench = _load("bench_train_scale")
    h5 = tmp_path / "cutouts.h5"
    result = bench.main(
        ["--quick", "--threads", "1", "--workers", "0", "--in-memory", "--h5", str(h5)]
    )
    assert [row["run"].split(",")[0].split("(")[0] for row in result["rows"]] == [
        "bare PyTorch loop",
        "ContrastiveEmbedder.fit",
        "ContrastiveEmbedder.fit",
    ]
    for row in result["rows"]:
        assert row["images_per_second"] > 0 and row["minutes_30"] > 0
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
    assert result["rows"][0]["ratio"] == 1.0 and result["whiten_seconds"] > 0
    from galaxysim.datasets import ImageCollection

    collection = ImageCollection(h5, crop=64, num_workers=0)  # a Galaxy10-layout file
    assert len(collection) == 96 and collection.read([0], raw=True).dtype == np.uint8
    printed = capsys.readouterr().out
    assert len(_markdown_rows(printed)) == 3
    assert "python benchmarks/bench_train_scale.py" in printed


def test_train_scale_quick_from_a_folder(tmp_path):
    from PIL import Image

    bench = _load("bench_train_scale")
    folder = tmp_path / "folder"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    result = bench.main(
        [
            "--quick",
            "--threads",
            "1",
            "--workers",
            "0",
            "--source",
            str(folder),
            "--crop",
            "32",
            "--image-size",
            "16",
        ]
    )
    assert "40 images of folder (folder), read as (16, 16, 3)" in result["report"]
    assert result["rows"][1]["run"] == "ContrastiveEmbedder.fit(ImageCollection(folder))"


def test_evaluate_quick_adapted_part_reuses_the_builtin_models(shared_data, tmp_path):
    bench = _load("bench_evaluate")
    models = tmp_path / "models"
    args = [
        "--quick",
        "--out",
        str(tmp_path / "out"),
        "--shared",
        str(shared_data),
        "--models",
        str(models),
    ]
    first = bench.main([*args, "--parts", "transfer", "adapted"])
    kept = sorted(path.name for path in models.iterdir())
    assert kept == [
        "builtin_conv_100x16_quick.json",
        "builtin_conv_100x16_quick.safetensors",
        "builtin_dihedral_100x16_quick.json",
        "builtin_dihedral_100x16_quick.safetensors",
    ]
    assert first["tables"]["adapted"].methods == ["pca", "contrastive"]
    # The transfer table's contrastive rows are the kept models: a second run reads them.
    second = bench.main([*args, "--parts", "transfer"])
    for method in ("contrastive", "contrastive-conv"):
        assert (
            second["tables"]["transfer"][method]["same_class_at_10"]
            == first["tables"]["transfer"][method]["same_class_at_10"]
        )


def test_compare_encoders_quick(shared_data, capsys):
    bench = _load("compare_encoders")
    results = bench.main(
        ["--quick", "--shared", str(shared_data), "conv", "dihedral", "train=builtin", "pre=sdss"]
    )
    assert [r["setting"] for r in results] == ["conv", "dihedral", "train=builtin", "pre=sdss"]
    for result in results:
        scores = [v for k, v in result.items() if k.endswith(("_euc", "_cos"))]
        assert scores and all(0.0 <= v <= 1.0 for v in scores), result
    assert {"builtin_euc", "transfer_cos"} <= set(results[2]) and "pre_cos" in results[3]
    with pytest.raises(ValueError, match="unknown option 'resnet'"):
        bench.parse("resnet")


def test_pretrain_quick(shared_data, capsys):
    bench = _load("bench_pretrain")
    assert (
        bench.main(
            [
                "--quick",
                "--shared",
                str(shared_data),
                "--pretrain",
                "sdss",
                "builtin",
                "--encoders",
                "dihedral",
            ]
        )
        == 0
    )
    rows = _markdown_rows(capsys.readouterr().out)
    assert len(rows) == 3 + 3  # real, sdss, builtin for one seed; then their means
    for row in rows[:3]:
        assert 0.0 <= float(row[3]) <= 1.0 and row[4].startswith("[")


def test_calibrate_synthetic_quick(galaxy10_samples, tmp_path, capsys):
    bench = _load("calibrate_synthetic")
    output = tmp_path / "calibration.png"
    result = bench.main(["--quick", "--data", str(galaxy10_samples), "--output", str(output)])
    assert output.read_bytes()[:4] == b"\x89PNG"
    assert result["n_real"] == 50 and result["n_builtin"] == 100
    medians = result["medians"]
    assert list(medians) == list(bench.SCALARS)
    for row in medians.values():
        assert len(row) == 6 and all(math.isfinite(v) for pair in row.values() for v in pair)
    # Edge-on galaxies are flatter than face-on spirals, in the real crops and the built-in ones.
    ratio = medians["axis_ratio"]
    for side in (0, 1):
        assert ratio["Edge-on without Bulge"][side] < ratio["Unbarred Tight Spiral"][side] - 0.15
    # Light falls off outward; the sky is darker than the galaxy's centre.
    for side in (0, 1):
        assert medians["profile_8"]["all"][side] > medians["profile_24"]["all"][side]
        assert 0.0 < medians["sky"]["all"][side] < medians["mean"]["all"][side]
    assert len(_markdown_rows(capsys.readouterr().out)) == len(bench.SCALARS)


def test_calibration_statistics_see_a_known_galaxy():
    bench = _load("calibrate_synthetic")
    yy, xx = np.mgrid[:64, :64] - 31.5
    # An elongated Gaussian galaxy (axis ratio 0.5) on a sky of 0.1 with white noise.
    galaxy = 0.8 * np.exp(-0.5 * ((xx / 10.0) ** 2 + (yy / 5.0) ** 2))
    rng = np.random.default_rng(0)
    rgb = galaxy[..., None] * np.array([1.0, 0.8, 0.6])  # redder than the sky
    images = np.clip(0.1 + rgb + 0.02 * rng.standard_normal((4, 64, 64, 3)), 0, 1)
    stats = bench.calibration_statistics(images)
    np.testing.assert_allclose(stats["sky"], 0.1, atol=0.005)
    np.testing.assert_allclose(stats["noise"], 0.02, rtol=0.15)
    np.testing.assert_allclose(stats["axis_ratio"], 0.5, atol=0.06)
    # g-r-like: -2.5 log10(0.6 / 0.8); r-z-like: -2.5 log10(0.8 / 1.0).
    np.testing.assert_allclose(stats["gr_centre"], -2.5 * np.log10(0.6 / 0.8), atol=0.03)
    np.testing.assert_allclose(stats["rz_centre"], -2.5 * np.log10(0.8), atol=0.03)
    # White noise: the spectrum is flat, so the share above 0.3 cycles/px is that of the rings.
    frequency = stats["frequency"][0]
    assert abs(stats["noise_high"].mean() - np.mean(frequency > bench.HIGH_FREQUENCY)) < 0.1
    with pytest.raises(ValueError, match="images must be"):
        bench.calibration_statistics(images[:, :32])
