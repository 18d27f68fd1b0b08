"""galaxysim: find the galaxies that look most like a given galaxy.

scikit-learn-style estimators built on PyTorch: a self-supervised contrastive
embedder (:class:`ContrastiveEmbedder`, trained on galaxy augmentations,
:class:`GalaxyAugmentation`), the original study's residual convolutional
autoencoder (:class:`AutoencoderEmbedder`), a normalizing-flow density
(:class:`FlowDensityEstimator`), and a ranker that combines them with
nearest-neighbour search (:class:`SimilarityRanker`), whose answer is a
:class:`Ranking`.
"""

from ._version import __version__
from .embedders import AutoencoderEmbedder, ContrastiveEmbedder, GalaxyAugmentation
from .flows import FlowDensityEstimator
from .images import ImagePreprocessor
from .persistence import load_model, save_model
from .ranking import Ranking, SimilarityRanker

__all__ = [
    "AutoencoderEmbedder",
    "ContrastiveEmbedder",
    "FlowDensityEstimator",
    "GalaxyAugmentation",
    "ImagePreprocessor",
    "Ranking",
    "SimilarityRanker",
    "__version__",
    "load_model",
    "save_model",
]
