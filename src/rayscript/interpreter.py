"""The interpreter: runs statement nodes on a commander rank.

Each statement's :meth:`~rayscript.language.syntax.Statement.run` is a generator over a
:class:`Command`, the public API a statement is given (and the only one it may use): resolve its
values, ranks and keys, send orders and wait for their answers, locate holders, run nested
blocks here or on another rank, read the store's settings.  The generator yields the futures of
the orders it sent; the rank's node resumes it when they are answered, so a commander keeps
serving while it waits.

``explain S`` runs the very same generator under a Command that records its orders instead of
sending them (:class:`Plan`): an order whose answer decides what comes next and that changes
nothing (``informs``: locate, sizes, search frontiers) is sent for real; every other order is
answered by its simulated reply.  What explain shows is therefore what execution sends, built by
the same code.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    Cancelled,
    OrderTimeout,
    RankFailure,
    RayScriptError,
    RuntimeFault,
    ScriptError,
    StatementError,
    StatementErrors,
)
from .items import is_kmers
from .language import syntax
from .language.keys import make_key
from .logs import fault_site
from .protocol.base import Message, key_text
from .protocol.core import BlockDone, RunBlock
from .protocol.store import GetOrder, HasOrder
from .results import Result
from .runtime.node import Node
from .runtime.tasks import Future, settled, together
from .store import encoding
from .store.partition import owner

# A statement's run(): yields futures (one, or a list), gets their answers back, returns results.
Steps = Generator[Any, Any, list[Result]]


def whole_number(value: Any, what: str, lo: int = 0, hi: int | None = None) -> int:
    """``value`` if it is a whole number in lo..hi; otherwise the error says what ``what`` takes."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise ScriptError(f"{what} takes a whole number {bounds}, not {value!r}")
    return value


def truth(value: Any, what: str) -> bool:
    """``value`` as true or false; otherwise the error says what ``what`` takes."""
    text = str(value).lower()
    if isinstance(value, bool) or text in ("true", "false"):
        return text == "true"
    raise ScriptError(f"{what} takes true or false, not {value!r}")


@dataclass
class Scope:
    env: dict = field(default_factory=dict)
    text: str | None = None

    def child(self) -> Scope:
        return Scope(dict(self.env), self.text)


class WireKey:
    """A resolved key: ``key`` as the shards hold it, ``k`` the k-mer length when it was given
    as bases.  Immutable; its texts are made once (a loop names the same key many times)."""

    __slots__ = ("k", "key", "key_text", "shown", "text")

    def __init__(self, key: tuple, k: int = 0):
        self.key, self.k = key, k
        self.key_text = key_text(key)  # as the ranks write it (by number)
        if k > encoding.WORD_K:  # an id of two words is shown by its bases only
            self.text = self.shown = f"{key[0]}/{encoding.decode(key[1], k)}"
            return
        self.text = key_text(key)
        # the key with its bases, when it was given as bases
        self.shown = f"{self.text} ({encoding.decode(key[1], k)})" if k else self.text

    def __str__(self) -> str:
        return self.text

    def describe(self) -> str:
        return self.shown


def by_bases(text: str, named: dict[str, str]) -> str:
    """``text`` with every key text of ``named`` (k-mer ids given as bases, by number) written with
    its bases; a longer number, or a key already followed by its bases, is left alone."""
    for number, bases in named.items():
        text = re.sub(re.escape(number) + r"(?![0-9]| \()", bases.replace("\\", "\\\\"), text)
    return text


