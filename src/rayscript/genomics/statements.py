"""The k-mer statements: load, count, histogram, dump, query.

``load`` is collective: the commander checks the files, plans which rank reads which byte range,
and sends one LOAD order to every rank; the ranks then read, extract k-mers and route them to
their owners together (all-to-all on numpy buffers, one bounded chunk per round), counting into a
staging table that replaces nothing until every rank has finished without error.  The other
statements are ordinary orders answered by every rank, and ``dump`` has every rank write its own
part of one file at an offset the commander computed, so the table is never gathered.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import RayScriptError, ScriptError
from ..interpreter import whole_number
from ..language import ast
from ..messages import Ack, Message
from ..results import Result, table
from ..store import encoding
from ..store.kmertable import NBUCKETS, KmerTable
from ..store.partition import owners
from . import fastx

MAX_K = encoding.MAX_K
# Received k-mer occurrences are counted in batches of this many (fewer, larger merges into the
# staging table; about 9 bytes each while they wait).
PENDING_MAX = 6_000_000


# --- messages ----------------------------------------------------------------------

@dataclass(kw_only=True)
class LoadOrder(Message, kind="load-order", code=80):
    parts: list = field(default_factory=list)
    k: int = 31
    canonical: bool = True
    total_bytes: int = 0

    def cascade(self):
        return ["(all ranks: read, then ALLTOALLV k-mers to their owners, chunk by chunk)",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class KmerStatsOrder(Message, kind="kmer-stats", code=81):
    histogram: bool = False

    def cascade(self):
        return [f"ACK {self.recipient} -> {self.commander} (distinct, total{', histogram' if self.histogram else ''})"]


@dataclass(kw_only=True)
class DumpSizeOrder(Message, kind="dump-size", code=82):
    lo: int = 1
    hi: int | None = None
    selector: tuple = ("all",)

    def cascade(self):
        return [f"ACK {self.recipient} -> {self.commander} (bytes of its part; the commander computes offsets)"]


@dataclass(kw_only=True)
class DumpWriteOrder(Message, kind="dump-write", code=83):
    path: str = ""
    offset: int = 0
    lo: int = 1
    hi: int | None = None
    selector: tuple = ("all",)

    def cascade(self):
        return [f"(rank {self.recipient} writes its part at its offset)", f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class QueryOrder(Message, kind="query-order", code=84):
    ids: bytes = b""

    def cascade(self):
        return [f"ACK {self.recipient} -> {self.commander} (the counts of the k-mers it owns)"]


# --- formatting ----------------------------------------------------------------------

def format_counts(ids, counts, k: int) -> bytes:
    """``SEQUENCE<TAB>COUNT\\n`` lines, vectorized."""
    n = len(ids)
    if n == 0:
        return b""
    bases = encoding.decode_array(ids, k)
    counts = counts.astype(np.int64)
    ndig = np.maximum(np.floor(np.log10(np.maximum(counts, 1))).astype(np.int64) + 1, 1)
    width = int(ndig.max())
    digits = np.zeros((n, width), dtype=np.uint8)
    rest = counts.copy()
    for col in range(width - 1, -1, -1):
        digits[:, col] = (rest % 10) + 48
        rest //= 10
    keep_digit = np.arange(width)[None, :] >= (width - ndig)[:, None]
    row = np.concatenate((bases, np.full((n, 1), 9, np.uint8), digits, np.full((n, 1), 10, np.uint8)), axis=1)
    keep = np.concatenate((np.ones((n, k + 1), bool), keep_digit, np.ones((n, 1), bool)), axis=1)
    return row[keep].tobytes()


def formatted_size(counts, k: int) -> int:
    counts = counts.astype(np.int64)
    ndig = np.maximum(np.floor(np.log10(np.maximum(counts, 1))).astype(np.int64) + 1, 1)
    return int(len(counts) * (k + 2) + ndig.sum())


def _peak_rss() -> int:
    """This process's peak resident memory in bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- rank side ----------------------------------------------------------------------------

