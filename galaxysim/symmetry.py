"""The symmetries of an image: its flips and quarter turns (the dihedral group).

Galaxies have no preferred orientation on the sky, so a rotated or mirrored
galaxy is the same galaxy. The group is defined once, as pixel index maps
(:func:`dihedral_index_maps`); the ranker compares a query in all its
:func:`dihedral_views` (numpy), and the autoencoder trains on
:func:`random_dihedral` batches (torch), both built on those maps.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["dihedral_index_maps", "dihedral_views", "random_dihedral"]


def dihedral_index_maps(
    height: int, width: int, device: torch.device | None = None
) -> torch.Tensor:
    """Pixel index maps of the flips and 90-degree rotations of an image.

    Parameters
    ----------
    height, width : int
        Image sides.
    device : torch.device, optional
        Where to build the maps.

    Returns
    -------
    maps : torch.Tensor of shape (k, height * width), dtype int64
        Row ``i`` lists, for each output pixel (row-major), the input pixel
        it takes. ``k`` is 8 for square images (the symmetries of the square:
        identity, three rotations, two flips, two diagonal reflections) and 4
        otherwise (identity, the two flips, the half turn). Row 0 is the
        identity.

    Examples
    --------
    >>> dihedral_index_maps(2, 2)[:, 0].tolist()  # where the top-left pixel comes from
    [0, 1, 3, 2, 0, 2, 3, 1]
    """
    grid = torch.arange(height * width, device=device).reshape(height, width)
    maps = [grid, grid.flip(1), grid.flip(0, 1), grid.flip(0)]
    if height == width:
        maps += [grid.T, grid.T.flip(1), grid.T.flip(0, 1), grid.T.flip(0)]
    return torch.stack([m.reshape(-1) for m in maps])


def dihedral_views(images: np.ndarray) -> list[np.ndarray]:
    """The images under every symmetry of the square (or of a rectangle).

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)
        A batch of images.

    Returns
    -------
    views : list of ndarray
        8 arrays for square images and 4 for rectangular ones, in the order
        of :func:`dihedral_index_maps`, each of shape (n, H, W, C); the first
        equals ``images``.

    Examples
    --------
    >>> import numpy as np
    >>> len(dihedral_views(np.zeros((1, 4, 4, 3)))), len(dihedral_views(np.zeros((1, 4, 6, 3))))
    (8, 4)
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (n, H, W, C), got shape {images.shape}.")
    n, height, width, channels = images.shape
    pixels = images.reshape(n, height * width, channels)
    return [
        np.ascontiguousarray(pixels[:, index].reshape(images.shape))
        for index in dihedral_index_maps(height, width).numpy()
    ]


def random_dihedral(
    batch: tuple[torch.Tensor, ...], generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Randomly flip and rotate each image of a batch by multiples of 90 degrees.

    Each image independently gets one of the 8 symmetries of the square, all
    equally likely; non-square images get one of the 4 that keep their shape
    (flips and the half turn). It is one gather on the batch's device, with
    the signature of a training-loop augmentation.

    Parameters
    ----------
    batch : tuple of torch.Tensor
        One tensor of images ``(n, C, H, W)``.
    generator : torch.Generator
        Source of the random choices, on the batch's device.

    Returns
    -------
    batch : tuple of torch.Tensor
        The transformed images: a new tensor, channels-last in memory.

    Examples
    --------
    >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> (y,) = random_dihedral((x,), torch.Generator().manual_seed(0))
    >>> sorted(y.flatten().tolist())
    [0.0, 1.0, 2.0, 3.0]
    """
    (images,) = batch
    n, channels, height, width = images.shape
    maps = dihedral_index_maps(height, width, images.device)
    choice = torch.randint(len(maps), (n,), generator=generator, device=images.device)
    # Gathering pixels of the (n, H*W, C) view moves whole pixels at once, and the
    # result is directly the channels-last layout the convolutions prefer.
    pixels = images.permute(0, 2, 3, 1).reshape(n, height * width, channels)
    index = maps[choice].unsqueeze(-1).expand(-1, -1, channels)
    out = torch.gather(pixels, 1, index).reshape(n, height, width, channels)
    return (out.permute(0, 3, 1, 2),)
