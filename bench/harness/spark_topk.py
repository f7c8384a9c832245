"""Spark's all-user top-K (``ALSModel.recommendForAllUsers``) against ours on the same factors.

Spark cannot build an ``ALSModel`` from given factors, so
:func:`spark_recommend_for_all` fits ``ALS`` (one sweep, implicit preferences) on a
seeded synthetic interaction table of the wanted shape: every user has
``ratings_per_user`` distinct random items and every item at least one user, so every
user and item gets a factor row. It then times ``model.recommendForAllUsers(k)``
forced by a ``noop`` write (Spark computes every list, nothing is collected), and
copies the factors and, untimed, the lists of a seeded sample of users
(``recommendForUserSubset``) out to NumPy.

:func:`ours_recommend_for_all` answers the same question on the same factors with the
project's exact index (``ExactIndex("ip")`` over the item factors queried with the user
factors), and :func:`agreement_at_k` compares the two: Spark scores in float32 and ours
is the float64 answer, so lists may differ only where two items nearly tie at the k-th
place. :func:`run` does all three and returns the benchmark's keys.

    .venv/bin/python -m bench.harness.spark_topk --users 2000 --items 1000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

#: Shape of the full benchmark: users, items, rank, k (ML-20M's; Spark's part takes about 2.5 minutes on 2 cores).
FULL_SHAPE = (138_000, 27_000, 64, 10)
#: Shape of ``--quick``.
QUICK_SHAPE = (2_000, 1_000, 64, 10)
#: Driver memory of a session this module starts itself.
DRIVER_MEMORY = "4g"


@dataclass(frozen=True)
class SparkTopK:
    """What :func:`spark_recommend_for_all` measured.

    Attributes:
        recommend_s: Seconds of ``recommendForAllUsers(k)`` written to the ``noop`` sink.
        fit_s: Seconds of ``ALS.fit`` (one sweep; not part of the comparison).
        user_factors: ``[n_users, rank]`` float32 factors, row = user index.
        item_factors: ``[n_items, rank]`` float32 factors, row = item index.
        users: ``[m]`` int64 the users whose lists were collected (ascending; all of them up to
            ``compare_users``).
        items: ``[m, k]`` int64 Spark's lists of ``users``, best first (``-1`` where a user has none).
        n_ratings: Rows of the synthetic interaction table.
    """

    recommend_s: float
    fit_s: float
    user_factors: np.ndarray
    item_factors: np.ndarray
    users: np.ndarray
    items: np.ndarray
    n_ratings: int


def synthetic_interactions(
    n_users: int, n_items: int, ratings_per_user: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded ``(user, item, value)`` pairs: ``ratings_per_user`` distinct items per user, every item used.

    Item ``j`` is given to user ``j mod n_users`` first, so no item lacks a row; the other
    items of a user are uniform draws. Values are 1.0 (implicit feedback).

    Args:
        n_users: Users (>= 1).
        n_items: Items (>= 1).
        ratings_per_user: Distinct items per user (capped at ``n_items``).
        seed: Seed of the draws.

    Returns:
        ``([p] int32 users, [p] int32 items, [p] float32 values)``; grain one (user, item) pair.
    """
    rng = np.random.default_rng(seed)
    per = min(ratings_per_user, n_items)
    u = np.repeat(np.arange(n_users, dtype=np.int64), per)
    i = rng.integers(0, n_items, u.size)
    cover = np.arange(n_items, dtype=np.int64)
    keys = np.unique(np.concatenate([u * n_items + i, (cover % n_users) * n_items + cover]))
    return (keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32), np.ones(keys.size, np.float32)


def _factors(frame: DataFrame, n: int, rank: int) -> np.ndarray:
    """``[n, rank]`` float32 factors of an ALS ``(id, features)`` DataFrame (missing ids: zeros)."""
    pdf = frame.toPandas()
    out = np.zeros((n, rank), dtype=np.float32)
    if len(pdf):
        out[pdf["id"].to_numpy(dtype=np.int64)] = np.stack([np.asarray(f, dtype=np.float32) for f in pdf["features"]])
    return out


