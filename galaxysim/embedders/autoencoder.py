"""AutoencoderEmbedder: the residual convolutional autoencoder as a scikit-learn transformer.

Galaxies are compared by distance in the autoencoder's latent space: the
encoder maps an image to ``n_components`` numbers in (0, 1), the decoder maps
them back to an image, and training asks the round trip to reproduce the
input.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils.validation import check_array, check_is_fitted

from .._deprecation import DEPRECATED, is_set, warn_renamed
from .._training import TorchEstimatorMixin, documents_training_parameters, seeded, torch_seed
from .._validation import check_bool, check_positive_int
from ..symmetry import random_dihedral
from ._image_input import ImageInputMixin, check_augmentation
from .augment import GalaxyAugmentation
from .conv_autoencoder import ConvAutoencoder, check_training_memory, reconstruction_loss

__all__ = ["AutoencoderEmbedder"]

# The parameters that decide the network's shape: an ``init`` model must share them.
_ARCHITECTURE = ("n_components", "n_stages", "n_blocks", "base_channels", "channel_growth")


@documents_training_parameters
class AutoencoderEmbedder(
    ImageInputMixin,
    TorchEstimatorMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
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
    scikit-learn tool; for images, give ``image_shape``. A collection on disk
    larger than memory (an :class:`~galaxysim.datasets.ImageCollection`, or
    its path) is read a batch at a time by worker processes while the
    network trains, with the same result as the same images in memory
    (docs/scale.md).

    Parameters
    ----------
    n_components : int, default=32
        Size of the embedding: the number of columns ``transform`` returns
        (the network's latent code).
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
    random_dihedral : bool, default=True
        Train on randomly flipped and 90-degree-rotated images (galaxies have
        no preferred orientation); non-square images are only flipped or
        turned by 180 degrees. Called ``augment`` before version 0.3: every
        estimator now calls the :class:`GalaxyAugmentation` it trains with
        ``augmentation``, and names a dihedral option after the dihedral
        group (as ``ContrastiveEmbedder(dihedral_average=...)`` does).
    augmentation : GalaxyAugmentation, optional
        Train as a denoising autoencoder: the network sees galaxies changed
        by this augmentation (after the flips and turns of ``random_dihedral``) and
        must reconstruct them without its photometric part (blur, noise,
        brightness, colour), under the same geometric part (rotation, scale,
        shift). None trains on the images as they are.
    image_shape : tuple of int, optional
        ``(H, W, C)`` of one image, for flattened input.
    init : str, path-like, AutoencoderEmbedder or FrozenEstimator, optional
        Start training from the weights of an earlier model instead of
        random ones: a model file written by :func:`galaxysim.save_model`,
        or a fitted AutoencoderEmbedder (inside
        :class:`sklearn.frozen.FrozenEstimator` so that clone and
        GridSearchCV keep it fitted). Its ``n_components``, ``n_stages``,
        ``n_blocks``, ``base_channels`` and ``channel_growth``, and the size
        and channels of its images, must equal this estimator's.
    latent_dim : int, optional
        Deprecated in 0.3 (removed in 0.4): the old name of ``n_components``;
        when given, ``fit`` warns and uses it as ``n_components``.
    augment : bool, optional
        Deprecated in 0.3 (removed in 0.4): the old name of
        ``random_dihedral``; when given, ``fit`` warns and uses it.
    [training parameters]

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
    The neighbourhoods of the latent space keep improving a while after the
    validation loss flattens, so a short ``patience`` costs quality.

    ``score`` is the negative mean squared reconstruction error per value
    (in the units of the input, [0, 1] for images): higher is better, so
    :class:`~sklearn.model_selection.GridSearchCV` can select settings by it.
    ``transform`` returns float64: the network runs in float32, its last
    step in float64. Codes computed in a batch and one image at a time agree
    to about 1e-7, not to the last bit: the float32 convolutions may add up
    their terms in another order for another batch size.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((20, 8, 8, 3))
    >>> embedder = AutoencoderEmbedder(n_components=4, n_stages=1, n_blocks=1,
    ...                                base_channels=4, max_epochs=2, random_state=0)
    >>> embedder.fit_transform(images).shape
    (20, 4)
    >>> embedder.inverse_transform(embedder.transform(images[:2])).shape
    (2, 8, 8, 3)
    """

    def __init__(
        self,
        *,
        n_components: int = 32,
        n_stages: int = 5,
        n_blocks: int = 6,
        base_channels: int = 16,
        channel_growth: float = 1.0,
        random_dihedral: bool = True,
        augmentation: GalaxyAugmentation | None = None,
        image_shape: tuple[int, ...] | None = None,
        init: Any = None,
        latent_dim: Any = DEPRECATED,
        augment: Any = DEPRECATED,
        max_epochs: int = 100,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        max_grad_norm: float | None = None,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 10,
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.n_stages = n_stages
        self.n_blocks = n_blocks
        self.base_channels = base_channels
        self.channel_growth = channel_growth
        self.random_dihedral = random_dihedral
        self.augmentation = augmentation
        self.image_shape = image_shape
        self.init = init
        self.latent_dim = latent_dim
        self.augment = augment
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- validation ------------------------------------------------------------------

    def _resolved(self, name: str) -> Any:
        """The value of parameter ``name``, or of its deprecated alias when that is set."""
        old = {"n_components": "latent_dim", "random_dihedral": "augment"}.get(name)
        if old is not None and is_set(getattr(self, old, DEPRECATED)):
            return getattr(self, old)
        return getattr(self, name)

    def _check_params(self) -> torch.device:
        for old, new in (("latent_dim", "n_components"), ("augment", "random_dihedral")):
            if is_set(getattr(self, old)):
                warn_renamed(type(self).__name__, old, new)
        n_components_name = "latent_dim" if is_set(self.latent_dim) else "n_components"
        check_positive_int(self._resolved("n_components"), n_components_name)
        check_positive_int(self.n_stages, "n_stages", minimum=0)
        check_positive_int(self.n_blocks, "n_blocks")
        check_positive_int(self.base_channels, "base_channels")
        growth = self.channel_growth
        if isinstance(growth, bool) or not isinstance(growth, Real):
            raise TypeError(f"channel_growth must be a number >= 1, got {growth!r}.")
        if not (np.isfinite(growth) and growth >= 1):
            raise ValueError(f"channel_growth must be a number >= 1, got {growth!r}.")
        check_bool(
            self._resolved("random_dihedral"),
            "augment" if is_set(self.augment) else "random_dihedral",
        )
        check_augmentation(self.augmentation)
        return self._check_training_params()

    # -- fitting -------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> AutoencoderEmbedder:
        """Train the autoencoder on images.

        Parameters
        ----------
        X : array-like, ImageCollection or path
            Images ``(n, H, W, C)`` or ``(n, H, W)``, uint8 or float in
            [0, 1]; flattened ``(n, H*W*C)`` with ``image_shape``; generic
            2-D features (see the class description); or a collection on
            disk, streamed a batch at a time: an
            :class:`~galaxysim.datasets.ImageCollection`, or the path of an
            HDF5 file, zarr array or folder (read as ``ImageCollection(path)``).
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
        >>> AutoencoderEmbedder(n_components=2, n_stages=1, n_blocks=1, base_channels=2,
        ...                     max_epochs=1, random_state=0).fit(X).history_.n_epochs
        1
        """
        device = self._check_params()
        given = self._training_input(X)
        input_format = given.input_format
        height, width, channels = given.image_shape
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
            network = self._new_network((height, width, channels))
        if self.init is not None:
            self._initial_weights(network, "network_", _ARCHITECTURE)
        check_training_memory(
            network,
            (len(given.data), height, width, channels),
            self.batch_size,
            device,
            copied_bytes=0 if given.streamed else given.data.nbytes,
        )
        history = self._fit_module(
            network,
            given.data,
            reconstruction_loss,
            random_state=seed,
            device=device,
            augment=self._training_augmentation(),
            **given.loop_options(),
        )
        # Fitted state is set only once training has succeeded.
        self.history_ = history
        self.input_format_ = input_format
        self.input_range_ = given.input_range
        self.image_shape_ = (height, width, channels)
        self.n_features_in_ = height * width * channels
        self.device_ = device
        self.network_ = network
        return self

    def _training_augmentation(self) -> Callable[..., tuple[torch.Tensor, ...]] | None:
        """The training loop's augmentation: dihedral turns, then the denoising pair."""
        if self.augmentation is None:
            return random_dihedral if self._resolved("random_dihedral") else None
        return partial(
            _denoising_pair,
            augmentation=clone(self.augmentation),
            dihedral=bool(self._resolved("random_dihedral")),
        )

    def _new_network(self, image_shape: tuple[int, int, int]) -> ConvAutoencoder:
        """An untrained network for images of ``image_shape``, from the parameters."""
        height, width, channels = image_shape
        network = ConvAutoencoder(
            channels,
            height,
            width,
            latent_dim=self._resolved("n_components"),
            n_stages=self.n_stages,
            n_blocks=self.n_blocks,
            base_channels=self.base_channels,
            channel_growth=float(self.channel_growth),
        )
        # The images arrive channels-last (a view of (n, H, W, C)); convolutions run
        # faster in that layout than in NCHW, on the CPU by 15-30% (see the benchmark).
        return network.to(memory_format=torch.channels_last)

    def _empty_module(self, name: str) -> torch.nn.Module:
        """The untrained network of fitted attribute ``name``, for loading saved weights."""
        if name != "network_":
            raise KeyError(f"{type(self).__name__} has no network called {name!r}.")
        return self._new_network(tuple(self.image_shape_))

    # -- inference ---------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once a trained network is in place."""
        return hasattr(self, "network_")

    @property
    def _n_features_out(self) -> int:
        """Number of output features, for ``get_feature_names_out``."""
        return self.network_.latent_dim

    def transform(self, X: Any) -> np.ndarray:
        """Embed images: their latent codes.

        Parameters
        ----------
        X : array-like, ImageCollection or path
            Images laid out as in ``fit`` (4-D images and flattened images
            are interchangeable), or a collection on disk framed like the
            training images (embedded a batch at a time).

        Returns
        -------
        codes : ndarray of shape (n_samples, n_components), dtype float64
            Latent codes, each value in (0, 1).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((12, 4, 4, 1))
        >>> embedder = AutoencoderEmbedder(n_components=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.transform(X).shape
        (12, 2)
        """
        check_is_fitted(self)
        images = self._network_input(X)

        def codes(batch: torch.Tensor) -> torch.Tensor:
            # A float32 sigmoid may round differently in vectorised and scalar code;
            # in float64 that part of the batch dependence is gone, and what is left
            # comes from the float32 convolutions (about 1e-7).
            return torch.sigmoid(self.network_.encode_logits(batch).double())

        return self._batched(codes, images).numpy()

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode latent codes into images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
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
        >>> embedder = AutoencoderEmbedder(n_components=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.inverse_transform([[0.5, 0.5]]).shape
        (1, 4, 4, 1)
        """
        check_is_fitted(self)
        codes = check_array(X, dtype=np.float32, input_name="X")
        if codes.shape[1] != self.network_.latent_dim:
            raise ValueError(
                f"X has {codes.shape[1]} columns, but this {type(self).__name__} decodes "
                f"codes of n_components={self.network_.latent_dim}."
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
        X : array-like, ImageCollection or path
            Images laid out as in ``fit``, or a collection on disk framed
            like the training images (read a batch at a time).

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
        >>> embedder = AutoencoderEmbedder(n_components=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.reconstruction_error(X).shape
        (12,)
        """
        check_is_fitted(self)
        images = self._network_input(X)

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
        >>> embedder = AutoencoderEmbedder(n_components=2, n_stages=1, n_blocks=1,
        ...                                base_channels=2, max_epochs=1).fit(X)
        >>> embedder.score(X) < 0
        True
        """
        return -float(np.mean(self.reconstruction_error(X)))


def _denoising_pair(
    batch: tuple[torch.Tensor, ...],
    generator: torch.Generator,
    *,
    augmentation: GalaxyAugmentation,
    dihedral: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(augmented input, clean target) for one training batch of a denoising autoencoder."""
    if dihedral:
        batch = random_dihedral(batch, generator)
    return augmentation.pair(batch[0], generator)
