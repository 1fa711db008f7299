"""The values of the .ray language and the base of every statement node.

A statement is one class, declared once (see docs/architecture.md, "Adding a statement"):
subclass :class:`Statement` with ``keyword=`` and it becomes a frozen dataclass registered under
that keyword.  The class holds everything about the statement: its fields (the AST node), how it
is built from the parse tree (:meth:`Statement.build`), its static checks (:meth:`Statement.check`,
on top of the generic walk over every field), its help entry (``syntax``, ``summary``,
``example``) and what it does (:meth:`Statement.run`, a generator over the commander API of
:mod:`rayscript.interpreter`; ``explain`` runs that same generator without sending changes).

Nodes are plain data: their source position (``meta``) is kept out of equality so tests compare
a parse with hand-built nodes, and they pickle, so a block of statements can be handed to another
rank to command.  This module imports nothing of the runtime.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import Location, ScriptError
from ..items import BY_NAMESPACE

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - type checkers only
    def dataclass_transform(**_kw):
        return lambda cls: cls

if TYPE_CHECKING:
    from ..results import Result
    from .checker import CheckContext
    from .parser import Build


def namespaces() -> tuple[str, ...]:
    """The namespaces of keys: one per registered item type (rayscript.items)."""
    return tuple(BY_NAMESPACE)


# a $variable (or ${variable}) inside a key template such as kmers/$x or kmers/${x}0
KEY_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def key_variables(template: str) -> list[str]:
    """The variable names a key template refers to, in order."""
    return [a or b for a, b in KEY_VARIABLE.findall(template)]


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
Options = tuple[tuple[str, Value], ...]

# field metadata: this field names a rank (checked against the cluster size wherever it appears)
RANK: dict[str, Any] = {"rank": True}


def rank_field(default: Any = ...) -> Any:
    """A dataclass field that holds a rank (int or $variable)."""
    if default is ...:
        return field(metadata=RANK)
    return field(default=default, metadata=RANK)


@dataclass_transform(frozen_default=True, field_specifiers=(field, rank_field))
@dataclass(frozen=True)
class Statement:
    """Base of every statement node.  Subclasses are declared with ``keyword=...`` and become
    frozen dataclasses registered in :attr:`registry` (``registry=`` names another dict, for a
    language of one's own or a test)."""

    keyword: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Statement]]] = {}
    # help entry
    syntax: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    example: ClassVar[str] = ""
    # options (name=value) the statement accepts, with what each takes
    options_allowed: ClassVar[dict[str, str]] = {}
    # involves every rank at once (cannot run inside 'parallel')
    collective: ClassVar[bool] = False

    meta: Location | None = field(default=None, compare=False, repr=False, kw_only=True)

    def __init_subclass__(cls, keyword: str = "", registry: dict[str, type[Statement]] | None = None,
                          **kw: Any) -> None:
        super().__init_subclass__(**kw)
        dataclass(frozen=True)(cls)
        if keyword:
            cls.keyword = keyword
            (cls.registry if registry is None else registry)[keyword] = cls

    @property
    def location(self) -> Location | None:
        return self.meta

    # --- the protocol -----------------------------------------------------------------
    @classmethod
    def build(cls, b: Build, children: list) -> Statement:
        """The node from the transformed children of its grammar rule (default: in field order,
        options gathered into an ``options`` field)."""
        return cls(*b.positional(children), **b.options_arg(cls, children), meta=b.location)

    def check(self, ctx: CheckContext) -> None:
        """Static checks beyond the generic ones (every field's variables and ranks); by default,
        the nested statements are checked in a copy of the scope."""
        ctx.block(list(self.children()))

    def run(self, cmd: Any) -> Generator[Any, Any, list[Result]]:
        """Execute on the commander: a generator that yields the futures of its orders (sent
        through ``cmd``, :class:`rayscript.interpreter.Command`) and returns its results."""
        raise ScriptError(f"'{self.keyword}' cannot be run")
        yield  # pragma: no cover

    def children(self) -> Iterator[Statement]:
        """The statements nested in this one (blocks), in order."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Statement):
                yield v
            elif isinstance(v, tuple):
                yield from (s for s in v if isinstance(s, Statement))


def walk(statements) -> Iterator[Statement]:
    """Every statement, depth first, including those inside blocks."""
    stack = list(reversed(list(statements)))
    while stack:
        st = stack.pop()
        yield st
        stack.extend(reversed(list(st.children())))


def values(node: Any) -> Iterator[tuple[Any, bool]]:
    """Every value in a node's fields, with whether it stands for a rank: walks dataclasses and
    tuples generically, not into nested statements (see :func:`walk`)."""
    stack: list[tuple[Any, bool]] = [(getattr(node, f.name), bool(f.metadata.get("rank")))
                                      for f in reversed(fields(node)) if f.name != "meta"]
    while stack:  # depth first, in field order
        v, is_rank = stack.pop()
        if isinstance(v, Statement):
            continue
        yield v, is_rank
        if isinstance(v, tuple):
            stack.extend((x, is_rank) for x in reversed(v))
        elif is_dataclass(v) and not isinstance(v, type):
            stack.extend((getattr(v, f.name), False) for f in reversed(fields(v)))

