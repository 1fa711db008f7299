"""Cascades written in the language: ``field``, ``cascade`` and ``start`` (the ranks' side is
rayscript.genomics.cascades; the body's nodes and checks are rayscript.language.cascade).

``field NAME = DEFAULT on SET`` gives every k-mer of a set a number (int or float, by the default's
type); ``cascade NAME(kmer, ...) { ... }`` defines a message handler for the session; ``start``
sends one message to every selected k-mer (or to one key) and waits until no message is in flight
anywhere.  Fields and cascades, once defined, last for the session.
"""

from __future__ import annotations

import time
from typing import Any

from lark import Token

from ..errors import ScriptError
from ..interpreter import Command, Steps, substitute
from ..items import KMERS, is_kmers
from ..language import cascade as ast
from ..language.syntax import Build, CheckContext, Key, Selector, Statement, Takes, whole
from ..protocol.cascades import FieldOrder, FieldsOrder, StartCascade
from ..results import Result
from ..store import encoding
from .sets import set_info
from .store import wire_selector

CASCADE_PREFIX, FIELD_PREFIX, RESTORED, field_name = ast.CASCADE_PREFIX, ast.FIELD_PREFIX, ast.RESTORED, ast.field_name


def known_fields(scope: set[str], kset: str | None = None) -> dict[str, str] | None:
    """The fields the checker knows of (of one set, or of any), None when it cannot know (a
    checkpoint was restored: its fields are known only when it runs)."""
    if RESTORED in scope:
        return None
    out: dict[str, str] = {}
    for name in scope:
        if name.startswith(FIELD_PREFIX):
            s, f, kind = name[len(FIELD_PREFIX):].rsplit(":", 2)
            if kset is None or s == kset:
                out[f] = ast.join(out[f], kind) if f in out else kind
    return out


def known_cascades(ctx: CheckContext) -> dict[str, ast.CascadeDef]:
    defs: dict[str, ast.CascadeDef] = getattr(ctx, "definitions", {})
    return {n[len(CASCADE_PREFIX):]: d for n, d in defs.items() if n.startswith(CASCADE_PREFIX)}


class Field(Statement, keyword="field"):
    syntax = "field NAME = DEFAULT on kmers|kmers.NAME"
    summary = ("Give every k-mer of a set a field: a whole number (int64) or, when the default is written with a "
               "point, a float (float64). Cascades read and set it; 'where', 'get', 'dump ... fields=' and "
               "checkpoints show and keep it. Defining it again keeps its values if the type is the same.")
    example = "field comp = -1 on kmers"
    collective = True

    name: str = ""
    default: int | float = 0
    kset: str = KMERS

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Field:
        name, default, kset = children
        if not is_kmers(str(kset)):
            b.fail(f"fields belong to k-mer sets (kmers, kmers.NAME), not {kset}", kset)
        if str(name) in ast.RESERVED_FIELDS:
            b.fail(f"'{name}' is a property every k-mer has: give the field another name", name)
        if not isinstance(default, (int, float)) or isinstance(default, bool):
            b.fail(f"a field's default is a number (0, -1, 0.0), not {default}")
        return cls(str(name), default, str(kset), meta=b.location)

    @property
    def kind(self) -> str:
        return "float" if isinstance(self.default, float) else "int"

    def check(self, ctx: CheckContext) -> None:
        ctx.define(field_name(self.kset, self.name, self.kind))

    def run(self, cmd: Command) -> Steps:
        yield cmd.every(lambda r: FieldOrder(recipient=r, kset=self.kset, name=self.name, dtype=self.kind,
                                             default=self.default))
        cmd.interpreter.fields.setdefault(self.kset, {})[self.name] = self.kind
        return [Result("field", f"field {self.name} ({self.kind}, default {self.default}) on {self.kset}",
                       {"field": self.name, "kind": self.kind, "default": self.default, "set": self.kset})]


def drop_field(cmd: Command, kset: str, name: str) -> Steps:
    fields = yield from set_fields(cmd)
    if name not in fields.get(kset, {}) and not cmd.explaining:
        known = ", ".join(sorted(fields.get(kset, {}))) or "none"
        raise ScriptError(f"{kset} has no field {name} (its fields: {known})")
    yield cmd.every(lambda r: FieldOrder(recipient=r, kset=kset, name=name, drop=True))
    cmd.interpreter.fields.get(kset, {}).pop(name, None)
    return [Result("drop", f"dropped field {name} of {kset}", {"field": name, "set": kset})]


def set_fields(cmd: Command) -> Any:
    """Every set's fields on the ranks: set -> {name: (kind, default)}."""
    replies = yield cmd.every(lambda r: FieldsOrder(recipient=r))
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    for rep in replies:
        for kset, fields in rep.held.items():
            out.setdefault(kset, {}).update(fields)
    return out


