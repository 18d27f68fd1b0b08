"""Similarity ranking: :class:`SimilarityRanker`, its search and its answer, :class:`Ranking`.

* :mod:`~galaxysim.ranking.ranker`: the estimator that composes an embedder,
  a density and a neighbour search.
* :mod:`~galaxysim.ranking.search`: :class:`NeighborSearch`, the one way
  neighbours are found (pluggable backends: exact, and faiss's flat, HNSW
  and IVF indices with the ``galaxysim[faiss]`` extra).
* :mod:`~galaxysim.ranking.result`: :class:`Ranking`, what people read, plot and save.
* :mod:`~galaxysim.ranking.diagnostics`: :class:`QueryDiagnostics`, how unusual a
  query is for the collection, and its answer per query, :class:`QueryDiagnosis`.
"""

from .diagnostics import QueryDiagnosis, QueryDiagnostics
from .ranker import SimilarityRanker
from .result import Ranking
from .search import NeighborSearch

__all__ = ["NeighborSearch", "QueryDiagnosis", "QueryDiagnostics", "Ranking", "SimilarityRanker"]