class Plan:
    """What ``explain`` records: the orders a statement sends, with notes on its structure."""

    def __init__(self, parent: Plan | None = None) -> None:
        self.entries: list[tuple[int, Message | str]] = []
        self.parent = parent  # the plan of an 'explain' that explains this one
        self.named: dict[str, str] = {}  # key texts of two-word k-mer ids -> the key by its bases

    def sent(self, msg: Message) -> None:
        """An order ``explain`` sends for real: the explain that explains this one records it too
        (executing an explain sends it)."""
        plan = self.parent
        while plan is not None:
            plan.entries.append((0, copy.copy(msg)))
            plan = plan.parent

    @property
    def orders(self) -> list[Message]:
        return [m for _, m in self.entries if isinstance(m, Message)]

    def lines(self, indent: str = "  ") -> list[str]:
        out = []
        for depth, entry in self.entries:
            pad = indent * (depth + 1)
            if isinstance(entry, str):
                out.append(pad + entry)
                continue
            out.append(pad + self._named(entry.describe()))
            out.extend(f"{pad}    then {self._named(c)}" for c in entry.cascade())
        return out

    def _named(self, text: str) -> str:
        return by_bases(text, self.named)


class Interpreter:
    """Runs statements on one rank; answers RUN_BLOCK orders (this rank becomes a block's
    commander)."""

    def __init__(self, node: Node):
        self.node = node
        node.register(RunBlock, self._on_run_block)
        # k-mers of a set given as bases are canonicalized unless the set was counted on forward
        # strands only (load canonical=false): the setting of each set this commander loaded, combined
        # or restored (the others are canonical)
        self.canonical: dict[str, bool] = {}
        # the k of each set this commander loaded, combined, renamed or restored: a key given by its
        # bases must have that many (fewer would be read as a k-mer led by A's); sets not here are not checked
        self.kmer_k: dict[str, int] = {}
        self._keys: dict[tuple, WireKey] = {}
        # cascades defined in this session (by 'cascade'): later statements and scripts use them
        self.cascades: dict[str, Any] = {}
        # fields this session made (set -> name -> int or float); None once a checkpoint was restored
        # (its fields are known to the ranks only)
        self.fields: dict[str, dict[str, str]] = {}
        self.restored = False
        # what statements that run now would undo if the user cancelled them (Command.on_cancel)
        self.undos: list[Callable[[], Generator[Any, Any, Any]]] = []

    def undo_cancelled(self) -> None:
        """After Ctrl-C cancelled statements (their orders in flight answered): run what each of them
        said would undo its partial work (a temporary set, scratch paths), newest first.  An undo that
        fails leaves the rest to run: the cancellation is what the user is told."""
        undos, self.undos = self.undos[::-1], []
        for undo in undos:
            with contextlib.suppress(Exception):
                self.node.run(undo())

    @property
    def size(self) -> int:
        return self.node.size

    def command(self, scope: Scope) -> Command:
        return Command(self, scope, self.node.rank)

    def execute(self, st: syntax.Statement, scope: Scope) -> Steps:
        """Generator: run one statement with this rank as its commander."""
        return self.command(scope).execute(st)

    def run_block(self, statements: Iterable[syntax.Statement], scope: Scope) -> Steps:
        return self.command(scope).block(statements)

    # --- keys ---------------------------------------------------------------------------
    def wire_key(self, key: syntax.Key, scope: Scope) -> WireKey:
        wk = self._resolve(key, scope)
        held = self.kmer_k.get(key.namespace)
        if wk.k and held and wk.k != held:
            bases = substitute(key, scope).ident if key.is_template else key.ident
            raise wrong_length(key.namespace, held, f"{key.namespace}/{bases}", wk.k)
        return wk

    def _resolve(self, key: syntax.Key, scope: Scope) -> WireKey:
        if key.is_template:
            return self._wire_key(substitute(key, scope))
        # a statement in a loop names the same key again and again: resolve it once
        memo = (key.namespace, key.ident, self.canonical.get(key.namespace, True))
        wk = self._keys.get(memo)
        if wk is None:
            if len(self._keys) >= 4096:
                self._keys.clear()
            wk = self._keys[memo] = self._wire_key(key)
        return wk

    def _wire_key(self, key: syntax.Key) -> WireKey:
        ident = key.ident
        if is_kmers(key.namespace) and isinstance(ident, str):
            k = len(ident)
            fwd = encoding.encode(ident)
            canonical = self.canonical.get(key.namespace, True)
            return WireKey((key.namespace, encoding.canonical(fwd, k) if canonical else fwd), k)
        return WireKey((key.namespace, ident))

    # --- blocks from other commanders --------------------------------------------------
    def _on_run_block(self, msg: RunBlock) -> None:
        """This rank becomes the commander of a block sent by another rank."""
        scope = Scope(dict(msg.env), msg.text)

        def task() -> Generator[Any, Any, None]:
            saved = self.node.timeout
            self.node.timeout = msg.settings.get("timeout", saved)
            self.canonical = dict(msg.settings.get("canonical", self.canonical))
            self.kmer_k = dict(msg.settings.get("k", self.kmer_k))
            self.cascades.update(msg.settings.get("cascades", {}))
            try:
                results = yield from self.run_block(msg.statements, scope)
            except RayScriptError as err:
                # the error whole (its class, cause, location), with what the block did before it
                self.node.reply(msg, BlockDone(error=err))
                return
            except Exception as exc:  # a defect: the commander of the block must still hear of it
                where = fault_site(exc)
                self.node.log.error("commanding a block for rank %d failed at %s", msg.commander, where, exc_info=exc)
                self.node.reply(msg, BlockDone(error=RuntimeFault(
                    f"internal error on {self.node.messenger.host()} while commanding a block: "
                    f"{type(exc).__name__}: {exc}", rank=self.node.rank, where=where)))
                return
            finally:
                self.node.timeout = saved
            self.node.reply(msg, BlockDone(results=results))

        self.node.spawn(task())


