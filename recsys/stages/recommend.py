"""Stage ``recommend``: candidates for every user, ranked by the model that serves them (the serving rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import Settings
from recsys.lake import read_partition, write_partition
from recsys.models.cold_start import cold_start_model, segment_weight
from recsys.stages.inputs import segment_popularity


def serving_model_dir(settings: Settings, models: dict[str, str | None]) -> str:
    """The folder of the model that ranks warm users.

    ``ranking_model`` when the run trained it; else the rating model (AutoRec when it was
    trained), else the explicit CF.
    """
    for name in (settings.ranking_model, settings.rating_model, "cf"):
        if models.get(name):
            return str(models[name])
    raise ValueError(f"no trained model to serve among {sorted(models)}")


def model_version(model_dir: str) -> str:
    """``<model>/<run_id>`` of a model folder (what the store records)."""
    p = Path(model_dir)
    return f"{p.parent.name}/{p.name}"


COLD_START_NOTE = " (new here: chosen by your profile)"
"""Appended to the reason of every recommendation the two-tower model ranked (the serving rule, visible)."""


def recommend(settings: Settings, run_date: str, models: dict[str, str | None]) -> dict[str, Any]:
    """Candidates for every user, ranked by the model that serves them; writes ``recommendations``.

    Serving rule (per user):

    * a **cold-start user** (at most ``cold_start_max_ratings`` training ratings, none
      included) is served by the two-tower model when it was trained (``tower_dir``):
      candidates are the two-tower neighbours of their recent items, the items their
      ranking model puts first (from their profile embedding, which reaches items nobody
      has rated yet) and popular items, ranked by the two-tower model blended with
      popularity in their segment for users without ratings and with popularity for users
      with a few (:func:`cold_start_model`); each reason ends with :data:`COLD_START_NOTE`;
    * everybody else: CF neighbours of their recent items and popular items, ranked by
      the serving model (:func:`serving_model_dir`).

    Args:
        settings: The run's settings.
        run_date: ``YYYY-MM-DD`` of the lake partitions.
        models: ``{model name: model folder or None}`` of the run's training tasks.
    """
    from recsys.models.baselines import Popularity
    from recsys.models.registry import load_model
    from recsys.models.two_tower import TwoTowerModel
    from recsys.ranking.rank import rank_candidates
    from recsys.retrieval.candidates import build_candidates, profile_candidates
    from recsys.retrieval.similar import neighbor_matrix

    serving = serving_model_dir(settings, models)
    tower_dir = models.get(settings.cold_start_model) if settings.cold_start_model != "none" else None
    model = load_model(serving)
    ratings = read_partition(settings.lake, "ratings", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    sim = read_partition(settings.lake, "similar_items", run_date)
    n_items = model.n_items
    train = ratings[ratings["split"] == "train"]
    popularity = Popularity().fit(
        train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), train["rating"].to_numpy(), model.n_users, n_items
    )
    popular = popularity.ranking()
    popular = popular[np.isin(popular, items["item_idx"].to_numpy())]
    everyone = users["user_idx"].to_numpy()
    history = ratings[["user_idx", "item_idx", "ts"]]
    titles = dict(zip(items["item_idx"].astype(int), items["title"], strict=True))
    n_train = np.bincount(train["user_idx"].to_numpy(), minlength=int(everyone.max(initial=-1)) + 1)
    cold = (n_train[everyone] <= settings.cold_start_max_ratings) if tower_dir else np.zeros(everyone.size, bool)
    cand = build_candidates(
        everyone[~cold],
        history,
        neighbor_matrix(sim[sim["source"] == "cf"], n_items, settings.n_neighbors),
        popular,
        n_recent=settings.n_recent,
        n_popular=settings.n_popular,
    )
    frames = [rank_candidates(cand, model.predict, top_k=settings.top_k, titles=titles)]
    n_cand = len(cand)
    if cold.any():
        tower = TwoTowerModel.load(Path(tower_dir), towers=False)  # embeddings only: no TensorFlow
        catalogue = np.zeros(tower.n_items, dtype=bool)
        catalogue[items["item_idx"].to_numpy()] = True
        segment, weight = None, segment_weight(settings.cold_start_segment_weight, tower)
        if weight > 0 and (n_train[everyone[cold]] == 0).any():
            segment = segment_popularity(
                settings,
                run_date,
                train["user_idx"].to_numpy(),
                train["item_idx"].to_numpy(),
                tower.n_users,
                tower.n_items,
            )
        cold_model = cold_start_model(
            tower,
            popularity,
            n_train,
            settings.cold_start_popularity_weight,
            seed=settings.seed,
            segment=segment,
            segment_weight=weight,
        )
        # The items their ranking model puts first (reaching items nobody has rated yet, and their segment's)
        profile = profile_candidates(
            everyone[cold], cold_model.score_users, history, settings.n_popular, catalogue=catalogue
        )
        cold_cand = build_candidates(
            everyone[cold],
            history,
            neighbor_matrix(sim[sim["source"] == "two_tower"], tower.n_items, settings.n_neighbors),
            popular,
            n_recent=settings.n_recent,
            n_popular=settings.n_popular,
            extra=profile,
        )
        cold_recs = rank_candidates(cold_cand, cold_model.predict, top_k=settings.top_k, titles=titles)
        cold_recs["reason"] = cold_recs["reason"] + COLD_START_NOTE
        frames.append(cold_recs)
        n_cand += len(cold_cand)
    recs = pd.concat(frames, ignore_index=True).sort_values(["user_idx", "rank"], kind="stable").reset_index(drop=True)
    path = write_partition(recs, settings.lake, "recommendations", run_date)
    return {
        "path": str(path),
        "rows": len(recs),
        "users": int(recs["user_idx"].nunique()),
        "candidates_per_user": n_cand / max(len(users), 1),
        "cold_start_users": int(cold.sum()),
        "model_version": model_version(serving),
    }
