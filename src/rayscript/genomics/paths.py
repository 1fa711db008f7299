"""Paths' service, rank side: the names and lengths of the paths a rank holds (``count paths``) and
their FASTA records, written at the offsets the commander computed (``dump paths``)."""

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
        self.node.reply(msg, PathLengthsReply(names=[p.name for p in paths], lengths=[len(p.sequence) for p in paths],
                                              sizes=[fasta_size(p) for p in paths] if msg.fasta else []))

    def on_write(self, msg: PathWriteOrder) -> None:
        table = self._paths()
        try:
            fd = os.open(msg.path, os.O_WRONLY)
        except OSError as exc:
            raise RayScriptError(f"cannot write {msg.path}: {exc.strerror}") from None
        try:
            for name, offset in msg.places:
                os.pwrite(fd, fasta_record(table[name]), offset)
        finally:
            os.close(fd)
        self.node.reply(msg, PathLengthsReply(names=[n for n, _ in msg.places]))
