"""The retrieval benchmark's ``--quick`` run (every part, small shapes): one JSON line, every key, exact answers.

Speed targets are read from the full run (``bench/README.md``), not asserted here; what is
asserted cannot depend on the machine's speed: our exact index equals faiss flat search, the
approximate index reaches its recall floor on clustered data, every user is served K, Spark's
``recommendForAllUsers`` agrees with our top K on the same factors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.config import PROJECT_ROOT, RetrievalConfig

pytestmark = [pytest.mark.spark, pytest.mark.slow]

KEYS = (
    "similar_items_s",
    "similar_items_faiss_s",
    "similar_items_ratio",
    "topk_s",
    "topk_faiss_s",
    "topk_ratio",
    "gemm_floor_s",
    "ann_items",
    "ann_recall_at_10",
    "ann_speedup",
    "candidates_s",
    "candidates_peak_rss_gib",
    "spark_recommend_for_all_s",
    "spark_recommend_for_all_shape",
    "ours_recommend_for_all_s",
)


def test_quick_run_prints_every_key_with_exact_answers(tmp_path: Path) -> None:
    out = tmp_path / "retrieval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.retrieval", "--quick", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1  # one JSON line on stdout; progress goes to stderr
    result = json.loads(lines[0])
    assert json.loads(out.read_text()) == result
    assert result["quick"] is True
    for key in KEYS:
        assert key in result and result[key] is not None, key
    assert result["similar_items_agreement"] == 1.0 and result["topk_agreement"] == 1.0
    assert result["ann_recall_at_10"] >= RetrievalConfig().recall_floor
    shape = result["shapes"]
    assert result["candidates_users_with_k"] == shape["candidates_users"]
    assert result["recommend_for_all_agreement_at_k"] >= 0.99
    assert result["spark_recommend_for_all_shape"] == shape["spark"]
