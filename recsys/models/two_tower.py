"""The content-based two-tower model (Keras 3, plain layers).

A user tower and an item tower map each side's feature vector
(:mod:`recsys.features.tower_inputs`) through Dense layers (default 256-128-32,
ReLU between, linear last) to an L2-normalised embedding ``v_u`` / ``v_m``
(``[k]``). The prediction is their dot product ``v_u . v_m`` in ``[-1, 1]``:

* ratings (``loss="mse"``): trained with the mean squared error against the
  rating scaled to ``[-1, 1]`` (``(r - mid) / half``); the predicted rating is
  ``mid + half * v_u . v_m``, clipped to the scale;
* binary labels (``loss="logistic"``): ``g(a * v_u . v_m + b)`` with the logistic
  loss (``a``, ``b`` learnt: a dot product of unit vectors alone cannot reach
  probabilities near 0 or 1);
* retrieval (``loss="softmax"``): every training pair is a positive, scored
  against ``negatives`` items drawn uniformly for each batch: the loss is the
  cross-entropy of ``softmax(s * [v_u . v_pos, v_u . v_neg_1, ...])`` with a learnt
  scale ``s`` (an accidental hit, a negative equal to the positive, is masked).
  This learns which items a user chooses (popular ones included), what ranking
  needs; the rating losses learn how much a user likes what they chose, and rank
  far worse. ``cold_dropout`` replaces, for that share of the training pairs, the
  user's rating-history features by those of a user without ratings, and the
  item's rating statistics by those of an unrated item, so that the towers learn
  to place cold users and items from side data alone (they never see such inputs
  otherwise). Trained for ``epochs`` epochs (no early stopping: the warm
  validation loss is not what cold start needs).

Because a user's embedding is computed from features, not looked up, the model
scores users and items it never saw in training (cold start), from their side
data alone.

Training streams ``(user_idx, item_idx, label)`` chunks (e.g. Parquet record
batches, :func:`parquet_chunks`) through ``tf.data``: chunks are shuffled
together within a window of ``shuffle_window`` rows (seeded), cut into batches,
and each batch gathers its feature vectors from two in-memory tables
(``[n_users, d_u]``, ``[n_items, d_i]``); the ratings are never held as one
Python list. Seeded and deterministic (``enable_op_determinism``). With a
validation set, training stops after ``patience`` epochs without improvement of
the validation loss and restores the best epoch's weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recsys.features.tower_inputs import TowerPreprocessor
from recsys.models.io import FromDict, read_params, write_params

logger = logging.getLogger(__name__)

Chunks = Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]
"""A callable that starts a new pass over the training pairs: an iterator of ``(user_idx, item_idx, label)`` chunks."""


@dataclass(frozen=True)
class TwoTowerParams(FromDict):
    """Hyper-parameters of the two-tower model.

    Attributes:
        layers: Units of each tower's Dense layers; the last is the embedding length ``k``.
        loss: ``mse`` (ratings), ``logistic`` (0/1 labels) or ``softmax`` (retrieval from positives).
        learning_rate: Adam step size.
        batch_size: Pairs per step.
        epochs: Maximum passes over the training pairs.
        patience: Epochs without validation improvement before stopping (0: never stop early).
        shuffle_window: Rows shuffled together while streaming.
        negatives: Uniformly drawn negative items per batch (``softmax``).
        cold_dropout: Share of training pairs whose user's rating history is blanked (``softmax``).
        item_cold_dropout: Share of training (and negative) items whose rating statistics are blanked (``softmax``).
        rating_min: Lower end of the rating scale.
        rating_max: Upper end of the rating scale.
        seed: Seed of initialisation and shuffling.
    """

    layers: tuple[int, ...] = (256, 128, 32)
    loss: Literal["mse", "logistic", "softmax"] = "mse"
    learning_rate: float = 0.001
    batch_size: int = 1024
    epochs: int = 30
    patience: int = 3
    shuffle_window: int = 262_144
    negatives: int = 512
    cold_dropout: float = 0.0
    item_cold_dropout: float = 0.0
    rating_min: float = 1.0
    rating_max: float = 5.0
    seed: int = 42


    @property
    def mid(self) -> float:
        """Centre of the rating scale."""
        return (self.rating_min + self.rating_max) / 2.0

    @property
    def half(self) -> float:
        """Half the width of the rating scale."""
        return max((self.rating_max - self.rating_min) / 2.0, 1e-9)


def parquet_chunks(path: Path | str, *, label: str = "rating", where_split: str | None = "train",
                   batch_rows: int = 65_536) -> Chunks:  # fmt: skip
    """Training pairs streamed from a Parquet file or folder (``user_idx``, ``item_idx``, ``label``, ``split``).

    Args:
        path: Parquet file or folder (e.g. a ``ratings`` partition).
        label: Column of the label.
        where_split: Keep rows whose ``split`` equals this (None: every row).
        batch_rows: Rows per record batch read.

    Returns:
        A :data:`Chunks` callable; each call reads the data again, batch by batch.
    """
    import pyarrow.dataset as ds

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        data = ds.dataset(str(path), format="parquet")
        filt = ds.field("split") == where_split if where_split is not None else None
        for b in data.to_batches(columns=["user_idx", "item_idx", label], filter=filt, batch_size=batch_rows):
            if b.num_rows:
                yield (b.column(0).to_numpy().astype(np.int32), b.column(1).to_numpy().astype(np.int32),
                       b.column(2).to_numpy().astype(np.float32))  # fmt: skip

    return chunks


def array_chunks(user_idx: np.ndarray, item_idx: np.ndarray, label: np.ndarray, *, rows: int = 65_536) -> Chunks:
    """:data:`Chunks` over in-memory arrays (tests, benchmarks)."""

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for s in range(0, len(label), rows):
            yield (np.asarray(user_idx[s : s + rows], np.int32), np.asarray(item_idx[s : s + rows], np.int32),
                   np.asarray(label[s : s + rows], np.float32))  # fmt: skip

    return chunks


def _held_out(user_idx: np.ndarray, item_idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``[n]`` bool: the pair is in the validation share (a seeded hash of the pair; row order does not matter)."""
    with np.errstate(over="ignore"):
        x = (user_idx.astype(np.uint64) << np.uint64(32)) ^ item_idx.astype(np.uint64)
        x ^= np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x % np.uint64(1_000_000)) < np.uint64(round(fraction * 1_000_000))


