"""K-mer sets: list, combine, compare, matrix, rename and drop: what :mod:`rayscript.genomics.sets`
serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import Message
from .core import Ack


@dataclass(kw_only=True)
class SetsReply(Message, kind="sets-reply", reply=True):
    """Per set held on the rank: name -> (k or 0, canonical, distinct, total, bytes, busy)."""

    sets: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class SetsOrder(Message, kind="sets"):
    reply_type = SetsReply
    informs = True

    def cascade(self) -> list[str]:
        return [f"SETS-REPLY {self.recipient} -> {self.commander} (its sets: k, sizes)"]


@dataclass(kw_only=True)
class CombineReply(Message, kind="combined", reply=True):
    distinct: int = 0
    total: int = 0
    nbytes: int = 0
    sent: int = 0  # k-mers sent to their owners first (held off their owner)
    peak_rss: int = 0  # the rank's peak resident memory so far, bytes


@dataclass(kw_only=True)
class CombineOrder(Message, kind="combine"):
    """``combine EXPR into TARGET``: expr is a :mod:`rayscript.store.setops` expression over set names."""

    reply_type = CombineReply
    expr: Any = None
    target: str = ""
    mode: str | None = None
    low: int = 1
    high: int | None = None
    k: int = 0
    canonical: bool = True

    def cascade(self) -> list[str]:
        return ["(all ranks: k-mers held off their owner, if any, ALLTOALLV to their owners)",
                "(all ranks: the expression bucket by bucket over the sets' sorted arrays; no k-mer travels)",
                "(ALLREDUCE: every rank done? then the result is installed everywhere)",
                f"ACK {self.recipient} -> {self.commander} (distinct, total)"]


@dataclass(kw_only=True)
class CompareReply(Message, kind="compared", reply=True):
    distinct: list = field(default_factory=list)  # per set, over all ranks
    shared: list = field(default_factory=list)  # per pair (i < j, row by row), over all ranks


@dataclass(kw_only=True)
class CompareOrder(Message, kind="compare"):
    reply_type = CompareReply
    sets: list = field(default_factory=list)
    low: int = 1

    def cascade(self) -> list[str]:
        return ["(all ranks: distinct k-mers per set and shared per pair, bucket by bucket; ALLREDUCE)",
                f"ACK {self.recipient} -> {self.commander} (the sums)"]


@dataclass(kw_only=True)
class MatrixReply(Message, kind="matrix-written", reply=True):
    rows: int = 0  # over all ranks
    nbytes: int = 0  # over all ranks, with the header
    copresence: list = field(default_factory=list)  # when asked: rows present in sets i and j, i * sets + j


@dataclass(kw_only=True)
class MatrixOrder(Message, kind="matrix"):
    reply_type = MatrixReply
    sets: list = field(default_factory=list)
    path: str = ""
    header: str = ""
    min_sets: int = 1
    low: int = 1
    presence: bool = False
    k: int = 0
    copresence: bool = False  # count the rows present in each pair of sets (the principal components)

    def cascade(self) -> list[str]:
        if not self.path:
            return ["(all ranks: their rows, bucket by bucket, present in each pair of sets; ALLREDUCE)",
                    f"ACK {self.recipient} -> {self.commander} (rows, pairs)"]
        return ["(all ranks: their rows, bucket by bucket; ALLGATHER of their sizes)",
                "(every rank writes its rows at its offset of the file)",
                f"ACK {self.recipient} -> {self.commander} (rows, bytes)"]


@dataclass(kw_only=True)
class RenameOrder(Message, kind="rename-set"):
    reply_type = Ack
    old: str = ""
    new: str = ""

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class DropOrder(Message, kind="drop-set"):
    reply_type = Ack
    name: str = ""

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander}"]
