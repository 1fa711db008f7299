"""One rank's shard of the store: its items, by namespace.  K-mers live in numpy
:class:`~rayscript.store.kmertable.KmerTable` s, one per k-mer set (``kmers``, the default set,
and ``kmers.NAME``); named items (paths, results) in dicts."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..items import BY_NAMESPACE, KMERS, Carriageable, Kmer, is_kmers, pack_item
from ..store import encoding
from ..store.encoding import COUNT_MAX
from ..store.kmertable import KmerTable
from ..store.partition import owners
from ..store.types import Counts, Edges, Ids


class ItemExists(Exception):
    pass


class Shard:
    def __init__(self) -> None:
        # the k-mer sets by namespace; the default set is always there (maybe empty)
        self.sets: dict[str, KmerTable] = {KMERS: KmerTable()}
        self.tables: dict[str, dict] = {ns: {} for ns in BY_NAMESPACE if ns != KMERS}
        self.in_use: dict[str, int] = {}  # sets a collective statement works on now (not to be dropped)
        # what moves out of this shard right now: a key under a move in flight is taken once
        self.moving: set[tuple] = set()  # keys of single-item moves
        self.bulk_moving: dict[tuple, Ids] = {}  # (set, commander, request) -> sorted k-mer ids
        # buckets found to hold only k-mers owned here, by the id array found so (a bucket changed
        # since has another array: its ids are hashed again)
        self._owned: dict[tuple[str, int], weakref.ref] = {}

    @property
    def kmers(self) -> KmerTable:
        """The default k-mer set."""
        return self.sets[KMERS]

    @kmers.setter
    def kmers(self, table: KmerTable) -> None:
        self.sets[KMERS] = table

    def table(self, namespace: str = KMERS) -> KmerTable:
        """The k-mer set ``namespace`` (an empty table, not kept, where this rank holds none of it)."""
        found = self.sets.get(namespace)
        return found if found is not None else KmerTable()

    def made(self, namespace: str = KMERS) -> KmerTable:
        """The k-mer set ``namespace``, made empty here if this rank holds none of it yet."""
        found = self.sets.get(namespace)
        if found is None:
            found = self.sets[namespace] = KmerTable()
        return found

    def off_owner(self, rank: int, size: int, namespace: str = KMERS) -> tuple[Ids, Counts, Edges, Any] | None:
        """(ids, counts, edges, owners) of the k-mers of a set held here that another rank owns
        (copies, replicas, moves); None if there are none."""
        parts = []
        if size > 1:
            table, owned = self.table(namespace), self._owned
            for b, ids, counts, edges in table.selection(("all",)):
                held = owned.get((namespace, b))
                if held is not None and held() is table.ids[b]:
                    continue  # this very array was found to hold only k-mers owned here
                own = owners(ids, size)
                mask = own != rank
                if mask.any():
                    parts.append((ids[mask], counts[mask], edges[mask], own[mask]))
                else:
                    owned[(namespace, b)] = weakref.ref(table.ids[b])
        if not parts:
            return None
        ids, counts, edges, own = (np.concatenate(x) for x in zip(*parts))
        return ids, counts, edges, own

    def moving_kmers(self, ids: Ids, namespace: str = KMERS) -> int:
        """How many of the k-mer ``ids`` of a set are under a move in flight from this shard."""
        if not self.moving and not self.bulk_moving:
            return 0
        table = self.table(namespace)
        ids = encoding.exact(table.as_ids(ids))
        busy = np.zeros(len(ids), bool)
        single = encoding.ids_array([i for ns, i in self.moving if ns == namespace], table.k)
        bulk = [out for (ns, *_), out in self.bulk_moving.items() if ns == namespace]
        for out in (single, *bulk):
            if len(out):
                busy |= np.isin(ids, encoding.exact(out))
        return int(busy.sum())

    def is_moving(self, key: tuple) -> bool:
        if key in self.moving:
            return True
        if not is_kmers(key[0]) or not self.bulk_moving:
            return False
        return self.moving_kmers(encoding.ids_array([key[1]], self.table(key[0]).k), key[0]) > 0

    def get(self, namespace: str, ident: Any) -> Carriageable | None:
        if is_kmers(namespace):
            table = self.table(namespace)
            found = table.get(ident)
            return None if found is None else Kmer(ident, found[0], found[1], table.k or 0)
        return self.tables[namespace].get(ident)

    def packed(self, namespace: str, ident: Any) -> bytes | None:
        """The item framed for the wire (as :func:`~rayscript.items.pack_item` does), or None."""
        if is_kmers(namespace):
            table = self.table(namespace)
            found = table.get(ident)
            return None if found is None else Kmer.packed(ident, found[0], found[1], table.k or 0)
        item = self.tables[namespace].get(ident)
        return None if item is None else pack_item(item)

    def has(self, namespace: str, ident: Any) -> bool:
        if is_kmers(namespace):
            return self.table(namespace).get(ident) is not None
        return ident in self.tables[namespace]

    def id_problem(self, item: Carriageable, namespace: str = KMERS) -> str | None:
        """Why a k-mer given from outside (``put``) cannot be in a set: an id of another k or,
        in a canonical set, not canonical.  Items copied between shards came from the store."""
        table = self.table(namespace)
        if not isinstance(item, Kmer) or not table.k:
            return None
        where = "the store" if namespace == KMERS else namespace
        if item.k and item.k != table.k:  # given as bases: say so in bases
            return (f"{where} holds k={table.k} k-mers; {namespace}/{encoding.decode(item.id, item.k)} has "
                    f"{item.k} bases")
        problem = encoding.id_problem(item.id, table.k, table.canonical)
        if problem and namespace != KMERS:
            problem = problem.replace("kmers/", f"{namespace}/").replace("this store", namespace)
        return problem

    def put(self, item: Carriageable, mode: str | None = None, namespace: str = KMERS) -> None:
        """Store ``item`` (a k-mer: into the set ``namespace``).  If the key is held already:
        ``replace`` overwrites, ``merge`` combines (k-mers: counts added, edges united), otherwise
        :class:`ItemExists`."""
        if isinstance(item, Kmer):
            table = self.table(namespace)
            if item.k and table.k and item.k != table.k:
                where = "this store" if namespace == KMERS else namespace
                raise ValueError(f"{where} holds k={table.k} k-mers, not k={item.k}")
            table = self.made(namespace)
            if mode != "replace":
                old = table.get(item.id)
                if old is not None:
                    if mode != "merge":
                        raise ItemExists(item.id)
                    item = Kmer(item.id, old[0], old[1], table.k or 0).merge(item)
            if item.k and not table.k:
                table.set_k(item.k)
            table.set(item.id, min(item.count, COUNT_MAX), item.edges)
            return
        named = self.tables[item.namespace]
        old = named.get(item.ident)
        if old is not None and mode != "replace":
            if mode != "merge":
                raise ItemExists(item.ident)
            item = old.merge(item)
        named[item.ident] = item

    def delete(self, namespace: str, ident: Any) -> bool:
        if is_kmers(namespace):
            return namespace in self.sets and self.sets[namespace].remove(ident)
        return self.tables[namespace].pop(ident, None) is not None

    def counts(self) -> dict[str, int]:
        """Items held, by namespace: the default set and the other namespaces, then every named set."""
        out = {KMERS: len(self.kmers)}
        out.update({ns: len(t) for ns, t in self.tables.items()})
        ordered = {ns: out[ns] for ns in BY_NAMESPACE}
        ordered.update({ns: len(t) for ns, t in sorted(self.sets.items()) if ns != KMERS})
        return ordered

    def nbytes(self) -> int:
        return (sum(t.nbytes() for t in self.sets.values())
                + sum(item.nbytes for t in self.tables.values() for item in t.values()))

    def named(self, namespace: str) -> Mapping[Any, Carriageable]:
        """The named items of ``namespace`` held here, by ident (to read: change them with put, delete)."""
        return self.tables[namespace]

    def named_items(self) -> list[Carriageable]:
        """Every named item held here (paths, results)."""
        return [item for table in self.tables.values() for item in table.values()]

    def replace_all(self, sets: Mapping[str, KmerTable], named: Iterable[Carriageable]) -> None:
        """Hold exactly the k-mer sets ``sets`` (by namespace; the default set is made empty if
        absent) and the items ``named`` from now on (a restore's commit)."""
        self.sets = {KMERS: KmerTable(), **sets}
        self._owned.clear()
        for table in self.tables.values():
            table.clear()
        for item in named:
            self.tables[item.namespace][item.ident] = item