def _lists(frame: DataFrame, users: np.ndarray, k: int) -> np.ndarray:
    """``[len(users), k]`` int64 items of a ``(user, recommendations)`` frame, rows in ``users``' order (-1 pads)."""
    from pyspark.sql import functions as F

    pdf = frame.select("user", F.col("recommendations.item").alias("items")).toPandas()
    out = np.full((users.size, k), -1, dtype=np.int64)
    rows = np.searchsorted(users, pdf["user"].to_numpy(dtype=np.int64))
    for row, items in zip(rows, pdf["items"], strict=True):
        got = np.asarray(items, dtype=np.int64)[:k]
        out[row, : got.size] = got
    return out


def local_spark(app_name: str = "bench-spark-topk", driver_memory: str = DRIVER_MEMORY) -> tuple[SparkSession, bool]:
    """The active Spark session, or a new ``local[2]`` one with ``driver_memory``; ``(session, created here)``.

    The driver's heap is fixed when its JVM starts, so a new session gets it through
    ``PYSPARK_SUBMIT_ARGS`` (only when that is not already set).
    """
    from pyspark.sql import SparkSession

    from recsys.spark import get_spark

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {driver_memory} pyspark-shell")
    return get_spark(app_name, master="local[2]"), True


def spark_recommend_for_all(
    n_users: int,
    n_items: int,
    rank: int,
    k: int,
    seed: int,
    *,
    spark: SparkSession | None = None,
    ratings_per_user: int = 10,
    max_iter: int = 1,
    implicit_prefs: bool = True,
    num_blocks: int | None = None,
    compare_users: int = 20_000,
) -> SparkTopK:
    """Fit Spark ALS on a seeded table of the shape, then time ``recommendForAllUsers(k)``.

    Args:
        n_users: Users.
        n_items: Items (>= ``k``).
        rank: Factor dimension.
        k: Items per user.
        seed: Seed of the interactions and of ALS's initialisation.
        spark: Session to use; ``None`` for :func:`local_spark` (stopped afterwards if started here).
        ratings_per_user: Interactions per user of the synthetic table.
        max_iter: ALS sweeps (the factors' quality does not matter here, only their shape).
        implicit_prefs: Implicit-feedback ALS (values are 1.0).
        num_blocks: ALS's user and item blocks (the factor frames' partitions); ``None``: Spark's default (10).
        compare_users: Most users whose lists are collected (a seeded sample, through
            ``recommendForUserSubset``, untimed); collecting all would compute every list again.

    Returns:
        :class:`SparkTopK`.
    """
    import pandas as pd
    from pyspark.ml.recommendation import ALS

    session, started = local_spark() if spark is None else (spark, False)
    try:
        u, i, r = synthetic_interactions(n_users, n_items, ratings_per_user, seed)
        n_parts = int(session.conf.get("spark.sql.shuffle.partitions") or 4)
        df = (
            session.createDataFrame(
                pd.DataFrame({"user": u, "item": i, "rating": r}), schema="user int, item int, rating float"
            )
            .repartition(n_parts)
            .cache()
        )
        n_rows = df.count()
        als = ALS(
            rank=rank,
            maxIter=max_iter,
            regParam=0.1,
            implicitPrefs=implicit_prefs,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=seed,
            **({} if num_blocks is None else {"numUserBlocks": num_blocks, "numItemBlocks": num_blocks}),
        )
        t0 = time.perf_counter()
        model = als.fit(df)
        fit_s = time.perf_counter() - t0
        user_factors = _factors(model.userFactors, n_users, rank)
        item_factors = _factors(model.itemFactors, n_items, rank)
        logger.info(
            "Spark ALS fit: %d users x %d items, %d rows, rank %d in %.1f s", n_users, n_items, n_rows, rank, fit_s
        )
        recs = model.recommendForAllUsers(k)
        t0 = time.perf_counter()
        recs.write.format("noop").mode("overwrite").save()
        recommend_s = time.perf_counter() - t0
        logger.info("Spark recommendForAllUsers(%d): %.2f s", k, recommend_s)
        users = np.arange(n_users, dtype=np.int64)
        if n_users > compare_users:
            users = np.sort(np.random.default_rng(seed).choice(n_users, compare_users, replace=False))
        subset = session.createDataFrame(pd.DataFrame({"user": users.astype(np.int32)}), schema="user int")
        items = _lists(model.recommendForUserSubset(subset, k), users, k)
        df.unpersist()
    finally:
        if started:
            session.stop()
    return SparkTopK(recommend_s, fit_s, user_factors, item_factors, users, items, n_rows)


