"""Embedders: scikit-learn transformers that map galaxy images to vectors.

* :mod:`~galaxysim.embedders.contrastive`: :class:`ContrastiveEmbedder`,
  self-supervised (SimCLR or VICReg) on augmented views of the galaxies.
* :mod:`~galaxysim.embedders.contrastive_network`: its network and losses.
* :mod:`~galaxysim.embedders.whitening`: the shrunk PCA whitening of its embedding.
* :mod:`~galaxysim.embedders.dihedral_network`: its group-convolutional network,
  whose embedding ignores flips and quarter turns (``encoder="dihedral"``).
* :mod:`~galaxysim.embedders.augment`: batched galaxy augmentations in torch
  and :class:`GalaxyAugmentation`, which composes them.
* :mod:`~galaxysim.embedders.autoencoder`: :class:`AutoencoderEmbedder`, the
  original study's residual convolutional autoencoder.
* :mod:`~galaxysim.embedders.conv_autoencoder`: its network, a plain torch module.

A new embedder goes here, one module per estimator.
"""

from .augment import GalaxyAugmentation
from .autoencoder import AutoencoderEmbedder
from .contrastive import ContrastiveEmbedder
from .contrastive_network import ContrastiveEncoder
from .conv_autoencoder import ConvAutoencoder
from .dihedral_network import DihedralEncoder

__all__ = [
    "AutoencoderEmbedder",
    "ContrastiveEmbedder",
    "ContrastiveEncoder",
    "ConvAutoencoder",
    "DihedralEncoder",
    "GalaxyAugmentation",
]
