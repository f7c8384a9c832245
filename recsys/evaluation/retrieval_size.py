"""The retrieval-size experiment: how many candidates to retrieve (more is better and slower).

For a seeded sample of warm users with test ratings, and for each size ``N`` of
``retrieval.experiment_sizes``, every source's quota is scaled so a user gets about ``N``
candidates; the served pipeline (sources, the serving model, the policy) then gives each
user's final top K. Measured per size, with the training split as the only history:

* ``recall@K`` of the final top K against ranking the whole (allowed) catalogue with the same model;
* the test-split NDCG@K of the final lists;
* the stage's seconds for the sample.

The run's own quotas (``served``) and the candidate set of the two original sources alone
(neighbours of recent items and popular items: ``two_sources``) are measured the same way,
as is the whole catalogue (``full``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import Settings
from recsys.evaluation.metrics import ndcg_per_user, relevant_lists
from recsys.ranking.rank import Finish, scored
from recsys.retrieval.candidates import gather
from recsys.retrieval.source_inputs import recent_lists
from recsys.retrieval.sources import Quotas, SourceData
from recsys.retrieval.topk import top_k_items
from recsys.retrieval.user_items import UserItems

logger = logging.getLogger(__name__)


def lists_of(top: pd.DataFrame, users: np.ndarray, k: int) -> np.ndarray:
    """``[len(users), k]`` item lists from ranked rows (user_idx, rank, item_idx); -1 pads."""
    out = np.full((users.size, k), -1, dtype=np.int64)
    at = {int(u): j for j, u in enumerate(users)}
    rows = top[top["rank"] <= k]
    r = np.array([at[int(u)] for u in rows["user_idx"]], dtype=np.int64)
    out[r, rows["rank"].to_numpy() - 1] = rows["item_idx"].to_numpy()
    return out


def overlap(lists: np.ndarray, reference: np.ndarray) -> float:
    """Mean share of each reference list's items (``-1`` pads ignored) that ``lists`` holds: recall@k."""
    shares = []
    for a, b in zip(lists, reference, strict=True):
        ref = b[b >= 0]
        if ref.size:
            shares.append(np.isin(ref, a[a >= 0]).mean())
    return float(np.mean(shares)) if shares else float("nan")


def _measure(data: SourceData, users: np.ndarray, model: Any, finish: Finish, k: int) -> tuple[np.ndarray, float, int]:
    start = time.monotonic()
    cand = gather(data, users)
    top, _ = finish(scored(cand, model.predict))
    return lists_of(top, users, k), time.monotonic() - start, len(cand)


def run_experiment(
    settings: Settings,
    tables: Any,
    model: Any,
    data: SourceData,
    finish: Finish,
    cold: np.ndarray,
    everyone: np.ndarray,
    allowed: np.ndarray,
    n_users: int,
    n_items: int,
) -> dict[str, float]:
    """The experiment's figures as flat run metrics (``retrieval_<size>_recall_at_<k>``, ``..._ndcg_at_<k>``,
    ``..._seconds``, ``..._candidates_per_user``; the same for ``served``, ``two_sources`` and ``full``).

    Args:
        settings: The run's settings (sizes, sample, seed, top K).
        tables: The run's :class:`~recsys.stages.serving_inputs.ServingTables`.
        model: The serving model of warm users.
        data: The warm users' source data (its history is replaced by the training split here).
        finish: The policy step of the run.
        cold: ``[len(everyone)]`` bool, cold-start users (not sampled).
        everyone: ``[n]`` every user served.
        allowed: ``[n_items]`` catalogue items the policy allows (the whole catalogue ranked against).
        n_users: Users of the index space.
        n_items: Items of the index space.

    Returns:
        Empty when the run has no test split.
    """
    ratings = tables.ratings
    test = ratings[ratings["split"] == "test"]
    train = ratings[ratings["split"] == "train"]
    if not len(test):
        return {}
    k = settings.top_k
    r = settings.retrieval
    warm = everyone[~cold]
    pool = np.intersect1d(warm, test["user_idx"].unique())
    rng = np.random.default_rng(settings.seed)
    users = np.sort(rng.choice(pool, size=min(r.experiment_users, pool.size), replace=False)) if pool.size else pool
    if not users.size:
        return {}
    tu, ti = train["user_idx"].to_numpy(np.int64), train["item_idx"].to_numpy(np.int64)
    seen = UserItems.from_pairs(tu, ti, n_users)
    measured = dataclasses.replace(
        data, seen=seen, recent=recent_lists(tu, ti, train["ts"].to_numpy(), n_users, settings.n_recent)
    )
    relevant_all = relevant_lists(test["user_idx"].to_numpy(), test["item_idx"].to_numpy(), n_users)
    relevant = [relevant_all[u] for u in users]

    def ndcg(lists: np.ndarray) -> float:
        return float(np.nanmean(ndcg_per_user(lists, relevant, k=k, n_items=n_items)))

    start = time.monotonic()
    scores = np.full((users.size, n_items), -np.inf)
    model_scores = np.asarray(model.score_users(users), dtype=np.float64)[:, :n_items]
    scores[:, : model_scores.shape[1]] = model_scores
    scores[:, ~allowed] = -np.inf
    row, item, _ = seen.rows(users)
    exclude = [item[row == j] for j in range(users.size)]
    full = top_k_items(scores, k, exclude=exclude)
    out: dict[str, float] = {
        f"retrieval_full_ndcg_at_{k}": ndcg(full),
        "retrieval_full_seconds": time.monotonic() - start,
        "retrieval_experiment_users": float(users.size),
    }
    base = data.quotas
    runs: list[tuple[str, SourceData]] = [
        (str(size), dataclasses.replace(measured, quotas=base.scaled(size / max(base.total, 1))))
        for size in r.experiment_sizes
    ]
    runs.append(("served", measured))
    two = Quotas(similar=settings.n_recent * settings.n_neighbors, genre=0, segment=0, embedding=0, new=0)
    runs.append(("two_sources", dataclasses.replace(measured, quotas=dataclasses.replace(two, popular=base.popular))))
    for name, d in runs:
        lists, seconds, n_cand = _measure(d, users, model, finish, k)
        out[f"retrieval_{name}_recall_at_{k}"] = overlap(lists, full)
        out[f"retrieval_{name}_ndcg_at_{k}"] = ndcg(lists)
        out[f"retrieval_{name}_seconds"] = seconds
        out[f"retrieval_{name}_candidates_per_user"] = n_cand / users.size
        logger.info(
            "retrieval-size experiment: %s: recall@%d %.3f, NDCG@%d %.4f, %.1f candidates per user, %.2f s",
            name,
            k,
            out[f"retrieval_{name}_recall_at_{k}"],
            k,
            out[f"retrieval_{name}_ndcg_at_{k}"],
            n_cand / users.size,
            seconds,
        )
    return out
