"""Candidates (recsys.retrieval.candidates) and ranking (recsys.ranking.rank): hand-made known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.ranking.rank import rank_candidates, reason_text
from recsys.retrieval.candidates import build_candidates, profile_candidates, recent_items

NO_NEIGHBORS = np.full((12, 3), -1, dtype=np.int64)


def history(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """(user_idx, item_idx, ts) rows."""
    return pd.DataFrame(rows, columns=["user_idx", "item_idx", "ts"]).astype(
        {"user_idx": np.int32, "item_idx": np.int32, "ts": np.int64}
    )


def as_rows(cand: pd.DataFrame, user: int) -> set[tuple[int, str, int]]:
    """One user's candidates as {(item, source, anchor)}."""
    c = cand[cand["user_idx"] == user]
    return {(int(i), s, int(a)) for i, s, a in zip(c["item_idx"], c["source"], c["anchor_idx"], strict=True)}


# --- recent_items ----------------------------------------------------------------------------


def test_recent_items_latest_first_ties_by_item_index():
    h = history([(0, 5, 10), (0, 2, 30), (0, 9, 30), (0, 1, 20), (1, 4, 1)])
    r = recent_items(h, 3)
    assert list(r.columns) == ["user_idx", "item_idx", "recency"]
    got = [tuple(x) for x in r.itertuples(index=False)]
    # user 0: ts 30 twice (item 2 before 9), then ts 20; item 5 (ts 10) is cut by n_recent=3.
    assert got == [(0, 2, 0), (0, 9, 1), (0, 1, 2), (1, 4, 0)]


# --- build_candidates ------------------------------------------------------------------------


def small_world() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """User 0 rated item 0 (older) and item 1 (latest); user 1 has no history; user 2 saw the popular head."""
    h = history([(0, 0, 100), (0, 1, 200), (2, 2, 5), (2, 5, 6), (2, 0, 7)])
    nb = np.full((12, 3), -1, dtype=np.int64)
    nb[1] = [2, 3, 0]  # 0 is seen by user 0: never a candidate for them
    nb[0] = [3, 4, -1]  # 3 also a neighbour of the more recent item 1; -1 pads
    nb[5] = [6, -1, -1]
    popular = np.array([2, 5, 0, 6, 7, 8, 9, 10, 11, 1, 3, 4])
    return h, nb, popular


def test_known_answer_small_world():
    h, nb, popular = small_world()
    cand = build_candidates(np.array([0, 1, 2]), h, nb, popular, n_recent=2, n_popular=2)
    assert list(cand.columns) == ["user_idx", "item_idx", "source", "anchor_idx"]
    assert cand["anchor_idx"].dtype == np.int64
    # user 0: 2 is both similar (anchor 1) and popular -> similar wins; 3 is a neighbour of
    # both anchors -> the more recent anchor (1) wins although anchor 0 lists it first;
    # popular fills in with the unseen head: 2 (taken by similar) and 5.
    assert as_rows(cand, 0) == {(2, "similar", 1), (3, "similar", 1), (4, "similar", 0), (5, "popular", -1)}
    # user 1: no history -> only the two most popular items.
    assert as_rows(cand, 1) == {(2, "popular", -1), (5, "popular", -1)}
    # user 2: saw 2, 5, 0 (the head); the n_recent=2 latest are 0 (ts 7) and 5 (ts 6).
    # Neighbours of 0: 3, 4 (anchor 0); of 5: 6 (anchor 5). Popular: first two unseen are 6 and 7,
    # and 6 is claimed by the similar source.
    assert as_rows(cand, 2) == {
        (3, "similar", 0),
        (4, "similar", 0),
        (6, "similar", 5),
        (7, "popular", -1),
    }


