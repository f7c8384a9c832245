"""Table definitions: column names and types, key, grain, and value checks.

A :class:`TableSchema` gives the pyarrow schema, the Spark schema, the primary
key and the declared value ranges of one table. Nothing else in the project
spells a table's columns out again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql.types import StructType

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    """One column.

    Attributes:
        name: Column name.
        dtype: Arrow type of the column.
        nullable: Whether nulls are allowed.
        min_value: Inclusive lower bound checked by validation, if any.
        max_value: Inclusive upper bound checked by validation, if any.
        allowed: Closed set of allowed values, if any.
        references: ``"table.column"`` this column must exist in (referential integrity).
        doc: What the column holds.
    """

    name: str
    dtype: pa.DataType
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[Any, ...] | None = None
    references: str | None = None
    doc: str = ""


@dataclass(frozen=True)
class TableSchema:
    """One table of the lake.

    Attributes:
        name: Table name (also its folder name under the lake).
        columns: Columns in order.
        key: Columns that identify a row (unique, not null).
        grain: One sentence: what one row is.
        partitioned_by: Partition column added on write (``run_date``).
        min_rows: Floor on the row count checked by the validation gate.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    grain: str
    partitioned_by: str = "run_date"
    min_rows: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Column names in order (without the partition column)."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def arrow(self) -> pa.Schema:
        """The pyarrow schema (without the partition column)."""
        return pa.schema([pa.field(c.name, c.dtype, nullable=c.nullable) for c in self.columns])

    @property
    def spark(self) -> StructType:
        """The Spark schema (without the partition column)."""
        from pyspark.sql.pandas.types import from_arrow_type
        from pyspark.sql.types import StructField, StructType

        return StructType([StructField(c.name, from_arrow_type(c.dtype), nullable=c.nullable) for c in self.columns])


_str = pa.string()
_i32 = pa.int32()
_i64 = pa.int64()
_f64 = pa.float64()
_genres = pa.list_(pa.string())

