"""Tests of galaxysim.persistence: weights-only model files that never run code."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from galaxysim import (
    AutoencoderEmbedder,
    ContrastiveEmbedder,
    FlowDensityEstimator,
    ImagePreprocessor,
    SimilarityRanker,
    load_model,
    save_model,
)
from galaxysim.datasets import make_galaxies, make_milky_way
from galaxysim.persistence import FORMAT, ModelFileError

TINY_AE = dict(
    n_components=4,
    n_stages=2,
    n_blocks=1,
    base_channels=4,
    max_epochs=2,
    device="cpu",
    random_state=0,
)
TINY_FLOW = dict(hidden_features=(8,), max_epochs=2, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def galaxies():
    return make_galaxies(60, image_size=16, random_state=0)


@pytest.fixture(scope="module")
def ranker(galaxies):
    X, y = galaxies
    return SimilarityRanker(
        embedder=AutoencoderEmbedder(**TINY_AE),
        density=FlowDensityEstimator(**TINY_FLOW),
        target_names=["a", "b", "c", "d", "e"],
    ).fit(X, y)


def _rewrite(path, edit_header=None, edit_tensors=None, out=None):
    """Copy a model file with its JSON header and/or tensors changed, as a tamperer would."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    header = json.loads(metadata[FORMAT])
    if edit_header is not None:
        edit_header(header)
    if edit_tensors is not None:
        edit_tensors(tensors)
    target = out or path
    save_file(tensors, str(target), metadata={FORMAT: json.dumps(header)})
    return target


@pytest.mark.slow
def test_ranker_round_trip_gives_identical_rankings(ranker, galaxies, tmp_path):
    X, y = galaxies
    loaded = load_model(save_model(ranker, tmp_path / "r.safetensors"), expected=SimilarityRanker)
    query = make_milky_way(16)
    before, after = ranker.rank(query, n_neighbors=60), loaded.rank(query, n_neighbors=60)
    np.testing.assert_array_equal(after.indices, before.indices)
    np.testing.assert_array_equal(after.distances, before.distances)
    np.testing.assert_array_equal(after.log_density, before.log_density)
    assert after.diagnostics == before.diagnostics
    assert loaded.score(X, y) == ranker.score(X, y)
    np.testing.assert_array_equal(
        loaded.embedder_.history_.train_loss, ranker.embedder_.history_.train_loss
    )
    assert loaded.get_params()["target_names"] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("flow", ["affine", "spline", "autoregressive"])
def test_vector_flows_round_trip_exactly(flow, tmp_path):
    X = np.random.default_rng(0).normal(size=(80, 3))
    est = FlowDensityEstimator(flow=flow, **TINY_FLOW).fit(X)
    loaded = load_model(save_model(est, tmp_path / "f.safetensors"))
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    np.testing.assert_array_equal(loaded.sample(5, random_state=3), est.sample(5, random_state=3))
    np.testing.assert_array_equal(loaded.typicality(X), est.typicality(X))


def test_image_flow_and_autoencoder_round_trip_exactly(galaxies, tmp_path):
    X, _ = galaxies
    flow = FlowDensityEstimator(
        n_layers=1, n_levels=1, hidden_features=(4,), max_epochs=1, device="cpu", random_state=0
    ).fit(X[:, :8, :8])
    loaded = load_model(save_model(flow, tmp_path / "i.safetensors"))
    np.testing.assert_array_equal(
        loaded.score_samples(X[:5, :8, :8]), flow.score_samples(X[:5, :8, :8])
    )
    np.testing.assert_array_equal(loaded.sample(2, random_state=0), flow.sample(2, random_state=0))
    ae = AutoencoderEmbedder(**TINY_AE).fit(X)
    ae_loaded = load_model(save_model(ae, tmp_path / "a.safetensors"), expected=AutoencoderEmbedder)
    np.testing.assert_array_equal(ae_loaded.transform(X), ae.transform(X))
    np.testing.assert_array_equal(
        ae_loaded.inverse_transform(ae.transform(X[:3])), ae.inverse_transform(ae.transform(X[:3]))
    )


@pytest.mark.slow
def test_sklearn_pipelines_and_unfitted_estimators_round_trip(galaxies, tmp_path):
    X, y = galaxies
    embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(5, random_state=0))
    ranker = SimilarityRanker(embedder=embedder, density="drop", invariance=None).fit(X, y)
    loaded = load_model(save_model(ranker, tmp_path / "p.safetensors"))
    np.testing.assert_array_equal(loaded.transform(X), ranker.transform(X))
    fresh = load_model(save_model(AutoencoderEmbedder(n_components=7), tmp_path / "u.safetensors"))
    assert fresh.get_params() == AutoencoderEmbedder(n_components=7).get_params()


def test_loading_leaves_the_callers_random_streams_alone(ranker, tmp_path):
    path = save_model(ranker, tmp_path / "r.safetensors")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model(path)
    assert torch.equal(torch.rand(3), expected)


