"""The owner's view of a set that has copies: every k-mer once, at the rank that owns it (used where
an algorithm must see each k-mer once whatever copies, moves and replicas put in the store)."""

from __future__ import annotations

import numpy as np

from ..runtime.collective import Exchange
from ..store import encoding
from ..store.types import Counts, Edges, Ids


def owner_copies(ex: Exchange, foreign: tuple | None, ids: Ids, counts: Counts,
                 edges: Edges) -> tuple[Ids, Counts, Edges]:
    """Every rank at once: the k-mers this rank owns, each once (its own copy, else the copy of the
    lowest rank that holds one), from this rank's ``ids, counts, edges`` and ``foreign``, the ones
    among them another rank owns (``Shard.off_owner``: ids, counts, edges, owners), which go to their
    owners.  Unsorted: this rank's own k-mers first, then those received."""
    if foreign is not None:
        f_ids, f_counts, f_edges, dest = foreign
        mine = ~np.isin(encoding.exact(ids), encoding.exact(f_ids))
        ids, counts, edges = ids[mine], counts[mine], edges[mine]
    else:
        f_ids, f_counts, f_edges, dest = ids[:0], counts[:0], edges[:0], np.zeros(0, np.int32)
    # by source rank: the lowest rank's copy comes first
    cand_ids, cand_counts, cand_edges = ex.gather(dest, f_ids, f_counts, f_edges)
    if len(cand_ids):
        held = np.isin(encoding.exact(cand_ids), encoding.exact(ids))
        cand_ids, cand_counts, cand_edges = cand_ids[~held], cand_counts[~held], cand_edges[~held]
        _, first = np.unique(encoding.exact(cand_ids), return_index=True)
        ids = np.concatenate((ids, cand_ids[first]))
        counts = np.concatenate((counts, cand_counts[first]))
        edges = np.concatenate((edges, cand_edges[first]))
    return ids, counts, edges


