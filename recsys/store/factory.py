"""Open a store from a URL (the one setting that chooses the backend)."""

from __future__ import annotations

from urllib.parse import urlsplit

from recsys.store.base import Store
from recsys.store.postgres import PostgresStore
from recsys.store.sqlite import SQLiteStore

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(url: str, *, schema: str | None = None) -> Store:
    """Open the store that ``url`` names.

    Args:
        url: ``sqlite:///abs/path.db`` or a plain file path for SQLite (created if
            missing); ``postgresql://user@host:port/db`` (or ``postgres://``) for
            PostgreSQL, with credentials in the URL or the libpq environment.
        schema: PostgreSQL only: schema to create if missing and use.

    Returns:
        A connected store; close it (or use it as a context manager) when done.

    Raises:
        ValueError: Unknown URL scheme, or ``schema`` given for SQLite.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in _POSTGRES_SCHEMES:
        return PostgresStore(url, schema=schema)
    if scheme not in ("", "sqlite"):
        raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:///path.db, a path or postgresql://")
    if schema is not None:
        raise ValueError("schema= is only supported by the PostgreSQL store")
    path = urlsplit(url).path if scheme else url
    if not path or path == "/":
        raise ValueError(f"store URL {url!r} names no database file")
    return SQLiteStore(path)