def holdout_chunks(chunks: Chunks, *, fraction: float, seed: int) -> tuple[Chunks, tuple[np.ndarray, ...]]:
    """Split a stream into training chunks and in-memory validation arrays, by a seeded hash of each pair.

    Args:
        chunks: The full stream.
        fraction: Share of pairs held out (about; it is a hash, not a count).
        seed: Seed of the hash.

    Returns:
        ``(training chunks without the held-out pairs, (user_idx, item_idx, label) held out)``.
    """
    parts = []
    for u, i, y in chunks():
        h = _held_out(u, i, fraction, seed)
        parts.append((u[h], i[h], y[h]))
    held = tuple(np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in range(3))

    def train() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for u, i, y in chunks():
            keep = ~_held_out(u, i, fraction, seed)
            yield u[keep], i[keep], y[keep]

    return train, held


def _shuffled_batches(chunks: Chunks, batch: int, window: int, rng: np.random.Generator) -> Iterator[tuple]:
    """Batches of ``batch`` pairs, shuffled within windows of about ``window`` rows."""
    buffer: list[tuple[np.ndarray, ...]] = []
    size = 0

    def flush() -> Iterator[tuple]:
        u, i, y = (np.concatenate([c[k] for c in buffer]) for k in range(3))
        order = rng.permutation(len(y))
        for s in range(0, len(y), batch):
            sel = order[s : s + batch]
            yield u[sel], i[sel], y[sel]

    for chunk in chunks():
        buffer.append(chunk)
        size += len(chunk[2])
        if size >= window:
            yield from flush()
            buffer, size = [], 0
    if buffer:
        yield from flush()


def _tower(keras: Any, d_in: int, layers: tuple[int, ...], name: str) -> Any:
    inp = keras.Input((d_in,), name=f"{name}_features")
    x = inp
    for k, units in enumerate(layers[:-1]):
        x = keras.layers.Dense(units, activation="relu", name=f"{name}_dense{k}")(x)
    x = keras.layers.Dense(layers[-1], name=f"{name}_out")(x)
    x = keras.layers.UnitNormalization(name=f"{name}_l2")(x)
    return keras.Model(inp, x, name=name)


def build_model(user_dim: int, item_dim: int, params: TwoTowerParams) -> Any:
    """The Keras model ``(user_features [b, d_u], item_features [b, d_i]) -> [b, 1]`` (towers named ``user_tower``/``item_tower``)."""
    import keras

    users = _tower(keras, user_dim, params.layers, "user_tower")
    items = _tower(keras, item_dim, params.layers, "item_tower")
    u_in = keras.Input((user_dim,), name="user_features")
    i_in = keras.Input((item_dim,), name="item_features")
    out = keras.layers.Dot(axes=1, name="dot")([users(u_in), items(i_in)])
    if params.loss == "logistic":
        out = keras.layers.Dense(1, activation="sigmoid", name="head")(out)
    return keras.Model([u_in, i_in], out, name="two_tower")


