"""New items reach someone: each new item (features, no ratings) gets the last slot of a few users' lists.

A warm user's ranking model has learnt nothing about an item nobody has rated, so the
``new`` source's candidates rarely survive its ranking and a new item would never be
shown. The rule here (exploration by the two-tower model, which scores items from their
features): each new item is **reserved** for the ``reach`` users its two-tower score puts
highest (a user chosen by several new items keeps the one scored highest for them), and
takes the last slot (rank K) of those users' lists, unless it is already listed, the user
has rated it, or it would break the policy's genre cap. Everything else of the list stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from recsys.retrieval.topk import top_k_items

__all__ = ["reserve_new_items", "take_reserved_slots"]

logger = logging.getLogger(__name__)

#: Scores (new items x users) computed at once.
_BLOCK_SCORES = 1 << 24


def reserve_new_items(
    new_items: np.ndarray, users: np.ndarray, scores: Callable[[np.ndarray], np.ndarray], reach: int, n_users: int
) -> np.ndarray:
    """Which new item each user's list reserves a slot for.

    Args:
        new_items: ``[n_new]`` item indices of the new items (allowed by the policy).
        users: ``[n]`` user indices that may be chosen, ascending.
        scores: ``scores(users [b]) -> [b, n_new]`` the two-tower model's scores of the new items.
        reach: Users each new item is reserved for (0: none).
        n_users: Size of the user index space.

    Returns:
        ``[n_users]`` int64: the reserved item index per user, ``-1`` for none. Ties go to the
        smaller user index (and, for a user, to the smaller item index).
    """
    out = np.full(n_users, -1, dtype=np.int64)
    users = np.asarray(users, dtype=np.int64)
    if reach <= 0 or new_items.size == 0 or users.size == 0:
        return out
    reach = min(reach, users.size)
    # Per new item, its `reach` best users: a running top over blocks of users.
    best_s = np.full((new_items.size, 0), -np.inf)
    best_u = np.zeros((new_items.size, 0), dtype=np.int64)
    step = max(1, _BLOCK_SCORES // max(new_items.size, 1))
    for s in range(0, users.size, step):
        part = users[s : s + step]
        block = np.ascontiguousarray(np.asarray(scores(part), dtype=np.float64).T)  # [n_new, b]
        top = top_k_items(block, min(reach, part.size))  # ties to the smaller position
        cand_s = np.hstack([best_s, np.take_along_axis(block, top, axis=1)])
        cand_u = np.hstack([best_u, part[top]])
        order = np.lexsort((cand_u, -cand_s), axis=1)[:, :reach]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_u = np.take_along_axis(cand_u, order, axis=1)
    item = np.repeat(new_items.astype(np.int64), best_u.shape[1])
    user, score = best_u.ravel(), best_s.ravel()
    o = np.lexsort((item, -score, user))  # per user: the best-scored new item first
    user, item = user[o], item[o]
    first = np.r_[True, user[1:] != user[:-1]]
    out[user[first]] = item[first]
    return out


def take_reserved_slots(
    recs: pd.DataFrame,
    reserved: np.ndarray,
    *,
    top_k: int,
    seen: Callable[[np.ndarray, np.ndarray], np.ndarray],
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    reason: str,
    genre_flags: np.ndarray | None = None,
    genre_cap: int = 0,
) -> tuple[pd.DataFrame, int]:
    """Put each user's reserved new item in the last slot of their list.

    Args:
        recs: One block's ``recommendations`` rows (``user_idx``, ``rank`` 1..n, ``item_idx``,
            ``score``, ``source``, ``reason``); grain one (user, rank).
        reserved: ``[n_users]`` from :func:`reserve_new_items`.
        top_k: List length: a full list's rank ``top_k`` row is replaced, a shorter list grows by one.
        seen: ``seen(user_idx [m], item_idx [m]) -> [m]`` bool, the user rated the item.
        score: The serving model's pair scores (the row keeps the model's score).
        reason: The reason of a reserved row (the ``new`` source's).
        genre_flags: ``[n_items + 1, n_genres]`` bool genres (``diversity.genre_flags``), with ``genre_cap``.
        genre_cap: The policy's cap (0: none): a reserved item that would exceed it is not placed.

    Returns:
        ``(rows, placed)``: the block's rows, sorted by user and rank; how many reserved items were placed.
    """
    if recs.empty:
        return recs, 0
    users = np.unique(recs["user_idx"].to_numpy(np.int64))
    item = reserved[users]
    has = item >= 0
    users, item = users[has], item[has]
    if users.size:
        listed = recs.groupby("user_idx")["item_idx"].apply(set)
        ok = np.array([i not in listed[u] for u, i in zip(users.tolist(), item.tolist(), strict=True)], dtype=bool)
        users, item = users[ok], item[ok]
    if users.size:
        ok = ~seen(users, item)
        users, item = users[ok], item[ok]
    if not users.size:
        return recs, 0
    length = recs.groupby("user_idx").size().reindex(users).to_numpy()
    full = length >= top_k
    drop = recs["user_idx"].isin(users[full]) & (recs["rank"] == top_k)
    if genre_flags is not None and genre_cap > 0:
        kept = recs[recs["user_idx"].isin(users) & ~drop]
        counts = pd.DataFrame(genre_flags[kept["item_idx"].to_numpy()], index=kept["user_idx"].to_numpy())
        per_user = counts.groupby(level=0).sum().reindex(users, fill_value=0).to_numpy()
        ok = ((per_user + genre_flags[item]) <= genre_cap).all(axis=1)
        users, item, full, length = users[ok], item[ok], full[ok], length[ok]
        drop = recs["user_idx"].isin(users[full]) & (recs["rank"] == top_k)
    added = pd.DataFrame(
        {
            "user_idx": users.astype(np.int32),
            "rank": np.where(full, top_k, length + 1).astype(np.int32),
            "item_idx": item.astype(np.int32),
            "score": np.asarray(score(users, item), dtype=np.float64),
            "source": "new",
            "reason": reason,
        }
    )
    out = pd.concat([recs[~drop], added[recs.columns]], ignore_index=True)
    out = out.sort_values(["user_idx", "rank"], kind="stable").reset_index(drop=True)
    logger.debug("reserved new-item slots: %d placed", users.size)
    return out, int(users.size)
