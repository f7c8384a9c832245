"""Item-based AutoRec: learns planted structure, stored factorisation, fallbacks, determinism, blocks."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.synthetic import generate
from recsys.models.autorec import AutoRecModel, AutoRecParams, _item_matrix, fit_autorec
from recsys.models.baselines import ItemMean
from recsys.models.cf import CFParams, fit_cf, rmse
from recsys.models.registry import load_model

FAST = AutoRecParams(hidden=64, l2=10.0, learning_rate=0.01, epochs=150, eval_every=10, seed=3)


@pytest.fixture(scope="module")
def planted():
    d = generate(n_users=600, n_items=250, n_groups=4, mean_ratings_per_user=40, min_ratings_per_user=15, seed=12)
    r = d.ratings
    u = r["user_id"].astype(int).to_numpy() - 1
    i = r["item_id"].astype(int).to_numpy() - 1
    y = r["rating"].to_numpy()
    test = np.random.default_rng(0).random(y.size) < 0.2
    return (u[~test], i[~test], y[~test]), (u[test], i[test], y[test]), 600, 250


@pytest.fixture(scope="module")
def fitted(planted):
    (tu, ti, ty), val, nu, ni = planted
    return fit_autorec(tu, ti, ty, nu, ni, FAST, validation=val)


def test_beats_item_mean_and_records_its_curve(planted, fitted) -> None:
    (tu, ti, ty), (vu, vi, vy), nu, ni = planted
    ours = rmse(fitted.predict(vu, vi), vy)
    base = rmse(ItemMean().fit(tu, ti, ty, nu, ni).predict(vu, vi), vy)
    assert ours < 0.92 * base, (ours, base)
    assert len(fitted.history["loss"]) == FAST.epochs
    assert len(fitted.history["val_rmse"]) == FAST.epochs // FAST.eval_every
    assert fitted.history["val_rmse"][-1] == pytest.approx(ours, rel=1e-9)
    assert fitted.history["loss"][-1] < 0.5 * fitted.history["loss"][0]


def test_stored_factorisation_is_the_network(planted, fitted) -> None:
    # r_hat_iu = h_i . W[:, u] + b_o[u], clipped: predict and score_users agree with the factors.
    _, (vu, vi, _), _, _ = planted
    raw = np.einsum("nk,nk->n", fitted.codes[vi], fitted.w[vu]) + fitted.b[vu]
    np.testing.assert_allclose(fitted.predict(vu, vi), np.clip(raw, 1, 5))
    scores = fitted.score_users(vu[:5])
    np.testing.assert_allclose(scores[np.arange(5), vi[:5]], raw[:5])
    assert fitted.codes.min() >= 0 and fitted.codes.max() <= 1  # sigmoid codes


def test_fallbacks_for_unknown_users_and_items() -> None:
    u = np.array([0, 0, 1, 1, 2])
    i = np.array([0, 1, 0, 2, 1])
    y = np.array([5.0, 1.0, 3.0, 4.0, 2.0])
    model = fit_autorec(u, i, y, 3, 4, AutoRecParams(hidden=4, epochs=5, seed=0))
    # A user beyond the fitted ones has no output unit: item means (global mean of the item means for a new item).
    np.testing.assert_allclose(model.predict(np.array([7, 7, 7]), np.array([0, 1, 2])), [4.0, 1.5, 4.0])
    assert model.predict(np.array([7]), np.array([9]))[0] == pytest.approx(model.mu.mean())
    # Item 3 has no ratings: its code is g(b_h), the empty input's, for known users.
    np.testing.assert_allclose(model.codes[3], model.empty, rtol=1e-6)
    expected = model.w[:, :] @ model.empty + model.b
    np.testing.assert_allclose(model.predict(np.arange(3), np.full(3, 3)), np.clip(expected, 1, 5), rtol=1e-6)
    # An item index beyond the fitted ones behaves the same for a known user.
    np.testing.assert_allclose(model.predict(np.arange(3), np.full(3, 99)), np.clip(expected, 1, 5), rtol=1e-6)
    model.b[:] = 100.0
    assert model.predict(np.array([0]), np.array([0]))[0] == 5.0  # clipped to the scale


def test_same_seed_same_model_and_save_load_round_trip(planted, tmp_path) -> None:
    (tu, ti, ty), (vu, vi, _), nu, ni = planted
    p = AutoRecParams(hidden=8, epochs=3, seed=5)
    a = fit_autorec(tu, ti, ty, nu, ni, p)
    b = fit_autorec(tu, ti, ty, nu, ni, p)
    c = fit_autorec(tu, ti, ty, nu, ni, AutoRecParams(hidden=8, epochs=3, seed=6))
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.w, b.w)
    assert not np.allclose(a.codes, c.codes)
    loaded = AutoRecModel.load(a.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(vu, vi), a.predict(vu, vi))
    assert loaded.params == a.params and loaded.history == a.history
    # One loader for every model folder: the kind comes from params.json.
    assert isinstance(load_model(tmp_path / "m"), AutoRecModel)
    cf = fit_cf(tu, ti, ty, nu, ni, CFParams(n_factors=2, epochs=1))
    assert type(load_model(cf.save(tmp_path / "cf"))).__name__ == "CFModel"


def test_item_blocks_bound_memory_and_still_learn(planted) -> None:
    (tu, ti, ty), (vu, vi, vy), nu, ni = planted
    # 600 users x 50 items per block: 5 shuffled steps per epoch instead of one full batch.
    blocks = fit_autorec(
        tu,
        ti,
        ty,
        nu,
        ni,
        AutoRecParams(hidden=64, l2=10.0, learning_rate=0.01, epochs=60, max_block_cells=nu * 50, seed=3),
    )
    base = rmse(ItemMean().fit(tu, ti, ty, nu, ni).predict(vu, vi), vy)
    assert rmse(blocks.predict(vu, vi), vy) < 0.95 * base
    again = fit_autorec(
        tu,
        ti,
        ty,
        nu,
        ni,
        AutoRecParams(hidden=32, l2=10.0, learning_rate=0.003, epochs=2, max_block_cells=nu * 50, seed=3),
    )
    again2 = fit_autorec(
        tu,
        ti,
        ty,
        nu,
        ni,
        AutoRecParams(hidden=32, l2=10.0, learning_rate=0.003, epochs=2, max_block_cells=nu * 50, seed=3),
    )
    np.testing.assert_array_equal(again.codes, again2.codes)  # block order is seeded


def test_early_stopping_keeps_the_best_check(planted) -> None:
    (tu, ti, ty), val, nu, ni = planted
    # A learning rate this high overfits fast; patience 2 stops and keeps the best check.
    p = AutoRecParams(hidden=64, l2=0.01, learning_rate=0.03, epochs=200, eval_every=2, patience=2, seed=3)
    model = fit_autorec(tu, ti, ty, nu, ni, p, validation=val)
    curve = model.history["val_rmse"]
    assert len(model.history["loss"]) < p.epochs
    best = int(np.argmin(curve))
    assert model.history["best_epoch"] == [float((best + 1) * p.eval_every)]
    assert rmse(model.predict(*val[:2]), val[2]) == pytest.approx(curve[best], rel=1e-9)


def test_repeated_pairs_are_averaged() -> None:
    ratings, mask = _item_matrix(np.array([0, 0, 1]), np.array([2, 2, 0]), np.array([4.0, 2.0, 5.0]), 2, 3)
    assert ratings.toarray()[2, 0] == 3.0 and ratings.toarray()[0, 1] == 5.0
    assert mask.nnz == 2 and mask.toarray().max() == 1.0
