"""The whole candidate + rank stage at a large shape (ML-20M's: 138,000 users x 27,000 items), time and peak memory.

Builds seeded synthetic inputs of the shape (a Zipf-popular history of about
``ratings_per_user`` items per user, genres, countries, a factorisation model with
``d``-dimensional vectors, neighbours from the index, new items) and serves every user
through the recommend stage's own code (:func:`recsys.stages.recommend.serve_blocks`:
every source, the faiss index, the policy, the reasons), one block of users at a time.

Run it alone in a fresh process so ``ru_maxrss`` is this stage's peak
(``bench/retrieval.py`` does): ``python -m bench.harness.serving_scale --users 138000 --items 27000``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FULL_SHAPE = (138_000, 27_000)
"""ML-20M's users x items."""

QUICK_SHAPE = (10_000, 3_000)
"""A shape ``--quick`` runs in seconds."""


def _history(n_users: int, n_items: int, per_user: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (user, item) pairs, one per pair, item popularity Zipf-like, user activity log-normal."""
    counts = np.minimum(np.maximum(rng.lognormal(np.log(per_user) - 0.5, 1.0, n_users).astype(np.int64), 5), n_items)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.9
    p /= p.sum()
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = rng.choice(n_items, size=users.size, p=p)
    keys = np.unique(users * n_items + items)
    return keys // n_items, keys % n_items


def run(n_users: int, n_items: int, *, d: int = 64, per_user: int = 145, block: int = 4096, seed: int = 0) -> dict:
    """Serve every user of a synthetic shape; returns seconds (inputs excluded) and the process's peak RSS."""
    from scipy import sparse

    from recsys.config import RetrievalConfig
    from recsys.models.cf import CFModel
    from recsys.models.implicit_cf import ImplicitCFParams
    from recsys.ranking.policy import Policy, apply_policy
    from recsys.ranking.reasons import Explainer
    from recsys.retrieval.choice import build_index
    from recsys.retrieval.source_inputs import genre_rankings, recent_lists, segment_rankings, top_genres
    from recsys.retrieval.sources import Quotas, SourceData
    from recsys.retrieval.user_items import UserItems
    from recsys.stages.recommend import index_retrieve, new_item_scores, serve_blocks

    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    u, i = _history(n_users, n_items, per_user, rng)
    n_new = max(1, n_items // 50)
    rated = n_items - n_new  # the last items have no ratings: the new items
    i = np.where(i >= rated, i % rated, i)
    keys = np.unique(u * n_items + i)
    u, i = keys // n_items, keys % n_items
    ts = rng.integers(0, 10**9, u.size)
    n_genres, n_countries = 20, 100
    item_genres = np.zeros((n_items, n_genres), dtype=np.float32)
    item_genres[np.arange(n_items), rng.integers(0, n_genres, n_items)] = 1
    item_genres[np.arange(n_items), rng.integers(0, n_genres, n_items)] = 1
    rated_pairs = sparse.csr_matrix((np.ones(u.size, np.float32), (u, i)), shape=(n_users, n_items))
    genre_counts = np.asarray((rated_pairs @ sparse.csr_matrix(item_genres)).todense())
    n_ratings = np.bincount(i, minlength=n_items).astype(np.float64)
    eligible = n_ratings > 0
    user_segment = rng.integers(0, n_countries, n_users)
    model = CFModel(
        x=rng.normal(0, 0.3, (n_items, d)).astype(np.float32),
        w=rng.normal(0, 0.3, (n_users, d)).astype(np.float32),
        b=np.zeros(n_users, np.float32),
        mu=np.zeros(n_items, np.float32),
        params=ImplicitCFParams(loss="softmax"),
    )
    settings = RetrievalConfig()
    vectors = model.retrieval_vectors()
    item_index, _ = build_index(model.x, settings, metric="l2", seed=seed)
    neighbors, _ = item_index.query(model.x, 10, exclude=np.arange(n_items))
    retrieve, index_info = index_retrieve(vectors, np.arange(n_items), settings, seed)
    new_items = np.arange(rated, n_items, dtype=np.int64)
    data = SourceData(
        n_items=n_items,
        seen=UserItems.from_pairs(u, i, n_users),
        recent=recent_lists(u, i, ts, n_users, 10),
        neighbors=neighbors,
        popular=np.lexsort((np.arange(n_items), -n_ratings)).astype(np.int64),
        user_genres=top_genres(genre_counts, 3),
        genre_items=genre_rankings(
            item_genres, n_ratings, np.full(n_items, 3.5), eligible, rank_by="popularity", min_ratings=0
        ),
        user_segment=user_segment,
        segment_items=segment_rankings(user_segment, u, i, eligible, n_countries, 300),
        retrieve=retrieve,
        new_items=new_items,
        new_scores=new_item_scores(vectors, new_items),
        quotas=Quotas(),
    )
    del rated_pairs, genre_counts
    inputs_s = time.monotonic() - t0
    from recsys.ranking.policy import item_rules

    items = _items_frame(n_items, item_genres)
    stats = _stats_frame(n_items, n_ratings)
    rules = item_rules(Policy(), items, stats, n_items=n_items)

    def finish(frame: Any) -> Any:
        return apply_policy(frame, rules, top_k=10)

    from recsys.ranking.exploration import reserve_new_items, take_reserved_slots
    from recsys.ranking.reasons import TEMPLATES

    t1 = time.monotonic()
    reserved = reserve_new_items(new_items, np.arange(n_users), new_item_scores(vectors, new_items), 20, n_users)

    def reserve(recs: Any, scorer: Any) -> Any:
        return take_reserved_slots(
            recs,
            reserved,
            top_k=10,
            seen=lambda uu, ii: data.seen.contains(uu, ii, n_items),
            score=scorer.predict,
            reason=TEMPLATES["new"],
        )

    explainer = Explainer(titles={j: f"item {j}" for j in range(n_items)}, genres=[f"g{j}" for j in range(n_genres)])
    served = serve_blocks(
        np.arange(n_users), data, model, finish, explainer, block=block, label="bench", reserve=reserve
    )
    seconds = time.monotonic() - t1
    recs = served.recommendations
    per_user = recs.groupby("user_idx").size()
    return {
        "candidates_s": seconds,
        "candidates_inputs_s": inputs_s,
        "candidates_peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "candidates_shape": f"{n_users}x{n_items}, d {d}, {u.size} ratings, block {block}",
        "candidates_per_user": served.candidates / n_users,
        "candidates_users_with_k": int((per_user >= 10).sum()),
        "candidates_index": index_info.get("index"),
        "candidates_new_items_placed": served.reserved,
    }


def _items_frame(n_items: int, item_genres: np.ndarray) -> Any:
    import pandas as pd

    names = [f"g{j}" for j in range(item_genres.shape[1])]
    genres = [[names[j] for j in np.flatnonzero(row)] for row in item_genres]
    return pd.DataFrame(
        {
            "item_idx": np.arange(n_items, dtype=np.int32),
            "item_id": [str(j) for j in range(n_items)],
            "title": [f"item {j}" for j in range(n_items)],
            "year": np.full(n_items, 2000, np.int32),
            "genres": genres,
        }
    )


def _stats_frame(n_items: int, n_ratings: np.ndarray) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "item_idx": np.arange(n_items, dtype=np.int32),
            "n_ratings": n_ratings.astype(np.int64),
            "tags": [[] for _ in range(n_items)],
        }
    )


def main(argv: list[str] | None = None) -> None:
    """Print the stage's figures as one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=FULL_SHAPE[0])
    ap.add_argument("--items", type=int, default=FULL_SHAPE[1])
    ap.add_argument("--block", type=int, default=4096)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    sys.stdout.write(json.dumps(run(args.users, args.items, block=args.block)) + "\n")


if __name__ == "__main__":
    main()
