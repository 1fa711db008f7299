"""assemble (the ranks' side is rayscript.genomics.assembly)."""

from __future__ import annotations

import time
from typing import Any

from ..errors import ScriptError
from ..interpreter import Command, Steps
from ..items import is_kmers
from ..language.syntax import TRUTH, Build, Key, Options, Statement, whole
from ..protocol.assembly import AssembleOrder
from ..results import Result
from .kmers import known_stats


class Assemble(Statement, keyword="assemble"):
    syntax = "assemble kmers|kmers.NAME into paths/PREFIX [min_count=N|auto] [min_length=L] [clean=false] [replace]"
    summary = ("Assemble the whole store, every rank at once: k-mers counted fewer than min_count times are left "
               "out (auto: the valley after the error peak of the count histogram), tips shorter than 2k bases and "
               "the arms of simple bubbles are removed, and every maximal non-branching path (unitig) of at least "
               "min_length bases (default 2k) is stored as paths/PREFIX-1, PREFIX-2, ... by decreasing length "
               "(clean=false keeps tips and bubbles: the raw unitigs of the graph). The k-mers are not changed. "
               "Existing paths/PREFIX-N are refused unless 'replace'.")
    example = "assemble kmers into paths/contig min_count=auto"
    options_allowed = {"min_count": whole(1, None, "auto"), "min_length": whole(0), "clean": TRUTH}
    collective = True

    namespace: str
    into: Key
    options: Options = ()
    replace: bool = False

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Assemble:
        namespace, into, mode = b.positional(children)
        if not is_kmers(str(namespace)):
            b.fail(f"'assemble' assembles a k-mer set (kmers, kmers.NAME), not {namespace}")
        if mode is not None and mode != "replace":
            b.fail(f"'assemble' takes 'replace', not '{mode}'")
        return cls(str(namespace), b.into(into, "paths", "assemble"), b.options(cls, children), mode is not None,
                   meta=b.location)

    def run(self, cmd: Command) -> Steps:
        into = cmd.key(self.into)
        prefix = str(into.key[1])
        opts = cmd.options(self)
        auto = opts.get("min_count", "auto") == "auto"
        min_count = 0 if auto else opts["min_count"]
        min_length = opts.get("min_length", 0)
        clean = opts.get("clean", True)
        stats = yield from known_stats(cmd, self.namespace)
        if not sum(s.distinct for s in stats):
            where = "the store holds" if self.namespace == "kmers" else f"{self.namespace} holds"
            raise ScriptError(f"{where} no k-mers to assemble: load reads first")
        if not all(s.canonical for s in stats if s.k):
            raise ScriptError("assemble needs canonical k-mers: load the reads again with canonical=true (the default)")
        t0 = time.monotonic()
        replies = yield cmd.every(lambda r: AssembleOrder(recipient=r, prefix=prefix, min_count=min_count,
                                                          min_length=min_length, clean=clean,
                                                          replace=self.replace, kset=self.namespace))
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
