"""assemble (the ranks' side is rayscript.genomics.assembly): a loaded k-mer set, or read files
in one statement (loaded into a temporary set, one round per k, each round's contigs joining the
next round's input)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ScriptError
from ..genomics import fastx
from ..genomics.assembly import path_name_pattern
from ..genomics.scaffold import MIN_SAME
from ..interpreter import Command, Steps
from ..items import is_kmers
from ..language.syntax import TRUTH, Build, Key, Options, Selector, Statement, Takes, Value, Var, literal, whole
from ..protocol.assembly import AssembleOrder, ScaffoldOrder
from ..protocol.paths import PathLengthsOrder
from ..protocol.sets import DropOrder
from ..protocol.store import DeleteOrder
from ..results import Result
from ..store.encoding import MAX_K
from .kmers import Load, known_stats, path_names, set_names

AUTO_LOW = 21  # k=auto: the first round's k
AUTO_STEP = 30  # and the step between rounds (a last round closer than half a step to the top takes its place)
AUTO_MARGIN = 20  # k=auto's top k leaves a read this many k-mers at least (and is at most MAX_K)
AUTO_SHORT = 11  # k=auto's k for reads too short for AUTO_LOW: the read length less AUTO_MARGIN, at least this
MIN_PAIRS = 5  # pairs=true: the pairs a join needs, by default
TEMPORARY = "assemble_reads"  # the temporary set (kmers.assemble_reads, ...2, ...) and paths of the rounds


def rounds(lo: int, hi: int) -> list[int]:
    """The k of each round from ``lo`` to ``hi``: every AUTO_STEP, ``hi`` last."""
    ks = list(range(lo, hi, AUTO_STEP)) or [hi]
    if ks[-1] != hi:
        if hi - ks[-1] < AUTO_STEP // 2 and len(ks) > 1:
            ks[-1] = hi
        else:
            ks.append(hi)
    return ks


@dataclass
class ReadsPlan:
    """What the reads form decided before loading anything."""

    files: list[str]
    ks: list[int]
    pairs: bool
    read_length: int
    notes: list[str] = field(default_factory=list)
    sources: list[fastx.Source] = field(default_factory=list)
    interleaved: bool = False


def plan_reads(files: list[str], k: Any, pairs: bool | None) -> ReadsPlan:
    """Check the read files and choose the rounds' k, before anything is loaded: clear errors for
    pairs=true over single reads, pair files of unequal numbers of reads, a k above the read length;
    a note for an even k."""
    sources = [fastx.inspect(f) for f in files]
    heads = [fastx.head_records(s) for s in sources]
    lengths = [n for head in heads for _name, n in head.records]
    # a file whose first record is longer than the window read: at least what the window holds
    # (a genome on one line); a length that is only a lower bound refuses no k
    bounds = [head.cut for head in heads if not head.records and head.cut]
    read_length = int(statistics.median(lengths + bounds)) if lengths or bounds else 0
    notes: list[str] = []
    interleaved, why = _interleaved(heads[0]) if len(files) == 1 else (False, "")
    if pairs is None:
        pairs = len(files) == 2 or interleaved
    elif pairs and len(files) == 1 and not interleaved:
        raise ScriptError(f"pairs=true needs the two ends of the pairs: two files, or one interleaved file (each "
                          f"pair's two reads one after the other, of one name); {files[0]} holds single reads: "
                          f"{why} (or say pairs=false)")
    elif pairs and len(files) > 2:
        raise ScriptError(f"pairs=true takes two files (the two ends of the pairs) or one interleaved file, not "
                          f"{len(files)} files (or say pairs=false)")
    if pairs and len(files) == 2:
        counts = [fastx.count_records(s) for s in sources]
        if counts[0] != counts[1]:
            raise ScriptError(f"the two files of the pairs hold different numbers of reads: {files[0]} "
                              f"{counts[0]:,}, {files[1]} {counts[1]:,}; the ends of pairs must be in the same order "
                              "in both (or say pairs=false to take them as separate reads)")
    if pairs:
        for source, head in zip(sources, heads):
            line = head.wrapped
            if line is not None:
                raise ScriptError(f"{source.path}:{line}: the pairs are read from FASTQ, or from FASTA with each "
                                  "sequence on one line; this record's sequence goes on over several lines "
                                  "(or say pairs=false to assemble without the pairs)")
    longest = max(lengths, default=0)
    at_least = max(bounds, default=0) > longest
    if k == "auto":
        top = min(MAX_K, read_length - AUTO_MARGIN)
        top -= 1 - top % 2  # odd
        ks = rounds(AUTO_LOW, top) if top > AUTO_LOW else [max(min(top, AUTO_LOW), AUTO_SHORT)]
    elif isinstance(k, tuple):
        ks = rounds(k[0], k[1])
    else:
        ks = [int(k)]
    if ks[-1] > longest and not at_least:
        where = f"{longest} bases at the most among the first records of {', '.join(files)}"
        if k == "auto":
            raise ScriptError(f"the reads are too short for k=auto ({where}): it takes k={AUTO_SHORT} at the least, "
                              f"and no read is that long; give k={longest} or below" if longest else
                              f"the reads are empty ({where}): there is nothing to assemble")
        raise ScriptError(f"k={ks[-1]} is above the length of the reads ({where}): no read holds a {ks[-1]}-mer; "
                          "take a smaller k")
    even = [x for x in ks if x % 2 == 0]
    if even:
        notes.append(f"note: k={', '.join(map(str, even))} {'is' if len(even) == 1 else 'are'} even: a k-mer "
                     "can then be its own reverse complement (a palindrome), "
                     "which ends a contig; an odd k avoids that")
    return ReadsPlan(files, ks, bool(pairs), read_length, notes, sources, bool(pairs) and len(files) == 1)


def _interleaved(head: fastx.Head) -> tuple[bool, str]:
    """Whether a file's first records come two by two under one name (x/1, x/2: the pairs of an
    interleaved file), on whole pairs only: a last record of the window without its mate is left
    out unless the window holds the whole file.  Else, what was found instead."""
    recs = head.records
    if len(recs) % 2 and not head.whole:
        recs = recs[:-1]  # its mate is after the window
    if len(recs) < 2:
        where = "in the whole file" if head.whole else "among its first bytes (a record longer than them)"
        return False, f"{len(recs)} whole record{'' if len(recs) == 1 else 's'} {where}"
    if len(recs) % 2:
        return False, f"an odd number of records ({len(recs):,}) in the whole file"
    for i in range(0, len(recs), 2):
        if recs[i][0] != recs[i + 1][0]:
            return False, (f"record {i + 2:,} ({recs[i + 1][0]}) follows record {i + 1:,} ({recs[i][0]}) under "
                           "another name")
    return True, ""


class Assemble(Statement, keyword="assemble"):
    syntax = ("assemble kmers|kmers.NAME|\"READS\" [, \"READS\"] into paths/PREFIX [k=auto|K|K1..K2] "
              "[pairs=true|false] [min_pairs=N] [min_count=N|auto] [min_length=L] [clean=false] [replace]")
    summary = ("Assemble the whole store, every rank at once: k-mers counted fewer than min_count times are left "
               "out (auto: the valley after the error peak of the count histogram), tips shorter than 2k bases and "
               "the arms of simple bubbles are removed, and every maximal non-branching path (unitig) of at least "
               "min_length bases (default 2k) is stored as paths/PREFIX-1, PREFIX-2, ... by decreasing length "
               "(clean=false keeps tips and bubbles: the raw unitigs of the graph). The k-mers are not changed. "
               "Existing paths/PREFIX-N are refused unless 'replace'. Given read files instead of a set, it loads "
               "them itself into a temporary set, assembles and removes it, leaving the store's sets as they were: "
               "k=auto (the default there) assembles in rounds from k=21 up to 127 (or the read length less 20; "
               "reads of 42 bases or fewer: one round at the read length less 20, at least 11), each round's contigs "
               "joining the next round's input; k=K1..K2 rounds from K1 to K2 every 30; two files are "
               "the two ends of pairs (pairs=false: separate reads), as is one interleaved file: the insert size is "
               "estimated from pairs inside one contig, and contigs whose ends are linked by at least min_pairs "
               "(default 5, at least 2) consistent pairs are joined into scaffolds, gaps as runs of N.")
    example = 'assemble "reads_1.fq.gz", "reads_2.fq.gz" into paths/asm k=auto'
    options_allowed = {"min_count": whole(1, None, "auto"), "min_length": whole(0), "clean": TRUTH,
                       "k": Takes(1, MAX_K, ("auto",), "at most four 64-bit words per k-mer", ranges=True),
                       "pairs": TRUTH, "min_pairs": whole(2, None, note="never a join on a single pair")}
    collective = True

    namespace: str
    into: Key
    options: Options = ()
    replace: bool = False
    reads: tuple[Value, ...] = ()  # read files (the one-statement form); namespace is then ""

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Assemble:
        source, into, mode = b.positional(children)
        if mode is not None and mode != "replace":
            b.fail(f"'assemble' takes 'replace', not '{mode}'")
        options = b.options(cls, children)
        if isinstance(source, tuple):
            given = dict(options)
            if "min_pairs" in given and "pairs" in given and literal(given["pairs"])[0] == "false":
                b.fail("min_pairs= is the number of pairs that join two contigs, and pairs=false reads no pairs: "
                       "leave out one of them")
            return cls("", b.into(into, "paths", "assemble"), options, mode is not None, source, meta=b.location)
        if not is_kmers(str(source)):
            b.fail(f"'assemble' assembles a k-mer set (kmers, kmers.NAME) or read files (\"r1.fq\", \"r2.fq\"), "
                   f"not {source}")
        for name, _value in options:
            if name in ("k", "pairs", "min_pairs"):
                b.fail(f"{name}= is for read files (assemble \"r1.fq\", \"r2.fq\" into ...), not for a set "
                       f"loaded already ({source})")
        return cls(str(source), b.into(into, "paths", "assemble"), options, mode is not None, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        if self.reads:
            return (yield from self._from_reads(cmd))
        return (yield from self._assemble(cmd, self.namespace, str(cmd.key(self.into).key[1]), self.replace))

    def _from_reads(self, cmd: Command) -> Steps:
        """Load the reads into a temporary set, one round per k (the contigs of a round are input to the
        next), assemble the last round into PREFIX, and remove the set and the rounds' paths."""
        opts = cmd.options(self)
        prefix = str(cmd.key(self.into).key[1])
        files = [os.path.abspath(str(cmd.value(p) if isinstance(p, Var) else cmd.path(p))) for p in self.reads]
        plan = plan_reads(files, opts.get("k", "auto"), opts.get("pairs"))
        if not self.replace and not cmd.explaining:
            clash = yield from _existing(cmd, prefix)
            if clash:
                noun = "paths" if clash != 1 else "path"
                raise ScriptError(f"paths/{prefix}-* exist already ({clash:,} {noun}): add 'replace' to overwrite "
                                  "them, or assemble into another prefix")
        # the statement's own set and paths: names nobody uses (a user's paths under the rounds' prefix
        # would be taken as input, and deleted)
        names = yield from set_names(cmd)
        n = 1
        while True:
            tag = f"{TEMPORARY}{n if n > 1 else ''}"
            kset, scratch = f"kmers.{tag}", f"{tag}_round"  # the rounds' contigs: paths/<scratch>-N
            if (kset not in names and scratch != prefix
                    and (cmd.explaining or not (yield from path_names(cmd, ("prefix", f"{scratch}-"))))):
                break
            n += 1
        t0 = time.monotonic()
        results: list[Result] = []
        # with pairs the last round's contigs stay under the statement's prefix too, and the scaffolding
        # names them PREFIX-N as its last step: until then the user's paths are as they were
        last_prefix = scratch if plan.pairs else prefix
        forget_undo = cmd.on_cancel(lambda: _clean_up(cmd, kset, scratch))
        try:
            for i, k in enumerate(plan.ks):
                last = i == len(plan.ks) - 1
                inputs: tuple[Value | Selector, ...] = tuple(files) + ((Selector("paths", f"{scratch}-"),) if i else ())
                load = Load(kset, inputs, (("k", k),))
                results += (yield from load.run(cmd))
                results += (yield from self._assemble(cmd, kset, last_prefix if last else scratch,
                                                      self.replace if last and not plan.pairs else True,
                                                      forget=scratch if i and last_prefix != scratch else "",
                                                      release=True))
                yield cmd.every(lambda r: DropOrder(recipient=r, name=kset))
            if plan.pairs:
                files_wire = [(s.path, s.fmt, s.codec, s.size) for s in plan.sources]
                replies = yield cmd.every(lambda r: ScaffoldOrder(
                    recipient=r, prefix=scratch, files=files_wire, interleaved=plan.interleaved,
                    min_pairs=opts.get("min_pairs", MIN_PAIRS), into=prefix, replace=self.replace))
                scaffolded = replies[0]
        except Exception:
            forget_undo()
            if not cmd.explaining:
                yield from _clean_up(cmd, kset, scratch)
            raise
        forget_undo()  # (not when the statement is closed by a cancel: then the undo runs)
        final = results[-1]
        seconds = time.monotonic() - t0
        loads = [r for r in results if r.statement == "load"]
        per_round = "; ".join(f"k={r.data['k']}: {a.data['contigs']:,} contig{'s' if a.data['contigs'] != 1 else ''}, "
                              f"N50 {a.data['n50']:,}, min_count={a.data['min_count']}"
                              for r, a in zip(loads, [x for x in results if x.statement == "assemble"]))
        head = final.text.splitlines()[0].replace(f"paths/{scratch}-", f"paths/{prefix}-")
        pairs_data: dict[str, Any] = {}
        if plan.pairs:
            sc = scaffolded
            pairs_data = {"pairs": sc.pairs, "placed": sc.placed, "inside": sc.inside, "insert": sc.insert,
                          "spread": sc.spread, "links": sc.links, "joins": sc.joins, "scaffolds": sc.scaffolds,
                          "repeats": sc.repeats, "repeat_ends": sc.repeat_ends}
            if sc.joins:
                noun = "scaffolds" if sc.scaffolds != 1 else "scaffold"
                head = (f"scaffolded {sc.scaffolds:,} {noun} into paths/{prefix}-1..{sc.scaffolds}: "
                        f"{sc.total:,} bases, N50 {sc.n50:,}, longest {sc.longest:,} "
                        f"({final.data['contigs']:,} contigs, N50 {final.data['n50']:,}, {sc.joins:,} joins)")
        text = (f"{head}\nfrom {len(files)} file{'s' if len(files) > 1 else ''} ({loads[0].data['reads']:,} reads of "
                f"{plan.read_length} bases (median), {'pairs' if plan.pairs else 'single reads'}), "
                f"k={', '.join(map(str, plan.ks))}; "
                f"{seconds:.2f} s\nrounds: {per_round}")
        if plan.pairs:
            sc = scaffolded
            if sc.inside < MIN_SAME:
                text += (f"\npairs: {sc.pairs:,} pairs, {sc.placed:,} with both ends placed, only {sc.inside:,} inside "
                         f"one contig: too few to estimate the insert size ({MIN_SAME} needed); no scaffolds")
            else:
                text += (f"\npairs: {sc.pairs:,} pairs, {sc.placed:,} with both ends placed; insert size {sc.insert:,} "
                         f"± {sc.spread:,} (median ± 1.4826 MAD of {sc.inside:,} pairs inside one contig); "
                         f"{sc.links:,} contig ends linked by >= {opts.get('min_pairs', MIN_PAIRS)} pairs, "
                         f"{sc.repeats:,} repeat contigs and {sc.repeat_ends:,} contig ends within an insert size "
                         f"of a repeat left out (depth > 1.5 x the median), {sc.joins:,} joins "
                         f"made ({sc.seconds:.2f} s)")
        for note in plan.notes:
            text += "\n" + note
        if plan.pairs and scaffolded.joins:
            data_paths = {"contigs": scaffolded.scaffolds, "total": scaffolded.total, "n50": scaffolded.n50,
                          "longest": scaffolded.longest}
        else:
            data_paths = {}
        data = dict(final.data, **data_paths, prefix=prefix, scaffolding=pairs_data, ks=plan.ks, pairs=plan.pairs,
                    read_length=plan.read_length, seconds=seconds, notes=plan.notes,
                    rounds=[dict(a.data) for a in results if a.statement == "assemble"])
        return [Result("assemble", text, data)]

    def _assemble(self, cmd: Command, kset: str, prefix: str, replace: bool, forget: str = "",
                  min_length: int | None = None, release: bool = False) -> Steps:
        opts = cmd.options(self)
        auto = opts.get("min_count", "auto") == "auto"
        min_count = 0 if auto else opts["min_count"]
        min_length = opts.get("min_length", 0) if min_length is None else min_length
        clean = opts.get("clean", True)
        stats = yield from known_stats(cmd, kset)
        # (explain runs none of the rounds' loads: their set stays empty)
        if not sum(s.distinct for s in stats) and not (self.reads and cmd.explaining):
            where = "the store holds" if kset == "kmers" else f"{kset} holds"
            held = {s.k for s in stats if s.k}
            if held:  # loaded, and empty: reads shorter than k hold no k-mer
                raise ScriptError(f"{where} no k-mers to assemble: it is empty, with k={held.pop()} (a read shorter "
                                  "than k holds no k-mer: load the reads with a smaller k)")
            raise ScriptError(f"{where} no k-mers to assemble: load reads first")
        if not all(s.canonical for s in stats if s.k):
            raise ScriptError("assemble needs canonical k-mers: load the reads again with canonical=true (the default)")
        t0 = time.monotonic()
        replies = yield cmd.every(lambda r: AssembleOrder(recipient=r, prefix=prefix, min_count=min_count,
                                                          min_length=min_length, clean=clean,
                                                          replace=replace, kset=kset, forget=forget,
                                                          release=release))
        rep = replies[0]
        seconds = time.monotonic() - t0
        phases = ", ".join(f"{name} {s:.2f} s" for name, s in rep.phases.items())
        chosen = f"min_count={rep.min_count}" + (" (auto)" if auto and rep.error_peak else
                                                  " (auto: the counts have no error peak)" if auto else "")
        warning = ""
        if rep.occurrences and 10 * rep.kept_occurrences < rep.occurrences:
            warning = (f"\nwarning: min_count={rep.min_count} leaves out "
                       f"{1 - rep.kept_occurrences / rep.occurrences:.1%} of the k-mers' occurrences "
                       f"({rep.graph_kmers:,} of {rep.distinct:,} distinct k-mers are in the graph); "
                       "a lower min_count keeps more")
        if rep.contigs:
            head = (f"assembled {rep.contigs:,} contig{'s' if rep.contigs > 1 else ''} into paths/{prefix}-1.."
                    f"{rep.contigs}: {rep.total:,} bases, N50 {rep.n50:,}, longest {rep.longest:,}")
        else:
            head = (f"no contigs: no path of the graph is at least min_length long ({rep.graph_kmers:,} k-mers "
                    f"have a count >= {rep.min_count})")
        text = (f"{head}\n{chosen}; {rep.graph_kmers:,} k-mers in the graph; removed {rep.removed_tips:,} tips and "
                f"{rep.removed_bubbles:,} bubble arms; {seconds:.2f} s ({phases})" + warning)
        return [Result("assemble", text, {"contigs": rep.contigs, "total": rep.total, "n50": rep.n50,
                                          "longest": rep.longest, "min_count": rep.min_count,
                                          "graph_kmers": rep.graph_kmers, "distinct": rep.distinct,
                                          "warning": warning.strip(), "tips": rep.removed_tips,
                                          "bubbles": rep.removed_bubbles, "phases": rep.phases,
                                          "seconds": seconds, "prefix": prefix})]


def _clean_up(cmd: Command, kset: str, scratch: str) -> Generator[Any, Any, None]:
    """After a failed round: the temporary set and the rounds' paths go (what can be removed is)."""
    try:
        names = yield from set_names(cmd)
        if kset in names:
            yield cmd.every(lambda r: DropOrder(recipient=r, name=kset))
        held = yield cmd.every(lambda r: PathLengthsOrder(recipient=r, selector=("prefix", f"{scratch}-")))
        yield [cmd.order(DeleteOrder(recipient=r, key=("paths", name))) for r, rep in enumerate(held)
               for name in rep.names]
    except Exception:  # the first error is the one to report
        pass


def _existing(cmd: Command, prefix: str) -> Generator[Any, Any, int]:
    """How many paths/PREFIX-N the store holds."""
    names = yield from path_names(cmd, ("prefix", f"{prefix}-"))
    pattern = path_name_pattern(prefix)
    return len({name for name in names if pattern.fullmatch(name)})
