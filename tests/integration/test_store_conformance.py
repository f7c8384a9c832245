"""One conformance suite for every Store backend (SQLite file, PostgreSQL schema).

Each test gets a fresh store: a SQLite file in tmp_path, or a new PostgreSQL schema
``recsys_test_<uuid>`` dropped at teardown. PostgreSQL params fail when the server
is unreachable, unless RECSYS_SKIP_POSTGRES=1 (then they skip).

The migration tests build a schema-version-1 store with the version-1 DDL kept here
(:data:`V1_DDL`, the layout before ``store_meta`` and ``recommendations.source``).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from recsys.store import (
    FAILED,
    PUBLISHED,
    RECOMMENDATION_COLUMNS,
    ROLLED_BACK,
    SCHEMA_VERSION,
    AuditReport,
    PostgresStore,
    PublishError,
    RollbackError,
    RunInfo,
    SchemaVersionError,
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
SOURCE_VALUES = ("similar", "similar+genre+popular", "embedding", "segment+new", "profile", "genre+popular")
"""Valid ``source`` values (CANDIDATE_SOURCES names, ``+``-joined in their order) the runs cycle through."""


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
            source = SOURCE_VALUES[(u + rank + variant) % len(SOURCE_VALUES)]
            rows.append((user, rank, item, score, f"similar to what you rated (v{variant})", source))
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score", "reason", "source"])


def make_sims(variant: int) -> pd.DataFrame:
    rows = []
    for n, item in enumerate(ITEMS[:6]):
        for source in ("cf", "two_tower"):
            for rank in (1, 2):
                neighbor = ITEMS[(n + rank + variant) % len(ITEMS)]
                rows.append((item, rank, neighbor, 0.1 * rank + 0.01 * variant, source))
    return pd.DataFrame(rows, columns=["item_id", "rank", "neighbor_id", "distance", "source"])


def sorted_recs(variant: int) -> pd.DataFrame:
    """``make_recs(variant)`` in the order the store reads rows back (user_id, rank)."""
    return make_recs(variant).sort_values(["user_id", "rank"]).reset_index(drop=True)


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
        "source",
    ]
    assert store.read_similar_items().empty
    assert store.list_runs().empty
    assert store.schema_version() == SCHEMA_VERSION == 2


def test_publish_shows_the_run_in_latest(store: Store) -> None:
    report = publish(store, "r1")
    assert report.ok and report.n_users == len(USERS) and report.n_recommendations == len(USERS) * K

    assert store.latest_run_id() == "r1"
    recs = store.read_recommendations()
    expected = make_recs(0).sort_values(["user_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(recs[list(expected.columns)], expected)
    assert recs["source"].tolist() == expected["source"].tolist() and set(recs["source"]) == set(SOURCE_VALUES)
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
    assert store.read_recommendations(run_id="r1")["source"].tolist() == sorted_recs(0)["source"].tolist()
    assert latest["source"].tolist() == sorted_recs(1)["source"].tolist() != first["source"].tolist()
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
    "missing-source-column": (lambda r: r.drop(columns=["source"]), {}, audit.MISSING_COLUMNS),
    "null-source": (lambda r: r.assign(source=r["source"].mask(r["rank"] == 2, None)), {}, audit.MISSING_SOURCES),
    "empty-source": (lambda r: r.assign(source=r["source"].mask(r["rank"] == 2, "")), {}, audit.MISSING_SOURCES),
    "unknown-source": (
        lambda r: r.assign(source=r["source"].mask(r.index == 4, "similar+cf")),
        {},
        audit.UNKNOWN_SOURCES,
    ),
    "unordered-source": (
        lambda r: r.assign(source=r["source"].mask(r.index == 4, "popular+similar")),
        {},
        audit.UNORDERED_SOURCES,
    ),
    "blocked-item": (lambda r: r, {"blocked_items": {"i99", *make_recs(1)["item_id"][:2]}}, audit.BLOCKED_ITEMS),
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


def test_a_blocked_item_fails_the_audit_naming_the_rows(store: Store) -> None:
    publish(store, "r1", variant=0)
    before = snapshot(store)
    first = make_recs(1).iloc[0]
    with pytest.raises(PublishError) as caught:
        publish(store, "r2", variant=1, blocked_items=[str(first["item_id"]), "not-in-the-run"])
    report = caught.value.report
    assert report.codes == [audit.BLOCKED_ITEMS] and report.n_blocked_items == 2
    assert f"{first['user_id']}/{first['item_id']} (rank 1)" in report.problems[0]
    assert_same_snapshot(snapshot(store), before)
    assert statuses(store) == {"r1": PUBLISHED, "r2": FAILED}

    passing = publish(store, "r2", variant=1, blocked_items=["not-in-the-run"])  # blocks nothing it recommends
    assert passing.ok and passing.n_blocked_items == 1 and store.latest_run_id() == "r2"
    assert store.list_runs().set_index("run_id").loc["r2", "metrics"]["audit"]["n_blocked_items"] == 1


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
    assert store.read_recommendations()["source"].tolist() == sorted_recs(1)["source"].tolist()
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


# ---- schema version and migration ----------------------------------------------------------------

V1_DDL: tuple[str, ...] = (
    "CREATE TABLE runs (run_id {text} PRIMARY KEY, run_date {date} NOT NULL, dataset {text} NOT NULL, "
    "model_version {text} NOT NULL, status {text} NOT NULL, metrics {text} NOT NULL, "
    "created_at {timestamp} NOT NULL, published_at {timestamp})",
    "CREATE TABLE recommendations (run_id {text} NOT NULL REFERENCES runs (run_id), "
    "user_id {text} NOT NULL, rank {integer} NOT NULL, item_id {text} NOT NULL, score {double} NOT NULL, "
    "reason {text}, model_version {text} NOT NULL, run_date {date} NOT NULL, "
    "generated_at {timestamp} NOT NULL, PRIMARY KEY (run_id, user_id, rank))",
    "CREATE TABLE similar_items (run_id {text} NOT NULL REFERENCES runs (run_id), "
    "item_id {text} NOT NULL, rank {integer} NOT NULL, neighbor_id {text} NOT NULL, "
    "distance {double} NOT NULL, source {text} NOT NULL, PRIMARY KEY (run_id, item_id, rank, source))",
    "CREATE TABLE live (name {text} PRIMARY KEY, run_id {text} NOT NULL REFERENCES runs (run_id))",
    "CREATE TABLE recommendations_staging (run_id {text} NOT NULL, user_id {text}, rank {integer}, "
    "item_id {text}, score {double}, reason {text}, model_version {text}, run_date {date}, "
    "generated_at {timestamp})",
    "CREATE INDEX IF NOT EXISTS recommendations_staging_run_id ON recommendations_staging (run_id)",
    "CREATE TABLE similar_items_staging (run_id {text} NOT NULL, item_id {text}, rank {integer}, "
    "neighbor_id {text}, distance {double}, source {text})",
    "CREATE INDEX IF NOT EXISTS similar_items_staging_run_id ON similar_items_staging (run_id)",
    "CREATE VIEW recommendations_latest AS SELECT r.run_id, r.user_id, r.rank, r.item_id, r.score, r.reason, "
    "r.model_version, r.run_date, r.generated_at "
    "FROM recommendations r JOIN live l ON l.run_id = r.run_id WHERE l.name = 'recommendations'",
    "CREATE VIEW similar_items_latest AS SELECT s.run_id, s.item_id, s.rank, s.neighbor_id, s.distance, s.source "
    "FROM similar_items s JOIN live l ON l.run_id = s.run_id WHERE l.name = 'recommendations'",
)
"""The store's DDL at schema version 1 (no ``store_meta``, no ``recommendations.source``)."""
V1_TYPES = {
    "sqlite": {"text": "TEXT", "date": "TEXT", "timestamp": "TEXT", "integer": "INTEGER", "double": "REAL"},
    "postgres": {
        "text": "TEXT",
        "date": "DATE",
        "timestamp": "TIMESTAMPTZ",
        "integer": "INTEGER",
        "double": "DOUBLE PRECISION",
    },
}
V1_RUNS = (("old1", 0, "2024-04-01T03:00:00+00:00"), ("old2", 1, "2024-04-02T03:00:00+00:00"))
"""(run_id, variant, published_at) of the runs a version-1 store holds; old2 is live."""


