"""The cold-start serving rule: which model ranks a user with no or few ratings, and how it is calibrated.

Users without ratings are ranked by the two-tower model blended with segment
popularity (popularity among the users who share their demographics,
:class:`recsys.models.baselines.DemographicPopularity`); users with a few, by the
two-tower model blended with popularity (:func:`cold_start_model`). How much the
segment counts depends on how much the towers read from the side data, so the
weight is chosen on the two-tower model's validation users, users held out of its
training entirely and scored as new (:func:`choose_segment_weight`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

SEGMENT_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""Weights of segment popularity tried by :func:`choose_segment_weight`."""

_CALIBRATION_USERS = 2000
"""At most this many validation users (a seeded sample) choose the segment weight."""


def cold_start_model(
    tower: Any,
    popularity: Any,
    n_train: np.ndarray,
    popularity_weight: float,
    *,
    seed: int,
    segment: Any = None,
    segment_weight: float = 0.0,
) -> Any:
    """The model that ranks cold-start users' candidates (serving rule: :func:`recsys.stages.recommend.recommend`).

    Users without training ratings: the two-tower model (its logits already hold popularity,
    ``log(1 + count)``, and its cold temperature was chosen for such users), blended with
    popularity in the user's segment (``segment``, weight ``segment_weight``). Users with a few:
    the two-tower score blended with popularity (weight ``popularity_weight``), which ranks them
    better than either (the towers never saw a user with so few ratings in training). Blends are
    :func:`recsys.models.blend.blend`. ``bench/cold_start.py`` measures the rule against the two-tower
    model alone, popularity and segment popularity (figures in ``bench/README.md``).

    Args:
        tower: The fitted two-tower model.
        popularity: The fitted popularity baseline (same index spaces).
        n_train: ``[n_users]`` training ratings per user.
        popularity_weight: Popularity's weight for users with ratings (0: the two-tower model alone).
        seed: Seed of the blends' scale samples.
        segment: Fitted segment popularity (:class:`recsys.models.baselines.DemographicPopularity`; None: none).
        segment_weight: Its weight for users without ratings (0: the two-tower model alone).
    """
    from recsys.models.blend import PerUser, blend

    def mixed(other: Any, name: str, weight: float) -> Any:
        if other is None or weight <= 0:
            return tower
        return blend(
            {"two_tower": tower, name: other},
            {"two_tower": 1.0 - weight, name: weight},
            n_users=tower.n_users,
            seed=seed,
        )

    new_users = mixed(segment, "segment_popularity", segment_weight)
    few = mixed(popularity, "popularity", popularity_weight)
    if new_users is tower and few is tower:
        return tower
    return PerUser(few, new_users, np.asarray(n_train)[: tower.n_users] == 0)


def segment_weight(configured: float | str, tower: Any) -> float:
    """The weight of segment popularity for users without ratings: ``configured``
    (``Settings.cold_start_segment_weight``), or with ``"auto"`` the one the two-tower model's training chose
    on its validation users (``history["segment_weight"]``; 0 if it chose none)."""
    if configured == "auto":
        return float(tower.history.get("segment_weight", [0.0])[-1])
    return float(configured)


def as_new_users(tower: Any, user_x: np.ndarray, users: np.ndarray) -> Any:
    """A copy of a fitted two-tower model in which ``users`` are known by their side data alone.

    Args:
        tower: The fitted :class:`recsys.models.two_tower.TwoTowerModel` (with its towers).
        user_x: ``[n_users, d_u]`` user vectors the model was fitted with.
        users: ``[n]`` user indices to score as new users.

    Returns:
        The copy: rows ``users`` of its embeddings come from their vectors with the rating history blanked
        (what a new user's are), at the cold temperature.
    """
    x = tower.preprocessor.as_new_users(np.asarray(user_x)[users])
    emb = tower.user_emb.copy()
    emb[users] = tower.embed_users(x)
    temperature = (
        np.ones(tower.n_users, np.float32) if tower.user_temperature is None else tower.user_temperature.copy()
    )
    new_t = tower.temperatures(x)
    if new_t is not None:
        temperature[users] = new_t
    return dataclasses.replace(tower, user_emb=emb, user_temperature=temperature)


def choose_segment_weight(
    tower: Any,
    segment: Any,
    user_x: np.ndarray,
    cold_validation: tuple[np.ndarray, ...],
    *,
    seed: int,
    k: int = 10,
    weights: tuple[float, ...] = SEGMENT_WEIGHTS,
) -> tuple[float, list[float]]:
    """The segment popularity weight with the best NDCG@k of the validation users scored as new users.

    Each validation user (at most :data:`_CALIBRATION_USERS`, a seeded sample) ranks the whole catalogue
    by :func:`cold_start_model`'s model for users without ratings, embedded from their side data alone
    (:func:`as_new_users`); their held-out items are relevant.

    Args:
        tower: The fitted two-tower model (with its towers).
        segment: Segment popularity fitted on the two-tower model's training pairs (without the validation
            users' ratings).
        user_x: ``[n_users, d_u]`` user vectors the model was fitted with.
        cold_validation: ``(user_idx [n], item_idx [n], ...)`` pairs of users held out of training entirely.
        seed: Seed of the user sample and of the blends' scale samples.
        k: Cut-off.
        weights: Weights tried (0: the two-tower model alone).

    Returns:
        ``(chosen weight, [len(weights)] NDCG@k per weight)``.
    """
    from recsys.evaluation.metrics import ndcg_per_user, relevant_lists
    from recsys.models.blend import blend
    from recsys.retrieval.topk import top_k_items

    val_u, val_i = np.asarray(cold_validation[0], np.int64), np.asarray(cold_validation[1], np.int64)
    users = np.unique(val_u)
    if users.size > _CALIBRATION_USERS:
        users = np.sort(np.random.default_rng([seed, 13]).choice(users, _CALIBRATION_USERS, replace=False))
    keep = np.isin(val_u, users)
    relevant = relevant_lists(np.searchsorted(users, val_u[keep]), val_i[keep], users.size)
    new = as_new_users(tower, user_x, users)
    # The blend's spreads do not depend on the weights: measure them once, as cold_start_model's blend does.
    scale_t, scale_s = blend(
        {"two_tower": new, "segment_popularity": segment},
        {"two_tower": 0.5, "segment_popularity": 0.5},
        n_users=tower.n_users,
        seed=seed,
    ).params.scales
    by_tower = np.asarray(new.score_users(users), np.float64) / scale_t
    by_segment = np.asarray(segment.score_users(users), np.float64) / scale_s
    ndcg = []
    for w in weights:
        lists = top_k_items((1.0 - w) * by_tower + w * by_segment, k)
        ndcg.append(float(np.nanmean(ndcg_per_user(lists, relevant, k=k, n_items=tower.n_items))))
    return weights[int(np.argmax(ndcg))], ndcg