class KmerService:
    def __init__(self, node):
        self.node = node
        for cls, fn in {LoadOrder: self.on_load, KmerStatsOrder: self.on_stats, DumpSizeOrder: self.on_dump_size,
                        DumpWriteOrder: self.on_dump_write, QueryOrder: self.on_query}.items():
            node.register(cls, fn)

    @property
    def table(self) -> KmerTable:
        return self.node.shard.kmers

    def on_load(self, msg: LoadOrder) -> None:
        with self.node.deferred_interrupt():
            self._load(msg)

    def _load(self, msg: LoadOrder) -> None:
        coll = self.node.collective
        t0 = time.monotonic()
        staging = KmerTable(msg.k)
        staging.canonical = msg.canonical
        error: str | None = None
        if len(self.table) and self.table.k not in (None, msg.k):
            error = f"the store holds k={self.table.k} k-mers; cannot add k={msg.k} k-mers to them"
        elif len(self.table) and self.table.k is not None and self.table.canonical != msg.canonical:
            error = "the store holds k-mers counted with a different canonical= setting"
        chunks = iter(())
        if error is None:
            chunks = (c for part in msg.parts for c in fastx.read_part(fastx.Part(*part)))
        reads = kmers = nbytes = 0
        pending_ids: list = []
        pending_edges: list = []
        pending = 0
        active = True
        aborted = False
        while True:
            ids = np.empty(0, np.uint64)
            edges = np.empty(0, np.uint8)
            if active and error is None:
                try:
                    chunk = next(chunks, None)
                    if chunk is None:
                        active = False
                    else:
                        ids, edges = encoding.kmers_from_codes(chunk.codes, msg.k, msg.canonical)
                        reads += chunk.reads
                        kmers += len(ids)
                        nbytes += chunk.nbytes
                except RayScriptError as exc:
                    error = str(exc)
                except Exception as exc:  # reported, and the other ranks stop with us
                    error = f"{type(exc).__name__}: {exc}"
            if self.node.poll_interrupt() and error is None:
                error = "load cancelled (Ctrl-C); the store is as it was before the statement"
            flags = coll.allreduce(np.array([active and error is None, error is not None, nbytes], np.int64))
            if self.node.rank == 0 and self.node.progress is not None:
                self.node.progress(int(flags[2]), msg.total_bytes)
            if flags[1]:
                aborted = True
                break
            if not flags[0]:
                break  # every rank has read all its parts (and sent nothing this round)
            # route this round's k-mers to their owners (every rank takes part in every round)
            dest = owners(ids, coll.size).astype(np.uint8 if coll.size <= 256 else np.uint16)
            order = np.argsort(dest, kind="stable")  # a radix sort for small integer types
            bounds = np.searchsorted(dest[order], np.arange(coll.size + 1))
            ids, edges = ids[order], edges[order]
            got_ids = coll.alltoallv([ids[bounds[d]:bounds[d + 1]] for d in range(coll.size)])
            got_edges = coll.alltoallv([edges[bounds[d]:bounds[d + 1]] for d in range(coll.size)])
            pending_ids.extend(got_ids)
            pending_edges.extend(got_edges)
            pending += sum(len(g) for g in got_ids)
            if pending >= PENDING_MAX:
                staging.add_occurrences(np.concatenate(pending_ids), np.concatenate(pending_edges))
                pending_ids, pending_edges, pending = [], [], 0
        if error is None and not aborted and pending:
            staging.add_occurrences(np.concatenate(pending_ids), np.concatenate(pending_edges))
        if error is not None:
            self.node.fail_order(msg, error)
            return
        if aborted:
            self.node.reply(msg, Ack(info={"aborted": True}))
            return
        before = self.table.saturated
        self.table.absorb(staging)
        saturated = self.table.saturated - before
        self.node.reply(msg, Ack(info={"reads": reads, "kmers": kmers, "bytes": nbytes, "distinct": len(self.table),
                                       "saturated": saturated, "seconds": time.monotonic() - t0,
                                       "peak_rss": _peak_rss(), "table_bytes": self.table.nbytes()}))

    def on_stats(self, msg: KmerStatsOrder) -> None:
        t = self.table
        info = {"distinct": len(t), "total": t.total(), "k": t.k, "saturated": t.saturated, "bytes": t.nbytes()}
        if msg.histogram:
            info["histogram"] = t.histogram().tobytes()
        self.node.reply(msg, Ack(info=info))

    def _selected(self, lo, hi, selector):
        for b in range(NBUCKETS):
            yield self.table.select(b, lo, hi, selector)

    def on_dump_size(self, msg: DumpSizeOrder) -> None:
        k = self.table.k or 0
        size = sum(formatted_size(c, k) for _ids, c in self._selected(msg.lo, msg.hi, msg.selector))
        self.node.reply(msg, Ack(info={"bytes": size, "k": self.table.k}))

    def on_dump_write(self, msg: DumpWriteOrder) -> None:
        k = self.table.k or 0
        try:
            fd = os.open(msg.path, os.O_WRONLY)
        except OSError as exc:
            raise RayScriptError(f"cannot write {msg.path}: {exc.strerror}") from None
        try:
            offset = msg.offset
            for ids, counts in self._selected(msg.lo, msg.hi, msg.selector):
                data = format_counts(ids, counts, k)
                if data:
                    os.pwrite(fd, data, offset)
                    offset += len(data)
        finally:
            os.close(fd)
        self.node.reply(msg, Ack(info={"bytes": offset - msg.offset}))

    def on_query(self, msg: QueryOrder) -> None:
        ids = np.frombuffer(msg.ids, dtype=np.uint64)
        counts, _ = self.table.lookup(ids)
        self.node.reply(msg, Ack(info=counts.tobytes()))


