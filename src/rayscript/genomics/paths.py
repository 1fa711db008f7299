"""Paths' service, rank side: the names and lengths of the paths a rank holds (``count paths``) and
their records, written at the offsets the commander computed (``dump paths``): FASTA, FASTA with
BCALM2's unitig headers, or the segments of a GFA1 graph.

The links of GFA and of BCALM2's headers join two paths where the last k - 1 bases of one (read on
either strand) are the first k - 1 bases of the other (on either strand): in a de Bruijn graph that is
exactly where one unitig's end k-mer is followed by the other's first.  The commander finds them from
each path's two ends (:func:`overlap_links`); the ranks never send whole sequences to it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import RayScriptError
from ..items import GraphPath
from ..protocol.paths import PathLengthsOrder, PathLengthsReply, PathWriteOrder

if TYPE_CHECKING:
    from ..runtime.node import Node


def n50(lengths: np.ndarray) -> int:
    if not len(lengths):
        return 0
    desc = np.sort(lengths)[::-1]
    half = desc.sum() / 2
    return int(desc[np.searchsorted(np.cumsum(desc), half)])


FASTA_WIDTH = 80


def _fasta_head(path: GraphPath) -> str:
    return f">{path.name} length={len(path.sequence)} mean_count={path.coverage:.1f}"


def fasta_record(path: GraphPath) -> bytes:
    seq = path.sequence
    lines = [seq[i:i + FASTA_WIDTH] for i in range(0, len(seq), FASTA_WIDTH)] or [""]
    return ("\n".join([_fasta_head(path), *lines]) + "\n").encode()


def fasta_size(path: GraphPath) -> int:
    """len(fasta_record(path)), without writing the record out."""
    n = len(path.sequence)
    return len(_fasta_head(path).encode()) + 1 + n + max(1, -(-n // FASTA_WIDTH))


_RC = str.maketrans("ACGTNacgtn", "TGCANtgcan")
FLIP = {"+": "-", "-": "+"}
# one end of a link: (index of the path, orientation "+" or "-")
End = tuple[int, str]
Link = tuple[int, str, int, str]  # from (path, orientation) to (path, orientation)


def revcomp(seq: str) -> str:
    return seq.translate(_RC)[::-1]


def kmer_total(path: GraphPath) -> int:
    """The sum of the counts of a path's k-mers (GFA's KC, BCALM2's KC): its mean count times its k-mers."""
    return round(path.coverage * max(len(path.sequence) - path.k + 1, 0))


def gfa_segment(path: GraphPath) -> bytes:
    """The S line of a path: name, sequence, length, k-mer count total and mean count (depth)."""
    return (f"S\t{path.name}\t{path.sequence or '*'}\tLN:i:{len(path.sequence)}\tKC:i:{kmer_total(path)}"
            f"\tdp:f:{path.coverage:.2f}\n").encode()


def bcalm_head(path: GraphPath) -> str:
    """A BCALM2 unitig header without its links: '>NAME LN:i:.. KC:i:.. km:f:..'."""
    return f">{path.name} LN:i:{len(path.sequence)} KC:i:{kmer_total(path)} km:f:{path.coverage:.1f}"


def bcalm_record(path: GraphPath, links: str) -> bytes:
    """A unitig in BCALM2's FASTA convention: the header, its links (' L:+:NAME:-' ...), the
    sequence on one line."""
    return f"{bcalm_head(path)}{links}\n{path.sequence}\n".encode()


def record_size(path: GraphPath, fmt: str) -> int:
    """The bytes of a path's record in ``fmt`` (fasta, gfa; bcalm without its links)."""
    if fmt == "gfa":
        return len(gfa_segment(path))
    if fmt == "bcalm":
        return len(bcalm_head(path).encode()) + len(path.sequence) + 2
    return fasta_size(path)


def path_ends(path: GraphPath) -> tuple[str, str, int]:
    """What the commander needs to link a path: its first and last k - 1 bases, and k."""
    j = max(path.k - 1, 0)
    seq = path.sequence
    return (seq[:j], seq[len(seq) - j:], path.k) if j and len(seq) >= j else ("", "", path.k)


def overlap_links(ends: list[tuple[str, str]]) -> list[Link]:
    """Every link between the paths whose ends are ``ends[i] = (first k-1 bases, last k-1 bases)``:
    (i, o, j, p) where path i read in orientation o ends with the k - 1 bases path j read in
    orientation p begins with.  Each link is listed from both sides (i, o, j, p) and (j, -p, i, -o)
    (once when the two are the same), in order."""
    starts: dict[str, list[End]] = {}
    for i, (first, last) in enumerate(ends):
        if first:
            starts.setdefault(first, []).append((i, "+"))
            starts.setdefault(revcomp(last), []).append((i, "-"))
    out: set[Link] = set()
    for i, (first, last) in enumerate(ends):
        if not first:
            continue
        for o, tail in (("+", last), ("-", revcomp(first))):
            for j, p in starts.get(tail, ()):
                out.add((i, o, j, p))
    return sorted(out)


def gfa_links(links: list[Link], names: list[str], k: int) -> str:
    """The L lines of ``links`` (each written once: of a link and its mirror, the smaller)."""
    lines = [f"L\t{names[i]}\t{o}\t{names[j]}\t{p}\t{k - 1}M\n" for i, o, j, p in links
             if (i, o, j, p) <= (j, FLIP[p], i, FLIP[o])]
    return "".join(lines)


def bcalm_links(links: list[Link], names: list[str]) -> list[str]:
    """Each path's link fields in BCALM2's header convention: ' L:+:NAME:-' for a link leaving the
    path read forward (its end) into NAME read reverse, ' L:-:...' for one leaving it read reverse."""
    fields = [""] * len(names)
    for i, o, j, p in links:
        fields[i] += f" L:{o}:{names[j]}:{p}"
    return fields


def selected_paths(table: Mapping[Any, GraphPath], selector: tuple) -> list[GraphPath]:
    kind = selector[0]
    if kind == "name":
        item = table.get(selector[1])
        return [item] if item is not None else []
    prefix = selector[1] if kind == "prefix" else ""
    return [p for name, p in table.items() if str(name).startswith(prefix)]


class PathService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        node.register(PathLengthsOrder, self.on_lengths)
        node.register(PathWriteOrder, self.on_write)

    def _paths(self) -> Mapping[Any, GraphPath]:
        return cast("Mapping[Any, GraphPath]", self.store.named("paths"))  # the namespace of GraphPath items

    def on_lengths(self, msg: PathLengthsOrder) -> None:
        paths = selected_paths(self._paths(), msg.selector)
        fmt = msg.fmt
        self.node.reply(msg, PathLengthsReply(names=[p.name for p in paths], lengths=[len(p.sequence) for p in paths],
                                              sizes=[record_size(p, fmt) for p in paths] if fmt else [],
                                              ends=[path_ends(p) for p in paths] if fmt in ("gfa", "bcalm") else []))

    def on_write(self, msg: PathWriteOrder) -> None:
        table = self._paths()
        try:
            fd = os.open(msg.path, os.O_WRONLY)
        except OSError as exc:
            raise RayScriptError(f"cannot write {msg.path}: {exc.strerror}") from None
        try:
            for name, offset, links in msg.places:
                path = table[name]
                record = (gfa_segment(path) if msg.fmt == "gfa" else bcalm_record(path, links) if msg.fmt == "bcalm"
                          else fasta_record(path))
                os.pwrite(fd, record, offset)
        finally:
            os.close(fd)
        self.node.reply(msg, PathLengthsReply(names=[n for n, _o, _l in msg.places]))
