"""Self-contained HTML report for one pipeline run.

:func:`write_run_report` renders a single HTML file that needs nothing else to
be read: styles are inline, charts are inline SVG (see
:mod:`recsys.evaluation.svg`), there is no JavaScript and nothing is fetched
(a Content-Security-Policy forbids it). Every value that comes from the run is
escaped by Jinja2's autoescaping, so a hostile title in the catalogue cannot
inject markup into the report.

The file is written atomically: the HTML goes to a temporary file in the target
directory, is flushed to disk, then moved over the target with
:func:`os.replace`. A reader therefore sees either the previous report or the
complete new one, never a truncated file.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from recsys.evaluation.svg import bar_chart, line_chart
from recsys.files import write_atomic

__all__ = ["MAX_SAMPLE_ROWS", "write_run_report"]

logger = logging.getLogger(__name__)

#: At most this many rows of ``samples`` are rendered; the rest is summarised.
MAX_SAMPLE_ROWS = 500

# Run fields shown first in the header, in this order, with their captions.
_RUN_FIELDS: tuple[tuple[str, str], ...] = (
    ("run_id", "Run ID"),
    ("run_date", "Run date"),
    ("dataset", "Dataset"),
    ("status", "Status"),
    ("model_version", "Model version"),
    ("started_at", "Started at"),
    ("finished_at", "Finished at"),
    ("duration_s", "Duration"),
    ("duration_seconds", "Duration"),
)

# Status values that get a coloured badge; anything else is shown neutral.
_STATUS_CLASSES = {
    "success": "ok",
    "succeeded": "ok",
    "ok": "ok",
    "passed": "ok",
    "published": "ok",
    "failed": "bad",
    "failure": "bad",
    "error": "bad",
    "rejected": "bad",
    "running": "warn",
    "skipped": "warn",
    "partial": "warn",
}

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="recsys.evaluation.report">
<title>Run report {{ run_id }}</title>
<style>
  :root { color-scheme: light; }
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
         margin: 0; background: #f5f6f8; color: #222; line-height: 1.4; }
  main { max-width: 1000px; margin: 0 auto; padding: 24px 20px 48px; }
  h1 { font-size: 1.6rem; margin: 0 0 4px; word-break: break-word; }
  h2 { font-size: 1.15rem; margin: 0 0 12px; }
  .subtitle { color: #666; margin: 0 0 20px; }
  section { background: #fff; border: 1px solid #dde1e6; border-radius: 8px;
            padding: 16px 20px; margin: 0 0 20px; overflow-x: auto; }
  table { border-collapse: collapse; font-size: 0.92rem; }
  th, td { text-align: left; padding: 5px 12px 5px 0; border-bottom: 1px solid #eceef1;
           vertical-align: top; }
  thead th { border-bottom: 2px solid #cfd4da; white-space: nowrap; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  table.kv th { font-weight: 600; color: #555; white-space: nowrap; padding-right: 24px; }
  table.data { width: 100%; }
  table.data tbody tr:nth-child(even) { background: #fafbfc; }
  .badge { display: inline-block; padding: 1px 10px; border-radius: 10px; font-weight: 600;
           background: #e9ecef; color: #333; }
  .badge.ok { background: #d3f0dc; color: #17612f; }
  .badge.bad { background: #fadbd8; color: #8a1c12; }
  .badge.warn { background: #fdf0c8; color: #7a5800; }
  .charts { display: flex; flex-wrap: wrap; gap: 16px; }
  figure { margin: 0; max-width: 100%; }
  figure svg { max-width: 100%; height: auto; border: 1px solid #eceef1; border-radius: 4px; }
  .empty, .note { color: #777; font-style: italic; }
  footer { color: #888; font-size: 0.8rem; text-align: center; }
</style>
</head>
<body>
<main>
<header>
  <h1>Run report <code>{{ run_id }}</code></h1>
  <p class="subtitle">Generated {{ generated_at }}</p>
</header>

<section id="run">
  <h2>Run</h2>
  {% if run_rows %}
  <table class="kv">
    <tbody>
    {% for row in run_rows %}
      <tr><th scope="row">{{ row.caption }}</th>
        <td>{% if row.badge is not none %}<span class="badge {{ row.badge }}">{{ row.value }}</span>{% else %}{{ row.value }}{% endif %}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% else %}
  <p class="empty">No run information.</p>
  {% endif %}
</section>

<section id="metrics">
  <h2>Metrics</h2>
  {% if metric_rows %}
  <table class="data">
    <thead><tr><th>Metric</th><th class="num">Value</th></tr></thead>
    <tbody>
    {% for name, value in metric_rows %}
      <tr><td>{{ name }}</td><td class="num">{{ value }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% else %}
  <p class="empty">No metrics.</p>
  {% endif %}
</section>

<section id="tables">
  <h2>Table row counts</h2>
  {% if count_rows %}
  <table class="data">
    <thead><tr><th>Table</th><th class="num">Rows</th></tr></thead>
    <tbody>
    {% for name, value in count_rows %}
      <tr><td>{{ name }}</td><td class="num">{{ value }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% else %}
  <p class="empty">No tables.</p>
  {% endif %}
</section>

{% if line_svgs %}
<section id="training">
  <h2>Training curves</h2>
  <div class="charts">
  {% for svg in line_svgs %}
    <figure>{{ svg }}</figure>
  {% endfor %}
  </div>
</section>
{% endif %}

{% if bar_svgs %}
<section id="comparisons">
  <h2>Comparisons</h2>
  <div class="charts">
  {% for svg in bar_svgs %}
    <figure>{{ svg }}</figure>
  {% endfor %}
  </div>
</section>
{% endif %}

<section id="samples">
  <h2>Sample recommendations</h2>
  {% if sample_columns %}
  <table class="data">
    <thead><tr>{% for col, numeric in sample_columns %}<th{% if numeric %} class="num"{% endif %}>{{ col }}</th>{% endfor %}</tr></thead>
    <tbody>
    {% for row in sample_rows %}
      <tr>{% for cell, numeric in row %}<td{% if numeric %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
    {% endfor %}
    </tbody>
  </table>
  {% if samples_truncated %}<p class="note">Showing the first {{ sample_rows|length }} of {{ samples_total }} rows.</p>{% endif %}
  {% else %}
  <p class="empty">No samples.</p>
  {% endif %}
</section>

<footer>recsys run report &middot; self-contained, no external resources</footer>
</main>
</body>
</html>
"""

