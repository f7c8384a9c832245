"""Unit tests for recsys.evaluation.report and recsys.evaluation.svg."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from recsys.evaluation import report as report_mod
from recsys.evaluation.report import write_run_report
from recsys.evaluation.svg import bar_chart, line_chart, nice_ticks

SVG_NS = "{http://www.w3.org/2000/svg}"
MALICIOUS = "<script>alert(1)</script>"
SVG_RE = re.compile(r"<svg\b.*?</svg>", re.DOTALL)


def _svgs(text: str) -> list[ET.Element]:
    """Parses every inline <svg>...</svg> block; fails if one is not well-formed XML."""
    return [ET.fromstring(block) for block in SVG_RE.findall(text)]


def _bars(svg: ET.Element) -> list[ET.Element]:
    return [el for el in svg.iter(f"{SVG_NS}rect") if el.get("class") == "bar"]


def _all_text(svg: ET.Element) -> str:
    return " ".join(t for el in svg.iter() for t in (el.text, el.tail) if t)


def _kwargs(**overrides: object) -> dict:
    base: dict = {
        "run": {
            "run_id": "run-2024-05-01",
            "run_date": "2024-05-01",
            "dataset": "movielens-100k",
            "status": "success",
            "model_version": "cf-v3",
            "durations": {"train": 12.5, "publish": 75.0},
        },
        "metrics": {"rmse": 0.931234, "recall@10": 0.12, "ndcg@10": 1 / 3},
        "table_counts": {"ratings": 100_000, "items": 1682},
        "loss_history": {"train RMSE": [1.2, 1.0, 0.9], "test RMSE": [1.25, 1.1, 1.05]},
        "bar_charts": {"RMSE: CF vs baselines": {"CF": 0.93, "item mean": 1.02}},
        "samples": pd.DataFrame(
            {
                "user_id": [1, 1, 2],
                "rank": [1, 2, 1],
                "title": ["Toy Story (1995)", "Heat & Dust", "Fargo (1996)"],
                "score": [4.56789, 4.1, 3.9],
                "reason": ["similar to Babe", "popular", "similar to Heat"],
            }
        ),
    }
    base.update(overrides)
    return base


class _Collector(HTMLParser):
    """Collects start tags so tests can check the HTML structure."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


# ---------------------------------------------------------------- report


