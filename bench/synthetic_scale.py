"""Speed and memory of the streaming synthetic generator at MovieLens scales.

Each size runs :func:`recsys.data.synthetic.write_parquet` in its own child process,
so its peak RSS (``ru_maxrss``) is its own. Prints one table and, with ``--json``,
writes the rows as JSON.

    .venv/bin/python bench/synthetic_scale.py --sizes 1m,20m --json /tmp/synthetic_scale.json

Sizes (ML-like: 20 ratings at least, mean 145, log-normal tail):

* ``1m``: 7,000 users x 3,700 items, about 1M ratings.
* ``20m``: 138,493 users (as MovieLens 20M) x 27,000 items, just over 20M ratings.

Without ``--out`` the data goes to a temporary folder that is deleted afterwards;
with ``--out DIR`` it is kept in ``DIR/<size>`` (and reused when it already holds the
same parameters: the row then says ``cached``, and the timing is meaningless).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "1m": dict(n_users=7_000, n_items=3_700, n_groups=20, mean_ratings_per_user=145.0, min_ratings_per_user=20),
    "5m": dict(n_users=34_600, n_items=13_500, n_groups=20, mean_ratings_per_user=145.0, min_ratings_per_user=20),
    "20m": dict(n_users=138_493, n_items=27_000, n_groups=20, mean_ratings_per_user=145.0, min_ratings_per_user=20),
}
SEED = 42
CHUNK_USERS = 5000


def run_one(size: str, out: Path) -> dict[str, Any]:
    """Generate one size into ``out`` in this process and measure it."""
    from recsys.data.synthetic import write_parquet

    t0 = time.perf_counter()
    files = write_parquet(out, **SIZES[size], seed=SEED, chunk_users=CHUNK_USERS)
    wall = time.perf_counter() - t0
    out_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "size": size,
        "ratings": files.n_ratings,
        "users": files.n_users,
        "items": files.n_items,
        "wall_s": round(wall, 2),
        "ratings_per_s": None if files.cached else round(files.n_ratings / wall),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KiB on Linux
        "output_mb": round(out_bytes / 2**20, 1),
        "parts": len(files.ratings),
        "cached": files.cached,
    }


def _child(size: str, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--_one", size, "--out", str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["size", "ratings", "users", "items", "wall_s", "ratings_per_s", "peak_rss_mb", "output_mb", "cached"]
    cells = [
        [f"{r[c]:,}" if isinstance(r[c], int) and not isinstance(r[c], bool) else str(r[c]) for c in cols] for r in rows
    ]
    width = [max(len(c), *(len(x[k]) for x in cells)) for k, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, width, strict=True))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(row, width, strict=True)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1m,20m", help=f"comma-separated, of {sorted(SIZES)}")
    p.add_argument("--out", type=Path, default=None, help="keep the data in OUT/<size> (default: temp, deleted)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    p.add_argument("--_one", default=None, help=argparse.SUPPRESS)  # child mode: one size, JSON on stdout
    args = p.parse_args(argv)

    if args._one is not None:
        print(json.dumps(run_one(args._one, args.out)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        p.error(f"unknown sizes {unknown}; known: {sorted(SIZES)}")
    rows = []
    for size in sizes:
        if args.out is not None:
            rows.append(_child(size, args.out / size))
        else:
            with tempfile.TemporaryDirectory(prefix=f"synthetic-{size}-") as tmp:
                rows.append(_child(size, Path(tmp) / size))
        print(f"{size}: {rows[-1]['ratings']:,} ratings in {rows[-1]['wall_s']}s", file=sys.stderr, flush=True)
    print(_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
