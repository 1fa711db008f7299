"""``save`` and ``restore``'s two steps (verify, commit): what :mod:`rayscript.genomics.checkpoint`
serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Message


@dataclass(kw_only=True)
class SavedReply(Message, kind="saved", reply=True):
    """One rank's shard file: its manifest entry."""

    entry: dict = field(default_factory=lambda: {"file": "", "bytes": 0, "sha256": "", "items": {}, "k": None,
                                                 "canonical": True})
    sets: dict = field(default_factory=dict)  # named set -> its file's entry


@dataclass(kw_only=True)
class VerifiedReply(Message, kind="verified", reply=True):
    kmers: int = 0
    named: int = 0
    differing: int = 0  # k-mers found in several files with different values (the first kept)


@dataclass(kw_only=True)
class CommittedReply(Message, kind="committed", reply=True):
    named: list = field(default_factory=list)  # keys of the named items now held


@dataclass(kw_only=True)
class SaveOrder(Message, kind="save-order"):
    reply_type = SavedReply
    directory: str = ""
    sets: list = field(default_factory=list)  # the named sets of the store (a file each, maybe empty)

    def cascade(self) -> list[str]:
        return [f"(rank {self.recipient} writes its shard file)", f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class VerifyOrder(Message, kind="restore-verify"):
    reply_type = VerifiedReply
    directory: str = ""  # the checkpoint's: every file is read from inside it
    files: list = field(default_factory=list)  # (file, manifest entry, the rank that saved it)
    ranks: int = 0  # how many ranks saved the checkpoint
    token: str = ""
    k: int | None = None
    canonical: bool = True
    sets: dict = field(default_factory=dict)  # named set -> (its files as ``files``, k, canonical)

    def cascade(self) -> list[str]:
        return [f"(rank {self.recipient} reads and verifies its files, staging them)",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class CommitOrder(Message, kind="restore-commit"):
    reply_type = CommittedReply
    token: str = ""
    commit: bool = True

    def cascade(self) -> list[str]:
        return [f"(rank {self.recipient} swaps in what it staged)", f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class CopiesPlacedReply(Message, kind="copies-placed", reply=True):
    placed: int = 0  # extra copies kept (beside their k-mer's copy at its owner, or in its place)
    dropped: int = 0  # copies of k-mers this rank now holds with other counts or edges


@dataclass(kw_only=True)
class CopiesOrder(Message, kind="restore-copies"):
    """After a restore onto another rank count has moved every k-mer saved by its owner to its new
    owner: the copies saved on other ranks go back into the store, where they do not hide that one."""

    reply_type = CopiesPlacedReply
    token: str = ""

    def cascade(self) -> list[str]:
        return [f"(rank {self.recipient} adds the extra copies it read)", f"ACK {self.recipient} -> {self.commander}"]
