"""Collaborative filtering: known answers, planted structure, determinism, cold users."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.synthetic import generate
from recsys.models.baselines import ItemMean
from recsys.models.cf import CFModel, CFParams, fit_cf, rmse


@pytest.fixture(scope="module")
def planted():
    d = generate(n_users=800, n_items=300, n_groups=4, mean_ratings_per_user=40, min_ratings_per_user=15, seed=11)
    r = d.ratings
    u = r["user_id"].astype(int).to_numpy() - 1
    i = r["item_id"].astype(int).to_numpy() - 1
    y = r["rating"].to_numpy()
    test = np.random.default_rng(0).random(y.size) < 0.2
    return (u[~test], i[~test], y[~test]), (u[test], i[test], y[test]), 800, 300


def test_recovers_planted_tastes_and_beats_item_mean(planted) -> None:
    (tu, ti, ty), (vu, vi, vy), nu, ni = planted
    model = fit_cf(tu, ti, ty, nu, ni, CFParams(n_factors=16, epochs=25, seed=1), validation=(vu, vi, vy))
    cf = rmse(model.predict(vu, vi), vy)
    base = rmse(ItemMean().fit(tu, ti, ty, nu, ni).predict(vu, vi), vy)
    assert cf < 0.92 * base, (cf, base)
    assert model.history["val_rmse"][-1] == pytest.approx(cf, rel=1e-6)
    assert model.history["loss"][-1] < model.history["loss"][0]


def test_same_seed_same_model_other_seed_other_model(planted) -> None:
    (tu, ti, ty), _, nu, ni = planted
    p = CFParams(n_factors=4, epochs=2, seed=5)
    a = fit_cf(tu, ti, ty, nu, ni, p)
    b = fit_cf(tu, ti, ty, nu, ni, p)
    c = fit_cf(tu, ti, ty, nu, ni, CFParams(n_factors=4, epochs=2, seed=6))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.w, b.w)
    assert not np.allclose(a.x, c.x)


def test_new_user_gets_item_means_and_predictions_are_clipped() -> None:
    u = np.array([0, 0, 1, 1, 2])
    i = np.array([0, 1, 0, 2, 1])
    y = np.array([5.0, 1.0, 3.0, 4.0, 2.0])
    model = fit_cf(u, i, y, 4, 3, CFParams(n_factors=2, epochs=3, seed=0))
    # User 3 has no ratings: w_3 and b_3 stay exactly 0, so the prediction is mu_i + c_i.
    assert not model.w[3].any() and model.b[3] == 0.0
    expected = np.array([4.0, 1.5, 4.0]) + model.c
    assert np.abs(model.c).max() > 0  # the item bias was learnt
    np.testing.assert_allclose(model.predict(np.array([3, 3, 3]), np.array([0, 1, 2])), expected)
    # An index beyond the fitted users is unknown: the same fallback.
    np.testing.assert_allclose(model.predict(np.array([99]), np.array([0])), expected[:1])
    # The course's model (no item bias) falls back to exactly the item means.
    course = fit_cf(u, i, y, 4, 3, CFParams(n_factors=2, epochs=3, seed=0, item_bias=False))
    np.testing.assert_allclose(course.predict(np.array([3, 3, 3]), np.array([0, 1, 2])), [4.0, 1.5, 4.0])
    model.w[0] = 100.0
    assert model.predict(np.array([0]), np.array([0]))[0] <= 5.0


def test_gradient_matches_the_cost_function() -> None:
    """With a negligible step, the first full-batch loss is the course's J(w, b, x) / n at initialisation."""
    u = np.array([0, 1, 1])
    i = np.array([0, 0, 1])
    y = np.array([4.0, 2.0, 5.0])
    p = CFParams(
        n_factors=3,
        epochs=1,
        batch_size=3,
        l2=2.0,
        learning_rate=1e-9,
        seed=3,
        reg_weighting=0.0,
        item_bias=False,
        l2_bias=0.0,
    )
    model = fit_cf(u, i, y, 2, 2, p)
    mu = np.array([3.0, 5.0])
    err = np.einsum("nk,nk->n", model.w[u], model.x[i]) + model.b[u] - (y - mu[i])
    j = 0.5 * np.sum(err**2) + p.l2 / 2 * (np.sum(model.w**2) + np.sum(model.x**2))
    assert model.history["loss"][0] == pytest.approx(j / 3, rel=1e-4)


def test_weighted_regulariser_and_biases_match_the_cost_function() -> None:
    """reg_weighting=1 charges lambda * n_j ||w_j||^2 (n_j = the user's ratings); biases get lambda_b."""
    u = np.array([0, 1, 1, 1])
    i = np.array([0, 0, 1, 2])
    y = np.array([4.0, 2.0, 5.0, 3.0])
    p = CFParams(
        n_factors=3,
        epochs=1,
        batch_size=4,
        l2=2.0,
        l2_bias=0.5,
        learning_rate=1e-9,
        seed=3,
        reg_weighting=1.0,
        item_bias=True,
    )
    model = fit_cf(u, i, y, 2, 3, p)
    mu = np.array([3.0, 5.0, 3.0])
    n_u, n_i = np.array([1, 3]), np.array([2, 1, 1])
    err = np.einsum("nk,nk->n", model.w[u], model.x[i]) + model.b[u] + model.c[i] - (y - mu[i])
    reg = p.l2 / 2 * (n_u @ np.sum(model.w**2, 1) + n_i @ np.sum(model.x**2, 1))
    j = 0.5 * np.sum(err**2) + reg  # biases start at 0: their term is 0
    assert model.history["loss"][0] == pytest.approx(j / 4, rel=1e-4)


def test_logistic_variant_learns_binary_labels(planted) -> None:
    (tu, ti, ty), (vu, vi, vy), nu, ni = planted
    model = fit_cf(
        tu, ti, (ty >= 4).astype(float), nu, ni, CFParams(n_factors=8, epochs=15, loss="logistic", l2=2.0, seed=2)
    )
    p = model.predict(vu, vi)
    assert ((p > 0) & (p < 1)).all()
    pos, neg = p[vy >= 4], p[vy < 4]
    auc = (pos[:, None] > neg[None, :]).mean()
    assert auc > 0.7, auc


def test_save_load_round_trip(tmp_path, planted) -> None:
    (tu, ti, ty), (vu, vi, _), nu, ni = planted
    model = fit_cf(tu, ti, ty, nu, ni, CFParams(n_factors=4, epochs=1))
    loaded = CFModel.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(vu, vi), model.predict(vu, vi))
    assert loaded.params == model.params
