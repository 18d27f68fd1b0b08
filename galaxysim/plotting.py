"""Figures for people to check results by eye (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` and never calls
``plt.show()``, so it works the same in scripts, notebooks and on servers
without a display.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._validation import check_images, check_positive_int

__all__ = ["plot_image_grid"]


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
        raise ValueError(f"row_labels has {len(row_labels)} entries but the grid has {n_rows} rows.")
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
