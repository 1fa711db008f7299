"""K-mer statements: load, count, histogram, dump, query (the ranks' side is
rayscript.genomics.kmers).

``load`` is collective: the commander checks the files, plans which rank reads which byte range,
and sends one LOAD order to every rank; the ranks then count together.  ``dump`` asks every rank
for the size of its part, computes offsets, and has every rank write its part of one file.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from ..errors import ScriptError
from ..genomics import fastx
from ..genomics.kmers import format_counts, format_table
from ..genomics.paths import n50
from ..interpreter import Command, Steps
from ..items import KMERS, is_kmers, set_label
from ..language.syntax import TRUTH, Build, Key, Options, Selector, Statement, Takes, Value, whole
from ..protocol.base import Message
from ..protocol.kmers import DumpSizeOrder, DumpWriteOrder, KmerStatsOrder, LoadOrder, QueryOrder
from ..protocol.paths import PathLengthsOrder, PathWriteOrder
from ..protocol.sets import SetsOrder
from ..results import Result, table
from ..store import encoding
from ..store.encoding import COUNT_MAX, MAX_K
from ..store.partition import owner, owners
from .store import wire_selector


def in_the_way(path: str) -> str | None:
    """The file that stands where ``path`` needs a directory: the deepest of ``path`` and the folders
    above it that exists, if it is not a directory (None when that one is a directory)."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None if os.path.isdir(path) else path


