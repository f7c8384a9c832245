"""Where raw data comes from: one :class:`Source` interface, one class per layout.

Every source yields the same staged tables (``stg_ratings``, ``stg_items``,
``stg_users``, and ``stg_splits`` / ``stg_tags`` / ``stg_events`` where it has
them) plus ``stg_quarantine``: every input line is either a staged row or a
quarantine row. Layouts:

* ``ml-100k``: ``u.data`` (tab), ``u.item`` (``|``, latin-1, genre flags named by
  ``u.genre``), ``u.user``, official folds ``u1``..``u5``.
* ``ml-dat`` (1M, 10M): ``ratings.dat``, ``movies.dat``, ``users.dat`` (1M only),
  ``tags.dat`` (10M), ``::``-separated.
* ``ml-csv`` (ml-latest, ml-latest-small, 20M, 25M, 32M): ``ratings.csv``,
  ``movies.csv`` (quoted titles ``Title (Year)``, ``|``-joined genres), ``tags.csv``;
  ``links.csv`` is not used.
* ``events``: a generic interaction log, ``events.csv`` (header
  ``user_id,item_id,event,timestamp[,value]``) or ``events.parquet``, with an
  optional ``items.csv`` (``item_id,title,genres``).
* ``synthetic``: the generator's Parquet output (no quarantine: it is clean by construction).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.data import parsing as P
from recsys.data.reader import read_text_file
from schemas import table

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


@dataclass
class Staged:
    """The staged tables of one source read.

    Attributes:
        ratings: ``stg_ratings`` (grain: one rating event).
        items: ``stg_items`` (grain: one item).
        users: ``stg_users`` (grain: one user; may be empty).
        quarantine: ``stg_quarantine`` (grain: one unusable input line).
        splits: ``stg_splits`` when the source has an official fold.
        tags: ``stg_tags`` when the source has tags.
        events: ``stg_events`` for interaction logs.
        files: Input files read (for the report).
    """

    ratings: DataFrame
    items: DataFrame
    users: DataFrame
    quarantine: DataFrame
    splits: DataFrame | None = None
    tags: DataFrame | None = None
    events: DataFrame | None = None
    files: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, DataFrame]:
        """Staged table name -> DataFrame, for the ones present."""
        out = {"stg_ratings": self.ratings, "stg_items": self.items, "stg_users": self.users,
               "stg_quarantine": self.quarantine}
        for name, df in (("stg_splits", self.splits), ("stg_tags", self.tags), ("stg_events", self.events)):
            if df is not None:
                out[name] = df
        return out


def end_of_day(run_date: str) -> int:
    """Last second of ``run_date`` (UTC), in seconds since the epoch: later timestamps are in the future."""
    d = date.fromisoformat(run_date)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() + timedelta(days=1).total_seconds()) - 1


def _empty(spark: SparkSession, name: str) -> DataFrame:
    return spark.createDataFrame([], table(name).spark)


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


class Source(ABC):
    """A raw data source."""

    name: str

    @abstractmethod
    def read(self, spark: SparkSession, *, run_date: str) -> Staged:
        """Read the source into staged tables.

        Args:
            spark: Session.
            run_date: The run date; timestamps after its end are quarantined as in the future.

        Raises:
            FileNotFoundError: A required file is missing.
            SourceError: A file is unusable as a whole (the message names file, line, problem).
        """


class MovieLens100K(Source):
    """MovieLens 100K (``u.data``, ``u.item``, ``u.user``, ``u.genre``, folds ``uN.base/test``)."""

    name = "ml-100k"

    def __init__(self, path: Path, fold: str | None = "u1") -> None:
        self.path = Path(path)
        self.fold = fold

    def genres(self) -> list[str]:
        """Genre names in flag order, from ``u.genre`` (the documented 19 when it is absent)."""
        f = self.path / "u.genre"
        if not f.is_file():
            return list(ML100K_GENRES)
        names = [line.split("|")[0] for line in f.read_text(encoding="latin-1").splitlines() if line.strip()]
        return names

    def read(self, spark: SparkSession, *, run_date: str) -> Staged:  # noqa: D102
        rules = P.RatingRules(rating_min=1, rating_max=5, max_ts=end_of_day(run_date))
        genres = self.genres()
        item_file = self.path / "u.item"
        if item_file.is_file() and item_file.stat().st_size:
            first = item_file.read_bytes().split(b"\n", 1)[0].decode("latin-1")
            n_flags = len(first.split("|")) - 5
            if n_flags != len(genres):
                raise P.SourceError(f"{item_file}:1: {n_flags} genre columns, but u.genre names {len(genres)} genres")
        ratings = read_text_file(spark, self.path / "u.data", P.rating_parser("\t", rules), "stg_ratings", sep="\t")
        items = read_text_file(spark, item_file, P.ml100k_item_parser(genres), "stg_items", sep="|",
                               encoding="latin-1")
        users = read_text_file(spark, self.path / "u.user", P.ml100k_user, "stg_users", sep="|")
        parts = [ratings, items, users]
        splits = None
        if self.fold:
            fold_parts = []
            for suffix, split in (("base", "train"), ("test", "test")):
                pf = read_text_file(spark, self.path / f"{self.fold}.{suffix}", P.rating_parser("\t", rules),
                                    "stg_ratings", sep="\t")
                parts.append(pf)
                fold_parts.append(pf.rows.selectExpr("user_id", "item_id", f"'{split}' AS split"))
            splits = _union(fold_parts)
        return Staged(
            ratings=ratings.rows,
            items=items.rows,
            users=users.rows,
            quarantine=_union([p.quarantine for p in parts]),
            splits=splits,
            files=[str(p.path) for p in parts],
        )


class MovieLensDat(Source):
    """MovieLens 1M / 10M: ``::``-separated ``ratings.dat``, ``movies.dat``, optional ``users.dat``, ``tags.dat``."""

    name = "ml-dat"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self, spark: SparkSession, *, run_date: str) -> Staged:  # noqa: D102
        # 1M (the release with users.dat) has whole stars 1-5; 10M has half stars from 0.5.
        low = 1.0 if (self.path / "users.dat").is_file() else 0.5
        rules = P.RatingRules(rating_min=low, rating_max=5, max_ts=end_of_day(run_date))
        ratings = read_text_file(spark, self.path / "ratings.dat", P.rating_parser("::", rules), "stg_ratings",
                                 sep="::")
        items = read_text_file(spark, self.path / "movies.dat", P.dat_movie, "stg_items", sep="::",
                               encoding="utf-8-or-latin-1")
        parts = [ratings, items]
        users_df = _empty(spark, "stg_users")
        if (self.path / "users.dat").is_file():
            users = read_text_file(spark, self.path / "users.dat", P.dat_user, "stg_users", sep="::")
            parts.append(users)
            users_df = users.rows
        tags_df = None
        if (self.path / "tags.dat").is_file():
            tags = read_text_file(spark, self.path / "tags.dat", P.tag_parser("::", rules), "stg_tags", sep="::",
                                  encoding="utf-8-or-latin-1")
            parts.append(tags)
            tags_df = tags.rows
        return Staged(ratings=ratings.rows, items=items.rows, users=users_df, tags=tags_df,
                      quarantine=_union([p.quarantine for p in parts]), files=[str(p.path) for p in parts])


class MovieLensCsv(Source):
    """MovieLens CSV layout (ml-latest, ml-latest-small, 20M, 25M, 32M)."""

    name = "ml-csv"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self, spark: SparkSession, *, run_date: str) -> Staged:  # noqa: D102
        rules = P.RatingRules(rating_min=0.5, rating_max=5, max_ts=end_of_day(run_date))
        ratings = read_text_file(spark, self.path / "ratings.csv", P.rating_parser(",", rules), "stg_ratings",
                                 sep=",", header=["userId", "movieId", "rating", "timestamp"])
        items = read_text_file(spark, self.path / "movies.csv", P.csv_movie, "stg_items", sep=",",
                               header=["movieId", "title", "genres"])
        parts = [ratings, items]
        tags_df = None
        if (self.path / "tags.csv").is_file():
            tags = read_text_file(spark, self.path / "tags.csv", P.tag_parser(",", rules), "stg_tags", sep=",",
                                  header=["userId", "movieId", "tag", "timestamp"])
            parts.append(tags)
            tags_df = tags.rows
        return Staged(ratings=ratings.rows, items=items.rows, users=_empty(spark, "stg_users"), tags=tags_df,
                      quarantine=_union([p.quarantine for p in parts]), files=[str(p.path) for p in parts])


class EventLog(Source):
    """A generic interaction log: ``events.csv`` / ``events.parquet`` (+ optional ``items.csv``).

    Explicit ratings, where the log has them, are events ``rating`` with the rating as ``value``.
    """

    name = "events"
    COLUMNS = ("user_id", "item_id", "event", "timestamp", "value")

    def __init__(self, path: Path, rating_min: float = 0.5, rating_max: float = 5.0) -> None:
        self.path = Path(path)
        self.rating_min = rating_min
        self.rating_max = rating_max

    def _events(self, spark: SparkSession, rules: P.RatingRules) -> tuple[DataFrame, DataFrame, list[str]]:
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        csv_file, pq_file = self.path / "events.csv", self.path / "events.parquet"
        if csv_file.is_file():
            header = open(csv_file, encoding="utf-8", errors="replace").readline().strip().split(",")  # noqa: SIM115
            expected = list(self.COLUMNS[: len(header)]) if len(header) in (4, 5) else list(self.COLUMNS)
            pf = read_text_file(spark, csv_file, P.event_parser(rules), "stg_events", sep=",", header=expected)
            return pf.rows, pf.quarantine, [str(pf.path)]
        if not pq_file.exists():
            raise FileNotFoundError(f"input file {csv_file} (or {pq_file}) is missing")
        raw = spark.read.parquet(str(pq_file))
        missing = {"user_id", "item_id", "event", "timestamp"} - set(raw.columns)
        if missing:
            raise P.SourceError(f"{pq_file}: columns {sorted(missing)} are missing (has {raw.columns})")
        # try_cast: with ANSI mode (Spark 4's default) a plain cast of a malformed value fails the whole read.
        raw_value = F.col("value") if "value" in raw.columns else F.lit(None)
        value = raw_value.try_cast("double")

        def ident(name: str):  # noqa: ANN202
            c = F.col(name)
            if isinstance(raw.schema[name].dataType, (T.FloatType, T.DoubleType)):
                # Integer ids written as floats (pandas does so when the column has a null): 7.0 -> "7", NaN is missing.
                n = c.try_cast("long")
                return (F.when(F.isnan(c), F.lit(None)).when(n.cast("double") == c, n.cast("string"))
                        .otherwise(c.cast("string")))
            return c.cast("string")

        df = raw.select(
            ident("user_id").alias("user_id"),
            ident("item_id").alias("item_id"),
            F.lower(F.trim(F.col("event").cast("string"))).alias("event"),
            F.col("timestamp").try_cast("long").alias("ts"),
            value.alias("value"),
            (raw_value.isNotNull() & value.isNull()).alias("_bad_value"),
            F.to_json(F.struct(*raw.columns)).alias("_raw"),  # the row as read
        )
        problems = [
            (F.col("user_id").isNull() | (F.trim("user_id") == ""), "bad_id", "missing user id"),
            (F.col("item_id").isNull() | (F.trim("item_id") == ""), "bad_id", "missing item id"),
            (F.col("event").isNull() | (F.col("event") == ""), "bad_event", "missing event type"),
            (F.col("ts").isNull(), "bad_timestamp", "timestamp is not a number"),
            (F.col("ts") < 0, "negative_timestamp", "timestamp is before 1970"),
            (F.col("ts") > rules.max_ts, "future_timestamp", "timestamp is after the run date"),
            (F.col("_bad_value"), "bad_value", "value is not a number"),
            (F.isnan("value"), "bad_value", "value is NaN"),
        ]
        code = F.lit(None).cast("string")
        text = F.lit(None).cast("string")
        for cond, c, t in reversed(problems):
            code = F.when(cond, F.lit(c)).otherwise(code)
            text = F.when(cond, F.lit(f"{c}: {t}")).otherwise(text)
        tagged = df.withColumn("_code", code).withColumn("_reason", text)
        good = tagged.where(F.col("_code").isNull()).select(*table("stg_events").names)
        bad = tagged.where(F.col("_code").isNotNull()).select(
            F.lit("ingest").alias("stage"), F.lit(str(pq_file)).alias("source_file"),
            F.lit(None).cast("long").alias("line_number"), F.col("_raw").alias("raw_line"),
            F.col("_code").alias("reason_code"), F.col("_reason").alias("reason"),
        )
        return good, bad, [str(pq_file)]

    def read(self, spark: SparkSession, *, run_date: str) -> Staged:  # noqa: D102
        from pyspark.sql import functions as F

        rules = P.RatingRules(rating_min=self.rating_min, rating_max=self.rating_max, max_ts=end_of_day(run_date),
                              numeric_ids=False)
        events, bad, files = self._events(spark, rules)
        quarantine = [bad]
        is_rating = F.col("event") == "rating"
        out_of_scale = is_rating & (F.col("value").isNull() | (F.col("value") < rules.rating_min)
                                    | (F.col("value") > rules.rating_max))
        quarantine.append(events.where(out_of_scale).select(
            F.lit("ingest").alias("stage"), F.lit(files[0]).alias("source_file"),
            F.lit(None).cast("long").alias("line_number"), F.to_json(F.struct(*events.columns)).alias("raw_line"),
            F.lit("rating_out_of_range").alias("reason_code"),
            F.lit(f"rating_out_of_range: rating event without a value in [{rules.rating_min:g}, {rules.rating_max:g}]").alias("reason"),
        ))
        events = events.where(~out_of_scale)
        ratings = events.where(is_rating).select("user_id", "item_id", F.col("value").alias("rating"), "ts")
        items_file = self.path / "items.csv"
        if items_file.is_file():
            pf = read_text_file(spark, items_file, partial(P.csv_movie, numeric_ids=False), "stg_items", sep=",",
                                header=["item_id", "title", "genres"])
            items, files = pf.rows, [*files, str(pf.path)]
            quarantine.append(pf.quarantine)
        else:  # no catalogue: every item seen in the log, titled by its id
            items = events.select("item_id").distinct().select(
                "item_id", F.col("item_id").alias("title"), F.lit(None).cast("int").alias("year"),
                F.array().cast("array<string>").alias("genres"),
            )
        return Staged(ratings=ratings, items=items, users=_empty(spark, "stg_users"), events=events,
                      quarantine=_union(quarantine), files=files)


class SyntheticSource(Source):
    """The generator's output (``write_parquet``), cached under ``raw/synthetic/<params>``."""

    name = "synthetic"

    def __init__(self, out_dir: Path, params: dict) -> None:
        self.out_dir = Path(out_dir)
        self.params = params

    def read(self, spark: SparkSession, *, run_date: str) -> Staged:  # noqa: D102
        from recsys.data.synthetic import write_parquet

        write_parquet(self.out_dir, **self.params)
        read = lambda name, path: spark.read.schema(table(name).spark).parquet(str(path))  # noqa: E731
        return Staged(
            ratings=read("stg_ratings", self.out_dir / "ratings"),
            items=read("stg_items", self.out_dir / "items.parquet"),
            users=read("stg_users", self.out_dir / "users.parquet"),
            quarantine=_empty(spark, "stg_quarantine"),
            files=[str(self.out_dir)],
        )


def detect_layout(path: Path) -> str:
    """The MovieLens / event-log layout of a folder, from the files it holds.

    Raises:
        FileNotFoundError: If no known layout matches.
    """
    path = Path(path)
    for marker, layout in (("u.data", "ml-100k"), ("ratings.dat", "ml-dat"), ("ratings.csv", "ml-csv"),
                           ("events.csv", "events"), ("events.parquet", "events")):
        if (path / marker).exists():
            return layout
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {path} does not exist")
    raise FileNotFoundError(
        f"{path} holds no known layout: expected u.data (MovieLens 100K), ratings.dat (1M/10M), "
        "ratings.csv (ml-latest, 20M, 25M, 32M) or events.csv / events.parquet (interaction log)"
    )


def open_source(path: Path, *, fold: str | None = "u1") -> Source:
    """The source for a data folder, by its layout."""
    layout = detect_layout(path)
    if layout == "ml-100k":
        return MovieLens100K(path, fold=fold)
    if layout == "ml-dat":
        return MovieLensDat(path)
    if layout == "ml-csv":
        return MovieLensCsv(path)
    return EventLog(path)
