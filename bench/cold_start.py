"""Cold-start benchmark: the content-based two-tower model against CF (mean normalisation) and popularity.

Protocol (:mod:`bench.harness.cold_start`): per dataset, a seeded cold-start
split of the ratings holds out 10% of the users entirely (cold users), 10% of the
items entirely (cold items), and leaves a "few ratings" cohort of 10% of the users
with 1..5 random training ratings (the rest of theirs is test); everything else
is training. One such split holds out only ~94 ML-100K users: a 95% interval
of about +-0.03 NDCG@10 around any difference, and the verdict moves with the
draw. So the benchmark rotates ``--folds`` splits (default 10): fold ``f`` holds
out the ``f``-th of disjoint slices of one seeded permutation of the users (and
of the items), every model is fitted and evaluated per fold, and the cohorts'
users are pooled (10 folds: every user and item is cold once, 940 cold ML-100K
users; 15 to 20 minutes on 2 cores). ``--folds 1`` is one seeded split.

Per split, the feature tables are built by the pipeline's own Spark
transforms (:mod:`recsys.features.tables`, :mod:`recsys.features.features`) with
the ``split`` column of ``ratings`` set to that split, so rating statistics come
from the training ratings only, and converted to pandas for the model.

Models, each fitted on the training ratings of the split:

* ``two_tower``: the registry recipe (:func:`recsys.models.two_tower.fit_two_tower`) with the pipeline's
  defaults (:class:`recsys.models.two_tower.TwoTowerParams`: the ``softmax`` retrieval loss with
  cold dropout; ``--two-tower`` overrides), its inputs from
  :class:`recsys.features.tower_inputs.TowerPreprocessor`; as in the pipeline, a share of
  the warm users (``TwoTowerParams.cold_validation_fraction``, 10%) is held out of its
  training entirely and scored as new users (the cold part of early stopping and the
  cold temperature), and a 10% validation share of the other warm users' training
  ratings is held out (early stopping;
  :func:`bench.harness.cold_start.carve_validation`; the feature tables use every
  training rating, as the pipeline's would).
* ``two_tower_served``: what the pipeline serves cold-start users
  (:func:`recsys.models.cold_start.cold_start_model`): for users without ratings the
  two-tower score blended with ``demographic_popularity`` (popularity in their segment;
  weight ``Settings.cold_start_segment_weight``, by default chosen on the two-tower
  model's validation users as the pipeline does), for users with a few its blend with
  popularity (weight ``Settings.cold_start_popularity_weight``).
* ``cf_explicit``: :func:`recsys.models.cf.fit_cf` with ``CFParams()``: a cold user gets
  the item means ``mu_i + c_i``; every cold item gets the same score.
* ``popularity``: training counts (every cold item scores 0).
* ``demographic_popularity``: popularity among the training users who share the user's
  demographic tokens (:class:`recsys.models.baselines.DemographicPopularity`): what side data
  buys without a model, a reference for the two-tower model on cold users.

Cohorts (ranking metrics at ``k``; ties broken in a seeded random order shared by the
models): ``cold_users`` and ``few_ratings_users`` rank the warm catalogue minus their
training items; ``cold_items``: every non-cold user with test ratings on cold items
ranks the cold items only. ``coverage`` is the share of the cohort's candidate items
recommended to someone.

Targets (reported, not asserted): two-tower NDCG@k above popularity's on cold users,
and the best of the three on cold items. Under them, the cold items' noise: NDCG@k of
20 random fixed item orders (:func:`random_order_spread`). CF and popularity tie every
cold item, so they score that distribution's mean; with a few hundred cold items and
skewed popularity the distribution is wide, and a model must clear its upper end
before its lead on cold items means anything.

Outputs: one table per dataset on stdout (cohort x model x metric, fit seconds), the
targets (pass/fail), and in ``--out``: ``cold_start.json`` (everything) and
``cold_start.html`` (bar charts of NDCG@k per dataset and cohort).

    .venv/bin/python bench/cold_start.py                       # ml-100k and synthetic (3000 x 2000), 10 folds
    .venv/bin/python bench/cold_start.py --data ml-100k --folds 1 --out /tmp/cold_start
    .venv/bin/python bench/cold_start.py --data synthetic --n-users 600 --n-items 300 --cold-items 0.3 \\
        --two-tower epochs=8,patience=2 --raw-dir /tmp/raw --out /tmp/cold_start_small
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.harness.bench_io import environment, jsonable
from bench.harness.cold_start import (
    COHORTS,
    METRICS,
    ColdStartSplit,
    carve_validation,
    cold_start_split_frame,
    evaluate_cold_start,
)
from recsys.config import Settings
from recsys.evaluation.metrics import paired_bootstrap_ci
from recsys.evaluation.svg import bar_chart
from recsys.features.tower_inputs import TowerPreprocessor, recent_genre_mix
from recsys.files import write_atomic
from recsys.models.baselines import DemographicPopularity, Popularity
from recsys.models.cf import CFParams
from recsys.models.cold_start import choose_segment_weight, cold_start_model, segment_weight
from recsys.models.registry import TrainingInputs, spec
from recsys.models.two_tower import TwoTowerParams

logger = logging.getLogger("bench.cold_start")

MODELS: tuple[str, ...] = ("two_tower", "two_tower_served", "cf_explicit", "popularity", "demographic_popularity")
DATASETS: tuple[str, ...] = ("ml-100k", "synthetic")
#: Run date of the staged reads (sources quarantine timestamps after its end; the data is older).
RUN_DATE = "2026-01-01"
#: Random fixed item orders scored on the cold items to show the cohort's noise (:func:`random_order_spread`).
RANDOM_ORDERS = 20
#: Share of the warm users' training ratings the two-tower model validates on (early stopping).
VALIDATION_FRACTION = 0.1


@dataclass
class Prepared:
    """One dataset's split and feature tables, ready for the models.

    Attributes:
        split: The cold-start split.
        user_features: ``user_features`` rows (pandas), row ``u`` is ``user_idx`` u; grain one user.
        item_features: ``item_features`` rows (pandas), row ``i`` is ``item_idx`` i; grain one item.
        train_ratings: Training ``ratings`` rows (``user_idx``, ``item_idx``, ``rating``, ``ts``).
        item_genres: ``[n_items, n_genres]`` multi-hot genres (from ``item_features``).
        seconds: Wall time of reading, splitting and building the feature tables.
    """

    split: ColdStartSplit
    user_features: pd.DataFrame
    item_features: pd.DataFrame
    train_ratings: pd.DataFrame
    item_genres: np.ndarray
    seconds: float


def staged_tables(spark: Any, dataset: str, *, data_dir: Path, raw_dir: Path, synthetic: dict[str, Any]) -> Any:
    """The staged tables (:class:`recsys.data.sources.Staged`) of ``dataset``.

    Args:
        spark: Session.
        dataset: ``ml-100k`` (or any folder layout :func:`recsys.data.sources.open_source` reads) or ``synthetic``.
        data_dir: Folder of real data.
        raw_dir: Cache folder of generated synthetic data (``<raw_dir>/synthetic/<params>``, as ``jobs/ingest.py``).
        synthetic: Generator parameters (``n_users``, ``n_items``, ``n_groups``, ``mean_ratings_per_user``,
            ``min_ratings_per_user``, ``seed``).
    """
    from recsys.data.sources import SyntheticSource, open_source

    if dataset == "synthetic":
        key = "_".join(f"{k}={v}" for k, v in synthetic.items())
        return SyntheticSource(Path(raw_dir) / "synthetic" / key, synthetic).read(spark, run_date=RUN_DATE)
    return open_source(Path(data_dir), fold=None).read(spark, run_date=RUN_DATE)


def prepare(
    spark: Any, staged: Any, *, seed: int, fractions: dict[str, float] | None = None, fold: int | None = None
) -> Prepared:
    """Id maps and ratings by the pipeline's transforms, the cold-start split, then the feature tables.

    Args:
        spark: Session.
        staged: Staged tables of the source.
        seed: Seed of the split.
        fractions: Overrides of :func:`bench.harness.cold_start.cold_start_split`'s fractions.
        fold: Which rotated split (None: one seeded draw).

    Returns:
        The :class:`Prepared` dataset.
    """
    from bench.harness.feature_frames import feature_frames, indexed_ratings

    start = time.perf_counter()
    indexed = indexed_ratings(staged)
    n_users, n_items = indexed.n_users, indexed.n_items
    frame, split = cold_start_split_frame(
        indexed.ratings, n_users=n_users, n_items=n_items, seed=seed, fold=fold, **(fractions or {})
    )
    user_features, item_features = feature_frames(spark, staged, indexed, frame)
    indexed.user_map.unpersist()
    indexed.item_map.unpersist()
    genres = np.stack([np.asarray(g, dtype=np.float32) for g in item_features["genres"]])
    seconds = time.perf_counter() - start
    logger.info(
        "prepared %d users x %d items, %d ratings (%s) in %.1fs", n_users, n_items, len(frame), split.summary(), seconds
    )
    train = frame.loc[split.is_train, ["user_idx", "item_idx", "rating", "ts"]].reset_index(drop=True)
    return Prepared(split, user_features, item_features, train, genres, seconds)


def pipeline_two_tower_params(overrides: dict[str, Any] | None = None) -> TwoTowerParams:
    """The two-tower parameters the nightly pipeline trains with (the params' defaults), plus ``overrides``."""
    return TwoTowerParams.from_dict(overrides or {})


def fit_models(data: Prepared, *, two_tower: TwoTowerParams, cf: CFParams, validation_seed: int) -> dict[str, Any]:
    """Fit the models on the training ratings; model name -> ``{"model", "fit_seconds", "params", ...}``."""
    split = data.split
    tu, ti, tr = split.train
    out: dict[str, Any] = {}

    t0 = time.perf_counter()
    pre = TowerPreprocessor.fit(data.user_features, data.item_features)
    ux = pre.users(data.user_features, recent_genre_mix(data.train_ratings, data.item_genres, split.n_users))
    ix = pre.items(data.item_features)
    users_out = two_tower.cold_validation_fraction if two_tower.loss == "softmax" else 0.0
    fit, val, cold = carve_validation(
        split, fraction=VALIDATION_FRACTION, seed=validation_seed, user_fraction=users_out
    )
    inputs_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = spec("two_tower").fit(  # the registry's recipe, on this benchmark's own hold-outs
        TrainingInputs(*fit, split.n_users, split.n_items, towers=lambda: (pre, ux, ix), holdout=(val, cold)),
        two_tower,
        False,
    )
    out["two_tower"] = {
        "model": model,
        "fit_seconds": time.perf_counter() - t0,
        "inputs_seconds": inputs_seconds,
        "params": dataclasses.asdict(two_tower),
        "history": model.history,
        "n_fit": int(fit[0].size),
        "n_validation": int(val[0].size),
        "n_cold_validation_users": int(np.unique(cold[0]).size),
        "user_dim": pre.user_dim,
        "item_dim": pre.item_dim,
    }

    t0 = time.perf_counter()
    model = spec("cf").fit(TrainingInputs(tu, ti, tr, split.n_users, split.n_items), cf, False)
    out["cf_explicit"] = {"model": model, "fit_seconds": time.perf_counter() - t0, "params": dataclasses.asdict(cf)}

    t0 = time.perf_counter()
    demo = DemographicPopularity(np.stack([np.asarray(d, np.float64) for d in data.user_features["demographics"]]))
    out["demographic_popularity"] = {
        "model": demo.fit(tu, ti, tr, split.n_users, split.n_items),
        "fit_seconds": time.perf_counter() - t0,
        "params": {"power": demo.power, "prior": demo.prior},
    }

    t0 = time.perf_counter()
    model = Popularity().fit(tu, ti, tr, split.n_users, split.n_items)
    out["popularity"] = {"model": model, "fit_seconds": time.perf_counter() - t0, "params": {}}

    settings = Settings()
    w, tower = settings.cold_start_popularity_weight, out["two_tower"]["model"]
    if settings.cold_start_segment_weight == "auto" and cold[0].size:  # as the pipeline's training: on its
        segment = DemographicPopularity(demo.demographics).fit(*fit, split.n_users, split.n_items)  # validation users
        weight, ndcg = choose_segment_weight(tower, segment, ux, cold, seed=validation_seed)
        tower.history["segment_weight"], tower.history["segment_ndcg"] = [weight], ndcg
    ws = segment_weight(settings.cold_start_segment_weight, tower)
    served = cold_start_model(
        tower,
        model,
        np.bincount(tu, minlength=split.n_users),
        w,
        seed=validation_seed,
        segment=out["demographic_popularity"]["model"],
        segment_weight=ws,
    )
    out["two_tower_served"] = {
        "model": served,
        "fit_seconds": out["two_tower"]["fit_seconds"],
        "params": {"popularity_weight": w, "segment_weight": ws},
    }
    return out


class _FixedOrder:
    """A non-personalised scorer: every user gets the same ``[n_items]`` scores."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores, (np.asarray(user_idx).size, self.scores.size))


def random_order_spread(split: ColdStartSplit, *, k: int, seed: int, n: int = RANDOM_ORDERS) -> dict[str, float]:
    """NDCG@k on cold items of ``n`` random fixed item orders (one order for all users): the noise of the cohort.

    The tied baselines score the mean of this distribution (their ties are broken per user); a model that
    learnt one arbitrary global order lands anywhere in it. Few cold items with skewed popularity make it wide.

    Returns:
        ``mean``, ``p05``, ``p95`` and ``n``.
    """
    rng = np.random.default_rng([seed, 7])
    values = [
        evaluate_cold_start(_FixedOrder(rng.random(split.n_items)), split, k=k, seed=seed, only=("cold_items",))[
            "cold_items"
        ]["ndcg"]
        for _ in range(n)
    ]
    return {
        "mean": float(np.mean(values)),
        "p05": float(np.quantile(values, 0.05)),
        "p95": float(np.quantile(values, 0.95)),
        "n": n,
    }


def check_targets(
    metrics: dict[str, dict[str, dict[str, float]]],
    per_user: dict[str, dict[str, np.ndarray]] | None = None,
    *,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The issue's two targets for one dataset, and what the pipeline serves (reported, not asserted).

    Args:
        metrics: Cohort -> model -> metric.
        per_user: Model -> cohort -> ``[n]`` per-user NDCG@k (:func:`evaluate_cold_start`'s ``per_user``); gives
            each comparison a paired bootstrap 95% interval of the difference.
        seed: Seed of the bootstrap.

    Returns:
        One dict per comparison: ``target``, ``model``, ``value`` (its NDCG), ``reference`` (the value to beat),
        ``status`` (``pass`` / ``fail`` / ``n/a``), ``difference`` and ``ci95`` (``[lower, upper]``, NaN without
        ``per_user``), ``significant`` (the interval lies above 0), ``issue_target`` (one of the issue's).
    """

    def ndcg(cohort: str, model: str) -> float:
        return metrics.get(cohort, {}).get(model, {}).get("ndcg", math.nan)

    def row(target: str, cohort: str, model: str, reference: str, issue_target: bool) -> dict[str, Any]:
        value, ref = ndcg(cohort, model), ndcg(cohort, reference)
        ok = _finite(value) and _finite(ref)
        diff, lo, hi = math.nan, math.nan, math.nan
        if per_user is not None and cohort in per_user.get(model, {}) and cohort in per_user.get(reference, {}):
            diff, lo, hi = paired_bootstrap_ci(per_user[model][cohort], per_user[reference][cohort], seed=seed)
        return {
            "target": target,
            "model": model,
            "reference_model": reference,
            "value": value,
            "reference": ref,
            "status": ("pass" if value > ref else "fail") if ok else "n/a",
            "difference": diff,
            "ci95": [lo, hi],
            "significant": bool(_finite(lo) and lo > 0),
            "issue_target": issue_target,
        }

    others = [m for m in ("cf_explicit", "popularity") if _finite(ndcg("cold_items", m))]  # the issue's three
    best_other = max(others, key=lambda m: ndcg("cold_items", m)) if others else "popularity"
    return [
        row("two_tower NDCG@k > popularity's on cold users", "cold_users", "two_tower", "popularity", True),
        row("two_tower NDCG@k the best of the three on cold items", "cold_items", "two_tower", best_other, True),
        row(
            "served (the pipeline's cold-start rule) NDCG@k > popularity's on cold users",
            "cold_users",
            "two_tower_served",
            "popularity",
            False,
        ),
        row(
            "served NDCG@k > popularity's on users with 1-5 ratings",
            "few_ratings_users",
            "two_tower_served",
            "popularity",
            False,
        ),
        row(
            "two_tower NDCG@k > demographic popularity's on cold users",
            "cold_users",
            "two_tower",
            "demographic_popularity",
            False,
        ),
        row(
            "served NDCG@k > demographic popularity's on cold users",
            "cold_users",
            "two_tower_served",
            "demographic_popularity",
            False,
        ),
    ]


def run_dataset(
    spark: Any,
    dataset: str,
    *,
    data_dir: Path,
    raw_dir: Path,
    synthetic: dict[str, Any],
    k: int,
    seed: int,
    two_tower: TwoTowerParams,
    cf: CFParams,
    fractions: dict[str, float] | None = None,
    folds: int = 1,
) -> dict[str, Any]:
    """Split, build the features, fit and evaluate the models on one dataset, once per fold.

    Args:
        folds: 1: one seeded split. More: that many rotated splits (``fold`` of
            :func:`bench.harness.cold_start.cold_start_split`: disjoint cold users and items), each
            fitted and evaluated on its own; the cohorts' users are pooled (metrics are means over every
            fold's users, targets and intervals over the pooled users), as one larger held-out cohort.

    Returns:
        ``dataset``, ``counts`` (split summary; cohort sizes summed over the folds), ``metrics`` (cohort ->
        model -> metric, pooled), ``fit_seconds`` (model -> mean s), ``targets``, ``params``, ``two_tower``
        (first fold's history, sizes), ``per_fold`` (per fold: cold users' NDCG@k per model, the cold
        temperature, epochs), ``folds``, ``prepare_seconds`` (total).
    """
    staged = staged_tables(spark, dataset, data_dir=data_dir, raw_dir=raw_dir, synthetic=synthetic)
    runs: list[dict[str, Any]] = []
    for fold in range(folds):
        data = prepare(spark, staged, seed=seed, fractions=fractions, fold=None if folds == 1 else fold)
        fitted = fit_models(data, two_tower=two_tower, cf=cf, validation_seed=seed)
        metrics: dict[str, dict[str, dict[str, float]]] = {c: {} for c in COHORTS}
        per_user: dict[str, dict[str, np.ndarray]] = {}
        for name in MODELS:
            per_user[name] = {}
            per_cohort = evaluate_cold_start(fitted[name]["model"], data.split, k=k, seed=seed, per_user=per_user[name])
            for cohort, values in per_cohort.items():
                metrics[cohort][name] = values
            logger.info(
                "%s fold %d %s: fit %.1fs, NDCG@%d %s",
                dataset,
                fold,
                name,
                fitted[name]["fit_seconds"],
                k,
                {c: round(v["ndcg"], 4) for c, v in per_cohort.items()},
            )
        runs.append(
            {
                "data": data,
                "fitted": fitted,
                "metrics": metrics,
                "per_user": per_user,
                "spread": random_order_spread(data.split, k=k, seed=seed),
            }
        )
    first = runs[0]
    tt = first["fitted"]["two_tower"]
    history = tt["history"]
    two_tower_summary = {
        "epochs": len(history.get("loss", [])),
        "best_epoch": (history.get("best_epoch") or [None])[0],
        "history": history,
        "n_fit": tt["n_fit"],
        "n_validation": tt["n_validation"],
        "n_cold_validation_users": tt["n_cold_validation_users"],
        "user_dim": tt["user_dim"],
        "item_dim": tt["item_dim"],
        "inputs_seconds": tt["inputs_seconds"],
    }
    metrics = pool_metrics([r["metrics"] for r in runs])
    per_user = {m: {c: np.concatenate([r["per_user"][m][c] for r in runs]) for c in COHORTS} for m in MODELS}
    counts = {
        **first["data"].split.summary(),
        "n_users": first["data"].split.n_users,
        "n_items": first["data"].split.n_items,
    }
    for key in ("n_cold_users", "n_cold_items", "n_few_users", "n_double_cold"):
        counts[key] = int(sum(r["data"].split.summary()[key] for r in runs))
    spreads = [r["spread"] for r in runs]
    per_fold = [
        {
            "fold": j,
            "cold_users_ndcg": {m: r["metrics"]["cold_users"][m]["ndcg"] for m in MODELS},
            "cold_temperature": r["fitted"]["two_tower"]["history"].get("cold_temperature", [1.0])[-1],
            "segment_weight": r["fitted"]["two_tower_served"]["params"]["segment_weight"],
            "epochs": len(r["fitted"]["two_tower"]["history"].get("loss", [])),
        }
        for j, r in enumerate(runs)
    ]
    return {
        "dataset": dataset,
        "folds": folds,
        "counts": counts,
        "metrics": metrics,
        "fit_seconds": {m: float(np.mean([r["fitted"][m]["fit_seconds"] for r in runs])) for m in MODELS},
        "targets": check_targets(metrics, per_user, seed=seed),
        "cold_items_random_order": {key: float(np.mean([sp[key] for sp in spreads])) for key in ("mean", "p05", "p95")}
        | {"n": spreads[0]["n"]},
        "params": {m: first["fitted"][m]["params"] for m in MODELS},
        "two_tower": two_tower_summary,
        "per_fold": per_fold,
        "prepare_seconds": float(sum(r["data"].seconds for r in runs)),
    }


def pool_metrics(runs: list[dict[str, dict[str, dict[str, float]]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Cohort -> model -> metric over several folds' evaluations: ranking metrics averaged over every fold's users
    (weighted by ``n_users``), ``coverage`` and ``n_candidates`` averaged over the folds, ``n_users`` summed."""
    if len(runs) == 1:
        return runs[0]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cohort, models in runs[0].items():
        out[cohort] = {}
        for model in models:
            rows = [r[cohort][model] for r in runs]
            n = np.array([row["n_users"] for row in rows], dtype=np.float64)
            pooled: dict[str, float] = {
                "n_users": int(n.sum()),
                "n_candidates": round(np.mean([row["n_candidates"] for row in rows])),
            }
            for metric in METRICS:
                vals = np.array([row.get(metric, math.nan) for row in rows], dtype=np.float64)
                ok = np.isfinite(vals) & (n > 0)
                if not ok.any():
                    pooled[metric] = math.nan
                elif metric == "coverage":
                    pooled[metric] = float(vals[ok].mean())
                else:
                    pooled[metric] = float(np.average(vals[ok], weights=n[ok]))
            out[cohort][model] = pooled
    return out


def run_cold_start(
    datasets: tuple[str, ...],
    *,
    out_dir: Path,
    data_dir: Path | None = None,
    raw_dir: Path | None = None,
    synthetic: dict[str, Any] | None = None,
    k: int = 10,
    seed: int = 42,
    two_tower: TwoTowerParams | None = None,
    cf: CFParams | None = None,
    fractions: dict[str, float] | None = None,
    folds: int = 1,
    spark: Any = None,
) -> dict[str, Any]:
    """Run every dataset; write ``cold_start.json`` and ``cold_start.html`` into ``out_dir``.

    Args:
        datasets: Of :data:`DATASETS`.
        out_dir: Output folder (created).
        data_dir: MovieLens 100K folder (default :data:`recsys.config.DEFAULT_MOVIELENS_DIR`).
        raw_dir: Cache of generated synthetic data (default ``<project>/data/raw``).
        synthetic: Generator parameters (default: the project's :class:`recsys.config.SyntheticConfig`, seed 42).
        k: Cut-off of the ranking metrics.
        seed: Seed of the split, the validation share and the tie-breaking order.
        two_tower: Two-tower parameters (default ``TwoTowerParams()``).
        cf: CF parameters (default ``CFParams()``).
        fractions: Overrides of the split's fractions.
        folds: Rotated splits per dataset, pooled (:func:`run_dataset`; 1: one seeded split).
        spark: Session; ``None`` creates a local one (``local[2]``) and stops it at the end.

    Returns:
        The JSON content: ``datasets`` (name -> :func:`run_dataset` result), ``k``, ``seed``, ``environment``,
        ``paths``.
    """
    from recsys.config import DEFAULT_MOVIELENS_DIR, PROJECT_ROOT, SyntheticConfig

    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown or not datasets:
        raise ValueError(f"unknown or no dataset(s) {unknown}; known: {list(DATASETS)}")
    out_dir = Path(out_dir)
    start = time.perf_counter()
    load_start = os.getloadavg()
    synthetic = synthetic or {**SyntheticConfig().model_dump(), "seed": 42}
    own_spark = spark is None
    if own_spark:
        from recsys.spark import get_spark

        spark = get_spark("recsys-bench-cold-start", master="local[2]")
    results: dict[str, Any] = {}
    try:
        for dataset in datasets:
            results[dataset] = run_dataset(
                spark,
                dataset,
                data_dir=Path(data_dir or DEFAULT_MOVIELENS_DIR),
                raw_dir=Path(raw_dir or PROJECT_ROOT / "data" / "raw"),
                synthetic=synthetic,
                k=k,
                seed=seed,
                two_tower=two_tower or pipeline_two_tower_params(),
                cf=cf or CFParams(),
                fractions=fractions,
                folds=folds,
            )
            results[dataset]["synthetic"] = synthetic if dataset == "synthetic" else None
    finally:
        if own_spark:
            spark.stop()
    env = environment(start, load_start)
    result: dict[str, Any] = {
        "datasets": results,
        "k": k,
        "seed": seed,
        "folds": folds,
        "models": list(MODELS),
        "cohorts": list(COHORTS),
        "metrics": list(METRICS),
        "environment": env,
        "paths": {"json": str(out_dir / "cold_start.json"), "html": str(out_dir / "cold_start.html")},
    }
    write_atomic(out_dir / "cold_start.json", json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n")
    write_atomic(out_dir / "cold_start.html", render_html(result))
    logger.info("cold-start benchmark: %s in %.1fs; wrote %s", list(datasets), time.perf_counter() - start, out_dir)
    return result


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any, metric: str = "") -> str:
    if not _finite(x):
        return "-"
    return f"{x:.2f}" if metric.endswith("seconds") else f"{x:.4f}"


def _header(metric: str, k: int) -> str:
    return f"{metric}@{k}" if metric in ("ndcg", "precision", "recall", "map", "hit_rate") else metric


def format_table(ds: dict[str, Any], k: int) -> str:
    """Plain aligned text for one dataset: one row per cohort x model, one column per metric, then fit seconds."""
    head = ["cohort", "model", *(_header(m, k) for m in METRICS), "users", "items", "fit_s"]
    rows = []
    for cohort in COHORTS:
        for model in MODELS:
            m = ds["metrics"][cohort][model]
            rows.append(
                [
                    cohort,
                    model,
                    *(_fmt(m.get(c)) for c in METRICS),
                    str(m["n_users"]),
                    str(m["n_candidates"]),
                    _fmt(ds["fit_seconds"][model], "seconds"),
                ]
            )
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in pairs)

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def format_targets(targets: list[dict[str, Any]], spread: dict[str, float] | None = None) -> str:
    """Targets block: one line per target with its status (and the cold items' random-order spread)."""
    lines = ["targets (not asserted; 95% interval of the difference by a paired bootstrap over the cohort's users):"]
    for t in targets:
        lines.append(f"  [{t['status'].upper():4}] {t['target']}: {_fmt(t['value'])} vs {_fmt(t['reference'])}{_ci(t)}")
    if spread:
        lines.append(
            f"  noise: {spread['n']} random fixed item orders score NDCG@k {_fmt(spread['mean'])} on cold "
            f"items (5%-95%: {_fmt(spread['p05'])}-{_fmt(spread['p95'])})"
        )
    return "\n".join(lines)


def _ci(t: dict[str, Any]) -> str:
    """`` (difference +0.0056, 95% CI -0.0100..+0.0210, significant)`` or empty without an interval."""
    lo, hi = t.get("ci95", [math.nan, math.nan])
    if not (_finite(t.get("difference")) and _finite(lo) and _finite(hi)):
        return ""
    verdict = "above 0" if t["significant"] else ("below 0" if hi < 0 else "includes 0")
    return f" (difference {t['difference']:+.4f}, 95% CI {lo:+.4f}..{hi:+.4f}: {verdict})"


def describe(ds: dict[str, Any]) -> str:
    """One line: the split's counts and the two-tower training (with folds: cohort sizes pooled over them)."""
    c, tt = ds["counts"], ds["two_tower"]
    folds = ds.get("folds", 1)
    pooled = f"{folds} rotated splits pooled (ratings, epochs: the first); " if folds > 1 else ""
    return (
        f"{ds['dataset']}: {c['n_users']} users x {c['n_items']} items; {pooled}train {c['n_train']}, test "
        f"{c['n_test']} ratings; {c['n_cold_users']} cold users, {c['n_few_users']} few-ratings users, "
        f"{c['n_cold_items']} cold items ({c['n_warm_items']} warm), {c['n_double_cold']} cold-user x cold-item "
        f"ratings (unused); two-tower {tt['epochs']} epochs (best {tt['best_epoch']}), features built in "
        f"{ds['prepare_seconds']:.1f}s"
    )


def format_folds(ds: dict[str, Any]) -> str:
    """One line per fold: cold users' NDCG@k of the two-tower model and the baselines, and its cold temperature
    (empty for a single split): how much the verdict moves with the cohort."""
    if ds.get("folds", 1) <= 1:
        return ""
    lines = [
        "per fold, cold users' NDCG@k (two_tower / two_tower_served / popularity / demographic_popularity; "
        "cold temperature, segment weight):"
    ]
    for f in ds["per_fold"]:
        n = f["cold_users_ndcg"]
        lines.append(
            f"  fold {f['fold']}: {_fmt(n['two_tower'])} / {_fmt(n['two_tower_served'])} / "
            f"{_fmt(n['popularity'])} / {_fmt(n['demographic_popularity'])}; t = {f['cold_temperature']:.1f}, "
            f"w = {f['segment_weight']:.1f}"
        )
    return "\n".join(lines)


def render_html(result: dict[str, Any]) -> str:
    """Self-contained page: per dataset, NDCG@k bar charts per cohort, the table and the targets."""
    k = result["k"]
    sections = []
    for name, ds in result["datasets"].items():
        charts = []
        for cohort in COHORTS:
            vals = [ds["metrics"][cohort][m].get("ndcg", math.nan) for m in MODELS]
            charts.append(
                bar_chart(
                    list(MODELS),
                    vals,
                    title=f"{name}: NDCG@{k} on {cohort.replace('_', ' ')} (higher is better)",
                    value_format="{:.4f}",
                )
            )
        charts.append(
            bar_chart(
                list(MODELS),
                [ds["fit_seconds"][m] for m in MODELS],
                title=f"{name}: fit seconds (lower is better)",
                value_format="{:.2f}",
            )
        )
        cols = ["cohort", "model", *(_header(m, k) for m in METRICS), "users", "items"]
        table = ["<table><thead><tr>", *(f"<th>{html.escape(c)}</th>" for c in cols), "</tr></thead><tbody>"]
        for cohort in COHORTS:
            for model in MODELS:
                m = ds["metrics"][cohort][model]
                cells = [cohort, model, *(_fmt(m.get(c)) for c in METRICS), m["n_users"], m["n_candidates"]]
                table.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        table.append("</tbody></table>")
        targets = "".join(
            f"<li><b>{html.escape(t['status'])}</b> {html.escape(t['target'])}: "
            f"{html.escape(_fmt(t['value']))} vs {html.escape(_fmt(t['reference']))}"
            f"{html.escape(_ci(t))}</li>"
            for t in ds["targets"]
        )
        r = ds["cold_items_random_order"]
        targets += (
            f"<li>noise: {r['n']} random fixed item orders score NDCG@{k} {_fmt(r['mean'])} on cold items "
            f"(5%-95%: {_fmt(r['p05'])}-{_fmt(r['p95'])})</li>"
        )
        folds = f"<pre>{html.escape(format_folds(ds))}</pre>" if ds.get("folds", 1) > 1 else ""
        sections.append(
            f"<h2>{html.escape(name)}</h2><p>{html.escape(describe(ds))}</p>"
            f'<div class="charts">{"".join(charts)}</div>{"".join(table)}'
            f"<h3>Targets (not asserted)</h3><ul>{targets}</ul>{folds}"
        )
    env = result["environment"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Cold-start benchmark</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ddd;padding:3px 6px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}
.charts svg{{display:block;margin:1em 0}}</style></head><body>
<h1>Cold-start benchmark: two-tower vs CF (mean normalisation) vs popularity</h1>
<p>k = {k}, seed {result["seed"]}. Ties are broken in a seeded random order. {env.get("cpu_count")} CPUs (load average
{html.escape(str(env.get("loadavg_start")))} at start, {html.escape(str(env.get("loadavg_end")))} at the end).</p>
{"".join(sections)}
</body></html>
"""


def _overrides(text: str) -> dict[str, Any]:
    """``"epochs=5,learning_rate=0.003,layers=64-32,item_bias=false"`` -> dict (``-`` separates tuple items)."""
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.partition("=")
        if value.lower() in ("true", "false"):  # e.g. item_bias=false
            out[key] = value.lower() == "true"
        elif "-" in value and not value.startswith("-") and "e-" not in value:
            out[key] = tuple(int(x) for x in value.split("-"))
        else:
            out[key] = json.loads(value) if value[:1].isdigit() or value[:1] == "-" else value
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one table and the targets per dataset."""
    from recsys.config import DEFAULT_MOVIELENS_DIR, PROJECT_ROOT, SyntheticConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="ml-100k,synthetic", help=f"comma-separated datasets of {list(DATASETS)}")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_MOVIELENS_DIR, help="MovieLens 100K folder")
    p.add_argument("--raw-dir", type=Path, default=PROJECT_ROOT / "data" / "raw", help="synthetic data cache")
    cfg = SyntheticConfig()
    p.add_argument("--n-users", type=int, default=cfg.n_users, help="synthetic users")
    p.add_argument("--n-items", type=int, default=cfg.n_items, help="synthetic items")
    p.add_argument("--data-seed", type=int, default=42, help="seed of the synthetic generator")
    p.add_argument("--seed", type=int, default=42, help="seed of the split, validation share and tie-breaking")
    p.add_argument("--k", type=int, default=10, help="cut-off of the ranking metrics")
    p.add_argument("--cold-users", type=float, default=0.1, help="share of the users held out entirely")
    p.add_argument("--cold-items", type=float, default=0.1, help="share of the items held out entirely")
    p.add_argument("--few-users", type=float, default=0.1, help="share of the users kept with 1..5 ratings")
    p.add_argument(
        "--folds",
        type=int,
        default=10,
        help="rotated splits per dataset (disjoint cold users and items), pooled; 1: one seeded split",
    )
    p.add_argument("--two-tower", default="", help="TwoTowerParams overrides, e.g. 'epochs=5,learning_rate=0.003'")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "data" / "reports" / "cold_start", help="output folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    synthetic = {**cfg.model_dump(), "n_users": args.n_users, "n_items": args.n_items, "seed": args.data_seed}
    result = run_cold_start(
        tuple(x.strip() for x in args.data.split(",") if x.strip()),
        out_dir=args.out,
        data_dir=args.data_dir,
        raw_dir=args.raw_dir,
        synthetic=synthetic,
        k=args.k,
        seed=args.seed,
        two_tower=pipeline_two_tower_params(_overrides(args.two_tower)),
        folds=args.folds,
        fractions={
            "cold_user_fraction": args.cold_users,
            "cold_item_fraction": args.cold_items,
            "few_user_fraction": args.few_users,
        },
    )
    env = result["environment"]
    print(f"\n{env['cpu_count']} CPUs, load average {env['loadavg_start']} -> {env['loadavg_end']} (timings are noisy)")
    for ds in result["datasets"].values():
        print(f"\n{describe(ds)}\n")
        print(format_table(ds, result["k"]))
        print()
        print(format_targets(ds["targets"], ds["cold_items_random_order"]))
        if ds.get("folds", 1) > 1:
            print(format_folds(ds))
    print(f"\nwrote {result['paths']['json']} and {result['paths']['html']}")


if __name__ == "__main__":
    main()
