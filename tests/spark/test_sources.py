"""Every raw layout loads through ``open_source`` into the staged tables, on small valid fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.data.sources import (
    EventLog,
    MovieLens100K,
    MovieLensCsv,
    MovieLensDat,
    Staged,
    SyntheticSource,
    detect_layout,
    open_source,
)
from schemas import table
from tests.fixtures import layouts as L

pytestmark = pytest.mark.spark


def _types(schema) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in schema.fields]


def _check_staged(staged: Staged, expected: dict[str, int]) -> None:
    """Same tables as expected, each with its staged schema (names and types) and row count."""
    tables = staged.tables()
    assert set(tables) == set(expected)
    for name, df in tables.items():
        assert df.columns == table(name).names, name
        assert _types(df.schema) == _types(table(name).spark), name
    got = {name: df.count() for name, df in tables.items()}
    assert got == expected


def test_ml100k_layout(spark, tmp_path: Path) -> None:
    layout = L.write_ml100k(tmp_path / "ml-100k")
    src = open_source(layout.path)
    assert isinstance(src, MovieLens100K)
    staged = src.read(spark, run_date=L.RUN_DATE)
    _check_staged(staged, layout.counts)
    items = {r.item_id: (r.title, r.year, r.genres) for r in staged.items.collect()}
    assert items == {
        "1": ("Toy Story (1995)", 1995, ["Animation", "Children's", "Comedy"]),
        "2": ("Cité des enfants perdus, La (1995)", 1995, ["Adventure", "Sci-Fi"]),
        "3": ("Nénette et Boni", 1996, ["Drama"]),  # year from the release date
    }
    splits = {(r.user_id, r.item_id): r.split for r in staged.splits.collect()}
    assert {k for k, v in splits.items() if v == "test"} == L.ML100K_TEST


def test_ml1m_dat_layout(spark, tmp_path: Path) -> None:
    layout = L.write_ml1m(tmp_path / "ml-1m")
    src = open_source(layout.path)
    assert isinstance(src, MovieLensDat)
    staged = src.read(spark, run_date=L.RUN_DATE)
    _check_staged(staged, layout.counts)
    assert staged.tags is None
    ratings = sorted((r.user_id, r.item_id, r.rating, r.ts) for r in staged.ratings.collect())
    assert ratings == sorted((u, i, float(x), t) for u, i, x, t in L.ML1M_RATINGS)
    items = {r.item_id: (r.title, r.year, r.genres) for r in staged.items.collect()}
    assert items["2"] == ("Cité des enfants perdus, La (1995)", 1995, ["Adventure", "Sci-Fi"])  # latin-1 decoded
    assert items["1"] == ("Toy Story (1995)", 1995, ["Animation", "Children's", "Comedy"])
    assert items["3"][0] == "American President, The (1995)"
    users = {r.user_id: (r.age, r.gender, r.occupation, r.country) for r in staged.users.collect()}
    assert users == {u: (a, g, L.ML1M_OCCUPATION_NAMES[o], None) for u, g, a, o, _ in L.ML1M_USERS}
    assert users["1"][0] == 1 and users["2"][0] == 56  # the age code (bucket lower bound) is kept


def test_ml10m_dat_layout_half_stars_tags_no_users(spark, tmp_path: Path) -> None:
    layout = L.write_ml10m(tmp_path / "ml-10m")
    src = open_source(layout.path)
    assert isinstance(src, MovieLensDat)
    staged = src.read(spark, run_date=L.RUN_DATE)
    _check_staged(staged, layout.counts)
    ratings = sorted((r.user_id, r.item_id, r.rating, r.ts) for r in staged.ratings.collect())
    assert ratings == sorted(L.ML10M_RATINGS)
    assert {0.5, 2.5, 3.5, 4.5} <= {r[2] for r in ratings}
    items = {r.item_id: (r.title, r.year, r.genres) for r in staged.items.collect()}
    assert items["4973"] == ("Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", 2001, ["Comedy", "Romance"])
    assert items["316"] == ("Stargate (1994)", 1994, ["Action", "Adventure", "Sci-Fi"])
    tags = sorted((r.user_id, r.item_id, r.tag, r.ts) for r in staged.tags.collect())
    assert tags == sorted(L.ML10M_TAGS)


def test_ml_latest_csv_layout(spark, tmp_path: Path) -> None:
    layout = L.write_ml_csv(tmp_path / "ml-latest-small")
    src = open_source(layout.path)
    assert isinstance(src, MovieLensCsv)
    staged = src.read(spark, run_date=L.RUN_DATE)
    _check_staged(staged, layout.counts)
    assert not any("links.csv" in f for f in staged.files)  # links.csv is not used
    ratings = sorted((r.user_id, r.item_id, r.rating, r.ts) for r in staged.ratings.collect())
    assert ratings == sorted(L.ML_CSV_RATINGS)
    items = {r.item_id: (r.title, r.year, r.genres) for r in staged.items.collect()}
    assert items == {m[0]: (m[2], m[3], m[4]) for m in L.ML_CSV_MOVIES}
    tags = sorted((r.user_id, r.item_id, r.tag, r.ts) for r in staged.tags.collect())
    assert tags == sorted(t[:4] for t in L.ML_CSV_TAGS)


def test_event_log_csv_with_items(spark, tmp_path: Path) -> None:
    layout = L.write_events_csv(tmp_path / "events")
    src = open_source(layout.path)
    assert isinstance(src, EventLog)
    staged = src.read(spark, run_date=L.RUN_DATE)
    _check_staged(staged, layout.counts)
    events = sorted((r.user_id, r.item_id, r.event, r.ts, r.value) for r in staged.events.collect())
    assert events == sorted((u, i, e.lower(), t, v) for u, i, e, t, v in L.EVENTS)
    ratings = sorted((r.user_id, r.item_id, r.rating, r.ts) for r in staged.ratings.collect())
    assert ratings == [("u2", "sku-3", 4.5, 1700000300), ("u3", "sku-1", 2.0, 1700000400)]
    items = {r.item_id: (r.title, r.year, r.genres) for r in staged.items.collect()}
    assert items == {i[0]: (i[2], i[3], i[4]) for i in L.EVENT_ITEMS}


def test_event_log_parquet_without_items(spark, tmp_path: Path) -> None:
    layout = L.write_events_parquet(tmp_path / "events-pq")
    assert detect_layout(layout.path) == "events"
    staged = open_source(layout.path).read(spark, run_date=L.RUN_DATE)
    _check_staged(staged, layout.counts)
    events = sorted((r.user_id, r.item_id, r.event, r.ts, r.value) for r in staged.events.collect())
    assert events == sorted((u, i, e.lower(), t, v) for u, i, e, t, v in L.EVENTS)
    items = {r.item_id: (r.title, r.year, r.genres) for r in staged.items.collect()}
    assert items == {i: (i, None, []) for i in ("sku-1", "sku-2", "sku-3")}  # titled by their id


def test_synthetic_source_reads_the_generator_output(spark, tmp_path: Path) -> None:
    params = dict(n_users=30, n_items=20, n_groups=2, mean_ratings_per_user=8, min_ratings_per_user=4, seed=3)
    staged = SyntheticSource(tmp_path / "synthetic", params).read(spark, run_date=L.RUN_DATE)
    tables = staged.tables()
    assert set(tables) == {"stg_ratings", "stg_items", "stg_users", "stg_quarantine"}
    for name, df in tables.items():
        assert df.columns == table(name).names, name
    assert (staged.items.count(), staged.users.count(), staged.quarantine.count()) == (20, 30, 0)
    assert staged.ratings.count() >= 30 * 4


def test_detect_layout_for_each_layout(tmp_path: Path) -> None:
    assert detect_layout(L.write_ml100k(tmp_path / "a").path) == "ml-100k"
    assert detect_layout(L.write_ml1m(tmp_path / "b").path) == "ml-dat"
    assert detect_layout(L.write_ml10m(tmp_path / "c").path) == "ml-dat"
    assert detect_layout(L.write_ml_csv(tmp_path / "d").path) == "ml-csv"
    assert detect_layout(L.write_events_csv(tmp_path / "e").path) == "events"
    assert detect_layout(L.write_events_parquet(tmp_path / "f").path) == "events"


def test_detect_layout_without_known_files_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-dataset"
    L.write_lines(folder / "README.txt", ["hello"])
    L.write_lines(folder / "links.csv", ["movieId,imdbId,tmdbId", "1,0114709,862"])
    with pytest.raises(FileNotFoundError) as e:
        detect_layout(folder)
    msg = str(e.value)
    assert str(folder) in msg and "no known layout" in msg
    for marker in ("u.data", "ratings.dat", "ratings.csv", "events.csv", "events.parquet"):
        assert marker in msg
    with pytest.raises(FileNotFoundError, match="no known layout"):
        open_source(folder)
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        detect_layout(tmp_path / "missing")