# --- commander side ---------------------------------------------------------------------

def quoted_path(interp, value, scope, what="a file path") -> str:
    v = interp.value(value, scope)
    if not isinstance(v, str):
        raise ScriptError(f"expected {what} in quotes, not {v!r}")
    return v


def _check_writable(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ScriptError(f"cannot write {path}: no such directory {directory}")
    if os.path.isdir(path):
        raise ScriptError(f"cannot write {path}: it is a directory")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ScriptError(f"cannot write {path}: permission denied")


class KmerStatements:
    def __init__(self, interp):
        self.interp = interp
        self.node = interp.node
        interp.extensions.update({ast.Load: self.load, ast.Count: self.count, ast.Histogram: self.histogram,
                                  ast.Dump: self.dump, ast.Query: self.query})
        every = range(self.node.size)
        interp.planners.update({
            ast.Load: lambda st, scope: [LoadOrder(recipient=r) for r in every],
            ast.Count: lambda st, scope: [KmerStatsOrder(recipient=r) for r in every],
            ast.Histogram: lambda st, scope: [KmerStatsOrder(recipient=r, histogram=True) for r in every],
            ast.Dump: lambda st, scope: ([DumpSizeOrder(recipient=r) for r in every]
                                         + [DumpWriteOrder(recipient=r) for r in every]),
            ast.Query: lambda st, scope: ([KmerStatsOrder(recipient=r) for r in every]
                                          + [QueryOrder(recipient=r) for r in every]),
        })

    def _all(self, make):
        return [self.node.order(make(r), timeout=None) for r in range(self.node.size)]

    def load(self, st: ast.Load, scope):
        opts = dict(st.options)
        k = self.interp.value(opts.get("k", 31), scope)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ScriptError(f"k={k} is not supported: k is a whole number from 1 to {MAX_K} "
                              "(one 64-bit word per k-mer)")
        canonical = self.interp.value(opts.get("canonical", "true"), scope)
        if str(canonical).lower() not in ("true", "false"):
            raise ScriptError(f"canonical= takes true or false, not {canonical!r}")
        canonical = str(canonical).lower() == "true"
        paths = [quoted_path(self.interp, p, scope) for p in st.paths]
        sources = [fastx.inspect(p) for p in paths]
        plan = fastx.plan(sources, self.node.size)
        total = sum(s.size for s in sources)
        t0 = time.monotonic()
        replies = yield self._all(lambda r: LoadOrder(recipient=r, k=k, canonical=canonical, total_bytes=total,
                                                      parts=[(p.path, p.fmt, p.gz, p.start, p.end) for p in plan[r]]))
        infos = [rep.info for rep in replies]
        self.interp.canonical = canonical
        seconds = time.monotonic() - t0
        reads = sum(i["reads"] for i in infos)
        kmers = sum(i["kmers"] for i in infos)
        distinct = sum(i["distinct"] for i in infos)
        saturated = sum(i["saturated"] for i in infos)
        rate = kmers / seconds if seconds > 0 else 0.0
        text = (f"loaded {len(paths)} file{'s' if len(paths) > 1 else ''}: {reads:,} reads, {kmers:,} k-mers "
                f"(k={k}), {distinct:,} distinct in the store; {seconds:.2f} s, {rate / 1e6:.2f} M k-mers/s")
        if saturated:
            text += f"\nwarning: {saturated:,} counts reached the counter's maximum ({2**32 - 1}) and stay there"
        return [Result("load", text, {"files": paths, "reads": reads, "kmers": kmers, "distinct": distinct,
                                      "seconds": seconds, "saturated": saturated, "k": k,
                                      "peak_rss": [i["peak_rss"] for i in infos],
                                      "table_bytes": sum(i["table_bytes"] for i in infos)})]

    def _stats(self, histogram=False):
        replies = yield self._all(lambda r: KmerStatsOrder(recipient=r, histogram=histogram))
        return [rep.info for rep in replies]

    def count(self, st: ast.Count, scope):
        infos = yield from self._stats()
        distinct = sum(i["distinct"] for i in infos)
        total = sum(i["total"] for i in infos)
        rows = [[r, i["distinct"], i["total"]] for r, i in enumerate(infos)]
        text = f"{distinct:,} distinct k-mers, {total:,} in total\n" + table(["rank", "distinct", "total"], rows)
        return [Result("count", text, {"distinct": distinct, "total": total,
                                       "per_rank": [{"distinct": i["distinct"], "total": i["total"]} for i in infos]})]

    def histogram(self, st: ast.Histogram, scope):
        path = quoted_path(self.interp, st.path, scope) if st.path is not None else None
        if path:
            _check_writable(path)
        infos = yield from self._stats(histogram=True)
        hists = [np.frombuffer(i["histogram"], dtype=np.int64) for i in infos]
        n = max(len(h) for h in hists)
        total = np.zeros(n, np.int64)
        for h in hists:
            total[: len(h)] += h
        counts = np.flatnonzero(total[1:]) + 1
        lines = [f"{c} {total[c]}" for c in counts]
        body = "\n".join(lines) + ("\n" if lines else "")
        data = {int(c): int(total[c]) for c in counts}
        if path:
            with open(path, "w") as fh:
                fh.write(body)
            return [Result("histogram", f"wrote {len(lines)} histogram lines to {path}", data)]
        return [Result("histogram", body.rstrip("\n"), data)]

    def dump(self, st: ast.Dump, scope):
        path = os.path.abspath(quoted_path(self.interp, st.path, scope))
        opts = {n: whole_number(self.interp.value(v, scope), f"{n}=") for n, v in st.options}
        lo, hi = max(opts.get("min", 1), 1), opts.get("max")
        selector = self.interp.bulk.selector(st.selector, scope) if st.selector is not None else ("all",)
        _check_writable(path)
        sizes = yield self._all(lambda r: DumpSizeOrder(recipient=r, lo=lo, hi=hi, selector=selector))
        offsets = np.concatenate(([0], np.cumsum([s.info["bytes"] for s in sizes])))
        tmp = f"{path}.part{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.truncate(int(offsets[-1]))
        try:
            written = yield self._all(lambda r: DumpWriteOrder(recipient=r, path=tmp, offset=int(offsets[r]),
                                                               lo=lo, hi=hi, selector=selector))
        except BaseException:
            os.unlink(tmp)
            raise
        os.replace(tmp, path)
        nbytes = sum(w.info["bytes"] for w in written)
        return [Result("dump", f"wrote {nbytes:,} bytes to {path} (each rank wrote its own part)",
                       {"path": path, "bytes": nbytes})]

    def query(self, st: ast.Query, scope):
        src = fastx.inspect(quoted_path(self.interp, st.path, scope))
        out = quoted_path(self.interp, st.output, scope) if st.output is not None else None
        if out:
            _check_writable(out)
        k = None
        infos = yield from self._stats()
        ks = {i["k"] for i in infos if i["k"]}
        if not ks:
            raise ScriptError("the store holds no loaded k-mers to query (load some first)")
        k = ks.pop()
        fwd_all, canon_all = [], []
        for chunk in fastx.read_part(fastx.Part(src.path, src.fmt, src.gz, 0, 1 << 62)):
            fwd, _ = encoding.kmers_from_codes(chunk.codes, k, canonical=False)
            canon, _ = encoding.kmers_from_codes(chunk.codes, k, canonical=True)
            fwd_all.append(fwd)
            canon_all.append(canon)
        fwd = np.concatenate(fwd_all) if fwd_all else np.empty(0, np.uint64)
        canon = np.concatenate(canon_all) if canon_all else np.empty(0, np.uint64)
        dest = owners(canon, self.node.size)
        futures, selections = [], []
        for r in range(self.node.size):
            sel = np.flatnonzero(dest == r)
            selections.append(sel)
            futures.append(self.node.order(QueryOrder(recipient=r, ids=canon[sel].tobytes())))
        replies = yield futures
        counts = np.zeros(len(canon), np.uint32)
        for sel, rep in zip(selections, replies):
            counts[sel] = np.frombuffer(rep.info, dtype=np.uint32)
        body = format_counts(fwd, counts, k).decode()
        data = {"kmers": len(fwd), "found": int((counts > 0).sum())}
        if out:
            with open(out, "w") as fh:
                fh.write(body)
            return [Result("query", f"wrote the counts of {len(fwd):,} k-mers to {out}", data)]
        return [Result("query", body.rstrip("\n"), data)]


def install(interp) -> None:
    KmerService(interp.node)
    KmerStatements(interp)
