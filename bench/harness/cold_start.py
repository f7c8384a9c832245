"""Cold-start evaluation: users and items held out entirely, and users with only a few ratings.

The split (:func:`cold_start_split`), over ratings with dense indices (grain: one
(user, item) rating), puts every rating in exactly one of training and test:

* **cold users** (``cold_user_fraction`` of the users with ratings, default 10%):
  every rating of theirs is test; the model knows them from side data only.
* **cold items** (``cold_item_fraction`` of the items with ratings, default 10%):
  every rating of theirs is test.
* **few-ratings users** (``few_user_fraction`` of the users with ratings, default
  10%), drawn from the other users among those with at least ``few_max + 1``
  ratings on warm items: each keeps ``n ~ uniform{1..few_max}`` (seeded) random
  training ratings among their ratings on warm items; the rest is test.
* everything else is training.

A rating of a cold user on a cold item is test (both sides are held out) but
belongs to no cohort below: cold users rank warm items, and the cold-item cohort
is made of users with training data, so these double-cold pairs are only counted
(``ColdStartSplit.n_double_cold``). "Warm items" are the items with at least one
training rating; an item that is not held out can still end up without training
ratings (all its raters are cold or few-ratings users): it is neither warm nor a
cold item, and no cohort ranks it.

The split is seeded and does not depend on the order of the rows: users, items
and ratings are drawn in index order.

The evaluation (:func:`evaluate_cold_start`) scores each cohort with the suite's
ranking metrics (:func:`recsys.evaluation.metrics.ranking_metrics`, K = 10):

* ``cold_users`` and ``few_ratings_users``: each user of the cohort with test
  ratings on warm items ranks the warm items minus their own training items;
  relevant = their test ratings on warm items (every rating, whatever its value,
  as in :mod:`recsys.evaluation.protocol`).
* ``cold_items``: every non-cold user with test ratings on cold items ranks the
  cold items only; relevant = the cold items they rated.

Ties: a non-personalised model gives many items the same score (CF with mean
normalisation and popularity give every cold item the same score). Ties are
broken in a seeded random order, drawn per user and per cohort and shared by all
models (the comparison is paired), never by item index, so a model cannot gain
or lose from how the catalogue happens to be numbered. Scores that are not
finite are treated like the lowest finite score.

Metrics are computed in the cohort's candidate space (the items it ranks), so
``coverage`` is the share of the candidate items that appear in some top-K list.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.evaluation.metrics import ndcg_per_user, ranking_metrics, relevant_lists
from recsys.retrieval.topk import top_k_items

logger = logging.getLogger(__name__)

__all__ = [
    "COHORTS",
    "METRICS",
    "ColdStartSplit",
    "carve_validation",
    "cohorts",
    "cold_start_split",
    "cold_start_split_frame",
    "evaluate_cold_start",
    "rank_candidates",
]

#: Cohorts of :func:`evaluate_cold_start`, in report order.
COHORTS: tuple[str, ...] = ("cold_users", "few_ratings_users", "cold_items")
#: Metrics reported per cohort and model.
METRICS: tuple[str, ...] = ("ndcg", "precision", "recall", "map", "hit_rate", "coverage")

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ColdStartSplit:
    """A cold-start split of ratings (see the module docstring).

    Attributes:
        train: ``(user_idx [n_train], item_idx [n_train], rating [n_train])``; grain one rating.
        test: ``(user_idx [n_test], item_idx [n_test], rating [n_test])``; grain one rating.
        is_train: ``[n]`` bool, per input row (input order): True where the rating is training.
        cold_users: Sorted int64 indices of the users held out entirely.
        cold_items: Sorted int64 indices of the items held out entirely.
        few_users: Sorted int64 indices of the few-ratings users.
        few_kept: ``[len(few_users)]`` training ratings each few-ratings user keeps (1..few_max).
        n_users: Users of the index space.
        n_items: Items of the index space.
        seed: The seed of the draw.
        fold: With rotating cohorts, which one (None: a single seeded draw).
    """

    train: Triple
    test: Triple
    is_train: np.ndarray
    cold_users: np.ndarray
    cold_items: np.ndarray
    few_users: np.ndarray
    few_kept: np.ndarray
    n_users: int
    n_items: int
    seed: int
    fold: int | None = None

    @property
    def warm_items(self) -> np.ndarray:
        """``[n_items]`` bool: items with at least one training rating (the catalogue users rank)."""
        return np.bincount(self.train[1], minlength=self.n_items) > 0

    @property
    def n_double_cold(self) -> int:
        """Test ratings of a cold user on a cold item (in no cohort)."""
        u, i, _ = self.test
        return int(np.count_nonzero(np.isin(u, self.cold_users) & np.isin(i, self.cold_items)))

    def summary(self) -> dict[str, int]:
        """Counts for reports: users and items per role, ratings per part."""
        return {
            "n_train": int(self.train[0].size),
            "n_test": int(self.test[0].size),
            "n_cold_users": int(self.cold_users.size),
            "n_cold_items": int(self.cold_items.size),
            "n_few_users": int(self.few_users.size),
            "n_warm_items": int(np.count_nonzero(self.warm_items)),
            "n_double_cold": self.n_double_cold,
        }


def _draw(pool: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``round(fraction * len(pool))`` elements of sorted ``pool``, sorted."""
    n = round(fraction * pool.size)
    return np.sort(rng.choice(pool, size=n, replace=False)) if n else np.zeros(0, dtype=np.int64)


