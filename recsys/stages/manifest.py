"""A trained model's folder: its artifacts (the model's own ``save``), ``metrics.json`` and ``manifest.json``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.config import Settings
from recsys.files import git_sha, write_atomic
from schemas.tables import SCHEMA_VERSION

if TYPE_CHECKING:
    from recsys.evaluation.protocol import Split
    from recsys.models.base import TrainedModel


def model_dir(settings: Settings, name: str, run_id: str) -> Path:
    """``models/<dataset>/<name>/<run_id>/``: where the run's model ``name`` is saved."""
    return settings.models_dir / name / run_id


def write_model(
    settings: Settings,
    name: str,
    run_id: str,
    run_date: str,
    model: TrainedModel,
    fit_params: Any,
    metrics: dict[str, float],
    extra: dict[str, Any],
    split: Split,
) -> Path:
    """Save ``model`` and write its metrics and manifest next to it.

    The manifest records the model's registry name (what :func:`recsys.models.registry.load_model`
    reads), the run, the commit, the schema version, the saved artifact's parameters
    (``params``), the recipe's parameters (``fit_params``: e.g. both members of the ranker)
    and the data it was trained on.

    Returns:
        The model's folder.
    """
    out = model.save(model_dir(settings, name, run_id))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    manifest = {
        "model": name,
        "run_id": run_id,
        "run_date": run_date,
        "dataset": settings.dataset,
        "git_sha": git_sha(short=True) or "unknown",
        "schema_version": SCHEMA_VERSION,
        "params": asdict(model.params),
        "fit_params": asdict(fit_params),
        **extra,
        "data": {
            "ratings_partition": f"ratings/run_date={run_date}",
            "n_users": split.n_users,
            "n_items": split.n_items,
            "n_train": len(split.train[0]),
            "n_test": len(split.test[0]),
        },
    }
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return out
