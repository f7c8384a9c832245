"""Retrieval speed and accuracy (issue 14): exact index, ANN, candidate stage, against faiss and Spark.

Every part runs in this process on seeded synthetic data except the candidate stage (a
child process, so its peak RSS is its own); every reference runs side by side with ours
in the same run, so the ratios hold on a busy machine even when the seconds do not.

* ``similar_items_*``: the 10 nearest other items of every item (squared L2), ``27,000 x
  64`` gaussian vectors. Ours: ``ExactIndex("l2").build(v).query(v, 10,
  exclude=np.arange(n))`` (float32 GEMM, a bounded filter, float64 re-check: the exact
  answer). Reference: raw ``faiss.IndexFlatL2`` on float32, ``k + 1`` results, the item
  itself dropped. Both timed from the vectors to the ids (index build included);
  ``similar_items_agreement`` is the fraction of items whose neighbour sets are identical.
* ``topk_*``: every user's 10 best items by inner product, ``138,000 x 27,000``, ``d = 64``.
  Ours: ``ExactIndex("ip")`` (the path of the ``embedding`` source and the neighbour
  index); reference: ``faiss.IndexFlatIP``. ``gemm_floor_s``: only the float32 products of
  the same user blocks (``np.matmul`` into a reused buffer, no selection), the time no
  exact method can beat on this machine.
* ``ann_*``: ``1,000,000`` clustered vectors (``ann_data``), ``ann_queries`` fresh
  queries from the same mixture. The ANN is the project's default
  (``RetrievalConfig().ann`` through :func:`recsys.retrieval.choice.make_index`, default
  parameters), the exact reference the project's ``FaissFlatIndex``;
  ``ann_recall_at_10`` by :func:`recsys.retrieval.choice.recall_at_k`, ``ann_speedup`` =
  exact query seconds / approximate query seconds, the exact query timed before and next to
  each approximate index, its fastest time kept (``ann_exact_query_times_s``).
  ``ann_ivf_*``: the same for ``faiss_ivf`` (default parameters). ``ann_hnsw_sweep`` / ``ann_ivf_sweep``: the query-time
  parameter (``ef_search`` / ``nprobe``) varied on the same built index, and the smallest
  value meeting both targets (``*_meets_targets_at``).
* ``candidates_*``: ``python -m bench.harness.serving_scale --users 138000 --items 27000``
  (the whole candidate + rank stage), its JSON merged as it prints it.
* ``*recommend_for_all*``: Spark ALS's ``recommendForAllUsers`` against ours on the same
  factors (:mod:`bench.harness.spark_topk`), ``spark_recommend_for_all_shape``.

Timings are the best of ``--repeats`` interleaved runs (ours, reference, ours, ...).
``--quick`` runs every part at a small shape (under 2 minutes). Prints one JSON line
(strict JSON, also written to ``--out``); progress goes to stderr. Figures: bench/README.md.

    .venv/bin/python -m bench.retrieval --out /tmp/retrieval_full.json
    .venv/bin/python -m bench.retrieval --quick
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import serving_scale, spark_topk
from bench.harness.bench_io import environment, jsonable

logger = logging.getLogger("bench.retrieval")

K = 10
D = 64
SEED = 0
#: Threads faiss may use (the machine's 2 cores; our BLAS uses them too).
THREADS = 2
#: Users per block of the GEMM floor (as ``ExactIndex``'s default block).
GEMM_BLOCK = 1024


@dataclass(frozen=True)
class Shapes:
    """Sizes of every part of the benchmark.

    Attributes:
        similar_items: Items of the similar-items part.
        topk_users: Users of the all-user top-k part.
        topk_items: Items of the all-user top-k part.
        topk_users_timed: Users actually timed (the first ones; the seconds are scaled to ``topk_users``).
        ann_items: Indexed vectors of the ANN part.
        ann_queries: Queries of the ANN part.
        ann_clusters: Gaussian clusters of the ANN data.
        candidates_users: Users of the candidate stage.
        candidates_items: Items of the candidate stage.
        spark: ``(users, items, rank, k)`` of the Spark comparison.
    """

    similar_items: int
    topk_users: int
    topk_items: int
    topk_users_timed: int
    ann_items: int
    ann_queries: int
    ann_clusters: int
    candidates_users: int
    candidates_items: int
    spark: tuple[int, int, int, int]


FULL = Shapes(
    27_000, 138_000, 27_000, 138_000, 1_000_000, 2_000, 1_000, *serving_scale.FULL_SHAPE, spark_topk.FULL_SHAPE
)
QUICK = Shapes(5_000, 20_000, 5_000, 20_000, 100_000, 1_000, 100, *serving_scale.QUICK_SHAPE, spark_topk.QUICK_SHAPE)

#: Targets: key -> (threshold, "max" if the value must be at most the threshold else "min").
TARGETS: dict[str, tuple[float, str]] = {
    "similar_items_ratio": (2.0, "max"),
    "topk_ratio": (1.5, "max"),
    "ann_recall_at_10": (0.95, "min"),
    "ann_speedup": (10.0, "min"),
    "candidates_s": (300.0, "max"),
    "candidates_peak_rss_gib": (8.0, "max"),
}
#: Query-time parameters tried on the built approximate indexes.
HNSW_EF_SEARCH = (16, 32, 64, 128, 256, 512)
IVF_NPROBE = (8, 16, 32, 64, 128)
#: Within-cluster standard deviation of the ANN data (the centres' is 1).
ANN_SPREAD = 0.5


def _faiss() -> Any:
    import faiss

    faiss.omp_set_num_threads(THREADS)
    return faiss


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    """``[n, d]`` float32 standard normal vectors."""
    return np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)


def clustered(n: int, d: int, n_clusters: int, seed: int, *, spread: float = 0.5) -> np.ndarray:
    """``[n, d]`` float32 points of ``n_clusters`` gaussian clusters: ``N(0, I)`` centres plus ``N(0, spread^2 I)``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d), dtype=np.float32)
    out = rng.standard_normal((n, d), dtype=np.float32)
    out *= spread
    out += centres[rng.integers(0, n_clusters, n)]
    return out