def _fold_slice(pool: np.ndarray, fraction: float, fold: int, seed: int, stream: int) -> np.ndarray:
    """Slice ``fold`` of ``floor(1 / fraction)`` disjoint slices of ``round(fraction * len(pool))`` elements of a
    seeded permutation of ``pool`` (the same permutation for every fold), sorted."""
    n = round(fraction * pool.size)
    if not n:
        return np.zeros(0, dtype=np.int64)
    n_folds = pool.size // n
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds}) for a share of {fraction} of {pool.size}, got {fold}")
    perm = np.random.default_rng([seed, stream]).permutation(pool)
    return np.sort(perm[fold * n : (fold + 1) * n])


def cold_start_split(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    rating: np.ndarray,
    *,
    n_users: int,
    n_items: int,
    cold_user_fraction: float = 0.1,
    cold_item_fraction: float = 0.1,
    few_user_fraction: float = 0.1,
    few_max: int = 5,
    seed: int = 42,
    fold: int | None = None,
) -> ColdStartSplit:
    """Seeded cold-start split of ratings (cold users, cold items, few-ratings users; see the module docstring).

    Args:
        user_idx: ``[n]`` user indices in ``[0, n_users)``; grain one (user, item) rating, no duplicate pairs.
        item_idx: ``[n]`` item indices in ``[0, n_items)``.
        rating: ``[n]`` ratings (or any label; carried along).
        n_users: Users of the index space.
        n_items: Items of the index space.
        cold_user_fraction: Share of the users with ratings held out entirely.
        cold_item_fraction: Share of the items with ratings held out entirely.
        few_user_fraction: Share of the users with ratings that form the few-ratings cohort. They are drawn
            from the users that are not cold and have at least ``few_max + 1`` ratings on warm items (so any
            count 1..few_max leaves a test rating); fewer are drawn if fewer are eligible.
        few_max: Most training ratings a few-ratings user keeps.
        seed: Seed of every draw.
        fold: Rotate the cohorts: the cold users (items) are slice ``fold`` of ``1 / cold_user_fraction``
            (``cold_item_fraction``) disjoint slices of one seeded permutation, so that folds ``0, 1, ...``
            hold out different users and items and, pooled, evaluate many more of them than one draw
            (the other draws are seeded by ``(seed, fold)``). None: one seeded draw.

    Returns:
        The :class:`ColdStartSplit`.

    Raises:
        ValueError: On mismatched shapes, indices out of range, fractions outside ``[0, 1)``, ``few_max < 1``
            or a ``fold`` outside ``[0, 1 / fraction)``.
    """
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    r = np.asarray(rating)
    if u.ndim != 1 or u.shape != i.shape or u.shape != r.shape:
        raise ValueError(
            f"user_idx, item_idx and rating must be [n] arrays of one length: {u.shape}, {i.shape}, {r.shape}"
        )
    if u.size and (u.min() < 0 or u.max() >= n_users or i.min() < 0 or i.max() >= n_items):
        raise ValueError(f"indices outside [0, {n_users}) x [0, {n_items})")
    for name, f in (
        ("cold_user_fraction", cold_user_fraction),
        ("cold_item_fraction", cold_item_fraction),
        ("few_user_fraction", few_user_fraction),
    ):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    if few_max < 1:
        raise ValueError(f"few_max must be >= 1, got {few_max}")
    start = time.perf_counter()
    users = np.unique(u)
    if fold is None:
        rng = np.random.default_rng(seed)
        cold_users = _draw(users, cold_user_fraction, rng)
        cold_items = _draw(np.unique(i), cold_item_fraction, rng)
    else:
        rng = np.random.default_rng([seed, fold])
        cold_users = _fold_slice(users, cold_user_fraction, fold, seed, 0)
        cold_items = _fold_slice(np.unique(i), cold_item_fraction, fold, seed, 1)

    # Rows in (user, item) order, so the draws do not depend on the input order.
    order = np.lexsort((i, u))
    su, si = u[order], i[order]
    on_cold_item = np.isin(si, cold_items)
    warm_row = ~on_cold_item & ~np.isin(su, cold_users)
    n_warm = np.bincount(su[warm_row], minlength=n_users)
    eligible = users[(n_warm[users] > few_max) & ~np.isin(users, cold_users)]
    n_few = min(round(few_user_fraction * users.size), eligible.size)
    few_users = np.sort(rng.choice(eligible, size=n_few, replace=False)) if n_few else np.zeros(0, np.int64)
    few_kept = rng.integers(1, few_max + 1, size=few_users.size)

    # Few-ratings users keep their first `kept` warm ratings in a random order.
    key = rng.random(su.size)
    kept_of = np.zeros(n_users, dtype=np.int64)
    kept_of[few_users] = few_kept
    is_few = np.zeros(n_users, dtype=bool)
    is_few[few_users] = True
    few_row = warm_row & is_few[su]
    rows = np.flatnonzero(few_row)
    rows = rows[np.lexsort((key[rows], su[rows]))]  # by user, then random key
    starts = np.r_[0, np.flatnonzero(np.diff(su[rows])) + 1]
    rank = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
    train_sorted = warm_row & ~few_row
    train_sorted[rows[rank < kept_of[su[rows]]]] = True

    is_train = np.empty(u.size, dtype=bool)
    is_train[order] = train_sorted
    split = ColdStartSplit(
        train=(u[is_train], i[is_train], r[is_train]),
        test=(u[~is_train], i[~is_train], r[~is_train]),
        is_train=is_train,
        cold_users=cold_users,
        cold_items=cold_items,
        few_users=few_users,
        few_kept=few_kept.astype(np.int64),
        n_users=n_users,
        n_items=n_items,
        seed=seed,
        fold=fold,
    )
    logger.info("cold-start split (seed %d): %s in %.2fs", seed, split.summary(), time.perf_counter() - start)
    return split


