"""faiss indexes behind the :class:`~recsys.retrieval.index.NeighborIndex` interface.

:class:`FaissFlatIndex` (exact, ``IndexFlatL2`` / ``IndexFlatIP``), :class:`FaissIVFIndex`
(``IndexIVFFlat``: k-means cells, ``nprobe`` of them searched) and :class:`FaissHNSWIndex`
(``IndexHNSWFlat``: a navigable small-world graph). faiss is imported inside the
methods, so importing this module is cheap; faiss runs on at most 2 threads.

What the wrappers add to faiss: ``l2`` vectors are centred on the indexed mean
(translation changes no distance, and float32 keeps its precision under a common
offset); each query fetches ``k + 1`` results when an id is excluded (and a few more
for the flat index), drops the excluded id, re-scores the ids it keeps in float64
from the original vectors and orders them by (value, id). So values are exact float64
distances or inner products, nearest first, ties by the smaller id; slots an
approximate index could not fill are ``-1`` (value ``inf`` for ``l2``, ``-inf`` for ``ip``).
A built wrapper pickles (the faiss index as ``faiss.serialize_index`` bytes), so it can be
shipped to other processes and answers there exactly as here.
"""

from __future__ import annotations

import logging
import math
import os
from abc import abstractmethod
from typing import Any

import numpy as np

from recsys.retrieval.index import (
    Metric,
    NeighborIndex,
    check_exclude,
    check_k,
    check_metric,
    check_vectors,
    exact_values,
    order_nearest,
)

__all__ = ["MAX_THREADS", "FaissFlatIndex", "FaissHNSWIndex", "FaissIVFIndex", "ivf_cells"]

logger = logging.getLogger(__name__)

#: Most threads faiss may use.
MAX_THREADS = 2
#: Training points per IVF cell (k-means on a seeded sample of this many per cell).
IVF_TRAIN_PER_CELL = 64
#: faiss's minimum training points per k-means centroid; ``nlist`` is capped so that it holds.
IVF_MIN_PER_CELL = 39


def _faiss() -> Any:
    """The faiss module, limited to :data:`MAX_THREADS` threads."""
    import faiss

    faiss.omp_set_num_threads(max(1, min(MAX_THREADS, os.cpu_count() or 1)))
    return faiss


