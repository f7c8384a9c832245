"""Run the DAGs on this machine: the environment Airflow needs, and the commands.

One place defines where Airflow keeps its metadata (SQLite under
``<home>/airflow``), which DAG folder it reads, how Spark is reached
(``spark_default`` = ``local[2]``), and the low parallelism a 2-core machine
wants. ``recsys run``, ``recsys airflow`` and the tests all use it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from recsys.config import PROJECT_ROOT

logger = logging.getLogger(__name__)

DAG_ID = "recsys_nightly"


def airflow_env(
    home: Path, *, spark_master: str | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for every Airflow command of this project.

    Args:
        home: ``RECSYS_HOME``; Airflow's files go to ``<home>/airflow``.
        spark_master: Master of the ``spark_default`` connection; default ``RECSYS_SPARK_MASTER``
            or ``local[2]`` (a cluster: ``spark://host:7077``).
        base: Environment to extend (default: this process's).

    Returns:
        A complete environment for ``subprocess``.
    """
    home = Path(home).resolve()
    airflow_home = home / "airflow"
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    port = env.get("AIRFLOW__API__PORT", "8080")
    spark_master = spark_master or env.get("RECSYS_SPARK_MASTER", "local[2]")
    env.update(
        {
            "RECSYS_HOME": str(home),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
            "AIRFLOW__API__HOST": env.get("AIRFLOW__API__HOST", "127.0.0.1"),
            "AIRFLOW__API__PORT": port,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": spark_master}),
            "RECSYS_SPARK_MASTER": spark_master,  # the same master for in-task sessions (retrieval.engine=spark)
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "NO_PROXY": "*",
        }
    )
    return env


def airflow_bin() -> str:
    """The ``airflow`` executable of this virtualenv."""
    return str(Path(sys.executable).parent / "airflow")


def ensure_db(env: Mapping[str, str]) -> None:
    """Create or upgrade Airflow's metadata database (idempotent, skipped when current)."""
    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    stamp = airflow_home / ".migrated"
    if stamp.exists():
        return
    logger.info("initialising Airflow metadata in %s", airflow_home)
    subprocess.run([airflow_bin(), "db", "migrate"], env=dict(env), check=True, capture_output=True, text=True)
    stamp.touch()


_TASK_START = re.compile(r"\[DAG TEST\] running task <TaskInstance: [\w.]+?\.(\w+) ")
_OWN_LOG = re.compile(r"\[(?:info|warning|error)\s*\] (.*?) \[recsys\.[\w.]+\]")
_JOB_LOG = re.compile(r"(?:INFO|WARN|WARNING|ERROR) recsys\.jobs\.\w+: (.*?) \[airflow")
_FAILURE = re.compile(r"Marking task as FAILED|ValidationFailed|PublishError|Traceback")


def progress_line(line: str) -> str | None:
    """The human-relevant part of one line of ``airflow dags test`` output, or ``None``.

    Task starts and the pipeline's own log messages are kept; Airflow's and
    Spark's own chatter is dropped (it stays in the log file).
    """
    if m := _TASK_START.search(line):
        return f"> {m.group(1)}"
    if m := _OWN_LOG.search(line) or _JOB_LOG.search(line):
        return f"    {m.group(1)}"
    if _FAILURE.search(line):
        return f"  ! {line.strip()[:300]}"
    return None


