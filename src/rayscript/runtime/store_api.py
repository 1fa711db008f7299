"""What a service may do with its rank's store: a narrow, typed interface (a Protocol).

Services (runtime/handlers.py, runtime/bulk.py, genomics/*) reach the store through ``node.store``,
typed as :class:`Store`, and nothing else of the node's: :class:`~rayscript.runtime.shard.Shard` is
the store there is, and tests may give a node another that has these members.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..items import Carriageable
from ..store.kmertable import KmerTable
from ..store.types import Counts, Edges, Ids

Key = tuple[str, Any]  # (namespace, ident)


class Store(Protocol):
    # the k-mer sets held here by namespace (``kmers``, the default set, and ``kmers.NAME``)
    sets: dict[str, KmerTable]
    in_use: dict[str, int]  # sets a collective statement works on now (not to be dropped)
    moving: set[tuple]  # keys of single-item moves in flight from here
    bulk_moving: dict[tuple, Ids]  # (set, commander, request) -> sorted ids of a bulk move in flight from here

    @property
    def kmers(self) -> KmerTable: ...  # the default k-mer set

    def table(self, namespace: str = ...) -> KmerTable: ...

    def made(self, namespace: str = ...) -> KmerTable: ...

    def get(self, namespace: str, ident: Any) -> Carriageable | None: ...

    def packed(self, namespace: str, ident: Any) -> bytes | None: ...

    def has(self, namespace: str, ident: Any) -> bool: ...

    def id_problem(self, item: Carriageable, namespace: str = ...) -> str | None: ...

    def put(self, item: Carriageable, mode: str | None = None, namespace: str = ...) -> None: ...

    def delete(self, namespace: str, ident: Any) -> bool: ...

    def counts(self) -> dict[str, int]: ...

    def nbytes(self) -> int: ...

    def off_owner(self, rank: int, size: int, namespace: str = ...) -> tuple[Ids, Counts, Edges, Any] | None: ...

    def moving_kmers(self, ids: Ids, namespace: str = ...) -> int: ...

    def is_moving(self, key: tuple) -> bool: ...

    def named(self, namespace: str) -> Mapping[Any, Carriageable]: ...

    def named_items(self) -> list[Carriageable]: ...

    def replace_all(self, sets: Mapping[str, KmerTable], named: Iterable[Carriageable]) -> None: ...
