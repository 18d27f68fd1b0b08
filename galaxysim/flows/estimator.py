"""FlowDensityEstimator: a normalizing-flow density with the scikit-learn API."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Callable, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin, TransformerMixin
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._training import (
    TorchEstimatorMixin,
    fit_module,
    resolve_device,
    seeded,
    torch_seed,
)
from .._validation import check_fraction, check_image_shape, check_images, check_positive_int
from ..metrics import bits_per_dim
from . import ood
from .base import DensityFlow
from .image import (
    MultiscaleImageFlow,
    bits_per_dim,
    discrete_log_likelihood,
    levels_to_unit,
    quantize_unit,
    unit_to_images,
)
from .jammy import JammyFlow, jammy_layers
from .vector import VECTOR_FLOWS, VectorFlow



__all__ = ["FlowDensityEstimator"]

_BACKENDS = ("torch", "jammy")
# ActNorm layers of the image flow are initialised on this many training images.
_N_INIT_IMAGES = 256


def _negative_log_likelihood(module: DensityFlow, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return -module.log_prob(batch[0]).mean()


def _image_loss(n_dims: int) -> Callable[[DensityFlow, tuple[torch.Tensor, ...]], torch.Tensor]:
    def loss(module: DensityFlow, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        log_density = module.log_prob(levels_to_unit(batch[0]))
        return bits_per_dim(discrete_log_likelihood(log_density, n_dims), n_dims).mean()

    return loss


def _dequantize(
    batch: tuple[torch.Tensor, ...], generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    levels = batch[0]
    noise = torch.rand(levels.shape, generator=generator, device=levels.device, dtype=levels.dtype)
    return (levels + noise - 0.5,)


class FlowDensityEstimator(TorchEstimatorMixin, TransformerMixin, DensityMixin, BaseEstimator):
    """Normalizing-flow density estimator for feature vectors or images.

    A normalizing flow is a learned bijection ``z = f(x)`` onto a standard
    normal latent, so that ``log p(x) = log N(f(x); 0, I) + log |det df/dx|``
    is exact. It gives the likelihood of each sample (:meth:`score_samples`),
    a latent space (:meth:`transform`, :meth:`inverse_transform`) and new
    samples (:meth:`sample`).

    * **Vectors** ``(n, d)`` (e.g. after PCA or an autoencoder in a Pipeline):
      coupling or autoregressive flows from zuko, or Gaussianization flows
      from jammy_flows with ``backend="jammy"``.
    * **Images** ``(n, H, W, C)`` in [0, 1] (uint8 accepted), or flattened
      ``(n, H*W*C)`` with ``image_shape``: a multiscale Glow-style flow with
      uniform dequantization; likelihoods are those of the 8-bit image.

    Read more in ``docs/flows.md``.

    Parameters
    ----------
    flow : str, default="affine"
        For vectors: ``"affine"`` (RealNVP affine coupling, the original
        study's choice), ``"spline"`` (rational-quadratic spline coupling) or
        ``"autoregressive"`` (MAF). With ``backend="jammy"``:
        ``"gaussianization"``, ``"affine"`` or a jammy layer string such as
        ``"gggt"``. Images use affine coupling and accept only ``"affine"``.
    n_layers : int, default=4
        Flow layers (vectors), or flow steps per level (images).
    hidden_features : tuple of int, default=(128, 128)
        Hidden widths of the network inside each layer: MLP units (vectors)
        or convolution channels (images). Not used by the jammy backend.
    backend : {"torch", "jammy"}, default="torch"
        ``"jammy"`` uses jammy_flows (optional ``jammy`` extra; vectors only,
        float64 throughout).
    standardize : bool, default=True
        Standardise vector features (training mean and standard deviation)
        before the flow. Densities stay in the units of ``X`` either way.
        Images are not standardised.
    image_shape : tuple of int, optional
        ``(H, W, C)`` of one image. Makes 2-D input count as flattened images;
        3-D and 4-D input are images anyway.
    n_levels : int, default=3
        Squeeze levels of the image flow; ``H`` and ``W`` must be divisible
        by ``2**n_levels``. Not used for vectors.
    max_epochs : int, default=100
        Largest number of passes over the training data.
    batch_size : int, default=128
        Samples per optimiser step (and per batch at prediction time).
    learning_rate : float, default=1e-3
        Adam's step size.
    validation_fraction : float, default=0.1
        Share of the samples held out to measure the validation loss for
        early stopping, and whose log-likelihoods are kept as the reference
        of :meth:`typicality`. 0 needs ``early_stopping=False``.
    early_stopping : bool, default=True
        Stop when the validation loss has not improved for ``patience``
        epochs and keep the best weights.
    patience : int, default=10
        Epochs without improvement tolerated before stopping.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the network initialisation, the validation split, the
        shuffling and the dequantization noise; an int makes CPU fits
        repeatable.
    verbose : int, default=0
        When positive, show a progress bar during training.

    Attributes
    ----------
    flow_ : DensityFlow
        The trained flow network (:class:`VectorFlow`,
        :class:`MultiscaleImageFlow` or :class:`JammyFlow`).
    history_ : TrainingHistory
        Losses per epoch: mean negative log-likelihood in nats per sample
        (vectors) or bits per dimension (images).
    heldout_log_likelihood_ : ndarray of shape (n_heldout,)
        Log-likelihoods of the validation samples held out during training
        (of the training samples when ``validation_fraction=0``), the
        reference for :meth:`typicality`.
    image_shape_ : tuple of int or None
        ``(H, W, C)`` when fitted on images, else None.
    n_features_in_ : int
        Features per sample (``H*W*C`` for images).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when fitted on a DataFrame with string column names.
    device_ : torch.device
        Where the flow lives.

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Notes
    -----
    Vector flows are trained in float32 and then kept in float64, so that
    scores are float64 and do not depend on how samples are batched. The
    image flow stays in float32; its scores are returned as float64.

    Image likelihoods are those of the 8-bit image: the flow models
    ``y = (255 x + u) / 256`` with ``u`` uniform on [0, 1) during training,
    and is evaluated at the centre of each pixel's cell (``u = 1/2``), so
    ``log P(x) = log p(y) - H W C log 256``. See :meth:`bits_per_dim`.

    A high likelihood does not prove that a sample resembles the training
    data (Nalisnick et al. 2019, arXiv:1810.09136); see :meth:`typicality`
    and :meth:`complexity_corrected_score`.

    References
    ----------
    Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP,
    arXiv:1605.08803. Kingma & Dhariwal (2018), Glow, arXiv:1807.03039.
    Papamakarios, Pavlakou & Murray (2017), Masked autoregressive flow,
    arXiv:1705.07057. Durkan et al. (2019), Neural spline flows,
    arXiv:1906.04032.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.flows import FlowDensityEstimator
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> flow = FlowDensityEstimator(n_layers=2, hidden_features=(16,), max_epochs=5,
    ...                             device="cpu", random_state=0).fit(X)
    >>> flow.score_samples(X[:3]).shape
    (3,)
    >>> flow.sample(4, random_state=0).shape
    (4, 2)
    """

    def __init__(
        self,
        flow: str = "affine",
        n_layers: int = 4,
        hidden_features: Sequence[int] = (128, 128),
        backend: str = "torch",
        standardize: bool = True,
        image_shape: Sequence[int] | None = None,
        n_levels: int = 3,
        max_epochs: int = 100,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 10,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.flow = flow
        self.n_layers = n_layers
        self.hidden_features = hidden_features
        self.backend = backend
        self.standardize = standardize
        self.image_shape = image_shape
        self.n_levels = n_levels
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        if not isinstance(self.backend, str) or self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}.")
        if not isinstance(self.flow, str):
            raise TypeError(f"flow must be a string, got {type(self.flow).__name__}.")
        check_positive_int(self.n_layers, "n_layers")
        check_positive_int(self.n_levels, "n_levels")
        check_positive_int(self.max_epochs, "max_epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.patience, "patience")
        check_positive_int(self.verbose, "verbose", minimum=0)
        hidden = self.hidden_features
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(
                "hidden_features must be a sequence of positive integers such as (128, 128), "
                f"got {hidden!r}."
            )
        if len(hidden) == 0:
            raise ValueError("hidden_features must hold at least one width, got an empty sequence.")
        for width in hidden:
            check_positive_int(width, "each entry of hidden_features")
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise TypeError(f"standardize must be True or False, got {self.standardize!r}.")
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise TypeError(f"early_stopping must be True or False, got {self.early_stopping!r}.")
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, Real)
            or not (math.isfinite(self.learning_rate) and self.learning_rate > 0)
        ):
            raise ValueError(
                f"learning_rate must be a finite number > 0, got {self.learning_rate!r}."
            )
        check_fraction(self.validation_fraction, "validation_fraction", inclusive=True)
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError(
                "early_stopping=True needs held-out data: set validation_fraction > 0 "
                "(e.g. 0.1), or early_stopping=False."
            )
        if self.image_shape is not None:
            check_image_shape(self.image_shape)

    def _is_image_input(self, X: Any) -> bool:
        if self.image_shape is not None:
            return True
        ndim = getattr(X, "ndim", None)
        if ndim is None:
            try:
                ndim = np.ndim(X)
            except (ValueError, TypeError):
                return False
        return ndim in (3, 4)

    def _split(self, n_samples: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        if self.validation_fraction == 0:
            return np.arange(n_samples), np.arange(0)
        n_val = math.ceil(n_samples * self.validation_fraction)
        n_train = n_samples - n_val
        if n_train < 1:
            raise ValueError(
                f"Found {n_samples} sample(s), too few to hold out validation_fraction="
                f"{self.validation_fraction} and still train: at least 2 samples are needed "
                "(or set early_stopping=False and validation_fraction=0)."
            )
        order = rng.permutation(n_samples)
        return np.sort(order[:n_train]), np.sort(order[n_train:])

    # --------------------------------------------------------------------- fit

    def fit(self, X: Any, y: Any = None) -> "FlowDensityEstimator":
        """Fit the flow to ``X`` by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)
            Feature vectors, or images in [0, 1] (uint8 in [0, 255]); 2-D
            input counts as flattened images when ``image_shape`` is set.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : FlowDensityEstimator
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(100, 3))
        >>> est = FlowDensityEstimator(max_epochs=2, hidden_features=(8,), device="cpu")
        >>> est.fit(X).n_features_in_
        3
        """
        self._check_params()
        if self._is_image_input(X):
            if self.backend != "torch":
                raise ValueError(
                    f'backend="{self.backend}" handles vectors only; images need backend="torch".'
                )
            if self.flow != "affine":
                raise ValueError(
                    f'The image flow uses affine coupling: flow must be "affine" for images, '
                    f"got {self.flow!r}."
                )
            return self._fit_images(X)
        if self.backend == "torch" and self.flow not in VECTOR_FLOWS:
            raise ValueError(f"flow must be one of {VECTOR_FLOWS}, got {self.flow!r}.")
        if self.backend == "jammy":
            jammy_layers(self.flow, self.n_layers)
        return self._fit_vectors(X)

    def _train(
        self,
        module: DensityFlow,
        train: torch.Tensor,
        val: torch.Tensor,
        loss: Callable[[DensityFlow, tuple[torch.Tensor, ...]], torch.Tensor],
        rng: np.random.RandomState,
        augment: Any = None,
    ) -> None:
        self.history_ = fit_module(
            module,
            train,
            loss,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            validation_fraction=0.0,
            early_stopping=bool(self.early_stopping) and len(val) > 0,
            patience=self.patience,
            device=self.device_,
            random_state=rng,
            verbose=self.verbose,
            augment=augment,
            desc=type(self).__name__,
            validation_data=val if len(val) > 0 else None,
        )

    def _fit_vectors(self, X: Any) -> "FlowDensityEstimator":
        X = validate_data(self, X, reset=True, dtype=[np.float64, np.float32])
        self.image_shape_ = None
        self._input_ndim = 2
        self.device_ = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed = torch_seed(rng)
        train_idx, val_idx = self._split(X.shape[0], rng)
        X = X.astype(np.float64, copy=False)
        if self.standardize:
            loc = X[train_idx].mean(axis=0)
            scale = X[train_idx].std(axis=0)
            # Constant features keep their scale, as in StandardScaler.
            scale = np.where(scale > np.finfo(np.float64).eps * 10, scale, 1.0)
        else:
            loc, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])

        jammy = self.backend == "jammy"
        dtype = torch.float64 if jammy else torch.float32
        data = torch.tensor(X, dtype=dtype)
        loc_t, scale_t = torch.as_tensor(loc, dtype=dtype), torch.as_tensor(scale, dtype=dtype)
        with seeded(seed):
            if jammy:
                module: DensityFlow = JammyFlow(
                    X.shape[1], jammy_layers(self.flow, self.n_layers), loc=loc_t, scale=scale_t
                )
                module.initialize(data[train_idx], seed=seed)
            else:
                module = VectorFlow(
                    X.shape[1],
                    flow=self.flow,
                    n_layers=self.n_layers,
                    hidden_features=tuple(self.hidden_features),
                    loc=loc_t,
                    scale=scale_t,
                )
        self._train(module, data[train_idx], data[val_idx], _negative_log_likelihood, rng)
        # Kept in float64 from here on: scores must not depend on the batching of samples.
        self.flow_ = module.double().eval()
        reference = val_idx if len(val_idx) else train_idx
        self.heldout_log_likelihood_ = self._log_likelihood(X[reference])
        return self

    def _fit_images(self, X: Any) -> "FlowDensityEstimator":
        ndim = getattr(X, "ndim", None) or np.ndim(X)
        images = check_images(X, image_shape=self.image_shape, name="X")
        self._input_ndim = int(ndim)
        self.image_shape_ = tuple(int(s) for s in images.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.device_ = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed = torch_seed(rng)
        train_idx, val_idx = self._split(images.shape[0], rng)
        levels = torch.from_numpy(images * np.float32(255.0))

        with seeded(seed):
            module = MultiscaleImageFlow(
                self.image_shape_,
                n_levels=self.n_levels,
                n_steps=self.n_layers,
                hidden_features=tuple(self.hidden_features),
            )
            # A random subset: the training images may be sorted, e.g. by class.
            n_init = min(len(train_idx), _N_INIT_IMAGES)
            init_idx = rng.choice(train_idx, size=n_init, replace=False)
            init_levels = levels[np.sort(init_idx)]
            with torch.no_grad():
                noise = torch.rand(init_levels.shape) - 0.5
                module.log_prob(levels_to_unit(init_levels + noise))
        n_dims = self.n_features_in_
        self._train(
            module, levels[train_idx], levels[val_idx], _image_loss(n_dims), rng, _dequantize
        )
        self.flow_ = module.eval()
        reference = val_idx if len(val_idx) else train_idx
        self.heldout_log_likelihood_ = self._log_likelihood(images[reference])
        return self

    # ----------------------------------------------------------------- helpers

    def _check_input(self, X: Any) -> np.ndarray:
        """Validate ``X`` against the fit: float64 vectors or float32 (n, H, W, C) images."""
        check_is_fitted(self)
        if self.image_shape_ is None:
            return validate_data(self, X, reset=False, dtype=np.float64)
        return check_images(X, image_shape=self.image_shape_, name="X")

    def _batched(
        self, function: Callable[[torch.Tensor], torch.Tensor], data: np.ndarray
    ) -> np.ndarray:
        dtype = torch.float32 if self.image_shape_ is not None else torch.float64
        outputs = []
        with torch.no_grad():
            for start in range(0, data.shape[0], self.batch_size):
                batch = torch.tensor(data[start : start + self.batch_size], dtype=dtype)
                outputs.append(function(batch.to(self.device_)).cpu().numpy())
        return np.concatenate(outputs) if outputs else np.empty((0,))

    def _log_likelihood(self, data: np.ndarray) -> np.ndarray:
        if self.image_shape_ is None:
            return self._batched(self.flow_.log_prob, data).astype(np.float64)
        n_dims = self.n_features_in_

        def image_log_likelihood(batch: torch.Tensor) -> torch.Tensor:
            log_density = self.flow_.log_prob(levels_to_unit(batch * 255.0))
            return discrete_log_likelihood(log_density, n_dims)

        return self._batched(image_log_likelihood, data).astype(np.float64)

    def _shape_like_training(self, images: np.ndarray) -> np.ndarray:
        if self._input_ndim == 2:
            return images.reshape(images.shape[0], -1)
        if self._input_ndim == 3 and images.shape[-1] == 1:
            return images[..., 0]
        return images

    def _require_images(self, method: str) -> None:
        check_is_fitted(self)
        if self.image_shape_ is None:
            raise ValueError(
                f"{method} is defined for image densities only; this estimator was fitted on "
                f"{self.n_features_in_}-dimensional vectors."
            )

    # ----------------------------------------------------------------- density

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample, in nats.

        For vectors, the log density in the units of ``X`` (the
        standardisation's Jacobian included). For images, the
        log-probability of the 8-bit image (see the class Notes).

        Parameters
        ----------
        X : array-like
            Samples shaped like the training data.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,), float64
            Higher means more likely under the model.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> est = FlowDensityEstimator(max_epochs=2, hidden_features=(8,), device="cpu").fit(X)
        >>> est.score_samples(X[:2]).dtype
        dtype('float64')
        """
        return self._log_likelihood(self._check_input(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of ``X`` (nats per sample); higher is better.

        Parameters
        ----------
        X : array-like
            Samples shaped like the training data.
        y : None
            Ignored.

        Returns
        -------
        score : float
            ``mean(score_samples(X))``, so that GridSearchCV picks the model
            that gives held-out data the highest likelihood.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> est = FlowDensityEstimator(max_epochs=2, hidden_features=(8,), device="cpu").fit(X)
        >>> isinstance(est.score(X), float)
        True
        """
        return float(np.mean(self.score_samples(X)))

    def bits_per_dim(self, X: Any) -> np.ndarray:
        """Negative log-likelihood of each image in bits per dimension.

        ``-log P(x) / (H W C log 2)``, the usual unit for image likelihoods:
        8 means no better than uniform noise over 8-bit values.

        Parameters
        ----------
        X : array-like
            Images shaped like the training data.

        Returns
        -------
        bits : ndarray of shape (n_samples,), float64
            Lower means more likely.

        Raises
        ------
        ValueError
            When the estimator was fitted on vectors.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((16, 8, 8, 1))
        >>> est = FlowDensityEstimator(n_layers=1, n_levels=1, hidden_features=(4,),
        ...                            max_epochs=1, device="cpu", random_state=0).fit(X)
        >>> est.bits_per_dim(X[:2]).shape
        (2,)
        """
        self._require_images("bits_per_dim")
        return bits_per_dim(self.score_samples(X), self.n_features_in_)

    def typicality(self, X: Any) -> np.ndarray:
        """Percentile of each sample's log-likelihood among held-out training log-likelihoods.

        The reference is ``heldout_log_likelihood_``: the validation samples
        held out during :meth:`fit` (the training samples themselves when
        ``validation_fraction=0``, which flatters the training data).

        Parameters
        ----------
        X : array-like
            Samples shaped like the training data.

        Returns
        -------
        percentile : ndarray of shape (n_samples,), float64
            In [0, 100]. Near 0: less likely than nearly all held-out
            training data, a sign that the sample is out of distribution.
            Near 100: *more* likely than nearly all of it, which for images
            often means an unusually simple (smooth, dark) image rather than
            a typical one (Nalisnick et al. 2019). Both tails deserve a look.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensityEstimator(max_epochs=5, hidden_features=(8,), device="cpu",
        ...                            random_state=0).fit(X)
        >>> float(est.typicality(np.array([[30.0, -30.0]]))[0])
        0.0
        """
        return ood.likelihood_percentile(self.score_samples(X), self.heldout_log_likelihood_)

    def complexity_corrected_score(self, X: Any) -> np.ndarray:
        """Complexity-corrected out-of-distribution score of each image, in bits.

        Serra et al. 2020 (arXiv:1909.11480): ``S(x) = -log2 P(x) - L(x)``,
        with ``L(x)`` the PNG-compressed length of the 8-bit image in bits
        (Pillow, compression level 9). It removes the share of the
        likelihood that only reflects how simple an image is.

        Parameters
        ----------
        X : array-like
            Images shaped like the training data.

        Returns
        -------
        score : ndarray of shape (n_samples,), float64
            **Larger means more out of distribution.** Negative values mean
            the flow encodes the image in fewer bits than PNG, as expected
            for images like the training data. Compare values between images
            of the same size.

        Raises
        ------
        ValueError
            When the estimator was fitted on vectors.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((16, 8, 8, 1))
        >>> est = FlowDensityEstimator(n_layers=1, n_levels=1, hidden_features=(4,),
        ...                            max_epochs=1, device="cpu", random_state=0).fit(X)
        >>> est.complexity_corrected_score(X[:2]).shape
        (2,)
        """
        self._require_images("complexity_corrected_score")
        images = self._check_input(X)
        return ood.complexity_corrected_score(self._log_likelihood(images), images)

    # ------------------------------------------------------------ latent space

    def transform(self, X: Any) -> np.ndarray:
        """Map samples to the flow's latent space (standard normal under the model).

        Parameters
        ----------
        X : array-like
            Samples shaped like the training data.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_latent)
            ``n_latent`` is ``n_features_in_``. float64 for vectors, float32
            for images (the image flow's precision). Images are mapped from
            the centres of their 8-bit pixel cells.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> est = FlowDensityEstimator(max_epochs=2, hidden_features=(8,), device="cpu").fit(X)
        >>> np.allclose(est.inverse_transform(est.transform(X)), X)
        True
        """
        data = self._check_input(X)
        if self.image_shape_ is None:
            return self._batched(lambda batch: self.flow_.latent(batch)[0], data)
        return self._batched(
            lambda batch: self.flow_.latent(levels_to_unit(batch * 255.0))[0], data
        )

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Map latent points back to data space.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_latent)
            Latent points, e.g. from :meth:`transform`.

        Returns
        -------
        X : ndarray
            Vectors (float64), or images (float32, clipped to [0, 1] but not
            quantised, so that ``inverse_transform(transform(X))`` gives
            ``X`` back) shaped like the training data.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> est = FlowDensityEstimator(max_epochs=2, hidden_features=(8,), device="cpu").fit(X)
        >>> est.inverse_transform(np.zeros((1, 2))).shape
        (1, 2)
        """
        check_is_fitted(self)
        Z = check_array(Z, dtype=np.float64, input_name="Z")
        if Z.shape[1] != self.n_features_in_:
            raise ValueError(
                f"Z has {Z.shape[1]} latent dimensions, but {type(self).__name__} has "
                f"{self.n_features_in_}."
            )
        if self.image_shape_ is None:
            return self._batched(self.flow_.inverse, Z)
        images = self._batched(lambda z: unit_to_images(self.flow_.inverse(z)), Z)
        return self._shape_like_training(images)

    def sample(
        self, n_samples: int = 1, random_state: Any = None, *, temperature: float = 1.0
    ) -> np.ndarray:
        """Draw new samples from the fitted density.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seeds the latent draws; an int gives the same samples each time.
        temperature : float, default=1.0
            Standard deviation of the latent draws. Values below 1 (Glow
            uses 0.7) trade diversity for cleaner images; 1 samples the
            fitted density itself.

        Returns
        -------
        X : ndarray
            ``(n_samples, n_features)`` float64 vectors, or 8-bit images in
            [0, 1] (float32) shaped like the training data.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> est = FlowDensityEstimator(max_epochs=2, hidden_features=(8,), device="cpu").fit(X)
        >>> np.array_equal(est.sample(3, random_state=1), est.sample(3, random_state=1))
        True
        """
        check_is_fitted(self)
        n_samples = check_positive_int(n_samples, "n_samples")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, Real)
            or not (math.isfinite(temperature) and temperature > 0)
        ):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}.")
        generator = torch.Generator().manual_seed(torch_seed(random_state))
        dtype = torch.float64 if self.image_shape_ is None else torch.float32
        latent = torch.randn(n_samples, self.n_features_in_, generator=generator, dtype=dtype)
        latent = (latent * temperature).numpy()
        if self.image_shape_ is None:
            return self._batched(self.flow_.inverse, latent)
        images = self._batched(lambda z: quantize_unit(self.flow_.inverse(z)), latent)
        return self._shape_like_training(images)
