"""Which nearest-neighbour index to use, by catalogue size, with the recall of an approximate one measured.

``auto``: exact faiss flat search up to ``exact_max_items`` vectors, the approximate
``ann`` index above. An approximate index's recall@10 is measured against exact flat
search on a seeded sample of the indexed vectors every time it is built; below
``recall_floor`` a warning is logged and exact flat search is used instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from recsys.config import RetrievalConfig
from recsys.retrieval.faiss_index import FaissFlatIndex, FaissHNSWIndex, FaissIVFIndex
from recsys.retrieval.index import ExactIndex, Metric, NeighborIndex, check_metric

__all__ = ["APPROXIMATE", "build_index", "make_index", "recall_at_k"]

logger = logging.getLogger(__name__)

#: Index kinds whose answers are approximate (their recall is measured).
APPROXIMATE: frozenset[str] = frozenset({"faiss_ivf", "faiss_hnsw"})
#: Cut-off of the measured recall.
RECALL_K = 10


def make_index(kind: str, settings: RetrievalConfig, *, metric: Metric = "l2", seed: int = 0) -> NeighborIndex:
    """An unbuilt index of ``kind`` (``exact``, ``faiss_flat``, ``faiss_ivf``, ``faiss_hnsw``) with the settings'
    parameters."""
    if kind == "exact":
        return ExactIndex(metric)
    if kind == "faiss_flat":
        return FaissFlatIndex(metric)
    if kind == "faiss_ivf":
        return FaissIVFIndex(metric, nlist=settings.ivf_nlist, nprobe=settings.ivf_nprobe, seed=seed)
    if kind == "faiss_hnsw":
        return FaissHNSWIndex(
            metric, m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction, ef_search=settings.hnsw_ef_search
        )
    raise ValueError(f"unknown index kind {kind!r}")


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of ``|found ∩ truth| / |truth|`` (``[m, k]`` ids each; ``-1`` ignored)."""
    hits = [
        len(set(a) & set(b) - {-1}) / max(1, len(set(b) - {-1}))
        for a, b in zip(found.tolist(), truth.tolist(), strict=True)
    ]
    return float(np.mean(hits)) if hits else float("nan")


def build_index(
    vectors: np.ndarray, settings: RetrievalConfig, *, metric: Metric = "l2", seed: int
) -> tuple[NeighborIndex, dict[str, Any]]:
    """Build the index the settings ask for over ``vectors``, falling back to exact search if its recall is short.

    For an approximate index, ``min(recall_queries, n)`` indexed vectors (a sample seeded by
    ``seed``) are queried for their 10 nearest others (themselves excluded) by the index and
    by exact faiss flat search; recall@10 below ``recall_floor`` logs a warning and returns
    the flat index instead.

    Args:
        vectors: ``[n, d]`` item vectors (row = id).
        settings: The run's retrieval settings (``index``, ``exact_max_items``, ``ann``, the
            HNSW/IVF parameters, ``recall_floor``, ``recall_queries``).
        metric: ``l2`` (squared distance) or ``ip`` (inner product).
        seed: Seed of the recall sample and of IVF training.

    Returns:
        ``(built index, info)``; info (JSON-able): ``index`` (kind used), ``requested``
        (``settings.index``), ``metric``, ``n``, ``recall_at_10`` (``None`` for an exact index
        or fewer than 2 vectors), ``fell_back`` and ``build_s`` (seconds: build, recall check
        and any fallback).
    """
    metric = check_metric(metric)
    start = time.perf_counter()
    n = int(np.shape(vectors)[0])
    requested = settings.index
    kind = requested
    if requested == "auto":
        kind = "faiss_flat" if n <= settings.exact_max_items else settings.ann
    index = make_index(kind, settings, metric=metric, seed=seed).build(vectors)
    recall: float | None = None
    fell_back = False
    k = min(RECALL_K, n - 1)
    if kind in APPROXIMATE and k >= 1:
        exact = FaissFlatIndex(metric).build(vectors)
        sample = np.sort(np.random.default_rng(seed).choice(n, size=min(settings.recall_queries, n), replace=False))
        queries = np.asarray(vectors)[sample]
        found, _ = index.query(queries, k, exclude=sample)
        truth, _ = exact.query(queries, k, exclude=sample)
        recall = recall_at_k(found, truth)
        if recall < settings.recall_floor:
            logger.warning(
                "%s index recall@%d = %.4f on %d queries is below the floor %.3f: using exact faiss flat search",
                kind,
                k,
                recall,
                sample.size,
                settings.recall_floor,
            )
            index, kind, fell_back = exact, "faiss_flat", True
    info: dict[str, Any] = {
        "index": kind,
        "requested": requested,
        "metric": metric,
        "n": n,
        "recall_at_10": recall,
        "fell_back": fell_back,
        "build_s": round(time.perf_counter() - start, 3),
    }
    logger.info(
        "index %s (requested %s) over %d vectors in %.2f s; recall@10 %s%s",
        kind,
        requested,
        n,
        info["build_s"],
        "n/a" if recall is None else f"{recall:.4f}",
        " (fell back)" if fell_back else "",
    )
    return index, info
