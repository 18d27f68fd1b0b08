"""The network and the losses of the contrastive embedder.

:class:`ContrastiveEncoder` is a plain :class:`torch.nn.Module`: a small
convolutional encoder whose globally pooled output is the embedding, and a
projection head used only while training. :func:`nt_xent_loss` (SimCLR) and
:func:`vicreg_loss` (VICReg) compare the projections of two (or more)
augmented views of the same images. The scikit-learn estimator around them is
:class:`~galaxysim.embedders.ContrastiveEmbedder`.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ContrastiveEncoder",
    "encoder_channels",
    "nt_xent_loss",
    "projection_head",
    "vicreg_loss",
]


def encoder_channels(n_stages: int, base_channels: int, n_components: int) -> list[int]:
    """Channels of each encoder stage: doubling from ``base_channels``, ending at ``n_components``.

    Parameters
    ----------
    n_stages : int
        Number of stages, each halving the resolution.
    base_channels : int
        Channels of the first stage.
    n_components : int
        Channels of the last stage, which is the size of the embedding.

    Returns
    -------
    channels : list of int
        One entry per stage; no stage is wider than ``n_components``.

    Examples
    --------
    >>> encoder_channels(4, 32, 128)
    [32, 64, 128, 128]
    >>> encoder_channels(3, 16, 32)
    [16, 32, 32]
    """
    channels = [min(base_channels * 2**stage, n_components) for stage in range(n_stages)]
    channels[-1] = n_components
    return channels


def projection_head(n_components: int, projection_dim: int) -> nn.Sequential:
    """SimCLR's projection head: Linear, BatchNorm, ReLU, Linear.

    The contrastive loss is computed on its output; the embedding before it
    is what is kept (Chen et al. 2020).

    Parameters
    ----------
    n_components : int
        Size of the embedding it takes (its hidden layer has twice as many units).
    projection_dim : int
        Size of its output.

    Returns
    -------
    head : torch.nn.Sequential

    Examples
    --------
    >>> head = projection_head(16, 8)
    >>> tuple(head(torch.rand(4, 16)).shape)
    (4, 8)
    """
    return nn.Sequential(
        nn.Linear(n_components, 2 * n_components, bias=False),
        nn.BatchNorm1d(2 * n_components),
        nn.ReLU(inplace=True),
        nn.Linear(2 * n_components, projection_dim),
    )


def _stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """A stride-2 3x3 convolution and a 3x3 convolution, each with BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ContrastiveEncoder(nn.Module):
    """Convolutional encoder with global average pooling, and a projection head.

    Each stage halves the resolution (a stride-2 convolution) and adds a
    second convolution, both followed by batch normalisation and ReLU; the
    last stage is averaged over the image, which makes the embedding
    independent of where in the frame a feature lies and lets any image size
    through. The projection head (Linear, BatchNorm, ReLU, Linear) maps the
    embedding to the space where the loss compares views; as in SimCLR (Chen
    et al. 2020), the embedding before the head is what is kept.

    Parameters
    ----------
    in_channels : int
        Channels of the input images.
    n_components : int, default=128
        Size of the embedding: the channels of the last stage.
    n_stages : int, default=4
        Number of stages.
    base_channels : int, default=32
        Channels of the first stage; they double at each stage up to
        ``n_components``.
    projection_dim : int, default=64
        Output size of the projection head (its hidden layer has twice
        ``n_components`` units).

    Examples
    --------
    >>> net = ContrastiveEncoder(3, n_components=16, n_stages=2, base_channels=8)
    >>> x = torch.rand(4, 3, 16, 16)
    >>> tuple(net(x).shape), tuple(net.project(net(x)).shape)
    ((4, 16), (4, 64))
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
        widths = [in_channels, *encoder_channels(n_stages, base_channels, n_components)]
        self.stages = nn.Sequential(*(_stage(a, b) for a, b in itertools.pairwise(widths)))
        self.head = projection_head(n_components, projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding ``(n, n_components)`` of images ``(n, C, H, W)``."""
        return self.stages(x).mean(dim=(2, 3))

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """The projection of embeddings through the head, where the loss is computed."""
        return self.head(embedding)


