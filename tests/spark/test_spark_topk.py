"""The retrieval benchmark's Spark harness: Spark's ``recommendForAllUsers`` lists equal ours on the same factors."""

from __future__ import annotations

import numpy as np
import pytest

from bench.harness.spark_topk import agreement_at_k, compare, ours_recommend_for_all, spark_recommend_for_all

pytestmark = pytest.mark.spark

N_USERS, N_ITEMS, RANK, K = 300, 200, 8, 10


def test_spark_lists_agree_with_ours(spark) -> None:
    sp = spark_recommend_for_all(N_USERS, N_ITEMS, RANK, K, seed=3, spark=spark, num_blocks=2)
    assert sp.user_factors.shape == (N_USERS, RANK) and sp.item_factors.shape == (N_ITEMS, RANK)
    assert np.abs(sp.user_factors).sum(axis=1).min() > 0  # every user and item was fitted
    assert np.abs(sp.item_factors).sum(axis=1).min() > 0
    np.testing.assert_array_equal(sp.users, np.arange(N_USERS))  # fewer than compare_users: every user
    assert sp.items.shape == (N_USERS, K) and (sp.items >= 0).all()
    assert sp.recommend_s > 0 and sp.n_ratings >= N_USERS * 10
    ours, seconds = ours_recommend_for_all(sp.user_factors, sp.item_factors, K)
    assert seconds > 0
    assert agreement_at_k(sp.items, ours) >= 0.99
    # Spark's order too, except where float32 and float64 scores swap near-equal neighbours
    assert (sp.items == ours).all(axis=1).mean() >= 0.95
    out = compare(sp)
    assert out["recommend_for_all_agreement_users"] == N_USERS
    assert out["spark_recommend_for_all_shape"] == [N_USERS, N_ITEMS, RANK, K]
    assert out["recommend_for_all_agreement_at_k"] == agreement_at_k(sp.items, ours)
    assert out["recommend_for_all_ratio"] == pytest.approx(
        out["ours_recommend_for_all_s"] / out["spark_recommend_for_all_s"]
    )


def test_sampled_users(spark) -> None:
    sp = spark_recommend_for_all(120, 60, 4, 5, seed=1, spark=spark, num_blocks=2, compare_users=50)
    assert sp.users.size == 50 and (np.diff(sp.users) > 0).all()
    ours, _ = ours_recommend_for_all(sp.user_factors, sp.item_factors, 5)
    assert agreement_at_k(sp.items, ours[sp.users]) >= 0.99


def test_agreement_at_k() -> None:
    a = np.array([[1, 2, 3], [4, 5, 6]])
    assert agreement_at_k(a, a[:, ::-1]) == 1.0
    assert agreement_at_k(a, np.array([[1, 2, 9], [-1, -1, -1]])) == pytest.approx(2 / 6)
    assert agreement_at_k(np.full((1, 2), -1), np.full((1, 2), -1)) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        agreement_at_k(a, a[:, :2])
