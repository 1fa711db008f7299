"""Paths' service: names and lengths of the paths a rank holds, and their FASTA records written at
given offsets (``count paths``, ``dump paths``): what :mod:`rayscript.genomics.paths` serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Message


@dataclass(kw_only=True)
class PathLengthsReply(Message, kind="path-lengths-reply", reply=True):
    names: list = field(default_factory=list)
    lengths: list = field(default_factory=list)  # bases
    sizes: list = field(default_factory=list)  # bytes of each record in the format asked
    ends: list = field(default_factory=list)  # (first k-1 bases, last k-1 bases, k) of each, for links


@dataclass(kw_only=True)
class PathLengthsOrder(Message, kind="path-lengths"):
    """The selected paths a rank holds: names, lengths (and the sizes of their records in ``fmt``:
    fasta, gfa, bcalm; for gfa and bcalm their ends too)."""

    reply_type = PathLengthsReply
    informs = True
    selector: tuple = ("all",)  # ("all",), ("prefix", text) or ("name", name)
    fmt: str = ""

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander} (names and lengths of its paths)"]


@dataclass(kw_only=True)
class PathWriteOrder(Message, kind="path-write"):
    reply_type = PathLengthsReply
    path: str = ""
    fmt: str = "fasta"  # fasta, gfa (S lines) or bcalm (FASTA with BCALM2's unitig headers)
    places: list = field(default_factory=list)  # (name, offset, links for a bcalm header) of each record

    def cascade(self) -> list[str]:
        return [f"(rank {self.recipient} writes its {self.fmt} records at their offsets)",
                f"ACK {self.recipient} -> {self.commander}"]
