"""EASE (known answer, closed form) and the blend of ranking models."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.synthetic import generate
from recsys.evaluation.protocol import Split, evaluate
from recsys.models.baselines import DemographicPopularity, Popularity
from recsys.models.blend import BlendModel, blend
from recsys.models.ease import EASEModel, EASEParams, fit_ease
from recsys.models.implicit_cf import ImplicitCFParams, fit_implicit_cf
from recsys.models.registry import load_model


def test_ease_known_answer() -> None:
    # 3 users x 3 items; G = X^T X, B = I - P / diag(P) with P = (G + lambda I)^-1, diag(B) = 0.
    u, i = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 0])
    lam = 2.0
    plain = EASEParams(l2=lam, item_weight_power=0.0, session_seconds=0.0, rating_weight=0.0)
    model = fit_ease(u, i, 3, 3, plain)
    x = np.zeros((3, 3))
    x[u, i] = 1
    p = np.linalg.inv(x.T @ x + lam * np.eye(3))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0)
    np.testing.assert_allclose(model.b, b, rtol=1e-5)
    np.testing.assert_allclose(model.score_users(np.arange(3)), x @ b, rtol=1e-5, atol=1e-7)
    # predict = the entries of score_users; unknown users and items score 0
    np.testing.assert_allclose(
        model.predict(np.array([0, 2, 9, 1]), np.array([2, 1, 0, 7])),
        [(x @ b)[0, 2], (x @ b)[2, 1], 0.0, 0.0],
        rtol=1e-5,
        atol=1e-7,
    )
    # A repeated pair counts once.
    again = fit_ease(np.r_[u, 0], np.r_[i, 0], 3, 3, plain)
    np.testing.assert_array_equal(again.b, model.b)
    # Without times and ratings the refinements reduce to item weights alone.
    assert not np.allclose(fit_ease(u, i, 3, 3, EASEParams(l2=lam)).b, model.b)


def test_ease_item_weights_sessions_and_rating_values_known_answer(tmp_path) -> None:
    u, i = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 0])
    r, ts = np.array([5.0, 1.0, 3.0, 4.0, np.nan]), np.array([0, 100, 0, 5000, 0])
    p = EASEParams(l2=2.0, item_weight_power=0.5, session_seconds=900.0, session_weight=1.0, rating_weight=0.6)
    model = fit_ease(u, i, 3, 3, p, rating=r, ts=ts, rating_range=(1.0, 5.0))
    count = np.array([2.0, 2.0, 1.0])
    w = count**-0.5
    x = np.zeros((3, 3))
    x[u, i] = 1
    # sessions of 900 s: user 0 {0, 1} (t 0, 100), user 1 {1} (t 0) and {2} (t 5000), user 2 {0}
    sessions = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    g = (x * w).T @ (x * w) + (sessions * w).T @ (sessions * w)
    g += 2.0 * np.mean(np.diag(g)) / np.mean(count) * np.eye(3)
    pinv = np.linalg.inv(g)
    b = -pinv / np.diag(pinv)
    np.fill_diagonal(b, 0)
    np.testing.assert_allclose(model.b, b, rtol=1e-5)
    q = np.ones((3, 3))
    q[u, i] = np.where(np.isnan(r), 1.0, 1.0 + 0.6 * (r - 3.0) / 2.0)  # a positive without a rating counts 1
    np.testing.assert_allclose(model.score_users(np.arange(3)), (x * w * q) @ b, rtol=1e-5, atol=1e-6)
    loaded = EASEModel.load(model.save(tmp_path / "ease"))
    np.testing.assert_allclose(loaded.score_users(np.arange(3)), model.score_users(np.arange(3)))


def test_ease_woodbury_inverse_equals_the_gram_inverse() -> None:
    """Fewer rows than items: the Woodbury way gives the primal inverse; EASE's weights agree either way."""
    import scipy.sparse as sp

    from recsys.models.ease import _regularised_inverse

    rng = np.random.default_rng(4)
    m, n = 30, 90
    a = sp.random(m, n, density=0.15, random_state=5, format="csr") * 3.0
    gram = (a.T @ a).toarray() + 7.5 * np.eye(n)
    np.testing.assert_allclose(_regularised_inverse(a, 7.5), np.linalg.inv(gram), rtol=1e-9, atol=1e-12)
    singles = sp.csr_matrix((np.full(n + 40, 2.0), (np.arange(n + 40), np.arange(n + 40) % n)), shape=(n + 40, n))
    both = sp.vstack([a, singles], format="csr")  # single-item rows go to the diagonal: still the Woodbury way
    np.testing.assert_allclose(
        _regularised_inverse(both, 7.5), np.linalg.inv((both.T @ both).toarray() + 7.5 * np.eye(n)), rtol=1e-9
    )
    tall = sp.random(n + 10, n, density=0.1, random_state=6, format="csr")  # more rows than items: primal
    np.testing.assert_allclose(
        _regularised_inverse(tall, 2.0), np.linalg.inv((tall.T @ tall).toarray() + 2 * np.eye(n)), rtol=1e-9
    )
    # A fit with fewer users than items (the Woodbury way) has the known answer of the primal formula.
    u = np.repeat(np.arange(40), 12)
    i = np.concatenate([rng.choice(200, 12, replace=False) for _ in range(40)])
    plain = EASEParams(l2=20.0, item_weight_power=0.0, session_seconds=0.0, rating_weight=0.0)
    x = np.zeros((40, 200))
    x[u, i] = 1
    q = np.linalg.inv(x.T @ x + 20.0 * np.eye(200))
    b = -q / np.diag(q)
    np.fill_diagonal(b, 0)
    np.testing.assert_allclose(fit_ease(u, i, 40, 200, plain).b, b, rtol=1e-4, atol=1e-7)


