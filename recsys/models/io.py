"""Loading a saved model folder, whatever its kind."""

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


def load_model(path: Path | str) -> Any:
    """The model saved in folder ``path``: ``AutoRecModel``, ``EASEModel``, ``BlendModel`` or ``CFModel``.

    The kind is read from ``params.json`` (``kind``: the params class name), which
    every model's ``save`` writes.
    """
    path = Path(path)
    kind = read_params(path).get("kind")
    if kind == "AutoRecParams":
        from recsys.models.autorec import AutoRecModel

        return AutoRecModel.load(path)
    if kind == "TwoTowerParams":
        from recsys.models.two_tower import TwoTowerModel

        return TwoTowerModel.load(path)
    if kind == "EASEParams":
        from recsys.models.ease import EASEModel

        return EASEModel.load(path)
    if kind == "BlendParams":
        from recsys.models.blend import BlendModel

        return BlendModel.load(path)
    from recsys.models.cf import CFModel

    return CFModel.load(path)
