"""The stages of one nightly run, as functions of (settings, run date).

The DAG's tasks and the CLI call these; each reads its inputs from the lake or
the model folder, writes its outputs there, and returns a small JSON-able dict
(paths, counts, metrics) that Airflow passes along as XCom. No stage passes
data through XCom.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import (
    PROJECT_ROOT,
    AutoRecConfig,
    CFConfig,
    RankerConfig,
    Settings,
    SyntheticConfig,
    TwoTowerConfig,
    run_id_for,
)
from recsys.lake import partition_dir, read_partition, write_partition
from recsys.models.cold_start import cold_start_model, segment_weight
from schemas.tables import SCHEMA_VERSION

logger = logging.getLogger(__name__)

STAGED_TABLES = ("stg_ratings", "stg_items", "stg_users", "stg_splits", "stg_tags", "stg_events", "stg_quarantine")
GATED_TABLES = (
    "user_map",
    "item_map",
    "ratings",
    "interactions",
    "items",
    "users",
    "feature_vocab",
    "item_features",
    "user_features",
    "quarantine",
)


def git_sha() -> str:
    """The project's git commit, or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def spark_job_args(settings: Settings, run_date: str) -> dict[str, list[str]]:
    """Arguments of the two Spark jobs for one run.

    Returns:
        ``{"ingest": [...], "build_tables": [...]}``, ready for spark-submit.
    """
    common = [
        "--lake",
        str(settings.lake),
        "--run-date",
        run_date,
        "--seed",
        str(settings.seed),
        "--max-bad-fraction",
        str(settings.max_bad_fraction),
    ]
    ingest = ["--dataset", settings.dataset, *common, "--raw-dir", str(settings.raw_dir)]
    if settings.dataset == "synthetic":
        syn = settings.synthetic
        ingest += [
            "--n-users",
            str(syn.n_users),
            "--n-items",
            str(syn.n_items),
            "--n-groups",
            str(syn.n_groups),
            "--mean-ratings-per-user",
            str(syn.mean_ratings_per_user),
            "--min-ratings-per-user",
            str(syn.min_ratings_per_user),
        ]
    else:
        ingest += ["--data-dir", str(settings.source_dir), "--fold", settings.fold]
    build = [
        *common,
        "--split",
        settings.split,
        "--test-fraction",
        str(settings.test_fraction),
        "--like-threshold",
        str(settings.like_threshold),
        "--positive-events",
        ",".join(settings.positive_events),
        "--exposure-events",
        ",".join(settings.exposure_events),
        "--watch-event",
        settings.watch_event,
        "--min-watch-seconds",
        str(settings.min_watch_seconds),
    ]
    return {"ingest": ingest, "build_tables": build}


def validate(settings: Settings, run_date: str) -> dict[str, Any]:
    """Run the validation gate on the run date's tables.

    Raises:
        ValidationFailed: If any expectation fails (the run stops here).
    """
    from recsys.validation.drift import DriftTolerances, drift_expectations, previous_stats
    from recsys.validation.gate import run_gate

    frames = {name: read_partition(settings.lake, name, run_date) for name in GATED_TABLES}
    for name in STAGED_TABLES:  # the staged tables the source produced
        if partition_dir(settings.lake, name, run_date).exists():
            frames[name] = read_partition(settings.lake, name, run_date)
    drift: dict[str, list[Any]] = {}
    previous = previous_stats(settings.lake, run_date) if settings.drift_checks else None
    if previous is not None:
        tol = DriftTolerances(
            rows=settings.drift_rows, distinct=settings.drift_rows, rating_mean=settings.drift_rating_mean
        )
        drift = drift_expectations(previous[1], tol)
        logger.info("drift checks against the successful run of %s", previous[0])
    report = run_gate(frames, extra=drift)
    return {
        "rows": report.rows,
        "expectations": sum(report.checked.values()),
        "drift_baseline": previous[0] if previous else None,
    }


def _model_dir(settings: Settings, name: str, run_id: str) -> Path:
    return settings.models_dir / name / run_id


def _training_data(settings: Settings, run_date: str) -> tuple[Any, pd.DataFrame]:
    """The run's ratings as an evaluation :class:`~recsys.evaluation.protocol.Split` (train/test split of the table).

    Rows are sorted by ``(user_idx, item_idx)``, so training does not depend on the
    order Spark happened to write them in. Genres (for diversity) come from
    ``item_features`` when it has them.
    """
    from recsys.evaluation.protocol import Split

    ratings = read_partition(settings.lake, "ratings", run_date).sort_values(["user_idx", "item_idx"], kind="stable")
    n_users = int(read_partition(settings.lake, "user_map", run_date)["user_idx"].max()) + 1
    n_items = int(read_partition(settings.lake, "item_map", run_date)["item_idx"].max()) + 1
    train = ratings[ratings["split"] == "train"]
    test = ratings[ratings["split"] == "test"]
    arrays = [tuple(df[c].to_numpy() for c in ("user_idx", "item_idx", "rating")) for df in (train, test)]
    train_ts = train["ts"].to_numpy(np.int64)
    genres = None
    try:
        feats = read_partition(settings.lake, "item_features", run_date)
        if len(feats) and len(feats["genres"].iloc[0]):
            genres = np.zeros((n_items, len(feats["genres"].iloc[0])), dtype=np.float32)
            genres[feats["item_idx"].to_numpy()] = np.stack(feats["genres"].to_numpy())
    except FileNotFoundError:
        pass
    lo, hi = (float(ratings["rating"].min()), float(ratings["rating"].max())) if len(ratings) else (1.0, 5.0)
    return Split(
        run_id_for(settings.dataset, run_date), arrays[0], arrays[1], n_users, n_items, lo, hi, genres, train_ts
    ), ratings


