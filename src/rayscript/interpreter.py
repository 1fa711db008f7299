"""The interpreter: walks statement nodes on a commander rank and turns each into control
messages sent through that rank's :class:`~rayscript.runtime.node.Node`.

Every statement class has an executor (a generator run as a task of the node) and a planner
(used by ``explain``); both build their orders with the same functions, so ``explain`` shows
exactly what would be sent.  ``on R { ... }`` hands the block to rank R in a RUN_BLOCK message:
rank R runs this same interpreter as the block's commander.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RankFailure, RayScriptError, RuntimeFault, ScriptError, StatementError
from .items import BY_NAMESPACE, pack_item, unpack_item
from .language import ast
from .language.help import help_text
from .language.parser import make_key
from .messages import (
    BlockDone,
    CopyOrder,
    DeleteOrder,
    GetOrder,
    HasOrder,
    Message,
    MoveOrder,
    PutOrder,
    RunBlock,
    StatsOrder,
    key_text,
)
from .results import Result, table
from .runtime.node import Node, settled
from .store import encoding
from .store.partition import owner


def whole_number(value, what: str, lo: int = 0, hi: int | None = None) -> int:
    """``value`` if it is a whole number in lo..hi; otherwise the error says what ``what`` takes."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise ScriptError(f"{what} takes a whole number {bounds}, not {value!r}")
    return value


class BlockFailed(RayScriptError):
    """A block run by another commander failed; the message is already located."""


@dataclass
class Scope:
    env: dict = field(default_factory=dict)
    text: str | None = None

    def child(self) -> Scope:
        return Scope(dict(self.env), self.text)


class WireKey:
    """A resolved key: ``key`` as the shards hold it, ``k`` the k-mer length when it was given
    as bases.  Immutable; its texts are made once (a loop names the same key many times)."""

    __slots__ = ("k", "key", "shown", "text")

    def __init__(self, key: tuple, k: int = 0):
        self.key, self.k = key, k
        self.text = key_text(key)
        # the key with its bases, when it was given as bases
        self.shown = f"{self.text} ({encoding.decode(key[1], k)})" if k else self.text

    def __str__(self) -> str:
        return self.text

    def describe(self) -> str:
        return self.shown


