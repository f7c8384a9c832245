"""Quarantine: rows the run did not use, counted by reason, and the threshold that fails a run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

# Codes of rows that were not bad input: they do not count against the threshold.
NOT_ERRORS = frozenset({"duplicate_superseded"})


class QuarantineExceeded(RuntimeError):
    """Too large a share of the input was unusable: the run stops."""


def counts_by_reason(quarantine: DataFrame) -> dict[str, int]:
    """``reason_code -> rows`` of a quarantine table."""
    return {r["reason_code"]: r["count"] for r in quarantine.groupBy("reason_code").count().collect()}


def check_bad_fraction(quarantine: DataFrame, *, total_rows: int, max_fraction: float) -> dict[str, int]:
    """Fail when the share of bad rows is above ``max_fraction``.

    Args:
        quarantine: Quarantine rows (``stg_quarantine`` or ``quarantine``).
        total_rows: All rows read (used + quarantined).
        max_fraction: Largest tolerated share of bad rows.

    Returns:
        Counts by reason (logged).

    Raises:
        QuarantineExceeded: Naming the counts by reason and the first bad lines.
    """
    counts = counts_by_reason(quarantine)
    bad = sum(n for code, n in counts.items() if code not in NOT_ERRORS)
    share = bad / max(total_rows, 1)
    logger.info("quarantine: %d bad of %d rows (%.3f%%); by reason %s", bad, total_rows, 100 * share, counts)
    if share > max_fraction:
        from pyspark.sql import functions as F

        examples = (
            quarantine.where(~F.col("reason_code").isin(*NOT_ERRORS))
            .orderBy("source_file", "line_number")
            .limit(5)
            .collect()
        )
        lines = "; ".join(f"{r.source_file}:{r.line_number}: {r.reason}" for r in examples)
        raise QuarantineExceeded(
            f"{bad} of {total_rows} input rows ({100 * share:.2f}%) are unusable, above the limit of "
            f"{100 * max_fraction:.2f}%; by reason {counts}; first: {lines}"
        )
    return counts