def _rating_inputs(split: Any, seed: int) -> Any:
    """The registry's :class:`~recsys.models.registry.TrainingInputs` of a split: its training ratings,
    checked each epoch against the test split (when it has one)."""
    from recsys.models.registry import TrainingInputs

    tu, ti, ty = split.train
    return TrainingInputs(
        tu,
        ti,
        ty,
        split.n_users,
        split.n_items,
        rating_min=split.rating_min,
        rating_max=split.rating_max,
        ts=split.train_ts,
        validation=split.test if len(split.test[0]) else None,
        seed=seed,
    )


def _positives(settings: Settings, run_date: str, split: Any) -> tuple[np.ndarray, ...]:
    """Training positives of the ranking model: every training rating, plus positive training interactions.

    Every rated item was chosen by its user, whatever the rating (the evaluation
    protocol counts every test rating as relevant); event logs add their
    positive events (``interactions.label == 1``).

    Returns:
        ``(user_idx, item_idx, rating, ts)``, each ``[n_pos]``; ``rating`` is NaN for events,
        ``ts`` None when the split has no times.
    """
    tu, ti, tr = split.train
    rating, ts = np.asarray(tr, np.float64), split.train_ts
    try:
        inter = read_partition(settings.lake, "interactions", run_date)
        inter = inter[(inter["split"] == "train") & (inter["label"] == 1)]
        tu = np.concatenate([tu, inter["user_idx"].to_numpy()])
        ti = np.concatenate([ti, inter["item_idx"].to_numpy()])
        rating = np.concatenate([rating, np.full(len(inter), np.nan)])
        ts = None if ts is None else np.concatenate([ts, inter["ts"].to_numpy()])
    except FileNotFoundError:
        pass
    return tu, ti, rating, ts


def _tuned(settings: Settings, model: str) -> dict[str, Any]:
    """The dataset's last tuned parameters of ``model`` (``explicit``/``implicit``), or ``{}``."""
    path = settings.models_dir / "tuned" / f"{model}.json"
    if not settings.use_tuned or not path.is_file():
        return {}
    return dict(json.loads(path.read_text())["best_params"])


def _params(settings: Settings, model: str, split: Any) -> tuple[Any, dict[str, Any]]:
    """Parameters of ``model`` (``explicit``, ``implicit``, ``autorec``): defaults < tuned < settings given explicitly.

    Tuned values come from ``models/<dataset>/tuned/<model>.json`` (``recsys tune``).
    """
    from recsys.models.autorec import AutoRecParams
    from recsys.models.cf import CFParams
    from recsys.models.implicit_cf import ImplicitCFParams

    config, cls = {
        "explicit": (settings.cf, CFParams),
        "implicit": (settings.ranker, ImplicitCFParams),
        "autorec": (settings.autorec, AutoRecParams),
    }[model]
    tuned = _tuned(settings, model)
    # A setting that differs from the built-in default was given on purpose (env, DAG param)
    # and beats the search; the others take the search's value where there is one.
    values = dict(tuned)
    for key, value in config.model_dump().items():
        if key not in tuned or value != getattr(cls, key):
            values[key] = value
    values.update(seed=settings.seed, patience=0)
    if model == "explicit":
        values.update(loss="mse")
    if model in ("explicit", "autorec"):
        values.update(rating_min=split.rating_min, rating_max=split.rating_max)
    return cls.from_dict(values), {"tuned": bool(tuned)}


