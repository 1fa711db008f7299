"""A rank's k-mer table: sorted numpy arrays, split into buckets.

Each of ``NBUCKETS`` buckets holds three parallel arrays sorted by id: ``ids`` (uint64),
``counts`` (uint32) and ``edges`` (uint8): 13 bytes per distinct k-mer at rest (21 for k > 31,
whose ids are two words, and 37 for k > 63, four words: see :mod:`rayscript.store.encoding`).  A
k-mer's bucket is the top 6 bits of its 2k-bit id, so the concatenation of the buckets is sorted, a
sorted batch splits into buckets with a binary search, and a batch insert touches each bucket once
with a linear merge (no re-sort of what is stored; the transient memory is one bucket's size).

A bucket stores *keys*: the ids themselves for k <= 31 and k > 63 (whose 32-byte elements numpy
compares byte by byte, in id order); for 31 < k <= 63 the ids with the bits of the high word
above bit 57 cleared (the bucket knows them), so that both words of every key stay below 2**62
and numpy's ordering of complex values is the order of the ids.

Counting raw occurrences sorts 64-bit words that hold the id and the 8 edge bits together
(``np.sort``, not ``argsort``): directly when 2k + 8 <= 64, and for larger k after a radix
partition by bucket, since inside a bucket the top 6 bits of the id are known; for k > 63, each
bucket's (id, edges) as 33-byte elements compared byte by byte.
Counts saturate at 2**32 - 1 (never wrap); the number of saturated additions is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from . import encoding
from .encoding import COUNT_MAX, LO_BITS, is_long, is_wide
from .types import Counts, Edges, Ids, LongIds, NarrowIds, WideIds, Words

# which entries of a bucket an operation takes: a boolean mask, index array or slice
Pick = npt.NDArray[np.bool_] | npt.NDArray[np.intp] | slice

BUCKET_BITS = 6
NBUCKETS = 1 << BUCKET_BITS
_EIGHT = np.uint64(8)
_KEY_HI_BITS = 58  # a wide key's high word keeps its bits below this one
_M58 = np.uint64((1 << _KEY_HI_BITS) - 1)
HIST_DENSE = 1 << 16  # histogram: counts below this are tallied in an array, those above it sorted
FEW = 64  # a bucket holding at most this many k-mers takes a large batch by splicing them in


def _grown_left(a: npt.NDArray[Any], m: int) -> npt.NDArray[Any] | None:
    """``a`` extended by the m elements in front of it in its own allocation (None when ``a``
    is not a view with that much room before it).  Only for arrays whose caller declared the
    room theirs (see :meth:`KmerTable.add_bucket`)."""
    base = a.base
    if m <= 0 or not isinstance(base, np.ndarray) or base.ndim != 1 or base.dtype != a.dtype \
            or not base.flags.c_contiguous or not a.flags.c_contiguous or not base.flags.writeable:
        return None
    offset, rest = divmod(a.__array_interface__["data"][0] - base.__array_interface__["data"][0], a.itemsize)
    if rest or offset < m or offset + len(a) > len(base):
        return None
    return base[offset - m:offset + len(a)]


def _shift_for(k: int | None) -> int:
    return max(2 * (k or 31) - BUCKET_BITS, 0)


def wide_buckets(ids: WideIds, k: int) -> npt.NDArray[np.intp]:
    """Bucket (top 6 bits of the 2k-bit id) of each wide id."""
    w = ids.view(np.uint64).reshape(-1, 2)
    hi_bits = 2 * k - LO_BITS
    if hi_bits >= BUCKET_BITS:
        return (w[:, 0] >> np.uint64(hi_bits - BUCKET_BITS)).astype(np.intp)
    need = BUCKET_BITS - hi_bits
    return ((w[:, 0] << np.uint64(need)) | (w[:, 1] >> np.uint64(LO_BITS - need))).astype(np.intp)


def long_buckets(ids: LongIds, k: int) -> npt.NDArray[np.intp]:
    """Bucket (top 6 bits of the 2k-bit id) of each long id."""
    w = encoding.long_words(ids)
    q, r = divmod(2 * k - BUCKET_BITS, 64)
    j = encoding.LONG_WORDS - 1 - q
    low = w[:, j] >> np.uint64(r)
    if r > 64 - BUCKET_BITS:
        low |= w[:, j - 1] << np.uint64(64 - r)
    return (low & np.uint64(NBUCKETS - 1)).astype(np.intp)


def wide_keys(ids: WideIds, copy: bool = True) -> WideIds:
    """Keys of wide ids: the high word's bits from 58 up cleared (a copy, or ``ids`` itself
    changed in place)."""
    out = ids.copy() if copy else ids
    out.view(np.uint64).reshape(-1, 2)[:, 0] &= _M58
    return out


def wide_ids(keys: WideIds, b: int, k: int) -> WideIds:
    """Ids of bucket b's wide keys: the high word's top bits put back (copies)."""
    out = keys.copy()
    hi_bits = 2 * k - LO_BITS
    if hi_bits > _KEY_HI_BITS:
        top = (np.uint64(b) << np.uint64(hi_bits - BUCKET_BITS)) & ~_M58
        out.view(np.uint64).reshape(-1, 2)[:, 0] |= top
    return out


def _runs(differs: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
    """(start, length) of each run of equal sorted values, from ``differs`` (value i + 1 differs
    from value i)."""
    starts = np.flatnonzero(np.concatenate(([True], differs)))
    return starts, np.diff(np.append(starts, len(differs) + 1)).astype(np.uint64)


def _reduce_packed(packed: Words, high: int) -> tuple[NarrowIds, npt.NDArray[np.uint64], Edges]:
    """Sort words of (id low bits << 8 | edges); return unique ids (with ``high`` OR-ed back
    in), occurrence counts (uint64) and OR-ed edges."""
    packed.sort()
    keys = packed >> _EIGHT
    starts, counts = _runs(keys[1:] != keys[:-1])
    edges = np.bitwise_or.reduceat((packed & np.uint64(0xFF)).astype(np.uint8), starts)
    ids = keys[starts]
    if high:
        ids |= np.uint64(high)
    return ids, counts, edges


def reduce_occurrences(ids: NarrowIds, edges: Edges, k: int) -> tuple[NarrowIds, npt.NDArray[np.uint64], Edges]:
    """Sorted unique ids with their occurrence counts and OR-ed edges (for 2k + 8 <= 64)."""
    if len(ids) == 0:
        return np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.uint8)
    packed = (ids << _EIGHT) | edges
    return _reduce_packed(packed, 0)


def pack_occurrences(ids: NarrowIds, edges: Edges, k: int) -> tuple[Words, Words]:
    """(bucket, packed word) of each occurrence of a k <= 31 k-mer: the word holds the id
    without its bucket bits, shifted up by 8, and the occurrence's edges (2k + 2 <= 64 bits)."""
    shift = _shift_for(k)
    buckets = ids >> np.uint64(shift)
    packed = ((ids & np.uint64((1 << shift) - 1)) << _EIGHT) | edges
    return buckets, packed


