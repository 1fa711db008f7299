"""K-mer counting and queries, rank side: the orders of load, count, histogram, dump and query.

``load`` is collective: the commander (rayscript.statements.kmers) checks the files, plans which
rank reads which byte range, and sends one LOAD order to every rank; the ranks then read, extract
k-mers and route them to their owners together (all-to-all on numpy buffers, one bounded chunk
per round), counting into a staging table that replaces nothing until every rank has finished without error.  The other
statements are ordinary orders answered by every rank, and ``dump`` has every rank write its own
part of one file at an offset the commander computed, so the table is never gathered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import numpy as np
import numpy.typing as npt

from ..errors import RayScriptError
from ..items import GraphPath
from ..protocol.base import Message
from ..protocol.kmers import (
    DumpSizeOrder,
    DumpWriteOrder,
    HeldOrder,
    HeldReply,
    KmerStatsOrder,
    KmerStatsReply,
    LoadOrder,
    LoadReply,
    QueryOrder,
    QueryReply,
    SizeReply,
)
from ..store import encoding
from ..store.kmertable import NBUCKETS, KmerTable, OccurrenceBuffer, pack_occurrences
from ..store.partition import owners
from ..store.types import Counts, Edges, Ids, NarrowIds
from . import fastx

if TYPE_CHECKING:
    from ..runtime.node import Node
    from ..runtime.tasks import Future

# Received k-mer occurrences wait, packed in 8 bytes each, in a pool of this many per rank (pages
# held by the table's buckets) before they are sorted and merged into the staging table.  Larger
# means fewer merges and more memory.
PENDING_MAX = 8_000_000
# the same for k > 31: ids and edges wait in one buffer of this many (17 bytes each, 33 for k > 63)
WIDE_PENDING_MAX = 2_000_000

# (ids, counts) of the k-mers a rank leaves out as copies of k-mers counted on another rank
Copies: TypeAlias = tuple[Ids, Counts]
# the orders answered without the copies
Counting = TypeVar("Counting", KmerStatsOrder, DumpSizeOrder, DumpWriteOrder)


# --- messages ----------------------------------------------------------------------


# --- formatting ----------------------------------------------------------------------

def format_counts(ids: Ids, counts: Counts, k: int) -> bytes:
    """``SEQUENCE<TAB>COUNT\\n`` lines, vectorized."""
    return format_table(ids, k, [counts])


def format_table(ids: Ids, k: int, columns: Sequence[npt.ArrayLike]) -> bytes:
    """``SEQUENCE<TAB>N1<TAB>N2...\\n`` lines, one per id, a number from each column, vectorized."""
    n = len(ids)
    if n == 0:
        return b""
    pieces = [encoding.decode_array(ids, k)]
    keeps = [np.ones((n, k), bool)]
    for values in columns:
        values = np.asarray(values)
        if values.dtype.kind == "f" or (len(values) and int(values.min()) < 0):
            # a field's values (signed, or floats): their text, as a matrix of bytes padded with zeros
            text = np.char.mod("%d" if values.dtype.kind != "f" else "%.10g", values).astype("S")
            width = text.dtype.itemsize
            chars = text.view(np.uint8).reshape(n, width)
            pieces += [np.full((n, 1), 9, np.uint8), chars]
            keeps += [np.ones((n, 1), bool), chars != 0]
            continue
        values = values.astype(np.int64)
        ndig = np.maximum(np.floor(np.log10(np.maximum(values, 1))).astype(np.int64) + 1, 1)
        width = int(ndig.max())
        digits = np.zeros((n, width), dtype=np.uint8)
        rest = values.copy()
        for col in range(width - 1, -1, -1):
            digits[:, col] = (rest % 10) + 48
            rest //= 10
        pieces += [np.full((n, 1), 9, np.uint8), digits]
        keeps += [np.ones((n, 1), bool), np.arange(width)[None, :] >= (width - ndig)[:, None]]
    pieces.append(np.full((n, 1), 10, np.uint8))
    keeps.append(np.ones((n, 1), bool))
    return np.concatenate(pieces, axis=1)[np.concatenate(keeps, axis=1)].tobytes()


def formatted_size(counts: Counts, k: int) -> int:
    counts = counts.astype(np.int64)
    ndig = np.maximum(np.floor(np.log10(np.maximum(counts, 1))).astype(np.int64) + 1, 1)
    return int(len(counts) * (k + 2) + ndig.sum())


def path_kmers(paths: Sequence[GraphPath], k: int, canonical: bool) -> tuple[Ids, Edges, Counts]:
    """Every k-mer occurrence of these paths' sequences (ids and edges as a read gives them), with
    the weight of each: its path's mean count rounded, at least 1.  One code array for all the
    paths, an invalid code between two, so no k-mer spans two paths."""
    if not paths:
        return encoding.empty_ids(k), np.empty(0, np.uint8), np.empty(0, np.uint64)
    text = "N".join(p.sequence for p in paths).encode()
    codes = encoding.codes_from_bytes(np.frombuffer(text, np.uint8))
    ids, edges = encoding.kmers_from_codes(codes, k, canonical)
    # the path of each valid window (kmers_from_codes keeps them in order): the windows across a
    # separator, or over another letter than ACGT, are the ones it left out
    lengths = np.array([len(p.sequence) for p in paths], np.int64)
    weight = np.array([max(1, round(p.coverage)) for p in paths], np.uint64)
    path_of = np.repeat(np.arange(len(paths)), lengths + 1)[: len(codes)]
    badc = np.concatenate(([0], np.cumsum(codes >= encoding.INVALID)))
    pos = np.arange(max(len(codes) - k + 1, 0))
    weights = weight[path_of[pos[badc[pos + k] == badc[pos]]]]
    if len(weights) != len(ids):
        raise RuntimeError("load: the k-mers of the paths do not match their windows")
    return ids, edges, weights


def reduce_occurrences(ids: Ids, edges: Edges, weights: Counts) -> tuple[Ids, Counts, Edges]:
    """Sorted unique ids, with their weights summed (at most COUNT_MAX) and their edges OR-ed."""
    if not len(ids):
        return ids, np.empty(0, np.uint64), edges
    order = np.argsort(ids, kind="stable")  # complex ids sort by their two words: id order
    ids, edges, weights = ids[order], edges[order], weights[order]
    first = np.flatnonzero(np.concatenate(([True], ~encoding.same(ids[1:], ids[:-1]))))
    counts = np.minimum(np.add.reduceat(weights, first), np.uint64(encoding.COUNT_MAX))
    return ids[first], counts.astype(np.uint64), np.bitwise_or.reduceat(edges, first)


def peak_rss() -> int:
    """This process's peak resident memory in bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- rank side ----------------------------------------------------------------------------

