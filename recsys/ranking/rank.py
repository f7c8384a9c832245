"""Ranking: score candidates with the learned model, apply policy, keep the top K with a reason."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def reason_text(source: str, anchor_title: str | None) -> str:
    """The reason shown to the user for one recommendation."""
    if source == "similar" and anchor_title:
        return f"because you rated {anchor_title}"
    if source == "popular":
        return "popular with other viewers"
    if source == "profile":
        return "matches your profile"
    return "recommended for you"


def rank_candidates(
    candidates: pd.DataFrame,
    score: Scorer,
    *,
    top_k: int,
    titles: Mapping[int, str],
    blocked_items: np.ndarray | None = None,
) -> pd.DataFrame:
    """Score, filter and cut each user's candidates to the top ``top_k``.

    Args:
        candidates: Output of ``build_candidates``.
        score: ``score(user_idx [n], item_idx [n]) -> [n]`` higher is better.
        top_k: Items kept per user.
        titles: item_idx -> title, for reasons.
        blocked_items: Item indices that must never be recommended (policy filter).

    Returns:
        ``recommendations`` rows (user_idx, rank 1..k, item_idx, score, source, reason);
        grain one (user, rank). Ties on score go to the smaller item index.
    """
    cand = candidates
    if blocked_items is not None and len(blocked_items):
        cand = cand[~cand["item_idx"].isin(blocked_items)]
    s = score(cand["user_idx"].to_numpy(), cand["item_idx"].to_numpy())
    if not np.all(np.isfinite(s)):
        raise ValueError("the model returned non-finite scores")
    cand = cand.assign(score=s.astype(np.float64))
    cand = cand.sort_values(["user_idx", "score", "item_idx"], ascending=[True, False, True], kind="stable")
    cand = cand.assign(rank=cand.groupby("user_idx").cumcount() + 1)
    top = cand[cand["rank"] <= top_k].copy()
    top["reason"] = [
        reason_text(src, titles.get(int(a)) if a >= 0 else None)
        for src, a in zip(top["source"], top["anchor_idx"], strict=True)
    ]
    top["rank"] = top["rank"].astype(np.int32)
    top["user_idx"] = top["user_idx"].astype(np.int32)
    top["item_idx"] = top["item_idx"].astype(np.int32)
    short = (top.groupby("user_idx").size() < top_k).sum()
    if short:
        logger.warning("%d users have fewer than %d recommendations after filtering", short, top_k)
    return top[["user_idx", "rank", "item_idx", "score", "source", "reason"]].reset_index(drop=True)
