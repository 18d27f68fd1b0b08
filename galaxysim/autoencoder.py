"""A residual convolutional autoencoder, and AutoencoderEmbedder, its sklearn transformer.

Galaxies are compared by distance in the autoencoder's latent space: the
encoder maps an image to ``latent_dim`` numbers in (0, 1), the decoder maps
them back to an image, and training asks the round trip to reproduce the
input.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import nn

from ._training import TorchEstimatorMixin, fit_module, resolve_device, seeded, torch_seed
from ._validation import check_image_shape, check_images, check_positive_int



__all__ = [
    "AutoencoderEmbedder",
    "ConvAutoencoder",
    "LatentNorm",
    "ResidualBlock",
    "dihedral_index_maps",
    "random_dihedral",
    "reconstruction_loss",
    "stage_channels",
]

# Images per forward pass at inference: larger than a training batch because no
# activations are kept for a backward pass.
_INFERENCE_BATCH = 256


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
            return F.batch_norm(x, self.running_mean, self.running_var, training=False,
                                eps=self.eps)
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
        factor = 2**n_stages
        if height % factor or width % factor:
            raise ValueError(
                f"Image sides {height}x{width} must be divisible by 2**n_stages = {factor} "
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
        One tensor of images ``(n, C, H, W)``.

    Returns
    -------
    loss : torch.Tensor
        A scalar.

    Examples
    --------
    >>> float(reconstruction_loss(torch.nn.Identity(), (torch.rand(2, 3, 4, 4),)))
    0.0
    """
    (images,) = batch
    return F.mse_loss(module(images), images)


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
        otherwise (identity, the two flips, the half turn).

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


