"""Similar items: each item's nearest items by squared distance between item vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.retrieval.index import ExactIndex, NeighborIndex


def similar_items(vectors: np.ndarray, k: int, *, source: str, index: NeighborIndex | None = None) -> pd.DataFrame:
    """Nearest ``k`` items of every item (itself excluded).

    Args:
        vectors: ``[n_items, d]`` item vectors (row = ``item_idx``).
        k: Neighbours per item (capped at ``n_items - 1``).
        source: Name of the vectors (``cf``, ``two_tower``), recorded per row.
        index: Index to use; exact by default.

    Returns:
        ``similar_items`` rows (item_idx, rank 1..k, neighbor_idx, distance, source);
        grain one neighbour of one item.
    """
    n = vectors.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return pd.DataFrame(
            {
                c: pd.Series(dtype=t)
                for c, t in (
                    ("item_idx", np.int32),
                    ("rank", np.int32),
                    ("neighbor_idx", np.int32),
                    ("distance", np.float64),
                    ("source", object),
                )
            }
        )
    index = (index or ExactIndex()).build(vectors)
    ids, dists = index.query(vectors, k, exclude=np.arange(n))
    return pd.DataFrame(
        {
            "item_idx": np.repeat(np.arange(n, dtype=np.int32), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
            "neighbor_idx": ids.ravel().astype(np.int32),
            "distance": dists.ravel(),
            "source": source,
        }
    )


def neighbor_matrix(similar: pd.DataFrame, n_items: int, k: int) -> np.ndarray:
    """``[n_items, k]`` neighbour ids from ``similar_items`` rows of one source (-1 = none)."""
    out = np.full((n_items, k), -1, dtype=np.int64)
    rows = similar[similar["rank"] <= k]
    out[rows["item_idx"].to_numpy(), rows["rank"].to_numpy() - 1] = rows["neighbor_idx"].to_numpy()
    return out
