"""Statement nodes of the .ray language (interpreter pattern: one class per statement).

Nodes are frozen, slotted dataclasses.  Their source position (``meta``) is kept out of
equality so that tests can compare a parse with hand-built nodes.  Nodes are plain data:
they pickle, so a block of statements can be handed to another rank to command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import Location

NAMESPACES = ("kmers", "paths", "results")
# a $variable (or ${variable}) inside a key template such as kmers/$x
KEY_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


@dataclass(frozen=True, slots=True)
class Var:
    """A variable reference: ``$x``."""

    name: str

    def __str__(self) -> str:
        return f"${self.name}"


@dataclass(frozen=True, slots=True)
class Word:
    """A bare word used as a value (``canonical=false``)."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Duration:
    seconds: float
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or f"{self.seconds}s"


@dataclass(frozen=True, slots=True)
class Key:
    """``NAMESPACE/ID``.  ``ident`` is an int id, a base string, a name, or a template
    containing ``$var`` parts (resolved when the statement runs)."""

    namespace: str
    ident: int | str

    @property
    def is_template(self) -> bool:
        return isinstance(self.ident, str) and "$" in self.ident

    def __str__(self) -> str:
        return f"{self.namespace}/{self.ident}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Several items at once: ``kmers/*``, ``kmers/ACG*`` (a base prefix) or
    ``kmers where count >= 10``."""

    namespace: str
    prefix: str | None = None  # bases, for kmers/ACG*; "" for kmers/*
    field: str | None = None
    op: str | None = None
    value: object = None

    def __str__(self) -> str:
        if self.field is not None:
            return f"{self.namespace} where {self.field} {self.op} {self.value}"
        return f"{self.namespace}/{self.prefix}*"


Value = int | str | Var | Key | Word | Duration
Rank = int | Var


_META = {"default": None, "compare": False, "repr": False}


@dataclass(frozen=True, slots=True)
class Statement:
    """Base of every statement node."""

    keyword: ClassVar[str] = ""

    @property
    def location(self) -> Location | None:
        return getattr(self, "meta", None)


@dataclass(frozen=True, slots=True)
class Put(Statement):
    keyword: ClassVar[str] = "put"
    key: Key
    rank: Rank
    options: tuple = ()
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Get(Statement):
    keyword: ClassVar[str] = "get"
    key: Key
    rank: Rank | None = None
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Copy(Statement):
    keyword: ClassVar[str] = "copy"
    key: Key
    source: Rank | None
    target: Rank
    mode: str | None = None
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Move(Statement):
    keyword: ClassVar[str] = "move"
    key: Key
    source: Rank | None
    target: Rank
    mode: str | None = None
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Delete(Statement):
    keyword: ClassVar[str] = "delete"
    key: Key
    rank: Rank
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Locate(Statement):
    keyword: ClassVar[str] = "locate"
    key: Key
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class On(Statement):
    keyword: ClassVar[str] = "on"
    rank: Rank
    body: tuple
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Parallel(Statement):
    keyword: ClassVar[str] = "parallel"
    body: tuple
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Let(Statement):
    keyword: ClassVar[str] = "let"
    name: str
    value: Value
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class For(Statement):
    keyword: ClassVar[str] = "for"
    name: str
    start: Value
    stop: Value
    body: tuple
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Ranks(Statement):
    keyword: ClassVar[str] = "ranks"
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Explain(Statement):
    keyword: ClassVar[str] = "explain"
    statement: Statement
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Print(Statement):
    keyword: ClassVar[str] = "print"
    values: tuple = ()
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Help(Statement):
    keyword: ClassVar[str] = "help"
    topic: str | None = None
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Set(Statement):
    keyword: ClassVar[str] = "set"
    name: str
    value: Value
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Load(Statement):
    keyword: ClassVar[str] = "load"
    paths: tuple
    namespace: str
    options: tuple = ()
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Count(Statement):
    keyword: ClassVar[str] = "count"
    namespace: str
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Histogram(Statement):
    keyword: ClassVar[str] = "histogram"
    namespace: str
    path: Value | None = None
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Dump(Statement):
    keyword: ClassVar[str] = "dump"
    namespace: str
    path: Value
    options: tuple = ()
    selector: Selector | None = None
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Query(Statement):
    keyword: ClassVar[str] = "query"
    path: Value
    namespace: str
    output: Value | None = None
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Walk(Statement):
    keyword: ClassVar[str] = "walk"
    start: Key
    into: Key
    both: bool = False
    options: tuple = ()
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Search(Statement):
    keyword: ClassVar[str] = "search"
    start: Key
    into: Key
    options: tuple = ()
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Replicate(Statement):
    keyword: ClassVar[str] = "replicate"
    key: Key
    copies: Value
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Rebalance(Statement):
    keyword: ClassVar[str] = "rebalance"
    namespace: str
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Save(Statement):
    keyword: ClassVar[str] = "save"
    path: Value
    meta: Location | None = field(**_META)


@dataclass(frozen=True, slots=True)
class Restore(Statement):
    keyword: ClassVar[str] = "restore"
    path: Value
    meta: Location | None = field(**_META)


STATEMENT_CLASSES = {cls.keyword: cls for cls in Statement.__subclasses__()}
STATEMENT_WORDS = tuple(sorted(STATEMENT_CLASSES))


def walk(statements):
    """Every statement, depth first, including those inside blocks."""
    for st in statements:
        yield st
        if isinstance(st, (On, Parallel, For)):
            yield from walk(st.body)
        elif isinstance(st, Explain):
            yield from walk((st.statement,))
