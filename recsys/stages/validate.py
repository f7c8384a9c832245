"""Stage ``validate``: the Great Expectations gate on the run date's tables; a failure stops the run."""

from __future__ import annotations

import logging
from typing import Any

from recsys.config import Settings
from recsys.lake import partition_dir, read_partition

logger = logging.getLogger(__name__)

STAGED_TABLES = ("stg_ratings", "stg_items", "stg_users", "stg_splits", "stg_tags", "stg_events", "stg_quarantine")
"""The staged tables a source may produce (checked when present)."""

GATED_TABLES = (
    "user_map",
    "item_map",
    "ratings",
    "interactions",
    "items",
    "users",
    "feature_vocab",
    "item_features",
    "user_features",
    "quarantine",
)
"""The tables every run builds and the gate checks (their statistics feed the next run's drift checks)."""


def validate(settings: Settings, run_date: str) -> dict[str, Any]:
    """Run the validation gate on the run date's tables.

    Returns:
        ``{"rows", "expectations", "drift_baseline"}``.

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
        tol = DriftTolerances(
            rows=settings.drift_rows, distinct=settings.drift_rows, rating_mean=settings.drift_rating_mean
        )
        drift = drift_expectations(previous[1], tol)
        logger.info("drift checks against the successful run of %s", previous[0])
    report = run_gate(frames, extra=drift)
    return {
        "rows": report.rows,
        "expectations": sum(report.checked.values()),
        "drift_baseline": previous[0] if previous else None,
    }
