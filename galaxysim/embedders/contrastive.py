"""ContrastiveEmbedder: self-supervised galaxy embeddings as a scikit-learn transformer.

Two randomly augmented views of every galaxy (rotated, flipped, rescaled,
shifted, blurred, re-noised, re-coloured by
:class:`~galaxysim.embedders.augment.GalaxyAugmentation`) are pushed to the
same point of the embedding and away from the other galaxies (SimCLR), or
kept close while the embedding keeps its spread (VICReg). What survives the
augmentations is what a galaxy looks like, not its orientation, size, or the
noise of the exposure, which is what a similarity search should compare.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from .._deprecation import DEPRECATED, is_set, warn_deprecated
from .._training import (
    TorchEstimatorMixin,
    documents_training_parameters,
    seeded,
    torch_seed,
    validation_split,
)
from .._validation import check_bool, check_positive_float, check_positive_int
from ..symmetry import dihedral_index_maps
from ._image_input import ImageInputMixin, as_nchw, check_augmentation, take
from .augment import GalaxyAugmentation
from .contrastive_network import ContrastiveEncoder, nt_xent_loss, vicreg_loss
from .dihedral_network import DihedralEncoder
from .whitening import shrunk_whitening

__all__ = ["ContrastiveEmbedder"]

_LOSSES = ("nt-xent", "vicreg")
_ENCODERS = {"conv": ContrastiveEncoder, "dihedral": DihedralEncoder}
# The parameters that decide the network's shape: an ``init`` model must share them.
_ARCHITECTURE = ("encoder", "representation_dim", "n_stages", "base_channels", "projection_dim")
# Seed of the fixed augmentation of the validation views (and of ``score``), so
# that the validation loss of one epoch is comparable with the next.
_VALIDATION_SEED = 12345


@documents_training_parameters
class ContrastiveEmbedder(
    ImageInputMixin,
    TorchEstimatorMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Embed galaxy images by contrastive self-supervised learning.

    ``fit`` trains a :class:`ContrastiveEncoder` on pairs of augmented views
    of the same galaxies (no labels needed); ``transform`` embeds images as
    they are, without augmentation, so the same image always gets the same
    embedding. Galaxies that look alike, whatever their orientation, size
    or noise, land close together.

    Input can be images ``(n, H, W, C)`` (uint8, or float in [0, 1]),
    ``(n, H, W)`` (one channel), or flattened ``(n, H*W*C)`` with
    ``image_shape``. Any other 2-D array ``(n, d)`` is read as ``d`` generic
    features (a 1x1 image with ``d`` channels, scaled to [0, 1] by the
    range seen in ``fit``), augmented only by noise, brightness and colour.
    A collection on disk larger than memory (an
    :class:`~galaxysim.datasets.ImageCollection`, or its path) is read a
    batch at a time by worker processes while the network trains, with the
    same result as the same images in memory (docs/scale.md).

    Parameters
    ----------
    encoder : {"dihedral", "conv"}, default="dihedral"
        The network. ``"dihedral"``: a group-convolutional encoder
        (:class:`~galaxysim.embedders.dihedral_network.DihedralEncoder`)
        whose embedding is exactly the same for an image and its flips and
        quarter turns, with eight times fewer weights than a plain network
        of the same widths; it learns more from few images
        (docs/contrastive.md). ``"conv"``: a plain convolutional encoder
        (:class:`ContrastiveEncoder`), the default before version 0.2, less
        costly to train on a CPU (docs/benchmarks.md).
    n_components : int or None, default=64
        Size of the embedding ``transform`` returns: the network's
        representation projected on its ``n_components`` principal
        directions over the training images and PCA-whitened (each scaled to
        unit variance), so that the weaker directions, which tell similar
        galaxies apart, count as much as the strongest (as in image
        retrieval, Jégou & Chum 2012). The variances are shrunk towards
        their mean in proportion to ``representation_dim / n_samples``
        (Ledoit & Wolf 2004), so that with few training images, whose weak
        directions are mostly noise, the whitening stays mild. At most
        ``representation_dim``, and at most the number of training images:
        ``transform`` returns ``min(n_components, representation_dim,
        n_samples)`` numbers. None returns the network's representation as
        it is (``representation_dim`` numbers, not whitened). Before version
        0.3 this width was set by ``whiten``, and ``n_components`` named
        the network's width, now ``representation_dim``.
    representation_dim : int, default=128
        Width of the network's representation (the channels of the
        encoder's last stage), from which the ``n_components`` numbers of
        the embedding are computed.
    n_stages : int, default=4
        Encoder stages, each halving the resolution.
    base_channels : int, default=32
        Channels of the first stage, doubling at each stage up to
        ``representation_dim``. Cost grows roughly with its square.
    projection_dim : int, default=64
        Output size of the projection head used by the loss (dropped after
        training).
    loss : {"nt-xent", "vicreg"}, default="nt-xent"
        ``"nt-xent"``: SimCLR's contrastive loss (Chen et al. 2020).
        ``"vicreg"``: variance-invariance-covariance regularisation (Bardes
        et al. 2022), which needs no negative pairs.
    temperature : float, default=0.2
        Temperature of ``"nt-xent"``.
    augmentation : GalaxyAugmentation, optional
        How the training views are drawn; None means ``GalaxyAugmentation()``,
        whose defaults suit galaxy crops like Galaxy10's. Its parameters can
        be tuned as ``augmentation__max_noise`` and so on.
    n_views : int, default=2
        Augmented views of each galaxy per training step, at least 2; every
        other view of the same galaxy is a positive (Khosla et al. 2020).
        More views give more pairs per epoch at proportionally more cost per
        epoch; measured with four at 15 epochs, they helped on toy galaxies
        of another generator and not on the built-in ones
        (docs/contrastive.md).
    dihedral_average : bool, default=False
        Embed each image in its 8 rotations and flips (4 for non-square
        images) and average, which makes the embedding exactly invariant to
        them at 8 times the cost of ``transform``.
    normalize : bool, default=True
        Scale each (whitened) embedding to unit length, so that the
        Euclidean distance between two galaxies ranks them as the cosine
        similarity does: the direction of an embedding says what a galaxy
        looks like, its length mostly how clearly (bright, large, sharp) it
        is seen. Whitening followed by this normalisation is the usual
        recipe of image retrieval (Jégou & Chum 2012).
    image_shape : tuple of int, optional
        ``(H, W, C)`` of one image, for flattened input.
    init : str, path-like, ContrastiveEmbedder or FrozenEstimator, optional
        Start training from the weights of an earlier model instead of
        random ones: a model file written by :func:`galaxysim.save_model`,
        or a fitted ContrastiveEmbedder. Pretrain on a large collection (or
        on built-in galaxies), then fit on your own images to adapt it.
        Pass a fitted estimator inside
        :class:`sklearn.frozen.FrozenEstimator` so that :func:`~sklearn.base.clone`
        and :class:`~sklearn.model_selection.GridSearchCV` keep it fitted
        (clone makes a bare estimator unfitted). Its ``encoder``,
        ``representation_dim``, ``n_stages``, ``base_channels``,
        ``projection_dim`` and image channels must equal this estimator's.
        The whitening is always computed anew on the images given to ``fit``.
    whiten : int or None, optional
        Deprecated in 0.3 (removed in 0.4): the output width of version
        0.2, now ``n_components``. When given, ``fit`` warns and reads the
        parameters as 0.2 did: ``whiten`` as ``n_components`` and
        ``n_components`` as ``representation_dim``.
    [training parameters]

    Attributes
    ----------
    network_ : ContrastiveEncoder
        The trained network, in eval mode, on ``device_``.
    history_ : TrainingHistory
        Training and validation loss per epoch (the validation views are
        drawn once, with a fixed seed), best epoch, how training ended.
    whitening_mean_ : ndarray of shape (representation_dim,)
        Mean of the training representations (zeros when ``n_components=None``).
    whitening_components_ : ndarray of shape (n_features_out, representation_dim)
        The whitening map: principal directions divided by their shrunk
        spread (the identity when ``n_components=None``); ``transform`` returns
        ``(embedding - whitening_mean_) @ whitening_components_.T``.
    image_shape_ : tuple of int
        ``(H, W, C)`` of the training images (``(1, 1, d)`` for features).
    n_features_in_ : int
        Numbers per input sample, ``H * W * C``.
    feature_names_in_ : ndarray of str
        Column names, when fitted on a table with string column names.
    input_format_ : {"images", "flattened", "features"}
        How the training input was given.
    input_range_ : tuple of float
        ``(low, high)`` mapped to [0, 1] before the network.
    device_ : torch.device
        Where the network lives.

    See Also
    --------
    AutoencoderEmbedder : the original study's autoencoder.
    galaxysim.embedders.augment.GalaxyAugmentation : the training views.

    Notes
    -----
    ``score`` is the negative loss on ``n_views`` views of ``X`` drawn with
    a fixed seed (higher is better); it compares settings of the same
    ``loss``, ``temperature`` and ``n_views``. To compare those, score the
    embedding itself, for example with
    :func:`galaxysim.metrics.same_class_rate` on labelled galaxies.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((24, 16, 16, 3))
    >>> embedder = ContrastiveEmbedder(n_components=8, representation_dim=8, n_stages=2,
    ...                                base_channels=4, max_epochs=2, batch_size=8,
    ...                                random_state=0)
    >>> embedder.fit_transform(images).shape
    (24, 8)
    """

    def __init__(
        self,
        *,
        encoder: str = "dihedral",
        n_components: int | None = 64,
        representation_dim: int = 128,
        n_stages: int = 4,
        base_channels: int = 32,
        projection_dim: int = 64,
        loss: str = "nt-xent",
        temperature: float = 0.2,
        augmentation: GalaxyAugmentation | None = None,
        n_views: int = 2,
        dihedral_average: bool = False,
        normalize: bool = True,
        image_shape: tuple[int, ...] | None = None,
        init: Any = None,
        whiten: Any = DEPRECATED,
        max_epochs: int = 30,
        batch_size: int = 128,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        max_grad_norm: float | None = None,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 10,
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.encoder = encoder
        self.n_components = n_components
        self.representation_dim = representation_dim
        self.n_stages = n_stages
        self.base_channels = base_channels
        self.projection_dim = projection_dim
        self.loss = loss
        self.temperature = temperature
        self.augmentation = augmentation
        self.n_views = n_views
        self.dihedral_average = dihedral_average
        self.normalize = normalize
        self.image_shape = image_shape
        self.init = init
        self.whiten = whiten
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
        """The value parameter ``name`` takes effect with.

        With the deprecated ``whiten`` set, the parameters are read as in
        version 0.2: ``whiten`` is the output width and ``n_components``
        the network's.
        """
        if is_set(getattr(self, "whiten", DEPRECATED)):
            if name == "n_components":
                return self.whiten
            if name == "representation_dim":
                return self.n_components
        return getattr(self, name)

    def _check_params(self) -> torch.device:
        if self.encoder not in _ENCODERS:
            raise ValueError(f"encoder must be one of {tuple(_ENCODERS)}, got {self.encoder!r}.")
        if is_set(self.whiten):
            warn_deprecated(
                "ContrastiveEmbedder's parameter whiten is deprecated: n_components is now "
                "the width of the embedding (whiten's meaning in 0.2) and representation_dim "
                "the network's width (n_components's meaning in 0.2). Pass "
                f"n_components={self.whiten!r}, representation_dim={self.n_components!r} "
                "for the same model."
            )
            if self.whiten is not None:
                check_positive_int(self.whiten, "whiten")
            check_positive_int(self.n_components, "n_components")
        else:
            if self.n_components is not None:
                check_positive_int(self.n_components, "n_components")
            check_positive_int(self.representation_dim, "representation_dim")
        check_positive_int(self.n_stages, "n_stages")
        check_positive_int(self.base_channels, "base_channels")
        check_positive_int(self.projection_dim, "projection_dim")
        if self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {self.loss!r}.")
        check_positive_float(self.temperature, "temperature")
        check_augmentation(self.augmentation)
        check_positive_int(self.n_views, "n_views", minimum=2)
        check_bool(self.dihedral_average, "dihedral_average")
        check_bool(self.normalize, "normalize")
        return self._check_training_params()

    def _augmentation(self, input_format: str) -> GalaxyAugmentation:
        """The augmentation to train with; generic features get no geometry and no blur."""
        augmentation = (
            GalaxyAugmentation() if self.augmentation is None else clone(self.augmentation)
        )
        if input_format == "features":
            augmentation.set_params(
                rotation=False, flip=False, scale=(1.0, 1.0), max_shift=0.0, max_blur=0.0
            )
        return augmentation

    # -- fitting -------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> ContrastiveEmbedder:
        """Train the encoder on augmented views of the images.

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
        self : ContrastiveEmbedder
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((16, 8, 8, 3))
        >>> ContrastiveEmbedder(n_components=4, representation_dim=4, n_stages=1, base_channels=4,
        ...                     max_epochs=1, batch_size=8, random_state=0).fit(X).history_.n_epochs
        1
        """
        device = self._check_params()
        given = self._training_input(X)
        augmentation = self._augmentation(given.input_format)
        seed = torch_seed(self.random_state)
        data = given.data
        train, validation = self._split(data, seed)
        with seeded(seed):
            network = self._new_network(given.image_shape[-1])
        if self.init is not None:
            self._initial_weights(network, "network_", _ARCHITECTURE)
        views = partial(_views, augmentation=augmentation, n_views=self.n_views)
        history = self._fit_module(
            network,
            take(data, train) if given.streamed else (data[train],),
            partial(_views_loss, loss=self.loss, temperature=float(self.temperature)),
            random_state=seed,
            device=device,
            augment=views,
            # The images are split here; the loop must not split them again.
            validation_fraction=0.0,
            even_batches=True,
            **self._validation(given, validation, augmentation),
            **given.loop_options(),
        )
        # Fitted state is set only once training and the whitening have succeeded.
        n_components = self._resolved("n_components")
        whitening = shrunk_whitening(
            self._embed(data, network, device) if n_components is not None else None,
            self._resolved("representation_dim"),
            n_components,
        )
        self.history_ = history
        self.input_format_ = given.input_format
        self.input_range_ = given.input_range
        self.image_shape_ = given.image_shape
        self.n_features_in_ = int(np.prod(self.image_shape_))
        self.device_ = device
        self.network_ = network
        self.whitening_mean_, self.whitening_components_ = whitening
        return self

    def _validation(
        self, given: Any, validation: Any, augmentation: GalaxyAugmentation
    ) -> dict[str, Any]:
        """The loop's validation arguments: fixed views drawn once from memory, or per batch.

        In memory the views of all validation images are drawn here, once; a
        stream draws them batch by batch, with a generator the loop seeds
        afresh for every pass, so that each epoch sees the same views too.
        """
        if validation is None:
            return {}
        if not given.streamed:
            return {
                "validation_data": (
                    _fixed_views(given.data[validation], augmentation, self.n_views),
                )
            }
        return {
            "validation_data": take(given.data, validation),
            "validation_augment": partial(_views, augmentation=augmentation, n_views=self.n_views),
        }

    def _split(self, data: Any, seed: int) -> tuple[Any, Any]:
        """Indices of the training images and of the validation ones (None without)."""
        n_samples = int(data.shape[0])
        if n_samples < 2:
            raise ValueError(f"X has {n_samples} sample(s); contrastive training needs at least 2.")
        generator = torch.Generator().manual_seed(seed)
        train, validation = validation_split(
            n_samples, self.validation_fraction, lambda n: torch.randperm(n, generator=generator)
        )
        return train, (validation if len(validation) else None)

    def _new_network(self, in_channels: int) -> ContrastiveEncoder | DihedralEncoder:
        """An untrained network for images of ``in_channels`` channels, from the parameters."""
        network = _ENCODERS[self.encoder](
            in_channels,
            n_components=self._resolved("representation_dim"),
            n_stages=self.n_stages,
            base_channels=self.base_channels,
            projection_dim=self.projection_dim,
        )
        if self.encoder == "dihedral":
            return network  # its 5-D filters are expanded into 4-D ones at each call
        return network.to(memory_format=torch.channels_last)

    def _empty_module(self, name: str) -> torch.nn.Module:
        """The untrained network of fitted attribute ``name``, for loading saved weights."""
        if name != "network_":
            raise KeyError(f"{type(self).__name__} has no network called {name!r}.")
        return self._new_network(int(self.image_shape_[-1]))

    # -- inference ---------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once a trained network is in place."""
        return hasattr(self, "network_")

    @property
    def _n_features_out(self) -> int:
        """Number of output features, for ``get_feature_names_out``."""
        return self.whitening_components_.shape[0]

    def _embed(
        self,
        images: Any,
        network: ContrastiveEncoder | None = None,
        device: torch.device | None = None,
    ) -> np.ndarray:
        """Raw (unwhitened) float64 embeddings of ``(n, C, H, W)`` images (or a stream of them).

        By ``network`` on ``device``; by default the fitted ``network_`` on ``device_``.
        """
        network = self.network_ if network is None else network
        device = self.device_ if device is None else device
        if not self.dihedral_average:
            return self._batched(network, images, device).double().numpy()
        maps = dihedral_index_maps(*images.shape[-2:], device=device)
        total = None
        for index_map in maps:

            def view_embedding(
                batch: torch.Tensor, index_map: torch.Tensor = index_map
            ) -> torch.Tensor:
                return network(batch.flatten(2)[..., index_map].reshape(batch.shape))

            part = self._batched(view_embedding, images, device).double()
            total = part if total is None else total + part
        return (total / len(maps)).numpy()

    def transform(self, X: Any) -> np.ndarray:
        """Embed images, without augmentation.

        Parameters
        ----------
        X : array-like, ImageCollection or path
            Images laid out as in ``fit``, or a collection on disk framed
            like the training images (embedded a batch at a time).

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_features_out), dtype float64
            Whitened with the training images' principal directions (see
            ``n_components``), each row of unit length with ``normalize``.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((16, 8, 8, 3))
        >>> embedder = ContrastiveEmbedder(n_components=4, representation_dim=4, n_stages=1,
        ...                                base_channels=4, max_epochs=1, batch_size=8).fit(X)
        >>> embedder.transform(X[:3]).shape
        (3, 4)
        """
        check_is_fitted(self)
        embedding = self._embed(self._network_input(X))
        embedding = (embedding - self.whitening_mean_) @ self.whitening_components_.T
        if self.normalize:
            length = np.linalg.norm(embedding, axis=1, keepdims=True)
            embedding = embedding / np.where(length > 0, length, 1.0)
        return embedding

    def score(self, X: Any, y: Any = None) -> float:
        """Negative training loss on fixed augmented views of ``X`` (higher is better).

        Parameters
        ----------
        X : array-like, ImageCollection or path
            Images laid out as in ``fit``, at least 2 (a collection is read
            into memory: the loss compares all its views at once).
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            Minus the loss (NT-Xent or VICReg) of ``X``'s views, drawn with a
            fixed seed so that the same ``X`` always gets the same score.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((16, 8, 8, 3))
        >>> embedder = ContrastiveEmbedder(n_components=4, representation_dim=4, n_stages=1,
        ...                                base_channels=4, max_epochs=1, batch_size=8).fit(X)
        >>> embedder.score(X) < 0
        True
        """
        check_is_fitted(self)
        images = as_nchw(self._input(X))
        if images.shape[0] < 2:
            raise ValueError(f"X has {images.shape[0]} sample(s); score needs at least 2.")
        views = _fixed_views(images, self._augmentation(self.input_format_), self.n_views)
        loss = partial(_views_loss, loss=self.loss, temperature=float(self.temperature))
        with torch.no_grad():
            return -float(loss(self.network_, (views.to(self.device_),)))


def _views(
    batch: tuple[torch.Tensor, ...],
    generator: torch.Generator,
    *,
    augmentation: GalaxyAugmentation,
    n_views: int,
) -> tuple[torch.Tensor]:
    """Training-loop augmentation: images ``(n, C, H, W)`` to views ``(n, n_views, C, H, W)``."""
    (images,) = batch
    return (torch.stack([augmentation(images, generator) for _ in range(n_views)], 1),)


def _fixed_views(
    images: torch.Tensor, augmentation: GalaxyAugmentation, n_views: int
) -> torch.Tensor:
    """``n_views`` views of each image, always the same ones: for validation and ``score``."""
    generator = torch.Generator().manual_seed(_VALIDATION_SEED)
    return _views((images.float(),), generator, augmentation=augmentation, n_views=n_views)[0]


def _views_loss(
    module: ContrastiveEncoder, batch: tuple[torch.Tensor, ...], *, loss: str, temperature: float
) -> torch.Tensor:
    """The loss of a batch of views ``(n, V, C, H, W)``, all views in one pass.

    VICReg, defined for two views, is averaged over every pair of them.
    """
    (views,) = batch
    n, n_views = views.shape[:2]
    images = views.flatten(0, 1).contiguous(memory_format=torch.channels_last)
    projections = module.project(module(images)).reshape(n, n_views, -1).unbind(1)
    if loss == "vicreg":
        pairs = [(i, j) for i in range(n_views) for j in range(i + 1, n_views)]
        return sum(vicreg_loss(projections[i], projections[j]) for i, j in pairs) / len(pairs)
    return nt_xent_loss(projections[0], projections[1], temperature, *projections[2:])
