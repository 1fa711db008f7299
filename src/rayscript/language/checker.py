"""Static checks that need no cluster: undefined variables, ranks outside the cluster (when its
size is known), option values that do not fit what the option takes, and each statement's own
checks.  Every problem found is returned, with its location.

The walk is generic: every field of every node is visited (through dataclass fields, tuples,
keys and selectors), so a variable or a rank is checked wherever a statement keeps it.  Scopes
follow execution: ``let`` defines a name for what follows, a statement's nested blocks see a
copy of the scope (``for`` adds its loop variable there).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ..errors import Location, ScriptError
from . import syntax


class Checker:
    """A scope of the check: what a statement's ``check`` hook sees (the
    :class:`~rayscript.language.syntax.CheckContext` it is declared with): the scope, the cluster
    size (None if unknown), and ``error()`` to report a problem at the statement."""

    def __init__(self, size: int | None, errors: list[ScriptError], scope: set[str], in_parallel: bool = False,
                 ranges: dict[str, tuple[int, int]] | None = None,
                 definitions: dict[str, object] | None = None) -> None:
        self.size = size
        # what the script (and the session before it) defined beyond variables: cascades, by name
        self.definitions: dict[str, object] = definitions if definitions is not None else {}
        self.errors = errors
        self.scope = scope
        self.in_parallel = in_parallel
        # the values a loop variable takes, when its loop's bounds are written as numbers
        self.ranges = ranges if ranges is not None else {}
        self.statement: syntax.Statement | None = None

    def error(self, message: str, st: syntax.Statement | None = None, at: Location | None = None) -> None:
        """A problem with the statement (``at``: where in it, else where it starts)."""
        node = st or self.statement
        self.errors.append(ScriptError(message, at or (node.location if node is not None else None)))

    def define(self, name: str, value: object = None) -> None:
        """``name`` is defined from here on; ``value``: its value when written as a whole number."""
        self.scope.add(name)
        self.ranges.pop(name, None)
        if type(value) is int:
            self.ranges[name] = (value, value)

    def block(self, statements: Iterable[syntax.Statement], extra: Collection[str] = frozenset(),
              in_parallel: bool | None = None, ranges: dict[str, tuple[int, int]] | None = None) -> None:
        """Check nested statements in a copy of this scope (plus ``extra`` names; ``ranges``: the
        values some of them take)."""
        inner_ranges = {n: r for n, r in self.ranges.items() if n not in extra}
        inner_ranges.update(ranges or {})
        inner = Checker(self.size, self.errors, set(self.scope) | set(extra),
                        self.in_parallel if in_parallel is None else in_parallel, inner_ranges, self.definitions)
        _check_block(statements, inner)


def check(statements: Iterable[syntax.Statement], size: int | None = None, text: str | None = None,
          defined: set[str] | None = None, definitions: dict[str, object] | None = None) -> list[ScriptError]:
    """Every problem the static checks find in ``statements`` (on ``size`` ranks, when known;
    ``defined``: variables defined before them; ``definitions``: cascades the session defined),
    located in ``text``."""
    errors: list[ScriptError] = []
    statements = list(statements)
    known = dict(definitions or {})
    for st in syntax.walk(statements):  # what a script declares is known throughout (cascades send to each other)
        known.update(st.declares())
    _check_block(statements, Checker(size, errors, set(defined or ()), definitions=known))
    for e in errors:
        e.text = text
    return errors


def _check_block(statements: Iterable[syntax.Statement], ctx: Checker) -> None:
    for st in statements:
        check_statement(st, ctx)


def check_statement(st: syntax.Statement, ctx: Checker) -> None:
    """The generic checks of every field of ``st``, then its own ``check`` hook (which checks
    nested blocks: by default each in a copy of the scope)."""
    ctx.statement = st
    if ctx.in_parallel and st.collective:
        ctx.error(f"'{st.keyword}' involves every rank at once and cannot run inside 'parallel'")
    for value, is_rank in syntax.values(st):
        if isinstance(value, syntax.Var):
            if value.name not in ctx.scope:
                ctx.error(f"undefined variable ${value.name}")
            elif is_rank and value.name in ctx.ranges and ctx.size is not None:
                lo, hi = ctx.ranges[value.name]
                if lo <= hi and not (lo >= 0 and hi < ctx.size):
                    takes = f"is {lo}" if lo == hi else f"takes the values {lo}..{hi} of its loop"
                    ctx.error(f"rank ${value.name} {takes}, and ranks are 0..{ctx.size - 1} ({ctx.size} ranks)")
        elif isinstance(value, syntax.Key) and value.is_template:
            for name in syntax.key_variables(str(value.ident)):
                if name not in ctx.scope:
                    ctx.error(f"undefined variable ${name} in key {value}")
        elif is_rank and isinstance(value, int) and not isinstance(value, bool) and ctx.size is not None \
                and not 0 <= value < ctx.size:
            ctx.error(f"rank {value} is outside the cluster: ranks are 0..{ctx.size - 1} ({ctx.size} ranks)")
    _check_options(st, ctx)
    st.check(ctx)
    ctx.statement = st


def _check_options(st: syntax.Statement, ctx: Checker) -> None:
    """Every option's value against what its statement declares the option takes: a value written
    in the script, and a $variable whose values are known (a loop's bounds, a number let to it)."""
    allowed = type(st).options_allowed
    written = [name for name, _ in st.option_locations]
    for name, value in sorted(st.given_options(), key=lambda o: written.index(o[0]) if o[0] in written else 0):
        takes = allowed.get(name)
        if takes is None:
            continue
        if isinstance(value, syntax.Var):
            if value.name not in ctx.ranges:
                continue
            lo, hi = ctx.ranges[value.name]
            if lo > hi:  # a loop that does not run
                continue
            takes_what = f"is {lo}" if lo == hi else f"takes the values {lo}..{hi} of its loop"
            problem = next((p for p in (takes.problem(name, v, str(v)) for v in (lo, hi)) if p), None)
            if problem:
                ctx.error(f"{problem} (${value.name} {takes_what})", at=st.option_location(name))
            continue
        v, shown = syntax.literal(value)
        if shown:
            problem = takes.problem(name, v, shown)
            if problem:
                ctx.error(problem, at=st.option_location(name))
