"""The same nightly DAG publishing to PostgreSQL (RECSYS_STORE_URL) instead of the embedded SQLite store."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest

from recsys.orchestration import dag_run_state, dags_test
from recsys.store import open_store

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.slow, pytest.mark.postgres]

ADMIN_URL = os.environ.get("RECSYS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url():
    if os.environ.get("RECSYS_SKIP_POSTGRES") == "1":
        pytest.skip("RECSYS_SKIP_POSTGRES=1")
    name = f"recsys_dag_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_nightly_run_publishes_to_postgres(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_STORE_URL", pg_url)
    date = "2026-11-27"
    conf = {"run_date": date, "synthetic_n_users": 100, "synthetic_n_items": 80, "cf_epochs": 5}
    proc = dags_test(tmp_path, date, conf, capture=True)
    assert dag_run_state(tmp_path, date).get("__dag_run__") == "success", proc.stdout[-4000:]
    assert not (tmp_path / "store").exists()  # nothing went to the embedded store
    with open_store(pg_url) as store:
        assert store.latest_run_id() == "synthetic_20261127"
        recs = store.read_recommendations()
    assert recs["user_id"].nunique() == 100 and (recs.groupby("user_id").size() == 10).all()
