"""The reason shown with each recommendation: its primary source's template, then the other sources that agreed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.retrieval.sources import SOURCES

TEMPLATES: dict[str, str] = {
    "similar": "because you rated {detail}",
    "genre": "top in {detail}, a genre you watch often",
    "segment": "popular with viewers like you ({detail})",
    "embedding": "close to your taste profile",
    "new": "new in the catalogue, close to your taste",
    "popular": "popular with other viewers",
}
"""Reason template of each source; ``{detail}`` is the rated item's title, the genre or the segment."""

ALSO: dict[str, str] = {
    "similar": "similar to what you rated",
    "genre": "your favourite genres",
    "segment": "your segment",
    "embedding": "your taste profile",
    "new": "new",
    "popular": "popular",
}
"""How a reason names the other sources that proposed the item too."""

FALLBACK = "recommended for you"
"""The reason when a template's detail is unknown."""


@dataclass(frozen=True)
class Explainer:
    """Turns (primary source, detail, sources) into reasons.

    Attributes:
        titles: ``{item_idx: title}``.
        genres: Genre names by genre index.
        segments: Segment names by segment index.
    """

    titles: dict[int, str] = field(default_factory=dict)
    genres: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)

    def _detail(self, source: str, detail: int) -> str | None:
        if detail < 0:
            return None
        if source == "similar":
            return self.titles.get(detail)
        names = self.genres if source == "genre" else self.segments if source == "segment" else []
        return names[detail] if detail < len(names) else None

    def reasons(self, primary: np.ndarray, detail: np.ndarray, sources: np.ndarray) -> list[str]:
        """``[m]`` reasons.

        Args:
            primary: ``[m]`` index in ``SOURCES`` of each row's primary source.
            detail: ``[m]`` its detail (rated item, genre, segment index; -1 none).
            sources: ``[m]`` bit mask of every source that proposed the row.
        """
        out = []
        for p, d, m in zip(primary.tolist(), detail.tolist(), sources.tolist(), strict=True):
            name = SOURCES[p]
            template = TEMPLATES[name]
            if "{detail}" in template:
                value = self._detail(name, d)
                text = template.format(detail=value) if value else FALLBACK
            else:
                text = template
            others = [ALSO[s] for b, s in enumerate(SOURCES) if m >> b & 1 and b != p]
            out.append(f"{text} (also: {', '.join(others)})" if others else text)
        return out