def test_report_is_created_and_returns_path(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "report.html"
    result = write_run_report(target, **_kwargs())
    assert result == target
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.rstrip().endswith("</html>")
    for field in ("run-2024-05-01", "2024-05-01", "movielens-100k", "success", "cf-v3"):
        assert field in text
    assert "Duration: train" in text and "12.50 s" in text
    assert "1m 15s" in text  # 75 s publish duration
    # Two SVG charts: one line chart (train + test), one bar chart.
    assert len(_svgs(text)) == 2


def test_metrics_are_formatted_to_four_decimals(tmp_path: Path) -> None:
    text = write_run_report(tmp_path / "r.html", **_kwargs()).read_text()
    assert ">0.9312<" in text
    assert ">0.1200<" in text
    assert ">0.3333<" in text
    assert "0.931234" not in text
    # Table counts with thousands separators; sample floats to 4 decimals.
    assert ">100,000<" in text and ">1,682<" in text
    assert ">4.5679<" in text
    # Ampersand in a sample title is escaped, not raw.
    assert "Heat &amp; Dust" in text


def test_nan_metric_is_shown_as_nan(tmp_path: Path) -> None:
    text = write_run_report(tmp_path / "r.html", **_kwargs(metrics={"rmse": float("nan"), "mae": 0.5})).read_text()
    assert ">NaN<" in text and ">0.5000<" in text


def test_every_svg_is_well_formed_xml(tmp_path: Path) -> None:
    kwargs = _kwargs(
        loss_history={"train": [1.0, float("nan"), 0.5], 'weird <&> "name"': [2.0]},
        bar_charts={
            "A & B": {"x": 1.0, "y": float("nan")},
            "empty": {},
            "neg": {"a": -1.0, "b": 2.0},
        },
    )
    text = write_run_report(tmp_path / "r.html", **kwargs).read_text()
    svgs = _svgs(text)
    assert len(svgs) == 4
    for svg in svgs:
        assert svg.tag == f"{SVG_NS}svg"


def test_malicious_text_is_escaped_everywhere(tmp_path: Path) -> None:
    kwargs = _kwargs(
        run={"run_id": MALICIOUS, "status": MALICIOUS, "dataset": MALICIOUS, "note": MALICIOUS},
        metrics={MALICIOUS: 1.0},
        table_counts={MALICIOUS: 3},
        loss_history={MALICIOUS: [1.0, 2.0]},
        bar_charts={MALICIOUS: {MALICIOUS: 1.0}},
        samples=pd.DataFrame({"title": [MALICIOUS], MALICIOUS: [1]}),
    )
    text = write_run_report(tmp_path / "r.html", **kwargs).read_text()
    assert MALICIOUS not in text
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    parser = _Collector()
    parser.feed(text)
    assert "script" not in {tag for tag, _ in parser.tags}
    for svg in _svgs(text):  # still well-formed with hostile labels
        assert MALICIOUS in _all_text(svg) or svg.get("aria-label") == MALICIOUS


def test_report_is_self_contained(tmp_path: Path) -> None:
    text = write_run_report(tmp_path / "r.html", **_kwargs()).read_text()
    parser = _Collector()
    parser.feed(text)
    tags = {tag for tag, _ in parser.tags}
    assert "script" not in tags and "link" not in tags and "img" not in tags
    for _, attrs in parser.tags:
        assert "src" not in attrs and "href" not in attrs
    assert "@import" not in text and "url(" not in text
    # The only URL is the SVG namespace, which is never fetched.
    urls = set(re.findall(r"https?://[^\s\"'<>]+", text))
    assert urls == {"http://www.w3.org/2000/svg"}


def test_empty_inputs_render(tmp_path: Path) -> None:
    text = write_run_report(
        tmp_path / "r.html",
        run={},
        metrics={},
        table_counts={},
        loss_history={},
        bar_charts={},
        samples=None,
    ).read_text()
    assert "No metrics." in text and "No tables." in text and "No samples." in text
    assert _svgs(text) == []


def test_samples_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_mod, "MAX_SAMPLE_ROWS", 5)
    samples = pd.DataFrame({"user_id": range(12), "score": [0.5] * 12})
    text = write_run_report(tmp_path / "r.html", **_kwargs(samples=samples)).read_text()
    assert "Showing the first 5 of 12 rows." in text
    sample_section = text.split('id="samples"', 1)[1]
    assert sample_section.count(">0.5000<") == 5


def test_nested_loss_history_draws_one_chart_per_entry(tmp_path: Path) -> None:
    history = {"RMSE": {"train": [1.0, 0.9], "test": [1.1, 1.0]}, "loss": {"train": [5.0, 4.0]}}
    text = write_run_report(tmp_path / "r.html", **_kwargs(loss_history=history, bar_charts={})).read_text()
    svgs = _svgs(text)
    assert [svg.find(f"{SVG_NS}title").text for svg in svgs] == ["RMSE", "loss"]


def test_atomic_write_leaves_no_tmp_files(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old report")
    write_run_report(target, **_kwargs())
    write_run_report(target, **_kwargs())  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert "old report" not in target.read_text()
    assert (target.stat().st_mode & 0o777) == 0o644


def test_failed_write_keeps_old_file_and_no_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("old report")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    import recsys.files

    monkeypatch.setattr(recsys.files.os, "replace", boom)  # the one atomic writer every stage uses
    with pytest.raises(OSError, match="disk on fire"):
        write_run_report(target, **_kwargs())
    assert target.read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


# ---------------------------------------------------------------- line chart


def _polylines(svg: ET.Element) -> list[list[tuple[float, float]]]:
    lines = []
    for el in svg.iter(f"{SVG_NS}polyline"):
        pts = [tuple(map(float, p.split(","))) for p in el.get("points", "").split()]
        lines.append(pts)
    return lines


def _circles(svg: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.get("cx")), float(c.get("cy"))) for c in svg.iter(f"{SVG_NS}circle")]


