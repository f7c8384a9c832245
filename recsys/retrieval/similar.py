"""Similar items: each item's nearest items by squared distance between item vectors."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import RetrievalConfig
from recsys.retrieval.choice import build_index
from recsys.retrieval.index import NeighborIndex

__all__ = ["neighbor_matrix", "similar_items", "similar_items_with_info"]

logger = logging.getLogger(__name__)

_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("item_idx", np.int32),
    ("rank", np.int32),
    ("neighbor_idx", np.int32),
    ("distance", np.float64),
    ("source", object),
)


def similar_items_with_info(
    vectors: np.ndarray,
    k: int,
    *,
    source: str,
    index: NeighborIndex | None = None,
    retrieval: RetrievalConfig | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Nearest ``k`` items of every item (itself excluded), and how they were found.

    Args:
        vectors: ``[n_items, d]`` item vectors (row = ``item_idx``).
        k: Neighbours per item (capped at ``n_items - 1``).
        source: Name of the vectors (``cf``, ``two_tower``), recorded per row.
        index: An (unbuilt) index to use as it is; by default the index
            :func:`recsys.retrieval.choice.build_index` chooses for ``retrieval``.
        retrieval: Retrieval settings (default: :class:`~recsys.config.RetrievalConfig` defaults).
        seed: The run's seed (recall sample, IVF training).

    Returns:
        ``(similar_items rows, info)``: rows (item_idx, rank 1..k, neighbor_idx, distance,
        source), grain one neighbour of one item; info as
        :func:`~recsys.retrieval.choice.build_index` returns it (``{"index": class name,
        ...}`` for a given ``index``; ``"index": None`` when there is nothing to search), plus
        ``query_s``, the seconds of the all-items query.
    """
    n = vectors.shape[0]
    k = min(k, n - 1)
    info: dict[str, Any] = {"index": None, "requested": None, "metric": "l2", "n": n}
    info |= {"recall_at_10": None, "fell_back": False, "build_s": 0.0, "query_s": 0.0}
    if k <= 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _COLUMNS}), info
    start = time.perf_counter()
    if index is None:
        index, built = build_index(vectors, retrieval or RetrievalConfig(), metric="l2", seed=seed)
        info |= built
    else:
        index.build(vectors)
        info |= {
            "index": type(index).__name__,
            "metric": index.metric,
            "build_s": round(time.perf_counter() - start, 3),
        }
    start = time.perf_counter()
    ids, dists = index.query(vectors, k, exclude=np.arange(n))
    found = ids >= 0  # an approximate index may leave slots empty: those rows are shorter
    item = np.repeat(np.arange(n, dtype=np.int32), k).reshape(n, k)
    rank = np.tile(np.arange(1, k + 1, dtype=np.int32), n).reshape(n, k)
    frame = pd.DataFrame(
        {
            "item_idx": item[found],
            "rank": rank[found],
            "neighbor_idx": ids[found].astype(np.int32),
            "distance": dists[found],
            "source": source,
        }
    )
    info["query_s"] = round(time.perf_counter() - start, 3)
    logger.info(
        "similar items (%s): %d items x %d neighbours, %d rows, index %s", source, n, k, len(frame), info["index"]
    )
    return frame, info


def similar_items(
    vectors: np.ndarray,
    k: int,
    *,
    source: str,
    index: NeighborIndex | None = None,
    retrieval: RetrievalConfig | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Nearest ``k`` items of every item (itself excluded): :func:`similar_items_with_info` without the info.

    Returns:
        ``similar_items`` rows (item_idx, rank 1..k, neighbor_idx, distance, source);
        grain one neighbour of one item.
    """
    return similar_items_with_info(vectors, k, source=source, index=index, retrieval=retrieval, seed=seed)[0]


def neighbor_matrix(similar: pd.DataFrame, n_items: int, k: int) -> np.ndarray:
    """``[n_items, k]`` neighbour ids from ``similar_items`` rows of one source (-1 = none)."""
    out = np.full((n_items, k), -1, dtype=np.int64)
    rows = similar[similar["rank"] <= k]
    out[rows["item_idx"].to_numpy(), rows["rank"].to_numpy() - 1] = rows["neighbor_idx"].to_numpy()
    return out
