"""The warning when the query is unlike the collection: fires for a drawing, rarely for a galaxy.

The pixel check (:func:`galaxysim.images.image_statistics` against the
fitted collection's) does not depend on the embedder, so a cheap PCA
embedder stands in for the autoencoder. The rates these tests bound are
measured in docs/ranking.md ("When the query is unlike the collection").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from galaxysim.datasets import make_galaxies, make_milky_way
from galaxysim.images import IMAGE_STATISTICS, ImagePreprocessor, image_statistics, sky_noise
from galaxysim.persistence import load_model, save_model
from galaxysim.ranking import QueryDiagnostics, SimilarityRanker
from galaxysim.ranking.result import out_of_distribution_warning

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_FOLDER = SHARED / "galaxy10_decals_samples"
REAL_MILKY_WAY = SHARED / "milky_way" / "milky_way_artist_impression_256.png"


def _ranker() -> SimilarityRanker:
    embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(16, random_state=0))
    return SimilarityRanker(embedder=embedder, density="drop", invariance=None, n_neighbors=3)


@pytest.fixture(scope="module")
def builtin():
    X, _ = make_galaxies(900, image_size=64, random_state=0)
    return _ranker().fit(X[:700]), X[700:]


def _pixel_flag(ranking) -> bool:
    outlyingness = ranking.diagnostics.pixel_outlyingness
    return outlyingness is not None and outlyingness > 99


def test_the_drawing_is_flagged_and_the_warning_says_why(builtin):
    ranker, _ = builtin
    ranking = ranker.rank(make_milky_way(64))
    assert _pixel_flag(ranking)
    assert ranking.warning is not None
    assert "pixels are unlike those of every galaxy" in ranking.warning
    assert "drawing" in ranking.warning
    assert set(ranking.diagnostics.pixel_percentiles) == set(IMAGE_STATISTICS)
    assert ranking.diagnostics.out_of_distribution and "pixels" in ranking.diagnostics.reasons


def test_held_out_galaxies_are_rarely_flagged(builtin):
    ranker, held_out = builtin
    rankings = ranker.rank(held_out)
    pixel_rate = np.mean([_pixel_flag(r) for r in rankings])
    warning_rate = np.mean([r.warning is not None for r in rankings])
    assert pixel_rate <= 0.05
    assert warning_rate <= 0.05


def test_the_check_survives_a_model_file(builtin, tmp_path):
    ranker, held_out = builtin
    loaded = load_model(
        save_model(ranker, tmp_path / "ranker.safetensors"), expected=SimilarityRanker
    )
    np.testing.assert_array_equal(
        loaded.diagnostics_.pixel_statistics_, ranker.diagnostics_.pixel_statistics_
    )
    query = make_milky_way(64)
    assert loaded.rank(query).diagnostics == ranker.rank(query).diagnostics
    assert loaded.rank(held_out[0]).warning == ranker.rank(held_out[0]).warning


def _as_saved_by_0_2(ranker: SimilarityRanker, *, pixel_check: bool = True) -> SimilarityRanker:
    """The ranker with the fitted state a 0.2 model file holds: the references, no diagnostics_."""
    diagnostics = vars(ranker).pop("diagnostics_")
    vars(ranker)["nn_distance_"] = diagnostics.isolation_reference_
    if pixel_check:  # files from before the pixel check have no image_statistics_
        vars(ranker)["image_statistics_"] = diagnostics.pixel_statistics_
    return ranker


def test_a_model_saved_before_the_check_still_ranks(builtin, tmp_path):
    _, held_out = builtin
    old = _as_saved_by_0_2(_ranker().fit(held_out[:30]), pixel_check=False)
    path = save_model(old, tmp_path / "old.safetensors")
    loaded = load_model(path, expected=SimilarityRanker)
    ranking = loaded.rank(make_milky_way(64))
    # Isolation (and typicality) come from the references the file holds; no pixel check.
    assert ranking.diagnostics.pixel_outlyingness is None
    assert ranking.diagnostics.pixel_percentiles is None
    assert 0 <= ranking.diagnostics.isolation <= 100


def test_a_0_2_model_file_gives_the_same_diagnosis_as_the_ranker_that_wrote_it(builtin, tmp_path):
    ranker, held_out = builtin
    query = np.concatenate([make_milky_way(64)[None], held_out[:3]])
    expected = [r.diagnostics for r in ranker.rank(query)]
    copy = load_model(save_model(ranker, tmp_path / "new.safetensors"))
    path = save_model(_as_saved_by_0_2(copy), tmp_path / "v02.safetensors")
    loaded = load_model(path, expected=SimilarityRanker)
    assert isinstance(loaded.diagnostics_, QueryDiagnostics)
    assert "nn_distance_" not in vars(loaded) and "image_statistics_" not in vars(loaded)
    assert [r.diagnostics for r in loaded.rank(query)] == expected
    assert expected[0].out_of_distribution and expected[0].pixel_outlyingness is not None


def test_a_0_2_pickle_gives_the_same_diagnosis(builtin):
    import pickle

    ranker, _ = builtin
    query = make_milky_way(64)
    copy = pickle.loads(pickle.dumps(ranker))
    old = pickle.dumps(_as_saved_by_0_2(copy))
    loaded = pickle.loads(old)
    assert "nn_distance_" not in vars(loaded)
    assert loaded.rank(query).diagnostics == ranker.rank(query).diagnostics


def test_no_pixel_check_for_vectors_or_small_collections():
    rng = np.random.default_rng(0)
    vectors = SimilarityRanker(embedder=PCA(2), density="drop", invariance=None).fit(
        rng.normal(size=(40, 5))
    )
    assert vectors.diagnostics_.pixel_statistics_ is None
    assert vectors.rank(rng.normal(size=5)).diagnostics.pixel_outlyingness is None
    images = rng.random((10, 16, 16, 3)).astype(np.float32)
    small = (
        _ranker()
        .set_params(embedder=make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(4)))
        .fit(images)
    )
    assert small.diagnostics_.pixel_statistics_.shape == (10, len(IMAGE_STATISTICS))
    assert small.diagnostics_.pixel_reference_ is None
    assert small.rank(images[0]).diagnostics.pixel_outlyingness is None


def test_statistics_see_noise_and_colour():
    rng = np.random.default_rng(0)
    noisy = np.clip(0.2 + 0.04 * rng.normal(size=(1, 32, 32, 3)), 0, 1)
    smooth = np.full((1, 32, 32, 3), 0.2)
    blue = smooth.copy()
    blue[..., 2] = 0.4
    noise = sky_noise(np.concatenate([noisy, smooth]))
    assert noise[0] > 0.005 and noise[1] == 0
    stats = image_statistics(np.concatenate([smooth, blue]))
    colour = list(IMAGE_STATISTICS).index("background_colour")
    assert stats[1, colour] > stats[0, colour] + 0.1


def test_statistics_refuse_tiny_images():
    with pytest.raises(ValueError, match="at least 8x8"):
        image_statistics(np.zeros((2, 4, 4, 3)))


def test_warning_text_names_each_reason():
    both = out_of_distribution_warning(0.0, 50.0, pixel_outlyingness=100.0, unusual=("colour",))
    assert both.startswith("The query is unlike the collection: its log-density")
    assert "the colour of the whole image" in both
    assert out_of_distribution_warning(50.0, 50.0, pixel_outlyingness=98.0) is None


@pytest.mark.slow
@pytest.mark.skipif(
    not (REAL_FOLDER.is_dir() and REAL_MILKY_WAY.is_file()),
    reason="../shared/data (real Galaxy10 images, Milky Way illustration) is absent",
)
def test_real_illustration_is_flagged_and_real_galaxies_rarely():
    from galaxysim.datasets import load_galaxy10_folder, load_milky_way

    real = load_galaxy10_folder(REAL_FOLDER, classes=list(range(10)), crop=64).images
    illustration = load_milky_way(64, path=REAL_MILKY_WAY)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(real))
    held_flags, illustration_flags = [], []
    for fold in range(10):
        test = order[fold::10]
        ranker = _ranker().fit(real[np.setdiff1d(order, test)])
        rankings = ranker.rank(np.concatenate([real[test], illustration[None]]))
        held_flags += [_pixel_flag(r) for r in rankings[:-1]]
        illustration_flags.append(_pixel_flag(rankings[-1]))
    assert np.mean(held_flags) <= 0.05
    assert np.mean(illustration_flags) >= 0.9


def test_a_low_typicality_alone_does_not_warn_but_is_named_with_another_signal():
    # The collection's log-densities are those of the fitted galaxies themselves, so a
    # held-out survey galaxy falls below 1 % of them about 5 % of the time.
    assert out_of_distribution_warning(0.5, 50.0, pixel_outlyingness=50.0) is None
    text = out_of_distribution_warning(0.5, 99.5, pixel_outlyingness=50.0)
    assert "log-density is lower" in text and "farther from its nearest galaxy" in text
