"""Nearest-neighbour indexes over item vectors.

:class:`NeighborIndex` is the interface; :class:`ExactIndex` is the exact
reference every approximate index is checked against (squared Euclidean
distance, ties broken by the smaller index, so results are deterministic).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class NeighborIndex(ABC):
    """Index over ``[n, d]`` vectors answering k-nearest-neighbour queries by squared L2."""

    @abstractmethod
    def build(self, vectors: np.ndarray) -> NeighborIndex:
        """Index ``[n, d]`` vectors; row ``i`` is id ``i``."""

    @abstractmethod
    def query(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed vectors of each query.

        Args:
            queries: ``[m, d]`` query vectors.
            k: Neighbours per query (at most ``n``, or ``n - 1`` with ``exclude``).
            exclude: Optional ``[m]`` ids, one per query, never returned for it (e.g. the item itself).

        Returns:
            ``(ids [m, k] int64, squared distances [m, k] float64)``, nearest first.
        """


class ExactIndex(NeighborIndex):
    """Brute-force exact search in blocks of queries (memory ``block * n``)."""

    def __init__(self, block: int = 1024) -> None:
        self.block = block
        self._v: np.ndarray | None = None

    def build(self, vectors: np.ndarray) -> ExactIndex:
        self._v = np.asarray(vectors, dtype=np.float64)
        self._sq = np.einsum("nd,nd->n", self._v, self._v)
        return self

    def query(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self._v is None:
            raise RuntimeError("build() the index before querying it")
        q = np.asarray(queries, dtype=np.float64)
        n = self._v.shape[0]
        limit = n - (1 if exclude is not None else 0)
        if not 1 <= k <= limit:
            raise ValueError(f"k={k} must be between 1 and {limit}")
        ids = np.empty((q.shape[0], k), dtype=np.int64)
        dists = np.empty((q.shape[0], k), dtype=np.float64)
        order = np.arange(n)
        for s in range(0, q.shape[0], self.block):
            qb = q[s : s + self.block]
            d = np.einsum("md,md->m", qb, qb)[:, None] - 2.0 * qb @ self._v.T + self._sq[None, :]
            np.maximum(d, 0.0, out=d)
            if exclude is not None:
                d[np.arange(qb.shape[0]), exclude[s : s + self.block]] = np.inf
            for r in range(qb.shape[0]):
                top = np.lexsort((order, d[r]))[:k]
                ids[s + r] = top
                dists[s + r] = d[r, top]
        return ids, dists
