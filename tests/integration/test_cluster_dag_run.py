"""The same nightly DAG with its Spark jobs on a real Spark standalone cluster (issue #15).

``spark_default`` points at a master on 127.0.0.1 with one worker (the
``spark_cluster`` fixture), instead of ``local[2]``. One real
``airflow dags test recsys_nightly`` on small synthetic data must publish every
user's K recommendations, and the master must list the Spark jobs as finished
applications whose executors ran on that worker: the ingest and table jobs
(spark-submit) and the recommend stage's per-user blocks (``retrieval_engine``
``spark``: a session in the task, on the same master).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import Settings
from recsys.lake import read_partition
from recsys.orchestration import dag_run_state, dags_test
from recsys.store import open_store
from tests.fixtures.spark_cluster import SparkCluster

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.spark, pytest.mark.slow]

DATE = "2026-11-27"
CONF = {
    "dataset": "synthetic",
    "synthetic_n_users": 150,
    "synthetic_n_items": 120,
    "top_k": 10,
    "cf_epochs": 5,
    "two_tower_epochs": 4,
    "retrieval_experiment": False,
    "retrieval_engine": "spark",  # the per-user stage runs on the cluster too
}
APPS = {"ingest": "recsys-ingest-synthetic", "build_tables": "recsys-build-tables", "recommend": "recsys-recommend"}
"""Task -> the name its Spark application registers with: the job's own ``get_spark(app_name)``
wins over the ``--name recsys-<task>`` the operator passes to spark-submit."""


def test_nightly_run_submits_its_spark_jobs_to_the_cluster(
    spark_cluster: SparkCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver runs in the task's process (client mode): it must listen where the executors reach it.
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("RECSYS_SPARK_DRIVER_MEMORY", "1g")  # the driver only plans here; executors do the work
    proc = dags_test(
        tmp_path,
        DATE,
        {"run_date": DATE, **CONF},
        capture=True,
        log_file=tmp_path / "dags_test.log",
        spark_master=spark_cluster.master_url,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    states = dag_run_state(tmp_path, DATE)
    assert states["__dag_run__"] == "success", states
    assert f"--master {spark_cluster.master_url}" in proc.stdout  # spark-submit's command line, as the hook logs it

    # The run published: every user has K recommendations.
    users = read_partition(Settings(home=tmp_path, dataset="synthetic").lake, "users", DATE)
    with open_store(Settings(home=tmp_path).resolved_store_url) as store:
        recs = store.read_recommendations()
    assert len(users) == 150
    assert set(recs["user_id"]) == set(users["user_id"])
    assert (recs.groupby("user_id").size() == 10).all()

    # The Spark jobs ran on the cluster: finished applications, executors on its one worker.
    master, worker = spark_cluster.master_state(), spark_cluster.worker_state()
    assert [w["id"] for w in master["workers"]] == [worker["id"]] and master["workers"][0]["state"] == "ALIVE"
    assert master["activeapps"] == [], master["activeapps"]
    executors_of = {}
    for e in worker["finishedexecutors"]:
        executors_of.setdefault(e["appid"], []).append(e)
    for task, name in APPS.items():
        apps = [a for a in master["completedapps"] if a["name"] == name]
        assert apps, f"{task}: no completed application {name!r} in {[a['name'] for a in master['completedapps']]}"
        assert all(a["state"] == "FINISHED" for a in apps), apps
        app = apps[-1]
        assert executors_of.get(app["id"]), f"{task}: worker {worker['id']} ran no executor of {app['id']}"
        # The executors ran the job's tasks (their logs are in the worker's work folder).
        logs = "".join(p.read_text(errors="replace") for p in (spark_cluster.work_dir / app["id"]).glob("*/stderr"))
        assert "Finished task" in logs, f"{task}: no task finished on the executors of {app['id']}"
