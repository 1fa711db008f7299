"""Cascades written in the language: the nodes of a handler's body, and its static checks.

A cascade is a message handler: ``cascade NAME(kmer, p1, p2, ...) { BODY }`` runs on the rank that
holds the k-mer a message is sent to, once for every message.  This module holds what the language
knows of a body: its nodes (plain, picklable data, so a body travels to the ranks as it is), the
types of its expressions (int, float, bool) and the checks ``rayscript check`` makes before anything
runs.  How a body becomes array operations over a whole batch of messages is the ranks' business
(:mod:`rayscript.genomics.cascades`); this module imports neither numpy nor the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Union

from ..errors import Location, ScriptError

# --- expressions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: int | float
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Name:
    """A parameter or a ``let`` variable."""

    name: str
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Attr:
    """``kmer.NAME``: a property of the k-mer the message is at, or one of its fields."""

    obj: str
    attr: str
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ScriptVar:
    """``$x``: a variable of the script, whose value is taken when the cascade is started."""

    name: str
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class KeyLit:
    """A k-mer written as a key (``kmers/ACGT...``): a send's target."""

    bases: str
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Call:
    """``min(a, b)``, ``max(a, b)``, ``abs(a)``."""

    fn: str
    args: tuple[Expr, ...]
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Op:
    """A unary (``-``, ``not``: one operand) or binary operator."""

    op: str
    args: tuple[Expr, ...]
    at: Location | None = field(default=None, compare=False)


Expr = Union[Num, Name, Attr, KeyLit, Call, Op, ScriptVar]  # noqa: UP007 - a runtime alias, before 3.10 too

# --- statements of a body -------------------------------------------------------------


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple[Body, ...]
    orelse: tuple[Body, ...] = ()
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Stop:
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SetField:
    obj: str
    name: str
    value: Expr
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Send:
    cascade: str
    target: Expr
    args: tuple[Expr, ...]
    at: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Emit:
    value: Expr
    at: Location | None = field(default=None, compare=False)


Body = Union[Let, If, Stop, SetField, Send, Emit]  # noqa: UP007


@dataclass(frozen=True)
class CascadeDef:
    """A handler: its name, the name its k-mer goes by (``kmer``), its parameters and body."""

    name: str
    kmer: str
    params: tuple[str, ...]
    body: tuple[Body, ...]
    at: Location | None = field(default=None, compare=False)


# the properties every k-mer has (besides its fields), with their types
KMER_PROPERTIES = {"count": "int", "id": "int", "bases": "int", "degree": "int", "in_degree": "int",
                   "out_degree": "int"}
# targets of a send that name the k-mer's neighbours, relative to the strand the message arrived on
TARGETS = ("neighbours", "next", "prev")
FUNCTIONS = {"min": 2, "max": 2, "abs": 1}
ARITHMETIC = ("+", "-", "*", "/", "%")
COMPARISONS = (">=", "<=", "==", "!=", ">", "<")
FIELD_TYPES = ("int", "float")
# field names a k-mer's own properties take
RESERVED_FIELDS = (*KMER_PROPERTIES, *TARGETS, "kmer", "kmers", "edges")


# names in the checker's scope that carry what a script or session defined (not variables: no
# variable is named with these characters)
CASCADE_PREFIX = "%cascade:"
FIELD_PREFIX = "%field:"
RESTORED = "%restored"


def field_name(kset: str, name: str, kind: str) -> str:
    return f"{FIELD_PREFIX}{kset}:{name}:{kind}"


def session_scope(cascades: Mapping[str, CascadeDef], fields: Mapping[str, Mapping[str, str]],
                  restored: bool) -> tuple[set[str], dict[str, object]]:
    """(names, definitions) the checker starts from in a session that defined these."""
    names = {field_name(s, n, kind) for s, of in fields.items() for n, kind in of.items()}
    if restored:
        names.add(RESTORED)
    return names, {CASCADE_PREFIX + n: d for n, d in cascades.items()}