def random_dihedral(
    batch: tuple[torch.Tensor, ...], generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Randomly flip and rotate each image of a batch by multiples of 90 degrees.

    Each image independently gets one of the 8 symmetries of the square, all
    equally likely; non-square images get one of the 4 that keep their shape
    (flips and the half turn). It is one gather on the batch's device.

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


def _n_dims(X: Any) -> int:
    ndim = getattr(X, "ndim", None)
    if isinstance(ndim, int):
        return ndim
    try:
        return np.asarray(X).ndim
    except (TypeError, ValueError):
        return -1  # ragged; the validator reports it


class AutoencoderEmbedder(
    TorchEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Embed images with a residual convolutional autoencoder.

    ``fit`` trains a :class:`ConvAutoencoder` to reproduce its input (mean
    squared error, Adam, early stopping on a held-out validation share);
    ``transform`` returns the latent codes, in which nearby images look
    alike, and ``inverse_transform`` decodes codes back to images.

    Input can be images ``(n, H, W, C)`` (uint8, or float in [0, 1]),
    ``(n, H, W)`` (one channel), or flattened ``(n, H*W*C)`` with
    ``image_shape``. Any other 2-D array ``(n, d)`` is read as ``d`` generic
    features: each sample becomes a 1x1 image with ``d`` channels, scaled to
    [0, 1] by the minimum and maximum seen in ``fit`` (so this needs
    ``n_stages=0``). This is what lets the estimator run inside any
    scikit-learn tool; for images, give ``image_shape``.

    Parameters
    ----------
    latent_dim : int, default=32
        Size of the embedding.
    n_stages : int, default=5
        Number of 2x down-samplings in the encoder (and up-samplings in the
        decoder). Image sides must be divisible by ``2**n_stages``.
    n_blocks : int, default=6
        Residual blocks per encoder stage (the decoder has one per stage).
    base_channels : int, default=16
        Convolution channels at full resolution. Cost grows roughly with its
        square: 32 is 3-5 times slower than 16 on a CPU.
    channel_growth : float, default=1.0
        Factor by which the channels grow from one stage to the next (e.g.
        2.0 doubles them at every halving of the resolution).
    max_epochs : int, default=100
        Largest number of passes over the training images.
    batch_size : int, default=64
        Images per optimiser step.
    learning_rate : float, default=1e-3
        Adam's step size.
    validation_fraction : float, default=0.1
        Share of the images held out to measure the validation loss.
    early_stopping : bool, default=True
        Stop once the validation loss has not improved for ``patience``
        epochs, and keep the weights of the best epoch.
    patience : int, default=10
        Epochs without improvement tolerated by early stopping. The
        neighbourhoods of the latent space keep improving a while after the
        validation loss flattens, so a short patience costs quality.
    augment : bool, default=True
        Train on randomly flipped and 90-degree-rotated images (galaxies have
        no preferred orientation); non-square images are only flipped or
        turned by 180 degrees.
    image_shape : tuple of int, optional
        ``(H, W, C)`` of one image, for flattened input.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when present, else the CPU.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the validation split, the shuffling and
        the augmentation; an int makes a CPU fit repeatable (with the same
        number of torch threads).
    verbose : int, default=0
        When positive, show a progress bar with the losses of each epoch.

    Attributes
    ----------
    network_ : ConvAutoencoder
        The trained network, in eval mode, on ``device_``.
    history_ : TrainingHistory
        Training and validation loss per epoch, best epoch, how training
        ended.
    image_shape_ : tuple of int
        ``(H, W, C)`` of the training images (``(1, 1, d)`` for generic
        features).
    n_features_in_ : int
        Numbers per input sample, ``H * W * C``.
    feature_names_in_ : ndarray of str
        Column names, when fitted on a table with string column names.
    input_format_ : {"images", "flattened", "features"}
        How the training input was given; ``inverse_transform`` answers in
        the same layout (``(n, H, W, C)`` for images, 2-D otherwise), so a
        :class:`~sklearn.pipeline.Pipeline` round-trips.
    input_range_ : tuple of float
        ``(low, high)`` mapped to [0, 1] before the network: (0, 1) for
        images, the training minimum and maximum for generic features.
    device_ : torch.device
        Where the network lives.

    See Also
    --------
    sklearn.decomposition.PCA : the linear baseline this embedding is compared with.

    Notes
    -----
    ``score`` is the negative mean squared reconstruction error per value
    (in the units of the input, [0, 1] for images): higher is better, so
    :class:`~sklearn.model_selection.GridSearchCV` can select settings by it.
    ``transform`` returns float64: the network runs in float32, its last
    step in float64, so that a code does not depend on the batch it was
    computed in.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((20, 8, 8, 3))
    >>> embedder = AutoencoderEmbedder(latent_dim=4, n_stages=1, n_blocks=1,
    ...                                base_channels=4, max_epochs=2, random_state=0)
    >>> embedder.fit_transform(images).shape
    (20, 4)
    >>> embedder.inverse_transform(embedder.transform(images[:2])).shape
    (2, 8, 8, 3)
    """

    def __init__(
        self,
        latent_dim: int = 32,
        n_stages: int = 5,
        n_blocks: int = 6,
        base_channels: int = 16,
        channel_growth: float = 1.0,
        max_epochs: int = 100,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 10,
        augment: bool = True,
        image_shape: tuple[int, ...] | None = None,
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.latent_dim = latent_dim
        self.n_stages = n_stages
        self.n_blocks = n_blocks
        self.base_channels = base_channels
        self.channel_growth = channel_growth
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.augment = augment
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- validation ------------------------------------------------------------------

    def _check_params(self) -> None:
        check_positive_int(self.latent_dim, "latent_dim")
        check_positive_int(self.n_stages, "n_stages", minimum=0)
        check_positive_int(self.n_blocks, "n_blocks")
        check_positive_int(self.base_channels, "base_channels")
        growth = self.channel_growth
        if isinstance(growth, bool) or not isinstance(growth, Real):
            raise TypeError(f"channel_growth must be a number >= 1, got {growth!r}.")
        if not (np.isfinite(growth) and growth >= 1):
            raise ValueError(f"channel_growth must be a number >= 1, got {growth!r}.")
        if not isinstance(self.augment, (bool, np.bool_)):
            raise TypeError(f"augment must be True or False, got {self.augment!r}.")
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise TypeError(f"early_stopping must be True or False, got {self.early_stopping!r}.")
        if isinstance(self.verbose, bool) or not isinstance(self.verbose, Integral):
            raise TypeError(f"verbose must be an integer, got {self.verbose!r}.")

    def _fit_input(self, X: Any) -> tuple[np.ndarray, str, tuple[float, float]]:
        """Validate training input: (images for the network, input format, input range)."""
        if sparse.issparse(X):
            raise TypeError(
                "X is a sparse matrix; AutoencoderEmbedder needs dense images "
                "(n, H, W, C) or a dense 2-D array."
            )
        image_shape = check_image_shape(self.image_shape) if self.image_shape is not None else None
        if _n_dims(X) == 2 and image_shape is None:
            # Sets n_features_in_ (and feature_names_in_) as every sklearn estimator does.
            table = validate_data(self, X, reset=True, dtype=[np.float64, np.float32])
            input_range = (float(table.min()), float(table.max()))
            return _scale_features(table, input_range), "features", input_range
        images = check_images(X, image_shape=image_shape if _n_dims(X) == 2 else None)
        if image_shape is not None and images.shape[1:] != image_shape:
            raise ValueError(
                f"X holds images of shape {images.shape[1:]} but image_shape={image_shape}."
            )
        return images, ("flattened" if _n_dims(X) == 2 else "images"), (0.0, 1.0)

    def _input(self, X: Any) -> np.ndarray:
        """Validate input after fitting: images ``(n, H, W, C)`` for the network."""
        if sparse.issparse(X):
            raise TypeError(
                "X is a sparse matrix; AutoencoderEmbedder needs dense images "
                "(n, H, W, C) or a dense 2-D array."
            )
        if self.input_format_ == "features":
            table = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
            return _scale_features(table, self.input_range_)
        images = check_images(X, image_shape=self.image_shape_ if _n_dims(X) == 2 else None)
        if images.shape[1:] != tuple(self.image_shape_):
            raise ValueError(
                f"X holds images of shape {images.shape[1:]} (height, width, channels), but "
                f"this {type(self).__name__} was fitted on images of shape "
                f"{tuple(self.image_shape_)}."
            )
        return images

    # -- fitting -------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> "AutoencoderEmbedder":
        """Train the autoencoder on images.

        Parameters
        ----------
        X : array-like
            Images ``(n, H, W, C)`` or ``(n, H, W)``, uint8 or float in
            [0, 1]; flattened ``(n, H*W*C)`` with ``image_shape``; or generic
            2-D features (see the class description).
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : AutoencoderEmbedder
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((12, 4, 4, 1))
        >>> AutoencoderEmbedder(latent_dim=2, n_stages=1, n_blocks=1, base_channels=2,
        ...                     max_epochs=1, random_state=0).fit(X).history_.n_epochs
        1
        """
        self._check_params()
        device = resolve_device(self.device)
        images, input_format, input_range = self._fit_input(X)
        height, width, channels = images.shape[1:]
        factor = 2**self.n_stages
        if height % factor or width % factor:
            hint = (
                " 2-D input without image_shape is read as generic features, one 1x1 image "
                "per sample, which needs n_stages=0; for flattened images pass "
                "image_shape=(height, width, channels)."
                if input_format == "features"
                else " Crop or resize the images, or lower n_stages."
            )
            raise ValueError(
                f"Image sides {height}x{width} must be divisible by 2**n_stages = {factor} "
                f"(n_stages={self.n_stages}).{hint}"
            )

        seed = torch_seed(self.random_state)
        with seeded(seed):
            network = ConvAutoencoder(
                channels,
                height,
                width,
                latent_dim=self.latent_dim,
                n_stages=self.n_stages,
                n_blocks=self.n_blocks,
                base_channels=self.base_channels,
                channel_growth=float(self.channel_growth),
            )
        # The images arrive channels-last (a view of (n, H, W, C)); convolutions run
        # faster in that layout than in NCHW, on the CPU by 15-30% (see the benchmark).
        network = network.to(memory_format=torch.channels_last)
        history = fit_module(
            network,
            _as_nchw(images),
            reconstruction_loss,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            validation_fraction=self.validation_fraction,
            early_stopping=self.early_stopping,
            patience=self.patience,
            device=device,
            random_state=seed,
            verbose=self.verbose,
            augment=random_dihedral if self.augment else None,
            desc=type(self).__name__,
        )
        # Fitted state is set only once training has succeeded.
        self.history_ = history
        self.input_format_ = input_format
        self.input_range_ = input_range
        self.image_shape_ = (height, width, channels)
        self.n_features_in_ = height * width * channels
        self.device_ = device
        self.network_ = network
        return self

    # -- inference ---------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once a trained network is in place."""
        return hasattr(self, "network_")

    @property
    def _n_features_out(self) -> int:
        """Number of output features, for ``get_feature_names_out``."""
        return self.network_.latent_dim

    def _batched(
        self, fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor
    ) -> torch.Tensor:
        outputs = []
        with torch.no_grad():
            for start in range(0, inputs.shape[0], _INFERENCE_BATCH):
                batch = inputs[start : start + _INFERENCE_BATCH].to(self.device_)
                outputs.append(fn(batch).cpu())
        return torch.cat(outputs)

    def transform(self, X: Any) -> np.ndarray:
        """Embed images: their latent codes.

        Parameters
        ----------
        X : array-like
            Images laid out as in ``fit`` (4-D images and flattened images
            are interchangeable).

        Returns
        -------
        codes : ndarray of shape (n_samples, latent_dim), dtype float64
            Latent codes, each value in (0, 1).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((12, 4, 4, 1))
        >>> embedder = AutoencoderEmbedder(latent_dim=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.transform(X).shape
        (12, 2)
        """
        check_is_fitted(self)
        images = self._input(X)

        def codes(batch: torch.Tensor) -> torch.Tensor:
            # A float32 sigmoid may round differently in vectorised and scalar code,
            # i.e. depend on a sample's place in the batch; in float64 that is far
            # below float32 resolution.
            return torch.sigmoid(self.network_.encode_logits(batch).double())

        return self._batched(codes, _as_nchw(images)).numpy()

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode latent codes into images.

        Parameters
        ----------
        X : array-like of shape (n_samples, latent_dim)
            Codes, e.g. from ``transform`` (any finite values are decoded).

        Returns
        -------
        images : ndarray, dtype float32
            ``(n, H, W, C)`` in [0, 1] when ``fit`` got images, and
            ``(n, H*W*C)`` when it got a 2-D array (for generic features,
            in the units of the input).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((12, 4, 4, 1))
        >>> embedder = AutoencoderEmbedder(latent_dim=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.inverse_transform([[0.5, 0.5]]).shape
        (1, 4, 4, 1)
        """
        check_is_fitted(self)
        codes = check_array(X, dtype=np.float32, input_name="X")
        if codes.shape[1] != self.network_.latent_dim:
            raise ValueError(
                f"X has {codes.shape[1]} columns, but this {type(self).__name__} decodes "
                f"codes of latent_dim={self.network_.latent_dim}."
            )
        decoded = self._batched(self.network_.decode, torch.from_numpy(codes))
        images = decoded.permute(0, 2, 3, 1).numpy()
        if self.input_format_ == "images":
            return np.ascontiguousarray(images)
        flat = images.reshape(images.shape[0], -1)
        if self.input_format_ == "features":
            low, high = self.input_range_
            flat = flat * np.float32(high - low if high > low else 1.0) + np.float32(low)
        return np.ascontiguousarray(flat)

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Mean squared reconstruction error of each sample.

        Parameters
        ----------
        X : array-like
            Images laid out as in ``fit``.

        Returns
        -------
        errors : ndarray of shape (n_samples,), dtype float64
            Mean over pixels and channels of the squared difference between
            each image and its reconstruction, in the input's units ([0, 1]
            for images).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((12, 4, 4, 1))
        >>> embedder = AutoencoderEmbedder(latent_dim=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.reconstruction_error(X).shape
        (12,)
        """
        check_is_fitted(self)
        images = _as_nchw(self._input(X))

        def per_sample(batch: torch.Tensor) -> torch.Tensor:
            return (self.network_(batch) - batch).square().mean(dim=(1, 2, 3))

        errors = self._batched(per_sample, images).numpy().astype(np.float64)
        low, high = self.input_range_
        return errors * (high - low if high > low else 1.0) ** 2

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean squared reconstruction error (higher is better).

        Parameters
        ----------
        X : array-like
            Images laid out as in ``fit``.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            ``-mean(reconstruction_error(X))``.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((12, 4, 4, 1))
        >>> embedder = AutoencoderEmbedder(latent_dim=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.score(X) < 0
        True
        """
        return -float(np.mean(self.reconstruction_error(X)))



def _scale_features(table: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    """Map a (n, d) table to float32 1x1 images with d channels, ``input_range`` to [0, 1]."""
    low, high = input_range
    scaled = (table - low) / (high - low if high > low else 1.0)
    return scaled.astype(np.float32, copy=False)[:, np.newaxis, np.newaxis, :]


def _as_nchw(images: np.ndarray) -> torch.Tensor:
    """View ``(n, H, W, C)`` images as an ``(n, C, H, W)`` tensor without copying.

    The result is channels-last in memory, which the CPU convolutions of
    PyTorch handle directly.
    """
    return torch.from_numpy(images).permute(0, 3, 1, 2)
