"""Implicit (positives-only) CF: planted structure, determinism, every loss variant ranks."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.synthetic import generate
from recsys.evaluation.protocol import Split, evaluate, holdout
from recsys.models.baselines import Popularity
from recsys.models.cf import CFModel
from recsys.models.implicit_cf import ImplicitCFParams, fit_implicit_cf


@pytest.fixture(scope="module")
def split() -> Split:
    d = generate(n_users=600, n_items=250, n_groups=4, mean_ratings_per_user=30, min_ratings_per_user=10, seed=3)
    r = d.ratings
    u = r["user_id"].astype(int).to_numpy() - 1
    i = r["item_id"].astype(int).to_numpy() - 1
    train, test = holdout(u, i, r["rating"].to_numpy(), fraction=0.2, seed=0)
    return Split("planted", train, test, 600, 250, 0.5, 5.0)


class _Pop(Popularity):
    predicts_ratings = False

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(users), 1))


@pytest.mark.parametrize(
    ("params", "margin"),
    [
        (ImplicitCFParams(n_factors=16, epochs=120, l2=5.0, seed=1), 1.03),
        (
            ImplicitCFParams(
                n_factors=16, epochs=60, loss="logistic", negatives="all", pos_weight=10.0, l2=5.0, seed=1
            ),
            1.0,
        ),
        (
            ImplicitCFParams(
                n_factors=16,
                epochs=20,
                loss="logistic",
                negatives="uniform",
                neg_ratio=4,
                l2=1.0,
                learning_rate=0.01,
                seed=1,
            ),
            1.10,
        ),
    ],
    ids=["softmax", "logistic-all", "logistic-uniform"],
)
def test_beats_popularity_on_planted_tastes(split: Split, params: ImplicitCFParams, margin: float) -> None:
    """Exposure is popularity tilted by group taste: every variant must find the tilt (measured:
    softmax 1.05x, weighted full-matrix logistic 1.01x, sampled logistic 1.15x popularity's NDCG@10)."""
    model = fit_implicit_cf(split.train[0], split.train[1], split.n_users, split.n_items, params)
    ours = evaluate(model, split)
    pop = evaluate(_Pop().fit(*split.train, split.n_users, split.n_items), split)
    assert "rmse" not in ours  # a ranking model predicts no ratings
    assert ours["ndcg"] > margin * pop["ndcg"], (ours["ndcg"], pop["ndcg"])


def test_deterministic_and_saved_model_scores_the_same(split: Split, tmp_path) -> None:
    p = ImplicitCFParams(n_factors=8, epochs=5, seed=4)
    a = fit_implicit_cf(split.train[0], split.train[1], split.n_users, split.n_items, p)
    b = fit_implicit_cf(split.train[0], split.train[1], split.n_users, split.n_items, p)
    np.testing.assert_array_equal(a.w, b.w)
    loaded = CFModel.load(a.save(tmp_path / "m"))
    assert isinstance(loaded.params, ImplicitCFParams) and loaded.params == p
    users = np.arange(5)
    np.testing.assert_array_equal(loaded.score_users(users), a.score_users(users))


def test_early_stopping_keeps_the_best_validation_epoch(split: Split) -> None:
    p = ImplicitCFParams(n_factors=16, epochs=400, l2=0.5, learning_rate=0.05, eval_every=10, patience=3, seed=2)
    model = fit_implicit_cf(split.train[0], split.train[1], split.n_users, split.n_items, p, validation=split.test[:2])
    h = model.history
    assert len(h["loss"]) < 400  # weak regularisation overfits: it stopped
    best = int(np.argmax(h["val_ndcg"]))
    assert h["best_epoch"] == [h["val_epoch"][best]]
    assert evaluate(model, split)["ndcg"] == pytest.approx(h["val_ndcg"][best], abs=1e-9)


def test_unknown_user_gets_item_bias_order(split: Split) -> None:
    model = fit_implicit_cf(
        split.train[0], split.train[1], split.n_users, split.n_items, ImplicitCFParams(n_factors=4, epochs=30, seed=0)
    )
    s = model.score_users(np.array([10_000]))
    np.testing.assert_allclose(s[0], model.c)


def test_bfloat16_products_rank_as_float32_does(split: Split) -> None:
    """The logits' product in bfloat16 (what ``auto`` picks on CPUs that multiply it natively) learns the
    same model up to rounding: the same ranking quality, and close item biases."""
    from recsys.models.implicit_cf import bfloat16_is_fast

    assert isinstance(bfloat16_is_fast(), bool)
    u, i, _ = split.train
    base = dict(n_factors=16, epochs=120, l2=5.0, seed=1)
    exact = fit_implicit_cf(u, i, split.n_users, split.n_items, ImplicitCFParams(**base, matmul_precision="float32"))
    low = fit_implicit_cf(u, i, split.n_users, split.n_items, ImplicitCFParams(**base, matmul_precision="bfloat16"))
    assert not np.array_equal(exact.x, low.x)  # it did take the other path
    assert evaluate(low, split)["ndcg"] == pytest.approx(evaluate(exact, split)["ndcg"], abs=0.01)
    assert np.corrcoef(low.c, exact.c)[0, 1] > 0.99
