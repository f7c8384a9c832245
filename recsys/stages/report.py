"""Stage ``report``: the run's HTML report (metrics by model, training curves, counts, sample recommendations)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import Settings
from recsys.lake import read_partition
from recsys.stages.validate import GATED_TABLES

BASELINE_LABELS: dict[str, str] = {"item_mean": "item mean", "global_mean": "global mean", "popularity": "popularity"}
"""How the report names the baselines (their metric prefixes)."""


def write_report(
    settings: Settings,
    run_date: str,
    run_id: str,
    models: dict[str, str | None],
    summary: dict[str, Any],
    serving: dict[str, float] | None = None,
) -> str:
    """The run's HTML report: evaluation metrics, training curves, counts, sample recommendations.

    Args:
        settings: The run's settings.
        run_date: ``YYYY-MM-DD`` of the lake partitions.
        run_id: The run's id.
        models: ``{model name: model folder or None}`` of the run's training tasks (``None``: skipped).
        summary: The publish task's output (counts, model version).
        serving: The recommend stage's metrics (sources, policy, index, retrieval-size experiment).

    Returns:
        The report's path.
    """
    from recsys.evaluation.report import write_run_report
    from recsys.models.artifacts import read_params
    from recsys.models.registry import specs

    labels = {model.name: model.label for model in specs()}
    own_validation = {model.name for model in specs() if model.own_validation}
    dirs = [d for d in models.values() if d]
    metrics: dict[str, Any] = {}
    curves: dict[str, dict[str, list[float]]] = {}  # one chart per model: its curves per epoch
    for d in dirs:
        history = read_params(Path(d)).get("history", {})  # the curves only: no model is loaded
        metrics.update(json.loads((Path(d) / "metrics.json").read_text()))
        name = Path(d).parent.name
        chart = curves.setdefault(f"{name}: training curves", {"train loss": history.get("loss", [])})
        if history.get("val_rmse"):
            # The run's models check the test split each epoch; those with their own validation split, that.
            chart[f"{'validation' if name in own_validation else 'test'} RMSE"] = history["val_rmse"]
        for key, label in (("val_warm_loss", "validation loss"), ("val_cold_loss", "validation loss, users as new")):
            if history.get(key):  # the softmax two-tower: full-catalogue cross-entropy of held-out pairs
                chart[label] = history[key]
    counts = {}
    for name in (*GATED_TABLES, "similar_items", "recommendations"):
        try:
            counts[name] = len(read_partition(settings.lake, name, run_date))
        except FileNotFoundError:
            continue
    everyone = {**labels, **BASELINE_LABELS}  # models first, then baselines
    bars = {
        "Test RMSE: rating models vs baselines (lower is better)": {
            label: metrics[f"{prefix}_test_rmse"]
            for prefix, label in everyone.items()
            if f"{prefix}_test_rmse" in metrics
        }
    }
    k = int(metrics.get("k", settings.top_k))
    for metric in ("ndcg", "precision", "recall", "map"):
        row = {
            label: metrics[f"{prefix}_{metric}"]
            for prefix, label in everyone.items()
            if f"{prefix}_{metric}" in metrics
        }
        if row:
            bars[f"Test {metric.upper() if metric != 'precision' else 'precision'}@{k} (higher is better)"] = row
    try:
        quarantine = read_partition(settings.lake, "quarantine", run_date)
        by_reason = quarantine["reason_code"].value_counts().sort_index()
        bars["Quarantined input rows by reason"] = {str(k): float(v) for k, v in by_reason.items()}
        metrics["quarantined_rows"] = float(len(quarantine))
    except FileNotFoundError:
        pass
    metrics.update(serving or {})
    bars.update(serving_charts(serving or {}, k))
    samples = sample_recommendations(settings, run_date, n_users=5, top=5)
    path = settings.reports_dir / run_id / "report.html"
    write_run_report(
        path,
        run={
            "run_id": run_id,
            "run_date": run_date,
            "dataset": settings.dataset,
            "status": "published",
            "model_version": summary.get("model_version", f"cf/{run_id}"),
            **{k: v for k, v in summary.items() if isinstance(v, (str, int, float))},
        },
        metrics=metrics,
        table_counts=counts,
        loss_history=curves,
        bar_charts=bars,
        samples=samples,
    )
    return str(path)


NOT_POLICY_DROPS = frozenset({"cut", "short_users"})
"""Counts of the policy step that are not a rule's drops: rows ranked below K, users left short of K."""


def serving_charts(serving: dict[str, float], k: int) -> dict[str, dict[str, float]]:
    """Bar charts of the recommend stage: each source's share, policy drops, the retrieval-size experiment."""
    from recsys.retrieval.sources import SOURCES

    charts: dict[str, dict[str, float]] = {}
    published = {s: serving[f"published_{s}"] for s in SOURCES if serving.get(f"published_{s}")}
    if published:
        charts["Published recommendations by source (an item counts for each source that proposed it)"] = published
    proposed = {s: serving[f"candidates_{s}"] for s in SOURCES if serving.get(f"candidates_{s}")}
    if proposed:
        charts["Candidates proposed by source"] = proposed
    drops = {
        rule: v
        for key, v in serving.items()
        if key.startswith("policy_dropped_") and (rule := key.removeprefix("policy_dropped_")) not in NOT_POLICY_DROPS
    }
    if drops:
        charts["Policy: rows dropped per rule"] = drops
    names = [key.removeprefix("retrieval_").removesuffix(f"_recall_at_{k}") for key in serving]
    sizes = [n for n in names if f"retrieval_{n}_recall_at_{k}" in serving]
    for metric, title in (
        (f"recall_at_{k}", f"Retrieval size: recall@{k} of the final lists vs ranking the whole catalogue"),
        (f"ndcg_at_{k}", f"Retrieval size: test NDCG@{k} of the final lists (full = the whole catalogue)"),
        ("seconds", "Retrieval size: seconds for the experiment's users"),
    ):
        row = {n: serving[f"retrieval_{n}_{metric}"] for n in [*sizes, "full"] if f"retrieval_{n}_{metric}" in serving}
        if row:
            charts[title] = row
    return charts


def sample_recommendations(settings: Settings, run_date: str, *, n_users: int = 3, top: int = 5) -> pd.DataFrame:
    """The top ``top`` recommendations of the first ``n_users`` users, with titles (from the lake)."""
    recs = read_partition(settings.lake, "recommendations", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    first = np.sort(recs["user_idx"].unique())[:n_users]
    out = recs[recs["user_idx"].isin(first) & (recs["rank"] <= top)]
    out = out.merge(users[["user_idx", "user_id"]], on="user_idx").merge(items[["item_idx", "title"]], on="item_idx")
    return out.sort_values(["user_idx", "rank"])[["user_id", "rank", "title", "score", "reason"]].reset_index(drop=True)
