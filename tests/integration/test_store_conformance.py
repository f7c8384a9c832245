"""One conformance suite for every Store backend (SQLite file, PostgreSQL schema).

Each test gets a fresh store: a SQLite file in tmp_path, or a new PostgreSQL schema
``recsys_test_<uuid>`` dropped at teardown. PostgreSQL params fail when the server
is unreachable, unless RECSYS_SKIP_POSTGRES=1 (then they skip).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from recsys.store import (
    FAILED,
    PUBLISHED,
    ROLLED_BACK,
    AuditReport,
    PostgresStore,
    PublishError,
    RollbackError,
    RunInfo,
    SQLiteStore,
    Store,
    audit,
    open_store,
)

PG_URL = os.environ.get("RECSYS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

USERS = [f"u{n}" for n in range(1, 6)]
ITEMS = [f"i{n:02d}" for n in range(1, 21)]
K = 3
SEEN = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["i01", "i02", "i02", "i03"]})


# ---- data ----------------------------------------------------------------------------------------


def make_recs(variant: int) -> pd.DataFrame:
    """K unseen items per user; ``variant`` shifts items and scores so runs differ."""
    rows = []
    for u, user in enumerate(USERS):
        seen = set(SEEN.loc[SEEN["user_id"] == user, "item_id"])
        candidates = [i for i in ITEMS if i not in seen]
        start = (3 * u + 5 * variant) % len(candidates)
        picks = (candidates[start:] + candidates[:start])[:K]
        for rank, item in enumerate(picks, start=1):
            score = 1.0 - 0.1 * rank + 0.01 * variant
            rows.append((user, rank, item, score, f"similar to what you rated (v{variant})"))
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score", "reason"])


def make_sims(variant: int) -> pd.DataFrame:
    rows = []
    for n, item in enumerate(ITEMS[:6]):
        for source in ("cf", "two_tower"):
            for rank in (1, 2):
                neighbor = ITEMS[(n + rank + variant) % len(ITEMS)]
                rows.append((item, rank, neighbor, 0.1 * rank + 0.01 * variant, source))
    return pd.DataFrame(rows, columns=["item_id", "rank", "neighbor_id", "distance", "source"])


def run_info(run_id: str, variant: int) -> RunInfo:
    return RunInfo(
        run_id=run_id,
        run_date=f"2024-05-{variant + 1:02d}",
        dataset="synthetic",
        model_version=f"cf-v{variant}",
        generated_at=f"2024-05-{variant + 1:02d}T02:00:00Z",
        metrics={"ndcg@10": 0.25 + variant / 100},
    )


def publish(
    store: Store,
    run_id: str,
    variant: int = 0,
    recs: pd.DataFrame | None = None,
    sims: pd.DataFrame | None = None,
    **overrides: Any,
) -> AuditReport:
    kwargs: dict[str, Any] = {"expected_users": USERS, "known_items": ITEMS, "seen": SEEN, "k": K}
    kwargs.update(overrides)
    return store.publish(
        run_info(run_id, variant),
        make_recs(variant) if recs is None else recs,
        make_sims(variant) if sims is None else sims,
        **kwargs,
    )


def statuses(store: Store) -> dict[str, str]:
    runs = store.list_runs()
    return dict(zip(runs["run_id"], runs["status"], strict=True))


def staging_rows(store: Store) -> int:
    return sum(
        store._query(f"SELECT COUNT(*) FROM {table}")[0][0]
        for table in ("recommendations_staging", "similar_items_staging")
    )


def snapshot(store: Store) -> tuple[str | None, pd.DataFrame, pd.DataFrame]:
    return store.latest_run_id(), store.read_recommendations(), store.read_similar_items()


def assert_same_snapshot(a: tuple[str | None, pd.DataFrame, pd.DataFrame], b: tuple[Any, ...]) -> None:
    assert a[0] == b[0]
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])


# ---- fixtures ------------------------------------------------------------------------------------


def require_postgres() -> None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        if os.environ.get("RECSYS_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL unreachable at {PG_URL} and RECSYS_SKIP_POSTGRES=1")
        pytest.fail(f"PostgreSQL unreachable at {PG_URL}: {exc} (set RECSYS_SKIP_POSTGRES=1 to skip)")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A schema name unique to the test; the store creates it, teardown drops it."""
    require_postgres()
    schema = f"recsys_test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _opener(url: str, schema: str | None) -> Iterator[Callable[[], Store]]:
    stores: list[Store] = []

    def open_one() -> Store:
        store = open_store(url, schema=schema)
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_new(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens connections to one fresh store of the parametrised backend (closed at teardown)."""
    if request.param == "sqlite":
        yield from _opener(f"sqlite://{tmp_path / 'store.db'}", None)
    else:
        yield from _opener(PG_URL, request.getfixturevalue("pg_schema"))


@pytest.fixture
def store(open_new: Callable[[], Store]) -> Store:
    return open_new()


# ---- publish -------------------------------------------------------------------------------------


def test_empty_store_reads_nothing(store: Store) -> None:
    assert store.latest_run_id() is None
    assert store.read_recommendations().empty
    assert list(store.read_recommendations().columns) == [
        "run_id",
        "user_id",
        "rank",
        "item_id",
        "score",
        "reason",
        "model_version",
        "run_date",
        "generated_at",
    ]
    assert store.read_similar_items().empty
    assert store.list_runs().empty


def test_publish_shows_the_run_in_latest(store: Store) -> None:
    report = publish(store, "r1")
    assert report.ok and report.n_users == len(USERS) and report.n_recommendations == len(USERS) * K

    assert store.latest_run_id() == "r1"
    recs = store.read_recommendations()
    expected = make_recs(0).sort_values(["user_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(recs[list(expected.columns)], expected)
    assert set(recs["run_id"]) == {"r1"}
    assert set(recs["model_version"]) == {"cf-v0"} and set(recs["run_date"]) == {"2024-05-01"}
    assert set(recs["generated_at"]) == {pd.Timestamp("2024-05-01T02:00:00Z")}

    sims = store.read_similar_items()
    assert len(sims) == len(make_sims(0)) and set(sims["run_id"]) == {"r1"}
    assert list(store.read_similar_items(item_id="i01")["rank"]) == [1, 2, 1, 2]

    one = store.read_recommendations(user_id="u2")
    assert list(one["rank"]) == [1, 2, 3] and set(one["user_id"]) == {"u2"}

    runs = store.list_runs()
    assert runs.loc[0, "status"] == PUBLISHED and bool(runs.loc[0, "is_live"])
    assert runs.loc[0, "metrics"]["ndcg@10"] == 0.25 and runs.loc[0, "metrics"]["audit"]["ok"] is True
    assert runs.loc[0, "published_at"] >= runs.loc[0, "created_at"]
    assert staging_rows(store) == 0


def test_second_publish_switches_latest_and_keeps_the_first(store: Store) -> None:
    publish(store, "r1", variant=0)
    first = store.read_recommendations()
    publish(store, "r2", variant=1)

    assert store.latest_run_id() == "r2"
    latest = store.read_recommendations()
    assert set(latest["run_id"]) == {"r2"} and len(latest) == len(USERS) * K
    assert set(store.read_similar_items()["run_id"]) == {"r2"}
    pd.testing.assert_frame_equal(store.read_recommendations(run_id="r1"), first)
    assert len(store.read_similar_items(run_id="r1")) == len(make_sims(0))
    assert statuses(store) == {"r1": PUBLISHED, "r2": PUBLISHED}
    assert store.list_runs()["is_live"].tolist() == [False, True]


@pytest.mark.parametrize("rerun_live", [True, False], ids=["rerun-live", "rerun-older"])
def test_rerun_of_the_same_run_id_replaces_its_rows(store: Store, rerun_live: bool) -> None:
    publish(store, "r1", variant=0)
    if not rerun_live:
        publish(store, "r2", variant=1)
    publish(store, "r1", variant=2)  # same run id, new rows

    assert store.latest_run_id() == "r1"
    recs = store.read_recommendations(run_id="r1")
    assert len(recs) == len(USERS) * K
    assert set(recs["model_version"]) == {"cf-v2"}
    assert recs["reason"].str.endswith("(v2)").all()
    assert len(store.read_similar_items(run_id="r1")) == len(make_sims(2))
    assert len(store.list_runs()) == (1 if rerun_live else 2)
    pd.testing.assert_frame_equal(store.read_recommendations(), recs)


def test_ids_given_as_integers_are_stored_as_text(store: Store) -> None:
    recs = make_recs(0)
    recs["user_id"] = recs["user_id"].str[1:].astype(int)
    seen = SEEN.assign(user_id=SEEN["user_id"].str[1:].astype(int))
    publish(store, "r1", recs=recs, expected_users=[int(u[1:]) for u in USERS], seen=seen)
    assert store.read_recommendations(user_id="1")["item_id"].tolist() == make_recs(0)["item_id"][:K].tolist()


def test_caller_errors_raise_before_anything_is_written(store: Store) -> None:
    with pytest.raises(ValueError, match="k must be"):
        publish(store, "r1", k=0)
    with pytest.raises(ValueError, match="seen lacks"):
        publish(store, "r1", seen=pd.DataFrame({"user": ["u1"]}))
    assert store.list_runs().empty and staging_rows(store) == 0


BREAKAGES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], dict[str, Any], str]] = {
    "missing-user": (lambda r: r[r["user_id"] != "u5"], {}, audit.MISSING_USERS),
    "seen-item": (
        lambda r: r.assign(item_id=r["item_id"].mask((r["user_id"] == "u1") & (r["rank"] == 1), "i01")),
        {},
        audit.SEEN_ITEMS,
    ),
    "nan-score": (lambda r: r.assign(score=r["score"].mask(r["rank"] == 2, math.nan)), {}, audit.NON_FINITE_SCORES),
    "unknown-item": (lambda r: r.assign(item_id=r["item_id"].mask(r.index == 4, "nope")), {}, audit.UNKNOWN_ITEMS),
    "wrong-k": (lambda r: r, {"k": K + 1}, audit.WRONG_COUNT),
    "missing-column": (lambda r: r.drop(columns=["score"]), {}, audit.MISSING_COLUMNS),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_failed_audit_keeps_the_previous_run_live(store: Store, breakage: str) -> None:
    break_recs, overrides, code = BREAKAGES[breakage]
    publish(store, "r1", variant=0)
    before = snapshot(store)

    with pytest.raises(PublishError) as caught:
        publish(store, "r2", variant=1, recs=break_recs(make_recs(1)), **overrides)

    assert code in caught.value.report.codes and not caught.value.report.ok
    assert_same_snapshot(snapshot(store), before)
    assert store.read_recommendations(run_id="r2").empty
    assert statuses(store) == {"r1": PUBLISHED, "r2": FAILED}
    failed = store.list_runs().set_index("run_id").loc["r2", "metrics"]
    assert failed["audit"]["problems"] == caught.value.report.problems
    assert staging_rows(store) == 0


def test_failed_rerun_of_the_live_run_leaves_it_untouched(store: Store) -> None:
    publish(store, "r1", variant=0)
    before = snapshot(store)
    with pytest.raises(PublishError):
        publish(store, "r1", variant=1, recs=make_recs(1).iloc[1:])
    assert_same_snapshot(snapshot(store), before)
    assert statuses(store) == {"r1": PUBLISHED}


def test_a_failed_run_can_be_published_after_a_fix(store: Store) -> None:
    with pytest.raises(PublishError):
        publish(store, "r1", recs=make_recs(0).iloc[1:])
    assert store.latest_run_id() is None and statuses(store) == {"r1": FAILED}
    publish(store, "r1")
    assert store.latest_run_id() == "r1" and statuses(store) == {"r1": PUBLISHED}
    assert "error" not in store.list_runs().loc[0, "metrics"]


def test_a_load_bug_is_caught_by_the_audit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(store, "r1", variant=0)
    before = snapshot(store)
    bulk_insert = store._bulk_insert

    def lossy(table: str, columns: Any, rows: Any) -> None:
        bulk_insert(table, columns, rows[1:])  # drops one row on the way in

    monkeypatch.setattr(store, "_bulk_insert", lossy)
    with pytest.raises(PublishError) as caught:
        publish(store, "r2", variant=1)
    assert audit.LOAD_MISMATCH in caught.value.report.codes
    assert_same_snapshot(snapshot(store), before)


# ---- atomic switch -------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["r2", "r1"], ids=["new-run", "rerun-live"])
def test_a_reader_during_the_switch_sees_the_old_run(
    open_new: Callable[[], Store], monkeypatch: pytest.MonkeyPatch, run_id: str
) -> None:
    writer, reader = open_new(), open_new()
    publish(writer, "r1", variant=0)
    before = snapshot(reader)
    seen_inside: list[tuple[str | None, pd.DataFrame, pd.DataFrame]] = []
    set_live = writer._set_live

    def spy(new_run_id: str) -> None:  # runs inside the switch transaction, rows already replaced
        seen_inside.append(snapshot(reader))
        set_live(new_run_id)
        seen_inside.append(snapshot(reader))

    monkeypatch.setattr(writer, "_set_live", spy)
    publish(writer, run_id, variant=1)

    assert len(seen_inside) == 2
    for inside in seen_inside:
        assert_same_snapshot(inside, before)
    after = snapshot(reader)
    assert after[0] == run_id and set(after[1]["model_version"]) == {"cf-v1"}
    assert set(after[1]["run_id"]) == {run_id} and set(after[2]["run_id"]) == {run_id}


@pytest.mark.parametrize("run_id", ["r2", "r1"], ids=["new-run", "rerun-live"])
def test_a_failure_during_the_switch_keeps_the_old_run(
    store: Store, monkeypatch: pytest.MonkeyPatch, run_id: str
) -> None:
    publish(store, "r1", variant=0)
    before = snapshot(store)

    def boom(new_run_id: str) -> None:
        raise RuntimeError("switch interrupted")

    monkeypatch.setattr(store, "_set_live", boom)
    with pytest.raises(RuntimeError, match="switch interrupted"):
        publish(store, run_id, variant=1)

    assert_same_snapshot(snapshot(store), before)
    pd.testing.assert_frame_equal(store.read_recommendations(run_id="r1"), before[1])
    assert staging_rows(store) == 0
    if run_id == "r2":
        assert store.read_recommendations(run_id="r2").empty
        assert statuses(store) == {"r1": PUBLISHED, "r2": FAILED}
        assert "switch interrupted" in store.list_runs().set_index("run_id").loc["r2", "metrics"]["error"]
    else:
        assert statuses(store) == {"r1": PUBLISHED}
    monkeypatch.undo()
    publish(store, run_id, variant=1)  # the store is still usable
    assert store.latest_run_id() == run_id


# ---- rollback ------------------------------------------------------------------------------------


def test_rollback_goes_back_one_run_at_a_time(store: Store) -> None:
    for variant, run_id in enumerate(["r1", "r2", "r3"]):
        publish(store, run_id, variant=variant)
    r2_rows = store.read_recommendations(run_id="r2")

    assert store.rollback() == "r2"
    assert store.latest_run_id() == "r2"
    pd.testing.assert_frame_equal(store.read_recommendations(), r2_rows)
    assert set(store.read_similar_items()["run_id"]) == {"r2"}
    assert statuses(store) == {"r1": PUBLISHED, "r2": PUBLISHED, "r3": ROLLED_BACK}

    assert store.rollback() == "r1"
    assert statuses(store) == {"r1": PUBLISHED, "r2": ROLLED_BACK, "r3": ROLLED_BACK}
    with pytest.raises(RollbackError):
        store.rollback()
    assert store.latest_run_id() == "r1"

    assert store.rollback("r3") == "r3"  # an explicit run id may also go forward again
    assert store.latest_run_id() == "r3" and statuses(store)["r3"] == PUBLISHED
    assert set(store.read_recommendations()["run_id"]) == {"r3"}


def test_rollback_with_nothing_earlier_raises(store: Store) -> None:
    with pytest.raises(RollbackError):
        store.rollback()
    publish(store, "r1")
    with pytest.raises(RollbackError):
        store.rollback()
    assert store.latest_run_id() == "r1" and statuses(store) == {"r1": PUBLISHED}


def test_rollback_skips_failed_runs_and_refuses_them(store: Store) -> None:
    publish(store, "r1", variant=0)
    with pytest.raises(PublishError):
        publish(store, "r2", variant=1, recs=make_recs(1).iloc[1:])
    publish(store, "r3", variant=2)
    with pytest.raises(RollbackError):
        store.rollback("r2")
    with pytest.raises(RollbackError):
        store.rollback("nope")
    assert store.rollback() == "r1"


# ---- factory and parity --------------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "a" / "plain.db")) as plain:
        assert isinstance(plain, SQLiteStore)
    assert (tmp_path / "a" / "plain.db").exists()
    with open_store(f"sqlite://{tmp_path / 'url.db'}") as from_url:
        assert isinstance(from_url, SQLiteStore) and from_url.path == tmp_path / "url.db"
        assert from_url._query("PRAGMA journal_mode")[0][0] == "wal"
    with open_store(f"sqlite:///{tmp_path / 'four.db'}") as four_slashes:  # SQLAlchemy's absolute form
        assert four_slashes.path == tmp_path / "four.db"
    with pytest.raises(ValueError, match="unsupported"):
        open_store("mysql://x/y")
    with pytest.raises(ValueError, match="schema"):
        open_store(str(tmp_path / "b.db"), schema="s")


def test_run_info_is_validated() -> None:
    with pytest.raises(ValueError):
        RunInfo("r1", "2024-13-01", "d", "m", "2024-05-01T00:00:00Z", {})
    with pytest.raises(ValueError):
        RunInfo("r1", "2024-05-01", "d", "m", "yesterday", {})
    with pytest.raises(ValueError):
        RunInfo("", "2024-05-01", "d", "m", "2024-05-01T00:00:00Z", {})


@pytest.mark.postgres
def test_sqlite_and_postgres_return_the_same_frames(tmp_path: Path, pg_schema: str) -> None:
    with open_store(str(tmp_path / "parity.db")) as lite, open_store(PG_URL, schema=pg_schema) as pg:
        assert isinstance(pg, PostgresStore)
        for one in (lite, pg):
            publish(one, "r1", variant=0)
            publish(one, "r2", variant=1)
            one.rollback()
        pd.testing.assert_frame_equal(lite.read_recommendations(), pg.read_recommendations())
        pd.testing.assert_frame_equal(lite.read_similar_items(run_id="r2"), pg.read_similar_items(run_id="r2"))
        volatile = ["created_at", "published_at"]
        pd.testing.assert_frame_equal(lite.list_runs().drop(columns=volatile), pg.list_runs().drop(columns=volatile))


@pytest.mark.postgres
def test_postgres_schema_from_the_url_options(pg_schema: str) -> None:
    with open_store(PG_URL, schema=pg_schema) as by_argument:
        publish(by_argument, "r1")
    with open_store(f"{PG_URL}?options=-csearch_path%3D{pg_schema}") as by_url:
        assert by_url.latest_run_id() == "r1"
        assert len(by_url.read_recommendations()) == len(USERS) * K
