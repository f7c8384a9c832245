"""DAG import, policy and structure tests (parse only; the run itself is in tests/integration)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from recsys.config import PROJECT_ROOT
from recsys.orchestration import airflow_env

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_dags_import_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "recsys_nightly" in dagbag.dag_ids


def test_policy(dagbag) -> None:
    dag = dagbag.dags["recsys_nightly"]
    assert dag.catchup is False
    assert "recsys" in dag.tags and "nightly" in dag.tags
    assert dag.doc_md and "recsys_nightly" in dag.doc_md
    assert dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.owner == "recsys", t.task_id
        assert t.execution_timeout is not None and t.execution_timeout <= timedelta(hours=2), t.task_id
    # A failed data gate is not transient: it must not retry; everything else retries once.
    assert dag.get_task("validate").retries == 0
    assert all(t.retries >= 1 for t in dag.tasks if t.task_id != "validate")


def test_params_for_ui_triggers(dagbag) -> None:
    params = dagbag.dags["recsys_nightly"].params
    for name in (
        "run_date",
        "dataset",
        "top_k",
        "seed",
        "synthetic_n_users",
        "synthetic_n_items",
        "ranking_model",
        "rating_model",
        "tune",
        "tune_trials",
        "cf_epochs",
        "autorec_epochs",
        "ranker_epochs",
        "cold_start_model",
        "cold_start_max_ratings",
        "two_tower_epochs",
    ):
        assert name in params
    assert params["top_k"] == 10
    assert params["dataset"] == "synthetic"
    assert params["rating_model"] == "autorec" and params["ranking_model"] == "ranker"
    # the trigger form: every param titled and in a section; older model names still accepted
    for name in params:
        schema = params.get_param(name).schema
        assert schema.get("title") and schema.get("section"), name
    assert {"implicit", "explicit"} <= set(params.get_param("ranking_model").schema["enum"])
    assert "mf" in params.get_param("rating_model").schema["enum"]


def test_one_training_task_per_registered_model(dagbag) -> None:
    from recsys.models.registry import MODEL_MODULES

    dag = dagbag.dags["recsys_nightly"]
    trainers = {t.task_id for t in dag.tasks if t.task_id.startswith("train_")}
    assert trainers == {f"train_{name}" for name in MODEL_MODULES}
    for task_id in ("similar_items", "recommend", "publish", "report"):  # each sees every model's output
        assert trainers <= dag.get_task(task_id).upstream_task_ids, task_id


def test_structure(dagbag) -> None:
    dag = dagbag.dags["recsys_nightly"]
    edges = {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}
    expected = {
        ("resolve", "ingest_args"),
        ("ingest_args", "ingest"),
        ("ingest", "build_tables"),
        ("build_tables_args", "build_tables"),
        ("build_tables", "validate"),
        ("validate", "tune"),
        ("tune", "train_cf"),
        ("tune", "train_ranker"),
        ("tune", "train_autorec"),
        ("train_autorec", "recommend"),
        ("train_autorec", "publish"),
        ("train_autorec", "report"),
        ("tune", "train_two_tower"),
        ("train_two_tower", "similar_items"),
        ("train_two_tower", "recommend"),
        ("train_two_tower", "publish"),
        ("train_two_tower", "report"),
        ("train_cf", "similar_items"),
        ("similar_items", "recommend"),
        ("train_ranker", "recommend"),
        ("recommend", "publish"),
        ("train_ranker", "publish"),
        ("publish", "report"),
    }
    assert expected <= edges
    # the models train in parallel: none waits for another
    trainers = ("train_cf", "train_autorec", "train_ranker", "train_two_tower")
    for a in trainers:
        upstream = dag.get_task(a).get_flat_relative_ids(upstream=True)
        assert not upstream & set(trainers), (a, upstream)
    assert {t.task_id for t in dag.tasks} == {
        "resolve",
        "ingest_args",
        "build_tables_args",
        "ingest",
        "build_tables",
        "validate",
        "tune",
        "train_cf",
        "train_autorec",
        "train_ranker",
        "train_two_tower",
        "similar_items",
        "recommend",
        "publish",
        "report",
    }
    assert dag.get_task("ingest").task_type == "SparkSubmitOperator"
    assert dag.get_task("build_tables").task_type == "SparkSubmitOperator"
    assert {o.uri for o in dag.get_task("publish").outlets} == {
        "recsys://store/recommendations_latest",
        "recsys://store/similar_items_latest",
    }


def test_dag_file_parses_without_heavy_imports(tmp_path) -> None:
    """Parsing the DAG must not import TensorFlow, Spark, Great Expectations or pandas-heavy code."""
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('tensorflow', 'pyspark', 'great_expectations', 'recsys.stages.train', 'keras')"
        " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = airflow_env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(PROJECT_ROOT / "dags" / "recsys_nightly.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
