"""The residual convolutional autoencoder network of the original Milky Way study.

:class:`ConvAutoencoder` is a plain :class:`torch.nn.Module`; the
scikit-learn estimator around it is
:class:`~galaxysim.embedders.AutoencoderEmbedder`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._limits import check_allocation, format_bytes

__all__ = [
    "ConvAutoencoder",
    "LatentNorm",
    "ResidualBlock",
    "check_training_memory",
    "reconstruction_loss",
    "saved_activation_bytes",
    "stage_channels",
]

# A training step on the CPU peaks at 1.14 times the activations autograd keeps
# (saved_activation_bytes; measured from 128 to 512 pixels): the gradients alive
# during backward and the allocator's slack. 1.25 leaves room for that and for
# other backends' workspaces without refusing work that would fit.
_ACTIVATION_SAFETY = 1.25


class ResidualBlock(nn.Module):
    """Residual block ``x + alpha * conv(act(conv(x)))`` with a learnable scalar ``alpha``.

    The residual connection follows He et al., "Deep Residual Learning for
    Image Recognition" (CVPR 2016). Starting ``alpha`` small makes each block
    close to the identity at initialisation, so that deep stacks train
    stably without normalisation layers (as in SkipInit, De & Smith 2020,
    and ReZero, Bachlechner et al. 2021).

    Parameters
    ----------
    channels : int
        Channels in and out; both convolutions are 3x3 with padding 1.
    alpha_init : float, default=0.1
        Starting value of the learnable residual scale.

    Examples
    --------
    >>> block = ResidualBlock(4)
    >>> tuple(block(torch.zeros(2, 4, 8, 8)).shape)
    (2, 4, 8, 8)
    """

    def __init__(self, channels: int, alpha_init: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + alpha * conv2(relu(conv1(x)))``."""
        return x + self.alpha * self.conv2(F.relu(self.conv1(x)))


class LatentNorm(nn.BatchNorm1d):
    """Batch normalisation of the latent logits, without a learned scale or shift.

    Each latent logit is standardised over the batch while training (over
    running statistics at inference), so every code dimension keeps varying
    from image to image: without it Adam can push a logit far from 0 for all
    images at once, where the sigmoid is flat and the dimension is lost for
    good (Ioffe & Szegedy, "Batch Normalization", ICML 2015). A batch of one
    image, which has no statistics, uses the running ones.

    Parameters
    ----------
    latent_dim : int
        Number of latent dimensions.

    Examples
    --------
    >>> norm = LatentNorm(3)
    >>> out = norm(torch.randn(16, 3) * 50 + 7)
    >>> bool(out.mean(0).abs().max() < 1e-5)
    True
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise ``x`` (n, latent_dim) per dimension."""
        if self.training and x.shape[0] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, training=False, eps=self.eps
            )
        return super().forward(x)


def stage_channels(base_channels: int, channel_growth: float, n_stages: int) -> list[int]:
    """Channels of each stage: ``base_channels * channel_growth**i``, rounded.

    Parameters
    ----------
    base_channels : int
        Channels of the first (full-resolution) stage.
    channel_growth : float
        Factor from one stage to the next (1 keeps the width constant).
    n_stages : int
        Number of stages; at least one entry is returned (the stem's width
        when ``n_stages`` is 0).

    Returns
    -------
    channels : list of int
        One width per stage.

    Examples
    --------
    >>> stage_channels(16, 2.0, 3)
    [16, 32, 64]
    """
    return [max(1, round(base_channels * channel_growth**i)) for i in range(max(n_stages, 1))]


