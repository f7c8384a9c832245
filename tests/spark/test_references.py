"""Reference adapters (Spark ALS; implicit and Surprise when installed) on small planted low-rank data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bench.harness import references
from bench.harness.references import Reference, SparkALS, available_references

pytestmark = pytest.mark.spark

# 60 users x 40 items with data, plus 2 users and 2 items that never appear in training.
N_USERS, N_ITEMS = 62, 42
COLD_USERS, COLD_ITEMS = np.array([60, 61]), np.array([40, 41])


def _planted(seed: int = 0) -> dict[str, np.ndarray]:
    """Rank-3 ratings on 1..5 for 60 x 40 pairs; 60% observed, 20% of those held out."""
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(60, 3)), rng.normal(size=(40, 3))
    full = np.clip(3.0 + 0.8 * (x @ w.T) + rng.normal(scale=0.2, size=(60, 40)), 1.0, 5.0)
    u, i = np.nonzero(rng.random((60, 40)) < 0.6)
    test = rng.random(u.size) < 0.2
    r = full[u, i]
    return {"u": u[~test], "i": i[~test], "r": r[~test], "tu": u[test], "ti": i[test], "tr": r[test]}


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return _planted()


def _fit(model: Reference, data: dict[str, np.ndarray]) -> Reference:
    return model.fit(data["u"], data["i"], data["r"], N_USERS, N_ITEMS)


def _rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.clip(pred, 1.0, 5.0) - truth) ** 2)))


def _check_contract(model: Reference, data: dict[str, np.ndarray]) -> None:
    """What every fitted adapter owes: timing, shapes, finite values, unknowns ranked last."""
    assert isinstance(model, Reference)
    assert model.fit_seconds_ > 0.0
    users = np.array([0, 5, 59, 60, 61, 10_000])  # two cold users and one past the fitted range
    scores = model.score_users(users)
    assert scores.shape == (users.size, N_ITEMS) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    warm = scores[:, :40]
    assert (scores[:, COLD_ITEMS].max(axis=1) < warm.min(axis=1)).all()  # cold items rank last
    np.testing.assert_allclose(scores[3], scores[4])  # both cold users: the average user
    pairs_u = np.array([0, 60, 0, 61, -1, 10_000])
    pairs_i = np.array([0, 0, 41, 41, 3, 10_000])
    pred = model.predict(pairs_u, pairs_i)
    assert pred.shape == (6,) and np.isfinite(pred).all()
    assert np.isfinite(model.predict(data["tu"], data["ti"])).all()


@pytest.fixture(scope="module")
def explicit_als(spark, data) -> SparkALS:
    return _fit(SparkALS(spark, implicit_prefs=False, rank=3, reg_param=0.05, max_iter=6, num_blocks=2), data)


def test_spark_als_explicit_beats_global_mean(explicit_als: SparkALS, data) -> None:
    mean_rmse = _rmse(np.full(data["tr"].size, data["r"].mean()), data["tr"])
    als_rmse = _rmse(explicit_als.predict(data["tu"], data["ti"]), data["tr"])
    assert als_rmse < 0.85 * mean_rmse, (als_rmse, mean_rmse)
    assert explicit_als.name == "spark-als-explicit"
    assert explicit_als.user_factors_.shape == (N_USERS, 3) and explicit_als.item_factors_.shape == (N_ITEMS, 3)
    # predict is the raw dot product of the collected factors (no clipping)
    k = slice(0, 5)
    dots = np.einsum("nk,nk->n", explicit_als.user_factors_[data["tu"][k]], explicit_als.item_factors_[data["ti"][k]])
    np.testing.assert_allclose(explicit_als.predict(data["tu"][k], data["ti"][k]), dots)


def test_spark_als_explicit_contract_and_cold_fallback(explicit_als: SparkALS, data) -> None:
    _check_contract(explicit_als, data)
    mu = data["r"].mean()
    np.testing.assert_allclose(explicit_als.predict(np.array([60, 0, 61]), np.array([0, 41, 40])), [mu, mu, mu])
    assert not explicit_als.user_factors_[COLD_USERS].any() and not explicit_als.item_factors_[COLD_ITEMS].any()


def test_spark_als_implicit_scores(spark, data) -> None:
    model = _fit(SparkALS(spark, implicit_prefs=True, rank=4, reg_param=0.1, alpha=1.0, max_iter=4, num_blocks=2), data)
    assert model.name == "spark-als-implicit"
    _check_contract(model, data)
    scores = model.score_users(np.arange(60))
    assert scores.shape == (60, N_ITEMS)
    assert model.predict(np.array([60]), np.array([0]))[0] == 0.0  # cold pair: no preference
    # Observed pairs score higher than unobserved ones on average (the model learnt the data).
    seen = np.zeros((60, 40), dtype=bool)
    seen[data["u"], data["i"]] = True
    assert scores[:, :40][seen].mean() > scores[:, :40][~seen].mean()


def test_fit_rejects_bad_input(spark) -> None:
    model = SparkALS(spark, implicit_prefs=False)
    with pytest.raises(ValueError, match="out of range"):
        model.fit(np.array([0, 5]), np.array([0, 1]), np.array([1.0, 2.0]), 3, 3)
    with pytest.raises(RuntimeError, match="fit"):
        model.predict(np.array([0]), np.array([0]))


def test_module_import_is_cheap_and_availability_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "import sys, bench.harness.references; "
        "print(sorted(m for m in ('pyspark', 'tensorflow', 'implicit', 'surprise') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    avail = available_references()
    assert set(avail) == {"SparkALS", "ImplicitALS", "ImplicitBPR", "SurpriseSVD", "SurpriseSVDpp"}
    assert avail["SparkALS"] is True and all(isinstance(v, bool) for v in avail.values())
    monkeypatch.setitem(references._REQUIREMENTS, "ImplicitALS", ("no_such_module_xyz", "pip install implicit"))
    with pytest.raises(ImportError, match="pip install implicit"):
        references.ImplicitALS().fit(np.array([0]), np.array([0]), np.array([1.0]), 1, 1)


def test_implicit_als_and_bpr(data) -> None:
    pytest.importorskip("implicit")
    als = _fit(references.ImplicitALS(factors=4, regularization=0.1, alpha=2.0, iterations=5), data)
    _check_contract(als, data)
    assert als.user_factors_.shape == (N_USERS, 4)
    bpr = _fit(references.ImplicitBPR(factors=4, iterations=20), data)
    _check_contract(bpr, data)
    assert bpr.item_factors_.shape == (N_ITEMS, 5)  # the library's item-bias column
    for model in (als, bpr):
        seen = np.zeros((60, 40), dtype=bool)
        seen[data["u"], data["i"]] = True
        scores = model.score_users(np.arange(60))[:, :40]
        assert scores[seen].mean() > scores[~seen].mean(), model.name


@pytest.mark.parametrize("cls", ["SurpriseSVD", "SurpriseSVDpp"])
def test_surprise_beats_global_mean(cls: str, data) -> None:
    surprise = pytest.importorskip("surprise")
    model = _fit(getattr(references, cls)(n_factors=3, n_epochs=60, lr_all=0.02, reg_all=0.05), data)
    _check_contract(model, data)
    mean_rmse = _rmse(np.full(data["tr"].size, data["r"].mean()), data["tr"])
    assert _rmse(model.predict(data["tu"], data["ti"]), data["tr"]) < 0.85 * mean_rmse
    # Our numpy estimate equals Surprise's own (unclipped) estimate, cold pairs included.
    algo_cls = surprise.SVD if cls == "SurpriseSVD" else surprise.SVDpp
    import pandas as pd

    pdf = pd.DataFrame({"user": data["u"], "item": data["i"], "rating": data["r"]})
    trainset = surprise.Dataset.load_from_df(pdf, surprise.Reader(rating_scale=(data["r"].min(), data["r"].max())))
    algo = algo_cls(n_factors=3, n_epochs=60, lr_all=0.02, reg_all=0.05, random_state=42)
    algo.fit(trainset.build_full_trainset())
    us, its = np.array([0, 7, 60, 3]), np.array([1, 9, 2, 41])
    theirs = [algo.predict(int(a), int(b), clip=False).est for a, b in zip(us, its, strict=True)]
    np.testing.assert_allclose(model.predict(us, its), theirs, rtol=1e-9, atol=1e-9)
