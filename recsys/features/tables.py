"""Pure Spark transforms from staged tables to the modelling tables.

Every function here maps DataFrames to a DataFrame, reads nothing and writes
nothing; ``jobs/build_tables.py`` does the I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import table

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame


def update_id_map(previous: DataFrame | None, ids: DataFrame, id_col: str, idx_col: str) -> DataFrame:
    """Extend a dense id map with unseen ids, keeping every existing index.

    New ids get ``max(previous index) + 1, + 2, ...`` in natural order (shorter
    ids first, then lexicographic, so numeric ids map in numeric order).

    Args:
        previous: The map of the last run, columns ``[id_col, idx_col]``, or ``None``.
        ids: Any DataFrame with column ``id_col`` (duplicates allowed).
        id_col: External id column name.
        idx_col: Dense index column name.

    Returns:
        Map with columns ``[id_col, idx_col]``; grain: one id.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    distinct = ids.select(id_col).where(F.col(id_col).isNotNull()).distinct()
    if previous is None:
        offset = 0
        new = distinct
    else:
        offset = previous.agg(F.max(idx_col)).first()[0]
        offset = 0 if offset is None else offset + 1
        new = distinct.join(previous.select(id_col), on=id_col, how="left_anti")
    order = Window.orderBy(F.length(id_col), id_col)
    fresh = new.withColumn(idx_col, (F.row_number().over(order) - 1 + F.lit(offset)).cast("int"))
    return fresh if previous is None else previous.select(id_col, idx_col).unionByName(fresh)


def latest_per_pair(stg_ratings: DataFrame) -> DataFrame:
    """Deduplicate ratings by (user, item), keeping the latest event.

    Ties on the timestamp keep the highest rating, so the result is deterministic.

    Args:
        stg_ratings: ``stg_ratings`` rows; grain one rating event.

    Returns:
        Same columns; grain one (user, item) pair.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("user_id", "item_id").orderBy(F.col("ts").desc(), F.col("rating").desc())
    return stg_ratings.withColumn("_n", F.row_number().over(w)).where("_n = 1").drop("_n")


def random_split(ratings: DataFrame, *, seed: int, test_fraction: float) -> DataFrame:
    """Seeded per-user split: each user's ``floor(n * test_fraction)`` ratings go to test.

    Which ratings is decided by a hash of (seed, user, item), so the split does
    not depend on partitioning or row order, and every user keeps at least one
    training rating.

    Args:
        ratings: Rows with ``user_id`` and ``item_id``; grain one (user, item).
        seed: Split seed.
        test_fraction: Share held out per user, in (0, 1).

    Returns:
        ``ratings`` with a ``split`` column (``train`` / ``test``).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(seed), "user_id", "item_id")
    w = Window.partitionBy("user_id").orderBy(h, "item_id")
    n = F.count(F.lit(1)).over(Window.partitionBy("user_id"))
    return (
        ratings.withColumn("_r", F.row_number().over(w))
        .withColumn("split", F.when(F.col("_r") <= F.floor(n * test_fraction), "test").otherwise("train"))
        .drop("_r")
    )


def fold_split(ratings: DataFrame, splits: DataFrame) -> DataFrame:
    """Attach an official fold's split; pairs outside the fold are an error upstream (null split).

    Args:
        ratings: Rows with ``user_id`` and ``item_id``; grain one (user, item).
        splits: ``stg_splits`` rows.

    Returns:
        ``ratings`` with a ``split`` column; null where the fold does not list the pair
        (the validation gate rejects nulls).
    """
    return ratings.join(splits.select("user_id", "item_id", "split"), ["user_id", "item_id"], "left")


def build_ratings(rated: DataFrame, user_map: DataFrame, item_map: DataFrame) -> DataFrame:
    """``ratings``: deduplicated, split ratings with dense indices.

    Args:
        rated: Output of :func:`latest_per_pair` plus a ``split`` column.
        user_map: ``user_map`` rows.
        item_map: ``item_map`` rows.

    Returns:
        ``ratings`` rows (schema ``schemas.ratings``); grain one (user, item).
    """
    return rated.join(user_map, "user_id").join(item_map, "item_id").select(*table("ratings").names)


def build_items(stg_items: DataFrame, item_map: DataFrame) -> DataFrame:
    """``items``: the catalogue with dense indices (items of the item file only).

    Ratings of items missing from the item file keep their index in the map and
    fail the validation gate's referential check, so they are never dropped
    silently.
    """
    return stg_items.join(item_map, "item_id").select(*table("items").names)


def build_users(stg_users: DataFrame, user_map: DataFrame) -> DataFrame:
    """``users``: every user of the map, with side data where the source has it."""
    cols = [c for c in table("users").names if c not in ("user_id", "user_idx")]
    return user_map.join(stg_users, "user_id", "left").select("user_idx", "user_id", *cols)
