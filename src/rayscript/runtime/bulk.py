"""Bulk movement of k-mers, rank side: copy, move and delete by selector (also used by
rebalance and restore).

``copy kmers where count >= 10 from 1 to 2``: the commander sends one BULK_SEND order to rank 1,
which selects the k-mers (vectorized over its table) and streams them straight to rank 2 in
bounded chunks of numpy arrays (MPI buffer methods, no pickle, no per-item message).  Rank 2
stages the chunks and, after the last one, applies them all or none (a conflict without
``replace``/``merge`` refuses the whole copy), then tells rank 1, which deletes what moved (for a
move) and answers the commander with the items and bytes moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..protocol.base import Message
from ..protocol.bulk import CHUNK_ITEMS, BulkChunk, BulkDeleteOrder, BulkReply, BulkSendOrder, BulkStored
from ..protocol.core import ErrorReply
from ..store import encoding
from ..store.types import Counts, Edges, Ids

if TYPE_CHECKING:
    from ..store.kmertable import KmerTable
    from .node import Node

ITEM_BYTES = 13  # id 8, count 4, edges 1


class BulkService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        self.outgoing: dict = {}  # (commander, request) -> (ids, nbytes, move, lent, set) at the source
        self.incoming: dict = {}  # (commander, request) -> list of chunks at the target
        handlers: dict[type[Message], Callable[[Any], None]] = {
            BulkSendOrder: self.on_send, BulkChunk: self.on_chunk, BulkStored: self.on_stored,
            BulkDeleteOrder: self.on_delete}
        for cls, fn in handlers.items():
            node.register(cls, fn)
        node.expecting.append(lambda: bool(self.outgoing or self.incoming))

    def _refuse_if_moving(self, msg: Message, ids: Ids, kset: str) -> bool:
        busy = self.store.moving_kmers(ids, kset) if len(ids) else 0
        if busy:
            self.node.fail_order(msg, f"{busy:,} of the selected k-mers are being moved from rank {self.node.rank} "
                                      "by another order; nothing was done")
        return bool(busy)

    def on_send(self, msg: BulkSendOrder) -> None:
        table = self.store.table(msg.kset)
        try:
            parts = list(table.selection(msg.selector))
        except ValueError as exc:
            self.node.fail_order(msg, str(exc))
            return
        if msg.move:
            selected = np.concatenate([ids for _, ids, _, _ in parts]) if parts else table.empty_ids()
            if self._refuse_if_moving(msg, selected, msg.kset):
                return
            self.store.bulk_moving[(msg.kset, msg.commander, msg.request)] = selected
        lent = [b for b, *_ in parts] if msg.selector == ("all",) else []
        table.lend(lent)  # the buckets' own arrays go out: copy-on-write until the target has them
        items = sum(len(ids) for _, ids, _, _ in parts)
        self.outgoing[(msg.commander, msg.request)] = ([ids for _, ids, _, _ in parts], items, msg.move, lent,
                                                       msg.kset)
        # one chunk per group of buckets of at most CHUNK_ITEMS k-mers; each bucket's arrays are buffers
        groups: list[list] = []
        group: list = []
        size = 0
        for part in parts:
            if group and size + len(part[1]) > CHUNK_ITEMS:
                groups.append(group)
                group, size = [], 0
            group.append(part)
            size += len(part[1])
        groups.append(group)
        columns = tuple((name, col.kind, col.default) for name, col in sorted(table.columns.items()))
        for seq, group in enumerate(groups):
            chunk = BulkChunk(recipient=msg.target, commander=msg.commander, request=msg.request, seq=seq,
                              k=table.k, buckets=tuple(b for b, *_ in group), kset=msg.kset,
                              canonical=table.canonical, last=seq == len(groups) - 1, mode=msg.mode, what=msg.what,
                              columns=columns)
            chunk.buffers = [a for _, ids, counts, edges in group
                             for a in (ids, counts, edges, *(table.column_values(c[0], ids) for c in columns))]
            self.node.send(chunk)

    def on_chunk(self, msg: BulkChunk) -> None:
        """Chunks are applied as they arrive when no conflict can refuse the copy ('merge',
        'replace', or nothing held here); otherwise staged and applied all together at the end.
        A copy refused or failed here is answered (BULK-STORED not ok) only after its last chunk,
        so the source never deletes anything this rank did not store."""
        key = (msg.commander, msg.request)
        rank = self.node.rank
        state = self.incoming.get(key)
        table = self.store.made(msg.kset)
        if state is None:
            state = self.incoming[key] = {"staged": [], "items": 0, "applied": 0, "conflicts": 0, "failed": None,
                                          "direct": msg.mode is not None or len(table) == 0, "kept": []}
            if msg.k and table.k and msg.k != table.k:
                state["failed"] = (f"rank {rank} holds k={table.k} k-mers, not k={msg.k}: "
                                   f"nothing was copied")
            elif msg.k and table.k is None:
                table.set_k(msg.k)
                table.canonical = msg.canonical
        bufs: list = msg.buffers or []
        width = 3 + len(msg.columns)
        for i, b in enumerate(msg.buckets):
            ids, counts, edges, *values = bufs[i * width:(i + 1) * width]
            state["items"] += len(ids)
            if state["failed"]:
                continue
            if state["direct"]:
                self._apply_counted(state, msg, b, ids, counts, edges, values)
            else:
                state["conflicts"] += int(table.present(ids).sum())
                state["staged"].append((b, ids, counts, edges, values))
        if not msg.last:
            return
        del self.incoming[key]
        items, conflicts = state["items"], state["conflicts"]
        reply = BulkStored(recipient=msg.sender, commander=msg.commander, request=msg.request, items=items)
        if not state["failed"]:
            if conflicts:
                state["failed"] = (f"{conflicts:,} of the {items:,} selected k-mers ({msg.what}) are already on "
                                   f"rank {rank}; nothing was copied (add 'replace' to overwrite or 'merge' to "
                                   f"combine)")
            else:
                for part in state["staged"]:
                    if not self._apply_counted(state, msg, *part):
                        break
        if state["failed"]:
            reply.ok, reply.reason = False, state["failed"]
        elif state["kept"]:
            reply.buffers = [np.concatenate(state["kept"])]
        self.node.send(reply)

    def _apply_counted(self, state: dict[str, Any], msg: BulkChunk, b: int, ids: Ids, counts: Counts,
                       edges: Edges, values: list | None = None) -> bool:
        """Apply one bucket's part (and its fields' values); on an error (say, out of memory) note
        how far the copy got and stop."""
        try:
            table = self.store.made(msg.kset)
            given = ids.copy() if msg.columns else ids  # the table may take the buffer over and write in it
            if msg.mode == "distinct":
                state["kept"].append(table.add_distinct(ids, counts, edges))
            else:
                self._apply(table, msg.mode, b, ids, counts, edges, msg.buffer_room)
            for (name, kind, default), column in zip(msg.columns, values or []):
                if name not in table.columns:
                    table.add_column(name, kind, default)
                table.set_column_values(name, given, column)
        except Exception as exc:
            done = state["applied"]
            state["failed"] = (f"rank {self.node.rank} could not store the copy ({type(exc).__name__}: {exc}); "
                               f"{done:,} of the selected k-mers ({msg.what}) were stored there before it stopped, "
                               f"the rest were not, and rank {msg.sender} still holds all of them")
            return False
        state["applied"] += len(ids)
        return True

    @staticmethod
    def _apply(table: KmerTable, mode: str | None, b: int, ids: Ids, counts: Counts, edges: Edges, room: int) -> None:
        if mode == "replace":
            table.replace_counted(ids, counts, edges)
        else:
            table.add_bucket(b, ids, counts, edges, room=room)

    def on_stored(self, msg: BulkStored) -> None:
        id_parts, items, move, lent, kset = self.outgoing.pop((msg.commander, msg.request))
        table = self.store.table(kset)
        table.give_back(lent)
        self.store.bulk_moving.pop((kset, msg.commander, msg.request), None)
        if not msg.ok:
            self.node.reply(msg, ErrorReply(rank=msg.sender, reason=msg.reason))
            return
        kept = msg.buffers[0] if msg.buffers else table.empty_ids()
        if move:
            for ids in id_parts:
                if len(kept):
                    gone = ~np.isin(encoding.exact(ids), encoding.exact(kept), assume_unique=True)
                    ids = ids[gone]
                table.remove_ids(ids)
        moved = items - len(kept)
        nbytes = moved * (ITEM_BYTES + 8 * (encoding.id_words(table.k) - 1))
        self.node.reply(msg, BulkReply(items=moved, nbytes=nbytes, kept=len(kept)))

    def on_delete(self, msg: BulkDeleteOrder) -> None:
        try:
            store = self.store
            table = store.table(msg.kset)
            if (store.moving or store.bulk_moving) and self._refuse_if_moving(msg, table.extract(msg.selector)[0],
                                                                              msg.kset):
                return
            ids, _, _ = table.extract(msg.selector, remove=True)
        except ValueError as exc:
            self.node.fail_order(msg, str(exc))
            return
        self.node.reply(msg, BulkReply(items=len(ids)))
