"""What every benchmark writes besides its figures: the environment and strict JSON."""

from __future__ import annotations

import importlib.metadata
import math
import platform
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