def cold_start_split_frame(
    ratings: pd.DataFrame, *, n_users: int, n_items: int, rating: str = "rating", **kwargs: Any
) -> tuple[pd.DataFrame, ColdStartSplit]:
    """:func:`cold_start_split` of a ratings frame, with its ``split`` column set.

    Args:
        ratings: Rows with ``user_idx``, ``item_idx`` and ``rating`` (e.g. ``ratings`` table rows); grain one
            (user, item) rating.
        n_users: Users of the index space.
        n_items: Items of the index space.
        rating: Column carried as the label.
        **kwargs: Passed to :func:`cold_start_split` (fractions, ``few_max``, ``seed``).

    Returns:
        ``(ratings with split = 'train' / 'test', the split)``; the frame keeps its rows and order.
    """
    split = cold_start_split(
        ratings["user_idx"].to_numpy(),
        ratings["item_idx"].to_numpy(),
        ratings[rating].to_numpy(),
        n_users=n_users,
        n_items=n_items,
        **kwargs,
    )
    return ratings.assign(split=np.where(split.is_train, "train", "test")), split


def carve_validation(
    split: ColdStartSplit, *, fraction: float = 0.1, seed: int = 0, user_fraction: float = 0.0
) -> tuple[Triple, Triple, Triple]:
    """Validation shares of the training ratings (early stopping, calibration), taken from warm users only.

    Few-ratings users keep all of their 1..few_max training ratings in the fitting part, so the
    cohort's definition holds for the model too.

    Args:
        split: The split.
        fraction: Share of the (remaining) warm users' training ratings held out for validation.
        seed: Seed of the draws.
        user_fraction: Share of the warm users held out entirely (all their training ratings): validation
            users the model never sees, as the cold-start users (``cold_validation`` of
            :func:`recsys.models.two_tower.fit_two_tower`).

    Returns:
        ``(fit, validation, cold_validation)``, each ``(user_idx, item_idx, rating)``; together they are
        ``split.train``.
    """
    u, i, r = split.train
    rng = np.random.default_rng(seed)
    order = np.lexsort((i, u))
    key = rng.random(u.size)
    warm = np.setdiff1d(np.unique(u), split.few_users)
    held_users = warm[rng.random(warm.size) < user_fraction] if user_fraction > 0 else warm[:0]
    cold = np.isin(u, held_users)
    val = np.zeros(u.size, dtype=bool)
    val[order] = key < fraction
    val &= ~np.isin(u, split.few_users) & ~cold
    fit = ~val & ~cold
    return (u[fit], i[fit], r[fit]), (u[val], i[val], r[val]), (u[cold], i[cold], r[cold])


