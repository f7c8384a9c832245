"""The model contract: every model of the registry, fitted through its spec, honours :class:`TrainedModel`.

Like the store conformance suite, one set of checks parametrised over every implementation
(here: every registry entry), on the same small data with planted tastes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsys.models.autorec import AutoRecParams
from recsys.models.base import TrainedModel
from recsys.models.cf import CFParams
from recsys.models.ease import EASEParams
from recsys.models.implicit_cf import ImplicitCFParams
from recsys.models.ranker import RankerParams
from recsys.models.registry import (
    MODEL_MODULES,
    ModelSpec,
    TrainingInputs,
    canonical_name,
    load_model,
    spec,
    specs,
)
from recsys.models.two_tower import TwoTowerParams
from tests.fixtures.planted import planted_towers

# Small, fast parameters of each model (the test's, not the models' defaults).
SMALL: dict[str, Any] = {
    "cf": CFParams(n_factors=8, epochs=15, batch_size=1024, seed=3),
    "autorec": AutoRecParams(hidden=32, epochs=15, seed=3),
    "ranker": RankerParams(cf=ImplicitCFParams(n_factors=8, epochs=15, seed=3), ease=EASEParams(), ease_weight=0.5),
    "two_tower": TwoTowerParams(
        layers=(32, 16), loss="softmax", epochs=3, batch_size=512, negatives=64, cold_dropout=0.3, seed=3
    ),
}


@pytest.fixture(scope="module")
def inputs() -> TrainingInputs:
    data = planted_towers()
    u, i, r = data["fit"]
    n_users, n_items = data["n"]
    return TrainingInputs(
        user_idx=u,
        item_idx=i,
        rating=r.astype(np.float64),
        n_users=n_users,
        n_items=n_items,
        validation=data["val"],
        towers=lambda: (data["pre"], data["ux"], data["ix"]),
        seed=3,
    )


@pytest.fixture(scope="module", params=list(MODEL_MODULES))
def fitted(request: pytest.FixtureRequest, inputs: TrainingInputs) -> tuple[ModelSpec, TrainedModel]:
    model_spec = spec(request.param)
    return model_spec, model_spec.fit(inputs, SMALL[request.param], False)


def test_every_registered_model_has_small_params_of_its_params_class() -> None:
    assert set(SMALL) == set(MODEL_MODULES)
    for model_spec in specs():
        assert isinstance(SMALL[model_spec.name], model_spec.params)
        assert model_spec.loaders, model_spec.name


def test_fitted_model_implements_the_protocol(fitted: tuple[ModelSpec, TrainedModel], inputs: TrainingInputs) -> None:
    _, model = fitted
    assert isinstance(model, TrainedModel)
    assert (model.n_users, model.n_items) == (inputs.n_users, inputs.n_items)
    assert isinstance(model.history, dict)
    json.dumps(model.history)  # JSON-able


def test_save_then_load_gives_identical_scores(fitted: tuple[ModelSpec, TrainedModel], tmp_path: Path) -> None:
    model_spec, model = fitted
    users = np.arange(0, model.n_users, 7)
    path = model.save(tmp_path / model_spec.name)
    (path / "manifest.json").write_text(json.dumps({"model": model_spec.name}))
    loaded = load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.score_users(users), model.score_users(users))
    u, i = np.repeat(users, 3), np.tile([0, 5, model.n_items - 1], users.size)
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))


def test_unknown_users_and_items_get_finite_scores(fitted: tuple[ModelSpec, TrainedModel]) -> None:
    _, model = fitted
    u = np.array([model.n_users, model.n_users + 5, 0, 1])
    i = np.array([0, model.n_items + 3, model.n_items, model.n_items + 10])
    scores = model.predict(u, i)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    rows = model.score_users(np.array([model.n_users, model.n_users + 1]))
    assert rows.shape == (2, model.n_items) and np.isfinite(rows).all()


def test_score_users_agrees_with_predict(fitted: tuple[ModelSpec, TrainedModel]) -> None:
    _, model = fitted
    users = np.array([0, 3, 17, model.n_users - 1])
    rows = model.score_users(users)
    assert rows.shape == (users.size, model.n_items)
    u = np.repeat(users, model.n_items)
    i = np.tile(np.arange(model.n_items), users.size)
    np.testing.assert_allclose(model.predict(u, i).reshape(rows.shape), rows, rtol=1e-5, atol=1e-5)


def test_two_fits_with_one_seed_give_the_same_scores(
    fitted: tuple[ModelSpec, TrainedModel], inputs: TrainingInputs
) -> None:
    model_spec, model = fitted
    again = model_spec.fit(inputs, SMALL[model_spec.name], False)
    users = np.arange(0, model.n_users, 11)
    np.testing.assert_array_equal(again.score_users(users), model.score_users(users))


def test_other_seed_gives_other_scores(fitted: tuple[ModelSpec, TrainedModel], inputs: TrainingInputs) -> None:
    """The determinism check above could pass by ignoring the data; a changed seed must move the scores."""
    model_spec, model = fitted
    params = SMALL[model_spec.name]
    other = (
        replace(params, cf=replace(params.cf, seed=params.cf.seed + 1))
        if isinstance(params, RankerParams)
        else replace(params, seed=params.seed + 1)
    )
    users = np.arange(0, model.n_users, 11)
    assert not np.array_equal(model_spec.fit(inputs, other, False).score_users(users), model.score_users(users))


def test_names_and_aliases_resolve_and_unknown_names_fail() -> None:
    assert [s.name for s in specs()] == list(MODEL_MODULES)
    assert canonical_name("explicit") == canonical_name("mf") == "cf"
    assert canonical_name("implicit") == "ranker"
    for model_spec in specs():
        for alias in model_spec.aliases:
            assert canonical_name(alias) == model_spec.name
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        spec("nope")


def test_load_refuses_a_manifest_that_names_another_model(
    fitted: tuple[ModelSpec, TrainedModel], tmp_path: Path
) -> None:
    model_spec, model = fitted
    path = model.save(tmp_path / "m")
    other = "autorec" if model_spec.name != "autorec" else "cf"
    (path / "manifest.json").write_text(json.dumps({"model": other}))
    with pytest.raises(ValueError, match="does not save kind"):
        load_model(path)


def test_retrieval_vectors_rank_each_users_items_as_score_users_does(fitted: tuple[ModelSpec, TrainedModel]) -> None:
    """A model that offers retrieval vectors (the ANN index searches them) orders items as its scores do.

    For the ranker (a blend) the vectors are its factorisation member's: checked against that member.
    """
    model_spec, model = fitted
    target = model
    if model_spec.name == "ranker":
        target = next(m for m in model.models if hasattr(m, "retrieval_vectors"))  # type: ignore[attr-defined]
    if not hasattr(model, "retrieval_vectors") or model.retrieval_vectors() is None:  # type: ignore[attr-defined]
        pytest.skip(f"{model_spec.name} has no retrieval vectors (served by dense scores)")
    users, items = model.retrieval_vectors()  # type: ignore[attr-defined]
    assert users.shape == (model.n_users, items.shape[1]) and items.shape[0] == model.n_items
    sample = np.arange(0, model.n_users, max(1, model.n_users // 20))
    dots = users[sample].astype(np.float64) @ items.T.astype(np.float64)
    scores = np.asarray(target.score_users(sample), dtype=np.float64)
    for d, s in zip(dots, scores, strict=True):  # the same order: scores differ from dots by a per-user constant
        # (or, for a non-softmax two-tower, a monotone head)
        assert np.corrcoef(np.argsort(np.argsort(d)), np.argsort(np.argsort(s)))[0, 1] > 0.999
