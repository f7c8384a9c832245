"""Labels, splits and feature tables on hand-made data with known answers."""

from __future__ import annotations

import math

import pytest

from recsys.features import features, tables
from schemas import table

pytestmark = pytest.mark.spark

LABEL_RULES = dict(
    positive_events=["purchase", "like"],
    exposure_events=["impression", "view", "click", "watch"],
    watch_event="watch",
    min_watch_seconds=30.0,
)


def test_labels_from_events_rules(spark) -> None:
    events = spark.createDataFrame(
        [
            ("u1", "i1", "purchase", 10, 19.99),  # purchase -> 1 (even without an impression)
            ("u1", "i2", "impression", 10, None),
            ("u1", "i2", "like", 20, None),  # like -> 1
            ("u1", "i3", "impression", 5, None),
            ("u1", "i3", "watch", 30, 45.0),  # watched 45 s -> 1
            ("u1", "i4", "impression", 5, None),
            ("u1", "i4", "watch", 40, 10.0),  # watched 10 s -> 0
            ("u1", "i5", "impression", 5, None),  # shown, nothing else -> 0
            ("u1", "i6", "hover", 50, None),  # only an unknown event type: never shown -> no row
            ("u2", "i1", "impression", 100, None),
            ("u2", "i1", "hover", 200, None),  # unknown type ignored (also its ts)
            ("u2", "i3", "watch", 300, None),  # a watch without seconds -> 0
            ("u2", "i4", "watch", 30, 30.0),  # exactly the minimum -> 1
            ("u2", "i5", "click", 60, None),
            ("u2", "i5", "purchase", 70, 5.0),
            ("u2", "i5", "impression", 80, None),
        ],
        table("stg_events").spark,
    )
    labels = tables.labels_from_events(events, **LABEL_RULES)
    assert labels.columns == ["user_id", "item_id", "label", "ts"]
    got = {(r.user_id, r.item_id): (r.label, r.ts) for r in labels.collect()}
    assert got == {
        ("u1", "i1"): (1, 10),
        ("u1", "i2"): (1, 20),
        ("u1", "i3"): (1, 30),
        ("u1", "i4"): (0, 40),
        ("u1", "i5"): (0, 5),
        ("u2", "i1"): (0, 100),
        ("u2", "i3"): (0, 300),
        ("u2", "i4"): (1, 30),
        ("u2", "i5"): (1, 80),
    }  # ("u1", "i6") and ("u2", "i2"): never shown, no row


def _ratings(spark, rows: list[tuple]):
    """``ratings`` rows from (user_idx, item_idx, rating, ts, split); ids are ``u<idx>`` / ``i<idx>``."""
    return spark.createDataFrame(
        [(u, i, f"u{u}", f"i{i}", float(r), t, s) for u, i, r, t, s in rows], table("ratings").spark
    )


def test_labels_from_ratings_threshold(spark) -> None:
    ratings = _ratings(
        spark, [(0, 0, 3.5, 1, "train"), (0, 1, 4.0, 2, "train"), (1, 0, 4.5, 3, "test"), (1, 1, 1.0, 4, "test")]
    )
    four = tables.labels_from_ratings(ratings, 4.0)
    assert four.columns == table("interactions").names
    assert {(r.user_idx, r.item_idx): (r.label, r.split, r.ts) for r in four.collect()} == {
        (0, 0): (0, "train", 1),
        (0, 1): (1, "train", 2),
        (1, 0): (1, "test", 3),
        (1, 1): (0, "test", 4),
    }  # the threshold itself is a like
    three_and_half = tables.labels_from_ratings(ratings, 3.5)
    assert sorted(r.label for r in three_and_half.collect()) == [0, 1, 1, 1]


def test_temporal_split_holds_out_each_users_latest_ratings(spark) -> None:
    rows = (
        [("a", f"{k}", 3.0, 100 + k) for k in range(1, 6)]  # 5 ratings -> floor(2.0) = 2 latest in test
        + [("b", "1", 3.0, 50), ("b", "2", 3.0, 10), ("b", "3", 3.0, 30)]  # 3 -> floor(1.2) = 1
        + [("c", "1", 3.0, 5)]  # 1 -> floor(0.4) = 0: all train
        + [("d", "9", 3.0, 7), ("d", "10", 3.0, 7), ("d", "2", 3.0, 1)]  # tie on the latest ts
    )
    df = spark.createDataFrame(rows, table("stg_ratings").spark)
    out = tables.temporal_split(df, test_fraction=0.4)
    assert out.columns == [*df.columns, "split"]
    test = {(r.user_id, r.item_id) for r in out.collect() if r.split == "test"}
    # Ties on the timestamp: the larger item id first, ids compared as the id maps order them
    # (shorter first, so numeric ids compare as numbers): "10" > "9".
    assert test == {("a", "5"), ("a", "4"), ("b", "1"), ("d", "10")}
    again = {
        (r.user_id, r.item_id)
        for r in tables.temporal_split(df.repartition(3), test_fraction=0.4).collect()
        if r.split == "test"
    }
    assert again == test  # independent of partitioning


