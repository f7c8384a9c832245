"""SQLite store: the embedded default (one file, WAL mode, stdlib ``sqlite3``)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recsys.store.base import ColumnTypes, Store

logger = logging.getLogger(__name__)


class SQLiteStore(Store):
    """The store contract over one SQLite file.

    WAL mode lets readers keep reading the previous snapshot while a publish writes;
    writers are serialised by ``BEGIN IMMEDIATE``.

    Args:
        path: Database file (created, with its parent folders, if missing).
        timeout: Seconds to wait for another writer's lock before failing.

    Raises:
        SchemaVersionError: The file holds a store of a newer schema version than this code.
    """

    TYPES = ColumnTypes(text="TEXT", date="TEXT", timestamp="TEXT", integer="INTEGER", double="REAL")

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; transactions are explicit (see _transaction).
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._ensure_schema()
        except BaseException:
            self._conn.close()
            raise
        logger.debug("opened SQLite store %s", self.path)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, tuple(params))

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:  # SQLite may already have rolled back on some errors
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        placeholders = ", ".join("?" for _ in columns)
        self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)

    def _existing_objects(self) -> set[str]:
        rows = self._query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        return {name for (name,) in rows}

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