def test_a_model_saved_from_a_gpu_loads_on_the_cpu(ranker, tmp_path):
    def from_cuda(header):
        header["model"]["state"]["embedder_"]["state"]["device_"] = {"device": "cuda:0"}

    path = _rewrite(save_model(ranker, tmp_path / "r.safetensors"), edit_header=from_cuda)
    loaded = load_model(path)
    if not torch.cuda.is_available():
        assert loaded.embedder_.device_ == torch.device("cpu")
    assert loaded.embedder_.network_.encoder[0].weight.device.type in ("cpu", "cuda")


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h.update(format_version=99), "version 99"),
        (lambda h: h.update(format="other"), "not a galaxysim model"),
        (lambda h: h["model"].update(estimator="posix.system"), "not one galaxysim loads"),
        (lambda h: h["model"]["state"].update(n_components=2), "do not match|needs"),
        (lambda h: h["model"]["state"].update(history_={"pickle": "x"}), "unknown kind"),
    ],
)
def test_tampered_headers_are_refused(edit, match, galaxies, tmp_path):
    X, _ = galaxies
    path = save_model(AutoencoderEmbedder(**TINY_AE).fit(X), tmp_path / "a.safetensors")
    with pytest.raises(ModelFileError, match=match):
        load_model(_rewrite(path, edit_header=edit))


def test_tampered_weights_are_refused(galaxies, tmp_path):
    X, _ = galaxies
    path = save_model(AutoencoderEmbedder(**TINY_AE).fit(X), tmp_path / "a.safetensors")
    name = next(n for n in safe_open(str(path), framework="pt").keys() if n.endswith("weight"))

    def reshape(tensors):
        tensors[name] = torch.zeros(3)

    with pytest.raises(ModelFileError, match="shape"):
        load_model(_rewrite(path, edit_tensors=reshape, out=tmp_path / "b.safetensors"))

    def add(tensors):
        tensors["extra"] = torch.zeros(2)

    with pytest.raises(ModelFileError, match="no part of the model uses"):
        load_model(_rewrite(path, edit_tensors=add, out=tmp_path / "c.safetensors"))


def test_truncated_foreign_and_missing_files_get_clear_errors(ranker, tmp_path):
    path = save_model(ranker, tmp_path / "r.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="damaged|truncated"):
        load_model(tmp_path / "cut.safetensors")
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(ModelFileError, match="too short"):
        load_model(tmp_path / "short")
    (tmp_path / "huge").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelFileError, match="header claims"):
        load_model(tmp_path / "huge")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ModelFileError, match="not a galaxysim model"):
        load_model(tmp_path / "foreign.safetensors")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nowhere.safetensors")
    with pytest.raises(ModelFileError, match="expected"):
        load_model(path, expected=FlowDensityEstimator)


def test_saving_refuses_to_overwrite_and_leaves_nothing_on_failure(ranker, tmp_path):
    path = save_model(ranker, tmp_path / "r.safetensors")
    with pytest.raises(FileExistsError):
        save_model(ranker, path)
    save_model(ranker, path, overwrite=True)
    from sklearn.neighbors import KernelDensity

    with pytest.raises(TypeError, match="KernelDensity"):
        save_model(KernelDensity(), tmp_path / "kde.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.safetensors"]


def test_jammy_flow_round_trips_exactly(tmp_path):
    pytest.importorskip("jammy_flows")
    X = np.random.default_rng(0).normal(size=(60, 2))
    est = FlowDensityEstimator(
        backend="jammy", flow="gt", n_layers=1, max_epochs=1, device="cpu", random_state=0
    ).fit(X)
    loaded = load_model(save_model(est, tmp_path / "j.safetensors"))
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))


def _peak_rss_bytes() -> int:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _set(path, value):
    """An edit that sets header[path[0]][path[1]]... to ``value``."""

    def edit(header):
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


EMBEDDER = ("model", "state", "embedder_", "state")
DENSITY = ("model", "state", "density_", "state")


@pytest.mark.parametrize(
    "edit, match",
    [
        # Network widths and depths far beyond the weights stored: compared before building.
        (_set((*DENSITY, "hidden_features"), {"tuple": [30000, 30000]}), "needs|do not match"),
        (_set((*EMBEDDER, "base_channels"), 20000), "needs|do not match"),
        (_set((*DENSITY, "n_layers"), 1_000_000), "more than .* parts"),
        (_set((*EMBEDDER, "n_stages"), 100_000), "divisible"),
        # JSON of the wrong types, wherever it is.
        (_set(("model", "state", "neighbors_params"), [1, 2]), "neighbors_params must be a dict"),
        (_set(("model", "state"), [1, 2]), "model: state must be an object"),
        (_set(("model", "state", "_rebuilt_after_loading"), ["search_"]), "attribute of the class"),
        (_set(("model", "modules"), [1]), "model: modules must be an object"),
        (_set(("model", "estimator"), 5), "model: estimator must be a string"),
        (_set(("model",), [1]), "model must be an object or null"),
        (_set(("format_version",), "1"), "format_version must be an integer"),
        (_set((*EMBEDDER, "history_"), {"history": [1]}), "could not be read"),
        (_set((*EMBEDDER, "n_components"), -3), "n_components"),
        (_set(("model", "state", "image_shape_"), {"tuple": [10**6, 10**6, 3]}), "larger than"),
        (
            _set(("model", "state", "image_shape_"), {"tuple": [16, 16, 0]}),
            "image_shape_ must hold positive",
        ),
    ],
)
def test_hostile_headers_are_refused_before_any_network_is_built(edit, match, ranker, tmp_path):
    path = _rewrite(save_model(ranker, tmp_path / "r.safetensors"), edit_header=edit)
    before = _peak_rss_bytes()
    with pytest.raises(ModelFileError, match=match):
        load_model(path)
    assert _peak_rss_bytes() - before < 500 * 2**20  # no network of gigabytes was built


