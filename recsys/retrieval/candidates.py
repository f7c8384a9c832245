"""Per-user candidate lists: the union of cheap sources, deduplicated, seen items removed.

Sources (each row records which one proposed the item):

* ``similar``: the nearest items of each of the user's ``n_recent`` most
  recently rated items (``anchor_idx`` is that rated item);
* ``popular``: the most popular items of the training data the user has not seen.

When two sources propose the same item, the ``similar`` row wins (it carries
the more specific reason), and among anchors the more recent one wins.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SOURCE_PRIORITY = {"similar": 0, "popular": 1}


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


def build_candidates(
    users: np.ndarray,
    history: pd.DataFrame,
    neighbors: np.ndarray,
    popular: np.ndarray,
    *,
    n_recent: int,
    n_popular: int,
) -> pd.DataFrame:
    """Candidates for every user of ``users``.

    Args:
        users: ``[n_users]`` user indices to serve (users without history get popular items).
        history: Everything the users have rated: (user_idx, item_idx, ts); these items are never candidates.
        neighbors: ``[n_items, k]`` nearest items of each item (-1 pads).
        popular: Item indices, most popular first.
        n_recent: Recent items per user that seed ``similar`` candidates.
        n_popular: Unseen popular items per user.

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
    # Popular: enough of the head that n_popular unseen ones remain for every user.
    seen_counts = history.groupby("user_idx").size()
    head = popular[: n_popular + (int(seen_counts.max()) if len(seen_counts) else 0)]
    pop = pd.DataFrame(
        {
            "user_idx": np.repeat(users, head.size),
            "item_idx": np.tile(head, users.size),
            "source": "popular",
            "anchor_idx": -1,
            "order": np.tile(np.arange(head.size), users.size),
        }
    )
    seen = history[["user_idx", "item_idx"]].assign(_seen=True)
    pop = pop.merge(seen, on=["user_idx", "item_idx"], how="left")
    pop = pop[pop["_seen"].isna()].drop(columns="_seen")
    pop = pop[pop.groupby("user_idx").cumcount() < n_popular]

    cand = pd.concat([sim, pop], ignore_index=True)
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
        users.size, len(out), len(out) / max(users.size, 1), out["source"].value_counts().to_dict(),
    )  # fmt: skip
    return out
