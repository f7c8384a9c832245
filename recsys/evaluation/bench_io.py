"""What every benchmark writes besides its figures: environment, strict JSON, atomic files."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from recsys.config import PROJECT_ROOT

#: Report key -> distributions to ask for its version (the first installed one answers).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "pyspark": ("pyspark",),
    "numpy": ("numpy",),
    "implicit": ("implicit",),
    "surprise": ("scikit-surprise",),
}


def versions() -> dict[str, str | None]:
    """Python's and the libraries' versions (``None`` where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dists in LIBRARIES.items():
        out[key] = None
        for dist in dists:
            try:
                out[key] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def git_sha(root: Path = PROJECT_ROOT) -> str | None:
    """``HEAD`` of the project's checkout, ``-dirty`` when it has changes; ``None`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def jsonable(x: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, tuples -> lists, paths -> str (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
