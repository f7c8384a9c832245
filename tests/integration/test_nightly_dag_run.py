"""Real `airflow dags test recsys_nightly` runs, end to end, on small data.

One Airflow home for the module; the runs build on each other:
1. a synthetic run publishes; every user has K unseen recommendations;
2. a rerun for the same date replaces that date's outputs (and gives the same results);
3. bad input rows are quarantined with their reasons and the run still publishes;
4. too many bad rows fail the run at ingest, and drift from the previous run
   fails the gate; both leave the last good run live.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys.config import Settings
from recsys.lake import partition_dir, read_partition
from recsys.orchestration import dag_run_state, dags_test
from recsys.ranking.reasons import TEMPLATES
from recsys.retrieval.sources import SOURCES
from recsys.store import open_store
from tests.conftest import write_ml100k_layout

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.slow]

DATE = "2026-11-27"
CONF = {
    "dataset": "synthetic",
    "synthetic_n_users": 150,
    "synthetic_n_items": 120,
    "top_k": 10,
    "cf_epochs": 10,
    "two_tower_epochs": 8,
}


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


def test_task_seconds_cover_every_task_that_ran(home: Path, first_run: pd.DataFrame) -> None:
    """What ``bench/nightly_scale.py`` reports per task: every task of the run, in start order, positive."""
    from recsys.orchestration import task_seconds

    seconds = task_seconds(home, DATE)
    states = dag_run_state(home, DATE)
    assert set(seconds) == {t for t, s in states.items() if t != "__dag_run__" and s == "success"}
    order = list(seconds)
    assert order[0] == "resolve" and order[-1] == "report"
    assert all(v >= 0 for v in seconds.values()) and seconds["build_tables"] > 1.0
    assert task_seconds(home, "1999-01-01") == {}


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
    # Every row names the sources that proposed it, in SOURCES order; the reason names the first.
    parts = recs["source"].str.split("+")
    assert parts.map(lambda p: set(p) <= set(SOURCES) and p == sorted(p, key=SOURCES.index)).all()
    assert recs["source"].str.contains("+", regex=False).any()  # a candidate several sources proposed keeps all
    prefix = parts.str[0].map(lambda s: TEMPLATES[s].split("{detail}")[0])
    named = [r.startswith(p) for r, p in zip(recs["reason"], prefix, strict=True)]
    assert all(named), recs.loc[[not n for n in named], ["source", "reason"]].head()


def test_run_artifacts(home: Path, first_run: pd.DataFrame) -> None:
    model_dir = home / "models" / "synthetic" / "cf" / "synthetic_20261127"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert metrics["cf_test_rmse"] < metrics["item_mean_test_rmse"]
    assert manifest["run_date"] == DATE and manifest["params"]["epochs"] == 10
    # The ranking model: trained next to CF, evaluated with the top-K metrics, and it ranks.
    ranker_dir = home / "models" / "synthetic" / "ranker" / "synthetic_20261127"
    ranker = json.loads((ranker_dir / "metrics.json").read_text())
    for key in (
        "ranker_ndcg",
        "ranker_precision",
        "ranker_recall",
        "ranker_map",
        "ranker_coverage",
        "ranker_novelty",
        "popularity_ndcg",
    ):
        assert 0 <= ranker[key] < 20, key
    # It is the softmax factorisation blended with EASE; the manifest records both members' parameters.
    ranker_manifest = json.loads((ranker_dir / "manifest.json").read_text())
    assert list(ranker_manifest["params"]["members"]) == ["cf", "ease"]
    fit_params = ranker_manifest["fit_params"]
    assert fit_params["cf"]["loss"] == "softmax" and fit_params["ease"]["l2"] > 0
    assert (ranker_dir / "cf" / "factors.npz").is_file() and (ranker_dir / "ease" / "ease.npz").is_file()
    assert 0 < ranker["ranker_cf_ndcg"] < 1
    # The rating model (AutoRec by default): trained next to them, evaluated, in the manifest.
    autorec_dir = home / "models" / "synthetic" / "autorec" / "synthetic_20261127"
    autorec = json.loads((autorec_dir / "metrics.json").read_text())
    assert autorec["autorec_test_rmse"] < metrics["item_mean_test_rmse"], (autorec, metrics)
    assert json.loads((autorec_dir / "manifest.json").read_text())["params"]["hidden"] > 0
    assert set(first_run["model_version"]) == {"ranker/synthetic_20261127"}
    report = (home / "reports" / "synthetic_20261127" / "report.html").read_text()
    assert "cf_test_rmse" in report and "ranker_ndcg" in report and "NDCG@10" in report
    assert "autorec_test_rmse" in report and "AutoRec" in report
    with open_store(Settings(home=home).resolved_store_url) as store:
        sims = store.read_similar_items()
        runs = store.list_runs()
    assert (sims.groupby(["item_id", "source"]).size() == 10).all()
    assert (
        set(sims["source"]) == {"cf", "two_tower"} and sims.groupby("source")["item_id"].nunique()["two_tower"] == 120
    )
    # The two-tower model: trained next to the others from the feature tables, with its artifacts.
    tower_dir = home / "models" / "synthetic" / "two_tower" / "synthetic_20261127"
    for name in (
        "two_tower.keras",
        "preprocessing.json",
        "user_embeddings.parquet",
        "item_embeddings.parquet",
        "metrics.json",
        "manifest.json",
    ):
        assert (tower_dir / name).is_file(), name
    tower = json.loads((tower_dir / "metrics.json").read_text())
    # The retrieval (softmax) variant ranks: above popularity's half at least on this tiny data; no RMSE.
    assert tower["two_tower_ndcg"] > 0.5 * ranker["popularity_ndcg"], (tower, ranker["popularity_ndcg"])
    assert tower["two_tower_examples_per_second"] > 0 and "two_tower_test_rmse" not in tower
    tower_params = json.loads((tower_dir / "manifest.json").read_text())["params"]
    assert tower_params["layers"] == [256, 128, 32] and tower_params["loss"] == "softmax"
    run = runs.set_index("run_id").loc["synthetic_20261127"]
    assert run["status"] == "published" and run["model_version"] == "ranker/synthetic_20261127"
    # every evaluation metric of the run is in the store's runs table
    assert run["metrics"]["ranker_ndcg"] == pytest.approx(ranker["ranker_ndcg"])
    assert run["metrics"]["cf_test_rmse"] == pytest.approx(metrics["cf_test_rmse"])
    assert run["metrics"]["autorec_test_rmse"] == pytest.approx(autorec["autorec_test_rmse"])
    assert run["metrics"]["two_tower_ndcg"] == pytest.approx(tower["two_tower_ndcg"])
    assert "two-tower" in report
    # The recommend stage's figures: sources, the index's measured recall, the retrieval-size experiment.
    for key in (
        "candidates_similar",
        "candidates_popular",
        "published_embedding",
        "index_embedding_recall_at_10",
        "index_similar_cf_recall_at_10",
        "users_short_of_k",
        "retrieval_50_recall_at_10",
        "retrieval_1000_ndcg_at_10",
        "retrieval_served_ndcg_at_10",
        "retrieval_full_ndcg_at_10",
    ):
        assert key in run["metrics"], key
    assert run["metrics"]["users_short_of_k"] == 0 and run["metrics"]["index_embedding_recall_at_10"] == 1.0
    assert 0 < run["metrics"]["retrieval_50_recall_at_10"] <= run["metrics"]["retrieval_1000_recall_at_10"] <= 1
    for title in ("Candidates proposed by source", "Retrieval size: recall@10", "Retrieval size: test NDCG@10"):
        assert title in report, title
    assert "two_tower: training curves" in report and "validation loss, users as new" in report  # early stopping


def test_rerun_same_date_replaces_outputs(home: Path, first_run: pd.DataFrame) -> None:
    settings = Settings(home=home, dataset="synthetic")
    before_files = sorted(p.name for p in partition_dir(settings.lake, "ratings", DATE).iterdir())
    _run(home, DATE, CONF)
    with open_store(settings.resolved_store_url) as store:
        again = store.read_recommendations()
        runs = store.list_runs()
    assert (runs["run_id"] == "synthetic_20261127").sum() == 1
    assert len(again) == len(first_run)
    cols = ["user_id", "rank", "item_id", "reason", "source"]
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True), first_run[cols].reset_index(drop=True))
    pd.testing.assert_series_equal(
        again["score"].reset_index(drop=True), first_run["score"].reset_index(drop=True), rtol=1e-6
    )
    after_files = sorted(p.name for p in partition_dir(settings.lake, "ratings", DATE).iterdir())
    assert len(after_files) == len(before_files)  # replaced, not appended


def _live(home: Path) -> tuple[str | None, pd.DataFrame]:
    with open_store(Settings(home=home).resolved_store_url) as store:
        return store.latest_run_id(), store.read_recommendations()


def test_bad_rows_are_quarantined_with_reasons_and_the_run_publishes(home: Path, tmp_path: Path) -> None:
    data = write_ml100k_layout(tmp_path / "ml-small")
    lines = (data / "u.data").read_text().splitlines()
    n = len(lines)
    user, item, _, ts = lines[3].split("\t")
    lines[3] = f"{user}\t{item}\t9\t{ts}"  # off the 1-5 scale
    lines.append(f"{user}\t99999\t4\t{ts}")  # an item missing from u.item
    (data / "u.data").write_text("\n".join(lines) + "\n")
    date = "2026-11-28"
    _run(home, date, {"dataset": "ml-small", "data_dir": str(data), "split": "random"})
    q = read_partition(Settings(home=home, dataset="ml-small").lake, "quarantine", date)
    by_code = q.groupby("reason_code").size().to_dict()
    assert by_code == {"rating_out_of_range": 1, "unknown_item": 1}
    bad = q[q["reason_code"] == "rating_out_of_range"].iloc[0]
    assert bad["line_number"] == 4 and bad["source_file"].endswith("u.data") and bad["raw_line"].split("\t")[2] == "9"
    ratings = read_partition(Settings(home=home, dataset="ml-small").lake, "ratings", date)
    assert len(ratings) + len(q) == n + 1  # nothing lost
    assert "Quarantined input rows by reason" in (home / "reports" / "ml-small_20261128" / "report.html").read_text()
    assert _live(home)[0] == "ml-small_20261128"


def test_too_many_bad_rows_fail_the_run_and_keep_the_previous_run(home: Path, tmp_path: Path) -> None:
    live_before = _live(home)
    data = write_ml100k_layout(tmp_path / "ml-bad")
    lines = (data / "u.data").read_text().splitlines()
    for k in range(1, len(lines), 20):  # 5% of the lines (not the first: that is a wrong-delimiter file)
        lines[k] = lines[k].replace("\t", ";")
    (data / "u.data").write_text("\n".join(lines) + "\n")
    date = "2026-11-29"
    proc = dags_test(home, date, {"run_date": date, "dataset": "ml-small", "data_dir": str(data)}, capture=True)
    states = dag_run_state(home, date)
    assert states["__dag_run__"] == "failed" and states["ingest"] == "failed", states
    assert states["publish"] == "upstream_failed"
    assert "are unusable, above the limit of 1.00%" in proc.stdout
    assert "u.data:2: field_count" in proc.stdout  # the first bad line is named
    live_after = _live(home)
    assert live_after[0] == live_before[0]
    pd.testing.assert_frame_equal(live_after[1], live_before[1])


def test_drift_from_the_previous_run_fails_the_gate(home: Path) -> None:
    live_before = _live(home)
    date = "2026-11-30"
    proc = dags_test(home, date, {"run_date": date, **CONF, "synthetic_n_users": 40}, capture=True)
    states = dag_run_state(home, date)
    assert states["__dag_run__"] == "failed", states
    assert states["validate"] == "failed"
    assert states["train_cf"] == "upstream_failed" and states["publish"] == "upstream_failed"
    assert "expect_table_row_count_to_be_between" in proc.stdout  # volume vs the run of 2026-11-27
    assert _live(home)[0] == live_before[0]


def test_tune_writes_parameters_the_next_training_uses(home: Path, first_run: pd.DataFrame, tmp_path: Path) -> None:
    """`recsys tune` on a run's tables: a search per model, saved; training then uses it, explicit settings win."""
    import shutil

    from typer.testing import CliRunner

    from recsys.cli import app
    from recsys.stages.inputs import model_params, training_data

    shutil.copytree(home / "lake", tmp_path / "lake")  # the module's home stays untouched for the other tests
    result = CliRunner().invoke(
        app, ["tune", "--run-date", DATE, "--home", str(tmp_path), "--trials", "2", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    settings = Settings(home=tmp_path, dataset="synthetic")
    for model, metric in (("cf", "val_rmse"), ("ranker", "val_ndcg"), ("autorec", "val_rmse")):
        doc = json.loads((settings.models_dir / "tuned" / f"{model}.json").read_text())
        assert doc["metric"] == metric and len(doc["trials"]) == 2 and doc["run_date"] == DATE
        scores = [t["score"] for t in doc["trials"]]
        assert doc["best_score"] == (min(scores) if metric == "val_rmse" else max(scores))
    split, _ = training_data(settings, DATE)
    tuned = json.loads((settings.models_dir / "tuned" / "cf.json").read_text())["best_params"]
    params, extra = model_params(settings, "explicit", split)  # the older name still resolves
    assert extra == {"tuned": True} and params.epochs == tuned["epochs"] and params.l2 == tuned["l2"]
    tuned_autorec = json.loads((settings.models_dir / "tuned" / "autorec.json").read_text())["best_params"]
    autorec, extra = model_params(settings, "autorec", split)
    assert extra == {"tuned": True} and autorec.hidden == tuned_autorec["hidden"] and autorec.l2 == tuned_autorec["l2"]
    given = Settings(home=tmp_path, dataset="synthetic", cf={"epochs": 3})
    assert model_params(given, "cf", split)[0].epochs == 3  # an explicit setting beats the search
    assert model_params(Settings(home=tmp_path, use_tuned=False), "cf", split)[1] == {"tuned": False}


def test_policy_params_and_file_hold_in_the_published_lists(
    home: Path, first_run: pd.DataFrame, tmp_path: Path
) -> None:
    """A run with a policy (a file and DAG params): nothing blocked is published, the cap holds, everyone gets K."""
    popular = first_run["item_id"].value_counts().index[:3].tolist()  # items the first run recommended most
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"blocked_items": popular[:2]}))
    settings = Settings(home=home, dataset="synthetic")
    items = read_partition(settings.lake, "items", DATE)
    genres = items["genres"].explode().dropna().value_counts()
    blocked_genre = str(genres.index[-1])  # the rarest genre: blocking it leaves enough items
    date = "2026-12-01"
    conf = {
        **CONF,
        "policy_file": str(policy_file),
        "policy_blocked_items": popular[2:3],
        "policy_blocked_genres": [blocked_genre],
        "policy_genre_cap": 4,
        "policy_mmr_weight": 0.3,
        "policy_min_item_ratings": 3,
    }
    _run(home, date, conf)
    with open_store(settings.resolved_store_url) as store:
        recs = store.read_recommendations()
        run = store.list_runs().set_index("run_id").loc["synthetic_20261201"]
    assert (recs["run_id"] == "synthetic_20261201").all() and (recs.groupby("user_id").size() == 10).all()
    assert not recs["item_id"].isin(popular).any()
    listed = recs.merge(items[["item_id", "genres"]], on="item_id").explode("genres")
    assert not (listed["genres"] == blocked_genre).any()
    assert listed.groupby(["user_id", "genres"]).size().max() <= 4
    ratings = read_partition(settings.lake, "ratings", date)
    n_train = ratings[ratings["split"] == "train"].groupby("item_id").size()
    assert n_train.reindex(recs["item_id"].unique()).fillna(0).min() >= 3
    metrics = run["metrics"]
    assert metrics["policy_dropped_blocked_item"] > 0 and metrics["policy_dropped_genre_cap"] > 0, metrics
    report = (home / "reports" / "synthetic_20261201" / "report.html").read_text()
    assert "Policy: rows dropped per rule" in report
