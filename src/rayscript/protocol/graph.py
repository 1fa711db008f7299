"""The graph's orders: a walk's hops and its path, a search's frontier: what
:mod:`rayscript.genomics.graph` serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Message

DEFAULT_WALK_LENGTH = 1_000_000


@dataclass(kw_only=True)
class PathReply(Message, kind="path-stored", reply=True):
    """A walk's path, stored on the owner of its name (``rank``)."""

    length: int = 0
    kmers: int = 0
    reason: str = ""
    backward: int = 0
    sequence: str = ""
    rank: int = -1


@dataclass(kw_only=True)
class NeighboursReply(Message, kind="neighbours-reply", reply=True):
    """buffers: [found mask, neighbour ids, index of the source id]; ``k``: the k of the rank's
    k-mers (0: none known)."""

    found: int = 0
    k: int = 0


@dataclass(kw_only=True)
class WalkStep(Message, kind="walk"):
    """A walk in progress; the rank that owns ``current`` extends it."""

    reply_type = PathReply

    start: int = 0  # canonical id of the start k-mer
    current: int = 0  # oriented id of the k-mer to extend from
    sequence: str = ""  # the path so far, as bases
    k: int = 0
    hops: int = 0
    limit: int = DEFAULT_WALK_LENGTH
    both: bool = False
    phase: str = "fwd"  # "back" walks from the reverse complement of the start, then "fwd"
    back: str = ""  # the sequence the backward phase found
    back_reason: str = ""
    into: tuple = ()
    canonical: bool = True
    kset: str = "kmers"  # the k-mer set walked
    min_count: int = 1  # k-mers counted fewer times are not part of the graph
    # The graph is what the store holds: where the edges offer several neighbours, the walk visits
    # their owners to keep those present (with count >= min_count) before it decides.
    prev: int = -1  # oriented id of the k-mer the walk came from
    probe: list = field(default_factory=list)  # oriented ids still to look up
    probe_for: str = ""  # "pred" or "succ"
    valid: list = field(default_factory=list)  # oriented ids found present so far
    preds: int = -1  # predecessors of ``current`` present (-1: not known yet)
    succs: list | None = None  # successors of ``current`` present (None: not known yet)
    # counts of the path's k-mers, summed: this phase's, the backward phase's, the start k-mer's
    counted: int = 0
    back_counted: int = 0
    start_count: int = 0

    def cascade(self) -> list[str]:
        return [f"WALK {self.recipient} -> owner of the next k-mer -> ... (one hop per k-mer, commander "
                "not involved; at a fork, through the owners of the candidate neighbours)",
                "PATH-STORE last rank -> owner of the path", f"ACK owner of the path -> {self.commander}"]


@dataclass(kw_only=True)
class PathStore(Message, kind="path-store"):
    item: bytes = b""
    reply: PathReply | None = None  # sent on by the path's owner, with its rank


@dataclass(kw_only=True)
class NeighboursOrder(Message, kind="neighbours"):
    """buffers: [ids]; the answer's buffers: [found mask, neighbour ids, index of the source id]."""

    reply_type = NeighboursReply
    informs = True
    kset: str = "kmers"

    def cascade(self) -> list[str]:
        return [f"ACK {self.recipient} -> {self.commander} (neighbours of its frontier k-mers)"]
