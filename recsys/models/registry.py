"""The model registry: one :class:`ModelSpec` per model, declared by the model's own module.

A model's one name (``cf``, ``autorec``, ``ranker``, ``two_tower``) is its artifact folder
(``models/<dataset>/<name>/<run_id>/``), its settings section, its metric prefix and its
report label's key. Older names (``explicit``, ``mf``, ``implicit``) resolve through
:func:`canonical_name` as documented aliases.

Each module in :data:`MODEL_MODULES` defines ``SPEC``; the registry imports it by name when
first asked (:func:`spec`), so the registry itself imports no model module and no import
circle runs through it. Adding a model is one module with its ``SPEC`` and one line here.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.models.artifacts import read_params
from recsys.models.base import TrainedModel

MODEL_MODULES: dict[str, str] = {
    "cf": "recsys.models.cf",
    "autorec": "recsys.models.autorec",
    "ranker": "recsys.models.ranker",
    "two_tower": "recsys.models.two_tower",
}
"""Every registered model: its name and the module that declares its ``SPEC``."""


@dataclass(frozen=True)
class TrainingInputs:
    """What a model's fit recipe reads: the training split, built by the pipeline or a benchmark.

    Grain: one row of the ``[n_train]`` arrays is one training (user, item) rating.

    Attributes:
        user_idx: ``[n_train]`` int user indices.
        item_idx: ``[n_train]`` int item indices.
        rating: ``[n_train]`` float ratings.
        n_users: Users of the index space.
        n_items: Items of the index space.
        rating_min: Lowest rating of the scale.
        rating_max: Highest rating of the scale.
        ts: ``[n_train]`` int64 rating times (seconds), or None.
        validation: ``(user_idx, item_idx, rating)`` pairs checked each epoch, or None.
        positives: Builds ``(user_idx, item_idx, rating, ts)`` of the ranking model's training
            positives, each ``[n_pos]`` (rating NaN for events); None: the ratings themselves.
        towers: Builds ``(preprocessor, user_x [n_users, d_u], item_x [n_items, d_i])`` of the
            two-tower model; None when there are no feature tables.
        chunks: The training ratings as a stream of ``(user_idx, item_idx, rating)`` chunks that
            can be read again (e.g. from the ``ratings`` partition's Parquet files: nothing held in
            memory); None: the arrays above, chunk by chunk.
        holdout: ``(validation, cold_validation)`` pairs held out by the caller (a benchmark's own
            protocol), each ``(user_idx, item_idx, rating)`` or None; the arrays above are then the
            pairs to fit on, and a recipe that carves its own hold-outs does not.
        segments: Fits segment popularity on training pairs ``(user_idx [n], item_idx [n])``; when
            given, the cold-start model chooses its blend with it on its validation users.
        seed: The run's seed.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    rating: np.ndarray
    n_users: int
    n_items: int
    rating_min: float = 1.0
    rating_max: float = 5.0
    ts: np.ndarray | None = None
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    positives: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] | None = None
    towers: Callable[[], tuple[Any, np.ndarray, np.ndarray]] | None = None
    chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]] | None = None
    holdout: tuple[Any, Any] | None = None
    segments: Callable[[np.ndarray, np.ndarray], Any] | None = None
    seed: int = 42

    def training_positives(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(user_idx, item_idx, rating, ts)`` of the training positives (the ratings when none were given)."""
        if self.positives is not None:
            return self.positives()
        return self.user_idx, self.item_idx, np.asarray(self.rating, np.float64), self.ts


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry.

    Attributes:
        name: The model's one name (folder, settings section, metric prefix).
        label: How the run report names it.
        params: Its params dataclass: the only source of its defaults.
        fit: ``fit(inputs, params, progress)`` -> the fitted model.
        loaders: ``{params.json kind: load(folder)}`` of every artifact kind the model saves
            (a blend saves its members in sub-folders of their own kinds).
        aliases: Older names that still resolve to this model (one release).
        role: ``rating`` (predicts ratings), ``ranking`` (ranks candidates) or ``cold_start``.
        own_validation: The recipe carves its own validation split from the training data (and may
            stop early on it); the others may be shown the test split each epoch, for their curves
            only, and never stop early.
        baselines: Baselines of :mod:`recsys.models.baselines` evaluated next to the model, by their
            metric prefix (``item_mean``, ``global_mean``: RMSE; ``popularity``: ranking metrics).
        chosen_by: The run setting (``rating_model``, ``cold_start_model``) that must name this model
            for a run to train it; None: every run trains it (and evaluates it next to the others).
        diagnostics: ``diagnostics(model, inputs, evaluate, fit_seconds)`` -> more metrics of the fitted
            model (``evaluate(other, prefix)`` scores another model by the run's protocol).
    """

    name: str
    label: str
    params: type
    fit: Callable[[TrainingInputs, Any, bool], TrainedModel]
    loaders: Mapping[str, Callable[[Path], TrainedModel]]
    aliases: tuple[str, ...] = ()
    role: str = "rating"
    own_validation: bool = False
    baselines: tuple[str, ...] = ()
    chosen_by: str | None = None
    diagnostics: Callable[..., dict[str, float]] | None = None


def rating_fit(fit: Callable[..., TrainedModel]) -> Callable[[TrainingInputs, Any, bool], TrainedModel]:
    """A :attr:`ModelSpec.fit` recipe of a rating model's ``fit(user_idx, item_idx, rating, n_users, n_items,
    params, *, validation, progress)``: the training ratings, ``inputs.validation`` checked each epoch."""

    def fit_inputs(inputs: TrainingInputs, params: Any, progress: bool = False) -> TrainedModel:
        return fit(
            inputs.user_idx,
            inputs.item_idx,
            inputs.rating,
            inputs.n_users,
            inputs.n_items,
            params,
            validation=inputs.validation,
            progress=progress,
        )

    return fit_inputs


def spec(name: str) -> ModelSpec:
    """The spec of model ``name`` (or of an alias).

    Raises:
        KeyError: For a name the registry does not know, listing the known ones.
    """
    canonical = canonical_name(name)
    found: ModelSpec = importlib.import_module(MODEL_MODULES[canonical]).SPEC
    if found.name != canonical:
        raise RuntimeError(f"{MODEL_MODULES[canonical]}.SPEC is named {found.name!r}, registered as {canonical!r}")
    return found


def specs() -> list[ModelSpec]:
    """Every registered model's spec, in registry order."""
    return [spec(name) for name in MODEL_MODULES]


ALIASES: dict[str, str] = {"explicit": "cf", "mf": "cf", "implicit": "ranker"}
"""Older names kept for one release: ``explicit``/``mf`` (the factorisation), ``implicit`` (the ranker)."""


def canonical_name(name: str) -> str:
    """The registry name of ``name`` (itself, or the model an alias stands for).

    Raises:
        KeyError: For an unknown name.
    """
    canonical = ALIASES.get(name, name)
    if canonical not in MODEL_MODULES:
        known = ", ".join([*MODEL_MODULES, *(f"{a} (= {c})" for a, c in ALIASES.items())])
        raise KeyError(f"unknown model {name!r}; known: {known}")
    return canonical


def loader_for_kind(kind: str) -> Callable[[Path], TrainedModel]:
    """The loader of artifact kind ``kind`` (a params class name in ``params.json``).

    Raises:
        ValueError: When no registered model saves that kind.
    """
    for model in specs():
        if kind in model.loaders:
            return model.loaders[kind]
    raise ValueError(f"no registered model saves artifacts of kind {kind!r}")


def load_model(path: Path | str) -> TrainedModel:
    """The model saved in folder ``path``, whatever its kind.

    The folder's ``manifest.json`` (written by the nightly run) names the model; its
    ``params.json`` (written by every ``save``) gives the artifact kind, which that
    model's spec loads. A folder without a manifest (a blend's member, a test's
    save) is loaded by its kind alone.

    Raises:
        ValueError: When the manifest's model does not save the folder's kind.
    """
    path = Path(path)
    kind = str(read_params(path).get("kind"))
    manifest = path / "manifest.json"
    if manifest.is_file():
        name = json.loads(manifest.read_text()).get("model")
        if name is not None:
            model = spec(str(name))
            if kind not in model.loaders:
                raise ValueError(f"{path}: the manifest names model {name!r}, which does not save kind {kind!r}")
            return model.loaders[kind](path)
    return loader_for_kind(kind)(path)
