"""The whole nightly run at 1M, 5M and 20M synthetic ratings: wall time, peak memory, per-task seconds.

For each size, one real ``airflow dags test recsys_nightly`` (:func:`recsys.orchestration.dags_test`,
the same call ``recsys run`` makes) on the synthetic generator at an ML-20M-like shape
(``bench/synthetic_scale.py``'s ``SIZES``: 1m = 7,000 x 3,700, 5m = 34,600 x 13,500,
20m = 138,493 x 27,000 users x items, about 145 ratings a user), in a fresh ``RECSYS_HOME``.
Peak memory is the largest sum of resident memory over the whole process tree (the
``airflow dags test`` process, spark-submit, the JVMs, the Python drivers), sampled every
0.5 s. Prints one JSON line per size: ``size``, ``ratings``, ``users``, ``items``, ``wall_s``,
``peak_rss_gib``, ``tasks`` (task -> seconds, from Airflow's metadata DB), ``published`` (the
run succeeded and every user has K recommendations in the store) and ``state``.

    .venv/bin/python bench/nightly_scale.py --sizes 1m,5m,20m --out data/bench/nightly_scale.jsonl
    .venv/bin/python bench/nightly_scale.py --sizes 1m --keep /tmp/nightly-1m
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.synthetic_scale import SIZES  # noqa: E402

logger = logging.getLogger("bench.nightly_scale")

RUN_DATE = "2026-11-27"
TOP_K = 10


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class PeakRSS:
    """Samples the resident memory of this process's children (the DAG run's process tree) in a thread."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.peak = every, 0
        self._done = threading.Event()
        self._me = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(psutil.Error):
                children = self._me.children(recursive=False)
                self.peak = max(self.peak, sum(_tree_rss(c) for c in children))
            time.sleep(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def run_size(size: str, home: Path) -> dict[str, Any]:
    """One nightly run at ``size`` in ``home``; its figures (one JSON line's content)."""
    from recsys.config import Settings
    from recsys.orchestration import dag_run_state, dags_test, task_seconds
    from recsys.store import open_store

    shape = SIZES[size]
    conf = {
        "run_date": RUN_DATE,
        "dataset": "synthetic",
        "synthetic_n_users": shape["n_users"],
        "synthetic_n_items": shape["n_items"],
        "synthetic_mean_ratings_per_user": shape["mean_ratings_per_user"],
        "top_k": TOP_K,
    }
    # Not DAG params: the generator's other fields come from its settings' environment.
    os.environ["RECSYS_SYNTHETIC_N_GROUPS"] = str(shape["n_groups"])
    os.environ["RECSYS_SYNTHETIC_MIN_RATINGS_PER_USER"] = str(shape["min_ratings_per_user"])
    log_file = home / "dags_test.log"
    start = time.monotonic()
    with PeakRSS() as rss:
        proc = dags_test(home, RUN_DATE, conf, log_file=log_file, on_line=lambda line: None)
    wall = time.monotonic() - start
    state = dag_run_state(home, RUN_DATE)
    published = False
    ratings = None
    if state.get("__dag_run__") == "success":
        with open_store(Settings(home=home).resolved_store_url) as store:
            recs = store.read_recommendations()
        per_user = recs.groupby("user_id").size()
        published = bool(len(per_user) == shape["n_users"] and (per_user == TOP_K).all())
        from recsys.lake import read_partition

        ratings = len(read_partition(Settings(home=home, dataset="synthetic").lake, "ratings", RUN_DATE))
    return {
        "size": size,
        "ratings": ratings,
        "users": shape["n_users"],
        "items": shape["n_items"],
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(rss.peak / 2**30, 2),
        "tasks": {k: round(v, 1) for k, v in task_seconds(home, RUN_DATE).items()},
        "published": published,
        "state": state.get("__dag_run__"),
        "returncode": proc.returncode,
        "log": str(log_file),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the sizes and print one JSON line each."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1m", help=f"comma-separated, of {sorted(SIZES)}")
    p.add_argument("--out", type=Path, default=None, help="also append the JSON lines to this file")
    p.add_argument("--keep", type=Path, default=None, help="run in this folder (per size) and keep it")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        p.error(f"unknown sizes {unknown}; known: {sorted(SIZES)}")
    for size in sizes:
        home = (args.keep / size) if args.keep else Path(tempfile.mkdtemp(prefix=f"recsys-nightly-{size}-"))
        home.mkdir(parents=True, exist_ok=True)
        logger.info("nightly run at %s in %s", size, home)
        try:
            result = run_size(size, home)
        finally:
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
        line = json.dumps(result)
        print(line, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
