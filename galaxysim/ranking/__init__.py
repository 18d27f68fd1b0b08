"""Similarity ranking: :class:`SimilarityRanker` and its answer, :class:`Ranking`.

* :mod:`~galaxysim.ranking.ranker`: the estimator that composes an embedder,
  a density and a neighbour search.
* :mod:`~galaxysim.ranking.result`: :class:`Ranking`, what people read, plot and save.
"""

from .ranker import SimilarityRanker
from .result import Ranking

__all__ = ["Ranking", "SimilarityRanker"]
