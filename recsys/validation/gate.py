"""The validation gate: every table is checked before anything trains.

:func:`validate_tables` runs the suites of ``suites.py`` on pandas batches of
one run date's partitions and returns a report; :func:`run_gate` raises
:class:`ValidationFailed` with every failed expectation named, so the Airflow
task fails with a message that says what is wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recsys.validation.suites import expectations_for
from schemas import table

logger = logging.getLogger(__name__)


class ValidationFailed(RuntimeError):
    """A table failed its expectations; the run must stop before training."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        super().__init__("validation gate failed:\n" + "\n".join(f"  - {p}" for p in report.failures))


@dataclass
class GateReport:
    """Outcome of the gate.

    Attributes:
        ok: True when every expectation of every table held.
        failures: One line per failed expectation: table, expectation, column, counts, examples.
        checked: Expectations evaluated per table.
        rows: Row count per table.
    """

    ok: bool = True
    failures: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def _describe(result: Any) -> str:
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "value_set")}
    r = result.result or {}
    detail = []
    if r.get("unexpected_count") is not None:
        detail.append(f"{r['unexpected_count']} unexpected rows")
    if r.get("partial_unexpected_list"):
        detail.append(f"e.g. {r['partial_unexpected_list'][:3]}")
    if r.get("observed_value") is not None:
        detail.append(f"observed {r['observed_value']}")
    if result.exception_info and result.exception_info.get("raised_exception"):
        detail.append(f"error {result.exception_info.get('exception_message')}")
    return f"{cfg.type} {kwargs}: {'; '.join(detail) or 'failed'}"


def validate_tables(
    frames: Mapping[str, pd.DataFrame],
    *,
    min_rows: Mapping[str, int] | None = None,
    extra: Mapping[str, list[Any]] | None = None,
) -> GateReport:
    """Validate tables against their schema-derived suites.

    Args:
        frames: Table name -> its rows for one run date.
        min_rows: Optional row-count floors overriding the schemas'.
        extra: More expectations per table (e.g. drift checks against the previous run).

    Returns:
        The report (never raises on data problems).
    """
    import great_expectations as gx

    start = time.monotonic()
    ctx = gx.get_context(mode="ephemeral")
    source = ctx.data_sources.add_pandas("recsys")
    refs: dict[str, list[Any]] = {}
    for name, df in frames.items():
        for col in table(name).key:
            if col in df.columns:  # a missing column is reported by the suite, not raised here
                refs[f"{name}.{col}"] = df[col].dropna().unique().tolist()
    report = GateReport()
    for name, df in frames.items():
        schema = table(name)
        suite = gx.ExpectationSuite(name=name)
        for exp in expectations_for(schema, min_rows=(min_rows or {}).get(name), reference_values=refs):
            suite.add_expectation(exp)
        for exp in (extra or {}).get(name, []):
            suite.add_expectation(exp)
        batch = (
            source.add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe("run")
            .get_batch(batch_parameters={"dataframe": df})
        )
        result = batch.validate(suite, result_format="SUMMARY")
        report.checked[name] = len(result.results)
        report.rows[name] = len(df)
        for r in result.results:
            if not r.success:
                report.ok = False
                report.failures.append(f"{name}: {_describe(r)}")
    logger.info(
        "validation gate: %s, %d tables, %d expectations, %d failures in %.1fs",
        "passed" if report.ok else "FAILED",
        len(frames),
        sum(report.checked.values()),
        len(report.failures),
        time.monotonic() - start,
    )
    return report


def run_gate(
    frames: Mapping[str, pd.DataFrame],
    *,
    min_rows: Mapping[str, int] | None = None,
    extra: Mapping[str, list[Any]] | None = None,
) -> GateReport:
    """Validate and raise if anything failed.

    Raises:
        ValidationFailed: Naming every failed expectation.
    """
    report = validate_tables(frames, min_rows=min_rows, extra=extra)
    if not report.ok:
        raise ValidationFailed(report)
    return report
