"""Figures for people to check results by eye (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` and never calls
``plt.show()``, so it works the same in scripts, notebooks and on servers
without a display.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

from ._validation import check_images, check_positive_int

__all__ = ["plot_image_grid", "plot_latent_map", "plot_training_curves", "png_data_uri"]


def png_data_uri(image: np.ndarray | bytes, *, min_size: int = 64) -> str:
    """A PNG as a ``data:`` URI, for pictures embedded in HTML pages.

    Parameters
    ----------
    image : ndarray of shape (H, W, C) or (H, W, 1), or bytes
        An image in [0, 1] (clipped), encoded to PNG here and enlarged with
        nearest-neighbour sampling to at least ``min_size`` pixels a side; or
        the bytes of a PNG file, embedded as they are.
    min_size : int, default=64
        Smallest side of an encoded image, so that small thumbnails stay
        legible.

    Returns
    -------
    uri : str
        ``"data:image/png;base64,..."``.

    Examples
    --------
    >>> png_data_uri(np.zeros((2, 2, 3))).startswith("data:image/png;base64,")
    True
    """
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    else:
        from PIL import Image

        pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        picture = Image.fromarray((pixels * 255 + 0.5).astype(np.uint8))
        if max(picture.size) < min_size:
            picture = picture.resize((min_size, min_size), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _new_figure(figsize: tuple[float, float]):
    # The object-oriented API needs no display and leaves pyplot's global
    # state alone, so figures never leak or pop up in a user's session.
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def plot_image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    n_cols: int = 8,
    row_labels: Sequence[str] | None = None,
    image_size: float = 1.2,
    suptitle: str | None = None,
):
    """Draw images in a grid, optionally with a caption under each.

    Parameters
    ----------
    images : array-like of shape (n, H, W, C)
        uint8 or float in [0, 1]; one-channel images are drawn in grey.
    titles : sequence of str, optional
        One caption per image.
    n_cols : int, default=8
        Images per row.
    row_labels : sequence of str, optional
        A label at the left of each row (for example a class name).
    image_size : float, default=1.2
        Width and height of one panel in inches.
    suptitle : str, optional
        Title of the whole figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Save it with ``fig.savefig(path)``.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.plotting import plot_image_grid
    >>> fig = plot_image_grid(np.zeros((5, 8, 8, 3)), titles=list("abcde"), n_cols=3)
    >>> len(fig.axes)
    6
    """
    batch = check_images(images, name="images")
    n_cols = check_positive_int(n_cols, "n_cols")
    n = len(batch)
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries but there are {n} images.")
    n_cols = min(n_cols, n)
    n_rows = -(-n // n_cols)
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(
            f"row_labels has {len(row_labels)} entries but the grid has {n_rows} rows."
        )
    caption_space = 0.35 if titles is not None else 0.0
    fig = _new_figure((n_cols * image_size, n_rows * (image_size + caption_space)))
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        image = batch[i]
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.imshow(image[..., :3])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        if row_labels is not None and i % n_cols == 0:
            ax.set_ylabel(str(row_labels[i // n_cols]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_latent_map(
    embedding: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    target_names: Sequence[str] | None = None,
    query: np.ndarray | None = None,
    query_label: str = "query",
    random_state: int | None = 0,
):
    """Scatter a 2-D map (PCA) of an embedding, classes coloured, queries marked.

    Parameters
    ----------
    embedding : array-like of shape (n, d)
        Embedding of the collection (d >= 2).
    labels : array-like of shape (n,), optional
        Integer class of each point, coloured per class.
    target_names : sequence of str, optional
        Legend names for labels 0 .. k-1.
    query : array-like of shape (d,) or (m, d), optional
        Embedding of the query (or queries), drawn as a star.
    query_label : str, default="query"
        Legend entry of the query.
    random_state : int, optional
        Seed of the PCA solver.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.plotting import plot_latent_map
    >>> Z = np.random.default_rng(0).normal(size=(50, 8))
    >>> fig = plot_latent_map(Z, labels=np.arange(50) % 2, query=Z[0])
    >>> len(fig.axes)
    1
    """
    from sklearn.decomposition import PCA

    Z = np.asarray(embedding, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] < 2 or len(Z) < 2:
        raise ValueError(f"embedding must be (n >= 2, d >= 2), got shape {Z.shape}.")
    if not np.isfinite(Z).all():
        raise ValueError("embedding contains NaN or infinite values.")
    if labels is not None and len(labels) != len(Z):
        raise ValueError(f"labels has {len(labels)} entries but embedding has {len(Z)} rows.")
    pca = PCA(n_components=2, random_state=random_state).fit(Z)
    points = pca.transform(Z)
    fig = _new_figure((6.0, 5.0))
    ax = fig.subplots()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6, color="tab:gray")
    else:
        labels = np.asarray(labels)
        for k in np.unique(labels):
            name = target_names[int(k)] if target_names is not None else str(k)
            mine = points[labels == k]
            ax.scatter(mine[:, 0], mine[:, 1], s=6, alpha=0.6, label=name)
    if query is not None:
        q = np.atleast_2d(np.asarray(query, dtype=np.float64))
        if q.shape[1] != Z.shape[1]:
            raise ValueError(f"query has {q.shape[1]} dimensions but embedding has {Z.shape[1]}.")
        qp = pca.transform(q)
        ax.scatter(
            qp[:, 0],
            qp[:, 1],
            marker="*",
            s=300,
            color="black",
            edgecolor="gold",
            label=query_label,
            zorder=5,
        )
    share = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC 1 ({100 * share[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * share[1]:.0f}% of variance)")
    if labels is not None or query is not None:
        ax.legend(
            handles=_legend_markers(ax, query_label if query is not None else None), fontsize=7
        )
    ax.set_title("Embedding of the collection (first two principal components)")
    return fig


def _legend_markers(ax, query_label: str | None) -> list:
    """Legend entries of one size: class dots, and the query's star no larger than text.

    The plotted markers differ in size (small dots, a large star for the
    query); scaling them alike in the legend would make the star cover the
    other entries, so the legend draws its own markers.
    """
    from matplotlib.lines import Line2D

    entries = []
    for handle, label in zip(*ax.get_legend_handles_labels()):
        if label == query_label:
            entries.append(
                Line2D(
                    [],
                    [],
                    linestyle="",
                    marker="*",
                    markersize=10,
                    markerfacecolor="black",
                    markeredgecolor="gold",
                    label=label,
                )
            )
        else:
            entries.append(
                Line2D(
                    [],
                    [],
                    linestyle="",
                    marker="o",
                    markersize=5,
                    color=handle.get_facecolor()[0],
                    label=label,
                )
            )
    return entries


def plot_training_curves(histories: dict[str, dict]):
    """Plot training and validation loss per epoch for one or more models.

    Parameters
    ----------
    histories : dict
        ``{model name: history}``, each history a mapping with lists
        ``train_loss`` and ``val_loss`` (what the estimators' ``history_``
        holds, as an object with ``as_dict()`` or as a dict).

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel per model.

    Examples
    --------
    >>> from galaxysim.plotting import plot_training_curves
    >>> history = {"train_loss": [3, 2, 1], "val_loss": [3, 2.5, 2]}
    >>> fig = plot_training_curves({"autoencoder": history})
    >>> len(fig.axes)
    1
    """
    if not isinstance(histories, dict) or not histories:
        raise ValueError("histories must be a non-empty dict {model name: history}.")
    fig = _new_figure((4.5 * len(histories), 3.5))
    axes = np.atleast_1d(fig.subplots(1, len(histories), squeeze=False)).ravel()
    for ax, (name, history) in zip(axes, histories.items()):
        record = history.as_dict() if hasattr(history, "as_dict") else dict(history)
        if "train_loss" not in record:
            raise ValueError(f"history of {name!r} has no 'train_loss'.")
        epochs = np.arange(1, len(record["train_loss"]) + 1)
        ax.plot(epochs, record["train_loss"], label="train")
        if record.get("val_loss"):
            ax.plot(epochs[: len(record["val_loss"])], record["val_loss"], label="validation")
        best = record.get("best_epoch")
        if best is not None and best >= 0:
            # best_epoch is 0-based; the x axis counts epochs from 1.
            ax.axvline(best + 1, color="gray", ls=":", label="best")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(str(name))
        ax.legend(fontsize=7)
    return fig