def ours_recommend_for_all(user_factors: np.ndarray, item_factors: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Every user's ``k`` best items by inner product with the project's exact index; ``(ids [n_users, k], seconds)``.

    The seconds cover building the index and querying every user (the float64 copies included).
    """
    from recsys.retrieval.index import ExactIndex

    t0 = time.perf_counter()
    ids, _ = ExactIndex("ip").build(item_factors).query(user_factors, k)
    return ids, time.perf_counter() - t0


def agreement_at_k(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of ``|a_row ∩ b_row| / k`` (``[m, k]`` ids each, ``-1`` never matches; 1.0 when ``m == 0``)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two [m, k] arrays of one shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        return 1.0
    hit = ((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).any(axis=2)
    return float(hit.sum(axis=1).mean() / a.shape[1])


def compare(sp: SparkTopK) -> dict[str, Any]:
    """Time ours on Spark's factors and compare the lists: the benchmark's ``*recommend_for_all*`` keys."""
    n_users, rank = sp.user_factors.shape
    k = sp.items.shape[1]
    ours, ours_s = ours_recommend_for_all(sp.user_factors, sp.item_factors, k)
    logger.info("ours (ExactIndex ip) on the same factors: %.2f s", ours_s)
    return {
        "spark_recommend_for_all_s": sp.recommend_s,
        "spark_recommend_for_all_shape": [n_users, sp.item_factors.shape[0], rank, k],
        "spark_als_fit_s": sp.fit_s,
        "spark_als_ratings": sp.n_ratings,
        "ours_recommend_for_all_s": ours_s,
        "recommend_for_all_ratio": ours_s / sp.recommend_s,
        "recommend_for_all_agreement_at_k": agreement_at_k(sp.items, ours[sp.users]),
        "recommend_for_all_identical_lists": float(
            (np.sort(sp.items, axis=1) == np.sort(ours[sp.users], axis=1)).all(1).mean()
        ),
        "recommend_for_all_agreement_users": int(sp.users.size),
    }


def run(
    n_users: int,
    n_items: int,
    rank: int,
    k: int,
    seed: int = 0,
    *,
    spark: SparkSession | None = None,
    ratings_per_user: int = 10,
    num_blocks: int | None = None,
) -> dict[str, Any]:
    """Spark's and our all-user top-``k`` on the same factors (:func:`spark_recommend_for_all`, :func:`compare`)."""
    sp = spark_recommend_for_all(
        n_users, n_items, rank, k, seed, spark=spark, ratings_per_user=ratings_per_user, num_blocks=num_blocks
    )
    out = compare(sp)
    out["spark_als_blocks"] = num_blocks or 10
    return out


def main(argv: list[str] | None = None) -> None:
    """Print :func:`run`'s figures as one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=FULL_SHAPE[0])
    ap.add_argument("--items", type=int, default=FULL_SHAPE[1])
    ap.add_argument("--rank", type=int, default=FULL_SHAPE[2])
    ap.add_argument("--k", type=int, default=FULL_SHAPE[3])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sys.stdout.write(json.dumps(run(args.users, args.items, args.rank, args.k, args.seed)) + "\n")


if __name__ == "__main__":
    main()
