"""Spark job: build the modelling tables of one run date from the staged tables.

Reads ``stg_*`` at ``--run-date`` and the id maps of the latest earlier run;
writes ``user_map``, ``item_map``, ``ratings`` (with ``split``),
``interactions`` (binary labels), ``items``, ``users``, ``feature_vocab``,
``item_features``, ``user_features`` and ``quarantine`` (every input row not
used, with why) as the ``--run-date`` partition.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from recsys.features import features, tables
from recsys.features.quarantine import QuarantineExceeded, check_bad_fraction
from recsys.lake import partition_dates
from recsys.spark import get_spark, write_table_partition
from schemas import table

logger = logging.getLogger("recsys.jobs.build_tables")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lake", type=Path, required=True, help="lake root of this dataset")
    p.add_argument("--run-date", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--split", choices=["auto", "fold", "random", "temporal"], default="auto")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--max-bad-fraction", type=float, default=0.01)
    p.add_argument("--like-threshold", type=float, default=4.0)
    p.add_argument("--positive-events", default="purchase,like")
    p.add_argument("--exposure-events", default="impression,view,click,watch")
    p.add_argument("--watch-event", default="watch")
    p.add_argument("--min-watch-seconds", type=float, default=30.0)
    return p.parse_args(argv)


def _previous_date(lake: Path, name: str, run_date: str) -> str | None:
    earlier = [d for d in partition_dates(lake, name) if d < run_date]
    return earlier[-1] if earlier else None


def main(argv: list[str] | None = None) -> None:
    """Run the job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    start = time.monotonic()
    spark = get_spark("recsys-build-tables")

    def path(name: str, run_date: str) -> Path:
        return args.lake / name / f"run_date={run_date}"

    def read(name: str, run_date: str):
        return spark.read.schema(table(name).spark).parquet(str(path(name, run_date)))

    def optional(name: str):
        return read(name, args.run_date) if path(name, args.run_date).exists() else None

    stg_ratings = read("stg_ratings", args.run_date)
    stg_items = read("stg_items", args.run_date)
    stg_users = read("stg_users", args.run_date)
    stg_quarantine = read("stg_quarantine", args.run_date)
    stg_splits, stg_tags, stg_events = optional("stg_splits"), optional("stg_tags"), optional("stg_events")

    user_sources = [stg_ratings.select("user_id"), stg_users.select("user_id")]
    if stg_events is not None:
        user_sources.append(stg_events.select("user_id"))
    maps = {}
    for name, id_col, idx_col, ids in (
        ("user_map", "user_id", "user_idx", user_sources),
        ("item_map", "item_id", "item_idx", [stg_items.select("item_id")]),
    ):
        prev_date = _previous_date(args.lake, name, args.run_date)
        previous = read(name, prev_date) if prev_date else None
        union = ids[0]
        for other in ids[1:]:
            union = union.unionByName(other)
        maps[name] = tables.update_id_map(previous, union, id_col, idx_col).cache()
        logger.info("%s: %d ids (previous run: %s)", name, maps[name].count(), prev_date)

    quarantined = [stg_quarantine, tables.superseded_pairs(stg_ratings)]
    rated, unknown = tables.unknown_items(tables.latest_per_pair(stg_ratings), maps["item_map"])
    quarantined.append(unknown)
    strategy = args.split
    if strategy == "auto":
        strategy = "fold" if stg_splits is not None else "random"
    if strategy == "fold":
        if stg_splits is None:
            sys.exit("build_tables failed: --split fold, but the source has no official fold")
        rated = tables.fold_split(rated, stg_splits)
    elif strategy == "temporal":
        rated = tables.temporal_split(rated, test_fraction=args.test_fraction)
    else:
        rated = tables.random_split(rated, seed=args.seed, test_fraction=args.test_fraction)
    ratings = tables.build_ratings(rated, maps["user_map"], maps["item_map"]).cache()

    if stg_events is not None:
        labels = tables.labels_from_events(
            stg_events,
            positive_events=args.positive_events.split(","),
            exposure_events=args.exposure_events.split(","),
            watch_event=args.watch_event,
            min_watch_seconds=args.min_watch_seconds,
        )
        labels, unknown_labels = tables.unknown_items(labels, maps["item_map"])
        quarantined.append(unknown_labels)
        split = tables.temporal_split if strategy == "temporal" else None
        labels = (
            split(labels, test_fraction=args.test_fraction)
            if split
            else tables.random_split(labels, seed=args.seed, test_fraction=args.test_fraction)
        )
        interactions = tables.build_interactions(labels, maps["user_map"], maps["item_map"])
    else:
        interactions = tables.labels_from_ratings(ratings, args.like_threshold)

    items = tables.build_items(stg_items, maps["item_map"]).cache()
    users = tables.build_users(stg_users, maps["user_map"]).cache()
    vocab = features.build_vocab(items, users).cache()
    quarantine = quarantined[0]
    for q in quarantined[1:]:
        quarantine = quarantine.unionByName(q)
    outputs = {
        **maps,
        "ratings": ratings,
        "interactions": interactions,
        "items": items,
        "users": users,
        "feature_vocab": vocab,
        "item_features": features.build_item_features(items, ratings, stg_tags, vocab, maps["item_map"]),
        "user_features": features.build_user_features(users, ratings, items, vocab),
        "quarantine": quarantine,
    }
    for name, df in outputs.items():
        write_table_partition(df, str(args.lake / name), args.run_date)
        logger.info("%s run_date=%s written", name, args.run_date)
    total = sum(read(n, args.run_date).count() for n in ("stg_ratings", "stg_items", "stg_users", "stg_quarantine"))
    try:
        check_bad_fraction(read("quarantine", args.run_date), total_rows=total, max_fraction=args.max_bad_fraction)
    except QuarantineExceeded as e:
        logger.error("build_tables failed: %s", e)
        spark.stop()
        sys.exit(f"build_tables failed: {e}")
    logger.info("build_tables done in %.1fs (split: %s)", time.monotonic() - start, strategy)
    spark.stop()


if __name__ == "__main__":
    main()
