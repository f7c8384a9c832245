"""Offline evaluation metrics: rating error, top-K accuracy and beyond-accuracy.

Everything here is numpy only (no TensorFlow, no Spark) and pure: arrays in,
floats out. The Spark implementation of the ranking metrics, for data that does
not fit one machine, is :mod:`recsys.evaluation.spark_metrics`; it follows the
same definitions and is tested for parity with this module.

Conventions shared by the functions below:

* Users and items are dense indices (``user_idx`` in ``[0, n_users)``,
  ``item_idx`` in ``[0, n_items)``).
* A ranked list is a row of item indices, best first; ``-1`` is padding ("no
  item") and counts as a miss in every slot it takes.
* Accuracy metrics are averaged over *evaluated* users (users with at least one
  relevant item); beyond-accuracy metrics (coverage, novelty, diversity,
  popularity bias) describe the recommendation lists themselves and use every
  row given.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

__all__ = ["ranking_metrics", "rating_metrics", "relevant_lists"]

logger = logging.getLogger(__name__)

# Users per block in the diversity computation: bounds the [block, k, n_genres] temporary.
_DIVERSITY_BLOCK = 16_384


def rating_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    rating_min: float,
    rating_max: float,
    known: np.ndarray | None = None,
) -> dict[str, float]:
    """RMSE and MAE of predicted ratings, clipped to the rating scale.

    Definitions, with ``p̂ = clip(pred, rating_min, rating_max)`` over the ``n``
    pairs: ``rmse = sqrt(mean((p̂ - truth)²))`` and ``mae = mean(|p̂ - truth|)``.

    Unseen users and items: every pair is scored, including pairs whose user or
    item the model was not fitted on. Those pairs carry the model's fallback
    prediction (for mean-normalised CF, the item mean μ_i, or the global mean
    for an unknown item) and are included in ``rmse`` and ``mae`` like any
    other pair; ``n_unknown`` counts them so a report can say how many there
    were.

    Args:
        pred: ``[n]`` predicted ratings (one per test pair).
        truth: ``[n]`` observed ratings of the same pairs.
        rating_min: Lowest rating of the scale (e.g. 1 for MovieLens).
        rating_max: Highest rating of the scale (e.g. 5 for MovieLens).
        known: Optional ``[n]`` bool mask, True where both the user and the item
            of the pair were in the model's training data.

    Returns:
        ``{"rmse", "mae", "n", "n_unknown"}``: the errors (NaN when ``n == 0``),
        the number of pairs scored, and the number of pairs with ``known`` False
        (0 when ``known`` is not given).

    Raises:
        ValueError: On mismatched shapes, non-finite values or an empty scale.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.ndim != 1 or pred.shape != truth.shape:
        raise ValueError(f"pred and truth must be [n] arrays of one length, got {pred.shape} and {truth.shape}")
    if not rating_min < rating_max:
        raise ValueError(f"rating_min ({rating_min}) must be below rating_max ({rating_max})")
    if not (np.isfinite(pred).all() and np.isfinite(truth).all()):
        raise ValueError("pred and truth must be finite")
    n_unknown = 0
    if known is not None:
        known = np.asarray(known)
        if known.dtype != np.bool_ or known.shape != pred.shape:
            raise ValueError(f"known must be a [n] bool array, got {known.dtype} {known.shape}")
        n_unknown = int(np.count_nonzero(~known))
    n = int(pred.size)
    if n == 0:
        return {"rmse": math.nan, "mae": math.nan, "n": 0, "n_unknown": 0}
    err = np.clip(pred, rating_min, rating_max) - truth
    return {
        "rmse": float(np.sqrt(np.mean(err * err))),
        "mae": float(np.mean(np.abs(err))),
        "n": n,
        "n_unknown": n_unknown,
    }


