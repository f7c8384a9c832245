"""Spark job: read a raw source into the staged tables of one run date.

Writes ``stg_ratings``, ``stg_items``, ``stg_users``, ``stg_quarantine`` (and
``stg_splits`` / ``stg_tags`` / ``stg_events`` when the source has them) under
``--lake`` as the ``--run-date`` partition. Fails, after writing the
quarantine, when more than ``--max-bad-fraction`` of the input lines were
unusable.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from recsys.data.parsing import SourceError
from recsys.data.sources import Source, SyntheticSource, open_source
from recsys.features.quarantine import QuarantineExceeded, check_bad_fraction
from recsys.spark import get_spark, write_table_partition

logger = logging.getLogger("recsys.jobs.ingest")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", required=True, help="synthetic, or the name of a real data folder")
    p.add_argument("--lake", type=Path, required=True, help="lake root of this dataset")
    p.add_argument("--run-date", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-dir", type=Path, help="folder of real data (layout detected from its files)")
    p.add_argument("--fold", default="u1", help="official fold of MovieLens 100K")
    p.add_argument("--raw-dir", type=Path, help="cache of generated synthetic data")
    p.add_argument("--max-bad-fraction", type=float, default=0.01)
    p.add_argument("--n-users", type=int, default=3000)
    p.add_argument("--n-items", type=int, default=2000)
    p.add_argument("--n-groups", type=int, default=8)
    p.add_argument("--mean-ratings-per-user", type=float, default=45.0)
    p.add_argument("--min-ratings-per-user", type=int, default=15)
    return p.parse_args(argv)


def source_from_args(args: argparse.Namespace) -> Source:
    """The source the arguments name."""
    if args.dataset == "synthetic":
        params = {
            "n_users": args.n_users,
            "n_items": args.n_items,
            "n_groups": args.n_groups,
            "mean_ratings_per_user": args.mean_ratings_per_user,
            "min_ratings_per_user": args.min_ratings_per_user,
            "seed": args.seed,
        }
        key = "_".join(f"{k}={v}" for k, v in params.items())
        raw = args.raw_dir or args.lake.parent.parent / "raw"
        return SyntheticSource(raw / "synthetic" / key, params)
    if args.data_dir is None:
        raise SystemExit("--data-dir is required for real data")
    return open_source(args.data_dir, fold=args.fold)


def main(argv: list[str] | None = None) -> None:
    """Run the job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    start = time.monotonic()
    spark = get_spark(f"recsys-ingest-{args.dataset}")
    try:
        source = source_from_args(args)
        staged = source.read(spark, run_date=args.run_date)
        counts = {}
        for name, df in staged.tables().items():
            write_table_partition(df, str(args.lake / name), args.run_date)
            counts[name] = spark.read.parquet(str(args.lake / name / f"run_date={args.run_date}")).count()
            logger.info("%s run_date=%s written: %d rows", name, args.run_date, counts[name])
        quarantine = spark.read.parquet(str(args.lake / "stg_quarantine" / f"run_date={args.run_date}"))
        check_bad_fraction(quarantine, total_rows=sum(counts.values()), max_fraction=args.max_bad_fraction)
    except (FileNotFoundError, SourceError, QuarantineExceeded) as e:
        logger.error("ingest failed: %s", e)
        spark.stop()
        sys.exit(f"ingest failed: {e}")
    logger.info("ingest %s (%s) done in %.1fs", args.dataset, source.name, time.monotonic() - start)
    spark.stop()


if __name__ == "__main__":
    main()
