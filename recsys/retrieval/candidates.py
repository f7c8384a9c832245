"""Per-user candidate lists: the union of cheap sources, deduplicated, seen items removed.

Sources (each row records which one proposed the item):

* ``similar``: the nearest items of each of the user's ``n_recent`` most
  recently rated items (``anchor_idx`` is that rated item);
* ``profile``: the items nearest to the user's embedding (the two-tower model's
  retrieval, :func:`profile_candidates`; it reaches items nobody has rated yet);
* ``popular``: the most popular items of the training data the user has not seen.

When two sources propose the same item, the ``similar`` row wins (it carries
the more specific reason), then ``profile``, then ``popular``; among anchors the
more recent one wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SOURCE_PRIORITY = {"similar": 0, "profile": 1, "popular": 2}


def profile_candidates(
    users: np.ndarray,
    score_users: Callable[[np.ndarray], np.ndarray],
    history: pd.DataFrame,
    n: int,
    *,
    catalogue: np.ndarray | None = None,
    block: int = 2048,
) -> pd.DataFrame:
    """Each user's ``n`` best unseen items by a model's scores over the whole catalogue.

    Args:
        users: ``[n_users]`` user indices.
        score_users: ``user_idx [b] -> [b, n_items]`` scores (e.g. two-tower dot products).
        history: (user_idx, item_idx, ...) pairs the users rated (never candidates).
        n: Items per user.
        catalogue: ``[n_items]`` bool, items that may be proposed (default: all).
        block: Users scored at once (bounds the ``[block, n_items]`` matrix).

    Returns:
        (user_idx, item_idx, source="profile", anchor_idx=-1, order) rows, ``order`` = rank by score.
    """
    from recsys.retrieval.topk import top_k_items

    cols = ["user_idx", "item_idx", "source", "anchor_idx", "order"]
    frames = []
    seen = history.groupby("user_idx")["item_idx"].apply(lambda s: s.to_numpy()).to_dict()
    for s in range(0, users.size, block):
        b = users[s : s + block]
        scores = np.asarray(score_users(b), dtype=np.float64)
        if catalogue is not None:
            scores[:, ~catalogue] = -np.inf
        top = top_k_items(scores, n, exclude=[seen.get(int(u), np.zeros(0, np.int64)) for u in b])
        rows, ranks = np.nonzero(top >= 0)
        frames.append(pd.DataFrame({"user_idx": b[rows], "item_idx": top[rows, ranks], "order": ranks}))
    out = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"user_idx": [], "item_idx": [], "order": []})
    )
    return out.assign(source="profile", anchor_idx=-1).astype(
        {"user_idx": np.int64, "item_idx": np.int64, "order": np.int64}
    )[cols]


def recent_items(history: pd.DataFrame, n_recent: int) -> pd.DataFrame:
    """Each user's ``n_recent`` latest rated items.

    Args:
        history: Rows (user_idx, item_idx, ts); grain one (user, item).
        n_recent: Items kept per user.

    Returns:
        (user_idx, item_idx, recency) with recency 0 = latest; ties on ``ts`` by item index.
    """
    h = history.sort_values(["user_idx", "ts", "item_idx"], ascending=[True, False, True])
    h = h.assign(recency=h.groupby("user_idx").cumcount())
    return h.loc[h["recency"] < n_recent, ["user_idx", "item_idx", "recency"]].reset_index(drop=True)


def popular_unseen(users: np.ndarray, history: pd.DataFrame, popular: np.ndarray, n_popular: int) -> pd.DataFrame:
    """The ``n_popular`` most popular items each user has not rated.

    Memory is bounded by ``users x 2 n_popular`` rows: every user is crossed with
    the head of the popularity list once; the few heavy users who have rated
    most of that head get their list from a walk down the whole popularity order.

    Args:
        users: ``[n_users]`` user indices.
        history: (user_idx, item_idx, ...) pairs the users rated.
        popular: Item indices, most popular first.
        n_popular: Items per user.

    Returns:
        (user_idx, item_idx, source="popular", anchor_idx=-1, order) rows, ``order`` = rank in ``popular``.
    """
    cols = ["user_idx", "item_idx", "source", "anchor_idx", "order"]
    if n_popular <= 0 or users.size == 0 or popular.size == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(cols, (np.int64, np.int64, object, np.int64, np.int64), strict=True)}
        )
    head = popular[: 2 * n_popular]
    pop = pd.DataFrame(
        {
            "user_idx": np.repeat(users, head.size),
            "item_idx": np.tile(head, users.size),
            "order": np.tile(np.arange(head.size), users.size),
        }
    )
    seen = history[["user_idx", "item_idx"]].drop_duplicates().assign(_seen=True)
    pop = pop.merge(seen, on=["user_idx", "item_idx"], how="left")
    pop = pop[pop["_seen"].isna()].drop(columns="_seen")
    pop = pop[pop.groupby("user_idx").cumcount() < n_popular]
    short = np.setdiff1d(users, pop.groupby("user_idx").size().loc[lambda c: c >= n_popular].index.to_numpy())
    short = short[np.isin(short, seen["user_idx"].to_numpy())] if head.size < popular.size else np.array([], int)
    if short.size:
        rank = np.empty(int(popular.max()) + 1, dtype=np.int64)
        rank[popular] = np.arange(popular.size)
        by_user = seen[seen["user_idx"].isin(short)].groupby("user_idx")["item_idx"]
        extra = []
        for user, items in by_user:
            unseen = popular[~np.isin(popular, items.to_numpy())][:n_popular]
            extra.append(pd.DataFrame({"user_idx": user, "item_idx": unseen, "order": rank[unseen]}))
        pop = pd.concat([pop[~pop["user_idx"].isin(short)], *extra], ignore_index=True)
    return pop.assign(source="popular", anchor_idx=-1)[cols].sort_values(["user_idx", "order"]).reset_index(drop=True)


def build_candidates(
    users: np.ndarray,
    history: pd.DataFrame,
    neighbors: np.ndarray,
    popular: np.ndarray,
    *,
    n_recent: int,
    n_popular: int,
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Candidates for every user of ``users``.

    Args:
        users: ``[n_users]`` user indices to serve (users without history get popular items).
        history: Everything the users have rated: (user_idx, item_idx, ts); these items are never candidates.
        neighbors: ``[n_items, k]`` nearest items of each item (-1 pads).
        popular: Item indices, most popular first.
        n_recent: Recent items per user that seed ``similar`` candidates.
        n_popular: Unseen popular items per user.
        extra: More candidate rows (user_idx, item_idx, source, anchor_idx, order), e.g.
            :func:`profile_candidates`; deduplicated with the others by :data:`SOURCE_PRIORITY`.

    Returns:
        (user_idx, item_idx, source, anchor_idx) with anchor_idx -1 for ``popular``;
        grain one (user, candidate item).
    """
    recent = recent_items(history, n_recent)
    k = neighbors.shape[1]
    sim = pd.DataFrame(
        {
            "user_idx": np.repeat(recent["user_idx"].to_numpy(), k),
            "item_idx": neighbors[recent["item_idx"].to_numpy()].ravel(),
            "source": "similar",
            "anchor_idx": np.repeat(recent["item_idx"].to_numpy(), k),
            "order": np.repeat(recent["recency"].to_numpy() * k, k) + np.tile(np.arange(k), len(recent)),
        }
    )
    sim = sim[sim["item_idx"] >= 0]
    seen = history[["user_idx", "item_idx"]].assign(_seen=True)
    pop = popular_unseen(users, history, popular, n_popular)
    cand = pd.concat([sim, pop, *([extra] if extra is not None and len(extra) else [])], ignore_index=True)
    cand = cand.merge(seen, on=["user_idx", "item_idx"], how="left")
    cand = cand[cand["_seen"].isna()].drop(columns="_seen")
    cand["_p"] = cand["source"].map(SOURCE_PRIORITY)
    cand = cand.sort_values(["user_idx", "item_idx", "_p", "order"], kind="stable")
    cand = cand.drop_duplicates(["user_idx", "item_idx"], keep="first")
    cand = cand[cand["user_idx"].isin(users)]
    out = cand[["user_idx", "item_idx", "source", "anchor_idx"]].reset_index(drop=True)
    out["anchor_idx"] = out["anchor_idx"].astype(np.int64)
    logger.info(
        "candidates: %d users, %d rows (%.1f per user; %s)",
        users.size,
        len(out),
        len(out) / max(users.size, 1),
        out["source"].value_counts().to_dict(),
    )
    return out
