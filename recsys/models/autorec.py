"""Item-based AutoRec (Sedhain et al., 2015): the rating model with the lowest RMSE.

Each item ``i`` is the vector ``r_i`` of its training ratings, one entry per user
(``[n_users]``, 0 where the user did not rate it). An autoencoder with one hidden
layer reconstructs it::

    h_i      = g(r_i V + b_h)        # [hidden], g = sigmoid: the item's code
    r_hat_i  = h_i W + b_o           # [n_users], identity output

and only the observed entries count in the cost::

    J = 1/2 * sum_{(i,u): r(i,u)=1} (r_hat_iu - r_iu)^2 + lambda/2 * (||V||^2 + ||W||^2)

with ``V`` ``[n_users, hidden]``, ``W`` ``[hidden, n_users]``. The prediction of
user ``u`` for item ``i`` is ``r_hat_iu``, clipped to the rating scale. It is
collaborative filtering: an item is described by who rated it how, and the
decoder's column ``W[:, u]`` plays the part of the user vector ``w_u``.

After training, an item's code ``h_i`` depends only on its training ratings, so
the fitted model is stored as a factorisation: codes ``h`` ``[n_items, hidden]``,
user weights ``W.T`` ``[n_users, hidden]`` and user biases ``b_o`` ``[n_users]``;
``r_hat_iu = h_i . W[:, u] + b_o[u]``. Fallbacks: an item without training
ratings has the code ``g(b_h)`` (the empty input); a user the model never saw
has no output unit and gets the item's mean rating (the global mean for an
unknown item too).

Training is full-batch Adam over the dense ``[n_items, n_users]`` matrix when it
has at most ``max_block_cells`` cells (MovieLens 100K: 1.6 M), else over
shuffled blocks of items (the block built dense from a sparse matrix each step,
so memory is bounded). The output biases start at the global mean rating and the
learning rate decays to 0 along a cosine over the epochs: on MovieLens 100K this
reaches in 60 epochs (about 1 s) the RMSE that a constant rate from zero biases
needs 180 for, and the last epoch is the best, with no overfitting spike. The encoder's input is sparse in
principle, but on a CPU dense matrix products run at the machine's peak and sparse ones do not: at
ML-100K size a dense epoch (5 products) is about 20 ms. Seeded and
deterministic (``enable_op_determinism``). With a validation set and
``patience``, training stops early and keeps the best checked epoch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.models.artifacts import FromDict, read_params, write_params
from recsys.models.baselines import item_means
from recsys.models.bounds import Count, NonNegative, NonNegativeInt, Positive
from recsys.models.cf import BestEpoch, progress_bar, rmse
from recsys.models.registry import ModelSpec, rating_fit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoRecParams(FromDict):
    """Hyper-parameters of item-based AutoRec.

    Defaults were chosen on a validation split carved from MovieLens 100K u1's
    training data (the grid and its result are in ``bench/README.md``);
    ``bench/quality.py`` reports them on the five folds.

    Attributes:
        hidden: Units of the hidden layer (length of an item's code).
        l2: ``lambda`` on ``V`` and ``W``.
        learning_rate: Adam's initial step size (cosine decay to 0 over the epochs).
        epochs: Maximum passes over the items.
        patience: Validation checks without improvement before stopping (0: never stop early).
        eval_every: Epochs between validation checks.
        init_std: Standard deviation of the initial weights.
        max_block_cells: Largest dense block (items x users) of one step; the whole matrix when it fits.
        rating_min: Lower end of the rating scale (predictions are clipped to it).
        rating_max: Upper end of the rating scale.
        seed: Seed of initialisation and block order.
    """

    hidden: Count = 300
    l2: NonNegative = 60.0
    learning_rate: Positive = 0.005
    epochs: Count = 60
    patience: NonNegativeInt = 0
    eval_every: Count = 10
    init_std: Positive = 0.03
    max_block_cells: Count = 8_000_000
    rating_min: float = 1.0
    rating_max: float = 5.0
    seed: int = 42


@dataclass
class AutoRecModel:
    """A fitted AutoRec, stored as the factorisation its decoder makes.

    Attributes:
        codes: ``[n_items, hidden]`` item codes ``h_i`` (``g(b_h)`` for items without training ratings).
        w: ``[n_users, hidden]`` decoder weights of each user (``W.T``).
        b: ``[n_users]`` decoder biases ``b_o``.
        mu: ``[n_items]`` item mean ratings (the fallback for unknown users).
        empty: ``[hidden]`` the code of an item without training ratings, ``g(b_h)``.
        params: The hyper-parameters it was trained with.
        history: Per-epoch ``loss`` and, where given, ``val_rmse`` at each check.
    """

    codes: np.ndarray
    w: np.ndarray
    b: np.ndarray
    mu: np.ndarray
    empty: np.ndarray
    params: AutoRecParams
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        """Users the model was fitted on."""
        return self.w.shape[0]

    @property
    def n_items(self) -> int:
        """Items the model was fitted on."""
        return self.codes.shape[0]

    @property
    def x(self) -> np.ndarray:
        """``[n_items, hidden]`` item vectors (the codes), for neighbours."""
        return self.codes

    predicts_ratings = True

    def _raw(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        ku, ki = u < self.n_users, i < self.n_items
        uu, ii = np.where(ku, u, 0), np.where(ki, i, 0)
        z = np.einsum("nk,nk->n", self.codes[ii].astype(np.float64), self.w[uu]) + self.b[uu]
        fallback = np.where(ki, self.mu[ii], float(self.mu.mean()) if self.mu.size else 0.0)
        new_item = self.w[uu] @ self.empty.astype(np.float64) + self.b[uu]
        return np.where(ku & ki, z, np.where(ku, new_item, fallback))

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` predicted ratings of the pairs, clipped to the scale (fallbacks in the module docstring)."""
        return np.clip(self._raw(user_idx, item_idx), self.params.rating_min, self.params.rating_max)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` unclipped predicted ratings (for ranking); unknown users get ``mu``."""
        u = np.asarray(user_idx, dtype=np.int64)
        known = u < self.n_users
        uu = np.where(known, u, 0)
        s = self.w[uu] @ self.codes.T.astype(np.float64) + self.b[uu][:, None]
        return np.where(known[:, None], s, self.mu[None, :]).astype(np.float64)

    def save(self, path: Path) -> Path:
        """Write ``autorec.npz`` (no pickle) and ``params.json`` into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "autorec.npz", codes=self.codes, w=self.w, b=self.b, mu=self.mu, empty=self.empty)
        write_params(path, self.params, self.history)
        return path

    @classmethod
    def load(cls, path: Path) -> AutoRecModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        with np.load(path / "autorec.npz", allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("codes", "w", "b", "mu", "empty")}
        meta = read_params(path)
        return cls(**arrays, params=AutoRecParams.from_dict(meta["params"]), history=meta.get("history", {}))


def _item_matrix(user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int):
    """``(ratings, mask)`` as CSR ``[n_items, n_users]``; repeated pairs are averaged."""
    import scipy.sparse as sp

    ones = sp.csr_matrix((np.ones(rating.size, np.float32), (item_idx, user_idx)), shape=(n_items, n_users))
    sums = sp.csr_matrix((rating.astype(np.float32), (item_idx, user_idx)), shape=(n_items, n_users))
    ones.sum_duplicates()
    sums.sum_duplicates()
    mean = sums.copy()
    mean.data = sums.data / ones.data  # same sparsity pattern, same order
    mask = ones.copy()
    mask.data[:] = 1.0
    return mean, mask


def fit_autorec(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    params: AutoRecParams | None = None,
    *,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
) -> AutoRecModel:
    """Train item-based AutoRec on explicit ratings.

    Args:
        user_idx: ``[n_obs]`` user indices.
        item_idx: ``[n_obs]`` item indices.
        rating: ``[n_obs]`` ratings.
        n_users: Number of users (output units).
        n_items: Number of items.
        params: Hyper-parameters (defaults: :class:`AutoRecParams`).
        validation: Optional ``(user_idx, item_idx, rating)`` scored (RMSE) every
            ``eval_every`` epochs; with ``patience`` it drives early stopping.
        progress: Show a progress bar (rich).

    Returns:
        The fitted :class:`AutoRecModel`.
    """
    import tensorflow as tf

    params = params or AutoRecParams()
    start = time.monotonic()
    tf.keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    rating = np.asarray(rating, dtype=np.float64)
    mu = item_means(item_idx, rating, n_items)[0]
    ratings, mask = _item_matrix(user_idx, item_idx, rating, n_users, n_items)
    n_obs = int(mask.nnz)

    h = params.hidden
    init = tf.random.stateless_normal
    V = tf.Variable(init((n_users, h), seed=[params.seed, 1], stddev=params.init_std), name="v")
    W = tf.Variable(init((h, n_users), seed=[params.seed, 2], stddev=params.init_std), name="w")
    bh = tf.Variable(tf.zeros((h,)), name="b_h")
    # Output biases start at the global mean: from 0, Adam needs hundreds of steps just to climb to ~3.5.
    bo = tf.Variable(tf.fill((n_users,), float(rating.mean()) if rating.size else 0.0), name="b_o")
    variables = [V, W, bh, bo]
    block = max(1, min(n_items, params.max_block_cells // max(n_users, 1)))
    full = block >= n_items
    steps = params.epochs * -(-n_items // block)
    opt = tf.keras.optimizers.Adam(learning_rate=tf.keras.optimizers.schedules.CosineDecay(params.learning_rate, steps))
    lam = tf.constant(params.l2 / 2.0, tf.float32)

    dense_full = (tf.constant(ratings.toarray()), tf.constant(mask.toarray())) if full else None

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, m: tf.Tensor, share: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            code = tf.sigmoid(tf.matmul(x, V) + bh)
            err = (tf.matmul(code, W) + bo - x) * m
            data = 0.5 * tf.reduce_sum(tf.square(err))
            reg = lam * (tf.reduce_sum(tf.square(V)) + tf.reduce_sum(tf.square(W)))
            loss = (data + reg * share) / n_items  # one epoch sums to J / n_items
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return data

    @tf.function(reduce_retracing=True)
    def encode(x: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(tf.matmul(x, V) + bh)

    def snapshot() -> AutoRecModel:
        parts = [encode(tf.constant(ratings[s : s + block].toarray())).numpy() for s in range(0, n_items, block)]
        codes = np.concatenate(parts) if parts else np.zeros((0, h), np.float32)
        empty = 1.0 / (1.0 + np.exp(-bh.numpy().astype(np.float64)))
        return AutoRecModel(
            codes, W.numpy().T.astype(np.float64), bo.numpy().astype(np.float64), mu, empty, params, history
        )

    rng = np.random.default_rng(params.seed)
    history: dict[str, list[float]] = {"loss": []}
    stopper = BestEpoch(params.patience, higher_is_better=False, every=params.eval_every)
    bar, task = progress_bar(progress, "AutoRec epochs", params.epochs)
    try:
        for epoch in range(params.epochs):
            if full:
                total = float(step(*dense_full, tf.constant(1.0)))
            else:
                total = 0.0
                order = rng.permutation(n_items)
                for s in range(0, n_items, block):
                    rows = order[s : s + block]
                    x, m = ratings[rows].toarray(), mask[rows].toarray()
                    total += float(step(tf.constant(x), tf.constant(m), tf.constant(rows.size / n_items, tf.float32)))
            history["loss"].append(total / max(n_obs, 1))
            if bar is not None:
                bar.advance(task)
            if validation is None or ((epoch + 1) % params.eval_every and epoch + 1 != params.epochs):
                continue
            model = snapshot()
            score = rmse(model.predict(*validation[:2]), validation[2])
            history.setdefault("val_rmse", []).append(score)
            if stopper.update(score, epoch, model):
                break
    finally:
        if bar is not None:
            bar.stop()
    model = stopper.result(snapshot(), history)
    logger.info(
        "AutoRec fitted: %d users x %d items, %d ratings, hidden=%d, %d epochs in %.1fs (final loss %.4f)",
        n_users,
        n_items,
        n_obs,
        h,
        len(history["loss"]),
        time.monotonic() - start,
        history["loss"][-1],
    )
    return model


SPEC = ModelSpec(
    name="autorec",
    label="AutoRec",
    params=AutoRecParams,
    fit=rating_fit(fit_autorec),
    loaders={"AutoRecParams": AutoRecModel.load},
    role="rating",
    chosen_by="rating_model",
)
"""Item-based AutoRec: the rating model."""
