"""Random search: determinism, trial 0 is the base, the winner is the best trial and retrains to its score."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from recsys.data.synthetic import generate
from recsys.evaluation.protocol import holdout
from recsys.models.autorec import AutoRecParams, fit_autorec
from recsys.models.cf import CFParams, fit_cf, rmse
from recsys.models.implicit_cf import ImplicitCFParams
from recsys.models.tuning import (
    SEARCH_SPACES,
    Branch,
    Choice,
    LogUniform,
    TuningResult,
    random_search,
    sample_params,
)

N_USERS, N_ITEMS = 300, 150
# Over-regularised base (l2 = 3 per rating): the small-l2 space must beat it.
EXPLICIT_BASE = {"n_factors": 8, "l2": 3.0, "l2_bias": 0.01, "batch_size": 512, "learning_rate": 0.02, "seed": 1}
EXPLICIT_SPACE = {"l2": LogUniform(0.01, 0.1), "n_factors": Choice((4, 8))}
IMPLICIT_BASE = {"n_factors": 8, "l2": 5.0, "eval_every": 4, "seed": 1}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = generate(
        n_users=N_USERS, n_items=N_ITEMS, n_groups=3, mean_ratings_per_user=25, min_ratings_per_user=10, seed=5
    )
    r = d.ratings
    return r["user_id"].astype(int).to_numpy() - 1, r["item_id"].astype(int).to_numpy() - 1, r["rating"].to_numpy()


def _explicit(data, seed: int = 0) -> TuningResult:
    return random_search(
        "explicit",
        *data,
        N_USERS,
        N_ITEMS,
        n_trials=3,
        seed=seed,
        base=EXPLICIT_BASE,
        space=EXPLICIT_SPACE,
        max_epochs=12,
    )


@pytest.fixture(scope="module")
def explicit(data) -> TuningResult:
    return _explicit(data)


@pytest.fixture(scope="module")
def implicit(data) -> TuningResult:
    # The default space: softmax and both sampled logistic variants must run.
    return random_search("implicit", *data, N_USERS, N_ITEMS, n_trials=4, seed=0, base=IMPLICIT_BASE, max_epochs=12)


def _without_seconds(r: TuningResult) -> dict:
    d = r.to_json()
    for t in d["trials"]:
        t.pop("seconds")
    return d


def test_same_seed_same_search_other_seed_other_draws(data, explicit: TuningResult) -> None:
    again = _explicit(data)
    assert _without_seconds(again) == _without_seconds(explicit)
    other = sample_params(EXPLICIT_SPACE, np.random.default_rng([1, 1]))
    assert other != explicit.trials[1]["params"]


def test_trial_zero_is_the_base_and_scores_like_a_direct_fit(data, explicit: TuningResult) -> None:
    """Known answer: trial 0's score is the best val RMSE of fitting the base params by hand on the same split."""
    assert explicit.trials[0]["params"] == {}
    (tu, ti, tr), (vu, vi, vr) = holdout(*data, fraction=0.1, seed=0)
    p = CFParams.from_dict({**EXPLICIT_BASE, "epochs": 12, "patience": 3})
    m = fit_cf(tu, ti, tr, N_USERS, N_ITEMS, p, validation=(vu, vi, vr))
    assert explicit.trials[0]["score"] == pytest.approx(min(m.history["val_rmse"]), abs=1e-9)
    assert explicit.trials[0]["best_epoch"] == int(m.history["best_epoch"][0])


def test_explicit_winner_is_the_lowest_rmse_and_retrains_to_its_score(data, explicit: TuningResult) -> None:
    scores = [t["score"] for t in explicit.trials]
    assert explicit.metric == "val_rmse"
    assert explicit.best_score == min(scores)
    # The over-regularised base must lose to a drawn trial.
    win = int(np.argmin(scores))
    assert win > 0 and explicit.best_score < scores[0] - 0.01, scores
    p = CFParams.from_dict(explicit.best_params)
    assert asdict(p) == explicit.best_params
    assert p.patience == 0 and p.epochs == explicit.trials[win]["best_epoch"]
    assert {k: explicit.best_params[k] for k in explicit.trials[win]["params"]} == explicit.trials[win]["params"]
    # Retraining the winner for exactly best_epoch epochs (no early stopping) reproduces the score.
    (tu, ti, tr), (vu, vi, vr) = holdout(*data, fraction=0.1, seed=0)
    m = fit_cf(tu, ti, tr, N_USERS, N_ITEMS, p, validation=(vu, vi, vr))
    assert len(m.history["val_rmse"]) == p.epochs
    assert m.history["val_rmse"][-1] == pytest.approx(explicit.best_score, abs=1e-9)


