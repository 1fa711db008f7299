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
rank to command.  This module imports nothing of the runtime, nor of the parser and the checker:
what ``build`` and ``check`` get from them is declared here (:class:`Build`, :class:`CheckContext`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, NoReturn, Protocol, TypeVar

from ..errors import Location, ScriptError
from ..items import BY_NAMESPACE
from ..results import Result

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - type checkers only
    _T = TypeVar("_T")

    def dataclass_transform(**_kw: Any) -> Callable[[_T], _T]:
        return lambda cls: cls


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


def literal(value: Value) -> tuple[Any, str]:
    """A value written in the script as it is when the statement runs, and as it was written (for
    messages); a $variable (or a key with one) has no value before then: (None, '')."""
    if isinstance(value, Var) or (isinstance(value, Key) and value.is_template):
        return None, ""
    if isinstance(value, Word):
        return value.text, value.text
    if isinstance(value, Duration):
        return value.seconds, str(value)
    if isinstance(value, str):
        return value, '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Key):
        return str(value), str(value)
    return value, str(value)


@dataclass(frozen=True)
class Takes:
    """What an option (``name=value``) takes, declared once in its statement's ``options_allowed``:
    a whole number from ``lo`` (to ``hi``; no number when ``lo`` is None), and/or one of ``words``
    (true/false options give bools).  The static checker refuses a literal value that does not fit,
    at the value, before anything is sent; ``Command.options`` refuses a $variable's value the same
    way when the statement runs.  ``note`` says why the range is what it is."""

    lo: int | None = None
    hi: int | None = None
    words: tuple[str, ...] = ()
    note: str = ""
    ranges: bool = False  # also FROM..TO (two whole numbers in the bounds, FROM <= TO): a tuple
    path: bool = False  # a file's path in quotes

    def __str__(self) -> str:
        parts = ["a file path in quotes"] if self.path else []
        if self.lo is not None:
            parts.append(f"a whole number from {self.lo} to {self.hi}" if self.hi is not None
                         else f"a whole number >= {self.lo}")
        if self.ranges:
            parts.append("a range FROM..TO of those")
        if self.words:
            parts.append(" or ".join(self.words))
        text = ", or ".join(parts)
        return f"{text} ({self.note})" if self.note else text

    @property
    def truth(self) -> bool:
        return self.words == ("true", "false")

    def problem(self, name: str, value: Any, shown: str) -> str | None:
        """Why ``value`` (written ``shown``) does not fit ``name=``; None when it does."""
        try:
            self.convert(name, value, shown)
        except ScriptError as err:
            return err.message
        return None

    def convert(self, name: str, value: Any, shown: str | None = None) -> Any:
        """``value`` as the statement uses it (an int, a word in lower case, a bool for true/false);
        a ScriptError saying what ``name=`` takes when it does not fit."""
        if self.truth and isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in self.words:
            return value.lower() == "true" if self.truth else value.lower()
        if type(value) is int and self.lo is not None and value >= self.lo and (self.hi is None or value <= self.hi):
            return value
        span = re.fullmatch(r"([0-9]+)\.\.([0-9]+)", value) if self.ranges and isinstance(value, str) else None
        if span is not None:
            a, b = int(span.group(1)), int(span.group(2))
            if a <= b and self.lo is not None and a >= self.lo and (self.hi is None or b <= self.hi):
                return (a, b)
        if self.path and isinstance(value, str) and value and (shown is None or shown.startswith('"') or "($" in shown):
            return value  # a quoted path, or a $variable's: not a bare word
        raise ScriptError(f"{name}= takes {self}, not {shown if shown is not None else repr(value)}")


def whole(lo: int = 0, hi: int | None = None, *words: str, note: str = "") -> Takes:
    """An option that takes a whole number from ``lo`` (to ``hi``), or one of ``words``."""
    return Takes(lo, hi, words, note)


TRUTH = Takes(words=("true", "false"))  # an option that takes true or false
FILE = Takes(path=True)  # an option that takes a file path in quotes

# field metadata: this field names a rank (checked against the cluster size wherever it appears)
RANK: dict[str, Any] = {"rank": True}


def rank_field(default: Any = ...) -> Any:
    """A dataclass field that holds a rank (int or $variable)."""
    if default is ...:
        return field(metadata=RANK)
    return field(default=default, metadata=RANK)


class Build(Protocol):
    """What a statement's :meth:`~Statement.build` gets besides its rule's children (the parser
    gives it, rayscript.language.parser.Builder): where the statement is written, the registry it
    belongs to, and helpers that raise located syntax errors."""

    @property
    def location(self) -> Location: ...

    @property
    def registry(self) -> dict[str, type[Statement]]: ...

    def fail(self, message: str, at: Any = None) -> NoReturn:
        """Refuse the statement: a syntax error at ``at`` (a token), else at the statement."""
        ...

    def positional(self, children: Sequence[Any]) -> list[Any]:
        """The children that are not ``name=value`` options."""
        ...

    def options(self, cls: type[Statement], children: Sequence[Any]) -> Options:
        """The options among the children, (name, value) in name order; one that ``cls`` does not
        take, or one given twice, is refused at its name."""
        ...

    def options_arg(self, cls: type[Statement], children: Sequence[Any]) -> dict[str, Any]:
        """``{"options": ...}`` for a statement with an ``options`` field; refuses any option else."""
        ...

    def single(self, key: object, word: str) -> Key:
        """``key`` when it names one item (``word`` takes no pattern)."""
        ...

    def into(self, key: object, namespace: str, word: str) -> Key:
        """``key`` when it names one item of ``namespace`` (where ``word`` stores its result)."""
        ...


class CheckContext(Protocol):
    """What a statement's :meth:`~Statement.check` gets (the checker gives it,
    rayscript.language.checker.Checker): the cluster size, and the scope its checks run in."""

    @property
    def size(self) -> int | None:
        """The number of ranks, when known."""
        ...

    def error(self, message: str, st: Statement | None = None, at: Location | None = None) -> None:
        """A problem with the statement (``at``: where in it, else where it starts)."""
        ...

    def define(self, name: str, value: object = None) -> None:
        """``name`` is defined from here on; ``value``: its value when written as a whole number."""
        ...

    def block(self, statements: Iterable[Statement], extra: Collection[str] = frozenset(),
              in_parallel: bool | None = None, ranges: dict[str, tuple[int, int]] | None = None) -> None:
        """Check nested statements in a copy of this scope (plus ``extra`` names; ``ranges``: the
        values some of them take)."""
        ...


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
    # options (name=value) the statement accepts, with what each takes: the one place their values
    # are declared (the checker checks literal values, Command.options the values of variables)
    options_allowed: ClassVar[dict[str, Takes]] = {}
    # involves every rank at once (cannot run inside 'parallel')
    collective: ClassVar[bool] = False

    meta: Location | None = field(default=None, compare=False, repr=False, kw_only=True)
    # where each option's value is written (name -> location), set by the parser
    option_locations: tuple[tuple[str, Location], ...] = field(default=(), compare=False, repr=False,
                                                               kw_only=True)

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
    def build(cls, b: Build, children: list[Any]) -> Statement:
        """The node from the transformed children of its grammar rule (default: in field order,
        options gathered into an ``options`` field)."""
        return cls(*b.positional(children), **b.options_arg(cls, children), meta=b.location)

    def check(self, ctx: CheckContext) -> None:
        """Static checks beyond the generic ones (every field's variables and ranks); by default,
        the nested statements are checked in a copy of the scope."""
        ctx.block(list(self.children()))

    def run(self, cmd: Any) -> Generator[Any, Any, list[Result]]:
        """Execute on the commander: a generator that yields the futures of its orders (sent
        through ``cmd``, :class:`rayscript.interpreter.Command`) and returns its results.  (The
        language knows nothing of the runtime below it, so ``cmd`` is untyped here; every statement
        types it as the Command it is.)"""
        raise ScriptError(f"'{self.keyword}' cannot be run")
        yield  # pragma: no cover

    def given_options(self) -> Options:
        """The options written in the statement, (name, value) in name order."""
        return getattr(self, "options", ())

    def option_location(self, name: str) -> Location | None:
        """Where the value of option ``name`` is written (else where the statement is)."""
        return dict(self.option_locations).get(name, self.meta)

    def children(self) -> Iterator[Statement]:
        """The statements nested in this one (blocks), in order."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Statement):
                yield v
            elif isinstance(v, tuple):
                yield from (s for s in v if isinstance(s, Statement))


def walk(statements: Iterable[Statement]) -> Iterator[Statement]:
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