def rank_candidates(
    model: Any,
    users: np.ndarray,
    candidates: np.ndarray,
    exclude: list[np.ndarray],
    *,
    k: int,
    rng: np.random.Generator,
    block: int = 2048,
) -> np.ndarray:
    """Top-``k`` of ``candidates`` for each user by ``model.score_users``, ties in a seeded random order.

    Args:
        model: Has ``score_users(user_idx [b]) -> [b, n_items]``.
        users: ``[n]`` user indices.
        candidates: ``[c]`` item indices that may be recommended.
        exclude: Per row of ``users``, item indices not to recommend (e.g. the user's training items).
        k: List length.
        rng: Draws the tie-breaking order: one random permutation of the candidates per user.
        block: Users scored at once (bounds the ``[block, n_items]`` score matrix).

    Returns:
        ``[n, k]`` int64 item indices (global), best first, ``-1`` padding.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    local = np.full(int(candidates.max()) + 1 if candidates.size else 0, -1, dtype=np.int64)
    local[candidates] = np.arange(candidates.size)
    out = []
    for s in range(0, len(users), block):
        b = np.asarray(users[s : s + block], dtype=np.int64)
        scores = np.asarray(model.score_users(b), dtype=np.float64)[:, candidates]
        scores = np.where(np.isfinite(scores), scores, np.finfo(np.float64).min)
        for row, items in enumerate(exclude[s : s + block]):
            items = np.asarray(items, dtype=np.int64)
            items = items[items < local.size]
            scores[row, local[items][local[items] >= 0]] = -np.inf
        perm = np.argsort(rng.random(scores.shape), axis=1)  # [b, c]: position -> candidate, uniformly random
        top = top_k_items(np.take_along_axis(scores, perm, axis=1), k)  # lowest position first among ties
        picked = np.take_along_axis(perm, np.maximum(top, 0), axis=1)
        out.append(np.where(top >= 0, candidates[picked], -1))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def _cohort_metrics(
    model: Any,
    users: np.ndarray,
    candidates: np.ndarray,
    exclude: list[np.ndarray],
    relevant: list[np.ndarray],
    *,
    k: int,
    rng: np.random.Generator,
) -> tuple[dict[str, float], np.ndarray]:
    """Ranking metrics of one cohort, in the candidates' index space (coverage over the candidates), and
    ``[n_users]`` each user's NDCG@k."""
    lists = rank_candidates(model, users, candidates, exclude, k=k, rng=rng)
    local = np.full(max(int(candidates.max()) + 1 if candidates.size else 0, 1), -1, dtype=np.int64)
    local[candidates] = np.arange(candidates.size)
    lists_local = np.where(lists >= 0, local[np.maximum(lists, 0)], -1)
    rel_local = [local[r] for r in relevant]
    m = ranking_metrics(lists_local, rel_local, k=k, n_items=max(candidates.size, 1))
    out = {name: float(m[name]) for name in METRICS}
    out.update(
        n_users=int(m["n_users"]), n_candidates=int(candidates.size), n_relevant=int(sum(len(r) for r in relevant)), k=k
    )
    return out, ndcg_per_user(lists_local, rel_local, k=k, n_items=max(candidates.size, 1))


