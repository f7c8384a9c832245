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
    from pyspark.sql import functions as F

    return _hold_out_first(ratings, [F.xxhash64(F.lit(seed), "user_id", "item_id"), F.col("item_id")], test_fraction)


def _hold_out_first(ratings: DataFrame, order: list, test_fraction: float) -> DataFrame:
    """Per user, the first ``floor(n * test_fraction)`` rows in ``order`` go to test, the rest to train."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("user_id").orderBy(*order)
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


def superseded_pairs(stg_ratings: DataFrame) -> DataFrame:
    """Rating events replaced by a later rating of the same (user, item), as quarantine rows.

    Not bad input (people re-rate), but not used either, so they are kept with
    the reason ``duplicate_superseded`` rather than dropped.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("user_id", "item_id").orderBy(F.col("ts").desc(), F.col("rating").desc())
    old = stg_ratings.withColumn("_n", F.row_number().over(w)).where("_n > 1").drop("_n")
    return quarantine_rows(
        old, "stg_ratings", "duplicate_superseded", "a later rating of the same (user, item) replaces this one"
    )


def quarantine_rows(df: DataFrame, source: str, code: str, reason: str) -> DataFrame:
    """Rows of ``df`` as ``quarantine`` rows of the build stage (the row as JSON)."""
    from pyspark.sql import functions as F

    return df.select(
        F.lit("build").alias("stage"),
        F.lit(source).alias("source_file"),
        F.lit(None).cast("long").alias("line_number"),
        F.to_json(F.struct(*df.columns)).alias("raw_line"),
        F.lit(code).alias("reason_code"),
        F.lit(f"{code}: {reason}").alias("reason"),
    )


def unknown_items(rated: DataFrame, item_map: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Split ratings into those of catalogue items and those of items missing from the item file.

    Returns:
        ``(known ratings, quarantine rows with reason unknown_item)``.
    """
    known = rated.join(item_map.select("item_id"), "item_id", "left_semi")
    unknown = rated.join(item_map.select("item_id"), "item_id", "left_anti")
    cols = [c for c in rated.columns if c != "split"]
    return known, quarantine_rows(
        unknown.select(*cols), "stg_ratings", "unknown_item", "the item is not in the item file"
    )


def temporal_split(ratings: DataFrame, *, test_fraction: float) -> DataFrame:
    """Each user's latest ``floor(n * test_fraction)`` ratings go to test.

    Ties on the timestamp: the larger item id first, in the id maps' natural order
    (longer ids are larger, so numeric ids compare as numbers: ``"10" > "9"``).

    Args:
        ratings: Rows with ``user_id``, ``item_id``, ``ts``; grain one (user, item).
        test_fraction: Share held out per user.

    Returns:
        ``ratings`` with a ``split`` column.
    """
    from pyspark.sql import functions as F

    order = [F.col("ts").desc(), F.length("item_id").desc(), F.col("item_id").desc()]
    return _hold_out_first(ratings, order, test_fraction)


def labels_from_ratings(ratings: DataFrame, like_threshold: float) -> DataFrame:
    """``interactions`` from explicit ratings: 1 when rating >= ``like_threshold``, else 0.

    Args:
        ratings: ``ratings`` rows.
        like_threshold: Lowest rating that counts as a like.

    Returns:
        ``interactions`` rows; grain one (user, item).
    """
    from pyspark.sql import functions as F

    return ratings.withColumn("label", (F.col("rating") >= like_threshold).cast("int")).select(
        *table("interactions").names
    )


def labels_from_events(
    events: DataFrame,
    *,
    positive_events: list[str],
    exposure_events: list[str],
    watch_event: str,
    min_watch_seconds: float,
) -> DataFrame:
    """Binary labels per (user, item) from an event log.

    Rules (the course's binary labels): any positive event (e.g. purchase, like) or
    watching at least ``min_watch_seconds`` -> 1; shown (an exposure event) but no
    positive -> 0; never shown -> no row. Other events are ignored. ``ts`` is the
    latest relevant event.

    Args:
        events: ``stg_events`` rows.
        positive_events: Event types that are positive on their own.
        exposure_events: Event types that mean the item was shown.
        watch_event: Event type whose value is watch seconds.
        min_watch_seconds: Watch time that makes a positive.

    Returns:
        (user_id, item_id, label, ts); grain one (user, item).
    """
    from pyspark.sql import functions as F

    positive = F.col("event").isin(*positive_events) | (
        (F.col("event") == watch_event) & (F.coalesce(F.col("value"), F.lit(0.0)) >= min_watch_seconds)
    )
    relevant = events.where(F.col("event").isin(*positive_events, *exposure_events, watch_event))
    return relevant.groupBy("user_id", "item_id").agg(
        F.max(positive.cast("int")).alias("label"), F.max("ts").alias("ts")
    )


def build_interactions(labels: DataFrame, user_map: DataFrame, item_map: DataFrame) -> DataFrame:
    """``interactions`` from (user_id, item_id, label, ts, split) rows and the id maps."""
    return labels.join(user_map, "user_id").join(item_map, "item_id").select(*table("interactions").names)
