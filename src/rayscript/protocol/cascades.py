"""Fields and cascades written in the language: what :mod:`rayscript.genomics.cascades` serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import Message
from .core import Ack


@dataclass(kw_only=True)
class FieldOrder(Message, kind="field-order"):
    """Add (or, with ``drop``, remove) the field ``name`` of every k-mer of ``kset`` on the rank."""

    reply_type = Ack
    kset: str = "kmers"
    name: str = ""
    dtype: str = "int"  # int or float
    default: Any = 0
    drop: bool = False

    def cascade(self) -> list[str]:
        what = "removes" if self.drop else f"adds ({self.dtype}, {self.default} for every k-mer)"
        return [f"(rank {self.recipient} {what} the column {self.name} of {self.kset})",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class FieldsReply(Message, kind="fields-reply", reply=True):
    held: dict = field(default_factory=dict)  # set -> {name: (int or float, default)}


@dataclass(kw_only=True)
class FieldsOrder(Message, kind="fields-order"):
    """The fields of every set held on the rank."""

    reply_type = FieldsReply
    informs = True

    def cascade(self) -> list[str]:
        return [f"FIELDS-REPLY {self.recipient} -> {self.commander} (the fields of its sets)"]


@dataclass(kw_only=True)
class CascadeDone(Message, kind="cascade-done", reply=True):
    handled: int = 0
    sent: int = 0
    dropped: int = 0
    rounds: int = 0
    started: int = 0
    emitted: list = field(default_factory=lambda: [0, 0.0, None, None])  # count, sum, min, max
    stopped: str = ""  # why it stopped before the end (max_messages, timeout, interrupted)


@dataclass(kw_only=True)
class StartCascade(Message, kind="start-cascade"):
    """``start NAME(SOURCE, ...)``: every rank takes part at once (a collective order).

    ``program``: the cascades reachable from the one started, with their parameters' types;
    ``source``: ("select", wire selector) or ("key", oriented id); ``args``: the start's argument
    expressions, evaluated per start k-mer."""

    reply_type = CascadeDone
    kset: str = "kmers"
    first: str = ""
    program: dict = field(default_factory=dict)  # name -> (CascadeDef, {param: type})
    source: tuple = ("select", ("all",))
    args: tuple = ()
    max_messages: int = 0  # 0: no limit
    timeout: float = 0.0  # seconds, 0: none
    k: int = 0
    canonical: bool = True

    def cascade(self) -> list[str]:
        return [f"(rank {self.recipient}: the start messages of {self.first} to the k-mers it holds)",
                f"(rank {self.recipient}: each round, the batch of messages to its k-mers through the handler's "
                f"array operations; new messages ALLTOALLV to their k-mers' owners)",
                "(ALLREDUCE each round: messages in flight on every rank; none: the cascade is over)",
                f"(rank {self.recipient}: when few are left anywhere, packets point to point to the other "
                f"ranks, each acknowledged; rank 0 ends it when all are)",
                f"CASCADE-DONE {self.recipient} -> {self.commander} (messages handled, sent, dropped, emitted)"]
