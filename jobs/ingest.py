"""Spark job: read a raw source into the staged tables of one run date.

Writes ``stg_ratings``, ``stg_items``, ``stg_users`` (and ``stg_splits`` when the
source has official folds) under ``--lake`` as the ``--run-date`` partition.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from recsys.data import movielens, synthetic
from recsys.spark import get_spark, write_table_partition
from schemas import table

logger = logging.getLogger("recsys.jobs.ingest")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", choices=["synthetic", "ml-100k"], required=True)
    p.add_argument("--lake", type=Path, required=True, help="lake root of this dataset")
    p.add_argument("--run-date", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--movielens-dir", type=Path)
    p.add_argument("--fold", default="u1")
    p.add_argument("--n-users", type=int, default=3000)
    p.add_argument("--n-items", type=int, default=2000)
    p.add_argument("--n-groups", type=int, default=8)
    p.add_argument("--mean-ratings-per-user", type=float, default=45.0)
    p.add_argument("--min-ratings-per-user", type=int, default=15)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    start = time.monotonic()
    spark = get_spark(f"recsys-ingest-{args.dataset}")
    if args.dataset == "synthetic":
        data = synthetic.generate(
            n_users=args.n_users,
            n_items=args.n_items,
            n_groups=args.n_groups,
            mean_ratings_per_user=args.mean_ratings_per_user,
            min_ratings_per_user=args.min_ratings_per_user,
            seed=args.seed,
        )
        frames = {
            "stg_ratings": spark.createDataFrame(data.ratings, schema=table("stg_ratings").spark),
            "stg_items": spark.createDataFrame(data.items, schema=table("stg_items").spark),
            "stg_users": spark.createDataFrame(data.users, schema=table("stg_users").spark),
        }
    else:
        if args.movielens_dir is None:
            raise SystemExit("--movielens-dir is required for ml-100k")
        frames = {
            "stg_ratings": movielens.read_ratings(spark, args.movielens_dir),
            "stg_items": movielens.read_items(spark, args.movielens_dir),
            "stg_users": movielens.read_users(spark, args.movielens_dir),
            "stg_splits": movielens.read_fold(spark, args.movielens_dir, args.fold),
        }
    for name, df in frames.items():
        write_table_partition(df, str(args.lake / name), args.run_date)
        logger.info("%s run_date=%s written", name, args.run_date)
    logger.info("ingest %s done in %.1fs", args.dataset, time.monotonic() - start)
    spark.stop()


if __name__ == "__main__":
    main()
