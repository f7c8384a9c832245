"""Unit tests of recsys.store.audit: hand-made frames, one planted problem each."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from recsys.store import audit
from recsys.store.audit import AuditReport, audit_run, check_schema

USERS = ["u1", "u2"]
ITEMS = [f"i{n}" for n in range(1, 7)]
K = 2


def good_recs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2"],
            "rank": [1, 2, 1, 2],
            "item_id": ["i3", "i4", "i1", "i5"],
            "score": [0.9, 0.8, 0.7, 0.6],
            "reason": ["r", "r", "r", "r"],
            "source": ["similar", "similar+genre+popular", "embedding", "new+profile"],
        }
    )


def good_sims() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["i1", "i1", "i2"],
            "rank": [1, 2, 1],
            "neighbor_id": ["i2", "i3", "i1"],
            "distance": [0.1, 0.2, 0.1],
            "source": ["cf", "cf", "cf"],
        }
    )


def seen() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"]})


def run_audit(recs: pd.DataFrame | None = None, sims: pd.DataFrame | None = None, **overrides: object) -> AuditReport:
    kwargs: dict[str, object] = {"expected_users": USERS, "known_items": ITEMS, "seen": seen(), "k": K}
    kwargs.update(overrides)
    return audit_run(good_recs() if recs is None else recs, good_sims() if sims is None else sims, **kwargs)


def test_clean_run_passes_with_counts() -> None:
    report = run_audit()
    assert report.ok, report.problems
    assert report.problems == []
    assert (report.n_users, report.n_expected_users, report.n_recommendations) == (2, 2, 4)
    assert (report.n_similar_items, report.n_similar_rows, report.k) == (2, 3, 2)
    assert report.n_blocked_items == 0
    assert report.as_dict()["ok"] is True and report.as_dict()["n_blocked_items"] == 0


def test_integer_ids_compare_as_strings() -> None:
    recs = good_recs().assign(user_id=[1, 1, 2, 2], item_id=[3, 4, 1, 5])
    sims = good_sims().assign(item_id=[1, 1, 2], neighbor_id=[2, 3, 1])
    report = audit_run(
        recs,
        sims,
        expected_users=[1, 2],
        known_items=range(1, 7),
        seen=pd.DataFrame({"user_id": [1], "item_id": [2]}),
        k=K,
    )
    assert report.ok, report.problems


def only(report: AuditReport, code: str) -> str:
    assert report.codes == [code], report.problems
    return report.problems[0]


def test_missing_user() -> None:
    problem = only(run_audit(expected_users=[*USERS, "u3"]), audit.MISSING_USERS)
    assert "u3" in problem


def test_unexpected_user() -> None:
    assert "u2" in only(run_audit(expected_users=["u1"]), audit.UNEXPECTED_USERS)


def test_wrong_count() -> None:
    assert "u1" in only(run_audit(good_recs().iloc[1:]), audit.WRONG_COUNT)


def test_wrong_k() -> None:
    report = run_audit(k=3)
    assert report.codes == [audit.WRONG_COUNT]


def test_bad_ranks() -> None:
    recs = good_recs().assign(rank=[1, 3, 1, 2])
    assert "u1" in only(run_audit(recs), audit.BAD_RANKS)


def test_duplicate_rank_is_bad_ranks() -> None:
    recs = good_recs().assign(rank=[1, 1, 1, 2])
    assert "u1" in only(run_audit(recs), audit.BAD_RANKS)


def test_duplicate_item() -> None:
    recs = good_recs().assign(item_id=["i3", "i3", "i1", "i5"])
    assert "u1" in only(run_audit(recs), audit.DUPLICATE_ITEMS)


def test_seen_item() -> None:
    recs = good_recs().assign(item_id=["i1", "i4", "i1", "i5"])  # u1 has seen i1, u2 has not
    assert "u1/i1" in only(run_audit(recs), audit.SEEN_ITEMS)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_non_finite_score(bad: float | None) -> None:
    recs = good_recs()
    recs["score"] = recs["score"].astype(object)
    recs.loc[2, "score"] = bad
    assert "u2" in only(run_audit(recs), audit.NON_FINITE_SCORES)


def test_unknown_item() -> None:
    recs = good_recs().assign(item_id=["i3", "i99", "i1", "i5"])
    assert "i99" in only(run_audit(recs), audit.UNKNOWN_ITEMS)


def test_null_user() -> None:
    recs = good_recs().assign(user_id=["u1", "u1", "u2", None])
    report = run_audit(recs)
    assert report.codes[0] == audit.NULL_VALUES
    assert "recommendations.user_id has 1 nulls" in report.problems[0]


def test_no_recommendations() -> None:
    only(run_audit(good_recs().iloc[0:0], expected_users=[]), audit.NO_RECOMMENDATIONS)


def test_no_similar_items() -> None:
    only(run_audit(sims=good_sims().iloc[0:0]), audit.NO_SIMILAR_ITEMS)


def test_similar_ranks_not_starting_at_one() -> None:
    sims = good_sims().assign(rank=[2, 3, 1])
    assert "i1/cf" in only(run_audit(sims=sims), audit.SIMILAR_BAD_RANKS)


def test_similar_duplicate_rank() -> None:
    sims = good_sims().assign(rank=[1, 1, 1])
    only(run_audit(sims=sims), audit.SIMILAR_BAD_RANKS)


def test_similar_ranks_are_per_source() -> None:
    sims = pd.concat([good_sims(), good_sims().assign(source="two_tower")], ignore_index=True)
    assert run_audit(sims=sims).ok


def test_similar_duplicate_neighbor() -> None:
    sims = good_sims().assign(neighbor_id=["i2", "i2", "i1"])
    assert "i1" in only(run_audit(sims=sims), audit.SIMILAR_DUPLICATE_NEIGHBORS)


def test_similar_unknown_ids() -> None:
    sims = good_sims().assign(neighbor_id=["i2", "x9", "i1"], item_id=["i1", "i1", "x8"])
    problem = only(run_audit(sims=sims), audit.SIMILAR_UNKNOWN_ITEMS)
    assert "x8" in problem and "x9" in problem


def test_similar_non_finite_distance() -> None:
    sims = good_sims().assign(distance=[0.1, math.nan, 0.1])
    only(run_audit(sims=sims), audit.SIMILAR_NON_FINITE_DISTANCES)


def test_missing_column() -> None:
    report = run_audit(good_recs().drop(columns=["score"]))
    assert report.codes == [audit.MISSING_COLUMNS]
    assert "score" in report.problems[0]
    assert check_schema(good_recs().drop(columns=["score"]), good_sims())[0].startswith(audit.MISSING_COLUMNS)


def test_several_problems_are_all_reported() -> None:
    recs = good_recs().assign(item_id=["i1", "i99", "i1", "i5"], score=[0.9, math.nan, 0.7, 0.6])
    report = run_audit(recs, expected_users=[*USERS, "u3"])
    assert set(report.codes) == {audit.MISSING_USERS, audit.SEEN_ITEMS, audit.NON_FINITE_SCORES, audit.UNKNOWN_ITEMS}
    assert not report.ok


def test_examples_are_capped() -> None:
    problem = only(run_audit(expected_users=[*USERS, *(f"x{n}" for n in range(50))]), audit.MISSING_USERS)
    assert problem.startswith("missing_users: 50 expected users")
    assert problem.count("'x") == 5


@pytest.mark.parametrize(
    ("column", "values", "needle"),
    [("score", ["a", 0.8, 0.7, 0.6], "recommendations.score"), ("rank", [1, 2.5, 1, 2], "recommendations.rank")],
)
def test_check_schema_bad_types(column: str, values: list[object], needle: str) -> None:
    problems = check_schema(good_recs().assign(**{column: values}), good_sims())
    assert len(problems) == 1 and problems[0].startswith(audit.BAD_TYPES) and needle in problems[0]


def test_check_schema_accepts_good_frames_and_float_ranks() -> None:
    assert check_schema(good_recs().assign(rank=[1.0, 2.0, 1.0, 2.0]), good_sims()) == []


def test_caller_errors_raise() -> None:
    with pytest.raises(ValueError, match="k must be"):
        run_audit(k=0)
    with pytest.raises(ValueError, match="seen lacks"):
        run_audit(seen=pd.DataFrame({"user": []}))


# ---- source ----------------------------------------------------------------------------------


def test_candidate_sources_are_the_known_names() -> None:
    assert audit.CANDIDATE_SOURCES == ("similar", "genre", "segment", "embedding", "new", "popular", "profile")
    every = audit.SOURCE_SEPARATOR.join(audit.CANDIDATE_SOURCES)
    assert run_audit(good_recs().assign(source=[every, "profile", "segment", "genre+new"])).ok


def test_missing_source_column() -> None:
    report = run_audit(good_recs().drop(columns=["source"]))
    assert report.codes == [audit.MISSING_COLUMNS] and "source" in report.problems[0]
    assert check_schema(good_recs().drop(columns=["source"]), good_sims())[0].startswith(audit.MISSING_COLUMNS)


@pytest.mark.parametrize("bad", [None, math.nan, "", "  "])
def test_null_or_empty_source(bad: object) -> None:
    recs = good_recs()
    recs["source"] = recs["source"].astype(object)
    recs.loc[1, "source"] = bad
    problem = only(run_audit(recs), audit.MISSING_SOURCES)
    assert problem.startswith("missing_sources: 1 recommendations have no source")
    assert "u1/i4 (rank 2)" in problem


@pytest.mark.parametrize("bad", ["cf", "similar+cf", "Similar", "similar++genre", "similar+", " similar"])
def test_unknown_source(bad: str) -> None:
    problem = only(run_audit(good_recs().assign(source=["similar", bad, "genre", "new"])), audit.UNKNOWN_SOURCES)
    assert repr(bad) in problem


@pytest.mark.parametrize("bad", ["genre+similar", "popular+new", "similar+similar"])
def test_sources_out_of_order_or_repeated(bad: str) -> None:
    problem = only(run_audit(good_recs().assign(source=["similar", bad, bad, "new"])), audit.UNORDERED_SOURCES)
    assert problem.startswith("unordered_sources: 2 recommendations") and repr(bad) in problem


def test_source_problems_are_reported_separately() -> None:
    report = run_audit(good_recs().assign(source=[None, "x", "genre+similar", "similar"]))
    assert report.codes == [audit.MISSING_SOURCES, audit.UNKNOWN_SOURCES, audit.UNORDERED_SOURCES]


def test_similar_items_sources_are_not_candidate_sources() -> None:
    assert run_audit(sims=good_sims().assign(source="two_tower")).ok  # vectors, not candidate sources


# ---- blocked items ---------------------------------------------------------------------------


def test_blocked_item() -> None:
    report = run_audit(blocked_items={"i4", "i5", "i6"})
    problem = only(report, audit.BLOCKED_ITEMS)
    assert problem.startswith("blocked_items: 2 recommendations of 2 users are blocked items (2 distinct)")
    assert "u1/i4 (rank 2)" in problem and "u2/i5 (rank 2)" in problem
    assert report.n_blocked_items == 3 and report.as_dict()["n_blocked_items"] == 3


def test_blocked_items_not_recommended_pass() -> None:
    report = run_audit(blocked_items=["i6", "not-in-the-catalogue"])
    assert report.ok and report.n_blocked_items == 2


def test_blocked_items_compare_as_strings_and_examples_are_capped() -> None:
    users = [f"u{n}" for n in range(10)]
    recs = pd.DataFrame(
        {
            "user_id": [u for u in users for _ in (1, 2)],
            "rank": [1, 2] * len(users),
            "item_id": [1, 2] * len(users),
            "score": [0.9, 0.8] * len(users),
            "reason": "r",
            "source": "popular",
        }
    )
    report = audit_run(
        recs, good_sims(), expected_users=users, known_items=[1, 2, *ITEMS], seen=seen(), k=K, blocked_items=[2]
    )
    problem = only(report, audit.BLOCKED_ITEMS)
    assert problem.startswith("blocked_items: 10 recommendations of 10 users") and problem.count("(rank 2)") == 5


def test_blocked_and_seen_are_both_reported() -> None:
    recs = good_recs().assign(item_id=["i1", "i4", "i1", "i5"])
    report = run_audit(recs, blocked_items=["i1"])
    assert report.codes == [audit.SEEN_ITEMS, audit.BLOCKED_ITEMS]
