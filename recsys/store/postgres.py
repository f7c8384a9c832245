"""PostgreSQL store: the same contract over a real server (psycopg 3, bulk load with COPY)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from recsys.store.base import ColumnTypes, Store

logger = logging.getLogger(__name__)


def _pyformat(statement: str) -> str:
    """The shared SQL uses ``?`` placeholders (and no literal ``?`` or ``%``); psycopg wants ``%s``."""
    return statement.replace("?", "%s")


class PostgresStore(Store):
    """The store contract over PostgreSQL.

    Credentials come only from ``url`` and the libpq environment (``PGPASSWORD``,
    ``~/.pgpass``, ...). The connection is in autocommit mode: every read is one
    statement on one snapshot, and multi-statement writes run in explicit transactions.

    Args:
        url: libpq connection string or URL, e.g. ``postgresql://user@host:5432/db``;
            ``?options=-csearch_path%3Dname`` selects a schema too.
        schema: Schema to create (if missing) and use for all tables and views.

    Raises:
        SchemaVersionError: The schema holds a store of a newer schema version than this code.
    """

    TYPES = ColumnTypes(text="TEXT", date="DATE", timestamp="TIMESTAMPTZ", integer="INTEGER", double="DOUBLE PRECISION")
    FOR_UPDATE = " FOR UPDATE"

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        try:
            if schema:
                self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                self._conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            self._ensure_schema()
        except BaseException:
            self._conn.close()
            raise
        logger.debug(
            "opened PostgreSQL store host=%s db=%s schema=%s",
            self._conn.info.host,
            self._conn.info.dbname,
            schema or "(search_path)",
        )

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(_pyformat(statement), tuple(params))

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(_pyformat(statement), tuple(params)).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def _bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self._conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)

    def _existing_objects(self) -> set[str]:
        rows = self._query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return {name for (name,) in rows}

    def _lock_schema(self) -> None:
        self._execute("SELECT pg_advisory_xact_lock(hashtext('recsys.store:' || current_schema()))")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