def join(a: str, b: str) -> str:
    """The type of a value that is one or the other: float wins over int ('num': a number of a type
    not known yet, a parameter's when a body is checked on its own)."""
    if "float" in (a, b):
        return "float"
    return "num" if "num" in (a, b) else a


def walk_body(body: tuple[Body, ...]) -> Iterator[Body]:
    for st in body:
        yield st
        if isinstance(st, If):
            yield from walk_body(st.then)
            yield from walk_body(st.orelse)


def walk_expr(e: Expr) -> Iterator[Expr]:
    yield e
    if isinstance(e, (Call, Op)):
        for a in e.args:
            yield from walk_expr(a)


def body_exprs(st: Body) -> Iterator[Expr]:
    """The expressions a body statement evaluates itself (not those of nested statements)."""
    if isinstance(st, (Let, SetField, Emit)):
        yield st.value
    elif isinstance(st, If):
        yield st.cond
    elif isinstance(st, Send):
        yield st.target
        yield from st.args


def fields_read(defn: CascadeDef) -> set[str]:
    out = set()
    for st in walk_body(defn.body):
        for e in body_exprs(st):
            out |= {x.attr for x in walk_expr(e) if isinstance(x, Attr) and x.attr not in KMER_PROPERTIES
                    and x.attr not in TARGETS}
    return out


def fields_written(defn: CascadeDef) -> set[str]:
    return {st.name for st in walk_body(defn.body) if isinstance(st, SetField)}


class Typing:
    """The types of a cascade's expressions: its parameters' types (found by :func:`infer`), the
    fields of the set it runs over (name -> int or float) and the ``let`` variables seen so far.
    ``error`` collects located problems (the checker and ``start`` both use it)."""

    def __init__(self, defn: CascadeDef, params: Mapping[str, str], fields: Mapping[str, str] | None,
                 errors: list[ScriptError]) -> None:
        self.defn = defn
        self.params = dict(params)
        self.fields = fields  # None: not known here (the check of a script that restores a checkpoint)
        self.errors = errors
        self.lets: dict[str, str] = {}

    def error(self, message: str, at: Location | None) -> None:
        self.errors.append(ScriptError(message, at or self.defn.at))

    def expr(self, e: Expr, target: bool = False) -> str:
        """The type of ``e`` ('int', 'float', 'bool', or 'kmer' for a send's target)."""
        if isinstance(e, Num):
            return "float" if isinstance(e.value, float) else "int"
        if isinstance(e, ScriptVar):
            return "num"
        if isinstance(e, KeyLit):
            if not target:
                self.error(f"a k-mer key ({e.bases}) can only be a send's target", e.at)
            return "kmer"
        if isinstance(e, Name):
            if e.name == self.defn.kmer:
                self.error(f"'{e.name}' is the k-mer: use one of its properties ({e.name}.count, {e.name}.id, "
                           f"...) or its fields", e.at)
                return "int"
            if e.name in self.lets:
                return self.lets[e.name]
            if e.name in self.params:
                return self.params[e.name]
            self.error(f"unknown name '{e.name}' in cascade {self.defn.name} (its parameters: "
                       f"{', '.join(self.defn.params) or 'none'}; names are made with 'let')", e.at)
            return "int"
        if isinstance(e, Attr):
            return self.attr(e, target)
        if isinstance(e, Call):
            want = FUNCTIONS.get(e.fn)
            if want is None:
                self.error(f"unknown function '{e.fn}' (functions: {', '.join(f'{f}()' for f in FUNCTIONS)})", e.at)
                return "int"
            if len(e.args) != want:
                self.error(f"{e.fn}() takes {want} argument{'s' if want > 1 else ''}, not {len(e.args)}", e.at)
            types = [self.number(a) for a in e.args]
            out = types[0] if types else "int"
            for t in types[1:]:
                out = join(out, t)
            return out
        if isinstance(e, Op):
            return self.op(e)
        raise AssertionError(e)  # pragma: no cover

    def number(self, e: Expr) -> str:
        t = self.expr(e)
        if t == "kmer":
            return "int"  # said already: k-mers are a send's targets
        if t not in ("int", "float", "num"):
            self.error(f"a number is expected here, not a {'condition' if t == 'bool' else t}", e.at)
            return "int"
        return t

    def condition(self, e: Expr) -> None:
        if self.expr(e) != "bool":
            self.error("a condition is expected here (a comparison such as 'kmer.count >= 2', joined with "
                       "and/or/not)", e.at)

    def op(self, e: Op) -> str:
        if e.op in ("and", "or", "not"):
            for a in e.args:
                self.condition(a)
            return "bool"
        if e.op in COMPARISONS:
            for a in e.args:
                self.number(a)
            return "bool"
        types = [self.number(a) for a in e.args]
        if e.op == "/":
            return "float"
        out = types[0]
        for t in types[1:]:
            out = join(out, t)
        return out

    def attr(self, e: Attr, target: bool) -> str:
        if e.obj != self.defn.kmer:
            known = e.obj in self.params or e.obj in self.lets
            what = "a number" if known else "not a name of this cascade"
            self.error(f"'{e.obj}.{e.attr}': only the k-mer ({self.defn.kmer}) has properties; {e.obj} is {what}",
                       e.at)
            return "int"
        if e.attr in TARGETS:
            if not target:
                self.error(f"{e.obj}.{e.attr} names k-mers to send to: it is a send's target, not a value", e.at)
            return "kmer"
        if e.attr in KMER_PROPERTIES:
            return KMER_PROPERTIES[e.attr]
        if self.fields is None:
            return "int"
        if e.attr not in self.fields:
            names = ", ".join(sorted(self.fields)) or "none yet: make one with 'field NAME = 0 on kmers'"
            self.error(f"unknown field '{e.attr}' (the k-mer's properties: {', '.join(KMER_PROPERTIES)}; "
                       f"fields: {names})", e.at)
            return "int"
        return self.fields[e.attr]


