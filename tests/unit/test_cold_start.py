"""Cold-start split and per-cohort evaluation: sizes, disjointness, seeds, and hand-checked metrics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from bench.harness.cold_start import (
    COHORTS,
    ColdStartSplit,
    carve_validation,
    cold_start_split,
    cold_start_split_frame,
    evaluate_cold_start,
    rank_candidates,
)


def _dense(n_users: int = 100, n_items: int = 50, density: float = 0.4, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    return u, i, rng.integers(1, 6, size=u.size).astype(np.float64)


def test_split_sizes_roles_and_disjointness() -> None:
    u, i, r = _dense()
    s = cold_start_split(u, i, r, n_users=100, n_items=50, seed=3)
    assert s.cold_users.size == 10 and s.cold_items.size == 5 and s.few_users.size == 10
    assert not set(s.cold_users) & set(s.few_users)
    assert s.train[0].size + s.test[0].size == u.size == s.is_train.size
    np.testing.assert_array_equal(u[s.is_train], s.train[0])
    # Cold users and cold items have no training rating; every rating of theirs is test.
    assert not np.isin(s.train[0], s.cold_users).any() and not np.isin(s.train[1], s.cold_items).any()
    assert np.isin(u, s.cold_users).sum() + np.isin(i, s.cold_items).sum() - s.n_double_cold == np.count_nonzero(
        np.isin(u, s.cold_users) | np.isin(i, s.cold_items)
    )
    # Few-ratings users keep exactly their drawn 1..5 training ratings, all on warm items, and have test ratings.
    kept = np.bincount(s.train[0], minlength=100)[s.few_users]
    np.testing.assert_array_equal(kept, s.few_kept)
    assert kept.min() >= 1 and kept.max() <= 5 and len(set(kept.tolist())) > 1
    assert np.isin(s.few_users, s.test[0]).all()
    # Everybody else keeps every rating on a warm item.
    other = ~np.isin(u, np.r_[s.cold_users, s.few_users]) & ~np.isin(i, s.cold_items)
    assert s.is_train[other].all()
    # No (user, item) pair is on both sides.
    pairs = lambda t: set(zip(t[0].tolist(), t[1].tolist(), strict=True))  # noqa: E731
    assert not pairs(s.train) & pairs(s.test)
    assert s.summary()["n_warm_items"] == 45


def test_few_ratings_count_is_uniform_on_one_to_five() -> None:
    u, i, r = _dense(n_users=2000, n_items=40, density=0.5, seed=1)
    s = cold_start_split(u, i, r, n_users=2000, n_items=40, cold_item_fraction=0.0, few_user_fraction=0.5, seed=0)
    counts = np.bincount(s.few_kept, minlength=6)[1:]
    assert counts.sum() == 1000 and counts.min() > 150, counts  # 200 expected per value


def test_split_is_seeded_and_independent_of_row_order() -> None:
    u, i, r = _dense()
    a = cold_start_split(u, i, r, n_users=100, n_items=50, seed=5)
    b = cold_start_split(u, i, r, n_users=100, n_items=50, seed=5)
    np.testing.assert_array_equal(a.is_train, b.is_train)
    perm = np.random.default_rng(9).permutation(u.size)
    c = cold_start_split(u[perm], i[perm], r[perm], n_users=100, n_items=50, seed=5)
    np.testing.assert_array_equal(c.is_train, a.is_train[perm])
    np.testing.assert_array_equal(c.cold_users, a.cold_users)
    d = cold_start_split(u, i, r, n_users=100, n_items=50, seed=6)
    assert not np.array_equal(d.cold_users, a.cold_users)


def test_folds_rotate_disjoint_cohorts_that_cover_the_users() -> None:
    u, i, r = _dense()
    folds = [
        cold_start_split(
            u, i, r, n_users=100, n_items=50, cold_user_fraction=0.2, cold_item_fraction=0.2, seed=5, fold=f
        )
        for f in range(5)
    ]
    users = np.concatenate([s.cold_users for s in folds])
    items = np.concatenate([s.cold_items for s in folds])
    assert np.array_equal(np.sort(users), np.unique(u)) and np.array_equal(np.sort(items), np.unique(i))
    assert all(s.fold == f and s.cold_users.size == 20 and s.cold_items.size == 10 for f, s in enumerate(folds))
    for s in folds:  # each fold is a valid split: few-ratings users come from its warm users
        assert not np.isin(s.few_users, s.cold_users).any() and not np.isin(s.train[1], s.cold_items).any()
    again = cold_start_split(
        u, i, r, n_users=100, n_items=50, cold_user_fraction=0.2, cold_item_fraction=0.2, seed=5, fold=3
    )
    np.testing.assert_array_equal(again.is_train, folds[3].is_train)
    with pytest.raises(ValueError, match="fold must be in"):
        cold_start_split(u, i, r, n_users=100, n_items=50, cold_user_fraction=0.2, seed=5, fold=5)


def test_frame_split_column_and_validation_share() -> None:
    u, i, r = _dense()
    frame = pd.DataFrame({"user_idx": u, "item_idx": i, "rating": r, "ts": np.arange(u.size)})
    out, s = cold_start_split_frame(frame, n_users=100, n_items=50, seed=3)
    assert list(out.columns) == ["user_idx", "item_idx", "rating", "ts", "split"]
    np.testing.assert_array_equal(out["split"] == "train", s.is_train)
    fit, val, cold = carve_validation(s, fraction=0.2, seed=1)
    assert fit[0].size + val[0].size == s.train[0].size and 0.1 < val[0].size / s.train[0].size < 0.25
    assert cold[0].size == 0
    assert not np.isin(val[0], s.few_users).any()  # few-ratings users keep all of their 1..5 ratings
    np.testing.assert_array_equal(np.bincount(fit[0], minlength=100)[s.few_users], s.few_kept)
    # users held out entirely: warm users only, none of their ratings left in fitting or validation
    fit, val, cold = carve_validation(s, fraction=0.2, seed=1, user_fraction=0.25)
    assert fit[0].size + val[0].size + cold[0].size == s.train[0].size
    held = np.unique(cold[0])
    warm = np.setdiff1d(np.unique(s.train[0]), s.few_users)
    assert 0.1 < held.size / warm.size < 0.4 and not np.isin(held, s.few_users).any()
    assert not np.isin(fit[0], held).any() and not np.isin(val[0], held).any()
    np.testing.assert_array_equal(np.bincount(fit[0], minlength=100)[s.few_users], s.few_kept)


def test_bad_arguments() -> None:
    u, i, r = _dense()
    with pytest.raises(ValueError, match="outside"):
        cold_start_split(u, i, r, n_users=10, n_items=50)
    with pytest.raises(ValueError, match="cold_user_fraction"):
        cold_start_split(u, i, r, n_users=100, n_items=50, cold_user_fraction=1.0)


class _Fixed:
    """Scores from a fixed ``[n_users, n_items]`` matrix."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.scores[np.asarray(user_idx)]


