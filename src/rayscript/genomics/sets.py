"""K-mer sets, rank side: list, combine, compare, matrix, rename and drop.

Sets of one k share one partition: a k-mer's owner rank and its bucket in a table are functions of
the k-mer alone.  So ``combine``, ``compare`` and ``matrix`` are, on every rank, bucket-by-bucket
merges of sorted arrays the rank already holds (:mod:`rayscript.store.setops`); no k-mer travels.
Only k-mers held off their owner (after a copy, a move or a replica) are first sent to their owners,
and only for the sets that have such k-mers: each k-mer then counts once, its owner's copy, else the
lowest rank's (the view ``count`` and ``dump`` take).  The three are collective: every rank takes
part at once, and a result is installed only once every rank has computed its part.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import RayScriptError
from ..protocol.base import Message
from ..protocol.core import Ack
from ..protocol.sets import (
    CombineOrder,
    CombineReply,
    CompareOrder,
    CompareReply,
    DropOrder,
    MatrixOrder,
    MatrixReply,
    RenameOrder,
    SetsOrder,
    SetsReply,
)
from ..runtime.collective import Exchange
from ..store import encoding, setops
from ..store.kmertable import NBUCKETS, KmerTable
from ..store.types import Ids
from .kmers import peak_rss
from .owners import owner_copies

if TYPE_CHECKING:
    from ..runtime.node import Node

# --- rank side ----------------------------------------------------------------------


class SetService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        handlers: dict[type[Message], Callable[[Any], None]] = {
            SetsOrder: self.on_sets, CombineOrder: self.on_combine, CompareOrder: self.on_compare,
            MatrixOrder: self.on_matrix, RenameOrder: self.on_rename, DropOrder: self.on_drop}
        for cls, fn in handlers.items():
            node.register(cls, fn)

    # --- listing, renaming, dropping -------------------------------------------------
    def on_sets(self, msg: SetsOrder) -> None:
        store = self.store
        out = {}
        for name, t in store.sets.items():
            out[name] = (t.k or 0, t.canonical, len(t), t.total(), t.nbytes(), self.busy(name))
        self.node.reply(msg, SetsReply(sets=out))

    def busy(self, name: str) -> bool:
        """Whether a statement in flight uses the set here (a bulk copy or move, a collective)."""
        store = self.store
        t = store.sets.get(name)
        return bool(store.in_use.get(name) or (t is not None and t.lent)
                    or any(key[0] == name for key in store.bulk_moving)
                    or any(ns == name for ns, _ in store.moving))

    def _take(self, msg: RenameOrder | DropOrder, name: str, what: str) -> KmerTable | bool | None:
        """Take the set ``name`` out of the store (its table, or None where this rank holds none);
        False, and the commander told, when a statement in flight uses it here.  The default set
        is always there: taking it leaves an empty one."""
        store = self.store
        if self.busy(name):
            self.node.fail_order(msg, f"{name} is in use by a statement running on rank {self.node.rank}; {what}")
            return False
        table = store.sets.pop(name, None)
        if name == "kmers":
            store.sets["kmers"] = KmerTable()
        return table

    def on_rename(self, msg: RenameOrder) -> None:
        table = self._take(msg, msg.old, "nothing was renamed")
        if table is False:
            return
        if isinstance(table, KmerTable):
            self.store.sets[msg.new] = table
        self.node.reply(msg, Ack())

    def on_drop(self, msg: DropOrder) -> None:
        if self._take(msg, msg.name, "it was not dropped") is not False:
            self.node.reply(msg, Ack())

    # --- the collective operations ----------------------------------------------------
    def _views(self, names: list[str]) -> tuple[dict[str, KmerTable], int]:
        """Each set as this rank's part of it counts: its own table, or, for a set some rank holds
        k-mers of off their owner, a table of the k-mers this rank owns (its own copy first, else
        the lowest rank's).  Also how many k-mers this rank sent."""
        store, coll = self.store, self.node.collective
        rank, size = coll.rank, coll.size
        foreign = {name: store.off_owner(rank, size, name) for name in names}
        anywhere = coll.allreduce(np.array([int(foreign[n] is not None) for n in names], np.int64))
        views, sent = {}, 0
        for name, flag in zip(names, anywhere):
            table = store.table(name)
            if not flag:
                views[name] = table
                continue
            views[name], n = self._owner_table(table, foreign[name])
            sent += n
        return views, sent

    def _owner_table(self, table: KmerTable, foreign: tuple | None) -> tuple[KmerTable, int]:
        """A table of the k-mers of a set this rank owns, each once (see assembly.owner_copies), and
        how many k-mers this rank sent to their owners."""
        ids, counts, edges = owner_copies(Exchange(self.node.collective), foreign, *table.extract(("all",)))
        out = KmerTable(table.k)
        out.canonical = table.canonical
        if encoding.two_words(ids):  # numeric order: the high words, then the low
            hi, lo = encoding.words(ids)
            order = np.lexsort((lo, hi))
        else:
            order = np.argsort(ids, kind="stable")
        out.add_counted(ids[order], counts[order].astype(np.uint64), edges[order])
        return out, 0 if foreign is None else len(foreign[0])

    @staticmethod
    def _bucket(table: KmerTable, b: int) -> setops.Triple:
        return table.ids[b], table.counts[b], table.edges[b]

    def on_combine(self, msg: CombineOrder) -> None:
        with self.node.collective_order(msg, "combine"), self._using(setops.operands(msg.expr)):
            self._combine(msg)

    def _combine(self, msg: CombineOrder) -> None:
        coll = self.node.collective
        names = setops.operands(msg.expr)
        views, sent = self._views(names)
        for t in views.values():
            t._fold()
        out = KmerTable(msg.k)
        out.canonical = msg.canonical
        for b in range(NBUCKETS):
            self.node.show_progress(b, NBUCKETS, "combining (rank 0's part)", "buckets")
            leaves = {name: self._bucket(views[name], b) for name in names}
            if not any(len(leaf[0]) for leaf in leaves.values()):
                continue
            keys, counts, edges = setops.limit(setops.evaluate(msg.expr, leaves, msg.mode), msg.low, msg.high)
            out.ids[b], out.counts[b], out.edges[b] = keys.copy(), counts.astype(np.uint32), edges.copy()
        # every rank computed its part: only now does the target change, everywhere
        coll.allreduce(np.zeros(1, np.int64))
        self.store.sets[msg.target] = out
        self.node.reply(msg, CombineReply(distinct=len(out), total=out.total(), nbytes=out.nbytes(), sent=sent,
                                          peak_rss=peak_rss()))

    def on_compare(self, msg: CompareOrder) -> None:
        with self.node.collective_order(msg, "compare"), self._using(msg.sets):
            names = list(msg.sets)
            views, _ = self._views(names)
            n = len(names)
            distinct = np.zeros(n, np.int64)
            shared = np.zeros(n * (n - 1) // 2, np.int64)
            for t in views.values():
                t._fold()
            for b in range(NBUCKETS):
                self.node.show_progress(b, NBUCKETS, "comparing (rank 0's part)", "buckets")
                keys = []
                for i, name in enumerate(names):
                    t = views[name]
                    k_b = t.ids[b][t.counts[b] >= msg.low] if msg.low > 1 else t.ids[b]
                    keys.append(k_b)
                    distinct[i] += len(k_b)
                p = 0
                for i in range(n):
                    for j in range(i + 1, n):
                        if len(keys[i]) and len(keys[j]):
                            shared[p] += _shared(keys[i], keys[j])
                        p += 1
            totals = self.node.collective.allreduce(np.concatenate((distinct, shared)))
            self.node.reply(msg, CompareReply(distinct=totals[:n].tolist(), shared=totals[n:].tolist()))

    def on_matrix(self, msg: MatrixOrder) -> None:
        with self.node.collective_order(msg, "matrix"), self._using(msg.sets):
            self._matrix(msg)

    def _matrix(self, msg: MatrixOrder) -> None:
        from .kmers import format_table

        coll = self.node.collective
        names = list(msg.sets)
        views, _ = self._views(names)
        for t in views.values():
            t._fold()
        k = msg.k
        parts: list[bytes] = []
        rows = 0
        pairs = np.zeros((len(names), len(names)), np.int64)
        for b in range(NBUCKETS):
            self.node.show_progress(b, NBUCKETS, "matrix (rank 0's part)", "buckets")
            triples = [self._bucket(views[name], b) for name in names]
            if not any(len(t[0]) for t in triples):
                continue
            keys, columns = _matrix_bucket(triples, msg.low)
            if msg.min_sets > 1 or msg.low > 1:
                present = sum((c >= msg.low).astype(np.int64) for c in columns)
                keep = present >= msg.min_sets
                keys, columns = keys[keep], [c[keep] for c in columns]
            if not len(keys):
                continue
            rows += len(keys)
            if msg.copresence:
                present = np.stack([c >= msg.low for c in columns]).astype(np.float64)
                pairs += np.rint(present @ present.T).astype(np.int64)
            if not msg.path:
                continue
            if msg.presence:
                columns = [(c >= msg.low).astype(np.uint32) for c in columns]
            ids = views[names[0]].ids_of(keys, b) if encoding.is_wide(k) else keys
            parts.append(format_table(ids, k, columns))
        if not msg.path:  # the pairs only: no file
            counts = coll.allreduce(np.concatenate(([rows], pairs.ravel())).astype(np.int64))
            self.node.reply(msg, MatrixReply(rows=int(counts[0]), copresence=counts[1:].tolist()))
            return
        copresence = coll.allreduce(pairs.ravel()).tolist() if msg.copresence else []
        body = b"".join(parts)
        head = msg.header.encode() if coll.rank == 0 else b""
        sizes = coll.allreduce(np.bincount([coll.rank], weights=[len(body)], minlength=coll.size).astype(np.int64))
        counts = coll.allreduce(np.array([rows], np.int64))
        offset = len(msg.header.encode()) + int(sizes[:coll.rank].sum())
        try:
            fd = os.open(msg.path, os.O_WRONLY)
        except OSError as exc:
            raise RayScriptError(f"cannot write {msg.path}: {exc.strerror}") from None
        try:
            if head:
                os.pwrite(fd, head, 0)
            if body:
                os.pwrite(fd, body, offset)
        finally:
            os.close(fd)
        coll.allreduce(np.zeros(1, np.int64))  # every rank has written
        self.node.reply(msg, MatrixReply(rows=int(counts[0]), nbytes=len(msg.header.encode()) + int(sizes.sum()),
                                         copresence=copresence))

    def _using(self, names: list[str]) -> Any:
        store = self.store

        class _InUse:
            def __enter__(self) -> None:
                for n in names:
                    store.in_use[n] = store.in_use.get(n, 0) + 1

            def __exit__(self, *exc: object) -> None:
                for n in names:
                    store.in_use[n] -= 1
                    if not store.in_use[n]:
                        del store.in_use[n]

        return _InUse()


def principal_components(gram: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The samples' coordinates on the first two principal components, and the share of the variance
    each explains, from their Gram matrix (``gram[i, j]``: the k-mers present in both i and j, the
    dot product of their presence vectors).  Centring every k-mer's presence over the samples is
    ``H gram H`` (H = I - 1/n); its eigenvectors scaled by the roots of their eigenvalues are the
    samples' principal coordinates, as a PCA of the n x k-mers presence table gives them."""
    n = len(gram)
    centre = np.eye(n) - 1.0 / n
    inner = centre @ gram @ centre
    values, vectors = np.linalg.eigh((inner + inner.T) / 2)
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    vectors = vectors[:, order]
    coords = np.zeros((n, 2))
    m = min(2, n)
    coords[:, :m] = vectors[:, :m] * np.sqrt(values[:m])
    for j in range(m):  # a sign of one's own: the largest coordinate positive
        if coords[np.argmax(np.abs(coords[:, j])), j] < 0:
            coords[:, j] = -coords[:, j]
    explained = np.zeros(2)
    if values.sum() > 0:
        explained[:m] = values[:m] / values.sum()
    return coords, explained


def _shared(a: Ids, b: Ids) -> int:
    """How many keys two sorted unique key arrays share."""
    if len(a) > len(b):
        a, b = b, a
    pos = np.searchsorted(b, a)
    pos = np.minimum(pos, len(b) - 1)
    return int((b[pos] == a).sum())


def _matrix_bucket(triples: list[setops.Triple], low: int) -> tuple[Any, list[Any]]:
    """The union of the buckets' keys (sorted), and each set's count of each (0 where absent)."""
    keys = triples[0][0]
    for t in triples[1:]:  # merged by binary search of one sorted array in the other, never sorted again
        if len(t[0]):
            keys = setops.union_keys(keys, t[0]) if len(keys) else t[0]
    columns = []
    for t in triples:
        col = np.zeros(len(keys), np.uint32)
        if len(t[0]):
            col[np.searchsorted(keys, t[0])] = t[1]
        columns.append(col)
    return keys, columns