def test_ease_refuses_catalogues_beyond_max_items() -> None:
    with pytest.raises(ValueError, match="max_items"):
        fit_ease(np.array([0]), np.array([0]), 1, 11, EASEParams(max_items=10))


@pytest.fixture(scope="module")
def split() -> Split:
    d = generate(n_users=500, n_items=200, n_groups=4, mean_ratings_per_user=30, min_ratings_per_user=10, seed=5)
    r = d.ratings
    u = r["user_id"].astype(int).to_numpy() - 1
    i = r["item_id"].astype(int).to_numpy() - 1
    y = r["rating"].to_numpy().astype(float)
    test = np.random.default_rng(1).random(y.size) < 0.2
    return Split("s", (u[~test], i[~test], y[~test]), (u[test], i[test], y[test]), 500, 200)


def test_blend_ranks_above_popularity_and_round_trips(split: Split, tmp_path) -> None:
    u, i, _ = split.train
    cf = fit_implicit_cf(u, i, split.n_users, split.n_items, ImplicitCFParams(n_factors=16, epochs=30, l2=10.6))
    # unweighted items: the planted data's popularity is part of the tastes (item weights cost 0.03 NDCG here)
    ease = fit_ease(u, i, split.n_users, split.n_items, EASEParams(l2=50.0, item_weight_power=0.0))
    model = blend({"cf": cf, "ease": ease}, {"cf": 0.5, "ease": 0.5}, n_users=split.n_users, seed=0)
    # each member is divided by its spread: the blend is the weighted sum of the scaled scores
    users = np.arange(7)
    scaled = [
        0.5 * cf.score_users(users) / model.params.scales[0],
        0.5 * ease.score_users(users) / model.params.scales[1],
    ]
    np.testing.assert_allclose(model.score_users(users), scaled[0] + scaled[1], rtol=1e-9)
    pu, pi = np.repeat(users, 3), np.tile([0, 5, 9], 7)
    np.testing.assert_allclose(model.predict(pu, pi), model.score_users(users)[pu, pi], rtol=1e-6, atol=1e-7)
    pop = evaluate(Popularity().fit(*split.train, split.n_users, split.n_items), split)["ndcg"]
    ours = evaluate(model, split)["ndcg"]
    assert ours > 1.2 * pop, (ours, pop)
    loaded = load_model(model.save(tmp_path / "ranker"))
    assert isinstance(loaded, BlendModel) and isinstance(loaded.models[1], EASEModel)
    assert loaded.params == model.params
    np.testing.assert_allclose(loaded.score_users(users), model.score_users(users), rtol=1e-12)