def test_no_seen_item_is_ever_a_candidate_random():
    rng = np.random.default_rng(5)
    n_users, n_items = 40, 60
    rows = []
    for u in range(n_users):
        k = int(rng.integers(0, 25))
        for t, i in enumerate(rng.choice(n_items, size=k, replace=False)):
            rows.append((u, int(i), int(rng.integers(0, 5)) * 10 + t))
    h = history(rows)
    nb = np.stack([rng.choice(n_items, size=6, replace=False) for _ in range(n_items)]).astype(np.int64)
    nb[rng.random(nb.shape) < 0.1] = -1
    popular = rng.permutation(n_items)
    users = np.arange(n_users + 3)  # three users with no history at all
    cand = build_candidates(users, h, nb, popular, n_recent=4, n_popular=7)

    seen = set(zip(h["user_idx"].tolist(), h["item_idx"].tolist(), strict=True))
    pairs = list(zip(cand["user_idx"].tolist(), cand["item_idx"].tolist(), strict=True))
    assert not seen & set(pairs), "a seen item became a candidate"
    assert len(pairs) == len(set(pairs)), "duplicate (user, item) candidate"
    assert (cand["item_idx"] >= 0).all()
    assert set(cand["user_idx"]) <= set(users.tolist())
    recent = recent_items(h, 4)
    recent_pairs = set(zip(recent["user_idx"].tolist(), recent["item_idx"].tolist(), strict=True))
    for u, i, s, a in cand[["user_idx", "item_idx", "source", "anchor_idx"]].itertuples(index=False):
        if s == "similar":
            assert (u, a) in recent_pairs and i in nb[a]
        else:
            assert s == "popular" and a == -1
    # every user gets the first n_popular unseen popular items (under either source)
    for u in users.tolist():
        unseen = [i for i in popular.tolist() if (u, i) not in seen][:7]
        assert set(unseen) <= set(cand.loc[cand["user_idx"] == u, "item_idx"].tolist()), u


def test_users_without_history_get_popular_items_only():
    h, nb, popular = small_world()
    cand = build_candidates(np.array([7, 8]), h, nb, popular, n_recent=2, n_popular=3)
    assert sorted(set(cand["user_idx"])) == [7, 8]
    assert (cand["source"] == "popular").all()
    assert (cand["anchor_idx"] == -1).all()
    for u in (7, 8):
        assert sorted(cand.loc[cand["user_idx"] == u, "item_idx"]) == [0, 2, 5]


def test_n_popular_unseen_items_even_when_the_head_was_seen():
    popular = np.arange(12)
    # user 0 saw the 6 most popular items; user 1 saw 2 items outside the head; user 2 nothing.
    h = history([(0, i, i) for i in range(6)] + [(1, 10, 1), (1, 11, 2)])
    cand = build_candidates(np.array([0, 1, 2]), h, NO_NEIGHBORS, popular, n_recent=3, n_popular=3)
    assert sorted(cand.loc[cand["user_idx"] == 0, "item_idx"]) == [6, 7, 8]
    assert sorted(cand.loc[cand["user_idx"] == 1, "item_idx"]) == [0, 1, 2]
    assert sorted(cand.loc[cand["user_idx"] == 2, "item_idx"]) == [0, 1, 2]


def test_user_who_saw_popular_items_scattered_through_the_head():
    popular = np.array([4, 0, 7, 1, 9, 2, 3, 5, 6, 8, 10, 11])
    h = history([(0, 0, 1), (0, 1, 2), (0, 9, 3), (0, 3, 4)])
    cand = build_candidates(np.array([0]), h, NO_NEIGHBORS, popular, n_recent=1, n_popular=4)
    assert sorted(cand["item_idx"]) == sorted([4, 7, 2, 5])


def test_only_requested_users_are_served():
    h, nb, popular = small_world()
    cand = build_candidates(np.array([2]), h, nb, popular, n_recent=2, n_popular=2)
    assert set(cand["user_idx"]) == {2}


def test_n_recent_limits_the_anchors():
    h, nb, popular = small_world()
    cand = build_candidates(np.array([0]), h, nb, popular, n_recent=1, n_popular=0)
    # only the latest item (1) seeds neighbours: 2 and 3; item 4 (neighbour of 0) is gone.
    assert as_rows(cand, 0) == {(2, "similar", 1), (3, "similar", 1)}


# --- rank_candidates -------------------------------------------------------------------------

TITLES = {0: "Toy Story (1995)", 1: "Heat (1995)", 2: "Fargo (1996)"}


