"""Stage ``recommend``: candidates from every source for each block of users, ranked by the model that serves them."""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys.config import RetrievalConfig, Settings
from recsys.lake import write_partition
from recsys.models.cold_start import cold_start_model, segment_weight
from recsys.stages.inputs import segment_popularity
from recsys.stages.serving_inputs import ServingTables

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


def serving_model_dir(settings: Settings, models: dict[str, str | None]) -> str:
    """The folder of the model that ranks warm users.

    ``ranking_model`` when the run trained it; else the rating model (AutoRec when it was
    trained), else the explicit CF.
    """
    for name in (settings.ranking_model, settings.rating_model, "cf"):
        if models.get(name):
            return str(models[name])
    raise ValueError(f"no trained model to serve among {sorted(models)}")


def model_version(model_dir: str) -> str:
    """``<model>/<run_id>`` of a model folder (what the store records)."""
    p = Path(model_dir)
    return f"{p.parent.name}/{p.name}"


COLD_START_NOTE = " (new here: chosen by your profile)"
"""Appended to the reason of every recommendation the two-tower model ranked (the serving rule, visible)."""


def blocks(users: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """``users`` in consecutive blocks of at most ``size``."""
    for s in range(0, users.size, size):
        yield users[s : s + size]


def index_retrieve(
    vectors: tuple[np.ndarray, np.ndarray], catalogue: np.ndarray, retrieval: RetrievalConfig, seed: int
) -> tuple[Callable[[np.ndarray, int], np.ndarray], dict[str, Any]]:
    """The ``embedding`` source's retrieval: inner-product search of user vectors over the catalogue's item vectors.

    Args:
        vectors: ``(users [n_users, d], items [n_items, d])`` (``retrieval_vectors()`` of a model).
        catalogue: Item indices that may be proposed.
        retrieval: The run's index choice (``settings.retrieval``).
        seed: Seed of the index (and of its recall sample).

    Returns:
        ``(retrieve(users, k) -> [b, k] item ids, -1 pads; the index's info: kind, recall@10, ...)``.
    """
    from recsys.retrieval.choice import build_index

    user_vecs, item_vecs = vectors
    ids = catalogue[catalogue < item_vecs.shape[0]].astype(np.int64)
    index, info = build_index(item_vecs[ids], retrieval, metric="ip", seed=seed)

    def retrieve(users: np.ndarray, k: int) -> np.ndarray:
        u = np.asarray(users, np.int64)
        q = np.zeros((u.size, user_vecs.shape[1]), dtype=user_vecs.dtype)
        inside = u < user_vecs.shape[0]
        q[inside] = user_vecs[u[inside]]
        found = index.search_ids(q, min(k, ids.size))
        return np.where(found >= 0, ids[np.maximum(found, 0)], -1)

    return retrieve, info


def dense_retrieve(
    score_users: Callable[[np.ndarray], np.ndarray], catalogue_mask: np.ndarray
) -> Callable[[np.ndarray, int], np.ndarray]:
    """Retrieval by a model's dense scores over the catalogue (models without vectors; few users)."""
    from recsys.retrieval.topk import top_k_items

    def retrieve(users: np.ndarray, k: int) -> np.ndarray:
        s = np.array(score_users(np.asarray(users, np.int64)), dtype=np.float64)
        n = min(s.shape[1], catalogue_mask.size)
        s = s[:, :n]
        s[:, ~catalogue_mask[:n]] = -np.inf
        return top_k_items(s, k)

    return retrieve


def new_item_scores(
    vectors: tuple[np.ndarray, np.ndarray], new_items: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Scores of the new items per user by retrieval vectors (the two-tower model's): ``[b, n_new]``, one GEMM."""
    user_vecs, item_vecs = vectors
    items = item_vecs[np.minimum(new_items, item_vecs.shape[0] - 1)]

    def scores(users: np.ndarray) -> np.ndarray:
        u = np.asarray(users, np.int64)
        q = np.zeros((u.size, user_vecs.shape[1]), dtype=np.float32)
        inside = u < user_vecs.shape[0]
        q[inside] = user_vecs[u[inside]]
        return q @ items.T

    return scores


def recommend(
    settings: Settings, run_date: str, models: dict[str, str | None], similar: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Candidates for every user from every source, ranked by the model that serves them; writes ``recommendations``.

    Serving rule (per user):

    * a **cold-start user** (at most ``cold_start_max_ratings`` training ratings, none
      included) is served by the two-tower model when it was trained: candidates are the
      two-tower neighbours of their recent items, the items their ranking model puts first
      (from their profile embedding, which reaches items nobody has rated yet), their
      genres', segment's, new and popular items, ranked by the two-tower model blended with
      popularity (:func:`cold_start_model`); each reason ends with :data:`COLD_START_NOTE`;
    * everybody else: CF neighbours of their recent items (two-tower neighbours for items
      CF knows nothing of), their genres', segment's, embedding (the serving model's user
      vector through the index), new and popular items, ranked by the serving model
      (:func:`serving_model_dir`).

    Users are served in blocks of ``retrieval.user_block`` (memory: one block's candidates),
    in this process or as a Spark job (``retrieval.engine``: :func:`serving_engine`; the same
    recommendations either way). The policy (:mod:`recsys.ranking.policy`) is applied after
    ranking; the retrieval-size experiment (:mod:`recsys.evaluation.retrieval_size`) runs on a
    sample of users.

    Args:
        settings: The run's settings.
        run_date: ``YYYY-MM-DD`` of the lake partitions.
        models: ``{model name: model folder or None}`` of the run's training tasks.
        similar: The similar-items stage's output (its indexes' info go into the metrics).

    Returns:
        Path, rows, users, candidates per user, cold-start users, model version, the
        engine that served the blocks, and ``metrics`` (flat floats for the run: per-source
        candidates and published rows, rows dropped per policy rule, the index's recall, the
        experiment's figures).
    """
    from recsys.models.baselines import Popularity
    from recsys.models.registry import load_model
    from recsys.models.two_tower import TwoTowerModel
    from recsys.ranking.policy import load_policy
    from recsys.ranking.reasons import Explainer
    from recsys.stages.serving_inputs import neighbors_with_fallback, segment_names, source_data

    start = time.monotonic()
    serving = serving_model_dir(settings, models)
    tower_dir = models.get(settings.cold_start_model) if settings.cold_start_model != "none" else None
    model = load_model(serving)
    tables = ServingTables.read(settings, run_date)
    train = tables.train
    catalogue = np.sort(tables.items["item_idx"].to_numpy().astype(np.int64))
    n_items = int(max(model.n_items, catalogue.max(initial=-1) + 1))
    everyone = np.sort(tables.users["user_idx"].to_numpy().astype(np.int64))
    n_users = int(max(model.n_users, everyone.max(initial=-1) + 1))
    policy = load_policy(settings)
    finish, allowed = policy_step(policy, tables, n_items, settings.top_k)
    tower = TwoTowerModel.load(Path(tower_dir), towers=False) if tower_dir else None  # embeddings only
    n_train = np.bincount(train["item_idx"].to_numpy(), minlength=n_items)
    in_catalogue = np.zeros(n_items, dtype=bool)
    in_catalogue[catalogue] = True
    new_items = np.flatnonzero(in_catalogue & (n_train == 0) & allowed)
    metrics: dict[str, float] = {}
    for source, info in (similar or {}).get("index", {}).items():
        metrics.update(index_metrics(f"similar_{source}", info))
    vectors = model.retrieval_vectors() if hasattr(model, "retrieval_vectors") else None
    if vectors is None and tower is not None:
        vectors = tower.retrieval_vectors()
    if vectors is not None:
        retrieve, index_info = index_retrieve(vectors, catalogue[allowed[catalogue]], settings.retrieval, settings.seed)
        metrics.update(index_metrics("embedding", index_info))
    else:
        retrieve = dense_retrieve(model.score_users, in_catalogue & allowed)
    history = tables.ratings[["user_idx", "item_idx", "ts"]]
    new_scores = new_item_scores(tower.retrieval_vectors(), new_items) if tower is not None else None

    def sources_for(primary: str, fallback: str, retrieve_items: Callable[[np.ndarray, int], np.ndarray]) -> Any:
        """The sources' data for a group of users: neighbours by ``primary`` vectors (``fallback`` where none)."""
        return source_data(
            tables,
            settings,
            n_users=n_users,
            n_items=n_items,
            neighbors=neighbors_with_fallback(tables.similar, n_items, settings.n_neighbors, primary, fallback),
            allowed=allowed,
            history=history,
            retrieve=retrieve_items,
            new_items=new_items if tower is not None else None,
            new_scores=new_scores,
        )

    warm_data = sources_for("cf", "two_tower", retrieve)
    explainer = Explainer(
        titles=dict(zip(tables.items["item_idx"].astype(int), tables.items["title"], strict=True)),
        genres=tables.genre_names(),
        segments=segment_names(tables, n_users),
    )
    user_train = np.bincount(train["user_idx"].to_numpy(), minlength=n_users)
    cold = (user_train[everyone] <= settings.cold_start_max_ratings) if tower else np.zeros(everyone.size, bool)
    popularity = Popularity().fit(
        train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), train["rating"].to_numpy(), n_users, n_items
    )
    groups: list[tuple[str, np.ndarray, Any, Any, str]] = [("warm", everyone[~cold], warm_data, model, "")]
    if cold.any():
        cold_model = cold_start_scorer(settings, run_date, tower, popularity, user_train, train)
        cold_data = sources_for("two_tower", "cf", dense_retrieve(cold_model.score_users, in_catalogue & allowed))
        groups.append(("cold", everyone[cold], cold_data, cold_model, COLD_START_NOTE))
    reserve = None
    if tower is not None and new_items.size and settings.retrieval.new_item_reach > 0:
        reserve = reserve_step(settings, tables, tower, new_items, everyone, warm_data.seen, n_users, n_items, policy)
    with serving_engine(settings.retrieval.engine) as serve:
        served = [
            serve(
                users,
                data,
                scorer,
                finish,
                explainer,
                block=settings.retrieval.user_block,
                note=note,
                label=name,
                reserve=reserve,
            )
            for name, users, data, scorer, note in groups
        ]
    frames = [out.recommendations for out in served]
    proposed = sum((out.proposed for out in served), Counter())
    dropped = sum((out.dropped for out in served), Counter())
    metrics["new_items_reserved_slots"] = float(sum(out.reserved for out in served))
    n_cand = sum(out.candidates for out in served)
    recs = pd.concat(frames, ignore_index=True).sort_values(["user_idx", "rank"], kind="stable").reset_index(drop=True)
    metrics.update(serving_metrics(recs, proposed, dropped, everyone.size, n_cand, settings.top_k))
    check_every_user_served(metrics, dropped, settings.top_k)  # before anything is written
    path = write_partition(recs, settings.lake, "recommendations", run_date)
    metrics["new_items"] = float(new_items.size)
    metrics["new_items_published"] = float(recs.loc[recs["item_idx"].isin(new_items), "item_idx"].nunique())
    metrics["recommend_seconds"] = time.monotonic() - start
    if settings.retrieval.experiment:
        from recsys.evaluation.retrieval_size import run_experiment

        metrics.update(
            run_experiment(
                settings, tables, model, warm_data, finish, cold, everyone, in_catalogue & allowed, n_users, n_items
            )
        )
    return {
        "path": str(path),
        "rows": len(recs),
        "users": int(recs["user_idx"].nunique()),
        "candidates_per_user": n_cand / max(everyone.size, 1),
        "cold_start_users": int(cold.sum()),
        "model_version": model_version(serving),
        "engine": settings.retrieval.engine,
        "metrics": metrics,
    }


@dataclass
class Served:
    """What :func:`serve_blocks` (or :func:`serve_blocks_spark`) produced for a group of users.

    Attributes:
        recommendations: ``recommendations`` rows; grain one (user, rank).
        proposed: Proposals per source (before merging).
        dropped: Rows dropped per policy rule.
        candidates: Candidates after merging, all blocks.
        reserved: Last slots given to reserved new items (:mod:`recsys.ranking.exploration`).
    """

    recommendations: pd.DataFrame
    proposed: Counter
    dropped: Counter
    candidates: int
    reserved: int = 0


def serve_blocks(
    users: np.ndarray,
    data: Any,
    scorer: Any,
    finish: Any,
    explainer: Any,
    *,
    block: int,
    note: str = "",
    label: str = "users",
    reserve: Callable[[pd.DataFrame, Any], tuple[pd.DataFrame, int]] | None = None,
) -> Served:
    """Candidates, scores, policy and reasons for ``users``, one block of ``block`` users at a time.

    Memory is one block's candidates plus the recommendations so far (``top_k`` rows per user).

    Args:
        users: ``[n]`` user indices.
        data: The sources' :class:`~recsys.retrieval.sources.SourceData`.
        scorer: The model (``predict(user_idx, item_idx)``).
        finish: The policy step (:func:`policy_step`).
        explainer: The reasons' :class:`~recsys.ranking.reasons.Explainer`.
        block: Users per block.
        note: Appended to every reason (e.g. :data:`COLD_START_NOTE`).
        label: Names the group in the progress log.
        reserve: Optional step giving reserved new items the last slot (:func:`reserve_step`):
            ``reserve(block's rows, scorer) -> (rows, placed)``.
    """
    from recsys.ranking.rank import RECOMMENDATION_COLUMNS

    start = time.monotonic()
    frames, proposed, dropped, n_cand, reserved = [], Counter(), Counter(), 0, 0
    total = -(-users.size // block)
    for j, part in enumerate(blocks(users, block), start=1):
        recs, block_proposed, drops, block_cand, placed = serve_block(
            part, data, scorer, finish, explainer, note, reserve
        )
        frames.append(recs)
        n_cand += block_cand
        reserved += placed
        proposed.update(block_proposed)
        dropped.update(drops)
        logger.info(
            "recommend %s: block %d/%d (%d users, %d candidates, %.0f s)",
            label,
            j,
            total,
            part.size,
            block_cand,
            time.monotonic() - start,
        )
    recs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RECOMMENDATION_COLUMNS)
    return Served(recs, proposed, dropped, n_cand, reserved)


def serve_block(
    part: np.ndarray,
    data: Any,
    scorer: Any,
    finish: Any,
    explainer: Any,
    note: str = "",
    reserve: Callable[[pd.DataFrame, Any], tuple[pd.DataFrame, int]] | None = None,
) -> tuple[pd.DataFrame, dict[str, int], dict[str, int], int, int]:
    """One block of users: candidates, scores, policy, reasons, the reserved slots, the note.

    The one per-block step of both engines (:func:`serve_blocks`, :func:`serve_blocks_spark`);
    arguments as :func:`serve_blocks`'.

    Args:
        part: ``[b]`` user indices of the block.
        data: The sources' :class:`~recsys.retrieval.sources.SourceData`.
        scorer: The model (``predict(user_idx, item_idx)``).
        finish: The policy step (:func:`policy_step`).
        explainer: The reasons' :class:`~recsys.ranking.reasons.Explainer`.
        note: Appended to every reason.
        reserve: Optional reserve step (:func:`reserve_step`).

    Returns:
        ``(recs, proposed, dropped, n_cand, reserved)``: the block's ``recommendations`` rows
        (grain one (user, rank), by user then rank), proposals per source, rows dropped per
        policy rule, candidates after merging, reserved slots placed.
    """
    from recsys.ranking.rank import rank_block
    from recsys.retrieval.candidates import gather

    cand = gather(data, part)
    recs, drops = rank_block(cand, scorer.predict, finish, explainer)
    placed = 0
    if reserve is not None:
        recs, placed = reserve(recs, scorer)
    if note:
        recs["reason"] = recs["reason"] + note
    return recs, cand.proposed, drops, len(cand), placed


BLOCK_COLUMN_TYPES: dict[str, str] = {
    "user_idx": "int",
    "rank": "int",
    "item_idx": "int",
    "score": "double",
    "source": "string",
    "reason": "string",
}
"""Spark types of :func:`serve_block`'s rows (:data:`~recsys.ranking.rank.RECOMMENDATION_COLUMNS`, in order)."""


def serve_blocks_spark(
    users: np.ndarray,
    data: Any,
    scorer: Any,
    finish: Any,
    explainer: Any,
    *,
    block: int,
    note: str = "",
    label: str = "users",
    reserve: Callable[[pd.DataFrame, Any], tuple[pd.DataFrame, int]] | None = None,
    spark: SparkSession | None = None,
) -> Served:
    """:func:`serve_blocks` as a Spark job: the same blocks through :func:`serve_block`, the same result.

    Block ``j`` (users ``users[j * block : (j + 1) * block]``) is served by a Spark task
    (:func:`recsys.stages.spark_serving.map_blocks`: one partition per block, the serving state
    (``users`` and every argument below) pickled and broadcast once); the rows come back in
    block order and the counters are summed in block order, so :class:`Served` equals the local
    engine's (frame, dtypes, order, counters).

    Args:
        users: ``[n]`` user indices.
        data: The sources' :class:`~recsys.retrieval.sources.SourceData`.
        scorer: The model (``predict(user_idx, item_idx)``); numpy only (no TensorFlow objects).
        finish: The policy step (:func:`policy_step`).
        explainer: The reasons' :class:`~recsys.ranking.reasons.Explainer`.
        block: Users per block (one Spark partition each).
        note: Appended to every reason.
        label: Names the group in the progress log.
        reserve: Optional reserve step (:func:`reserve_step`).
        spark: Session to run on; ``None``: the active one, else one made and stopped for this call
            (:func:`recsys.stages.spark_serving.serving_session`).
    """
    from recsys.stages.spark_serving import map_blocks

    n_blocks = -(-users.size // block)
    if not n_blocks:  # nothing to serve: the local engine's empty result
        return serve_blocks(users, data, scorer, finish, explainer, block=block, note=note, label=label)
    work = functools.partial(
        _serve_block_number,
        users=users,
        block=block,
        data=data,
        scorer=scorer,
        finish=finish,
        explainer=explainer,
        note=note,
        reserve=reserve,
    )
    recs, stats = map_blocks(n_blocks, work, BLOCK_COLUMN_TYPES, spark=spark, label=f"recommend {label}")
    proposed, dropped = Counter(), Counter()
    for one in stats:
        proposed.update(one["proposed"])
        dropped.update(one["dropped"])
    n_cand = sum(int(one["candidates"]) for one in stats)
    return Served(recs, proposed, dropped, n_cand, sum(int(one["reserved"]) for one in stats))


def _serve_block_number(
    j: int,
    *,
    users: np.ndarray,
    block: int,
    data: Any,
    scorer: Any,
    finish: Any,
    explainer: Any,
    note: str,
    reserve: Callable[[pd.DataFrame, Any], tuple[pd.DataFrame, int]] | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Block ``j`` of ``users`` by :func:`serve_block`: its rows and its counters (JSON-able), for the Spark engine."""
    part = users[j * block : (j + 1) * block]
    recs, proposed, dropped, n_cand, placed = serve_block(part, data, scorer, finish, explainer, note, reserve)
    return recs, {
        "users": int(part.size),
        "proposed": {k: int(v) for k, v in proposed.items()},
        "dropped": {k: int(v) for k, v in dropped.items()},
        "candidates": int(n_cand),
        "reserved": int(placed),
    }


@contextmanager
def serving_engine(engine: str) -> Iterator[Callable[..., Served]]:
    """The function that serves a group of users' blocks, for the whole stage.

    ``local``: :func:`serve_blocks`. ``spark``: :func:`serve_blocks_spark` on one session for
    every group (the active session if there is one, left running; else one made here and
    stopped when the ``with`` block ends: :func:`recsys.stages.spark_serving.serving_session`).
    """
    logger.info("recommend: serving blocks with the %s engine", engine)
    if engine == "local":
        yield serve_blocks
        return
    if engine != "spark":
        raise ValueError(f"unknown serving engine {engine!r} (local or spark)")
    from recsys.stages.spark_serving import serving_session

    with serving_session("recsys-recommend") as spark:
        yield functools.partial(serve_blocks_spark, spark=spark)


def reserve_step(
    settings: Settings,
    tables: ServingTables,
    tower: Any,
    new_items: np.ndarray,
    users: np.ndarray,
    seen: Any,
    n_users: int,
    n_items: int,
    policy: Any,
) -> Callable[[pd.DataFrame, Any], tuple[pd.DataFrame, int]]:
    """The step that gives each new item the last slot of the ``retrieval.new_item_reach`` users
    the two-tower model scores highest for it (:mod:`recsys.ranking.exploration`)."""
    from recsys.ranking.diversity import genre_flags
    from recsys.ranking.exploration import reserve_new_items, take_reserved_slots
    from recsys.ranking.reasons import TEMPLATES

    reserved = reserve_new_items(
        new_items,
        users,
        new_item_scores(tower.retrieval_vectors(), new_items),
        settings.retrieval.new_item_reach,
        n_users,
    )
    flags = genre_flags(tables.item_genre_matrix(n_items)) if policy.genre_cap > 0 else None
    logger.info("new items: %d, reserved for %d users", new_items.size, int((reserved >= 0).sum()))

    top_k = settings.top_k  # the step captures plain values (the Spark engine ships it)

    def reserve(recs: pd.DataFrame, scorer: Any) -> tuple[pd.DataFrame, int]:
        return take_reserved_slots(
            recs,
            reserved,
            top_k=top_k,
            seen=lambda u, i: seen.contains(u, i, n_items),
            score=scorer.predict,
            reason=TEMPLATES["new"],
            genre_flags=flags,
            genre_cap=policy.genre_cap,
        )

    return reserve


def cold_start_scorer(
    settings: Settings, run_date: str, tower: Any, popularity: Any, user_train: np.ndarray, train: pd.DataFrame
) -> Any:
    """The model that ranks cold-start users (:func:`cold_start_model`), with segment popularity when asked."""
    segment, weight = None, segment_weight(settings.cold_start_segment_weight, tower)
    if weight > 0 and (user_train == 0).any():
        segment = segment_popularity(
            settings, run_date, train["user_idx"].to_numpy(), train["item_idx"].to_numpy(), tower.n_users, tower.n_items
        )
    return cold_start_model(
        tower,
        popularity,
        user_train,
        settings.cold_start_popularity_weight,
        seed=settings.seed,
        segment=segment,
        segment_weight=weight,
    )


def policy_step(policy: Any, tables: ServingTables, n_items: int, top_k: int) -> tuple[Any, np.ndarray]:
    """``(finish, allowed)``: the step that applies ``policy`` to a block's scored candidates and cuts each list
    to ``top_k``, and the ``[n_items]`` mask of the items the policy allows (the fallback lists hold only these)."""
    from recsys.ranking.policy import apply_policy, item_rules

    rules = item_rules(policy, tables.items, tables.item_features, n_items=n_items)
    genres = tables.item_genre_matrix(n_items) if policy.genre_cap > 0 or policy.mmr_weight > 0 else None

    def finish(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        return apply_policy(frame, rules, top_k=top_k, item_genres=genres)

    return finish, rules.allowed


def check_every_user_served(metrics: dict[str, float], dropped: Counter, top_k: int) -> None:
    """``ValueError`` naming the policy's drops when some users got fewer than ``top_k`` items.

    The publish audit would refuse the run anyway (every user must have K rows); this says why,
    before anything is written to the store.
    """
    short = int(metrics.get("users_short_of_k", 0))
    if short:
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(dropped.items()) if rule not in ("cut", "short_users"))
        raise ValueError(
            f"{short} users have fewer than top_k={top_k} recommendations after the policy "
            f"(rows dropped per rule: {rules or 'none'}; candidates per user {metrics['candidates_per_user']:.0f}): "
            "loosen policy.genre_cap / policy.min_item_ratings / the blocked lists, or raise the candidate quotas"
        )


def index_metrics(name: str, info: dict[str, Any]) -> dict[str, float]:
    """The run's metrics of one index: its recall@10 against exact search (1 when exact), fallback, build time."""
    recall = info.get("recall_at_10")
    return {
        f"index_{name}_recall_at_10": 1.0 if recall is None else float(recall),
        f"index_{name}_fell_back": float(bool(info.get("fell_back"))),
        f"index_{name}_approximate": float(info.get("index") in ("faiss_ivf", "faiss_hnsw")),
        f"index_{name}_build_seconds": float(info.get("build_s", 0.0)),
    }


def serving_metrics(
    recs: pd.DataFrame, proposed: Counter, dropped: Counter, n_users: int, n_cand: int, top_k: int
) -> dict[str, float]:
    """Per-source candidates and published rows, rows dropped per policy rule, users short of ``top_k``."""
    from recsys.retrieval.sources import SOURCES

    parts = recs["source"].str.split("+").explode()
    published = parts.value_counts()
    out = {f"candidates_{s}": float(proposed.get(s, 0)) for s in SOURCES}
    out.update({f"published_{s}": float(published.get(s, 0)) for s in SOURCES})
    out.update({f"policy_dropped_{rule}": float(n) for rule, n in sorted(dropped.items())})
    per_user = recs.groupby("user_idx").size()
    out["users_short_of_k"] = float(n_users - int((per_user >= top_k).sum()))
    out["candidates_per_user"] = n_cand / max(n_users, 1)
    return out
