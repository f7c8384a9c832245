"""The recommend stage's serving path without Spark: tables -> source data -> blocks -> policy -> K per user."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.ranking.policy import Policy, apply_policy, item_rules
from recsys.ranking.reasons import Explainer
from recsys.stages.recommend import dense_retrieve, serve_blocks
from recsys.stages.report import serving_charts
from recsys.stages.serving_inputs import ServingTables, source_data

GENRES = ["Action", "Comedy", "Drama"]
DEMOGRAPHIC = ["age=18-24", "age=25-34", "gender=F", "gender=M"]


def tables(n_users: int = 40, n_items: int = 60, seed: int = 0) -> ServingTables:
    """A small seeded world: users 0..n-1 (the last 5 without ratings), items with genres."""
    rng = np.random.default_rng(seed)
    genres = [[GENRES[j] for j in sorted(set(rng.integers(0, 3, 2).tolist()))] for _ in range(n_items)]
    items = pd.DataFrame(
        {
            "item_idx": np.arange(n_items, dtype=np.int32),
            "item_id": [f"i{j}" for j in range(n_items)],
            "title": [f"Movie {j}" for j in range(n_items)],
            "year": np.full(n_items, 1999, np.int32),
            "genres": genres,
        }
    )
    rows = []
    for u in range(n_users - 5):
        for i in rng.choice(n_items - 5, int(rng.integers(3, 25)), replace=False):  # the last 5 items: new
            rows.append((u, int(i), float(rng.integers(1, 6)), int(rng.integers(0, 10**6)), "train"))
    ratings = pd.DataFrame(rows, columns=["user_idx", "item_idx", "rating", "ts", "split"])
    multi = np.array([[float(g in gs) for g in GENRES] for gs in genres], dtype=np.float32)
    n_ratings = np.bincount(ratings["item_idx"], minlength=n_items)
    item_features = pd.DataFrame(
        {
            "item_idx": np.arange(n_items, dtype=np.int32),
            "genres": list(multi),
            "n_ratings": n_ratings,
            "mean_rating": ratings.groupby("item_idx")["rating"].mean().reindex(range(n_items)).to_numpy(),
            "tags": [[] for _ in range(n_items)],
        }
    )
    counts = np.zeros((n_users, 3), dtype=np.float32)
    np.add.at(counts, ratings["user_idx"].to_numpy(), multi[ratings["item_idx"].to_numpy()])
    demo = np.zeros((n_users, 4), dtype=np.float32)
    demo[np.arange(n_users), rng.integers(0, 2, n_users)] = 1
    demo[np.arange(n_users), 2 + rng.integers(0, 2, n_users)] = 1
    user_features = pd.DataFrame(
        {"user_idx": np.arange(n_users), "demographics": list(demo), "genre_counts": list(counts)}
    )
    vocab = pd.DataFrame(
        {
            "feature": ["genre"] * 3 + ["demographic"] * 4,
            "index": [0, 1, 2, 0, 1, 2, 3],
            "value": GENRES + DEMOGRAPHIC,
        }
    )
    users = pd.DataFrame({"user_idx": np.arange(n_users), "user_id": [f"u{u}" for u in range(n_users)]})
    similar = pd.DataFrame(
        {
            "item_idx": np.repeat(np.arange(n_items), 3),
            "rank": np.tile([1, 2, 3], n_items),
            "neighbor_idx": (np.repeat(np.arange(n_items), 3) + np.tile([1, 2, 3], n_items)) % n_items,
            "distance": 1.0,
            "source": "cf",
        }
    )
    return ServingTables(ratings, users, items, similar, item_features, user_features, vocab)


class DotModel:
    """Scores by a fixed seeded matrix (a stand-in for a fitted model: predict agrees with score_users)."""

    def __init__(self, n_users: int, n_items: int, seed: int = 1) -> None:
        self.s = np.random.default_rng(seed).normal(size=(n_users, n_items))

    def predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.s[u, i]

    def score_users(self, u: np.ndarray) -> np.ndarray:
        return self.s[u]


def serve(t: ServingTables, policy: Policy, settings, top_k: int = 5, block: int = 7) -> pd.DataFrame:
    from recsys.stages.serving_inputs import neighbors_with_fallback

    n_users, n_items = len(t.users), len(t.items)
    rules = item_rules(policy, t.items, t.item_features, n_items=n_items)
    genres = t.item_genre_matrix(n_items)
    model = DotModel(n_users, n_items)
    data = source_data(
        t,
        settings,
        n_users=n_users,
        n_items=n_items,
        neighbors=neighbors_with_fallback(t.similar, n_items, 3, "cf", "two_tower"),
        allowed=rules.allowed,
        history=t.ratings[["user_idx", "item_idx", "ts"]],
        retrieve=dense_retrieve(model.score_users, rules.allowed),
    )
    out = serve_blocks(
        np.arange(n_users),
        data,
        model,
        lambda f: apply_policy(f, rules, top_k=top_k, item_genres=genres),
        Explainer(titles=dict(enumerate(t.items["title"])), genres=GENRES),
        block=block,
    )
    return out.recommendations


@pytest.fixture(scope="module")
def settings():
    from recsys.config import Settings

    return Settings(n_popular=20, n_recent=3)


def test_every_user_gets_k_with_and_without_history(settings):
    t = tables()
    recs = serve(t, Policy(), settings)
    per_user = recs.groupby("user_idx").size()
    assert len(per_user) == 40 and (per_user == 5).all()
    seen = set(zip(t.ratings["user_idx"], t.ratings["item_idx"], strict=True))
    assert not seen & set(zip(recs["user_idx"], recs["item_idx"], strict=True))
    # users without history: no source that needs a history (similar, genre) proposes to them
    cold = recs[recs["user_idx"] >= 35]
    assert set("+".join(cold["source"]).split("+")) <= {"popular", "segment", "embedding"}
    assert not cold["reason"].str.startswith("because you rated").any()
    warm = recs[recs["user_idx"] < 35]
    assert warm["source"].str.contains("similar|genre|embedding").any()


def test_random_policies_never_publish_a_blocked_item_or_genre_and_keep_the_cap(settings):
    rng = np.random.default_rng(7)
    t = tables(seed=3)
    checked = 0
    for _ in range(30):
        policy = Policy(
            blocked_items=frozenset(f"i{j}" for j in rng.choice(60, int(rng.integers(0, 15)), replace=False)),
            blocked_genres=frozenset(rng.choice(["action", "drama"], int(rng.integers(0, 2)), replace=False)),
            min_item_ratings=int(rng.integers(0, 3)),
            genre_cap=int(rng.integers(0, 7)),
            mmr_weight=float(rng.choice([0.0, 0.3])),
        )
        recs = serve(t, policy, settings)
        ids = t.items["item_id"].to_numpy()[recs["item_idx"]]
        assert not set(ids) & policy.blocked_items
        genres = t.items["genres"].to_numpy()[recs["item_idx"]]
        assert not {g.lower() for gs in genres for g in gs} & policy.blocked_genres
        if policy.genre_cap:
            per = recs.assign(g=list(genres)).explode("g").groupby(["user_idx", "g"]).size()
            assert per.max() <= policy.genre_cap
        assert (recs.groupby("user_idx")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1)))).all()
        rules = item_rules(policy, t.items, t.item_features, n_items=60)
        # Every user gets K whenever K is feasible: enough allowed items, and a cap that K items of at most
        # 2 genres each can meet (cap x 3 genres >= 2 K); otherwise the stage refuses (check_every_user_served).
        feasible = not policy.genre_cap or policy.genre_cap * len(GENRES) >= 2 * 5
        if rules.allowed.sum() >= 30 and feasible:
            assert (recs.groupby("user_idx").size() == 5).all() and recs["user_idx"].nunique() == 40, policy
            checked += 1
    assert checked >= 5  # the property was exercised, not skipped


def test_serving_charts_plot_sources_policy_and_the_experiment():
    metrics = {
        "published_similar": 10.0,
        "published_popular": 4.0,
        "candidates_similar": 30.0,
        "policy_dropped_blocked_item": 2.0,
        "retrieval_50_recall_at_10": 0.8,
        "retrieval_100_recall_at_10": 0.9,
        "retrieval_served_recall_at_10": 0.9,
        "retrieval_50_ndcg_at_10": 0.2,
        "retrieval_full_ndcg_at_10": 0.25,
        "retrieval_50_seconds": 0.5,
    }
    charts = serving_charts(metrics, 10)
    recall = next(v for k, v in charts.items() if k.startswith("Retrieval size: recall"))
    assert recall == {"50": 0.8, "100": 0.9, "served": 0.9}
    ndcg = next(v for k, v in charts.items() if "NDCG" in k)
    assert ndcg == {"50": 0.2, "full": 0.25}
    assert any(v == {"similar": 10.0, "popular": 4.0} for v in charts.values())
    assert any(v == {"blocked_item": 2.0} for v in charts.values())


def test_a_policy_that_leaves_users_short_of_k_stops_the_stage_with_the_rules_named():
    from collections import Counter

    from recsys.stages.recommend import check_every_user_served

    check_every_user_served({"users_short_of_k": 0.0, "candidates_per_user": 9.0}, Counter(), 5)
    with pytest.raises(ValueError, match=r"3 users have fewer than top_k=5 .*genre_cap 12"):
        check_every_user_served(
            {"users_short_of_k": 3.0, "candidates_per_user": 9.0}, Counter({"genre_cap": 12, "cut": 4}), 5
        )
