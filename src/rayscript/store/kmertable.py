"""A rank's k-mer table: sorted numpy runs, split into buckets.

Each of ``NBUCKETS`` buckets holds three parallel arrays sorted by id: ``ids`` (uint64),
``counts`` (uint32) and ``edges`` (uint8): 13 bytes per distinct k-mer at rest.  A k-mer's bucket
is the top bits of its splitmix64 hash, so buckets are even and a batch insert touches each
bucket once with a linear merge (no re-sort of what is stored, and the transient memory is one
bucket's size).  Batch insert, batch lookup and the single-item operations are vectorized.
Counts saturate at 2**32 - 1 (never wrap); the number of saturated additions is reported.
"""

from __future__ import annotations

import numpy as np

from .partition import mix64_array

NBUCKETS = 64
_SHIFT = np.uint64(64 - 6)
COUNT_MAX = np.iinfo(np.uint32).max


def bucket_of(ids):
    return (mix64_array(ids) >> _SHIFT).astype(np.intp)


def reduce_occurrences(ids, edges):
    """Sorted unique ids with their occurrence counts and OR-ed edges."""
    if len(ids) == 0:
        return ids.astype(np.uint64), np.empty(0, np.uint64), np.empty(0, np.uint8)
    order = np.argsort(ids)
    sids = ids[order]
    sedges = edges[order]
    flag = np.empty(len(sids), dtype=bool)
    flag[0] = True
    np.not_equal(sids[1:], sids[:-1], out=flag[1:])
    starts = np.flatnonzero(flag)
    counts = np.diff(np.append(starts, len(sids))).astype(np.uint64)
    return sids[starts], counts, np.bitwise_or.reduceat(sedges, starts)


