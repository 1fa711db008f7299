"""One rank's shard of the store: its items, by namespace."""

from __future__ import annotations

from ..items import BY_NAMESPACE, Carriageable


class ItemExists(Exception):
    pass


class Shard:
    def __init__(self):
        self.tables: dict[str, dict] = {ns: {} for ns in BY_NAMESPACE}

    def get(self, namespace: str, ident) -> Carriageable | None:
        return self.tables[namespace].get(ident)

    def has(self, namespace: str, ident) -> bool:
        return ident in self.tables[namespace]

    def put(self, item: Carriageable, mode: str | None = None) -> None:
        """Store ``item``.  If the key is held already: ``replace`` overwrites, ``merge``
        combines (k-mers: counts added, edges united), otherwise :class:`ItemExists`."""
        table = self.tables[item.namespace]
        old = table.get(item.ident)
        if old is not None:
            if mode == "replace":
                pass
            elif mode == "merge":
                item = old.merge(item)
            else:
                raise ItemExists(item.ident)
        table[item.ident] = item

    def delete(self, namespace: str, ident) -> bool:
        return self.tables[namespace].pop(ident, None) is not None

    def counts(self) -> dict[str, int]:
        return {ns: len(t) for ns, t in self.tables.items()}

    def nbytes(self) -> int:
        return sum(item.nbytes for t in self.tables.values() for item in t.values())
