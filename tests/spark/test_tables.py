"""Spark transforms on small DataFrames with known outputs, and the MovieLens readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.data.sources import MovieLens100K
from recsys.features import tables
from schemas import table

pytestmark = pytest.mark.spark


def _ids(spark, values: list[str], col: str):
    return spark.createDataFrame([(v,) for v in values], f"{col} string")


def _as_dict(df, key: str, value: str) -> dict:
    return {r[key]: r[value] for r in df.collect()}


def test_id_map_from_scratch_is_dense_in_natural_order(spark) -> None:
    m = tables.update_id_map(None, _ids(spark, ["10", "2", "1", "2", None], "user_id"), "user_id", "user_idx")
    assert _as_dict(m, "user_id", "user_idx") == {"1": 0, "2": 1, "10": 2}


def test_id_map_keeps_existing_indices_and_appends_new_ids(spark) -> None:
    previous = spark.createDataFrame([("b", 0), ("a", 1), ("z", 5)], "item_id string, item_idx int")
    m = tables.update_id_map(previous, _ids(spark, ["a", "c", "b", "aa", "c"], "item_id"), "item_id", "item_idx")
    assert _as_dict(m, "item_id", "item_idx") == {"b": 0, "a": 1, "z": 5, "c": 6, "aa": 7}
    # Rerun with the same ids: nothing changes.
    again = tables.update_id_map(m, _ids(spark, ["a", "c"], "item_id"), "item_id", "item_idx")
    assert _as_dict(again, "item_id", "item_idx") == _as_dict(m, "item_id", "item_idx")


def test_latest_per_pair_keeps_latest_event(spark) -> None:
    df = spark.createDataFrame(
        [("u1", "i1", 3.0, 100), ("u1", "i1", 5.0, 200), ("u1", "i2", 2.0, 50), ("u1", "i2", 4.0, 50)],
        table("stg_ratings").spark,
    )
    out = {(r.user_id, r.item_id): (r.rating, r.ts) for r in tables.latest_per_pair(df).collect()}
    assert out == {("u1", "i1"): (5.0, 200), ("u1", "i2"): (4.0, 50)}  # tie on ts: higher rating


def test_random_split_is_per_user_seeded_and_keeps_train(spark) -> None:
    rows = [(f"u{u}", f"i{i}", 3.0, i) for u in range(20) for i in range(u % 7 + 1)]
    df = spark.createDataFrame(rows, table("stg_ratings").spark)
    a = tables.random_split(df, seed=1, test_fraction=0.25)
    b = tables.random_split(df.repartition(3), seed=1, test_fraction=0.25)
    c = tables.random_split(df, seed=2, test_fraction=0.25)
    key = lambda d: sorted((r.user_id, r.item_id, r.split) for r in d.collect())  # noqa: E731
    assert key(a) == key(b)  # independent of partitioning
    assert key(a) != key(c)  # depends on the seed
    per_user = {}
    for r in a.collect():
        per_user.setdefault(r.user_id, []).append(r.split)
    for user, splits in per_user.items():
        n = len(splits)
        assert splits.count("test") == int(n * 0.25), user
        assert "train" in splits


def test_fold_split_and_build_tables(spark) -> None:
    stg = spark.createDataFrame(
        [("1", "10", 4.0, 1), ("1", "11", 2.0, 2), ("2", "10", 5.0, 3), ("3", "99", 1.0, 4)],
        table("stg_ratings").spark,
    )
    splits = spark.createDataFrame(
        [("1", "10", "train"), ("1", "11", "test"), ("2", "10", "train")], table("stg_splits").spark
    )
    items = spark.createDataFrame(
        [("10", "Ten (1990)", 1990, ["Drama"]), ("11", "Eleven", None, [])], table("stg_items").spark
    )
    users = spark.createDataFrame(
        [("1", 30, "F", "artist", None), ("2", 40, "M", None, "US")], table("stg_users").spark
    )
    umap = tables.update_id_map(None, stg.select("user_id").unionByName(users.select("user_id")), "user_id", "user_idx")
    imap = tables.update_id_map(None, stg.select("item_id").unionByName(items.select("item_id")), "item_id", "item_idx")
    rated = tables.fold_split(tables.latest_per_pair(stg), splits)
    ratings = tables.build_ratings(rated, umap, imap)
    assert ratings.columns == table("ratings").names
    got = {(r.user_id, r.item_id): (r.user_idx, r.item_idx, r.split) for r in ratings.collect()}
    assert got == {
        ("1", "10"): (0, 0, "train"),
        ("1", "11"): (0, 1, "test"),
        ("2", "10"): (1, 0, "train"),
        ("3", "99"): (2, 2, None),
    }  # not in the fold: null split, rejected by the gate
    built_items = tables.build_items(items, imap)
    assert built_items.columns == table("items").names
    assert {r.item_id for r in built_items.collect()} == {"10", "11"}  # "99" has an index but no item row
    built_users = tables.build_users(users, umap)
    assert {r.user_id: r.age for r in built_users.collect()} == {"1": 30, "2": 40, "3": None}


def test_movielens_100k_source(spark, ml100k_dir: Path) -> None:
    staged = MovieLens100K(ml100k_dir, fold="u1").read(spark, run_date="2026-11-27")
    assert staged.ratings.columns == table("stg_ratings").names
    assert (staged.ratings.count(), staged.items.count(), staged.users.count()) == (100_000, 1682, 943)
    assert staged.quarantine.count() == 0
    toy = staged.items.where("item_id = '1'").first()
    assert toy.title == "Toy Story (1995)" and toy.year == 1995
    assert toy.genres == ["Animation", "Children's", "Comedy"]
    assert staged.items.where("title LIKE '%é%'").count() > 0  # latin-1 decoded
    u1 = staged.users.where("user_id = '1'").first()
    assert (u1.age, u1.gender, u1.occupation) == (24, "M", "technician")
    counts = {r.split: r["count"] for r in staged.splits.groupBy("split").count().collect()}
    assert counts == {"train": 80_000, "test": 20_000}


def test_movielens_missing_files_are_clear_errors(spark, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"u\.data"):
        MovieLens100K(tmp_path, fold=None).read(spark, run_date="2026-11-27")
