"""Published recommendations: the Store interface, its SQLite and PostgreSQL backends.

Consumers read ``recommendations_latest`` / ``similar_items_latest`` (or
:meth:`Store.read_recommendations`); the pipeline calls :meth:`Store.publish`,
which writes to staging, audits and switches the live run in one transaction.
:data:`CANDIDATE_SOURCES` names the candidate sources a recommendation's ``source``
may list (joined by :data:`SOURCE_SEPARATOR`, in that order).
"""

from recsys.store.audit import CANDIDATE_SOURCES, SOURCE_SEPARATOR, AuditReport, audit_run, check_schema
from recsys.store.base import (
    FAILED,
    PUBLISHED,
    RECOMMENDATION_COLUMNS,
    ROLLED_BACK,
    RUN_STATUSES,
    SCHEMA_VERSION,
    STAGED,
    PublishError,
    RollbackError,
    RunInfo,
    SchemaVersionError,
    Store,
    StoreError,
)
from recsys.store.factory import open_store
from recsys.store.postgres import PostgresStore
from recsys.store.sqlite import SQLiteStore

__all__ = [
    "CANDIDATE_SOURCES",
    "FAILED",
    "PUBLISHED",
    "RECOMMENDATION_COLUMNS",
    "ROLLED_BACK",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "SOURCE_SEPARATOR",
    "STAGED",
    "AuditReport",
    "PostgresStore",
    "PublishError",
    "RollbackError",
    "RunInfo",
    "SQLiteStore",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "audit_run",
    "check_schema",
    "open_store",
]