class CascadeStatement(Statement, keyword="cascade"):
    syntax = "cascade NAME(kmer, P1, P2, ...) { BODY }"
    summary = ("Define a message handler: BODY runs on the rank that holds the k-mer a message is sent to, once "
               "for every message, over whole batches at once. BODY: let X = E; if E { } else { }; stop; "
               "set kmer.FIELD = E; send NAME(TARGET, E, ...) (TARGET: kmer.neighbours, kmer.next, kmer.prev, a "
               "key or a k-mer id); emit E. Values: numbers, parameters, + - * / %, comparisons, and or not, "
               "min(a, b), max(a, b), abs(a), kmer.count, kmer.id, kmer.bases (k), kmer.degree, kmer.in_degree, "
               "kmer.out_degree and the k-mer's fields. See docs/cascades.md.")
    example = "cascade label(kmer, l) { if kmer.comp >= 0 and kmer.comp <= l { stop }; set kmer.comp = l; " \
              "send label(kmer.neighbours, l) }"

    defn: ast.CascadeDef = ast.CascadeDef("", "kmer", (), ())

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> CascadeStatement:
        name, *params, body = children
        if not params:
            b.fail(f"cascade {name} needs the k-mer as its first parameter: cascade {name}(kmer, ...)", name)
        names = [str(p) for p in params]
        for i, p in enumerate(params):
            if str(p) in names[:i]:
                b.fail(f"parameter '{p}' is named twice", p)
        at = b.location
        return cls(ast.CascadeDef(str(name), names[0], tuple(names[1:]), tuple(body), at), meta=at)

    def declares(self) -> dict[str, object]:
        return {CASCADE_PREFIX + self.defn.name: self.defn}

    def check(self, ctx: CheckContext) -> None:
        known = known_cascades(ctx)
        signatures = {n: len(d.params) for n, d in known.items()}
        errors: list[ScriptError] = []
        scope: set[str] = getattr(ctx, "scope", set())
        ast.check_body(self.defn, {p: "num" for p in self.defn.params}, known_fields(scope), signatures, errors)
        for e in errors:
            ctx.error(e.message, at=e.location)

    def run(self, cmd: Command) -> Steps:
        cmd.interpreter.cascades[self.defn.name] = self.defn
        params = ", ".join((self.defn.kmer, *self.defn.params))
        return [Result("cascade", f"cascade {self.defn.name}({params}) defined",
                       {"cascade": self.defn.name, "params": list(self.defn.params)})]
        yield  # a statement's run is a generator


