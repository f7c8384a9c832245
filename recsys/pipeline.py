"""The stages of one nightly run, as functions of (settings, run date).

The DAG's tasks and the CLI call these; each reads its inputs from the lake or
the model folder, writes its outputs there, and returns a small JSON-able dict
(paths, counts, metrics) that Airflow passes along as XCom. No stage passes
data through XCom.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import PROJECT_ROOT, CFConfig, Settings, SyntheticConfig, run_id_for
from recsys.lake import partition_dir, read_partition, write_partition
from schemas.tables import SCHEMA_VERSION

logger = logging.getLogger(__name__)

STAGED_TABLES = ("stg_ratings", "stg_items", "stg_users", "stg_splits", "stg_tags", "stg_events", "stg_quarantine")
GATED_TABLES = ("user_map", "item_map", "ratings", "interactions", "items", "users", "feature_vocab",
                "item_features", "user_features", "quarantine")


def git_sha() -> str:
    """The project's git commit, or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def spark_job_args(settings: Settings, run_date: str) -> dict[str, list[str]]:
    """Arguments of the two Spark jobs for one run.

    Returns:
        ``{"ingest": [...], "build_tables": [...]}``, ready for spark-submit.
    """
    common = ["--lake", str(settings.lake), "--run-date", run_date, "--seed", str(settings.seed),
              "--max-bad-fraction", str(settings.max_bad_fraction)]  # fmt: skip
    ingest = ["--dataset", settings.dataset, *common, "--raw-dir", str(settings.raw_dir)]
    if settings.dataset == "synthetic":
        syn = settings.synthetic
        ingest += [
            "--n-users", str(syn.n_users), "--n-items", str(syn.n_items), "--n-groups", str(syn.n_groups),
            "--mean-ratings-per-user", str(syn.mean_ratings_per_user),
            "--min-ratings-per-user", str(syn.min_ratings_per_user),
        ]  # fmt: skip
    else:
        ingest += ["--data-dir", str(settings.source_dir), "--fold", settings.fold]
    build = [
        *common, "--split", settings.split, "--test-fraction", str(settings.test_fraction),
        "--like-threshold", str(settings.like_threshold),
        "--positive-events", ",".join(settings.positive_events),
        "--exposure-events", ",".join(settings.exposure_events),
        "--watch-event", settings.watch_event, "--min-watch-seconds", str(settings.min_watch_seconds),
    ]  # fmt: skip
    return {"ingest": ingest, "build_tables": build}


def validate(settings: Settings, run_date: str) -> dict[str, Any]:
    """Run the validation gate on the run date's tables.

    Raises:
        ValidationFailed: If any expectation fails (the run stops here).
    """
    from recsys.validation.drift import DriftTolerances, drift_expectations, previous_stats
    from recsys.validation.gate import run_gate

    frames = {name: read_partition(settings.lake, name, run_date) for name in GATED_TABLES}
    for name in STAGED_TABLES:  # the staged tables the source produced
        if partition_dir(settings.lake, name, run_date).exists():
            frames[name] = read_partition(settings.lake, name, run_date)
    drift: dict[str, list[Any]] = {}
    previous = previous_stats(settings.lake, run_date) if settings.drift_checks else None
    if previous is not None:
        tol = DriftTolerances(rows=settings.drift_rows, distinct=settings.drift_rows,
                              rating_mean=settings.drift_rating_mean)  # fmt: skip
        drift = drift_expectations(previous[1], tol)
        logger.info("drift checks against the successful run of %s", previous[0])
    report = run_gate(frames, extra=drift)
    return {"rows": report.rows, "expectations": sum(report.checked.values()),
            "drift_baseline": previous[0] if previous else None}  # fmt: skip


def _model_dir(settings: Settings, name: str, run_id: str) -> Path:
    return settings.models_dir / name / run_id


