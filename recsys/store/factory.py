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
        url: SQLite: ``sqlite:///abs/path.db`` (``sqlite:////abs/path.db`` also works)
            or a plain file path, absolute or relative (created if missing).
            PostgreSQL: ``postgresql://user@host:port/db`` (or ``postgres://``), with
            credentials in the URL or the libpq environment.
        schema: PostgreSQL only: schema to create if missing and use.

    Returns:
        A connected store; close it (or use it as a context manager) when done.

    Raises:
        ValueError: Unknown URL scheme, a malformed sqlite URL, or ``schema`` given for SQLite.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in _POSTGRES_SCHEMES:
        return PostgresStore(url, schema=schema)
    if scheme not in ("", "sqlite"):
        raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:///path.db, a path or postgresql://")
    if schema is not None:
        raise ValueError("schema= is only supported by the PostgreSQL store")
    if not scheme:
        return SQLiteStore(url)
    parts = urlsplit(url)
    # sqlite:///abs/path.db and SQLAlchemy's sqlite:////abs/path.db both name /abs/path.db.
    path = "/" + parts.path.lstrip("/")
    if parts.netloc or path == "/":
        raise ValueError(f"store URL {url!r} must look like sqlite:///abs/path.db")
    return SQLiteStore(path)
