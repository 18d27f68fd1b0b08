import numpy as np
import pytest

from galaxysim.plotting import plot_image_grid


def test_grid_layout_and_captions(tmp_path):
    images = np.random.default_rng(0).random((7, 8, 8, 3))
    fig = plot_image_grid(images, titles=[f"g{i}" for i in range(7)], n_cols=4, row_labels=["a", "b"])
    axes = fig.axes
    assert len(axes) == 8
    assert [ax.get_title() for ax in axes[:7]] == [f"g{i}" for i in range(7)]
    assert not axes[7].axison  # the padding panel is blank
    assert axes[0].get_ylabel() == "a" and axes[4].get_ylabel() == "b"
    path = tmp_path / "grid.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000


def test_grayscale_images_use_a_grey_colormap():
    fig = plot_image_grid(np.zeros((2, 4, 4, 1)))
    assert fig.axes[0].images[0].get_cmap().name == "gray"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="titles has 1 entries but there are 2 images"):
        plot_image_grid(np.zeros((2, 4, 4, 3)), titles=["x"])
    with pytest.raises(ValueError, match="row_labels"):
        plot_image_grid(np.zeros((2, 4, 4, 3)), row_labels=["a", "b"])
    with pytest.raises(ValueError, match="images"):
        plot_image_grid(np.full((2, 4, 4, 3), 2.0))
    with pytest.raises(ValueError, match="n_cols"):
        plot_image_grid(np.zeros((2, 4, 4, 3)), n_cols=0)
