"""Published recommendations: the Store interface, its SQLite and PostgreSQL backends.

Consumers read ``recommendations_latest`` / ``similar_items_latest`` (or
:meth:`Store.read_recommendations`); the pipeline calls :meth:`Store.publish`,
which writes to staging, audits and switches the live run in one transaction.
"""

from recsys.store.audit import AuditReport, audit_run, check_schema
from recsys.store.base import (
    FAILED,
    PUBLISHED,
    ROLLED_BACK,
    RUN_STATUSES,
    STAGED,
    PublishError,
    RollbackError,
    RunInfo,
    Store,
    StoreError,
)
from recsys.store.factory import open_store
from recsys.store.postgres import PostgresStore
from recsys.store.sqlite import SQLiteStore

__all__ = [
    "FAILED",
    "PUBLISHED",
    "ROLLED_BACK",
    "RUN_STATUSES",
    "STAGED",
    "AuditReport",
    "PostgresStore",
    "PublishError",
    "RollbackError",
    "RunInfo",
    "SQLiteStore",
    "Store",
    "StoreError",
    "audit_run",
    "check_schema",
    "open_store",
]
