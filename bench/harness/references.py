"""Reference recommenders from other libraries, behind one duck-typed interface.

Our collaborative-filtering models are compared with well-known implementations
under the same protocol (same folds, same indices, same metrics). Each adapter
here wraps one library's model and exposes the :class:`Reference` interface:

.. code-block:: python

    class Reference(Protocol):
        name: str
        fit_seconds_: float   # wall time of the library's fit call only
        def fit(self, user_idx, item_idx, rating, n_users, n_items) -> Reference: ...
        def predict(self, user_idx, item_idx) -> np.ndarray: ...   # [n]
        def score_users(self, user_idx) -> np.ndarray: ...         # [len(user_idx), n_items]

Conventions shared by every adapter:

- Indices are dense 0-based ints: ``user_idx`` in ``0..n_users-1`` and
  ``item_idx`` in ``0..n_items-1`` at fit time. The grain of the fit input is one
  row per observed (user, item) pair.
- ``fit_seconds_`` is the wall time (``time.perf_counter``) of the library's own
  fit call only. Building the library's input (a cached and counted Spark
  DataFrame, a SciPy CSR matrix, a Surprise ``Trainset``) happens before the
  timer starts; copying the factors out to NumPy happens after it stops. It is
  ``nan`` before :meth:`fit`.
- After fitting, every adapter holds its factors as NumPy arrays, so
  :meth:`predict` and :meth:`score_users` are plain dot products (scoring all
  943 x 1682 MovieLens 100K pairs takes milliseconds) and no library is called.
- ``predict`` returns raw model outputs: rating predictions for explicit models
  (not clipped to the rating scale: the metrics clip) and preference scores for
  implicit ones. ``score_users`` returns ``[len(user_idx), n_items]`` float64
  scores for ranking, higher is better; it does not remove a user's training
  items (the evaluation protocol does).
- Unknown users and items (no training rows, or an index outside the fitted
  range) always get a finite value, never NaN or inf. Each adapter documents its
  fallback; the common ranking fallbacks are: an unknown user is scored as the
  *average training user* (mean of the known users' factor rows and biases), and
  an unknown item gets, in every row, a score strictly below that row's lowest
  known-item score (it ranks last, without ``-inf``).

Adapters and their libraries (install command when missing):

- :class:`SparkALS`: ``pyspark.ml.recommendation.ALS``, explicit or implicit
  (PySpark is a project dependency).
- :class:`ImplicitALS`: ``implicit.cpu.als.AlternatingLeastSquares``
  (``pip install implicit``).
- :class:`ImplicitBPR`: ``implicit.cpu.bpr.BayesianPersonalizedRanking``
  (``pip install implicit``).
- :class:`SurpriseSVD`: ``surprise.SVD`` (``pip install scikit-surprise``).
- :class:`SurpriseSVDpp`: ``surprise.SVDpp`` (``pip install scikit-surprise``).

The optional libraries are pinned in the ``bench-refs`` extra of
``pyproject.toml`` (``pip install -e '.[bench-refs]'``); :func:`available_references`
tells which adapters can run here. No library is imported when this module is:
each is imported lazily by the adapter that needs it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = [
    "ImplicitALS",
    "ImplicitBPR",
    "Reference",
    "SparkALS",
    "SurpriseSVD",
    "SurpriseSVDpp",
    "available_references",
]

logger = logging.getLogger(__name__)

# Module each adapter needs, and the pip command that brings it.
_REQUIREMENTS: dict[str, tuple[str, str]] = {
    "SparkALS": ("pyspark.ml.recommendation", "pip install 'pyspark==4.2.0'"),
    "ImplicitALS": ("implicit.cpu.als", "pip install -e '.[bench-refs]'  (or: pip install implicit)"),
    "ImplicitBPR": ("implicit.cpu.bpr", "pip install -e '.[bench-refs]'  (or: pip install implicit)"),
    "SurpriseSVD": ("surprise", "pip install -e '.[bench-refs]'  (or: pip install scikit-surprise)"),
    "SurpriseSVDpp": ("surprise", "pip install -e '.[bench-refs]'  (or: pip install scikit-surprise)"),
}


@runtime_checkable
class Reference(Protocol):
    """A reference recommender from another library (see the module docstring)."""

    name: str
    fit_seconds_: float

    def fit(
        self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int
    ) -> Reference:
        """Fit on observed pairs.

        Args:
            user_idx: ``[n_obs]`` int user indices in ``0..n_users-1``.
            item_idx: ``[n_obs]`` int item indices in ``0..n_items-1``.
            rating: ``[n_obs]`` float ratings (explicit) or confidences (implicit).
            n_users: Number of users.
            n_items: Number of items.

        Returns:
            The fitted adapter, with ``fit_seconds_`` set.
        """
        ...

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``[n]`` float64 rating predictions (explicit) or scores (implicit) of the pairs."""
        ...

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` float64 finite ranking scores; higher is better."""
        ...


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


def available_references() -> dict[str, bool]:
    """Which adapters can run in this environment.

    Tries to import each adapter's library (once per process; the first call
    may take a second for PySpark).

    Returns:
        Adapter class name -> whether its library imports, e.g.
        ``{"SparkALS": True, "ImplicitALS": True, "ImplicitBPR": True,
        "SurpriseSVD": False, "SurpriseSVDpp": False}``.
    """
    return {name: _importable(module) for name, (module, _) in _REQUIREMENTS.items()}


def _require(adapter: str) -> Any:
    """Import the module ``adapter`` needs, or raise an ImportError that says how to install it."""
    module, pip = _REQUIREMENTS[adapter]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{adapter} needs the module {module!r}, which does not import ({exc}). Install it: {pip}"
        ) from exc


def _check_fit_input(
    user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate fit arrays; returns ``([n_obs] int64 users, [n_obs] int64 items, [n_obs] float64 ratings)``."""
    u = np.asarray(user_idx)
    i = np.asarray(item_idx)
    r = np.asarray(rating, dtype=np.float64)
    if not (u.ndim == i.ndim == r.ndim == 1 and u.shape == i.shape == r.shape):
        raise ValueError(
            f"user_idx, item_idx and rating must be 1-D of one length, got {u.shape}, {i.shape}, {r.shape}"
        )
    if u.size == 0:
        raise ValueError("no training pairs")
    if not (np.issubdtype(u.dtype, np.integer) and np.issubdtype(i.dtype, np.integer)):
        raise ValueError(f"user_idx and item_idx must be integer arrays, got {u.dtype} and {i.dtype}")
    if n_users <= 0 or n_items <= 0:
        raise ValueError(f"n_users and n_items must be positive, got {n_users} and {n_items}")
    if u.min() < 0 or u.max() >= n_users or i.min() < 0 or i.max() >= n_items:
        raise ValueError(
            f"indices out of range: users {u.min()}..{u.max()} (n_users={n_users}), "
            f"items {i.min()}..{i.max()} (n_items={n_items})"
        )
    if not np.all(np.isfinite(r)):
        raise ValueError("rating has non-finite values")
    return u.astype(np.int64), i.astype(np.int64), r


class _FactorReference:
    """Scoring shared by the adapters, from factors copied out of the library.

    Subclasses fill, in ``fit``, the arrays below; the estimate of a pair is
    ``offset_ + user_bias_[u] + item_bias_[i] + user_factors_[u] @ item_factors_[i]``,
    with the rows of unknown users and items set to zero. If ``cold_value_`` is
    not ``None``, a pair with an unknown user or item predicts ``cold_value_``
    instead.

    Attributes:
        user_factors_: ``[n_users, k]`` float64, zero rows for unknown users.
        item_factors_: ``[n_items, k]`` float64, zero rows for unknown items.
        user_bias_: ``[n_users]`` float64 (zeros for models without biases).
        item_bias_: ``[n_items]`` float64.
        offset_: Global offset (the training mean for biased models, else 0).
        known_users_: ``[n_users]`` bool, users with training rows.
        known_items_: ``[n_items]`` bool, items with training rows.
        cold_value_: Prediction for pairs with an unknown side, or ``None``.
    """

    name: str
    fit_seconds_: float = math.nan
    user_factors_: np.ndarray
    item_factors_: np.ndarray
    user_bias_: np.ndarray
    item_bias_: np.ndarray
    offset_: float
    known_users_: np.ndarray
    known_items_: np.ndarray
    cold_value_: float | None

    def _set_known(self, u: np.ndarray, i: np.ndarray, n_users: int, n_items: int) -> None:
        self.known_users_ = np.bincount(u, minlength=n_users) > 0
        self.known_items_ = np.bincount(i, minlength=n_items) > 0

    def _finish_fit(self, n_obs: int) -> None:
        """Zero unknown rows, check finiteness, log the stage."""
        for name, arr in (
            ("user_factors_", self.user_factors_),
            ("item_factors_", self.item_factors_),
            ("user_bias_", self.user_bias_),
            ("item_bias_", self.item_bias_),
        ):
            if not np.all(np.isfinite(arr)):
                raise FloatingPointError(f"{self.name}: {name} has non-finite values after fit")
        self.user_factors_[~self.known_users_] = 0.0
        self.item_factors_[~self.known_items_] = 0.0
        self.user_bias_[~self.known_users_] = 0.0
        self.item_bias_[~self.known_items_] = 0.0
        logger.info(
            "%s: fitted on %d pairs (%d users, %d items with data) in %.3f s",
            self.name,
            n_obs,
            int(self.known_users_.sum()),
            int(self.known_items_.sum()),
            self.fit_seconds_,
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_factors_"):
            raise RuntimeError(f"{self.name}: call fit() first")

    def _known(self, idx: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mask of known indices, indices with unknown ones replaced by 0)`` for any int array."""
        idx = np.asarray(idx, dtype=np.int64)
        inside = (idx >= 0) & (idx < known.size)
        safe = np.where(inside, idx, 0)
        return inside & known[safe], safe

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Estimates of the pairs ``(user_idx[k], item_idx[k])``.

        Args:
            user_idx: ``[n]`` int user indices (unknown or out-of-range allowed).
            item_idx: ``[n]`` int item indices (unknown or out-of-range allowed).

        Returns:
            ``[n]`` float64 finite estimates; pairs with an unknown user or item get
            the adapter's documented fallback.
        """
        self._check_fitted()
        ku, u = self._known(user_idx, self.known_users_)
        ki, i = self._known(item_idx, self.known_items_)
        if u.shape != i.shape:
            raise ValueError(f"user_idx and item_idx differ in shape: {u.shape} vs {i.shape}")
        both = ku & ki
        dot = np.einsum("nk,nk->n", self.user_factors_[u], self.item_factors_[i])
        est = self.offset_ + np.where(ku, self.user_bias_[u], 0.0) + np.where(ki, self.item_bias_[i], 0.0)
        est = est + np.where(both, dot, 0.0)
        if self.cold_value_ is not None:
            est = np.where(both, est, self.cold_value_)
        return est.astype(np.float64)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Ranking scores of every item for some users.

        Unknown users are scored as the average training user (mean factor row
        and bias of the known users); unknown items get a score below the row's
        lowest known-item score.

        Args:
            user_idx: ``[m]`` int user indices (unknown or out-of-range allowed).

        Returns:
            ``[m, n_items]`` float64 finite scores, higher is better.
        """
        self._check_fitted()
        ku, u = self._known(np.ravel(user_idx), self.known_users_)
        mean_factor = self.user_factors_[self.known_users_].mean(axis=0)
        mean_bias = float(self.user_bias_[self.known_users_].mean())
        uf = np.where(ku[:, None], self.user_factors_[u], mean_factor[None, :])
        ub = np.where(ku, self.user_bias_[u], mean_bias)
        scores = uf @ self.item_factors_.T + (self.offset_ + ub)[:, None] + self.item_bias_[None, :]
        if not self.known_items_.all():
            if self.known_items_.any():
                floor = scores[:, self.known_items_].min(axis=1, keepdims=True) - 1.0
            else:
                floor = np.zeros((scores.shape[0], 1))
            scores[:, ~self.known_items_] = floor
        return np.ascontiguousarray(scores, dtype=np.float64)


class SparkALS(_FactorReference):
    """Spark MLlib ALS (``pyspark.ml.recommendation.ALS``), explicit or implicit.

    Explicit (``implicit_prefs=False``): minimises the squared error of
    ``x_u . y_i`` against the rating plus ``reg_param`` times the factor norms
    (Spark scales the penalty by each row's number of ratings, ALS-WR);
    :meth:`predict` is the raw dot product, no bias, no clipping.

    Implicit (``implicit_prefs=True``, Hu, Koren & Volinsky 2008): the rating
    column is taken as the raw observation ``r_ui`` (by default the star rating,
    so a 5 counts more than a 1; with ``binary=True`` 1.0 for every observed
    pair); preference ``p_ui = 1 if r_ui > 0``, confidence
    ``c_ui = 1 + alpha * |r_ui|``, and unobserved pairs have ``p = 0``, ``c = 1``.
    Spark scales ``reg_param`` by each row's number of observations, so its
    ``lambda`` is not the ``implicit`` library's ``regularization``.
    :meth:`predict` is the preference score ``x_u . y_i`` (about 0..1).

    Training needs a checkpoint directory past 10 iterations: if the session has
    none, :meth:`fit` sets a temporary one (``SparkContext.setCheckpointDir``).

    Fallbacks: Spark has no factor row for an id without training rows (its
    ``coldStartStrategy="nan"`` would return NaN); here such rows are zeros and
    :meth:`predict` returns the training mean rating (explicit) or 0.0 (implicit)
    for any pair with an unknown user or item. Ranking fallbacks are the module's
    (average user; unknown items last).

    Args:
        spark: Session to fit in.
        implicit_prefs: Implicit-feedback ALS instead of explicit.
        rank: Number of latent factors.
        reg_param: Regularisation ``lambda``.
        alpha: Confidence scale (implicit only).
        max_iter: ALS sweeps.
        seed: Seed of the factor initialisation.
        name: Label in reports; default ``spark-als-explicit`` or ``spark-als-implicit``.
        num_blocks: User and item blocks (``numUserBlocks``/``numItemBlocks``);
            ``None`` keeps Spark's default (10). Results depend on it (the
            initialisation is drawn per block).
        binary: Implicit only: fit on 1.0 per observed pair instead of the rating.
    """

    def __init__(
        self,
        spark: SparkSession,
        *,
        implicit_prefs: bool,
        rank: int = 10,
        reg_param: float = 0.1,
        alpha: float = 1.0,
        max_iter: int = 10,
        seed: int = 42,
        name: str | None = None,
        num_blocks: int | None = None,
        binary: bool = False,
    ) -> None:
        self.spark = spark
        self.implicit_prefs = implicit_prefs
        self.rank = rank
        self.reg_param = reg_param
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed
        self.num_blocks = num_blocks
        self.binary = binary
        self.name = name or ("spark-als-implicit" if implicit_prefs else "spark-als-explicit")
        self.fit_seconds_ = math.nan

    def fit(
        self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int
    ) -> SparkALS:
        """Fit Spark ALS; time only ``ALS.fit`` on a cached, counted DataFrame.

        Args:
            user_idx: ``[n_obs]`` int user indices in ``0..n_users-1``.
            item_idx: ``[n_obs]`` int item indices in ``0..n_items-1``.
            rating: ``[n_obs]`` ratings (explicit) or raw observations ``r_ui`` (implicit).
            n_users: Number of users.
            n_items: Number of items.

        Returns:
            ``self``, with ``user_factors_`` ``[n_users, rank]``, ``item_factors_``
            ``[n_items, rank]`` and ``fit_seconds_``.
        """
        recommendation = _require("SparkALS")
        import pandas as pd

        u, i, r = _check_fit_input(user_idx, item_idx, rating, n_users, n_items)
        if n_users > np.iinfo(np.int32).max or n_items > np.iinfo(np.int32).max:
            raise ValueError("Spark ALS needs user and item indices that fit in int32")
        self._set_known(u, i, n_users, n_items)
        values = np.ones_like(r) if (self.implicit_prefs and self.binary) else r
        pdf = pd.DataFrame(
            {"user": u.astype(np.int32), "item": i.astype(np.int32), "rating": values.astype(np.float32)}
        )
        # A DataFrame made from local data ships its rows inside every task of every
        # stage that reads it (lineage), even from the cache; a shuffle cuts that.
        n_parts = int(self.spark.conf.get("spark.sql.shuffle.partitions") or 4)
        df = self.spark.createDataFrame(pdf, schema="user int, item int, rating float").repartition(n_parts).cache()
        n_rows = df.count()  # materialise the cache before the timer
        _ensure_checkpoint_dir(self.spark)
        blocks = {} if self.num_blocks is None else {"numUserBlocks": self.num_blocks, "numItemBlocks": self.num_blocks}
        als = recommendation.ALS(
            rank=self.rank,
            maxIter=self.max_iter,
            regParam=self.reg_param,
            implicitPrefs=self.implicit_prefs,
            alpha=self.alpha,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=self.seed,
            coldStartStrategy="nan",
            nonnegative=False,
            **blocks,
        )
        try:
            start = time.perf_counter()
            model = als.fit(df)  # trains eagerly; the factor RDDs are persisted and counted inside
            self.fit_seconds_ = time.perf_counter() - start
            self.user_factors_ = _spark_factors(model.userFactors, n_users, self.rank)
            self.item_factors_ = _spark_factors(model.itemFactors, n_items, self.rank)
        finally:
            df.unpersist()
        self.user_bias_ = np.zeros(n_users)
        self.item_bias_ = np.zeros(n_items)
        self.offset_ = 0.0
        self.cold_value_ = 0.0 if self.implicit_prefs else float(r.mean())
        self._finish_fit(n_rows)
        return self


def _ensure_checkpoint_dir(spark: SparkSession) -> None:
    """Give the session a checkpoint directory if it has none.

    ALS truncates its lineage every ``checkpointInterval`` (10) iterations only
    when the SparkContext has a checkpoint directory; without one, about 20
    iterations overflow the JVM stack (``java.lang.StackOverflowError``).
    """
    sc = spark.sparkContext
    if sc.getCheckpointDir() is None:
        import tempfile

        path = tempfile.mkdtemp(prefix="recsys-als-checkpoints-")
        sc.setCheckpointDir(path)
        logger.info("Spark had no checkpoint directory (ALS needs one past 10 iterations): using %s", path)


def _spark_factors(frame: Any, n: int, rank: int) -> np.ndarray:
    """``[n, rank]`` float64 factors from an ALS ``(id, features)`` DataFrame; missing ids get zeros."""
    pdf = frame.toPandas()
    out = np.zeros((n, rank), dtype=np.float64)
    if len(pdf):
        ids = pdf["id"].to_numpy(dtype=np.int64)
        out[ids] = np.stack([np.asarray(f, dtype=np.float64) for f in pdf["features"]])
    return out


def _user_item_csr(u: np.ndarray, i: np.ndarray, values: np.ndarray, n_users: int, n_items: int) -> Any:
    """``[n_users, n_items]`` float32 CSR matrix (duplicate pairs are summed)."""
    from scipy.sparse import csr_matrix

    m = csr_matrix((values.astype(np.float32), (u, i)), shape=(n_users, n_items), dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m


class ImplicitALS(_FactorReference):
    """ALS for implicit feedback from the ``implicit`` library (CPU solver).

    Fits ``implicit.cpu.als.AlternatingLeastSquares`` on a user x item CSR matrix
    (``implicit >= 0.5`` expects users as rows) whose values are 1.0 for every
    observed pair (``binary=True``, the default: any rating is one interaction)
    or the ratings themselves (``binary=False``: a 5 is five times the evidence
    of a 1). The library's confidence is ``c_ui = 1 + alpha * value`` and its
    preference ``p_ui = 1`` for every stored value. With the defaults this
    reproduces the MovieLens 100K figures quoted for ``implicit`` (5-fold mean
    NDCG@10 0.478 on u1..u5); rating-valued input scores lower (0.427). Uses 2 threads, no progress bar,
    and a single-threaded BLAS during the fit (the library's own recommendation).

    Fallbacks: :meth:`predict` is ``x_u . y_i`` and returns 0.0 for a pair with an
    unknown user or item; ranking fallbacks are the module's.

    Args:
        factors: Latent factors.
        regularization: L2 regularisation.
        alpha: Confidence scale.
        iterations: ALS sweeps.
        seed: ``random_state`` of the initialisation.
        binary: Fit on 1.0 per observed pair (default) instead of the rating.
        num_threads: Solver threads.
        name: Label in reports.
    """

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 20.0,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 42,
        *,
        binary: bool = True,
        num_threads: int = 2,
        name: str = "implicit-als",
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.binary = binary
        self.num_threads = num_threads
        self.name = name
        self.fit_seconds_ = math.nan

    def fit(
        self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int
    ) -> ImplicitALS:
        """Fit on a ``[n_users, n_items]`` CSR matrix; time only the library's ``fit``.

        Args:
            user_idx: ``[n_obs]`` int user indices.
            item_idx: ``[n_obs]`` int item indices.
            rating: ``[n_obs]`` ratings, used as values only if not ``binary``.
            n_users: Number of users.
            n_items: Number of items.

        Returns:
            ``self``, with ``user_factors_`` ``[n_users, factors]``, ``item_factors_``
            ``[n_items, factors]`` and ``fit_seconds_``.
        """
        als_mod = _require("ImplicitALS")
        from threadpoolctl import threadpool_limits

        u, i, r = _check_fit_input(user_idx, item_idx, rating, n_users, n_items)
        self._set_known(u, i, n_users, n_items)
        user_items = _user_item_csr(u, i, np.ones_like(r) if self.binary else r, n_users, n_items)
        if self.binary:
            user_items.data[:] = 1.0  # a pair listed twice is still one interaction
        with threadpool_limits(1, "blas"):  # the constructor checks it, the solver needs it
            model = als_mod.AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.num_threads,
            )
            start = time.perf_counter()
            model.fit(user_items, show_progress=False)
            self.fit_seconds_ = time.perf_counter() - start
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float64)
        self.user_bias_ = np.zeros(n_users)
        self.item_bias_ = np.zeros(n_items)
        self.offset_ = 0.0
        self.cold_value_ = 0.0
        self._finish_fit(u.size)
        return self


class ImplicitBPR(_FactorReference):
    """Bayesian Personalised Ranking from the ``implicit`` library (CPU).

    Every observed (user, item) pair is a positive, whatever its rating; SGD on
    sampled (user, positive, negative) triples. The library appends an item-bias
    column to the factors (the user side holds 1.0 there), so ``x_u . y_i``
    already includes the item bias. 2 threads, no progress bar.

    Fallbacks: :meth:`predict` returns 0.0 for a pair with an unknown user or
    item; ranking fallbacks are the module's.

    Args:
        factors: Latent factors (the library adds one bias column).
        learning_rate: SGD step.
        regularization: L2 regularisation.
        iterations: Epochs.
        seed: ``random_state`` of initialisation and sampling.
        num_threads: SGD threads (results depend on the thread count).
        name: Label in reports.
    """

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 42,
        *,
        num_threads: int = 2,
        name: str = "implicit-bpr",
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed
        self.num_threads = num_threads
        self.name = name
        self.fit_seconds_ = math.nan

    def fit(
        self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int
    ) -> ImplicitBPR:
        """Fit on a ``[n_users, n_items]`` binary CSR matrix; time only the library's ``fit``.

        Args:
            user_idx: ``[n_obs]`` int user indices.
            item_idx: ``[n_obs]`` int item indices.
            rating: ``[n_obs]`` ratings (only their presence is used).
            n_users: Number of users.
            n_items: Number of items.

        Returns:
            ``self``, with ``user_factors_`` ``[n_users, factors + 1]``,
            ``item_factors_`` ``[n_items, factors + 1]`` and ``fit_seconds_``.
        """
        bpr_mod = _require("ImplicitBPR")
        u, i, r = _check_fit_input(user_idx, item_idx, rating, n_users, n_items)
        self._set_known(u, i, n_users, n_items)
        user_items = _user_item_csr(u, i, np.ones_like(r), n_users, n_items)
        user_items.data[:] = 1.0  # a pair listed twice is still one positive
        model = bpr_mod.BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.num_threads,
        )
        start = time.perf_counter()
        model.fit(user_items, show_progress=False)
        self.fit_seconds_ = time.perf_counter() - start
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float64)
        self.user_bias_ = np.zeros(n_users)
        self.item_bias_ = np.zeros(n_items)
        self.offset_ = 0.0
        self.cold_value_ = 0.0
        self._finish_fit(u.size)
        return self


class _SurpriseBase(_FactorReference):
    """Shared fit for Surprise's matrix-factorisation algorithms.

    The estimate is Surprise's own, ``mu + b_u + b_i + q_i . p_u`` (SVD++ adds the
    implicit term to ``p_u``), computed from its learnt arrays, but not clipped to
    the rating scale. Fallbacks are Surprise's: a pair with an unknown user is
    ``mu + b_i``, with an unknown item ``mu + b_u``, with both unknown ``mu``.
    """

    _adapter: str
    _algorithm: str  # the surprise class: SVD or SVDpp
    _algo_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, n_factors: int, n_epochs: int, lr_all: float, reg_all: float, seed: int, *, name: str) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr_all = lr_all
        self.reg_all = reg_all
        self.seed = seed
        self.name = name
        self.fit_seconds_ = math.nan

    def _algo(self, surprise: Any) -> Any:
        return getattr(surprise, self._algorithm)(
            n_factors=self.n_factors,
            n_epochs=self.n_epochs,
            lr_all=self.lr_all,
            reg_all=self.reg_all,
            random_state=self.seed,
            **self._algo_kwargs,
        )

    def _user_factors(self, algo: Any, trainset: Any) -> np.ndarray:
        """``[trainset.n_users, k]`` effective user factors, in Surprise's inner-id order."""
        return np.asarray(algo.pu, dtype=np.float64)

    def fit(
        self, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, n_users: int, n_items: int
    ) -> _SurpriseBase:
        """Fit on a Surprise ``Trainset`` built before the timer; time only ``algo.fit``.

        Args:
            user_idx: ``[n_obs]`` int user indices.
            item_idx: ``[n_obs]`` int item indices.
            rating: ``[n_obs]`` ratings; the rating scale is their min..max.
            n_users: Number of users.
            n_items: Number of items.

        Returns:
            ``self``, with factors ``[n_users, n_factors]`` / ``[n_items, n_factors]``,
            biases, ``offset_`` (the training mean) and ``fit_seconds_``.
        """
        surprise = _require(self._adapter)
        import pandas as pd

        u, i, r = _check_fit_input(user_idx, item_idx, rating, n_users, n_items)
        self._set_known(u, i, n_users, n_items)
        pdf = pd.DataFrame({"user": u, "item": i, "rating": r})
        reader = surprise.Reader(rating_scale=(float(r.min()), float(r.max())))
        trainset = surprise.Dataset.load_from_df(pdf, reader).build_full_trainset()
        algo = self._algo(surprise)
        start = time.perf_counter()
        algo.fit(trainset)
        self.fit_seconds_ = time.perf_counter() - start
        # Surprise numbers users and items in order of appearance: map back to our indices.
        raw_u = np.array([trainset.to_raw_uid(k) for k in range(trainset.n_users)], dtype=np.int64)
        raw_i = np.array([trainset.to_raw_iid(k) for k in range(trainset.n_items)], dtype=np.int64)
        k = int(algo.qi.shape[1])
        self.user_factors_ = np.zeros((n_users, k))
        self.item_factors_ = np.zeros((n_items, k))
        self.user_bias_ = np.zeros(n_users)
        self.item_bias_ = np.zeros(n_items)
        self.user_factors_[raw_u] = self._user_factors(algo, trainset)
        self.item_factors_[raw_i] = np.asarray(algo.qi, dtype=np.float64)
        self.user_bias_[raw_u] = np.asarray(algo.bu, dtype=np.float64)
        self.item_bias_[raw_i] = np.asarray(algo.bi, dtype=np.float64)
        self.offset_ = float(trainset.global_mean)
        self.cold_value_ = None
        self._finish_fit(u.size)
        return self


class SurpriseSVD(_SurpriseBase):
    """Surprise's biased SVD (Funk SVD with SGD; ``surprise.SVD``).

    ``predict`` is ``mu + b_u + b_i + q_i . p_u`` (not clipped); see
    :class:`_SurpriseBase` for the fallbacks.

    Args:
        n_factors: Latent factors.
        n_epochs: SGD epochs.
        lr_all: Learning rate of every parameter.
        reg_all: Regularisation of every parameter.
        seed: ``random_state`` of the initialisation and the SGD order.
        name: Label in reports.
    """

    _adapter = "SurpriseSVD"
    _algorithm = "SVD"

    def __init__(
        self,
        n_factors: int = 100,
        n_epochs: int = 50,
        lr_all: float = 0.01,
        reg_all: float = 0.1,
        seed: int = 42,
        *,
        name: str = "surprise-svd",
    ) -> None:
        super().__init__(n_factors, n_epochs, lr_all, reg_all, seed, name=name)


class SurpriseSVDpp(_SurpriseBase):
    """Surprise's SVD++ (``surprise.SVDpp``): SVD plus implicit feedback from the rated items.

    ``predict`` is ``mu + b_u + b_i + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)``
    with ``N(u)`` the user's training items (not clipped); the bracket is
    computed once per user at fit time. Fallbacks as :class:`_SurpriseBase`.
    The defaults are Surprise's own; SVD++ is slow (about 10x SVD per epoch).

    Args:
        n_factors: Latent factors.
        n_epochs: SGD epochs.
        lr_all: Learning rate of every parameter.
        reg_all: Regularisation of every parameter.
        seed: ``random_state`` of the initialisation and the SGD order.
        name: Label in reports.
    """

    _adapter = "SurpriseSVDpp"
    _algorithm = "SVDpp"
    _algo_kwargs: ClassVar[dict[str, Any]] = {"cache_ratings": True}

    def __init__(
        self,
        n_factors: int = 20,
        n_epochs: int = 20,
        lr_all: float = 0.007,
        reg_all: float = 0.02,
        seed: int = 42,
        *,
        name: str = "surprise-svdpp",
    ) -> None:
        super().__init__(n_factors, n_epochs, lr_all, reg_all, seed, name=name)

    def _user_factors(self, algo: Any, trainset: Any) -> np.ndarray:
        pu = np.asarray(algo.pu, dtype=np.float64)
        yj = np.asarray(algo.yj, dtype=np.float64)
        out = pu.copy()
        for inner_u in range(trainset.n_users):
            items = np.fromiter((j for j, _ in trainset.ur[inner_u]), dtype=np.int64)
            if items.size:
                out[inner_u] += yj[items].sum(axis=0) / np.sqrt(items.size)
        return out
