"""Wall time and peak memory of generating and building the tables at 1M and 20M synthetic ratings.

For each size, runs the two Spark jobs of the nightly DAG exactly as Airflow
submits them (``spark-submit --master local[2]``): ``jobs/ingest.py`` (which
generates the synthetic data, streaming to Parquet, then stages it) and
``jobs/build_tables.py``. Peak memory is the largest sum of resident memory over
the whole process tree (spark-submit, the JVM, the Python driver), sampled
every 0.2 s. Prints one table; ``--json`` writes it.

    .venv/bin/python bench/tables_scale.py --sizes 1m,20m --json reports/tables_scale.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from synthetic_scale import SIZES  # noqa: E402

RUN_DATE = "2026-11-27"


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_job(args: list[str], driver_memory: str) -> tuple[float, float]:
    """Run one Spark job; returns (wall seconds, peak tree RSS MB)."""
    spark_submit = str(Path(sys.executable).parent / "spark-submit")
    cmd = [
        spark_submit,
        "--master",
        "local[2]",
        "--driver-memory",
        driver_memory,
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        "spark.ui.enabled=false",
        *args,
    ]
    start = time.monotonic()
    import os

    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
    }
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _tree_rss(ps))
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    done.set()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed:\n{err[-3000:]}")
    return time.monotonic() - start, peak / 2**20


def run_size(size: str, home: Path, driver_memory: str) -> dict[str, Any]:
    """Generate + ingest + build tables for one size."""
    p = SIZES[size]
    lake = home / "lake" / "synthetic"
    ingest = [
        str(ROOT / "jobs" / "ingest.py"),
        "--dataset",
        "synthetic",
        "--lake",
        str(lake),
        "--run-date",
        RUN_DATE,
        "--raw-dir",
        str(home / "raw"),
        "--n-users",
        str(p["n_users"]),
        "--n-items",
        str(p["n_items"]),
        "--n-groups",
        str(p["n_groups"]),
        "--mean-ratings-per-user",
        str(p["mean_ratings_per_user"]),
        "--min-ratings-per-user",
        str(p["min_ratings_per_user"]),
    ]
    build = [str(ROOT / "jobs" / "build_tables.py"), "--lake", str(lake), "--run-date", RUN_DATE]
    t_ingest, m_ingest = run_job(ingest, driver_memory)
    t_build, m_build = run_job(build, driver_memory)
    import pyarrow.parquet as pq

    n = pq.ParquetDataset(str(lake / "ratings" / f"run_date={RUN_DATE}")).read(columns=["user_idx"]).num_rows
    return {
        "size": size,
        "ratings": n,
        "users": p["n_users"],
        "items": p["n_items"],
        "generate_ingest_s": round(t_ingest, 1),
        "build_tables_s": round(t_build, 1),
        "total_s": round(t_ingest + t_build, 1),
        "peak_rss_mb": round(max(m_ingest, m_build)),
        "ratings_per_s": round(n / (t_ingest + t_build)),
        "driver_memory": driver_memory,
    }


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1m,20m")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory(prefix=f"recsys-bench-{size}-") as tmp:
            rows.append(run_size(size, Path(tmp), args.driver_memory))
            print(json.dumps(rows[-1]), flush=True)
    cols = list(rows[0])
    print("  ".join(f"{c:>17}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]!s:>17}" for c in cols))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
