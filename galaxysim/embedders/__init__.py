"""Embedders: scikit-learn transformers that map galaxy images to vectors.

* :mod:`~galaxysim.embedders.autoencoder`: :class:`AutoencoderEmbedder`, the
  original study's residual convolutional autoencoder.
* :mod:`~galaxysim.embedders.conv_autoencoder`: its network, a plain torch module.

A new embedder goes here, one module per estimator.
"""

from .autoencoder import AutoencoderEmbedder
from .conv_autoencoder import ConvAutoencoder

__all__ = ["AutoencoderEmbedder", "ConvAutoencoder"]
