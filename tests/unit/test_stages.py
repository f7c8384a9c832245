"""The stages' rules that need no data: which models a run trains, which one serves, what a skipped task returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import Settings
from recsys.models.registry import MODEL_MODULES
from recsys.stages.recommend import model_version, serving_model_dir
from recsys.stages.train import models_to_train, train


def test_default_run_trains_every_registered_model() -> None:
    assert models_to_train(Settings()) == list(MODEL_MODULES)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"rating_model": "cf"}, ["cf", "ranker", "two_tower"]),
        ({"cold_start_model": "none"}, ["cf", "autorec", "ranker"]),
        # the ranker is evaluated every run, serving or not
        ({"ranking_model": "explicit", "rating_model": "mf", "cold_start_model": "none"}, ["cf", "ranker"]),
        ({"ranking_model": "autorec", "rating_model": "cf"}, ["cf", "autorec", "ranker", "two_tower"]),
    ],
)
def test_models_to_train_follow_the_serving_settings(settings: dict, expected: list[str]) -> None:
    assert models_to_train(Settings(**settings)) == expected


def test_a_model_the_run_does_not_need_is_skipped_without_reading_data(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, rating_model="cf")  # the lake is empty: reading it would fail
    out = train(settings, "2026-01-01", "synthetic_20260101", "autorec")
    assert out == {"model": "autorec", "skipped": True, "model_dir": None, "metrics": {}}
    with pytest.raises(KeyError, match="unknown model"):
        train(settings, "2026-01-01", "synthetic_20260101", "nope")


def test_serving_model_is_the_ranking_model_else_the_rating_model_else_cf() -> None:
    dirs = {"cf": "m/cf/r1", "autorec": "m/autorec/r1", "ranker": "m/ranker/r1", "two_tower": None}
    assert serving_model_dir(Settings(), dirs) == "m/ranker/r1"
    assert serving_model_dir(Settings(ranking_model="explicit"), dirs) == "m/autorec/r1"
    assert serving_model_dir(Settings(), {**dirs, "ranker": None}) == "m/autorec/r1"
    assert serving_model_dir(Settings(rating_model="cf"), {**dirs, "ranker": None, "autorec": None}) == "m/cf/r1"
    assert model_version("m/ranker/r1") == "ranker/r1"
    with pytest.raises(ValueError, match="no trained model"):
        serving_model_dir(Settings(), dict.fromkeys(dirs))