def candidates(rows: list[tuple[int, int, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_idx", "item_idx", "source", "anchor_idx"]).astype(
        {"user_idx": np.int64, "item_idx": np.int64, "anchor_idx": np.int64}
    )


def table_scorer(scores: dict[tuple[int, int], float]):
    asked: list[tuple[int, int]] = []

    def score(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        pairs = list(zip(u.tolist(), i.tolist(), strict=True))
        asked.extend(pairs)
        return np.array([scores[p] for p in pairs], dtype=np.float64)

    score.asked = asked  # type: ignore[attr-defined]
    return score


# user 0: input order 7, 3, 5, 1; scores 3 > 5 = 7 > 1 (tie between 5 and 7 -> 5 first)
# user 1: two candidates only
CANDS = candidates(
    [
        (0, 7, "popular", -1),
        (0, 3, "similar", 0),
        (0, 5, "similar", 2),
        (0, 1, "popular", -1),
        (1, 4, "similar", 1),
        (1, 6, "popular", -1),
    ]
)
SCORES = {(0, 7): 0.5, (0, 3): 0.9, (0, 5): 0.5, (0, 1): 0.1, (1, 4): 2.0, (1, 6): 3.0}


def test_rank_sorts_by_score_desc_ties_to_smaller_item():
    out = rank_candidates(CANDS, table_scorer(SCORES), top_k=10, titles=TITLES)
    assert list(out.columns) == ["user_idx", "rank", "item_idx", "score", "source", "reason"]
    u0 = out[out["user_idx"] == 0]
    assert u0["item_idx"].tolist() == [3, 5, 7, 1]
    assert u0["score"].tolist() == [0.9, 0.5, 0.5, 0.1]
    assert out.loc[out["user_idx"] == 1, "item_idx"].tolist() == [6, 4]


def test_rank_cuts_at_top_k_and_ranks_are_one_to_k():
    out = rank_candidates(CANDS, table_scorer(SCORES), top_k=3, titles=TITLES)
    assert out.loc[out["user_idx"] == 0, "item_idx"].tolist() == [3, 5, 7]
    assert out.loc[out["user_idx"] == 0, "rank"].tolist() == [1, 2, 3]
    # user 1 has fewer candidates than top_k: all of them, ranks 1..2
    assert out.loc[out["user_idx"] == 1, "rank"].tolist() == [1, 2]
    for col in ("user_idx", "rank", "item_idx"):
        assert out[col].dtype == np.int32, col
    assert out["score"].dtype == np.float64
    assert not out.duplicated(["user_idx", "rank"]).any()


def test_blocked_items_never_appear_and_are_not_scored():
    scorer = table_scorer(SCORES)
    out = rank_candidates(CANDS, scorer, top_k=2, titles=TITLES, blocked_items=np.array([3, 6]))
    assert not out["item_idx"].isin([3, 6]).any()
    assert out.loc[out["user_idx"] == 0, "item_idx"].tolist() == [5, 7]  # the next best move up
    assert out.loc[out["user_idx"] == 1, "item_idx"].tolist() == [4]
    assert out.loc[out["user_idx"] == 0, "rank"].tolist() == [1, 2]
    assert not {(0, 3), (1, 6)} & set(scorer.asked)


def test_empty_blocked_list_changes_nothing():
    a = rank_candidates(CANDS, table_scorer(SCORES), top_k=3, titles=TITLES)
    b = rank_candidates(CANDS, table_scorer(SCORES), top_k=3, titles=TITLES, blocked_items=np.array([], int))
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise(bad):
    scores = dict(SCORES)
    scores[(1, 4)] = bad
    with pytest.raises(ValueError, match="non-finite"):
        rank_candidates(CANDS, table_scorer(scores), top_k=3, titles=TITLES)


def test_reasons_name_the_anchor_for_similar_and_say_popular_otherwise():
    out = rank_candidates(CANDS, table_scorer(SCORES), top_k=10, titles=TITLES)
    reason = {(int(u), int(i)): r for u, i, r in zip(out["user_idx"], out["item_idx"], out["reason"], strict=True)}
    assert reason[(0, 3)] == "because you rated Toy Story (1995)"
    assert reason[(0, 5)] == "because you rated Fargo (1996)"
    assert reason[(1, 4)] == "because you rated Heat (1995)"
    assert reason[(0, 7)] == reason[(0, 1)] == reason[(1, 6)] == "popular with other viewers"
    assert out.set_index(["user_idx", "item_idx"])["source"].to_dict()[(0, 3)] == "similar"


def test_reason_text_fallbacks():
    assert reason_text("similar", "Heat (1995)") == "because you rated Heat (1995)"
    assert reason_text("popular", None) == "popular with other viewers"
    assert reason_text("similar", None) == "recommended for you"  # anchor without a known title
    assert reason_text("similar", "") == "recommended for you"
    assert reason_text("two_tower", None) == "recommended for you"


def test_candidates_then_ranking_end_to_end_known_answer():
    h, nb, popular = small_world()
    cand = build_candidates(np.array([0, 1]), h, nb, popular, n_recent=2, n_popular=2)
    item_score = np.array([0.0, 0.0, 0.3, 0.8, 0.8, 0.5, 0, 0, 0, 0, 0, 0])
    out = rank_candidates(cand, lambda u, i: item_score[i], top_k=3, titles=TITLES)
    got = [tuple(r) for r in out[["user_idx", "rank", "item_idx", "reason"]].itertuples(index=False)]
    assert got == [
        (0, 1, 3, "because you rated Heat (1995)"),
        (0, 2, 4, "because you rated Toy Story (1995)"),
        (0, 3, 5, "popular with other viewers"),
        (1, 1, 5, "popular with other viewers"),
        (1, 2, 2, "popular with other viewers"),
    ]


def test_empty_history_serves_popular_items_to_everyone():
    cand = build_candidates(np.array([0, 1]), history([]), NO_NEIGHBORS, np.arange(12), n_recent=2, n_popular=2)
    assert as_rows(cand, 0) == as_rows(cand, 1) == {(0, "popular", -1), (1, "popular", -1)}


def test_popular_unseen_matches_a_per_user_reference_including_heavy_users():
    """Bounded-memory popular candidates equal the obvious per-user walk down the popularity order."""
    from recsys.retrieval.candidates import popular_unseen

    rng = np.random.default_rng(3)
    n_items, n_pop = 60, 5
    popular = rng.permutation(n_items)
    rows = []
    for u in range(40):
        k = 55 if u % 7 == 0 else rng.integers(0, 12)  # every 7th user has seen almost everything
        rows += [(u, i) for i in rng.choice(n_items, size=k, replace=False)]
    history = pd.DataFrame(rows, columns=["user_idx", "item_idx"])
    users = np.arange(45)  # users 40..44 have no history
    got = popular_unseen(users, history, popular, n_pop)
    for u in users:
        seen = set(history.loc[history["user_idx"] == u, "item_idx"])
        expected = [i for i in popular if i not in seen][:n_pop]
        assert got.loc[got["user_idx"] == u, "item_idx"].tolist() == expected, u
    assert (got["source"] == "popular").all() and (got["anchor_idx"] == -1).all()


def test_profile_candidates_best_unseen_items_in_the_catalogue_and_their_priority():
    scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])
    history = pd.DataFrame({"user_idx": [0], "item_idx": [0], "ts": [1]})
    catalogue = np.array([True, True, True, False, True])  # item 3 is not offered
    prof = profile_candidates(np.array([0, 1]), lambda u: scores[u], history, 2, catalogue=catalogue, block=1)
    assert prof[["user_idx", "item_idx", "order"]].values.tolist() == [[0, 1, 0], [0, 4, 1], [1, 4, 0], [1, 2, 1]]
    assert set(prof["source"]) == {"profile"} and (prof["anchor_idx"] == -1).all()
    # Merged with the other sources: a popular item the profile also proposes keeps the profile reason.
    cand = build_candidates(
        np.array([0, 1]), history, np.full((5, 1), -1), np.array([4, 2]), n_recent=1, n_popular=2, extra=prof
    )
    got = {(u, i): s for u, i, s in cand[["user_idx", "item_idx", "source"]].itertuples(index=False)}
    assert got == {(0, 1): "profile", (0, 4): "profile", (0, 2): "popular", (1, 4): "profile", (1, 2): "profile"}
    assert reason_text("profile", None) == "matches your profile"