def ivf_cells(n: int, nlist: int = 0) -> int:
    """IVF cells for ``n`` vectors: ``nlist``, or about ``4 sqrt(n)`` when 0; at most ``n // 39`` (and >= 1)."""
    want = nlist if nlist > 0 else round(4 * math.sqrt(n))
    return int(max(1, min(want, n // IVF_MIN_PER_CELL)))


class _FaissIndex(NeighborIndex):
    """Shared build/query of the faiss wrappers; subclasses make the faiss index."""

    #: Extra results fetched beyond ``k`` (and the excluded id), re-ranked in float64.
    extra = 0

    def __init__(self, metric: Metric = "l2") -> None:
        self.metric = check_metric(metric)
        self._index: Any = None
        self._v: np.ndarray | None = None

    @abstractmethod
    def _make(self, faiss: Any, x: np.ndarray) -> Any:
        """A faiss index holding the ``[n, d]`` float32 (C-contiguous) vectors ``x``."""

    def _prepare(self, faiss: Any, fetch: int) -> None:
        """Set query-time parameters before a search of ``fetch`` results (HNSW's beam)."""

    def _restore(self, faiss: Any) -> None:
        """Set what a deserialized faiss index does not keep (IVF's ``nprobe``)."""

    def _faiss_metric(self, faiss: Any) -> int:
        return faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def __getstate__(self) -> dict[str, Any]:
        """The pickled state: the wrapper's fields, with the faiss index as ``faiss.serialize_index`` bytes.

        So a built index travels to other processes (e.g. Spark workers, :mod:`recsys.stages.spark_serving`)
        and answers every query as the original does (same index bytes, same parameters).
        """
        state = self.__dict__.copy()
        state.pop("_quantizer", None)  # IVF: serialized inside its index
        index = state.pop("_index")
        state["_index_bytes"] = None if index is None else bytes(_faiss().serialize_index(index))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore :meth:`__getstate__`'s state (``faiss.deserialize_index``)."""
        state = dict(state)
        data = state.pop("_index_bytes", None)
        self.__dict__.update(state)
        self._index = None
        if data is not None:
            faiss = _faiss()
            self._index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
            self._restore(faiss)

    def build(self, vectors: np.ndarray) -> _FaissIndex:
        faiss = _faiss()
        v = check_vectors(vectors).copy()
        self._center = v.mean(axis=0) if self.metric == "l2" and v.shape[0] else np.zeros(v.shape[1])
        self._index = None
        if v.shape[0]:
            self._index = self._make(faiss, np.ascontiguousarray(v - self._center, dtype=np.float32))
        self._v = v
        return self

    def query(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self._v is None:
            raise RuntimeError("build() the index before querying it")
        n, d = self._v.shape
        q = check_vectors(queries, d, "queries")
        check_k(k, n, exclude)
        ex = check_exclude(exclude, q.shape[0], n)
        if q.shape[0] == 0:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float64)
        faiss = _faiss()
        fetch = min(n, k + (1 if ex is not None else 0) + self.extra)
        self._prepare(faiss, fetch)
        _, ids = self._index.search(np.ascontiguousarray(q - self._center, dtype=np.float32), fetch)
        ids = ids.astype(np.int64, copy=False)
        if ex is not None:
            ids[ids == ex[:, None]] = -1
        ids, vals = order_nearest(ids, exact_values(self._v, q, ids, self.metric), self.metric)
        return np.ascontiguousarray(ids[:, :k]), np.ascontiguousarray(vals[:, :k])

    def search_ids(self, queries: np.ndarray, k: int) -> np.ndarray:
        """faiss's own ``k`` nearest (float32 order, no float64 re-check): the serving path."""
        if self._v is None:
            raise RuntimeError("build() the index before querying it")
        n, d = self._v.shape
        q = check_vectors(queries, d, "queries")
        check_k(k, n, None)
        if q.shape[0] == 0:
            return np.empty((0, k), dtype=np.int64)
        faiss = _faiss()
        self._prepare(faiss, k)
        _, ids = self._index.search(np.ascontiguousarray(q - self._center, dtype=np.float32), k)
        return ids.astype(np.int64, copy=False)


class FaissFlatIndex(_FaissIndex):
    """Exact faiss search (``IndexFlatL2`` / ``IndexFlatIP``), re-ranked in float64.

    It fetches :attr:`extra` more results than asked, so a float32 rounding that swaps
    the k-th and the next few items does not change the answer; it equals
    :class:`~recsys.retrieval.index.ExactIndex` unless float32 error exceeds the gap
    between the k-th and the ``(k + extra)``-th value.

    Args:
        metric: ``l2`` or ``ip``.
    """

    extra = 8

    def _make(self, faiss: Any, x: np.ndarray) -> Any:
        index = faiss.IndexFlatL2(x.shape[1]) if self.metric == "l2" else faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        return index


class FaissIVFIndex(_FaissIndex):
    """Approximate search in k-means cells (``IndexIVFFlat``): ``nprobe`` of ``nlist`` cells per query.

    Deterministic: k-means is trained on a seeded sample (``64`` vectors per cell, at most
    ``n``) with faiss's k-means seeded by ``seed`` too.

    Args:
        metric: ``l2`` or ``ip``.
        nlist: Cells; 0 for about ``4 sqrt(n)`` (see :func:`ivf_cells`; capped so every cell trains on 39+ points).
        nprobe: Cells searched per query (capped at the cells).
        seed: Seed of the training sample and of k-means.
    """

    def __init__(self, metric: Metric = "l2", nlist: int = 0, nprobe: int = 32, seed: int = 0) -> None:
        super().__init__(metric)
        if nlist < 0 or nprobe < 1:
            raise ValueError(f"nlist must be >= 0 and nprobe >= 1, got {nlist}, {nprobe}")
        self.nlist = nlist
        self.nprobe = nprobe
        self.seed = seed

    def _make(self, faiss: Any, x: np.ndarray) -> Any:
        n, d = x.shape
        cells = ivf_cells(n, self.nlist)
        self._quantizer = faiss.IndexFlatL2(d) if self.metric == "l2" else faiss.IndexFlatIP(d)  # kept alive here
        index = faiss.IndexIVFFlat(self._quantizer, d, cells, self._faiss_metric(faiss))
        index.cp.seed = int(self.seed)
        index.cp.max_points_per_centroid = IVF_TRAIN_PER_CELL
        size = min(n, IVF_TRAIN_PER_CELL * cells)
        sample = np.sort(np.random.default_rng(self.seed).choice(n, size=size, replace=False))
        index.train(np.ascontiguousarray(x[sample]))
        index.add(x)
        index.nprobe = min(self.nprobe, cells)
        logger.debug("IVF index: %d vectors, %d cells, nprobe %d, trained on %d", n, cells, index.nprobe, size)
        return index

    def _restore(self, faiss: Any) -> None:
        self._index.nprobe = min(self.nprobe, self._index.nlist)


class FaissHNSWIndex(_FaissIndex):
    """Approximate search on an HNSW graph (``IndexHNSWFlat``).

    Args:
        metric: ``l2`` or ``ip``.
        m: Graph degree (links per node and layer).
        ef_construction: Beam width while building.
        ef_search: Beam width while searching (at least the results fetched).
    """

    def __init__(self, metric: Metric = "l2", m: int = 32, ef_construction: int = 80, ef_search: int = 64) -> None:
        super().__init__(metric)
        if m < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError(f"bad HNSW parameters m={m}, ef_construction={ef_construction}, ef_search={ef_search}")
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search

    def _make(self, faiss: Any, x: np.ndarray) -> Any:
        index = faiss.IndexHNSWFlat(x.shape[1], self.m, self._faiss_metric(faiss))
        index.hnsw.efConstruction = self.ef_construction
        index.add(x)
        return index

    def _prepare(self, faiss: Any, fetch: int) -> None:
        self._index.hnsw.efSearch = max(self.ef_search, fetch)