def _write_model(
    settings: Settings,
    name: str,
    run_id: str,
    run_date: str,
    model: Any,
    metrics: dict[str, float],
    extra: dict[str, Any],
    split: Any,
) -> Path:
    out = model.save(_model_dir(settings, name, run_id))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    manifest = {
        "model": name,
        "run_id": run_id,
        "run_date": run_date,
        "dataset": settings.dataset,
        "git_sha": git_sha(),
        "schema_version": SCHEMA_VERSION,
        "params": asdict(model.params),
        **extra,
        "data": {
            "ratings_partition": f"ratings/run_date={run_date}",
            "n_users": split.n_users,
            "n_items": split.n_items,
            "n_train": len(split.train[0]),
            "n_test": len(split.test[0]),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out


def _test_metrics(model: Any, split: Any, prefix: str, k: int) -> dict[str, float]:
    """``<prefix>_test_rmse``/``_mae`` (rating models) and ``<prefix>_<ranking metric>`` of ``model`` on the test split.

    Protocol of :func:`recsys.evaluation.protocol.evaluate`; popularity bias is measured against
    the popularity baseline's lists. Empty when the split has no test ratings.
    """
    from recsys.evaluation.protocol import evaluate, ranked_lists
    from recsys.models.baselines import Popularity

    if not len(split.test[0]):
        return {}
    pop_lists, _ = ranked_lists(Popularity().fit(*split.train, split.n_users, split.n_items), split, k=k)
    ev = evaluate(model, split, k=k, popularity_lists=pop_lists)
    out = {f"{prefix}_test_rmse": ev.pop("rmse"), f"{prefix}_test_mae": ev.pop("mae")} if "rmse" in ev else {}
    out.update(_prefixed(prefix, {key: v for key, v in ev.items() if key in _RANKING_KEYS}))
    out[f"{prefix}_users_evaluated"] = float(ev.get("n_users", 0))
    return out


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    """``{prefix_key: value}`` of the finite numbers (a metric without data, NaN, is left out: JSON has no NaN)."""
    return {f"{prefix}_{k}": float(v) for k, v in values.items() if isinstance(v, (int, float)) and np.isfinite(v)}


def train_cf(settings: Settings, run_date: str, run_id: str, *, progress: bool = False) -> dict[str, Any]:
    """Train explicit CF on the train split; evaluate it and the baselines on the test split.

    Writes ``models/<dataset>/cf/<run_id>/`` with ``factors.npz``, ``params.json``,
    ``metrics.json`` and ``manifest.json``. Metrics (evaluation protocol of
    :mod:`recsys.evaluation.protocol`, K = ``top_k``): ``cf_test_rmse``/``cf_test_mae``
    and the baselines' RMSE; the explicit model's ranking metrics ``cf_<metric>``.

    Returns:
        ``{"model_dir": ..., "metrics": {...}}``.
    """
    from recsys.models.baselines import GlobalMean, ItemMean
    from recsys.models.cf import rmse
    from recsys.models.registry import spec

    start = time.monotonic()
    split, _ = _training_data(settings, run_date)
    params, extra = _params(settings, "explicit", split)
    tu, ti, ty = split.train
    fit_start = time.monotonic()
    model = spec("cf").fit(_rating_inputs(split, settings.seed), params, progress)
    metrics: dict[str, float] = {
        "cf_fit_seconds": time.monotonic() - fit_start,
        "cf_train_rmse": rmse(model.predict(tu, ti), ty),
        "n_train": float(len(tu)),
        "n_test": float(len(split.test[0])),
        "k": float(settings.top_k),
    }
    metrics.update(_test_metrics(model, split, "cf", settings.top_k))
    if len(split.test[0]):
        for name, base in (("item_mean", ItemMean()), ("global_mean", GlobalMean())):
            metrics[f"{name}_test_rmse"] = rmse(
                base.fit(tu, ti, ty, split.n_users, split.n_items).predict(*split.test[:2]), split.test[2]
            )
    metrics["cf_seconds"] = time.monotonic() - start
    out = _write_model(settings, "cf", run_id, run_date, model, metrics, extra, split)
    logger.info("cf metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return {"model_dir": str(out), "metrics": metrics}


def train_autorec(settings: Settings, run_date: str, run_id: str, *, progress: bool = False) -> dict[str, Any]:
    """Train the AutoRec rating model on the train split and evaluate it on the test split.

    Skipped (``{"skipped": True, "model_dir": None, "metrics": {}}``) unless
    ``rating_model`` is ``autorec``. Writes ``models/<dataset>/autorec/<run_id>/``
    (``autorec.npz``, ``params.json``, ``metrics.json``, ``manifest.json``). Metrics:
    ``autorec_test_rmse``/``autorec_test_mae``, ``autorec_fit_seconds`` and its
    ranking metrics ``autorec_<metric>`` (as a ranker of predicted ratings).

    Returns:
        ``{"model_dir": ..., "metrics": {...}}``.
    """
    if settings.rating_model != "autorec":
        return {"skipped": True, "model_dir": None, "metrics": {}}
    from recsys.models.cf import rmse
    from recsys.models.registry import spec

    start = time.monotonic()
    split, _ = _training_data(settings, run_date)
    params, extra = _params(settings, "autorec", split)
    tu, ti, ty = split.train
    model = spec("autorec").fit(_rating_inputs(split, settings.seed), params, progress)
    metrics: dict[str, float] = {
        "autorec_fit_seconds": time.monotonic() - start,
        "autorec_train_rmse": rmse(model.predict(tu, ti), ty),
    }
    metrics.update(_test_metrics(model, split, "autorec", settings.top_k))
    metrics["autorec_seconds"] = time.monotonic() - start
    out = _write_model(settings, "autorec", run_id, run_date, model, metrics, extra, split)
    logger.info("autorec metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return {"model_dir": str(out), "metrics": metrics}


def _tower_inputs(
    settings: Settings, run_date: str, n_users: int, n_items: int, train: pd.DataFrame, preprocessor: Any = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(preprocessor, user_x [n_users, d_u], item_x [n_items, d_i])`` from the run's feature tables.

    The preprocessor is fitted on the run's feature tables (their statistics come from the
    training split only) unless one is given; ``train`` (training ratings with ``ts``) gives
    each user's recent-genre mix.
    """
    from recsys.features.tower_inputs import TowerPreprocessor, recent_genre_mix

    users = read_partition(settings.lake, "user_features", run_date).sort_values("user_idx", kind="stable")
    items = read_partition(settings.lake, "item_features", run_date).sort_values("item_idx", kind="stable")
    pre = preprocessor or TowerPreprocessor.fit(users, items)
    genres = np.zeros((n_items, pre.n_genres), dtype=np.float32)
    if pre.n_genres and len(items):
        genres[items["item_idx"].to_numpy()] = np.stack(items["genres"].to_numpy())
    recent = recent_genre_mix(train[["user_idx", "item_idx", "ts"]], genres, n_users)
    user_x = np.zeros((n_users, pre.user_dim), dtype=np.float32)
    user_x[users["user_idx"].to_numpy()] = pre.users(users, recent[users["user_idx"].to_numpy()])
    item_x = np.zeros((n_items, pre.item_dim), dtype=np.float32)
    item_x[items["item_idx"].to_numpy()] = pre.items(items)
    return pre, user_x, item_x


def train_two_tower(settings: Settings, run_date: str, run_id: str, *, progress: bool = False) -> dict[str, Any]:
    """Train the content-based two-tower model from the run's feature tables and training ratings.

    Skipped (``{"skipped": True, "model_dir": None, "metrics": {}}``) unless
    ``cold_start_model`` is ``two_tower``. The training ratings stream from the
    ``ratings`` partition through ``tf.data``; a seeded share of the users
    (``two_tower.cold_validation_fraction``) is held out entirely, scored as new users
    (the cold part of early stopping and the cold temperature), and a seeded share of
    the other ratings (``two_tower.validation_fraction``) for early stopping. Writes
    ``models/<dataset>/two_tower/<run_id>/`` (``two_tower.keras``,
    ``preprocessing.json``, ``user_embeddings.parquet``, ``item_embeddings.parquet``,
    ``params.json``, ``metrics.json``, ``manifest.json``). Metrics:
    ``two_tower_test_rmse``/``_mae``, its ranking metrics ``two_tower_<metric>`` on the
    test split, ``two_tower_fit_seconds``, ``two_tower_examples_per_second``,
    ``two_tower_epoch_seconds`` and ``cold_start_users`` (users it will serve).

    Returns:
        ``{"model_dir": ..., "metrics": {...}}``.
    """
    if settings.cold_start_model != "two_tower":
        return {"skipped": True, "model_dir": None, "metrics": {}}
    from recsys.models.two_tower import TwoTowerParams, fit_two_tower, parquet_chunks, validation_chunks

    start = time.monotonic()
    split, ratings = _training_data(settings, run_date)
    train = ratings[ratings["split"] == "train"]
    pre, user_x, item_x = _tower_inputs(settings, run_date, split.n_users, split.n_items, train)
    config = settings.two_tower
    params = TwoTowerParams.from_dict(
        {**config.model_dump(), "rating_min": split.rating_min, "rating_max": split.rating_max, "seed": settings.seed}
    )
    stream = parquet_chunks(partition_dir(settings.lake, "ratings", run_date))
    users_out = params.cold_validation_fraction if params.loss == "softmax" else 0.0
    chunks, validation, cold_validation = validation_chunks(
        stream, fraction=params.validation_fraction, user_fraction=users_out, seed=params.seed
    )
    fit_start = time.monotonic()
    model = fit_two_tower(
        user_x, item_x, chunks, params, pre, validation=validation, cold_validation=cold_validation, progress=progress
    )
    fit_seconds = time.monotonic() - fit_start
    if cold_validation is not None and settings.cold_start_segment_weight == "auto":
        from recsys.models.cold_start import choose_segment_weight

        pairs = [(u, i) for u, i, _ in chunks()]  # the training pairs: the validation users' are not among them
        fit_u = np.concatenate([u for u, _ in pairs]) if pairs else np.zeros(0, np.int64)
        fit_i = np.concatenate([i for _, i in pairs]) if pairs else np.zeros(0, np.int64)
        segment = _segment_popularity(settings, run_date, fit_u, fit_i, split.n_users, split.n_items)
        weight, ndcg = choose_segment_weight(model, segment, user_x, cold_validation, seed=settings.seed)
        model.history["segment_weight"], model.history["segment_ndcg"] = [weight], ndcg
        logger.info(
            "cold start: segment popularity weight %.1f (validation users' NDCG@10 %s)",
            weight,
            [round(x, 4) for x in ndcg],
        )
    epochs = max(len(model.history.get("loss", [])), 1)
    n_held = len(validation[0]) + (len(cold_validation[0]) if cold_validation is not None else 0)
    n_fit = len(train) - n_held
    n_train = np.bincount(split.train[0], minlength=split.n_users)
    metrics: dict[str, float] = {
        "two_tower_fit_seconds": fit_seconds,
        "two_tower_epoch_seconds": fit_seconds / epochs,
        "two_tower_examples_per_second": n_fit * epochs / max(fit_seconds, 1e-9),
        "cold_start_users": float((n_train <= settings.cold_start_max_ratings).sum()),
        "two_tower_cold_temperature": float(model.history.get("cold_temperature", [1.0])[-1]),
        "cold_start_segment_weight": segment_weight(settings.cold_start_segment_weight, model),
    }
    metrics.update(_test_metrics(model, split, "two_tower", settings.top_k))
    metrics["two_tower_seconds"] = time.monotonic() - start
    extra = {
        "validation_fraction": config.validation_fraction,
        "cold_validation_users": int(np.unique(cold_validation[0]).size) if cold_validation is not None else 0,
        "input_dims": {"user": pre.user_dim, "item": pre.item_dim},
        "feature_tables": [f"user_features/run_date={run_date}", f"item_features/run_date={run_date}"],
    }
    out = _write_model(settings, "two_tower", run_id, run_date, model, metrics, extra, split)
    logger.info("two-tower metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return {"model_dir": str(out), "metrics": metrics}


_RANKING_KEYS = (
    "ndcg",
    "precision",
    "recall",
    "map",
    "hit_rate",
    "coverage",
    "novelty",
    "diversity",
    "popularity_bias",
)


def train_ranker(settings: Settings, run_date: str, run_id: str, *, progress: bool = False) -> dict[str, Any]:
    """Train the ranking model on the training positives; evaluate it and popularity.

    The ranking model is the implicit CF factorisation blended with EASE
    (:func:`recsys.models.ranker.fit_ranker`; ``ranker.ease_weight``, 0 for the
    factorisation alone; catalogues larger than EASE's ``max_items`` also rank with
    the factorisation alone, with a warning); both learn from the training
    positives' sessions too, and EASE from the ratings' values. Writes ``models/<dataset>/ranker/<run_id>/``
    (the blend's members in sub-folders ``cf/`` and ``ease/``, ``metrics.json``,
    ``manifest.json`` with every member's parameters). Metrics at K = ``top_k``:
    ``ranker_<metric>``, ``ranker_cf_ndcg`` (the factorisation alone) and ``popularity_<metric>``.

    Returns:
        ``{"model_dir": ..., "metrics": {...}}``.
    """
    from recsys.models.baselines import Popularity
    from recsys.models.ease import EASEParams
    from recsys.models.ranker import fit_ranker

    start = time.monotonic()
    split, _ = _training_data(settings, run_date)
    params, extra = _params(settings, "implicit", split)
    pu, pi, pr, pts = _positives(settings, run_date, split)
    r = settings.ranker
    # RankerConfig's ease_<field> settings are EASEParams' <field>s (ease_weight is the blend's)
    ease_params = EASEParams.from_dict(
        {k.removeprefix("ease_"): v for k, v in r.model_dump().items() if k.startswith("ease_") and k != "ease_weight"}
    )
    model, factorisation, members = fit_ranker(
        pu,
        pi,
        split.n_users,
        split.n_items,
        cf=params,
        ease=ease_params,
        ease_weight=r.ease_weight,
        rating=pr,
        ts=pts,
        rating_range=(split.rating_min, split.rating_max),
        seed=settings.seed,
        progress=progress,
    )
    if "ease" in members:
        extra = {**extra, "members": members}
    n_pos = np.unique(pu.astype(np.int64) * split.n_items + pi).size
    metrics: dict[str, float] = {
        "ranker_fit_seconds": time.monotonic() - start,
        "n_positives": float(n_pos),
        "k": float(settings.top_k),
    }
    metrics.update(_test_metrics(model, split, "ranker", settings.top_k))
    if len(split.test[0]):
        if model is not factorisation:
            metrics["ranker_cf_ndcg"] = _test_metrics(factorisation, split, "cf", settings.top_k)["cf_ndcg"]
        popularity = Popularity().fit(*split.train, split.n_users, split.n_items)
        metrics.update(_test_metrics(popularity, split, "popularity", settings.top_k))
    metrics["ranker_seconds"] = time.monotonic() - start
    out = _write_model(settings, "ranker", run_id, run_date, model, metrics, extra, split)
    logger.info("ranker metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return {"model_dir": str(out), "metrics": metrics}


def tune(
    settings: Settings,
    run_date: str,
    *,
    trials: int = 20,
    models: tuple[str, ...] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Random search of each model's parameters on a validation split of the training data.

    ``models`` (default: every model the run trains): ``explicit``, ``implicit``, ``autorec``.

    Writes ``models/<dataset>/tuned/<model>.json`` (best parameters, every trial), which
    the next training runs use (``use_tuned``). The test split is never looked at.

    Returns:
        ``{model: {"best_score": ..., "metric": ..., "path": ...}}``.
    """
    from recsys.models.tuning import random_search

    split, _ = _training_data(settings, run_date)
    out: dict[str, Any] = {}
    folder = settings.models_dir / "tuned"
    folder.mkdir(parents=True, exist_ok=True)
    if models is None:
        models = ("explicit", "implicit", "autorec") if settings.rating_model == "autorec" else ("explicit", "implicit")
    for model in models:
        if model in ("explicit", "autorec"):
            u, i, r = split.train
            base = _params(settings, model, split)[0]
        else:
            u, i = _positives(settings, run_date, split)[:2]  # the search has no times: no sessions
            r = np.ones(len(u))
            base = _params(settings, "implicit", split)[0]
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
        path = folder / f"{model}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
        tmp.replace(path)
        out[model] = {"best_score": result.best_score, "metric": result.metric, "path": str(path)}
        logger.info("tuned %s: best %s %.4f -> %s", model, result.metric, result.best_score, path)
    return out


def build_similar_items(
    settings: Settings, run_date: str, model_dir: str, tower_dir: str | None = None
) -> dict[str, Any]:
    """Exact nearest items of every item; writes ``similar_items`` (one list per item and source).

    Sources: ``cf``, by the explicit CF item vectors, among the items with training
    ratings (CF has learnt nothing about the others); ``two_tower``, by the two-tower
    item embeddings (when ``tower_dir`` is given), among every catalogue item: a new
    item with features but no ratings gets neighbours and appears in theirs.
    """
    from recsys.models.cf import CFModel
    from recsys.models.two_tower import TwoTowerModel
    from recsys.retrieval.similar import similar_items

    model = CFModel.load(Path(model_dir))
    items = read_partition(settings.lake, "items", run_date)
    ratings = read_partition(settings.lake, "ratings", run_date)
    catalogue = np.sort(items["item_idx"].to_numpy())
    rated = np.intersect1d(catalogue, ratings.loc[ratings["split"] == "train", "item_idx"].unique())
    rated = rated[rated < model.n_items]
    parts = [(rated, model.x[rated], "cf")]
    if tower_dir:
        tower = TwoTowerModel.load(Path(tower_dir), towers=False)  # embeddings only: no TensorFlow
        known = catalogue[catalogue < tower.n_items]
        parts.append((known, tower.item_emb[known], "two_tower"))
    frames = []
    for ids, vectors, source in parts:
        sim = similar_items(vectors, settings.n_neighbors, source=source)
        sim["item_idx"] = ids[sim["item_idx"].to_numpy()].astype(np.int32)
        sim["neighbor_idx"] = ids[sim["neighbor_idx"].to_numpy()].astype(np.int32)
        frames.append(sim)
    sim = pd.concat(frames, ignore_index=True)
    path = write_partition(sim, settings.lake, "similar_items", run_date)
    return {"path": str(path), "rows": len(sim)}


def serving_model_dir(settings: Settings, cf_dir: str, ranker_dir: str | None, rating_dir: str | None = None) -> str:
    """The model that ranks.

    The ranker (implicit CF) unless ``ranking_model`` is ``explicit`` or it is absent;
    else the rating model (AutoRec when it was trained, else the explicit CF).
    """
    if settings.ranking_model == "implicit" and ranker_dir:
        return ranker_dir
    return rating_dir or cf_dir


def model_version(model_dir: str) -> str:
    """``<model>/<run_id>`` of a model folder (what the store records)."""
    p = Path(model_dir)
    return f"{p.parent.name}/{p.name}"


COLD_START_NOTE = " (new here: chosen by your profile)"
"""Appended to the reason of every recommendation the two-tower model ranked (the serving rule, visible)."""


def _segment_popularity(
    settings: Settings, run_date: str, user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int
) -> Any:
    """Popularity among the users who share a user's demographics (``user_features.demographics``), fitted on the
    training pairs ``(user_idx [n], item_idx [n])`` (:class:`recsys.models.baselines.DemographicPopularity`)."""
    from recsys.models.baselines import DemographicPopularity

    users = read_partition(settings.lake, "user_features", run_date)
    idx = users["user_idx"].to_numpy()
    keep = idx < n_users
    width = len(users["demographics"].iloc[0]) if len(users) else 0
    demographics = np.zeros((n_users, width), dtype=np.float64)
    if width:
        demographics[idx[keep]] = np.stack([np.asarray(d, np.float64) for d in users["demographics"][keep]])
    u, i = np.asarray(user_idx, np.int64), np.asarray(item_idx, np.int64)
    return DemographicPopularity(demographics).fit(u, i, np.ones(u.size), n_users, n_items)


def recommend(
    settings: Settings,
    run_date: str,
    cf_dir: str,
    ranker_dir: str | None = None,
    rating_dir: str | None = None,
    tower_dir: str | None = None,
) -> dict[str, Any]:
    """Candidates for every user, ranked by the model that serves them; writes ``recommendations``.

    Serving rule (per user):

    * a **cold-start user** (at most ``cold_start_max_ratings`` training ratings, none
      included) is served by the two-tower model when it was trained (``tower_dir``):
      candidates are the two-tower neighbours of their recent items, the items their
      ranking model puts first (from their profile embedding, which reaches items nobody
      has rated yet) and popular items, ranked by the two-tower model blended with
      popularity in their segment for users without ratings and with popularity for users
      with a few (:func:`cold_start_model`); each reason ends with :data:`COLD_START_NOTE`;
    * everybody else: CF neighbours of their recent items and popular items, ranked by
      the serving model (:func:`serving_model_dir`).
    """
    from recsys.models.baselines import Popularity
    from recsys.models.registry import load_model
    from recsys.models.two_tower import TwoTowerModel
    from recsys.ranking.rank import rank_candidates
    from recsys.retrieval.candidates import build_candidates, profile_candidates
    from recsys.retrieval.similar import neighbor_matrix

    serving = serving_model_dir(settings, cf_dir, ranker_dir, rating_dir)
    model = load_model(serving)
    ratings = read_partition(settings.lake, "ratings", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    sim = read_partition(settings.lake, "similar_items", run_date)
    n_items = model.n_items
    train = ratings[ratings["split"] == "train"]
    popularity = Popularity().fit(
        train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), train["rating"].to_numpy(), model.n_users, n_items
    )
    popular = popularity.ranking()
    popular = popular[np.isin(popular, items["item_idx"].to_numpy())]
    everyone = users["user_idx"].to_numpy()
    history = ratings[["user_idx", "item_idx", "ts"]]
    titles = dict(zip(items["item_idx"].astype(int), items["title"], strict=True))
    n_train = np.bincount(train["user_idx"].to_numpy(), minlength=int(everyone.max(initial=-1)) + 1)
    cold = (n_train[everyone] <= settings.cold_start_max_ratings) if tower_dir else np.zeros(everyone.size, bool)
    cand = build_candidates(
        everyone[~cold],
        history,
        neighbor_matrix(sim[sim["source"] == "cf"], n_items, settings.n_neighbors),
        popular,
        n_recent=settings.n_recent,
        n_popular=settings.n_popular,
    )
    frames = [rank_candidates(cand, model.predict, top_k=settings.top_k, titles=titles)]
    n_cand = len(cand)
    if cold.any():
        tower = TwoTowerModel.load(Path(tower_dir), towers=False)  # embeddings only: no TensorFlow
        catalogue = np.zeros(tower.n_items, dtype=bool)
        catalogue[items["item_idx"].to_numpy()] = True
        segment, weight = None, segment_weight(settings.cold_start_segment_weight, tower)
        if weight > 0 and (n_train[everyone[cold]] == 0).any():
            segment = _segment_popularity(
                settings,
                run_date,
                train["user_idx"].to_numpy(),
                train["item_idx"].to_numpy(),
                tower.n_users,
                tower.n_items,
            )
        cold_model = cold_start_model(
            tower,
            popularity,
            n_train,
            settings.cold_start_popularity_weight,
            seed=settings.seed,
            segment=segment,
            segment_weight=weight,
        )
        # The items their ranking model puts first (reaching items nobody has rated yet, and their segment's)
        profile = profile_candidates(
            everyone[cold], cold_model.score_users, history, settings.n_popular, catalogue=catalogue
        )
        cold_cand = build_candidates(
            everyone[cold],
            history,
            neighbor_matrix(sim[sim["source"] == "two_tower"], tower.n_items, settings.n_neighbors),
            popular,
            n_recent=settings.n_recent,
            n_popular=settings.n_popular,
            extra=profile,
        )
        cold_recs = rank_candidates(cold_cand, cold_model.predict, top_k=settings.top_k, titles=titles)
        cold_recs["reason"] = cold_recs["reason"] + COLD_START_NOTE
        frames.append(cold_recs)
        n_cand += len(cold_cand)
    recs = pd.concat(frames, ignore_index=True).sort_values(["user_idx", "rank"], kind="stable").reset_index(drop=True)
    path = write_partition(recs, settings.lake, "recommendations", run_date)
    return {
        "path": str(path),
        "rows": len(recs),
        "users": int(recs["user_idx"].nunique()),
        "candidates_per_user": n_cand / max(len(users), 1),
        "cold_start_users": int(cold.sum()),
        "model_version": model_version(serving),
    }


def publish(
    settings: Settings,
    run_date: str,
    run_id: str,
    metrics: dict[str, Any],
    generated_at: str,
    version: str | None = None,
) -> dict[str, Any]:
    """Write-audit-publish the run's recommendations and similar items to the store.

    Raises:
        PublishError: If the audit fails; the previous run stays live.
    """
    from recsys.store import RunInfo, open_store

    ratings = read_partition(settings.lake, "ratings", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    recs = read_partition(settings.lake, "recommendations", run_date)
    sim = read_partition(settings.lake, "similar_items", run_date)
    uid = dict(zip(users["user_idx"], users["user_id"], strict=True))
    iid = dict(zip(items["item_idx"], items["item_id"], strict=True))
    recs_out = pd.DataFrame(
        {
            "user_id": recs["user_idx"].map(uid),
            "rank": recs["rank"],
            "item_id": recs["item_idx"].map(iid),
            "score": recs["score"],
            "reason": recs["reason"],
        }
    )
    sim_out = pd.DataFrame(
        {
            "item_id": sim["item_idx"].map(iid),
            "rank": sim["rank"],
            "neighbor_id": sim["neighbor_idx"].map(iid),
            "distance": sim["distance"],
            "source": sim["source"],
        }
    )
    run = RunInfo(
        run_id=run_id,
        run_date=run_date,
        dataset=settings.dataset,
        model_version=version or f"cf/{run_id}",
        generated_at=generated_at,
        metrics=metrics,
    )
    with open_store(settings.resolved_store_url) as store:
        report = store.publish(
            run,
            recs_out,
            sim_out,
            expected_users=users["user_id"].tolist(),
            known_items=items["item_id"].tolist(),
            seen=ratings[["user_id", "item_id"]],
            k=settings.top_k,
        )
    from recsys.validation.drift import save_stats, table_stats

    save_stats(
        settings.lake, run_date, table_stats({n: read_partition(settings.lake, n, run_date) for n in GATED_TABLES})
    )
    logger.info("published run %s: %d recommendations for %d users", run_id, len(recs_out), users.shape[0])
    return {
        "run_id": run_id,
        "recommendations": len(recs_out),
        "users": int(users.shape[0]),
        "similar_items": len(sim_out),
        "audit_ok": bool(report.ok),
    }


def write_report(
    settings: Settings, run_date: str, run_id: str, model_dir: str | list[str], summary: dict[str, Any]
) -> str:
    """The run's HTML report: evaluation metrics, training curves, counts, sample recommendations.

    Args:
        model_dir: The run's model folder(s) (explicit CF first, then the others; ``None`` entries,
            models the run skipped, are left out).
    """
    from recsys.evaluation.report import write_run_report
    from recsys.models.artifacts import read_params

    dirs = [model_dir] if isinstance(model_dir, str) else [d for d in model_dir if d]
    metrics: dict[str, Any] = {}
    curves: dict[str, dict[str, list[float]]] = {}  # one chart per model: its curves per epoch
    for d in dirs:
        history = read_params(Path(d)).get("history", {})  # the curves only: no model is loaded
        metrics.update(json.loads((Path(d) / "metrics.json").read_text()))
        name = Path(d).parent.name
        chart = curves.setdefault(f"{name}: training curves", {"train loss": history.get("loss", [])})
        if history.get("val_rmse"):
            # The run's models check the test split each epoch; the two-tower model its validation hold-out.
            chart[f"{'validation' if name == 'two_tower' else 'test'} RMSE"] = history["val_rmse"]
        for key, label in (("val_warm_loss", "validation loss"), ("val_cold_loss", "validation loss, users as new")):
            if history.get(key):  # the softmax two-tower: full-catalogue cross-entropy of held-out pairs
                chart[label] = history[key]
    counts = {}
    for name in (*GATED_TABLES, "similar_items", "recommendations"):
        try:
            counts[name] = len(read_partition(settings.lake, name, run_date))
        except FileNotFoundError:
            continue
    bars = {
        "Test RMSE: rating models vs baselines (lower is better)": {
            label: metrics[key]
            for label, key in (
                ("AutoRec", "autorec_test_rmse"),
                ("CF", "cf_test_rmse"),
                ("two-tower", "two_tower_test_rmse"),
                ("item mean", "item_mean_test_rmse"),
                ("global mean", "global_mean_test_rmse"),
            )
            if key in metrics
        }
    }
    k = int(metrics.get("k", settings.top_k))
    for metric in ("ndcg", "precision", "recall", "map"):
        row = {
            label: metrics[f"{prefix}_{metric}"]
            for label, prefix in (
                ("ranker (CF + EASE)", "ranker"),
                ("AutoRec", "autorec"),
                ("explicit CF", "cf"),
                ("two-tower", "two_tower"),
                ("popularity", "popularity"),
            )
            if f"{prefix}_{metric}" in metrics
        }
        if row:
            bars[f"Test {metric.upper() if metric != 'precision' else 'precision'}@{k} (higher is better)"] = row
    try:
        quarantine = read_partition(settings.lake, "quarantine", run_date)
        by_reason = quarantine["reason_code"].value_counts().sort_index()
        bars["Quarantined input rows by reason"] = {str(k): float(v) for k, v in by_reason.items()}
        metrics["quarantined_rows"] = float(len(quarantine))
    except FileNotFoundError:
        pass
    samples = sample_recommendations(settings, run_date, n_users=5, top=5)
    path = settings.reports_dir / run_id / "report.html"
    write_run_report(
        path,
        run={
            "run_id": run_id,
            "run_date": run_date,
            "dataset": settings.dataset,
            "status": "published",
            "model_version": summary.get("model_version", f"cf/{run_id}"),
            **{k: v for k, v in summary.items() if isinstance(v, (str, int, float))},
        },
        metrics=metrics,
        table_counts=counts,
        loss_history=curves,
        bar_charts=bars,
        samples=samples,
    )
    return str(path)


def sample_recommendations(settings: Settings, run_date: str, *, n_users: int = 3, top: int = 5) -> pd.DataFrame:
    """The top ``top`` recommendations of the first ``n_users`` users, with titles (from the lake)."""
    recs = read_partition(settings.lake, "recommendations", run_date)
    users = read_partition(settings.lake, "users", run_date)
    items = read_partition(settings.lake, "items", run_date)
    first = np.sort(recs["user_idx"].unique())[:n_users]
    out = recs[recs["user_idx"].isin(first) & (recs["rank"] <= top)]
    out = out.merge(users[["user_idx", "user_id"]], on="user_idx").merge(items[["item_idx", "title"]], on="item_idx")
    return out.sort_values(["user_idx", "rank"])[["user_id", "rank", "title", "score", "reason"]].reset_index(drop=True)


def resolve_run(overrides: dict[str, Any], run_date: str | None, fallback_date: datetime | None) -> dict[str, Any]:
    """Fix the run's date, id and settings once; every task receives the result.

    Args:
        overrides: Settings given as DAG params (``None`` / empty values are ignored);
            ``synthetic_<field>``, ``cf_<field>``, ``autorec_<field>``, ``ranker_<field>`` and
            ``two_tower_<field>`` set the nested configs.
        run_date: The ``run_date`` param, ``YYYY-MM-DD``, or empty.
        fallback_date: The run's logical date or, failing that, its ``run_after``.

    Returns:
        JSON-able dict: run_date, run_id, settings overrides, Spark job arguments, generated_at,
        and ``tune`` (``{"enabled", "trials"}``, from the ``tune`` / ``tune_trials`` params).
    """
    overrides = dict(overrides)
    tuning = {"enabled": bool(overrides.pop("tune", False)), "trials": int(overrides.pop("tune_trials", None) or 20)}
    if run_date:
        date = datetime.strptime(run_date, "%Y-%m-%d").date().isoformat()
    elif fallback_date is not None:
        date = fallback_date.astimezone(UTC).date().isoformat()
    else:
        raise ValueError("no run date: give the run_date param or a logical date")
    clean: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"synthetic": {}, "cf": {}, "autorec": {}, "ranker": {}, "two_tower": {}}
    for key, value in overrides.items():
        if value in (None, ""):
            continue
        prefix = next((p for p in nested if key.startswith(f"{p}_") and len(key) > len(p) + 1), None)
        if prefix is not None:
            nested[prefix][key[len(prefix) + 1 :]] = value
        else:
            clean[key] = value
    if nested["synthetic"]:
        clean["synthetic"] = SyntheticConfig(**nested["synthetic"])
    if nested["cf"]:
        clean["cf"] = CFConfig(**nested["cf"])
    if nested["autorec"]:
        clean["autorec"] = AutoRecConfig(**nested["autorec"])
    if nested["ranker"]:
        clean["ranker"] = RankerConfig(**nested["ranker"])
    if nested["two_tower"]:
        clean["two_tower"] = TwoTowerConfig(**nested["two_tower"])
    settings = Settings(**clean)
    run_id = run_id_for(settings.dataset, date)
    return {
        "run_date": date,
        "run_id": run_id,
        "settings": json.loads(settings.model_dump_json()),
        "spark_args": spark_job_args(settings, date),
        "generated_at": f"{date}T00:00:00+00:00",
        "tune": tuning,
    }
