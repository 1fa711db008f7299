"""Graph statements over the distributed de Bruijn graph: walk and search (the ranks' side is
rayscript.genomics.graph).

``walk`` is a cascade: one WALK order to the owner of the start k-mer, which extends the walk and
forwards it rank to rank without the commander.  ``search`` goes frontier by frontier: each round
the commander asks the owners of the frontier for their neighbours (numpy buffers) and keeps the
new ones; what was reached is kept as sorted runs (merged as they grow), so a round costs in
proportion to its frontier, not to everything found so far.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import RuntimeFault
from ..interpreter import Command, Steps
from ..items import GraphSearchResult, pack_item
from ..language.syntax import Build, Key, Options, Statement, whole
from ..protocol.graph import DEFAULT_WALK_LENGTH, NeighboursOrder, WalkStep
from ..protocol.store import PutOrder
from ..results import Result
from ..store import encoding
from ..store.partition import owners


class Walk(Statement, keyword="walk"):
    syntax = "walk KEY [both] [length=N] [min_count=C] into paths/NAME"
    summary = ("Follow the unique successor of the k-mer hop by hop (with 'both', also extend backwards), "
               "rank to rank without the commander; stop at a branch, a dead end, a cycle or a path of N k-mers; "
               "store the path on the owner of paths/NAME and report why it stopped. The graph is what the store "
               "holds: k-mers deleted or moved away from their owner are not in it, nor are k-mers counted fewer "
               "than C times (min_count, default 1).")
    example = "walk kmers/ACGTACGTACGTACGTACGTACGTACGTACG both into paths/contig1"
    options_allowed = {"length": whole(1), "min_count": whole(1)}

    start: Key
    into: Key
    both: bool = False
    options: Options = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Walk:
        start, both, into = b.positional(children)
        return cls(b.single(start, "walk"), b.into(into, "paths", "walk"), both is not None, b.options(cls, children),
                   meta=b.location)

    def run(self, cmd: Command) -> Steps:
        wk = cmd.key(self.start)
        into = cmd.key(self.into)
        opts = cmd.options(self)
        length = opts.get("length", DEFAULT_WALK_LENGTH)
        min_count = opts.get("min_count", 1)
        order = WalkStep(recipient=cmd.owner(wk), start=wk.key[1], limit=length - 1, both=self.both, into=into.key,
                         min_count=min_count, kset=wk.key[0])
        (reply,) = yield cmd.order(order, timeout=None)
        text = (f"walked {reply.kmers:,} k-mers from {wk} into {into} (length {reply.length:,}, "
                f"stored on rank {reply.rank}): stopped at {reply.reason}")
        info = {"length": reply.length, "kmers": reply.kmers, "reason": reply.reason, "backward": reply.backward,
                "sequence": reply.sequence, "rank": reply.rank}
        return [Result("walk", text, info)]


class SortedRuns:
    """A set of ids (in their :func:`encoding.exact` view) kept as a few sorted arrays of
    decreasing size (merged when a newer one grows to half the size of the one before):
    membership of a batch is a binary search per run, adding a batch is amortized O(n log n)
    over the whole search."""

    def __init__(self) -> None:
        self.runs: list[npt.NDArray[Any]] = []

    def missing(self, ids: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The ids (sorted, unique) that are not in the set."""
        keep = np.ones(len(ids), bool)
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, ids), len(run) - 1)
            keep &= run[pos] != ids
        return ids[keep]

    def add(self, ids: npt.NDArray[Any]) -> None:
        """Add sorted ids that are not in the set yet."""
        if not len(ids):
            return
        self.runs.append(ids)
        while len(self.runs) > 1 and 2 * len(self.runs[-1]) >= len(self.runs[-2]):
            newer, older = self.runs.pop(), self.runs.pop()
            self.runs.append(np.sort(np.concatenate((older, newer)), kind="stable"))


class Search(Statement, keyword="search"):
    syntax = "search KEY depth=D into results/NAME"
    summary = ("Breadth-first neighbourhood of a k-mer in the de Bruijn graph, frontier by frontier across "
               "the ranks; the result lists every vertex reached with its depth.")
    example = "search kmers/19123890 depth=3 into results/near"
    options_allowed = {"depth": whole(0, 65535)}

    start: Key
    into: Key
    options: Options = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Search:
        start, into = b.positional(children)
        return cls(b.single(start, "search"), b.into(into, "results", "search"), b.options(cls, children),
                   meta=b.location)

    def run(self, cmd: Command) -> Steps:
        wk = cmd.key(self.start)
        first = cmd.owner(wk)
        into = cmd.key(self.into)
        depth = cmd.options(self).get("depth", 1)
        ident = wk.key[1]
        k, shown = wk.k, str(wk)
        guess = None if not ident >> encoding.LO_BITS else encoding.WIDE_K if not ident >> 126 else encoding.MAX_K
        start = encoding.ids_array([ident], wk.k or guess)
        seen = [start]  # vertices by depth
        visited = SortedRuns()
        visited.add(encoding.exact(start))
        frontier = start
        for d in range(max(depth, 1)):
            dest = owners(frontier, cmd.size)
            ranks = np.unique(dest)
            futures = []
            for r in ranks:
                order = NeighboursOrder(recipient=int(r), kset=wk.key[0])
                order.buffers = [frontier[dest == r]]
                futures.append(cmd.order(order))
            replies = yield futures
            if d == 0:
                k = wk.k or max(rep.k for rep in replies)
                if k > encoding.WORD_K and not wk.k:  # asked by number: shown by its bases all the same
                    shown = f"{wk.key[0]}/{encoding.decode(ident, k)}" if ident < 1 << (2 * k) else shown
            if d == 0 and not replies[0].buffers[0].any():
                raise RuntimeFault(f"{shown} is not in the store (its owner is rank {first})", rank=first,
                                   key=shown)
            if depth == 0:
                break
            found = np.concatenate([rep.buffers[1] for rep in replies])
            if d == 0 and found.dtype != start.dtype:  # a store of k > 31 asked by a smaller number
                start = seen[0] = encoding.ids_array(encoding.int_ids(start), k)
                visited = SortedRuns()
                visited.add(encoding.exact(start))
            exact = visited.missing(np.unique(encoding.exact(found)))
            visited.add(exact)
            frontier = exact.view(found.dtype)
            seen.append(frontier)
            if depth >= 100:
                cmd.progress(d + 1, depth, "searching", "levels")
            if not len(frontier):
                break
        vertices = encoding.int_ids(encoding.concatenate(seen, k))
        depths = np.repeat(np.arange(len(seen)), [len(x) for x in seen]).tolist()
        result = GraphSearchResult(str(into.key[1]), ident, vertices, depths, k)
        dest_rank = cmd.owner(into)
        yield cmd.order(PutOrder(recipient=dest_rank, key=into.key, item=pack_item(result), mode="replace"))
        per_depth = [len(x) for x in seen]
        text = (f"searched from {shown} to depth {depth}: {len(vertices):,} vertices "
                f"(per depth: {', '.join(map(str, per_depth))}) into {into} on rank {dest_rank}")
        return [Result("search", text, {"vertices": vertices, "depths": depths,
                                        "per_depth": per_depth, "rank": dest_rank})]
