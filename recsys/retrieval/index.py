"""Nearest-neighbour indexes over item vectors.

:class:`NeighborIndex` is the interface; :class:`ExactIndex` is the exact
reference every approximate index is checked against. Two metrics: ``l2``
(squared Euclidean distance, ascending) and ``ip`` (inner product, descending).
Ties are broken by the smaller id, so results are deterministic. The faiss
indexes are in :mod:`recsys.retrieval.faiss_index`, the choice between them
(by catalogue size, with a measured recall) in :mod:`recsys.retrieval.choice`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, cast

import numpy as np

from recsys.retrieval.topk import first_k_per_row, top_k_candidates, top_k_items

__all__ = [
    "METRICS",
    "ExactIndex",
    "Metric",
    "NeighborIndex",
    "check_exclude",
    "check_k",
    "check_metric",
    "check_vectors",
    "exact_values",
    "order_nearest",
]

Metric = Literal["l2", "ip"]
METRICS: tuple[Metric, ...] = ("l2", "ip")

_U32 = float(np.finfo(np.float32).eps) / 2  # unit round-off
_U64 = float(np.finfo(np.float64).eps) / 2
#: Float64 elements of one chunk of exact re-checks (pairs x d).
_CHUNK = 1 << 22


class NeighborIndex(ABC):
    """Index over ``[n, d]`` vectors answering k-nearest-neighbour queries.

    Attributes:
        metric: ``l2`` (squared Euclidean distance, nearest = smallest) or ``ip``
            (inner product, nearest = largest).
    """

    metric: Metric = "l2"

    @abstractmethod
    def build(self, vectors: np.ndarray) -> NeighborIndex:
        """Index ``[n, d]`` vectors; row ``i`` is id ``i``. Returns ``self``; a rebuild replaces the vectors."""

    @abstractmethod
    def query(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed vectors of each query.

        Args:
            queries: ``[m, d]`` query vectors.
            k: Neighbours per query (at most ``n``, or ``n - 1`` with ``exclude``).
            exclude: Optional ``[m]`` ids, one per query, never returned for it (e.g. the item itself).

        Returns:
            ``(ids [m, k] int64, values [m, k] float64)``, nearest first, ties by the smaller id;
            values are squared distances (``l2``) or inner products (``ip``). An approximate
            index that finds fewer than ``k`` returns id ``-1`` with value ``inf`` (``l2``) or
            ``-inf`` (``ip``) in the remaining slots.

        Raises:
            ValueError: ``k`` out of bounds, or bad shapes.
            RuntimeError: The index was not built.
        """

    def search_ids(self, queries: np.ndarray, k: int) -> np.ndarray:
        """``[m, k]`` int64 ids of each query's ``k`` nearest, nearest first, for serving.

        Like :meth:`query` without the values: an index may skip its exact re-scoring, so two
        items whose values differ by less than float32 rounding may come in either order (the
        faiss indexes do; the default returns :meth:`query`'s ids). ``-1`` pads as in :meth:`query`.
        """
        return self.query(queries, k)[0]


