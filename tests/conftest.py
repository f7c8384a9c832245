"""Shared fixtures: the verified MovieLens 100K, Spark (a local session, a standalone cluster), small data."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from recsys.config import PROJECT_ROOT
from recsys.data.sources import ML100K_GENRES
from recsys.data.synthetic import generate

# Airflow reads its configuration once, at first import: point it at a throwaway
# home before any test imports it, so tests never touch ./data or ~/airflow.
_AIRFLOW_TEST_HOME = Path(tempfile.mkdtemp(prefix="recsys-tests-"))
from recsys.orchestration import airflow_env  # noqa: E402

for _k, _v in airflow_env(_AIRFLOW_TEST_HOME).items():
    if _k.startswith("AIRFLOW") or _k in ("RECSYS_HOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PATH"):
        os.environ[_k] = _v

from tests.fixtures.spark_cluster import spark_cluster  # noqa: E402, F401  (a fixture: pytest finds it here)

ML100K = Path(os.environ.get("RECSYS_ML100K_DIR", PROJECT_ROOT.parent / "shared" / "data" / "movielens" / "ml-100k"))


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The verified MovieLens 100K in ../shared (tests fail, not skip, when it is missing)."""
    assert (ML100K / "u.data").is_file(), f"MovieLens 100K not found at {ML100K}"
    return ML100K


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run."""
    from recsys.spark import get_spark

    session = get_spark("recsys-tests", master="local[2]")
    yield session
    session.stop()


def write_ml100k_layout(path: Path, *, n_users: int = 120, n_items: int = 80, seed: int = 7) -> Path:
    """Write small synthetic data in the MovieLens 100K file layout, with fold ``u1``.

    Args:
        path: Folder to create.
        n_users: Users.
        n_items: Items.
        seed: Generator seed.

    Returns:
        ``path``, holding u.data, u.item (latin-1), u.user, u.genre, u1.base, u1.test.
    """
    data = generate(
        n_users=n_users, n_items=n_items, n_groups=3, mean_ratings_per_user=20, min_ratings_per_user=10, seed=seed
    )
    path.mkdir(parents=True, exist_ok=True)
    r = data.ratings
    lines = [f"{u}\t{i}\t{int(x)}\t{t}" for u, i, x, t in zip(r.user_id, r.item_id, r.rating, r.ts, strict=True)]
    (path / "u.data").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(seed)
    test = rng.random(len(lines)) < 0.2
    (path / "u1.base").write_text("\n".join(x for x, t in zip(lines, test, strict=True) if not t) + "\n")
    (path / "u1.test").write_text("\n".join(x for x, t in zip(lines, test, strict=True) if t) + "\n")
    item_lines = []
    for it in data.items.itertuples():
        flags = "|".join("1" if g in it.genres else "0" for g in ML100K_GENRES)
        item_lines.append(f"{it.item_id}|{it.title} Café|01-Jan-{it.year}||http://example.invalid/{it.item_id}|{flags}")
    (path / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))
    (path / "u.user").write_text(
        "\n".join(f"{u.user_id}|{u.age}|{u.gender}|{u.occupation}|0000{u.user_id}" for u in data.users.itertuples())
        + "\n"
    )
    (path / "u.genre").write_text("\n".join(f"{g}|{k}" for k, g in enumerate(ML100K_GENRES)) + "\n")
    return path


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (``bench/`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", PROJECT_ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module
