"""EASE (Steck, 2019): a closed-form item-item model for ranking from positives.

With ``X`` the ``[n_users, n_items]`` matrix of training positives and
``G = X^T X``, EASE learns the item-item weights::

    B = argmin ||X - X B||_F^2 + lambda ||B||_F^2   subject to diag(B) = 0
      = I - P diag(1 / diag(P)),   P = (G + lambda I)^-1

and scores user ``u`` on item ``i`` with ``s_ui = sum_{j in X_u} x_uj B_ji``: the
evidence from every item the user chose for ``i``. One matrix inversion of size
``n_items``, no epochs, no seed. Three refinements, each off at its neutral value:

* **item weights** (``item_weight_power`` ``a``): column ``i`` of ``X`` is scaled by
  ``w_i = n_i^-a`` (``n_i`` its training count), so the most chosen items weigh less
  in ``G`` and in the users' inputs;
* **sessions** (``session_seconds``, with times): each session of a user
  (:mod:`recsys.models.sessions`) is one more row of ``X`` for ``G`` (weight
  ``session_weight``), so items chosen in one sitting are tied more than items of
  the same user at large;
* **rating-valued inputs** (``rating_weight`` ``c``, with ratings): the user's row
  holds ``1 + c (r_ui - mid) / half`` (``mid``, ``half``: centre and half-width of the
  rating scale) instead of 1: a loved item says more than a disliked one.

``lambda`` is relative: ``l2 * mean(diag G) / mean(n_i)`` is added to the diagonal,
which is ``l2`` itself for plain 0/1 rows. Memory is ``n_items^2`` floats (and ``G``
as dense), so it is meant for catalogues up to ``max_items`` (default 30,000: about
3.6 GB in float32); :func:`fit_ease` refuses larger ones with a clear error. With fewer
rows (users and multi-item sessions) than items, the inverse is computed through the
Woodbury identity instead (same matrix, ``n_items^2 x rows`` work instead of ``n_items^3``).
The refinements' values were chosen on a validation split of MovieLens 100K u1's training
data; their effect, alone and blended with the factorisation (:mod:`recsys.models.blend`),
is measured in ``bench/README.md`` (``bench/quality.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recsys.models.artifacts import FromDict, read_params, write_params
from recsys.models.bounds import Count, NonNegative, Positive

if TYPE_CHECKING:
    import scipy.sparse as sp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EASEParams(FromDict):
    """Hyper-parameters of EASE (defaults: MovieLens 100K, validation split of u1's training data).

    Attributes:
        l2: ``lambda``, relative to the mean training count (see the module docstring).
        item_weight_power: ``a`` of the item weights ``n_i^-a`` (0: unweighted).
        session_seconds: Length of the sessions added as rows (0: none; needs times).
        session_weight: Weight of the session rows in ``G``.
        rating_weight: ``c`` of the rating-valued inputs (0: 0/1 inputs; needs ratings).
        max_items: Largest catalogue it will fit (the model is ``n_items x n_items``).
    """

    l2: Positive = 450.0
    item_weight_power: NonNegative = 0.2
    session_seconds: NonNegative = 900.0
    session_weight: NonNegative = 1.0
    rating_weight: NonNegative = 0.6
    max_items: Count = 30_000


@dataclass
class EASEModel:
    """A fitted EASE model.

    Attributes:
        b: ``[n_items, n_items]`` float32 item-item weights (zero diagonal).
        indptr: ``[n_users + 1]`` CSR row pointers of the users' training positives.
        indices: ``[n_positives]`` item indices of the positives (grain: one user-item pair).
        values: ``[n_positives]`` the positives' inputs ``x_ui`` (item weight x rating value); None: all 1.
        params: The hyper-parameters.
        history: Fit facts (``fit_seconds``).
    """

    b: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    params: EASEParams
    history: dict[str, list[float]] = field(default_factory=dict)
    values: np.ndarray | None = None

    predicts_ratings = False

    @property
    def n_users(self) -> int:
        """Users the model was fitted on."""
        return self.indptr.size - 1

    @property
    def n_items(self) -> int:
        """Items the model was fitted on."""
        return self.b.shape[0]

    def _history_rows(self, users: np.ndarray) -> np.ndarray:
        """``[len(users), n_items]`` float32 input rows ``x_u`` of the users' positives (empty for unknown users)."""
        rows = np.zeros((users.size, self.n_items), dtype=np.float32)
        for r, u in enumerate(users):
            if 0 <= u < self.n_users:
                lo, hi = self.indptr[u], self.indptr[u + 1]
                rows[r, self.indices[lo:hi]] = 1.0 if self.values is None else self.values[lo:hi]
        return rows

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """``[len(user_idx), n_items]`` scores ``X_u B``; an unknown user scores 0 everywhere."""
        users = np.asarray(user_idx, dtype=np.int64)
        return (self._history_rows(users) @ self.b).astype(np.float64)

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray, *, block: int = 1024) -> np.ndarray:
        """``[n]`` scores of pairs (0 for unknown users or items), computed per block of distinct users."""
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        out = np.zeros(u.size, dtype=np.float64)
        known_item = (i >= 0) & (i < self.n_items)
        users, inverse = np.unique(u, return_inverse=True)
        for s in range(0, users.size, block):
            scores = self.score_users(users[s : s + block])
            sel = (inverse >= s) & (inverse < s + block) & known_item
            out[sel] = scores[inverse[sel] - s, i[sel]]
        return out

    def save(self, path: Path) -> Path:
        """Write ``ease.npz`` (no pickle) and ``params.json`` into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        values = np.ones(self.indices.size, np.float32) if self.values is None else self.values
        np.savez(path / "ease.npz", b=self.b, indptr=self.indptr, indices=self.indices, values=values)
        write_params(path, self.params, self.history)
        return path

    @classmethod
    def load(cls, path: Path) -> EASEModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        with np.load(path / "ease.npz", allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("b", "indptr", "indices")}
            values = f["values"] if "values" in f.files else None
        meta = read_params(path)
        return cls(
            **arrays, params=EASEParams.from_dict(meta["params"]), history=meta.get("history", {}), values=values
        )


def _regularised_inverse(rows: sp.csr_matrix, lam: float) -> np.ndarray:
    """``P = (A^T A + lam I)^-1`` for the sparse ``[m, n_items]`` rows ``A``, the cheaper of two exact ways.

    A row with one non-zero (a single-item session) only adds to the diagonal: it joins
    ``D = lam I + diag(...)``. The primal way inverts the ``[n_items, n_items]`` Gram matrix
    (``n_items^3``). With fewer remaining rows ``m`` than items (a large catalogue, few users) the
    Woodbury identity ``P = D^-1 - D^-1 A^T (I_m + A D^-1 A^T)^-1 A D^-1`` needs an ``[m, m]`` solve
    and ``n_items x nnz`` products instead: the same matrix up to rounding, in a fraction of the time.
    """
    m, n = rows.shape
    single = np.diff(rows.indptr) == 1
    diag = np.full(n, float(lam))
    if single.any():
        one = rows[single]
        np.add.at(diag, one.indices, np.square(one.data))
        rows = rows[~single]
        m = rows.shape[0]
    if m >= n or lam <= 0:
        gram = (rows.T @ rows).toarray()
        gram[np.diag_indices(n)] += diag
        return np.linalg.inv(gram)
    import scipy.linalg
    import scipy.sparse as sp

    scaled = rows @ sp.diags(1.0 / diag)  # A D^-1
    kernel = (scaled @ rows.T).toarray()
    kernel[np.diag_indices(m)] += 1.0
    left = np.asarray(scaled.T @ scipy.linalg.cho_solve(scipy.linalg.cho_factor(kernel), np.eye(m)))  # [n, m]
    p = np.asarray(left @ scaled)  # dense [n, m] @ sparse [m, n]
    np.negative(p, out=p)
    p[np.diag_indices(n)] += 1.0 / diag
    return p


def fit_ease(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    params: EASEParams | None = None,
    *,
    rating: np.ndarray | None = None,
    ts: np.ndarray | None = None,
    rating_range: tuple[float, float] | None = None,
) -> EASEModel:
    """Fit EASE on training positives (a repeated pair counts once: its first row).

    Args:
        user_idx: ``[n_pos]`` user indices of positives.
        item_idx: ``[n_pos]`` item indices.
        n_users: Number of users.
        n_items: Number of items.
        params: Hyper-parameters (defaults: :class:`EASEParams`).
        rating: Optional ``[n_pos]`` ratings (NaN for positives without one, e.g. events): rating-valued inputs.
        ts: Optional ``[n_pos]`` times in seconds: session rows.
        rating_range: ``(min, max)`` of the rating scale (default: of ``rating``).

    Returns:
        The fitted :class:`EASEModel`.

    Raises:
        ValueError: The catalogue is larger than ``params.max_items``.
    """
    import scipy.sparse as sp

    from recsys.models.sessions import session_ids

    params = params or EASEParams()
    if n_items > params.max_items:
        raise ValueError(
            f"EASE builds an n_items x n_items matrix: {n_items} items is more than max_items="
            f"{params.max_items} ({4 * n_items**2 / 1e9:.1f} GB in float32)"
        )
    start = time.monotonic()
    u, i = np.asarray(user_idx, np.int64), np.asarray(item_idx, np.int64)
    _, first = np.unique(u * n_items + i, return_index=True)  # sorted by (user, item)
    u, i = u[first], i[first]
    count = np.bincount(i, minlength=n_items).astype(np.float64)
    w = np.where(count > 0, np.maximum(count, 1.0) ** -params.item_weight_power, 0.0)
    x = sp.csr_matrix((w[i], (u, i)), shape=(n_users, n_items))
    rows = x  # G = rows^T rows: the users' rows, then the sessions' (scaled by sqrt(session_weight))
    if params.session_seconds > 0 and ts is not None:
        session, _, _ = session_ids(u, np.asarray(ts)[first], params.session_seconds)
        s = sp.csr_matrix((w[i], (session, i)), shape=(int(session.max(initial=-1)) + 1, n_items))
        rows = sp.vstack([x, np.sqrt(params.session_weight) * s], format="csr")
    diag_g = np.asarray(rows.multiply(rows).sum(axis=0)).ravel()
    lam = params.l2 * float(np.mean(diag_g)) / max(float(np.mean(count)), 1e-12)
    b = _regularised_inverse(rows, lam)  # P, turned into B in place (n_items^2 floats: no copies)
    b /= -np.diag(b).copy()[None, :]
    b[np.diag_indices(n_items)] = 0.0
    q = np.ones(u.size)
    if params.rating_weight and rating is not None:
        r = np.asarray(rating, np.float64)[first]
        lo, hi = rating_range or (float(np.nanmin(r, initial=np.inf)), float(np.nanmax(r, initial=-np.inf)))
        if np.isfinite(lo) and hi > lo:
            q = np.where(np.isnan(r), 1.0, 1.0 + params.rating_weight * (r - (lo + hi) / 2) / ((hi - lo) / 2))
    seconds = time.monotonic() - start
    logger.info(
        "EASE fitted: %d users x %d items, %d positives, lambda=%g, in %.1fs",
        n_users,
        n_items,
        u.size,
        params.l2,
        seconds,
    )
    return EASEModel(
        b.astype(np.float32),
        x.indptr.astype(np.int64),
        x.indices.astype(np.int64),
        params,
        {"fit_seconds": [seconds]},
        (w[i] * q).astype(np.float32),
    )