def _hand_split() -> ColdStartSplit:
    """4 users x 7 items. Users 0, 1 warm; user 2 few-ratings (keeps item 0); user 3 cold; items 5, 6 cold.

    Training: user 0 rated 0 1 2, user 1 rated 0 1 3 4, user 2 rated 0. Test: user 0 rated 5 6, user 1 rated
    5 6, user 2 rated 1 2 3 4 5, user 3 rated 1 2 5 (3 x 5 is the one double-cold rating).
    """
    tu, ti = np.array([0, 0, 0, 1, 1, 1, 1, 2]), np.array([0, 1, 2, 0, 1, 3, 4, 0])
    vu, vi = np.array([0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3]), np.array([5, 6, 5, 6, 1, 2, 3, 4, 5, 1, 2, 5])
    return ColdStartSplit(
        train=(tu, ti, np.ones(tu.size)),
        test=(vu, vi, np.ones(vu.size)),
        is_train=np.r_[np.ones(tu.size, bool), np.zeros(vu.size, bool)],
        cold_users=np.array([3]),
        cold_items=np.array([5, 6]),
        few_users=np.array([2]),
        few_kept=np.array([1]),
        n_users=4,
        n_items=7,
        seed=0,
    )


def test_evaluation_on_a_hand_checked_case() -> None:
    s = _hand_split()
    assert s.warm_items.tolist() == [True] * 5 + [False] * 2 and s.n_double_cold == 1
    # Every user prefers low item indices, except that item 6 beats everything.
    scores = np.tile(-np.arange(7, dtype=float), (4, 1))
    scores[:, 6] = 10.0
    m = evaluate_cold_start(_Fixed(scores), s, k=2, seed=0)
    assert list(m) == list(COHORTS)
    # Cold user 3 ranks warm items 0..4: top-2 [0, 1], relevant {1, 2} (item 5 is cold: not in this cohort).
    cu = m["cold_users"]
    assert (cu["n_users"], cu["n_candidates"], cu["n_relevant"]) == (1, 5, 2)
    assert cu["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert (cu["precision"], cu["recall"], cu["map"], cu["hit_rate"]) == pytest.approx((0.5, 0.5, 0.25, 1.0))
    assert cu["coverage"] == pytest.approx(2 / 5)
    # Few-ratings user 2 never gets its training item 0 back: top-2 [1, 2], relevant {1, 2, 3, 4}.
    fr = m["few_ratings_users"]
    assert (fr["n_users"], fr["n_candidates"]) == (1, 5)
    assert (fr["ndcg"], fr["precision"], fr["recall"], fr["map"]) == pytest.approx((1.0, 1.0, 0.5, 1.0))
    # Cold items: users 0, 1 (rated 5 and 6) and 2 (rated 5) rank [6, 5]; cold user 3 is in no cohort here.
    ci = m["cold_items"]
    assert (ci["n_users"], ci["n_candidates"], ci["coverage"]) == (3, 2, 1.0)
    assert ci["precision"] == pytest.approx((1 + 1 + 0.5) / 3) and ci["recall"] == pytest.approx(1.0)
    assert ci["ndcg"] == pytest.approx((1 + 1 + 1 / math.log2(3)) / 3)
    # Only some cohorts; a cohort without users has NaN metrics.
    empty = dataclasses.replace(s, cold_users=np.zeros(0, np.int64))
    m = evaluate_cold_start(_Fixed(scores), empty, k=2, only=("cold_users",))
    assert list(m) == ["cold_users"] and math.isnan(m["cold_users"]["ndcg"]) and m["cold_users"]["n_users"] == 0


def test_ties_are_broken_at_random_not_by_index() -> None:
    flat = _Fixed(np.zeros((400, 10)))
    lists = rank_candidates(
        flat, np.arange(400), np.arange(10), [np.zeros(0, int)] * 400, k=1, rng=np.random.default_rng(0)
    )
    firsts = np.bincount(lists[:, 0], minlength=10)
    assert firsts.min() > 15, firsts  # about 40 each; by index it would be item 0 every time
    again = rank_candidates(
        flat, np.arange(400), np.arange(10), [np.zeros(0, int)] * 400, k=1, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(lists, again)
    # Ties only: a strictly better item still wins, and excluded items never appear (padding -1 past them).
    scores = np.zeros((3, 10))
    scores[:, 7] = 1.0
    lists = rank_candidates(
        _Fixed(scores),
        np.arange(3),
        np.array([2, 7, 9]),
        [np.array([9]), np.array([2, 9]), np.zeros(0, int)],
        k=3,
        rng=np.random.default_rng(1),
    )
    assert lists[0].tolist() == [7, 2, -1] and lists[1].tolist() == [7, -1, -1] and lists[2, 0] == 7


def test_tied_model_scores_chance_level_on_cold_items() -> None:
    # 200 users each rated 1 of 10 cold items; a model that ties every cold item gets about 1/10 hits at K=1.
    n_u, n_i = 200, 20
    rng = np.random.default_rng(2)
    tu, ti = np.repeat(np.arange(n_u), 3), np.tile(np.arange(3), n_u)
    vu, vi = np.arange(n_u), 10 + rng.integers(10, size=n_u)
    s = ColdStartSplit(
        train=(tu, ti, np.ones(tu.size)),
        test=(vu, vi, np.ones(n_u)),
        is_train=np.zeros(0, bool),
        cold_users=np.zeros(0, np.int64),
        cold_items=np.arange(10, 20),
        few_users=np.zeros(0, np.int64),
        few_kept=np.zeros(0, np.int64),
        n_users=n_u,
        n_items=n_i,
        seed=0,
    )
    m = evaluate_cold_start(_Fixed(np.zeros((n_u, n_i))), s, k=1, seed=0, only=("cold_items",))["cold_items"]
    assert 0.05 < m["precision"] < 0.16 and m["coverage"] == 1.0, m