@dataclass
class LegacyStore:
    """A version-1 store built with :data:`V1_DDL`: raw SQL on it, and an opener of the Store."""

    backend: str
    sql: Callable[..., list[tuple[Any, ...]]]
    open: Callable[[], Store]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LegacyStore]:
    backend = request.param
    if backend == "sqlite":
        path = tmp_path / "legacy.db"
        conn: Any = sqlite3.connect(path, isolation_level=None)

        def run_sql(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            return conn.execute(statement, tuple(params)).fetchall()

        url, schema = f"sqlite://{path}", None
    else:
        schema = request.getfixturevalue("pg_schema")
        conn = psycopg.connect(PG_URL, autocommit=True)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

        def run_sql(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            cursor = conn.execute(statement.replace("?", "%s"), tuple(params))
            return cursor.fetchall() if cursor.description else []

        url = PG_URL
    for statement in V1_DDL:
        run_sql(statement.format(**V1_TYPES[backend]))
    fill_v1(run_sql)
    gen = _opener(url, schema)
    yield LegacyStore(backend, run_sql, next(gen))
    for _ in gen:
        pass
    conn.close()


def fill_v1(run_sql: Callable[..., Any]) -> None:
    """Two published runs as version-1 code wrote them (rows without ``source``), the second live."""
    for run_id, variant, published_at in V1_RUNS:
        info = run_info(run_id, variant)
        run_sql(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, info.run_date, info.dataset, info.model_version, PUBLISHED, "{}", published_at, published_at),
        )
        v1_columns = ["user_id", "rank", "item_id", "score", "reason"]
        for row in make_recs(variant)[v1_columns].itertuples(index=False, name=None):
            run_sql(
                "INSERT INTO recommendations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, *row, info.model_version, info.run_date, "2024-04-01T02:00:00+00:00"),
            )
        for row in make_sims(variant).itertuples(index=False):
            run_sql(
                "INSERT INTO similar_items VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, row.item_id, row.rank, row.neighbor_id, row.distance, row.source),
            )
    run_sql("INSERT INTO live VALUES ('recommendations', 'old2')")


MIGRATED = "migrated the store schema from version 1 to 2"


def test_opening_a_version_1_store_migrates_it_in_place(legacy: LegacyStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="recsys.store.base"):
        store = legacy.open()
    assert MIGRATED in caplog.text and "recommendations.source" in caplog.text
    assert store.schema_version() == SCHEMA_VERSION
    assert legacy.sql("SELECT value FROM store_meta WHERE name = 'schema_version'") == [(str(SCHEMA_VERSION),)]

    # The old runs read back unchanged, with a NULL source, through the recreated view and by run id.
    assert store.latest_run_id() == "old2"
    latest = store.read_recommendations()
    assert list(latest.columns) == list(RECOMMENDATION_COLUMNS)
    assert latest["source"].isna().all() and len(latest) == len(USERS) * K
    old = sorted_recs(1).drop(columns=["source"])
    pd.testing.assert_frame_equal(latest[list(old.columns)], old)
    assert store.read_recommendations(run_id="old1")["source"].isna().all()
    assert len(store.read_similar_items()) == len(make_sims(1))
    assert legacy.sql("SELECT COUNT(source) FROM recommendations_staging") == [(0,)]  # the column exists

    # New runs carry their source; rollback to a version-1 run shows its rows again.
    publish(store, "r3", variant=2)
    assert store.read_recommendations()["source"].tolist() == sorted_recs(2)["source"].tolist()
    with pytest.raises(PublishError) as caught:
        publish(store, "r4", variant=3, recs=make_recs(3).assign(source=None))
    assert caught.value.report.codes == [audit.MISSING_SOURCES]
    assert store.rollback() == "old2"
    assert store.read_recommendations()["source"].isna().all()
    assert statuses(store) == {"old1": PUBLISHED, "old2": PUBLISHED, "r3": ROLLED_BACK, "r4": FAILED}

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recsys.store.base"):
        again = legacy.open()  # already at version 2: nothing to do
    assert MIGRATED not in caplog.text and again.schema_version() == SCHEMA_VERSION
    assert again.latest_run_id() == "old2"


def test_two_connections_opening_a_version_1_store_migrate_it_once(
    legacy: LegacyStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="recsys.store.base"):
        first, second = legacy.open(), legacy.open()
    assert caplog.text.count(MIGRATED) == 1
    assert first.schema_version() == second.schema_version() == SCHEMA_VERSION
    publish(second, "r3", variant=2)
    assert first.read_recommendations()["source"].notna().all()


def test_a_store_newer_than_the_code_is_refused(open_new: Callable[[], Store]) -> None:
    store = open_new()
    publish(store, "r1")
    store._execute("UPDATE store_meta SET value = ? WHERE name = ?", (str(SCHEMA_VERSION + 1), "schema_version"))
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}, newer") as caught:
        open_new()
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert store.latest_run_id() == "r1" and len(store.read_recommendations()) == len(USERS) * K

    store._execute("DELETE FROM store_meta")
    with pytest.raises(SchemaVersionError, match="no readable schema_version"):
        open_new()
