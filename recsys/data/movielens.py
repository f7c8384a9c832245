"""MovieLens 100K read with Spark into the staged layout (``stg_*`` tables).

Files (see the dataset's README): ``u.data`` (tab-separated user, item, rating,
timestamp), ``u.item`` (``|``-separated, latin-1: id, title, release date,
video release date, IMDb URL, 19 genre flags), ``u.user`` (``|``-separated: id,
age, gender, occupation, zip code) and ``u.genre`` (genre name, index). The
official folds ``u1``..``u5`` are ``uN.base`` / ``uN.test`` in the
``u.data`` layout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from schemas import table

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
REQUIRED_FILES = ("u.data", "u.item", "u.user")


def check_dir(path: Path) -> Path:
    """Check that ``path`` holds MovieLens 100K.

    Raises:
        FileNotFoundError: Naming the first missing file.
    """
    path = Path(path)
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise FileNotFoundError(f"MovieLens 100K file {path / name} is missing")
    return path


def _ratings_file(spark: SparkSession, path: Path) -> DataFrame:
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    raw = StructType(
        [
            StructField("user_id", StringType()),
            StructField("item_id", StringType()),
            StructField("rating", StringType()),
            StructField("ts", StringType()),
        ]
    )
    df = spark.read.csv(str(path), sep="\t", schema=raw, mode="FAILFAST")
    return df.select(
        "user_id",
        "item_id",
        df.rating.cast("double").alias("rating"),
        df.ts.cast(LongType()).alias("ts"),
    )


def read_ratings(spark: SparkSession, path: Path) -> DataFrame:
    """``u.data`` as ``stg_ratings`` (grain: one rating event)."""
    df = _ratings_file(spark, check_dir(path) / "u.data")
    return df.select(*table("stg_ratings").names)


def read_items(spark: SparkSession, path: Path) -> DataFrame:
    """``u.item`` as ``stg_items`` (grain: one item); year from the release date."""
    from pyspark.sql import functions as F

    df = spark.read.csv(
        str(check_dir(path) / "u.item"), sep="|", encoding="ISO-8859-1", header=False, mode="FAILFAST"
    )
    cols = df.columns
    if len(cols) != 5 + len(ML100K_GENRES):
        raise ValueError(f"{path / 'u.item'}: expected {5 + len(ML100K_GENRES)} fields, got {len(cols)}")
    genre_flags = cols[5:]
    genres = F.filter(
        F.array(*[F.when(F.col(c) == "1", F.lit(g)) for c, g in zip(genre_flags, ML100K_GENRES, strict=True)]),
        lambda x: x.isNotNull(),
    )
    year = F.regexp_extract(F.col(cols[2]), r"(\d{4})$", 1)
    return df.select(
        F.col(cols[0]).alias("item_id"),
        F.col(cols[1]).alias("title"),
        F.when(year != "", year.cast("int")).alias("year"),
        genres.alias("genres"),
    )


def read_users(spark: SparkSession, path: Path) -> DataFrame:
    """``u.user`` as ``stg_users`` (grain: one user); MovieLens 100K has no country."""
    from pyspark.sql import functions as F

    df = spark.read.csv(str(check_dir(path) / "u.user"), sep="|", header=False, mode="FAILFAST")
    return df.select(
        F.col("_c0").alias("user_id"),
        F.col("_c1").cast("int").alias("age"),
        F.col("_c2").alias("gender"),
        F.col("_c3").alias("occupation"),
        F.lit(None).cast("string").alias("country"),
    )


def read_fold(spark: SparkSession, path: Path, fold: str) -> DataFrame:
    """Official fold ``fold`` (``u1``..``u5``) as ``stg_splits`` (grain: one (user, item) pair).

    Raises:
        FileNotFoundError: If ``<fold>.base`` or ``<fold>.test`` is missing.
    """
    from pyspark.sql import functions as F

    parts = []
    for suffix, split in (("base", "train"), ("test", "test")):
        file = Path(path) / f"{fold}.{suffix}"
        if not file.is_file():
            raise FileNotFoundError(f"MovieLens fold file {file} is missing")
        parts.append(_ratings_file(spark, file).select("user_id", "item_id", F.lit(split).alias("split")))
    return parts[0].unionByName(parts[1])