def check_body(defn: CascadeDef, params: Mapping[str, str], fields: Mapping[str, str] | None,
               signatures: Mapping[str, int] | None, errors: list[ScriptError]) -> list[tuple[str, list[str]]]:
    """Check a body; returns the sends it makes as (cascade, [argument types]).  ``signatures``: the
    cascades known (name -> number of parameters), None to leave sends unchecked."""
    typing = Typing(defn, params, fields, errors)
    sends: list[tuple[str, list[str]]] = []

    def block(body: tuple[Body, ...]) -> None:
        for st in body:
            if isinstance(st, Let):
                if st.name in (defn.kmer, *defn.params):
                    typing.error(f"'{st.name}' is a parameter of {defn.name}: 'let' makes a new name", st.at)
                t = typing.number(st.value)
                old = typing.lets.get(st.name)
                typing.lets[st.name] = t if old is None else join(old, t)
            elif isinstance(st, If):
                typing.condition(st.cond)
                block(st.then)
                block(st.orelse)
            elif isinstance(st, SetField):
                t = typing.number(st.value)
                if st.obj != defn.kmer:
                    typing.error(f"'set {st.obj}.{st.name}': fields belong to the k-mer ({defn.kmer})", st.at)
                elif st.name in KMER_PROPERTIES or st.name in TARGETS:
                    typing.error(f"{defn.kmer}.{st.name} is a property of the k-mer, not a field: it cannot be "
                                 f"set", st.at)
                elif fields is not None and st.name not in fields:
                    typing.attr(Attr(st.obj, st.name, st.at), False)
                elif fields is not None and fields[st.name] == "int" and t == "float":
                    typing.error(f"field {st.name} holds whole numbers (int), and this value is a float: round it "
                                 f"or make the field a float ('field {st.name} = 0.0 on ...')", st.at)
            elif isinstance(st, Send):
                t = typing.expr(st.target, target=True)
                if t not in ("kmer", "int"):
                    typing.error("a send's target is kmer.neighbours, kmer.next, kmer.prev, a key or a k-mer id",
                                 st.target.at)
                types = [typing.number(a) for a in st.args]
                if signatures is not None:
                    if st.cascade not in signatures:
                        known = ", ".join(sorted(signatures)) or "none"
                        typing.error(f"unknown cascade '{st.cascade}' (cascades: {known})", st.at)
                    elif signatures[st.cascade] != len(st.args):
                        n = signatures[st.cascade]
                        typing.error(f"cascade {st.cascade} takes {n} argument{'s' if n != 1 else ''} after the "
                                     f"target, not {len(st.args)}", st.at)
                sends.append((st.cascade, types))
            elif isinstance(st, Emit):
                typing.number(st.value)

    block(defn.body)
    return sends


