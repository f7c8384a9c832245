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
  cross-entropy of ``softmax([l(u, pos), l(u, neg_1), ...])`` over the logits
  ``l(u, m) = s * v_u . v_m + b_m`` with a learnt scale ``s`` and, with
  ``item_bias``, an item bias ``b_m`` (an accidental hit, a negative equal to the
  positive, is masked). With ``popularity_prior`` (the default) the bias of an item
  with training ratings is fixed at ``log(1 + count)``, the maximum-likelihood logit
  of the no-information softmax, so a user the towers know nothing about is ranked
  exactly by popularity and the unit vectors carry taste on top of it; items
  without ratings get ``w . x_m + c``, linear in their features, which learns to
  predict that log-popularity from content through the bias-only softmax (on the
  items cold dropout blanks). Without the prior, ``b_m = w . x_m + c`` for every
  item, learnt with the towers (``bench/cold_start.py`` measures each; figures in
  ``bench/README.md``).
  This learns which items a user chooses (popular ones included), what ranking
  needs; the rating losses learn how much a user likes what they chose, and rank
  far worse. ``cold_dropout`` replaces, for that share of the training pairs, the
  user's rating-history features by those of a user without ratings (and blanks
  a further ``demographic_dropout`` share of their demographic inputs, so that
  rare combinations are not memorised), and the item's rating statistics by those
  of an unrated item, so that the towers learn to place cold users and items from
  side data alone (they never see such inputs otherwise). With a validation set,
  each epoch ends with the full softmax cross-entropy over the whole catalogue of
  the held-out pairs of known users (``val_warm_loss``) and of the pairs of
  *validation users*, users held out of training entirely (``cold_validation``,
  :func:`validation_chunks`), scored from their side data with their rating
  history blanked (``val_cold_loss``, the cold-start case; without them, the
  held-out pairs' users stand in, whose side data the towers could memorise);
  early stopping watches their mix ``val_loss = (1 - cold_dropout) * warm +
  cold_dropout * cold``, the training objective's own mix. Trained for the
  cross-entropy, the taste term is too sharp for a user known by side data only:
  their top 10 is better with a smaller scale. ``calibrate_cold`` therefore picks
  a cold temperature ``t`` (:data:`COLD_TEMPERATURES`) by the NDCG@10 of the
  validation users, and the logits of users without rating history are
  ``t * s * v_u . v_m + b_m``.

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
from recsys.models.artifacts import FromDict, read_params, write_params
from recsys.models.bounds import BelowOne, Count, NonNegativeInt, OpenShare, Positive, Share
from recsys.models.registry import ModelSpec, TrainingInputs

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
        min_improvement: Relative fall of the validation loss that counts as improvement for
            ``patience`` (``softmax``: an epoch within this share of the loss of the last improving
            one does not reset the count; the best epoch is still the one kept). 0: any fall counts.
        shuffle_window: Rows shuffled together while streaming.
        negatives: Uniformly drawn negative items per batch (``softmax``).
        cold_dropout: Share of training pairs whose user's rating history is blanked (``softmax``).
        item_bias: Add a learnt item bias, linear in the item features, to the logits (``softmax``).
        item_cold_dropout: Share of training (and negative) items whose rating statistics are blanked (``softmax``).
        popularity_prior: With ``item_bias``: the bias of an item with training ratings is fixed at
            ``log(1 + count)``, and the feature-linear bias (for items without ratings) is trained by the
            bias-only softmax, so the towers learn taste on top of popularity (``softmax``).
        demographic_dropout: Share of the demographic inputs also blanked in the rows that cold dropout
            blanks, so that new users are placed from coarse side data rather than memorised (``softmax``).
        calibrate_cold: Choose the cold temperature (see :class:`TwoTowerModel`) on the validation pairs
            scored as new users (``softmax`` with a validation set; else 1).
        rating_min: Lower end of the rating scale.
        rating_max: Upper end of the rating scale.
        seed: Seed of initialisation and shuffling.
        validation_fraction: Share of the training pairs held out for early stopping (a seeded hash).
        cold_validation_fraction: Share of the users held out of training entirely and scored as new
            users (``softmax``: the cold part of early stopping and the cold temperature; 0: none).
    """

    layers: tuple[int, ...] = (256, 128, 32)
    loss: Literal["mse", "logistic", "softmax"] = "softmax"
    learning_rate: Positive = 0.001
    batch_size: Count = 1024
    epochs: Count = 20
    patience: NonNegativeInt = 3
    min_improvement: Share = 0.001
    shuffle_window: Count = 262_144
    negatives: Count = 512
    cold_dropout: Share = 0.3
    item_bias: bool = True
    item_cold_dropout: Share = 0.1
    popularity_prior: bool = True
    demographic_dropout: Share = 0.8
    calibrate_cold: bool = True
    rating_min: float = 1.0
    rating_max: float = 5.0
    seed: int = 42
    validation_fraction: OpenShare = 0.1
    cold_validation_fraction: BelowOne = 0.1

    @property
    def mid(self) -> float:
        """Centre of the rating scale."""
        return (self.rating_min + self.rating_max) / 2.0

    @property
    def half(self) -> float:
        """Half the width of the rating scale."""
        return max((self.rating_max - self.rating_min) / 2.0, 1e-9)


def parquet_chunks(
    path: Path | str, *, label: str = "rating", where_split: str | None = "train", batch_rows: int = 65_536
) -> Chunks:
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
                yield (
                    b.column(0).to_numpy().astype(np.int32),
                    b.column(1).to_numpy().astype(np.int32),
                    b.column(2).to_numpy().astype(np.float32),
                )

    return chunks


def array_chunks(user_idx: np.ndarray, item_idx: np.ndarray, label: np.ndarray, *, rows: int = 65_536) -> Chunks:
    """:data:`Chunks` over in-memory arrays (tests, benchmarks)."""

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for s in range(0, len(label), rows):
            yield (
                np.asarray(user_idx[s : s + rows], np.int32),
                np.asarray(item_idx[s : s + rows], np.int32),
                np.asarray(label[s : s + rows], np.float32),
            )

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


def holdout_chunks(
    chunks: Chunks, *, fraction: float, seed: int, by: Literal["pair", "user"] = "pair"
) -> tuple[Chunks, tuple[np.ndarray, ...]]:
    """Split a stream into training chunks and in-memory validation arrays, by a seeded hash.

    Args:
        chunks: The full stream.
        fraction: Share of pairs (``by="pair"``) or of users (``by="user"``: all of a user's pairs) held out
            (about; it is a hash, not a count).
        seed: Seed of the hash.
        by: Hash each pair, or each user (users held out entirely: validation users the model never saw, what
            the cold-start path is judged on).

    Returns:
        ``(training chunks without the held-out pairs, (user_idx, item_idx, label) held out)``.
    """

    def held_out(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return _held_out(u, i if by == "pair" else np.zeros_like(u), fraction, seed)

    parts = []
    for u, i, y in chunks():
        h = held_out(u, i)
        parts.append((u[h], i[h], y[h]))
    held = tuple(np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in range(3))

    def train() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for u, i, y in chunks():
            keep = ~held_out(u, i)
            yield u[keep], i[keep], y[keep]

    return train, held


def validation_chunks(
    chunks: Chunks, *, fraction: float, user_fraction: float = 0.0, seed: int
) -> tuple[Chunks, tuple[np.ndarray, ...], tuple[np.ndarray, ...] | None]:
    """The hold-outs :func:`fit_two_tower` validates on, carved from a stream by seeded hashes.

    Args:
        chunks: The training pairs.
        fraction: Share of the (remaining) pairs held out (``validation``: early stopping).
        user_fraction: Share of the users held out entirely (``cold_validation``; 0: none).
        seed: Seed of the hashes.

    Returns:
        ``(training chunks, validation (user_idx, item_idx, label), cold_validation or None)``.
    """
    cold = None
    if user_fraction > 0:
        chunks, cold = holdout_chunks(chunks, fraction=user_fraction, seed=seed + 1, by="user")
    chunks, validation = holdout_chunks(chunks, fraction=fraction, seed=seed)
    return chunks, validation, cold


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
    """The Keras model ``(user_features [b, d_u], item_features [b, d_i]) -> [b, 1]``.

    Its towers are named ``user_tower`` and ``item_tower``.
    """
    import keras

    users = _tower(keras, user_dim, params.layers, "user_tower")
    items = _tower(keras, item_dim, params.layers, "item_tower")
    u_in = keras.Input((user_dim,), name="user_features")
    i_in = keras.Input((item_dim,), name="item_features")
    out = keras.layers.Dot(axes=1, name="dot")([users(u_in), items(i_in)])
    if params.loss == "logistic":
        out = keras.layers.Dense(1, activation="sigmoid", name="head")(out)
    if params.loss == "softmax":  # the logit s * v_u . v_m (+ b_m)
        out = keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(10.0), name="scale")(
            out
        )
        if params.item_bias:
            b_in = keras.Input((item_dim,), name="bias_features")
            bias = keras.Model(
                b_in, keras.layers.Dense(1, kernel_initializer="zeros", name="item_bias_out")(b_in), name="item_bias"
            )
            out = keras.layers.Add(name="logit")([out, bias(i_in)])
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
        item_bias: ``[n_items]`` learnt item biases ``b_m`` (``softmax`` with ``item_bias``; else None).
        scale: The learnt scale ``s`` of the ``softmax`` logits (1 otherwise).
        user_temperature: ``[n_users]`` factor ``t_u`` of the scale (``softmax``; None: 1 for everyone):
            the cold temperature ``history["cold_temperature"]`` for users without rating history, 1 otherwise.
    """

    model: Any
    preprocessor: TowerPreprocessor
    user_emb: np.ndarray
    item_emb: np.ndarray
    params: TwoTowerParams
    history: dict[str, list[float]] = field(default_factory=dict)
    item_bias: np.ndarray | None = None
    scale: float = 1.0
    user_temperature: np.ndarray | None = None

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
        if self.model is None:
            raise RuntimeError(
                "this two-tower model was loaded without its towers (load(..., towers=False)); "
                "it scores the users and items it stores but cannot embed new features"
            )
        return self.model.get_layer(name)

    def embed_users(self, user_x: np.ndarray) -> np.ndarray:
        """``[n, k]`` embeddings of user vectors ``[n, d_u]`` (e.g. new users, from side data)."""
        return np.asarray(self._tower("user_tower").predict(np.asarray(user_x, np.float32), batch_size=8192, verbose=0))

    def embed_items(self, item_x: np.ndarray) -> np.ndarray:
        """``[n, k]`` embeddings of item vectors ``[n, d_i]``."""
        return np.asarray(self._tower("item_tower").predict(np.asarray(item_x, np.float32), batch_size=8192, verbose=0))

    def bias_items(self, item_x: np.ndarray) -> np.ndarray | None:
        """``[n]`` feature-linear item biases ``w . x_m + c`` of item vectors ``[n, d_i]`` (None without an item
        bias): what an item without training ratings gets (those with ratings: ``log(1 + count)`` with
        ``popularity_prior``)."""
        if not (self.params.loss == "softmax" and self.params.item_bias):
            return None
        x = np.asarray(item_x, np.float32)
        return (
            np.asarray(self._tower("item_bias").predict(x, batch_size=8192, verbose=0)).reshape(-1).astype(np.float32)
        )

    def temperatures(self, user_x: np.ndarray) -> np.ndarray | None:
        """``[n]`` factors ``t_u`` of user vectors ``[n, d_u]``: the cold temperature for those without rating
        history (their history inputs are a new user's), 1 for the others (None: not ``softmax``)."""
        if self.params.loss != "softmax":
            return None
        x = np.asarray(user_x, np.float32)
        t = float(self.history.get("cold_temperature", [1.0])[-1])
        if self.preprocessor.user_dim != x.shape[1] or t == 1.0:
            return np.ones(x.shape[0], np.float32)
        hist = self.preprocessor.user_history_columns()
        cold = np.all(np.isclose(x[:, hist], self.preprocessor.cold_user()[hist][None, :]), axis=1)
        return np.where(cold, t, 1.0).astype(np.float32)

    def _logits(self, dot: np.ndarray, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """``s * t_u * dot + b_m`` for ``softmax`` (``item_idx`` None: ``dot`` is ``[n, n_items]``); else ``dot``."""
        if self.params.loss != "softmax":
            return dot
        factor: Any = self.scale
        if self.user_temperature is not None:
            t = self.scale * _rows(self.user_temperature.astype(np.float64), user_idx, fill=1.0)
            factor = t if item_idx is not None else t[:, None]
        out = factor * dot
        if self.item_bias is not None:
            bias = self.item_bias.astype(np.float64)
            low = float(bias.min()) if bias.size else 0.0  # an unknown item: the least popular item's bias
            out = out + (bias[None, :] if item_idx is None else _rows(bias, item_idx, fill=low))
        return out

    def _head(self) -> tuple[float, float]:
        w, b = self.model.get_layer("head").get_weights()
        return float(w.reshape(-1)[0]), float(b.reshape(-1)[0])

    def _output(self, dot: np.ndarray) -> np.ndarray:
        if self.params.loss == "softmax":
            return dot  # already the logit (score)
        if self.params.loss == "logistic":
            a, b = self._head()
            return 1.0 / (1.0 + np.exp(-(a * dot + b)))
        return self.params.mid + self.params.half * dot

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` ranking scores of pairs: the logit ``s * v_u . v_m + b_m`` (``softmax``), else ``v_u . v_m``
        (monotone in the prediction, without clipping ties)."""
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        dot = np.einsum(
            "nk,nk->n", _rows(self.user_emb, u).astype(np.float64), _rows(self.item_emb, i).astype(np.float64)
        )
        return self._logits(dot, u, i)

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` predicted ratings (clipped) or probabilities of pairs (unknown users and items: zero embeddings)."""
        out = self._output(self.score(user_idx, item_idx))
        return np.clip(out, self.params.rating_min, self.params.rating_max) if self.predicts_ratings else out

    def retrieval_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users [n_users, k + 1], items [n_items, k + 1])`` float32 vectors whose inner product is
        :meth:`score`: ``[s t_u v_u, 1] . [v_m, b_m]`` (``softmax``; else ``[v_u, 0] . [v_m, 0]``)."""
        u = self.user_emb.astype(np.float64)
        bias = np.zeros(self.n_items)
        if self.params.loss == "softmax":
            t = self.scale * (self.user_temperature.astype(np.float64) if self.user_temperature is not None else 1.0)
            u = u * np.broadcast_to(np.asarray(t, dtype=np.float64), (u.shape[0],))[:, None]
            if self.item_bias is not None:
                bias = self.item_bias.astype(np.float64)
        ones = np.ones((u.shape[0], 1)) if self.params.loss == "softmax" else np.zeros((u.shape[0], 1))
        users = np.hstack([u, ones]).astype(np.float32)
        return users, np.hstack([self.item_emb.astype(np.float64), bias.reshape(-1, 1)]).astype(np.float32)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` ranking scores (:meth:`score` for every item)."""
        u = np.asarray(user_idx, dtype=np.int64)
        return self._logits(_rows(self.user_emb, u).astype(np.float64) @ self.item_emb.T.astype(np.float64), u)

    def save(self, path: Path) -> Path:
        """Write ``two_tower.keras``, ``preprocessing.json``, ``user_embeddings.parquet``,
        ``item_embeddings.parquet`` (with the item bias as column ``bias`` when there is one) and
        ``params.json`` (the scale in ``history["scale"]``) into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "two_tower.keras")
        (path / "preprocessing.json").write_text(self.preprocessor.to_json())
        users = embeddings_frame(self.user_emb, "user_idx")
        if self.user_temperature is not None:
            users["temperature"] = self.user_temperature.astype(np.float32)
        users.to_parquet(path / "user_embeddings.parquet", index=False)
        items = embeddings_frame(self.item_emb, "item_idx")
        if self.item_bias is not None:
            items["bias"] = self.item_bias.astype(np.float32)
        items.to_parquet(path / "item_embeddings.parquet", index=False)
        write_params(path, self.params, {**self.history, "scale": [self.scale]})
        return path

    @classmethod
    def load(cls, path: Path, *, towers: bool = True) -> TwoTowerModel:
        """Read a model written by :meth:`save` (embeddings from their tables).

        Args:
            path: The model folder.
            towers: Also load the Keras model (TensorFlow), which :meth:`embed_users`/:meth:`embed_items`
                need; scoring the stored users and items (:meth:`score`, :meth:`score_users`) does not.
        """
        path = Path(path)
        meta = read_params(path)
        model = None
        if towers:
            import keras

            model = keras.models.load_model(path / "two_tower.keras")
        pre = TowerPreprocessor.from_json((path / "preprocessing.json").read_text())
        users = pd.read_parquet(path / "user_embeddings.parquet").sort_values("user_idx")
        temperature = users["temperature"].to_numpy(np.float32) if "temperature" in users.columns else None
        items = pd.read_parquet(path / "item_embeddings.parquet").sort_values("item_idx")
        bias = items["bias"].to_numpy(np.float32) if "bias" in items.columns else None
        history = meta.get("history", {})
        return cls(
            model,
            pre,
            _embeddings(users, "user_idx"),
            _embeddings(items, "item_idx"),
            TwoTowerParams.from_dict(meta["params"]),
            history,
            bias,
            float(history.get("scale", [1.0])[-1]),
            temperature,
        )


def _rows(table: np.ndarray, idx: np.ndarray, *, fill: float = 0.0) -> np.ndarray:
    """``table[idx]`` with ``fill`` in the rows of indices outside the table (unknown users or items).

    An unknown user or item has no embedding: a zero vector, so its dot products are 0 and
    its score is the item bias alone (for a user: popularity) or the lowest bias (for an item).
    """
    idx = np.asarray(idx, dtype=np.int64)
    known = (idx >= 0) & (idx < table.shape[0])
    if known.all():
        return table[idx]
    out = np.full((idx.size, *table.shape[1:]), fill, dtype=table.dtype)
    out[known] = table[idx[known]]
    return out


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
    cold_validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
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
        cold_validation: Optional ``(user_idx, item_idx, label)`` of users held out of ``train`` entirely
            (:func:`holdout_chunks` ``by="user"``), ``softmax`` only: scored as new users, they give the
            cold part of the validation loss and choose the cold temperature (without them, the
            ``validation`` pairs' users with their history blanked stand in, users the towers have seen).
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
    data = (
        tf.data.Dataset.from_generator(
            lambda: _shuffled_batches(train, params.batch_size, params.shuffle_window, rng), output_signature=spec
        )
        .map(features)
        .prefetch(2)
    )
    val = None
    if validation is not None and len(validation[0]):
        vu, vi, vy = (np.asarray(a) for a in validation)
        val = tf.data.Dataset.from_tensor_slices((vu.astype(np.int32), vi.astype(np.int32), vy.astype(np.float32)))
        val = val.batch(8192).map(features)

    model = build_model(ux.shape[1], ix.shape[1], params)
    if params.loss == "softmax":
        held = None if validation is None or not len(validation[0]) else validation
        cold = None if cold_validation is None or not len(cold_validation[0]) else cold_validation
        history, prior = _fit_softmax(
            model, train, ux, ix, params, preprocessor, rng, list(extra_callbacks or []), held, cold
        )
        out = TwoTowerModel(
            model,
            preprocessor,
            np.zeros((0, params.layers[-1]), np.float32),
            np.zeros((0, params.layers[-1]), np.float32),
            params,
            history,
            scale=history["scale"][-1],
        )
        out.user_emb, out.item_emb = out.embed_users(user_x), out.embed_items(item_x)
        out.item_bias = _with_prior(out.bias_items(item_x), prior)
        out.user_temperature = out.temperatures(user_x)
        logger.info(
            "two-tower (softmax) fitted: %d users x %d items, layers %s, %d epochs in %.1fs",
            out.n_users,
            out.n_items,
            params.layers,
            len(history["loss"]),
            time.monotonic() - start,
        )
        return out
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="mse" if mse else "binary_crossentropy")
    callbacks: list[Any] = [
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: logger.info(
                "two-tower epoch %d: %s", e + 1, {k: round(float(v), 5) for k, v in (logs or {}).items()}
            )
        )
    ]
    callbacks += list(extra_callbacks or [])
    if val is not None and params.patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=params.patience, restore_best_weights=True)
        )
    fitted = model.fit(
        data,
        validation_data=val,
        epochs=params.epochs,
        callbacks=callbacks,
        shuffle=False,
        verbose=1 if progress else 0,
    )
    history = {k: [float(x) for x in v] for k, v in fitted.history.items()}
    if mse and "val_loss" in history:
        history["val_rmse"] = [float(np.sqrt(v) * half) for v in history["val_loss"]]
    if val is not None and params.patience > 0 and "val_loss" in history:
        history["best_epoch"] = [float(int(np.argmin(history["val_loss"])) + 1)]
    out = TwoTowerModel(
        model,
        preprocessor,
        np.zeros((0, params.layers[-1]), np.float32),
        np.zeros((0, params.layers[-1]), np.float32),
        params,
        history,
    )
    out.user_emb, out.item_emb = out.embed_users(user_x), out.embed_items(item_x)
    logger.info(
        "two-tower fitted: %d users x %d items, layers %s, %d epochs in %.1fs",
        out.n_users,
        out.n_items,
        params.layers,
        len(history.get("loss", [])),
        time.monotonic() - start,
    )
    return out


_VALIDATION_PAIRS = 20_000
"""At most this many held-out pairs (a seeded sample) score the softmax variant's validation loss."""


def _full_softmax_loss(vu: np.ndarray, vi: np.ndarray, bias: np.ndarray, item_idx: np.ndarray, scale: float) -> float:
    """Mean cross-entropy of ``softmax(scale * vu @ vi.T + bias)`` at ``item_idx``.

    Args:
        vu: ``[n, k]`` user embeddings of the pairs.
        vi: ``[n_items, k]`` item embeddings.
        bias: ``[n_items]`` item biases (zeros without).
        item_idx: ``[n]`` the chosen items.
        scale: The logits' scale.
    """
    total = 0.0
    vi_t = np.ascontiguousarray(vi.T, dtype=np.float32)
    b = np.asarray(bias, np.float32)[None, :]
    for s in range(0, len(item_idx), 2048):  # float32 (a monitoring figure; 2x faster than float64)
        logits = np.float32(scale) * (np.asarray(vu[s : s + 2048], np.float32) @ vi_t) + b
        top = logits.max(axis=1, keepdims=True)
        np.subtract(logits, top, out=logits)
        lse = np.log(np.exp(logits).sum(axis=1, dtype=np.float64))
        total += float((lse - logits[np.arange(len(logits)), item_idx[s : s + 2048]]).sum())
    return total / max(len(item_idx), 1)


def _with_prior(feature_bias: np.ndarray | None, prior: np.ndarray | None) -> np.ndarray | None:
    """``[n_items]`` item biases: the prior ``log(1 + count)`` where an item has one (not NaN), else the feature one."""
    if feature_bias is None or prior is None:
        return feature_bias
    return np.where(np.isnan(prior), feature_bias, prior).astype(np.float32)


def _fit_softmax(
    model: Any,
    train: Chunks,
    ux: Any,
    ix: Any,
    params: TwoTowerParams,
    preprocessor: TowerPreprocessor,
    rng: np.random.Generator,
    callbacks: list[Any],
    validation: tuple[np.ndarray, ...] | None = None,
    cold_validation: tuple[np.ndarray, ...] | None = None,
) -> tuple[dict[str, list[float]], np.ndarray | None]:
    """Sampled-softmax training of both towers (see the module docstring).

    ``validation`` pairs give the warm validation loss; the cold one (and the cold temperature) come from
    ``cold_validation``, users held out entirely, scored from their side data, or without it from the
    ``validation`` pairs' users with their history blanked.

    Returns:
        ``(history, prior)``: ``history`` is ``{"loss": [per epoch], "scale": [final], "cold_temperature":
        [t]}``, with a validation set also ``val_loss``, ``val_warm_loss``, ``val_cold_loss`` per epoch,
        ``best_epoch`` (whose weights are kept) and ``cold_ndcg`` (validation NDCG@10 per temperature of
        :data:`COLD_TEMPERATURES`); ``prior`` is the ``[n_items]`` fixed bias ``log(1 + count)`` (NaN for
        items without training ratings), or None without ``popularity_prior``.
    """
    import keras
    import tensorflow as tf

    users, items = model.get_layer("user_tower"), model.get_layer("item_tower")
    n_items = int(ix.shape[0])
    # Which columns cold dropout blanks, and to what; inputs the preprocessor did not make are never blanked.
    user_ok, item_ok = preprocessor.user_dim == ux.shape[1], preprocessor.item_dim == ix.shape[1]
    hist_np = preprocessor.user_history_columns() if user_ok else np.zeros(ux.shape[1], bool)
    cold_u_np = preprocessor.cold_user() if user_ok else np.zeros(ux.shape[1], np.float32)
    hist_cols, cold_u = tf.constant(hist_np[None, :]), tf.constant(cold_u_np[None, :])
    stat_cols = tf.constant((preprocessor.item_stats_columns() if item_ok else np.zeros(ix.shape[1], bool))[None, :])
    cold_i = tf.constant((preprocessor.cold_item() if item_ok else np.zeros(ix.shape[1], np.float32))[None, :])
    scale = model.get_layer("scale").kernel  # [1, 1]
    item_bias = model.get_layer("item_bias") if params.item_bias else None
    towers = users.trainable_variables + items.trainable_variables
    head = [scale] + (item_bias.trainable_variables if item_bias is not None else [])
    variables = towers + head
    # The scale and the bias are a handful of weights that must travel far (a bias of ~log(count)):
    # at the towers' step size they would still be near their start after an epoch.
    opt, head_opt = keras.optimizers.Adam(params.learning_rate), keras.optimizers.Adam(10 * params.learning_rate)
    prior_np: np.ndarray | None = None
    if item_bias is not None and params.popularity_prior:
        counts = np.zeros(n_items, np.int64)
        for _, i, _ in train():
            counts += np.bincount(np.asarray(i, np.int64), minlength=n_items)[:n_items]
        prior_np = np.where(counts > 0, np.log1p(counts), np.nan).astype(np.float32)
    rated = tf.constant(np.isfinite(prior_np) if prior_np is not None else np.zeros(n_items, bool))
    prior = tf.constant(np.nan_to_num(prior_np) if prior_np is not None else np.zeros(n_items, np.float32))

    def dropped(n: tf.Tensor, seed: tf.Tensor, share: float) -> tf.Tensor:  # [n, 1] bool
        return tf.random.stateless_uniform((n, 1), seed=seed) < share

    def blank(x: tf.Tensor, cols: tf.Tensor, cold: tf.Tensor, drop: tf.Tensor) -> tf.Tensor:
        return tf.where(drop & cols, cold, x)

    def bias(idx: tf.Tensor, x: tf.Tensor, drop: tf.Tensor) -> tf.Tensor:  # [n, 1]
        b = item_bias(x, training=True)
        if prior_np is None:
            return b
        return tf.where(~drop & tf.gather(rated, idx)[:, None], tf.gather(prior, idx)[:, None], b)

    @tf.function(reduce_retracing=True)
    def step(u: tf.Tensor, i: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        neg = tf.random.stateless_uniform((params.negatives,), seed=seed, maxval=n_items, dtype=tf.int32)
        u_x = tf.gather(ux, u)
        cold_rows = dropped(tf.shape(u)[0], seed + 1, params.cold_dropout)
        if params.demographic_dropout > 0:  # new users' side data, thinned: [b, d_u]
            cells = tf.random.stateless_uniform(tf.shape(u_x), seed=seed + 4) < params.demographic_dropout
            u_x = tf.where(cold_rows & cells & ~hist_cols, tf.zeros_like(u_x), u_x)
        u_x = blank(u_x, hist_cols, cold_u, cold_rows)
        pos_drop = dropped(tf.shape(i)[0], seed + 2, params.item_cold_dropout)
        neg_drop = dropped(tf.shape(neg)[0], seed + 3, params.item_cold_dropout)
        pos_x = blank(tf.gather(ix, i), stat_cols, cold_i, pos_drop)
        neg_x = blank(tf.gather(ix, neg), stat_cols, cold_i, neg_drop)
        hit = tf.equal(i[:, None], neg[None, :])  # accidental hits, masked
        labels = tf.zeros_like(u)
        with tf.GradientTape() as tape:
            vu, vp, vn = users(u_x, training=True), items(pos_x, training=True), items(neg_x, training=True)
            pos = scale[0, 0] * tf.reduce_sum(vu * vp, axis=1, keepdims=True)  # [b, 1]
            negs = scale[0, 0] * tf.matmul(vu, vn, transpose_b=True)  # [b, negatives]
            prior_loss = 0.0
            if item_bias is not None:
                pos_b, neg_b = bias(i, pos_x, pos_drop), tf.transpose(bias(neg, neg_x, neg_drop))  # [b, 1], [1, n]
                if prior_np is not None:  # the bias alone, the no-information model, learns from its own softmax
                    alone = tf.concat([pos_b, tf.where(hit, -1e9, tf.broadcast_to(neg_b, tf.shape(negs)))], axis=1)
                    prior_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, alone))
                    pos_b, neg_b = tf.stop_gradient(pos_b), tf.stop_gradient(neg_b)
                pos, negs = pos + pos_b, negs + neg_b
            logits = tf.concat([pos, tf.where(hit, tf.constant(-1e9), negs)], axis=1)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            objective = loss + prior_loss
        grads = tape.gradient(objective, variables)
        opt.apply_gradients(zip(grads[: len(towers)], towers, strict=True))
        head_opt.apply_gradients(zip(grads[len(towers) :], head, strict=True))
        return loss

    def sample(pairs: tuple[np.ndarray, ...] | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        if pairs is None:
            return None, None
        u, i = np.asarray(pairs[0], np.int64), np.asarray(pairs[1], np.int64)
        if len(u) > _VALIDATION_PAIRS:
            pick = np.sort(np.random.default_rng(params.seed).choice(len(u), _VALIDATION_PAIRS, replace=False))
            u, i = u[pick], i[pick]
        return u, i

    val_u, val_i = sample(validation)
    cold_val_u, cold_val_i = sample(cold_validation) if cold_validation is not None else (val_u, val_i)
    item_x_np, user_x_np = ix.numpy(), ux.numpy()

    def item_side() -> tuple[np.ndarray, np.ndarray]:  # [n_items, k] embeddings, [n_items] biases
        vi = np.asarray(items(item_x_np, training=False))
        b = (
            np.asarray(item_bias(item_x_np, training=False)).reshape(-1)
            if item_bias is not None
            else np.zeros(vi.shape[0], np.float32)
        )
        return vi, _with_prior(b, prior_np)

    def blanked(x: np.ndarray) -> np.ndarray:
        return preprocessor.as_new_users(x) if user_ok else np.asarray(x, np.float32)

    cold_scored = cold_val_u is not None and (cold_validation is not None or bool(hist_np.any()))

    def validate() -> tuple[float, float]:  # (warm, cold) full-softmax losses; one stands in for the other if absent
        vi, b = item_side()

        def loss(x: np.ndarray, item_idx: np.ndarray) -> float:
            return _full_softmax_loss(np.asarray(users(x, training=False)), vi, b, item_idx, float(scale[0, 0]))

        warm = loss(user_x_np[val_u], val_i) if val_u is not None else None
        cold = loss(blanked(user_x_np[cold_val_u]), cold_val_i) if cold_scored else warm
        return (cold if warm is None else warm), cold  # type: ignore[return-value]

    for cb in callbacks:
        cb.set_model(model)
    history: dict[str, list[float]] = {"loss": []}
    best: tuple[float, int, list[Any]] | None = None
    progress: tuple[float, int] | None = None  # (loss, epoch) of the last epoch that improved by min_improvement
    n_step = 0
    for epoch in range(params.epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        total, n = 0.0, 0
        for u, i, _ in _shuffled_batches(train, params.batch_size, params.shuffle_window, rng):
            seed = tf.constant([params.seed, n_step], dtype=tf.int32)
            total += float(step(tf.constant(u), tf.constant(i), seed)) * len(u)
            n += len(u)
            n_step += 5
        history["loss"].append(total / max(n, 1))
        logs = {"loss": history["loss"][-1]}
        if val_u is not None or cold_val_u is not None:
            warm, cold = validate()
            logs.update(
                val_warm_loss=warm,
                val_cold_loss=cold,
                val_loss=(1.0 - params.cold_dropout) * warm + params.cold_dropout * cold,
            )
            for key in ("val_loss", "val_warm_loss", "val_cold_loss"):
                history.setdefault(key, []).append(logs[key])
            if best is None or logs["val_loss"] < best[0]:
                best = (logs["val_loss"], epoch, [v.numpy() for v in variables])
            if progress is None or logs["val_loss"] < progress[0] * (1.0 - params.min_improvement):
                progress = (logs["val_loss"], epoch)
        logger.info(
            "two-tower (softmax) epoch %d: %s, scale %.2f",
            epoch + 1,
            ", ".join(f"{k} {v:.4f}" for k, v in logs.items()),
            float(scale[0, 0]),
        )
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if progress is not None and best is not None and params.patience > 0 and epoch - progress[1] >= params.patience:
            logger.info(
                "two-tower (softmax): validation loss fell by less than %g for %d epochs; keeping epoch %d",
                params.min_improvement,
                params.patience,
                best[1] + 1,
            )
            break
    if best is not None and params.patience > 0:
        for var, value in zip(variables, best[2], strict=True):
            var.assign(value)
        history["best_epoch"] = [float(best[1] + 1)]
    history["scale"] = [float(scale[0, 0])]
    history["cold_temperature"] = [1.0]
    if params.calibrate_cold and cold_scored:
        vi, b = item_side()
        ndcg = _cold_ndcg(
            lambda x: np.asarray(users(blanked(x), training=False)),
            user_x_np,
            vi,
            b,
            float(scale[0, 0]),
            train,
            (cold_val_u, cold_val_i),
            seed=params.seed,
        )
        history["cold_ndcg"] = ndcg
        history["cold_temperature"] = [COLD_TEMPERATURES[int(np.argmax(ndcg))]]
        logger.info(
            "two-tower (softmax): cold temperature %.2f (validation NDCG@10 of new users %s)",
            history["cold_temperature"][0],
            [round(x, 4) for x in ndcg],
        )
    return history, prior_np


COLD_TEMPERATURES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Factors of the logits' scale tried for users without rating history (0: the item bias alone)."""

_CALIBRATION_USERS = 2000
"""At most this many validation users (a seeded sample) choose the cold temperature."""


def _cold_ndcg(
    embed_cold: Callable[[np.ndarray], np.ndarray],
    user_x: np.ndarray,
    vi: np.ndarray,
    bias: np.ndarray,
    scale: float,
    train: Chunks,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    seed: int,
    k: int = 10,
) -> list[float]:
    """Validation NDCG@k of the held-out pairs' users scored as new users, per factor of :data:`COLD_TEMPERATURES`.

    Each user (at most :data:`_CALIBRATION_USERS`, a seeded sample) ranks every item but their
    training items by ``t * scale * v_u . v_m + b_m``, ``v_u`` from their side data alone; their
    held-out items are relevant: the metric cold-start users are served for. They are best users
    held out of training entirely (``cold_validation`` of :func:`fit_two_tower`); training users
    with their history blanked flatter side data the towers could memorise (e.g. rare
    demographic combinations).

    Args:
        embed_cold: ``[n, d_u] -> [n, k]`` embeddings of user vectors with the history blanked.
        user_x: ``[n_users, d_u]`` user vectors.
        vi: ``[n_items, k]`` item embeddings.
        bias: ``[n_items]`` item biases.
        scale: The logits' scale.
        train: The training pairs (each user's items are excluded from their ranking).
        validation: ``(user_idx [n], item_idx [n])`` held-out pairs.
        seed: Seed of the user sample.
        k: Cut-off.

    Returns:
        ``[len(COLD_TEMPERATURES)]`` mean NDCG@k.
    """
    from recsys.evaluation.metrics import ndcg_per_user, relevant_lists
    from recsys.retrieval.topk import top_k_items

    val_u, val_i = validation
    pick = np.unique(val_u)
    if pick.size > _CALIBRATION_USERS:
        pick = np.sort(np.random.default_rng([seed, 11]).choice(pick, _CALIBRATION_USERS, replace=False))
    seen_u, seen_i = [], []
    for u, i, _ in train():
        keep = np.isin(u, pick)
        seen_u.append(np.asarray(u)[keep])
        seen_i.append(np.asarray(i)[keep])
    su, si = np.concatenate(seen_u), np.concatenate(seen_i)
    seen = relevant_lists(np.searchsorted(pick, su), si.astype(np.int64), pick.size)  # rows of the sorted sample
    keep = np.isin(val_u, pick)
    relevant = relevant_lists(np.searchsorted(pick, val_u[keep]), val_i[keep], pick.size)
    dot = embed_cold(user_x[pick]).astype(np.float64) @ vi.T.astype(np.float64)  # [n, n_items]
    out = []
    for t in COLD_TEMPERATURES:
        lists = top_k_items(t * scale * dot + bias.astype(np.float64)[None, :], k, exclude=seen)
        out.append(float(np.nanmean(ndcg_per_user(lists, relevant, k=k, n_items=vi.shape[0]))))
    return out


def _fit_inputs(inputs: TrainingInputs, params: TwoTowerParams, progress: bool = False) -> TwoTowerModel:
    """:func:`fit_two_tower` on the training ratings and ``inputs.towers``' side data: the one recipe.

    The pairs come from ``inputs.chunks`` (a Parquet stream in the nightly run) or the arrays.
    Holds out ``params.validation_fraction`` of the pairs and, for ``softmax``,
    ``params.cold_validation_fraction`` of the users (:func:`validation_chunks`). With
    ``inputs.segments``, the served blend's segment-popularity weight is chosen on the held-out
    users (:func:`recsys.models.cold_start.choose_segment_weight`; ``history["segment_weight"]``).
    ``history`` also records ``n_fit`` (pairs trained on per epoch) and ``cold_validation_users``.

    Raises:
        ValueError: When the inputs carry no tower features.
    """
    if inputs.towers is None:
        raise ValueError("the two-tower model needs side data: TrainingInputs.towers is None")
    pre, user_x, item_x = inputs.towers()
    stream = inputs.chunks or array_chunks(inputs.user_idx, inputs.item_idx, np.asarray(inputs.rating, np.float32))
    if inputs.holdout is not None:  # the caller's hold-outs
        chunks, (validation, cold) = stream, inputs.holdout
    else:
        users_out = params.cold_validation_fraction if params.loss == "softmax" else 0.0
        chunks, validation, cold = validation_chunks(
            stream, fraction=params.validation_fraction, user_fraction=users_out, seed=params.seed
        )
    model = fit_two_tower(
        user_x, item_x, chunks, params, pre, validation=validation, cold_validation=cold, progress=progress
    )
    if cold is not None and inputs.segments is not None:
        from recsys.models.cold_start import choose_segment_weight

        pairs = [(u, i) for u, i, _ in chunks()]  # the training pairs: the validation users' are not among them
        fit_u = np.concatenate([u for u, _ in pairs]) if pairs else np.zeros(0, np.int64)
        fit_i = np.concatenate([i for _, i in pairs]) if pairs else np.zeros(0, np.int64)
        weight, ndcg = choose_segment_weight(model, inputs.segments(fit_u, fit_i), user_x, cold, seed=inputs.seed)
        model.history["segment_weight"], model.history["segment_ndcg"] = [weight], ndcg
        logger.info(
            "cold start: segment popularity weight %.1f (validation users' NDCG@10 %s)",
            weight,
            [round(x, 4) for x in ndcg],
        )
    n_held = 0 if inputs.holdout is not None else len(validation[0]) + (len(cold[0]) if cold is not None else 0)
    model.history["n_fit"] = [float(len(inputs.user_idx) - n_held)]
    model.history["cold_validation_users"] = [float(np.unique(cold[0]).size) if cold is not None else 0.0]
    return model


def _diagnostics(model: TwoTowerModel, inputs: TrainingInputs, evaluate: Any, fit_seconds: float) -> dict[str, float]:
    """Training speed (per epoch, examples per second) and the cold temperature it chose."""
    epochs = max(len(model.history.get("loss", [])), 1)
    n_fit = model.history.get("n_fit", [float(len(inputs.user_idx))])[-1]
    return {
        "two_tower_epoch_seconds": fit_seconds / epochs,
        "two_tower_examples_per_second": n_fit * epochs / max(fit_seconds, 1e-9),
        "two_tower_cold_temperature": float(model.history.get("cold_temperature", [1.0])[-1]),
    }


SPEC = ModelSpec(
    name="two_tower",
    label="two-tower",
    params=TwoTowerParams,
    fit=_fit_inputs,
    loaders={"TwoTowerParams": TwoTowerModel.load},
    role="cold_start",
    own_validation=True,
    diagnostics=_diagnostics,
    chosen_by="cold_start_model",
)
"""The content-based two-tower model: cold-start users and items."""