def test_implicit_winner_is_the_highest_ndcg(implicit: TuningResult) -> None:
    scores = [t["score"] for t in implicit.trials]
    assert implicit.metric == "val_ndcg"
    assert implicit.trials[0]["params"] == {}
    assert all(0.0 < s <= 1.0 for s in scores), scores
    assert implicit.best_score == max(scores)
    win = int(np.argmax(scores))
    p = ImplicitCFParams.from_dict(implicit.best_params)
    assert asdict(p) == implicit.best_params
    assert p.patience == 0 and p.epochs == implicit.trials[win]["best_epoch"]
    assert p.epochs % p.eval_every == 0  # a validation check epoch (max_epochs 12 is a multiple of 2 and 4)
    # A branch's own epoch cap (60 for the sampled losses) never exceeds max_epochs.
    assert all(t["params"].get("epochs", 12) <= 12 and t["best_epoch"] <= 12 for t in implicit.trials)
    assert {t["params"].get("loss") for t in implicit.trials[1:]} <= {"softmax", "logistic"}


def test_autorec_draws_its_epochs_and_the_winner_retrains_to_its_score(data) -> None:
    base = {"hidden": 16, "l2": 5000.0, "learning_rate": 0.01, "epochs": 20, "seed": 1}  # far over-regularised
    space = {"l2": LogUniform(1.0, 30.0), "epochs": Choice((20, 30))}
    r = random_search("autorec", *data, N_USERS, N_ITEMS, n_trials=3, seed=0, base=base, space=space)
    scores = [t["score"] for t in r.trials]
    assert r.metric == "val_rmse" and r.best_score == min(scores) and r.best_score < scores[0], scores
    win = int(np.argmin(scores))
    p = AutoRecParams.from_dict(r.best_params)
    assert p.patience == 0 and p.epochs == r.trials[win]["best_epoch"] == r.trials[win]["params"]["epochs"]
    assert p.eval_every == AutoRecParams.eval_every  # the trial's check-once setting is not what gets saved
    # Retraining the winner on the same split (same seed) gives its score: the score is the last epoch's.
    (tu, ti, tr), (vu, vi, vr) = holdout(*data, fraction=0.1, seed=0)
    again = fit_autorec(tu, ti, tr, N_USERS, N_ITEMS, p)
    assert rmse(again.predict(vu, vi), vr) == pytest.approx(r.best_score, rel=1e-6)


def test_json_round_trip(explicit: TuningResult, implicit: TuningResult) -> None:
    for r in (explicit, implicit):
        back = TuningResult.from_json(json.loads(json.dumps(r.to_json())))
        assert back == r
        assert back.params() == type(back.params()).from_dict(r.best_params)


def test_default_spaces_draw_valid_params_in_range() -> None:
    for model, cls in (("cf", CFParams), ("ranker", ImplicitCFParams), ("autorec", AutoRecParams)):
        for t in range(1, 40):
            drawn = sample_params(SEARCH_SPACES[model], np.random.default_rng([0, t]))
            p = cls.from_dict(drawn)  # unknown keys would be dropped: check they are all fields
            assert set(drawn) <= set(asdict(p)), drawn
            assert p.l2 > 0 and p.learning_rate > 0
        assert drawn == sample_params(SEARCH_SPACES[model], np.random.default_rng([0, 39]))


def test_branch_couples_ranges() -> None:
    space = {
        "b": Branch(
            {
                "one": {"reg_weighting": 1.0, "l2": LogUniform(0.03, 0.5)},
                "zero": {"reg_weighting": 0.0, "l2": LogUniform(3.0, 50.0)},
            }
        ),
        "n_factors": [16, 32],
    }
    seen = set()
    for t in range(200):
        d = sample_params(space, np.random.default_rng([3, t]))
        lo, hi = (0.03, 0.5) if d["reg_weighting"] == 1.0 else (3.0, 50.0)
        assert lo * 0.999 <= d["l2"] <= hi * 1.001 and d["n_factors"] in (16, 32)
        seen.add(d["reg_weighting"])
    assert seen == {0.0, 1.0}


def test_rejects_unknown_fields_and_bad_arguments(data) -> None:
    with pytest.raises(ValueError, match="l3"):
        random_search("explicit", *data, N_USERS, N_ITEMS, base={"l3": 1.0})
    with pytest.raises(ValueError, match="neg_ratio"):
        random_search("explicit", *data, N_USERS, N_ITEMS, space={"neg_ratio": [2, 4]})
    with pytest.raises(ValueError, match="n_trials"):
        random_search("explicit", *data, N_USERS, N_ITEMS, n_trials=0)
    with pytest.raises(ValueError, match="model"):
        random_search("both", *data, N_USERS, N_ITEMS)  # type: ignore[arg-type]
