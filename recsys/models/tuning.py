"""Seeded random search over the CF models' hyper-parameters, scored on a validation split.

The search carves a per-user validation split out of the *training* data it is
given (:func:`recsys.evaluation.protocol.holdout`; the test fold is never
seen), trains each trial on the rest with early stopping and scores it on the
held-out part:

* ``cf`` (:func:`recsys.models.cf.fit_cf`, ``mse``): validation RMSE of
  the best epoch, lower is better; the labels are the ratings.
* ``ranker`` (its factorisation, :func:`recsys.models.implicit_cf.fit_implicit_cf`): validation
  NDCG@10 of the best check, higher is better; every training rating is a
  positive (rating values are ignored).
* ``autorec`` (:func:`recsys.models.autorec.fit_autorec`): validation RMSE after
  the trial's last epoch. No early stopping: its learning rate decays along a
  cosine over exactly ``epochs``, so the space draws ``epochs`` instead.

Trial 0 is always the base parameters (the dataclass defaults overridden by
``base``), so the search never returns something worse than the defaults on
validation. The winner's parameters come back as a full params dict with
``epochs`` set to its best epoch and ``patience = 0``: the nightly run retrains
on all the training data for exactly that many epochs, without a validation
split.

A search space maps a params field to a distribution: :class:`Choice`,
:class:`LogUniform`, a fixed value, or a :class:`Branch` (pick one named
sub-space, e.g. a loss variant with its own ``l2`` range, since the right
scale of ``l2`` depends on the loss and on ``reg_weighting``). Trial ``t`` draws
from its own stream ``default_rng([seed, t])``: the same inputs and seed give
the same trials, and more trials extend the same search.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from recsys.evaluation.protocol import holdout
from recsys.models.autorec import AutoRecParams, fit_autorec
from recsys.models.cf import CFParams, fit_cf, progress_bar
from recsys.models.implicit_cf import ImplicitCFParams, fit_implicit_cf

logger = logging.getLogger(__name__)

ModelKind = Literal["cf", "ranker", "autorec"]
RATING_MODELS = ("cf", "autorec")
"""Models scored by validation RMSE of ratings (lower is better); the others by NDCG@10."""

TRIAL_PATIENCE = 3
"""Early-stopping patience of a trial: epochs (cf) or validation checks (ranker)."""


@dataclass(frozen=True)
class Choice:
    """One of ``values``, uniformly."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Choice needs at least one value")


@dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform on ``[log low, log high]``, rounded to ``digits`` significant digits."""

    low: float
    high: float
    digits: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.low <= self.high:
            raise ValueError(f"LogUniform needs 0 < low <= high, got {self.low}, {self.high}")


@dataclass(frozen=True)
class Branch:
    """One named sub-space, uniformly; its entries (fixed values or distributions) are then drawn.

    Example: ``Branch({"a=1": {"reg_weighting": 1.0, "l2": LogUniform(0.03, 0.5)}, ...})``
    couples the range of ``l2`` to the value of ``reg_weighting``.
    """

    options: Mapping[str, Mapping[str, Any]]

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("Branch needs at least one option")


SEARCH_SPACES: dict[str, dict[str, Any]] = {
    # Explicit ratings (mse). The scale of l2 (and l2_bias) depends on reg_weighting a:
    # with a = 1 each vector is charged l2 * n (its rating count), so l2 is "per rating"
    # and small; with a = 0 it is charged once, so l2 is about (mean count)^a x larger.
    # On MovieLens 100K (u1.base validation) the best region was a = 0.5..1 with a small
    # init_std and learning rate (val RMSE 0.909..0.911 there, a flat surface).
    "cf": {
        "n_factors": Choice((16, 32, 64, 128)),
        "regulariser": Branch(
            {
                "a=1": {"reg_weighting": 1.0, "l2": LogUniform(0.03, 0.5), "l2_bias": LogUniform(0.001, 0.1)},
                "a=0.75": {"reg_weighting": 0.75, "l2": LogUniform(0.15, 0.8), "l2_bias": LogUniform(0.01, 0.3)},
                "a=0.5": {"reg_weighting": 0.5, "l2": LogUniform(0.5, 3.0), "l2_bias": LogUniform(0.03, 1.0)},
                "a=0": {"reg_weighting": 0.0, "l2": LogUniform(3.0, 50.0), "l2_bias": LogUniform(0.1, 10.0)},
            }
        ),
        "init_std": Choice((0.01, 0.1)),
        "learning_rate": LogUniform(0.003, 0.03),
    },
    # Implicit (positives only). l2 is on the summed vectors against a data term per positive,
    # so its scale depends on the loss. The sampled logistic variants converge in tens of
    # epochs, so they check validation every 2 epochs and stop by 60; the softmax takes hundreds.
    # (On MovieLens 100K the softmax won clearly: val NDCG@10 ~0.24 against <= 0.19 sampled.)
    "ranker": {
        "variant": Branch(
            {
                "softmax": {"loss": "softmax", "l2": LogUniform(3.0, 40.0), "eval_every": 10},
                "logistic-uniform": {
                    "loss": "logistic",
                    "negatives": "uniform",
                    "l2": LogUniform(0.3, 30.0),
                    "neg_ratio": Choice((2, 4, 8)),
                    "eval_every": 2,
                    "epochs": 60,
                },
                "logistic-popularity": {
                    "loss": "logistic",
                    "negatives": "popularity",
                    "l2": LogUniform(0.3, 30.0),
                    "neg_ratio": Choice((2, 4, 8)),
                    "eval_every": 2,
                    "epochs": 60,
                },
            }
        ),
        "n_factors": Choice((16, 32, 64, 128)),
        "l2_bias": Choice((0.0, 0.3, 3.0)),
        "init_std": Choice((0.01, 0.1)),
        "learning_rate": LogUniform(0.005, 0.05),
    },
    # AutoRec: full-batch Adam with a cosine schedule over `epochs` (so epochs is drawn, not early-stopped).
    # On MovieLens 100K (u1.base validation) hidden 300, lambda 60, lr 0.005 and 60 epochs scored 0.886.
    "autorec": {
        "hidden": Choice((150, 300, 500)),
        "l2": LogUniform(10.0, 300.0),
        "learning_rate": LogUniform(0.002, 0.02),
        "epochs": Choice((40, 60, 90)),
    },
}
"""Default search space per model: field -> :class:`Choice` / :class:`LogUniform` / :class:`Branch` / fixed value.

