"""Blocks of work as a Spark job: the recommend stage's ``spark`` engine (``retrieval.engine``).

:func:`map_blocks` runs ``work(j)`` for the block numbers ``j = 0 .. n_blocks - 1`` on Spark
and returns what a loop over them would: the blocks' rows in block order, and their counters.

* The block numbers are a Spark range cut into ``ceil(n_blocks / blocks_per_partition)``
  partitions of consecutive blocks, so which task serves which blocks, and in which order,
  is fixed.
* ``work`` (a function of the block number holding everything it reads: for the recommend
  stage the users, the sources' data, the model, the policy step, the explainer, the reserve
  step and the note) is pickled once with cloudpickle (the copy pyspark ships) and broadcast
  as bytes; each Python worker unpickles it once and keeps it while the job's tasks come.
* :meth:`~pyspark.sql.DataFrame.mapInPandas` calls ``work`` for each block of a partition and
  returns, through Arrow, the block's rows (columns as declared, plus the block number and the
  row's position in the block) and one more row holding the block's counters as JSON. There
  is no shuffle: the driver collects, drops the counter rows and sorts by (block, position).

What ``work`` holds must pickle: numpy models, closures, the faiss wrappers
(:mod:`recsys.retrieval.faiss_index` pickles its indexes); never a TensorFlow object (the
serving models are numpy; the two-tower model is loaded without its towers). A pickle that
names ``tensorflow`` or ``keras`` is logged as a warning.

The session: :func:`serving_session` uses the active one (a caller's, left running) or makes
one with :func:`recsys.spark.get_spark` (``RECSYS_SPARK_MASTER``, default ``local[2]``) and
stops it when its ``with`` block ends. On a cluster, the executors need the ``recsys``
package installed: the pickle refers to its functions by name.

This module knows nothing of recommendations; :func:`recsys.stages.recommend.serve_blocks_spark`
gives it the per-block step both engines share (:func:`recsys.stages.recommend.serve_block`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

Work = Callable[[int], tuple[pd.DataFrame, dict[str, Any]]]
"""``work(block number) -> (the block's rows, its JSON-able counters)``."""

NUMPY_TYPES: dict[str, Any] = {
    "int": np.int32,
    "bigint": np.int64,
    "float": np.float32,
    "double": np.float64,
    "boolean": np.bool_,
    "string": object,
}
"""The column types :func:`map_blocks` carries (Spark SQL name -> the numpy dtype the rows come back with)."""

_SHIPPED_NAMES = (b"tensorflow", b"keras")
"""Module names a serving state must not pickle (its workers would import TensorFlow)."""

_WORK: dict[str, Work] = {}
"""In a Spark Python worker: the unpickled work of the job being run (by its token; one job at a time)."""


@contextmanager
def serving_session(app_name: str = "recsys-recommend") -> Iterator[SparkSession]:
    """The active Spark session, or a new one stopped when the ``with`` block ends.

    A session somebody else started (a test's, a Spark job's) is used and left running; only a
    session made here is stopped here. A new session's Python workers run this interpreter
    (``PYSPARK_PYTHON``, unless set), which has ``recsys`` installed.

    Args:
        app_name: Name of a new session (:func:`recsys.spark.get_spark`).
    """
    from pyspark.sql import SparkSession

    from recsys.spark import get_spark

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = get_spark(app_name)
    logger.info("Spark session %s started (master %s)", app_name, spark.sparkContext.master)
    try:
        yield spark
    finally:
        spark.stop()
        logger.info("Spark session %s stopped", app_name)


def map_blocks(
    n_blocks: int,
    work: Work,
    columns: Mapping[str, str],
    *,
    spark: SparkSession | None = None,
    blocks_per_partition: int = 1,
    label: str = "blocks",
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``work(j)`` for every block ``j`` on Spark: what ``[work(j) for j in range(n_blocks)]`` gives, gathered.

    Args:
        n_blocks: Blocks (``work``'s arguments are ``0 .. n_blocks - 1``).
        work: The per-block step; with everything it reads, it must pickle with cloudpickle.
        columns: ``{column: Spark SQL type}`` of ``work``'s rows (types of :data:`NUMPY_TYPES`).
        spark: Session; ``None``: :func:`serving_session`'s (made and stopped for this call if none is active).
        blocks_per_partition: Consecutive blocks per partition (task).
        label: Names the job in the log and in the Spark UI.

    Returns:
        ``(rows, counters)``: every block's rows concatenated in block order (then in each block's
        order; columns ``columns`` with :data:`NUMPY_TYPES`' dtypes, a fresh index), and the
        ``[n_blocks]`` counters ``work`` returned, in block order.

    Raises:
        ValueError: ``blocks_per_partition`` below 1, or a type outside :data:`NUMPY_TYPES`.
        RuntimeError: If a block's result is missing from the job's output.
    """
    if blocks_per_partition < 1:
        raise ValueError(f"blocks_per_partition must be >= 1, got {blocks_per_partition}")
    unknown = sorted(set(columns.values()) - set(NUMPY_TYPES))
    if unknown:
        raise ValueError(f"column types {unknown} are not among {sorted(NUMPY_TYPES)}")
    names = list(columns)
    if n_blocks <= 0:
        return _typed(pd.DataFrame({c: pd.Series([], dtype=object) for c in names}), columns), []
    if spark is None:
        with serving_session() as session:
            return map_blocks(
                n_blocks, work, columns, spark=session, blocks_per_partition=blocks_per_partition, label=label
            )
    from pyspark import cloudpickle

    start = time.monotonic()
    payload = cloudpickle.dumps(work)
    shipped = [name.decode() for name in _SHIPPED_NAMES if name in payload]
    if shipped:
        logger.warning("%s: the serving state pickles references to %s (workers will import it)", label, shipped)
    sc = spark.sparkContext
    state = sc.broadcast(payload)
    n_parts = -(-n_blocks // blocks_per_partition)
    logger.info(
        "%s: %d blocks on %d partitions (Spark %s); serving state %.1f MB, pickled in %.1f s",
        label,
        n_blocks,
        n_parts,
        sc.master,
        len(payload) / 1e6,
        time.monotonic() - start,
    )
    del payload
    run = functools.partial(_run_partition, state=state, token=uuid.uuid4().hex, names=tuple(names))
    sc.setJobDescription(f"{label}: {n_blocks} blocks")
    try:
        out = (
            spark.range(0, n_blocks, 1, numPartitions=n_parts)
            .selectExpr("CAST(id AS INT) AS block")
            .mapInPandas(run, _output_schema(columns))
            .toPandas()
        )
    finally:
        sc.setJobDescription(None)
        state.destroy()
    counters = out[out["stats"].notna()]
    found = sorted(counters["block"].astype(np.int64).tolist())
    if found != list(range(n_blocks)):
        raise RuntimeError(f"{label}: the job returned counters of {len(found)} blocks, expected {n_blocks}")
    records = [json.loads(text) for text in counters.sort_values("block")["stats"]]
    _log_partitions(label, records, n_parts, time.monotonic() - start)
    rows = out[out["stats"].isna()].sort_values(["block", "row"], kind="stable")
    return _typed(rows[names].reset_index(drop=True), columns), [r["work"] for r in records]


def _output_schema(columns: Mapping[str, str]) -> Any:
    """The job's rows: ``block``, ``row`` (position in the block; null on a counter row), ``columns``, ``stats``."""
    from pyspark.sql import types as T

    spark_types = {
        "int": T.IntegerType,
        "bigint": T.LongType,
        "float": T.FloatType,
        "double": T.DoubleType,
        "boolean": T.BooleanType,
        "string": T.StringType,
    }
    fields = [T.StructField("block", T.IntegerType(), False), T.StructField("row", T.IntegerType(), True)]
    fields += [T.StructField(name, spark_types[kind](), True) for name, kind in columns.items()]
    return T.StructType([*fields, T.StructField("stats", T.StringType(), True)])


def _typed(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with :data:`NUMPY_TYPES`' dtype per column (the collected ints are floats: the counter rows' nulls)."""
    return frame.astype({name: NUMPY_TYPES[kind] for name, kind in columns.items()})


def _log_partitions(label: str, records: list[dict[str, Any]], n_parts: int, seconds: float) -> None:
    """One progress line per partition (its blocks' users and seconds), then the job's."""
    per_part: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        per_part.setdefault(int(r["partition"]), []).append(r)
    for p, rs in sorted(per_part.items()):
        users = sum(int(r["work"].get("users", 0)) for r in rs)
        logger.info(
            "%s: partition %d/%d (%d blocks, %d users, %.1f s)",
            label,
            p + 1,
            n_parts,
            len(rs),
            users,
            sum(float(r["seconds"]) for r in rs),
        )
    logger.info("%s: %d blocks on Spark in %.1f s", label, len(records), seconds)


def _work_of(state: Any, token: str) -> Work:
    """The job's work in this worker: unpickled from the broadcast bytes on the first of its tasks here."""
    work = _WORK.get(token)
    if work is None:
        from pyspark import cloudpickle

        _WORK.clear()  # one job's state at a time
        work = _WORK[token] = cloudpickle.loads(state.value)
    return work


def _run_partition(
    batches: Iterator[pd.DataFrame], *, state: Any, token: str, names: tuple[str, ...]
) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` body: each block of the partition through ``work``; its rows, then its counter row."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else -1
    work = _work_of(state, token)
    for batch in batches:
        for j in batch["block"].tolist():
            start = time.monotonic()
            frame, counters = work(int(j))
            seconds = time.monotonic() - start
            n = len(frame)
            if n:  # (pyspark's Arrow conversion fails on a frame of no rows)
                rows = {"block": np.full(n, j, dtype=np.int32), "row": np.arange(n, dtype=np.int32)}
                rows.update({name: frame[name].to_numpy() for name in names})
                yield pd.DataFrame({**rows, "stats": pd.Series([None] * n, dtype=object)})
            record = {"work": counters, "partition": partition, "seconds": seconds}
            tail = {name: pd.Series([None], dtype=object) for name in ("row", *names)}
            yield pd.DataFrame({"block": np.array([j], np.int32), **tail, "stats": [json.dumps(record)]})
            logger.info("block %d (partition %d): %d rows in %.1f s", j, partition, n, seconds)
