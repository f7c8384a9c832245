"""The ranking model the pipeline serves: the softmax factorisation blended with EASE.

Both members learn from the training positives, and from their times when there
are any (sessions: :mod:`recsys.models.sessions`); EASE also from the ratings'
values. Their scores are blended (:func:`recsys.models.blend.blend`) with
``ease_weight``. Catalogues larger than EASE's ``max_items`` rank with the
factorisation alone (a warning says so). One function, so that the nightly run
(:func:`recsys.stages.train.train`) and the benchmark (``bench/quality.py``)
fit exactly the same model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.models.blend import EASE_WEIGHT, BlendModel
from recsys.models.bounds import Share
from recsys.models.cf import CFModel
from recsys.models.ease import EASEModel, EASEParams, fit_ease
from recsys.models.implicit_cf import ImplicitCFParams, fit_implicit_cf
from recsys.models.registry import ModelSpec, TrainingInputs

logger = logging.getLogger(__name__)


def fit_ranker(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    cf: ImplicitCFParams,
    ease: EASEParams,
    ease_weight: float,
    rating: np.ndarray | None = None,
    ts: np.ndarray | None = None,
    rating_range: tuple[float, float] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """Fit the ranker on training positives.

    Args:
        user_idx: ``[n_pos]`` users of the positives.
        item_idx: ``[n_pos]`` items of the positives.
        n_users: Users of the index space.
        n_items: Items of the index space.
        cf: The factorisation's parameters.
        ease: EASE's parameters.
        ease_weight: EASE's weight in the blend (0: the factorisation alone).
        rating: Optional ``[n_pos]`` ratings (NaN where a positive has none).
        ts: Optional ``[n_pos]`` times, seconds.
        rating_range: ``(min, max)`` of the rating scale.
        seed: Seed of the blend's scale sample.
        progress: Show the factorisation's progress bar.

    Returns:
        ``(model, factorisation, members)``: the served model (the blend, or the factorisation
        alone), the factorisation (reported on its own), and each member's parameters.
    """
    from recsys.models.blend import blend

    factorisation = fit_implicit_cf(user_idx, item_idx, n_users, n_items, cf, progress=progress, ts=ts)
    if ease_weight <= 0:
        return factorisation, factorisation, {"cf": asdict(cf)}
    if n_items > ease.max_items:
        logger.warning(
            "ranker: %d items is more than EASE's max_items %d: ranking with the factorisation alone",
            n_items,
            ease.max_items,
        )
        return factorisation, factorisation, {"cf": asdict(cf)}
    model = fit_ease(user_idx, item_idx, n_users, n_items, ease, rating=rating, ts=ts, rating_range=rating_range)
    blended = blend(
        {"cf": factorisation, "ease": model}, {"cf": 1.0 - ease_weight, "ease": ease_weight}, n_users=n_users, seed=seed
    )
    return blended, factorisation, {"cf": asdict(cf), "ease": asdict(ease), "ease_weight": ease_weight}


@dataclass(frozen=True)
class RankerParams:
    """The ranker's parameters: its two members' and their blend weight.

    Attributes:
        cf: The softmax factorisation's parameters.
        ease: EASE's parameters.
        ease_weight: EASE's weight in the blend (0: the factorisation alone).
    """

    # settings: the factorisation's fields as they are (``ranker.epochs``), EASE's as ``ranker.ease_<field>``
    cf: ImplicitCFParams = field(default_factory=ImplicitCFParams, metadata={"settings_prefix": ""})
    ease: EASEParams = field(default_factory=EASEParams, metadata={"settings_prefix": "ease_"})
    ease_weight: Share = EASE_WEIGHT


def _fit_inputs(inputs: TrainingInputs, params: RankerParams, progress: bool = False) -> Any:
    """:func:`fit_ranker` on the training positives (with their ratings and times); the served model."""
    pu, pi, pr, pts = inputs.training_positives()
    model, _, _ = fit_ranker(
        pu,
        pi,
        inputs.n_users,
        inputs.n_items,
        cf=params.cf,
        ease=params.ease,
        ease_weight=params.ease_weight,
        rating=pr,
        ts=pts,
        rating_range=(inputs.rating_min, inputs.rating_max),
        seed=inputs.seed,
        progress=progress,
    )
    return model


def _diagnostics(model: Any, inputs: TrainingInputs, evaluate: Any, fit_seconds: float) -> dict[str, float]:
    """Distinct training positives, and the factorisation's own NDCG when the served model is the blend."""
    pu, pi, _, _ = inputs.training_positives()
    out = {"n_positives": float(np.unique(np.asarray(pu, np.int64) * inputs.n_items + pi).size)}
    if isinstance(model, BlendModel) and inputs.validation is not None:
        ndcg = evaluate(model.models[0], "cf").get("cf_ndcg")
        if ndcg is not None:
            out["ranker_cf_ndcg"] = ndcg
    return out


def _load_factorisation(path: Path) -> CFModel:
    return CFModel.load(path, params_type=ImplicitCFParams)


SPEC = ModelSpec(
    name="ranker",
    label="ranker (CF + EASE)",
    params=RankerParams,
    fit=_fit_inputs,
    loaders={"BlendParams": BlendModel.load, "ImplicitCFParams": _load_factorisation, "EASEParams": EASEModel.load},
    aliases=("implicit",),
    role="ranking",
    baselines=("popularity",),
    diagnostics=_diagnostics,
)
"""The ranking model: the implicit factorisation, alone or blended with EASE."""