def output_path(path: str) -> str:
    """Where a statement writes ``path``: through a symlink to its target; refused when it is
    anything but a regular file (which is overwritten) or absent, or cannot be written."""
    real = os.path.realpath(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        blocker = in_the_way(directory)
        if blocker is not None:
            raise ScriptError(f"cannot write {path}: {blocker} is a file, not a directory")
        raise ScriptError(f"cannot write {path}: no such directory {directory}")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ScriptError(f"cannot write {path}: it is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ScriptError(f"cannot write {path}: it is not a regular file (a device, a pipe or a socket); "
                          "statements write regular files only")
    if not os.access(directory, os.W_OK) or (st is not None and not os.access(real, os.W_OK)):
        raise ScriptError(f"cannot write {path}: permission denied")
    return real


def write_text(path: str, body: str) -> None:
    """Write a small output file whole (through a temporary name, so a failure leaves the old one)."""
    tmp = f"{path}.part{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ScriptError(f"cannot write {path}: {exc.strerror}") from None


class _KmersOnly(Statement):
    """A statement on a k-mer set (``kmers`` or ``kmers.NAME``): refuses the other namespaces when parsed."""

    namespace: str

    @classmethod
    def kmers_only(cls, b: Build, namespace: object) -> str:
        if not is_kmers(str(namespace)):
            b.fail(f"'{cls.keyword}' applies to k-mer sets (kmers, kmers.NAME), not {namespace}")
        return str(namespace)


DEFAULT_K = 31  # load's k for an empty store


class Load(_KmersOnly, keyword="load"):
    syntax = "load \"FILE\" [, \"FILE\" ...] into kmers|kmers.NAME [k=N] [canonical=false]"
    summary = ("Count the k-mers of FASTQ/FASTA files across the ranks: plain files, each split between the ranks, "
               f"and files compressed with {fastx.COMPRESSIONS} (told by their first bytes, whatever their names), "
               "each read whole by one rank. A file listed twice is counted twice. A second load adds its "
               "counts to those already in the set (same k and canonical= setting); a load into kmers.NAME makes "
               "that set if it is new, and leaves the other sets as they are. Without k=, the set's "
               f"k, or {DEFAULT_K} for a new or empty set.")
    example = 'load "reads.fq" into kmers k=31'
    options_allowed = {"k": whole(1, MAX_K, note="at most two 64-bit words per k-mer"), "canonical": TRUTH}
    collective = True

    paths: tuple[Value, ...] = ()
    options: Options = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Load:
        paths, namespace = b.positional(children)
        return cls(cls.kmers_only(b, namespace), paths, b.options(cls, children), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        opts = cmd.options(self)
        if "k" in opts:
            k = opts["k"]
        else:  # the set's k, so that a second load adds to the first; 31 for an empty set
            held = {i.k for i in (yield from _stats(cmd, self.namespace)) if i.k}
            k = held.pop() if len(held) == 1 else DEFAULT_K
        canonical = opts.get("canonical", True)
        paths = [cmd.path(p) for p in self.paths]
        sources = [fastx.inspect(p) for p in paths]
        plan = fastx.plan(sources, cmd.size)
        total = sum(s.size for s in sources)
        t0 = time.monotonic()
        tiled = [(i, s.path, s.size) for i, s in enumerate(sources) if s.fmt == "fastq" and not s.codec]
        replies = yield cmd.every(lambda r: LoadOrder(
            recipient=r, k=k, canonical=canonical, total_bytes=total, tiled=tiled, kset=self.namespace,
            parts=[(p.path, p.fmt, p.codec, p.start, p.end, p.file) for p in plan[r]]))
        cmd.set_canonical(self.namespace, canonical)
        seconds = time.monotonic() - t0
        reads = sum(i.reads for i in replies)
        kmers = sum(i.kmers for i in replies)
        distinct = sum(i.distinct for i in replies)
        saturated = sum(i.saturated for i in replies)
        rate = kmers / seconds if seconds > 0 else 0.0
        where = "the store" if self.namespace == KMERS else self.namespace
        text = (f"loaded {len(paths)} file{'s' if len(paths) > 1 else ''}: {reads:,} reads, {kmers:,} k-mers "
                f"(k={k}), {distinct:,} distinct in {where}; {seconds:.2f} s, {rate / 1e6:.2f} M k-mers/s")
        if saturated:
            text += f"\nwarning: {saturated:,} counts reached the counter's maximum ({COUNT_MAX}) and stay there"
        return [Result("load", text, {"files": paths, "reads": reads, "kmers": kmers, "distinct": distinct,
                                      "seconds": seconds, "saturated": saturated, "k": k,
                                      "set": self.namespace, "peak_rss": [i.peak_rss for i in replies],
                                      "table_bytes": sum(i.table_bytes for i in replies)})]


def _stats(cmd: Command, kset: str = KMERS, histogram: bool = False, once: bool = False,
           foreign: bool = False, selector: tuple[Any, ...] = ("all",)) -> Generator[Any, Any, list[Any]]:
    """Every rank's KMER-STATS reply (KmerStatsReply) on a set, by rank."""
    return (yield cmd.every(lambda r: KmerStatsOrder(recipient=r, histogram=histogram, once=once, foreign=foreign,
                                                     kset=kset, selector=selector)))


def set_names(cmd: Command) -> Generator[Any, Any, list[str]]:
    """The names of the sets some rank holds (the default set first)."""
    replies = yield cmd.every(lambda r: SetsOrder(recipient=r))
    names = {name for rep in replies for name in rep.sets}
    return sorted(names, key=lambda n: (n != KMERS, n))


def unknown_set(kset: str, names: list[str]) -> str:
    """No set of that name: the message names the sets there are, and the nearest."""
    near = difflib.get_close_matches(kset, names, n=1)
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"no set {kset} in the store (the sets: {', '.join(names) or 'none'}){hint}"


def known_stats(cmd: Command, kset: str, histogram: bool = False, once: bool = False,
                foreign: bool = False, selector: tuple[Any, ...] = ("all",)) -> Generator[Any, Any, list[Any]]:
    """As :func:`_stats`, for a statement that reads a set: a named set that no rank holds is refused,
    naming the sets there are (the default set ``kmers`` always is, maybe empty)."""
    infos = yield from _stats(cmd, kset, histogram, once, foreign, selector)
    if kset != KMERS and not any(i.held for i in infos) and not cmd.explaining:
        names = yield from set_names(cmd)
        raise ScriptError(unknown_set(kset, names))
    return infos


def copies_note(copies: int, items: str = "k-mers") -> str:
    """The words for the items left out as copies of ones held on another rank too."""
    return f"{copies:,} extra cop{'y' if copies == 1 else 'ies'} of {items} held on several ranks left out"


class Count(_KmersOnly, keyword="count"):
    syntax = "count kmers|kmers.NAME|SELECTOR|paths"
    summary = ("Distinct and total k-mers over the ranks, each k-mer once however many ranks hold copies of it; "
               "or the paths: how many, their total length, N50 and the longest.")
    example = "count kmers.somatic where count >= 5"

    selector: Selector | None = None

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Count:
        (what,) = children
        namespace = str(getattr(what, "namespace", what))
        if namespace == "paths":
            if isinstance(what, (Key, Selector)):
                b.fail("'count paths' counts every path: no key or selector")
            return cls("paths", meta=b.location)
        if isinstance(what, Key):
            b.fail(f"'count' counts many k-mers: use {namespace}, {namespace}/ACG* or {namespace} where ..., "
                   f"not {what} (get shows one)")
        selector = what if isinstance(what, Selector) and (what.field is not None or what.prefix) else None
        return cls(cls.kmers_only(b, namespace), selector, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        if self.namespace == "paths":
            return (yield from _count_paths(cmd))
        selector = wire_selector(cmd, self.selector) if self.selector is not None else ("all",)
        infos = yield from known_stats(cmd, self.namespace, once=True, selector=selector)
        distinct = sum(i.distinct for i in infos)
        total = sum(i.total for i in infos)
        copies = sum(i.copies for i in infos)
        rows = [[r, i.distinct, i.total] for r, i in enumerate(infos)]
        note = f" ({copies_note(copies)})" if copies else ""
        text = (f"{distinct:,} distinct k-mer{'' if distinct == 1 else 's'}, {total:,} in total{note}\n"
                + table(["rank", "distinct", "total"], rows))
        return [Result("count", text, {"distinct": distinct, "total": total, "copies": copies,
                                       "per_rank": [{"distinct": i.distinct, "total": i.total} for i in infos]})]


def paths_once(replies: list[Any], size: int) -> tuple[list[tuple[int, str, int]], int]:
    """The paths of every rank's PathLengthsReply taken once each, however many ranks hold a copy:
    (rank, name, index in that rank's reply) of the owner's copy, or of the lowest rank's when the
    owner holds none; and how many copies were left out."""
    holders: dict[str, list[tuple[int, int]]] = {}
    for r, rep in enumerate(replies):
        for i, name in enumerate(rep.names):
            holders.setdefault(name, []).append((r, i))
    chosen = []
    for name, held in holders.items():
        own = owner(("paths", name), size)
        r, i = next(((r, i) for r, i in held if r == own), held[0])
        chosen.append((r, name, i))
    return chosen, sum(len(held) for held in holders.values()) - len(holders)


def _count_paths(cmd: Command) -> Steps:
    replies = yield cmd.every(lambda r: PathLengthsOrder(recipient=r))
    chosen, copies = paths_once(replies, cmd.size)
    lengths = np.array([replies[r].lengths[i] for r, _name, i in chosen], np.int64)
    data = {"paths": len(lengths), "total": int(lengths.sum()), "n50": n50(lengths),
            "longest": int(lengths.max(initial=0)), "copies": copies}
    text = (f"{data['paths']:,} path{'' if data['paths'] == 1 else 's'}, {data['total']:,} bases in total, "
            f"N50 {data['n50']:,}, longest {data['longest']:,}")
    if copies:
        text += f" ({copies_note(copies, 'paths')})"
    return [Result("count", text, data)]


class Histogram(_KmersOnly, keyword="histogram"):
    syntax = "histogram kmers|kmers.NAME [to \"FILE\"]"
    summary = ("Count -> number of k-mers with that count, for every count held, however large (lines in "
               "increasing count, as jellyfish histo writes them). An existing FILE is overwritten.")
    example = 'histogram kmers to "histo.tsv"'

    path: Value | None = None

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Histogram:
        namespace, path = children
        return cls(cls.kmers_only(b, namespace), path, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        path = output_path(cmd.path(self.path)) if self.path is not None else None
        infos = yield from known_stats(cmd, self.namespace, histogram=True, once=True)
        # every rank's (counts, numbers), summed count by count: sparse, however large a count is
        pairs = np.concatenate([np.frombuffer(i.histogram, dtype=np.int64).reshape(2, -1) for i in infos], axis=1)
        counts, where = np.unique(pairs[0], return_inverse=True)
        numbers = np.zeros(len(counts), np.int64)
        np.add.at(numbers, where, pairs[1])
        keep = (counts > 0) & (numbers > 0)
        data = dict(zip(counts[keep].tolist(), numbers[keep].tolist()))
        lines = [f"{c} {n}" for c, n in data.items()]
        body = "\n".join(lines) + ("\n" if lines else "")
        if path:
            if not cmd.explaining:
                write_text(path, body)
            copies = sum(i.copies for i in infos)
            return [Result("histogram", f"wrote {len(lines)} histogram lines to {path}"
                                        + (f" ({copies_note(copies)})" if copies else ""), data)]
        if not lines:
            holder = "the store holds" if self.namespace == KMERS else f"{self.namespace} holds"
            return [Result("histogram", f"{holder} no k-mers: an empty histogram", data)]
        return [Result("histogram", body.rstrip("\n"), data)]


class Dump(_KmersOnly, keyword="dump"):
    syntax = "dump kmers|kmers.NAME|SELECTOR|paths|paths/NAME|paths/PREFIX* to \"FILE\" [min=N] [max=N] [fields=A,B]"
    summary = ("K-mers: write SEQUENCE<TAB>COUNT lines, each k-mer once however many ranks hold it. "
               "Paths: write FASTA, one record per path (header: name, "
               "length, mean k-mer count), in name order (contig-1, contig-2, ...); no path to write makes an empty "
               "file, and says so. Every rank writes its own part "
               "of the file. An existing FILE is overwritten (a symlink is written through).")
    example = 'dump paths/contig* to "contigs.fa"'
    options_allowed = {"min": whole(0), "max": whole(0),
                       "fields": Takes(names=True, note="fields of the set: columns after the count")}

    path: Value = ""
    options: Options = ()
    selector: Selector | None = None
    name: Key | None = None  # one path

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Dump:
        what, path = b.positional(children)
        namespace = str(getattr(what, "namespace", what))
        if namespace == "paths":
            if any(n for n, _ in b.options(cls, children)):
                b.fail("'dump' of paths takes no min=/max=")
            return cls("paths", path, (), what if isinstance(what, Selector) else None,
                       what if isinstance(what, Key) else None, meta=b.location)
        if isinstance(what, Key):
            b.fail(f"'dump' writes many k-mers: use {namespace}, {namespace}/* or {namespace}/ACG*, not {what}")
        selector = what if isinstance(what, Selector) else None
        return cls(cls.kmers_only(b, namespace), path, b.options(cls, children), selector, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        if self.namespace == "paths":
            return (yield from self._fasta(cmd))
        path = output_path(os.path.abspath(cmd.path(self.path)))
        opts = cmd.options(self)
        lo, hi = max(opts.get("min", 1), 1), opts.get("max")
        selector = wire_selector(cmd, self.selector) if self.selector is not None else ("all",)
        kset = self.namespace
        yield from known_stats(cmd, kset)
        fields = yield from self._fields(cmd, kset)
        sizes = yield cmd.every(lambda r: DumpSizeOrder(recipient=r, lo=lo, hi=hi, selector=selector, kset=kset,
                                                        columns=fields))
        offsets = np.concatenate(([0], np.cumsum([s.nbytes for s in sizes])))
        written = yield from _write_in_parts(cmd, path, int(offsets[-1]), lambda r, tmp: DumpWriteOrder(
            recipient=r, path=tmp, offset=int(offsets[r]), lo=lo, hi=hi, selector=selector, kset=kset,
            columns=fields))
        nbytes = sum(w.nbytes for w in written)
        copies = sum(s.copies for s in sizes)
        note = f"; {copies_note(copies)}" if copies else ""
        return [Result("dump", f"wrote {nbytes:,} bytes to {path} (each rank wrote its own part{note})",
                       {"path": path, "bytes": nbytes, "copies": copies})]

    def _fields(self, cmd: Command, kset: str) -> Generator[Any, Any, tuple[str, ...]]:
        """The fields= option's names, each a field of the set (refused, naming its fields, if not)."""
        given = dict(self.options).get("fields")
        if given is None:
            return ()
        names = tuple(str(cmd.value(v)) for v in (given if isinstance(given, tuple) else (given,)))
        from .cascades import set_fields

        held = yield from set_fields(cmd)
        known = held.get(kset, {})
        for name in names:
            if name not in known and not cmd.explaining:
                raise ScriptError(f"{kset} has no field {name} (its fields: {', '.join(sorted(known)) or 'none'})")
        return names

    def _fasta(self, cmd: Command) -> Steps:
        path = output_path(os.path.abspath(cmd.path(self.path)))
        if self.name is not None:
            selector: tuple[Any, ...] = ("name", cmd.key(self.name).key[1])
        elif self.selector is not None and self.selector.prefix:
            selector = ("prefix", self.selector.prefix)
        else:
            selector = ("all",)
        replies = yield cmd.every(lambda r: PathLengthsOrder(recipient=r, selector=selector, fasta=True))
        chosen, copies = paths_once(replies, cmd.size)
        records = sorted((_name_order(name), r, name, replies[r].sizes[i]) for r, name, i in chosen)
        if not records:  # an empty FASTA file, as an empty store dumps an empty k-mer file
            if not cmd.explaining:
                write_text(path, "")
            which = self.name or self.selector
            none = f"no path matches {which}" if which is not None else "the store holds no paths"
            return [Result("dump", f"{none}: wrote an empty file {path}",
                           {"path": path, "bytes": 0, "paths": 0, "copies": copies})]
        places: list[list[tuple[str, int]]] = [[] for _ in range(cmd.size)]
        offset = 0
        for _order, r, name, size in records:
            places[r].append((name, offset))
            offset += size
        yield from _write_in_parts(cmd, path, offset,
                                   lambda r, tmp: PathWriteOrder(recipient=r, path=tmp, places=places[r]))
        noun = "path" if len(records) == 1 else "paths"
        note = f"; {copies_note(copies, 'paths')}" if copies else ""
        return [Result("dump", f"wrote {len(records):,} {noun} as FASTA ({offset:,} bytes) to {path} (each rank "
                               f"wrote its own records{note})", {"path": path, "bytes": offset,
                                                                "paths": len(records), "copies": copies})]


def _write_in_parts(cmd: Command, path: str, size: int,
                    order: Callable[[int, str], Message]) -> Generator[Any, Any, list[Any]]:
    """Every rank writes its part of one file (``order(rank, temporary path)`` says what): the
    file is sized first under a temporary name and renamed into place once all have written."""
    tmp = f"{path}.part{os.getpid()}"
    if not cmd.explaining:
        try:
            with open(tmp, "wb") as fh:
                fh.truncate(size)
        except OSError as exc:
            raise ScriptError(f"cannot write {path}: {exc.strerror}") from None
    try:
        written = yield cmd.every(lambda r: order(r, tmp))
        if not cmd.explaining:
            os.replace(tmp, path)
    except BaseException as exc:
        if not cmd.explaining and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ScriptError(f"cannot write {path}: {exc.strerror}") from None
        raise
    return written


def _name_order(name: str) -> tuple[tuple[int, int, str], ...]:
    """contig-2 before contig-10: names compared by their text and number parts."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


class Query(_KmersOnly, keyword="query"):
    syntax = "query \"FILE\" in SET [, SET ...] [to \"FILE\"]"
    summary = ("The count of every k-mer of the given sequences in each set, looked up as the set counted them "
               "(canonical or forward strands): its owner's copy, else the copy of the lowest rank that holds it; "
               "and for every sequence and set, how many of its k-mers were found and their median count. One set: "
               "SEQUENCE<TAB>COUNT lines; several: a header 'kmer' and the set names, then a line per k-mer. "
               "An existing output FILE is overwritten.")
    example = 'query "genes.fa" in kmers.tumour, kmers.normal to "genes.tsv"'

    path: Value = ""
    output: Value | None = None
    sets: tuple[str, ...] = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Query:
        path, namespaces, output = children
        sets = tuple(cls.kmers_only(b, ns) for ns in namespaces)
        if len(set(sets)) < len(sets):
            b.fail("'query' names a set twice")
        return cls(sets[0], path, output, sets, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        src = fastx.inspect(cmd.path(self.path))
        out = output_path(cmd.path(self.output)) if self.output is not None else None
        sets = self.sets or (self.namespace,)
        infos = {}
        for kset in sets:
            infos[kset] = yield from known_stats(cmd, kset, foreign=True)
        ks = {kset: {i.k for i in rep if i.k} for kset, rep in infos.items()}
        empty = [kset for kset, held in ks.items() if not held]
        if empty and not cmd.explaining:
            where = "the store holds" if empty[0] == KMERS else f"{empty[0]} holds"
            raise ScriptError(f"{where} no loaded k-mers to query (load some first)")
        k = next(iter(ks[sets[0]]), DEFAULT_K)
        for kset in sets[1:]:
            other = next(iter(ks[kset]), k)
            if other != k:
                raise ScriptError(f"{sets[0]} has k={k} and {kset} has k={other}: query sets of one k")
        canonical = {kset: all(i.canonical for i in rep if i.k) for kset, rep in infos.items()}
        records = list(fastx.records(src))
        fwd_parts, which = [], []
        for i, (_name, seq) in enumerate(records):
            codes = encoding.codes_from_bytes(np.frombuffer(seq.encode(), np.uint8))
            fwd, _ = encoding.kmers_from_codes(codes, k, canonical=False)
            fwd_parts.append(fwd)
            which.append(np.full(len(fwd), i, np.int64))
        fwd = encoding.concatenate(fwd_parts, k)
        record_of = np.concatenate(which) if which else np.zeros(0, np.int64)
        columns = []
        for kset in sets:
            ids = encoding.canonical_array(fwd, k) if canonical[kset] else fwd
            columns.append((yield from _lookup(cmd, kset, ids, infos[kset])))
        summary = _summary(records, record_of, sets, columns)
        found = {set_label(kset): int((c > 0).sum()) for kset, c in zip(sets, columns)}
        data: dict[str, Any] = {"kmers": len(fwd), "found": int((columns[0] > 0).sum()),
                                "sets": [set_label(kset) for kset in sets], "found_per_set": found,
                                "sequences": summary}
        one = len(sets) == 1
        body = format_counts(fwd, columns[0], k).decode() if one else _count_table(fwd, k, sets, columns)
        rows = [[row["sequence"], row["set"], row["kmers"], row["found"], row["median"]] for row in summary]
        shown = SUMMARY_ROWS * len(sets)
        overview = table(["sequence", "set", "k-mers", "found", "median count"], rows[:shown])
        if len(rows) > shown:
            overview += f"\n... and {len(rows) - shown:,} more lines (every sequence is in the result's data)"
        if out:
            if not cmd.explaining:
                write_text(out, body)
            return [Result("query", f"wrote the counts of {len(fwd):,} k-mers in {len(sets)} set"
                                    f"{'s' if len(sets) > 1 else ''} to {out}\n{overview}", data)]
        return [Result("query", body.rstrip("\n") + "\n" + overview, data)]


SUMMARY_ROWS = 20  # sequences shown in a query's result text (all are in its data)


def _lookup(cmd: Command, kset: str, ids: Any, infos: list[Any]) -> Generator[Any, Any, Any]:
    """The count in set ``kset`` of every id (0 where absent): asked of the owners, then of the ranks that
    hold k-mers off their owner (the lowest such rank's count, as count and dump take it)."""
    dest = owners(ids, cmd.size)
    futures, selections = [], []
    for r in range(cmd.size):
        sel = np.flatnonzero(dest == r)
        selections.append(sel)
        futures.append(cmd.order(QueryOrder(recipient=r, ids=ids[sel].tobytes(), kset=kset)))
    replies = yield futures
    counts = np.zeros(len(ids), np.uint32)
    for sel, rep in zip(selections, replies):
        if rep.counts:
            counts[sel] = np.frombuffer(rep.counts, dtype=np.uint32)
    for r in [r for r, info in enumerate(infos) if info.foreign]:
        missing = np.flatnonzero(counts == 0)
        if not len(missing):
            break
        (rep,) = yield [cmd.order(QueryOrder(recipient=r, ids=ids[missing].tobytes(), kset=kset))]
        if rep.counts:
            counts[missing] = np.frombuffer(rep.counts, dtype=np.uint32)
    return counts


def _summary(records: list[tuple[str, str]], record_of: Any, sets: tuple[str, ...],
             columns: list[Any]) -> list[dict[str, Any]]:
    """Per sequence and set: its k-mers, how many were found, their median count (over all its k-mers)."""
    n = np.bincount(record_of, minlength=len(records))
    order = np.argsort(record_of, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(n)))
    out = []
    for kset, counts in zip(sets, columns):
        found = np.bincount(record_of, weights=counts > 0, minlength=len(records)).astype(np.int64)
        ranked = counts[order]
        for i, (name, _seq) in enumerate(records):
            mine = ranked[bounds[i]:bounds[i + 1]]
            median = float(np.median(mine)) if len(mine) else 0.0
            out.append({"sequence": name, "set": set_label(kset), "kmers": int(n[i]), "found": int(found[i]),
                        "median": median})
    return out


def count_header(sets: tuple[str, ...]) -> str:
    """The header line of a table of counts per set: ``kmer``, then the sets' names without ``kmers.``."""
    return "\t".join(["kmer", *(set_label(s) for s in sets)]) + "\n"


def _count_table(fwd: Any, k: int, sets: tuple[str, ...], columns: list[Any]) -> str:
    """A header ``kmer`` and the set names, then each k-mer's bases and its count in each set."""
    return count_header(sets) + format_table(fwd, k, columns).decode()
