"""The Store interface and the write-audit-publish logic every backend shares.

A backend (SQLite, PostgreSQL) supplies a handful of primitives: run one statement,
run a query, open a transaction, bulk-load rows, list its tables and views. All
SQL of the contract is written once here, with ``?`` placeholders (the PostgreSQL
backend translates them) and table names that are module constants; values are
always bound as parameters.

Tables (same names and columns on every backend; schema version :data:`SCHEMA_VERSION`):

- ``store_meta``: one row per setting (``name``, ``value`` text); ``name='schema_version'``
  holds the layout version of the store.
- ``runs``: one row per run (``status`` is one of :data:`RUN_STATUSES`, ``metrics`` is JSON text).
- ``recommendations``: one row per (run_id, user_id, rank): the item, its score, the reason
  shown to the user, and ``source``, the candidate sources that proposed it
  (:data:`~recsys.store.audit.CANDIDATE_SOURCES` names joined by ``+`` in that order, e.g.
  ``similar+genre+popular``). ``source`` is NULL only on rows of runs published before
  schema version 2 (the audit requires it on every new run).
- ``similar_items``: one row per (run_id, item_id, rank, source); here ``source`` names the
  vectors (``cf``, ``two_tower``, ...), not a candidate source.
- ``live``: one row ``name='recommendations'`` naming the live run.
- ``recommendations_staging`` / ``similar_items_staging``: rows of runs being published.
- Views ``recommendations_latest`` / ``similar_items_latest``: the live run's rows only
  (the same columns as the tables).

Schema versions: 1 is the layout without ``store_meta`` and without
``recommendations.source``; 2 adds both. Opening a version-1 store migrates it in place,
in one transaction (``ADD COLUMN source`` on ``recommendations`` and its staging table,
``recommendations_latest`` recreated; earlier runs' rows get a NULL ``source``). A store
of a newer version than the code raises :class:`SchemaVersionError`.

Publishing loads a run into staging, audits what was read back, and then, in one
transaction, replaces the run's rows in the main tables, marks it published and
points ``live`` at it. Readers of the views see the old run or the new one, never
a mix. Earlier runs stay in the main tables for :meth:`Store.rollback`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, ClassVar, Self

import pandas as pd

from recsys.store.audit import (
    LOAD_MISMATCH,
    RECOMMENDATION_INPUT_COLUMNS,
    SIMILAR_ITEM_INPUT_COLUMNS,
    AuditReport,
    audit_run,
    check_arguments,
    check_schema,
)

logger = logging.getLogger(__name__)

STAGED = "staged"
PUBLISHED = "published"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
RUN_STATUSES: tuple[str, ...] = (STAGED, PUBLISHED, FAILED, ROLLED_BACK)
"""``staged``: being loaded/audited; ``published``: was switched live (and may be again);
``failed``: audit or load failed, no rows in the main tables; ``rolled_back``: was live,
replaced by :meth:`Store.rollback`."""

LIVE_NAME = "recommendations"
"""The ``live.name`` of the pointer the ``*_latest`` views follow."""

SCHEMA_VERSION = 2
"""Layout version this code writes and reads (see the module docstring for the history)."""
SCHEMA_VERSION_KEY = "schema_version"
"""The ``store_meta.name`` of the schema version row."""

STORE_META = "store_meta"
RUNS = "runs"
RECOMMENDATIONS = "recommendations"
SIMILAR_ITEMS = "similar_items"
LIVE = "live"
RECOMMENDATIONS_STAGING = "recommendations_staging"
SIMILAR_ITEMS_STAGING = "similar_items_staging"
RECOMMENDATIONS_LATEST = "recommendations_latest"
SIMILAR_ITEMS_LATEST = "similar_items_latest"

RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "run_date",
    "dataset",
    "model_version",
    "status",
    "metrics",
    "created_at",
    "published_at",
)
RECOMMENDATION_COLUMNS: tuple[str, ...] = (
    "run_id",
    "user_id",
    "rank",
    "item_id",
    "score",
    "reason",
    "model_version",
    "run_date",
    "generated_at",
    "source",
)
"""Columns of ``recommendations``, its staging table and ``recommendations_latest`` (``source``
last: version-1 stores get it appended by the migration, new stores have it in the same place)."""
SIMILAR_ITEM_COLUMNS: tuple[str, ...] = ("run_id", "item_id", "rank", "neighbor_id", "distance", "source")


@dataclass(frozen=True)
class ColumnTypes:
    """The SQL type a backend uses for each logical column type of the contract."""

    text: str
    date: str
    timestamp: str
    integer: str
    double: str


def _columns(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + name for name in names)


# DDL per object, in creation order; {text} etc. are filled from the backend's ColumnTypes.
_DDL_TEMPLATES: dict[str, tuple[str, ...]] = {
    STORE_META: ("CREATE TABLE store_meta (name {text} PRIMARY KEY, value {text} NOT NULL)",),
    RUNS: (
        "CREATE TABLE runs (run_id {text} PRIMARY KEY, run_date {date} NOT NULL, dataset {text} NOT NULL, "
        "model_version {text} NOT NULL, status {text} NOT NULL, metrics {text} NOT NULL, "
        "created_at {timestamp} NOT NULL, published_at {timestamp})",
    ),
    RECOMMENDATIONS: (
        "CREATE TABLE recommendations (run_id {text} NOT NULL REFERENCES runs (run_id), "
        "user_id {text} NOT NULL, rank {integer} NOT NULL, item_id {text} NOT NULL, score {double} NOT NULL, "
        "reason {text}, model_version {text} NOT NULL, run_date {date} NOT NULL, "
        "generated_at {timestamp} NOT NULL, source {text}, PRIMARY KEY (run_id, user_id, rank))",
    ),
    SIMILAR_ITEMS: (
        "CREATE TABLE similar_items (run_id {text} NOT NULL REFERENCES runs (run_id), "
        "item_id {text} NOT NULL, rank {integer} NOT NULL, neighbor_id {text} NOT NULL, "
        "distance {double} NOT NULL, source {text} NOT NULL, PRIMARY KEY (run_id, item_id, rank, source))",
    ),
    LIVE: ("CREATE TABLE live (name {text} PRIMARY KEY, run_id {text} NOT NULL REFERENCES runs (run_id))",),
    # Staging is deliberately loose (nullable, no keys): bad rows must load so the audit can name them.
    RECOMMENDATIONS_STAGING: (
        "CREATE TABLE recommendations_staging (run_id {text} NOT NULL, user_id {text}, rank {integer}, "
        "item_id {text}, score {double}, reason {text}, model_version {text}, run_date {date}, "
        "generated_at {timestamp}, source {text})",
        "CREATE INDEX IF NOT EXISTS recommendations_staging_run_id ON recommendations_staging (run_id)",
    ),
    SIMILAR_ITEMS_STAGING: (
        "CREATE TABLE similar_items_staging (run_id {text} NOT NULL, item_id {text}, rank {integer}, "
        "neighbor_id {text}, distance {double}, source {text})",
        "CREATE INDEX IF NOT EXISTS similar_items_staging_run_id ON similar_items_staging (run_id)",
    ),
    RECOMMENDATIONS_LATEST: (
        f"CREATE VIEW recommendations_latest AS SELECT {_columns(RECOMMENDATION_COLUMNS, 'r.')} "
        f"FROM recommendations r JOIN live l ON l.run_id = r.run_id WHERE l.name = '{LIVE_NAME}'",
    ),
    SIMILAR_ITEMS_LATEST: (
        f"CREATE VIEW similar_items_latest AS SELECT {_columns(SIMILAR_ITEM_COLUMNS, 's.')} "
        f"FROM similar_items s JOIN live l ON l.run_id = s.run_id WHERE l.name = '{LIVE_NAME}'",
    ),
}

# Migrations: from version v to v + 1, (object, statement) pairs; a statement runs only when its
# object exists, and _ensure_schema then creates whatever is missing (e.g. a dropped view) from
# _DDL_TEMPLATES, so a view is migrated by dropping it.
_MIGRATIONS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (
        (RECOMMENDATIONS_LATEST, "DROP VIEW recommendations_latest"),
        (RECOMMENDATIONS, "ALTER TABLE recommendations ADD COLUMN source {text}"),
        (RECOMMENDATIONS_STAGING, "ALTER TABLE recommendations_staging ADD COLUMN source {text}"),
    ),
}
_MIGRATION_NOTES: dict[int, str] = {
    1: "added recommendations.source (NULL on the rows of earlier runs) and recreated recommendations_latest",
}

_SQL_SCHEMA_VERSION = "SELECT value FROM store_meta WHERE name = ?"
_SQL_SET_SCHEMA_VERSION = (
    "INSERT INTO store_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)

# Main table, its staging table and columns: the pairs the switch copies between.
_STAGED_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (RECOMMENDATIONS, RECOMMENDATIONS_STAGING, RECOMMENDATION_COLUMNS),
    (SIMILAR_ITEMS, SIMILAR_ITEMS_STAGING, SIMILAR_ITEM_COLUMNS),
)

_SQL_BEGIN_RUN = (
    f"INSERT INTO runs ({_columns(RUN_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL) "
    "ON CONFLICT (run_id) DO UPDATE SET run_date = excluded.run_date, dataset = excluded.dataset, "
    "model_version = excluded.model_version, status = excluded.status, metrics = excluded.metrics "
    "WHERE runs.status IN (?, ?)"
)
_SQL_MARK_FAILED = "UPDATE runs SET status = ?, metrics = ? WHERE run_id = ? AND status = ?"
_SQL_MARK_PUBLISHED = (
    "UPDATE runs SET run_date = ?, dataset = ?, model_version = ?, status = ?, metrics = ?, published_at = ? "
    "WHERE run_id = ?"
)
_SQL_SET_STATUS = "UPDATE runs SET status = ? WHERE run_id = ?"
_SQL_RUN = "SELECT status, published_at FROM runs WHERE run_id = ?"
_SQL_PREVIOUS_PUBLISHED = (
    "SELECT run_id FROM runs WHERE status = ? AND run_id <> ? AND (published_at, run_id) < (?, ?) "
    "ORDER BY published_at DESC, run_id DESC LIMIT 1"
)
_SQL_LIVE = "SELECT run_id FROM live WHERE name = ?"
_SQL_SET_LIVE = (
    "INSERT INTO live (name, run_id) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id"
)
_SQL_LIST_RUNS = (
    f"SELECT {_columns(RUN_COLUMNS, 'r.')}, l.run_id IS NOT NULL AS is_live "
    "FROM runs r LEFT JOIN live l ON l.run_id = r.run_id AND l.name = ? ORDER BY r.created_at, r.run_id"
)
_SQL_CLEAR_STAGING = tuple(f"DELETE FROM {staging} WHERE run_id = ?" for _, staging, _ in _STAGED_TABLES)
_SQL_REPLACE_ROWS = tuple(
    (
        f"DELETE FROM {table} WHERE run_id = ?",
        f"INSERT INTO {table} ({_columns(cols)}) SELECT {_columns(cols)} FROM {staging} WHERE run_id = ?",
    )
    for table, staging, cols in _STAGED_TABLES
)


class StoreError(RuntimeError):
    """A store operation cannot be done (e.g. nothing to roll back to)."""


class SchemaVersionError(StoreError):
    """The store's schema version is newer than this code (or unreadable): upgrade the code.

    Attributes:
        found: The store's version (None when it cannot be read).
        supported: The version this code knows (:data:`SCHEMA_VERSION`).
    """

    def __init__(self, message: str, *, found: int | None, supported: int = SCHEMA_VERSION) -> None:
        self.found = found
        self.supported = supported
        super().__init__(message)


class RollbackError(StoreError):
    """:meth:`Store.rollback` has no run to go to."""


class PublishError(StoreError):
    """A run failed its audit and was not published; the previous live run is unchanged.

    Attributes:
        report: The failed audit.
    """

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        super().__init__("run failed its audit: " + "; ".join(report.problems))


@dataclass(frozen=True)
class RunInfo:
    """What the store records about one run besides its rows.

    Attributes:
        run_id: Unique id of the run; publishing the same id again replaces its rows.
        run_date: ISO date (``YYYY-MM-DD``) of the data the run was built from.
        dataset: Name of the dataset (e.g. ``movielens-small``, ``synthetic``).
        model_version: Version of the model that scored the recommendations.
        generated_at: ISO timestamp at which the run was generated (passed in, never
            taken from the clock here); one without an offset is taken as UTC.
        metrics: JSON-serialisable metrics of the run, stored in ``runs.metrics``.
    """

    run_id: str
    run_date: str
    dataset: str
    model_version: str
    generated_at: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ValueError("run_id must be a non-empty string")
        date.fromisoformat(self.run_date)
        datetime.fromisoformat(self.generated_at)


def _iso_date(value: str) -> str:
    return date.fromisoformat(value).isoformat()


def _utc_iso(value: str | datetime) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _metrics_json(metrics: dict[str, Any], **extra: Any) -> str:
    return json.dumps({**metrics, **extra}, sort_keys=True, default=_json_default)


def _texts(values: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in values]


def _ints(values: pd.Series) -> list[int | None]:
    return [None if pd.isna(v) else int(v) for v in pd.to_numeric(values)]


def _floats(values: pd.Series) -> list[float]:
    return [float(v) for v in pd.to_numeric(values).astype(float)]


_TO_SQL: dict[str, Callable[[pd.Series], list[Any]]] = {
    "user_id": _texts,
    "item_id": _texts,
    "neighbor_id": _texts,
    "source": _texts,
    "reason": _texts,
    "rank": _ints,
    "score": _floats,
    "distance": _floats,
}


def _rows(frame: pd.DataFrame, columns: Sequence[str], constants: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows to load: frame columns converted to plain Python values, the rest from ``constants``."""
    n = len(frame)
    values = [[constants[c]] * n if c in constants else _TO_SQL[c](frame[c]) for c in columns]
    return list(zip(*values, strict=True))


