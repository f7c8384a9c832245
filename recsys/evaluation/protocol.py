"""The offline evaluation protocol: splits, and how a model is scored on one.

Protocol (the one published MovieLens 100K tables use, so numbers compare):

* **Splits**: MovieLens 100K's official folds ``u1``..``u5`` (train on ``uN.base``,
  test on ``uN.test``), reported as the mean over the five. Any other data uses
  a seeded per-user hold-out (:func:`holdout`), and model selection uses a
  validation split carved out of the *training* part the same way, never the
  test fold.
* **Rating metrics**: every test pair is predicted, clipped to the rating scale
  (:func:`recsys.evaluation.metrics.rating_metrics`). Pairs whose user or item
  has no training rating are scored with the model's fallback (item mean, global
  mean) and counted as ``n_unknown``.
* **Ranking metrics**: for every user with test ratings, every item of the
  training catalogue (items with at least one training rating) except the
  user's training items is ranked; every test rating counts as relevant,
  whatever its value. Top-K metrics at ``k`` (default 10).

A model takes part through two methods (both optional, checked with ``hasattr``):
``predict(user_idx [n], item_idx [n]) -> [n]`` ratings and
``score_users(user_idx [b]) -> [b, n_items]`` ranking scores (higher is better).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recsys.evaluation.metrics import ranking_metrics, rating_metrics, relevant_lists
from recsys.retrieval.topk import top_k_items

logger = logging.getLogger(__name__)

ML100K_FOLDS = (1, 2, 3, 4, 5)


RANKING_METRICS: tuple[str, ...] = (
    "ndcg",
    "precision",
    "recall",
    "map",
    "hit_rate",
    "coverage",
    "novelty",
    "diversity",
    "popularity_bias",
)
"""The ranking metrics of the protocol, at K (the nightly run records each as ``<model>_<metric>``)."""


@dataclass(frozen=True)
class Split:
    """A train/test split of explicit ratings over dense indices.

    Grain of each triple of arrays: one (user, item) rating.

    Attributes:
        name: Label (e.g. ``u1``).
        train: ``(user_idx [n_train], item_idx [n_train], rating [n_train])``.
        test: ``(user_idx [n_test], item_idx [n_test], rating [n_test])``.
        n_users: Users of the index space (``user_idx < n_users``).
        n_items: Items of the index space.
        rating_min: Lowest rating of the scale.
        rating_max: Highest rating of the scale.
        item_genres: Optional ``[n_items, n_genres]`` multi-hot genres (diversity).
        train_ts: Optional ``[n_train]`` times (seconds) of the training ratings (sessions).
    """

    name: str
    train: tuple[np.ndarray, np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray, np.ndarray]
    n_users: int
    n_items: int
    rating_min: float = 1.0
    rating_max: float = 5.0
    item_genres: np.ndarray | None = None
    train_ts: np.ndarray | None = None


def _read_ml100k(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``uN.base``/``uN.test``/``u.data`` (tab: user, item, rating, ts; 1-based ids) as 0-based arrays and times."""
    a = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    if a.shape[1] != 4:
        raise ValueError(f"{path}: expected 4 tab-separated columns, got {a.shape[1]}")
    return a[:, 0] - 1, a[:, 1] - 1, a[:, 2].astype(np.float64), a[:, 3]


