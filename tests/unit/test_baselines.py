"""Baselines as rankers (score_users) and the user + item bias baseline: known answers and planted biases."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation.protocol import Split, evaluate
from recsys.models.base import Recommender
from recsys.models.baselines import GlobalMean, ItemMean, Popularity, UserItemBias

# item 0: 5, 4 -> 4.5; item 1: 2 -> 2.0; item 3: 1 -> 1.0; items 2, 4 unrated; global mean 12 / 4 = 3.0
OBS_USERS = np.array([0, 1, 0, 2])
OBS_ITEMS = np.array([0, 0, 1, 3])
OBS_RATINGS = np.array([5.0, 4.0, 2.0, 1.0])


def test_item_mean_scores_every_user_with_the_item_means() -> None:
    model = ItemMean().fit(OBS_USERS, OBS_ITEMS, OBS_RATINGS, n_users=3, n_items=5)
    scores = model.score_users(np.array([0, 2, 500]))  # an unknown user too
    assert scores.shape == (3, 5) and scores.dtype == np.float64
    np.testing.assert_array_equal(scores, np.tile([4.5, 2.0, 3.0, 1.0, 3.0], (3, 1)))
    scores[0, 0] = -1.0  # a writable copy, not a view of the model's means
    assert model.means_[0] == 4.5


def test_popularity_scores_are_counts_and_it_does_not_predict_ratings() -> None:
    items = np.array([2, 2, 0, 0, 3, 1, 1, 1, 5, 5])
    model = Popularity().fit(np.zeros(items.size, dtype=int), items, np.ones(items.size), n_users=1, n_items=7)
    assert model.predicts_ratings is False
    scores = model.score_users(np.array([0, 3]))
    np.testing.assert_array_equal(scores, np.tile([2, 3, 2, 1, 0, 2, 0], (2, 1)))
    assert model.score_users(np.array([], dtype=int)).shape == (0, 7)


def test_user_item_bias_one_sweep_known_answer() -> None:
    # mu = 3; reg 1 on both sides.
    # Item step (b_u = 0): b_0 = (2 + 1) / (1 + 2) = 1, b_1 = -1 / 2, b_3 = -2 / 2 = -1, unrated items 0.
    # User step: u0 = ((5-3-1) + (2-3+0.5)) / (1 + 2) = 0.5 / 3; u1 = (4-3-1) / 2 = 0; u2 = (1-3+1) / 2 = -0.5.
    model = UserItemBias(reg_user=1.0, reg_item=1.0, n_iter=1).fit(OBS_USERS, OBS_ITEMS, OBS_RATINGS, 3, 5)
    assert isinstance(model, Recommender)
    assert model.mu_ == 3.0
    np.testing.assert_allclose(model.item_bias_, [1.0, -0.5, 0.0, -1.0, 0.0])
    np.testing.assert_allclose(model.user_bias_, [0.5 / 3, 0.0, -0.5])
    pred = model.predict(np.array([0, 2, 7, 7, -1]), np.array([0, 3, 0, 99, 2]))
    # unknown user 7 and -1: b_u = 0; unknown item 99 and unrated item 2: b_i = 0
    np.testing.assert_allclose(pred, [3 + 0.5 / 3 + 1, 3 - 0.5 - 1, 4.0, 3.0, 3.0])


def test_user_item_bias_recovers_planted_biases_and_beats_item_mean() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 300, 120
    bu, bi = rng.normal(scale=0.6, size=n_users), rng.normal(scale=0.8, size=n_items)
    u, i = np.nonzero(rng.random((n_users, n_items)) < 0.3)
    r = 3.5 + bu[u] + bi[i] + rng.normal(scale=0.3, size=u.size)
    test = rng.random(u.size) < 0.2
    model = UserItemBias(reg_user=1.0, reg_item=1.0).fit(u[~test], i[~test], r[~test], n_users, n_items)
    # The planted biases are recovered up to a shared shift (the model's mu absorbs the mean).
    assert np.corrcoef(model.item_bias_, bi)[0, 1] > 0.97
    assert np.corrcoef(model.user_bias_, bu)[0, 1] > 0.97
    err = np.sqrt(np.mean((model.predict(u[test], i[test]) - r[test]) ** 2))
    item_err = np.sqrt(
        np.mean(
            (ItemMean().fit(u[~test], i[~test], r[~test], n_users, n_items).predict(u[test], i[test]) - r[test]) ** 2
        )
    )
    assert err < 0.6 * item_err, (err, item_err)
    assert err < 0.4  # the noise is 0.3


def test_user_item_bias_sweeps_converge_and_shrink() -> None:
    rng = np.random.default_rng(5)
    u, i = rng.integers(0, 50, 800), rng.integers(0, 40, 800)
    r = rng.integers(1, 6, 800).astype(float)
    a = UserItemBias(n_iter=50).fit(u, i, r, 50, 40)
    b = UserItemBias(n_iter=100).fit(u, i, r, 50, 40)
    np.testing.assert_allclose(a.item_bias_, b.item_bias_, atol=1e-6)
    # stronger regularisation shrinks the biases towards 0
    strong = UserItemBias(reg_user=1000.0, reg_item=1000.0, n_iter=50).fit(u, i, r, 50, 40)
    assert np.abs(strong.item_bias_).max() < 0.25 * np.abs(a.item_bias_).max()


def test_user_item_bias_ranks_by_item_bias() -> None:
    model = UserItemBias(reg_user=1.0, reg_item=1.0, n_iter=1).fit(OBS_USERS, OBS_ITEMS, OBS_RATINGS, 3, 5)
    scores = model.score_users(np.array([0, 2, 9]))
    assert scores.shape == (3, 5)
    np.testing.assert_allclose(scores[0], model.predict(np.zeros(5, dtype=int), np.arange(5)))
    np.testing.assert_allclose(scores[2], 3.0 + model.item_bias_)  # unknown user
    for row in scores:
        np.testing.assert_array_equal(np.argsort(-row, kind="stable"), np.argsort(-model.item_bias_, kind="stable"))


@pytest.mark.parametrize("kwargs", [{"reg_user": -1.0}, {"reg_item": -0.5}, {"n_iter": 0}])
def test_user_item_bias_rejects_bad_params(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        UserItemBias(**kwargs)


def test_baselines_go_through_the_protocol() -> None:
    """evaluate(): RMSE for rating baselines, ranking metrics for rankers, none of RMSE for popularity."""
    rng = np.random.default_rng(0)
    u, i = np.nonzero(rng.random((40, 30)) < 0.4)
    r = rng.integers(1, 6, u.size).astype(float)
    test = rng.random(u.size) < 0.25
    split = Split("t", (u[~test], i[~test], r[~test]), (u[test], i[test], r[test]), 40, 30)
    got = {
        type(m).__name__: evaluate(m.fit(*split.train, 40, 30), split, k=5)
        for m in (GlobalMean(), ItemMean(), UserItemBias(), Popularity())
    }
    assert "rmse" in got["GlobalMean"] and "ndcg" not in got["GlobalMean"]
    for name in ("ItemMean", "UserItemBias"):
        assert np.isfinite(got[name]["rmse"]) and 0.0 <= got[name]["ndcg"] <= 1.0
    assert "rmse" not in got["Popularity"] and 0.0 <= got["Popularity"]["ndcg"] <= 1.0


def test_demographic_popularity_known_answer() -> None:
    from recsys.models.baselines import DemographicPopularity

    # Tokens: [young, old, f, m]. User 0 (young f) and 1 (young m) rated item 0; user 2 (old m) items 1 and 2;
    # user 3 (young f) and user 4 (no demographics) have no rating.
    demo = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=float)
    u, i = np.array([0, 1, 2, 2]), np.array([0, 0, 1, 2])
    model = DemographicPopularity(demo, power=1.0, prior=0.1).fit(u, i, np.ones(4), 5, 4)
    share = np.array([2, 1, 1, 0]) / 4
    # User 3 shares 2 tokens with user 0, 1 with user 1, 0 with user 2 (user 3 itself has no rating: weight 0).
    np.testing.assert_allclose(model.score_users(np.array([3]))[0], np.array([3, 0, 0, 0]) / 3 + 0.1 * share)
    # A user who shares no token with a rater gets plain popularity (times the prior).
    np.testing.assert_allclose(model.score_users(np.array([4]))[0], 0.1 * share)
    # power 0 weighs every rater alike (even without a shared token): popularity by users.
    flat = DemographicPopularity(demo, power=0.0, prior=0.0).fit(u, i, np.ones(4), 5, 4)
    np.testing.assert_allclose(flat.score_users(np.array([3]))[0], [2 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(model.predict(np.array([3, 4]), np.array([0, 1])), [1 + 0.05, 0.025])
    assert not model.predicts_ratings
    whole = model.score_users(np.arange(5))
    model.block_cells = 10  # two users (x 5 users) per block: the same scores
    np.testing.assert_allclose(model.score_users(np.arange(5)), whole)
