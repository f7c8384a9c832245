"""Small, dependency-free SVG chart helpers for the HTML run report.

The charts are plain SVG strings meant to be inlined into an HTML page, so the
report stays a single self-contained file (no matplotlib, no JavaScript, no
external fonts). Every piece of caller-supplied text is escaped, and characters
that are not allowed in XML 1.0 are dropped, so each chart is well-formed XML
whatever the labels contain.

Two chart kinds are provided:

* :func:`line_chart` -- several named series against their index (e.g. a loss
  per epoch), with axes, ticks and a legend.
* :func:`bar_chart` -- horizontal bars with the value printed next to each bar
  (e.g. one metric for a model and its baselines).

Non-finite values (NaN, +/-inf) are never plotted: a line chart breaks the line
at such a point, a bar chart draws no bar and prints ``n/a``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

__all__ = ["PALETTE", "bar_chart", "line_chart", "nice_ticks"]


# Okabe-Ito palette: distinguishable for the common forms of colour blindness.
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)

_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_AXIS_COLOR = "#444444"
_GRID_COLOR = "#e3e3e3"
_TEXT_COLOR = "#222222"
_MUTED_COLOR = "#666666"
_CHAR_WIDTH = 0.6  # Rough average glyph width, as a fraction of the font size.

# Characters that XML 1.0 forbids even when escaped (C0 controls other than
# tab/newline/carriage return, lone surrogates, U+FFFE and U+FFFF).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(text: object) -> str:
    """Escapes ``text`` for use in SVG/XML text nodes and attribute values.

    Args:
        text: Any object; it is converted with :func:`str` first.

    Returns:
        The escaped string, with characters that XML 1.0 cannot represent
        removed.
    """
    return html.escape(_XML_INVALID.sub("", str(text)), quote=True)


def _fmt(value: float, decimals: int) -> str:
    """Formats a coordinate or tick value compactly (no ``-0``)."""
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def _px(value: float) -> str:
    """Formats a pixel coordinate with at most two decimals."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text_width(text: str, font_size: float) -> float:
    """Estimates the rendered width of ``text`` in pixels."""
    return len(text) * font_size * _CHAR_WIDTH


def _truncate(text: str, max_chars: int) -> str:
    """Shortens ``text`` to ``max_chars`` characters, ending with an ellipsis."""
    if len(text) <= max_chars:
        return text
    return text[: max(1, max_chars - 1)] + "\u2026"


def _is_finite(value: object) -> bool:
    """Tells whether ``value`` is a real, finite number."""
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Returns evenly spaced "round" tick values covering ``[lo, hi]``.

    The step is 1, 2, 2.5 or 5 times a power of ten, chosen so that at most
    about ``max_ticks`` ticks are produced. The first tick is ``<= lo`` and the
    last is ``>= hi``.

    Args:
        lo: Lower end of the data range.
        hi: Upper end of the data range (may equal ``lo``).
        max_ticks: Approximate maximum number of ticks.

    Returns:
        Tick values in increasing order (at least two when ``lo < hi``).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw_step = (hi - lo) / max(1, max_ticks - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw_step))
    step = magnitude * 10
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * magnitude >= raw_step:
            step = factor * magnitude
            break
    start = math.floor(lo / step + 1e-9) * step
    ticks: list[float] = []
    value = start
    # Bounded loop; guards against float drift producing an endless sequence.
    for i in range(max_ticks * 4):
        value = start + i * step
        ticks.append(round(value, 12))
        if value >= hi - step * 1e-9:
            break
    return ticks


def _decimals_for_step(step: float) -> int:
    """Decimals needed so that consecutive ticks ``step`` apart print distinctly."""
    if step <= 0 or not math.isfinite(step):
        return 2
    for decimals in range(9):
        if abs(round(step, decimals) - step) < step * 1e-6:
            return decimals
    return 8


def _integer_step(n_points: int, max_ticks: int) -> int:
    """Smallest "round" integer step (1, 2, 5, 10, 20, 25, 50, ...) giving at most ``max_ticks`` ticks."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5) if magnitude == 1 else (1, 2, 2.5, 5):
            step = int(factor * magnitude)
            if step * max_ticks >= n_points:
                return step
        magnitude *= 10


def _svg_open(width: int, height: int, title: str, desc: str) -> list[str]:
    """Opening tags shared by every chart (root element, a11y title, background)."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}" '
        f'font-family="{_esc(_FONT)}" font-size="12" class="chart">',
        f"<title>{_esc(title)}</title>",
        f"<desc>{_esc(desc)}</desc>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff" class="background"/>',
        f'<text x="{_px(width / 2)}" y="20" text-anchor="middle" font-size="14" '
        f'font-weight="600" fill="{_TEXT_COLOR}" class="chart-title">{_esc(title)}</text>',
    ]