class Interpreter:
    def __init__(self, node: Node):
        self.node = node
        node.register(RunBlock, self._on_run_block)
        self.executors = {
            ast.Put: self._put, ast.Get: self._get, ast.Copy: self._transfer, ast.Move: self._transfer,
            ast.Delete: self._delete, ast.Locate: self._locate, ast.On: self._on,
            ast.Parallel: self._parallel, ast.Let: self._let, ast.For: self._for, ast.Ranks: self._ranks,
            ast.Explain: self._explain, ast.Print: self._print, ast.Help: self._help, ast.Set: self._set,
        }
        self.extensions: dict = {}  # statement class -> executor, added by other layers
        self.planners: dict = {}  # statement class -> fn(statement, scope) -> orders (for explain)
        self.bulk = None  # copy/move/delete by selector, provided by genomics.movement
        # k-mers given as bases are canonicalized unless the last load counted forward strands only
        self.canonical = True
        self._keys: dict[tuple, WireKey] = {}

    @property
    def size(self) -> int:
        return self.node.size

    # --- entry points ---------------------------------------------------------
    def run_block(self, statements, scope: Scope):
        """Generator: execute statements one after the other, returning their results."""
        results: list[Result] = []
        for st in statements:
            results.extend((yield from self.execute(st, scope)))
        return results

    def execute(self, st: ast.Statement, scope: Scope):
        fn = self.executors.get(type(st)) or self.extensions.get(type(st))
        try:
            if fn is None:
                raise ScriptError(f"'{st.keyword}' is not available on this cluster")
            result = yield from fn(st, scope)
        except (StatementError, BlockFailed, RankFailure):
            raise
        except ScriptError as err:
            raise err.with_location(st.location, scope.text) from None
        except RayScriptError as err:
            raise StatementError(err, st.location, scope.text, st.keyword) from None
        return result

    # --- values -----------------------------------------------------------------
    def value(self, v, scope: Scope):
        if isinstance(v, ast.Var):
            if v.name not in scope.env:
                raise ScriptError(f"undefined variable ${v.name}")
            return scope.env[v.name]
        if isinstance(v, ast.Key):
            return str(self.key(v, scope))
        if isinstance(v, ast.Word):
            return v.text
        if isinstance(v, ast.Duration):
            return v.seconds
        return v

    def rank(self, v, scope: Scope) -> int:
        r = v if type(v) is int else self.value(v, scope)
        if isinstance(r, bool) or not isinstance(r, int):
            raise ScriptError(f"a rank is a whole number, and ${v.name} is {r!r}" if isinstance(v, ast.Var)
                              else f"a rank is a whole number, not {r!r}")
        if not 0 <= r < self.size:
            raise ScriptError(f"rank {r} is outside the cluster: ranks are 0..{self.size - 1} ({self.size} ranks)")
        return r

    def key(self, key: ast.Key, scope: Scope) -> WireKey:
        if key.is_template:
            return self._wire_key(self._substitute(key, scope))
        # a statement in a loop names the same key again and again: resolve it once
        memo = (key.namespace, key.ident, self.canonical)
        wk = self._keys.get(memo)
        if wk is None:
            if len(self._keys) >= 4096:
                self._keys.clear()
            wk = self._keys[memo] = self._wire_key(key)
        return wk

    @staticmethod
    def _substitute(key: ast.Key, scope: Scope) -> ast.Key:
        def sub(m):
            name = m.group(1)
            if name not in scope.env:
                raise ScriptError(f"undefined variable ${name} in key {key}")
            return str(scope.env[name])

        return make_key(f"{key.namespace}/{ast.KEY_VARIABLE.sub(sub, str(key.ident))}")

    def _wire_key(self, key: ast.Key) -> WireKey:
        ident = key.ident
        if key.namespace == "kmers" and isinstance(ident, str):
            k = len(ident)
            fwd = encoding.encode(ident)
            return WireKey(("kmers", encoding.canonical(fwd, k) if self.canonical else fwd), k)
        return WireKey((key.namespace, ident))

    # --- order builders (shared by executors and explain) ---------------------------
    def owner(self, wk: WireKey) -> int:
        return owner(wk.key, self.size)

    def _locate_orders(self, wk: WireKey) -> list[Message]:
        return [HasOrder(recipient=r, key=wk.key) for r in range(self.size)]

    def _holders(self, wk: WireKey, replies) -> list[int]:
        own = self.owner(wk)
        held = [r for r, rep in enumerate(replies) if rep.held]
        return sorted(held, key=lambda r: (r != own, r))

    def _orders(self, msgs: list[Message]):
        return [self.node.order(m) for m in msgs]

    # --- executors --------------------------------------------------------------------
    def _put(self, st: ast.Put, scope):
        wk = self.key(st.key, scope)
        rank = self.rank(st.rank, scope)
        options = {name: whole_number(self.value(v, scope), f"{name}=") for name, v in st.options}
        if "count" in options and options["count"] > 0xFFFFFFFF:
            raise ScriptError(f"count={options['count']} is past the counter's width (at most {0xFFFFFFFF})")
        if "edges" in options and options["edges"] > 255:
            raise ScriptError("edges= is an 8-bit mask (0..255)")
        if wk.k:
            options["k"] = wk.k
        item = BY_NAMESPACE[wk.key[0]].empty(wk.key[1], options)
        yield self.node.order(PutOrder(recipient=rank, key=wk.key, item=pack_item(item), mode="replace"))
        return [Result("put", f"put {wk.describe()} on rank {rank}", {"key": str(wk), "rank": rank})]

    def _get(self, st: ast.Get, scope):
        wk = self.key(st.key, scope)
        rank = self.owner(wk) if st.rank is None else self.rank(st.rank, scope)
        (reply,) = yield self.node.order(GetOrder(recipient=rank, key=wk.key))
        item = unpack_item(reply.item)
        return [Result("get", f"{item}  (on rank {rank})", {"key": str(wk), "rank": rank, "item": item})]

    def _transfer(self, st, scope):
        if isinstance(st.key, ast.Selector):
            return (yield from self.bulk.transfer(st, scope))
        wk = self.key(st.key, scope)
        target = self.rank(st.target, scope)
        verb = st.keyword
        if st.source is None:
            replies = yield self._orders(self._locate_orders(wk))
            holders = self._holders(wk, replies)
            if not holders:
                raise RuntimeFault(f"no rank holds {wk}; nothing to {verb}", key=str(wk))
            source = holders[0]
        else:
            source = self.rank(st.source, scope)
        if source == target:
            raise ScriptError(f"source and target are the same rank ({source})")
        cls = CopyOrder if verb == "copy" else MoveOrder
        yield self.node.order(cls(recipient=source, key=wk.key, target=target, mode=st.mode))
        past = "copied" if verb == "copy" else "moved"
        return [Result(verb, f"{past} {wk.shown} from rank {source} to rank {target}",
                       {"key": wk.text, "source": source, "target": target})]

    def _delete(self, st: ast.Delete, scope):
        if isinstance(st.key, ast.Selector):
            return (yield from self.bulk.delete(st, scope))
        wk = self.key(st.key, scope)
        rank = self.rank(st.rank, scope)
        yield self.node.order(DeleteOrder(recipient=rank, key=wk.key))
        return [Result("delete", f"deleted {wk} from rank {rank}", {"key": str(wk), "rank": rank})]

    def _locate(self, st: ast.Locate, scope):
        wk = self.key(st.key, scope)
        replies = yield self._orders(self._locate_orders(wk))
        holders = self._holders(wk, replies)
        own = self.owner(wk)
        if holders:
            names = ", ".join(f"{r} (owner)" if r == own else str(r) for r in holders)
            text = f"{wk.describe()} is on rank{'s' if len(holders) > 1 else ''} {names}"
        else:
            text = f"{wk.describe()} is on no rank (its owner would be rank {own})"
        return [Result("locate", text, {"key": str(wk), "ranks": holders, "owner": own})]

    def _ranks(self, st, scope):
        replies = yield self._orders([StatsOrder(recipient=r) for r in range(self.size)])
        namespaces = list(BY_NAMESPACE)
        rows = [[r, rep.host] + [rep.counts.get(ns, 0) for ns in namespaces] + [rep.nbytes]
                for r, rep in enumerate(replies)]
        text = table(["rank", "host", *namespaces, "bytes"], rows)
        data = [dict(zip(["rank", "host", *namespaces, "bytes"], row)) for row in rows]
        return [Result("ranks", text, data)]

    def _on(self, st: ast.On, scope):
        rank = self.rank(st.rank, scope)
        if rank == self.node.rank:
            return (yield from self.run_block(st.body, scope.child()))
        order = RunBlock(recipient=rank, statements=st.body, env=dict(scope.env),
                         settings={"timeout": self.node.timeout, "canonical": self.canonical}, text=scope.text)
        try:
            (done,) = yield self.node.order(order, timeout=None)
        except RuntimeFault as err:
            if err.rank == rank and err.key is None:
                raise BlockFailed(err.reason) from None
            raise
        return done.results

    def _on_run_block(self, msg: RunBlock) -> None:
        """This rank becomes the commander of a block sent by another rank."""
        scope = Scope(dict(msg.env), msg.text)

        def task():
            saved = self.node.timeout
            self.node.timeout = msg.settings.get("timeout", saved)
            self.canonical = msg.settings.get("canonical", self.canonical)
            try:
                results = yield from self.run_block(msg.statements, scope)
            except RayScriptError as err:
                self.node.fail_order(msg, str(err))
                return
            finally:
                self.node.timeout = saved
            self.node.reply(msg, BlockDone(results=results))

        self.node.spawn(task())

    def _parallel(self, st: ast.Parallel, scope):
        futures = [self.node.spawn(self.execute(s, scope)) for s in st.body]
        # Wait for every branch, even when one fails, so nothing is left half done.
        outcomes = yield [settled(f) for f in futures]
        errors = [e for ok, e in outcomes if not ok]
        if errors:
            raise errors[0]
        return [r for ok, rs in outcomes for r in rs]

    def _let(self, st: ast.Let, scope):
        scope.env[st.name] = self.value(st.value, scope)
        return []
        yield

    def _set(self, st: ast.Set, scope):
        seconds = self.value(st.value, scope)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ScriptError(f"timeout must be a positive duration, not {seconds!r}")
        self.node.timeout = float(seconds)
        return [Result("set", f"timeout = {seconds:g} s", {"timeout": float(seconds)})]
        yield

    def _for(self, st: ast.For, scope):
        start, stop = self.value(st.start, scope), self.value(st.stop, scope)
        for b in (start, stop):
            if isinstance(b, bool) or not isinstance(b, int):
                raise ScriptError(f"a loop bound is a whole number, not {b!r}")
        step = 1 if stop >= start else -1
        results = []
        for i in range(start, stop + step, step):
            scope.env[st.name] = i
            for body in st.body:  # each statement straight from here: one generator frame fewer per order
                results.extend((yield from self.execute(body, scope)))
        return results

    def _print(self, st: ast.Print, scope):
        text = " ".join(str(self.value(v, scope)) for v in st.values)
        return [Result("print", text, text)]
        yield

    def _help(self, st: ast.Help, scope):
        return [Result("help", help_text(st.topic))]
        yield

    # --- explain ------------------------------------------------------------------------
    def _explain(self, st: ast.Explain, scope):
        lines = [f"explain ({self.size} ranks, commander {self.node.rank}):"]
        self._plan(st.statement, scope.child(), self.node.rank, lines, "  ")
        return [Result("explain", "\n".join(lines), lines)]
        yield

    def _plan(self, st, scope, commander: int, lines: list[str], indent: str) -> None:
        def show(msgs: list[Message], note: str = ""):
            for m in msgs:
                m.sender, m.commander = commander, commander
                lines.append(f"{indent}{m.describe()}{note}")
                for c in m.cascade():
                    lines.append(f"{indent}    then {c}")

        if isinstance(st, (ast.Copy, ast.Move, ast.Delete)) and isinstance(st.key, ast.Selector):
            if isinstance(st, ast.Delete):
                from .genomics.movement import BulkDeleteOrder

                show([BulkDeleteOrder(recipient=self.rank(st.rank, scope), selector=self.bulk.selector(st.key, scope))])
            else:
                show(self.bulk.plan_transfer(st, scope))
        elif isinstance(st, (ast.Copy, ast.Move)):
            wk = self.key(st.key, scope)
            target = self.rank(st.target, scope)
            cls = CopyOrder if isinstance(st, ast.Copy) else MoveOrder
            if st.source is None:
                lines.append(f"{indent}1. locate {wk} (to find the source):")
                show(self._locate_orders(wk))
                lines.append(f"{indent}2. order the first holder (owner first):")
                source = "SOURCE"
                m = cls(recipient=-1, key=wk.key, target=target, mode=st.mode)
                m.sender = m.commander = commander
                lines.append(f"{indent}{m.describe().replace('-> -1', '-> ' + source)}")
                for c in m.cascade():
                    lines.append(f"{indent}    then {c.replace('-1', source)}")
                return
            source = self.rank(st.source, scope)
            show([cls(recipient=source, key=wk.key, target=target, mode=st.mode)])
        elif isinstance(st, ast.Put):
            wk = self.key(st.key, scope)
            show([PutOrder(recipient=self.rank(st.rank, scope), key=wk.key, mode="replace")])
        elif isinstance(st, ast.Get):
            wk = self.key(st.key, scope)
            rank = self.owner(wk) if st.rank is None else self.rank(st.rank, scope)
            show([GetOrder(recipient=rank, key=wk.key)])
        elif isinstance(st, ast.Delete):
            show([DeleteOrder(recipient=self.rank(st.rank, scope), key=self.key(st.key, scope).key)])
        elif isinstance(st, ast.Locate):
            show(self._locate_orders(self.key(st.key, scope)))
        elif isinstance(st, ast.Ranks):
            show([StatsOrder(recipient=r) for r in range(self.size)])
        elif isinstance(st, ast.On):
            rank = self.rank(st.rank, scope)
            if rank != commander:
                show([RunBlock(recipient=rank, statements=st.body)])
            lines.append(f"{indent}  rank {rank} commands:")
            for s in st.body:
                self._plan(s, scope, rank, lines, indent + "    ")
        elif isinstance(st, ast.Parallel):
            lines.append(f"{indent}all at once:")
            for s in st.body:
                self._plan(s, scope, commander, lines, indent + "  ")
        elif isinstance(st, ast.For):
            start, stop = self.value(st.start, scope), self.value(st.stop, scope)
            step = 1 if stop >= start else -1
            for i in range(start, stop + step, step):
                scope.env[st.name] = i
                lines.append(f"{indent}{st.name} = {i}:")
                for s in st.body:
                    self._plan(s, scope, commander, lines, indent + "  ")
        elif isinstance(st, ast.Let):
            scope.env[st.name] = self.value(st.value, scope)
            lines.append(f"{indent}(let: evaluated on the commander, no message)")
        elif isinstance(st, ast.Explain):
            self._plan(st.statement, scope, commander, lines, indent)
        else:
            planner = self.planners.get(type(st))
            if planner is not None:
                show(planner(st, scope))
            else:
                lines.append(f"{indent}({st.keyword}: evaluated on the commander, no message)")