def best_of(repeats: int, *fns: Callable[[], Any]) -> tuple[list[float], list[Any]]:
    """Run ``fns`` in turn ``repeats`` times; ``(best seconds of each, last result of each)``."""
    best = [float("inf")] * len(fns)
    results: list[Any] = [None] * len(fns)
    for _ in range(repeats):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[j] = fn()
            best[j] = min(best[j], time.perf_counter() - t0)
    return best, results


def identical_sets(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows of two ``[m, k]`` id arrays that hold the same set of ids."""
    return float((np.sort(a, axis=1) == np.sort(b, axis=1)).all(axis=1).mean())


def drop_self(ids: np.ndarray) -> np.ndarray:
    """``[n, k+1]`` neighbour ids of items ``0..n-1`` -> ``[n, k]``: the item itself removed (else the last one)."""
    n = ids.shape[0]
    mine = ids == np.arange(n)[:, None]
    mine[~mine.any(axis=1), -1] = True
    return ids[~mine].reshape(n, ids.shape[1] - 1)


def similar_items(n: int, repeats: int, seed: int = SEED) -> dict[str, Any]:
    """All items' 10 nearest others: ``ExactIndex("l2")`` against raw ``faiss.IndexFlatL2``."""
    from recsys.retrieval.index import ExactIndex

    faiss = _faiss()
    v = gaussian(n, D, seed)

    def ours() -> np.ndarray:
        return ExactIndex("l2").build(v).query(v, K, exclude=np.arange(n))[0]

    def ref() -> np.ndarray:
        index = faiss.IndexFlatL2(D)
        index.add(v)
        return drop_self(index.search(v, K + 1)[1])

    (t_ours, t_ref), (a, b) = best_of(repeats, ours, ref)
    out = {
        "similar_items_s": t_ours,
        "similar_items_faiss_s": t_ref,
        "similar_items_ratio": t_ours / t_ref,
        "similar_items_agreement": identical_sets(a, b),
        "similar_items_shape": [n, D, K],
        "similar_items_data": "gaussian N(0, I)",
    }
    logger.info("similar items %d x %d: ours %.2f s, faiss %.2f s (ratio %.2f)", n, D, t_ours, t_ref, t_ours / t_ref)
    return out


def topk(n_users: int, n_items: int, n_timed: int, repeats: int, seed: int = SEED) -> dict[str, Any]:
    """All users' 10 best items by inner product: ``ExactIndex("ip")``, ``faiss.IndexFlatIP`` and the GEMM floor."""
    from recsys.retrieval.index import ExactIndex

    faiss = _faiss()
    items = gaussian(n_items, D, seed + 1)
    users = gaussian(n_timed, D, seed + 2)  # the first n_timed of n_users: every user is drawn alike
    items_t = np.ascontiguousarray(items.T)
    buf = np.empty((GEMM_BLOCK, n_items), dtype=np.float32)

    def ours() -> np.ndarray:
        return ExactIndex("ip").build(items).query(users, K)[0]

    def ref() -> np.ndarray:
        index = faiss.IndexFlatIP(D)
        index.add(items)
        return index.search(users, K)[1]

    def gemm() -> None:
        for s in range(0, n_timed, GEMM_BLOCK):
            q = users[s : s + GEMM_BLOCK]
            np.matmul(q, items_t, out=buf[: q.shape[0]])

    (t_ours, t_ref, t_gemm), (a, b, _) = best_of(repeats, ours, ref, gemm)
    scale = n_users / n_timed
    out = {
        "topk_s": t_ours * scale,
        "topk_faiss_s": t_ref * scale,
        "topk_ratio": t_ours / t_ref,
        "gemm_floor_s": t_gemm * scale,
        "topk_over_gemm_floor": t_ours / t_gemm,
        "topk_agreement": identical_sets(a, b),
        "topk_users_timed": n_timed,
        "topk_shape": [n_users, n_items, D, K],
        "topk_data": "gaussian N(0, I) users and items",
    }
    logger.info(
        "top-k %d x %d (%d timed): ours %.2f s, faiss %.2f s, GEMM floor %.2f s (ratio %.2f)",
        n_users,
        n_items,
        n_timed,
        out["topk_s"],
        out["topk_faiss_s"],
        out["gemm_floor_s"],
        out["topk_ratio"],
    )
    return out


def _ids(index: Any, q: np.ndarray) -> np.ndarray:
    """``[m, K]`` ids of ``index``'s ``K`` nearest for each query."""
    return index.query(q, K)[0]


def _timed_query(index: Any, q: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    """``(ids, best seconds of repeats)`` of one query of every row of ``q``."""
    (t,), (ids,) = best_of(repeats, partial(_ids, index, q))
    return ids, t


def _meets(recall: float, speedup: float) -> bool:
    return recall >= TARGETS["ann_recall_at_10"][0] and speedup >= TARGETS["ann_speedup"][0]


def ann(
    n: int, n_queries: int, n_clusters: int, repeats: int, seed: int = SEED, *, spread: float = ANN_SPREAD
) -> dict[str, Any]:
    """The default ANN (and IVF) against exact flat search over ``n`` clustered vectors: recall@10, speedup, build.

    faiss's flat search slows down several times when another process takes a core (its
    threads wait on each other), so the exact query is timed again next to each
    approximate index's (interleaved) and every speedup divides the *fastest* exact time
    seen by the approximate time: a busy machine can only lower the speedups.
    """
    from recsys.config import RetrievalConfig
    from recsys.retrieval.choice import make_index, recall_at_k
    from recsys.retrieval.faiss_index import FaissFlatIndex

    settings = RetrievalConfig()
    x = clustered(n + n_queries, D, n_clusters, seed + 3, spread=spread)
    x, q = x[:n], x[n:]  # fresh queries from the same mixture, not indexed
    exact = FaissFlatIndex("l2").build(x)
    truth, first_s = _timed_query(exact, q, repeats)
    exact_times = [first_s]
    logger.info("ANN: exact flat query of %d x %d vectors: %.2f s for %d queries", n, D, first_s, n_queries)
    out: dict[str, Any] = {
        "ann_items": n,
        "ann_queries": n_queries,
        "ann_metric": "l2",
        "ann_data": f"{n_clusters} gaussian clusters, centres N(0, I), spread {spread}, d {D}; queries fresh draws",
        "ann_exact_index": "faiss_flat",
    }
    query_times: dict[str, float] = {}
    sweeps: dict[str, list[dict[str, Any]]] = {}
    kinds = [settings.ann, *(["faiss_ivf"] if settings.ann != "faiss_ivf" else [])]
    for kind in kinds:
        prefix = "ann" if kind == settings.ann else "ann_ivf"
        t0 = time.perf_counter()
        index = make_index(kind, settings, metric="l2", seed=seed).build(x)
        build_s = time.perf_counter() - t0
        (t_exact, query_s), (_, found) = best_of(repeats, partial(_ids, exact, q), partial(_ids, index, q))
        exact_times.append(t_exact)
        query_times[prefix] = query_s
        recall = recall_at_k(found, truth)
        params = (
            {
                "m": settings.hnsw_m,
                "ef_construction": settings.hnsw_ef_construction,
                "ef_search": settings.hnsw_ef_search,
            }
            if kind == "faiss_hnsw"
            else {"nlist": index._index.nlist, "nprobe": index._index.nprobe}  # the cells actually used
        )
        out |= {
            f"{prefix}_index": kind,
            f"{prefix}_params": params,
            f"{prefix}_build_s": build_s,
            f"{prefix}_query_s": query_s,
            f"{prefix}_recall_at_10": recall,
        }
        logger.info(
            "ANN %s %s: build %.1f s, query %.3f s (exact %.2f s next to it), recall@10 %.4f",
            kind,
            params,
            build_s,
            query_s,
            t_exact,
            recall,
        )
        name, values = ("ef_search", HNSW_EF_SEARCH) if kind == "faiss_hnsw" else ("nprobe", IVF_NPROBE)
        sweep = sweeps["ann_hnsw" if kind == "faiss_hnsw" else "ann_ivf"] = []
        for value in values:
            if kind == "faiss_hnsw":
                index.ef_search = value  # read at query time
            else:
                index._index.nprobe = value  # faiss's own attribute; the wrapper sets it once at build
            f, t = _timed_query(index, q, repeats)
            sweep.append({name: value, "recall_at_10": recall_at_k(f, truth), "query_s": t})
            logger.info("ANN %s %s=%d: recall@10 %.4f, query %.3f s", kind, name, value, sweep[-1]["recall_at_10"], t)
        del index
    exact_s = min(exact_times)
    out["ann_exact_query_s"] = exact_s
    out["ann_exact_query_times_s"] = exact_times
    for prefix, t in query_times.items():
        out[f"{prefix}_speedup"] = exact_s / t
    for key, sweep in sweeps.items():
        name = "ef_search" if key == "ann_hnsw" else "nprobe"
        for row in sweep:
            row["speedup"] = exact_s / row["query_s"]
        ok = [row[name] for row in sweep if _meets(row["recall_at_10"], row["speedup"])]
        out[f"{key}_sweep"] = sweep
        out[f"{key}_meets_targets_at"] = {name: min(ok)} if ok else None
    logger.info(
        "ANN speedups over the fastest exact query (%.2f s of %s): %s",
        exact_s,
        [round(t, 2) for t in exact_times],
        {p: round(exact_s / t, 1) for p, t in query_times.items()},
    )
    return out


def candidates(n_users: int, n_items: int) -> dict[str, Any]:
    """``bench.harness.serving_scale`` in a child process; its JSON keys, or ``candidates_error`` with the traceback."""
    cmd = [sys.executable, "-m", "bench.harness.serving_scale", "--users", str(n_users), "--items", str(n_items)]
    logger.info("candidate stage: %s", " ".join(cmd[1:]))
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    wall = time.perf_counter() - t0
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        logger.error("candidate stage failed (exit %d):\n%s", done.returncode, done.stderr[-5000:])
        return {"candidates_error": done.stderr[-5000:], "candidates_exit_code": done.returncode}
    out = json.loads(lines[-1])
    out["candidates_process_wall_s"] = wall
    logger.info("candidate stage: %s", out)
    return out


def spark_part(shape: tuple[int, int, int, int], seed: int = SEED) -> dict[str, Any]:
    """Spark's ``recommendForAllUsers`` against ours on the same factors (:func:`bench.harness.spark_topk.run`)."""
    users, items, rank, k = shape
    return spark_topk.run(users, items, rank, k, seed)


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {value, threshold, kind, ok}}`` for every target (``ok`` is ``None`` when the value is missing)."""
    out = {}
    for key, (threshold, kind) in TARGETS.items():
        value = result.get(key)
        ok = None if value is None else (value <= threshold if kind == "max" else value >= threshold)
        out[key] = {"value": value, "threshold": threshold, "kind": kind, "ok": ok}
    return out


def run_retrieval(
    shapes: Shapes, *, quick: bool, repeats: int, parts: tuple[str, ...], ann_spread: float = ANN_SPREAD
) -> dict[str, Any]:
    """Run the ``parts`` of the benchmark at ``shapes``; returns the flat JSON-able result."""
    start = time.perf_counter()
    load_start = os.getloadavg()
    result: dict[str, Any] = {"benchmark": "retrieval", "quick": quick, "repeats": repeats, "shapes": asdict(shapes)}
    if "similar" in parts:
        result |= similar_items(shapes.similar_items, repeats)
    if "topk" in parts:
        result |= topk(shapes.topk_users, shapes.topk_items, shapes.topk_users_timed, repeats)
    if "ann" in parts:
        result |= ann(shapes.ann_items, shapes.ann_queries, shapes.ann_clusters, repeats, spread=ann_spread)
    if "candidates" in parts:
        result |= candidates(shapes.candidates_users, shapes.candidates_items)
    if "spark" in parts:
        result |= spark_part(shapes.spark)
    result["targets"] = check_targets(result)
    result["targets_note"] = (
        "quick shapes: the targets are set for the full shapes" if quick else "full shapes (the targets' own)"
    )
    import faiss

    result["environment"] = environment(start, load_start, faiss=faiss.__version__)
    return result


PARTS = ("similar", "topk", "ann", "candidates", "spark")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures as one JSON line."""
    from recsys.files import write_atomic

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="every part at a small shape (under 2 minutes)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON line to this file")
    p.add_argument("--repeats", type=int, default=None, help="timed runs of each side, best kept (default 3, quick 2)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--ann-spread", type=float, default=ANN_SPREAD, help="within-cluster std of the ANN data")
    p.add_argument("--topk-users-timed", type=int, default=None, help="time only this many users and scale")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    parts = tuple(x.strip() for x in args.parts.split(",") if x.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown parts {unknown}; known: {', '.join(PARTS)}")
    shapes = QUICK if args.quick else FULL
    if args.topk_users_timed is not None:
        shapes = Shapes(**{**asdict(shapes), "topk_users_timed": min(args.topk_users_timed, shapes.topk_users)})
    repeats = args.repeats or (2 if args.quick else 3)
    result = run_retrieval(shapes, quick=args.quick, repeats=repeats, parts=parts, ann_spread=args.ann_spread)
    line = json.dumps(jsonable(result), allow_nan=False) + "\n"
    if args.out is not None:
        write_atomic(args.out, line)
    sys.stdout.write(line)


if __name__ == "__main__":
    main()
