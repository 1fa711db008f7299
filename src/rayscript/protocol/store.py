"""Single-item orders (put, get, copy, move, delete, has, stats) and their cascade steps: what
:mod:`rayscript.runtime.handlers` serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..items import item_class, pack_item
from .base import Message, key_text
from .core import Ack


@dataclass(kw_only=True)
class ItemReply(Message, kind="item-reply", reply=True):
    key: tuple = ()
    item: bytes = b""
    values: dict = field(default_factory=dict)  # a k-mer's fields (cascades), by name


@dataclass(kw_only=True)
class HasReply(Message, kind="has-reply", reply=True):
    held: bool = False


@dataclass(kw_only=True)
class StatsReply(Message, kind="stats-reply", reply=True):
    host: str = ""
    counts: dict = field(default_factory=dict)
    nbytes: int = 0


@dataclass(kw_only=True)
class PutOrder(Message, kind="put-order"):
    reply_type = Ack

    key: tuple = ()
    item: bytes = b""
    mode: str | None = None

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class GetOrder(Message, kind="get-order"):
    reply_type = ItemReply
    key: tuple = ()

    def simulated_reply(self) -> Message:
        namespace, ident = self.key
        return ItemReply(key=self.key, item=pack_item(item_class(namespace).empty(ident, {})))

    def cascade(self) -> list[str]:
        return [f"ITEM-REPLY {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class CopyOrder(Message, kind="copy-order"):
    reply_type = Ack
    key: tuple = ()
    target: int = -1
    mode: str | None = None

    def cascade(self) -> list[str]:
        return [f"ITEM {self.recipient} -> {self.target} ({key_text(self.key)})",
                f"ACK {self.target} -> {self.commander}"]


@dataclass(kw_only=True)
class MoveOrder(Message, kind="move-order"):
    reply_type = Ack
    key: tuple = ()
    target: int = -1
    mode: str | None = None

    def cascade(self) -> list[str]:
        return [f"ITEM {self.recipient} -> {self.target} ({key_text(self.key)}, move)",
                f"STORED {self.target} -> {self.recipient} (then rank {self.recipient} deletes its copy)",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class DeleteOrder(Message, kind="delete-order"):
    reply_type = Ack
    key: tuple = ()

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class HasOrder(Message, kind="has-order"):
    reply_type = HasReply
    informs = True
    key: tuple = ()

    def cascade(self) -> list[str]:
        return [f"HAS-REPLY {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class StatsOrder(Message, kind="stats-order"):
    reply_type = StatsReply

    def cascade(self) -> list[str]:
        return [f"STATS-REPLY {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class ItemTransfer(Message, kind="item"):
    key: tuple = ()
    item: bytes = b""
    mode: str | None = None
    move: bool = False


@dataclass(kw_only=True)
class Stored(Message, kind="stored"):
    """The target of a move tells the source whether it holds the item now (``ok``), or why not."""

    key: tuple = ()
    target: int = -1
    ok: bool = True
    reason: str = ""
