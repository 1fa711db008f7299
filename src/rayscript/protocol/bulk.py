"""Bulk movement of k-mers by selector (copy, move, delete; also rebalance and restore): what
:mod:`rayscript.runtime.bulk` serves."""

from __future__ import annotations

from dataclasses import dataclass

from ..store.kmertable import FEW
from .base import Message

CHUNK_ITEMS = 2_000_000


@dataclass(kw_only=True)
class BulkReply(Message, kind="bulk-reply", reply=True):
    """How many k-mers a bulk order copied, moved or deleted, and their bytes on the wire."""

    items: int = 0
    nbytes: int = 0
    kept: int = 0  # mode 'distinct': k-mers whose copies differ, left where they were


@dataclass(kw_only=True)
class BulkSendOrder(Message, kind="bulk-send"):
    reply_type = BulkReply
    selector: tuple = ("all",)
    target: int = -1
    mode: str | None = None
    move: bool = False
    what: str = ""
    kset: str = "kmers"  # the k-mer set (the target's set of the same name)

    def cascade(self) -> list[str]:
        verb = "move" if self.move else "copy"
        out = [f"BULK-CHUNK {self.recipient} -> {self.target} (numpy buffers, {CHUNK_ITEMS:,} k-mers per chunk)",
               f"BULK-STORED {self.target} -> {self.recipient}"]
        if self.move:
            out.append(f"(rank {self.recipient} deletes what moved)")
        out.append(f"ACK {self.recipient} -> {self.commander} (items and bytes, {verb})")
        return out


@dataclass(kw_only=True)
class BulkChunk(Message, kind="bulk-chunk"):
    """Whole buckets of the source's table: per bucket (numbered in ``buckets``) its sorted ids,
    counts and edges as three buffers.  They arrive with room in front for the few k-mers a
    target's bucket may hold already (merged in place, see KmerTable.add_bucket)."""

    buffer_room = FEW
    k: int | None = None
    buckets: tuple = ()
    seq: int = 0
    last: bool = False
    mode: str | None = None
    what: str = ""
    kset: str = "kmers"
    canonical: bool = True
    # the set's fields, (name, int or float, default): after a bucket's three buffers, one per field
    columns: tuple = ()


@dataclass(kw_only=True)
class BulkStored(Message, kind="bulk-stored"):
    """The target's answer to the source; with mode 'distinct', buffers: [ids not stored]."""

    ok: bool = True
    reason: str = ""
    items: int = 0


@dataclass(kw_only=True)
class BulkDeleteOrder(Message, kind="bulk-delete"):
    reply_type = BulkReply
    selector: tuple = ("all",)
    kset: str = "kmers"

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander} (how many were deleted)"]
