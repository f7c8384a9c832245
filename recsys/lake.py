"""Where tables live and how pandas-side code reads and writes them.

Layout: ``<lake>/<table>/run_date=<YYYY-MM-DD>/part-*.parquet``. Spark jobs
write the same layout with dynamic partition overwrite; pandas-side tasks use
:func:`write_partition`, which swaps a whole partition in at once so a rerun
replaces that date's rows and a crash never leaves half a partition.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import table

logger = logging.getLogger(__name__)


def table_dir(lake: Path, name: str) -> Path:
    """Folder of table ``name`` (all partitions)."""
    return Path(lake) / table(name).name


def partition_dir(lake: Path, name: str, run_date: str) -> Path:
    """Folder of one run date's partition of table ``name``."""
    return table_dir(lake, name) / f"run_date={run_date}"


def partition_dates(lake: Path, name: str) -> list[str]:
    """Run dates that have a partition of table ``name``, oldest first."""
    root = table_dir(lake, name)
    if not root.exists():
        return []
    return sorted(p.name.split("=", 1)[1] for p in root.iterdir() if p.name.startswith("run_date="))


def read_partition(lake: Path, name: str, run_date: str) -> pd.DataFrame:
    """Read one partition into pandas, with exactly the schema's columns and types.

    Raises:
        FileNotFoundError: If the partition does not exist.
    """
    schema = table(name)
    path = partition_dir(lake, name, run_date)
    files = sorted(path.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {name} partition for run_date={run_date} at {path}")
    tbl = (
        pq.read_table(files, columns=schema.names)
        if len(files) == 1
        else pa.concat_tables([pq.read_table(f, columns=schema.names) for f in files])
    )
    return tbl.cast(schema.arrow).to_pandas()


def write_partition(df: pd.DataFrame, lake: Path, name: str, run_date: str) -> Path:
    """Write ``df`` as the ``run_date`` partition of table ``name``, replacing it whole.

    Args:
        df: Rows of the table; must have every schema column (extra columns are an error).
        lake: Lake root.
        name: Table name from ``schemas``.
        run_date: ISO date of the partition.

    Returns:
        The partition folder.

    Raises:
        ValueError: If the columns do not match the schema or a value does not fit its type.
    """
    schema = table(name)
    if sorted(df.columns) != sorted(schema.names):
        raise ValueError(f"{name}: columns {sorted(df.columns)} != schema {sorted(schema.names)}")
    arrow = pa.Table.from_pandas(df[schema.names], schema=schema.arrow, preserve_index=False)
    final = partition_dir(lake, name, run_date)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    pq.write_table(arrow, tmp / "part-00000.parquet")
    old = final.parent / f".old-{uuid.uuid4().hex}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    logger.info("wrote %s run_date=%s: %d rows", name, run_date, len(df))
    return final