class Start(Statement, keyword="start"):
    syntax = "start NAME(SELECTOR | KEY, E, ...) [max_messages=N] [timeout=DURATION]"
    summary = ("Send one message to every selected k-mer (or to one key, on the strand written) and wait until no "
               "message is in flight anywhere. The arguments are evaluated per start k-mer (kmer is that k-mer). "
               "Gives the messages handled, sent, dropped (to k-mers not in the store), rounds, seconds and the "
               "emitted values' count, sum, min and max.")
    example = "start label(kmers where count >= 2, kmer.id)"
    options_allowed = {"max_messages": whole(1), "timeout": Takes(duration=True)}
    collective = True

    name: str = ""
    source: Any = None  # a namespace (every k-mer), a Selector or a Key
    args: tuple[Any, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Start:
        name, source, *rest = b.positional(children)
        if isinstance(source, Token):
            if not is_kmers(str(source)):
                b.fail(f"a cascade starts at k-mers (kmers, kmers.NAME, a selector or a key), not {source}", source)
            source = Selector(str(source), prefix="")
        elif isinstance(source, Key) and not is_kmers(source.namespace):
            b.fail(f"a cascade starts at k-mers, not {source}")
        elif isinstance(source, Key) and not (isinstance(source.ident, str) and source.ident.isalpha()) \
                and not source.is_template:
            b.fail(f"a cascade started at one k-mer names it by its bases (kmers/ACGT...), not {source}")
        return cls(str(name), source, tuple(rest), b.options(cls, children), meta=b.location)

    @property
    def kset(self) -> str:
        return str(self.source.namespace)

    def _start_def(self) -> ast.CascadeDef:
        return ast.CascadeDef("start", "kmer", (), (), self.meta)

    def check(self, ctx: CheckContext) -> None:
        known = known_cascades(ctx)
        defn = known.get(self.name)
        if defn is None:
            names = ", ".join(sorted(known)) or "none defined"
            ctx.error(f"unknown cascade '{self.name}' (cascades: {names})")
            return
        if len(self.args) != len(defn.params):
            n = len(defn.params)
            ctx.error(f"cascade {self.name} takes {n} argument{'s' if n != 1 else ''} after the k-mers, not "
                      f"{len(self.args)}")
            return
        scope: set[str] = getattr(ctx, "scope", set())
        errors: list[ScriptError] = []
        fields = known_fields(scope, self.kset)
        typing = ast.Typing(self._start_def(), {}, fields, errors)
        types = [typing.number(a) for a in self.args]
        if fields is not None:
            ast.infer(known, self.name, types, fields, errors)
        for e in errors:
            ctx.error(e.message, at=e.location)

    def run(self, cmd: Command) -> Steps:
        cascades = cmd.interpreter.cascades
        if self.name not in cascades:
            names = ", ".join(sorted(cascades)) or "none defined"
            raise ScriptError(f"unknown cascade '{self.name}' (cascades: {names})")
        reachable = ast.infer(cascades, self.name, ["num"] * len(cascades[self.name].params), {}, [])
        cascades = {n: ast.with_values(cascades[n], lambda v: self._number(cmd, v), lambda key: self._bases(cmd, key))
                    if n in reachable else cascades[n] for n in cascades}
        first = cascades[self.name]
        if len(self.args) != len(first.params):
            raise ScriptError(f"cascade {self.name} takes {len(first.params)} arguments after the k-mers, not "
                              f"{len(self.args)}")
        k, canonical, _distinct = yield from set_info(cmd, self.kset)
        held = yield from set_fields(cmd)
        fields = {n: kind for n, (kind, _d) in held.get(self.kset, {}).items()}
        errors: list[ScriptError] = []
        typing = ast.Typing(self._start_def(), {}, fields, errors)
        types = [typing.number(a) for a in self.args]
        program_types = ast.infer(cascades, self.name, types, fields, errors)
        if errors:
            raise errors[0]
        program = {n: (cascades[n], program_types[n]) for n in program_types}
        opts = cmd.options(self)
        if isinstance(self.source, Selector):
            source: tuple = ("select", wire_selector(cmd, self.source))
            what = str(self.source) if self.source.field else self.kset
        else:
            made = substitute(self.source, cmd.scope) if self.source.is_template else self.source
            bases = str(made.ident)
            if not bases or set(bases.upper()) - set("ACGT"):
                raise ScriptError(f"a cascade started at one k-mer names it by its bases, not {made}")
            if len(bases) != k:
                raise ScriptError(f"{made} has {len(bases)} bases and the k-mers of {self.kset} {k}")
            source = ("key", encoding.encode(bases.upper()))
            what = str(made)
        t0 = time.monotonic()
        try:
            replies = yield cmd.every(lambda r: StartCascade(
                recipient=r, kset=self.kset, first=self.name, program=program, source=source, args=self.args,
                max_messages=opts.get("max_messages", 0), timeout=opts.get("timeout", 0.0), k=k,
                canonical=canonical), timeout=None)
        except ScriptError as err:
            raise ScriptError(f"{err.message}; fields it already set stay set") from None
        seconds = time.monotonic() - t0
        return [self._result(replies, seconds, what)]

    @staticmethod
    def _number(cmd: Command, var: ast.ScriptVar) -> int | float:
        if var.name not in cmd.scope.env:
            raise ScriptError(f"undefined variable ${var.name} (in a cascade: its value is taken when it starts)",
                              var.at)
        value = cmd.scope.env[var.name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScriptError(f"${var.name} is {value!r}: a cascade's expressions take numbers", var.at)
        return value

    @staticmethod
    def _bases(cmd: Command, key: ast.KeyLit) -> str:
        made = substitute(Key("kmers", key.bases), cmd.scope)
        if not (isinstance(made.ident, str) and made.ident.isalpha()):
            raise ScriptError(f"kmers/{key.bases} is {made}: a cascade sends to a k-mer written by its bases", key.at)
        return made.ident.upper()

    def _result(self, replies: list[Any], seconds: float, what: str) -> Result:
        handled = sum(r.handled for r in replies)
        sent = sum(r.sent for r in replies)
        dropped = sum(r.dropped for r in replies)
        started = sum(r.started for r in replies)
        rounds = max(r.rounds for r in replies)
        count = sum(r.emitted[0] for r in replies)
        total = sum(r.emitted[1] for r in replies)
        lows = [r.emitted[2] for r in replies if r.emitted[2] is not None]
        highs = [r.emitted[3] for r in replies if r.emitted[3] is not None]
        emitted = {"count": count, "sum": total, "min": min(lows) if lows else None,
                   "max": max(highs) if highs else None}
        stopped = next((r.stopped for r in replies if r.stopped), "")
        if stopped:
            raise ScriptError(f"cascade {self.name} stopped on every rank: {stopped}, after {handled:,} messages in "
                              f"{rounds:,} rounds; fields it already set stay set")
        rate = handled / seconds if seconds > 0 else 0.0
        text = (f"cascade {self.name} from {what}: {started:,} started, {handled:,} messages handled, {sent:,} sent, "
                f"{dropped:,} dropped (to k-mers not in the store), {rounds:,} rounds, {seconds:.2f} s "
                f"({rate / 1e6:.2f} M messages/s)")
        if count:
            shown = int(total) if float(total).is_integer() else total
            text += f"\nemitted {count:,} values: sum {shown}, min {emitted['min']}, max {emitted['max']}"
        data = {"cascade": self.name, "started": started, "messages": handled, "sent": sent, "dropped": dropped,
                "rounds": rounds, "seconds": seconds, "emitted": emitted}
        return Result("start", text, data)


__all__ = ["CascadeStatement", "Field", "Start", "drop_field", "known_fields"]
