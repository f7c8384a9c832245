"""Stage ``resolve``: fix the run's date, id and settings once; every other task receives the result."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from recsys.config import MODEL_SETTINGS, PolicyConfig, RetrievalConfig, Settings, SyntheticConfig, run_id_for


def spark_job_args(settings: Settings, run_date: str) -> dict[str, list[str]]:
    """Arguments of the two Spark jobs for one run.

    Returns:
        ``{"ingest": [...], "build_tables": [...]}``, ready for spark-submit.
    """
    common = [
        "--lake",
        str(settings.lake),
        "--run-date",
        run_date,
        "--seed",
        str(settings.seed),
        "--max-bad-fraction",
        str(settings.max_bad_fraction),
    ]
    ingest = ["--dataset", settings.dataset, *common, "--raw-dir", str(settings.raw_dir)]
    if settings.dataset == "synthetic":
        syn = settings.synthetic
        ingest += [
            "--n-users",
            str(syn.n_users),
            "--n-items",
            str(syn.n_items),
            "--n-groups",
            str(syn.n_groups),
            "--mean-ratings-per-user",
            str(syn.mean_ratings_per_user),
            "--min-ratings-per-user",
            str(syn.min_ratings_per_user),
        ]
    else:
        ingest += ["--data-dir", str(settings.source_dir), "--fold", settings.fold]
    build = [
        *common,
        "--split",
        settings.split,
        "--test-fraction",
        str(settings.test_fraction),
        "--like-threshold",
        str(settings.like_threshold),
        "--positive-events",
        ",".join(settings.positive_events),
        "--exposure-events",
        ",".join(settings.exposure_events),
        "--watch-event",
        settings.watch_event,
        "--min-watch-seconds",
        str(settings.min_watch_seconds),
    ]
    return {"ingest": ingest, "build_tables": build}


SECTIONS: dict[str, Any] = {
    "synthetic": SyntheticConfig,
    "retrieval": RetrievalConfig,
    "policy": PolicyConfig,
    **MODEL_SETTINGS,
}
"""Nested settings set by ``<section>_<field>`` params: the generator's, retrieval, policy and every model's."""


def resolve_run(overrides: dict[str, Any], run_date: str | None, fallback_date: datetime | None) -> dict[str, Any]:
    """Fix the run's date, id and settings once; every task receives the result.

    Args:
        overrides: Settings given as DAG params (``None`` / empty values are ignored);
            ``<section>_<field>`` sets a nested section (:data:`SECTIONS`: ``synthetic_n_users``,
            ``cf_epochs``, ``ranker_ease_l2``, ``two_tower_epochs``, ...).
        run_date: The ``run_date`` param, ``YYYY-MM-DD``, or empty.
        fallback_date: The run's logical date or, failing that, its ``run_after``.

    Returns:
        JSON-able dict: run_date, run_id, settings overrides, Spark job arguments, generated_at,
        and ``tune`` (``{"enabled", "trials"}``, from the ``tune`` / ``tune_trials`` params).

    Raises:
        ValueError: Without a run date, or for a setting outside its bounds.
    """
    overrides = dict(overrides)
    tuning = {"enabled": bool(overrides.pop("tune", False)), "trials": int(overrides.pop("tune_trials", None) or 20)}
    if run_date:
        date = datetime.strptime(run_date, "%Y-%m-%d").date().isoformat()
    elif fallback_date is not None:
        date = fallback_date.astimezone(UTC).date().isoformat()
    else:
        raise ValueError("no run date: give the run_date param or a logical date")
    clean: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in overrides.items():
        if value in (None, ""):
            continue
        prefix = next((p for p in nested if key.startswith(f"{p}_") and len(key) > len(p) + 1), None)
        if prefix is not None:
            nested[prefix][key[len(prefix) + 1 :]] = value
        else:
            clean[key] = value
    for name, values in nested.items():
        if values:
            clean[name] = SECTIONS[name](**values)
    settings = Settings(**clean)
    return {
        "run_date": date,
        "run_id": run_id_for(settings.dataset, date),
        "settings": json.loads(settings.model_dump_json()),
        "spark_args": spark_job_args(settings, date),
        "generated_at": f"{date}T00:00:00+00:00",
        "tune": tuning,
    }
