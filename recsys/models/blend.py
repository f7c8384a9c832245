"""A weighted blend of ranking models: one score from several.

Each member's score is divided by its spread (the standard deviation of its
``score_users`` over every item for a seeded sample of users, measured once at
blend time), then the members are summed with their weights::

    s_ui = sum_m  weight_m * s^m_ui / scale_m

Dividing by the spread puts scores of different kinds (softmax logits, EASE
sums) on one footing, so a weight says how much each model counts. A per-user
constant does not change a user's ranking, so no per-user centring is needed,
and ``predict`` of any pair equals the corresponding entry of ``score_users``.
On MovieLens 100K (five folds) the softmax factorisation and EASE blended 1:1
rank better than either alone and than the references (``bench/quality.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.models.artifacts import FromDict, read_params, write_params
from recsys.models.registry import load_model

logger = logging.getLogger(__name__)

EASE_WEIGHT = 0.5
"""Default weight of EASE in the ranker's blend with the softmax factorisation (1 - it for the latter).
Neutral by choice: 0.3..0.5 measured alike on MovieLens 100K (``bench/README.md``)."""

SCALE_SAMPLE_USERS = 2000
"""Users (seeded sample) whose scores measure each member's spread."""


@dataclass(frozen=True)
class BlendParams(FromDict):
    """What a blend is made of.

    Attributes:
        members: Member names (their sub-folders when saved), in order.
        weights: Weight of each member.
        scales: Spread each member's score is divided by.
    """

    members: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    scales: tuple[float, ...] = ()


@dataclass
class BlendModel:
    """Fitted members and how they are weighed.

    Attributes:
        models: The fitted members, in the order of ``params.members``.
        params: Names, weights and scales.
        history: The first member's history (its training curve, for the report).
    """

    models: list[Any]
    params: BlendParams
    history: dict[str, list[float]] = field(default_factory=dict)

    predicts_ratings = False

    @property
    def n_users(self) -> int:
        """Users of the first member."""
        return self.models[0].n_users

    @property
    def n_items(self) -> int:
        """Items of the first member."""
        return self.models[0].n_items

    def _factors(self) -> list[float]:
        return [w / s for w, s in zip(self.params.weights, self.params.scales, strict=True)]

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` blended scores."""
        out = None
        for model, f in zip(self.models, self._factors(), strict=True):
            part = f * np.asarray(model.score_users(user_idx), dtype=np.float64)
            out = part if out is None else out + part
        return out

    def retrieval_vectors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The first member's retrieval vectors that has them (the factorisation of the ranker): an
        approximation of the blend for candidate retrieval; None when no member has vectors."""
        for model in self.models:
            if hasattr(model, "retrieval_vectors"):
                return model.retrieval_vectors()
        return None

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` blended scores of pairs (each member's fallback for unknown users or items)."""
        return sum(
            f * np.asarray(m.predict(user_idx, item_idx), dtype=np.float64)
            for m, f in zip(self.models, self._factors(), strict=True)
        )

    def save(self, path: Path) -> Path:
        """Each member in its sub-folder, and ``params.json`` (kind, members, weights, scales)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, model in zip(self.params.members, self.models, strict=True):
            model.save(path / name)
        write_params(path, self.params, self.history)
        return path

    @classmethod
    def load(cls, path: Path) -> BlendModel:
        """Read a blend written by :meth:`save` (members through :func:`recsys.models.registry.load_model`)."""
        path = Path(path)
        meta = read_params(path)
        params = BlendParams.from_dict(meta["params"])
        return cls([load_model(path / name) for name in params.members], params, meta.get("history", {}))


def blend(models: dict[str, Any], weights: dict[str, float], *, n_users: int, seed: int = 0) -> BlendModel:
    """Blend fitted ranking models, measuring each one's spread on a seeded sample of users.

    Args:
        models: Name -> fitted model with ``score_users`` and ``predict`` (same index spaces).
        weights: Name -> weight (same names).
        n_users: Users of the index space (the sample is drawn from ``0..n_users-1``).
        seed: Seed of the sample.

    Returns:
        The :class:`BlendModel` (members in the order of ``models``).
    """
    if set(models) != set(weights) or not models:
        raise ValueError(f"models and weights must name the same members, got {sorted(models)} and {sorted(weights)}")
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(n_users, size=min(n_users, SCALE_SAMPLE_USERS), replace=False))
    scales = []
    for _name, model in models.items():
        spread = float(np.asarray(model.score_users(users), dtype=np.float64).std())
        scales.append(spread if spread > 0 and np.isfinite(spread) else 1.0)
    params = BlendParams(tuple(models), tuple(float(weights[n]) for n in models), tuple(scales))
    first = next(iter(models.values()))
    logger.info(
        "blend: %s", {n: (w, round(s, 4)) for n, w, s in zip(params.members, params.weights, scales, strict=True)}
    )
    return BlendModel(list(models.values()), params, dict(getattr(first, "history", {})))


@dataclass
class PerUser:
    """Two fitted models, each serving its own users: ``second`` where ``use_second[u]``, else ``first``.

    E.g. the cold-start rule (:func:`recsys.models.cold_start.cold_start_model`): users without ratings
    are ranked by the two-tower model blended with segment popularity, users with a few by its blend with
    popularity.

    Attributes:
        first: Model of the users not flagged.
        second: Model of the flagged users (same index spaces).
        use_second: ``[n_users]`` bool; users beyond it are served by ``first``.
    """

    first: Any
    second: Any
    use_second: np.ndarray

    predicts_ratings = False

    @property
    def n_users(self) -> int:
        """Users of the first model."""
        return self.first.n_users

    @property
    def n_items(self) -> int:
        """Items of the first model."""
        return self.first.n_items

    def _flags(self, user_idx: np.ndarray) -> np.ndarray:
        u = np.asarray(user_idx, dtype=np.int64)
        flags = np.zeros(u.size, dtype=bool)
        inside = (u >= 0) & (u < self.use_second.size)
        flags[inside] = self.use_second[u[inside]]
        return flags

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` each user's scores from their model."""
        u = np.asarray(user_idx, dtype=np.int64)
        out = np.array(self.first.score_users(u), dtype=np.float64)
        flags = self._flags(u)
        if flags.any():
            out[flags] = self.second.score_users(u[flags])
        return out

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` scores of pairs, each from its user's model."""
        u, i = np.asarray(user_idx, dtype=np.int64), np.asarray(item_idx, dtype=np.int64)
        out = np.array(self.first.predict(u, i), dtype=np.float64)
        flags = self._flags(u)
        if flags.any():
            out[flags] = self.second.predict(u[flags], i[flags])
        return out
