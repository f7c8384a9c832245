"""Per-user candidates of one block of users: every source's proposals, merged, seen items never present.

A candidate proposed by several sources keeps all of them (a bit per source, in
:data:`~recsys.retrieval.sources.SOURCES` order); the first of them in that order is its
*primary* source, whose detail (the rated item, the genre, the segment) the reason names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsys.retrieval.sources import SOURCE_FUNCTIONS, SOURCES, SourceData

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidates:
    """One block's candidates; grain one (user, item), rows by user then primary source then source order.

    Attributes:
        user_idx: ``[m]`` user index.
        item_idx: ``[m]`` item index.
        sources: ``[m]`` bit mask of the sources that proposed it (bit ``s`` = ``SOURCES[s]``).
        primary: ``[m]`` index in ``SOURCES`` of its first source.
        detail: ``[m]`` the primary source's detail (see :class:`~recsys.retrieval.sources.Proposals`).
        proposed: Proposals per source before merging (duplicates across sources counted in each).
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    sources: np.ndarray
    primary: np.ndarray
    detail: np.ndarray
    proposed: dict[str, int]

    def __len__(self) -> int:
        return int(self.user_idx.size)


def source_names(mask: np.ndarray) -> np.ndarray:
    """``[m]`` object array of ``+``-joined source names of bit masks, e.g. ``similar+popular``."""
    mask = np.asarray(mask, dtype=np.int64)
    table = np.array(
        ["+".join(s for b, s in enumerate(SOURCES) if m >> b & 1) for m in range(1 << len(SOURCES))], dtype=object
    )
    return table[mask]


def gather(data: SourceData, users: np.ndarray, sources: tuple[str, ...] = SOURCES) -> Candidates:
    """Every named source's proposals for ``users``, merged into one row per (user, item).

    Args:
        data: The run's source inputs (seen items, neighbours, popularity, ...).
        users: ``[b]`` user indices of the block.
        sources: Sources to ask (default: all; a source with quota 0 proposes nothing).

    Returns:
        The block's candidates.
    """
    users = np.asarray(users, dtype=np.int64)
    rows, items, codes, orders, details = [], [], [], [], []
    proposed: dict[str, int] = {}
    for name in sources:
        p = SOURCE_FUNCTIONS[name](data, users)
        proposed[name] = len(p)
        if len(p):
            rows.append(p.row)
            items.append(p.item)
            codes.append(np.full(len(p), SOURCES.index(name), dtype=np.int64))
            orders.append(p.order)
            details.append(p.detail)
    if not rows:
        z = np.zeros(0, dtype=np.int64)
        return Candidates(z, z, z, z, z, proposed)
    row, item, code = np.concatenate(rows), np.concatenate(items), np.concatenate(codes)
    order, detail = np.concatenate(orders), np.concatenate(details)
    o = np.lexsort((order, code, item, row))
    row, item, code, order, detail = row[o], item[o], code[o], order[o], detail[o]
    first = np.r_[True, (row[1:] != row[:-1]) | (item[1:] != item[:-1])]
    starts = np.flatnonzero(first)
    mask = np.bitwise_or.reduceat(np.left_shift(1, code), starts)
    row, item, primary, order, detail = row[starts], item[starts], code[starts], order[starts], detail[starts]
    o = np.lexsort((item, order, primary, row))
    return Candidates(users[row[o]], item[o], mask[o], primary[o], detail[o], proposed)