def _frame(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Query rows as a frame with the same dtypes on every backend.

    Ranks are int64 (Int64 when nulls), scores/distances float64, ``run_date`` an ISO
    date string, timestamps ``datetime64[ns, UTC]``, ``metrics`` a dict, ``is_live`` bool.
    """
    frame = pd.DataFrame.from_records(list(rows), columns=list(columns))
    for column in frame.columns:
        values = frame[column]
        if column == "rank":
            values = pd.to_numeric(values)
            frame[column] = values.astype("Int64" if values.isna().any() else "int64")
        elif column in ("score", "distance"):
            frame[column] = pd.to_numeric(values).astype("float64")
        elif column == "run_date":
            frame[column] = values.map(lambda v: v.isoformat() if isinstance(v, date) else v).astype(object)
        elif column in ("generated_at", "created_at", "published_at"):
            frame[column] = pd.to_datetime(values, utc=True, format="ISO8601")
        elif column == "metrics":
            frame[column] = values.map(json.loads).astype(object)
        elif column == "is_live":
            frame[column] = values.astype(bool)
    return frame


def _where(**filters: str | None) -> tuple[str, tuple[str, ...]]:
    """`` WHERE a = ? AND b = ?`` for the filters that are not None (names are code constants)."""
    given = {name: value for name, value in filters.items() if value is not None}
    clause = " AND ".join(f"{name} = ?" for name in given)
    return (f" WHERE {clause}" if clause else ""), tuple(given.values())


class Store(ABC):
    """Published recommendations and similar items, with atomic switch and rollback.

    Subclasses provide the backend primitives (the abstract ``_`` methods) and call
    :meth:`_ensure_schema` once connected. A store holds one connection: use one
    store per thread. Usable as a context manager (closes on exit).
    """

    TYPES: ClassVar[ColumnTypes]
    """SQL types of the backend."""
    FOR_UPDATE: ClassVar[str] = ""
    """Suffix that row-locks a SELECT inside a transaction (empty where writers are serialised anyway)."""

    # ---- backend primitives -------------------------------------------------------------------

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement with ``?`` placeholders."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query with ``?`` placeholders and return all rows."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """Context in which the statements run as one transaction (rolled back on error)."""

    @abstractmethod
    def _bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Append ``rows`` to ``table`` (a module constant), inside the current transaction."""

    @abstractmethod
    def _existing_objects(self) -> set[str]:
        """Names of the tables and views visible to the connection."""

    def _lock_schema(self) -> None:  # noqa: B027 (an optional hook: a no-op unless a backend overrides it)
        """Serialise concurrent schema creation (inside the DDL transaction); no-op by default."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    # ---- schema -------------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        """Bring the store to :data:`SCHEMA_VERSION` (no write when it is there already).

        An empty store gets every table, index and view; an older store is migrated in
        place (one transaction, logged); missing objects are created.

        Raises:
            SchemaVersionError: The store is newer than this code, or its version row is unreadable.
        """
        existing = self._existing_objects()
        if set(_DDL_TEMPLATES) <= existing and self._stored_version(existing) == SCHEMA_VERSION:
            return
        types = dataclasses.asdict(self.TYPES)
        with self._transaction():
            self._lock_schema()
            existing = self._existing_objects()
            version = self._stored_version(existing)
            if version is not None:
                self._migrate(version, existing, types)
                existing = self._existing_objects()
            for name, statements in _DDL_TEMPLATES.items():
                if name not in existing:
                    for statement in statements:
                        self._execute(statement.format(**types))
                    logger.debug("created %s", name)
            if version != SCHEMA_VERSION:
                self._execute(_SQL_SET_SCHEMA_VERSION, (SCHEMA_VERSION_KEY, str(SCHEMA_VERSION)))
        if version is None:
            logger.info("created the store's tables and views (schema version %d)", SCHEMA_VERSION)

    def _stored_version(self, existing: set[str]) -> int | None:
        """The store's schema version: None for an empty store, 1 for a store without ``store_meta``.

        Raises:
            SchemaVersionError: The version is newer than :data:`SCHEMA_VERSION`, or ``store_meta``
                has no readable version row.
        """
        if STORE_META not in existing:
            return 1 if existing & set(_DDL_TEMPLATES) else None
        rows = self._query(_SQL_SCHEMA_VERSION, (SCHEMA_VERSION_KEY,))
        try:
            version = int(rows[0][0])
        except (IndexError, TypeError, ValueError):
            raise SchemaVersionError(
                f"the store's {STORE_META} table has no readable {SCHEMA_VERSION_KEY} row (found {rows!r})",
                found=None,
            ) from None
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the store has schema version {version}, newer than the version {SCHEMA_VERSION} this code "
                "supports: upgrade recsys before opening it (it was not changed)",
                found=version,
            )
        return version

    def _migrate(self, version: int, existing: set[str], types: dict[str, str]) -> None:
        """Run the migrations from ``version`` up to :data:`SCHEMA_VERSION` (inside the DDL transaction)."""
        start = version
        started = time.perf_counter()
        while version < SCHEMA_VERSION:
            for name, statement in _MIGRATIONS[version]:
                if name in existing:
                    self._execute(statement.format(**types))
            logger.info(
                "migrated the store schema from version %d to %d: %s", version, version + 1, _MIGRATION_NOTES[version]
            )
            version += 1
        if start < SCHEMA_VERSION:
            logger.info(
                "store schema migrated in place from version %d to %d in %.2fs",
                start,
                SCHEMA_VERSION,
                time.perf_counter() - started,
            )

    def schema_version(self) -> int:
        """The store's schema version (:data:`SCHEMA_VERSION` once opened)."""
        version = self._stored_version(self._existing_objects())
        return SCHEMA_VERSION if version is None else version

    # ---- reading ------------------------------------------------------------------------------

    def latest_run_id(self) -> str | None:
        """The live run's id, or None before the first publish."""
        rows = self._query(_SQL_LIVE, (LIVE_NAME,))
        return rows[0][0] if rows else None

    def _select(self, table: str, columns: Sequence[str], order_by: str, **filters: str | None) -> pd.DataFrame:
        where, params = _where(**filters)
        statement = f"SELECT {_columns(columns)} FROM {table}{where} ORDER BY {order_by}"
        return _frame(columns, self._query(statement, params))

    def read_recommendations(self, user_id: str | None = None, run_id: str | None = None) -> pd.DataFrame:
        """Recommendations of the live run (default) or of ``run_id``.

        Args:
            user_id: Only this user's rows.
            run_id: Read this run instead of the live one (any run whose rows are kept).

        Returns:
            One row per (user, rank), ordered by user_id, rank; columns
            ``run_id, user_id, rank, item_id, score, reason, model_version, run_date, generated_at,
            source`` (:data:`RECOMMENDATION_COLUMNS`; ``source`` is None on rows of runs published
            before schema version 2). Empty when nothing is live / the run has no rows.
        """
        table = RECOMMENDATIONS if run_id is not None else RECOMMENDATIONS_LATEST
        return self._select(table, RECOMMENDATION_COLUMNS, "user_id, rank", run_id=run_id, user_id=user_id)

    def read_similar_items(self, item_id: str | None = None, run_id: str | None = None) -> pd.DataFrame:
        """Similar items of the live run (default) or of ``run_id``.

        Args:
            item_id: Only this item's neighbours.
            run_id: Read this run instead of the live one.

        Returns:
            One row per (item, source, rank), ordered that way; columns
            ``run_id, item_id, rank, neighbor_id, distance, source``.
        """
        table = SIMILAR_ITEMS if run_id is not None else SIMILAR_ITEMS_LATEST
        return self._select(table, SIMILAR_ITEM_COLUMNS, "item_id, source, rank", run_id=run_id, item_id=item_id)

    def list_runs(self) -> pd.DataFrame:
        """All runs, oldest first.

        Returns:
            One row per run; columns ``run_id, run_date, dataset, model_version, status,
            metrics`` (dict; failed runs carry ``metrics['audit']`` or ``metrics['error']``),
            ``created_at, published_at`` (UTC) and ``is_live`` (bool).
        """
        return _frame((*RUN_COLUMNS, "is_live"), self._query(_SQL_LIST_RUNS, (LIVE_NAME,)))

    # ---- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        run: RunInfo,
        recommendations: pd.DataFrame,
        similar_items: pd.DataFrame,
        *,
        expected_users: Iterable[str],
        known_items: Iterable[str],
        seen: pd.DataFrame,
        k: int,
        blocked_items: Collection[str] = (),
    ) -> AuditReport:
        """Write, audit and atomically publish one run.

        The rows are loaded into staging, read back and audited with
        :func:`recsys.store.audit.audit_run`. If the audit passes, one transaction
        replaces the run's rows in the main tables (a rerun of the same ``run_id``
        replaces, never duplicates), marks it published and points ``live`` at it.

        Args:
            run: Run metadata; ``model_version``, ``run_date`` and ``generated_at`` are
                added to every recommendation row.
            recommendations: One row per (user, rank): ``user_id, rank, item_id, score, reason,
                source`` (``source``: the candidate sources that proposed the item, e.g.
                ``similar+popular``; see :data:`~recsys.store.audit.CANDIDATE_SOURCES`).
            similar_items: One row per (item, source, rank): ``item_id, rank, neighbor_id, distance, source``.
            expected_users: Users that must each get exactly ``k`` rows.
            known_items: Catalogue of valid item ids.
            seen: ``user_id, item_id`` pairs the users already rated.
            k: Recommendations per user.
            blocked_items: Item ids the run's policy forbids; a run recommending one fails
                its audit (``blocked_items``).

        Returns:
            The passing audit report.

        Raises:
            PublishError: The audit failed. The run is marked ``failed`` (unless it had
                been published before, in which case its status and rows are kept), its
                staging rows are removed and the live run is unchanged.
            ValueError: ``k`` < 1 or ``seen`` lacks its columns.
            Exception: Any database error; the live run is unchanged and the run is
                marked ``failed`` with ``metrics['error']``.
        """
        check_arguments(seen, k)
        started = time.perf_counter()
        expected = frozenset(str(u) for u in expected_users)
        known = frozenset(str(i) for i in known_items)
        blocked = frozenset(str(i) for i in blocked_items)
        self._execute(
            _SQL_BEGIN_RUN,
            (
                run.run_id,
                _iso_date(run.run_date),
                run.dataset,
                run.model_version,
                STAGED,
                _metrics_json(run.metrics),
                _utc_now(),
                STAGED,
                FAILED,
            ),
        )
        try:
            report = self._stage_and_audit(run, recommendations, similar_items, expected, known, seen, k, blocked)
            if not report.ok:
                with self._transaction():
                    self._clear_staging(run.run_id)
                    self._mark_failed(run, audit=report.as_dict())
                logger.error("run %s failed its audit: %s", run.run_id, "; ".join(report.problems))
                raise PublishError(report)
            previous = self._switch_live(run, _metrics_json(run.metrics, audit=report.as_dict()))
        except PublishError:
            raise
        except Exception as exc:
            self._abort(run, exc)
            raise
        logger.info(
            "published run %s (%d recommendations for %d users, %d similar-item rows; previous live %s) in %.2fs",
            run.run_id,
            report.n_recommendations,
            report.n_users,
            report.n_similar_rows,
            previous,
            time.perf_counter() - started,
        )
        return report

    def _stage_and_audit(
        self,
        run: RunInfo,
        recommendations: pd.DataFrame,
        similar_items: pd.DataFrame,
        expected: frozenset[str],
        known: frozenset[str],
        seen: pd.DataFrame,
        k: int,
        blocked: frozenset[str],
    ) -> AuditReport:
        """Load the run into staging (replacing earlier staging rows of it) and audit what reads back."""
        problems = check_schema(recommendations, similar_items)
        if problems:
            return AuditReport(problems=problems, k=k, n_expected_users=len(expected), n_blocked_items=len(blocked))
        started = time.perf_counter()
        rec_rows = _rows(
            recommendations[list(RECOMMENDATION_INPUT_COLUMNS)],
            RECOMMENDATION_COLUMNS,
            {
                "run_id": run.run_id,
                "model_version": run.model_version,
                "run_date": _iso_date(run.run_date),
                "generated_at": _utc_iso(run.generated_at),
            },
        )
        sim_rows = _rows(similar_items[list(SIMILAR_ITEM_INPUT_COLUMNS)], SIMILAR_ITEM_COLUMNS, {"run_id": run.run_id})
        with self._transaction():
            self._clear_staging(run.run_id)
            self._bulk_insert(RECOMMENDATIONS_STAGING, RECOMMENDATION_COLUMNS, rec_rows)
            self._bulk_insert(SIMILAR_ITEMS_STAGING, SIMILAR_ITEM_COLUMNS, sim_rows)
        logger.info(
            "staged run %s: %d recommendation rows, %d similar-item rows in %.2fs",
            run.run_id,
            len(rec_rows),
            len(sim_rows),
            time.perf_counter() - started,
        )

        staged_recs = self._select(RECOMMENDATIONS_STAGING, RECOMMENDATION_COLUMNS, "user_id, rank", run_id=run.run_id)
        staged_sims = self._select(SIMILAR_ITEMS_STAGING, SIMILAR_ITEM_COLUMNS, "item_id, rank", run_id=run.run_id)
        report = audit_run(
            staged_recs,
            staged_sims,
            expected_users=expected,
            known_items=known,
            seen=seen,
            k=k,
            blocked_items=blocked,
        )
        mismatches = [
            f"{LOAD_MISMATCH}: staging holds {len(staged)} {name} rows, {len(given)} were given"
            for name, staged, given in (
                ("recommendation", staged_recs, rec_rows),
                ("similar-item", staged_sims, sim_rows),
            )
            if len(staged) != len(given)
        ]
        return dataclasses.replace(report, problems=report.problems + mismatches)

    def _switch_live(self, run: RunInfo, metrics: str) -> str | None:
        """In one transaction: replace the run's rows from staging, mark it published, point live at it.

        Returns:
            The run that was live before.
        """
        with self._transaction():
            previous = self._live_run_id(lock=True)
            self._replace_rows(run.run_id)
            self._execute(
                _SQL_MARK_PUBLISHED,
                (_iso_date(run.run_date), run.dataset, run.model_version, PUBLISHED, metrics, _utc_now(), run.run_id),
            )
            self._set_live(run.run_id)
            self._clear_staging(run.run_id)
        return previous

    def _replace_rows(self, run_id: str) -> None:
        for delete, insert in _SQL_REPLACE_ROWS:
            self._execute(delete, (run_id,))
            self._execute(insert, (run_id,))

    def _set_live(self, run_id: str) -> None:
        self._execute(_SQL_SET_LIVE, (LIVE_NAME, run_id))

    def _live_run_id(self, *, lock: bool = False) -> str | None:
        rows = self._query(_SQL_LIVE + (self.FOR_UPDATE if lock else ""), (LIVE_NAME,))
        return rows[0][0] if rows else None

    def _clear_staging(self, run_id: str) -> None:
        for statement in _SQL_CLEAR_STAGING:
            self._execute(statement, (run_id,))

    def _mark_failed(self, run: RunInfo, **details: Any) -> None:
        """Mark a run that was being staged as failed (a run published before keeps its status)."""
        self._execute(_SQL_MARK_FAILED, (FAILED, _metrics_json(run.metrics, **details), run.run_id, STAGED))

    def _abort(self, run: RunInfo, error: BaseException) -> None:
        """Best-effort cleanup after an unexpected error while publishing."""
        logger.error("publishing run %s failed: %r", run.run_id, error)
        try:
            with self._transaction():
                self._clear_staging(run.run_id)
                self._mark_failed(run, error=f"{type(error).__name__}: {error}")
        except Exception:
            logger.exception("could not clean up after the failed publish of run %s", run.run_id)

    # ---- rollback -----------------------------------------------------------------------------

    def rollback(self, run_id: str | None = None) -> str:
        """Point ``live`` at an earlier run, in one transaction.

        The run that was live becomes ``rolled_back``; the target becomes ``published``.

        Args:
            run_id: The run to make live (it must have been published). None means the
                previous run: the latest ``published`` run published before the live one.

        Returns:
            The run now live.

        Raises:
            RollbackError: Nothing is live, there is no earlier published run, or
                ``run_id`` was never published.
        """
        with self._transaction():
            live = self._live_run_id(lock=True)
            if live is None:
                raise RollbackError("nothing is live, so there is nothing to roll back")
            if run_id is None:
                _, live_published_at = self._query(_SQL_RUN, (live,))[0]
                rows = self._query(_SQL_PREVIOUS_PUBLISHED, (PUBLISHED, live, live_published_at, live))
                if not rows:
                    raise RollbackError(f"no published run before the live run {live}")
                target = rows[0][0]
            else:
                rows = self._query(_SQL_RUN, (run_id,))
                if not rows or rows[0][0] not in (PUBLISHED, ROLLED_BACK):
                    raise RollbackError(f"run {run_id} has no published rows to roll back to")
                target = run_id
            if target != live:
                self._execute(_SQL_SET_STATUS, (ROLLED_BACK, live))
                self._execute(_SQL_SET_STATUS, (PUBLISHED, target))
                self._set_live(target)
        logger.info("rolled back from run %s to run %s", live, target)
        return target

    # ---- context manager ----------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _utc_now() -> str:
    """Bookkeeping time (runs.created_at / published_at), not data time."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
