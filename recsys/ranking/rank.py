"""Ranking one block of users: score the candidates with the learned model, apply the policy, explain the top K."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from recsys.ranking.reasons import Explainer
from recsys.retrieval.candidates import Candidates, source_names

logger = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``score(user_idx [n], item_idx [n]) -> [n]``, higher is better."""

Finish = Callable[[pd.DataFrame], tuple[pd.DataFrame, dict[str, int]]]
"""Scored candidates of a block -> (each user's final top K with ``rank``, rows dropped per policy rule)."""

RECOMMENDATION_COLUMNS = ["user_idx", "rank", "item_idx", "score", "source", "reason"]
"""Columns of the lake's ``recommendations`` rows the ranking writes."""


def scored(cand: Candidates, score: Scorer) -> pd.DataFrame:
    """The block's candidates with the model's scores.

    Returns:
        (user_idx, item_idx, score, sources, primary, detail); grain one (user, candidate).

    Raises:
        ValueError: If the model returns a non-finite score.
    """
    s = np.asarray(score(cand.user_idx, cand.item_idx), dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError("the model returned non-finite scores")
    return pd.DataFrame(
        {
            "user_idx": cand.user_idx,
            "item_idx": cand.item_idx,
            "score": s,
            "sources": cand.sources,
            "primary": cand.primary,
            "detail": cand.detail,
        }
    )


def top_by_score(frame: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """Each user's ``top_k`` rows by score (ties to the smaller item index), ranked 1..k."""
    out = frame.sort_values(["user_idx", "score", "item_idx"], ascending=[True, False, True], kind="stable")
    out = out.assign(rank=out.groupby("user_idx").cumcount() + 1)
    return out[out["rank"] <= top_k].reset_index(drop=True)


def rank_block(
    cand: Candidates, score: Scorer, finish: Finish, explainer: Explainer
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Score a block's candidates, let ``finish`` apply the policy and cut to the top K, and explain each row.

    Args:
        cand: The block's candidates.
        score: The serving model's pair scores.
        finish: The policy (and diversity) step; returns ranked rows and drops per rule.
        explainer: Builds the reasons.

    Returns:
        (``recommendations`` rows (:data:`RECOMMENDATION_COLUMNS`), drops per rule);
        grain one (user, rank).
    """
    top, dropped = finish(scored(cand, score))
    top = top.sort_values(["user_idx", "rank"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "user_idx": top["user_idx"].to_numpy(np.int32),
            "rank": top["rank"].to_numpy(np.int32),
            "item_idx": top["item_idx"].to_numpy(np.int32),
            "score": top["score"].to_numpy(np.float64),
            "source": source_names(top["sources"].to_numpy()),
            "reason": explainer.reasons(top["primary"].to_numpy(), top["detail"].to_numpy(), top["sources"].to_numpy()),
        }
    )
    return out, dropped
