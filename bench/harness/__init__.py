"""What the benchmarks share: reference libraries behind one interface, the cold-start split,
feature frames of a split, and the environment and strict JSON every benchmark writes.

Benchmarks and their tests import it; the pipeline never does (``tests/unit/test_import_graph.py``).
"""
