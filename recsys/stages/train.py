"""Stage ``train``: one function trains any registered model from the run's tables.

Which models a run trains follows from its settings (:func:`models_to_train`); the DAG has one
training task per registered model, and a task whose model the run does not need returns
``{"skipped": True}``. Every trained model is evaluated on the test split by the protocol of
:mod:`recsys.evaluation.protocol` (rating metrics when it predicts ratings, ranking metrics at
K = ``top_k``), next to the baselines its spec names, and saved with its metrics and manifest.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.config import Settings
from recsys.stages.inputs import model_params, training_data, training_inputs
from recsys.stages.manifest import write_model

if TYPE_CHECKING:
    from recsys.evaluation.protocol import Split
    from recsys.models.base import Recommender, TrainedModel

logger = logging.getLogger(__name__)


def models_to_train(settings: Settings) -> list[str]:
    """The registered models this run trains, in registry order.

    Every model, except one whose spec names a choosing setting (``chosen_by``: AutoRec by
    ``rating_model``, the two-tower model by ``cold_start_model``) that names another; the
    ranking model is always trained.
    """
    from recsys.models.registry import specs

    return [
        model.name
        for model in specs()
        if model.chosen_by is None
        or getattr(settings, model.chosen_by) == model.name
        or settings.ranking_model == model.name
    ]


def skipped(name: str) -> dict[str, Any]:
    """What a training task returns for a model the run does not need."""
    return {"model": name, "skipped": True, "model_dir": None, "metrics": {}}


def prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    """``{prefix_key: value}`` of the finite numbers (a metric without data, NaN, is left out: JSON has no NaN)."""
    return {f"{prefix}_{k}": float(v) for k, v in values.items() if isinstance(v, (int, float)) and np.isfinite(v)}


def test_metrics(model: TrainedModel | Recommender, split: Split, prefix: str, k: int) -> dict[str, float]:
    """``<prefix>_test_rmse``/``_mae`` (rating models) and ``<prefix>_<ranking metric>`` of ``model`` on the test split.

    Protocol of :func:`recsys.evaluation.protocol.evaluate`; popularity bias is measured against
    the popularity baseline's lists. Empty when the split has no test ratings.
    """
    from recsys.evaluation.protocol import RANKING_METRICS, evaluate, ranked_lists
    from recsys.models.baselines import Popularity

    if not len(split.test[0]):
        return {}
    pop_lists, _ = ranked_lists(Popularity().fit(*split.train, split.n_users, split.n_items), split, k=k)
    ev = evaluate(model, split, k=k, popularity_lists=pop_lists)
    out = {f"{prefix}_test_rmse": ev.pop("rmse"), f"{prefix}_test_mae": ev.pop("mae")} if "rmse" in ev else {}
    out.update(prefixed(prefix, {key: v for key, v in ev.items() if key in RANKING_METRICS}))
    out[f"{prefix}_users_evaluated"] = float(ev.get("n_users", 0))
    return out


BASELINES: dict[str, str] = {"item_mean": "ItemMean", "global_mean": "GlobalMean", "popularity": "Popularity"}
"""Baselines a spec may name (metric prefix -> class of :mod:`recsys.models.baselines`)."""


def baseline_metrics(names: tuple[str, ...], split: Split, k: int) -> dict[str, float]:
    """Test metrics of the named baselines: ``<name>_test_rmse`` of rating baselines, every metric of the others."""
    from recsys.models import baselines
    from recsys.models.cf import rmse

    out: dict[str, float] = {}
    if not len(split.test[0]):
        return out
    for name in names:
        base = getattr(baselines, BASELINES[name])().fit(*split.train, split.n_users, split.n_items)
        if name == "popularity":
            out.update(test_metrics(base, split, name, k))
        else:
            out[f"{name}_test_rmse"] = rmse(base.predict(*split.test[:2]), split.test[2])
    return out


def train(settings: Settings, run_date: str, run_id: str, model: str, *, progress: bool = False) -> dict[str, Any]:
    """Train registered ``model`` on the run's training split; evaluate it; save it.

    Writes ``models/<dataset>/<model>/<run_id>/``: the model's artifacts, ``metrics.json`` and
    ``manifest.json``. Metrics: ``<model>_fit_seconds``, ``<model>_seconds``, ``<model>_train_rmse``
    (rating models), ``<model>_test_rmse``/``_mae`` and ``<model>_<ranking metric>`` on the test
    split, the spec's baselines and diagnostics; for the cold-start model also
    ``cold_start_users`` (users it will serve) and ``cold_start_segment_weight``.

    Args:
        settings: The run's settings.
        run_date: ``YYYY-MM-DD`` of the lake partitions.
        run_id: The run's id (the model folder's name).
        model: A registered model name (or an older alias).
        progress: Show training progress bars.

    Returns:
        ``{"model", "model_dir", "metrics"}``, or ``{"skipped": True, ...}`` when the run does not
        need ``model``.
    """
    from recsys.models.cf import rmse
    from recsys.models.cold_start import segment_weight
    from recsys.models.registry import spec

    found = spec(model)
    name = found.name
    if name not in models_to_train(settings):
        return skipped(name)
    start = time.monotonic()
    split, ratings = training_data(settings, run_date)
    inputs = training_inputs(settings, run_date, split, ratings)
    params, extra = model_params(settings, name, split)
    k = settings.top_k
    fit_start = time.monotonic()
    fitted = found.fit(inputs, params, progress)
    fit_seconds = time.monotonic() - fit_start
    tu, ti, ty = split.train
    metrics: dict[str, float] = {
        f"{name}_fit_seconds": fit_seconds,
        "n_train": float(len(tu)),
        "n_test": float(len(split.test[0])),
        "k": float(k),
    }
    if getattr(fitted, "predicts_ratings", True):
        metrics[f"{name}_train_rmse"] = rmse(fitted.predict(tu, ti), ty)
    metrics.update(test_metrics(fitted, split, name, k))
    metrics.update(baseline_metrics(found.baselines, split, k))
    if found.diagnostics is not None:
        metrics.update(found.diagnostics(fitted, inputs, lambda m, p: test_metrics(m, split, p, k), fit_seconds))
    if found.role == "cold_start":
        n_train = np.bincount(tu, minlength=split.n_users)
        metrics["cold_start_users"] = float((n_train <= settings.cold_start_max_ratings).sum())
        metrics["cold_start_segment_weight"] = segment_weight(settings.cold_start_segment_weight, fitted)
    metrics[f"{name}_seconds"] = time.monotonic() - start
    out = write_model(settings, name, run_id, run_date, fitted, params, metrics, extra, split)
    logger.info("%s metrics: %s", name, {key: round(v, 4) for key, v in metrics.items()})
    return {"model": name, "model_dir": str(out), "metrics": metrics}
