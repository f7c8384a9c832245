"""Collaborative filtering as the course defines it, in TensorFlow.

Cost (explicit ratings, on mean-normalised ``y``)::

    J(w, b, x) = 1/2 * sum_{(i,j): r(i,j)=1} (w_j . x_i + b_j - (y_ij - mu_i))^2
                 + lambda/2 * sum_j ||w_j||^2 + lambda/2 * sum_i ||x_i||^2

and the prediction is ``w_j . x_i + b_j + mu_i``, so a user with no ratings
(``w_j = 0, b_j = 0``) gets the item mean ``mu_i``. The binary variant uses
``g(w_j . x_i + b_j)`` with the logistic loss and no mean normalisation.

Training uses Adam and ``tf.GradientTape`` over shuffled mini-batches of the
observed pairs; no dense ``[n_items, n_users]`` matrix is ever built. Each
mini-batch carries ``batch/n_obs`` of the regularisation, so one epoch sums to
``J``. Everything is seeded: the same data and seed give the same factors.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from recsys.models.baselines import item_means

logger = logging.getLogger(__name__)

Loss = Literal["mse", "logistic"]


@dataclass(frozen=True)
class CFParams:
    """Hyper-parameters.

    Attributes:
        n_factors: Length ``k`` of ``x_i`` and ``w_j``.
        l2: ``lambda`` of the cost function.
        learning_rate: Adam step size.
        epochs: Passes over the observed pairs.
        batch_size: Observed pairs per step.
        loss: ``mse`` (explicit ratings) or ``logistic`` (binary labels).
        rating_min: Lower end of the rating scale (predictions are clipped to it).
        rating_max: Upper end of the rating scale.
        seed: Seed of initialisation and shuffling.
    """

    n_factors: int = 32
    l2: float = 14.0
    learning_rate: float = 0.01
    epochs: int = 20
    batch_size: int = 2048
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
        mu: ``[n_items]`` item means used for normalisation (zeros for ``logistic``).
        params: The hyper-parameters it was trained with.
        history: Per-epoch metrics (``loss``; ``train_rmse`` / ``val_rmse`` where given).
    """

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    mu: np.ndarray
    params: CFParams
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        """Users the model was fitted on."""
        return self.w.shape[0]

    @property
    def n_items(self) -> int:
        """Items the model was fitted on."""
        return self.x.shape[0]

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Scores of pairs: ratings on the scale (``mse``) or probabilities (``logistic``).

        Unknown users get ``mu_i`` (their ``w = 0, b = 0``); unknown items get the mean of ``mu``.

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
        dot = np.einsum("nk,nk->n", self.w[u], self.x[i]) + self.b[u]
        dot = np.where(ku & ki, dot, 0.0)
        if self.params.loss == "logistic":
            return 1.0 / (1.0 + np.exp(-dot))
        mu = np.where(ki, self.mu[i], float(self.mu.mean()))
        return np.clip(dot + mu, self.params.rating_min, self.params.rating_max)

    def save(self, path: Path) -> Path:
        """Write ``factors.npz`` (no pickle) and ``params.json`` into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "factors.npz", x=self.x, w=self.w, b=self.b, mu=self.mu)
        (path / "params.json").write_text(json.dumps({"params": asdict(self.params), "history": self.history}, indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> CFModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        with np.load(path / "factors.npz", allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x", "w", "b", "mu")}
        meta = json.loads((path / "params.json").read_text())
        return cls(**arrays, params=CFParams(**meta["params"]), history=meta.get("history", {}))


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error of ``[n]`` predictions."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2)))


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
    """Learn ``x``, ``w`` and ``b`` jointly.

    Args:
        user_idx: ``[n_obs]`` user indices of observed pairs.
        item_idx: ``[n_obs]`` item indices.
        y: ``[n_obs]`` ratings (``mse``) or 0/1 labels (``logistic``).
        n_users: Number of users.
        n_items: Number of items.
        params: Hyper-parameters.
        validation: Optional ``(user_idx, item_idx, y)`` evaluated each epoch (RMSE).
        progress: Show a progress bar (rich).

    Returns:
        The fitted :class:`CFModel`.
    """
    import tensorflow as tf

    start = time.monotonic()
    tf.keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    user_idx = np.asarray(user_idx, dtype=np.int32)
    item_idx = np.asarray(item_idx, dtype=np.int32)
    y = np.asarray(y, dtype=np.float64)
    n_obs = y.size
    if params.loss == "mse":
        mu, _ = item_means(item_idx, y, n_items)
    else:
        mu = np.zeros(n_items)
    target = (y - mu[item_idx]).astype(np.float32)

    # Users (items) without observations start, and so stay, at exactly zero: their
    # only gradient is the regulariser's, which is zero at zero. A new user is
    # therefore predicted exactly mu_i, as mean normalisation promises.
    init = tf.random.stateless_normal
    k = params.n_factors
    has_item = (np.bincount(item_idx, minlength=n_items) > 0).astype(np.float32)[:, None]
    has_user = (np.bincount(user_idx, minlength=n_users) > 0).astype(np.float32)[:, None]
    X = tf.Variable(init((n_items, k), seed=[params.seed, 1], stddev=0.1) * has_item, name="x")
    W = tf.Variable(init((n_users, k), seed=[params.seed, 2], stddev=0.1) * has_user, name="w")
    B = tf.Variable(tf.zeros((n_users,)), name="b")
    opt = tf.keras.optimizers.Adam(learning_rate=params.learning_rate)
    variables = [X, W, B]
    reg_scale = tf.constant(params.l2 / 2.0 / n_obs, tf.float32)
    logistic = params.loss == "logistic"

    @tf.function(reduce_retracing=True)
    def step(u: tf.Tensor, i: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        batch = tf.cast(tf.shape(t)[0], tf.float32)
        with tf.GradientTape() as tape:
            z = tf.reduce_sum(tf.gather(W, u) * tf.gather(X, i), axis=1) + tf.gather(B, u)
            if logistic:
                data = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=z))
            else:
                data = 0.5 * tf.reduce_sum(tf.square(z - t))
            reg = reg_scale * batch * (tf.reduce_sum(tf.square(W)) + tf.reduce_sum(tf.square(X)))
            loss = (data + reg) / batch
        grads = tape.gradient(loss, variables)
        grads = [tf.convert_to_tensor(g) for g in grads]
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss * batch

    rng = np.random.default_rng(params.seed)
    history: dict[str, list[float]] = {"loss": []}
    model = CFModel(X.numpy(), W.numpy(), B.numpy(), mu, params, history)
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("CF epochs", total=params.epochs)
    try:
        for epoch in range(params.epochs):
            order = rng.permutation(n_obs)
            total = 0.0
            for s in range(0, n_obs, params.batch_size):
                idx = order[s : s + params.batch_size]
                total += float(step(user_idx[idx], item_idx[idx], target[idx]))
            history["loss"].append(total / n_obs)
            if validation is not None or epoch == params.epochs - 1:
                model = CFModel(X.numpy(), W.numpy(), B.numpy(), mu, params, history)
            if validation is not None and not logistic:
                vu, vi, vy = validation
                history.setdefault("val_rmse", []).append(rmse(model.predict(vu, vi), vy))
            if bar is not None:
                bar.advance(task)
            logger.debug("epoch %d loss %.4f", epoch + 1, history["loss"][-1])
    finally:
        if bar is not None:
            bar.stop()
    logger.info(
        "CF fitted: %d users x %d items, %d pairs, k=%d, %d epochs in %.1fs (final loss %.4f)",
        n_users, n_items, n_obs, k, params.epochs, time.monotonic() - start, history["loss"][-1],
    )  # fmt: skip
    return model
