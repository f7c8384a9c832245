"""Stage ``publish``: write-audit-publish the run's recommendations and similar items to the store."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from recsys.config import Settings
from recsys.lake import read_partition
from recsys.stages.validate import GATED_TABLES

logger = logging.getLogger(__name__)


def publish(
    settings: Settings,
    run_date: str,
    run_id: str,
    metrics: dict[str, Any],
    generated_at: str,
    version: str | None = None,
) -> dict[str, Any]:
    """Write-audit-publish the run's recommendations and similar items to the store.

    Raises:
        PublishError: If the audit fails; the previous run stays live.
    """
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
