"""Scores built on a density's log-likelihoods: bits/dim and out-of-distribution scores.

A likelihood alone is a poor detector of unfamiliar inputs: flows trained on
one image collection can give *higher* likelihood to another, simpler one
(Nalisnick et al. 2019, arXiv:1810.09136), because the likelihood is
dominated by low-level image statistics such as smoothness. Two corrections:

* typicality: where a log-likelihood falls among the log-likelihoods of
  held-out training data, :func:`galaxysim.metrics.percentile_rank` (both
  very low *and* very high percentiles are unusual);
* :func:`complexity_corrected_score` (Serra et al. 2020, arXiv:1909.11480):
  the negative log-likelihood in bits minus the length of a generic lossless
  compression of the image (PNG), which removes the part of the likelihood
  that only measures how simple the image is.

:class:`LikelihoodScoresMixin` gives a fitted density estimator these scores,
and bits per dimension, as methods.
"""

from __future__ import annotations

import io
from typing import Any, Protocol, cast

import numpy as np
from PIL import Image
from sklearn.utils.validation import check_is_fitted

from ..metrics import bits_per_dim, percentile_rank

__all__ = ["LikelihoodScoresMixin", "complexity_corrected_score", "png_bits"]


def png_bits(images: np.ndarray) -> np.ndarray:
    """Length in bits of each 8-bit image compressed as PNG (zlib level 9).

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)
        Images in [0, 1] (float); they are rounded to 8 bits.

    Returns
    -------
    bits : ndarray of shape (n,), float64
        ``8 *`` the PNG file size in bytes.

    Examples
    --------
    >>> flat = np.zeros((1, 32, 32, 3))
    >>> noisy = np.random.default_rng(0).random((1, 32, 32, 3))
    >>> bool(png_bits(flat)[0] < png_bits(noisy)[0])
    True
    """
    levels = np.rint(np.asarray(images, dtype=np.float64) * 255.0).clip(0, 255).astype(np.uint8)
    bits = np.zeros(levels.shape[0], dtype=np.float64)
    for index, image in enumerate(levels):
        # PNG holds gray, gray+alpha, RGB and RGBA; other channel counts are
        # compressed one gray channel at a time.
        planes = [image] if image.shape[-1] in (2, 3, 4) else np.moveaxis(image, -1, 0)[..., None]
        for plane in planes:
            buffer = io.BytesIO()
            Image.fromarray(plane[..., 0] if plane.shape[-1] == 1 else plane).save(
                buffer, format="PNG", compress_level=9
            )
            bits[index] += 8.0 * buffer.getbuffer().nbytes
    return bits


def complexity_corrected_score(log_likelihood: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Serra et al.'s complexity-corrected out-of-distribution score, in bits.

    ``S(x) = -log2 P(x) - L(x)``, with ``P(x)`` the model's probability of the
    8-bit image and ``L(x)`` its PNG length in bits. A generic compressor is a
    reference model of "any image"; ``S`` is how many more bits the flow needs
    than that reference. **Larger S means more out-of-distribution**; a
    negative S means the flow compresses the image better than PNG does,
    as it should for images like its training data.

    Parameters
    ----------
    log_likelihood : ndarray of shape (n,)
        ``log P(x)`` of each discrete image, in nats.
    images : ndarray of shape (n, H, W, C)
        The same images, in [0, 1].

    Returns
    -------
    score : ndarray of shape (n,), float64
        ``S(x)`` in bits.

    Examples
    --------
    >>> images = np.zeros((1, 8, 8, 1))
    >>> bool(complexity_corrected_score(np.array([0.0]), images)[0] == -png_bits(images)[0])
    True
    """
    negative_log2 = -np.asarray(log_likelihood, dtype=np.float64) / np.log(2.0)
    return negative_log2 - png_bits(images)


class _LikelihoodModel(Protocol):
    """What :class:`LikelihoodScoresMixin` needs of the estimator it is mixed into."""

    @property
    def heldout_log_likelihood_(self) -> np.ndarray: ...

    @property
    def image_shape_(self) -> tuple[int, ...] | None: ...

    @property
    def n_features_in_(self) -> int: ...

    def score_samples(self, X: Any) -> np.ndarray: ...

    def _check_input(self, X: Any) -> np.ndarray: ...

    def _log_likelihood(self, data: np.ndarray) -> np.ndarray: ...


def _require_images(model: _LikelihoodModel, method: str) -> None:
    check_is_fitted(model)
    if model.image_shape_ is None:
        raise ValueError(
            f"{method} is defined for image densities only; this estimator was fitted on "
            f"{model.n_features_in_}-dimensional vectors."
        )


class LikelihoodScoresMixin:
    """Bits per dimension, typicality and the complexity-corrected score of a fitted density.

    For an estimator that provides ``score_samples(X)`` (log-likelihoods in
    nats), the fitted attributes ``heldout_log_likelihood_``,
    ``image_shape_`` (None for vectors) and ``n_features_in_``, and the
    helpers ``_check_input(X)`` (validated samples) and
    ``_log_likelihood(samples)``; :class:`~galaxysim.flows.FlowDensityEstimator`
    is one.
    """

    def bits_per_dim(self: _LikelihoodModel, X: Any) -> np.ndarray:
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
        >>> from galaxysim.flows import FlowDensityEstimator
        >>> X = np.random.default_rng(0).random((16, 8, 8, 1))
        >>> est = FlowDensityEstimator(n_layers=1, n_levels=1, hidden_features=(4,),
        ...                            max_epochs=1, device="cpu", random_state=0).fit(X)
        >>> est.bits_per_dim(X[:2]).shape
        (2,)
        """
        _require_images(self, "bits_per_dim")
        # An array of log-likelihoods gives an array of bits.
        return cast(np.ndarray, bits_per_dim(self.score_samples(X), self.n_features_in_))

    def typicality(self: _LikelihoodModel, X: Any) -> np.ndarray:
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
        >>> from galaxysim.flows import FlowDensityEstimator
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = FlowDensityEstimator(max_epochs=5, hidden_features=(8,), device="cpu",
        ...                            random_state=0).fit(X)
        >>> float(est.typicality(np.array([[30.0, -30.0]]))[0])
        0.0
        """
        return percentile_rank(self.score_samples(X), self.heldout_log_likelihood_)

    def complexity_corrected_score(self: _LikelihoodModel, X: Any) -> np.ndarray:
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
        >>> from galaxysim.flows import FlowDensityEstimator
        >>> X = np.random.default_rng(0).random((16, 8, 8, 1))
        >>> est = FlowDensityEstimator(n_layers=1, n_levels=1, hidden_features=(4,),
        ...                            max_epochs=1, device="cpu", random_state=0).fit(X)
        >>> est.complexity_corrected_score(X[:2]).shape
        (2,)
        """
        _require_images(self, "complexity_corrected_score")
        images = self._check_input(X)
        return complexity_corrected_score(self._log_likelihood(images), images)
