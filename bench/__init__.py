"""The benchmarks of ``bench/``: scripts, and the harness they share (``bench.harness``)."""
