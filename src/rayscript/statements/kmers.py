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
import tempfile
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from .. import pictures
from ..errors import ScriptError
from ..genomics import contigs, fastx
from ..genomics.kmers import format_counts, format_table
from ..genomics.paths import FLIP, Link, bcalm_links, gfa_links, n50, overlap_links
from ..genomics.spectrum import SpectrumModel, fit_spectrum
from ..interpreter import Command, Steps
from ..items import KMERS, is_kmers, set_label
from ..language.syntax import FILE, TRUTH, Build, Key, Options, Selector, Statement, Takes, Value, Var, whole
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


# the extensions of compressed files: refused as output (statements write plain files)
COMPRESSED = (".gz", ".bgz", ".bz2", ".xz", ".zst", ".zstd", ".lz4", ".z", ".zip")


def output_path(path: str) -> str:
    """Where a statement writes ``path``: through a symlink to its target; refused when it is
    anything but a regular file (which is overwritten) or absent, or cannot be written, or when
    its name ends as a compressed file's does (nothing is written compressed: a dump's ranks each
    write their own part of one file at its offset, which a compressed stream does not allow)."""
    stem, ext = os.path.splitext(path)
    if ext.lower() in COMPRESSED:
        raise ScriptError(f"cannot write {path}: {ext} is the extension of a compressed file, and statements "
                          f"write plain files (each rank writes its part at its offset); write {stem} and "
                          "compress it afterwards")
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
    syntax = "load \"FILE\"|paths/PREFIX*|paths/NAME [, ...] into kmers|kmers.NAME [k=N] [canonical=false]"
    summary = ("Count the k-mers of FASTQ/FASTA files across the ranks: plain files, each split between the ranks, "
               f"and files compressed with {fastx.COMPRESSIONS} (told by their first bytes, whatever their names), "
               "each read whole by one rank. A file listed twice is counted twice. A second load adds its "
               "counts to those already in the set (same k and canonical= setting); a load into kmers.NAME makes "
               "that set if it is new, and leaves the other sets as they are. Without k=, the set's "
               f"k, or {DEFAULT_K} for a new or empty set. Paths (contigs: paths/asm-*) are input too: each k-mer "
               "of a path counts as many times as the path's mean count (at least once), as deep as the reads "
               "that made it covered it, so a round of assembly at a larger k keeps what a smaller k assembled. "
               "As a file, a selector of paths listed twice counts twice, and a path two selectors match counts "
               "once for each; a selector that matches no path is refused before anything is loaded. Reads "
               "shorter than k hold no k-mer: the result says how many there were (and, when no read is as long as "
               "k, how long the longest is).")
    example = 'load "reads.fq" into kmers k=31'
    options_allowed = {"k": whole(1, MAX_K, note="at most four 64-bit words per k-mer"),
                       "canonical": TRUTH}
    collective = True

    paths: tuple[Value | Selector, ...] = ()  # files, and paths (contigs) as input
    options: Options = ()
    # every selector of paths must match a path (as written in a script; assemble's own rounds load
    # the contigs of the previous round, which may have none)
    must_match: bool = False

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Load:
        paths, namespace = b.positional(children)
        return cls(cls.kmers_only(b, namespace), paths, b.options(cls, children), must_match=True, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        opts = cmd.options(self)
        if "k" in opts:
            k = opts["k"]
        else:  # the set's k, so that a second load adds to the first; 31 for an empty set
            held = {i.k for i in (yield from _stats(cmd, self.namespace)) if i.k}
            k = held.pop() if len(held) == 1 else DEFAULT_K
        canonical = opts.get("canonical", True)
        wanted = [cmd.value(p) if isinstance(p, Var) else p for p in self.paths]
        contigs = [path_selector(p) for p in wanted if isinstance(p, (Key, Selector))]
        paths = [cmd.path(p) for p in wanted if not isinstance(p, (Key, Selector))]
        sources = [fastx.inspect(p) for p in paths]
        if self.must_match and not cmd.explaining:
            yield from _every_selector_matches(cmd, [p for p in wanted if isinstance(p, (Key, Selector))])
        plan = fastx.plan(sources, cmd.size)
        total = sum(s.size for s in sources)
        t0 = time.monotonic()
        tiled = [(i, s.path, s.size) for i, s in enumerate(sources) if s.fmt == "fastq" and not s.codec]
        replies = yield cmd.every(lambda r: LoadOrder(
            recipient=r, k=k, canonical=canonical, total_bytes=total, tiled=tiled, kset=self.namespace,
            parts=[(p.path, p.fmt, p.codec, p.start, p.end, p.file) for p in plan[r]], paths=contigs))
        cmd.set_canonical(self.namespace, canonical)
        cmd.set_k(self.namespace, k)
        seconds = time.monotonic() - t0
        reads = sum(i.reads for i in replies)
        kmers = sum(i.kmers for i in replies)
        distinct = sum(i.distinct for i in replies)
        saturated = sum(i.saturated for i in replies)
        rate = kmers / seconds if seconds > 0 else 0.0
        where = "the store" if self.namespace == KMERS else self.namespace
        what = [f"{len(paths)} file{'s' if len(paths) > 1 else ''}"] if paths else []
        what += [f"paths {', '.join(str(p) for p in wanted if isinstance(p, (Key, Selector)))}"] if contigs else []
        text = (f"loaded {' and '.join(what)}: {reads:,} {'reads and paths' if contigs else 'reads'}, {kmers:,} k-mers "
                f"(k={k}), {distinct:,} distinct in {where}; {seconds:.2f} s, {rate / 1e6:.2f} M k-mers/s")
        if saturated:
            text += f"\nwarning: {saturated:,} counts reached the counter's maximum ({COUNT_MAX}) and stay there"
        short = sum(i.short for i in replies)
        longest = max((i.longest for i in replies), default=0)
        file_reads = reads - sum(i.paths for i in replies)
        files = "file" if len(paths) == 1 else "files"
        if short and short == file_reads:
            text += (f"\nwarning: no read is as long as k={k}: the {short:,} read{'s' if short > 1 else ''} of the "
                     f"{files} hold no {k}-mer (the longest has {longest:,} bases); a k of at most {longest:,} "
                     "counts them")
        elif short:
            text += (f"\nnote: {short:,} of the {file_reads:,} reads of the {files} are shorter than k={k}: no k-mer "
                     "in them")
        return [Result("load", text, {"files": paths, "reads": reads, "kmers": kmers, "distinct": distinct,
                                      "short": short, "longest": longest,
                                      "seconds": seconds, "saturated": saturated, "k": k,
                                      "set": self.namespace, "peak_rss": [i.peak_rss for i in replies],
                                      "table_bytes": sum(i.table_bytes for i in replies)})]


def _every_selector_matches(cmd: Command, given: list[Key | Selector]) -> Generator[Any, Any, None]:
    """Refuse a selector of paths given to load that matches none (as a missing file is refused)."""
    for what in dict.fromkeys(given):
        selector = path_selector(what)
        if not (yield from path_names(cmd, selector)):
            none = "the store holds no paths" if selector == ("all",) else f"no path matches {what}"
            raise ScriptError(f"{none} to load: nothing was loaded (a missing file is refused the same way)")


def path_names(cmd: Command, selector: tuple[str, ...]) -> Generator[Any, Any, set[str]]:
    """The names of the paths a wire selector picks, on every rank."""
    held = yield cmd.every(lambda r: PathLengthsOrder(recipient=r, selector=selector))
    return {name for rep in held for name in rep.names}


def path_selector(what: Key | Selector) -> tuple[str, ...]:
    """The wire selector of paths given as input (paths/NAME, paths/PREFIX*, paths/*)."""
    if what.namespace != "paths":
        raise ScriptError(f"load reads files and paths (paths/NAME, paths/PREFIX*), not {what}")
    if isinstance(what, Key):
        return ("name", str(what.ident))
    return ("prefix", what.prefix) if what.prefix else ("all",)


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
    syntax = ("count kmers|kmers.NAME|SELECTOR | count paths [compare \"FASTA\" [, \"FASTA\" ...]] [to \"FILE\"] "
              "[reference=\"FASTA\"]")
    summary = ("Distinct and total k-mers over the ranks, each k-mer once however many ranks hold copies of it; "
               "or the paths: how many, their total length, N50 and the longest. 'compare' puts other assemblies' "
               "FASTA files beside the paths; reference= adds each one's NGA50 against that genome (QUAST's, from "
               "blocks of exact 25-mer anchors); to a FILE ending in .png, .svg or .pdf, the Nx curves with N50, "
               "total length and NGA50 in the legend (needs the extra rayscript[plot]); to any other FILE, the "
               "table, tab-separated.")
    example = 'count paths compare "minia.fa", "megahit.fa" to "nx.png" reference="genome.fa"'
    options_allowed = {"reference": FILE}

    selector: Selector | None = None
    others: tuple[Value, ...] = ()
    path: Value | None = None
    options: Options = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Count:
        what, others, path = b.positional(children)
        options = b.options(cls, children)
        namespace = str(getattr(what, "namespace", what))
        if namespace == "paths":
            if isinstance(what, (Key, Selector)):
                b.fail("'count paths' counts every path: no key or selector")
            return cls("paths", None, tuple(others or ()), path, options, meta=b.location)
        if others is not None or path is not None or options:
            b.fail(f"'count {namespace}' takes no compare, to or reference=: they compare assemblies, with "
                   "'count paths'")
        if isinstance(what, Key):
            b.fail(f"'count' counts many k-mers: use {namespace}, {namespace}/ACG* or {namespace} where ..., "
                   f"not {what} (get shows one)")
        selector = what if isinstance(what, Selector) and (what.field is not None or what.prefix) else None
        return cls(cls.kmers_only(b, namespace), selector, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        if self.namespace == "paths":
            if self.others or self.path is not None or self.options:
                return (yield from self._assemblies(cmd))
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

    def _assemblies(self, cmd: Command) -> Steps:
        """The paths beside other assemblies' FASTA files: a table (and an Nx picture, or a TSV)."""
        out = output_path(os.path.abspath(cmd.path(self.path))) if self.path is not None else None
        reference_file: str | None = cmd.options(self).get("reference")
        others = [cmd.path(v, "a FASTA file of another assembly") for v in self.others]
        for f in [*others, *([reference_file] if reference_file else [])]:
            fastx.inspect(f)  # every file is checked before any is read
        keep = reference_file is not None
        (own,) = yield from _count_paths(cmd)
        assemblies = [(yield from _own_assembly(cmd, keep))]
        assemblies += [contigs.read_fasta(f, os.path.basename(f), keep) for f in others]
        reference = (contigs.read_fasta(reference_file, os.path.basename(reference_file), True)
                     if reference_file is not None else None)
        ref_len = int(reference.lengths.sum()) if reference is not None else 0
        rows: list[list[Any]] = []
        data: list[dict[str, Any]] = []
        for a in assemblies:
            total = int(a.lengths.sum())
            row: dict[str, Any] = {"assembly": a.name, "contigs": len(a.lengths), "total": total,
                   "n50": contigs.n_value(a.lengths, total), "longest": int(a.lengths.max(initial=0))}
            if reference is not None:
                row["nga50"] = contigs.n_value(contigs.aligned_blocks(a.sequences, reference.sequences), ref_len)
            data.append(row)
            rows.append([*row.values()][:5] + ([row["nga50"] or "-"] if reference is not None else []))
        header = ["assembly", "contigs", "total", "N50", "longest"] + (["NGA50"] if reference is not None else [])
        text = table(header, rows)
        if reference is not None:
            text += f"\nNGA50 against {reference_file} ({ref_len:,} bases; '-': the aligned blocks never reach half)"
        result: dict[str, Any] = {**own.data, "assemblies": data, "reference": reference_file,
                                  "reference_length": ref_len}
        if out and pictures.picture_format(out):
            result["picture"] = None
            if not cmd.explaining:
                lines = [pictures.Assembly(a.name, a.lengths, row["n50"], row["total"], row.get("nga50"))
                         for a, row in zip(assemblies, data)]
                try:
                    pictures.nx(out, lines, "Nx of " + ", ".join(a.name for a in assemblies))
                except pictures.NoPlotting as exc:
                    return [Result("count", f"could not draw {out}: {exc.message}\n{text}", result)]
                result["picture"] = out
            noun = "assembly" if len(assemblies) == 1 else "assemblies"
            return [Result("count", f"drew the Nx curve{'s' if len(assemblies) > 1 else ''} of {len(assemblies)} "
                                    f"{noun} to {out}\n{text}", result)]
        if out:
            if not cmd.explaining:
                write_text(out, "\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
            text = f"wrote {len(rows)} assembl{'y' if len(rows) == 1 else 'ies'} to {out}\n{text}"
        return [Result("count", text, result)]


def _own_assembly(cmd: Command, keep: bool) -> Generator[Any, Any, contigs.Assembly]:
    """The store's paths as an assembly: their lengths, and with ``keep`` their sequences (written as
    FASTA by the ranks to a temporary file, as dump does, and read back)."""
    replies = yield cmd.every(lambda r: PathLengthsOrder(recipient=r))
    chosen, _ = paths_once(replies, cmd.size)
    lengths = np.array([replies[r].lengths[i] for r, _name, i in chosen], np.int64)
    if not keep or cmd.explaining or not len(lengths):
        return contigs.Assembly("paths", lengths, [])
    fd, tmp = tempfile.mkstemp(prefix="rayscript-paths-", suffix=".fa")
    os.close(fd)
    try:
        yield from _paths_fasta(cmd, tmp, ("all",))
        return contigs.read_fasta(tmp, "paths", True)
    finally:
        os.unlink(tmp)


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
               "increasing count, as jellyfish histo writes them), and the spectrum's model (GenomeScope 2.0's "
               "negative binomials, haploid or diploid, whichever fits): genome size, heterozygosity, error rate, "
               "k-mer coverage of one haplotype and how well it fits, or why no model fits. To a FILE ending in "
               ".png, .svg or .pdf: a picture of the spectrum on log axes with the model, the threshold assemble "
               "would choose (min_count=auto) and the estimates (needs the extra rayscript[plot]); to any other "
               "FILE: the histogram's lines. An existing FILE is overwritten.")
    example = 'histogram kmers to "spectrum.png"'

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
        counts, numbers = counts[keep], numbers[keep]
        data: dict[Any, Any] = dict(zip(counts.tolist(), numbers.tolist()))
        k = next((i.k for i in infos if i.k), 0)
        model = fit_spectrum(counts, numbers, k)
        data["model"] = model.as_data()
        lines = [f"{c} {n}" for c, n in zip(counts.tolist(), numbers.tolist())]
        body = "\n".join(lines) + ("\n" if lines else "")
        copies = sum(i.copies for i in infos)
        note = f" ({copies_note(copies)})" if copies else ""
        if path and pictures.picture_format(path):
            data["picture"] = None
            if not cmd.explaining:
                try:
                    pictures.spectrum(path, counts, numbers, f"k-mer spectrum of {self.namespace} (k={k})",
                                      spectrum_notes(model), model.threshold, model)
                    data["picture"] = path
                except pictures.NoPlotting as exc:
                    return [Result("histogram", f"could not draw {path}: {exc.message}{note}\n{model.summary()}",
                                   data)]
            return [Result("histogram", f"drew the spectrum of {len(lines)} counts to {path}{note}\n"
                                        f"{model.summary()}", data)]
        if path:
            if not cmd.explaining:
                write_text(path, body)
            return [Result("histogram", f"wrote {len(lines)} histogram lines to {path}{note}\n{model.summary()}",
                           data)]
        if not lines:
            holder = "the store holds" if self.namespace == KMERS else f"{self.namespace} holds"
            return [Result("histogram", f"{holder} no k-mers: an empty histogram", data)]
        return [Result("histogram", body + model.summary(), data)]


def spectrum_notes(model: SpectrumModel) -> list[str]:
    """The estimates as the picture's box shows them."""
    if not model.fitted:
        words = f"no model: {model.reason}".split()
        lines, line = [], ""
        for w in words:  # wrapped at about 48 characters
            if line and len(line) + len(w) > 48:
                lines.append(line)
                line = ""
            line = f"{line} {w}".strip()
        return [*lines, line, f"threshold (min_count=auto) {model.threshold}"]
    assert model.heterozygosity is not None and model.error_rate is not None and model.fit is not None
    return [f"genome size     {model.genome_size:,} bases",
            f"heterozygosity  {model.heterozygosity:.3%}",
            f"error rate      {model.error_rate:.3%}",
            f"coverage        {model.coverage:.1f} (k-mers, one haplotype)",
            f"ploidy          {model.ploidy} ({'haploid' if model.ploidy == 1 else 'diploid'})",
            f"fit             {model.fit:.1%}",
            f"threshold       {model.threshold} (min_count=auto)"]


class Dump(_KmersOnly, keyword="dump"):
    syntax = ("dump kmers|kmers.NAME|SELECTOR|paths|paths/NAME|paths/PREFIX* to \"FILE\" [min=N] [max=N] "
              "[fields=A,B] [headers=bcalm]")
    summary = ("K-mers: write SEQUENCE<TAB>COUNT lines, each k-mer once however many ranks hold it. "
               "Paths: the format by FILE's extension: .gfa writes a GFA1 graph (H, then an S line per path with "
               "LN:i:, KC:i: and dp:f:, then an L line per link: paths whose ends overlap by k - 1 bases, "
               "with +/- and the (k-1)M overlap); any other writes FASTA, one record per path (header: name, "
               "length, mean k-mer count; headers=bcalm: BCALM2's unitig headers LN:i: KC:i: km:f: and "
               "L:+:NAME:- links, the sequence on one line). Records in name order (contig-1, contig-2, ...); "
               "no path to write makes an empty file, and says so. Every rank writes its own part "
               "of the file, plain: a compressed FILE (.gz, .bz2, .xz, .zst) is refused, to be compressed after. "
               "An existing FILE is overwritten (a symlink is written through).")
    example = 'dump paths/contig* to "contigs.gfa"'
    options_allowed = {"min": whole(0), "max": whole(0), "headers": Takes(words=("bcalm", "plain")),
                       "fields": Takes(names=True, note="fields of the set: columns after the count")}

    path: Value = ""
    options: Options = ()
    selector: Selector | None = None
    name: Key | None = None  # one path

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Dump:
        what, path = b.positional(children)
        namespace = str(getattr(what, "namespace", what))
        options = b.options(cls, children)
        if namespace == "paths":
            if any(n in ("min", "max", "fields") for n, _ in options):
                b.fail("'dump' of paths takes no min=/max=/fields= (those are for k-mers)")
            return cls("paths", path, options, what if isinstance(what, Selector) else None,
                       what if isinstance(what, Key) else None, meta=b.location)
        if isinstance(what, Key):
            b.fail(f"'dump' writes many k-mers: use {namespace}, {namespace}/* or {namespace}/ACG*, not {what}")
        if any(n == "headers" for n, _ in options):
            b.fail("'dump' of k-mers takes no headers= (that is for paths: headers=bcalm)")
        selector = what if isinstance(what, Selector) else None
        return cls(cls.kmers_only(b, namespace), path, options, selector, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        if self.namespace == "paths":
            return (yield from self._paths(cmd))
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

    def _paths(self, cmd: Command) -> Steps:
        path = output_path(os.path.abspath(cmd.path(self.path)))
        gfa = os.path.splitext(path)[1].lower() in (".gfa", ".gfa1")
        bcalm = cmd.options(self).get("headers", "plain") == "bcalm"
        if gfa and bcalm:
            raise ScriptError(f"headers=bcalm is for FASTA; {path} is written as GFA (by its extension)")
        fmt = "gfa" if gfa else "bcalm" if bcalm else "fasta"
        if self.name is not None:
            selector: tuple[Any, ...] = ("name", cmd.key(self.name).key[1])
        elif self.selector is not None and self.selector.prefix:
            selector = ("prefix", self.selector.prefix)
        else:
            selector = ("all",)
        replies = yield cmd.every(lambda r: PathLengthsOrder(recipient=r, selector=selector, fmt=fmt))
        chosen, copies = paths_once(replies, cmd.size)
        records = sorted((_name_order(name), r, name, i) for r, name, i in chosen)
        head = "H\tVN:Z:1.0\n" if gfa else ""
        if not records:  # an empty file, as an empty store dumps an empty k-mer file
            if not cmd.explaining:
                write_text(path, head)
            which = self.name or self.selector
            none = f"no path matches {which}" if which is not None else "the store holds no paths"
            return [Result("dump", f"{none}: wrote an empty {'graph' if gfa else 'file'} {path}",
                           {"path": path, "bytes": len(head), "paths": 0, "copies": copies, "links": 0})]
        names = [name for _o, _r, name, _i in records]
        links: list[Link] = []
        ks = {replies[r].ends[i][2] for _o, r, _n, i in records} if fmt != "fasta" else set()
        if len(ks) > 1:
            raise ScriptError(f"the paths to write were assembled with different k ({', '.join(map(str, sorted(ks)))}):"
                              " their links (overlaps of k - 1 bases) need one k; write each k to its own file")
        if fmt != "fasta":
            links = overlap_links([replies[r].ends[i][:2] for _o, r, _n, i in records])
        extra = bcalm_links(links, names) if bcalm else [""] * len(records)
        tail = gfa_links(links, names, ks.pop()) if gfa and ks else ""
        places: list[list[tuple[str, int, str]]] = [[] for _ in range(cmd.size)]
        offset = len(head)
        for (_order, r, name, i), more in zip(records, extra):
            places[r].append((name, offset, more))
            offset += replies[r].sizes[i] + len(more.encode())
        yield from _write_in_parts(cmd, path, offset + len(tail.encode()),
                                   lambda r, tmp: PathWriteOrder(recipient=r, path=tmp, places=places[r], fmt=fmt),
                                   head.encode(), tail.encode())
        noun = "path" if len(records) == 1 else "paths"
        note = f"; {copies_note(copies, 'paths')}" if copies else ""
        size = offset + len(tail.encode())
        nlinks = sum(1 for i, o, j, p in links if (i, o, j, p) <= (j, FLIP[p], i, FLIP[o]))
        what = ("as GFA1 segments with " + f"{nlinks:,} link{'' if nlinks == 1 else 's'}" if gfa else
                f"as FASTA with BCALM2 headers ({nlinks:,} link{'' if nlinks == 1 else 's'})" if bcalm else "as FASTA")
        return [Result("dump", f"wrote {len(records):,} {noun} {what} ({size:,} bytes) to {path} (each rank "
                               f"wrote its own records{note})", {"path": path, "bytes": size, "paths": len(records),
                                                                "copies": copies, "links": nlinks, "format": fmt})]


def _paths_fasta(cmd: Command, path: str,
                 selector: tuple[Any, ...]) -> Generator[Any, Any, tuple[list[Any], int, int]]:
    """Every rank writes the FASTA records of its selected paths into one file (each path once, in
    name order; an empty file when none is selected): the records, the bytes, the copies left out."""
    replies = yield cmd.every(lambda r: PathLengthsOrder(recipient=r, selector=selector, fmt="fasta"))
    chosen, copies = paths_once(replies, cmd.size)
    records = sorted((_name_order(name), r, name, i) for r, name, i in chosen)
    if not records:
        if not cmd.explaining:
            write_text(path, "")
        return records, 0, copies
    places: list[list[tuple[str, int, str]]] = [[] for _ in range(cmd.size)]
    offset = 0
    for _order, r, name, i in records:
        places[r].append((name, offset, ""))
        offset += replies[r].sizes[i]
    yield from _write_in_parts(cmd, path, offset, lambda r, tmp: PathWriteOrder(recipient=r, path=tmp,
                                                                                places=places[r], fmt="fasta"))
    return records, offset, copies


def _write_in_parts(cmd: Command, path: str, size: int, order: Callable[[int, str], Message],
                    head: bytes = b"", tail: bytes = b"") -> Generator[Any, Any, list[Any]]:
    """Every rank writes its part of one file (``order(rank, temporary path)`` says what): the
    file is sized first under a temporary name and renamed into place once all have written.  The
    commander writes ``head`` at its start and ``tail`` at its end (a GFA header and its links)."""
    tmp = f"{path}.part{os.getpid()}"
    if not cmd.explaining:
        try:
            with open(tmp, "wb") as fh:
                fh.truncate(size)
                fh.write(head)
                if tail:
                    fh.seek(size - len(tail))
                    fh.write(tail)
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
