"""Two-tower training throughput against the FLOP bound of this machine, on MovieLens 100K and on 20M ratings.

For each dataset the benchmark trains the default architecture (``TwoTowerParams`` with the ``mse`` loss:
towers 256-128-32, batch 1024) for ``--epochs`` epochs, streaming the ratings through
the model's ``tf.data`` pipeline, and reports:

* ``examples_per_second`` and ``epoch_seconds`` (the mean over the epochs after the first,
  which also traces the graph);
* ``flops_per_example``: one training step's multiply-adds x 2 for the Dense layers of
  both towers (forward ``2 * sum(d_in * d_out)``; backward twice that: gradients of the
  weights and of the inputs), so ``3 x forward``;
* ``peak_flops``: the float32 matrix-multiply rate this machine reaches in TensorFlow,
  measured in the same run (a 2048 x 2048 x 2048 product, best of several);
* ``bound_examples_per_second = peak_flops / flops_per_example`` and the ratio of the
  measured throughput to it (1.0 would be pure matrix-multiply speed; the gathers, the
  input pipeline and small-matrix overheads are what the rest is).

Inputs: ML-100K's feature vectors are built here in pandas from its ``u.user``/``u.item``
side data and all 100,000 ratings with the model's own transforms
(:class:`~recsys.features.tower_inputs.TowerPreprocessor`), but from simplified feature
tables (age by decade, no release year): 91 user and 24 item columns, close to but not
the pipeline's. Throughput depends on the shapes, not the values, so the 20M dataset
(the project's generator, streamed to Parquet: 138,493 users x 27,000 items) uses random
feature vectors of the same dimensions and streams its ratings from the Parquet files.

    .venv/bin/python bench/two_tower_speed.py --sizes 100k,20m --epochs 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recsys.config import DEFAULT_MOVIELENS_DIR, PROJECT_ROOT
from recsys.models.two_tower import TwoTowerParams

logger = logging.getLogger("bench.two_tower_speed")


def dense_flops(d_in: int, layers: tuple[int, ...]) -> int:
    """Forward FLOPs (2 x multiply-adds) of one tower's Dense layers for one example."""
    dims = (d_in, *layers)
    return 2 * sum(a * b for a, b in itertools.pairwise(dims))


def train_flops_per_example(user_dim: int, item_dim: int, layers: tuple[int, ...]) -> int:
    """FLOPs of one training example: forward of both towers and the dot, backward twice the forward."""
    forward = dense_flops(user_dim, layers) + dense_flops(item_dim, layers) + 2 * layers[-1]
    return 3 * forward