_ENV = jinja2.Environment(
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _format_number(value: Any) -> str:
    """Formats a metric value with four decimals.

    Args:
        value: A number (int, float, numpy scalar), ``None`` or anything else.

    Returns:
        ``"0.9312"``-style text, ``"NaN"``/``"inf"``/``"-inf"`` for non-finite
        floats, ``"—"`` for ``None``, and ``str(value)`` for non-numbers.
    """
    if value is None:
        return "\u2014"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:.4f}"


def _format_count(value: Any) -> str:
    """Formats a row count with thousands separators (``1,234,567``)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
        return f"{float(value):,.0f}" if float(value).is_integer() else f"{float(value):,}"
    return "\u2014" if value is None else str(value)


def _format_duration(seconds: Any) -> str:
    """Formats a duration in seconds as ``"1h 02m 03s"``, ``"4m 05s"`` or ``"1.23 s"``."""
    if isinstance(seconds, dt.timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(float(seconds)):
        return "\u2014" if seconds is None else str(seconds)
    total = float(seconds)
    if total < 60:
        return f"{total:.2f} s"
    whole = round(total)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _format_value(value: Any) -> str:
    """Formats an arbitrary run field for display."""
    if value is None:
        return "\u2014"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (dt.date, dt.timedelta)):
        return str(value)
    if isinstance(value, float):
        return _format_number(value)
    return str(value)


def _run_rows(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Builds the header rows: known fields first, then durations, then the rest.

    Durations may be given as ``run["durations"]`` (a mapping of stage name to
    seconds or :class:`datetime.timedelta`), as ``duration_s`` /
    ``duration_seconds``, or as any field ending in ``_seconds``.
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key, caption in _RUN_FIELDS:
        if key not in run:
            continue
        seen.add(key)
        value = run[key]
        text = _format_duration(value) if key.startswith("duration") else _format_value(value)
        badge = None
        if key == "status" and value is not None:
            badge = _STATUS_CLASSES.get(str(value).strip().lower(), "")
        rows.append({"caption": caption, "value": text, "badge": badge})

    durations = run.get("durations")
    if isinstance(durations, Mapping):
        seen.add("durations")
        for stage, seconds in durations.items():
            rows.append({"caption": f"Duration: {stage}", "value": _format_duration(seconds), "badge": None})

    for key in sorted(k for k in run if k not in seen):
        value = run[key]
        if key.endswith(("_seconds", "_duration_s")):
            text = _format_duration(value)
        elif isinstance(value, Mapping):
            text = ", ".join(f"{k}={_format_value(v)}" for k, v in value.items())
        else:
            text = _format_value(value)
        rows.append({"caption": key.replace("_", " ").capitalize(), "value": text, "badge": None})
    return rows


def _sample_table(
    samples: pd.DataFrame | None,
) -> tuple[list[tuple[str, bool]], list[list[tuple[str, bool]]], int]:
    """Converts ``samples`` to escaped-later display strings.

    Floats are printed with four decimals, integers as-is, missing values as
    an em dash. At most :data:`MAX_SAMPLE_ROWS` rows are kept.

    Returns:
        ``(columns, rows, total_rows)`` where each column and cell is paired
        with a flag telling whether it is numeric (right-aligned).
    """
    if samples is None or len(samples.columns) == 0:
        return [], [], 0
    frame = samples.head(MAX_SAMPLE_ROWS)
    numeric = [
        pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col])
        for col in frame.columns
    ]
    columns = [(str(col), is_num) for col, is_num in zip(frame.columns, numeric, strict=False)]
    rows: list[list[tuple[str, bool]]] = []
    for record in frame.itertuples(index=False, name=None):
        cells: list[tuple[str, bool]] = []
        for value, is_num in zip(record, numeric, strict=False):
            if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
                text = "\u2014"
            elif isinstance(value, float) or (
                is_num and isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
            ):
                text = _format_number(value)
            else:
                text = str(value)
            cells.append((text, is_num))
        rows.append(cells)
    return columns, rows, len(samples)


def _render(
    *,
    run: Mapping[str, Any],
    metrics: Mapping[str, float],
    table_counts: Mapping[str, int],
    loss_history: Mapping[str, Sequence[float]],
    bar_charts: Mapping[str, Mapping[str, float]],
    samples: pd.DataFrame | None,
) -> str:
    """Renders the report HTML (see :func:`write_run_report`)."""
    # The SVG helpers escape all text themselves; Markup stops double escaping.
    line_svgs: list[Markup] = []
    if loss_history and all(isinstance(v, Mapping) for v in loss_history.values()):
        # Several figures: {"figure title": {"series": [...], ...}, ...}.
        for name, group in loss_history.items():
            series = {str(k): list(v) for k, v in group.items()}  # type: ignore[union-attr]
            line_svgs.append(Markup(line_chart(series, title=str(name), x_label="epoch", y_label=str(name))))
    elif loss_history:
        # The usual shape: {"train RMSE": [...], "test RMSE": [...]} -> one figure.
        series = {str(k): list(v) for k, v in loss_history.items()}
        y_label = next(iter(series)) if len(series) == 1 else "value"
        line_svgs.append(
            Markup(line_chart(series, title="Training curves per epoch", x_label="epoch", y_label=y_label))
        )

    bar_svgs = [
        Markup(bar_chart([str(k) for k in data], list(data.values()), title=str(name)))
        for name, data in bar_charts.items()
    ]
    sample_columns, sample_rows, samples_total = _sample_table(samples)

    template = _ENV.from_string(_TEMPLATE)
    return template.render(
        run_id=_format_value(run.get("run_id", "unknown")),
        generated_at=dt.datetime.now(dt.UTC).isoformat(sep=" ", timespec="seconds"),
        run_rows=_run_rows(run),
        metric_rows=[(str(k), _format_number(v)) for k, v in metrics.items()],
        count_rows=[(str(k), _format_count(v)) for k, v in table_counts.items()],
        line_svgs=line_svgs,
        bar_svgs=bar_svgs,
        sample_columns=sample_columns,
        sample_rows=sample_rows,
        samples_total=samples_total,
        samples_truncated=samples_total > len(sample_rows),
    )


def write_run_report(
    path: Path,
    *,
    run: dict,
    metrics: dict[str, float],
    table_counts: dict[str, int],
    loss_history: dict[str, Sequence[float]],
    bar_charts: dict[str, dict[str, float]],
    samples: pd.DataFrame | None,
) -> Path:
    """Writes a self-contained HTML report for one pipeline run.

    The page has a header with the run fields (``run_id``, ``run_date``,
    ``dataset``, ``status``, ``model_version``, durations when present, then
    any other field), a metrics table (four decimals), the table row counts,
    one line chart per entry of ``loss_history``, one bar chart per entry of
    ``bar_charts`` and a table of sample recommendations. All text is escaped.

    Args:
        path: Where to write the HTML file; parent directories are created.
        run: Run fields. Durations may be given as ``duration_s`` /
            ``duration_seconds`` (seconds), as ``durations`` (mapping of stage
            to seconds or :class:`datetime.timedelta`) or as any
            ``*_seconds`` field.
        metrics: Metric name to value, e.g. ``{"rmse": 0.9312}``.
        table_counts: Table name to number of rows.
        loss_history: Curve name to its value per epoch, e.g.
            ``{"train RMSE": [...], "test RMSE": [...]}``, drawn as one line
            chart with one line per curve. If every value is itself a mapping
            (``{"chart title": {"curve": [...]}}``), one chart is drawn per
            entry instead. Empty means no chart.
        bar_charts: Chart title to ``{label: value}``, e.g.
            ``{"RMSE: CF vs baselines": {"CF": 0.93, "item mean": 1.02}}``.
        samples: Rows to show verbatim (e.g. columns ``user_id``, ``rank``,
            ``title``, ``score``, ``reason``), or ``None``. At most
            :data:`MAX_SAMPLE_ROWS` rows are shown.

    Returns:
        ``path``, once the complete file is in place.

    Raises:
        OSError: If the file cannot be written; no temporary file is left.
    """
    path = Path(path)
    html_text = _render(
        run=run,
        metrics=metrics,
        table_counts=table_counts,
        loss_history=loss_history,
        bar_charts=bar_charts,
        samples=samples,
    )
    write_atomic(path, html_text)
    logger.info("Wrote run report %s (%d bytes)", path, len(html_text.encode("utf-8")))
    return path