class OccurrenceBuffer:
    """Raw occurrences for a table of k <= 31, waiting per bucket as packed words (see
    :func:`pack_occurrences`) in a shared pool of ``pool_words`` words cut into pages.  A bucket
    holds a list of pages; when the pool runs out of pages, the bucket holding the most is sorted,
    reduced and merged into the table's bucket, and its pages are free again.  The buckets fill at
    about the same rate, so each flush takes about twice the average share (a fixed part per
    bucket would flush half as much per merge for the same memory), the pages are reused (no
    fresh memory to fault in), and each round of a load does about one round's worth of
    counting."""

    PAGE = 1 << 13  # words per page

    def __init__(self, table: KmerTable, pool_words: int, page: int = PAGE):
        self.table = table
        self.PAGE = page
        npages = max(pool_words // page, 2 * NBUCKETS)
        self.pages = np.empty((npages, page), np.uint64)
        self.free = list(range(npages - 1, -1, -1))
        self.held: list[list[int]] = [[] for _ in range(NBUCKETS)]
        self.last = [self.PAGE] * NBUCKETS  # words used in each bucket's last page (full: none open)

    def add(self, packed: Words, counts: npt.ArrayLike) -> None:
        """Take packed words grouped by bucket, ``counts[b]`` of bucket b in bucket order."""
        at = 0
        for b, n in enumerate(np.asarray(counts, np.int64).tolist()):
            while n:
                if self.last[b] == self.PAGE:
                    if not self.free:
                        self.flush(max(range(NBUCKETS), key=lambda x: len(self.held[x])))
                    self.held[b].append(self.free.pop())
                    self.last[b] = 0
                take = min(n, self.PAGE - self.last[b])
                self.pages[self.held[b][-1], self.last[b]:self.last[b] + take] = packed[at:at + take]
                self.last[b] += take
                at += take
                n -= take

    def flush(self, b: int) -> None:
        pages = self.held[b]
        if not pages:
            return
        used = (len(pages) - 1) * self.PAGE + self.last[b]
        run = self.pages[pages].reshape(-1)[:used]  # a copy: the pages are free again at once
        self.free.extend(pages)
        self.held[b] = []
        self.last[b] = self.PAGE
        ids, counts, edges = _reduce_packed(run, b << self.table.shift)
        self.table._merge(b, ids, counts, edges)

    def finish(self) -> None:
        for b in range(NBUCKETS):
            self.flush(b)
        self.pages = np.empty((0, self.PAGE), np.uint64)


class Column:
    """A field of every k-mer of a table (``field NAME = DEFAULT on SET``): one array per bucket,
    int64 or float64.  A bucket's values are aligned with its ids as they were when the values were
    last written (``basis``); the table's operations replace a bucket's arrays rather than change
    them in place, so when the ids have changed since (a load, a copy in, a delete) the values are
    carried over by id on the next look, and a k-mer new to the bucket gets the default."""

    __slots__ = ("basis", "default", "kind", "parts")

    def __init__(self, kind: str, default: int | float, table: KmerTable) -> None:
        self.kind = kind
        self.default = default
        dtype = self.dtype
        self.parts: list[npt.NDArray[Any]] = [np.full(len(a), default, dtype) for a in table.ids]
        self.basis: list[Ids] = list(table.ids)

    @property
    def dtype(self) -> type:
        return np.float64 if self.kind == "float" else np.int64

    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)


