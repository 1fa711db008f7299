"""A cascade's body compiled for a few messages at a time: Python source over one message.

A batch of many messages runs as numpy operations over the whole batch
(:class:`rayscript.genomics.cascades.Handler`); a numpy call costs about a microsecond whatever the
length of its arrays, and a body makes thirty of them, so a batch of one message (a chain: a walk, a
search's last steps) would pay that thirty times over for a single message.  Such batches (at most
:data:`SMALL` messages) run through the same body compiled once more, when the cascade starts, into
the source of one Python function over one message (``if`` is an ``if``, ``stop`` a ``return``, a
field a column item, ``send kmer.next`` a loop over the k-mer's successor bases), applied to the
messages one after another, which is one of the orders a batch may be handled in.  The function is
generated from the body's nodes, so the two forms compute the same values: numbers as numpy does
(a division by zero is inf or nan, ``%`` by zero of integers is 0), lets of the type the body gives
them, parameters of the types they travel as.

Ids wider than one 64-bit word (k > 31) keep to the batch form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RayScriptError
from ..language import cascade as ast
from ..store import encoding

if TYPE_CHECKING:
    from .cascades import Handler

# a batch of at most this many messages runs message by message through the compiled function
SMALL = 8
_MASK64 = (1 << 64) - 1
_COMP = [int("".join(reversed(f"{i:04b}")), 2) for i in range(16)]  # the complement of a 4-bit base set
_POP = [bin(i).count("1") for i in range(16)]
_BITS = [tuple(b for b in range(4) if i >> b & 1) for i in range(16)]
_BINARY = {"+": "+", "-": "-", "*": "*", ">=": ">=", "<=": "<=", ">": ">", "<": "<", "==": "==", "!=": "!="}


def _div(a: Any, b: Any) -> float:
    """a / b as numpy divides: by zero, inf with the sign of a (and of a signed float zero), or nan."""
    try:
        return float(a) / float(b)
    except ZeroDivisionError:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _mod(a: Any, b: Any) -> Any:
    """a % b as numpy's mod: the sign of b; by zero, 0 for integers and nan otherwise."""
    if b == 0:
        return 0 if isinstance(a, int) and isinstance(b, int) else math.nan
    return a % b


def _min(a: Any, b: Any) -> Any:
    if a != a:
        return a
    return b if b != b or b < a else a


def _max(a: Any, b: Any) -> Any:
    if a != a:
        return a
    return b if b != b or b > a else a


def _int(x: Any) -> int:
    """A value made an int64 let as numpy makes it (toward zero; nan and out of range as numpy's
    smallest integer)."""
    try:
        v = int(x)
    except (ValueError, OverflowError):
        return -(1 << 63)
    return v if -(1 << 63) <= v < (1 << 63) else -(1 << 63)