def _read_ml100k_ratings(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(user_idx, item_idx, rating)`` of :func:`_read_ml100k`."""
    return _read_ml100k(path)[:3]


def ml100k_genres(data_dir: Path, n_items: int) -> np.ndarray | None:
    """``[n_items, 19]`` genre flags from ``u.item`` (latin-1, ``|``-separated), or None without the file."""
    f = Path(data_dir) / "u.item"
    if not f.is_file():
        return None
    out = np.zeros((n_items, 19), dtype=np.float32)
    for line in f.read_text(encoding="latin-1").splitlines():
        parts = line.split("|")
        if len(parts) >= 24 and parts[0].isdigit() and int(parts[0]) <= n_items:
            out[int(parts[0]) - 1] = [float(x or 0) for x in parts[-19:]]
    return out


def ml100k_folds(data_dir: Path, folds: tuple[int, ...] = ML100K_FOLDS) -> list[Split]:
    """MovieLens 100K's official folds as :class:`Split` s over one index space (943 x 1682).

    Args:
        data_dir: Folder holding ``u.data``, ``u.item`` and ``uN.base``/``uN.test``.
        folds: Fold numbers to read (1..5).

    Returns:
        One :class:`Split` per fold, in the order given.
    """
    data_dir = Path(data_dir)
    u, i, _ = _read_ml100k_ratings(data_dir / "u.data")
    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1
    genres = ml100k_genres(data_dir, n_items)
    out = []
    for n in folds:
        *train, ts = _read_ml100k(data_dir / f"u{n}.base")
        out.append(
            Split(
                f"u{n}",
                tuple(train),
                _read_ml100k_ratings(data_dir / f"u{n}.test"),
                n_users,
                n_items,
                1.0,
                5.0,
                genres,
                ts,
            )
        )
    return out


def holdout(
    user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, *, fraction: float, seed: int, min_keep: int = 1
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per-user random hold-out: ``fraction`` of each user's ratings go to the second part.

    A user keeps at least ``min_keep`` ratings in the first part, so everybody
    held out is also known to the model. Seeded and independent of row order
    (rows are ordered by ``(user, item)`` before drawing).

    Args:
        user_idx: ``[n]`` user indices.
        item_idx: ``[n]`` item indices.
        rating: ``[n]`` ratings.
        fraction: Share held out per user, in ``(0, 1)``.
        seed: Seed of the draw.
        min_keep: Ratings each user keeps in the first part.

    Returns:
        ``(kept, held_out)``, each ``(user_idx, item_idx, rating)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    order = np.lexsort((item_idx, user_idx))
    u, i, r = user_idx[order], item_idx[order], rating[order]
    rng = np.random.default_rng(seed)
    key = rng.random(u.size)
    # rank of each row within its user by the random key
    by = np.lexsort((key, u))
    starts = np.r_[0, np.flatnonzero(np.diff(u[by])) + 1]
    counts = np.diff(np.r_[starts, u.size])
    rank = np.empty(u.size, dtype=np.int64)
    rank[by] = np.arange(u.size) - np.repeat(starts, counts)
    n_user = np.repeat(counts, counts)[np.argsort(by)]
    n_out = np.minimum(np.floor(n_user * fraction + 0.5).astype(np.int64), np.maximum(n_user - min_keep, 0))
    out = rank < n_out
    return (u[~out], i[~out], r[~out]), (u[out], i[out], r[out])


def validation_split(split: Split, *, fraction: float = 0.1, seed: int = 0) -> Split:
    """A split for model selection: the training part of ``split`` held out per user (``split.test`` unused;
    no times, so no sessions)."""
    kept, held = holdout(*split.train, fraction=fraction, seed=seed)
    return replace(split, name=f"{split.name}-val", train=kept, test=held, train_ts=None)


def _user_blocks(users: np.ndarray, block: int) -> Iterator[np.ndarray]:
    for s in range(0, users.size, block):
        yield users[s : s + block]


def rank_users(
    model: Any, users: np.ndarray, seen: list[np.ndarray], catalogue: np.ndarray, *, k: int, block: int = 2048
) -> np.ndarray:
    """Top-``k`` items of each user from ``model.score_users``, blockwise.

    Args:
        model: Has ``score_users(user_idx [b]) -> [b, n_items]``.
        users: ``[n]`` user indices to rank for.
        seen: Per-user (index = user) arrays of items to exclude.
        catalogue: ``[n_items]`` bool, items that may be recommended.
        k: List length.
        block: Users scored at once (bounds the ``[block, n_items]`` score matrix).

    Returns:
        ``[n, k]`` item indices, best first (``-1`` padding).
    """
    out = []
    outside = ~catalogue
    for b in _user_blocks(users, block):
        s = np.asarray(model.score_users(b), dtype=np.float64)
        s = np.where(np.isfinite(s), s, np.finfo(np.float64).min)  # a model's -inf must not hide seen-filtering
        s[:, outside] = -np.inf
        out.append(top_k_items(s, k, exclude=[seen[u] for u in b]))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def evaluate(model: Any, split: Split, *, k: int = 10, popularity_lists: np.ndarray | None = None) -> dict[str, float]:
    """Score ``model`` on ``split`` by the protocol of this module.

    Args:
        model: A fitted model with ``predict`` and/or ``score_users``.
        split: The split it was fitted on (``split.train``).
        k: Length of the ranked lists.
        popularity_lists: Optional ``[n_eval_users, k]`` lists of the popularity
            baseline for the same users, for ``popularity_bias``.

    Returns:
        ``rmse``, ``mae``, ``n_unknown`` (when the model predicts ratings) and the
        ranking metrics at ``k`` (when it scores users), plus ``predict_seconds``.
    """
    tu, ti, _tr = split.train
    vu, vi, vr = split.test
    out: dict[str, float] = {}
    start = time.monotonic()
    if hasattr(model, "predict") and getattr(model, "predicts_ratings", True):
        known = np.isin(vu, np.unique(tu)) & np.isin(vi, np.unique(ti))
        out.update(
            rating_metrics(
                model.predict(vu, vi), vr, rating_min=split.rating_min, rating_max=split.rating_max, known=known
            )
        )
    if hasattr(model, "score_users"):
        lists, users = ranked_lists(model, split, k=k)
        out.update(ranking_metrics_for(lists, users, split, k=k, popularity_lists=popularity_lists))
    out["predict_seconds"] = time.monotonic() - start
    return out


def ranked_lists(model: Any, split: Split, *, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``([n_eval_users, k] lists, [n_eval_users] users)`` for the users with test ratings."""
    tu, ti, _ = split.train
    users = np.unique(split.test[0])
    seen = relevant_lists(tu, ti, split.n_users)
    catalogue = np.bincount(ti, minlength=split.n_items) > 0
    return rank_users(model, users, seen, catalogue, k=k), users


def ranking_metrics_for(
    lists: np.ndarray, users: np.ndarray, split: Split, *, k: int = 10, popularity_lists: np.ndarray | None = None
) -> dict[str, float]:
    """Ranking metrics of ``[n, k]`` lists of ``users`` against ``split.test`` (all test ratings relevant)."""
    tu, ti, _ = split.train
    relevant = relevant_lists(*split.test[:2], split.n_users)
    pairs = np.unique(tu * split.n_items + ti)
    popularity = np.bincount(pairs % split.n_items, minlength=split.n_items)
    return ranking_metrics(
        lists,
        [relevant[u] for u in users],
        k=k,
        n_items=split.n_items,
        item_popularity=popularity,
        n_train_users=int(np.unique(tu).size),
        item_genres=split.item_genres,
        popularity_baseline=popularity_lists,
    )