def nt_xent_loss(
    first: torch.Tensor, second: torch.Tensor, temperature: float = 0.2, *more: torch.Tensor
) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy of two or more views.

    Each of the ``2n`` projections must pick out the other view of its own
    image among the ``2n - 1`` others, by cosine similarity divided by
    ``temperature`` (Chen et al., "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020). With ``V > 2`` views
    each projection has ``V - 1`` partners among the ``V n - 1`` others, and
    its loss is the mean of their log-probabilities (the multi-positive form
    of Khosla et al. 2020, with the views of one image as its positives).

    Parameters
    ----------
    first, second : torch.Tensor
        Projections ``(n, d)`` of the two views; row ``i`` of each comes from
        the same image.
    temperature : float, default=0.2
        Softmax temperature; lower values weigh the hardest negatives more.
    *more : torch.Tensor
        Projections ``(n, d)`` of further views of the same images.

    Returns
    -------
    loss : torch.Tensor
        A scalar: the mean cross-entropy over the ``V n`` projections.

    Examples
    --------
    >>> z = torch.nn.functional.one_hot(torch.arange(4), 8).float()
    >>> nt_xent_loss(z, z) < nt_xent_loss(z, z.roll(1, dims=0))
    tensor(True)
    >>> bool(nt_xent_loss(z, z, 0.2, z) < nt_xent_loss(z, z, 0.2, z.roll(1, dims=0)))
    True
    """
    views = (first, second, *more)
    n, n_views = first.shape[0], len(views)
    z = F.normalize(torch.cat(views), dim=1)
    logits = z @ z.T / temperature
    itself = torch.eye(n_views * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(itself, float("-inf"))
    image = torch.arange(n, device=z.device).repeat(n_views)
    partners = (image[:, None] == image[None, :]) & ~itself
    log_probability = logits.log_softmax(dim=1).masked_fill(~partners, 0.0)
    return -(log_probability.sum(dim=1) / (n_views - 1)).mean()


def vicreg_loss(
    first: torch.Tensor,
    second: torch.Tensor,
    invariance: float = 25.0,
    variance: float = 25.0,
    covariance: float = 1.0,
) -> torch.Tensor:
    """VICReg: invariance, variance and covariance terms of two views.

    The two views of an image are pulled together (mean squared distance);
    each dimension's standard deviation over the batch is kept above 1 (a
    hinge), and the dimensions are decorrelated (squared off-diagonal
    covariances), which together prevent the collapse to one point without
    negative pairs (Bardes et al., "VICReg", ICLR 2022; the default weights
    are theirs).

    Parameters
    ----------
    first, second : torch.Tensor
        Projections ``(n, d)`` of the two views (with ``n = 1`` the spread
        terms see no variance).
    invariance, variance, covariance : float
        Weights of the three terms.

    Returns
    -------
    loss : torch.Tensor
        A scalar.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(64, 8, generator=g) * 2
    >>> vicreg_loss(z, z) < vicreg_loss(z, torch.randn(64, 8, generator=g) * 2)
    tensor(True)
    """
    n, dim = first.shape
    similarity = F.mse_loss(first, second)
    spread: torch.Tensor | float = 0.0
    decorrelation: torch.Tensor | float = 0.0
    # A batch of one image has no spread: its variance and covariance count as 0.
    dof = max(n - 1, 1)
    for z in (first, second):
        z = z - z.mean(dim=0)
        std = torch.sqrt(z.pow(2).sum(dim=0) / dof + 1e-4)
        spread = spread + F.relu(1.0 - std).mean()
        cov = (z.T @ z) / dof
        off_diagonal = cov - torch.diag(torch.diagonal(cov))
        decorrelation = decorrelation + off_diagonal.pow(2).sum() / dim
    return invariance * similarity + variance * spread / 2 + covariance * decorrelation