def test_line_chart_basic_structure() -> None:
    svg = ET.fromstring(
        line_chart(
            {"train RMSE": [1.2, 1.0, 0.9], "test RMSE": [1.3, 1.1, 1.05]},
            title="RMSE",
            x_label="epoch",
            y_label="RMSE",
        )
    )
    assert svg.get("width") == "640" and svg.get("height") == "320"
    assert len(_polylines(svg)) == 2
    assert all(len(pts) == 3 for pts in _polylines(svg))
    text = _all_text(svg)
    assert "train RMSE" in text and "test RMSE" in text  # legend
    assert "epoch" in text
    x_ticks = [el.text for el in svg.iter(f"{SVG_NS}text") if el.get("class") == "x-tick"]
    assert x_ticks == ["1", "2", "3"]
    y_ticks = [float(el.text) for el in svg.iter(f"{SVG_NS}text") if el.get("class") == "y-tick"]
    assert y_ticks == sorted(y_ticks) and y_ticks[0] <= 0.9 and y_ticks[-1] >= 1.3
    # Lower values are drawn lower on screen (larger y): train ends below its start.
    train = _polylines(svg)[0]
    assert train[0][1] < train[-1][1]
    assert train[0][0] < train[1][0] < train[2][0]


def test_line_chart_points_stay_inside_the_canvas() -> None:
    svg = ET.fromstring(
        line_chart({"a": [0.001, 1000.0, -50.0]}, title="t", x_label="x", y_label="y", width=400, height=200)
    )
    for pts in _polylines(svg):
        for x, y in pts:
            assert 0 <= x <= 400 and 0 <= y <= 200


def test_line_chart_empty_series() -> None:
    for series in ({}, {"train": []}, {"train": [float("nan"), float("nan")]}):
        svg = ET.fromstring(line_chart(series, title="empty", x_label="epoch", y_label="loss"))
        assert _polylines(svg) == [] and _circles(svg) == []
        assert "no data" in _all_text(svg)


def test_line_chart_single_point() -> None:
    svg = ET.fromstring(line_chart({"train": [0.5]}, title="one", x_label="epoch", y_label="loss"))
    assert _polylines(svg) == []
    ((cx, cy),) = _circles(svg)
    assert 0 < cx < 640 and 0 < cy < 320
    for value in (cx, cy):
        assert math.isfinite(value)


def test_line_chart_skips_nan_and_breaks_line() -> None:
    svg = ET.fromstring(
        line_chart(
            {"train": [1.0, 0.8, float("nan"), 0.6, 0.5, float("inf")]},
            title="gaps",
            x_label="epoch",
            y_label="loss",
        )
    )
    lines = _polylines(svg)
    assert [len(pts) for pts in lines] == [2, 2]
    assert "nan" not in ET.tostring(svg, encoding="unicode").lower()


def test_line_chart_constant_values() -> None:
    svg = ET.fromstring(line_chart({"flat": [2.0] * 4}, title="flat", x_label="e", y_label="v"))
    (pts,) = _polylines(svg)
    ys = {y for _, y in pts}
    assert len(ys) == 1
    (y,) = ys
    assert 0 < y < 320
    y_ticks = [float(el.text) for el in svg.iter(f"{SVG_NS}text") if el.get("class") == "y-tick"]
    assert y_ticks[0] < 2.0 < y_ticks[-1]


def test_line_chart_escapes_text() -> None:
    text = line_chart({MALICIOUS: [1, 2]}, title=MALICIOUS, x_label=MALICIOUS, y_label="a & b")
    assert MALICIOUS not in text
    svg = ET.fromstring(text)
    assert svg.find(f"{SVG_NS}title").text == MALICIOUS
    assert "a & b" in _all_text(svg)