def relevant_lists(user_idx: np.ndarray, item_idx: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Group test pairs into per-user arrays of items.

    Args:
        user_idx: ``[n]`` user indices in ``[0, n_users)``; grain one test pair.
        item_idx: ``[n]`` item indices of the same pairs.
        n_users: Number of users (length of the result).

    Returns:
        A list of length ``n_users``; entry ``u`` is the int64 array of user
        ``u``'s items in input order (empty for users without pairs).

    Raises:
        ValueError: On mismatched shapes or user indices outside ``[0, n_users)``.
    """
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    if user_idx.ndim != 1 or user_idx.shape != item_idx.shape:
        raise ValueError(
            f"user_idx and item_idx must be [n] arrays of one length, got {user_idx.shape}, {item_idx.shape}"
        )
    if user_idx.size and (user_idx.min() < 0 or user_idx.max() >= n_users):
        raise ValueError(f"user_idx outside [0, {n_users})")
    order = np.argsort(user_idx, kind="stable")
    counts = np.bincount(user_idx, minlength=n_users)
    return np.split(item_idx[order], np.cumsum(counts)[:-1]) if n_users else []


def ranking_metrics(
    recommended: np.ndarray,
    relevant: list[np.ndarray],
    *,
    k: int = 10,
    n_items: int,
    item_popularity: np.ndarray | None = None,
    n_train_users: int | None = None,
    item_genres: np.ndarray | None = None,
    popularity_baseline: np.ndarray | None = None,
) -> dict[str, float]:
    """Top-K accuracy and beyond-accuracy metrics of ranked recommendation lists.

    Notation, for user ``u``: ``rec_K`` is the first ``K`` entries of row ``u``
    of ``recommended``; ``rel`` is the user's set of relevant items (duplicates
    in ``relevant[u]`` count once); ``rel_r`` is 1 when the item at rank ``r``
    (1-based) is in ``rel``, else 0 (padding ``-1`` is always 0).

    Accuracy metrics, each averaged over the *evaluated* users, i.e. users with
    a non-empty ``rel``. Users with an empty ``rel`` are skipped (they have no
    defined recall or NDCG) and counted in ``n_users_skipped``:

    * precision@K = |rec_K ∩ rel| / K (padding slots count in K).
    * recall@K = |rec_K ∩ rel| / |rel|.
    * NDCG@K, binary gains: DCG = Σ_{r=1..K} rel_r / log2(r+1);
      IDCG = Σ_{r=1..min(|rel|,K)} 1 / log2(r+1); NDCG = DCG / IDCG.
    * MAP@K: AP@K = (1 / min(|rel|,K)) Σ_{r=1..K} P@r · rel_r, with
      P@r = |rec_r ∩ rel| / r; MAP@K is the mean of AP@K.
    * hit rate@K: 1 if at least one of rec_K is in rel, else 0.

    Beyond-accuracy metrics, over every row of ``recommended`` (evaluated and
    skipped users alike) and every non-padding slot of the first K:

    * coverage = |distinct items in all rows' rec_K| / n_items.
    * novelty = mean over recommended (user, item) slots of -log2(p_i), with
      p_i = max(item_popularity[i], 1) / n_train_users: the share of training
      users who rated item i; an item no training user rated is smoothed to a
      count of 1 so its self-information is finite. NaN without
      ``item_popularity``.
    * diversity (intra-list diversity by genre) = mean over rows with at least
      two items of the mean over the row's item pairs {i, j} of
      1 - cos(genres_i, genres_j); an item whose genre vector is all zero has
      similarity 0 with every item. NaN without ``item_genres``.
    * popularity_bias = ARP(recommended) / ARP(popularity_baseline), where ARP
      (average recommendation popularity) is the mean over slots of
      item_popularity[i] (raw counts). 1.0 means as popularity-biased as the
      popularity baseline; lower is less biased. NaN without
      ``popularity_baseline`` or ``item_popularity``.

    Args:
        recommended: ``[n_users, >=k]`` int item indices, row ``u`` user ``u``'s
            ranked list, best first; only the first ``k`` columns are used; ``-1``
            is padding. A row must not repeat an item.
        relevant: List of length ``n_users``; ``relevant[u]`` is an int array of
            user ``u``'s relevant items (e.g. from :func:`relevant_lists`).
        k: The cut-off K (>= 1).
        n_items: Catalogue size (items are ``[0, n_items)``).
        item_popularity: Optional ``[n_items]`` count of training users who rated
            each item.
        n_train_users: Number of training users; required with ``item_popularity``
            (the denominator of p_i).
        item_genres: Optional ``[n_items, n_genres]`` multi-hot (float) genre
            vectors.
        popularity_baseline: Optional ``[n_users, >=k]`` recommendations of the
            popularity baseline for the same users (same padding rules).

    Returns:
        ``precision``, ``recall``, ``ndcg``, ``map``, ``hit_rate`` (NaN when no
        user is evaluated), ``coverage``, ``novelty``, ``diversity``,
        ``popularity_bias``, ``n_users`` (users evaluated), ``n_users_skipped``
        (users with no relevant item) and ``k``.

    Raises:
        ValueError: On bad shapes, item indices outside the catalogue, repeated
            items in a row, or ``item_popularity`` without a valid ``n_train_users``.
    """
    t0 = time.perf_counter()
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    rec = _check_lists(recommended, k, n_items, "recommended")
    n_users = rec.shape[0]
    valid = rec >= 0
    hits, n_rel = _hits(rec, relevant, n_items)
    evaluated = n_rel > 0
    n_eval = int(np.count_nonzero(evaluated))
    out: dict[str, float] = {}
    if n_eval:
        h = hits[evaluated].astype(np.float64)  # [n_eval, k]
        m = n_rel[evaluated].astype(np.float64)  # [n_eval] |rel|
        ranks = np.arange(1, k + 1, dtype=np.float64)
        n_hits = h.sum(axis=1)
        capped = np.minimum(m, k)
        ap = (np.cumsum(h, axis=1) / ranks * h).sum(axis=1) / capped
        out.update(
            precision=float(np.mean(n_hits / k)),
            recall=float(np.mean(n_hits / m)),
            ndcg=float(np.mean(_ndcg(h, m, k))),
            map=float(np.mean(ap)),
            hit_rate=float(np.mean(n_hits > 0)),
        )
    else:
        logger.warning("ranking_metrics: no user has a relevant item; accuracy metrics are NaN")
        out.update(precision=math.nan, recall=math.nan, ndcg=math.nan, map=math.nan, hit_rate=math.nan)

    slots = rec[valid]  # every recommended (user, item) slot, padding dropped
    out["coverage"] = float(np.count_nonzero(np.bincount(slots, minlength=n_items)) / n_items)
    out["novelty"] = math.nan
    out["popularity_bias"] = math.nan
    if item_popularity is not None:
        pop, n_train = _check_popularity(item_popularity, n_items, n_train_users)
        if slots.size:
            p = np.maximum(pop[slots], 1.0) / n_train
            out["novelty"] = float(np.mean(-np.log2(p)))
        if popularity_baseline is not None:
            base = _check_lists(popularity_baseline, k, n_items, "popularity_baseline")
            if base.shape[0] != n_users:
                raise ValueError(f"popularity_baseline must have {n_users} rows, got {base.shape[0]}")
            base_slots = base[base >= 0]
            arp_base = float(pop[base_slots].mean()) if base_slots.size else 0.0
            if slots.size and arp_base > 0:
                out["popularity_bias"] = float(pop[slots].mean()) / arp_base
    out["diversity"] = math.nan if item_genres is None else _intra_list_diversity(rec, valid, item_genres, n_items)

    out["n_users"] = n_eval
    out["n_users_skipped"] = n_users - n_eval
    out["k"] = k
    logger.info(
        "ranking_metrics@%d: %d users evaluated, %d skipped (no relevant item), %.3f s",
        k,
        n_eval,
        n_users - n_eval,
        time.perf_counter() - t0,
    )
    return out


def _hits(rec: np.ndarray, relevant: list[np.ndarray], n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hits [n_users, k] bool, n_rel [n_users])``: which slots of ``rec`` are relevant, and ``|rel|`` per user."""
    n_users = rec.shape[0]
    if len(relevant) != n_users:
        raise ValueError(f"relevant must have one entry per row of recommended ({n_users}), got {len(relevant)}")
    # Relevant pairs as sorted unique keys user * n_items + item (CSR-like membership test).
    n_rel_raw = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=n_users)
    if n_rel_raw.sum():
        rel_items = np.concatenate([np.asarray(r, dtype=np.int64).ravel() for r in relevant])
        if rel_items.min() < 0 or rel_items.max() >= n_items:
            raise ValueError(f"relevant holds item indices outside [0, {n_items})")
        rel_keys = np.sort(np.repeat(np.arange(n_users, dtype=np.int64), n_rel_raw) * n_items + rel_items)
        rel_keys = rel_keys[np.concatenate(([True], rel_keys[1:] != rel_keys[:-1]))]  # sorted, deduplicated
    else:
        rel_keys = np.empty(0, dtype=np.int64)
    n_rel = np.bincount(rel_keys // n_items, minlength=n_users)
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + rec
    pos = np.minimum(np.searchsorted(rel_keys, rec_keys), max(rel_keys.size - 1, 0))
    valid = rec >= 0
    hits = valid & (rel_keys[pos] == rec_keys) if rel_keys.size else np.zeros_like(valid)
    return hits, n_rel


def _ndcg(h: np.ndarray, m: np.ndarray, k: int) -> np.ndarray:
    """``[n]`` NDCG@k of hit rows ``h [n, k]`` (float) with ``m [n]`` relevant items each (all ``m >= 1``)."""
    discount = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # [k]
    idcg = np.cumsum(discount)[np.minimum(m, k).astype(np.int64) - 1]
    return (h @ discount) / idcg


def ndcg_per_user(recommended: np.ndarray, relevant: list[np.ndarray], *, k: int, n_items: int) -> np.ndarray:
    """``[n_users]`` each user's NDCG@k as :func:`ranking_metrics` defines it (NaN for a user without relevant items).

    The mean over the finite entries is :func:`ranking_metrics`' ``ndcg``; per user, two models' lists can be
    compared pair by pair (e.g. a paired bootstrap of their difference).
    """
    rec = _check_lists(recommended, k, n_items, "recommended")
    hits, n_rel = _hits(rec, relevant, n_items)
    out = np.full(rec.shape[0], np.nan)
    has = n_rel > 0
    out[has] = _ndcg(hits[has].astype(np.float64), n_rel[has].astype(np.float64), k)
    return out


def _check_lists(lists: np.ndarray, k: int, n_items: int, name: str) -> np.ndarray:
    """Validate ``[n_users, >=k]`` ranked lists and return their first ``k`` columns as int64."""
    arr = np.asarray(lists)
    if arr.ndim != 2 or arr.shape[1] < k:
        raise ValueError(f"{name} must be [n_users, >=k={k}], got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer item indices, got {arr.dtype}")
    arr = arr[:, :k].astype(np.int64)
    if arr.size and (arr.min() < -1 or arr.max() >= n_items):
        raise ValueError(f"{name} holds item indices outside [0, {n_items}) other than the padding -1")
    srt = np.sort(arr, axis=1)
    if np.any((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)):
        raise ValueError(f"{name} repeats an item within a row")
    return arr


def _check_popularity(item_popularity: np.ndarray, n_items: int, n_train_users: int | None) -> tuple[np.ndarray, float]:
    """Validate ``[n_items]`` training-user counts; return them as float64 with ``n_train_users``."""
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.shape != (n_items,):
        raise ValueError(f"item_popularity must be [n_items={n_items}], got shape {pop.shape}")
    if n_train_users is None or n_train_users < 1:
        raise ValueError("n_train_users (>= 1) is required with item_popularity")
    if pop.size and (pop.min() < 0 or pop.max() > n_train_users):
        raise ValueError(f"item_popularity must count training users, within [0, n_train_users={n_train_users}]")
    return pop, float(n_train_users)


def _intra_list_diversity(rec: np.ndarray, valid: np.ndarray, item_genres: np.ndarray, n_items: int) -> float:
    """Mean over rows with >= 2 items of the mean pairwise (1 - cosine) of genre vectors.

    With unit vectors v_i (zero for an item without genres), the sum of pairwise
    similarities of a row is (‖Σ v_i‖² - Σ ‖v_i‖²) / 2, so no [k, k] matrix is built.
    """
    g = np.asarray(item_genres, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != n_items:
        raise ValueError(f"item_genres must be [n_items={n_items}, n_genres], got shape {g.shape}")
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    unit = np.divide(g, norms, out=np.zeros_like(g), where=norms > 0)
    n_valid = valid.sum(axis=1)
    rows = np.flatnonzero(n_valid >= 2)
    if rows.size == 0:
        return math.nan
    total = 0.0
    for start in range(0, rows.size, _DIVERSITY_BLOCK):
        r = rows[start : start + _DIVERSITY_BLOCK]
        v = unit[np.where(valid[r], rec[r], 0)] * valid[r][..., None]  # [block, k, n_genres]
        pair_sim = (np.square(v.sum(axis=1)).sum(axis=1) - np.square(v).sum(axis=(1, 2))) / 2.0
        n_pairs = n_valid[r] * (n_valid[r] - 1) / 2.0
        total += float(np.sum(1.0 - pair_sim / n_pairs))
    return total / rows.size


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of the paired differences ``a - b`` and its percentile bootstrap interval.

    Pairs with a non-finite side (e.g. a user without relevant items) are left out.

    Args:
        a: ``[n]`` one model's per-user values (e.g. :func:`ndcg_per_user`).
        b: ``[n]`` another's, for the same users in the same order.
        n_resamples: Bootstrap resamples of the users (with replacement).
        level: Coverage of the interval.
        seed: Seed of the resampling.

    Returns:
        ``(mean difference, lower, upper)``; NaNs without a finite pair.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal shapes, got {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if d.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for s in range(0, n_resamples, 256):  # bounded memory: [256, n] indices at a time
        idx = rng.integers(0, d.size, size=(min(256, n_resamples - s), d.size))
        means[s : s + idx.shape[0]] = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(d.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))
