"""The k-mer service's orders (load, counts, dump, query) and the ranks' question about copies
(HELD-ORDER): what :mod:`rayscript.genomics.kmers` serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Message


@dataclass(kw_only=True)
class LoadReply(Message, kind="load-reply", reply=True):
    reads: int = 0
    kmers: int = 0
    nbytes: int = 0
    distinct: int = 0
    saturated: int = 0
    seconds: float = 0.0
    peak_rss: int = 0
    table_bytes: int = 0
    aborted: bool = False
    paths: int = 0  # of ``reads``: the paths (contigs) read as input
    short: int = 0  # reads of the files shorter than k (no k-mer in them)
    longest: int = 0  # the longest read of the files read here


@dataclass(kw_only=True)
class KmerStatsReply(Message, kind="kmer-stats-reply", reply=True):
    distinct: int = 0
    total: int = 0
    k: int | None = None
    canonical: bool = True
    saturated: int = 0
    nbytes: int = 0
    histogram: bytes = b""  # when asked for: int64 counts held, then as many numbers of k-mers with each
    copies: int = 0  # k-mers held here left out as copies of ones counted on another rank (once=True)
    held: bool = False  # this rank holds the set (maybe empty)
    foreign: int = 0  # k-mers held here that another rank owns (foreign=True)


@dataclass(kw_only=True)
class SizeReply(Message, kind="size-reply", reply=True):
    """Bytes a rank's part of a file takes (or took)."""

    nbytes: int = 0
    k: int | None = None
    copies: int = 0  # k-mers left out of the part: copies of ones another rank writes


@dataclass(kw_only=True)
class QueryReply(Message, kind="query-reply", reply=True):
    counts: bytes = b""  # uint32, one per id asked


@dataclass(kw_only=True)
class LoadOrder(Message, kind="load-order"):
    kset: str = "kmers"  # the k-mer set
    reply_type = LoadReply
    parts: list = field(default_factory=list)
    tiled: list = field(default_factory=list)  # (place in the list, path, size) of the plain FASTQ files
    k: int = 31
    canonical: bool = True
    total_bytes: int = 0
    paths: list = field(default_factory=list)  # selectors of paths (contigs) whose k-mers are input too

    def cascade(self) -> list[str]:
        return ["(all ranks: read, then ALLTOALLV k-mers to their owners, chunk by chunk)",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class KmerStatsOrder(Message, kind="kmer-stats"):
    kset: str = "kmers"  # the k-mer set
    reply_type = KmerStatsReply
    informs = True
    histogram: bool = False
    once: bool = False  # each k-mer once over the ranks: copies of ones counted elsewhere are left out
    selector: tuple = ("all",)  # the k-mers counted (distinct and total only)
    foreign: bool = False  # say how many k-mers held here another rank owns

    def cascade(self) -> list[str]:
        return ([COPIES_CASCADE.format(rank=self.recipient)] if self.once else []) + [
            f"ACK {self.recipient} -> {self.commander} (distinct, total{', histogram' if self.histogram else ''})"]


# A k-mer may be held on several ranks (copies: copy, replicate, put on a chosen rank); what a rank
# reports of the store leaves out its copies of k-mers that their owner holds, or that a lower rank
# holds when their owner does not: each k-mer is in the figures and the dump once.
COPIES_CASCADE = ("(if rank {rank} holds k-mers another rank owns: HELD-ORDER {rank} -> their owners, then -> the "
                  "ranks below it, to leave out the copies of k-mers counted there)")


@dataclass(kw_only=True)
class HeldReply(Message, kind="held-reply", reply=True):
    """buffers: [uint8 per k-mer asked, 1 where the rank holds it]."""


@dataclass(kw_only=True)
class HeldOrder(Message, kind="held-order"):
    """Which of some k-mers (buffers: [ids]) does the recipient hold?  Sent by a rank, not the
    commander, to find its copies of k-mers held on other ranks."""

    kset: str = "kmers"  # the k-mer set
    reply_type = HeldReply
    informs = True


@dataclass(kw_only=True)
class DumpSizeOrder(Message, kind="dump-size"):
    kset: str = "kmers"  # the k-mer set
    reply_type = SizeReply
    informs = True
    lo: int = 1
    hi: int | None = None
    selector: tuple = ("all",)
    columns: tuple = ()  # fields written after the count

    def cascade(self) -> list[str]:
        return [COPIES_CASCADE.format(rank=self.recipient),
                f"ACK {self.recipient} -> {self.commander} (bytes of its part; the commander computes offsets)"]


@dataclass(kw_only=True)
class DumpWriteOrder(Message, kind="dump-write"):
    kset: str = "kmers"  # the k-mer set
    reply_type = SizeReply
    path: str = ""
    offset: int = 0
    lo: int = 1
    hi: int | None = None
    selector: tuple = ("all",)
    columns: tuple = ()  # fields written after the count

    def cascade(self) -> list[str]:
        return [COPIES_CASCADE.format(rank=self.recipient), f"(rank {self.recipient} writes its part at its offset)",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class QueryOrder(Message, kind="query-order"):
    kset: str = "kmers"  # the k-mer set
    reply_type = QueryReply
    ids: bytes = b""

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander} (the counts of the k-mers it owns)"]
