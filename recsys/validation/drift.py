"""Volume and drift checks against the previous successful run.

After a run publishes, the statistics of its tables are stored next to the lake
(``<lake>/_stats/run_date=D/stats.json``). The next run's gate compares its own
statistics with the latest earlier successful run's: row counts, distinct users
and items, and the rating mean must stay within configurable tolerances.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.files import write_atomic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftTolerances:
    """How far a run may move from the previous successful one.

    Attributes:
        rows: Largest relative change of a table's row count (0.5 = -50% .. +50%).
        distinct: Largest relative change of distinct users / items in ``ratings``.
        rating_mean: Largest absolute change of the mean rating.
    """

    rows: float = 0.5
    distinct: float = 0.5
    rating_mean: float = 0.25


def table_stats(frames: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Statistics the drift check compares: rows per table; users, items and mean of ``ratings``."""
    stats: dict[str, Any] = {"rows": {name: len(df) for name, df in frames.items()}}
    if "ratings" in frames and len(frames["ratings"]):
        r = frames["ratings"]
        stats["ratings"] = {
            "users": int(r["user_idx"].nunique()),
            "items": int(r["item_idx"].nunique()),
            "rating_mean": float(r["rating"].mean()),
        }
    return stats


def stats_path(lake: Path, run_date: str) -> Path:
    """Where the statistics of the run of ``run_date`` are kept."""
    return Path(lake) / "_stats" / f"run_date={run_date}" / "stats.json"


def save_stats(lake: Path, run_date: str, stats: Mapping[str, Any]) -> Path:
    """Record a successful run's statistics (called after publishing)."""
    return write_atomic(stats_path(lake, run_date), json.dumps(stats, indent=2, sort_keys=True))


def previous_stats(lake: Path, run_date: str) -> tuple[str, dict[str, Any]] | None:
    """The latest successful run before ``run_date`` and its statistics, if any."""
    root = Path(lake) / "_stats"
    if not root.exists():
        return None
    dates = sorted(p.name.split("=", 1)[1] for p in root.iterdir() if p.name.startswith("run_date="))
    earlier = [d for d in dates if d < run_date and stats_path(lake, d).exists()]
    if not earlier:
        return None
    return earlier[-1], json.loads(stats_path(lake, earlier[-1]).read_text())


def drift_expectations(previous: Mapping[str, Any], tol: DriftTolerances) -> dict[str, list[Any]]:
    """Great Expectations checks, per table, that the current run stays near ``previous``."""
    import great_expectations as gx

    e = gx.expectations
    out: dict[str, list[Any]] = {}
    for name, n in previous.get("rows", {}).items():
        if n > 0:
            out.setdefault(name, []).append(
                e.ExpectTableRowCountToBeBetween(
                    min_value=int(n * (1 - tol.rows)), max_value=int(n * (1 + tol.rows)) + 1
                )
            )
    r = previous.get("ratings")
    if r:
        out.setdefault("ratings", []).extend(
            [
                e.ExpectColumnUniqueValueCountToBeBetween(
                    column="user_idx",
                    min_value=int(r["users"] * (1 - tol.distinct)),
                    max_value=int(r["users"] * (1 + tol.distinct)) + 1,
                ),
                e.ExpectColumnUniqueValueCountToBeBetween(
                    column="item_idx",
                    min_value=int(r["items"] * (1 - tol.distinct)),
                    max_value=int(r["items"] * (1 + tol.distinct)) + 1,
                ),
                e.ExpectColumnMeanToBeBetween(
                    column="rating",
                    min_value=r["rating_mean"] - tol.rating_mean,
                    max_value=r["rating_mean"] + tol.rating_mean,
                ),
            ]
        )
    return out