class KmerTable:
    def __init__(self, k: int | None = None):
        self.k: int | None = k
        self.canonical = True
        self.shift = _shift_for(k)
        self._kind(k)
        # keys, see the module's text; an empty bucket's arrays are one set of empty arrays shared by
        # every bucket (a bucket's arrays are replaced when it changes, never grown in place from
        # empty): an empty table, a set nothing was loaded into yet, costs a few hundred bytes
        self.ids: list[Ids] = [self.empty_ids()] * NBUCKETS
        self.counts: list[Counts] = [np.empty(0, np.uint32)] * NBUCKETS
        self.edges: list[Edges] = [np.empty(0, np.uint8)] * NBUCKETS
        self.saturated = 0
        # a load's staging table keeps counts in 16 bits where they fit (a bucket whose count
        # passes 65,535 turns to 32 bits); a table at rest has 32-bit counts
        self.small_counts = False
        # k-mers stored one at a time (put, copy, move) wait here, disjoint from the arrays,
        # until the next batch operation folds them in: single-item orders stay O(1).
        self.single: dict[int, tuple[int, int]] = {}
        # buckets whose arrays are lent to a bulk send in flight: copied before any in-place write
        self.lent: dict[int, int] = {}
        # fields of every k-mer (cascades written in the language), by name
        self.columns: dict[str, Column] = {}

    def _kind(self, k: int | None) -> None:
        """The id dtype's flags: ``wide`` (k > 31: several words), ``long`` (k > 63: four words)
        and ``two`` (31 < k <= 63: two words whose keys differ from the ids)."""
        self.wide, self.long = is_wide(k), is_long(k)
        self.two = self.wide and not self.long

    def empty_ids(self) -> Ids:
        return encoding.empty_ids(self.k)

    def as_ids(self, ids: npt.ArrayLike) -> Ids:
        """An id array of this table's dtype (one-word ids given to a table of k > 31 become two
        or four words)."""
        given = np.asarray(ids)
        dtype = encoding.id_dtype(self.k)
        if self.wide and given.dtype != dtype:
            return encoding.widen(given.astype(np.uint64), self.k)
        return cast("Ids", given.astype(dtype, copy=False))

    def keys(self, ids: Ids) -> Ids:
        """Bucket keys of an id array (the ids themselves for k <= 31 and k > 63)."""
        return wide_keys(cast("WideIds", ids)) if self.two else ids

    def ids_of(self, keys: Ids, b: int) -> Ids:
        """Ids of bucket b's keys (the keys themselves for k <= 31 and k > 63)."""
        return wide_ids(cast("WideIds", keys), b, self.k or 0) if self.two else keys

    def _key(self, ident: int) -> tuple[int, Any]:
        """(bucket, key) of one id (a numpy scalar: single-item orders stay cheap)."""
        b = min(ident >> self.shift, NBUCKETS - 1)
        if self.two:
            return b, wide_keys(cast("WideIds", encoding.ids_array([ident], self.k)))[0]
        if self.long:
            return b, encoding.ids_array([ident], self.k)[0]
        return b, np.uint64(ident)

    def lend(self, buckets: Iterable[int]) -> None:
        for b in buckets:
            self.lent[b] = self.lent.get(b, 0) + 1

    def give_back(self, buckets: Iterable[int]) -> None:
        for b in buckets:
            self.lent[b] -= 1
            if not self.lent[b]:
                del self.lent[b]

    def _writable(self, b: int) -> None:
        if b in self.lent:
            self.ids[b], self.counts[b], self.edges[b] = self.ids[b].copy(), self.counts[b].copy(), self.edges[b].copy()
            del self.lent[b]  # the lender keeps its views of the old arrays

    def _fold(self) -> None:
        if not self.single:
            return
        items = sorted(self.single.items())
        self.single = {}
        ids = encoding.ids_array([i for i, _ in items], self.k)
        counts = np.array([c for _, (c, _e) in items], np.uint64)
        edges = np.array([e for _, (_c, e) in items], np.uint8)
        self._add_sorted(ids, counts, edges)

    # --- fields ----------------------------------------------------------------
    def add_column(self, name: str, kind: str, default: int | float) -> None:
        """A field of every k-mer; an existing one of the same kind keeps its values."""
        self._fold()
        old = self.columns.get(name)
        if old is not None and old.kind == kind:
            old.default = default
            return
        self.columns[name] = Column(kind, default, self)

    def column(self, name: str, b: int) -> npt.NDArray[Any]:
        """Bucket b's values of field ``name``, aligned with its ids."""
        col = self.columns[name]
        ids = self.ids[b]
        if col.basis[b] is not ids:
            old, values = col.basis[b], col.parts[b]
            out: npt.NDArray[Any] = np.full(len(ids), col.default, col.dtype)
            if len(old) and len(ids):
                pos = np.searchsorted(old, ids)
                at = np.minimum(pos, len(old) - 1)
                hit = (pos < len(old)) & (old[at] == ids)
                out[hit] = values[at[hit]]
            col.parts[b], col.basis[b] = out, ids
        return col.parts[b]

    def column_flat(self, name: str) -> npt.NDArray[Any]:
        """Field ``name`` of every k-mer, in the order of the buckets (a copy)."""
        self._fold()
        return np.concatenate([self.column(name, b) for b in range(NBUCKETS)])

    def set_column_flat(self, name: str, values: npt.NDArray[Any]) -> None:
        """Write field ``name`` of every k-mer, in the order of the buckets."""
        col = self.columns[name]
        start = 0
        for b in range(NBUCKETS):
            n = len(self.ids[b])
            col.parts[b] = values[start:start + n].astype(col.dtype, copy=True)
            col.basis[b] = self.ids[b]
            start += n

    def column_values(self, name: str, ids: Ids) -> npt.NDArray[Any]:
        """Field ``name`` of the given k-mers (the default for one not held)."""
        self._fold()
        col = self.columns[name]
        out: npt.NDArray[Any] = np.full(len(ids), col.default, col.dtype)
        for b, idx, pos in self.positions(ids):
            out[idx] = self.column(name, b)[pos]
        return out

    def set_column_values(self, name: str, ids: Ids, values: npt.ArrayLike) -> None:
        """Write field ``name`` of the given k-mers (those not held are left alone)."""
        values = np.asarray(values)
        for b, idx, pos in self.positions(ids):
            self.column(name, b)[pos] = values[idx]

    # --- sizes --------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(a) for a in self.ids) + len(self.single)

    def total(self) -> int:
        return int(sum(int(c.sum(dtype=np.uint64)) for c in self.counts)) + sum(c for c, _ in self.single.values())

    def nbytes(self) -> int:
        arrays = sum(a.nbytes + c.nbytes + e.nbytes for a, c, e in zip(self.ids, self.counts, self.edges))
        arrays += sum(col.nbytes() for col in self.columns.values())
        return arrays + (5 + 8 * encoding.id_words(self.k)) * len(self.single)

    def set_k(self, k: int) -> None:
        """Fix the k-mer length; re-buckets what is stored if the bucketing changes."""
        self._fold()
        shift = _shift_for(k)
        if shift == self.shift and encoding.id_words(k) == encoding.id_words(self.k):
            self.k = k
            return
        # only k-mers put by number before k was known: all below 2**62, so one word
        ids = np.concatenate([self.ids_of(a, b) for b, a in enumerate(self.ids)])
        if self.wide:
            ids = np.array(encoding.int_ids(ids), np.uint64)
        counts = np.concatenate(self.counts)
        edges = np.concatenate(self.edges)
        order = np.argsort(ids)
        ids = encoding.widen(ids[order], k)
        self.k, self.shift = k, shift
        self._kind(k)
        self.ids = [self.empty_ids()] * NBUCKETS
        self.counts = [np.empty(0, np.uint32)] * NBUCKETS
        self.edges = [np.empty(0, np.uint8)] * NBUCKETS
        self.add_counted(ids, counts[order].astype(np.uint64), edges[order])

    def bucket_of(self, ids: Ids) -> npt.NDArray[np.intp]:
        if self.long:
            return long_buckets(cast("LongIds", ids), self.k or 0)
        if self.wide:
            return wide_buckets(cast("WideIds", ids), self.k or 0)
        return np.minimum(cast("NarrowIds", ids) >> np.uint64(self.shift), np.uint64(NBUCKETS - 1)).astype(np.intp)

    # --- batch operations ------------------------------------------------------
    def add_occurrences(self, ids: Ids, edges: Edges) -> None:
        """Count raw k-mer occurrences (ids with the edge mask of each occurrence)."""
        self._fold()
        if len(ids) == 0:
            return
        k = self.k or 31
        if self.long:
            self._add_long_occurrences(cast("LongIds", ids), edges)
            return
        if self.wide:
            self._add_wide_occurrences(cast("WideIds", ids), edges)
            return
        ids = cast("NarrowIds", ids)
        if 2 * k + 8 <= 64:
            self.add_counted(*reduce_occurrences(ids, edges, k))
            return
        # radix-partition by bucket; inside a bucket the id's top bits are known
        buckets = (ids >> np.uint64(self.shift)).astype(np.uint8)
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange(NBUCKETS + 1))
        low = np.uint64((1 << self.shift) - 1)
        packed = ((ids[order] & low) << _EIGHT) | edges[order]
        del order
        for b in range(NBUCKETS):
            lo, hi = bounds[b], bounds[b + 1]
            if hi > lo:
                uids, counts, uedges = _reduce_packed(packed[lo:hi], b << self.shift)
                self._merge(b, uids, counts, uedges)

    def _add_wide_occurrences(self, ids: WideIds, edges: Edges) -> None:
        """Count wide occurrences: partition by the top 12 bits of the id (a radix sort on
        uint16), then inside each part sort (id without those bits, edges) as two words of at
        most 61 bits each - a complex128 sort - and reduce runs of equal ids."""
        k = self.k or 0
        hi, lo = encoding.words(ids)
        hi_bits = 2 * k - LO_BITS
        if hi_bits >= 12:
            part = (hi >> np.uint64(hi_bits - 12)).astype(np.uint16)
            hi &= np.uint64((1 << (hi_bits - 12)) - 1)
        else:
            part = ((hi << np.uint64(12 - hi_bits)) | (lo >> np.uint64(LO_BITS - 12 + hi_bits))).astype(np.uint16)
            hi[:] = 0  # its bits are all in the part (lo's known top bits can stay: they are equal)
        order = np.argsort(part, kind="stable")
        part = part[order]
        bounds = np.searchsorted(part, np.arange(4097))
        # (id << 8 | edges) without the part's bits, as (upper, lower 61 bits)
        upper = (hi[order] << np.uint64(9)) | (lo[order] >> np.uint64(53))
        lower = ((lo[order] << _EIGHT) | edges[order]) & np.uint64((1 << 61) - 1)
        del hi, lo, order
        packed = encoding.join(upper, lower)
        del upper, lower
        per_bucket: list[list] = [[] for _ in range(NBUCKETS)]
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            run = np.sort(packed[bounds[p]:bounds[p + 1]])
            w = run.view(np.uint64).reshape(-1, 2)
            up, low = w[:, 0], w[:, 1]
            idlow = low >> _EIGHT
            starts, counts = _runs((up[1:] != up[:-1]) | (idlow[1:] != idlow[:-1]))
            uedges = np.bitwise_or.reduceat((low & np.uint64(0xFF)).astype(np.uint8), starts)
            u_up, u_low = up[starts], idlow[starts]
            # back to (hi, lo) words, then the part's bits back on top
            rlo = ((u_up & np.uint64(0x1FF)) << np.uint64(53)) | u_low
            rhi = u_up >> np.uint64(9)
            if hi_bits >= 12:
                rhi |= np.uint64(p) << np.uint64(hi_bits - 12)
            else:
                rhi |= np.uint64(p >> (12 - hi_bits))
            uids = encoding.join(rhi, rlo)
            per_bucket[p >> 6].append((uids, counts, uedges))
        for b, parts in enumerate(per_bucket):
            if parts:
                uids = np.concatenate([u for u, _, _ in parts])
                self._merge(b, wide_keys(uids), np.concatenate([c for _, c, _ in parts]),
                            np.concatenate([e for _, _, e in parts]))

    def _add_long_occurrences(self, ids: LongIds, edges: Edges) -> None:
        """Count long occurrences: partition by bucket, then inside each bucket sort (id, edges)
        as 33-byte elements (numpy compares them byte by byte: by id, then edges) and reduce runs
        of equal ids."""
        width = ids.dtype.itemsize
        buckets = self.bucket_of(ids).astype(np.uint8)
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange(NBUCKETS + 1))
        rows = np.empty((len(ids), width + 1), np.uint8)
        rows[:, :width] = ids.view(np.uint8).reshape(-1, width)[order]
        rows[:, width] = edges[order]
        del order
        packed = rows.view(f"V{width + 1}").reshape(-1)
        for b in range(NBUCKETS):
            lo, hi = int(bounds[b]), int(bounds[b + 1])
            if hi == lo:
                continue
            run = np.sort(packed[lo:hi]).view(np.uint8).reshape(-1, width + 1)
            uids = np.ascontiguousarray(run[:, :width]).view(ids.dtype).reshape(-1)
            starts, counts = _runs(uids[1:] != uids[:-1])
            uedges = np.bitwise_or.reduceat(run[:, width], starts)
            self._merge(b, uids[starts], counts, uedges)

    def add_counted(self, ids: Ids, counts: Counts, edges: Edges) -> None:
        """Merge sorted unique ids with counts (uint64) and edges into the table."""
        self._fold()
        self._add_sorted(ids, counts, edges)

    def add_bucket(self, b: int, ids: Ids, counts: Counts, edges: Edges, room: int = 0) -> None:
        """Merge one bucket's sorted unique k-mers, as a table of the same k holds them (a
        bulk copy's parts): no sortedness pass and no split.  ``room``: each array is a view
        with that many elements of its own allocation in front of it that nobody else uses (a
        receive buffer); a bucket here that holds only a few k-mers then takes the batch in
        place (new arrays the batch's size would cost a page fault per 4 KiB)."""
        self._fold()
        if len(ids) == 0:
            return
        ends = self.bucket_of(ids[[0, -1]])
        if int(ends[0]) != b or int(ends[1]) != b:
            raise ValueError(f"k-mers of bucket {b} expected, got buckets {int(ends[0])}..{int(ends[1])}")
        if self.two:
            ids = wide_keys(cast("WideIds", ids), copy=not room)  # arrays with room are the caller's own: keys in place
        self._merge(b, ids, counts, edges, room)

    def _add_sorted(self, ids: Ids, counts: Counts, edges: Edges) -> None:
        if len(ids) == 0:
            return
        for b, sel in self._by_bucket(ids):
            self._merge(b, self.keys(ids[sel]), counts[sel], edges[sel])

    def _count_array(self, values: Counts) -> Counts:
        """Counts (at most COUNT_MAX) as this table keeps them: 16 bits where they fit in a
        staging table, else 32."""
        if self.small_counts and (len(values) == 0 or int(values.max()) <= 0xFFFF):
            return values.astype(np.uint16, copy=False)
        return values.astype(np.uint32, copy=False)

    def _merge(self, b: int, ids: Ids, counts: Counts, edges: Edges, room: int = 0) -> None:
        old_ids, old_counts, old_edges = self.ids[b], self.counts[b], self.edges[b]
        if 0 < len(old_ids) <= FEW < len(ids):
            self._merge_few(b, ids, counts, edges, room)
            return
        if len(old_ids) == 0:
            over = counts > COUNT_MAX if counts.dtype.itemsize > 4 else None
            if over is not None and over.any():
                self.saturated += int(over.sum())
                counts = np.minimum(counts, COUNT_MAX)
            # adopt the arrays (callers hand over arrays they do not keep writing to)
            self.ids[b], self.counts[b] = ids, self._count_array(counts)
            self.edges[b] = edges
            return
        pos = np.searchsorted(old_ids, ids)
        pos_c = np.minimum(pos, max(len(old_ids) - 1, 0))
        present = (pos < len(old_ids)) & (old_ids[pos_c] == ids) if len(old_ids) else np.zeros(len(ids), bool)
        if present.any():
            self._writable(b)
            old_counts, old_edges = self.counts[b], self.edges[b]
            at = pos[present]
            summed = old_counts[at].astype(np.uint64) + counts[present]
            over = summed > COUNT_MAX
            if over.any():
                self.saturated += int(over.sum())
                summed = np.minimum(summed, COUNT_MAX)
            if old_counts.dtype == np.uint16 and int(summed.max()) > 0xFFFF:
                self.counts[b] = old_counts = old_counts.astype(np.uint32)
            old_counts[at] = summed.astype(old_counts.dtype)
            old_edges[at] |= edges[present]
        new = ~present
        if not new.any():
            return
        if new.all():
            nids, ncounts, nedges = ids, counts, edges
        else:
            nids, ncounts, nedges = ids[new], counts[new], edges[new]
        over = ncounts > COUNT_MAX
        if over.any():
            self.saturated += int(over.sum())
            ncounts = np.minimum(ncounts, COUNT_MAX)
        npos = pos[new] + np.arange(len(nids))
        total = len(old_ids) + len(nids)
        keep = np.ones(total, dtype=bool)
        keep[npos] = False
        out_ids = cast("Ids", np.empty(total, old_ids.dtype))
        ncounts = self._count_array(ncounts)
        out_counts = np.empty(total, np.promote_types(old_counts.dtype, ncounts.dtype))
        out_edges = np.empty(total, np.uint8)
        out_ids[npos], out_counts[npos], out_edges[npos] = nids, ncounts, nedges
        out_ids[keep], out_counts[keep], out_edges[keep] = old_ids, old_counts, old_edges
        self.ids[b], self.counts[b], self.edges[b] = out_ids, out_counts, out_edges

    def _merge_few(self, b: int, ids: Ids, counts: Counts, edges: Edges, room: int = 0) -> None:
        """Merge many sorted new entries into a bucket that holds only a few: look the few up
        among the many and splice the unmatched ones in between runs (memcpy speed); in place
        when the new arrays have ``room`` for them in front (see :meth:`add_bucket`)."""
        old_ids, old_counts, old_edges = self.ids[b], self.counts[b], self.edges[b]
        cut = np.searchsorted(ids, old_ids)
        at = np.minimum(cut, len(ids) - 1)
        match = (cut < len(ids)) & (ids[at] == old_ids)
        if match.any():  # the batch's arrays are handed over: update them in place
            summed = counts[at[match]].astype(np.uint64) + old_counts[match]
            if counts.dtype == np.uint32 and (summed > COUNT_MAX).any():
                self.saturated += int((summed > COUNT_MAX).sum())
                summed = np.minimum(summed, COUNT_MAX)
            counts[at[match]] = summed
            edges[at[match]] |= old_edges[match]
        if counts.dtype != np.uint32:
            over = counts > COUNT_MAX
            if over.any():
                self.saturated += int(over.sum())
                counts = np.minimum(counts, COUNT_MAX)
        keep = ~match
        rest_ids, rest_counts, rest_edges, rest_cut = old_ids[keep], old_counts[keep], old_edges[keep], cut[keep]
        if counts.dtype == np.uint32 and self._splice_in_place(b, (rest_ids, rest_counts, rest_edges),
                                                               (ids, counts, edges), rest_cut, room):
            return
        bounds = [0, *rest_cut.tolist(), len(ids)]
        out: list[npt.NDArray[Any]] = []
        for old, add, dtype in ((rest_ids, ids, ids.dtype), (rest_counts, counts, np.uint32),
                                (rest_edges, edges, np.uint8)):
            pieces = []
            for i in range(len(old)):
                pieces.append(add[bounds[i]:bounds[i + 1]])
                pieces.append(old[i:i + 1])
            pieces.append(add[bounds[-2] if len(old) else 0:])
            out.append(np.concatenate(pieces).astype(dtype, copy=False))
        out[1] = self._count_array(out[1])
        self.ids[b], self.counts[b], self.edges[b] = out

    def _splice_in_place(self, b: int, olds: tuple[Ids, Counts, Edges], news: tuple[Ids, Counts, Edges],
                         cuts: npt.NDArray[np.intp], room: int) -> bool:
        """Insert the few ``olds`` (old item i before new item ``cuts[i]``) into the ``news``
        arrays, grown to the left into their room: new items ahead of an insertion move left
        (memmove), the last run stays.  False (nothing changed) when they have no such room."""
        m = len(cuts)
        if m > room:
            return False
        grown: list[npt.NDArray[Any]] = []
        for a in news:
            g = _grown_left(a, m) if m else a
            if g is None:
                return False
            grown.append(g)
        cut_list = cuts.tolist()
        for old, out in zip(olds, grown):
            prev = 0
            for i, c in enumerate(cut_list):  # new items [prev, c) have i old ones before them
                out[prev + i:c + i] = out[m + prev:m + c]
                out[c + i] = old[i]
                prev = c
        self.ids[b], self.counts[b], self.edges[b] = grown[0], self._count_array(grown[1]), grown[2]
        return True

    def absorb(self, other: KmerTable) -> None:
        """Merge another table into this one (the staging table of a load)."""
        self._fold()
        other._fold()
        if len(self) == 0:
            self.ids, self.counts, self.edges = other.ids, other.counts, other.edges
            self.shift, self.k, self.canonical = other.shift, other.k, other.canonical
            self._kind(self.k)
            self.saturated += other.saturated
            for b in range(NBUCKETS):  # 32-bit counts at rest, one bucket at a time
                self.counts[b] = self.counts[b].astype(np.uint32, copy=False)
            return
        if len(other) == 0:
            return
        if other.k is not None and other.k != self.k:
            self.set_k(other.k)
        empty = (self.empty_ids(), np.empty(0, np.uint32), np.empty(0, np.uint8))
        for b in range(NBUCKETS):
            self._merge(b, other.ids[b], other.counts[b].astype(np.uint64), other.edges[b])
            other.ids[b], other.counts[b], other.edges[b] = empty  # what was absorbed is not kept twice
        self.saturated += other.saturated

    def lookup(self, ids: npt.ArrayLike) -> tuple[npt.NDArray[np.uint32], Edges]:
        """(counts, edges) of each id; count 0 where absent."""
        self._fold()
        asked = self.as_ids(ids)
        counts = np.zeros(len(asked), np.uint32)
        edges = np.zeros(len(asked), np.uint8)
        for b, idx, pos in self.positions(asked):
            counts[idx] = self.counts[b][pos]
            edges[idx] = self.edges[b][pos]
        return counts, edges

    def positions(self, ids: Ids) -> Iterator[tuple[int, npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
        """Where the held ones of ``ids`` (this table's dtype) are: (bucket, their indices in ``ids``,
        their positions in the bucket), bucket by bucket; ids not held are left out."""
        for b, sel in self._by_bucket(ids):
            table = self.ids[b]
            if len(table):
                part = self.keys(ids[sel])
                pos = np.minimum(np.searchsorted(table, part), len(table) - 1)
                hit = table[pos] == part
                yield b, (sel.start + np.flatnonzero(hit) if isinstance(sel, slice) else sel[hit]), pos[hit]

    def histogram(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(counts, numbers): every count held, ascending, and how many k-mers have it (int64
        arrays).  Sparse, whatever the largest count: counts below HIST_DENSE are tallied in an
        array of that size, the few above it by sorting them."""
        self._fold()
        dense = np.zeros(HIST_DENSE, np.int64)
        high = []
        for c in self.counts:
            if not len(c):
                continue
            low = c < HIST_DENSE if int(c.max()) >= HIST_DENSE else None
            tally = np.bincount(c if low is None else c[low])
            dense[: len(tally)] += tally
            if low is not None:
                high.append(c[~low])
        counts = np.flatnonzero(dense)
        numbers = dense[counts]
        if high:
            more, times = np.unique(np.concatenate(high), return_counts=True)
            counts = np.concatenate((counts, more.astype(np.int64)))
            numbers = np.concatenate((numbers, times.astype(np.int64)))
        return counts.astype(np.int64), numbers

    def select(self, b: int, lo: int = 1, hi: int | None = None,
               selector: tuple[Any, ...] = ("all",)) -> tuple[Ids, Counts]:
        """Ids and counts of bucket b with lo <= count <= hi that the selector picks."""
        self._fold()
        c = self.counts[b]
        mask = c >= lo
        if hi is not None:
            mask &= c <= hi
        if selector != ("all",):
            mask &= self._mask(b, selector)
        return self.ids_of(self.ids[b][mask], b), c[mask]

    # --- selections (bulk movement) ------------------------------------------------
    def _mask(self, b: int, sel: tuple[Any, ...]) -> npt.NDArray[np.bool_]:
        """Which entries of bucket b a wire selector picks:
        ("all",), ("prefix", bases), ("count", op, value) or ("owner", rank, nranks)."""
        kind = sel[0]
        ids = self.ids[b]
        if kind == "all":
            return np.ones(len(ids), bool)
        if kind == "prefix":
            bases = sel[1]
            if not bases:
                return np.ones(len(ids), bool)
            if self.k is None:
                raise ValueError("the k-mers here have no known k (load some first) to match a base prefix")
            if len(bases) > self.k:
                return np.zeros(len(ids), bool)
            shift = 2 * (self.k - len(bases))
            first, end = encoding.encode(bases) << shift, (encoding.encode(bases) + 1) << shift
            if self.long:  # no order operators on V32: the range by binary search
                mask = np.zeros(len(ids), bool)
                low, high = max(first, b << self.shift), min(end, (b + 1) << self.shift) - 1
                if low <= high:
                    ends = encoding.ids_array([low, high], self.k)
                    mask[np.searchsorted(ids, ends[0], "left"):np.searchsorted(ids, ends[1], "right")] = True
                return mask
            return (ids >= self._bound(first, b)) & (ids < self._bound(end, b))
        if kind == "count":
            _, op, value = sel
            c = self.counts[b]
            return {">=": c >= value, "<=": c <= value, ">": c > value, "<": c < value,
                    "==": c == value, "!=": c != value}[op]
        if kind == "field":
            _, name, op, value = sel
            if name not in self.columns:
                return np.zeros(len(ids), bool)
            v = self.column(name, b)
            return {">=": v >= value, "<=": v <= value, ">": v > value, "<": v < value,
                    "==": v == value, "!=": v != value}[op]
        if kind == "owner":
            from .partition import owners

            return owners(self.ids_of(ids, b), sel[2]) == sel[1]
        raise ValueError(f"unknown selector {sel!r}")

    def _bound(self, ident: int, b: int) -> Any:
        """A key to compare bucket b's keys with: ``ident``'s key, or the bucket's first or last
        possible key when ``ident`` lies outside it."""
        if not self.wide:
            return np.uint64(ident)  # below 2**63 for k <= 31
        if ident >> self.shift > b:  # past the bucket: above every key (their high words are below 2**58)
            return encoding.join(np.array([1 << _KEY_HI_BITS], np.uint64), np.zeros(1, np.uint64))[0]
        return wide_keys(cast("WideIds", encoding.ids_array([max(ident, b << self.shift)], self.k)))[0]

    def selection(self, sel: tuple[Any, ...]) -> Iterator[tuple[int, Ids, Counts, Edges]]:
        """(bucket, ids, counts, edges) of the selected k-mers, bucket by bucket, in id order.
        With the ("all",) selector these are the table's own arrays: lend() them while in use."""
        self._fold()
        for b in range(NBUCKETS):
            if not len(self.ids[b]):
                continue
            if sel == ("all",):
                yield b, self.ids_of(self.ids[b], b), self.counts[b], self.edges[b]
                continue
            mask = self._mask(b, sel)
            if mask.any():
                yield b, self.ids_of(self.ids[b][mask], b), self.counts[b][mask], self.edges[b][mask]

    def extract(self, sel: tuple[Any, ...], remove: bool = False) -> tuple[Ids, Counts, Edges]:
        """(ids, counts, edges) of every selected k-mer, in id order; removed if ``remove``."""
        self._fold()
        parts: tuple[list, list, list] = ([], [], [])
        for b in range(NBUCKETS):
            if not len(self.ids[b]):
                continue
            mask = self._mask(b, sel)
            if not mask.any():
                continue
            for out, arr in zip(parts, (self.ids[b], self.counts[b], self.edges[b])):
                out.append(arr[mask])
            parts[0][-1] = self.ids_of(parts[0][-1], b)
            if remove:
                keep = ~mask
                self._keep(b, keep)
        if not parts[0]:
            return self.empty_ids(), np.empty(0, np.uint32), np.empty(0, np.uint8)
        ids, counts, edges = (np.concatenate(p) for p in parts)
        return ids, counts, edges

    def _keep(self, b: int, keep: Pick) -> None:
        self.ids[b], self.counts[b], self.edges[b] = self.ids[b][keep], self.counts[b][keep], self.edges[b][keep]

    def remove_ids(self, ids: npt.ArrayLike) -> int:
        """Remove the given ids (those present); returns how many were removed."""
        self._fold()
        removed = 0
        ids = self.as_ids(ids)
        for b, sel in self._by_bucket(ids):
            table = self.ids[b]
            if not len(table):
                continue
            part = self.keys(ids[sel])
            pos = np.minimum(np.searchsorted(table, part), len(table) - 1)
            hit = pos[table[pos] == part]
            if len(hit) == len(table):
                self._keep(b, slice(0, 0))
            elif len(hit):
                keep = np.ones(len(table), bool)
                keep[hit] = False
                self._keep(b, keep)
            removed += len(hit)
        return removed

    def present(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Boolean array: which of the ids are stored here (fastest when ``ids`` is sorted)."""
        self._fold()
        ids = self.as_ids(ids)
        found = np.zeros(len(ids), bool)
        if len(ids) == 0:
            return found
        for b, sel in self._by_bucket(ids):
            table = self.ids[b]
            if not len(table):
                continue
            part = self.keys(ids[sel])
            if isinstance(sel, slice) and len(table) < len(part):
                # few stored, many asked (sorted): look the stored ones up among the asked;
                # each stored id marks the run of asked ids equal to it
                first = np.searchsorted(part, table, "left")
                end = np.searchsorted(part, table, "right")
                marks = np.zeros(len(part) + 1, np.int64)
                np.add.at(marks, first, 1)
                np.add.at(marks, end, -1)
                found[sel] = np.cumsum(marks[:-1]) > 0
            else:
                pos = np.minimum(np.searchsorted(table, part), len(table) - 1)
                found[sel] = table[pos] == part
        return found

    def _by_bucket(self, ids: Ids) -> Iterator[tuple[int, slice | npt.NDArray[np.intp]]]:
        """(bucket, selection) pairs covering ids: slices when ids are sorted, index arrays if not."""
        if self.long:
            yield from self._by_bucket_long(cast("LongIds", ids))
            return
        if self.wide:
            yield from self._by_bucket_wide(cast("WideIds", ids))
            return
        ids = cast("NarrowIds", ids)
        if len(ids) < 2 or bool((ids[1:] >= ids[:-1]).all()):
            starts = np.arange(NBUCKETS + 1, dtype=np.uint64) << np.uint64(self.shift)
            bounds = np.searchsorted(ids, starts)
            bounds[-1] = len(ids)
            for b in range(NBUCKETS):
                if bounds[b + 1] > bounds[b]:
                    yield b, slice(bounds[b], bounds[b + 1])
            return
        buckets = self.bucket_of(ids)
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange(NBUCKETS + 1))
        for b in range(NBUCKETS):
            if bounds[b + 1] > bounds[b]:
                yield b, order[bounds[b]:bounds[b + 1]]

    def _by_bucket_wide(self, ids: WideIds) -> Iterator[tuple[int, slice | npt.NDArray[np.intp]]]:
        buckets = self.bucket_of(ids)
        keys = wide_keys(ids)
        rising = (buckets[1:] > buckets[:-1]) | ((buckets[1:] == buckets[:-1]) & (keys[1:] >= keys[:-1]))
        order = None if bool(rising.all()) else np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets if order is None else buckets[order], np.arange(NBUCKETS + 1))
        for b in range(NBUCKETS):
            if bounds[b + 1] > bounds[b]:
                yield b, slice(bounds[b], bounds[b + 1]) if order is None else order[bounds[b]:bounds[b + 1]]

    def _by_bucket_long(self, ids: LongIds) -> Iterator[tuple[int, slice | npt.NDArray[np.intp]]]:
        buckets = self.bucket_of(ids)
        order = None if encoding.is_sorted(ids) else np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets if order is None else buckets[order], np.arange(NBUCKETS + 1))
        for b in range(NBUCKETS):
            if bounds[b + 1] > bounds[b]:
                yield b, slice(bounds[b], bounds[b + 1]) if order is None else order[bounds[b]:bounds[b + 1]]

    def add_distinct(self, ids: npt.ArrayLike, counts: Counts, edges: Edges) -> Ids:
        """Store the given sorted k-mers that are not held here; a k-mer held already with the
        same count and edges is the same item (nothing changes).  Returns the ids held here with a
        different count or edges (not stored: copies are never summed)."""
        self._fold()
        ids = self.as_ids(ids)
        held = self.present(ids)
        if not held.any():
            self._add_sorted(ids, counts.astype(np.uint64), edges)
            return self.empty_ids()
        old_counts, old_edges = self.lookup(ids[held])
        differ = (old_counts != counts[held]) | (old_edges != edges[held])
        new = ~held
        self._add_sorted(ids[new], counts[new].astype(np.uint64), edges[new])
        return ids[held][differ]

    def replace_counted(self, ids: Ids, counts: Counts, edges: Edges) -> None:
        """Overwrite (or add) the given sorted ids with exactly these counts and edges."""
        if len(self):
            self.remove_ids(ids)
        self._add_sorted(ids, counts.astype(np.uint64), edges)

    # --- single items ------------------------------------------------------------
    def _find(self, ident: int) -> tuple[int, int, bool]:
        if not self.wide and ident >> encoding.LO_BITS:  # too long for any k-mer held here
            return 0, 0, False
        b, key = self._key(ident)
        table = self.ids[b]
        pos = int(np.searchsorted(table, key))
        return b, pos, pos < len(table) and table[pos] == key

    def get(self, ident: int) -> tuple[int, int] | None:
        hit = self.single.get(ident)
        if hit is not None:
            return hit
        b, pos, found = self._find(ident)
        if not found:
            return None
        return int(self.counts[b][pos]), int(self.edges[b][pos])

    def set(self, ident: int, count: int, edges: int) -> None:
        if ident not in self.single:
            b, pos, found = self._find(ident)
            if found:
                self._writable(b)
                self.counts[b][pos] = count
                self.edges[b][pos] = edges
                return
        self.single[ident] = (count, edges)

    def remove(self, ident: int) -> bool:
        if self.single.pop(ident, None) is not None:
            return True
        b, pos, found = self._find(ident)
        if found:
            self.ids[b] = cast("Ids", np.delete(self.ids[b], pos))
            self.counts[b] = np.delete(self.counts[b], pos)
            self.edges[b] = np.delete(self.edges[b], pos)
        return found
