"""Real `airflow dags test recsys_nightly` runs, end to end, on small data.

One Airflow home for the module; the runs build on each other:
1. a synthetic run publishes; every user has K unseen recommendations;
2. a rerun for the same date replaces that date's outputs (and gives the same results);
3. a run whose data fails the validation gate stops before training and the
   store keeps serving run 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys.config import Settings
from recsys.lake import partition_dir, read_partition
from recsys.orchestration import dag_run_state, dags_test
from recsys.store import open_store
from tests.conftest import write_ml100k_layout

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.slow]

DATE = "2026-11-27"
CONF = {"dataset": "synthetic", "synthetic_n_users": 150, "synthetic_n_items": 120, "top_k": 10, "cf_epochs": 10}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recsys-home")


def _run(home: Path, date: str, conf: dict) -> None:
    proc = dags_test(home, date, {"run_date": date, **conf}, capture=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    states = dag_run_state(home, date)
    assert states["__dag_run__"] == "success", states


@pytest.fixture(scope="module")
def first_run(home: Path) -> pd.DataFrame:
    _run(home, DATE, CONF)
    with open_store(Settings(home=home).resolved_store_url) as store:
        return store.read_recommendations()


def test_every_user_gets_k_unseen_recommendations(home: Path, first_run: pd.DataFrame) -> None:
    settings = Settings(home=home, dataset="synthetic")
    users = read_partition(settings.lake, "users", DATE)
    ratings = read_partition(settings.lake, "ratings", DATE)
    recs = first_run
    assert len(users) == 150
    assert set(recs["user_id"]) == set(users["user_id"])
    assert (recs.groupby("user_id").size() == 10).all()
    assert all(sorted(ranks) == list(range(1, 11)) for _, ranks in recs.groupby("user_id")["rank"])
    seen = recs.merge(ratings[["user_id", "item_id"]], on=["user_id", "item_id"])
    assert seen.empty, f"{len(seen)} recommendations were already rated"
    assert recs["reason"].str.len().gt(0).all()
    assert recs["run_id"].nunique() == 1 and recs["run_id"].iloc[0] == "synthetic_20261127"


def test_run_artifacts(home: Path, first_run: pd.DataFrame) -> None:
    model_dir = home / "models" / "synthetic" / "cf" / "synthetic_20261127"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert metrics["cf_test_rmse"] < metrics["item_mean_test_rmse"]
    assert manifest["run_date"] == DATE and manifest["params"]["epochs"] == 10
    report = home / "reports" / "synthetic_20261127" / "report.html"
    assert "cf_test_rmse" in report.read_text()
    with open_store(Settings(home=home).resolved_store_url) as store:
        sims = store.read_similar_items()
        runs = store.list_runs()
    assert (sims.groupby("item_id").size() == 10).all()
    assert runs.loc[runs["run_id"] == "synthetic_20261127", "status"].item() == "published"


def test_rerun_same_date_replaces_outputs(home: Path, first_run: pd.DataFrame) -> None:
    settings = Settings(home=home, dataset="synthetic")
    before_files = sorted(p.name for p in partition_dir(settings.lake, "ratings", DATE).iterdir())
    _run(home, DATE, CONF)
    with open_store(settings.resolved_store_url) as store:
        again = store.read_recommendations()
        runs = store.list_runs()
    assert (runs["run_id"] == "synthetic_20261127").sum() == 1
    assert len(again) == len(first_run)
    cols = ["user_id", "rank", "item_id", "reason"]
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True), first_run[cols].reset_index(drop=True))
    pd.testing.assert_series_equal(again["score"].reset_index(drop=True), first_run["score"].reset_index(drop=True),
                                   rtol=1e-6)  # fmt: skip
    after_files = sorted(p.name for p in partition_dir(settings.lake, "ratings", DATE).iterdir())
    assert len(after_files) == len(before_files)  # replaced, not appended


def test_failed_gate_stops_the_run_and_keeps_the_previous_run(
    home: Path, first_run: pd.DataFrame, tmp_path: Path
) -> None:
    bad = write_ml100k_layout(tmp_path / "ml-bad")
    lines = (bad / "u.data").read_text().splitlines()
    user, item, _, ts = lines[3].split("\t")
    lines[3] = f"{user}\t{item}\t9\t{ts}"  # rating off the 1-5 scale
    (bad / "u.data").write_text("\n".join(lines) + "\n")
    bad_date = "2026-11-28"
    proc = dags_test(home, bad_date, {"run_date": bad_date, "dataset": "ml-100k", "data_dir": str(bad)},
                     capture=True)  # fmt: skip
    states = dag_run_state(home, bad_date)
    assert states["__dag_run__"] == "failed", states
    assert states["validate"] == "failed"
    assert states["train_cf"] == "upstream_failed" and states["publish"] == "upstream_failed"
    assert "expect_column_values_to_be_between" in proc.stdout + proc.stderr
    with open_store(Settings(home=home).resolved_store_url) as store:
        assert store.latest_run_id() == "synthetic_20261127"
        live = store.read_recommendations()
    pd.testing.assert_frame_equal(live.reset_index(drop=True), first_run.reset_index(drop=True))
