"""Great Expectations suites derived from ``schemas/``.

Each table's suite checks what its schema declares: the columns exist, key
columns are not null and unique together, non-nullable columns have no nulls,
declared ranges and value sets hold, references point at existing rows of the
referenced table, and the row count is above the floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from schemas import TableSchema


def expectations_for(
    schema: TableSchema,
    *,
    min_rows: int | None = None,
    reference_values: Mapping[str, Sequence[Any]] | None = None,
) -> list[Any]:
    """The expectations of one table.

    Args:
        schema: The table's schema.
        min_rows: Row-count floor; defaults to ``schema.min_rows``.
        reference_values: For each ``"table.column"`` that columns reference, its values.

    Returns:
        A list of ``great_expectations.expectations`` objects.
    """
    import great_expectations as gx

    e = gx.expectations
    out: list[Any] = [
        e.ExpectTableColumnsToMatchSet(column_set=schema.names, exact_match=False),
        e.ExpectTableRowCountToBeBetween(min_value=schema.min_rows if min_rows is None else min_rows),
    ]
    for col in schema.columns:
        if not col.nullable or col.name in schema.key:
            out.append(e.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.min_value is not None or col.max_value is not None:
            out.append(
                e.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min_value, max_value=col.max_value)
            )
        if col.allowed is not None:
            out.append(e.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed)))
        if col.references is not None and reference_values is not None and col.references in reference_values:
            out.append(e.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(reference_values[col.references])))
    if len(schema.key) == 1:
        out.append(e.ExpectColumnValuesToBeUnique(column=schema.key[0]))
    elif len(schema.key) > 1:
        out.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(schema.key)))
    for col in schema.extra.get("unique", ()):
        out.append(e.ExpectColumnValuesToBeUnique(column=col))
    return out
