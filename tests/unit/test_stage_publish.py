"""The ``publish`` stage on a tiny lake: sources go to the store, the policy's blocked items fail the audit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.config import PolicyConfig, Settings
from recsys.lake import write_partition
from recsys.stages import publish as publish_stage
from recsys.stages.publish import blocked_item_ids
from recsys.store import FAILED, PUBLISHED, PublishError, audit, open_store

RUN_DATE = "2024-05-01"
N_USERS, N_ITEMS, K = 3, 8, 2
GENRES = [["Comedy"], ["Horror", "Drama"], [], ["Sci-Fi"], ["Drama"], [" horror "], ["Comedy"], ["Action"]]
SOURCES = ["similar", "similar+genre+popular", "embedding", "popular", "new+profile", "genre"]


def items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_idx": range(N_ITEMS),
            "item_id": [str(100 + i) for i in range(N_ITEMS)],
            "title": [f"t{i}" for i in range(N_ITEMS)],
            "year": 2000,
            "genres": GENRES,
        }
    )


def write_lake(settings: Settings, recommended: list[list[int]]) -> None:
    """Users u0..u2 (user u rated item u), items 100..107, ``recommended[u]`` item indices per user."""
    lake = settings.lake
    users = pd.DataFrame(
        {
            "user_idx": range(N_USERS),
            "user_id": [f"u{u}" for u in range(N_USERS)],
            "age": None,
            "gender": None,
            "occupation": None,
            "country": None,
        }
    )
    ratings = pd.DataFrame(
        {
            "user_idx": range(N_USERS),
            "item_idx": range(N_USERS),
            "user_id": [f"u{u}" for u in range(N_USERS)],
            "item_id": [str(100 + u) for u in range(N_USERS)],
            "rating": 4.0,
            "ts": 1,
            "split": "train",
        }
    )
    recs = pd.DataFrame(
        [
            (u, rank, item, 1.0 - rank / 10, SOURCES[(u * K + rank) % len(SOURCES)], "because")
            for u, picks in enumerate(recommended)
            for rank, item in enumerate(picks, start=1)
        ],
        columns=["user_idx", "rank", "item_idx", "score", "source", "reason"],
    )
    sims = pd.DataFrame(
        {"item_idx": range(N_ITEMS), "rank": 1, "neighbor_idx": [(i + 1) % N_ITEMS for i in range(N_ITEMS)]}
    ).assign(distance=0.5, source="cf")
    features = pd.DataFrame(
        {
            "item_idx": range(N_ITEMS),
            "year": 2000,
            "genres": [[0.0]] * N_ITEMS,
            "n_ratings": 0,
            "mean_rating": None,
            "tags": [["gore"] if i == N_ITEMS - 1 else [] for i in range(N_ITEMS)],
        }
    )
    for name, frame in (
        ("item_features", features),
        ("users", users),
        ("ratings", ratings),
        ("items", items()),
        ("recommendations", recs),
        ("similar_items", sims),
    ):
        write_partition(frame, lake, name, RUN_DATE)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(publish_stage, "GATED_TABLES", ())  # the drift statistics are not under test
    return Settings(
        home=tmp_path,
        top_k=K,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        policy=PolicyConfig(blocked_items=("106",), blocked_genres=("HORROR",)),
    )


def test_blocked_item_ids_are_the_blocked_ids_and_the_items_of_blocked_genres() -> None:
    frame = items()
    frame["genres"] = frame["genres"].map(lambda g: np.array(g, dtype=object))  # as Parquet reads them
    frame.loc[3, "genres"] = None  # tolerated, though the lake's schema has no null genres
    assert blocked_item_ids(frame, {"106", "999"}, {"horror"}) == frozenset({"101", "105", "106", "999"})
    assert blocked_item_ids(frame, (), ()) == frozenset()
    assert blocked_item_ids(frame, (), {"western"}) == frozenset()
    assert blocked_item_ids(frame.iloc[0:0], {"7"}, {"horror"}) == frozenset({"7"})
    # Tags count as genres: an item tagged "gore" is blocked by blocked_genres {"Gore"}.
    tags = pd.DataFrame(
        {"item_idx": frame["item_idx"], "tags": [["gore"] if j == 2 else [] for j in range(len(frame))]}
    )
    gore = str(frame.loc[frame["item_idx"] == frame["item_idx"].iloc[2], "item_id"].iloc[0])
    assert blocked_item_ids(frame, (), {"Gore"}, tags) == frozenset({gore})
    assert blocked_item_ids(frame, (), {"Gore"}) == frozenset()  # without the tags, nothing matches


def test_publish_stores_each_recommendation_with_its_source(settings: Settings) -> None:
    write_lake(settings, [[3, 4], [2, 7], [0, 4]])
    out = publish_stage.publish(settings, RUN_DATE, "r1", {}, "2024-05-01T02:00:00Z")
    assert out["audit_ok"] and out["recommendations"] == N_USERS * K
    with open_store(settings.resolved_store_url) as store:
        recs = store.read_recommendations()
        runs = store.list_runs()
    assert recs["source"].tolist() == [SOURCES[(u * K + r) % len(SOURCES)] for u in range(N_USERS) for r in (1, 2)]
    assert runs.loc[0, "metrics"]["audit"]["n_blocked_items"] == 3  # 106 by id, 101 and 105 by genre


@pytest.mark.parametrize(("bad_item", "why"), [(6, "blocked id"), (5, "blocked genre")])
def test_publish_fails_on_a_blocked_item_and_keeps_the_live_run(settings: Settings, bad_item: int, why: str) -> None:
    write_lake(settings, [[3, 4], [2, 7], [0, 4]])
    publish_stage.publish(settings, RUN_DATE, "r1", {}, "2024-05-01T02:00:00Z")
    write_lake(settings, [[3, 4], [2, bad_item], [0, 4]])
    with pytest.raises(PublishError) as caught:
        publish_stage.publish(settings, RUN_DATE, "r2", {}, "2024-05-02T02:00:00Z")
    assert caught.value.report.codes == [audit.BLOCKED_ITEMS], why
    assert f"u1/{100 + bad_item} (rank 2)" in caught.value.report.problems[0]
    with open_store(settings.resolved_store_url) as store:
        assert store.latest_run_id() == "r1"
        assert set(store.read_recommendations()["item_id"]) == {"103", "104", "102", "107", "100"}
        statuses = dict(zip(store.list_runs()["run_id"], store.list_runs()["status"], strict=True))
    assert statuses == {"r1": PUBLISHED, "r2": FAILED}


def test_publish_fails_on_an_item_with_a_blocked_tag(tmp_path: Path) -> None:
    tagged = Settings(
        home=tmp_path,
        top_k=K,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        policy=PolicyConfig(blocked_genres=("Gore",)),
    )
    write_lake(tagged, [[3, 4], [2, N_ITEMS - 1], [0, 4]])  # the last item is tagged "gore"
    with pytest.raises(PublishError) as caught:
        publish_stage.publish(tagged, RUN_DATE, "r1", {}, "2024-05-01T02:00:00Z")
    assert caught.value.report.codes == [audit.BLOCKED_ITEMS]
    assert f"u1/{100 + N_ITEMS - 1} (rank 2)" in caught.value.report.problems[0]