def wrong_length(kset: str, held: int, what: str, bases: int) -> ScriptError:
    """A key (or prefix) given by its bases that a set of ``held``-mers cannot hold."""
    where = "the store" if kset == "kmers" else kset  # as the ranks say it of put
    return ScriptError(f"{where} holds k={held} k-mers; {what} has {bases} base{'s' if bases > 1 else ''}")


def substitute(key: syntax.Key, scope: Scope) -> syntax.Key:
    """A key written with $variables, with their values now."""
    def sub(m: Any) -> str:
        name = m.group(1) or m.group(2)
        if name not in scope.env:
            raise ScriptError(f"undefined variable ${name} in key {key}")
        return str(scope.env[name])

    made = make_key(f"{key.namespace}/{syntax.KEY_VARIABLE.sub(sub, str(key.ident))}")
    if not isinstance(made, syntax.Key):
        raise ScriptError(f"{key} names one item, and became the pattern {made}")
    return made


class Command:
    """The API a statement runs against: one commander rank, one scope.

    ``rank_id`` is the rank giving the orders (``on R`` makes it R); ``plan`` is set while
    ``explain`` runs the statement (orders are recorded, see the module doc)."""

    def __init__(self, interpreter: Interpreter, scope: Scope, rank_id: int, plan: Plan | None = None,
                 depth: int = 0):
        self.interpreter = interpreter
        self.node = interpreter.node
        self.scope = scope
        self.rank_id = rank_id
        self.plan = plan
        self.depth = depth
        # key texts of two-word k-mer ids this command named -> the key by its bases (a rank that
        # holds no such k-mers writes the number in its errors)
        self.named: dict[str, str] = {}

    # --- the cluster and its settings -------------------------------------------------------
    @property
    def size(self) -> int:
        return self.node.size

    @property
    def hosts(self) -> list[str]:
        """The host of every rank, by rank."""
        return self.node.hosts

    def host_of(self, rank: int) -> str | None:
        """The host of ``rank`` when the job spans several hosts; None on one host."""
        return self.node.host_of(rank)

    def where(self, rank: int) -> str:
        """How to name ``rank`` to a user: 'rank R', with its host when the job spans several."""
        host = self.host_of(rank)
        return f"rank {rank} on {host}" if host else f"rank {rank}"

    @property
    def explaining(self) -> bool:
        """True while ``explain`` runs the statement: commander-side effects (files written,
        settings changed) must not happen."""
        return self.plan is not None

    def canonical(self, kset: str = "kmers") -> bool:
        """Whether k-mers of a set given as bases are canonicalized (the set's canonical= setting)."""
        return self.interpreter.canonical.get(kset, True)

    def set_canonical(self, kset: str, value: bool) -> None:
        if not self.explaining:
            self.interpreter.canonical[kset] = value

    def set_k(self, kset: str, k: int | None) -> None:
        """Note the k of a set (None: the set is gone, or its k unknown): keys of it given by their
        bases must have k bases."""
        if self.explaining:
            return
        if k:
            self.interpreter.kmer_k[kset] = k
        else:
            self.interpreter.kmer_k.pop(kset, None)

    @property
    def timeout(self) -> float:
        return self.node.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        if not self.explaining:
            self.node.timeout = seconds

    def progress(self, done: int, total: int, what: str = "reading", unit: str = "MiB") -> None:
        """Show how far a long statement got (on the rank that displays progress)."""
        if self.node.progress is not None and not self.explaining:
            self.node.progress(done, total, what, unit)

    # --- values -------------------------------------------------------------------------------
    def value(self, v: Any) -> Any:
        if isinstance(v, syntax.Var):
            if v.name not in self.scope.env:
                raise ScriptError(f"undefined variable ${v.name}")
            return self.scope.env[v.name]
        if isinstance(v, syntax.Key):
            return str(self.key(v))
        if isinstance(v, syntax.Word):
            return v.text
        if isinstance(v, syntax.Duration):
            return v.seconds
        return v

    def rank(self, v: Any) -> int:
        r = v if type(v) is int else self.value(v)
        if isinstance(r, bool) or not isinstance(r, int):
            raise ScriptError(f"a rank is a whole number, and ${v.name} is {r!r}" if isinstance(v, syntax.Var)
                              else f"a rank is a whole number, not {r!r}")
        if not 0 <= r < self.size:
            raise ScriptError(f"rank {r} is outside the cluster: ranks are 0..{self.size - 1} ({self.size} ranks)")
        return r

    def key(self, key: syntax.Key) -> WireKey:
        wk = self.interpreter.wire_key(key, self.scope)
        if wk.k and len(self.named) < 64:  # given by its bases: errors from the ranks show them too
            self.named[wk.key_text] = wk.shown
        if wk.k > encoding.WORD_K and self.plan is not None:  # explain writes a two-word id by its bases only
            self.plan.named[wk.key_text] = wk.text
            self.plan.named[f"={wk.key[1]} "] = f"={wk.text} "  # an order field holding the id alone
        return wk

    def owner(self, wk: WireKey) -> int:
        return owner(wk.key, self.size)

    whole_number = staticmethod(whole_number)
    truth = staticmethod(truth)

    def options(self, st: syntax.Statement) -> dict[str, Any]:
        """The options written in ``st`` with their values resolved and checked against what each
        takes (its ``options_allowed``): numbers as ints, words in lower case, true/false as bools.
        A value that does not fit (a $variable's: literal values were refused by the checker) is a
        ScriptError located at the value."""
        allowed = type(st).options_allowed
        out = {}
        for name, v in st.given_options():
            value = self.value(v)
            takes = allowed.get(name)
            if takes is not None:
                shown = f"{value!r} (${v.name})" if isinstance(v, syntax.Var) else syntax.literal(v)[1] or repr(value)
                try:
                    value = takes.convert(name, value, shown)
                except ScriptError as err:
                    raise err.with_location(st.option_location(name), self.scope.text) from None
            out[name] = value
        return out

    def path(self, v: Any, what: str = "a file path") -> str:
        """A value that must be a quoted path."""
        p = self.value(v)
        if not isinstance(p, str):
            raise ScriptError(f"expected {what} in quotes, not {p!r}")
        if not p:
            raise ScriptError(f'expected {what}, not an empty path ("")')
        return p

    # --- orders -------------------------------------------------------------------------------
    def order(self, msg: Message, timeout: float | None = -1.0) -> Future:
        """Send an order from the commander; the future resolves to its (typed) reply.
        ``timeout``: seconds, -1 for the ``set timeout`` value, None to wait as long as it takes
        (collective work)."""
        if self.plan is None:
            return self.node.order(msg, timeout)
        msg.sender = msg.commander = self.rank_id
        self.plan.entries.append((self.depth, msg))
        if msg.informs:
            self.plan.sent(msg)
            return self.node.order(copy.copy(msg), timeout)
        fut = Future()
        fut.resolve(msg.simulated_reply())
        return fut

    def every(self, make: Callable[[int], Message], timeout: float | None = None) -> list[Future]:
        """One order to every rank (``make(rank)``), by default waited for without a deadline
        (collective work takes as long as it takes); but once one rank has failed, a rank that
        has not answered within the order timeout after that is named as not answering."""
        futures = [self.order(make(r), timeout) for r in range(self.size)]
        if timeout is None and self.plan is None:
            together(futures, lambda: self.node.timeout, self.node.clock)
        return futures

    def holders(self, wk: WireKey) -> Generator[Any, Any, list[int]]:
        """The ranks that hold ``wk``, owner first (asks every rank)."""
        replies = yield [self.order(HasOrder(recipient=r, key=wk.key)) for r in range(self.size)]
        own = self.owner(wk)
        held = [r for r, rep in enumerate(replies) if rep.held]
        return sorted(held, key=lambda r: (r != own, r))

    def fetch(self, wk: WireKey, rank: int | None = None) -> Generator[Any, Any, tuple[Any, int]]:
        """(ITEM-REPLY, rank) for ``wk``: from ``rank``, or else from its owner, or, when the owner
        does not hold it, from the first rank that does (as count and dump take it)."""
        own = self.owner(wk) if rank is None else rank
        try:
            (reply,) = yield self.order(GetOrder(recipient=own, key=wk.key))
            return reply, own
        except RuntimeFault as err:
            if rank is not None or isinstance(err, OrderTimeout):  # a silent owner is not asked around
                raise
        held = yield from self.holders(wk)
        if not held:
            raise RuntimeFault(f"{wk.shown} is on no rank", key=wk.key_text)
        (reply,) = yield self.order(GetOrder(recipient=held[0], key=wk.key))
        return reply, held[0]

    def on_cancel(self, undo: Callable[[], Generator[Any, Any, Any]]) -> Callable[[], None]:
        """Should the user cancel the statement (Ctrl-C) before it ends, ``undo()``'s orders run once
        the orders in flight are answered (so a cancelled statement leaves nothing half made).
        Returns the function that forgets ``undo``: call it when the statement ends either way."""
        undos = self.interpreter.undos
        undos.append(undo)

        def forget() -> None:
            if undo in undos:
                undos.remove(undo)
        return forget

    def note(self, text: str) -> None:
        """A line in ``explain``'s output (nothing otherwise)."""
        if self.plan is not None:
            self.plan.entries.append((self.depth, text))

    # --- statements and blocks ------------------------------------------------------------------
    def execute(self, st: syntax.Statement) -> Steps:
        """Run one statement; errors come out located at it."""
        try:
            result = yield from st.run(self)
        except (StatementError, RankFailure, Cancelled):
            raise
        except ScriptError as err:
            raise err.with_location(st.location, self.scope.text) from None
        except RayScriptError as err:
            if isinstance(err, RuntimeFault):
                self.name_keys(err)
            raise StatementError(err, st.location, self.scope.text, st.keyword) from None
        except RecursionError:
            raise StatementError(ScriptError("statements are nested too deeply"), st.location, self.scope.text,
                                 st.keyword) from None
        return result

    def name_keys(self, err: RuntimeFault) -> RuntimeFault:
        """``err`` with the keys this command was given by their bases written so (the ranks
        write them by number)."""
        if self.named:
            err.key = by_bases(err.key, self.named) if err.key else err.key
            err.reason = by_bases(err.reason, self.named)
        return err

    def block(self, statements: Iterable[syntax.Statement]) -> Steps:
        """Run statements one after the other in this scope, returning their results."""
        results: list[Result] = []
        for st in statements:
            try:
                results.extend((yield from self.execute(st)))
            except RayScriptError as err:
                err.done[:0] = results
                raise
        return results

    def child(self, indent: int = 1) -> Command:
        """The same commander with a copy of the scope (a nested block)."""
        return Command(self.interpreter, self.scope.child(), self.rank_id, self.plan, self.depth + indent)

    def nested(self, indent: int = 1) -> Command:
        """The same commander and scope, one level deeper in explain's output."""
        return Command(self.interpreter, self.scope, self.rank_id, self.plan, self.depth + indent)

    def explainer(self) -> tuple[Command, Plan]:
        """This command as ``explain`` runs it: orders go to the plan returned."""
        plan = Plan(self.plan)
        return Command(self.interpreter, self.scope.child(), self.rank_id, plan, self.depth), plan

    def delegate(self, rank: int, statements: tuple) -> Steps:
        """Make ``rank`` the commander of ``statements`` (``on R``) and wait for its results.  A
        statement of the block that fails there raises here the error it raised there (located at
        it, with ``done``), as if this rank had run the block."""
        if rank == self.rank_id:
            return (yield from self.child(0).block(statements))
        order = RunBlock(recipient=rank, statements=statements, env=dict(self.scope.env),
                         settings={"timeout": self.node.timeout, "canonical": dict(self.interpreter.canonical),
                                   "k": dict(self.interpreter.kmer_k),
                                   "cascades": dict(self.interpreter.cascades)},
                         text=self.scope.text)
        if self.plan is not None:
            yield self.order(order)
            self.nested().note(f"rank {rank} commands:")
            there = Command(self.interpreter, self.scope.child(), rank, self.plan, self.depth + 2)
            return (yield from there.block(statements))
        (done,) = yield self.node.order(order, timeout=None)
        if done.error is not None:
            raise done.error
        return done.results

    def all_at_once(self, statements: Iterable[syntax.Statement]) -> Steps:
        """Run statements concurrently; wait for every one, even when one fails, so nothing is
        left half done.  Then raise the error of the one that failed, or, when several did, a
        StatementErrors holding every one's; its ``done``: the results of those that succeeded and
        what the failed ones did before they failed, in the order of the statements.  (``explain``
        lists them one after the other.)"""
        if self.plan is not None:
            results: list[Result] = []
            for st in statements:
                results.extend((yield from self.execute(st)))
            return results
        futures = [self.node.spawn(self.execute(s)) for s in statements]
        outcomes = yield [settled(f) for f in futures]
        done: list[Result] = []
        errors: list[BaseException] = []
        for ok, value in outcomes:
            if ok:
                done.extend(value)
                continue
            if isinstance(value, RayScriptError):
                done.extend(value.done)
                value.done = []
            errors.extend(value.errors if isinstance(value, StatementErrors) else [value])
        if not errors:
            return done
        # a lost rank, an interruption or a defect ends the whole job: that one is raised
        ending = [e for e in errors if not isinstance(e, (StatementError, ScriptError))]
        if ending:
            error = ending[0]
        else:
            error = errors[0] if len(errors) == 1 else StatementErrors([e for e in errors
                                                                       if isinstance(e, RayScriptError)])
        if isinstance(error, RayScriptError):
            error.done = done
        raise error
