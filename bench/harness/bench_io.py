"""What every benchmark writes besides its figures: the environment and strict JSON."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

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


def environment(start: float, load_start: tuple[float, float, float], **extra: Any) -> dict[str, Any]:
    """The run's environment: versions, CPUs, platform, load average at start and end, git sha, seconds.

    Args:
        start: ``time.perf_counter()`` when the run started.
        load_start: ``os.getloadavg()`` when the run started.
        **extra: More entries (e.g. another library's version), placed after the versions.
    """
    from recsys.files import git_sha

    return {
        **versions(),
        **extra,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "git": git_sha(),
        "seconds": round(time.perf_counter() - start, 1),
    }


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