class KmerService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        handlers: dict[type[Message], Callable[[Any], None]] = {
            LoadOrder: self.on_load, KmerStatsOrder: self.on_stats, DumpSizeOrder: self.on_dump_size,
            DumpWriteOrder: self.on_dump_write, QueryOrder: self.on_query, HeldOrder: self.on_held,
        }
        for cls, fn in handlers.items():
            node.register(cls, fn)

    def table(self, msg: Any) -> KmerTable:
        """The k-mer set an order is about."""
        return self.store.table(msg.kset)

    def on_load(self, msg: LoadOrder) -> None:
        with self.node.collective_order(msg, "load"):
            self._load(msg)

    def _load(self, msg: LoadOrder) -> None:
        coll = self.node.collective
        t0 = time.monotonic()
        staging = KmerTable(msg.k)
        staging.canonical = msg.canonical
        staging.small_counts = True  # 11 bytes per k-mer while it grows (13 in the store)
        error: str | None = None
        table = self.table(msg)
        where = "the store" if msg.kset == "kmers" else msg.kset
        if len(table) and table.k not in (None, msg.k):
            error = f"{where} holds k={table.k} k-mers; cannot add k={msg.k} k-mers to them"
        elif len(table) and table.k is not None and table.canonical != msg.canonical:
            error = f"{where} holds k-mers counted with a different canonical= setting"
        elif len(table) and table.k is None:
            error = self._unfit(table, msg.k, msg.canonical)
        chunks: Iterator = iter(())
        tiled = {i for i, _path, _size in msg.tiled}
        spans: list[tuple[int, list]] = []  # (file's place in the list, [first, end]) of each tiled part read
        if error is None:
            chunks = self._chunks(msg.parts, tiled, spans)
        reads = kmers = nbytes = short = longest = npaths = 0
        narrow = not encoding.is_wide(msg.k)
        buffer = OccurrenceBuffer(staging, PENDING_MAX) if narrow and error is None else None
        # k > 31: the occurrences received wait here until WIDE_PENDING_MAX, then are counted
        pending_ids = encoding.empty_ids(msg.k) if narrow or error is not None else \
            np.empty(WIDE_PENDING_MAX, encoding.id_dtype(msg.k))
        pending_edges = np.empty(len(pending_ids), np.uint8)
        pending = 0
        active = True
        aborted = False
        while True:
            ids = staging.empty_ids()
            edges = np.empty(0, np.uint8)
            if active and error is None:
                try:
                    chunk = next(chunks, None)
                    if chunk is None:
                        active = False
                    else:
                        ids, edges = encoding.kmers_from_codes(chunk.codes, msg.k, msg.canonical)
                        reads += chunk.reads
                        short += int(np.count_nonzero(chunk.lengths < msg.k))
                        longest = max(longest, int(chunk.lengths.max(initial=0)))
                        kmers += len(ids)
                        nbytes += chunk.nbytes
                except RayScriptError as exc:
                    error = str(exc)
                except Exception as exc:  # reported, and the other ranks stop with us
                    error = f"{type(exc).__name__}: {exc}"
            if self.node.poll_interrupt() and error is None:
                error = "load cancelled (Ctrl-C); the store is as it was before the statement"
            flags = coll.allreduce(np.array([active and error is None, error is not None, nbytes], np.int64))
            self.node.show_progress(int(flags[2]), msg.total_bytes)
            if flags[1]:
                aborted = True
                break
            if not flags[0]:
                break  # every rank has read all its parts (and sent nothing this round)
            # route this round's k-mers to their owners (every rank takes part in every round)
            if buffer is not None:
                self._route_packed(cast("NarrowIds", ids), edges, msg.k, buffer)  # a buffer only for k <= 31
                continue
            dest = owners(ids, coll.size).astype(np.uint8 if coll.size <= 256 else np.uint16)
            order = np.argsort(dest, kind="stable")  # a radix sort for small integer types
            sizes = np.bincount(dest, minlength=coll.size)
            del dest
            got_ids = coll.exchange_flat(ids[order], sizes)
            got_edges = coll.exchange_flat(edges[order], sizes)
            del ids, edges, order
            if pending + len(got_ids) > len(pending_ids):
                staging.add_occurrences(pending_ids[:pending], pending_edges[:pending])
                pending = 0
            if len(got_ids) >= len(pending_ids):
                staging.add_occurrences(got_ids, got_edges)
            else:
                pending_ids[pending:pending + len(got_ids)] = got_ids
                pending_edges[pending:pending + len(got_ids)] = got_edges
                pending += len(got_ids)
            del got_ids, got_edges
        if error is None and not aborted and pending:
            staging.add_occurrences(pending_ids[:pending], pending_edges[:pending])
        del pending_ids, pending_edges
        if buffer is not None:
            if error is None and not aborted:
                buffer.finish()
            del buffer
        if msg.paths and not aborted:  # every rank, together: the k-mers of the paths given as input
            found = self._path_kmers(msg, staging, error is None)
            npaths = found[0]
            reads += found[0]
            kmers += found[1]
        if not aborted:
            # every rank, together: do the records read tile each split file?
            error = self._check_tiling(msg.tiled, spans)
        if error is not None:
            self.node.fail_order(msg, error)
            return
        if aborted:
            self.node.reply(msg, LoadReply(aborted=True))
            return
        table = self.store.made(msg.kset)
        before = table.saturated
        table.absorb(staging)
        saturated = table.saturated - before
        self.node.reply(msg, LoadReply(reads=reads, kmers=kmers, nbytes=nbytes, distinct=len(table),
                                       saturated=saturated, seconds=time.monotonic() - t0,
                                       peak_rss=peak_rss(), table_bytes=table.nbytes(), paths=npaths,
                                       short=short, longest=longest))

    def _path_kmers(self, msg: LoadOrder, staging: KmerTable, ok: bool) -> tuple[int, int]:
        """The k-mers of the paths (contigs) this rank holds that ``msg.paths`` selects, each
        occurrence counted as many times as its path's mean count (at least once: as deep as the
        reads that made it covered it), sent to their owners and counted into ``staging``; returns
        (paths, k-mer occurrences) read here."""
        from .paths import selected_paths

        coll = self.node.collective
        held: list[GraphPath] = []  # each selector's paths: a path two of them select counts twice, as a file
        if ok:
            table = cast("dict[Any, GraphPath]", self.store.named("paths"))
            for sel in msg.paths:
                held += selected_paths(table, tuple(sel))
        ids, edges, weights = path_kmers(held, msg.k, msg.canonical)
        dest = owners(ids, coll.size) if len(ids) else np.zeros(0, np.int32)
        order = np.argsort(dest, kind="stable")
        bounds = np.searchsorted(dest[order], np.arange(coll.size + 1))
        got = [np.concatenate(coll.alltoallv([a[order][bounds[d]:bounds[d + 1]] for d in range(coll.size)]))
               for a in (ids, edges, weights)]
        u_ids, u_counts, u_edges = reduce_occurrences(got[0], got[1], got[2])
        staging.add_counted(u_ids, u_counts, u_edges)
        return len(held), len(ids)

    def _route_packed(self, ids: NarrowIds, edges: Edges, k: int, buffer: OccurrenceBuffer) -> None:
        """Send each k-mer occurrence (k <= 31) to its owner as one packed word, grouped by owner
        and by bucket of the owner's table (one radix sort of a small key), with the count of each
        group beside; the owner files them into its occurrence buffer as they are."""
        coll = self.node.collective
        buckets, packed = pack_occurrences(ids, edges, k)
        group = owners(ids, coll.size).astype(np.uint32) * np.uint32(NBUCKETS) + buckets.astype(np.uint32)
        del ids, edges, buckets
        if coll.size * NBUCKETS <= 1 << 16:
            group = group.astype(np.uint16)  # a stable sort of 16-bit keys is a radix sort
        order = np.argsort(group, kind="stable")
        per_group = np.bincount(group, minlength=coll.size * NBUCKETS)
        del group
        packed = packed[order]
        del order
        got = coll.exchange(packed, per_group.reshape(coll.size, NBUCKETS).sum(axis=1))
        del packed
        got_counts = coll.exchange(per_group, [NBUCKETS] * coll.size)
        for words, counts in zip(got, got_counts):
            buffer.add(words, counts)  # counts: this source's words of each bucket, in bucket order

    def _unfit(self, table: KmerTable, k: int, canonical: bool) -> str | None:
        """K-mers put by number before any load: the first load decides k, and they must fit it."""
        ids, _, _ = table.extract(("all",))
        bad = ids >= np.uint64(1 << min(2 * k, 63))
        if canonical:
            small = encoding.ids_array(np.where(bad, np.uint64(0), ids).tolist(), k)
            bad |= ~encoding.same(encoding.canonical_array(small, k), small)
        if not bad.any():
            return None
        problem = encoding.id_problem(int(ids[np.argmax(bad)]), k, canonical)
        return (f"{problem}; it was put on rank {self.node.rank} before any load decided k "
                f"(delete it, or load with the k it was meant for)")

    @staticmethod
    def _chunks(parts: list, tiled: set[int], spans: list) -> Iterator:
        for part in parts:
            p = fastx.Part(*part)
            span: list = []
            if p.file in tiled and not p.codec:
                spans.append((p.file, span))
            yield from fastx.read_part(p, span=span)

    def _check_tiling(self, files: list, spans: list) -> str | None:
        """Gather every rank's spans and check each split FASTQ file is tiled by the records read
        (the same verdict on every rank, whatever the split).  ``files``: (place in the statement's
        list, path, size); a file listed twice is checked twice, each time with its own spans."""
        if not files:
            return None
        mine = np.array([(i, s[0], s[1]) for i, s in spans if s], np.int64).reshape(-1, 3)
        coll = self.node.collective
        every = np.concatenate(coll.alltoallv([mine.ravel()] * coll.size)).reshape(-1, 3)
        for i, path, size in files:
            try:
                fastx.check_tiling(path, size, [(int(a), int(b)) for f, a, b in every if f == i])
            except RayScriptError as exc:
                return str(exc)
        return None

    def on_stats(self, msg: KmerStatsOrder) -> None:
        if msg.once:
            self._without_copies(msg, self._stats)
        else:
            self._stats(msg, self._NONE)

    def _foreign(self, kset: str) -> tuple | None:
        """(ids, counts, owners) of the k-mers of a set held here that another rank owns; None if none."""
        found = self.store.off_owner(self.node.rank, self.node.size, kset)
        return None if found is None else (found[0], found[1], found[3])

    def _stats(self, msg: KmerStatsOrder, copies: Copies) -> None:
        t = self.table(msg)
        left_ids, left_counts = copies
        if msg.selector != ("all",):  # the selected k-mers only (those left out as copies, too)
            distinct = total = left = 0
            for _ids, picked, out in self._selected(t, 0, None, msg.selector, left_ids):
                distinct += len(picked)
                total += int(picked.sum(dtype=np.uint64))
                left += out
            self.node.reply(msg, KmerStatsReply(distinct=distinct, total=total, k=t.k, canonical=t.canonical,
                                                nbytes=t.nbytes(), copies=left, held=msg.kset in self.store.sets))
            return
        hist = None
        if msg.histogram:
            counts, numbers = t.histogram()
            if len(left_counts):  # the copies left out: every count of theirs is among the table's
                less, times = np.unique(left_counts, return_counts=True)
                numbers[np.searchsorted(counts, less)] -= times
            hist = np.stack((counts, numbers))
        foreign = self._foreign(msg.kset) if msg.foreign else None
        self.node.reply(msg, KmerStatsReply(distinct=len(t) - len(left_ids),
                                            total=t.total() - int(left_counts.sum(dtype=np.int64)),
                                            k=t.k, canonical=t.canonical, saturated=t.saturated, nbytes=t.nbytes(),
                                            histogram=hist.tobytes() if hist is not None else b"",
                                            copies=len(left_ids), foreign=0 if foreign is None else len(foreign[0]),
                                            held=msg.kset in self.store.sets))

    _NONE = (np.zeros(0, np.uint64), np.zeros(0, np.uint32))

    def _without_copies(self, msg: Counting, then: Callable[[Counting, Copies], None]) -> None:
        """``then(msg, (ids, counts))`` once this rank knows which of its k-mers to leave out as copies
        of k-mers counted on another rank: those their owner holds, and, of those their owner does not
        hold, those a lower rank holds.  Asks the other ranks (HELD-ORDER) only if it holds k-mers that
        another rank owns; meanwhile it serves on."""
        me = self.node.rank
        foreign = self._foreign(msg.kset)
        if foreign is None:
            then(msg, self._NONE)
            return
        ids, counts, own = foreign

        def task() -> Generator[list[Future], list[Any], None]:  # sent: the HeldReply of each, by order
            try:
                left = np.zeros(len(ids), bool)
                asked = [(own == b, self._ask_held(int(b), ids[own == b], msg.kset)) for b in np.unique(own)]
                for (sel, _), reply in zip(asked, (yield [f for _, f in asked])):
                    left[sel] = reply.buffers[0].astype(bool)
                rest = np.flatnonzero(~left)
                if me and len(rest):
                    for reply in (yield [self._ask_held(r, ids[rest], msg.kset) for r in range(me)]):
                        left[rest[reply.buffers[0].astype(bool)]] = True
                then(msg, (ids[left], counts[left]))
            except RayScriptError as exc:
                self.node.fail_order(msg, str(exc))
            except Exception as exc:  # the commander hears of it, located
                self.node.fail_order(msg, f"{type(exc).__name__}: {exc}")

        self.node.spawn(task())

    def _ask_held(self, rank: int, ids: Ids, kset: str) -> Future:
        order = HeldOrder(recipient=rank, kset=kset)
        order.buffers = [np.ascontiguousarray(ids)]
        return self.node.order(order)

    def on_held(self, msg: HeldOrder) -> None:
        reply = HeldReply()
        table = self.table(msg)
        ids = msg.buffers[0] if msg.buffers else table.empty_ids()
        reply.buffers = [table.present(ids).astype(np.uint8)]
        self.node.reply(msg, reply)

    def _selected(self, table: KmerTable, lo: int, hi: int | None, selector: tuple[Any, ...],
                  leave: Ids | None = None) -> Iterator[tuple[Ids, Counts, int]]:
        """(ids, counts, how many were left out) bucket by bucket of the k-mers selected, without
        the ids in ``leave`` (an id array)."""
        leave = np.sort(encoding.exact(leave)) if leave is not None and len(leave) else None
        for b in range(NBUCKETS):
            ids, counts = table.select(b, lo, hi, selector)
            if leave is not None and len(ids):
                key = encoding.exact(ids)  # wide ids compared as complex numbers may be NaNs
                keep = leave[np.minimum(np.searchsorted(leave, key), len(leave) - 1)] != key
                yield ids[keep], counts[keep], len(ids) - int(keep.sum())
            else:
                yield ids, counts, 0

    @staticmethod
    def _rows(table: KmerTable, ids: Ids, counts: Counts, fields: tuple) -> bytes:
        """K-mer, count and the given fields, tab-separated, a line each."""
        missing = [f for f in fields if f not in table.columns]
        if missing and len(ids):
            raise RayScriptError(f"no field {missing[0]} here (make one with 'field {missing[0]} = 0 on ...')")
        return format_table(ids, table.k or 0, [counts, *(table.column_values(f, ids) for f in fields)])

    def on_dump_size(self, msg: DumpSizeOrder) -> None:
        self._without_copies(msg, self._dump_size)

    def _dump_size(self, msg: DumpSizeOrder, copies: Copies) -> None:
        table = self.table(msg)
        k, size, left = table.k or 0, 0, 0
        for ids, counts, out in self._selected(table, msg.lo, msg.hi, msg.selector, copies[0]):
            if msg.columns:
                size += len(self._rows(table, ids, counts, msg.columns))
            else:
                size += formatted_size(counts, k)
            left += out
        self.node.reply(msg, SizeReply(nbytes=size, k=table.k, copies=left))

    def on_dump_write(self, msg: DumpWriteOrder) -> None:
        self._without_copies(msg, self._dump_write)

    def _dump_write(self, msg: DumpWriteOrder, copies: Copies) -> None:
        table = self.table(msg)
        k = table.k or 0
        try:
            fd = os.open(msg.path, os.O_WRONLY)
        except OSError as exc:
            raise RayScriptError(f"cannot write {msg.path}: {exc.strerror}") from None
        try:
            offset = msg.offset
            for b, (ids, counts, _) in enumerate(self._selected(table, msg.lo, msg.hi, msg.selector, copies[0])):
                data = self._rows(table, ids, counts, msg.columns) if msg.columns else format_counts(ids, counts, k)
                if data:
                    os.pwrite(fd, data, offset)
                    offset += len(data)
                self.node.show_progress(b + 1, NBUCKETS, "dumping (rank 0's part)", "buckets")
        finally:
            os.close(fd)
        self.node.reply(msg, SizeReply(nbytes=offset - msg.offset))

    def on_query(self, msg: QueryOrder) -> None:
        table = self.table(msg)
        ids = np.frombuffer(msg.ids, dtype=encoding.id_dtype(table.k))
        counts, _ = table.lookup(ids)
        self.node.reply(msg, QueryReply(counts=counts.tobytes()))
