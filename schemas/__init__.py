"""Every table of the lake, defined once.

Jobs derive their Spark schemas from here, validation derives its expectation
suites from here, and tests build their fixtures from here.
"""

from schemas.tables import TABLES, Column, TableSchema, table

__all__ = ["TABLES", "Column", "TableSchema", "table"]