def check_metric(metric: str) -> Metric:
    """``metric`` if it is one of :data:`METRICS`, else ``ValueError``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return cast(Metric, metric)


def check_vectors(vectors: np.ndarray, d: int | None = None, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a float64 ``[n, d]`` array (a copy only if needed); ``ValueError`` if not finite or misshapen."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"{what} must be [n, d], got shape {v.shape}")
    if d is not None and v.shape[1] != d:
        raise ValueError(f"{what} have dimension {v.shape[1]}, the index {d}")
    if not np.isfinite(v).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return v


def check_k(k: int, n: int, exclude: np.ndarray | None) -> None:
    """``ValueError`` unless ``1 <= k <= n`` (``n - 1`` when an id is excluded per query)."""
    limit = n - (1 if exclude is not None else 0)
    if not 1 <= k <= limit:
        raise ValueError(f"k={k} must be between 1 and {limit}")


def check_exclude(exclude: np.ndarray | None, m: int, n: int) -> np.ndarray | None:
    """``exclude`` as ``[m]`` int64 ids in ``[0, n)``, or ``None``."""
    if exclude is None:
        return None
    ex = np.asarray(exclude, dtype=np.int64).ravel()
    if ex.shape != (m,):
        raise ValueError(f"exclude must hold one id per query ({m}), got shape {np.shape(exclude)}")
    if m and (ex.min() < 0 or ex.max() >= n):
        raise ValueError(f"exclude holds ids outside [0, {n})")
    return ex


def _pair_values(vectors: np.ndarray, queries: np.ndarray, q_rows: np.ndarray, ids: np.ndarray, metric: Metric):
    """``[p]`` float64 exact values of the pairs (``queries[q_rows[j]]``, ``vectors[ids[j]]``), in chunks."""
    out = np.empty(ids.shape[0], dtype=np.float64)
    step = max(1, _CHUNK // max(1, vectors.shape[1]))
    for s in range(0, ids.shape[0], step):
        q, v = queries[q_rows[s : s + step]], vectors[ids[s : s + step]]
        if metric == "l2":
            diff = q - v
            out[s : s + step] = (diff * diff).sum(axis=1)
        else:
            out[s : s + step] = np.einsum("pd,pd->p", q, v)
    return out


def exact_values(vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: Metric) -> np.ndarray:
    """``[m, k]`` float64 exact values of ``ids`` (``-1``: ``inf`` for ``l2``, ``-inf`` for ``ip``).

    Args:
        vectors: ``[n, d]`` float64 indexed vectors.
        queries: ``[m, d]`` float64 queries.
        ids: ``[m, k]`` int64 ids per query, ``-1`` for none.
        metric: ``l2`` (squared distance by explicit differences) or ``ip``.
    """
    m, k = ids.shape
    out = np.full((m, k), np.inf if metric == "l2" else -np.inf)
    rows, cols = np.nonzero(ids >= 0)
    out[rows, cols] = _pair_values(vectors, queries, rows, ids[rows, cols], metric)
    return out


def order_nearest(ids: np.ndarray, values: np.ndarray, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    """Each row sorted nearest first, ties by the smaller id, ``-1`` slots last (``[m, k]`` each)."""
    key = values if metric == "l2" else -values
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), key, ids < 0), axis=-1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(values, order, axis=1)


class ExactIndex(NeighborIndex):
    """Exact search: blocked float32 matrix products, a bounded filter, a float64 re-check.

    Method, for a block of queries: one float32 GEMM scores every item (``2 x.y - |y|^2``
    for ``l2``, ``x.y`` for ``ip``, on vectors centred on the indexed mean, which changes
    neither ranking but keeps float32 accurate under a common offset);
    :func:`~recsys.retrieval.topk.top_k_candidates` keeps every item within twice a
    rigorous float32 error bound of the k-th best (bound: ``(d + 8) u |x| (|x| + max |y|)``
    style terms, ``u = 2^-24``, per query); the candidates (about ``k`` a query) are
    re-scored in float64 from the original vectors (squared distance by explicit
    differences, or the dot product) and the ``k`` best are taken by (value, id). Every
    item that float64 ranks in the top ``k`` (or ties with the k-th) is a candidate, so
    the result is the float64 brute-force answer, ties included. Queries whose filter
    keeps too many items (many equal distances) are re-scored over the whole catalogue.

    Memory: about ``block * n`` float32 scores (``block`` is cut so that this stays under
    ``max_block_items``), plus the vectors in float64 and float32.

    Args:
        metric: ``l2`` or ``ip``.
        block: Most queries scored at once.
        max_block_items: Most scores (queries x items) held at once.
    """

    def __init__(self, metric: Metric = "l2", block: int = 256, max_block_items: int = 1 << 25) -> None:
        self.metric = check_metric(metric)
        if block < 1 or max_block_items < 1:
            raise ValueError("block and max_block_items must be >= 1")
        self.block = block
        self.max_block_items = max_block_items
        self._v: np.ndarray | None = None

    def build(self, vectors: np.ndarray) -> ExactIndex:
        v = check_vectors(vectors).copy()
        n, d = v.shape
        self._v = v
        self._center = v.mean(axis=0) if n else np.zeros(d)
        y = v - self._center
        self._y_max = float(np.sqrt((y * y).sum(axis=1).max())) if n else 0.0
        self._v_max = float(np.sqrt((v * v).sum(axis=1).max())) if n else 0.0
        y32 = y.astype(np.float32)
        if self.metric == "l2":  # augmented: [x, 1] @ [2y; -|y|^2] = 2 x.y - |y|^2, one GEMM
            sq = (y32.astype(np.float64) ** 2).sum(axis=1)
            self._w = np.ascontiguousarray(np.vstack([2.0 * y32.T, -sq[None, :].astype(np.float32)]))
        else:
            self._w = np.ascontiguousarray(y32.T)
        return self

    def _slack(self, x: np.ndarray, q: np.ndarray) -> np.ndarray:
        """``[m]`` twice the bound on |float32 score - float64 score| (up to a per-query constant)."""
        d = x.shape[1]
        qn = np.sqrt((q * q).sum(axis=1))
        cn = float(np.sqrt(self._center @ self._center))
        if self.metric == "l2":
            xn = np.sqrt((x * x).sum(axis=1))
            e = 1.01 * (d + 8) * _U32 * (xn + self._y_max) ** 2 + 8 * (d + 2) * _U64 * (qn + self._v_max + cn) ** 2
        else:
            e = 1.01 * (d + 4) * _U32 * qn * self._y_max + 4 * (d + 2) * _U64 * qn * (self._v_max + cn)
        return 2.0 * e

    def query(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self._v is None:
            raise RuntimeError("build() the index before querying it")
        v = self._v
        n, d = v.shape
        q = check_vectors(queries, d, "queries")
        m = q.shape[0]
        check_k(k, n, exclude)
        ex = check_exclude(exclude, m, n)
        ids = np.empty((m, k), dtype=np.int64)
        vals = np.empty((m, k), dtype=np.float64)
        block = max(1, min(self.block, self.max_block_items // max(n, 1)))
        for s in range(0, m, block):
            qb = q[s : s + block]
            ids[s : s + block], vals[s : s + block] = self._query_block(
                qb, k, None if ex is None else ex[s : s + block]
            )
        return ids, vals

    def _query_block(self, q: np.ndarray, k: int, ex: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, values)`` ``[b, k]`` of one block of float64 queries ``q``."""
        v = self._v
        assert v is not None
        b = q.shape[0]
        x = q - self._center if self.metric == "l2" else q
        x32 = x.astype(np.float32)
        if self.metric == "l2":
            x32 = np.hstack([x32, np.ones((b, 1), dtype=np.float32)])
        scores = x32 @ self._w  # [b, n] float32, higher is nearer
        if ex is not None:
            scores[np.arange(b), ex] = -np.inf
        cand = top_k_candidates(scores, k, slack=self._slack(x, q))
        del scores
        exact = _pair_values(v, q, cand.rows, cand.cols, self.metric)
        key = exact if self.metric == "l2" else -exact
        order = np.lexsort((cand.cols, key, cand.rows))
        rows = cand.rows[order]
        ids = first_k_per_row(rows, cand.cols[order], b, k)
        vals = first_k_per_row(rows, exact[order], b, k, fill=np.nan)
        for r in cand.dense:  # many near-equal scores: re-score this query over the whole catalogue
            full = _pair_values(v, q, np.full(v.shape[0], r), np.arange(v.shape[0]), self.metric)
            score = -full if self.metric == "l2" else full.copy()
            if ex is not None:
                score[ex[r]] = -np.inf
            ids[r] = top_k_items(score[None, :], k)[0]
            vals[r] = full[ids[r]]
        if (ids < 0).any():  # cannot happen for finite inputs: every query has k eligible items
            raise RuntimeError("exact search found fewer than k neighbours")
        return ids, vals