def peak_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate (FLOP/s) of TensorFlow on this machine."""
    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=[1, 2])
    b = tf.random.stateless_normal((n, n), seed=[3, 4])
    mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    mm()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        mm().numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


class _EpochTimer:
    """Keras callback: wall time of every epoch."""

    def __init__(self) -> None:
        import keras

        outer = self

        class Cb(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
                outer.start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                outer.seconds.append(time.perf_counter() - outer.start)

        self.seconds: list[float] = []
        self.start = 0.0
        self.callback = Cb()


def _ml100k(data_dir: Path) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    """ML-100K: ``(user_x, item_x, (u, i, rating), n)`` with the real feature dimensions (side data, training stats)."""
    import pandas as pd

    from recsys.evaluation.protocol import ml100k_genres
    from recsys.features.tower_inputs import TowerPreprocessor, recent_genre_mix

    a = np.loadtxt(data_dir / "u.data", dtype=np.int64)
    u, i, r, ts = a[:, 0] - 1, a[:, 1] - 1, a[:, 2].astype(np.float32), a[:, 3]
    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1
    genres = ml100k_genres(data_dir, n_items)
    users = pd.read_csv(data_dir / "u.user", sep="|", header=None, names=["id", "age", "gender", "occupation", "zip"])
    tokens = [
        (f"age={a // 10}", f"gender={g}", f"occupation={o}")
        for a, g, o in users[["age", "gender", "occupation"]].itertuples(index=False)
    ]
    vocab = sorted({t for ts_ in tokens for t in ts_})
    demo = np.array([[t in ts_ for t in vocab] for ts_ in tokens], dtype=np.float32)
    n_u = np.bincount(u, minlength=n_users)
    g_cnt = np.zeros((n_users, genres.shape[1]), np.float32)
    g_sum = np.zeros_like(g_cnt)
    np.add.at(g_cnt, u, genres[i])
    np.add.at(g_sum, u, genres[i] * r[:, None])
    uf = pd.DataFrame(
        {
            "user_idx": np.arange(n_users),
            "demographics": list(demo),
            "n_ratings": n_u,
            "mean_rating": np.bincount(u, r, n_users) / np.maximum(n_u, 1),
            "genre_mean_rating": list(g_sum / np.maximum(g_cnt, 1)),
            "genre_counts": list(g_cnt),
        }
    )
    n_i = np.bincount(i, minlength=n_items)
    itf = pd.DataFrame(
        {
            "item_idx": np.arange(n_items),
            "year": pd.array([None] * n_items, dtype="Int32"),
            "genres": list(genres),
            "n_ratings": n_i,
            "mean_rating": np.bincount(i, r, n_items) / np.maximum(n_i, 1),
            "tags": [[]] * n_items,
        }
    )
    pre = TowerPreprocessor.fit(uf, itf)
    recent = recent_genre_mix(pd.DataFrame({"user_idx": u, "item_idx": i, "ts": ts}), genres, n_users)
    return pre.users(uf, recent), pre.items(itf), (u.astype(np.int32), i.astype(np.int32), r), len(r)


def _synthetic_20m(root: Path, dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, Path, int]:
    """The 20M-rating synthetic dataset on Parquet (generated once, cached) and random features of ``dims``."""
    from recsys.data.synthetic import write_parquet

    files = write_parquet(
        root,
        n_users=138_493,
        n_items=27_000,
        n_groups=20,
        mean_ratings_per_user=145.0,
        min_ratings_per_user=20,
        seed=42,
        chunk_users=20_000,
    )
    rng = np.random.default_rng(0)
    user_x = rng.standard_normal((files.n_users, dims[0])).astype(np.float32)
    item_x = rng.standard_normal((files.n_items, dims[1])).astype(np.float32)
    return user_x, item_x, files.root / "ratings", files.n_ratings


def _stg_chunks(folder: Path) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``stg_ratings`` Parquet parts (string ids, 1-based) as index chunks."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    for b in ds.dataset(str(folder), format="parquet").to_batches(
        columns=["user_id", "item_id", "rating"], batch_size=262_144
    ):
        u = pc.cast(b.column(0), "int32").to_numpy() - 1
        i = pc.cast(b.column(1), "int32").to_numpy() - 1
        yield u.astype(np.int32), i.astype(np.int32), b.column(2).to_numpy().astype(np.float32)


def measure(
    name: str, user_x: np.ndarray, item_x: np.ndarray, chunks, n_examples: int, epochs: int, peak: float
) -> dict:
    """Train ``epochs`` epochs of the default architecture and report throughput against the bound."""
    from recsys.features.tower_inputs import TowerPreprocessor
    from recsys.models.two_tower import fit_two_tower

    params = TwoTowerParams(loss="mse", epochs=epochs, patience=0)  # the rating loss: the FLOP bound's model
    timer = _EpochTimer()
    start = time.perf_counter()
    fit_two_tower(user_x, item_x, chunks, params, TowerPreprocessor(), extra_callbacks=[timer.callback])
    total = time.perf_counter() - start
    steady = timer.seconds[1:] or timer.seconds
    epoch_seconds = float(np.mean(steady))
    flops = train_flops_per_example(user_x.shape[1], item_x.shape[1], params.layers)
    bound = peak / flops
    eps = n_examples / epoch_seconds
    out = {
        "dataset": name,
        "examples": n_examples,
        "epochs": epochs,
        "epoch_seconds": epoch_seconds,
        "first_epoch_seconds": timer.seconds[0],
        "examples_per_second": eps,
        "total_seconds": total,
        "user_dim": int(user_x.shape[1]),
        "item_dim": int(item_x.shape[1]),
        "layers": list(params.layers),
        "batch_size": params.batch_size,
        "flops_per_example": flops,
        "peak_flops": peak,
        "bound_examples_per_second": bound,
        "ratio_to_bound": eps / bound,
    }
    logger.info("%s: %s", name, {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()})
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one line per dataset."""
    from recsys.models.two_tower import array_chunks

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100k,20m", help="comma-separated: 100k, 20m")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_MOVIELENS_DIR)
    ap.add_argument("--work", type=Path, default=PROJECT_ROOT / "data" / "bench" / "synthetic-20m")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "data" / "reports" / "two_tower_speed")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    peak = peak_matmul_flops()
    logger.info("peak float32 matmul: %.1f GFLOP/s", peak / 1e9)
    rows = []
    ux, ix, (u, i, r), n = _ml100k(args.data_dir)
    if "100k" in args.sizes:
        rows.append(measure("ml-100k", ux, ix, array_chunks(u, i, r), n, args.epochs, peak))
    if "20m" in args.sizes:
        user_x, item_x, folder, n20 = _synthetic_20m(args.work, (ux.shape[1], ix.shape[1]))
        rows.append(measure("synthetic-20m", user_x, item_x, lambda: _stg_chunks(folder), n20, args.epochs, peak))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "two_tower_speed.json").write_text(json.dumps(rows, indent=2))
    head = f"{'dataset':<15}{'examples':>12}{'epoch_s':>10}{'ex/s':>12}{'bound ex/s':>13}{'ratio':>8}{'GFLOP/ex':>10}"
    lines = [head] + [
        f"{x['dataset']:<15}{x['examples']:>12,}{x['epoch_seconds']:>10.2f}{x['examples_per_second']:>12,.0f}"
        f"{x['bound_examples_per_second']:>13,.0f}{x['ratio_to_bound']:>8.3f}{x['flops_per_example'] / 1e9:>10.5f}"
        for x in rows
    ]
    logger.info(
        "results:\n%s\n(peak %.1f GFLOP/s; wrote %s)", "\n".join(lines), peak / 1e9, args.out / "two_tower_speed.json"
    )


if __name__ == "__main__":
    main()
