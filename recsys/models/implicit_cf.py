"""Binary (implicit-feedback) collaborative filtering: the model that ranks.

Explicit rating models rank badly: they learn how much a user likes the items
they chose to rate, not which items they would choose. This model learns the
choice itself from positives only (every observed rating, or every positive
event, is a positive), with the course's factorisation
``z_ij = w_j . x_i + c_i`` (user vector ``w_j``, item vector ``x_i``, item bias
``c_i``) and one of these losses:

* ``softmax`` (default; measured best on MovieLens 100K): for each user, the
  observed items against the whole catalogue,
  ``-sum_{i in N(j)} log( exp(z_ij) / sum_k exp(z_kj) )``.
* ``logistic`` with ``negatives="all"``: the course's logistic loss
  ``g(z_ij)`` over the full user x item matrix, positives weighted by
  ``pos_weight`` and every unobserved pair a negative of weight 1 (a weighted
  full-matrix loss).
* ``logistic`` with ``negatives="uniform"`` or ``"popularity"``: the logistic
  loss on the positives plus ``neg_ratio`` negatives per positive, drawn each
  epoch uniformly from the catalogue or in proportion to item popularity
  (``count^0.75``). A drawn item the user has observed is kept as a negative
  (the usual approximation; its share is small for sparse data).

The regulariser is ``l2/2 * (sum_j ||w_j||^2 + sum_i ||x_i||^2)`` and the data
term is normalised by the number of positives. Full-catalogue losses are
computed over blocks of users (``[block, n_items]`` logits at a time, never the
whole matrix); on MovieLens 100K one block holds every user (full batch). With
a validation split and ``patience``, training stops when NDCG@10 on it stops
improving and keeps the best epoch. Given the pairs' times, every session of a
user with two or more items (``session_seconds``, :mod:`recsys.models.sessions`)
is trained as one more pseudo-user: MovieLens users rate in sittings, and what is
chosen in one sitting goes together (1-hour sessions and ``l2`` 13 chosen on a
validation split of MovieLens 100K u1; 40 epochs at twice the step size of 80 were
equal on validation splits of u1..u3 with sessions; their effect on quality and fit
time: ``bench/README.md``). A pair given twice (a rating and the positive event
derived from it) counts once, so it never makes a session.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from recsys.models.artifacts import FromDict
from recsys.models.bounds import Count, NonNegative, NonNegativeInt, Positive
from recsys.models.cf import BestEpoch, CFModel, progress_bar

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImplicitCFParams(FromDict):
    """Hyper-parameters (defaults tuned on MovieLens 100K validation splits).

    Attributes:
        n_factors: Length ``k`` of the vectors.
        l2: ``lambda`` on the vectors (sum form, data term per positive).
        l2_bias: ``lambda`` on the item biases.
        learning_rate: Adam step size.
        epochs: Maximum passes over the users (full-catalogue losses) or positives (sampled).
        loss: ``softmax`` or ``logistic``.
        negatives: For ``logistic``: ``all`` (weighted full matrix), ``uniform`` or ``popularity`` (sampled).
        neg_ratio: Sampled negatives per positive.
        pos_weight: Weight of a positive in the ``all`` variant.
        max_block_cells: Bound on ``block_users x n_items`` logits computed at once.
        batch_size: Positives per step of the sampled variants.
        patience: Validation checks without NDCG improvement before stopping (0: never stop early).
        eval_every: Epochs between validation checks.
        init_std: Standard deviation of the initial vectors.
        seed: Seed of initialisation and sampling.
        session_seconds: With times given: each session of a user (:mod:`recsys.models.sessions`,
            this long) with at least two items is trained as one more pseudo-user, so item vectors
            also learn what is chosen in one sitting (0: no sessions). Only real users are kept.
        matmul_precision: Of the full-catalogue losses' ``[block, n_items]`` logits product: ``bfloat16``
            cuts the fit time where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX;
            ``bench/README.md`` has the measured effect); ``auto`` uses
            it there and ``float32`` elsewhere, so results depend on the CPU's kind (same CPU, same
            results).
    """

    n_factors: Count = 256
    l2: NonNegative = 13.0
    l2_bias: NonNegative = 0.1
    learning_rate: Positive = 0.0194
    epochs: Count = 40
    loss: Literal["softmax", "logistic"] = "softmax"
    negatives: Literal["all", "uniform", "popularity"] = "all"
    neg_ratio: Count = 4
    pos_weight: Positive = 20.0
    max_block_cells: Count = 16_000_000
    batch_size: Count = 8192
    patience: NonNegativeInt = 0
    eval_every: Count = 10
    init_std: Positive = 0.01
    seed: int = 42
    session_seconds: NonNegative = 3600.0
    matmul_precision: Literal["auto", "float32", "bfloat16"] = "auto"


def bfloat16_is_fast() -> bool:
    """Whether this CPU multiplies bfloat16 natively (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def fit_implicit_cf(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    params: ImplicitCFParams,
    *,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
    ts: np.ndarray | None = None,
) -> CFModel:
    """Learn ``w``, ``x`` and ``c`` from positive pairs.

    Args:
        user_idx: ``[n_pos]`` users of the positive pairs (duplicates count once).
        item_idx: ``[n_pos]`` items of the positive pairs.
        n_users: Number of users.
        n_items: Number of items.
        params: Hyper-parameters.
        validation: Optional held-out positives ``(user_idx, item_idx)``; each
            ``eval_every`` epochs NDCG@10 on them (ranking every item except the
            user's training positives) is recorded in ``history["val_ndcg"]``.
        progress: Show a progress bar (rich).
        ts: Optional ``[n_pos]`` times in seconds (session pseudo-users, ``params.session_seconds``).

    Returns:
        A :class:`CFModel` with ``mu = 0`` whose ``score_users`` ranks items (``n_users`` rows).
    """
    import tensorflow as tf

    if params.session_seconds > 0 and ts is not None:
        from recsys.models.sessions import session_rows

        su, si, n_rows = session_rows(user_idx, item_idx, ts, n_users, params.session_seconds)
        logger.info(
            "implicit CF: %d sessions of %gs with 2+ items train as pseudo-users",
            n_rows - n_users,
            params.session_seconds,
        )
        model = fit_implicit_cf(
            su, si, n_rows, n_items, replace(params, session_seconds=0.0), validation=validation, progress=progress
        )
        model.w, model.b, model.params = model.w[:n_users], model.b[:n_users], params
        return model
    start = time.monotonic()
    tf.keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    keys = np.unique(np.asarray(user_idx, np.int64) * n_items + np.asarray(item_idx, np.int64))
    pu, pi = (keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32)  # sorted by user
    n_pos = keys.size
    n_u = np.bincount(pu, minlength=n_users)
    n_i = np.bincount(pi, minlength=n_items)
    k = params.n_factors
    init = tf.random.stateless_normal
    has_user = (n_u > 0).astype(np.float32)[:, None]
    has_item = (n_i > 0).astype(np.float32)[:, None]
    W = tf.Variable(init((n_users, k), seed=[params.seed, 1], stddev=params.init_std) * has_user, name="w")
    X = tf.Variable(init((n_items, k), seed=[params.seed, 2], stddev=params.init_std) * has_item, name="x")
    C = tf.Variable(tf.zeros((n_items,)), name="c")
    variables = [W, X, C]
    opt = tf.keras.optimizers.Adam(learning_rate=params.learning_rate)
    # Items nobody chose are never recommended: a large negative bias mask keeps them out of softmax mass.
    item_mask = tf.constant(np.where(n_i > 0, 0.0, -1e9).astype(np.float32))
    lam, lam_b = params.l2 / 2.0, params.l2_bias / 2.0
    full = params.loss == "softmax" or params.negatives == "all"
    low_precision = params.matmul_precision == "bfloat16" or (params.matmul_precision == "auto" and bfloat16_is_fast())

    @tf.function(reduce_retracing=True)
    def block_step(users: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor, share: tf.Tensor) -> tf.Tensor:
        """One step on a block of users: ``rows``/``cols`` are the block's positives (row = position in block)."""
        nb = tf.shape(users)[0]
        if params.loss != "softmax":
            labels = tf.scatter_nd(tf.stack([rows, cols], 1), tf.ones_like(rows, tf.float32), [nb, n_items])
        with tf.GradientTape() as tape:
            wb = tf.gather(W, users)
            if low_precision:  # bfloat16 products, float32 sums of them and everything else
                z = tf.cast(tf.matmul(tf.cast(wb, tf.bfloat16), tf.cast(X, tf.bfloat16), transpose_b=True), tf.float32)
            else:
                z = tf.matmul(wb, X, transpose_b=True)
            z += C[None, :]
            if (
                params.loss == "softmax"
            ):  # -sum_pos log softmax = sum_u n_u logsumexp_u - sum_pos z (no [nb, n_items] labels)
                lse = tf.reduce_logsumexp(z + item_mask[None, :], axis=1)
                chosen = tf.gather_nd(z, tf.stack([rows, cols], 1))
                data = tf.reduce_sum(tf.gather(lse, rows)) - tf.reduce_sum(chosen)
            else:
                weight = 1.0 + (params.pos_weight - 1.0) * labels
                data = tf.reduce_sum(weight * tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=z))
            # The block's share of the regulariser over whole matrices (dense gradients: deterministic).
            reg = share * (
                lam * (tf.reduce_sum(tf.square(W)) + tf.reduce_sum(tf.square(X))) + lam_b * tf.reduce_sum(tf.square(C))
            )
            loss = (data + reg) / tf.maximum(share * n_pos, 1.0)
        # Dense gradients: sparse (IndexedSlices) updates are not deterministic on CPU.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function(reduce_retracing=True)
    def pair_step(u: tf.Tensor, i: tf.Tensor, t: tf.Tensor, share: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            wu, xi = tf.gather(W, u), tf.gather(X, i)
            z = tf.reduce_sum(wu * xi, 1) + tf.gather(C, i)
            data = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=z))
            reg = share * (
                lam * (tf.reduce_sum(tf.square(W)) + tf.reduce_sum(tf.square(X))) + lam_b * tf.reduce_sum(tf.square(C))
            )
            loss = (data + reg) / tf.cast(tf.shape(t)[0], tf.float32)
        # Dense gradients: sparse (IndexedSlices) updates are not deterministic on CPU.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss

    # Blocks of users for the full-catalogue losses: [block, n_items] logits at most max_block_cells.
    block = max(1, min(n_users, params.max_block_cells // max(n_items, 1)))
    starts = np.r_[0, np.cumsum(n_u)]
    rng = np.random.default_rng(params.seed)
    sample_p = None
    if params.negatives == "popularity":
        sample_p = np.power(n_i.astype(np.float64), 0.75)
        sample_p /= sample_p.sum()
    candidates = np.flatnonzero(n_i > 0)

    def snapshot() -> CFModel:
        return CFModel(X.numpy(), W.numpy(), np.zeros(n_users), np.zeros(n_items), params, history, C.numpy())

    history: dict[str, list[float]] = {"loss": []}
    stopper = BestEpoch(params.patience, higher_is_better=True, every=params.eval_every)
    bar, task = progress_bar(progress, f"implicit CF ({params.loss})", params.epochs)
    try:
        for epoch in range(params.epochs):
            total = 0.0
            if full:
                users = np.flatnonzero(n_u > 0)
                if block < users.size:
                    users = rng.permutation(users)
                for s in range(0, users.size, block):
                    ub = np.sort(users[s : s + block])
                    lens = n_u[ub]
                    rows = np.repeat(np.arange(ub.size, dtype=np.int32), lens)
                    cols = pi[np.concatenate([np.arange(starts[u], starts[u + 1]) for u in ub])]
                    share = float(lens.sum()) / n_pos
                    total += float(block_step(ub.astype(np.int32), rows, cols, np.float32(share))) * share
            else:
                neg_u = np.repeat(pu, params.neg_ratio)
                neg_i = rng.choice(
                    candidates if sample_p is None else n_items,
                    size=neg_u.size,
                    p=None if sample_p is None else sample_p,
                ).astype(np.int32)
                u_all = np.concatenate([pu, neg_u])
                i_all = np.concatenate([pi, neg_i])
                t_all = np.concatenate([np.ones(n_pos, np.float32), np.zeros(neg_u.size, np.float32)])
                order = rng.permutation(u_all.size)
                for s in range(0, order.size, params.batch_size):
                    idx = order[s : s + params.batch_size]
                    share = np.float32(idx.size / order.size)
                    total += float(pair_step(u_all[idx], i_all[idx], t_all[idx], share)) * float(share)
            history["loss"].append(total)
            if bar is not None:
                bar.advance(task)
            if validation is None or ((epoch + 1) % params.eval_every and epoch + 1 != params.epochs):
                continue
            model = snapshot()
            score = _val_ndcg(model, pu, pi, validation, n_users)
            history.setdefault("val_ndcg", []).append(score)
            history.setdefault("val_epoch", []).append(float(epoch + 1))
            if stopper.update(score, epoch, model):
                break
    finally:
        if bar is not None:
            bar.stop()
    model = stopper.result(snapshot(), history)
    logger.info(
        "implicit CF (%s%s) fitted: %d users x %d items, %d positives, k=%d, %d epochs in %.1fs",
        params.loss,
        "" if params.loss == "softmax" else f"/{params.negatives}",
        n_users,
        n_items,
        n_pos,
        k,
        len(history["loss"]),
        time.monotonic() - start,
    )
    return model


def _val_ndcg(
    model: CFModel, pu: np.ndarray, pi: np.ndarray, validation: tuple[np.ndarray, np.ndarray], n_users: int
) -> float:
    """NDCG@10 of ``model`` on held-out positives, ranking all items but the training positives."""
    from recsys.evaluation.metrics import ranking_metrics, relevant_lists
    from recsys.evaluation.protocol import rank_users

    vu, vi = (np.asarray(a, np.int64) for a in validation)
    users = np.unique(vu)
    seen = relevant_lists(pu, pi, n_users)
    relevant = relevant_lists(vu, vi, n_users)
    catalogue = np.bincount(pi, minlength=model.n_items) > 0
    lists = rank_users(model, users, seen, catalogue, k=10)
    return ranking_metrics(lists, [relevant[u] for u in users], k=10, n_items=model.n_items)["ndcg"]
