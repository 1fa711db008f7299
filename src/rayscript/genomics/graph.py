"""The distributed de Bruijn graph, rank side: the orders of walk and search.

A k-mer's edges (8 bits, stored in its canonical orientation) say which bases were seen after it
(bits 0-3, A C G T) and before it (bits 4-7).  A walk travels in an *oriented* k-mer: when the
oriented k-mer is the reverse complement of the stored one, its successors are the complements
of the stored k-mer's predecessors.

``walk`` is a cascade: the commander sends one WALK order to the owner of the start k-mer; each
rank extends the walk while it can and forwards it to the owner of the next k-mer; the last rank
stores the path on the owner of ``paths/NAME``, which answers the commander.  The hops are posted
through the rank's aggregator (:mod:`rayscript.runtime.aggregate`): when many walks are under
way at once, the steps bound for one rank travel in one message.  ``search`` goes
frontier by frontier: each round the commander asks the owners of the frontier for their
neighbours (numpy buffers), and keeps the new ones.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..errors import RayScriptError
from ..items import GraphPath, pack_item, unpack_item
from ..protocol.graph import NeighboursOrder, NeighboursReply, PathReply, PathStore, WalkStep
from ..store import encoding
from ..store.kmertable import KmerTable
from ..store.partition import owner

if TYPE_CHECKING:
    from ..runtime.node import Node

# A graph statement in a store whose k-mers were put by number before any load: their length is not
# known, and neither are the neighbours their edges name.
NO_K = ("the k-mers here have no known k (they were put by number before any load): {what} needs k to "
        "follow their edges; load reads first, or put k-mers by their bases")

_COMP_BITS = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15]  # complement of a 4-bit base set


def _bases(mask: int) -> list[int]:
    return [b for b in range(4) if mask >> b & 1]


def oriented_edges(oriented: int, canonical_id: int, edges: int) -> tuple[int, int]:
    """(successor bases, predecessor bases) as 4-bit masks, for the k-mer as oriented."""
    after, before = edges & 15, edges >> 4
    if oriented == canonical_id:
        return after, before
    return _COMP_BITS[before], _COMP_BITS[after]


class GraphService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        node.register(WalkStep, self.on_walk)
        node.register(PathStore, self.on_path_store)
        node.register(NeighboursOrder, self.on_neighbours)

    def table(self, msg: WalkStep | NeighboursOrder) -> KmerTable:
        return self.store.table(msg.kset)

    def _canonical(self, ident: int, k: int, canonical: bool) -> int:
        return encoding.canonical(ident, k) if canonical else ident

    def _present(self, oriented: int, msg: WalkStep) -> bool:
        found = self.table(msg).get(self._canonical(oriented, msg.k, msg.canonical))
        return found is not None and found[0] >= msg.min_count

    def _forward(self, msg: WalkStep, oriented: int) -> bool:
        """Send the walk to the owner of ``oriented`` unless that is this rank (then go on here)."""
        dest = owner(("kmers", self._canonical(oriented, msg.k, msg.canonical)), self.node.size)
        if dest == self.node.rank:
            return False
        self.node.post(dataclasses.replace(msg, recipient=dest))
        return True

    def _start_probe(self, msg: WalkStep, what: str, candidates: list[int]) -> bool:
        msg.probe, msg.probe_for, msg.valid = list(candidates), what, []
        return self._probe(msg)

    def _probe(self, msg: WalkStep) -> bool:
        """Look up the candidates this rank owns, in turn; True if the walk went to another rank."""
        while msg.probe:
            if self._forward(msg, msg.probe[0]):
                return True
            ident = msg.probe.pop(0)
            if self._present(ident, msg):
                msg.valid.append(ident)
        if msg.probe_for == "pred":
            msg.preds = len(msg.valid) + 1  # and the k-mer the walk came from
        else:
            msg.succs = list(msg.valid)
        msg.probe_for, msg.valid = "", []
        return self._forward(msg, msg.current)

    def on_walk(self, msg: WalkStep) -> None:
        table = self.table(msg)
        if msg.probe and self._probe(msg):
            return
        if msg.k == 0:  # the first step, on the owner of the start k-mer
            if table.k is None and len(table):
                self.node.fail_order(msg, NO_K.format(what="walk"), (msg.kset, msg.start))
                return
            found = table.get(msg.start) if table.k is not None else None
            if found is None:
                self.node.fail_order(msg, f"{msg.kset}/{msg.start} is not on rank {self.node.rank} (its owner)",
                                     (msg.kset, msg.start))
                return
            if found[0] < msg.min_count:
                self.node.fail_order(msg, f"{msg.kset}/{msg.start} has count {found[0]}, below min_count="
                                          f"{msg.min_count}", (msg.kset, msg.start))
                return
            msg.k = table.k or 0
            msg.canonical = table.canonical
            msg.start_count = found[0]
            if msg.both:
                msg.phase = "back"
                msg.current = encoding.revcomp(msg.start, msg.k) if msg.canonical else msg.start
            else:
                msg.current = msg.start
            msg.sequence = encoding.decode(msg.current, msg.k)
            if msg.both and not msg.canonical:
                msg.phase = "fwd"  # forward strands only: no backward walk
        k, mask = msg.k, (1 << (2 * msg.k)) - 1
        top = 2 * (k - 1)
        while True:
            canon = self._canonical(msg.current, k, msg.canonical)
            found = table.get(canon)
            if found is None:
                return self._stop(msg, "dead end (the next k-mer is not in the store)", drop_last=True)
            if found[0] < msg.min_count:
                return self._stop(msg, f"dead end (the next k-mer's count {found[0]} is below min_count="
                                       f"{msg.min_count})", drop_last=True)
            outs, ins = oriented_edges(msg.current, canon, found[1])
            if msg.hops > 0 and msg.preds < 0:
                others = [(b << top) | (msg.current >> 2) for b in _bases(ins)]
                others = [p for p in others if p != msg.prev]
                if others:  # are the other predecessors the edges name still in the graph?
                    if self._start_probe(msg, "pred", others):
                        return
                    continue
                msg.preds = 1
            if msg.hops > 0 and msg.preds > 1:
                return self._stop(msg, f"branch (the next k-mer has {msg.preds} predecessors)", drop_last=True)
            if msg.succs is None:
                candidates = [((msg.current << 2) | b) & mask for b in _bases(outs)]
                if len(candidates) > 1:  # which successors the edges name are in the graph?
                    if self._start_probe(msg, "succ", candidates):
                        return
                    continue
                msg.succs = candidates  # a single one is checked when the walk gets there
            if not msg.succs:
                return self._stop(msg, "dead end (no successor)", count=found[0])
            if len(msg.succs) > 1:
                return self._stop(msg, f"branch ({len(msg.succs)} successors)", count=found[0])
            if msg.hops >= msg.limit:
                return self._stop(msg, f"length limit ({msg.limit + 1} k-mers)", count=found[0])
            nxt = msg.succs[0]
            if self._canonical(nxt, k, msg.canonical) == msg.start:
                return self._stop(msg, "cycle (back at the start k-mer)", count=found[0])
            msg.counted += found[0]
            msg.prev, msg.current = msg.current, nxt
            msg.preds, msg.succs = -1, None
            msg.sequence += encoding.BASES[nxt & 3]
            msg.hops += 1
            if self._forward(msg, nxt):
                return

    def _stop(self, msg: WalkStep, reason: str, drop_last: bool = False, count: int = 0) -> None:
        """The walk (or its backward phase) ends at ``msg.current``, which is part of the path
        (its count ``count``) unless ``drop_last``."""
        if drop_last and msg.hops > 0:
            msg.sequence = msg.sequence[:-1]
            msg.hops -= 1
        else:
            msg.counted += count
        if msg.phase == "back":
            if reason.startswith("cycle"):
                msg.back, msg.back_reason = "", ""
            else:
                msg.back, msg.back_reason = msg.sequence, reason
                nxt = dataclasses.replace(msg, recipient=owner(("kmers", msg.start), self.node.size))
                nxt.phase, nxt.current, nxt.hops = "fwd", msg.start, 0
                nxt.prev, nxt.preds, nxt.succs = -1, -1, None
                nxt.back_counted, nxt.counted = msg.counted - msg.start_count, 0
                nxt.sequence = encoding.decode(msg.start, msg.k)
                self.node.post(nxt)
                return
        sequence = msg.sequence
        back_len = 0
        if msg.back:
            back = encoding.revcomp_text(msg.back)
            back_len = len(msg.back) - msg.k
            sequence = back + msg.sequence[msg.k:]
        kmers = len(sequence) - msg.k + 1
        path = GraphPath(str(msg.into[1]), sequence, msg.k, reason if not msg.back_reason
                         else f"backward: {msg.back_reason}; forward: {reason}",
                         coverage=(msg.counted + (msg.back_counted if msg.back else 0)) / kmers)
        done = PathReply(length=len(sequence), kmers=kmers, reason=path.stop_reason,
                         backward=back_len, sequence=sequence)
        self.node.post(PathStore(recipient=owner(msg.into, self.node.size), commander=msg.commander,
                                 request=msg.request, item=pack_item(path), reply=done))

    def on_path_store(self, msg: PathStore) -> None:
        self.store.put(unpack_item(msg.item), "replace")
        done = msg.reply or PathReply()
        done.rank = self.node.rank
        self.node.reply(msg, done)

    def on_neighbours(self, msg: NeighboursOrder) -> None:
        table = self.table(msg)
        ids = table.as_ids(msg.buffers[0]) if msg.buffers else table.empty_ids()
        _counts, edges = table.lookup(ids)
        found = table.present(ids)
        k = table.k or 0
        if not k and bool((edges[found] != 0).any()):
            raise RayScriptError(NO_K.format(what="search"))
        out_ids, out_src = [], []
        if k and len(ids):
            idx = np.arange(len(ids))
            for b in range(4):
                succ = (edges >> b) & 1 == 1
                nxt = encoding.followers(ids[succ], k, b)
                pred = (edges >> (4 + b)) & 1 == 1
                prv = encoding.leaders(ids[pred], k, b)
                for arr, sel in ((nxt, succ), (prv, pred)):
                    if table.canonical:
                        arr = encoding.canonical_array(arr, k)
                    out_ids.append(arr)
                    out_src.append(idx[sel])
        reply = NeighboursReply(found=int(found.sum()), k=k)
        reply.buffers = [found, np.concatenate(out_ids) if out_ids else table.empty_ids(),
                         np.concatenate(out_src) if out_src else np.empty(0, np.int64)]
        self.node.reply(msg, reply)
