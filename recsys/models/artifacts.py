"""A model folder's ``params.json``: the params class's name (the folder's kind), its params and history.

Every model's ``save`` writes it through :func:`write_params`; :func:`recsys.models.registry.load_model`
reads the kind to find the loader.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Self


def params_from_dict(cls: type, values: dict) -> Any:
    """An instance of dataclass ``cls`` from ``values`` (e.g. read from JSON).

    Keys that are not fields are ignored (a manifest's extras); lists become tuples
    (JSON has no tuples; params fields are never lists).
    """
    names = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})


class FromDict:
    """Mixin of params dataclasses: ``from_dict`` through :func:`params_from_dict`."""

    @classmethod
    def from_dict(cls, values: dict) -> Self:
        """Build from a dict, ignoring keys that are not fields (lists become tuples)."""
        return params_from_dict(cls, values)


def write_params(path: Path, params: Any, history: dict) -> None:
    """Write ``params.json`` into folder ``path``: the kind (params class name), the params and the history."""
    meta = {"kind": type(params).__name__, "params": asdict(params), "history": history}
    (Path(path) / "params.json").write_text(json.dumps(meta, indent=2))


def read_params(path: Path) -> dict[str, Any]:
    """``params.json`` of a model folder as written by :func:`write_params`."""
    return json.loads((Path(path) / "params.json").read_text())
