"""`recsys airflow`: the UI/API comes up, a run triggered with params succeeds, and stopping stops everything.

This is the scheduler path (LocalExecutor, task subprocesses, execution API),
which `airflow dags test` does not exercise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from recsys.store import open_store

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, *, method: str = "GET", body: dict | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def _processes_of(airflow_home: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("AIRFLOW_HOME") == str(airflow_home):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _wait(predicate, timeout: float, what: str, step: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_standalone_trigger_with_params_then_stop(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
    }
    recsys = str(Path(sys.executable).parent / "recsys")
    log = (tmp_path / "airflow.log").open("w")
    proc = subprocess.Popen([recsys, "airflow", "--home", str(tmp_path)], env=env, stdout=log, stderr=subprocess.STDOUT)
    airflow_home = tmp_path / "airflow"
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _call(f"{base}/api/v2/version"), 240, "the API server")
        password_file = airflow_home / "simple_auth_manager_passwords.json.generated"
        password = _wait(
            lambda: password_file.exists() and json.loads(password_file.read_text())["admin"], 60, "the admin password"
        )
        token = _call(f"{base}/auth/token", method="POST", body={"username": "admin", "password": password})[
            "access_token"
        ]
        _wait(
            lambda: _call(f"{base}/api/v2/dags/recsys_nightly", token=token).get("dag_id"), 180, "the DAG to be parsed"
        )
        _call(f"{base}/api/v2/dags/recsys_nightly", method="PATCH", body={"is_paused": False}, token=token)
        conf = {
            "run_date": "2026-11-25",
            "synthetic_n_users": 120,
            "synthetic_n_items": 100,
            "top_k": 5,
            "cf_epochs": 5,
        }
        run = _call(
            f"{base}/api/v2/dags/recsys_nightly/dagRuns",
            method="POST",
            body={"logical_date": None, "conf": conf},
            token=token,
        )
        url = f"{base}/api/v2/dags/recsys_nightly/dagRuns/{urllib.request.quote(run['dag_run_id'])}"

        def finished() -> str | None:
            state = _call(url, token=token)["state"]
            return state if state in ("success", "failed") else None

        assert _wait(finished, 600, "the triggered run", step=5) == "success", (tmp_path / "airflow.log").read_text()[
            -5000:
        ]
        with open_store(f"sqlite:///{tmp_path / 'store' / 'recsys.db'}") as store:
            recs = store.read_recommendations()
            assert store.latest_run_id() == "synthetic_20261125"
        assert recs["user_id"].nunique() == 120 and (recs.groupby("user_id").size() == 5).all()
        assert len(_processes_of(airflow_home)) >= 3  # scheduler, API server, DAG processor, ...
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
    _wait(lambda: not _processes_of(airflow_home), 60, "every Airflow process to stop", step=1)
