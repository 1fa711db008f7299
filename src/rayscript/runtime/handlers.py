"""Store handlers: what a rank does with each order, against its own shard.

Each handler answers the commander named in the message, or sends the next message of the
cascade to another rank (COPY_ORDER -> ITEM -> ACK; MOVE_ORDER -> ITEM -> STORED -> ACK).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..items import Carriageable, unpack_item
from ..protocol.base import Message
from ..protocol.core import Ack, ErrorReply
from ..protocol.store import (
    CopyOrder,
    DeleteOrder,
    GetOrder,
    HasOrder,
    HasReply,
    ItemReply,
    ItemTransfer,
    MoveOrder,
    PutOrder,
    StatsOrder,
    StatsReply,
    Stored,
)
from ..store import encoding
from .node import Node
from .shard import ItemExists


class StoreService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        handlers: dict[type[Message], Callable[[Any], None]] = {
            PutOrder: self.on_put, GetOrder: self.on_get, CopyOrder: self.on_copy,
            MoveOrder: self.on_move, DeleteOrder: self.on_delete, HasOrder: self.on_has,
            StatsOrder: self.on_stats, ItemTransfer: self.on_item, Stored: self.on_stored,
        }
        for cls, fn in handlers.items():
            node.register(cls, fn)

    def _held(self, msg: GetOrder | CopyOrder | MoveOrder) -> bytes | None:
        """The item ``msg`` names, packed for the wire; None (and the commander told) if absent."""
        ns, ident = msg.key
        data = self.store.packed(ns, ident)
        if data is None:
            self.node.fail_order(msg, f"{self.node.key_text(msg.key)} is not on rank {self.node.rank}", msg.key)
        return data

    def _store(self, msg: PutOrder | ItemTransfer, item: Carriageable) -> bool:
        try:
            self.store.put(item, msg.mode, msg.key[0])
        except ItemExists:
            self.node.fail_order(msg, f"{self.node.key_text(msg.key)} is already on rank {self.node.rank} "
                                      "(add 'replace' to overwrite or 'merge' to combine)", msg.key)
            return False
        except ValueError as exc:
            self.node.fail_order(msg, str(exc), msg.key)
            return False
        return True

    def on_put(self, msg: PutOrder) -> None:
        item = unpack_item(msg.item)
        problem = self.store.id_problem(item, msg.key[0])
        if problem:
            self.node.fail_order(msg, problem, msg.key)
        elif self._store(msg, item):
            self.node.reply(msg, Ack())

    def on_get(self, msg: GetOrder) -> None:
        data = self._held(msg)
        if data is not None:
            reply = ItemReply(key=msg.key, item=data)
            ns, ident = msg.key
            table = self.store.sets.get(ns) if isinstance(ident, int) else None
            if table is not None and table.columns:
                ids = encoding.ids_array([ident], table.k)
                reply.values = {name: table.column_values(name, ids)[0].item() for name in sorted(table.columns)}
            self.node.reply(msg, reply)

    def on_copy(self, msg: CopyOrder) -> None:
        data = self._held(msg)
        if data is not None:
            self.node.send(ItemTransfer(recipient=msg.target, commander=msg.commander, request=msg.request,
                                        key=msg.key, item=data, mode=msg.mode))

    def _refuse_if_moving(self, msg: MoveOrder | DeleteOrder) -> bool:
        if self.store.is_moving(msg.key):
            self.node.fail_order(msg, f"{self.node.key_text(msg.key)} is being moved from rank {self.node.rank} "
                                      "by another order", msg.key)
            return True
        return False

    def on_move(self, msg: MoveOrder) -> None:
        if self._refuse_if_moving(msg):
            return
        data = self._held(msg)
        if data is not None:
            self.store.moving.add(tuple(msg.key))  # until the target says whether it stored the item
            self.node.send(ItemTransfer(recipient=msg.target, commander=msg.commander, request=msg.request,
                                        key=msg.key, item=data, mode=msg.mode, move=True))

    def on_item(self, msg: ItemTransfer) -> None:
        if not msg.move:
            if self._store(msg, unpack_item(msg.item)):
                self.node.reply(msg, Ack())
            return
        # a move: the source hears either way, so it can let go of the key (and delete it if stored)
        reason = self._store_reason(msg, unpack_item(msg.item))
        self.node.send(Stored(recipient=msg.sender, commander=msg.commander, request=msg.request,
                              key=msg.key, target=self.node.rank, ok=reason is None, reason=reason or ""))

    def _store_reason(self, msg: ItemTransfer, item: Carriageable) -> str | None:
        try:
            self.store.put(item, msg.mode, msg.key[0])
        except ItemExists:
            return (f"{self.node.key_text(msg.key)} is already on rank {self.node.rank} "
                    "(add 'replace' to overwrite or 'merge' to combine)")
        except ValueError as exc:
            return str(exc)
        return None

    def on_stored(self, msg: Stored) -> None:
        ns, ident = msg.key
        self.store.moving.discard(tuple(msg.key))
        if not msg.ok:
            self.node.reply(msg, ErrorReply(rank=msg.target, key=self.node.key_text(msg.key), reason=msg.reason))
            return
        self.store.delete(ns, ident)
        self.node.reply(msg, Ack())

    def on_delete(self, msg: DeleteOrder) -> None:
        ns, ident = msg.key
        if self._refuse_if_moving(msg):
            return
        if self.store.delete(ns, ident):
            self.node.reply(msg, Ack())
        else:
            self.node.fail_order(msg, f"{self.node.key_text(msg.key)} is not on rank {self.node.rank}", msg.key)

    def on_has(self, msg: HasOrder) -> None:
        ns, ident = msg.key
        self.node.reply(msg, HasReply(held=self.store.has(ns, ident)))

    def on_stats(self, msg: StatsOrder) -> None:
        self.node.reply(msg, StatsReply(host=self.node.messenger.host(), counts=self.store.counts(),
                                        nbytes=self.store.nbytes()))
