"""Candidate sources (recsys.retrieval.sources), their merge (candidates) and ranking (rank, reasons): known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from recsys.ranking.rank import rank_block, top_by_score
from recsys.ranking.reasons import Explainer
from recsys.retrieval.candidates import gather, source_names
from recsys.retrieval.source_inputs import genre_rankings, recent_lists, segment_rankings, segments, top_genres
from recsys.retrieval.sources import SOURCES, Quotas, SourceData, embedding, genre, new, popular, segment, similar
from recsys.retrieval.user_items import UserItems

N_ITEMS = 12


def data(
    seen: list[tuple[int, int, int]], n_users: int = 3, quotas: Quotas | None = None, **extra: object
) -> SourceData:
    """Source data over (user, item, ts) history rows."""
    h = np.array(seen, dtype=np.int64).reshape(-1, 3)
    nb = np.full((N_ITEMS, 3), -1, dtype=np.int64)
    nb[1] = [2, 3, 0]
    nb[0] = [3, 4, -1]
    nb[5] = [6, -1, -1]
    return SourceData(
        n_items=N_ITEMS,
        seen=UserItems.from_pairs(h[:, 0], h[:, 1], n_users),
        recent=recent_lists(h[:, 0], h[:, 1], h[:, 2], n_users, 2),
        neighbors=nb,
        popular=np.array([2, 5, 0, 6, 7, 8, 9, 10, 11, 1, 3, 4]),
        quotas=quotas or Quotas(),
        **extra,  # type: ignore[arg-type]
    )


def pairs(p) -> list[tuple[int, int, int]]:
    """(row, item, detail) of proposals, in their order."""
    return list(zip(p.row.tolist(), p.item.tolist(), p.detail.tolist(), strict=True))


# --- user lists ------------------------------------------------------------------------------


def test_user_items_rows_contains_and_lengths():
    ui = UserItems.from_pairs(np.array([2, 0, 0, 2]), np.array([5, 3, 1, 4]), 4)
    assert ui.lengths(np.array([0, 1, 2, 3, 9])).tolist() == [2, 0, 2, 0, 0]
    row, idx, pos = ui.rows(np.array([2, 0]))
    assert list(zip(row.tolist(), idx.tolist(), pos.tolist(), strict=True)) == [
        (0, 4, 0),
        (0, 5, 1),
        (1, 1, 0),
        (1, 3, 1),
    ]
    got = ui.contains(np.array([0, 0, 2, 1, 3]), np.array([1, 2, 5, 1, 0]), 10)
    assert got.tolist() == [True, False, True, False, False]
    with pytest.raises(ValueError, match="user indices"):
        UserItems.from_pairs(np.array([5]), np.array([0]), 3)


def test_recent_lists_latest_first_ties_by_item_index():
    r = recent_lists(np.array([0, 0, 0, 0, 1]), np.array([5, 2, 9, 1, 4]), np.array([10, 30, 30, 20, 1]), 2, 3)
    # user 0: ts 30 twice (item 2 before 9), then ts 20; item 5 (ts 10) is cut by n_recent=3.
    assert r.rows(np.array([0, 1]))[1].tolist() == [2, 9, 1, 4]


# --- each source -----------------------------------------------------------------------------


def test_similar_latest_anchor_wins_and_seen_items_never_appear():
    d = data([(0, 0, 100), (0, 1, 200)])
    # user 0's anchors: 1 (latest) then 0; item 0 (a neighbour of 1) is seen; 3 is a neighbour of both.
    assert pairs(similar(d, np.array([0, 1]))) == [(0, 2, 1), (0, 3, 1), (0, 4, 0)]
    assert len(similar(dataclasses.replace(d, quotas=Quotas(similar=2)), np.array([0]))) == 2


def test_popular_skips_seen_items_even_deep_in_the_list():
    seen = [(0, i, i) for i in (2, 5, 0, 6, 7, 8, 9, 10)]  # user 0 saw the first 8 popular items
    d = data(seen, quotas=Quotas(popular=3))
    got = popular(d, np.array([0, 1]))
    assert sorted(pairs(got)) == [(0, 1, -1), (0, 3, -1), (0, 11, -1), (1, 0, -1), (1, 2, -1), (1, 5, -1)]
    assert got.item[got.row == 0].tolist() == [11, 1, 3]  # in popularity order


def test_popular_matches_a_per_user_reference_including_heavy_users():
    rng = np.random.default_rng(0)
    rows = [(u, int(i), 0) for u in range(30) for i in rng.choice(N_ITEMS, rng.integers(0, N_ITEMS), replace=False)]
    d = data(rows, n_users=30, quotas=Quotas(popular=4))
    got = popular(d, np.arange(30))
    for u in range(30):
        seen = {i for uu, i, _ in rows if uu == u}
        want = [int(i) for i in d.popular if int(i) not in seen][:4]
        assert got.item[got.row == u].tolist() == want


def test_genre_top_items_of_the_most_watched_genres_share_the_quota():
    counts = np.array([[5, 0, 9], [0, 0, 0]], dtype=np.float32)  # user 0: genre 2 then genre 0; user 1: none
    g = top_genres(counts, 2)
    assert g.rows(np.array([0, 1]))[1].tolist() == [2, 0]
    lists = [np.array([4, 3]), np.array([7]), np.array([3, 8, 9])]
    d = data([(0, 8, 1)], n_users=2, quotas=Quotas(genre=3), user_genres=g, genre_items=lists)
    got = genre(d, np.array([0, 1]))
    # genre 2 (most watched) gets 2 of the 3 slots: 3 and 9 (8 is seen); genre 0 gets 1: its top item 4.
    assert sorted(pairs(got)) == [(0, 3, 2), (0, 4, 0), (0, 9, 2)]
    assert 1 not in got.row.tolist()


def test_genre_rankings_by_popularity_and_by_mean_rating():
    g = np.array([[1, 0], [1, 1], [0, 1], [1, 0]])
    n = np.array([10, 50, 5, 30])
    mean = np.array([4.5, 3.0, 5.0, 4.0])
    ok = np.array([True, True, True, True])
    by_pop = genre_rankings(g, n, mean, ok, rank_by="popularity", min_ratings=0)
    assert [x.tolist() for x in by_pop] == [[1, 3, 0], [1, 2]]
    by_mean = genre_rankings(g, n, mean, ok, rank_by="mean_rating", min_ratings=8)
    assert [x.tolist() for x in by_mean] == [[0, 3, 1], [1]]  # item 2 has too few ratings
    with pytest.raises(ValueError, match="rank_by"):
        genre_rankings(g, n, mean, ok, rank_by="age", min_ratings=0)


def test_segments_by_country_else_gender_and_age():
    seg, names = segments([["country=US", "gender=F"], ["country=FR"], [], ["country=US"]], 5)
    assert names == ["country=FR", "country=US"] and seg.tolist() == [1, 0, -1, 1, -1]
    seg, names = segments([["gender=F", "age=25-34", "occupation=x"], ["gender=M"], ["age=25-34", "gender=F"]], 3)
    assert names == ["age=25-34, gender=F"] and seg.tolist() == [0, -1, 0]  # user 1 has no age: no segment


def test_segment_most_popular_in_the_users_segment():
    user_segment = np.array([0, 0, 1, 1, 0])
    lists = segment_rankings(
        user_segment, np.array([0, 1, 1, 2, 3, 3]), np.array([4, 4, 7, 7, 8, 7]), np.ones(N_ITEMS, bool), 2, 10
    )
    assert [x.tolist() for x in lists] == [[4, 7], [7, 8]]
    d = data([(0, 4, 1)], n_users=5, quotas=Quotas(segment=5), user_segment=user_segment, segment_items=lists)
    assert sorted(pairs(segment(d, np.array([0, 4, 2])))) == [(0, 7, 0), (1, 4, 0), (1, 7, 0), (2, 7, 1), (2, 8, 1)]


def test_embedding_fetches_past_seen_items():
    def retrieve(users: np.ndarray, k: int) -> np.ndarray:
        return np.tile(np.arange(k), (users.size, 1))  # items 0, 1, 2, ... for everyone

    d = data([(0, 0, 1), (0, 1, 2)], quotas=Quotas(embedding=2), retrieve=retrieve)
    assert pairs(embedding(d, np.array([0, 1]))) == [(0, 2, -1), (0, 3, -1), (1, 0, -1), (1, 1, -1)]


def test_embedding_fetch_follows_each_users_history_not_the_blocks_heaviest():
    asked: list[tuple[list[int], int]] = []

    def retrieve(users: np.ndarray, k: int) -> np.ndarray:
        asked.append((users.tolist(), k))
        return np.tile(np.arange(k), (users.size, 1))

    heavy = [(0, i, i + 1) for i in range(6)]  # user 0 rated items 0..5; user 1 nothing
    d = data(heavy, quotas=Quotas(embedding=2), retrieve=retrieve)
    assert pairs(embedding(d, np.array([0, 1]))) == [(0, 6, -1), (0, 7, -1), (1, 0, -1), (1, 1, -1)]
    assert sorted(asked) == [([0], 8), ([1], 2)]  # 2 + 6 rounded up to 8; 2 for the light user


def test_new_items_reach_users_by_their_scores():
    new_items = np.array([10, 11])
    d = data(
        [],
        quotas=Quotas(new=1),
        new_items=new_items,
        new_scores=lambda users: np.array([[0.1, 0.9]] * users.size) * (1 - 2 * (users[:, None] == 1)),
    )
    assert pairs(new(d, np.array([0, 1]))) == [(0, 11, -1), (1, 10, -1)]


# --- merge, ranking, reasons -----------------------------------------------------------------


def test_gather_keeps_every_source_and_never_a_seen_item():
    d = data([(0, 0, 100), (0, 1, 200)], quotas=Quotas(popular=3))
    cand = gather(d, np.array([0, 1]))
    got = {
        (int(u), int(i)): name
        for u, i, name in zip(cand.user_idx, cand.item_idx, source_names(cand.sources), strict=True)
    }
    assert got[(0, 2)] == "similar+popular" and got[(0, 3)] == "similar" and got[(0, 5)] == "popular"
    assert (0, 0) not in got and (0, 1) not in got
    assert {i for u, i in got if u == 1} == {2, 5, 0}  # no history: popular only
    assert cand.proposed["similar"] == 3 and cand.proposed["popular"] == 6
    assert cand.primary[(cand.user_idx == 0) & (cand.item_idx == 2)].tolist() == [SOURCES.index("similar")]


def test_no_seen_item_is_ever_a_candidate_random():
    rng = np.random.default_rng(1)
    rows = [(u, int(i), int(rng.integers(100))) for u in range(40) for i in rng.choice(N_ITEMS, 5, replace=False)]
    d = data(rows, n_users=40, retrieve=lambda users, k: np.tile(np.arange(k), (users.size, 1)))
    cand = gather(d, np.arange(40))
    seen = {(u, i) for u, i, _ in rows}
    assert not seen & set(zip(cand.user_idx.tolist(), cand.item_idx.tolist(), strict=True))
    assert len(set(zip(cand.user_idx.tolist(), cand.item_idx.tolist(), strict=True))) == len(cand)


def test_rank_block_scores_explains_and_keeps_top_k():
    d = data([(0, 0, 100), (0, 1, 200)], quotas=Quotas(popular=3))
    cand = gather(d, np.array([0]))
    explainer = Explainer(titles={1: "Heat", 0: "Alien"})

    def finish(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        return top_by_score(frame, 2), {"blocked_item": 0}

    recs, dropped = rank_block(cand, lambda u, i: -i.astype(float), finish, explainer)
    assert recs["item_idx"].tolist() == [2, 3] and recs["rank"].tolist() == [1, 2]
    assert recs["reason"].tolist() == ["because you rated Heat (also: popular)", "because you rated Heat"]
    assert recs["source"].tolist() == ["similar+popular", "similar"] and dropped == {"blocked_item": 0}
    with pytest.raises(ValueError, match="non-finite"):
        rank_block(cand, lambda u, i: np.full(u.size, np.nan), finish, explainer)


def test_reasons_name_each_source_and_fall_back_without_a_detail():
    e = Explainer(titles={3: "Heat"}, genres=["Comedy"], segments=["country=US"])
    code = SOURCES.index
    got = e.reasons(
        np.array([code("similar"), code("genre"), code("segment"), code("popular"), code("similar")]),
        np.array([3, 0, 0, -1, 99]),
        np.array([1, 2 | 32, 4, 32, 1]),
    )
    assert got == [
        "because you rated Heat",
        "top in Comedy, a genre you watch often (also: popular)",
        "popular with viewers like you (country=US)",
        "popular with other viewers",
        "recommended for you",
    ]


def test_quotas_scale_and_total():
    q = Quotas(similar=100, genre=30, segment=0, embedding=50, new=10, popular=50)
    assert q.total == 240
    assert q.scaled(0.5) == Quotas(similar=50, genre=15, segment=0, embedding=25, new=5, popular=25)