Branch labels (``regulariser``, ``variant``) are not params fields: only what their
chosen option sets is.
"""


@dataclass(frozen=True)
class TuningResult:
    """Outcome of :func:`random_search`.

    Attributes:
        model: ``cf``, ``ranker`` or ``autorec`` (older names ``explicit``, ``implicit`` too).
        best_params: The winner as a full params dict (``asdict`` of :class:`CFParams` /
            :class:`ImplicitCFParams` / :class:`AutoRecParams`), ``epochs`` = its best epoch and ``patience = 0``.
        best_score: Its validation score.
        metric: ``val_rmse`` (cf, autorec; lower is better) or ``val_ndcg`` (NDCG@10, higher is better).
        trials: One dict per trial, in order: ``params`` (the values drawn; empty for trial 0,
            the base), ``score``, ``best_epoch`` and ``seconds``.
    """

    model: str
    best_params: dict
    best_score: float
    metric: str
    trials: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-serialisable dict (:meth:`from_json` reads it back)."""
        return {
            "model": self.model,
            "best_params": dict(self.best_params),
            "best_score": float(self.best_score),
            "metric": self.metric,
            "trials": [dict(t, params=dict(t["params"])) for t in self.trials],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TuningResult:
        """Read a dict written by :meth:`to_json`."""
        return cls(
            model=str(data["model"]),
            best_params=dict(data["best_params"]),
            best_score=float(data["best_score"]),
            metric=str(data["metric"]),
            trials=[dict(t) for t in data["trials"]],
        )

    def params(self) -> CFParams | ImplicitCFParams | AutoRecParams:
        """``best_params`` as the model's params dataclass."""
        return _params_class(self.model).from_dict(self.best_params)


def _params_class(model: str) -> type[CFParams] | type[ImplicitCFParams] | type[AutoRecParams]:
    classes = {"cf": CFParams, "ranker": ImplicitCFParams, "autorec": AutoRecParams}
    if model not in classes:
        raise ValueError(f"model must be 'cf', 'ranker' or 'autorec', got {model!r}")
    return classes[model]


def tuned_member(model: str, params: Any) -> Any:
    """The part of registered ``model``'s params that its search covers: the ranker's factorisation, else all."""
    return params.cf if model == "ranker" else params


def _python(value: Any) -> Any:
    """NumPy scalars to plain Python (JSON, dataclass equality)."""
    return value.item() if isinstance(value, np.generic) else value


def sample_params(space: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Draw one assignment of params fields from ``space``.

    Entries are drawn in the space's order; a :class:`Branch` draws an option and then
    its entries (recursively). A list or tuple is shorthand for :class:`Choice`; any
    other non-distribution value is fixed.

    Args:
        space: Field (or branch label) -> distribution.
        rng: Random stream (consumed).

    Returns:
        Field -> value, plain Python types.
    """
    out: dict[str, Any] = {}
    for key, dist in space.items():
        if isinstance(dist, Branch):
            names = list(dist.options)
            out.update(sample_params(dist.options[names[int(rng.integers(len(names)))]], rng))
            continue
        if isinstance(dist, list | tuple):
            dist = Choice(tuple(dist))
        if isinstance(dist, Choice):
            out[key] = _python(dist.values[int(rng.integers(len(dist.values)))])
        elif isinstance(dist, LogUniform):
            x = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
            out[key] = float(f"{x:.{dist.digits}g}")
        else:
            out[key] = _python(dist)
    return out


def _check_keys(keys: set[str], model: str, what: str) -> None:
    names = {f.name for f in fields(_params_class(model))}
    unknown = sorted(keys - names)
    if unknown:
        raise ValueError(f"{what}: not {_params_class(model).__name__} fields: {unknown}")


def _space_fields(space: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for key, dist in space.items():
        if isinstance(dist, Branch):
            for option in dist.options.values():
                keys |= _space_fields(option)
        else:
            keys.add(key)
    return keys


def random_search(
    model: ModelKind,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    rating: np.ndarray | None,
    n_users: int,
    n_items: int,
    *,
    n_trials: int = 20,
    seed: int = 0,
    validation_fraction: float = 0.1,
    base: dict | None = None,
    space: dict | None = None,
    max_epochs: int | None = None,
    progress: bool = False,
) -> TuningResult:
    """Seeded random search of ``model``'s hyper-parameters on a validation split of the given data.

    Args:
        model: ``cf`` (``fit_cf``, mse on ratings), ``ranker`` (its factorisation, ``fit_implicit_cf``) or
            ``autorec`` (``fit_autorec``, ratings).
        user_idx: ``[n]`` user indices of the training ratings (grain: one rating).
        item_idx: ``[n]`` item indices.
        rating: ``[n]`` ratings (the labels of ``cf``; ignored, may be None, for ``ranker``).
        n_users: Users of the index space.
        n_items: Items of the index space.
        n_trials: Trials including trial 0 (the base params).
        seed: Seed of the validation split and of the draws (not of the models: that is ``base["seed"]``).
        validation_fraction: Share of each user's ratings held out for validation.
        base: Overrides of the params dataclass defaults: trial 0, and the values of fields the space
            does not draw.
        space: Search space (default :data:`SEARCH_SPACES` ``[model]``).
        max_epochs: Epoch cap of every trial (default: the base ``epochs``). A space may draw ``epochs``
            itself (a variant's own cap, e.g. the sampled losses converge in tens of epochs), never
            above ``max_epochs``. Trials stop early after ``TRIAL_PATIENCE`` epochs (cf) or
            validation checks (ranker) without improvement, or the base ``patience`` when positive.
        progress: Show a progress bar over the trials (rich).

    Returns:
        The :class:`TuningResult`; ties go to the earlier trial (so the base wins ties).
    """
    from recsys.models.registry import ALIASES

    model = ALIASES.get(model, model)  # type: ignore[assignment]
    cls = _params_class(model)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    base = dict(base or {})
    space = dict(SEARCH_SPACES[model] if space is None else space)
    _check_keys(set(base), model, "base")
    _check_keys(_space_fields(space), model, "space")
    base_params = cls.from_dict(base)
    if model == "cf" and base_params.loss != "mse":
        raise ValueError(f"cf tuning scores RMSE of ratings: loss must be 'mse', got {base_params.loss!r}")
    patience = base_params.patience if base_params.patience > 0 else TRIAL_PATIENCE
    epochs = int(max_epochs) if max_epochs is not None else base_params.epochs
    check_every = getattr(base_params, "eval_every", 1)
    if model == "autorec":  # scored once, after the last epoch of its schedule
        base_params = replace(base_params, epochs=epochs, patience=0, eval_every=epochs)
    else:
        base_params = replace(base_params, epochs=epochs, patience=patience)

    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    if rating is None:
        if model in RATING_MODELS:
            raise ValueError(f"{model} tuning needs ratings")
        rating = np.ones(user_idx.size)
    rating = np.asarray(rating, dtype=np.float64)
    (tu, ti, tr), (vu, vi, vr) = holdout(user_idx, item_idx, rating, fraction=validation_fraction, seed=seed)
    metric = "val_rmse" if model in RATING_MODELS else "val_ndcg"
    lower_better = model in RATING_MODELS
    logger.info(
        "tuning %s CF: %d trials, %d training / %d validation ratings, %s, max %d epochs",
        model,
        n_trials,
        tr.size,
        vr.size,
        metric,
        epochs,
    )

    trials: list[dict] = []
    best: tuple[float, int, Any] | None = None  # (score, trial, params)
    start = time.monotonic()
    bar, task = progress_bar(progress, f"tuning {model} CF", n_trials)
    try:
        for t in range(n_trials):
            drawn = {} if t == 0 else sample_params(space, np.random.default_rng([seed, t]))
            if max_epochs is not None and drawn.get("epochs", 0) > max_epochs:
                drawn["epochs"] = int(max_epochs)  # a branch's own cap never exceeds max_epochs
            params = replace(base_params, **drawn)
            if model == "autorec":
                params = replace(params, eval_every=params.epochs)
            t0 = time.monotonic()
            if model == "cf":
                fitted = fit_cf(tu, ti, tr, n_users, n_items, params, validation=(vu, vi, vr))
            elif model == "autorec":
                fitted = fit_autorec(tu, ti, tr, n_users, n_items, params, validation=(vu, vi, vr))
            else:
                fitted = fit_implicit_cf(tu, ti, n_users, n_items, params, validation=(vu, vi))
            seconds = time.monotonic() - t0
            scores = np.asarray(fitted.history.get(metric, [np.nan]), dtype=np.float64)
            best_epoch = int(fitted.history.get("best_epoch", [len(fitted.history["loss"])])[0])
            if np.all(np.isnan(scores)):
                score = math.nan
            else:
                score = float(np.nanmin(scores) if lower_better else np.nanmax(scores))
            trials.append({"params": drawn, "score": score, "best_epoch": best_epoch, "seconds": seconds})
            logger.info(
                "trial %d/%d %s: %s %.4f at epoch %d in %.1fs",
                t + 1,
                n_trials,
                drawn or "(base)",
                metric,
                score,
                best_epoch,
                seconds,
            )
            if math.isfinite(score) and (best is None or (score < best[0] if lower_better else score > best[0])):
                best = (score, t, replace(params, epochs=best_epoch, patience=0))
                if model == "autorec":
                    best = (score, t, replace(params, eval_every=check_every))
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    if best is None:
        raise RuntimeError(f"no {model} trial produced a finite {metric}")
    logger.info(
        "tuning %s CF done in %.1fs: trial %d best, %s %.4f (base %.4f)",
        model,
        time.monotonic() - start,
        best[1] + 1,
        metric,
        best[0],
        trials[0]["score"],
    )
    return TuningResult(model=model, best_params=asdict(best[2]), best_score=best[0], metric=metric, trials=trials)