def test_a_header_nested_100000_deep_is_one_clear_error(tmp_path):
    deep = '{"format": "galaxysim-model", "model": ' + "[" * 100_000 + "]" * 100_000 + "}"
    save_file({"w": torch.zeros(2)}, str(tmp_path / "deep.safetensors"), metadata={FORMAT: deep})
    with pytest.raises(ModelFileError, match="nested more than"):
        load_model(tmp_path / "deep.safetensors")


def test_the_module_docstring_names_every_class_a_file_may_hold():
    import galaxysim.persistence as persistence

    missing = [name for name in persistence._known_classes() if name not in persistence.__doc__]
    assert not missing, f"galaxysim.persistence's docstring does not name {missing}"


# -- model files written by galaxysim 0.2, which named some parameters otherwise ----------------


def _as_written_by_02(header):
    """Give a header the parameter names and values galaxysim 0.2 wrote."""
    header["galaxysim_version"] = "0.2.0"

    def walk(node):
        if isinstance(node, dict) and "estimator" in node and isinstance(node["state"], dict):
            state, name = node["state"], node["estimator"]
            if name == "AutoencoderEmbedder":
                del state["latent_dim"], state["augment"]
                state["latent_dim"] = state.pop("n_components")
                state["augment"] = state.pop("random_dihedral")
            if name == "ContrastiveEmbedder":
                del state["whiten"]
                state["whiten"] = state.pop("n_components")
                state["n_components"] = state.pop("representation_dim")
            if name == "SimilarityRanker":
                if state["density"] == "drop":
                    state["density"] = False
                state["neighbors_params"] = {"dict": {"algorithm": state.pop("search")}}
        if isinstance(node, dict):
            for item in node.values():
                walk(item)
        if isinstance(node, list):
            for item in node:
                walk(item)

    walk(header["model"])


def test_an_02_autoencoder_ranker_loads_under_the_new_names(ranker, galaxies, tmp_path):
    X, _ = galaxies
    path = _rewrite(save_model(ranker, tmp_path / "r.safetensors"), _as_written_by_02)
    state = json.loads(safe_open(str(path), framework="pt").metadata()[FORMAT])["model"]["state"]
    assert state["embedder_"]["state"]["latent_dim"] == 4  # the file really has the old names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading an old file is not the user's deprecated call
        loaded = load_model(path, expected=SimilarityRanker)
    embedder = loaded.embedder_
    assert (embedder.n_components, embedder.random_dihedral) == (4, True)
    assert embedder.latent_dim == "deprecated" and embedder.augment == "deprecated"
    assert loaded.search == "auto" and loaded.neighbors_params is None
    np.testing.assert_array_equal(loaded.transform(X), ranker.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X), ranker.score_samples(X))


def test_an_02_contrastive_model_and_a_ranker_without_density_load(galaxies, tmp_path):
    X, y = galaxies
    embedder = ContrastiveEmbedder(
        n_components=3,
        representation_dim=8,
        n_stages=1,
        base_channels=4,
        projection_dim=4,
        max_epochs=1,
        batch_size=16,
        device="cpu",
        random_state=0,
    ).fit(X)
    path = _rewrite(save_model(embedder, tmp_path / "c.safetensors"), _as_written_by_02)
    loaded = load_model(path, expected=ContrastiveEmbedder)
    assert (loaded.n_components, loaded.representation_dim, loaded.whiten) == (3, 8, "deprecated")
    np.testing.assert_array_equal(loaded.transform(X), embedder.transform(X))
    pixels = SimilarityRanker(
        embedder=make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(4)),
        density="drop",
        search="brute",
        invariance=None,
    ).fit(X, y)
    path = _rewrite(save_model(pixels, tmp_path / "p.safetensors"), _as_written_by_02)
    loaded = load_model(path, expected=SimilarityRanker)
    assert (loaded.density, loaded.search, loaded.neighbors_params) == ("drop", "brute", None)
    assert loaded.search_.algorithm_ == "brute"
    np.testing.assert_array_equal(loaded.kneighbors(X[:5])[1], pixels.kneighbors(X[:5])[1])