def test_line_chart_drops_xml_invalid_characters() -> None:
    svg = ET.fromstring(line_chart({"a\x00b\x1f": [1, 2]}, title="t\x07", x_label="x", y_label="y"))
    assert "ab" in _all_text(svg)


def test_line_chart_many_points_has_few_x_ticks() -> None:
    svg = ET.fromstring(line_chart({"a": list(range(1000))}, title="t", x_label="x", y_label="y"))
    x_ticks = [int(el.text) for el in svg.iter(f"{SVG_NS}text") if el.get("class") == "x-tick"]
    assert 2 <= len(x_ticks) <= 12
    assert x_ticks[-1] <= 1000


# ---------------------------------------------------------------- bar chart


def _widths(svg: ET.Element) -> list[float]:
    return [float(rect.get("width")) for rect in _bars(svg)]


def test_bar_lengths_are_proportional_to_values() -> None:
    values = [0.93, 1.02, 0.5, 2.0]
    svg = ET.fromstring(bar_chart(["CF", "item mean", "user mean", "global"], values, title="RMSE"))
    widths = _widths(svg)
    assert len(widths) == 4
    for width, value in zip(widths, values, strict=False):
        assert width / widths[-1] == pytest.approx(value / 2.0, abs=1e-3)
    # All bars start at the same x (zero line).
    assert len({rect.get("x") for rect in _bars(svg)}) == 1
    # Values are printed with 4 decimals.
    printed = [el.text for el in svg.iter(f"{SVG_NS}text") if el.get("class") == "bar-value"]
    assert printed == ["0.9300", "1.0200", "0.5000", "2.0000"]


def test_bar_chart_nan_and_zero() -> None:
    svg = ET.fromstring(bar_chart(["a", "b", "c"], [1.0, float("nan"), 0.0], title="t"))
    assert [rect.get("data-value") for rect in _bars(svg)] == ["1.0", "0.0"]
    assert _widths(svg)[1] == 0.0
    printed = [el.text for el in svg.iter(f"{SVG_NS}text") if el.get("class") == "bar-value"]
    assert printed == ["1.0000", "n/a", "0.0000"]


def test_bar_chart_all_zero_and_empty() -> None:
    svg = ET.fromstring(bar_chart(["a", "b"], [0.0, 0.0], title="zeros"))
    assert _widths(svg) == [0.0, 0.0]
    svg = ET.fromstring(bar_chart([], [], title="none"))
    assert _bars(svg) == [] and "no data" in _all_text(svg)


def test_bar_chart_negative_values_extend_left() -> None:
    svg = ET.fromstring(bar_chart(["neg", "pos"], [-1.0, 3.0], title="t"))
    neg, pos = _bars(svg)
    assert float(neg.get("x")) + float(neg.get("width")) == pytest.approx(float(pos.get("x")), abs=0.01)
    assert float(pos.get("width")) == pytest.approx(3 * float(neg.get("width")), abs=0.05)


def test_bar_chart_escapes_and_validates() -> None:
    text = bar_chart([MALICIOUS, "a&b"], [1.0, 2.0], title=MALICIOUS, x_label="<b>")
    assert MALICIOUS not in text and "<b>" not in text
    ET.fromstring(text)
    with pytest.raises(ValueError):
        bar_chart(["a"], [1.0, 2.0], title="t")


# ---------------------------------------------------------------- ticks


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.9, 1.3, [0.9, 1.0, 1.1, 1.2, 1.3]),
        (0.0, 100.0, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]),
    ],
)
def test_nice_ticks_known_answers(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_nice_ticks_constant_and_invalid() -> None:
    ticks = nice_ticks(2.0, 2.0)
    assert ticks[0] < 2.0 < ticks[-1]
    assert nice_ticks(float("nan"), 1.0) == []
