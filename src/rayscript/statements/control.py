"""Statements that shape a script: on, parallel, let, for, set, print, help, explain."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from ..errors import ScriptError
from ..interpreter import Command, Steps
from ..language.help import help_text
from ..language.syntax import Build, CheckContext, Duration, Rank, Statement, Value, Var, rank_field
from ..results import Result


class On(Statement, keyword="on"):
    syntax = "on RANK: STATEMENT  |  on RANK { STATEMENTS }"
    summary = ("Make RANK the commander of the statements: it sends their orders and collects the "
               "acknowledgements.")
    example = "on 3: copy kmers/19123890 from 2 to 5"

    rank: Rank = rank_field()
    body: tuple[Statement, ...] = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> On:
        rank, body = children
        return cls(rank, body if isinstance(body, tuple) else (body,), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        return (yield from cmd.delegate(cmd.rank(self.rank), self.body))


class Parallel(Statement, keyword="parallel"):
    syntax = "parallel { STATEMENTS }"
    summary = ("Issue every statement of the block at once (typically several 'on' blocks); the "
               "block ends when all are acknowledged.")
    example = "parallel { on 1: copy kmers/7 from 1 to 2\n           on 3: copy kmers/9 from 3 to 0 }"

    body: tuple[Statement, ...]

    def check(self, ctx: CheckContext) -> None:
        ctx.block(self.body, in_parallel=True)

    def run(self, cmd: Command) -> Steps:
        cmd.note("all at once:")
        return (yield from cmd.nested().all_at_once(self.body))


class Let(Statement, keyword="let"):
    syntax = "let NAME = VALUE"
    summary = "Define a variable, used as $NAME."
    example = "let x = 19123890"

    name: str
    value: Value

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Let:
        name, value = children
        return cls(str(name), value, meta=b.location)

    def check(self, ctx: CheckContext) -> None:
        ctx.define(self.name, self.value)

    def run(self, cmd: Command) -> Steps:
        cmd.scope.env[self.name] = cmd.value(self.value)
        cmd.note(f"let ${self.name} = {cmd.scope.env[self.name]!r} (on the commander, no message)")
        return []
        yield


class For(Statement, keyword="for"):
    syntax = "for NAME in A..B { STATEMENTS }"
    summary = "Repeat the block for NAME = A, A+1, ..., B (inclusive); when B < A the block does not run."
    example = "for r in 1..4 { copy kmers/$x from 0 to $r }"

    name: str
    start: Value
    stop: Value
    body: tuple[Statement, ...]

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> For:
        name, start, stop, body = children
        for bound in (start, stop):
            if not isinstance(bound, (int, Var)):
                b.fail(f"a loop bound is a whole number or $variable, not '{bound}'")
        return cls(str(name), start, stop, body, meta=b.location)

    def check(self, ctx: CheckContext) -> None:
        start, stop = self.start, self.stop
        ranges = {self.name: (start, stop)} if isinstance(start, int) and isinstance(stop, int) else None
        ctx.block(self.body, {self.name}, ranges=ranges)

    def run(self, cmd: Command) -> Steps:
        start, stop = cmd.value(self.start), cmd.value(self.stop)
        for bound in (start, stop):
            if isinstance(bound, bool) or not isinstance(bound, int):
                raise ScriptError(f"a loop bound is a whole number, not {bound!r}")
        # the rounds are one block (what the rounds before a failure did is the error's done), whose
        # generator is returned as this statement's: no generator frame of the loop's own per order
        return cmd.nested().block(self._rounds(cmd, start, stop))

    def _rounds(self, cmd: Command, start: int, stop: int) -> Iterator[Statement]:
        """The body once per value of the loop variable, set as its round begins (the block takes
        each statement when the one before it is done: no generator frame per order)."""
        for i in range(start, stop + 1):
            cmd.scope.env[self.name] = i
            cmd.note(f"{self.name} = {i}:")
            yield from self.body


class Set(Statement, keyword="set"):
    syntax = "set timeout [=] DURATION"
    summary = ("How long a commander waits for an answer before reporting the rank that did not "
               "answer (default 30s). The '=' may be left out: set timeout 10s.")
    example = "set timeout = 10s"

    name: str
    value: Value

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Set:
        name, value = children
        if str(name) != "timeout":
            b.fail(f"unknown setting '{name}' (settings: timeout)", name)
        if not isinstance(value, (Duration, int, Var)):
            b.fail("expected a duration such as 30s or 500ms after 'timeout'", name)
        return cls(str(name), value, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        seconds = cmd.value(self.value)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ScriptError(f"timeout must be a positive duration, not {seconds!r}")
        cmd.timeout = float(seconds)
        cmd.note(f"set timeout = {seconds:g} s (on the commander, no message)")
        return [Result("set", f"timeout = {seconds:g} s", {"timeout": float(seconds)})]
        yield


class Print(Statement, keyword="print"):
    syntax = "print VALUE ..."
    summary = "Print text, numbers, keys and variables."
    example = 'print "x is" $x'

    values: tuple[Value, ...] = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Print:
        return cls(tuple(children), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        text = " ".join(str(cmd.value(v)) for v in self.values)
        cmd.note("print (on the commander, no message)")
        return [Result("print", text, text)]
        yield


class Help(Statement, keyword="help"):
    syntax = "help [STATEMENT]"
    summary = "List the statements, or show one's syntax and an example."
    example = "help copy"

    topic: str | None = None

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Help:
        (word,) = children
        topic = str(word) if word is not None else None
        if topic is not None and topic not in b.registry:
            near = difflib.get_close_matches(topic, sorted(b.registry), n=1)
            hint = f"; did you mean 'help {near[0]}'?" if near else ""
            b.fail(f"no help on '{topic}'{hint}", word)
        return cls(topic, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        cmd.note("help (on the commander, no message)")
        return [Result("help", help_text(self.topic, type(self).registry))]
        yield


class Explain(Statement, keyword="explain"):
    syntax = "explain STATEMENT"
    summary = ("Print the control messages STATEMENT sends, and the cascade they trigger, without changing "
               "anything: the statement runs as usual but its orders are recorded instead of sent (orders that "
               "only read, whose answers decide what comes next, such as locating a key, are sent).")
    example = "explain copy kmers/19123890 from 2 to 5"

    statement: Statement

    def run(self, cmd: Command) -> Steps:
        explainer, plan = cmd.explainer()
        yield from explainer.execute(self.statement)
        lines = [f"explain ({cmd.size} ranks, commander {cmd.rank_id}):", *plan.lines()]
        data: dict[str, Any] = {"lines": lines, "orders": plan.orders}
        return [Result("explain", "\n".join(lines), data)]
