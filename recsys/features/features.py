"""Feature tables for the models: item and user features, and their vocabularies.

Pure Spark transforms. Rating statistics use the training split only, so no
information from test ratings leaks into the features a model is evaluated with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import table

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

AGE_BUCKETS: tuple[tuple[int, str], ...] = (
    (18, "under 18"),
    (25, "18-24"),
    (35, "25-34"),
    (45, "35-44"),
    (50, "45-49"),
    (56, "50-55"),
    (999, "56+"),
)
N_TAGS = 5


def age_bucket(age: Column) -> Column:
    """The MovieLens 1M age bucket of an age (null stays null)."""
    from pyspark.sql import functions as F

    out = F.lit(None).cast("string")
    for upper, label in reversed(AGE_BUCKETS):
        out = F.when(age < upper, F.lit(label)).otherwise(out)
    return F.when(age.isNull(), F.lit(None).cast("string")).otherwise(out)


def demographic_tokens(users: DataFrame) -> DataFrame:
    """(user_idx, tokens) with tokens like ``gender=F``, ``age=25-34``, ``occupation=artist``, ``country=US``."""
    from pyspark.sql import functions as F

    parts = [
        F.when(F.col("gender").isNotNull(), F.concat(F.lit("gender="), "gender")),
        F.when(F.col("age").isNotNull(), F.concat(F.lit("age="), age_bucket(F.col("age")))),
        F.when(F.col("occupation").isNotNull(), F.concat(F.lit("occupation="), "occupation")),
        F.when(F.col("country").isNotNull(), F.concat(F.lit("country="), "country")),
    ]
    return users.select("user_idx", F.filter(F.array(*parts), lambda x: x.isNotNull()).alias("tokens"))


def build_vocab(items: DataFrame, users: DataFrame) -> DataFrame:
    """``feature_vocab``: sorted genres and demographic tokens, indexed from 0."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    genres = items.select(F.explode("genres").alias("value")).distinct().withColumn("feature", F.lit("genre"))
    demo = (
        demographic_tokens(users)
        .select(F.explode("tokens").alias("value"))
        .distinct()
        .withColumn("feature", F.lit("demographic"))
    )
    both = genres.unionByName(demo)
    w = Window.partitionBy("feature").orderBy("value")
    return both.withColumn("index", (F.row_number().over(w) - 1).cast("int")).select(*table("feature_vocab").names)


def _vocab(vocab: DataFrame, feature: str) -> list[str]:
    rows = vocab.where(vocab.feature == feature).orderBy("index").collect()
    return [r.value for r in rows]


def _multi_hot(values: Column, vocab: list[str]) -> Column:
    from pyspark.sql import functions as F

    if not vocab:
        return F.array().cast("array<float>")
    return F.array(*[F.array_contains(values, v).cast("float") for v in vocab])


def build_item_features(
    items: DataFrame, ratings: DataFrame, tags: DataFrame | None, vocab: DataFrame, item_map: DataFrame
) -> DataFrame:
    """``item_features``: year, multi-hot genres, training rating count and mean, top tags.

    Args:
        items: ``items`` rows.
        ratings: ``ratings`` rows (only ``split == 'train'`` is used).
        tags: ``stg_tags`` rows, or ``None``.
        vocab: ``feature_vocab`` rows.
        item_map: ``item_map`` rows (to index tags).

    Returns:
        ``item_features`` rows; grain one item.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    stats = (
        ratings.where("split = 'train'")
        .groupBy("item_idx")
        .agg(F.count(F.lit(1)).alias("n_ratings"), F.avg("rating").alias("mean_rating"))
    )
    out = items.join(stats, "item_idx", "left").select(
        "item_idx",
        "year",
        _multi_hot(F.col("genres"), _vocab(vocab, "genre")).alias("genres"),
        F.coalesce("n_ratings", F.lit(0)).cast("long").alias("n_ratings"),
        "mean_rating",
    )
    if tags is not None:
        counted = (
            tags.join(item_map, "item_id").withColumn("tag", F.lower(F.trim("tag"))).groupBy("item_idx", "tag").count()
        )
        w = Window.partitionBy("item_idx").orderBy(F.col("count").desc(), "tag")
        top = (
            counted.withColumn("_r", F.row_number().over(w))
            .where(F.col("_r") <= N_TAGS)
            .groupBy("item_idx")
            .agg(F.sort_array(F.collect_list(F.struct("_r", "tag"))).alias("_t"))
            .select("item_idx", F.col("_t.tag").alias("tags"))
        )
        out = out.join(top, "item_idx", "left")
    else:
        out = out.withColumn("tags", F.lit(None).cast("array<string>"))
    out = out.withColumn("tags", F.coalesce("tags", F.array().cast("array<string>")))
    return out.select(*table("item_features").names)


def build_user_features(users: DataFrame, ratings: DataFrame, items: DataFrame, vocab: DataFrame) -> DataFrame:
    """``user_features``: one-hot demographics, training rating count and mean, per-genre mean and count.

    Args:
        users: ``users`` rows.
        ratings: ``ratings`` rows (only ``split == 'train'`` is used).
        items: ``items`` rows (genres).
        vocab: ``feature_vocab`` rows.

    Returns:
        ``user_features`` rows; grain one user.
    """
    from pyspark.sql import functions as F

    genres = _vocab(vocab, "genre")
    train = ratings.where("split = 'train'")
    stats = train.groupBy("user_idx").agg(F.count(F.lit(1)).alias("n_ratings"), F.avg("rating").alias("mean_rating"))
    per_genre = (
        train.join(items.select("item_idx", "genres"), "item_idx")
        .select("user_idx", "rating", F.explode("genres").alias("genre"))
        .groupBy("user_idx", "genre")
        .agg(F.avg("rating").alias("m"), F.count(F.lit(1)).alias("c"))
        .groupBy("user_idx")
        .agg(
            F.map_from_entries(F.collect_list(F.struct("genre", "m"))).alias("_m"),
            F.map_from_entries(F.collect_list(F.struct("genre", "c"))).alias("_c"),
        )
    )

    def vec(col: str) -> Column:
        if not genres:
            return F.array().cast("array<float>")
        return F.array(*[F.coalesce(F.element_at(F.col(col), F.lit(g)), F.lit(0)).cast("float") for g in genres])

    demo = demographic_tokens(users)
    out = (
        users.select("user_idx")
        .join(demo, "user_idx", "left")
        .join(stats, "user_idx", "left")
        .join(per_genre, "user_idx", "left")
        .select(
            "user_idx",
            _multi_hot(F.coalesce("tokens", F.array().cast("array<string>")), _vocab(vocab, "demographic")).alias(
                "demographics"
            ),
            F.coalesce("n_ratings", F.lit(0)).cast("long").alias("n_ratings"),
            "mean_rating",
            vec("_m").alias("genre_mean_rating"),
            vec("_c").alias("genre_counts"),
        )
    )
    return out.select(*table("user_features").names)
