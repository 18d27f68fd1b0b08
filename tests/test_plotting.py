import numpy as np
import pytest

from galaxysim.plotting import plot_image_grid


@pytest.mark.slow
def test_grid_layout_and_captions(tmp_path):
    images = np.random.default_rng(0).random((7, 8, 8, 3))
    fig = plot_image_grid(
        images, titles=[f"g{i}" for i in range(7)], n_cols=4, row_labels=["a", "b"]
    )
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


def test_latent_map_colours_classes_and_marks_query():
    from galaxysim.plotting import plot_latent_map

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 5))
    fig = plot_latent_map(Z, labels=np.arange(60) % 3, target_names=["a", "b", "c"], query=Z[:2])
    ax = fig.axes[0]
    assert len(ax.collections) == 4  # three classes and the query
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c", "query"]
    with pytest.raises(ValueError, match="query has 3 dimensions"):
        plot_latent_map(Z, query=np.zeros(3))
    with pytest.raises(ValueError, match="embedding must be"):
        plot_latent_map(np.zeros((5, 1)))
    with pytest.raises(ValueError, match="labels has 2 entries"):
        plot_latent_map(Z, labels=[0, 1])


def test_training_curves_one_panel_per_model():
    from galaxysim.plotting import plot_training_curves

    history = {"train_loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.2, 2.4], "best_epoch": 1}
    fig = plot_training_curves(
        {"autoencoder": history, "flow": {"train_loss": [1.0, 0.5], "val_loss": []}}
    )
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    np.testing.assert_array_equal(lines[0].get_ydata(), [3.0, 2.0, 1.5])
    assert lines[2].get_xdata()[0] == 2  # best epoch marked at epoch 2 (1-based)
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_training_curves({})
    with pytest.raises(ValueError, match="train_loss"):
        plot_training_curves({"m": {"val_loss": [1.0]}})


def test_latent_map_legend_star_is_the_size_of_the_other_entries():
    from galaxysim.plotting import plot_latent_map

    Z = np.random.default_rng(0).normal(size=(60, 4))
    fig = plot_latent_map(
        Z,
        labels=np.arange(60) % 3,
        target_names=["a", "b", "c"],
        query=Z[:1],
        query_label="Milky Way",
    )
    legend = fig.axes[0].get_legend()
    texts = [text.get_text() for text in legend.get_texts()]
    assert texts == ["a", "b", "c", "Milky Way"]
    sizes = [handle.get_markersize() for handle in legend.legend_handles]
    assert max(sizes) <= 2 * min(sizes) and max(sizes) <= 12
