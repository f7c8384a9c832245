"""What training reads, built from the run's lake tables: the split, the registry's inputs, the parameters.

Grain of the split: one row per (user, item) rating of the ``ratings`` partition, sorted by
``(user_idx, item_idx)`` so that training does not depend on the order Spark wrote the rows in.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys.config import MODEL_SETTINGS, Settings, params_from_settings, run_id_for
from recsys.lake import partition_dir, read_partition

if TYPE_CHECKING:
    from recsys.evaluation.protocol import Split
    from recsys.models.registry import TrainingInputs

logger = logging.getLogger(__name__)


def training_data(settings: Settings, run_date: str) -> tuple[Split, pd.DataFrame]:
    """The run's ratings as an evaluation :class:`~recsys.evaluation.protocol.Split`, and the sorted table.

    Genres (for diversity) come from ``item_features`` when it has them.

    Returns:
        ``(split, ratings)``: the train/test split of the ``ratings`` partition and the partition itself,
        sorted by ``(user_idx, item_idx)``.
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


def positives(settings: Settings, run_date: str, split: Split) -> tuple[np.ndarray, ...]:
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


def tower_inputs(
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


def segment_popularity(
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


def training_inputs(settings: Settings, run_date: str, split: Split, ratings: pd.DataFrame) -> TrainingInputs:
    """The registry's :class:`~recsys.models.registry.TrainingInputs` of the run, its side data built lazily.

    The training ratings are checked each epoch against the test split (when there is one;
    for the curves only: the run's models never stop early on it). Positives, tower
    features, the ratings' Parquet stream and segment popularity are read from the lake
    only by the recipes that ask for them.
    """
    from recsys.models.registry import TrainingInputs
    from recsys.models.two_tower import parquet_chunks

    tu, ti, ty = split.train
    train = ratings[ratings["split"] == "train"]
    auto_segment = settings.cold_start_segment_weight == "auto"
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
        positives=lambda: positives(settings, run_date, split),
        towers=lambda: tower_inputs(settings, run_date, split.n_users, split.n_items, train),
        chunks=parquet_chunks(partition_dir(settings.lake, "ratings", run_date)),
        segments=(
            (lambda u, i: segment_popularity(settings, run_date, u, i, split.n_users, split.n_items))
            if auto_segment
            else None
        ),
        seed=settings.seed,
    )


OLDER_TUNED_FILES: dict[str, str] = {"cf": "explicit", "ranker": "implicit"}
"""Tuned-parameter files written under the older names (read for one release)."""


def tuned_params(settings: Settings, model: str) -> dict[str, Any]:
    """The dataset's last tuned parameters of ``model`` (``models/<dataset>/tuned/<model>.json``), or ``{}``."""
    if not settings.use_tuned:
        return {}
    for stem in (model, OLDER_TUNED_FILES.get(model)):
        path = settings.models_dir / "tuned" / f"{stem}.json"
        if stem and path.is_file():
            return dict(json.loads(path.read_text())["best_params"])
    return {}


def model_params(settings: Settings, model: str, split: Split) -> tuple[Any, dict[str, Any]]:
    """Parameters of registered ``model``: its params' defaults < tuned values < settings given explicitly.

    A setting that differs from the params' default was given on purpose (environment, DAG
    param) and beats the search; the others take the search's value where there is one. The
    run sets the seed and the data's rating scale; a model that may be shown the test split
    each epoch (every model without its own validation split) never stops early.

    Returns:
        ``(params, {"tuned": bool})``.
    """
    from recsys.models.registry import spec

    found = spec(model)
    section = MODEL_SETTINGS[found.name]
    defaults = {key: field.default for key, field in section.model_fields.items()}
    tuned = tuned_params(settings, found.name)
    values = dict(tuned)
    for key, value in getattr(settings, found.name).model_dump().items():
        if key not in tuned or value != defaults[key]:
            values[key] = value
    values.update(seed=settings.seed, rating_min=split.rating_min, rating_max=split.rating_max)
    if not found.own_validation:
        values["patience"] = 0
    return params_from_settings(found.params, values), {"tuned": bool(tuned)}
