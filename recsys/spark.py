"""The Spark session, sized for the machine it runs on."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

# Conf every session gets; spark-submit's --master/--conf take precedence.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def get_spark(app_name: str, master: str | None = None) -> SparkSession:
    """Get or create the Spark session.

    Args:
        app_name: Application name shown in logs and the Spark UI.
        master: Master URL; ``None`` keeps what spark-submit set, else ``local[2]``.

    Returns:
        A session with :data:`DEFAULT_CONF` applied.
    """
    import logging

    from pyspark.sql import SparkSession

    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO chatter, also at interpreter exit
    builder = SparkSession.builder.appName(app_name)
    if master or not os.environ.get("SPARK_ENV_LOADED"):
        builder = builder.master(master or os.environ.get("RECSYS_SPARK_MASTER", "local[2]"))
    for key, value in DEFAULT_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def write_table_partition(df, path: str, run_date: str, n_files: int = 1) -> None:
    """Write a Spark DataFrame as the ``run_date`` partition of the table at ``path``.

    Dynamic partition overwrite: only that date's partition is replaced, so a
    rerun for the same date replaces its rows and other dates stay.

    Args:
        df: Rows of the table (schema columns only; ``run_date`` is added here).
        path: Table folder.
        run_date: ISO date.
        n_files: Files per partition.
    """
    import shutil
    from pathlib import Path

    from pyspark.sql import functions as F

    if df.isEmpty():
        # Spark writes no partition folder for no rows (and would leave an old one in
        # place): replace the partition with one empty file that carries the schema.
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyspark.sql.pandas.types import to_arrow_schema

        part = Path(path) / f"run_date={run_date}"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([], schema=to_arrow_schema(df.schema)), part / "part-00000.parquet")
        return
    (
        df.withColumn("run_date", F.lit(run_date))
        .coalesce(n_files)
        .write.mode("overwrite")
        .partitionBy("run_date")
        .parquet(str(path))
    )
