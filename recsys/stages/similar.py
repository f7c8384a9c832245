"""Stage ``similar_items``: the nearest items of every item, by CF item vectors and two-tower item embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import Settings
from recsys.lake import read_partition, write_partition


def build_similar_items(settings: Settings, run_date: str, models: dict[str, str | None]) -> dict[str, Any]:
    """Nearest items of every item; writes ``similar_items`` (one list per item and source).

    The index is chosen per source by :func:`recsys.retrieval.choice.build_index` from
    ``settings.retrieval`` (exact faiss flat search up to ``exact_max_items`` items, an
    approximate index above, replaced by exact search if its measured recall@10 is
    below ``recall_floor``).

    Sources: ``cf``, by the explicit CF item vectors, among the items with training
    ratings (CF has learnt nothing about the others); ``two_tower``, by the two-tower
    item embeddings (when the run trained it), among every catalogue item: a new
    item with features but no ratings gets neighbours and appears in theirs.

    Args:
        settings: The run's settings.
        run_date: ``YYYY-MM-DD`` of the lake partitions.
        models: ``{model name: model folder or None}`` of the run's training tasks.

    Returns:
        ``{"path": partition written, "rows": rows, "index": {source: info}}``; info is
        :func:`~recsys.retrieval.similar.similar_items_with_info`'s (kind used, recall@10,
        fallback, seconds), for the run's metrics.
    """
    from recsys.models.cf import CFModel
    from recsys.models.two_tower import TwoTowerModel
    from recsys.retrieval.similar import similar_items_with_info

    model = CFModel.load(Path(str(models["cf"])))
    tower_dir = models.get("two_tower")
    items = read_partition(settings.lake, "items", run_date)
    ratings = read_partition(settings.lake, "ratings", run_date)
    catalogue = np.sort(items["item_idx"].to_numpy())
    rated = np.intersect1d(catalogue, ratings.loc[ratings["split"] == "train", "item_idx"].unique())
    rated = rated[rated < model.n_items]
    parts = [(rated, model.x[rated], "cf")]
    if tower_dir:
        tower = TwoTowerModel.load(Path(tower_dir), towers=False)  # embeddings only: no TensorFlow
        known = catalogue[catalogue < tower.n_items]
        parts.append((known, tower.item_emb[known], "two_tower"))
    frames = []
    index_info: dict[str, dict[str, Any]] = {}
    for ids, vectors, source in parts:
        sim, index_info[source] = similar_items_with_info(
            vectors, settings.n_neighbors, source=source, retrieval=settings.retrieval, seed=settings.seed
        )
        sim["item_idx"] = ids[sim["item_idx"].to_numpy()].astype(np.int32)
        sim["neighbor_idx"] = ids[sim["neighbor_idx"].to_numpy()].astype(np.int32)
        frames.append(sim)
    sim = pd.concat(frames, ignore_index=True)
    path = write_partition(sim, settings.lake, "similar_items", run_date)
    return {"path": str(path), "rows": len(sim), "index": index_info}