class SmallBody:
    """The body of one handler as a Python function over one message (see the module's text)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        run = handler.run
        graph = run.graph
        self.k = graph.k
        defn = handler.defn
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {
            "counts": graph.counts, "edges": graph.edges, "COMP": _COMP, "POP": _POP, "BITS": _BITS,
            "_div": _div, "_mod": _mod, "_min": _min, "_max": _max, "_int": _int, "RayScriptError": RayScriptError,
        }
        for name, column in graph.fields.items():
            self.ns[f"F_{name}"] = column
        # messages made: per cascade sent to, rows of (id as oriented, arguments...)
        self.outs: dict[str, list[tuple[Any, ...]]] = {}
        self.emits: list[Any] = []
        self.ns["emit"] = self.emits.append
        self.kinds = dict(handler.lets)
        uses_strand = any(isinstance(x, ast.Attr) and x.obj == defn.kmer
                          and x.attr in ("degree", "in_degree", "out_degree")
                          for st in ast.walk_body(defn.body) for e in ast.body_exprs(st) for x in ast.walk_expr(e)
                          ) or any(isinstance(st, ast.Send) and isinstance(st.target, ast.Attr)
                                   for st in ast.walk_body(defn.body))
        params = ", ".join(f"p_{p}" for p in defn.params)
        self.lines.append(f"def one(pos, o, c{', ' if params else ''}{params}):")
        for name, kind in sorted(self.kinds.items()):
            self.lines.append(f"    v_{name} = {'0.0' if kind == 'float' else '0'}")
        if uses_strand:
            self.lines.append("    e = edges.item(pos)")
            if graph.canonical:
                self.lines.append("    if o != c:\n        outs, ins = COMP[e >> 4], COMP[e & 15]")
                self.lines.append("    else:\n        outs, ins = e & 15, e >> 4")
            else:
                self.lines.append("    outs, ins = e & 15, e >> 4")
        self._temps = 0
        self.block(defn.body, 1)
        self.lines.append("    return")
        exec(compile("\n".join(self.lines), f"<cascade {defn.name}>", "exec"), self.ns)
        self.one: Callable[..., None] = self.ns["one"]

    # --- source ---------------------------------------------------------------------
    def expr(self, e: ast.Expr) -> str:
        defn = self.handler.defn
        if isinstance(e, ast.Num):
            return repr(e.value) if math.isfinite(e.value) else f"float({str(e.value)!r})"
        if isinstance(e, ast.Name):
            return f"v_{e.name}" if e.name in self.kinds else f"p_{e.name}"
        if isinstance(e, ast.Attr):
            if e.obj != defn.kmer:  # pragma: no cover - the checker allows no other object
                raise RayScriptError(f"{e.obj}.{e.attr} cannot be read here")
            return {"count": "counts.item(pos)", "id": "c", "bases": str(self.k), "degree": "(POP[outs] + POP[ins])",
                    "in_degree": "POP[ins]", "out_degree": "POP[outs]"}.get(e.attr, f"F_{e.attr}.item(pos)")
        if isinstance(e, ast.Call):
            listed = ", ".join(self.expr(a) for a in e.args)
            return f"abs({listed})" if e.fn == "abs" else f"_{e.fn}({listed})"
        if isinstance(e, ast.Op):
            operands = [self.expr(a) for a in e.args]
            if e.op == "not":
                return f"(not {operands[0]})"
            if len(operands) == 1:
                return f"(-{operands[0]})"
            a, b = operands
            if e.op == "and":
                return f"(bool({a}) and bool({b}))"
            if e.op == "or":
                return f"(bool({a}) or bool({b}))"
            if e.op == "/":
                return f"_div({a}, {b})"
            if e.op == "%":
                return f"_mod({a}, {b})"
            return f"({a} {_BINARY[e.op]} {b})"
        raise RayScriptError(f"a {type(e).__name__} cannot be a value here")

    def block(self, body: tuple[ast.Body, ...], depth: int) -> None:
        pad = "    " * depth
        if not body:
            self.lines.append(pad + "pass")
        for st in body:
            self.statement(st, depth, pad)

    def statement(self, st: ast.Body, depth: int, pad: str) -> None:
        if isinstance(st, ast.Let):
            cast = "float" if self.kinds.get(st.name) == "float" else "_int"
            self.lines.append(f"{pad}v_{st.name} = {cast}({self.expr(st.value)})")
        elif isinstance(st, ast.If):
            self.lines.append(f"{pad}if {self.expr(st.cond)}:")
            self.block(st.then, depth + 1)
            if st.orelse:
                self.lines.append(f"{pad}else:")
                self.block(st.orelse, depth + 1)
        elif isinstance(st, ast.Stop):
            self.lines.append(f"{pad}return")
        elif isinstance(st, ast.SetField):
            self.lines.append(f"{pad}F_{st.name}[pos] = {self.expr(st.value)}")
        elif isinstance(st, ast.Emit):
            self.lines.append(f"{pad}emit({self.expr(st.value)})")
        elif isinstance(st, ast.Send):
            self.send(st, pad)
        else:  # pragma: no cover
            raise RayScriptError(f"a {type(st).__name__} cannot be run")

    def send(self, st: ast.Send, pad: str) -> None:
        out = f"out_{st.cascade}"
        if out not in self.ns:
            self.ns[out] = self.outs.setdefault(st.cascade, []).append
        args = []
        for a in st.args:  # each argument once, before the messages are made
            self._temps += 1
            self.lines.append(f"{pad}t{self._temps} = {self.expr(a)}")
            args.append(f"t{self._temps}")
        tail = "".join(f" {a}," for a in args)  # a row is a tuple: (id, arguments...)
        k = self.k
        target = st.target
        if isinstance(target, ast.Attr) and target.attr in ast.TARGETS:
            if target.attr in ("neighbours", "next"):
                self.lines.append(f"{pad}for b in BITS[outs]:")
                self.lines.append(f"{pad}    {out}((((o << 2) | b) & {(1 << (2 * k)) - 1},{tail}))")
            if target.attr in ("neighbours", "prev"):
                self.lines.append(f"{pad}for b in BITS[ins]:")
                self.lines.append(f"{pad}    {out}((((b << {2 * (k - 1)}) | (o >> 2)),{tail}))")
        elif isinstance(target, ast.KeyLit):
            if len(target.bases) != k:
                message = (f"send {st.cascade}(kmers/{target.bases}, ...): the key has {len(target.bases)} bases "
                           f"and the set's k-mers {k}")
                self.lines.append(f"{pad}raise RayScriptError({message!r})")
            else:
                self.lines.append(f"{pad}{out}(({encoding.encode(target.bases)},{tail}))")
        else:
            self.lines.append(f"{pad}{out}((int({self.expr(target)}) & {_MASK64},{tail}))")

    # --- running ------------------------------------------------------------------------
    def handle_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Messages as rows (position, id as oriented, canonical id, arguments...) one after another,
        then what they made into the outbox."""
        one = self.one
        for row in rows:
            one(*row)
        run = self.handler.run
        for callee, made in self.outs.items():
            if made:
                run.route_rows(callee, made)
                made.clear()
        if self.emits:
            run.emitted(np.array(self.emits))
            self.emits.clear()