# Raw source data normalised to one layout, whatever the source was.
STG_RATINGS = TableSchema(
    name="stg_ratings",
    columns=(
        Column("user_id", _str, doc="external user id"),
        Column("item_id", _str, doc="external item id"),
        Column("rating", _f64, doc="explicit rating on the source's scale"),
        Column("ts", _i64, doc="event time, seconds since the epoch"),
    ),
    key=(),
    grain="one rating event as the source gave it (duplicates possible)",
)
STG_ITEMS = TableSchema(
    name="stg_items",
    columns=(
        Column("item_id", _str),
        Column("title", _str),
        Column("year", _i32, nullable=True, min_value=1800, max_value=2100),
        Column("genres", _genres, doc="genre names"),
    ),
    key=("item_id",),
    grain="one catalogue item",
)
STG_USERS = TableSchema(
    name="stg_users",
    columns=(
        Column("user_id", _str),
        Column("age", _i32, nullable=True, min_value=1, max_value=120),
        Column("gender", _str, nullable=True),
        Column("occupation", _str, nullable=True),
        Column("country", _str, nullable=True),
    ),
    key=("user_id",),
    grain="one user with side data",
    min_rows=0,  # some sources (MovieLens CSV, event logs) have no user file
)
STG_SPLITS = TableSchema(
    name="stg_splits",
    columns=(
        Column("user_id", _str),
        Column("item_id", _str),
        Column("split", _str, allowed=("train", "test")),
    ),
    key=("user_id", "item_id"),
    grain="one (user, item) pair of a source's official fold and the side it is on",
)
STG_TAGS = TableSchema(
    name="stg_tags",
    columns=(
        Column("user_id", _str),
        Column("item_id", _str),
        Column("tag", _str),
        Column("ts", _i64, min_value=0),
    ),
    key=(),
    grain="one tag applied to one item by one user",
    min_rows=0,
)
STG_EVENTS = TableSchema(
    name="stg_events",
    columns=(
        Column("user_id", _str),
        Column("item_id", _str),
        Column("event", _str, doc="event type, lower case: impression, click, like, purchase, watch, ..."),
        Column("ts", _i64, min_value=0),
        Column("value", _f64, nullable=True, doc="optional amount: watch seconds, price, rating"),
    ),
    key=(),
    grain="one interaction event as the log gave it",
    min_rows=0,
)
QUARANTINE_COLUMNS = (
    Column("stage", _str, allowed=("ingest", "build"), doc="which job rejected the row"),
    Column("source_file", _str, doc="input file (or table) the row came from"),
    Column("line_number", _i64, nullable=True, min_value=1, doc="1-based line in source_file; null if not text"),
    Column("raw_line", _str, doc="the row as it was read (undecodable bytes backslash-escaped)"),
    Column("reason_code", _str, doc="stable code, e.g. field_count, rating_out_of_range, unknown_item"),
    Column("reason", _str, doc="human-readable reason"),
)
STG_QUARANTINE = TableSchema(
    name="stg_quarantine",
    columns=QUARANTINE_COLUMNS,
    key=(),
    grain="one input row the ingest job could not use, with why",
    min_rows=0,
)
QUARANTINE = TableSchema(
    name="quarantine",
    columns=QUARANTINE_COLUMNS,
    key=(),
    grain="one input row the run did not use (ingest or build), with why",
    min_rows=0,
)
USER_MAP = TableSchema(
    name="user_map",
    columns=(Column("user_id", _str), Column("user_idx", _i32, min_value=0)),
    key=("user_id",),
    grain="one external user id and its dense, stable index",
    extra={"unique": ("user_idx",)},
)
ITEM_MAP = TableSchema(
    name="item_map",
    columns=(Column("item_id", _str), Column("item_idx", _i32, min_value=0)),
    key=("item_id",),
    grain="one external item id and its dense, stable index",
    extra={"unique": ("item_idx",)},
)
RATINGS = TableSchema(
    name="ratings",
    columns=(
        Column("user_idx", _i32, min_value=0, references="users.user_idx"),
        Column("item_idx", _i32, min_value=0, references="items.item_idx"),
        Column("user_id", _str),
        Column("item_id", _str),
        Column("rating", _f64, min_value=0.5, max_value=5.0),
        Column("ts", _i64, min_value=0),
        Column("split", _str, allowed=("train", "test"), doc="train or test"),
    ),
    key=("user_idx", "item_idx"),
    grain="one (user, item) rating, the latest if the source had several, with its split",
    min_rows=100,
)
ITEMS = TableSchema(
    name="items",
    columns=(
        Column("item_idx", _i32, min_value=0),
        Column("item_id", _str),
        Column("title", _str),
        Column("year", _i32, nullable=True, min_value=1800, max_value=2100),
        Column("genres", _genres),
    ),
    key=("item_idx",),
    grain="one catalogue item",
    min_rows=10,
    extra={"unique": ("item_id",)},
)
USERS = TableSchema(
    name="users",
    columns=(
        Column("user_idx", _i32, min_value=0),
        Column("user_id", _str),
        Column("age", _i32, nullable=True, min_value=1, max_value=120),
        Column("gender", _str, nullable=True),
        Column("occupation", _str, nullable=True),
        Column("country", _str, nullable=True),
    ),
    key=("user_idx",),
    grain="one user (every user with a rating, with side data where the source has it)",
    min_rows=10,
    extra={"unique": ("user_id",)},
)
INTERACTIONS = TableSchema(
    name="interactions",
    columns=(
        Column("user_idx", _i32, min_value=0, references="users.user_idx"),
        Column("item_idx", _i32, min_value=0, references="items.item_idx"),
        Column("user_id", _str),
        Column("item_id", _str),
        Column("label", _i32, allowed=(0, 1), doc="1 liked / bought / watched long enough; 0 shown, not engaged"),
        Column("ts", _i64, min_value=0),
        Column("split", _str, allowed=("train", "test")),
    ),
    key=("user_idx", "item_idx"),
    grain="one (user, item) pair with a binary label (pairs never shown have no row)",
    min_rows=0,
)
_f32_list = pa.list_(pa.float32())
FEATURE_VOCAB = TableSchema(
    name="feature_vocab",
    columns=(
        Column("feature", _str, allowed=("genre", "demographic"), doc="which vector the entry indexes"),
        Column("index", _i32, min_value=0),
        Column("value", _str, doc="e.g. Comedy, gender=F, age=25-34"),
    ),
    key=("feature", "index"),
    grain="one position of a multi-hot / one-hot feature vector",
)
ITEM_FEATURES = TableSchema(
    name="item_features",
    columns=(
        Column("item_idx", _i32, min_value=0, references="items.item_idx"),
        Column("year", _i32, nullable=True, min_value=1800, max_value=2100),
        Column("genres", _f32_list, doc="multi-hot over feature_vocab[genre]"),
        Column("n_ratings", _i64, min_value=0, doc="training ratings"),
        Column("mean_rating", _f64, nullable=True, min_value=0.5, max_value=5.0, doc="null without training ratings"),
        Column("tags", pa.list_(pa.string()), doc="most used tags, most frequent first (empty without tags)"),
    ),
    key=("item_idx",),
    grain="one catalogue item; rating statistics from the training split only",
    min_rows=10,
)
USER_FEATURES = TableSchema(
    name="user_features",
    columns=(
        Column("user_idx", _i32, min_value=0, references="users.user_idx"),
        Column("demographics", _f32_list, doc="one-hot over feature_vocab[demographic]; zeros where unknown"),
        Column("n_ratings", _i64, min_value=0, doc="training ratings"),
        Column("mean_rating", _f64, nullable=True, min_value=0.5, max_value=5.0),
        Column("genre_mean_rating", _f32_list, doc="mean training rating per genre; 0 where none"),
        Column("genre_counts", _f32_list, doc="training ratings per genre"),
    ),
    key=("user_idx",),
    grain="one user; rating statistics from the training split only (no leakage from test)",
    min_rows=10,
)
SIMILAR_ITEMS = TableSchema(
    name="similar_items",
    columns=(
        Column("item_idx", _i32, min_value=0, references="items.item_idx"),
        Column("rank", _i32, min_value=1),
        Column("neighbor_idx", _i32, min_value=0, references="items.item_idx"),
        Column("distance", _f64, min_value=0.0),
        Column("source", _str, doc="which vectors: cf, two_tower, ..."),
    ),
    key=("item_idx", "source", "rank"),
    grain="one neighbour of one item by one source",
)
RECOMMENDATIONS = TableSchema(
    name="recommendations",
    columns=(
        Column("user_idx", _i32, min_value=0, references="users.user_idx"),
        Column("rank", _i32, min_value=1),
        Column("item_idx", _i32, min_value=0, references="items.item_idx"),
        Column("score", _f64),
        Column("source", _str, doc="candidate source that proposed the item"),
        Column("reason", _str, doc="why the user sees it, shown to the user"),
    ),
    key=("user_idx", "rank"),
    grain="one recommended item at one rank for one user",
)

TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        STG_RATINGS,
        STG_ITEMS,
        STG_USERS,
        STG_SPLITS,
        STG_TAGS,
        STG_EVENTS,
        STG_QUARANTINE,
        QUARANTINE,
        USER_MAP,
        ITEM_MAP,
        RATINGS,
        ITEMS,
        USERS,
        INTERACTIONS,
        FEATURE_VOCAB,
        ITEM_FEATURES,
        USER_FEATURES,
        SIMILAR_ITEMS,
        RECOMMENDATIONS,
    )
}


def table(name: str) -> TableSchema:
    """The schema of table ``name``.

    Raises:
        KeyError: If there is no such table.
    """
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {sorted(TABLES)}") from None