def train_cf(settings: Settings, run_date: str, run_id: str, *, progress: bool = False) -> dict[str, Any]:
    """Train collaborative filtering on the train split and evaluate it on the test split.

    Writes ``models/<dataset>/cf/<run_id>/`` with ``factors.npz``, ``params.json``,
    ``metrics.json`` and ``manifest.json``.

    Returns:
        ``{"model_dir": ..., "metrics": {...}}``.
    """
    from recsys.models.baselines import GlobalMean, ItemMean
    from recsys.models.cf import CFParams, fit_cf, rmse

    start = time.monotonic()
    # Sorted, so training does not depend on the order Spark happened to write rows in.
    ratings = read_partition(settings.lake, "ratings", run_date).sort_values(["user_idx", "item_idx"], kind="stable")
    n_users = int(read_partition(settings.lake, "user_map", run_date)["user_idx"].max()) + 1
    n_items = int(read_partition(settings.lake, "item_map", run_date)["item_idx"].max()) + 1
    train = ratings[ratings["split"] == "train"]
    test = ratings[ratings["split"] == "test"]
    tu, ti, ty = (train[c].to_numpy() for c in ("user_idx", "item_idx", "rating"))
    vu, vi, vy = (test[c].to_numpy() for c in ("user_idx", "item_idx", "rating"))
    params = CFParams(**settings.cf.model_dump(), seed=settings.seed)
    model = fit_cf(tu, ti, ty, n_users, n_items, params, validation=(vu, vi, vy) if len(test) else None,
                   progress=progress)  # fmt: skip
    metrics: dict[str, float] = {
        "cf_train_rmse": rmse(model.predict(tu, ti), ty),
        "n_train": float(len(train)),
        "n_test": float(len(test)),
        "cf_fit_seconds": time.monotonic() - start,
    }
    if len(test):
        metrics["cf_test_rmse"] = rmse(model.predict(vu, vi), vy)
        for name, base in (("item_mean", ItemMean()), ("global_mean", GlobalMean())):
            metrics[f"{name}_test_rmse"] = rmse(base.fit(tu, ti, ty, n_users, n_items).predict(vu, vi), vy)
    out = model.save(_model_dir(settings, "cf", run_id))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    manifest = {
        "model": "cf",
        "run_id": run_id,
        "run_date": run_date,
        "dataset": settings.dataset,
        "git_sha": git_sha(),
        "schema_version": SCHEMA_VERSION,
        "params": asdict(params),
        "data": {"ratings_partition": f"ratings/run_date={run_date}", "n_users": n_users, "n_items": n_items,
                 "n_train": len(train), "n_test": len(test)},  # fmt: skip
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    logger.info("cf metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return {"model_dir": str(out), "metrics": metrics}


def build_similar_items(settings: Settings, run_date: str, model_dir: str) -> dict[str, Any]:
    """Exact nearest items of every item by CF item vectors; writes ``similar_items``."""
    from recsys.models.cf import CFModel
    from recsys.retrieval.similar import similar_items

    model = CFModel.load(Path(model_dir))
    items = read_partition(settings.lake, "items", run_date)
    sim = similar_items(model.x, settings.n_neighbors, source="cf")
    sim = sim[sim["item_idx"].isin(items["item_idx"]) & sim["neighbor_idx"].isin(items["item_idx"])]
    path = write_partition(sim, settings.lake, "similar_items", run_date)
    return {"path": str(path), "rows": len(sim)}


def recommend(settings: Settings, run_date: str, model_dir: str) -> dict[str, Any]:
    """Candidates for every user, ranked by CF; writes ``recommendations``."""
    from recsys.models.baselines import Popularity
    from recsys.models.cf import CFModel
    from recsys.ranking.rank import rank_candidates
    from recsys.retrieval.candidates import build_candidates
    from recsys.retrieval.similar import neighbor_matrix

    model = CFModel.load(Path(model_dir))
    ratings = read_partition(settings.lake, "ratings", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    sim = read_partition(settings.lake, "similar_items", run_date)
    n_items = model.n_items
    train = ratings[ratings["split"] == "train"]
    popular = Popularity().fit(train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), train["rating"].to_numpy(),
                               model.n_users, n_items).ranking()  # fmt: skip
    popular = popular[np.isin(popular, items["item_idx"].to_numpy())]
    cand = build_candidates(
        users["user_idx"].to_numpy(),
        ratings[["user_idx", "item_idx", "ts"]],
        neighbor_matrix(sim[sim["source"] == "cf"], n_items, settings.n_neighbors),
        popular,
        n_recent=settings.n_recent,
        n_popular=settings.n_popular,
    )
    titles = dict(zip(items["item_idx"].astype(int), items["title"], strict=True))
    recs = rank_candidates(cand, model.predict, top_k=settings.top_k, titles=titles)
    path = write_partition(recs, settings.lake, "recommendations", run_date)
    return {"path": str(path), "rows": len(recs), "users": int(recs["user_idx"].nunique()),
            "candidates_per_user": len(cand) / max(len(users), 1)}  # fmt: skip


def publish(settings: Settings, run_date: str, run_id: str, metrics: dict[str, Any], generated_at: str) -> dict[str, Any]:
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
        model_version=f"cf/{run_id}",
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

    save_stats(settings.lake, run_date, table_stats({n: read_partition(settings.lake, n, run_date)
                                                     for n in GATED_TABLES}))  # fmt: skip
    logger.info("published run %s: %d recommendations for %d users", run_id, len(recs_out), users.shape[0])
    return {"run_id": run_id, "recommendations": len(recs_out), "users": int(users.shape[0]),
            "similar_items": len(sim_out), "audit_ok": bool(report.ok)}  # fmt: skip


def write_report(settings: Settings, run_date: str, run_id: str, model_dir: str, summary: dict[str, Any]) -> str:
    """The run's HTML report: metrics, training curves, counts, sample recommendations."""
    from recsys.evaluation.report import write_run_report
    from recsys.models.cf import CFModel

    model = CFModel.load(Path(model_dir))
    metrics = json.loads((Path(model_dir) / "metrics.json").read_text())
    counts = {}
    for name in (*GATED_TABLES, "similar_items", "recommendations"):
        try:
            counts[name] = len(read_partition(settings.lake, name, run_date))
        except FileNotFoundError:
            continue
    curves = {"train loss (J / n)": model.history.get("loss", [])}
    if model.history.get("val_rmse"):
        curves["test RMSE"] = model.history["val_rmse"]
    bars = {
        "Test RMSE: CF vs baselines (lower is better)": {
            label: metrics[key]
            for label, key in (("CF", "cf_test_rmse"), ("item mean", "item_mean_test_rmse"),
                               ("global mean", "global_mean_test_rmse"))  # fmt: skip
            if key in metrics
        }
    }
    try:
        quarantine = read_partition(settings.lake, "quarantine", run_date)
        by_reason = quarantine["reason_code"].value_counts().sort_index()
        bars["Quarantined input rows by reason"] = {str(k): float(v) for k, v in by_reason.items()}
        metrics["quarantined_rows"] = float(len(quarantine))
    except FileNotFoundError:
        pass
    samples = sample_recommendations(settings, run_date, n_users=5, top=5)
    path = settings.reports_dir / run_id / "report.html"
    write_run_report(
        path,
        run={"run_id": run_id, "run_date": run_date, "dataset": settings.dataset, "status": "published",
             "model_version": f"cf/{run_id}", **{k: v for k, v in summary.items() if isinstance(v, (str, int, float))}},  # fmt: skip
        metrics=metrics,
        table_counts=counts,
        loss_history=curves,
        bar_charts=bars,
        samples=samples,
    )
    return str(path)


def sample_recommendations(settings: Settings, run_date: str, *, n_users: int = 3, top: int = 5) -> pd.DataFrame:
    """The top ``top`` recommendations of the first ``n_users`` users, with titles (from the lake)."""
    recs = read_partition(settings.lake, "recommendations", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    first = np.sort(recs["user_idx"].unique())[:n_users]
    out = recs[recs["user_idx"].isin(first) & (recs["rank"] <= top)]
    out = out.merge(users[["user_idx", "user_id"]], on="user_idx").merge(items[["item_idx", "title"]], on="item_idx")
    return out.sort_values(["user_idx", "rank"])[["user_id", "rank", "title", "score", "reason"]].reset_index(drop=True)


def resolve_run(overrides: dict[str, Any], run_date: str | None, fallback_date: datetime | None) -> dict[str, Any]:
    """Fix the run's date, id and settings once; every task receives the result.

    Args:
        overrides: Settings given as DAG params (``None`` / empty values are ignored);
            ``synthetic_<field>`` and ``cf_<field>`` set the nested configs.
        run_date: The ``run_date`` param, ``YYYY-MM-DD``, or empty.
        fallback_date: The run's logical date or, failing that, its ``run_after``.

    Returns:
        JSON-able dict: run_date, run_id, settings overrides, Spark job arguments, generated_at.
    """
    if run_date:
        date = datetime.strptime(run_date, "%Y-%m-%d").date().isoformat()
    elif fallback_date is not None:
        date = fallback_date.astimezone(UTC).date().isoformat()
    else:
        raise ValueError("no run date: give the run_date param or a logical date")
    clean: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"synthetic": {}, "cf": {}}
    for key, value in overrides.items():
        if value in (None, ""):
            continue
        prefix, _, rest = key.partition("_")
        if prefix in nested and rest:
            nested[prefix][rest] = value
        else:
            clean[key] = value
    if nested["synthetic"]:
        clean["synthetic"] = SyntheticConfig(**nested["synthetic"])
    if nested["cf"]:
        clean["cf"] = CFConfig(**nested["cf"])
    settings = Settings(**clean)
    run_id = run_id_for(settings.dataset, date)
    return {
        "run_date": date,
        "run_id": run_id,
        "settings": json.loads(settings.model_dump_json()),
        "spark_args": spark_job_args(settings, date),
        "generated_at": f"{date}T00:00:00+00:00",
    }
