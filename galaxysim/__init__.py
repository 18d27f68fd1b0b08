"""galaxysim: find the galaxies that look most like a given galaxy.

scikit-learn-style estimators built on PyTorch: a normalizing-flow density
(:class:`FlowDensityEstimator`), a residual convolutional autoencoder
(:class:`AutoencoderEmbedder`), and a ranker that combines them with
nearest-neighbour search (:class:`SimilarityRanker`), whose answer is a
:class:`Ranking`.
"""

from ._version import __version__
from .embedders import AutoencoderEmbedder
from .flows import FlowDensityEstimator
from .images import ImagePreprocessor
from .persistence import load_model, save_model
from .ranking import Ranking, SimilarityRanker

__all__ = [
    "AutoencoderEmbedder",
    "FlowDensityEstimator",
    "ImagePreprocessor",
    "SimilarityRanker",
    "Ranking",
    "load_model",
    "save_model",
    "__version__",
]