@dataclass
class TwoTowerModel:
    """A fitted two-tower model and the embeddings of the users and items it was fitted with.

    Attributes:
        model: The Keras model (:func:`build_model`).
        preprocessor: The fitted input transforms (saved with the model).
        user_emb: ``[n_users, k]`` user embeddings (unit length).
        item_emb: ``[n_items, k]`` item embeddings (unit length).
        params: The hyper-parameters.
        history: Per-epoch ``loss`` and ``val_loss`` (and ``val_rmse`` on the rating scale for ``mse``).
    """

    model: Any
    preprocessor: TowerPreprocessor
    user_emb: np.ndarray
    item_emb: np.ndarray
    params: TwoTowerParams
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def predicts_ratings(self) -> bool:
        """True for the ``mse`` (ratings) variant."""
        return self.params.loss == "mse"

    @property
    def predicts_probabilities(self) -> bool:
        """True for the ``logistic`` variant; ``softmax`` predicts the dot product (a ranking score)."""
        return self.params.loss == "logistic"

    @property
    def n_users(self) -> int:
        """Users with an embedding."""
        return self.user_emb.shape[0]

    @property
    def n_items(self) -> int:
        """Items with an embedding."""
        return self.item_emb.shape[0]

    def _tower(self, name: str) -> Any:
        return self.model.get_layer(name)

    def embed_users(self, user_x: np.ndarray) -> np.ndarray:
        """``[n, k]`` embeddings of user vectors ``[n, d_u]`` (e.g. new users, from side data)."""
        return np.asarray(self._tower("user_tower").predict(np.asarray(user_x, np.float32), batch_size=8192, verbose=0))

    def embed_items(self, item_x: np.ndarray) -> np.ndarray:
        """``[n, k]`` embeddings of item vectors ``[n, d_i]``."""
        return np.asarray(self._tower("item_tower").predict(np.asarray(item_x, np.float32), batch_size=8192, verbose=0))

    def _head(self) -> tuple[float, float]:
        w, b = self.model.get_layer("head").get_weights()
        return float(w.reshape(-1)[0]), float(b.reshape(-1)[0])

    def _output(self, dot: np.ndarray) -> np.ndarray:
        if self.params.loss == "softmax":
            return dot
        if self.params.loss == "logistic":
            a, b = self._head()
            return 1.0 / (1.0 + np.exp(-(a * dot + b)))
        return self.params.mid + self.params.half * dot

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` dot products ``v_u . v_m`` of pairs (the ranking score: monotone in the prediction, no clipping ties)."""
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        return np.einsum("nk,nk->n", self.user_emb[u].astype(np.float64), self.item_emb[i].astype(np.float64))

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` predicted ratings (clipped) or probabilities of pairs of known users and items."""
        out = self._output(self.score(user_idx, item_idx))
        return np.clip(out, self.params.rating_min, self.params.rating_max) if self.predicts_ratings else out

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` dot products (the order of predicted ratings / probabilities)."""
        u = np.asarray(user_idx, dtype=np.int64)
        return (self.user_emb[u].astype(np.float64) @ self.item_emb.T.astype(np.float64)).astype(np.float64)

    def save(self, path: Path) -> Path:
        """Write ``two_tower.keras``, ``preprocessing.json``, ``user_embeddings.parquet``,
        ``item_embeddings.parquet`` and ``params.json`` into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "two_tower.keras")
        (path / "preprocessing.json").write_text(self.preprocessor.to_json())
        for name, emb, key in (("user", self.user_emb, "user_idx"), ("item", self.item_emb, "item_idx")):
            embeddings_frame(emb, key).to_parquet(path / f"{name}_embeddings.parquet", index=False)
        write_params(path, self.params, self.history)
        return path

    @classmethod
    def load(cls, path: Path) -> TwoTowerModel:
        """Read a model written by :meth:`save` (embeddings from their tables)."""
        import keras

        path = Path(path)
        meta = read_params(path)
        model = keras.models.load_model(path / "two_tower.keras")
        pre = TowerPreprocessor.from_json((path / "preprocessing.json").read_text())
        user = _embeddings(pd.read_parquet(path / "user_embeddings.parquet"), "user_idx")
        item = _embeddings(pd.read_parquet(path / "item_embeddings.parquet"), "item_idx")
        return cls(model, pre, user, item, TwoTowerParams.from_dict(meta["params"]), meta.get("history", {}))


def embeddings_frame(emb: np.ndarray, key: str) -> pd.DataFrame:
    """An embeddings table: ``key`` (int32) and ``embedding`` (list of float32); grain one user or item."""
    return pd.DataFrame({key: np.arange(emb.shape[0], dtype=np.int32), "embedding": list(emb.astype(np.float32))})


def _embeddings(frame: pd.DataFrame, key: str) -> np.ndarray:
    frame = frame.sort_values(key)
    return np.stack(frame["embedding"].to_numpy()).astype(np.float32)


def fit_two_tower(
    user_x: np.ndarray,
    item_x: np.ndarray,
    train: Chunks,
    params: TwoTowerParams,
    preprocessor: TowerPreprocessor,
    *,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
    extra_callbacks: list[Any] | None = None,
) -> TwoTowerModel:
    """Train the two towers on streamed ``(user_idx, item_idx, label)`` pairs.

    Args:
        user_x: ``[n_users, d_u]`` user vectors (:meth:`TowerPreprocessor.users`), indexed by ``user_idx``.
        item_x: ``[n_items, d_i]`` item vectors (:meth:`TowerPreprocessor.items`), indexed by ``item_idx``.
        train: Starts a pass over the training pairs (:func:`parquet_chunks`, :func:`array_chunks`).
        params: Hyper-parameters.
        preprocessor: The transforms that made ``user_x``/``item_x`` (saved with the model).
        validation: Optional ``(user_idx, item_idx, label)`` for early stopping (held out of ``train``).
        progress: Show Keras' progress bar.
        extra_callbacks: More Keras callbacks (e.g. a benchmark's epoch timer).

    Returns:
        The fitted :class:`TwoTowerModel` (embeddings of every row of ``user_x`` and ``item_x``).
    """
    import keras
    import tensorflow as tf

    start = time.monotonic()
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    ux = tf.constant(np.asarray(user_x, np.float32))
    ix = tf.constant(np.asarray(item_x, np.float32))
    mse = params.loss == "mse"
    mid, half = params.mid, params.half

    def target(y: tf.Tensor) -> tf.Tensor:
        return (y - mid) / half if mse else y

    def features(u: tf.Tensor, i: tf.Tensor, y: tf.Tensor) -> tuple:
        return (tf.gather(ux, u), tf.gather(ix, i)), target(y)[:, None]

    rng = np.random.default_rng(params.seed)
    spec = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32))
    data = tf.data.Dataset.from_generator(
        lambda: _shuffled_batches(train, params.batch_size, params.shuffle_window, rng), output_signature=spec
    ).map(features).prefetch(2)
    val = None
    if validation is not None and len(validation[0]):
        vu, vi, vy = (np.asarray(a) for a in validation)
        val = tf.data.Dataset.from_tensor_slices((vu.astype(np.int32), vi.astype(np.int32), vy.astype(np.float32)))
        val = val.batch(8192).map(features)

    model = build_model(ux.shape[1], ix.shape[1], params)
    if params.loss == "softmax":
        history = _fit_softmax(model, train, ux, ix, params, preprocessor, rng, list(extra_callbacks or []))
        out = TwoTowerModel(model, preprocessor, np.zeros((0, params.layers[-1]), np.float32),
                            np.zeros((0, params.layers[-1]), np.float32), params, history)  # fmt: skip
        out.user_emb, out.item_emb = out.embed_users(user_x), out.embed_items(item_x)
        logger.info("two-tower (softmax) fitted: %d users x %d items, layers %s, %d epochs in %.1fs", out.n_users,
                    out.n_items, params.layers, params.epochs, time.monotonic() - start)  # fmt: skip
        return out
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate),
                  loss="mse" if mse else "binary_crossentropy")  # fmt: skip
    callbacks: list[Any] = [keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: logger.info(
        "two-tower epoch %d: %s", e + 1, {k: round(float(v), 5) for k, v in (logs or {}).items()}))]  # fmt: skip
    callbacks += list(extra_callbacks or [])
    if val is not None and params.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=params.patience,
                                                       restore_best_weights=True))  # fmt: skip
    fitted = model.fit(data, validation_data=val, epochs=params.epochs, callbacks=callbacks, shuffle=False,
                       verbose=1 if progress else 0)  # fmt: skip
    history = {k: [float(x) for x in v] for k, v in fitted.history.items()}
    if mse and "val_loss" in history:
        history["val_rmse"] = [float(np.sqrt(v) * half) for v in history["val_loss"]]
    if val is not None and params.patience > 0 and "val_loss" in history:
        history["best_epoch"] = [float(int(np.argmin(history["val_loss"])) + 1)]
    out = TwoTowerModel(model, preprocessor, np.zeros((0, params.layers[-1]), np.float32),
                        np.zeros((0, params.layers[-1]), np.float32), params, history)  # fmt: skip
    out.user_emb, out.item_emb = out.embed_users(user_x), out.embed_items(item_x)
    logger.info("two-tower fitted: %d users x %d items, layers %s, %d epochs in %.1fs", out.n_users, out.n_items,
                params.layers, len(history.get("loss", [])), time.monotonic() - start)  # fmt: skip
    return out


def _fit_softmax(model: Any, train: Chunks, ux: Any, ix: Any, params: TwoTowerParams, preprocessor: TowerPreprocessor,
                 rng: np.random.Generator, callbacks: list[Any]) -> dict[str, list[float]]:  # fmt: skip
    """Sampled-softmax training of both towers (see the module docstring); returns ``{"loss": [per epoch]}``."""
    import keras
    import tensorflow as tf

    users, items = model.get_layer("user_tower"), model.get_layer("item_tower")
    n_items = int(ix.shape[0])
    hist_cols = tf.constant(preprocessor.user_history_columns()[None, :] if preprocessor.user_dim == ux.shape[1]
                            else np.zeros((1, ux.shape[1]), bool))  # fmt: skip
    stat_cols = tf.constant(preprocessor.item_stats_columns()[None, :] if preprocessor.item_dim == ix.shape[1]
                            else np.zeros((1, ix.shape[1]), bool))  # fmt: skip
    cold_u = tf.constant(preprocessor.cold_user()[None, :] if preprocessor.user_dim == ux.shape[1]
                         else np.zeros((1, ux.shape[1]), np.float32))  # fmt: skip
    cold_i = tf.constant(preprocessor.cold_item()[None, :] if preprocessor.item_dim == ix.shape[1]
                         else np.zeros((1, ix.shape[1]), np.float32))  # fmt: skip
    log_scale = tf.Variable(np.log(10.0), dtype=tf.float32, name="log_scale")
    variables = users.trainable_variables + items.trainable_variables + [log_scale]
    opt = keras.optimizers.Adam(params.learning_rate)
    def blank(x: tf.Tensor, cols: tf.Tensor, cold: tf.Tensor, seed: tf.Tensor, share: float) -> tf.Tensor:
        drop = tf.random.stateless_uniform((tf.shape(x)[0], 1), seed=seed) < share
        return tf.where(drop & cols, cold, x)

    @tf.function(reduce_retracing=True)
    def step(u: tf.Tensor, i: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        neg = tf.random.stateless_uniform((params.negatives,), seed=seed, maxval=n_items, dtype=tf.int32)
        u_x = blank(tf.gather(ux, u), hist_cols, cold_u, seed + 1, params.cold_dropout)
        pos_x = blank(tf.gather(ix, i), stat_cols, cold_i, seed + 2, params.item_cold_dropout)
        neg_x = blank(tf.gather(ix, neg), stat_cols, cold_i, seed + 3, params.item_cold_dropout)
        with tf.GradientTape() as tape:
            vu, vp, vn = users(u_x, training=True), items(pos_x, training=True), items(neg_x, training=True)
            pos = tf.reduce_sum(vu * vp, axis=1, keepdims=True)
            negs = tf.matmul(vu, vn, transpose_b=True)
            negs = tf.where(tf.equal(i[:, None], neg[None, :]), tf.constant(-1e9), negs)  # accidental hits
            logits = tf.exp(log_scale) * tf.concat([pos, negs], axis=1)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(u), logits))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    for cb in callbacks:
        cb.set_model(model)
    history: dict[str, list[float]] = {"loss": []}
    n_step = 0
    for epoch in range(params.epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        total, n = 0.0, 0
        for u, i, _ in _shuffled_batches(train, params.batch_size, params.shuffle_window, rng):
            seed = tf.constant([params.seed, n_step], dtype=tf.int32)
            total += float(step(tf.constant(u), tf.constant(i), seed)) * len(u)
            n += len(u)
            n_step += 3
        history["loss"].append(total / max(n, 1))
        logger.info("two-tower (softmax) epoch %d: loss %.4f, scale %.2f", epoch + 1, history["loss"][-1],
                    float(tf.exp(log_scale)))  # fmt: skip
        for cb in callbacks:
            cb.on_epoch_end(epoch, {"loss": history["loss"][-1]})
    history["scale"] = [float(tf.exp(log_scale))]
    return history
