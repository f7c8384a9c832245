"""Spark ranking metrics (recsys.evaluation.spark_metrics): known answers and parity with numpy."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.metrics import ranking_metrics
from recsys.evaluation.spark_metrics import spark_ranking_metrics

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.spark

ACCURACY = ("precision", "recall", "ndcg", "map", "hit_rate")


def to_frames(spark: SparkSession, rec: np.ndarray, relevant: list[np.ndarray]) -> tuple[DataFrame, DataFrame]:
    """The numpy inputs as the two DataFrames: one row per non-padding (user, rank), per relevant pair."""
    users, cols = np.nonzero(rec >= 0)
    rec_pdf = pd.DataFrame(
        {
            "user_idx": users.astype(np.int32),
            "item_idx": rec[users, cols].astype(np.int32),
            "rank": (cols + 1).astype(np.int32),
        }
    )
    rel_users = np.repeat(np.arange(len(relevant)), [len(r) for r in relevant]).astype(np.int32)
    rel_items = np.concatenate([np.asarray(r) for r in relevant]).astype(np.int32) if len(rel_users) else rel_users
    rel_pdf = pd.DataFrame({"user_idx": rel_users, "item_idx": rel_items})
    return (
        spark.createDataFrame(rec_pdf, "user_idx int, item_idx int, rank int"),
        spark.createDataFrame(rel_pdf, "user_idx int, item_idx int"),
    )


def test_hand_computed_small_case(spark) -> None:
    # K = 3, rel = {0, 2, 3}, rec = [0, 1, 2] and item 3 at rank 4 (past K: ignored, also by coverage).
    # Hits at ranks 1 and 3: P = 2/3, R = 2/3, DCG = 1 + 1/log2(4), IDCG over min(3, 3) = 3 ranks,
    # AP = (P@1 + P@3) / 3 = (1 + 2/3) / 3. The duplicate relevant row counts once.
    rec = spark.createDataFrame([(0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 3, 4)], "user_idx int, item_idx int, rank int")
    rel = spark.createDataFrame([(0, 0), (0, 2), (0, 3), (0, 3)], "user_idx int, item_idx int")
    m = spark_ranking_metrics(rec, rel, k=3, n_items=5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["ndcg"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3) + 1 / 2))
    assert m["map"] == pytest.approx((1 + 2 / 3) / 3)
    assert m["hit_rate"] == 1.0
    assert m["coverage"] == pytest.approx(3 / 5)
    assert m["n_users"] == 1 and m["k"] == 3


def test_parity_with_numpy_on_random_data(spark) -> None:
    rng = np.random.default_rng(11)
    n_users, n_items, k = 200, 300, 10
    rec = np.stack([rng.permutation(n_items)[:15] for _ in range(n_users)])  # 15 columns: ranks > K must be ignored
    rec[rng.random((n_users, 15)) < 0.05] = -1  # scattered padding (missing ranks)
    rec[:, 8:][rng.random(n_users) < 0.1] = -1  # some short lists
    no_recs = rng.random(n_users) < 0.08
    rec[no_recs] = -1  # users with relevant items but no recommendation rows: all-miss
    sizes = rng.integers(0, 30, size=n_users)
    sizes[rng.random(n_users) < 0.15] = 0  # some users without relevant items: not evaluated
    relevant = [rng.choice(n_items, size=n, replace=False) for n in sizes]
    relevant[0] = np.concatenate([relevant[0], relevant[0][:2]])  # duplicate pairs count once in both
    assert no_recs.sum() and (sizes == 0).sum() and (no_recs & (sizes > 0)).sum()

    want = ranking_metrics(rec, relevant, k=k, n_items=n_items)
    got = spark_ranking_metrics(*to_frames(spark, rec, relevant), k=k, n_items=n_items)
    for key in (*ACCURACY, "coverage"):
        assert got[key] == pytest.approx(want[key], abs=1e-9, rel=0), key
    assert got["n_users"] == want["n_users"] == int((sizes > 0).sum())
    assert got["k"] == k


def test_no_relevant_rows_gives_nan_accuracy(spark) -> None:
    rec = spark.createDataFrame([(0, 0, 1), (0, 1, 2)], "user_idx int, item_idx int, rank int")
    rel = spark.createDataFrame([], "user_idx int, item_idx int")
    m = spark_ranking_metrics(rec, rel, k=2, n_items=4)
    assert m["n_users"] == 0
    assert all(math.isnan(m[key]) for key in ACCURACY)
    assert m["coverage"] == pytest.approx(0.5)