def dags_test(
    home: Path,
    run_date: str,
    conf: Mapping[str, object] | None = None,
    *,
    capture: bool = False,
    log_file: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    dag_id: str = DAG_ID,
    spark_master: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow dags test <dag_id> <run_date>`` (every task, in-process, no scheduler).

    Args:
        home: ``RECSYS_HOME``.
        run_date: Logical date, ``YYYY-MM-DD``.
        conf: DAG params for this run.
        capture: Return the output in the result instead of streaming it to this terminal.
        log_file: Also write the whole output here.
        on_line: Called with every output line (e.g. to show progress); implies capture.
        dag_id: Which DAG.
        spark_master: Master of the ``spark_default`` connection the Spark jobs are submitted to
            (e.g. ``spark://127.0.0.1:7077``); default as in :func:`airflow_env`.

    Returns:
        The completed process (the caller checks ``returncode``).
    """
    env = airflow_env(home, spark_master=spark_master)
    ensure_db(env)
    cmd = [airflow_bin(), "dags", "test", dag_id, run_date]
    if conf:
        cmd += ["--conf", json.dumps(dict(conf))]
    logger.info("running %s", " ".join(cmd))
    if not capture and on_line is None and log_file is None:
        return subprocess.run(cmd, env=env, text=True, cwd=PROJECT_ROOT)
    lines: list[str] = []
    sink = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        sink = log_file.open("w")
    try:
        with subprocess.Popen(
            cmd, env=env, text=True, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if sink is not None:
                    sink.write(line)
                if on_line is not None:
                    on_line(line)
    finally:
        if sink is not None:
            sink.close()
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def _latest_run(home: Path, run_date: str, dag_id: str, tasks_sql: str) -> tuple[str | None, list[tuple]]:
    """``(state of the latest run of dag_id for run_date, rows of tasks_sql for it)``; ``(None, [])`` if none.

    ``tasks_sql`` selects from ``task_instance`` with ``dag_id = ? AND run_id = ?`` placeholders.
    """
    import sqlite3

    db = Path(home).resolve() / "airflow" / "airflow.db"
    with sqlite3.connect(db) as con:
        row = con.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND date(logical_date) = ? ORDER BY id DESC LIMIT 1",
            (dag_id, run_date),
        ).fetchone()
        if row is None:
            return None, []
        return row[1], con.execute(tasks_sql, (dag_id, row[0])).fetchall()


def dag_run_state(home: Path, run_date: str, dag_id: str = DAG_ID) -> dict[str, str]:
    """Task id -> state of the latest run of ``dag_id`` for ``run_date`` (from Airflow's metadata DB)."""
    state, tasks = _latest_run(
        home, run_date, dag_id, "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?"
    )
    return {} if state is None else {"__dag_run__": state, **dict(tasks)}


def task_seconds(home: Path, run_date: str, dag_id: str = DAG_ID) -> dict[str, float]:
    """Task id -> seconds it ran, for the latest run of ``dag_id`` for ``run_date`` (Airflow's metadata DB).

    Returns:
        ``{task_id: duration}`` in start order (tasks that never ran are left out).
    """
    _, tasks = _latest_run(
        home,
        run_date,
        dag_id,
        "SELECT task_id, duration FROM task_instance WHERE dag_id = ? AND run_id = ? AND duration IS NOT NULL"
        " ORDER BY start_date",
    )
    return {task: float(seconds) for task, seconds in tasks}


def standalone(home: Path, *, grace_seconds: float = 30.0) -> int:
    """Run ``airflow standalone`` until interrupted; stopping it stops everything it started.

    Airflow runs in its own process group. SIGINT or SIGTERM to this process is
    forwarded to the whole group; whatever is still alive after ``grace_seconds``
    is killed, so no scheduler, worker or API server outlives the command.

    Returns:
        Airflow's exit code (0 after a requested stop).
    """
    import signal
    import time

    env = airflow_env(home)
    ensure_db(env)
    logger.info(
        "Airflow UI on http://localhost:%s (user admin; password in %s)",
        env["AIRFLOW__API__PORT"],
        Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated",
    )
    proc = subprocess.Popen([airflow_bin(), "standalone"], env=env, start_new_session=True)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        logger.info("stopping Airflow (signal %d)", signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while proc.poll() is None:
            time.sleep(0.5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        deadline = time.monotonic() + grace_seconds
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
            time.sleep(1)
        if _group_alive(proc.pid):
            logger.warning("Airflow processes still alive after %.0fs: killing them", grace_seconds)
            os.killpg(proc.pid, signal.SIGKILL)
    return 0 if stopping else proc.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True
