"""The pipeline's tables for an evaluation split, built by the pipeline's own Spark transforms.

Benchmarks that need the feature tables for a split of their own (a cold-start
split, an official fold) read a source's staged tables, index the ratings with
:func:`indexed_ratings`, set each rating's ``split`` themselves, and build the
feature tables with :func:`feature_frames`: rating statistics then come from
their training ratings only, exactly as the nightly ``build_tables`` job computes
them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


@dataclass
class Indexed:
    """A source's ratings with the pipeline's dense indices.

    Attributes:
        ratings: ``ratings`` rows (pandas, ``split`` = ``train`` everywhere until the caller sets it),
            sorted by ``(user_idx, item_idx)``; grain one (user, item).
        user_map: ``user_map`` (Spark, cached).
        item_map: ``item_map`` (Spark, cached).
        n_users: Users of the index space.
        n_items: Items of the index space.
    """

    ratings: pd.DataFrame
    user_map: Any
    item_map: Any
    n_users: int
    n_items: int


def indexed_ratings(staged: Any) -> Indexed:
    """Id maps and ``ratings`` of staged tables (:class:`recsys.data.sources.Staged`) by the pipeline's transforms."""
    from pyspark.sql import functions as F

    from recsys.features import tables

    user_map = tables.update_id_map(
        None, staged.ratings.select("user_id").unionByName(staged.users.select("user_id")), "user_id", "user_idx"
    ).cache()
    item_map = tables.update_id_map(None, staged.items.select("item_id"), "item_id", "item_idx").cache()
    rated, _ = tables.unknown_items(tables.latest_per_pair(staged.ratings), item_map)
    frame = tables.build_ratings(rated.withColumn("split", F.lit("train")), user_map, item_map).toPandas()
    frame = frame.sort_values(["user_idx", "item_idx"], ignore_index=True)
    return Indexed(frame, user_map, item_map, user_map.count(), item_map.count())


def feature_frames(
    spark: Any, staged: Any, indexed: Indexed, ratings: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(user_features, item_features)`` (pandas, row ``k`` = index ``k``) for ``ratings`` with the caller's ``split``.

    Raises:
        ValueError: The tables do not hold exactly one row per index.
    """
    from recsys.features import features, tables
    from schemas import table

    frame = spark.createDataFrame(ratings[table("ratings").names], schema=table("ratings").spark).cache()
    items = tables.build_items(staged.items, indexed.item_map).cache()
    users = tables.build_users(staged.users, indexed.user_map).cache()
    vocab = features.build_vocab(items, users).cache()
    item_features = features.build_item_features(items, frame, staged.tags, vocab, indexed.item_map).toPandas()
    user_features = features.build_user_features(users, frame, items, vocab).toPandas()
    item_features = item_features.sort_values("item_idx", ignore_index=True)
    user_features = user_features.sort_values("user_idx", ignore_index=True)
    if not (
        np.array_equal(item_features["item_idx"], np.arange(indexed.n_items))
        and np.array_equal(user_features["user_idx"], np.arange(indexed.n_users))
    ):
        raise ValueError("the feature tables do not hold exactly one row per user_idx / item_idx")
    for df in (frame, items, users, vocab):
        df.unpersist()
    return user_features, item_features
