"""Stage ``tune`` (optional): random search of the models' parameters on a validation split of the training data."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

import numpy as np

from recsys.config import Settings
from recsys.files import write_atomic
from recsys.stages.inputs import model_params, positives, training_data
from recsys.stages.train import models_to_train

logger = logging.getLogger(__name__)


def tune(
    settings: Settings,
    run_date: str,
    *,
    trials: int = 20,
    models: tuple[str, ...] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Random search of each model's parameters on a validation split of the training data.

    ``models`` (default: every model the run trains that has a search space,
    :data:`recsys.models.tuning.SEARCH_SPACES`): registry names (``cf``, ``ranker``,
    ``autorec``) or their older aliases.

    Writes ``models/<dataset>/tuned/<model>.json`` (best parameters, every trial), which
    the next training runs use (``use_tuned``). The test split is never looked at.

    Returns:
        ``{model: {"best_score": ..., "metric": ..., "path": ...}}``.
    """
    from recsys.models.registry import canonical_name
    from recsys.models.tuning import SEARCH_SPACES, random_search, tuned_member

    split, _ = training_data(settings, run_date)
    out: dict[str, Any] = {}
    folder = settings.models_dir / "tuned"
    if models is None:
        models = tuple(name for name in models_to_train(settings) if name in SEARCH_SPACES)
    for model in (canonical_name(m) for m in models):
        base = tuned_member(model, model_params(settings, model, split)[0])
        if model == "ranker":  # the ranking model learns from positives; the search has no times: no sessions
            u, i = positives(settings, run_date, split)[:2]
            r = np.ones(len(u))
        else:
            u, i, r = split.train
        result = random_search(
            model,
            u,
            i,
            r,
            split.n_users,
            split.n_items,
            n_trials=trials,
            seed=settings.seed,
            base=asdict(base),
            progress=progress,
        )
        doc = {**result.to_json(), "run_date": run_date, "dataset": settings.dataset}
        path = write_atomic(folder / f"{model}.json", json.dumps(doc, indent=2, sort_keys=True))
        out[model] = {"best_score": result.best_score, "metric": result.metric, "path": str(path)}
        logger.info("tuned %s: best %s %.4f -> %s", model, result.metric, result.best_score, path)
    return out
