"""Messages every rank speaks whatever its services: the generic replies (``Ack``, ``ErrorReply``),
the life cycle (stop, fatal, cancel, ping), bundles of small messages and blocks run by another
commander (``on R { ... }``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RayScriptError
from .base import Message


@dataclass(kw_only=True)
class Ack(Message, kind="ack", reply=True):
    """Done, nothing to report."""


@dataclass(kw_only=True)
class ErrorReply(Message, kind="error", reply=True):
    rank: int = -1
    key: str | None = None
    reason: str = ""
    where: str = ""  # a defect: the line of the rank's code where the handler failed (file:line in function)


@dataclass(kw_only=True)
class BlockDone(Message, kind="block-done", reply=True):
    results: list = field(default_factory=list)
    # the block failed: the error its statement raised, whole (pickled with its class, cause,
    # location, and ``done``: what the block did before it)
    error: RayScriptError | None = None


@dataclass(kw_only=True)
class RunBlock(Message, kind="run-block"):
    """Make the recipient the commander of a block of statements (``on R { ... }``)."""

    reply_type = BlockDone

    statements: tuple = ()
    env: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    text: str | None = None

    def describe(self) -> str:
        return (f"{self.kind.upper():<14} {self.sender} -> {self.recipient}  "
                f"{len(self.statements)} statement(s); rank {self.recipient} becomes their commander")

    def cascade(self) -> list[str]:
        return [f"(rank {self.recipient} sends the orders of the block)",
                f"BLOCK-DONE {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class Stop(Message, kind="stop"):
    pass


@dataclass(kw_only=True)
class Cancel(Message, kind="cancel"):
    """Stop every task (commander work) on the recipient once its orders in flight are answered."""


@dataclass(kw_only=True)
class Fatal(Message, kind="fatal"):
    rank: int = -1
    reason: str = ""


@dataclass(kw_only=True)
class Ping(Message, kind="ping"):
    """Are you there?  A commander whose order went unanswered asks every rank, to name the one
    that is silent (see Node._find_silent); any rank answers at once with an Ack."""

    reply_type = Ack


@dataclass(kw_only=True)
class Bundle(Message, kind="bundle"):
    """Small messages for one recipient travelling together (see :mod:`rayscript.runtime.aggregate`):
    their envelopes, in the order they were posted."""

    envelopes: list = field(default_factory=list)
