"""Every raw layout goes through the whole nightly DAG (`airflow dags test`) and publishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import Settings
from recsys.lake import read_partition
from recsys.orchestration import dag_run_state, dags_test
from recsys.store import open_store
from tests.fixtures.layouts import write_synthetic_as

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recsys-layouts")


# Two layouts also take the other serving paths: the rating model ranks (AutoRec, or the course's
# factorisation when AutoRec is not trained).
SERVING = {
    "ml-1m": ({"ranking_model": "explicit"}, "autorec"),
    "ml-10m": ({"ranking_model": "explicit", "rating_model": "mf"}, "cf"),
}


@pytest.mark.parametrize(("layout", "day"), [("ml-1m", 1), ("ml-10m", 2), ("ml-csv", 3), ("events", 4)])
def test_layout_runs_end_to_end(home: Path, tmp_path: Path, layout: str, day: int) -> None:
    # ML-1M has demographics: some of its users are new (no rating) or light (1..5 ratings), some items new.
    cold = {"new_users": 6, "light_users": 6, "new_items": 4} if layout == "ml-1m" else {}
    data = write_synthetic_as(tmp_path / layout, layout, **cold)
    date = f"2026-12-0{day}"
    dataset = f"fixture-{layout}"
    serving, model = SERVING.get(layout, ({}, "ranker"))
    conf = {
        "run_date": date,
        "dataset": dataset,
        "data_dir": str(data),
        "cf_epochs": 5,
        "autorec_epochs": 20,
        "two_tower_epochs": 5,
        **serving,
    }
    proc = dags_test(home, date, conf, capture=True)
    assert dag_run_state(home, date).get("__dag_run__") == "success", proc.stdout[-4000:]
    lake = Settings(home=home, dataset=dataset).lake
    ratings = read_partition(lake, "ratings", date)
    users = read_partition(lake, "users", date)
    assert len(read_partition(lake, "quarantine", date)) == 0
    interactions = read_partition(lake, "interactions", date)
    assert set(interactions["label"]) == {0, 1}
    if layout in ("ml-10m", "ml-csv"):
        assert read_partition(lake, "item_features", date)["tags"].map(len).sum() > 0
    if layout == "ml-1m":
        assert read_partition(lake, "users", date)["occupation"].notna().all()
    with open_store(Settings(home=home).resolved_store_url) as store:
        assert store.latest_run_id() == f"{dataset}_{date.replace('-', '')}"
        recs = store.read_recommendations()
    assert set(recs["user_id"]) == set(users["user_id"])
    assert set(recs["model_version"]) == {f"{model}/{dataset}_{date.replace('-', '')}"}
    trained = Settings(home=home, dataset=dataset).models_dir / "autorec" / f"{dataset}_{date.replace('-', '')}"
    assert trained.is_dir() == (serving.get("rating_model", "autorec") == "autorec")
    assert (recs.groupby("user_id").size() == 10).all()
    assert recs.merge(ratings[["user_id", "item_id"]], on=["user_id", "item_id"]).empty
    if cold:
        _check_cold_start(home, dataset, date, recs, ratings, users)


def _check_cold_start(home: Path, dataset: str, date: str, recs, ratings, users) -> None:
    """New and light users are served by the two-tower model (said in the reason); new items get neighbours."""
    from recsys.stages.recommend import COLD_START_NOTE

    n_train = ratings[ratings["split"] == "train"].groupby("user_id").size()
    counts = users["user_id"].map(n_train).fillna(0)
    cold_ids = set(users.loc[counts <= 5, "user_id"])
    assert len(cold_ids) >= 6 + 6 - 1  # new users, and light ones (a 1-rating user may keep it in test)
    served = recs.groupby("user_id")["reason"].apply(lambda r: r.str.endswith(COLD_START_NOTE).all())
    assert set(served[served].index) == cold_ids
    assert not recs.loc[~recs["user_id"].isin(cold_ids), "reason"].str.contains(COLD_START_NOTE, regex=False).any()
    with open_store(Settings(home=home).resolved_store_url) as store:
        sims = store.read_similar_items()
    rated = set(ratings["item_id"])
    new_items = set(read_partition(Settings(home=home, dataset=dataset).lake, "items", date)["item_id"]) - rated
    assert len(new_items) == 4
    tower = sims[sims["source"] == "two_tower"]
    assert new_items <= set(tower["item_id"]) and new_items & set(tower["neighbor_id"]), "new items have no neighbours"
    assert not new_items & set(sims.loc[sims["source"] == "cf", "item_id"])  # CF knows nothing of them
