"""Top-K ranking metrics on Spark, for data that does not fit one machine.

The definitions are those of :func:`recsys.evaluation.metrics.ranking_metrics`
(precision, recall, NDCG with binary gains, MAP@K, hit rate, coverage), computed
with DataFrame operations (join, groupBy, window); only one row of final
aggregates comes back to the driver. A parity test holds the two
implementations to the same numbers.

pyspark is imported inside the function, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

__all__ = ["spark_ranking_metrics"]

logger = logging.getLogger(__name__)


def spark_ranking_metrics(
    recommendations: DataFrame, relevant: DataFrame, *, k: int = 10, n_items: int
) -> dict[str, float]:
    """Precision, recall, NDCG, MAP, hit rate (at K) and coverage of ranked recommendations.

    For user ``u`` with relevant set ``rel`` and ``rel_r`` = 1 when the item at
    rank ``r`` is relevant (see :func:`recsys.evaluation.metrics.ranking_metrics`):

    * precision@K = |rec_K ∩ rel| / K;  recall@K = |rec_K ∩ rel| / |rel|;
    * NDCG@K = DCG / IDCG, DCG = Σ_{r≤K} rel_r / log2(r+1),
      IDCG = Σ_{r=1..min(|rel|,K)} 1 / log2(r+1);
    * AP@K = (1 / min(|rel|,K)) Σ_{r≤K} P@r · rel_r;  hit rate@K = 1 if any hit;
    * coverage = |distinct items recommended at rank ≤ K (any user)| / n_items.

    Evaluated users are the users with at least one relevant row; the accuracy
    metrics are means over them. A user with relevant items but no
    recommendation rows counts as all-miss (0 for every accuracy metric); a user
    with recommendations but no relevant item is not evaluated (its rows still
    count for coverage). A user with fewer than K rows is as if padded with
    misses. Duplicate relevant pairs count once.

    Args:
        recommendations: Rows ``(user_idx, item_idx, rank)``, grain one
            (user, rank), ``rank`` starting at 1; rows with ``rank > k`` are
            ignored. Each user's items must be distinct. A null or negative
            ``item_idx`` is padding (a miss).
        relevant: Rows ``(user_idx, item_idx)``, grain one relevant (user, item) pair.
        k: The cut-off K (>= 1).
        n_items: Catalogue size, the denominator of coverage.

    Returns:
        ``precision``, ``recall``, ``ndcg``, ``map``, ``hit_rate`` (NaN when no
        user is evaluated), ``coverage``, ``n_users`` (users evaluated) and ``k``.

    Raises:
        ValueError: If ``k < 1`` or ``n_items < 1``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    t0 = time.perf_counter()

    rec = recommendations.select(
        F.col("user_idx").cast("long").alias("user_idx"),
        F.col("item_idx").cast("long").alias("item_idx"),
        F.col("rank").cast("int").alias("rank"),
    ).where((F.col("rank") >= 1) & (F.col("rank") <= k) & (F.col("item_idx") >= 0))  # null item_idx drops too
    rel = (
        relevant.select(
            F.col("user_idx").cast("long").alias("user_idx"), F.col("item_idx").cast("long").alias("item_idx")
        )
        .where(F.col("user_idx").isNotNull() & F.col("item_idx").isNotNull())
        .dropDuplicates(["user_idx", "item_idx"])
    )

    n_rel = rel.groupBy("user_idx").agg(F.count(F.lit(1)).alias("n_rel"))
    # One row per hit; hit_no = number of hits at ranks <= this one, so P@rank = hit_no / rank.
    hits = rec.join(rel, ["user_idx", "item_idx"], "inner").withColumn(
        "hit_no", F.row_number().over(Window.partitionBy("user_idx").orderBy("rank"))
    )
    per_user_hits = hits.groupBy("user_idx").agg(
        F.count(F.lit(1)).alias("n_hits"),
        F.sum(1.0 / F.log2(F.col("rank") + 1.0)).alias("dcg"),
        F.sum(F.col("hit_no") / F.col("rank")).alias("ap_sum"),
    )
    users = n_rel.join(per_user_hits, "user_idx", "left").fillna(0, subset=["n_hits", "dcg", "ap_sum"])
    capped = F.least(F.col("n_rel"), F.lit(k))
    idcg = F.aggregate(F.sequence(F.lit(1), capped), F.lit(0.0), lambda acc, r: acc + 1.0 / F.log2(r + 1.0))
    per_user = users.select(
        (F.col("n_hits") / F.lit(k)).alias("precision"),
        (F.col("n_hits") / F.col("n_rel")).alias("recall"),
        (F.col("dcg") / idcg).alias("ndcg"),
        (F.col("ap_sum") / capped).alias("ap"),
        (F.col("n_hits") > 0).cast("double").alias("hit"),
    )
    accuracy = per_user.agg(
        F.avg("precision").alias("precision"),
        F.avg("recall").alias("recall"),
        F.avg("ndcg").alias("ndcg"),
        F.avg("ap").alias("map"),
        F.avg("hit").alias("hit_rate"),
        F.count(F.lit(1)).alias("n_users"),
    )
    distinct_items = rec.agg(F.countDistinct("item_idx").alias("n_distinct_items"))
    row = accuracy.crossJoin(distinct_items).collect()[0]  # one row of aggregates

    def _num(name: str) -> float:
        value = row[name]
        return math.nan if value is None else float(value)

    n_users = int(row["n_users"])
    if n_users == 0:
        logger.warning("spark_ranking_metrics: no user has a relevant item; accuracy metrics are NaN")
    out: dict[str, float] = {name: _num(name) for name in ("precision", "recall", "ndcg", "map", "hit_rate")}
    out["coverage"] = int(row["n_distinct_items"]) / n_items
    out["n_users"] = n_users
    out["k"] = k
    logger.info("spark_ranking_metrics@%d: %d users evaluated, %.1f s", k, n_users, time.perf_counter() - t0)
    return out
