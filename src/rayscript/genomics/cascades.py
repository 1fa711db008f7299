"""Cascades written in the language, rank side: fields, and handlers run over batches of messages.

A cascade runs in rounds on every rank at once (a collective order).  A message is one row of a
batch: the k-mer it is sent to (its id *as oriented*: the strand it arrived on) and one column per
parameter.  Each round a rank

1. takes the messages bound for its k-mers, looks them all up at once (sorted by id first, then one
   binary search over the set's sorted ids), drops those to k-mers it does not hold (counted); a
   batch of a few messages goes one by one through the body compiled to Python (cascade_small);
2. runs the handler over the whole batch: the body was compiled once, when the cascade started,
   into Python closures that each make one numpy operation over the batch: an ``if`` is a mask,
   ``stop`` clears lanes of the mask, a field read is a gather by the k-mers' positions, ``set`` a
   scatter, ``send kmer.neighbours`` an expansion by the k-mers' edge bits (every (lane, base) pair
   found in one pass), ``emit`` a masked sum, min and max;
3. hands the messages it made to the k-mers' owners: those it owns itself are handled at once, in
   the same round (a chain that stays on one rank costs no exchange), the others travel in one
   ALLTOALLV per cascade, after one ALLREDUCE of how many go from every rank to every rank; when
   that count is zero everywhere (and no rank has messages left), the cascade is over: every
   message sent has been handled (termination is exact, not guessed from idle time).  When few
   messages are left anywhere, they go point to point instead (:class:`Quiet`).

Several messages to one k-mer in one batch are handled as if one after another: when the body
reads a field it also sets, the batch is cut into waves in which each k-mer appears once (the
first message to each k-mer, then the second, ...; a relaxation's smallest first); otherwise the
batch is one wave and of several writes to one k-mer the last one stays.

Messages go to a k-mer's owner rank (``partition.owner``): the owner's copy is the one a cascade
reads and writes; copies held elsewhere (after a copy or a replica) keep their fields as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from ..errors import RayScriptError
from ..language import cascade as ast
from ..protocol.cascades import CascadeDone, FieldOrder, FieldsOrder, FieldsReply, StartCascade
from ..protocol.core import Ack
from ..runtime.backoff import Backoff
from ..runtime.collective import POLITE_NAP, POLITE_SPINS
from ..store import encoding
from ..store.kmertable import NBUCKETS, KmerTable
from ..store.partition import mix64, mix64_array, owners
from ..store.types import Ids, NarrowIds
from .cascade_small import SMALL, SmallBody

if TYPE_CHECKING:
    from ..runtime.node import Node

Array = npt.NDArray[Any]
Fn = Callable[["Lanes"], Any]  # a compiled expression: its value over a batch (an array, or a scalar)
Block = Callable[["Lanes", Array], Array]  # a compiled block: the lanes still going after it

_COMP = np.array([0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15], np.uint8)  # complement of a base set
_POP = np.array([bin(i).count("1") for i in range(16)], np.int64)
_BASES = np.arange(4, dtype=np.uint8)
# a rank works at most this long on messages to its own k-mers before the others hear from it
LOCAL_SLICE = 0.2
# how often rank 0 shows how far a cascade got (seconds)
PROGRESS_EVERY = 0.25
# when at most this many messages are in flight or in hand on all ranks together, they go point to
# point (Quiet); when a rank has more than QUIET_ABOVE in hand there, all go back to rounds
QUIET_BELOW = 256
QUIET_ABOVE = 4096
# how long an idle rank of the quiet phase waits for a packet before it looks at its clock again
QUIET_TICK = 0.05
# how often a working rank of the quiet phase tells rank 0 how many messages it handled
REPORT_EVERY = 0.25
# a batch of more messages than this is sorted by k-mer before it is looked up
SORTED_ABOVE = 64
# a batch larger than this is handled in parts (bounds the temporaries)
MAX_BATCH = 1 << 22


def dtype_of(kind: str) -> type:
    return np.float64 if kind == "float" else np.int64


class Graph:
    """A set's k-mers as flat arrays for the length of a cascade: ids in order (for k <= 31), counts,
    edges, and the fields the program uses; lookups of whole batches."""

    def __init__(self, table: KmerTable, fields: list[str], rank: int, size: int) -> None:
        table._fold()
        self.table = table
        self.k = table.k or 0
        self.canonical = table.canonical
        self.wide = table.wide
        sizes = np.array([len(a) for a in table.ids], np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(sizes)))
        self.n = int(self.offsets[-1])
        self.counts = np.concatenate(table.counts) if self.n else np.empty(0, np.uint32)
        self.edges = np.concatenate(table.edges) if self.n else np.empty(0, np.uint8)
        # ids of one word: one sorted array (empty on a rank that holds none); wider ids stay in buckets
        self.flat_ids = None if self.wide else np.concatenate(table.ids) if self.n else np.empty(0, np.uint64)
        self.fields = {name: table.column_flat(name) for name in fields}
        self.rank, self.size = rank, size

    def ids_at(self, pos: Array) -> Ids:
        """The (canonical) ids of the k-mers at flat positions ``pos``."""
        if self.flat_ids is not None:
            return cast("Ids", self.flat_ids[pos])
        out = np.empty(len(pos), encoding.id_dtype(self.k))
        b = np.searchsorted(self.offsets, pos, side="right") - 1
        for bucket in np.unique(b):
            sel = b == bucket
            keys = self.table.ids[int(bucket)][pos[sel] - self.offsets[bucket]]
            out[sel] = self.table.ids_of(keys, int(bucket))
        return out

    def canonical_of(self, ids: Ids) -> Ids:
        if not self.canonical:
            return ids
        if len(ids) <= SMALL and not self.wide:  # a few ids: word by word costs less than numpy's calls
            k, rc = self.k, encoding.revcomp_word
            return np.array([min(x, rc(x, k)) for x in ids.tolist()], np.uint64)
        return encoding.canonical_array(ids, self.k)

    def owners(self, canon: Ids) -> Array:
        """The ranks that own these (canonical) ids."""
        if len(canon) <= SMALL and not self.wide:
            size = self.size
            return np.array([mix64(x) % size for x in canon.tolist()], np.int64)
        return owners(canon, self.size)

    def lookup(self, canon: Ids) -> tuple[Array, Array]:
        """(positions, found) of canonical ids in the flat arrays."""
        n = len(canon)
        if self.n == 0 or n == 0:
            return np.zeros(n, np.int64), np.zeros(n, bool)
        if self.flat_ids is not None:
            pos = np.searchsorted(self.flat_ids, canon)
            at = np.minimum(pos, self.n - 1)
            return at, (pos < self.n) & (self.flat_ids[at] == canon)
        pos = np.zeros(n, np.int64)
        found = np.zeros(n, bool)
        for b, idx, at in self.table.positions(canon):
            pos[idx] = at + self.offsets[b]
            found[idx] = True
        return pos, found

    def write_back(self, written: set[str]) -> None:
        for name in written:
            self.table.set_column_flat(name, self.fields[name])


class Lanes:
    """One batch of messages at their k-mers: positions, ids as oriented, parameters, lets."""

    __slots__ = ("_cache", "canon", "graph", "lets", "n", "oriented", "params", "pos")

    def __init__(self, graph: Graph, pos: Array, oriented: Ids, canon: Ids, params: dict[str, Array]) -> None:
        self.graph = graph
        self.pos = pos
        self.oriented = oriented
        self.canon = canon
        self.params = params
        self.lets: dict[str, Any] = {}
        self.n = len(pos)
        self._cache: dict[str, Array] = {}

    def strand_edges(self) -> tuple[Array, Array]:
        """(successor bases, predecessor bases) of each k-mer as the message sees it (4-bit masks)."""
        if "outs" not in self._cache:
            e = self.graph.edges[self.pos]
            after, before = e & 15, e >> 4
            if self.graph.canonical:
                rev = encoding.same(self.oriented, self.canon) == False  # noqa: E712 - an array
                outs = np.where(rev, _COMP[before], after)
                ins = np.where(rev, _COMP[after], before)
            else:
                outs, ins = after, before
            self._cache["outs"], self._cache["ins"] = outs, ins
        return self._cache["outs"], self._cache["ins"]

    def prop(self, name: str) -> Any:
        got = self._cache.get(name)
        if got is not None:
            return got
        g = self.graph
        if name == "count":
            got = g.counts[self.pos].astype(np.int64)
        elif name == "id":
            # k > 31: a 63-bit key, the same for a k-mer on every rank and in every run
            got = ((mix64_array(self.canon) >> np.uint64(1)).astype(np.int64) if g.wide
                   else self.canon.astype(np.int64))
        elif name == "bases":
            return g.k
        elif name in ("degree", "in_degree", "out_degree"):
            outs, ins = self.strand_edges()
            got = {"degree": _POP[outs] + _POP[ins], "in_degree": _POP[ins], "out_degree": _POP[outs]}[name]
        else:  # a field: read afresh (a set earlier in the body changes it)
            return g.fields[name][self.pos]
        self._cache[name] = got
        return got


class Outbox:
    """Messages made in a round, per cascade: blocks of (oriented ids, parameter columns); a few made
    one by one wait as rows (id as oriented, arguments...) by destination rank."""

    def __init__(self) -> None:
        self.blocks: dict[str, list[tuple[Ids, list[Array]]]] = {}
        self.few: dict[int, dict[str, list[tuple[Any, ...]]]] = {}
        self.sent = 0

    def add(self, name: str, ids: Ids, cols: list[Array]) -> None:
        if len(ids):
            self.blocks.setdefault(name, []).append((ids, cols))
            self.sent += len(ids)


class Handler:
    """A cascade's body compiled into closures over batches (see the module's text)."""

    def __init__(self, run: Cascade, defn: ast.CascadeDef, types: dict[str, str]) -> None:
        self.run = run
        self.defn = defn
        self.types = types
        self.lets: dict[str, str] = {}
        read, written = ast.fields_read(defn), ast.fields_written(defn)
        # a field only ever changed by 'set kmer.F = kmer.F + E' (and read nowhere else) adds up: several
        # messages to one k-mer in a batch sum into it at once (a scatter-add), with no waves
        self.sums = self._sums(defn)
        self.waves = bool((read - set(self.sums)) & written)
        self.order = self._order(defn) if self.waves else None
        self.body = self.block(defn.body)
        # a batch of a few messages: the body as Python over one message (k <= 31)
        self.small = None if run.graph.wide else SmallBody(self)

    @staticmethod
    def _order(defn: ast.CascadeDef) -> tuple[int, bool] | None:
        """(parameter, ascending) to order one k-mer's messages by within a batch, or None.

        Any order is right (messages to one k-mer are handled as if one after another in *some*
        order); a good one saves work.  A relaxation (``if kmer.F <= p { stop }; set kmer.F = p``)
        handles its smallest ``p`` first: the later messages then stop at the test, where another
        order would set the field and send again for each."""
        fields = ast.fields_read(defn) & ast.fields_written(defn)
        assigned = {(st.name, st.value.name) for st in ast.walk_body(defn.body)
                    if isinstance(st, ast.SetField) and st.name in fields and isinstance(st.value, ast.Name)
                    and st.value.name in defn.params}
        for st in ast.walk_body(defn.body):
            for e in ast.body_exprs(st):
                for x in ast.walk_expr(e):
                    if not (isinstance(x, ast.Op) and x.op in ("<", "<=", ">", ">=") and len(x.args) == 2):
                        continue
                    a, b = x.args
                    small = x.op in ("<", "<=")  # a is the smaller
                    if isinstance(b, ast.Attr) and isinstance(a, ast.Name):
                        a, b, small = b, a, not small
                    if (isinstance(a, ast.Attr) and a.obj == defn.kmer and isinstance(b, ast.Name)
                            and (a.attr, b.name) in assigned):
                        # 'kmer.F <= p' guards a stop: small p first; 'kmer.F >= p': large p first
                        return defn.params.index(b.name), small
        return None

    def _sums(self, defn: ast.CascadeDef) -> dict[str, int]:
        reads: dict[str, int] = {}
        sums: dict[str, int] = {}
        sets: dict[str, int] = {}
        for st in ast.walk_body(defn.body):
            for e in ast.body_exprs(st):
                for x in ast.walk_expr(e):
                    if isinstance(x, ast.Attr) and x.obj == defn.kmer:
                        reads[x.attr] = reads.get(x.attr, 0) + 1
            if isinstance(st, ast.SetField):
                sets[st.name] = sets.get(st.name, 0) + 1
                if self._summand(st, defn) is not None:
                    sums[st.name] = sums.get(st.name, 0) + 1
        return {f: n for f, n in sums.items() if n == sets[f] and reads.get(f, 0) == n}

    @staticmethod
    def _summand(st: ast.SetField, defn: ast.CascadeDef) -> ast.Expr | None:
        """E of 'set kmer.F = kmer.F + E' (or E + kmer.F) when E does not read F; else None."""
        v = st.value
        if not (isinstance(v, ast.Op) and v.op == "+" and len(v.args) == 2):
            return None
        for me, other in ((v.args[0], v.args[1]), (v.args[1], v.args[0])):
            if isinstance(me, ast.Attr) and me.obj == defn.kmer and me.attr == st.name and not any(
                    isinstance(x, ast.Attr) and x.attr == st.name for x in ast.walk_expr(other)):
                return other
        return None

    # --- expressions ------------------------------------------------------------------
    def expr(self, e: ast.Expr) -> Fn:
        if isinstance(e, ast.Num):
            value = e.value
            return lambda lanes: value
        if isinstance(e, ast.Name):
            name = e.name
            if name in self.lets:
                return lambda lanes: lanes.lets[name]
            return lambda lanes: lanes.params[name]
        if isinstance(e, ast.Attr):
            attr = e.attr
            return lambda lanes: lanes.prop(attr)
        if isinstance(e, ast.Call):
            args = [self.expr(a) for a in e.args]
            if e.fn == "abs":
                (a,) = args
                return lambda lanes: np.abs(a(lanes))
            fn = np.minimum if e.fn == "min" else np.maximum
            a, b = args
            return lambda lanes: fn(a(lanes), b(lanes))
        if isinstance(e, ast.Op):
            return self.op(e)
        raise RayScriptError(f"a {type(e).__name__} cannot be a value here")

    def op(self, e: ast.Op) -> Fn:
        args = [self.expr(a) for a in e.args]
        if e.op == "not":
            (a,) = args
            return lambda lanes: np.logical_not(a(lanes))
        if len(args) == 1:  # unary minus
            (a,) = args
            return lambda lanes: np.negative(a(lanes))
        a, b = args
        op = e.op
        if op == "/":
            def divide(lanes: Lanes) -> Any:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.true_divide(a(lanes), b(lanes))
            return divide
        if op == "%":
            def modulo(lanes: Lanes) -> Any:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.mod(a(lanes), b(lanes))
            return modulo
        fn = {"+": np.add, "-": np.subtract, "*": np.multiply, "and": np.logical_and, "or": np.logical_or,
              ">=": np.greater_equal, "<=": np.less_equal, ">": np.greater, "<": np.less, "==": np.equal,
              "!=": np.not_equal}[op]
        return lambda lanes: fn(a(lanes), b(lanes))

    # --- statements ---------------------------------------------------------------------
    def block(self, body: tuple[ast.Body, ...]) -> Block:
        steps = [self.statement(st) for st in body]

        def run(lanes: Lanes, mask: Array) -> Array:
            for step in steps:
                if not mask.any():
                    break
                mask = step(lanes, mask)
            return mask

        return run

    def statement(self, st: ast.Body) -> Block:
        if isinstance(st, ast.Let):
            return self.let(st)
        if isinstance(st, ast.If):
            cond = self.expr(st.cond)
            then = self.block(st.then)
            orelse = self.block(st.orelse) if st.orelse else None

            def branch(lanes: Lanes, mask: Array) -> Array:
                c = np.broadcast_to(np.asarray(cond(lanes), bool), mask.shape)
                yes, no = mask & c, mask & ~c
                out = then(lanes, yes) if yes.any() else yes
                if orelse is not None and no.any():
                    no = orelse(lanes, no)
                return out | no
            return branch
        if isinstance(st, ast.Stop):
            return lambda lanes, mask: np.zeros_like(mask)
        if isinstance(st, ast.SetField):
            return self.set_field(st)
        if isinstance(st, ast.Send):
            return self.send(st)
        if isinstance(st, ast.Emit):
            value = self.expr(st.value)

            def emit(lanes: Lanes, mask: Array) -> Array:
                v: Array = np.broadcast_to(value(lanes), mask.shape)[mask]
                self.run.emitted(v)
                return mask
            return emit
        raise RayScriptError(f"a {type(st).__name__} cannot be run")  # pragma: no cover

    def let(self, st: ast.Let) -> Block:
        value = self.expr(st.value)
        name = st.name
        kind = self.lets.get(name)
        new_kind = self._kind(st.value)
        kind = new_kind if kind is None else ast.join(kind, new_kind)
        self.lets[name] = kind
        dtype = dtype_of(kind)

        def let(lanes: Lanes, mask: Array) -> Array:
            v: Array = np.broadcast_to(np.asarray(value(lanes), dtype), mask.shape)
            old = lanes.lets.get(name)
            if mask.all():
                lanes.lets[name] = v
            else:
                lanes.lets[name] = np.where(mask, v, old if old is not None else np.zeros((), dtype))
            return mask
        return let

    def _kind(self, e: ast.Expr) -> str:
        typing = ast.Typing(self.defn, self.types, {n: k for n, k in self.run.field_kinds.items()}, [])
        typing.lets = dict(self.lets)
        t = typing.expr(e)
        return t if t in ("int", "float") else "int"

    def set_field(self, st: ast.SetField) -> Block:
        name = st.name
        self.run.written.add(name)
        summand = self._summand(st, self.defn) if name in self.sums else None
        if summand is not None:
            add = self.expr(summand)

            def accumulate(lanes: Lanes, mask: Array) -> Array:
                column = lanes.graph.fields[name]
                v = np.broadcast_to(np.asarray(add(lanes), column.dtype), mask.shape)
                np.add.at(column, lanes.pos[mask], v[mask])
                return mask
            return accumulate
        value = self.expr(st.value)

        def assign(lanes: Lanes, mask: Array) -> Array:
            column = lanes.graph.fields[name]
            v = np.broadcast_to(value(lanes), mask.shape)
            column[lanes.pos[mask]] = v[mask]
            return mask
        return assign

    def send(self, st: ast.Send) -> Block:
        target = st.target
        args = [self.expr(a) for a in st.args]
        callee = st.cascade
        kinds = [self.run.param_kinds(callee)[p] for p in self.run.program[callee][0].params]
        dtypes = [dtype_of(k) for k in kinds]

        def columns(lanes: Lanes, lanes_idx: Array) -> list[Array]:
            out: list[Array] = []
            for a, dt in zip(args, dtypes):
                v = np.asarray(a(lanes))
                out.append(np.full(len(lanes_idx), v, dt) if v.ndim == 0 else v[lanes_idx].astype(dt, copy=False))
            return out

        if isinstance(target, ast.Attr) and target.attr in ast.TARGETS:
            which = target.attr

            def expand(lanes: Lanes, mask: Array) -> Array:
                outs, ins = lanes.strand_edges()
                k = lanes.graph.k
                ids_parts, idx_parts = [], []
                for bases, step in ((outs, encoding.followers), (ins, encoding.leaders)):
                    if (step is encoding.followers and which == "prev") or (
                            step is encoding.leaders and which == "next"):
                        continue
                    # one (lane, base) pair per neighbour of a lane still going, in one pass
                    lane, base = np.nonzero(((bases[:, None] >> _BASES) & 1).astype(bool) & mask[:, None])
                    if len(lane):
                        ids_parts.append(step(lanes.oriented[lane], k, base.astype(np.uint64)))
                        idx_parts.append(lane)
                if ids_parts:
                    idx = np.concatenate(idx_parts) if len(idx_parts) > 1 else idx_parts[0]
                    self.run.outbox.add(callee, encoding.concatenate(ids_parts, k), columns(lanes, idx))
                return mask
            return expand
        if isinstance(target, ast.KeyLit):
            bases = target.bases

            def to_key(lanes: Lanes, mask: Array) -> Array:
                k = lanes.graph.k
                if len(bases) != k:
                    raise RayScriptError(f"send {callee}(kmers/{bases}, ...): the key has {len(bases)} bases and "
                                         f"the set's k-mers {k}")
                idx = np.flatnonzero(mask)
                ident = encoding.ids_array([encoding.encode(bases)], k)
                self.run.outbox.add(callee, cast("Ids", np.repeat(ident, len(idx))), columns(lanes, idx))
                return mask
            return to_key
        ident_fn = self.expr(target)

        def to_id(lanes: Lanes, mask: Array) -> Array:
            if lanes.graph.wide:
                raise RayScriptError(f"send {callee}(ID, ...): a k-mer is sent to by its id only for k <= 31 "
                                     f"(this set has k={lanes.graph.k}); send to kmer.neighbours or a key")
            idx = np.flatnonzero(mask)
            ids = np.broadcast_to(np.asarray(ident_fn(lanes)), mask.shape)[idx]
            self.run.outbox.add(callee, ids.astype(np.uint64), columns(lanes, idx))
            return mask
        return to_id

    # --- a batch -------------------------------------------------------------------
    def handle(self, graph: Graph, pos: Array, oriented: Ids, canon: Ids, cols: list[Array],
               in_order: bool = False) -> None:
        """A batch; ``in_order``: sorted by position already (and a k-mer's messages in the order).
        (A batch of a few messages goes to ``self.small`` before: Cascade._few.)"""
        if not self.waves or len(pos) < 2:
            self._wave(graph, pos, oriented, canon, cols)
            return
        if in_order:
            order = np.arange(len(pos))
        elif self.order is not None:  # within a k-mer, the messages in the order that saves work
            key = cols[self.order[0]]
            order = np.lexsort((key if self.order[1] else -key, pos))
        else:
            order = np.argsort(pos, kind="stable")
        sp = pos[order]
        first = np.empty(len(sp), bool)
        first[0] = True
        np.not_equal(sp[1:], sp[:-1], out=first[1:])
        if first.all():
            self._wave(graph, pos, oriented, canon, cols)
            return
        starts = np.maximum.accumulate(np.where(first, np.arange(len(sp)), 0))
        rank = np.empty(len(sp), np.int64)
        rank[order] = np.arange(len(sp)) - starts
        by_wave = np.argsort(rank, kind="stable")
        sizes = np.bincount(rank)
        at = 0
        for size in sizes:
            sel = by_wave[at:at + size]
            at += size
            self._wave(graph, pos[sel], oriented[sel], canon[sel], [c[sel] for c in cols])

    def _wave(self, graph: Graph, pos: Array, oriented: Ids, canon: Ids, cols: list[Array]) -> None:
        lanes = Lanes(graph, pos, oriented, canon, dict(zip(self.defn.params, cols)))
        self.body(lanes, np.ones(len(pos), bool))


class Cascade:
    """One ``start`` on one rank: the compiled handlers, the messages in hand, the counters."""

    def __init__(self, node: Node, msg: StartCascade) -> None:
        self.node = node
        self.msg = msg
        self.program: dict[str, tuple[ast.CascadeDef, dict[str, str]]] = msg.program
        table = node.store.table(msg.kset)
        self.field_kinds = {n: c.kind for n, c in table.columns.items()}
        used: set[str] = set()
        for defn, _types in self.program.values():
            used |= ast.fields_read(defn) | ast.fields_written(defn)
        missing = sorted(used - set(self.field_kinds))
        if missing and len(table):
            raise RayScriptError(f"{msg.kset} has no field {missing[0]} on rank {node.rank}")
        for name in missing:  # a rank that holds none of the set: an empty column
            table.add_column(name, "int", 0)
            self.field_kinds[name] = "int"
        self.graph = Graph(table, sorted(used), node.rank, node.size)
        if msg.k and self.graph.n and self.graph.k != msg.k:
            raise RayScriptError(f"{msg.kset} has k={self.graph.k} on rank {node.rank}, not {msg.k}")
        if not self.graph.k:
            self.graph.k = msg.k
            self.graph.wide = encoding.is_wide(msg.k)
        self.written: set[str] = set()
        self.outbox = Outbox()
        self.handlers = {name: Handler(self, defn, types) for name, (defn, types) in self.program.items()}
        self.handled = self.dropped = self.started = self.rounds = 0
        self.emit_count, self.emit_sum = 0, 0.0
        self.emit_min: float | None = None
        self.emit_max: float | None = None
        # messages in hand: cascade -> blocks of (oriented ids, columns); and a few as rows (id as
        # oriented, arguments...), which the body compiled for one message takes without numpy
        self.inbox: dict[str, list[tuple[Ids, list[Array]]]] = {}
        self.few: dict[str, list[tuple[Any, ...]]] = {}
        self._cast_cache: dict[str, list[type] | None] = {}

    def param_kinds(self, name: str) -> dict[str, str]:
        return self.program[name][1]

    def emitted(self, values: Array) -> None:
        if not len(values):
            return
        self.emit_count += len(values)
        self.emit_sum += float(values.sum())
        lo, hi = values.min().item(), values.max().item()
        self.emit_min = lo if self.emit_min is None else min(self.emit_min, lo)
        self.emit_max = hi if self.emit_max is None else max(self.emit_max, hi)

    # --- the start messages ---------------------------------------------------------------
    def start(self) -> None:
        msg, g = self.msg, self.graph
        first = self.handlers[self.msg.first]
        kind, what = msg.source
        if kind == "key":
            oriented = encoding.ids_array([what], g.k)
            canon = g.canonical_of(oriented)
            if owners(canon, g.size)[0] != g.rank:
                return
            pos, found = g.lookup(canon)
            if not found[0]:
                self.started += 1
                self.dropped += 1
                return
        else:
            pos = self._selected(what)
            canon = g.ids_at(pos)
            oriented = canon
        self.started += len(pos)
        if not len(pos):
            return
        lanes = Lanes(g, pos, oriented, canon, {})
        cols: list[Array] = []
        for e, p in zip(msg.args, first.defn.params):
            v = np.asarray(first.expr(e)(lanes))
            dt = dtype_of(first.types[p])
            cols.append(np.full(len(pos), v, dt) if v.ndim == 0 else v.astype(dt, copy=False))
        self.inbox.setdefault(msg.first, []).append((oriented, cols))

    def _selected(self, sel: tuple) -> Array:
        """Flat positions of the k-mers of the selector this rank owns."""
        g, table = self.graph, self.graph.table
        parts = []
        for b in range(NBUCKETS):
            if not len(table.ids[b]):
                continue
            mask = table._mask(b, sel)
            if g.size > 1:
                mask &= owners(table.ids_of(table.ids[b], b), g.size) == g.rank
            parts.append(np.flatnonzero(mask) + g.offsets[b])
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    # --- rounds --------------------------------------------------------------------
    def in_hand(self) -> bool:
        return bool(self.inbox or self.few)

    def handle_inbox(self, budget_end: float) -> None:
        """Handle the messages in hand, and those this rank sends to its own k-mers, until none is
        left or the time slice is over."""
        while self.inbox or self.few:
            self.handle_pass()
            if time.monotonic() > budget_end or self._over_limit():
                break

    def handle_pass(self) -> None:
        """Handle the messages in hand (one batch per cascade); those made for this rank's own k-mers
        are in hand after it, the others in the outbox."""
        g = self.graph
        for name in sorted(set(self.inbox) | set(self.few)):
            rows = self.few.pop(name, None)
            small = self.handlers[name].small
            if rows and small is not None and name not in self.inbox and len(rows) <= SMALL:
                self._few(small, rows)
                continue
            if rows:
                self.inbox.setdefault(name, []).append(self._block(name, rows))
            blocks = self.inbox.pop(name)
            ids = encoding.concatenate([b[0] for b in blocks], g.k) if len(blocks) > 1 else blocks[0][0]
            ncols = len(self.program[name][0].params)
            cols = ([np.concatenate([b[1][i] for b in blocks]) for i in range(ncols)] if len(blocks) > 1
                    else blocks[0][1])
            for lo in range(0, len(ids), MAX_BATCH):
                self._batch(name, ids[lo:lo + MAX_BATCH], [c[lo:lo + MAX_BATCH] for c in cols])
        self.route_local()

    def _over_limit(self) -> bool:
        return bool(self.msg.max_messages) and self.handled > self.msg.max_messages

    def _batch(self, name: str, ids: Ids, cols: list[Array]) -> None:
        g = self.graph
        small = self.handlers[name].small
        if small is not None and len(ids) <= SMALL and g.flat_ids is not None:
            self._few(small, list(zip(ids.tolist(), *(c.tolist() for c in cols))))
            return
        canon = g.canonical_of(ids)
        handler = self.handlers[name]
        in_order = len(ids) > SORTED_ABOVE
        if in_order:
            # the batch in the order of the k-mers' ids: the binary searches then go from left to right
            # through the set's ids (several times faster than in random order, the set being far
            # larger than the caches), the positions come out sorted, and the waves need no sort of
            # their own (a k-mer's messages in the order that saves work, when the body has one)
            if handler.waves and handler.order is not None:
                key = cols[handler.order[0]]
                order = np.lexsort((key if handler.order[1] else -key, canon))
            elif not handler.waves and g.flat_ids is not None:
                # no waves to order: the first 16 bits of the ids are order enough for the searches
                # (one pass of a radix sort)
                top = (cast("NarrowIds", canon) >> np.uint64(max(2 * g.k - 16, 0))).astype(np.uint16)
                order = np.argsort(top, kind="stable")
                in_order = False
            else:
                order = np.argsort(canon, kind="stable")
            ids, canon, cols = ids[order], canon[order], [c[order] for c in cols]
        pos, found = g.lookup(canon)
        n = len(ids)
        if not found.all():
            self.dropped += int(n - found.sum())
            ids, canon, pos = ids[found], canon[found], pos[found]
            cols = [c[found] for c in cols]
        self.handled += len(ids)
        if len(ids):
            handler.handle(g, pos, ids, canon, cols, in_order)

    def _few(self, small: SmallBody, rows: list[tuple[Any, ...]]) -> None:
        """A few messages as rows (id as oriented, arguments...), looked up and handled one by one
        (ids of one word)."""
        g = self.graph
        k, rc, flat = g.k, encoding.revcomp_word, g.flat_ids
        assert flat is not None
        oriented = [r[0] for r in rows]
        canon = [min(x, rc(x, k)) for x in oriented] if g.canonical else oriented
        at = np.searchsorted(flat, np.array(canon, np.uint64)).tolist() if g.n else [0] * len(canon)
        found = [(p, r[0], c, *r[1:]) for p, c, r in zip(at, canon, rows) if p < g.n and flat.item(p) == c]
        self.dropped += len(rows) - len(found)
        self.handled += len(found)
        small.handle_rows(found)

    def _casts(self, name: str) -> list[type] | None:
        """The types of a cascade's parameters, when one is a float (an int argument becomes one)."""
        if name not in self._cast_cache:
            kinds = self.param_kinds(name)
            params = self.program[name][0].params
            self._cast_cache[name] = [float if kinds[p] == "float" else int for p in params] if any(
                kinds[p] == "float" for p in params) else None
        return self._cast_cache[name]

    def route_rows(self, name: str, made: list[tuple[Any, ...]]) -> None:
        """Messages made one by one (rows: id as oriented, arguments...) to their owners: this rank's
        into its hand, the others' into the outbox, still as rows."""
        g = self.graph
        k, rc, size, rank, canonical = g.k, encoding.revcomp_word, g.size, g.rank, g.canonical
        casts = self._casts(name)
        here = self.few.setdefault(name, [])
        for row in made:
            if casts is not None:
                row = (row[0], *[f(v) for f, v in zip(casts, row[1:])])
            if size > 1:
                o = row[0]
                dest = mix64(min(o, rc(o, k)) if canonical else o) % size
                if dest != rank:
                    self.outbox.few.setdefault(dest, {}).setdefault(name, []).append(row)
                    continue
            here.append(row)
        if not here:
            del self.few[name]
        self.outbox.sent += len(made)

    def _block(self, name: str, rows: list[tuple[Any, ...]]) -> tuple[Ids, list[Array]]:
        """Rows (id as oriented, arguments...) as a block of arrays."""
        kinds = self.param_kinds(name)
        columns = list(zip(*rows))
        return (cast("Ids", np.array(columns[0], np.uint64)),
                [np.array(columns[i + 1], dtype_of(kinds[p])) for i, p in enumerate(self.program[name][0].params)])

    def flush_few(self) -> None:
        """The remote rows of the outbox as blocks of arrays (for a round's exchange)."""
        for dest, by_name in self.outbox.few.items():
            for name, rows in by_name.items():
                ids, cols = self._block(name, rows)
                self.outbox.blocks.setdefault(name, []).append((ids, [*cols, np.full(len(ids), dest, np.int64)]))
        self.outbox.few = {}

    def route_local(self) -> None:
        """Messages made to k-mers this rank owns go to its inbox; the others stay in the outbox."""
        g = self.graph
        remote: dict[str, list[tuple[Ids, list[Array]]]] = {}
        for name, blocks in self.outbox.blocks.items():
            for ids, cols in blocks:
                if g.size == 1:
                    self.inbox.setdefault(name, []).append((ids, cols))
                    continue
                dest = g.owners(g.canonical_of(ids))
                here = dest == g.rank
                if here.all():
                    self.inbox.setdefault(name, []).append((ids, cols))
                    continue
                if here.any():
                    self.inbox.setdefault(name, []).append((ids[here], [c[here] for c in cols]))
                    away = ~here
                    ids, cols, dest = ids[away], [c[away] for c in cols], dest[away]
                remote.setdefault(name, []).append((ids, [*cols, dest]))
        self.outbox.blocks = remote

    def pending(self) -> int:
        return (sum(len(ids) for blocks in self.inbox.values() for ids, _ in blocks)
                + sum(len(rows) for rows in self.few.values()))

    def exchange(self, names: list[str], matrix: Array) -> None:
        """Send every remote message to its owner (one ALLTOALLV per cascade with messages in flight)."""
        coll = self.node.collective
        g = self.graph
        size = g.size
        for c, name in enumerate(names):
            counts = matrix[c].reshape(size, size)
            if not counts.any():
                continue
            rows, dest = self._rows(name)
            self.outbox.blocks.pop(name, None)
            rows = rows[np.argsort(dest, kind="stable")]
            width = rows.shape[1]
            got = coll.exchange_known(rows.reshape(-1), counts[g.rank] * width, counts[:, g.rank] * width)
            flat = np.concatenate(got) if len(got) > 1 else got[0]
            self._take_rows(name, flat.reshape(-1, width))

    def counts_matrix(self, names: list[str]) -> Array:
        self.flush_few()
        size = self.graph.size
        out = np.zeros((len(names), size, size), np.int64)
        for c, name in enumerate(names):
            for blocks in self.outbox.blocks.get(name, []):
                dest = blocks[1][-1]
                out[c, self.graph.rank] += np.bincount(dest, minlength=size)
        return out

    def _rows(self, name: str) -> tuple[Array, Array]:
        """The remote messages of cascade ``name`` as rows of 64-bit words (id words, then one word
        per parameter), and their destinations."""
        g = self.graph
        idw = encoding.id_words(g.k)
        ncols = len(self.program[name][0].params)
        blocks = self.outbox.blocks.get(name, [])
        if not blocks:
            return np.empty((0, idw + ncols), np.uint64), np.empty(0, np.int64)
        ids = encoding.concatenate([b[0] for b in blocks], g.k)
        rows = np.empty((len(ids), idw + ncols), np.uint64)
        rows[:, :idw] = ids.view(np.uint64).reshape(len(ids), idw)
        for i in range(ncols):
            rows[:, idw + i] = np.concatenate([b[1][i] for b in blocks]).view(np.uint64)
        dest = np.concatenate([b[1][ncols] for b in blocks]).astype(np.int64)
        return rows, dest

    def _take_rows(self, name: str, rows: Array) -> None:
        """Messages that arrived as rows: into the inbox."""
        if not len(rows):
            return
        g = self.graph
        idw = encoding.id_words(g.k)
        ids_in = np.ascontiguousarray(rows[:, :idw]).view(encoding.id_dtype(g.k)).reshape(-1)
        kinds = self.param_kinds(name)
        cols_in: list[Array] = [np.ascontiguousarray(rows[:, idw + i]).view(dtype_of(kinds[p]))
                                for i, p in enumerate(self.program[name][0].params)]
        self.inbox.setdefault(name, []).append((cast("Ids", ids_in), cols_in))

    def run(self) -> CascadeDone:
        msg, node = self.msg, self.node
        coll = node.collective
        began = time.monotonic()
        names = sorted(self.program)
        self.start()
        stopped = ""
        nflags = 5
        shown = began
        while True:
            self.handle_inbox(time.monotonic() + LOCAL_SLICE)
            self.rounds += 1
            matrix = self.counts_matrix(names)
            flags = np.array([self.pending(), self.handled, int(node.poll_interrupt()),
                              int(bool(msg.timeout) and time.monotonic() - began > msg.timeout), 0], np.int64)
            total = coll.allreduce(np.concatenate((matrix.reshape(-1), flags)))
            cut = matrix.size
            matrix = total[:cut].reshape(len(names), -1)
            pending, handled, interrupted, late, _ = (int(x) for x in total[cut:cut + nflags])
            in_flight = int(matrix.sum())
            stopped = self._stop_reason(bool(interrupted), bool(late), handled)
            if stopped or (in_flight == 0 and pending == 0):
                break
            if in_flight + pending <= QUIET_BELOW:
                # few messages left anywhere (a chain: one): they go point to point until none is left
                # (or until they are many again: then back to rounds)
                quiet = Quiet(self, began)
                stopped = quiet.run()
                if not quiet.back:
                    break
                continue
            now = time.monotonic()
            if now - shown > PROGRESS_EVERY:  # messages handled, and those in flight or in hand now
                shown = now
                node.show_progress(handled, handled + in_flight + pending,
                                   f"cascade {msg.first}: round {self.rounds:,}, {in_flight + pending:,} in flight; "
                                   f"messages handled", "messages")
            self.exchange(names, matrix)
        self.graph.write_back(self.written)
        emitted = [self.emit_count, self.emit_sum, self.emit_min, self.emit_max]
        return CascadeDone(handled=self.handled, sent=self.outbox.sent, dropped=self.dropped, rounds=self.rounds,
                           started=self.started, emitted=emitted, stopped=stopped)

    def _stop_reason(self, interrupted: bool, late: bool, handled: int) -> str:
        """Why the cascade stops now (the user, its timeout, its max_messages), or ''."""
        msg = self.msg
        if interrupted:
            return "interrupted (Ctrl-C)"
        if late:
            return f"past its timeout ({msg.timeout:g} s)"
        if msg.max_messages and handled > msg.max_messages:
            return f"past max_messages={msg.max_messages} ({handled:,} messages handled)"
        return ""

    def packets(self) -> dict[int, dict[str, Any]]:
        """The remote messages made, as one packet per destination rank: per cascade, rows of words
        (an array), or a few as ("rows", [(id as oriented, arguments...), ...]), which pickle in a
        fraction of an array's time and are handled without numpy."""
        out: dict[int, dict[str, Any]] = {}
        for name in sorted(self.outbox.blocks):
            rows, dest = self._rows(name)
            if len(dest) and (dest == dest[0]).all():
                out.setdefault(int(dest[0]), {})[name] = rows
            else:
                for d in np.unique(dest).tolist():
                    out.setdefault(d, {})[name] = rows[dest == d]
        self.outbox.blocks = {}
        for to, by_name in self.outbox.few.items():
            for name, few in by_name.items():
                if name in out.get(to, {}):  # beside a block: into it
                    ids, cols = self._block(name, few)
                    words = np.column_stack([ids, *[c.view(np.uint64) for c in cols]])
                    out[to][name] = np.concatenate((out[to][name], words))
                else:
                    out.setdefault(to, {})[name] = ("rows", few)
        self.outbox.few = {}
        return out

    def take_packet_rows(self, rows: dict[str, Any]) -> None:
        for name, block in rows.items():
            if isinstance(block, tuple):
                self.few.setdefault(name, []).extend(block[1])
            else:
                self._take_rows(name, block)


class Quiet:
    """The end of a cascade, when few messages are left anywhere (a chain has one): messages travel
    point to point as soon as they are made, in one packet per destination rank, and no rank waits
    for the others between two steps.

    Termination is detected as Dijkstra and Scholten do, by acknowledgements: every packet of
    messages is acknowledged.  A rank that has nothing in hand and gets a packet becomes *engaged*
    and keeps that packet's acknowledgement back; the packets it gets while engaged are acknowledged
    when it next has nothing in hand (or with its next packet to their sender).  An engaged rank
    with nothing in hand whose own packets have all been acknowledged acknowledges the one it kept
    back and is free again.  The engaged ranks form a tree under rank 0 (the other ranks start
    engaged under it), so when rank 0 has nothing in hand and all its packets are acknowledged, no
    message is in hand or on its way anywhere, and rank 0 tells every rank the cascade is over.  A
    stop (Ctrl-C, timeout, max_messages) goes through rank 0 as well; rank 0 learns the others'
    handled counts from a report every REPORT_EVERY seconds while they work and from their last
    acknowledgement.  At the end every rank receives what was still posted to it (counted), so the
    channel is clean for the next statement.
    """

    def __init__(self, cascade: Cascade, began: float) -> None:
        self.c = cascade
        self.began = began
        self.coll = cascade.node.collective
        self.rank, self.size = cascade.graph.rank, cascade.graph.size
        self.sent = np.zeros(self.size, np.int64)  # packets of any kind, for the drain at the end
        self.got = np.zeros(self.size, np.int64)
        # rank 0 is the root; every other rank starts engaged under it (as if rank 0 had sent it a packet)
        self.deficit = self.size - 1 if self.rank == 0 else 0  # packets of messages not acknowledged yet
        self.parent: int | None = None if self.rank == 0 else 0
        self.owed: dict[int, int] = {}  # acknowledgements owed, by rank
        self.reports = [0] * self.size  # rank 0: messages handled by each rank, as last heard
        self.stopped = ""
        self.finished = False
        self.back = False  # the messages are many again: back to rounds
        self.asked_back = False

    def post(self, dest: int, packet: tuple[Any, ...]) -> None:
        self.coll.post(dest, packet)
        self.sent[dest] += 1

    def receive(self, packet: tuple[Any, ...], src: int) -> None:
        self.got[src] += 1
        kind = packet[0]
        if kind == "m":  # messages (perhaps none) and acknowledgements of packets this rank sent
            _, acks, rows, handled = packet
            self.deficit -= acks
            if self.rank == 0:
                self.reports[src] = handled
            if rows:
                if self.rank != 0 and self.parent is None:
                    self.parent = src  # engaged: this packet is acknowledged when the rank is free again
                else:
                    self.owed[src] = self.owed.get(src, 0) + 1
                self.c.take_packet_rows(rows)
        elif kind == "r":  # a report (rank 0)
            self.reports[src] = packet[1]
        elif kind == "x":  # a stop: asked for (rank 0), or ordered (from rank 0)
            self.stopped = self.stopped or packet[1]
            self.finished = self.rank != 0
        elif kind == "d":  # over
            self.finished = True
        elif kind == "b":  # back to rounds: asked for (rank 0), or ordered (from rank 0)
            self.back = True
            self.finished = self.rank != 0

    def run(self) -> str:
        c, coll, rank = self.c, self.coll, self.rank
        msg, node = c.msg, c.node
        idle: Backoff | None = None
        asked = False
        reported = shown = time.monotonic()
        while True:
            got = coll.take(time.monotonic() + QUIET_TICK, idle) if idle is not None else coll.take()
            while got is not None:
                self.receive(got[1], got[0])
                got = coll.take()
            if self.finished:
                break
            many = c.pending() > QUIET_ABOVE
            if c.in_hand():  # what is in hand, and what that makes for this rank, before anything leaves
                idle = None  # a wait after work starts hot again
                c.handle_inbox(time.monotonic() + LOCAL_SLICE)
            if c.outbox.blocks or c.outbox.few:
                for dest, rows in c.packets().items():
                    self.post(dest, ("m", self.owed.pop(dest, 0), rows, c.handled))
                    self.deficit += 1
            now = time.monotonic()
            if not c.in_hand():
                for dest, n in self.owed.items():
                    self.post(dest, ("m", n, None, c.handled))
                self.owed.clear()
                if self.parent is not None and self.deficit == 0:  # free again
                    self.post(self.parent, ("m", 1, None, c.handled))
                    self.parent = None
                if idle is None:  # waiting for a packet: spin (giving the core away), later nap
                    idle = Backoff(POLITE_NAP, POLITE_NAP, hot_turns=POLITE_SPINS, yield_every=2)
            else:
                idle = None
                if rank and now - reported > REPORT_EVERY:
                    reported = now
                    self.post(0, ("r", c.handled))
            handled = c.handled + sum(self.reports[1:]) if rank == 0 else c.handled
            reason = c._stop_reason(node.poll_interrupt(), bool(msg.timeout) and now - self.began > msg.timeout,
                                    handled if rank == 0 else 0)
            if rank != 0:
                if reason and not asked:
                    asked = True
                    self.post(0, ("x", reason))
                if many and not self.asked_back:
                    self.asked_back = True
                    self.post(0, ("b",))
                continue
            self.stopped = self.stopped or reason
            self.back = (self.back or many) and not self.stopped
            if self.stopped or self.back or (not c.in_hand() and self.deficit == 0):
                end = ("x", self.stopped) if self.stopped else ("b",) if self.back else ("d",)
                for r in range(1, self.size):
                    self.post(r, end)
                break
            if now - shown > PROGRESS_EVERY:
                shown = now
                node.show_progress(handled, handled, f"cascade {msg.first}: the last messages, point to point; "
                                                     f"messages handled", "messages")
        return self.end()

    def end(self) -> str:
        """Every rank: receive what is still posted to it, so nothing is left behind: messages kept when
        the cascade goes back to rounds, dropped after a stop."""
        c, coll = self.c, self.coll
        if self.stopped:
            c.inbox.clear()
            c.few.clear()
            c.outbox.blocks = {}
            c.outbox.few = {}
        matrix = np.zeros((self.size, self.size), np.int64)
        matrix[self.rank] = self.sent
        expected = coll.allreduce(matrix.reshape(-1)).reshape(self.size, self.size)[:, self.rank]
        backoff = Backoff(POLITE_NAP, POLITE_NAP, hot_turns=POLITE_SPINS)
        while (self.got < expected).any():
            got = coll.take(time.monotonic() + QUIET_TICK, backoff)
            if got is not None:
                self.got[got[0]] += 1
                packet = got[1]
                if packet[0] == "m" and packet[2] and not self.stopped:
                    c.take_packet_rows(packet[2])
        coll.settle()
        return self.stopped


class CascadeService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        node.register(FieldOrder, self.on_field)
        node.register(FieldsOrder, self.on_fields)
        node.register(StartCascade, self.on_start)

    def on_field(self, msg: FieldOrder) -> None:
        if msg.drop:
            table = self.store.sets.get(msg.kset)
            if table is not None:
                table.columns.pop(msg.name, None)
        else:
            self.store.made(msg.kset).add_column(msg.name, msg.dtype, msg.default)
        self.node.reply(msg, Ack())

    def on_fields(self, msg: FieldsOrder) -> None:
        out = {name: {f: (c.kind, c.default) for f, c in t.columns.items()}
               for name, t in self.store.sets.items() if t.columns}
        self.node.reply(msg, FieldsReply(held=out))

    def on_start(self, msg: StartCascade) -> None:
        with self.node.collective_order(msg, f"cascade {msg.first}"):
            run = Cascade(self.node, msg)
            self.node.reply(msg, run.run())
