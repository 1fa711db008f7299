"""Whole-store assembly, rank side: every rank assembles its part of the de Bruijn graph at once.

``assemble`` is collective, like ``load``: one ASSEMBLE order reaches every rank, and the ranks
then work in step, exchanging batches of numpy arrays with ``alltoallv`` (never one message per
k-mer or per hop):

0. **the owners' view**: each k-mer once, on its owner rank: the owner's copy, else the copy of
   the lowest rank that holds one (the view count and dump take).  K-mers that copies, moves or
   replicas left off their owner travel to it first, so the graph is that of the untouched store.
1. **threshold**: the count histogram summed over the ranks (``allreduce``); ``min_count=auto``
   takes the valley after the error peak (1 when there is none).  K-mers counted fewer times are
   not in the graph.  Every graph k-mer gets a *handle* (its position times the rank count plus its
   rank): nodes are named by handles from here on, exactly, whatever k.
2. **neighbours**: each rank asks the owners of the up to 8 neighbours its edges name whether
   they are in the graph (a batch of ids per owner, a batch of answers back: handles); a k-mer's
   sides (L: before it, R: after it, in its canonical orientation) get their degrees.  A
   palindromic k-mer (even k) can only be entered and left by turning back: it links to nothing.
3. **links**: a side with one neighbour whose facing side has one neighbour too is a link of a
   non-branching path (a batch of degree questions to the owners).
4. **chains**: pointer jumping: each side points at the farthest node known along its path and
   asks that node's owner how far it sees, doubling the reach every round until every side sees
   its path's end (O(log length) rounds).  Cycles are cut at their smallest k-mer (by order key:
   the id for k <= 31).  Every node then knows its unitig (read from its end with the smaller
   (order key, side)), its position and its orientation in it.
5. **cleaning**: nodes send (unitig, position, count, end sides) to the rank of the unitig's first end,
   which finds tips (a dead end joined to the graph by fewer than 2k bases) and the arms of
   simple bubbles (unitigs joining the same two k-mers, the lower-coverage ones); their k-mers
   leave the graph and steps 2-4 run again (up to three times).
6. **paths**: nodes send their oriented k-mers to the rank of their unitig's first end, which spells the
   sequence; unitigs of at least min_length bases are named PREFIX-1, PREFIX-2, ... by decreasing
   length (ties by their end k-mer, so the names do not depend on the number of ranks) and sent to
   the owners of their names.

The store's k-mers are not changed; paths are stored only once every rank has finished.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

from ..items import GraphPath, pack_item, unpack_item
from ..protocol.assembly import AssembleOrder, AssembleReply, ScaffoldOrder, ScaffoldReply
from ..runtime.collective import Exchange
from ..store import encoding
from ..store.partition import mix64_array, owner, owners
from ..store.types import Ids
from . import fastx
from .graph import NO_K
from .owners import owner_copies
from .paths import n50
from .scaffold import scaffold

if TYPE_CHECKING:
    from ..runtime.node import Node

HIST_MAX = 4096
CLEAN_ROUNDS = 3
PHASES = CLEAN_ROUNDS + 2  # for progress: the threshold, each round of cleaning (or the one graph), the contigs
LINK_BLOCK = 1 << 17  # neighbours: the nodes whose edges' k-mers are asked of their owners at once
ASK_BLOCK = 1 << 19  # the most questions of one kind a rank asks at once of every node (bounds their arrays)
RULER_BITS = 4  # one node in 2**RULER_BITS (by a hash of its id) is a ruler of the list ranking
L, R = 0, 1
NOBODY = np.uint64(2**64 - 1)  # the handle of no node

# Arrays of the graph, by what their elements are (per node, or per side of a node: n x 2).
Handles: TypeAlias = npt.NDArray[np.uint64]  # nodes by handle (see Graph), exact whatever k
Places: TypeAlias = npt.NDArray[np.int64]  # nodes by place: position on their rank * ranks + rank
OrderKeys: TypeAlias = npt.NDArray[np.uint64]  # see order_keys
UnitigKeys: TypeAlias = npt.NDArray[np.uint64]  # unitigs by key: 2 * handle + dead side of the end read from
Sides: TypeAlias = npt.NDArray[np.uint8]  # L or R
Numbers: TypeAlias = npt.NDArray[np.int64]  # distances, positions
Degrees: TypeAlias = npt.NDArray[np.uint8]  # of each side: its neighbours in the graph (at most 4)
Mask: TypeAlias = npt.NDArray[np.bool_]
# each side's single neighbour (NOBODY: none), the side of it a path enters by, whether the link is
# one of a non-branching path, and the neighbour's place (for this round)
Links: TypeAlias = tuple[Handles, Sides, Mask, Places]
# each side's path end (handle, dead side), the distance to it, whether an end was found (not on a
# cycle), the smallest order key on the way
Jumped: TypeAlias = tuple[Handles, Sides, Numbers, Mask, OrderKeys]
# of the nodes left after cleaning: linked and link ids, far, side, dist, far_order and cyclic of the last round
LastRound: TypeAlias = tuple[Mask, Handles, Handles, Sides, Numbers, OrderKeys, Mask]
# unitigs kept from the last round: far, side, dist, far_order and which nodes keep them
Unchanged: TypeAlias = tuple[Handles, Sides, Numbers, OrderKeys, Mask]
# far, side, dist, the ends' order keys, the nodes on cycles, the links left once cycles are cut
Chains: TypeAlias = tuple[Handles, Sides, Numbers, OrderKeys, Mask, Mask]
# a unitig whose end a rank holds: key, sequence, mean count, order key and side of the end it is read from
Contig: TypeAlias = tuple[int, str, float, int, int]


def valley(hist: np.ndarray) -> int:
    """min_count=auto: where the error peak of the count histogram ends.  K-mers seen once are
    mostly sequencing errors, and their numbers fall steeply with the count; the first count at
    which the histogram falls by less than half (or rises again: the valley before the coverage
    peak) is where real k-mers take over.  1 when the histogram has no error peak: when nothing
    beyond that count rises above it, or the k-mers beyond it hold less than a tenth of all the
    occurrences (a genome given once, a few repeats above it)."""
    c = 1
    while c + 1 < len(hist) and 2 * hist[c + 1] < hist[c]:
        c += 1
    if c + 1 >= len(hist) or hist[c + 1:].max() <= hist[c]:
        return 1  # the histogram only falls: no coverage peak beyond the errors
    occurrences = hist * np.arange(len(hist), dtype=np.int64)
    if 10 * occurrences[c:].sum() < occurrences.sum():
        return 1  # what rises beyond the valley is too little to be a coverage peak
    return c


def path_name_pattern(prefix: str) -> re.Pattern:
    return re.compile(re.escape(prefix) + r"-\d+")


def order_keys(ids: np.ndarray, k: int) -> np.ndarray:
    """The uint64 by which assembly orders k-mers where it must choose (where a cycle is cut, which end
    of a unitig it is read from, ties between names and between bubble arms), the same on any rank
    count: the id itself for k <= 31; for two-word ids their 64-bit mix.  Order keys only break ties:
    a node is known by its handle (:class:`Graph`), so two wide k-mers of one order key are still two
    nodes."""
    if not encoding.is_wide(k):
        return ids
    return mix64_array(ids)


def _mirror_table() -> np.ndarray:
    """For each 8-bit edge mask, the same edges seen from the other strand: a successor by base b is
    a predecessor by the complement of b (3 - b), and the other way round."""
    e = np.arange(256, dtype=np.uint16)
    out = np.zeros(256, np.uint16)
    for b in range(4):
        out |= ((e >> b) & 1) << (4 + 3 - b)
        out |= ((e >> (4 + b)) & 1) << (3 - b)
    return out.astype(np.uint8)


_MIRROR = _mirror_table()


def palindromes(ids: np.ndarray, k: int) -> np.ndarray:
    """Which k-mers are their own reverse complement (only possible for even k)."""
    if k % 2 or not len(ids):
        return np.zeros(len(ids), bool)
    return encoding.same(ids, encoding.revcomp_array(ids, k))


class Graph:
    """One rank's part of the graph: the k-mers in it (canonical ids in id order, counts, edges),
    each with a *handle* (``key``): its position when the graph was made times the number of ranks,
    plus the rank.  Handles are exact (two nodes never share one, whatever k) and stay with their
    k-mers when cleaning removes others (:meth:`subset`), so every later step names nodes by them;
    ``order`` (:func:`order_keys`) decides only where a choice must not depend on the rank count.

    A palindromic k-mer (even k) is the same k-mer on both strands, so its edges are the union of
    what either strand saw (a read and its reverse complement record them on opposite sides)."""

    def __init__(self, ids: np.ndarray, counts: np.ndarray, edges: np.ndarray, k: int, rank: int, size: int):
        order = order_keys(ids, k)
        if len(order) > 1 and (order[1:] < order[:-1]).any():
            o = np.argsort(order, kind="stable")
            ids, counts, edges, order = ids[o], counts[o], edges[o], order[o]
        pal = palindromes(ids, k)
        if pal.any():
            edges = edges.copy()
            edges[pal] |= _MIRROR[edges[pal]]
        self.ids, self.counts, self.edges, self.k, self.order = ids, counts, edges, k, order
        self.n = len(ids)
        self.key = np.arange(self.n, dtype=np.uint64) * np.uint64(size) + np.uint64(rank)
        self.palindromic = pal
        self._runs()

    def _runs(self) -> None:
        """The longest run of equal order keys (1 but for a collision of two wide ids' mixes)."""
        same = self.order[1:] == self.order[:-1] if self.n > 1 else np.zeros(0, bool)
        self.run = 1
        if same.any():
            edges = np.flatnonzero(np.diff(np.concatenate(([0], same.view(np.int8), [0]))))
            self.run = int((edges[1::2] - edges[::2]).max()) + 1

    def subset(self, keep: np.ndarray) -> Graph:
        g = object.__new__(Graph)
        g.ids, g.counts, g.edges, g.k = self.ids[keep], self.counts[keep], self.edges[keep], self.k
        g.n = len(g.ids)
        g.key, g.order, g.palindromic = self.key[keep], self.order[keep], self.palindromic[keep]
        g._runs()
        return g

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position, found) of each k-mer id among this rank's graph k-mers: by order key, then
        the id itself compared exactly (wide ids whose mixes collide are told apart)."""
        pos = np.zeros(len(ids), np.int64)
        found = np.zeros(len(ids), bool)
        if not self.n:
            return pos, found
        q = order_keys(ids, self.k)
        first = np.searchsorted(self.order, q)
        for j in range(self.run):
            p = np.minimum(first + j, self.n - 1)
            hit = ~found & (self.order[p] == q) & encoding.same(self.ids[p], ids)
            pos[hit] = p[hit]
            found |= hit
        return pos, found

    def at(self, handles: np.ndarray) -> np.ndarray:
        """Positions of nodes of this rank by their handles (every handle must be of a node here)."""
        return np.searchsorted(self.key, handles)


class AssemblyService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        self._error: str | None = None
        node.register(AssembleOrder, self.on_assemble)
        node.register(ScaffoldOrder, self.on_scaffold)

    def on_assemble(self, msg: AssembleOrder) -> None:
        with self.node.collective_order(msg, "assemble"):
            self._assemble(msg)

    def on_scaffold(self, msg: ScaffoldOrder) -> None:
        with self.node.collective_order(msg, "scaffold"):
            self._scaffold(msg)

    def _scaffold(self, msg: ScaffoldOrder) -> None:
        """Every rank: the contigs paths/PREFIX-N joined with read pairs (rayscript.genomics.scaffold);
        they are replaced by the scaffolds only once every rank has finished.  With ``into`` (another
        prefix) every contig goes, and the scaffolds (a contig joined to none is one) are INTO-N: a
        statement assembles under a prefix of its own and only its last step touches the user's."""
        self.coll = self.node.collective
        self.ex = Exchange(self.coll)
        self._error = None
        t0 = time.monotonic()
        paths = self.store.named("paths")
        pattern = path_name_pattern(msg.prefix)
        held = [p for name, p in paths.items() if pattern.fullmatch(str(name)) and isinstance(p, GraphPath)]
        sources = [fastx.Source(*f) for f in msg.files]
        out, fig = scaffold(self.ex, self.coll.rank, msg.prefix, held, sources, msg.interleaved, msg.min_pairs)
        # named PREFIX-1, ... by decreasing length (ties by their number in the plan)
        k = max((p.k for p in held), default=0)
        number = [int(p.name.rsplit("-", 1)[1]) for p in out]
        into = msg.into or msg.prefix
        named, lengths = self._name([(n, p.sequence, p.coverage, n, 0) for n, p in zip(number, out)], into, k)
        kinds = {p.sequence: p.stop_reason for p in out}
        named = [GraphPath(p.name, p.sequence, p.k, kinds.get(p.sequence, "scaffold"), p.coverage) for p in named]
        clash = path_name_pattern(into)
        existing = [name for name in paths if clash.fullmatch(str(name))] if into != msg.prefix else []
        error = None
        if existing and not msg.replace:
            error = (f"paths/{into}-* exist already: add 'replace' to overwrite them, or assemble into "
                     "another prefix")
        if not self._sync(error):
            return self.node.fail_order(msg, self._error or "scaffold failed on another rank")
        # every rank has finished: only now do the paths change
        if fig["joins"] or into != msg.prefix:
            for name in existing:
                self.store.delete("paths", name)
            for p in held:
                self.store.delete("paths", p.name)
            for item in named:
                self.store.put(item, "replace")
        self.node.reply(msg, ScaffoldReply(
            pairs=fig["pairs"], placed=fig["placed"], inside=fig["inside"], insert=fig["insert"],
            spread=fig["spread"], links=fig["links"], joins=fig["joins"], repeats=fig["repeats"],
            repeat_ends=fig.get("repeat_ends", 0),
            scaffolds=fig.get("scaffolds", 0),
            total=int(lengths.sum()), n50=n50(lengths), longest=int(lengths.max(initial=0)),
            seconds=time.monotonic() - t0))

    # --- the collective steps -------------------------------------------------------------
    def _sync(self, error: str | None) -> bool:
        """Every rank: did any rank fail or was Ctrl-C pressed?  True when all go on."""
        if error is None and self.node.poll_interrupt():
            error = "assemble cancelled (Ctrl-C); the store is as it was before the statement"
        self._error = self._error or error
        return not self.coll.allreduce(np.array([self._error is not None], np.int64))[0]

    def _assemble(self, msg: AssembleOrder) -> None:
        self.coll = coll = self.node.collective
        self.ex = Exchange(coll)
        self._error = None
        table = self.store.table(msg.kset)
        paths = self.store.named("paths")
        t0 = time.monotonic()
        phases: dict[str, float] = {}
        error = None
        if table.k and not table.canonical:
            error = ("assemble needs canonical k-mers: load the reads again with canonical=true "
                     "(the default)")
        clash = path_name_pattern(msg.prefix)
        existing = [name for name in paths if clash.fullmatch(str(name))]
        totals = coll.allreduce(np.array([len(table), table.k or 0, 1 if table.k else 0, len(existing)], np.int64))
        k = int(totals[1] // totals[2]) if totals[2] else 0  # every rank that has k-mers has the same k
        if not self._sync(error):
            return self._fail(msg)
        if totals[0] == 0:
            self._error = (f"{msg.kset} holds no k-mers to assemble (load reads first)" if msg.kset != "kmers"
                           else "the store holds no k-mers to assemble (load reads first)")
            return self._fail(msg)
        if not k:
            self._error = NO_K.format(what="assemble")
            return self._fail(msg)
        if totals[3] and not msg.replace:
            clashing = int(totals[3])
            self._error = (f"paths/{msg.prefix}-* exist{'s' if clashing == 1 else ''} already ({clashing:,} "
                           f"path{'s' if clashing != 1 else ''}): add 'replace' to overwrite them, or assemble into "
                           "another prefix")
            return self._fail(msg)
        # 1. the threshold: the count histogram of the owners' view.  When every k-mer is on its
        # owner (no copies anywhere) it is the table's own, and only the graph's k-mers are taken
        # out of the table (an all-k-mers copy would cost more than the graph)
        foreign = self.store.off_owner(coll.rank, self.ex.size, msg.kset)
        at_home = not coll.allreduce(np.array([int(foreign is not None)], np.int64))[0]
        if at_home:
            held, numbers = table.histogram()
            hist = np.zeros(HIST_MAX + 1, np.int64)
            np.add.at(hist, np.minimum(held, HIST_MAX), numbers)
        else:
            ids, counts, edges = owner_copies(self.ex, foreign, *table.extract(("all",)))
            hist = np.bincount(np.minimum(counts, HIST_MAX).astype(np.int64), minlength=HIST_MAX + 1)
        del foreign
        hist = coll.allreduce(hist)
        min_count = msg.min_count or valley(hist)
        if at_home:
            occurrences = held * numbers
            mine = [int(occurrences[held >= min_count].sum()), int(occurrences.sum())]
            graph = Graph(*table.extract(("count", ">=", min_count)), k, coll.rank, self.ex.size)
        else:
            keep = counts >= min_count
            mine = [int(counts[keep].sum(dtype=np.int64)), int(counts.sum(dtype=np.int64))]
            graph = Graph(ids[keep], counts[keep], edges[keep], k, coll.rank, self.ex.size)
            del ids, counts, edges, keep
        kept = coll.allreduce(np.array(mine, np.int64))
        if msg.release:  # the statement's own set, which it drops after: its table goes now, not after the graph
            self.store.sets.pop(msg.kset, None)
            del table
        phases["threshold"] = time.monotonic() - t0
        self._progress(1, "assembling: the graph's k-mers chosen")
        removed = {"tips": 0, "bubbles": 0}
        reuse: LastRound | None = None
        for _round in range(CLEAN_ROUNDS if msg.clean else 0):
            self._progress(1 + _round, f"assembling: unitigs, tips and bubbles (round {_round + 1})")
            t = time.monotonic()
            links, degrees = self._links(graph)
            unchanged = self._unchanged(graph, links, *reuse) if reuse is not None else None
            chains = self._chains(graph, links, unchanged)
            phases["graph and unitigs"] = phases.get("graph and unitigs", 0.0) + time.monotonic() - t
            t = time.monotonic()
            drop, tips, bubbles = self._clean(graph, links, degrees, chains)
            phases["tips and bubbles"] = phases.get("tips and bubbles", 0.0) + time.monotonic() - t
            gone = coll.allreduce(np.array([int(drop.sum()), tips, bubbles], np.int64))
            removed["tips"] += int(gone[1])
            removed["bubbles"] += int(gone[2])
            if not self._sync(None):
                return self._fail(msg)
            if gone[0] == 0:
                break
            # what the next round can keep: the unitigs that no change of link touches
            far, side, dist, far_order, cyclic = chains[:5]
            reuse = (links[2][~drop], links[0][~drop], far[~drop], side[~drop], dist[~drop], far_order[~drop],
                     cyclic[~drop])
            graph = graph.subset(~drop)
            del links, degrees, unchanged, chains, far, side, dist, far_order, cyclic  # before the next round's
        else:
            t = time.monotonic()
            links, _degrees = self._links(graph)
            chains = self._chains(graph, links, self._unchanged(graph, links, *reuse) if reuse else None)
            phases["graph and unitigs"] = phases.get("graph and unitigs", 0.0) + time.monotonic() - t
        self._progress(PHASES - 1, "assembling: spelling and naming the contigs")
        t = time.monotonic()
        contigs = self._spell(graph, chains)
        min_length = msg.min_length or 2 * k
        contigs = [c for c in contigs if len(c[1]) >= min_length]
        named, lengths = self._name(contigs, msg.prefix, k)
        graph_kmers = int(coll.allreduce(np.array([graph.n], np.int64))[0])
        phases["paths"] = time.monotonic() - t
        if not self._sync(None):
            return self._fail(msg)
        # every rank has finished: only now do the paths change
        if msg.replace:
            for name in existing:
                self.store.delete("paths", name)
        if msg.forget:
            old = path_name_pattern(msg.forget)
            for name in [name for name in paths if old.fullmatch(str(name))]:
                self.store.delete("paths", name)
        for item in named:
            self.store.put(item, "replace")
        self._progress(PHASES, "assembled")
        self.node.reply(msg, AssembleReply(
            min_count=int(min_count), contigs=len(lengths), total=int(lengths.sum()), n50=n50(lengths),
            longest=int(lengths.max(initial=0)), graph_kmers=graph_kmers, removed_tips=removed["tips"],
            removed_bubbles=removed["bubbles"], phases=phases, distinct=int(hist.sum()),
            occurrences=int(kept[1]), kept_occurrences=int(kept[0]),
            error_peak=bool(msg.min_count == 0 and min_count > 1)))

    def _blocks(self, n: int, block: int) -> Iterator[slice]:
        """Every rank: slices of at most ``block`` of this rank's n items, as many on every rank (the
        most any rank needs, the last ones empty here): one batched question per slice."""
        counts = np.zeros(self.ex.size, np.int64)
        counts[self.coll.rank] = -(-n // block)
        for b in range(max(int(self.coll.allreduce(counts).max()), 1)):
            yield slice(min(b * block, n), min((b + 1) * block, n))

    def _sides(self, nodes: Numbers) -> Iterator[tuple[Numbers, Numbers]]:
        """Every rank: both sides of these nodes, as (node, side) arrays, a block of ASK_BLOCK // 2
        nodes at a time (one batched question per block, as many on every rank)."""
        for part in self._blocks(len(nodes), ASK_BLOCK // 2):
            yield np.repeat(nodes[part], 2), np.tile(np.array([L, R], np.int64), part.stop - part.start)

    def _fail(self, msg: AssembleOrder) -> None:
        self.node.fail_order(msg, self._error or "assemble failed on another rank")

    def _progress(self, done: int, what: str) -> None:
        self.node.show_progress(done, PHASES, what, "phases")

    # --- 2, 3. neighbours, degrees and links -------------------------------------------------
    def _links(self, g: Graph) -> tuple[Links, Degrees]:
        """Each side's degree, and for a side with one neighbour: the neighbour's handle, the side of
        it a path enters by, whether the link is one of a non-branching path (the facing side has one
        neighbour too), and where the neighbour is (its position on its rank, for this round).

        A node's own neighbour (a k-mer followed by itself or by its reverse complement) is never a
        link; nor is anything to or from a palindromic k-mer: a path can only enter and leave it by
        turning back, so it is a unitig of its own."""
        k, n, size = g.k, g.n, self.ex.size

        def answer(asked: Ids) -> tuple[Numbers, Handles, npt.NDArray[np.uint8]]:
            pos, found = g.find(asked)
            return (np.where(found, pos, -1).astype(np.int64),
                    np.where(found, g.key[pos] if g.n else 0, NOBODY).astype(np.uint64),
                    np.where(found, g.palindromic[pos] if g.n else False, False).astype(np.uint8))

        # the neighbours the edges name (slots 0-3 successors by base, 4-7 predecessors), asked of
        # their owners a block of nodes at a time (every rank takes part in as many blocks): the
        # neighbours' ids are the largest arrays of the assembly, so only a block's are ever held.
        # All the edges of a node are in its block, so its degrees and links are known at the
        # block's end
        degrees = np.zeros((n, 2), np.uint8)  # at most 4 a side
        link_id = np.full((n, 2), NOBODY, np.uint64)
        link_side = np.zeros((n, 2), np.uint8)
        linked = np.zeros((n, 2), bool)
        link_h = np.zeros((n, 2), np.int64)
        for part in self._blocks(n, LINK_BLOCK):
            lo, hi = part.start, part.stop
            bits = (g.edges[lo:hi, None] >> np.arange(8, dtype=np.uint8)[None, :]) & 1
            rows, slots = np.nonzero(bits)
            del bits
            rows += lo
            x = g.ids[rows]
            base = (slots & 3).astype(np.uint64)
            succ = slots < 4
            y = np.empty_like(x)
            y[succ] = encoding.followers(x[succ], k, base[succ])
            y[~succ] = encoding.leaders(x[~succ], k, base[~succ])
            del x, base
            yc = encoding.canonical_array(y, k) if len(y) else y
            dest = owners(yc, size) if len(yc) else np.zeros(0, np.int32)
            # which are in the graph, their handles, and where on their owner (later questions go by position)
            where, handle, pal = self.ex.ask(dest, (yc,), answer)
            present = where >= 0
            rows, slots, y, yc = rows[present], slots[present], y[present], yc[present]
            where, handle, pal, dest = where[present], handle[present], pal[present], dest[present]
            side_of = (slots < 4).view(np.uint8)  # R after the node, L before it
            np.add.at(degrees, (rows, side_of), 1)
            # a side of degree 1: its single neighbour, and the side of it we enter by (leaving by R into
            # a neighbour read forward enters its L side; by L into a neighbour read forward, its R side)
            one = (degrees[rows, side_of] == 1) & (handle != g.key[rows]) & (pal == 0) & ~g.palindromic[rows]
            r1, s1 = rows[one], side_of[one]
            forward = encoding.same(y[one], yc[one])
            link_id[r1, s1] = handle[one]
            link_side[r1, s1] = np.where(forward, 1 - s1, s1)
            link_h[r1, s1] = where[one] * size + dest[one]
            del rows, slots, succ, y, yc, where, handle, pal, dest, present, side_of, one, forward
        # a link of a non-branching path: the facing side has one neighbour too (asked a block at a time)
        for part in self._blocks(n, ASK_BLOCK // 2):
            r1, s1 = np.nonzero(link_id[part] != NOBODY)
            r1 += part.start
            h, entry = link_h[r1, s1], link_side[r1, s1]
            (deg,) = self.ex.ask(h % size, (h, entry),
                                 lambda hh, ee: (degrees[hh // size, ee.astype(np.int64)] if g.n else
                                                 np.zeros(len(hh), np.uint8),))
            linked[r1, s1] = deg == 1
        return (link_id, link_side, linked, link_h), degrees

    # --- 4. unitigs: walks between rulers, then pointer jumping over the rulers ------------------
    def _unchanged(self, g: Graph, links: Links, old_linked: Mask, old_id: Handles, far: Handles, side: Sides,
                   dist: Numbers, far_order: OrderKeys, cyclic: Mask) -> Unchanged:
        """After k-mers left the graph: the unitigs none of whose nodes changed a link (and that are
        not cycles, whose cut the next round makes again) keep their ends and positions; returns
        (far, side, dist, far_order, clean) for the next jumping."""
        link_id, _link_side, linked, _link_h = links
        changed = ((linked != old_linked).any(axis=1) | (linked & (link_id != old_id)).any(axis=1)) | cyclic
        key = self._unitig_of(far, side, dist, far_order)[0]
        touched = np.unique(key[changed])
        every = np.concatenate(self.coll.alltoallv([touched] * self.ex.size))
        clean = ~np.isin(key, every) if len(every) else np.ones(g.n, bool)
        return far, side, dist, far_order, clean

    def _jump(self, g: Graph, link_id: Handles, link_side: Sides, linked: Mask, link_h: Places,
              reuse: tuple[Handles, Sides, Numbers, Mask] | None = None) -> Jumped:
        """For each side of each node: the end of its path beyond that side (the end's handle and dead
        side), the distance to it, whether an end was found (False on a cycle) and the smallest order
        key on the way.

        Pointer jumping over every node would cost O(n log n) lookups.  Instead, list ranking by
        rulers: the ends of paths and a sample of about one node in 2**RULER_BITS (by a hash of its
        id, so the same on any rank count) are rulers; from each side of each ruler a walker goes
        hop by hop (a batch of walkers per round, all ranks at once) to the next ruler, telling
        every node it passes which ruler lies behind it and how far.  Pointer jumping then runs
        over the rulers only, and every node adds its distance to the answer of its ruler: O(n)
        lookups in all."""
        n, size, rank = g.n, self.ex.size, self.coll.rank
        total_nodes = int(self.coll.allreduce(np.array([n], np.int64))[0])
        steps = np.int32 if total_nodes < 2**31 else np.int64  # a distance is below the graph's nodes
        far = np.repeat(g.key[:, None], 2, axis=1)
        side = np.repeat(np.array([[L, R]], np.uint8), n, axis=0)
        dist = np.zeros((n, 2), steps)
        done = ~linked
        low = np.repeat(g.order[:, None], 2, axis=1)
        fixed = np.zeros(n, bool)
        if reuse is not None:  # unitigs untouched by the last cleaning: their ends are known already
            far0, side0, dist0, fixed = reuse
            far[fixed], side[fixed], dist[fixed], done[fixed] = far0[fixed], side0[fixed], dist0[fixed], True
        with np.errstate(over="ignore"):
            spread = (g.order * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - RULER_BITS)
        ruler = ~fixed & (~linked.all(axis=1) | (spread == 0))
        # the nearest ruler beyond each side: its handle, id, the side by which the path leaves it,
        # the distance, and the smallest id from here to it
        near_h = np.full((n, 2), -1, np.int64)
        near_t = np.zeros((n, 2), np.uint8)
        near_d = np.zeros((n, 2), steps)
        near_low = np.zeros((n, 2), np.uint64)
        ruler_idx = np.full(n, -1, np.int64)
        rnodes: list[np.ndarray] = []

        def launch(new: np.ndarray) -> None:
            idx = np.flatnonzero(new)
            start = sum(len(r) for r in rnodes)
            ruler_idx[idx] = np.arange(start, start + len(idx))
            rnodes.append(idx)
            cols = []
            for s in (L, R):
                sel = idx[linked[idx, s]]
                cols.append(np.stack((link_h[sel, s].astype(np.uint64), link_side[sel, s].astype(np.uint64),
                                      (ruler_idx[sel] * size + rank).astype(np.uint64),
                                      np.full(len(sel), 1 - s, np.uint64), np.ones(len(sel), np.uint64),
                                      g.order[sel]), axis=1))
            walkers = np.concatenate(cols)
            hops = 0
            while self.coll.allreduce(np.array([len(walkers)], np.int64))[0]:
                hops += 1
                if hops > total_nodes + 1:  # a walker never passes a node twice: links are not symmetric
                    raise RuntimeError("assemble: a walk between rulers did not end (inconsistent links)")
                got = self.ex.rows(walkers[:, 0].astype(np.int64) % size, walkers)
                pos, e = (got[:, 0] // np.uint64(size)).astype(np.int64), got[:, 1].astype(np.int64)
                passed = np.minimum(got[:, 5], g.order[pos])
                near_h[pos, e] = got[:, 2].astype(np.int64)
                near_t[pos, e], near_d[pos, e], near_low[pos, e] = got[:, 3], got[:, 4].astype(steps), passed
                go = ~ruler[pos]  # a walker stops at the next ruler
                p, out = pos[go], 1 - e[go]
                walkers = np.stack((link_h[p, out].astype(np.uint64), link_side[p, out].astype(np.uint64),
                                    got[go, 2], got[go, 3], got[go, 4] + np.uint64(1), passed[go]), axis=1)

        launch(ruler)
        # nodes no walker reached lie on cycles without a ruler: they all become rulers
        lost = ~fixed & ~ruler & (near_h[:, L] < 0)
        if self.coll.allreduce(np.array([int(lost.sum())], np.int64))[0]:
            ruler |= lost
            launch(lost)
        rn = np.concatenate(rnodes)
        rl = linked[rn]
        me = (np.arange(len(rn), dtype=np.int64) * size + rank)[:, None]
        rfar_h = np.where(rl, near_h[rn], me)
        # the key of the ruler beyond each side (asked of its rank: walkers carry only where it is)
        rfar = np.repeat(g.key[rn, None], 2, axis=1)
        beyond = rfar_h[rl]
        (rfar[rl],) = self.ex.ask(beyond % size, (beyond,), lambda hh: (g.key[rn[hh // size]],))
        rside = np.where(rl, near_t[rn], np.array([[L, R]], np.uint8)).astype(np.uint8)
        rdist = np.where(rl, near_d[rn], 0)
        rdone = ~rl
        rlow = np.where(rl, near_low[rn], g.order[rn, None])
        total = int(self.coll.allreduce(np.array([len(rn)], np.int64))[0])

        def state(handles: Places, sides: Sides) -> tuple[np.ndarray, ...]:
            pos, s = handles // size, sides.astype(np.int64)
            return (rfar[pos, s], rfar_h[pos, s], rside[pos, s], rdist[pos, s], rdone[pos, s].astype(np.uint8),
                    rlow[pos, s])

        for _ in range(int(np.ceil(np.log2(total + 1))) + 2):
            if not self.coll.allreduce(np.array([int((~rdone).sum())], np.int64))[0]:
                break
            rows = np.flatnonzero(~rdone.ravel())
            i, s = rows // 2, rows % 2
            h = rfar_h[i, s]
            f2, h2, s2, d2, done2, low2 = self.ex.ask(h % size, (h, rside[i, s]), state)
            rfar[i, s], rfar_h[i, s], rside[i, s] = f2, h2, s2
            rdist[i, s] += d2
            rdone[i, s] = done2.astype(bool)
            rlow[i, s] = np.minimum(rlow[i, s], low2)
        # every other node: its ruler's answer, plus its distance to that ruler
        far[rn], side[rn], dist[rn], done[rn], low[rn] = rfar, rside, rdist, rdone, rlow
        for i, s in self._sides(np.flatnonzero(~fixed & ~ruler)):
            h = near_h[i, s]
            f2, _h2, s2, d2, done2, low2 = self.ex.ask(h % size, (h, near_t[i, s]), state)
            far[i, s], side[i, s], dist[i, s] = f2, s2, near_d[i, s] + d2
            done[i, s], low[i, s] = done2.astype(bool), np.minimum(near_low[i, s], low2)
        return far, side, dist, done, low

    def _chains(self, g: Graph, links: Links, reuse: Unchanged | None = None) -> Chains:
        """Every node's unitig: for each side, the handle of the unitig's end beyond it, the end's
        dead side, the distance to it and the end's order key; and which nodes lie on cycles (each
        cut at its node of smallest order key: the links it cut are gone from ``linked``)."""
        link_id, link_side, linked, link_h = links
        linked = linked.copy()
        far, side, dist, done, low = self._jump(g, link_id, link_side, linked, link_h,
                                                None if reuse is None else (reuse[0], reuse[1], reuse[2], reuse[4]))
        cyclic = ~done[:, L]
        if self.coll.allreduce(np.array([int(cyclic.sum())], np.int64))[0]:
            # cycles: cut each at its smallest k-mer (its L side, and the side facing it); the paths
            # that ended already keep their answers
            cut = cyclic & (low[:, L] == g.order)
            linked[cut, L] = False
            tell = np.flatnonzero(cut)
            h = link_h[tell, L]
            h2, sides2 = self.ex.gather(h % self.ex.size, h, link_side[tell, L])
            linked[h2 // self.ex.size, sides2.astype(np.int64)] = False
            ended = done[:, L] & done[:, R]  # both ends found
            far, side, dist, done, low = self._jump(g, link_id, link_side, linked, link_h,
                                                    (far, side, dist, ended))
        # the order key of every end (those reused are known already)
        far_order = np.zeros((g.n, 2), np.uint64)
        known = np.zeros(g.n, bool) if reuse is None else reuse[4] & ~cyclic
        if reuse is not None:
            far_order[known] = reuse[3][known]
        for i, sd in self._sides(np.flatnonzero(~known)):
            h = far[i, sd]
            (far_order[i, sd],) = self.ex.ask((h % np.uint64(self.ex.size)).astype(np.int64), (h,),
                                              lambda hh: (g.order[g.at(hh)],))
        return far, side, dist, far_order, cyclic, linked

    @staticmethod
    def _unitig_of(far: Handles, side: Sides, dist: Numbers, far_order: OrderKeys
                   ) -> tuple[UnitigKeys, Numbers, Mask, OrderKeys, Sides]:
        """Each node's unitig: its key (2 * handle + dead side of the end it is read from: exact),
        position, whether it is read forward (that end lies beyond its L side), and the (order key,
        side) of that end, which orders unitigs the same way on any rank count.  The end read from
        is the smaller by (order key, side, handle)."""
        fl, fr = far_order[:, L], far_order[:, R]
        sl, sr = side[:, L], side[:, R]
        forward = (fl < fr) | ((fl == fr) & ((sl < sr) | ((sl == sr) & (far[:, L] <= far[:, R]))))
        end = np.where(forward, L, R)
        rows = np.arange(len(far))
        key = far[rows, end] * np.uint64(2) + side[rows, end].astype(np.uint64)
        return key, dist[rows, end], forward, far_order[rows, end], side[rows, end]

    def _unitig_rank(self, key: np.ndarray) -> np.ndarray:
        """The rank that gathers a unitig: the rank of the end it is read from (in its key's handle)."""
        return ((key >> np.uint64(1)) % np.uint64(self.ex.size)).astype(np.int64)

    # --- 5. tips and bubbles ------------------------------------------------------------------
    def _clean(self, g: Graph, links: Links, degrees: Degrees, chains: Chains) -> tuple[Mask, int, int]:
        far, side, dist, far_order, cyclic, linked = chains
        key, _pos, _forward, uorder, uside = self._unitig_of(far, side, dist, far_order)
        length = dist[:, L] + dist[:, R] + 1
        # what a rank tells a unitig's owner: of its nodes there, how many and their counts summed
        # (a piece), and for each side that ends the unitig, the side's degree and (degree 1) the
        # neighbour beyond it; cycles are neither tips nor bubble arms
        o = np.argsort(key, kind="stable")
        first = np.flatnonzero(np.concatenate(([True], key[o][1:] != key[o][:-1]))) if g.n else o
        rep = o[first]  # a node of each piece: its unitig's length, cycle, end order key and side
        sums = np.add.reduceat(g.counts[o].astype(np.int64), first) if g.n else np.empty(0, np.int64)
        rows = np.diff(np.append(first, g.n))
        del o
        pkey, psum, prows, plen, pcyc, pord, psd = self.ex.gather(
            self._unitig_rank(key[rep]), key[rep], sums, rows, length[rep], cyclic[rep].astype(np.uint8),
            uorder[rep], uside[rep])
        at_end = [np.flatnonzero(~linked[:, sd]) for sd in (L, R)]
        e_at = np.concatenate(at_end)
        e_side = np.repeat(np.array([L, R]), [len(at_end[L]), len(at_end[R])])
        nb = np.where(degrees[e_at, e_side] == 1, links[0][e_at, e_side], NOBODY)
        end_key, end_deg, end_nb = self.ex.gather(self._unitig_rank(key[e_at]), key[e_at], degrees[e_at, e_side], nb)
        del at_end, e_at, e_side, nb, uorder, uside, length
        remove_keys = []
        tips = bubbles = 0
        arm_lo = arm_hi = arm_key = arm_ord = np.empty(0, np.uint64)
        arm_cov = np.empty(0, np.float64)
        arm_side = np.empty(0, np.uint8)
        if len(pkey):
            order = np.argsort(pkey, kind="stable")
            pkey, psum, prows, plen, pcyc, pord, psd = (a[order] for a in (pkey, psum, prows, plen, pcyc, pord, psd))
            first = np.flatnonzero(np.concatenate(([True], pkey[1:] != pkey[:-1])))
            keys = pkey[first]
            nodes = plen[first]
            cyc = pcyc[first].astype(bool)
            cov = np.add.reduceat(psum, first) / np.maximum(np.add.reduceat(prows, first), 1)
            uord, usd = pord[first], psd[first]
            # the two end sides of each unitig: (degree, neighbour beyond)
            o = np.lexsort((end_nb, end_key))
            end_key, end_deg, end_nb = end_key[o], end_deg[o], end_nb[o]
            idx = np.searchsorted(end_key, keys)
            if len(end_key) != 2 * len(keys) or not (end_key[idx] == keys).all():
                raise RuntimeError("assemble: a unitig without two ends (inconsistent links)")
            d1, d2, b1, b2 = end_deg[idx], end_deg[idx + 1], end_nb[idx], end_nb[idx + 1]
            short = nodes < g.k + 1  # fewer than 2k bases
            tip = ~cyc & short & (((d1 == 0) & (d2 > 0)) | ((d2 == 0) & (d1 > 0)))
            tips = int(tip.sum())
            remove_keys.append(keys[tip])
            arm = ~cyc & ~tip & (d1 == 1) & (d2 == 1) & (nodes <= 2 * g.k) & (b1 != NOBODY) & (b2 != NOBODY)
            arm_lo, arm_hi = np.minimum(b1, b2)[arm], np.maximum(b1, b2)[arm]
            arm_key, arm_cov = keys[arm], cov[arm].astype(np.float64)
            arm_ord, arm_side = uord[arm], usd[arm]
        # the arms of one bubble may belong to unitigs owned by different ranks: each arm goes to the
        # rank of the node of smaller handle it joins, which sees every arm between that pair
        pair_lo, pair_hi, akeys, acov, aord, aside = self.ex.gather(
            (arm_lo % np.uint64(self.ex.size)).astype(np.int64), arm_lo, arm_hi, arm_key, arm_cov, arm_ord, arm_side)
        if len(akeys):
            o = np.lexsort((aside, aord, -acov, pair_hi, pair_lo))  # best arm first in each pair
            pair_lo, pair_hi, akeys = pair_lo[o], pair_hi[o], akeys[o]
            dup = np.concatenate(([False], (pair_lo[1:] == pair_lo[:-1]) & (pair_hi[1:] == pair_hi[:-1])))
            bubbles = int(dup.sum())
            remove_keys.append(akeys[dup])
        mine = np.concatenate(remove_keys) if remove_keys else np.empty(0, np.uint64)
        # the unitigs that leave the graph, to every rank (few: a list of keys)
        every = np.concatenate(self.coll.alltoallv([mine] * self.ex.size))
        drop = np.isin(key, every) if len(every) else np.zeros(g.n, bool)
        return drop, tips, bubbles

    # --- 6. sequences and names -------------------------------------------------------------------
    def _spell(self, g: Graph, chains: Chains) -> list[Contig]:
        """The unitigs whose end this rank holds: (key, sequence, mean count, order key and side of
        the end it is read from)."""
        k = g.k
        key, pos, forward, uorder, uside = self._unitig_of(*chains[:4])
        dest = self._unitig_rank(key)
        # every node sends the last base of its k-mer as the unitig reads it (the complement of its
        # first base when read reverse) and its count; the first node of each unitig sends its whole
        # k-mer (the unitig's first k bases) and the order key and side of the unitig's end
        last = np.where(forward, encoding.last_codes(g.ids), 3 - encoding.first_codes(g.ids, k)).astype(np.uint8)
        ukey, upos, ulast, ucount = self.ex.gather(dest, key, pos, last, g.counts)
        del last
        head = np.flatnonzero(pos == 0)
        hid = g.ids[head]
        back = ~forward[head]
        if back.any():
            hid[back] = encoding.revcomp_array(hid[back], k)
        hkey, hori, hord, hsd = self.ex.gather(dest[head], key[head], hid, uorder[head], uside[head])
        del key, pos, forward, uorder, uside, dest, head, hid, back
        if not len(ukey):
            return []
        order = np.lexsort((upos, ukey))
        ukey, upos, ulast, ucount = (a[order] for a in (ukey, upos, ulast, ucount))
        del order
        starts = np.flatnonzero(np.concatenate(([True], ukey[1:] != ukey[:-1])))
        stops = np.append(starts[1:], len(ukey))
        if not ((upos == np.arange(len(upos)) - np.repeat(starts, stops - starts)).all()):
            raise RuntimeError("assemble: the positions of a unitig's k-mers are not 0, 1, 2, ... (inconsistent links)")
        o = np.argsort(hkey, kind="stable")
        hkey, hori, hord, hsd = hkey[o], hori[o], hord[o], hsd[o]
        if len(hkey) != len(starts) or not (hkey == ukey[starts]).all():
            raise RuntimeError("assemble: a unitig without its first k-mer (inconsistent links)")
        heads = encoding.decode_array(hori, k)  # the first k-mer of each unitig, as bases
        last = np.frombuffer(b"ACGT", np.uint8)[ulast]
        ucount = ucount.astype(np.int64)
        out = []
        for i, (a, b) in enumerate(zip(starts, stops)):
            seq = heads[i].tobytes().decode() + last[a + 1:b].tobytes().decode()
            out.append((int(ukey[a]), seq, float(ucount[a:b].mean()), int(hord[i]), int(hsd[i])))
        return out

    def _name(self, contigs: list[Contig], prefix: str, k: int) -> tuple[list[GraphPath], np.ndarray]:
        """Name every rank's unitigs PREFIX-1, ... by decreasing length (ties by the order key and
        side of the end each is read from: the same on any rank count), and hand each path to the
        owner of its name; returns the paths this rank now holds, and all lengths."""
        size = self.ex.size
        mine = np.array([(len(seq), key, o, sd) for key, seq, _, o, sd in contigs], np.uint64).reshape(-1, 4)
        everyone = np.concatenate(self.coll.alltoallv([mine.ravel()] * size)).reshape(-1, 4)
        order = np.lexsort((everyone[:, 1], everyone[:, 3], everyone[:, 2], -everyone[:, 0].astype(np.int64)))
        rank_of = {int(everyone[j, 1]): n + 1 for n, j in enumerate(order)}
        blobs: list[list[bytes]] = [[] for _ in range(size)]
        for key, seq, cov, _o, _sd in contigs:
            name = f"{prefix}-{rank_of[key]}"
            path = GraphPath(name, seq, k, "unitig", coverage=cov)
            blobs[owner(("paths", name), size)].append(pack_item(path))
        lens = [np.array([len(b) for b in bl], np.int64) for bl in blobs]
        data = [np.frombuffer(b"".join(bl), np.uint8) if bl else np.empty(0, np.uint8) for bl in blobs]
        got_lens = np.concatenate(self.coll.alltoallv(lens))
        got_data = np.concatenate(self.coll.alltoallv(data)).tobytes()
        items: list[GraphPath] = []
        o = 0
        for n in got_lens.tolist():
            item = unpack_item(got_data[o:o + n])
            assert isinstance(item, GraphPath)
            items.append(item)
            o += n
        return items, np.sort(everyone[:, 0].astype(np.int64))[::-1]

