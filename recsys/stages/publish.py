"""Stage ``publish``: write-audit-publish the run's recommendations and similar items to the store.

The store's audit also enforces the run's policy: no recommendation may be a blocked item,
i.e. an id of ``policy.blocked_items`` or an item with a genre of ``policy.blocked_genres``
(:func:`blocked_item_ids`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import pandas as pd

from recsys.config import Settings
from recsys.lake import read_partition
from recsys.stages.validate import GATED_TABLES

logger = logging.getLogger(__name__)


def blocked_item_ids(
    items: pd.DataFrame,
    blocked_items: Collection[str],
    blocked_genres: Collection[str],
    item_tags: pd.DataFrame | None = None,
) -> frozenset[str]:
    """Item ids no recommendation may name: the blocked ids plus the items of a blocked genre or tag.

    Args:
        items: The lake's ``items`` (grain one catalogue item): ``item_id`` and ``genres``
            (a list of genre names per item, or None), and ``item_idx`` when ``item_tags`` is given.
        blocked_items: Blocked item ids, kept as given (also those not in ``items``).
        blocked_genres: Blocked genres or tags; compared with the items' genres and tags by
            :func:`recsys.ranking.policy.genre_key` (trimmed, case-folded), as the ranking does.
        item_tags: Optional ``item_features`` rows (``item_idx``, ``tags``: list of tag names).

    Returns:
        The ids, as strings.
    """
    from recsys.ranking.policy import genre_key

    blocked = {str(i) for i in blocked_items}
    keys = {genre_key(str(g)) for g in blocked_genres}
    if keys and len(items):
        labels = [items[["item_id", "genres"]].rename(columns={"genres": "label"})]
        if item_tags is not None and "tags" in item_tags.columns and len(item_tags):
            tagged = items[["item_idx", "item_id"]].merge(item_tags[["item_idx", "tags"]], on="item_idx")
            labels.append(tagged[["item_id", "tags"]].rename(columns={"tags": "label"}))
        frame = pd.concat(labels, ignore_index=True).explode("label").dropna(subset=["label"])
        hit = frame["label"].astype(str).map(genre_key).isin(keys)
        blocked |= {str(i) for i in frame.loc[hit, "item_id"]}
    return frozenset(blocked)


def publish(
    settings: Settings,
    run_date: str,
    run_id: str,
    metrics: dict[str, Any],
    generated_at: str,
    version: str | None = None,
) -> dict[str, Any]:
    """Write-audit-publish the run's recommendations and similar items to the store.

    Each recommendation carries its candidate ``source`` (from the lake's
    ``recommendations``); the audit checks it and that no item blocked by the run's policy
    (:func:`recsys.ranking.policy.load_policy`, see :func:`blocked_item_ids`) is recommended.

    Raises:
        PublishError: If the audit fails; the previous run stays live.
    """
    from recsys.ranking.policy import load_policy
    from recsys.store import RunInfo, open_store

    ratings = read_partition(settings.lake, "ratings", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    recs = read_partition(settings.lake, "recommendations", run_date)
    sim = read_partition(settings.lake, "similar_items", run_date)
    uid = dict(zip(users["user_idx"], users["user_id"], strict=True))
    iid = dict(zip(items["item_idx"], items["item_id"], strict=True))
    recs_out = pd.DataFrame(
        {
            "user_id": recs["user_idx"].map(uid),
            "rank": recs["rank"],
            "item_id": recs["item_idx"].map(iid),
            "score": recs["score"],
            "reason": recs["reason"],
            "source": recs["source"],
        }
    )
    sim_out = pd.DataFrame(
        {
            "item_id": sim["item_idx"].map(iid),
            "rank": sim["rank"],
            "neighbor_id": sim["neighbor_idx"].map(iid),
            "distance": sim["distance"],
            "source": sim["source"],
        }
    )
    policy = load_policy(settings)
    features = read_partition(settings.lake, "item_features", run_date) if policy.blocked_genres else None
    blocked = blocked_item_ids(items, policy.blocked_items, policy.blocked_genres, features)
    logger.info(
        "publish audit checks %d blocked item ids (%d by id, %d blocked genres or tags)",
        len(blocked),
        len(policy.blocked_items),
        len(policy.blocked_genres),
    )
    run = RunInfo(
        run_id=run_id,
        run_date=run_date,
        dataset=settings.dataset,
        model_version=version or f"cf/{run_id}",
        generated_at=generated_at,
        metrics=metrics,
    )
    with open_store(settings.resolved_store_url) as store:
        report = store.publish(
            run,
            recs_out,
            sim_out,
            expected_users=users["user_id"].tolist(),
            known_items=items["item_id"].tolist(),
            seen=ratings[["user_id", "item_id"]],
            k=settings.top_k,
            blocked_items=blocked,
        )
    from recsys.validation.drift import save_stats, table_stats

    save_stats(
        settings.lake, run_date, table_stats({n: read_partition(settings.lake, n, run_date) for n in GATED_TABLES})
    )
    logger.info("published run %s: %d recommendations for %d users", run_id, len(recs_out), users.shape[0])
    return {
        "run_id": run_id,
        "recommendations": len(recs_out),
        "users": int(users.shape[0]),
        "similar_items": len(sim_out),
        "audit_ok": bool(report.ok),
    }