def test_blend_needs_matching_names(split: Split) -> None:
    u, i, _ = split.train
    ease = fit_ease(u, i, split.n_users, split.n_items)
    with pytest.raises(ValueError, match="same members"):
        blend({"ease": ease}, {"cf": 1.0}, n_users=split.n_users)


def test_per_user_serves_each_user_by_their_model_and_the_cold_start_rule(split: Split) -> None:
    from recsys.models.blend import PerUser
    from recsys.models.cold_start import cold_start_model

    u, i, r = split.train
    ease = fit_ease(u, i, split.n_users, split.n_items, EASEParams(l2=50.0))
    pop = Popularity().fit(u, i, r, split.n_users, split.n_items)
    flags = np.zeros(split.n_users, dtype=bool)
    flags[::3] = True
    model = PerUser(ease, pop, flags)
    users = np.arange(12)
    expected = np.where(flags[users, None], pop.score_users(users), ease.score_users(users))
    np.testing.assert_allclose(model.score_users(users), expected)
    pairs_u, pairs_i = np.repeat(users, 4), np.tile(np.arange(4), 12)
    np.testing.assert_allclose(model.predict(pairs_u, pairs_i), expected[pairs_u, pairs_i])
    np.testing.assert_allclose(
        model.predict(np.array([split.n_users + 5]), np.array([0])),  # beyond: the first
        ease.predict(np.array([split.n_users + 5]), np.array([0])),
    )
    # The cold-start rule: users without ratings get the first model given (the two-tower one) alone, or
    # blended with segment popularity; users with ratings its blend with popularity; weights 0: the first
    # model for everyone.
    n_train = np.bincount(u, minlength=split.n_users)
    n_train[:5] = 0
    rule = cold_start_model(ease, pop, n_train, 0.3, seed=0)
    np.testing.assert_allclose(rule.score_users(np.arange(5)), ease.score_users(np.arange(5)))
    mixed = blend(
        {"two_tower": ease, "popularity": pop}, {"two_tower": 0.7, "popularity": 0.3}, n_users=split.n_users, seed=0
    )
    np.testing.assert_allclose(rule.score_users(np.arange(5, 9)), mixed.score_users(np.arange(5, 9)))
    assert cold_start_model(ease, pop, n_train, 0.0, seed=0) is ease
    demographics = np.eye(4)[np.arange(split.n_users) % 4]  # four segments
    segment = DemographicPopularity(demographics).fit(u, i, r, split.n_users, split.n_items)
    rule = cold_start_model(ease, pop, n_train, 0.3, seed=0, segment=segment, segment_weight=0.4)
    by_segment = blend(
        {"two_tower": ease, "segment_popularity": segment},
        {"two_tower": 0.6, "segment_popularity": 0.4},
        n_users=split.n_users,
        seed=0,
    )
    np.testing.assert_allclose(rule.score_users(np.arange(5)), by_segment.score_users(np.arange(5)))
    np.testing.assert_allclose(rule.score_users(np.arange(5, 9)), mixed.score_users(np.arange(5, 9)))
    assert not np.allclose(by_segment.score_users(np.arange(5)), ease.score_users(np.arange(5)))
    rule = cold_start_model(ease, pop, n_train, 0.0, seed=0, segment=segment, segment_weight=0.4)
    np.testing.assert_allclose(rule.score_users(np.arange(5, 9)), ease.score_users(np.arange(5, 9)))
    assert cold_start_model(ease, pop, n_train, 0.0, seed=0, segment=segment, segment_weight=0.0) is ease