# --- Feature tables ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue(spark):
    """Items, users, vocab and ratings with train and test ratings."""
    items = spark.createDataFrame(
        [
            (0, "i0", "Heat (1995)", 1995, ["Drama", "Action"]),
            (1, "i1", "Clerks (1994)", 1994, ["Comedy"]),
            (2, "i2", "Ran (1985)", 1985, ["Drama"]),
            (3, "i3", "Untitled", None, []),
        ],
        table("items").spark,
    )
    users = spark.createDataFrame(
        [
            (0, "u0", 1, "F", "K-12 student", None),
            (1, "u1", 25, "M", "writer", "US"),
            (2, "u2", None, None, None, None),
            (3, "u3", 56, "F", None, None),
        ],
        table("users").spark,
    )
    ratings = _ratings(
        spark,
        [
            (0, 0, 4.0, 1, "train"),
            (0, 1, 2.0, 2, "train"),
            (0, 2, 5.0, 3, "test"),
            (1, 0, 5.0, 4, "train"),
            (1, 1, 3.0, 5, "train"),
            (1, 2, 1.0, 6, "train"),
            (2, 0, 0.5, 7, "test"),  # an extreme test rating: must not move item 0's mean
            (2, 3, 5.0, 8, "test"),  # item 3 has test ratings only
        ],
    )
    vocab = features.build_vocab(items, users).cache()
    return items, users, ratings, vocab


def test_build_vocab_is_sorted_and_indexed_per_feature(catalogue) -> None:
    _, _, _, vocab = catalogue
    assert vocab.columns == table("feature_vocab").names
    got = {(r.feature, r["index"]): r.value for r in vocab.collect()}  # r.index is tuple.index
    assert [got[("genre", k)] for k in range(3)] == ["Action", "Comedy", "Drama"]
    demo = [v for (f, _), v in sorted(got.items()) if f == "demographic"]
    assert demo == sorted(
        [
            "gender=F",
            "gender=M",
            "age=under 18",
            "age=25-34",
            "age=56+",
            "occupation=K-12 student",
            "occupation=writer",
            "country=US",
        ]
    )


def test_build_item_features(spark, catalogue) -> None:
    items, _, ratings, vocab = catalogue
    item_map = items.select("item_id", "item_idx")
    tags = spark.createDataFrame(
        [("u", "i0", t, 1) for t in ["Funny", " funny ", "funny", "dark", "dark", "aaa", "aaa", "zz", "b", "c"]]
        + [("u", "i2", "Samurai", 2), ("u", "i9", "not in the catalogue", 3)],
        table("stg_tags").spark,
    )
    out = features.build_item_features(items, ratings, tags, vocab, item_map)
    assert out.columns == table("item_features").names
    got = {r.item_idx: r for r in out.collect()}
    assert set(got) == {0, 1, 2, 3}
    # Multi-hot over the genre vocab (Action, Comedy, Drama).
    assert [got[k].genres for k in range(4)] == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    assert [got[k].year for k in range(4)] == [1995, 1994, 1985, None]
    # Training ratings only: item 0's test rating of 0.5 does not count.
    assert (got[0].n_ratings, got[0].mean_rating) == (2, 4.5)
    assert (got[1].n_ratings, got[1].mean_rating) == (2, 2.5)
    assert (got[2].n_ratings, got[2].mean_rating) == (1, 1.0)
    assert (got[3].n_ratings, got[3].mean_rating) == (0, None)
    # Top 5 tags, lower-cased and trimmed, most used first, ties alphabetical.
    assert got[0].tags == ["funny", "aaa", "dark", "b", "c"]
    assert (got[1].tags, got[2].tags, got[3].tags) == ([], ["samurai"], [])
    without_tags = features.build_item_features(items, ratings, None, vocab, item_map)
    assert {r.item_idx: r.tags for r in without_tags.collect()} == {0: [], 1: [], 2: [], 3: []}


def test_age_buckets(spark) -> None:
    from pyspark.sql import functions as F

    ages = [1, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 90, None]
    df = spark.createDataFrame([(a,) for a in ages], "age int")
    got = [r.b for r in df.select(features.age_bucket(F.col("age")).alias("b")).collect()]
    assert got == [
        "under 18",
        "under 18",
        "18-24",
        "18-24",
        "25-34",
        "25-34",
        "35-44",
        "35-44",
        "45-49",
        "45-49",
        "50-55",
        "50-55",
        "56+",
        "56+",
        None,
    ]


def test_build_user_features(catalogue) -> None:
    items, users, ratings, vocab = catalogue
    out = features.build_user_features(users, ratings, items, vocab)
    assert out.columns == table("user_features").names
    got = {r.user_idx: r for r in out.collect()}
    assert set(got) == {0, 1, 2, 3}
    demo = [r.value for r in vocab.where("feature = 'demographic'").orderBy("index").collect()]

    def one_hot(*tokens: str) -> list[float]:
        assert set(tokens) <= set(demo)
        return [1.0 if v in tokens else 0.0 for v in demo]

    assert got[0].demographics == one_hot("gender=F", "age=under 18", "occupation=K-12 student")
    assert got[1].demographics == one_hot("gender=M", "age=25-34", "occupation=writer", "country=US")
    assert got[2].demographics == [0.0] * len(demo)  # nothing known
    assert got[3].demographics == one_hot("gender=F", "age=56+")
    # Per genre (Action, Comedy, Drama), training ratings only: user 0's test rating of 5 on a drama does not count.
    assert (got[0].n_ratings, got[0].mean_rating) == (2, 3.0)
    assert got[0].genre_mean_rating == [4.0, 2.0, 4.0]
    assert got[0].genre_counts == [1.0, 1.0, 1.0]
    assert (got[1].n_ratings, got[1].mean_rating) == (3, 3.0)
    assert got[1].genre_mean_rating == [5.0, 3.0, 3.0]  # drama: (5 + 1) / 2
    assert got[1].genre_counts == [1.0, 1.0, 2.0]
    for k in (2, 3):  # test ratings only / no ratings: zeros, no mean
        assert (got[k].n_ratings, got[k].mean_rating) == (0, None)
        assert got[k].genre_mean_rating == [0.0, 0.0, 0.0] and got[k].genre_counts == [0.0, 0.0, 0.0]
    assert all(not math.isnan(x) for r in got.values() for x in r.genre_mean_rating)
