"""Collaborative filtering as the course defines it, in TensorFlow.

Cost (explicit ratings, on mean-normalised ``y``)::

    J(w, b, c, x) = 1/2 * sum_{(i,j): r(i,j)=1} (w_j . x_i + b_j + c_i - (y_ij - mu_i))^2
                    + lambda/2   * (sum_j n_j^a ||w_j||^2 + sum_i n_i^a ||x_i||^2)
                    + lambda_b/2 * (sum_j n_j^a b_j^2    + sum_i n_i^a c_i^2)

and the prediction is ``w_j . x_i + b_j + c_i + mu_i``. ``n_j`` (``n_i``) is the
number of training ratings of user ``j`` (item ``i``) and ``a`` is
``reg_weighting``: ``a = 0`` is the course's cost exactly (one ``lambda`` for
everybody); ``a = 1`` regularises each vector in proportion to its data (the
"weighted-lambda" of ALS-WR, what per-rating SGD regularisation does), which
measured better on MovieLens. The item bias ``c_i`` is optional (``item_bias``):
the course has only the user bias ``b_j`` and the un-shrunk item mean ``mu_i``;
a regularised ``c_i`` shrinks the mean of rarely rated items. A user with no
ratings (``w_j = 0, b_j = 0``) gets ``mu_i + c_i``: mean normalisation.

The binary variant uses ``g(w_j . x_i + b_j + c_i)`` with the logistic loss on
0/1 labels of observed pairs and no mean normalisation. (The model that ranks
from positives only, with negatives drawn from the whole catalogue, is
:mod:`recsys.models.implicit_cf`; it produces the same :class:`CFModel`.)

Training uses Adam and ``tf.GradientTape`` over shuffled mini-batches of the
observed pairs; no dense ``[n_items, n_users]`` matrix is ever built. The
regulariser is charged in proportion to the batch (``batch / n_obs`` of it per
step), so one epoch sums exactly to ``J``. With a validation set and
``patience``, training stops early and keeps the best epoch's factors.
Everything is seeded: the same data and seed give the same factors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Le

from recsys.models.artifacts import FromDict, read_params, write_params
from recsys.models.baselines import item_means
from recsys.models.bounds import Count, NonNegative, NonNegativeInt, Positive
from recsys.models.registry import ModelSpec, loader_for_kind, rating_fit

logger = logging.getLogger(__name__)

Loss = Literal["mse", "logistic", "softmax"]


@dataclass(frozen=True)
class CFParams(FromDict):
    """Hyper-parameters of the explicit (``mse``) and binary (``logistic``) models.

    Defaults are the values tuned on MovieLens 100K (validation split carved
    from u1..u5's training data; see ``recsys tune``).

    Attributes:
        n_factors: Length ``k`` of ``x_i`` and ``w_j``.
        l2: ``lambda`` on the vectors.
        l2_bias: ``lambda_b`` on the biases (0: unregularised, as in the course).
        reg_weighting: Exponent ``a`` of the per-user/per-item weight ``n^a`` of the regulariser.
        item_bias: Learn ``c_i`` on top of ``mu_i``.
        learning_rate: Adam step size.
        epochs: Maximum passes over the observed pairs.
        batch_size: Observed pairs per step.
        patience: Epochs without validation improvement before stopping (0: never stop early).
        init_std: Standard deviation of the initial vectors.
        loss: ``mse`` (explicit ratings) or ``logistic`` (binary labels).
        rating_min: Lower end of the rating scale (predictions are clipped to it).
        rating_max: Upper end of the rating scale.
        seed: Seed of initialisation and shuffling.
    """

    n_factors: Count = 128
    l2: NonNegative = 0.432
    l2_bias: NonNegative = 0.133
    reg_weighting: Annotated[float, Ge(0), Le(2)] = 0.75
    item_bias: bool = True
    learning_rate: Positive = 0.00335
    epochs: Count = 44
    batch_size: Count = 4096
    patience: NonNegativeInt = 0
    init_std: Positive = 0.01
    loss: Loss = "mse"
    rating_min: float = 1.0
    rating_max: float = 5.0
    seed: int = 42


@dataclass
class CFModel:
    """A fitted model.

    Attributes:
        x: ``[n_items, k]`` item vectors.
        w: ``[n_users, k]`` user vectors.
        b: ``[n_users]`` user biases.
        mu: ``[n_items]`` item means used for normalisation (zeros for binary models).
        params: The hyper-parameters it was trained with (``CFParams`` or the implicit model's).
        history: Per-epoch metrics (``loss``; ``val_rmse`` / ``val_ndcg`` where given).
        c: ``[n_items]`` item biases (zeros when not learnt).
    """

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    mu: np.ndarray
    params: object
    history: dict[str, list[float]] = field(default_factory=dict)
    c: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.c is None:
            self.c = np.zeros(self.x.shape[0], dtype=self.x.dtype)

    @property
    def n_users(self) -> int:
        """Users the model was fitted on."""
        return self.w.shape[0]

    @property
    def n_items(self) -> int:
        """Items the model was fitted on."""
        return self.x.shape[0]

    @property
    def loss(self) -> str:
        """The loss it was trained with: ``mse``, ``logistic`` or ``softmax``."""
        return getattr(self.params, "loss", "mse")

    @property
    def predicts_ratings(self) -> bool:
        """True for explicit models (scores are ratings on the scale)."""
        return self.loss == "mse"

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Scores of pairs: ratings on the scale (``mse``), probabilities (``logistic``), logits (``softmax``).

        Unknown users get ``mu_i + c_i`` (their ``w = 0, b = 0``); unknown items
        get the mean of ``mu`` (rating models) or score 0 / probability 0.5.

        Args:
            user_idx: ``[n]`` user indices.
            item_idx: ``[n]`` item indices.

        Returns:
            ``[n]`` float64 scores.
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        item_idx = np.asarray(item_idx, dtype=np.int64)
        ku = user_idx < self.n_users
        ki = item_idx < self.n_items
        u = np.where(ku, user_idx, 0)
        i = np.where(ki, item_idx, 0)
        dot = np.einsum("nk,nk->n", self.w[u], self.x[i]) + np.where(ku, self.b[u], 0.0)
        z = np.where(ki, np.where(ku, dot, 0.0) + self.c[i], 0.0).astype(np.float64)
        if self.loss == "logistic":
            return 1.0 / (1.0 + np.exp(-z))
        if self.loss == "softmax":
            return z
        mu = np.where(ki, self.mu[i], float(self.mu.mean()))
        return np.clip(z + mu, self.params.rating_min, self.params.rating_max)

    def retrieval_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users [n_users, k + 1], items [n_items, k + 1])`` float32 vectors whose inner product ranks
        each user's items as :meth:`score_users` does: ``[w_u, 1] . [x_i, c_i + mu_i]`` (the user bias,
        constant per user, drops out; ``mu`` only for rating models)."""
        offset = self.c + (self.mu if self.predicts_ratings else 0.0)
        users = np.hstack([self.w, np.ones((self.n_users, 1))]).astype(np.float32)
        return users, np.hstack([self.x, np.asarray(offset).reshape(-1, 1)]).astype(np.float32)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` scores of every item for each user (for ranking).

        Rating models give the unclipped predicted rating; binary models the
        logit (the order of the probabilities). Unknown users score ``mu + c``.
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        known = user_idx < self.n_users
        u = np.where(known, user_idx, 0)
        s = self.w[u] @ self.x.T + self.b[u][:, None]
        s = np.where(known[:, None], s, 0.0) + self.c[None, :]
        if self.loss == "mse":
            s = s + self.mu[None, :]
        return s.astype(np.float64)

    def save(self, path: Path) -> Path:
        """Write ``factors.npz`` (no pickle) and ``params.json`` into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "factors.npz", x=self.x, w=self.w, b=self.b, mu=self.mu, c=self.c)
        write_params(path, self.params, self.history)
        return path

    @classmethod
    def load(cls, path: Path, *, params_type: type | None = None) -> CFModel:
        """Read a model written by :meth:`save`.

        Args:
            path: The model folder.
            params_type: The params class of the folder's kind; None: :class:`CFParams` for kind
                ``CFParams``, else the registry's loader of that kind (the implicit factorisation's).
        """
        path = Path(path)
        meta = read_params(path)
        if params_type is None and meta.get("kind") != "CFParams":
            return loader_for_kind(str(meta.get("kind")))(path)
        with np.load(path / "factors.npz", allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x", "w", "b", "mu", "c") if k in f}
        params = (params_type or CFParams).from_dict(meta["params"])
        return cls(**arrays, params=params, history=meta.get("history", {}))


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error of ``[n]`` predictions."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2)))


def progress_bar(enabled: bool, description: str, total: int):
    """A started rich progress bar and its task, or ``(None, None)`` when disabled."""
    if not enabled:
        return None, None
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.start()
    return bar, bar.add_task(description, total=total)


class BestEpoch:
    """Early stopping on a validation score: keeps the best epoch's model and says when to stop.

    Args:
        patience: Checks without improvement before stopping (0: never stop, keep the last model).
        higher_is_better: Direction of the score (NDCG: True; RMSE, log loss: False).
        every: Epochs between checks (patience counts checks).
    """

    def __init__(self, patience: int, *, higher_is_better: bool, every: int = 1) -> None:
        self.patience, self.higher, self.every = patience, higher_is_better, every
        self.best: tuple[float, int, CFModel] | None = None

    def update(self, score: float, epoch: int, model: CFModel) -> bool:
        """Record the score of 0-based ``epoch``; True when training should stop."""
        if self.best is None or (score > self.best[0] if self.higher else score < self.best[0]):
            self.best = (score, epoch, model)
            return False
        if self.patience and (epoch - self.best[1]) // self.every >= self.patience:
            logger.info(
                "early stop at epoch %d (best validation score %.4f at epoch %d)",
                epoch + 1,
                self.best[0],
                self.best[1] + 1,
            )
            return True
        return False

    def result(self, last: CFModel, history: dict[str, list[float]]) -> CFModel:
        """The best model with early stopping (``history["best_epoch"]`` set), else ``last``; history attached."""
        model = last
        if self.best is not None and self.patience:
            model = self.best[2]
            history["best_epoch"] = [float(self.best[1] + 1)]
        model.history = history
        return model


def fit_cf(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    y: np.ndarray,
    n_users: int,
    n_items: int,
    params: CFParams,
    *,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
) -> CFModel:
    """Learn ``x``, ``w``, ``b`` (and ``c``) jointly.

    Args:
        user_idx: ``[n_obs]`` user indices of observed pairs.
        item_idx: ``[n_obs]`` item indices.
        y: ``[n_obs]`` ratings (``mse``) or 0/1 labels (``logistic``).
        n_users: Number of users.
        n_items: Number of items.
        params: Hyper-parameters.
        validation: Optional ``(user_idx, item_idx, y)`` evaluated each epoch
            (RMSE, or log loss for ``logistic``); with ``params.patience`` it
            drives early stopping and the best epoch is kept.
        progress: Show a progress bar (rich).

    Returns:
        The fitted :class:`CFModel`.
    """
    import tensorflow as tf

    if params.loss not in ("mse", "logistic"):
        raise ValueError(f"fit_cf trains mse or logistic; use recsys.models.implicit_cf for {params.loss!r}")
    start = time.monotonic()
    tf.keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    user_idx = np.asarray(user_idx, dtype=np.int32)
    item_idx = np.asarray(item_idx, dtype=np.int32)
    y = np.asarray(y, dtype=np.float64)
    n_obs = y.size
    logistic = params.loss == "logistic"
    mu = item_means(item_idx, y, n_items)[0] if not logistic else np.zeros(n_items)
    target = (y - mu[item_idx]).astype(np.float32)

    # Regulariser weights n^a of each row (rows without data stay at zero anyway).
    n_u = np.bincount(user_idx, minlength=n_users).astype(np.float64)
    n_i = np.bincount(item_idx, minlength=n_items).astype(np.float64)
    a = params.reg_weighting
    wt_u = tf.constant(np.where(n_u > 0, np.power(np.maximum(n_u, 1.0), a), 0.0).astype(np.float32)[:, None])
    wt_i = tf.constant(np.where(n_i > 0, np.power(np.maximum(n_i, 1.0), a), 0.0).astype(np.float32)[:, None])

    # Users (items) without observations start, and so stay, at exactly zero: they
    # appear in no batch, so nothing ever updates them. A new user is therefore
    # predicted exactly mu_i + c_i, as mean normalisation promises.
    init = tf.random.stateless_normal
    k = params.n_factors
    has_item = (n_i > 0).astype(np.float32)[:, None]
    has_user = (n_u > 0).astype(np.float32)[:, None]
    X = tf.Variable(init((n_items, k), seed=[params.seed, 1], stddev=params.init_std) * has_item, name="x")
    W = tf.Variable(init((n_users, k), seed=[params.seed, 2], stddev=params.init_std) * has_user, name="w")
    B = tf.Variable(tf.zeros((n_users,)), name="b")
    C = tf.Variable(tf.zeros((n_items,)), name="c")
    variables = [X, W, B, C] if params.item_bias else [X, W, B]
    opt = tf.keras.optimizers.Adam(learning_rate=params.learning_rate)
    lam = tf.constant(params.l2 / 2.0, tf.float32)
    lam_b = tf.constant(params.l2_bias / 2.0, tf.float32)

    @tf.function(reduce_retracing=True)
    def step(u: tf.Tensor, i: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        batch = tf.cast(tf.shape(t)[0], tf.float32)
        with tf.GradientTape() as tape:
            wu, xi, bu, ci = tf.gather(W, u), tf.gather(X, i), tf.gather(B, u), tf.gather(C, i)
            z = tf.reduce_sum(wu * xi, axis=1) + bu + ci
            if logistic:
                data = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=z))
            else:
                data = 0.5 * tf.reduce_sum(tf.square(z - t))
            # This batch's share of the regulariser, over the whole matrices (dense
            # gradients keep training deterministic on CPU; one epoch sums to J).
            reg = lam * (tf.reduce_sum(wt_u * tf.square(W)) + tf.reduce_sum(wt_i * tf.square(X)))
            reg += lam_b * (tf.reduce_sum(wt_u[:, 0] * tf.square(B)) + tf.reduce_sum(wt_i[:, 0] * tf.square(C)))
            loss = (data + reg * batch / n_obs) / batch
        # Dense gradients: sparse (IndexedSlices) updates are not deterministic on CPU.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss * batch

    def snapshot() -> CFModel:
        return CFModel(X.numpy(), W.numpy(), B.numpy(), mu, params, history, C.numpy())

    def val_score(model: CFModel) -> float:
        vu, vi, vy = validation
        p = model.predict(vu, vi)
        if logistic:
            p = np.clip(p, 1e-7, 1 - 1e-7)
            return float(-np.mean(vy * np.log(p) + (1 - vy) * np.log(1 - p)))
        return rmse(p, vy)

    val_key = "val_logloss" if logistic else "val_rmse"
    rng = np.random.default_rng(params.seed)
    history: dict[str, list[float]] = {"loss": []}
    stopper = BestEpoch(params.patience, higher_is_better=False)
    bar, task = progress_bar(progress, "CF epochs", params.epochs)
    try:
        for epoch in range(params.epochs):
            order = rng.permutation(n_obs)
            total = 0.0
            for s in range(0, n_obs, params.batch_size):
                idx = order[s : s + params.batch_size]
                total += float(step(user_idx[idx], item_idx[idx], target[idx]))
            history["loss"].append(total / max(n_obs, 1))
            if bar is not None:
                bar.advance(task)
            if validation is None:
                continue
            model = snapshot()
            score = val_score(model)
            history.setdefault(val_key, []).append(score)
            if stopper.update(score, epoch, model):
                break
    finally:
        if bar is not None:
            bar.stop()
    model = stopper.result(snapshot(), history)
    logger.info(
        "CF fitted: %d users x %d items, %d pairs, k=%d, %d epochs in %.1fs (final loss %.4f)",
        n_users,
        n_items,
        n_obs,
        k,
        len(history["loss"]),
        time.monotonic() - start,
        history["loss"][-1],
    )
    return model


SPEC = ModelSpec(
    name="cf",
    label="explicit CF",
    params=CFParams,
    fit=rating_fit(fit_cf),
    loaders={"CFParams": CFModel.load},
    aliases=("explicit", "mf"),
    role="rating",
    baselines=("item_mean", "global_mean"),
)
"""The course's factorisation with mean normalisation (its item vectors give the similar items)."""