def _no_data(parts: list[str], x: float, y: float) -> None:
    """Appends a centred "no data" note to ``parts``."""
    parts.append(
        f'<text x="{_px(x)}" y="{_px(y)}" text-anchor="middle" fill="{_MUTED_COLOR}" '
        f'font-style="italic" class="no-data">no data</text>'
    )


def line_chart(
    series: dict[str, Sequence[float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 320,
) -> str:
    """Renders several named series as a line chart.

    Point ``i`` of every series is drawn at x = ``i + 1`` (e.g. epoch 1, 2, ...),
    so series of different lengths share the same x axis. Non-finite values are
    skipped and break the line; an isolated point is drawn as a dot. A series
    with no finite value still appears in the legend, marked "(no data)".

    Args:
        series: Mapping from series name (legend label) to its values.
        title: Chart title.
        x_label: Label of the horizontal axis.
        y_label: Label of the vertical axis.
        width: Width of the SVG in pixels.
        height: Height of the SVG in pixels.

    Returns:
        A standalone ``<svg>`` element as a string.

    Example:
        >>> svg = line_chart({"train": [1.2, 0.9, 0.8]}, title="Loss",
        ...                  x_label="epoch", y_label="RMSE")
        >>> svg.startswith("<svg")
        True
    """
    width = max(200, int(width))
    height = max(160, int(height))
    names = [str(name) for name in series]
    cleaned: list[list[float | None]] = []
    for values in series.values():
        cleaned.append([float(v) if _is_finite(v) else None for v in (values or [])])

    finite = [v for values in cleaned for v in values if v is not None]
    n_points = max((len(values) for values in cleaned), default=0)
    parts = _svg_open(
        width,
        height,
        title,
        f"Line chart of {len(names)} series; x: {x_label}; y: {y_label}.",
    )

    # Legend: rows of swatch + label under the title, wrapped to the width.
    legend_font = 12.0
    legend_items: list[tuple[str, str, float]] = []
    for index, name in enumerate(names):
        label = _truncate(name, 40)
        if not any(v is not None for v in cleaned[index]):
            label += " (no data)"
        legend_items.append((label, PALETTE[index % len(PALETTE)], _text_width(label, legend_font) + 30))
    rows: list[list[tuple[str, str, float]]] = [[]]
    row_width = 0.0
    for item in legend_items:
        if rows[-1] and row_width + item[2] > width - 40:
            rows.append([])
            row_width = 0.0
        rows[-1].append(item)
        row_width += item[2]
    if not rows[-1]:
        rows.pop()
    legend_top = 34.0
    for r, row in enumerate(rows):
        total = sum(item[2] for item in row)
        x = (width - total) / 2
        y = legend_top + r * 18
        for label, color, item_width in row:
            parts.append(
                f'<g class="legend-item"><line x1="{_px(x)}" y1="{_px(y)}" x2="{_px(x + 18)}" '
                f'y2="{_px(y)}" stroke="{color}" stroke-width="3"/>'
                f'<text x="{_px(x + 23)}" y="{_px(y + 4)}" fill="{_TEXT_COLOR}">{_esc(label)}</text></g>'
            )
            x += item_width

    # Plot area.
    top = legend_top + len(rows) * 18 + 6
    bottom = height - 44.0
    if bottom - top < 40:
        bottom = top + 40
    if not finite:
        y_ticks: list[float] = []
        y_decimals = 2
    else:
        y_ticks = nice_ticks(min(finite), max(finite))
        y_decimals = _decimals_for_step(y_ticks[1] - y_ticks[0]) if len(y_ticks) > 1 else 2
    tick_labels = [_fmt(t, y_decimals) for t in y_ticks]
    left = 18 + 16 + max((_text_width(t, 11) for t in tick_labels), default=20)
    right = width - 16.0

    parts.append(
        f'<text x="{_px((left + right) / 2)}" y="{_px(height - 8)}" text-anchor="middle" '
        f'fill="{_TEXT_COLOR}" class="x-label">{_esc(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{_px((top + bottom) / 2)}" text-anchor="middle" fill="{_TEXT_COLOR}" '
        f'transform="rotate(-90 14 {_px((top + bottom) / 2)})" class="y-label">{_esc(y_label)}</text>'
    )

    if not finite:
        parts.append(
            f'<rect x="{_px(left)}" y="{_px(top)}" width="{_px(right - left)}" '
            f'height="{_px(bottom - top)}" fill="none" stroke="{_GRID_COLOR}"/>'
        )
        _no_data(parts, (left + right) / 2, (top + bottom) / 2)
        parts.append("</svg>")
        return "\n".join(parts)

    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def sy(value: float) -> float:
        return bottom - (value - y_lo) / (y_hi - y_lo) * (bottom - top)

    x_lo, x_hi = 1.0, float(max(n_points, 1))
    if x_hi == x_lo:
        x_lo, x_hi = 0.0, 2.0  # Single point: centre it.

    def sx(index: float) -> float:
        return left + (index - x_lo) / (x_hi - x_lo) * (right - left)

    # Grid and y ticks.
    for tick, label in zip(y_ticks, tick_labels, strict=False):
        y = sy(tick)
        parts.append(
            f'<line x1="{_px(left)}" y1="{_px(y)}" x2="{_px(right)}" y2="{_px(y)}" '
            f'stroke="{_GRID_COLOR}" class="grid"/>'
        )
        parts.append(
            f'<text x="{_px(left - 6)}" y="{_px(y + 4)}" text-anchor="end" font-size="11" '
            f'fill="{_MUTED_COLOR}" class="y-tick">{_esc(label)}</text>'
        )

    # X ticks: integer indices, at most ~10 of them.
    max_x_ticks = max(2, min(10, int((right - left) // 50)))
    step = _integer_step(n_points, max_x_ticks)
    x_ticks = list(range(step, n_points + 1, step))
    if step == 1 or step >= 4:
        x_ticks.insert(0, 1)
    for tick in sorted(set(x_ticks)):
        x = sx(tick)
        parts.append(
            f'<line x1="{_px(x)}" y1="{_px(bottom)}" x2="{_px(x)}" y2="{_px(bottom + 5)}" stroke="{_AXIS_COLOR}"/>'
        )
        parts.append(
            f'<text x="{_px(x)}" y="{_px(bottom + 18)}" text-anchor="middle" font-size="11" '
            f'fill="{_MUTED_COLOR}" class="x-tick">{tick}</text>'
        )

    # Axes.
    parts.append(
        f'<line x1="{_px(left)}" y1="{_px(top)}" x2="{_px(left)}" y2="{_px(bottom)}" '
        f'stroke="{_AXIS_COLOR}" class="axis"/>'
    )
    parts.append(
        f'<line x1="{_px(left)}" y1="{_px(bottom)}" x2="{_px(right)}" y2="{_px(bottom)}" '
        f'stroke="{_AXIS_COLOR}" class="axis"/>'
    )

    # Series: one polyline per run of consecutive finite points.
    for index, (name, values) in enumerate(zip(names, cleaned, strict=False)):
        color = PALETTE[index % len(PALETTE)]
        parts.append(f'<g class="series" data-name="{_esc(name)}">')
        segments: list[list[tuple[int, float]]] = [[]]
        for i, value in enumerate(values):
            if value is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((i + 1, value))
        for segment in segments:
            if len(segment) >= 2:
                points = " ".join(f"{_px(sx(i))},{_px(sy(v))}" for i, v in segment)
                parts.append(
                    f'<polyline points="{points}" fill="none" stroke="{color}" '
                    f'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
                )
            if len(segment) <= 12:
                # Few points: mark them so single points and short runs are visible.
                for i, v in segment:
                    parts.append(
                        f'<circle cx="{_px(sx(i))}" cy="{_px(sy(v))}" r="3" fill="{color}">'
                        f"<title>{_esc(name)} @ {i}: {_esc(_fmt(v, 4))}</title></circle>"
                    )
        parts.append("</g>")

    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_label: str = "",
    width: int = 640,
    bar_height: int = 22,
    value_format: str = "{:.4f}",
) -> str:
    """Renders a horizontal bar chart with the value printed beside each bar.

    Bars start at zero, so with non-negative values the bar lengths are
    proportional to the values (the longest bar spans the plot width). Negative
    values extend to the left of a zero line. Non-finite values get no bar and
    are printed as ``n/a``. Each bar is a ``<rect class="bar">`` carrying its
    value in ``data-value``.

    Args:
        labels: One label per bar, drawn left of the bar.
        values: One value per bar; must have the same length as ``labels``.
        title: Chart title.
        x_label: Optional label under the bars (e.g. the metric's unit).
        width: Width of the SVG in pixels; the height follows from the number
            of bars.
        bar_height: Height of each bar in pixels.
        value_format: :meth:`str.format` pattern used to print the values.

    Returns:
        A standalone ``<svg>`` element as a string.

    Raises:
        ValueError: If ``labels`` and ``values`` differ in length.

    Example:
        >>> svg = bar_chart(["CF", "item mean"], [0.93, 1.02], title="RMSE")
        >>> svg.count('class="bar"')
        2
    """
    labels = [str(label) for label in labels]
    values = list(values)
    if len(labels) != len(values):
        raise ValueError(f"bar_chart: {len(labels)} labels but {len(values)} values")
    width = max(240, int(width))
    bar_height = max(8, int(bar_height))
    gap = max(4, bar_height // 3)
    top = 34.0
    n_bars = len(labels)
    plot_height = max(1, n_bars) * (bar_height + gap)
    bottom = top + plot_height
    height = int(bottom + (34 if x_label else 14))

    parts = _svg_open(width, height, title, f"Bar chart of {n_bars} values. {x_label}".strip())

    def fmt_value(value: object) -> str:
        if not _is_finite(value):
            return "n/a"
        try:
            return value_format.format(float(value))  # type: ignore[arg-type]
        except (ValueError, IndexError, KeyError):
            return _fmt(float(value), 4)  # type: ignore[arg-type]

    display_labels = [_truncate(label, 32) for label in labels]
    printed = [fmt_value(v) for v in values]
    label_width = max((_text_width(t, 12) for t in display_labels), default=0.0)
    value_width = max((_text_width(t, 12) for t in printed), default=0.0)
    left = 10 + min(label_width, width * 0.4) + 8
    right = width - 10 - value_width - 8
    if right - left < 40:
        right = left + 40

    if x_label:
        parts.append(
            f'<text x="{_px((left + right) / 2)}" y="{_px(height - 10)}" text-anchor="middle" '
            f'fill="{_TEXT_COLOR}" class="x-label">{_esc(x_label)}</text>'
        )

    if not n_bars:
        _no_data(parts, width / 2, (top + bottom) / 2 + 4)
        parts.append("</svg>")
        return "\n".join(parts)

    finite = [float(v) for v in values if _is_finite(v)]
    lo = min([0.0, *finite])
    hi = max([0.0, *finite])
    span = hi - lo

    def sx(value: float) -> float:
        if span == 0:
            return left
        return left + (value - lo) / span * (right - left)

    zero_x = sx(0.0)
    for i, (label, shown, raw, value) in enumerate(zip(display_labels, printed, labels, values, strict=False)):
        y = top + i * (bar_height + gap) + gap / 2
        mid = y + bar_height / 2 + 4
        color = PALETTE[0]
        parts.append(
            f'<text x="{_px(left - 8)}" y="{_px(mid)}" text-anchor="end" fill="{_TEXT_COLOR}" '
            f'class="bar-label"><title>{_esc(raw)}</title>{_esc(label)}</text>'
        )
        if _is_finite(value):
            v = float(value)
            x0, x1 = sorted((zero_x, sx(v)))
            parts.append(
                f'<rect class="bar" x="{_px(x0)}" y="{_px(y)}" width="{_px(x1 - x0)}" '
                f'height="{bar_height}" fill="{color}" data-value="{_esc(repr(v))}">'
                f"<title>{_esc(raw)}: {_esc(shown)}</title></rect>"
            )
            text_x = max(x1, zero_x) + 6
        else:
            text_x = zero_x + 6
        parts.append(
            f'<text x="{_px(text_x)}" y="{_px(mid)}" fill="{_TEXT_COLOR}" class="bar-value">{_esc(shown)}</text>'
        )
    # Zero line.
    parts.append(
        f'<line x1="{_px(zero_x)}" y1="{_px(top)}" x2="{_px(zero_x)}" y2="{_px(bottom)}" '
        f'stroke="{_AXIS_COLOR}" class="axis"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