class ConvAutoencoder(nn.Module):
    """Residual convolutional autoencoder for images of a fixed size.

    Encoder: a 3x3 convolution, then ``n_stages`` times [``n_blocks``
    :class:`ResidualBlock` then 2x2 max-pooling], then a dense layer to a
    sigmoid latent vector. Decoder: a dense layer back to the smallest
    feature map, then ``n_stages`` times [one residual block then 2x
    nearest-neighbour upsampling], then a 3x3 convolution and a sigmoid, so
    the output lies in [0, 1]. Between stages of different width a 1x1
    convolution changes the number of channels.

    Parameters
    ----------
    in_channels : int
        Channels of the images.
    height, width : int
        Image sides; both must be divisible by ``2**n_stages``.
    latent_dim : int, default=32
        Size of the code.
    n_stages : int, default=5
        Number of resolution halvings (0 gives a shallow, unpooled network).
    n_blocks : int, default=6
        Residual blocks per encoder stage.
    base_channels : int, default=16
        Channels at full resolution.
    channel_growth : float, default=1.0
        Channel factor from one stage to the next.
    normalize_latent : bool, default=True
        Put a :class:`LatentNorm` between the dense layer and the sigmoid,
        which keeps the code dimensions from saturating.

    Examples
    --------
    >>> net = ConvAutoencoder(3, 16, 16, latent_dim=4, n_stages=2, n_blocks=1, base_channels=4)
    >>> x = torch.rand(2, 3, 16, 16)
    >>> tuple(net.encode(x).shape), tuple(net(x).shape)
    ((2, 4), (2, 3, 16, 16))
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        latent_dim: int = 32,
        n_stages: int = 5,
        n_blocks: int = 6,
        base_channels: int = 16,
        channel_growth: float = 1.0,
        normalize_latent: bool = True,
    ) -> None:
        super().__init__()
        factor = 2 ** min(n_stages, 64)  # beyond 2**64 no image side is divisible
        if n_stages > 64 or height % factor or width % factor:
            power = f" = {factor}" if n_stages <= 64 else ""
            raise ValueError(
                f"Image sides {height}x{width} must be divisible by 2**n_stages{power} "
                f"(n_stages={n_stages}); crop or resize the images, or lower n_stages."
            )
        self.latent_dim = latent_dim
        widths = stage_channels(base_channels, channel_growth, n_stages)
        bottom = (widths[-1], height // factor, width // factor)

        encoder: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for i in range(n_stages):
            encoder += [ResidualBlock(widths[i]) for _ in range(n_blocks)]
            encoder.append(nn.MaxPool2d(2))
            if i + 1 < n_stages and widths[i + 1] != widths[i]:
                encoder.append(nn.Conv2d(widths[i], widths[i + 1], 1))
        encoder += [nn.Flatten(), nn.Linear(int(np.prod(bottom)), latent_dim)]
        if normalize_latent:
            encoder.append(LatentNorm(latent_dim))
        # The sigmoid is applied in encode(), so that callers can take the logits.
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [
            nn.Linear(latent_dim, int(np.prod(bottom))),
            nn.Unflatten(1, bottom),
        ]
        for i in reversed(range(n_stages)):
            decoder += [ResidualBlock(widths[i]), nn.Upsample(scale_factor=2, mode="nearest")]
            if i > 0 and widths[i - 1] != widths[i]:
                decoder.append(nn.Conv2d(widths[i], widths[i - 1], 1))
        decoder += [nn.Conv2d(widths[0], in_channels, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*decoder)

    def encode_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(n, C, H, W)`` in [0, 1] to the codes before the sigmoid."""
        # Centring the input keeps the dense layer's inputs from sharing one sign;
        # otherwise Adam pushes all logits the same way and the sigmoid saturates.
        return self.encoder(x - 0.5)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(n, C, H, W)`` in [0, 1] to codes ``(n, latent_dim)`` in (0, 1)."""
        return torch.sigmoid(self.encode_logits(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map codes ``(n, latent_dim)`` to images ``(n, C, H, W)`` in (0, 1)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct images: ``decode(encode(x))``."""
        return self.decoder(self.encode(x))