def infer(cascades: Mapping[str, CascadeDef], first: str, start_types: list[str],
          fields: Mapping[str, str], errors: list[ScriptError]) -> dict[str, dict[str, str]]:
    """The parameter types of every cascade reachable from ``first`` started with arguments of
    ``start_types``: a parameter's type joins the types of every value sent to it (int, or float
    once any is a float), found by going round until nothing changes.  Problems go to ``errors``."""
    signatures = {n: len(d.params) for n, d in cascades.items()}
    types: dict[str, dict[str, str]] = {first: dict(zip(cascades[first].params, start_types))}
    for _ in range(4 * len(cascades) + 4):
        changed = False
        for name in list(types):
            scratch: list[ScriptError] = []
            sends = check_body(cascades[name], _filled(cascades[name], types[name]), fields, signatures, scratch)
            for callee, arg_types in sends:
                if callee not in cascades or len(arg_types) != len(cascades[callee].params):
                    continue
                known = types.setdefault(callee, {})
                if not known and callee != name:
                    changed = True
                for p, t in zip(cascades[callee].params, arg_types):
                    new = t if p not in known else join(known[p], t)
                    if known.get(p) != new:
                        known[p], changed = new, True
        if not changed:
            break
    for name, params in types.items():
        check_body(cascades[name], _filled(cascades[name], params), fields, signatures, errors)
    return {n: _filled(cascades[n], t) for n, t in types.items()}


def with_values(defn: CascadeDef, value: Callable[[ScriptVar], int | float],
                bases: Callable[[KeyLit], str]) -> CascadeDef:
    """The cascade with the script's variables in its body replaced by their values now (numbers),
    and keys written with variables (kmers/$seed) by their bases."""

    def expr(e: Expr) -> Expr:
        if isinstance(e, ScriptVar):
            return Num(value(e), e.at)
        if isinstance(e, KeyLit) and "$" in e.bases:
            return KeyLit(bases(e), e.at)
        if isinstance(e, (Call, Op)):
            return replace(e, args=tuple(expr(a) for a in e.args))
        return e

    def body(sts: tuple[Body, ...]) -> tuple[Body, ...]:
        out: list[Body] = []
        for st in sts:
            if isinstance(st, If):
                out.append(replace(st, cond=expr(st.cond), then=body(st.then), orelse=body(st.orelse)))
            elif isinstance(st, Send):
                out.append(replace(st, target=expr(st.target), args=tuple(expr(a) for a in st.args)))
            elif isinstance(st, (Let, SetField, Emit)):
                out.append(replace(st, value=expr(st.value)))
            else:
                out.append(st)
        return tuple(out)

    return replace(defn, body=body(defn.body))


def _filled(defn: CascadeDef, known: Mapping[str, str]) -> dict[str, str]:
    return {p: known.get(p, "int") for p in defn.params}


__all__ = ["Attr", "Body", "Call", "CascadeDef", "Emit", "Expr", "If", "KeyLit", "Let", "Name", "Num", "Op",
           "Send", "SetField", "Stop", "check_body", "infer"]
