"""The synthetic generator: deterministic, and with the structure it claims to plant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.synthetic import GENRES, generate
from schemas import table

KW = dict(n_users=200, n_items=150, n_groups=4, mean_ratings_per_user=30, min_ratings_per_user=10)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = generate(**KW, seed=1), generate(**KW, seed=1), generate(**KW, seed=2)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.users, b.users)
    assert not a.ratings.equals(c.ratings)


def test_tables_match_the_staged_schemas() -> None:
    d = generate(**KW, seed=3)
    for name, frame in (("stg_ratings", d.ratings), ("stg_items", d.items), ("stg_users", d.users)):
        assert list(frame.columns) == table(name).names
    assert d.ratings["rating"].between(1, 5).all()
    assert not d.ratings.duplicated(["user_id", "item_id"]).any()
    assert (d.ratings.groupby("user_id").size() >= 10).all()
    assert set(g for gs in d.items["genres"] for g in gs) <= set(GENRES)


def test_planted_tastes_and_popularity_skew() -> None:
    d = generate(**{**KW, "n_users": 600}, seed=4)
    counts = d.ratings.groupby("item_id").size().sort_values(ascending=False)
    top_share = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top_share > 0.25  # the top 10% of items get well over 10% of ratings
    # Users rate items of their group's loved genres higher than items of its disliked genres.
    items = d.items.set_index("item_id")["genres"]
    r = d.ratings.assign(group=d.user_group[d.ratings["user_id"].astype(int) - 1])
    aff = np.array([np.mean([d.affinity[g, GENRES.index(x)] for x in items[i]]) for i, g in zip(r.item_id, r.group)])
    assert r.loc[aff > 0.5, "rating"].mean() > r.loc[aff < -0.5, "rating"].mean() + 1.0