def reconstruction_loss(module: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean squared error between a batch of images and its reconstruction.

    Parameters
    ----------
    module : torch.nn.Module
        The autoencoder.
    batch : tuple of torch.Tensor
        Images ``(n, C, H, W)``, or ``(inputs, targets)`` to reconstruct the
        targets from the inputs (a denoising autoencoder: the inputs are
        augmented, the targets clean).

    Returns
    -------
    loss : torch.Tensor
        A scalar.

    Examples
    --------
    >>> float(reconstruction_loss(torch.nn.Identity(), (torch.rand(2, 3, 4, 4),)))
    0.0
    """
    inputs, targets = (batch[0], batch[0]) if len(batch) == 1 else batch
    return F.mse_loss(module(inputs), targets)


def _layer_output(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one image after ``layer`` (without the batch dimension)."""
    if isinstance(layer, nn.Conv2d):
        sides = [
            (side + 2 * pad - dil * (kernel - 1) - 1) // stride + 1
            for side, pad, dil, kernel, stride in zip(
                shape[1:], layer.padding, layer.dilation, layer.kernel_size, layer.stride
            )
        ]
        return (layer.out_channels, *sides)
    if isinstance(layer, nn.MaxPool2d):
        return (shape[0], shape[1] // 2, shape[2] // 2)
    if isinstance(layer, nn.Upsample):
        factor = int(layer.scale_factor)
        return (shape[0], shape[1] * factor, shape[2] * factor)
    if isinstance(layer, nn.Flatten):
        return (math.prod(shape),)
    if isinstance(layer, nn.Unflatten):
        return tuple(layer.unflattened_size)
    if isinstance(layer, nn.Linear):
        return (layer.out_features,)
    return shape


def _saved_by(layer: nn.Module, shape: tuple[int, ...], saved: bool) -> tuple[int, bool]:
    """Values ``layer`` keeps for backward per image, and whether its output is kept."""
    size = math.prod(shape)
    own_input = 0 if saved else size
    if isinstance(layer, (nn.Flatten, nn.Unflatten)):
        return 0, saved  # a view of its input
    if isinstance(layer, ResidualBlock):
        # conv1's input, the ReLU's output (conv2's input) and conv2's output (for alpha).
        return own_input + 2 * size, False
    if isinstance(layer, nn.MaxPool2d):
        # Its input, and the int64 index of each output value (two float32s' worth).
        return own_input + 2 * math.prod(_layer_output(layer, shape)), False
    if isinstance(layer, nn.Upsample):
        return 0, False  # nearest-neighbour backward needs only the shape
    if isinstance(layer, nn.Sigmoid):
        return math.prod(shape), True  # its output
    return own_input, False  # convolutions, dense layers, batch norm: their input


def saved_activation_bytes(network: ConvAutoencoder, image_shape: tuple[int, int, int]) -> int:
    """Bytes that one training step of ``network`` keeps for backward, per image.

    Walks the encoder and the decoder layer by layer and adds what autograd
    saves for each: the input of every convolution, dense layer and batch
    norm, three maps per residual block, max-pooling indices, sigmoid
    outputs, and the target image of the loss. Weights and values that do
    not grow with the batch are left out. The peak memory of a training step
    on the CPU is about 1.14 times this sum times the batch size (measured
    for 128 to 512 pixels; the gradients alive during backward and the
    allocator's slack make the rest).

    Parameters
    ----------
    network : ConvAutoencoder
        The network (its weights are not used; a network on the ``meta``
        device does).
    image_shape : (height, width, channels)
        One input image.

    Returns
    -------
    n_bytes : int
        float32 bytes per image.

    Examples
    --------
    >>> net = ConvAutoencoder(3, 64, 64, latent_dim=8, n_stages=2, n_blocks=1, base_channels=4)
    >>> saved_activation_bytes(net, (64, 64, 3))
    647232
    """
    height, width, channels = image_shape
    shape, saved, total = (channels, height, width), False, 0
    for layer in network.encoder:
        kept, saved = _saved_by(layer, shape, saved)
        total, shape = total + kept, _layer_output(layer, shape)
    total += math.prod(shape)  # encode()'s sigmoid keeps its output, the decoder's input
    saved = True
    for layer in network.decoder:
        kept, saved = _saved_by(layer, shape, saved)
        total, shape = total + kept, _layer_output(layer, shape)
    # x - 0.5 is what the first convolution kept; the loss keeps x itself as its target.
    total += channels * height * width
    return 4 * total


def check_training_memory(
    network: ConvAutoencoder,
    shape: tuple[int, int, int, int],
    batch_size: int,
    device: torch.device,
    *,
    copied_bytes: int,
) -> None:
    """Refuse, before training, a batch whose activations cannot fit on ``device``.

    ``shape`` is ``(n_images, height, width, channels)``; ``copied_bytes``
    what the validation split copies on the host (0 for a streamed collection).
    """
    n_images, height, width, channels = shape
    batch = min(batch_size, n_images)
    activations = (
        _ACTIVATION_SAFETY * batch * saved_activation_bytes(network, (height, width, channels))
    )
    # Weights, their gradients and Adam's two moments.
    weights = 4 * sum(p.numel() * p.element_size() for p in network.parameters())
    need, available, where = activations + weights, None, "memory"
    if device.type == "cuda":
        available, where = torch.cuda.mem_get_info(device)[0], "free GPU memory"
    else:
        need += copied_bytes  # the validation split copies the training images
    check_allocation(
        need,
        f"Training on batches of {batch} images of {height}x{width}x{channels} "
        f"({format_bytes(activations)} of activations for backward)",
        f"Pass a smaller batch_size (now {batch_size}), or smaller images: a smaller "
        "crop or image_size when loading them; or a smaller network (n_blocks, "
        "base_channels).",
        available=available,
        where=where,
    )
