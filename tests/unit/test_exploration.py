"""New items reach someone: reserved last slots (recsys.ranking.exploration)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.ranking.diversity import genre_flags
from recsys.ranking.exploration import reserve_new_items, take_reserved_slots


def test_each_new_item_goes_to_its_best_users_and_a_user_keeps_the_best_scored():
    # scores[u, j]: user u's score of new item j (items 10, 11); blocks of users must not matter
    table = np.array([[0.9, 0.1], [0.8, 0.95], [0.1, 0.9], [0.5, 0.2]])
    new = np.array([10, 11])
    reserved = reserve_new_items(new, np.arange(4), lambda u: table[u], reach=2, n_users=6)
    # item 10 -> users 0, 1; item 11 -> users 1, 2; user 1 keeps item 11 (0.95 > 0.8)
    assert reserved.tolist() == [10, 11, 11, -1, -1, -1]
    assert reserve_new_items(new, np.arange(4), lambda u: table[u], reach=0, n_users=6).tolist() == [-1] * 6


def test_reservation_is_the_same_whatever_the_user_blocks(monkeypatch):
    import recsys.ranking.exploration as exploration

    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 7))
    new = np.arange(100, 107)
    whole = reserve_new_items(new, np.arange(50), lambda u: table[u], reach=5, n_users=50)
    monkeypatch.setattr(exploration, "_BLOCK_SCORES", 7 * 3)  # blocks of 3 users
    assert (reserve_new_items(new, np.arange(50), lambda u: table[u], reach=5, n_users=50) == whole).all()
    # every new item reached min(reach, its winners) users, and at most one item per user
    assert set(whole[whole >= 0]) <= set(new) and (whole >= 0).sum() <= 35


def _recs(lists: dict[int, list[int]]) -> pd.DataFrame:
    rows = [
        (u, r + 1, i, 1.0 - r / 10, "popular", "popular with other viewers")
        for u, items in lists.items()
        for r, i in enumerate(items)
    ]
    return pd.DataFrame(rows, columns=["user_idx", "rank", "item_idx", "score", "source", "reason"])


def test_the_reserved_item_takes_the_last_slot_unless_listed_seen_or_over_the_cap():
    recs = _recs({0: [1, 2, 3], 1: [1, 2, 3], 2: [1, 9, 3], 3: [1, 2], 4: [1, 2, 3]})
    reserved = np.array([9, 9, 9, 9, 9, -1])
    seen = {(1, 9)}
    out, placed = take_reserved_slots(
        recs,
        reserved,
        top_k=3,
        seen=lambda u, i: np.array([(a, b) in seen for a, b in zip(u, i, strict=True)]),
        score=lambda u, i: np.full(len(u), 0.5),
        reason="new in the catalogue, close to your taste",
    )
    lists = out.groupby("user_idx")["item_idx"].apply(list).to_dict()
    assert lists[0] == [1, 2, 9]  # rank 3 replaced
    assert lists[1] == [1, 2, 3]  # rated it
    assert lists[2] == [1, 9, 3]  # already listed
    assert lists[3] == [1, 2, 9]  # short list grows
    assert lists[4] == [1, 2, 9] and placed == 3
    row = out[(out["user_idx"] == 0) & (out["item_idx"] == 9)].iloc[0]
    assert row["rank"] == 3 and row["source"] == "new" and row["reason"].startswith("new in the catalogue")
    assert (out.groupby("user_idx")["rank"].apply(list).map(lambda r: r == list(range(1, len(r) + 1)))).all()


def test_the_genre_cap_is_kept():
    genres = np.zeros((10, 2))
    genres[[1, 2, 9], 0] = 1  # items 1, 2 and the new item 9 share genre 0
    genres[3, 1] = 1
    recs = _recs({0: [1, 2, 3], 1: [1, 3, 4]})
    out, placed = take_reserved_slots(
        recs,
        np.array([9, 9]),
        top_k=3,
        seen=lambda u, i: np.zeros(len(u), bool),
        score=lambda u, i: np.zeros(len(u)),
        reason="new",
        genre_flags=genre_flags(genres),
        genre_cap=2,
    )
    lists = out.groupby("user_idx")["item_idx"].apply(list).to_dict()
    assert lists[0] == [1, 2, 3]  # 9 would make three of genre 0 (3 is replaced, 1 and 2 stay)
    assert lists[1] == [1, 3, 9] and placed == 1