def cohorts(split: ColdStartSplit) -> dict[str, dict[str, Any]]:
    """Per cohort: ``users`` (``[n]``), ``candidates`` (``[c]`` items), ``exclude`` and ``relevant`` (per user).

    Only users with at least one relevant item are listed (see the module docstring for each cohort).
    """
    tu, ti, _ = split.train
    vu, vi, _ = split.test
    warm = split.warm_items
    seen = relevant_lists(tu, ti, split.n_users)
    on_warm = warm[vi]
    on_cold = np.isin(vi, split.cold_items)
    cold_user = np.isin(vu, split.cold_users)
    out: dict[str, dict[str, Any]] = {}
    for name, members, mask, candidates in (
        ("cold_users", split.cold_users, on_warm, np.flatnonzero(warm)),
        ("few_ratings_users", split.few_users, on_warm, np.flatnonzero(warm)),
        ("cold_items", None, on_cold & ~cold_user, split.cold_items),
    ):
        sel = mask if members is None else mask & np.isin(vu, members)
        rel = relevant_lists(vu[sel], vi[sel], split.n_users)
        users = np.unique(vu[sel])
        excl = [np.zeros(0, np.int64) for _ in users] if name == "cold_items" else [seen[x] for x in users]
        out[name] = {
            "users": users,
            "candidates": np.asarray(candidates, np.int64),
            "exclude": excl,
            "relevant": [np.unique(rel[x]) for x in users],
        }
    return out


def evaluate_cold_start(
    model: Any,
    split: ColdStartSplit,
    *,
    k: int = 10,
    seed: int = 0,
    only: tuple[str, ...] = COHORTS,
    per_user: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Ranking metrics of ``model`` on each cold-start cohort of ``split`` (see the module docstring).

    Args:
        model: Fitted on ``split.train``; has ``score_users(user_idx [b]) -> [b, n_items]`` for every user and
            item of the index space (a cold user's or item's score from whatever the model knows of it).
        split: The split.
        k: The cut-off K.
        seed: Seed of the tie-breaking order; cohort ``c`` uses ``default_rng([seed, c])``, whatever the model,
            so every model of a comparison sees the same order among its tied items.
        only: Cohorts to evaluate (of :data:`COHORTS`).
        per_user: If given, filled with cohort -> ``[n]`` each user's NDCG@k, in the order of
            :func:`cohorts`' ``users`` (so two models' values pair up user by user).

    Returns:
        Cohort -> :data:`METRICS` plus ``n_users`` (users evaluated), ``n_candidates`` (items ranked),
        ``n_relevant`` (relevant pairs) and ``k``. A cohort without users has NaN metrics.
    """
    start = time.perf_counter()
    out: dict[str, dict[str, float]] = {}
    for c, (name, cohort) in enumerate(cohorts(split).items()):
        if name not in only:
            continue
        if cohort["users"].size == 0 or cohort["candidates"].size == 0:
            logger.warning("cold-start cohort %s: no user to evaluate", name)
            out[name] = {
                **{m: float("nan") for m in METRICS},
                "n_users": 0,
                "n_candidates": int(cohort["candidates"].size),
                "n_relevant": 0,
                "k": k,
            }
            if per_user is not None:
                per_user[name] = np.full(cohort["users"].size, np.nan)
            continue
        rng = np.random.default_rng([seed, c])
        out[name], ndcg = _cohort_metrics(
            model, cohort["users"], cohort["candidates"], cohort["exclude"], cohort["relevant"], k=k, rng=rng
        )
        if per_user is not None:
            per_user[name] = ndcg
    logger.info(
        "cold-start evaluation of %s: %s in %.2fs",
        type(model).__name__,
        {n: round(m["ndcg"], 4) for n, m in out.items()},
        time.perf_counter() - start,
    )
    return out
