"""Value bounds of the params dataclasses' fields, as ``Annotated`` types.

The params dataclasses are plain dataclasses (no validation when built in code); the
settings that derive from them (:func:`recsys.config.params_settings`) read these
bounds and refuse a value outside them, with the field's name, before any run starts.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt, Le, Lt

Count = Annotated[int, Ge(1)]
"""An integer of at least 1 (epochs, factors, batch sizes)."""

NonNegativeInt = Annotated[int, Ge(0)]
"""An integer of at least 0 (patience: 0 never stops early)."""

Positive = Annotated[float, Gt(0)]
"""A float above 0 (learning rates, weights)."""

NonNegative = Annotated[float, Ge(0)]
"""A float of at least 0 (regularisers, session lengths: 0 switches off)."""

Share = Annotated[float, Ge(0), Le(1)]
"""A share in ``[0, 1]``."""

OpenShare = Annotated[float, Gt(0), Lt(1)]
"""A share in ``(0, 1)``."""

BelowOne = Annotated[float, Ge(0), Lt(1)]
"""A share in ``[0, 1)``."""