class KmerTable:
    def __init__(self):
        self.k: int | None = None
        self.ids = [np.empty(0, np.uint64) for _ in range(NBUCKETS)]
        self.counts = [np.empty(0, np.uint32) for _ in range(NBUCKETS)]
        self.edges = [np.empty(0, np.uint8) for _ in range(NBUCKETS)]
        self.saturated = 0

    # --- sizes --------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(a) for a in self.ids)

    def total(self) -> int:
        return int(sum(int(c.sum(dtype=np.uint64)) for c in self.counts))

    def nbytes(self) -> int:
        return sum(a.nbytes + c.nbytes + e.nbytes for a, c, e in zip(self.ids, self.counts, self.edges))

    # --- batch operations ------------------------------------------------------
    def add_occurrences(self, ids, edges) -> None:
        """Count raw k-mer occurrences (ids with the edge mask of each occurrence)."""
        uids, counts, uedges = reduce_occurrences(ids, edges)
        self.add_counted(uids, counts, uedges)

    def add_counted(self, ids, counts, edges) -> None:
        """Merge sorted unique ids with counts (uint64) and edges into the table."""
        if len(ids) == 0:
            return
        buckets = bucket_of(ids)
        order = np.argsort(buckets, kind="stable")  # ids stay sorted inside each bucket
        bounds = np.searchsorted(buckets[order], np.arange(NBUCKETS + 1))
        ids, counts, edges = ids[order], counts[order], edges[order]
        for b in range(NBUCKETS):
            lo, hi = bounds[b], bounds[b + 1]
            if hi > lo:
                self._merge(b, ids[lo:hi], counts[lo:hi], edges[lo:hi])

    def _merge(self, b, ids, counts, edges) -> None:
        old_ids, old_counts, old_edges = self.ids[b], self.counts[b], self.edges[b]
        pos = np.searchsorted(old_ids, ids)
        pos_c = np.minimum(pos, max(len(old_ids) - 1, 0))
        present = (pos < len(old_ids)) & (old_ids[pos_c] == ids) if len(old_ids) else np.zeros(len(ids), bool)
        if present.any():
            at = pos[present]
            summed = old_counts[at].astype(np.uint64) + counts[present]
            over = summed > COUNT_MAX
            if over.any():
                self.saturated += int(over.sum())
                summed = np.minimum(summed, COUNT_MAX)
            old_counts[at] = summed.astype(np.uint32)
            old_edges[at] |= edges[present]
        new = ~present
        if not new.any():
            return
        nids, ncounts, nedges = ids[new], counts[new], edges[new]
        over = ncounts > COUNT_MAX
        if over.any():
            self.saturated += int(over.sum())
            ncounts = np.minimum(ncounts, COUNT_MAX)
        npos = pos[new] + np.arange(len(nids))
        total = len(old_ids) + len(nids)
        keep = np.ones(total, dtype=bool)
        keep[npos] = False
        out_ids = np.empty(total, np.uint64)
        out_counts = np.empty(total, np.uint32)
        out_edges = np.empty(total, np.uint8)
        out_ids[npos], out_counts[npos], out_edges[npos] = nids, ncounts, nedges
        out_ids[keep], out_counts[keep], out_edges[keep] = old_ids, old_counts, old_edges
        self.ids[b], self.counts[b], self.edges[b] = out_ids, out_counts, out_edges

    def absorb(self, other: KmerTable) -> None:
        """Merge another table into this one (the staging table of a load)."""
        if len(self) == 0:
            self.ids, self.counts, self.edges = other.ids, other.counts, other.edges
            self.saturated += other.saturated
            return
        if len(other) == 0:
            return
        for b in range(NBUCKETS):
            self._merge(b, other.ids[b], other.counts[b].astype(np.uint64), other.edges[b])
            other.ids[b] = other.counts[b] = other.edges[b] = None
        self.saturated += other.saturated

    def lookup(self, ids):
        """(counts, edges) of each id; count 0 where absent."""
        ids = np.asarray(ids, dtype=np.uint64)
        counts = np.zeros(len(ids), np.uint32)
        edges = np.zeros(len(ids), np.uint8)
        if len(ids) == 0:
            return counts, edges
        buckets = bucket_of(ids)
        for b in np.unique(buckets):
            sel = np.flatnonzero(buckets == b)
            table = self.ids[b]
            if len(table) == 0:
                continue
            pos = np.minimum(np.searchsorted(table, ids[sel]), len(table) - 1)
            hit = table[pos] == ids[sel]
            counts[sel[hit]] = self.counts[b][pos[hit]]
            edges[sel[hit]] = self.edges[b][pos[hit]]
        return counts, edges

    def histogram(self, limit: int | None = None):
        """Array h where h[c] is the number of k-mers seen c times (up to ``limit``)."""
        parts = [np.bincount(c) for c in self.counts if len(c)]
        if not parts:
            return np.zeros(1, np.int64)
        n = max(len(p) for p in parts)
        out = np.zeros(n, np.int64)
        for p in parts:
            out[: len(p)] += p
        return out

    def select(self, b: int, lo: int = 1, hi: int | None = None):
        """Ids and counts of bucket b with lo <= count <= hi."""
        c = self.counts[b]
        mask = c >= lo
        if hi is not None:
            mask &= c <= hi
        return self.ids[b][mask], c[mask]

    # --- single items ------------------------------------------------------------
    def _find(self, ident: int):
        b = int(bucket_of(np.array([ident], np.uint64))[0])
        table = self.ids[b]
        pos = int(np.searchsorted(table, np.uint64(ident)))
        return b, pos, pos < len(table) and int(table[pos]) == ident

    def get(self, ident: int):
        b, pos, found = self._find(ident)
        if not found:
            return None
        return int(self.counts[b][pos]), int(self.edges[b][pos])

    def set(self, ident: int, count: int, edges: int) -> None:
        b, pos, found = self._find(ident)
        if found:
            self.counts[b][pos] = count
            self.edges[b][pos] = edges
        else:
            self.ids[b] = np.insert(self.ids[b], pos, np.uint64(ident))
            self.counts[b] = np.insert(self.counts[b], pos, np.uint32(count))
            self.edges[b] = np.insert(self.edges[b], pos, np.uint8(edges))

    def remove(self, ident: int) -> bool:
        b, pos, found = self._find(ident)
        if found:
            self.ids[b] = np.delete(self.ids[b], pos)
            self.counts[b] = np.delete(self.counts[b], pos)
            self.edges[b] = np.delete(self.edges[b], pos)
        return found
