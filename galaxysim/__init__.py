"""galaxysim: find the galaxies that look most like a given galaxy.

scikit-learn-style estimators built on PyTorch: a normalizing-flow density, a
residual convolutional autoencoder, and a ranker that combines them with
nearest-neighbour search.
"""

from ._version import __version__

__all__ = ["__version__"]
