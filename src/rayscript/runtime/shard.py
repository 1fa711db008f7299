"""One rank's shard of the store: its items, by namespace.  K-mers live in a numpy
:class:`~rayscript.store.kmertable.KmerTable`; named items (paths, results) in dicts."""

from __future__ import annotations

from ..items import BY_NAMESPACE, Carriageable, Kmer, pack_item
from ..store.encoding import COUNT_MAX
from ..store.kmertable import KmerTable


class ItemExists(Exception):
    pass


class Shard:
    def __init__(self):
        self.kmers = KmerTable()
        self.tables: dict[str, dict] = {ns: {} for ns in BY_NAMESPACE if ns != "kmers"}

    def get(self, namespace: str, ident) -> Carriageable | None:
        if namespace == "kmers":
            found = self.kmers.get(ident)
            return None if found is None else Kmer(ident, found[0], found[1], self.kmers.k or 0)
        return self.tables[namespace].get(ident)

    def packed(self, namespace: str, ident) -> bytes | None:
        """The item framed for the wire (as :func:`~rayscript.items.pack_item` does), or None."""
        if namespace == "kmers":
            found = self.kmers.get(ident)
            return None if found is None else Kmer.packed(ident, found[0], found[1], self.kmers.k or 0)
        item = self.tables[namespace].get(ident)
        return None if item is None else pack_item(item)

    def has(self, namespace: str, ident) -> bool:
        if namespace == "kmers":
            return self.kmers.get(ident) is not None
        return ident in self.tables[namespace]

    def put(self, item: Carriageable, mode: str | None = None) -> None:
        """Store ``item``.  If the key is held already: ``replace`` overwrites, ``merge``
        combines (k-mers: counts added, edges united), otherwise :class:`ItemExists`."""
        if isinstance(item, Kmer):
            table = self.kmers
            if item.k and table.k and item.k != table.k:
                raise ValueError(f"this store holds k={table.k} k-mers, not k={item.k}")
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

    def delete(self, namespace: str, ident) -> bool:
        if namespace == "kmers":
            return self.kmers.remove(ident)
        return self.tables[namespace].pop(ident, None) is not None

    def counts(self) -> dict[str, int]:
        out = {"kmers": len(self.kmers)}
        out.update({ns: len(t) for ns, t in self.tables.items()})
        return {ns: out[ns] for ns in BY_NAMESPACE}

    def nbytes(self) -> int:
        return self.kmers.nbytes() + sum(item.nbytes for t in self.tables.values() for item in t.values())
