"""``assemble``, the collective order, and its answer: what :mod:`rayscript.genomics.assembly`
serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Message


@dataclass(kw_only=True)
class AssembleReply(Message, kind="assembled", reply=True):
    min_count: int = 0
    contigs: int = 0
    total: int = 0
    n50: int = 0
    longest: int = 0
    graph_kmers: int = 0  # k-mers at or above min_count
    removed_tips: int = 0
    removed_bubbles: int = 0
    phases: dict = field(default_factory=dict)  # phase -> seconds
    aborted: bool = False
    distinct: int = 0  # distinct k-mers before the threshold (each once, whichever ranks hold it)
    occurrences: int = 0  # their counts summed
    kept_occurrences: int = 0  # the counts of the k-mers at or above min_count, summed
    error_peak: bool = False  # min_count=auto found an error peak (False: auto is 1)


@dataclass(kw_only=True)
class AssembleOrder(Message, kind="assemble"):
    reply_type = AssembleReply

    prefix: str = "contig"
    min_count: int = 0  # 0: auto
    min_length: int = 0  # 0: 2k
    clean: bool = True  # remove tips and bubble arms
    replace: bool = False
    kset: str = "kmers"  # the k-mer set assembled
    forget: str = ""  # a prefix of paths (an earlier round's) deleted once these are stored
    release: bool = False  # kset is the statement's own temporary set: dropped once the graph is made

    def cascade(self) -> list[str]:
        r, c = self.recipient, self.commander
        return ["(all ranks, in step: the count histogram, ALLREDUCE; min_count from its valley)",
                "(neighbours in the graph: ALLTOALLV of ids to their owners, ALLTOALLV of answers back)",
                "(links of non-branching paths: ALLTOALLV of degree questions and answers)",
                "(unitigs by pointer jumping: per round, ALLTOALLV of questions to the owners of the ends seen)",
                "(tips and bubbles at the owners of the unitigs: ALLTOALLV; ALLTOALLV of what leaves the graph)",
                "(sequences at the unitigs' owners: ALLTOALLV; names: ALLTOALLV of lengths; paths: ALLTOALLV of "
                "packed paths to the owners of their names)",
                f"ACK {r} -> {c} (contigs, total length, N50, longest, min_count, time per phase)"]


@dataclass(kw_only=True)
class ScaffoldReply(Message, kind="scaffolded", reply=True):
    pairs: int = 0  # pairs read
    placed: int = 0  # pairs whose two ends were placed on contigs
    inside: int = 0  # pairs inside one contig, facing each other: the insert size sample
    insert: int = 0  # its median
    spread: int = 0  # 1.4826 times its median absolute deviation
    links: int = 0  # pairs of contig ends linked by at least min_pairs pairs
    joins: int = 0
    repeats: int = 0  # contigs left out of the joins as repeats (by their depth)
    repeat_ends: int = 0  # ends of other contigs left out so (by the depth near them)
    scaffolds: int = 0
    total: int = 0
    n50: int = 0
    longest: int = 0
    seconds: float = 0.0


@dataclass(kw_only=True)
class ScaffoldOrder(Message, kind="scaffold"):
    """Join the contigs paths/PREFIX-N into scaffolds with read pairs (rayscript.genomics.scaffold)."""

    reply_type = ScaffoldReply
    prefix: str = "contig"
    files: list = field(default_factory=list)  # (path, fmt, codec, size) of the two files, or the interleaved one
    interleaved: bool = False
    min_pairs: int = 5
    into: str = ""  # the scaffolds' prefix when not PREFIX: the contigs PREFIX-N all go, replaced by INTO-N
    replace: bool = False  # with ``into``: INTO-N that exist already are overwritten (else refused)

    def cascade(self) -> list[str]:
        return ["(all ranks: the contigs' k-mers to their owners: ALLTOALLV; each rank's share of the pairs looked "
                "up: ALLTOALLV; the insert sizes: ALLREDUCE; the links to rank 0, the plan from it: ALLTOALLV; "
                "contigs to the owners of their scaffolds' names: ALLTOALLV)",
                f"ACK {self.recipient} -> {self.commander} (insert size, links, joins, scaffolds)"]
