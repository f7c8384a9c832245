"""Spark job: build the modelling tables of one run date from the staged tables.

Reads ``stg_*`` at ``--run-date`` and the id maps of the latest earlier run,
writes ``user_map``, ``item_map``, ``ratings`` (with ``split``), ``items`` and
``users`` as the ``--run-date`` partition.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from recsys.features import tables
from recsys.spark import get_spark, write_table_partition
from schemas import table

logger = logging.getLogger("recsys.jobs.build_tables")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lake", type=Path, required=True, help="lake root of this dataset")
    p.add_argument("--run-date", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--test-fraction", type=float, default=0.2)
    return p.parse_args(argv)


def _previous_date(lake: Path, name: str, run_date: str) -> str | None:
    root = lake / name
    if not root.exists():
        return None
    dates = sorted(p.name.split("=", 1)[1] for p in root.iterdir() if p.name.startswith("run_date="))
    earlier = [d for d in dates if d < run_date]
    return earlier[-1] if earlier else None


def main(argv: list[str] | None = None) -> None:
    """Run the job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    start = time.monotonic()
    spark = get_spark("recsys-build-tables")

    def read(name: str, run_date: str):  # noqa: ANN202
        return spark.read.schema(table(name).spark).parquet(str(args.lake / name / f"run_date={run_date}"))

    stg_ratings = read("stg_ratings", args.run_date)
    stg_items = read("stg_items", args.run_date)
    stg_users = read("stg_users", args.run_date)

    maps = {}
    for name, id_col, idx_col, sources in (
        ("user_map", "user_id", "user_idx", [stg_ratings, stg_users]),
        ("item_map", "item_id", "item_idx", [stg_ratings, stg_items]),
    ):
        prev_date = _previous_date(args.lake, name, args.run_date)
        previous = read(name, prev_date) if prev_date else None
        ids = sources[0].select(id_col).unionByName(sources[1].select(id_col))
        maps[name] = tables.update_id_map(previous, ids, id_col, idx_col).cache()
        logger.info("%s: %d ids (previous run: %s)", name, maps[name].count(), prev_date)

    rated = tables.latest_per_pair(stg_ratings)
    if (args.lake / "stg_splits" / f"run_date={args.run_date}").exists():
        rated = tables.fold_split(rated, read("stg_splits", args.run_date))
    else:
        rated = tables.random_split(rated, seed=args.seed, test_fraction=args.test_fraction)
    outputs = {
        **maps,
        "ratings": tables.build_ratings(rated, maps["user_map"], maps["item_map"]),
        "items": tables.build_items(stg_items, maps["item_map"]),
        "users": tables.build_users(stg_users, maps["user_map"]),
    }
    for name, df in outputs.items():
        write_table_partition(df, str(args.lake / name), args.run_date)
        logger.info("%s run_date=%s written", name, args.run_date)
    logger.info("build_tables done in %.1fs", time.monotonic() - start)
    spark.stop()


if __name__ == "__main__":
    main()
