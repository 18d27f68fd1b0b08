"""A convolutional encoder equivariant to the flips and quarter turns of the image.

A galaxy has no preferred orientation on the sky. An ordinary CNN has to
learn each feature in every orientation from the data (or from rotated
augmented views), which costs images; a group convolution shares one filter
across the eight symmetries of the square (the dihedral group D4, Cohen &
Welling, "Group Equivariant Convolutional Networks", ICML 2016), so that
each feature is learnt once and detected in every orientation. The result
is a network whose embedding is exactly invariant to the eight symmetries,
with eight times fewer weights than an ordinary network of the same widths.

:class:`DihedralEncoder` has the interface of
:class:`~galaxysim.embedders.contrastive_network.ContrastiveEncoder` (an
embedding from ``forward``, a projection head for training), so that
:class:`~galaxysim.embedders.ContrastiveEmbedder` trains either
(``encoder="dihedral"``).
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from ..symmetry import dihedral_index_maps
from .contrastive_network import encoder_channels, projection_head

__all__ = ["DihedralEncoder", "GroupConv2d", "dihedral_cayley_table"]

#: Number of symmetries of the square: four quarter turns, each with or without a mirror.
GROUP_ORDER = 8


@cache
def dihedral_cayley_table() -> tuple[tuple[int, ...], ...]:
    """The composition table of the symmetries of the square, in ``dihedral_index_maps`` order.

    Returns
    -------
    table : tuple of tuple of int
        ``table[a][b]`` is the symmetry that applying ``b`` and then ``a``
        amounts to.

    Examples
    --------
    >>> table = dihedral_cayley_table()
    >>> table[0] == tuple(range(8))          # the identity changes nothing
    True
    >>> table[2][2]                          # two half turns are the identity
    0
    """
    maps = dihedral_index_maps(3, 3).tolist()
    table = []
    for first in maps:
        row = []
        for second in maps:
            # Output pixel p of `first` applied to `second(x)` reads x[second[first[p]]].
            composed = [second[pixel] for pixel in first]
            row.append(maps.index(composed))
        table.append(tuple(row))
    return tuple(table)


def _inverse(element: int) -> int:
    return dihedral_cayley_table()[element].index(0)


def _transform_filters(weight: torch.Tensor, element: int) -> torch.Tensor:
    """Apply symmetry ``element`` to the spatial axes (the last two) of square filters."""
    size = weight.shape[-1]
    index_map = dihedral_index_maps(size, size, device=weight.device)[element]
    return weight.flatten(-2)[..., index_map].reshape(weight.shape)


class GroupConv2d(nn.Module):
    """A convolution over the plane and the eight symmetries of the square.

    The input is either an ordinary image batch ``(n, C, H, W)`` (the
    lifting layer, ``lifting=True``) or feature maps with one copy per
    symmetry, ``(n, C, 8, H, W)``; the output always has the latter layout,
    ``(n, out_channels, 8, H, W)``. Turning or mirroring the input turns or
    mirrors each output map and permutes the eight copies, so features
    detected in one orientation are detected in all of them with the same
    weights. Stride 1 with "same" padding keeps the equivariance exact.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels (fields) of the input and the output, not counting the
        eight copies.
    kernel_size : int, default=3
        Odd side of the square filters.
    lifting : bool, default=False
        Whether the input is an ordinary image batch.

    Examples
    --------
    >>> conv = GroupConv2d(3, 4, lifting=True)
    >>> x = torch.rand(2, 3, 8, 8)
    >>> tuple(conv(x).shape)
    (2, 4, 8, 8, 8)
    >>> turned = conv(torch.rot90(x, 1, dims=(2, 3)))
    >>> bool(torch.allclose(turned.amax(dim=2), torch.rot90(conv(x).amax(dim=2), 1, dims=(2, 3)),
    ...                     atol=1e-5))
    True
    """

    # A buffer: torch types it as Tensor | Module.
    _order: torch.Tensor

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, *, lifting: bool = False
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lifting = lifting
        copies = 1 if lifting else GROUP_ORDER
        weight = torch.empty(out_channels, in_channels, copies, kernel_size, kernel_size)
        # He initialisation for the fan-in the full filter bank sees.
        nn.init.kaiming_normal_(
            weight.view(out_channels, -1, kernel_size, kernel_size), nonlinearity="relu"
        )
        self.weight = nn.Parameter(weight)
        table = dihedral_cayley_table()
        # For output copy g, input copy h is read through the filter stored at g^-1 h.
        order = [[table[_inverse(g)][h] for h in range(copies)] for g in range(GROUP_ORDER)]
        self.register_buffer(
            "_order", torch.tensor(order if not lifting else [[0]] * GROUP_ORDER), persistent=False
        )

    def filter_bank(self) -> torch.Tensor:
        """The ordinary convolution weights ``(out * 8, in * copies, k, k)`` this layer applies."""
        banks = []
        for element in range(GROUP_ORDER):
            permuted = self.weight[:, :, self._order[element]]
            banks.append(_transform_filters(permuted, element))
        out, inp, copies, size, _ = self.weight.shape
        return torch.stack(banks, dim=1).reshape(out * GROUP_ORDER, inp * copies, size, size)

    def _bank(self) -> torch.Tensor:
        """:meth:`filter_bank`, built once per state of the weights when no gradient is taken.

        Inference (a query's eight views, a chunk of a survey) then convolves with the very
        tensor that building the bank at every call would give, without rebuilding it: the
        bank is rebuilt when the weights change (an optimiser step, ``load_state_dict``, a
        move to another device). With gradients the bank is built afresh, as training needs.
        """
        if torch.is_grad_enabled() and self.weight.requires_grad:
            self._cached_bank = None
            return self.filter_bank()
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device, self.weight.dtype)
        cached = getattr(self, "_cached_bank", None)
        if cached is None or cached[0] != key:
            cached = (key, self.filter_bank().detach())
            self._cached_bank = cached
        return cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``(n, C, H, W)`` (lifting) or ``(n, C, 8, H, W)`` into ``(n, out, 8, H, W)``."""
        n = x.shape[0]
        if not self.lifting:
            x = x.flatten(1, 2)
        bank = self._bank()
        y = F.conv2d(x, bank, padding=bank.shape[-1] // 2)
        return y.view(n, self.out_channels, GROUP_ORDER, *y.shape[-2:])


def _block(in_channels: int, out_channels: int, *, lifting: bool = False) -> list[nn.Module]:
    return [
        GroupConv2d(in_channels, out_channels, lifting=lifting),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    ]


class _Pool(nn.Module):
    """2x2 average pooling of each of the eight copies (exactly equivariant on even sides)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels, copies, height, width = x.shape
        pooled = F.avg_pool2d(x.reshape(n, channels * copies, height, width), 2, ceil_mode=True)
        return pooled.view(n, channels, copies, *pooled.shape[-2:])


class DihedralEncoder(nn.Module):
    """Group-convolutional encoder whose embedding ignores flips and quarter turns.

    A lifting group convolution at full resolution, then ``n_stages`` stages
    of [2x2 average pooling, two group convolutions, each with batch
    normalisation and ReLU], a 1x1 group convolution to ``n_components``
    fields, and the average over the image and the maximum over the eight
    copies. The stage widths are those of
    :class:`~galaxysim.embedders.contrastive_network.ContrastiveEncoder`
    divided by eight (each field has eight copies), so both have about the
    same arithmetic in their stages (this one adds a full-resolution lifting
    layer, which makes it dearer to train on a CPU); this one has about
    eight times fewer weights.
    Turning an image by 90 degrees or mirroring it leaves the embedding
    unchanged (up to float rounding) when its sides are divisible by
    ``2 ** n_stages``.

    Parameters
    ----------
    in_channels : int
        Channels of the input images.
    n_components : int, default=128
        Size of the embedding.
    n_stages : int, default=4
        Number of stages, each halving the resolution.
    base_channels : int, default=32
        Channels of the first stage as an ordinary network counts them
        (``base_channels // 8`` fields of eight copies, at least one).
    projection_dim : int, default=64
        Output size of the projection head used by the training loss.

    Examples
    --------
    >>> net = DihedralEncoder(3, n_components=16, n_stages=2, base_channels=16).eval()
    >>> x = torch.rand(2, 3, 16, 16)
    >>> tuple(net(x).shape)
    (2, 16)
    >>> bool(torch.allclose(net(x), net(torch.rot90(x, 1, dims=(2, 3)).flip(3)), atol=1e-5))
    True
    """

    def __init__(
        self,
        in_channels: int,
        *,
        n_components: int = 128,
        n_stages: int = 4,
        base_channels: int = 32,
        projection_dim: int = 64,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.n_components = n_components
        fields = [
            max(1, width // GROUP_ORDER)
            for width in encoder_channels(n_stages, base_channels, n_components)
        ]
        layers: list[nn.Module] = _block(in_channels, fields[0], lifting=True)
        previous = fields[0]
        for width in fields:
            layers += [_Pool(), *_block(previous, width), *_block(width, width)]
            previous = width
        self.stages = nn.Sequential(*layers)
        self.expand = nn.Sequential(
            GroupConv2d(previous, n_components, kernel_size=1),
            nn.BatchNorm3d(n_components),
            nn.ReLU(inplace=True),
        )
        self.head = projection_head(n_components, projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding ``(n, n_components)`` of images ``(n, C, H, W)``."""
        features = self.expand(self.stages(x))
        return features.mean(dim=(3, 4)).amax(dim=2)

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """The projection of embeddings through the head, where the loss is computed."""
        return self.head(embedding)
