"""FlowDensityEstimator: a normalizing-flow density with the scikit-learn API.

The estimator holds no model of the data itself: the flow network it trains
(:class:`~galaxysim.flows.base.DensityFlow`) says what its input, loss,
likelihood, latent points and samples are. Fitting differs between vectors and
images only in which network is built (one small factory per kind, in
:mod:`galaxysim.flows._networks`); every other method runs one code path.
The likelihood-derived scores (bits per dimension, typicality, the
complexity-corrected score) come from :class:`~galaxysim.flows.ood.LikelihoodScoresMixin`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._training import (
    TorchEstimatorMixin,
    documents_training_parameters,
    torch_seed,
    validation_split,
)
from .._validation import (
    check_bool,
    check_image_shape,
    check_images,
    check_positive_float,
    check_positive_int,
    input_ndim,
    is_image_input,
)
from ._networks import FlowFactory, empty_network, image_network, jammy_network, zuko_network
from .base import DensityFlow
from .jammy import jammy_layers
from .ood import LikelihoodScoresMixin
from .vector import VECTOR_FLOWS

__all__ = ["FlowDensityEstimator"]

_BACKENDS = ("torch", "jammy")


def _training_loss(module: DensityFlow, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    # fit_module's loss signature; each flow knows its own loss.
    return module.training_loss(batch)


@documents_training_parameters
class FlowDensityEstimator(
    LikelihoodScoresMixin,
    TorchEstimatorMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    DensityMixin,
    BaseEstimator,
):
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
    [training parameters]

    Attributes
    ----------
    flow_ : DensityFlow
        The trained flow network (:class:`VectorFlow`,
        :class:`MultiscaleImageFlow` or :class:`JammyFlow`).
    history_ : TrainingHistory
        Losses per epoch (the flow's ``training_loss``): mean negative
        log-likelihood in nats per sample (vectors) or bits per dimension
        (images).
    heldout_log_likelihood_ : ndarray of shape (n_heldout,)
        Log-likelihoods of the validation samples held out during training
        (of the training samples when ``validation_fraction=0``), the
        reference for :meth:`typicality`.
    image_shape_ : tuple of int or None
        ``(H, W, C)`` when fitted on images, else None.
    n_features_in_ : int
        Features per sample (``H*W*C`` for images).
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Column names, when fitted on a DataFrame with string column names.
    device_ : torch.device
        Where the flow lives.

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Notes
    -----
    :meth:`transform` names its columns ``flowdensityestimator0``,
    ``flowdensityestimator1``, ... (:meth:`get_feature_names_out`, as
    scikit-learn names the output of PCA), so that a pipeline with
    ``set_output(transform="pandas")`` returns a DataFrame.

    The validation samples held out by ``validation_fraction`` also serve as
    the reference of :meth:`typicality`. ``random_state`` seeds the
    dequantization noise of image training too.

    Vector flows are trained in float32 and then kept in float64, so that
    scores are float64 and depend on how samples are batched only at float64
    rounding (about 1e-14). The
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
        *,
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
        weight_decay: float = 0.0,
        max_grad_norm: float | None = None,
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
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> torch.device:
        """Check every parameter; return the device to train on."""
        if not isinstance(self.backend, str) or self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}.")
        if not isinstance(self.flow, str):
            raise TypeError(f"flow must be a string, got {type(self.flow).__name__}.")
        check_positive_int(self.n_layers, "n_layers")
        check_positive_int(self.n_levels, "n_levels")
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
        check_bool(self.standardize, "standardize")
        if self.image_shape is not None:
            check_image_shape(self.image_shape)
        return self._check_training_params()

    def _flow_factory(self, images: bool) -> FlowFactory:
        """The network factory for this kind of input, after checking ``flow`` and ``backend``."""
        if images:
            if self.backend != "torch":
                raise ValueError(
                    f'backend="{self.backend}" handles vectors only; images need backend="torch".'
                )
            if self.flow != "affine":
                raise ValueError(
                    f'The image flow uses affine coupling: flow must be "affine" for images, '
                    f"got {self.flow!r}."
                )
            return image_network
        if self.backend == "jammy":
            jammy_layers(self.flow, self.n_layers)
            return jammy_network
        if self.flow not in VECTOR_FLOWS:
            raise ValueError(f"flow must be one of {VECTOR_FLOWS}, got {self.flow!r}.")
        return zuko_network

    # --------------------------------------------------------------------- fit

    def fit(self, X: Any, y: Any = None) -> FlowDensityEstimator:
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
        device = self._check_params()
        images = is_image_input(X, self.image_shape)
        build = self._flow_factory(images)
        data = self._training_data(X, images)
        rng = check_random_state(self.random_state)
        seed = torch_seed(rng)
        train_idx, val_idx = (
            np.sort(part)
            for part in validation_split(len(data), self.validation_fraction, rng.permutation)
        )
        module, tensor = build(self, data, train_idx, rng, seed)
        held_out = len(val_idx) > 0
        self.history_ = self._fit_module(
            module,
            tensor[train_idx],
            _training_loss,
            random_state=rng,
            device=device,
            validation_fraction=0.0,
            early_stopping=bool(self.early_stopping) and held_out,
            validation_data=tensor[val_idx] if held_out else None,
            augment=module.augmentation,
        )
        self.device_ = device
        self.flow_ = module.for_inference()
        self.heldout_log_likelihood_ = self._log_likelihood(
            data[val_idx if held_out else train_idx]
        )
        return self

    def _empty_module(self, name: str) -> DensityFlow:
        """The untrained network of fitted attribute ``name``, for loading saved weights."""
        if name != "flow_":
            raise KeyError(f"{type(self).__name__} has no network called {name!r}.")
        return empty_network(self)

    def _training_data(self, X: Any, images: bool) -> np.ndarray:
        """Validate the training input: float64 vectors or float32 (n, H, W, C) images."""
        if not images:
            # Sets n_features_in_ (and feature_names_in_) as every sklearn estimator does.
            X = validate_data(self, X, reset=True, dtype=[np.float64, np.float32])
            self.image_shape_, self._input_ndim = None, 2
            return X.astype(np.float64, copy=False)
        data = check_images(X, image_shape=self.image_shape, name="X")
        self._input_ndim = input_ndim(X)
        self.image_shape_ = tuple(int(s) for s in data.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return data

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
        """Apply ``function`` to ``data`` batch by batch, in the flow's precision and place."""
        dtype = self.flow_.dtype
        outputs = []
        with torch.no_grad():
            for start in range(0, data.shape[0], self.batch_size):
                batch = torch.tensor(data[start : start + self.batch_size], dtype=dtype)
                outputs.append(function(batch.to(self.device_)).cpu().numpy())
        return np.concatenate(outputs) if outputs else np.empty((0,))

    def _log_likelihood(self, data: np.ndarray) -> np.ndarray:
        return self._batched(self.flow_.log_likelihood, data).astype(np.float64)

    def _shape_like_training(self, data: np.ndarray) -> np.ndarray:
        """Give generated data the layout of the training input (flat, gray or (n, H, W, C))."""
        if self._input_ndim == 2:
            return data.reshape(data.shape[0], -1)
        if self._input_ndim == 3 and data.shape[-1] == 1:
            return data[..., 0]
        return data

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

    # ------------------------------------------------------------ latent space

    @property
    def _n_features_out(self) -> int:
        """Number of latent dimensions, for ``get_feature_names_out``."""
        return self.n_features_in_

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
        return self._batched(self.flow_.to_latent, data)

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
        return self._shape_like_training(self._batched(self.flow_.from_latent, Z))

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
        check_positive_float(temperature, "temperature")
        generator = torch.Generator().manual_seed(torch_seed(random_state))
        latent = torch.randn(
            n_samples, self.n_features_in_, generator=generator, dtype=self.flow_.dtype
        )
        latent = (latent * temperature).numpy()
        return self._shape_like_training(self._batched(self.flow_.sample_from_latent, latent))
