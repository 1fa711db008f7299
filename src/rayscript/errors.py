"""Every error rayscript raises derives from :class:`RayScriptError`.

Script errors carry a location (file, line, column) and render the offending line
with a caret under the column; runtime faults carry the rank and the key.

The errors a script meets (docs/language.md, "Errors"), wherever its statements run (a block
another rank commands, ``on R``, sends its error back whole, so it is raised as it would have been
on rank 0):

- :class:`ScriptError` (and its :class:`ScriptSyntaxError`, and a bad input file or checkpoint the
  commander refuses, :class:`~rayscript.genomics.fastx.InputError`,
  :class:`~rayscript.genomics.checkpoint.CheckpointError`): the script, or what it names, is
  refused before the statement sends anything; :class:`ScriptErrors` holds several.
- :class:`StatementError`: a statement failed while it ran; ``.cause`` is the
  :class:`RuntimeFault` (rank, host, key) or other error; :class:`StatementErrors` holds those of
  several branches of ``parallel`` that failed.
- :class:`RankFailure`, :class:`Cancelled`: the job lost a rank; the user interrupted.

Any of them carries ``done``: the results of the statements nested in the failed one (a loop's
rounds, a block's statements, the other branches of ``parallel``) that completed before it failed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


class _OwnList:
    """An attribute holding a list of each error's own (empty until set; setting stores a copy)."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.setdefault(self.key, [])

    def __set__(self, obj: Any, value: list[Any]) -> None:
        obj.__dict__[self.key] = list(value)


class RayScriptError(Exception):
    """Root of all rayscript errors.  ``Cluster.run`` sets ``results`` to the results of the
    statements that completed before the error; ``done`` holds, until then, those of the statements
    nested in the one that failed.  An error pickles whole (with its cause, location and ``done``):
    a rank commanding a block sends it back to the rank that gave the block."""

    results = _OwnList("Set by ``Cluster.run``: the results of the statements that completed before the "
                       "error (empty until then).")
    done = _OwnList("Results of statements nested in the failed one that completed before it failed (a "
                    "loop's earlier rounds, a block's earlier statements, the branches of parallel that "
                    "succeeded): they are reported before the error.")

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type, args: tuple, state: dict) -> BaseException:
    """An error made again from its pickled parts (not through ``__init__``, whose arguments vary)."""
    err = cls.__new__(cls, *args)
    err.args = args
    err.__dict__.update(state)
    return err


@dataclass(frozen=True)
class Location:
    """Where in a script something is: 1-based line and column."""

    line: int
    column: int
    source: str = "<script>"

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


def caret_context(text: str, line: int, column: int) -> str:
    """The source line at ``line`` with a caret under ``column`` (both 1-based)."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    src = lines[line - 1].expandtabs(1)
    caret = " " * (max(column, 1) - 1) + "^"
    return f"    {src}\n    {caret}"


class ScriptError(RayScriptError):
    """An error in a script, with its location and the caret context."""

    def __init__(self, message: str, location: Location | None = None, text: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.text = text

    def with_location(self, location: Location | None, text: str | None) -> ScriptError:
        if self.location is None and location is not None:
            self.location = location
        if self.text is None:
            self.text = text
        return self

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        head = f"{self.location}: {self.message}"
        if self.text:
            ctx = caret_context(self.text, self.location.line, self.location.column)
            if ctx:
                return f"{head}\n{ctx}"
        return head


class ScriptSyntaxError(ScriptError):
    """The text is not a valid .ray program.  ``recoverable`` is False for an error that no
    later line can repair (an unclosed block, the end of the input): ``check`` stops there."""

    def __init__(self, message: str, location: Location | None = None, text: str | None = None,
                 recoverable: bool = True):
        super().__init__(message, location, text)
        self.recoverable = recoverable


class ScriptErrors(RayScriptError):
    """Several script errors found at once (``rayscript check`` reports them all)."""

    def __init__(self, errors: list[ScriptError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class RuntimeFault(RayScriptError):
    """An order failed on some rank: names the rank, the key and the reason."""

    def __init__(self, reason: str, rank: int | None = None, key: str | None = None,
                 statement: str | None = None, host: str | None = None, where: str = ""):
        self.reason = reason
        self.rank = rank
        self.key = key
        self.statement = statement
        self.host = host  # named when the job spans several hosts
        self.where = where  # a defect on the rank: the line of code where it failed
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.rank is not None:
            where.append(f"rank {self.rank}" + (f" on {self.host}" if self.host else ""))
        if self.key and self.key not in self.reason:  # named once
            where.append(self.key)
        prefix = ", ".join(where)
        reason = f"{self.reason} (at {self.where})" if getattr(self, "where", "") else self.reason
        return f"{prefix}: {reason}" if prefix else reason


class OrderTimeout(RuntimeFault):
    """A rank did not answer an order before its deadline."""


class RankFailure(RayScriptError):
    """A rank crashed; the job is being shut down."""

    def __init__(self, rank: int, reason: str):
        self.rank = rank
        self.reason = reason
        super().__init__(f"rank {rank} failed: {reason}")


class StatementError(RayScriptError):
    """A statement failed while it ran: ``cause`` says why (a :class:`RuntimeFault` naming the rank,
    the host and the key, or another error), at the statement's ``location``."""

    def __init__(self, cause: BaseException, location: Location | None, text: str | None,
                 statement: str | None = None):
        self.cause = cause
        self.location = location
        self.text = text
        self.statement = statement
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.location}: " if self.location else ""
        msg = f"{head}{self.cause}"
        if self.location and self.text:
            ctx = caret_context(self.text, self.location.line, self.location.column)
            if ctx:
                msg = f"{msg}\n{ctx}"
        return msg


class StatementErrors(StatementError):
    """Several statements run at once (the branches of ``parallel``) failed: ``errors`` holds every
    one's error (a :class:`StatementError` or a :class:`ScriptError`), in the order of the
    statements; ``cause``, ``location`` and ``statement`` are the first's."""

    def __init__(self, errors: list[RayScriptError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.cause if isinstance(first, StatementError) else first,
                         getattr(first, "location", None), getattr(first, "text", None),
                         getattr(first, "statement", None))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class CollectiveAborted(RayScriptError):
    """Another rank left a collective operation (it failed): ``rank`` and ``reason`` say which and
    why.  Every rank resets the collective channel before it is used again."""

    def __init__(self, rank: int, reason: str):
        super().__init__(f"rank {rank} failed: {reason}")
        self.rank, self.reason = rank, reason


class CollectiveTimeout(RayScriptError):
    """This rank waited longer than the order timeout for the others in a collective step."""

    def __init__(self, seconds: float | None):
        super().__init__(f"waited more than {seconds:g} s for the other ranks in a collective step "
                         "(a rank or its host stopped answering)")


class TransferStalled(RayScriptError):
    """A message's bulk buffers stopped arriving: nothing came for the order timeout."""

    def __init__(self, rank: int, kind: str, sender: int, host: str | None, seconds: float):
        where = f" on {host}" if host else ""
        super().__init__(f"rank {rank}: the bulk data of a '{kind}' message from rank {sender}{where} stopped "
                         f"arriving (nothing for {seconds:g} s: rank {sender} is stuck, or its host cannot be "
                         "reached)")


class Cancelled(RayScriptError):
    """The user interrupted a statement; the orders already in flight were completed."""


class DriverLost(BaseException):
    """Raised on a serving rank of a job across several hosts when rank 0 has been silent for
    longer than the lease its heartbeats gave: the job has ended, or this host cannot reach it.
    (Not an order's error: the rank cannot finish MPI and ends at once.)"""

    def __init__(self, rank: int, host: str, driver_host: str, silent: float):
        self.rank = rank
        super().__init__(f"rank {rank} on {host}: nothing from rank 0 (on {driver_host}) for {silent:.0f} s: "
                         f"the job has ended, or {host} cannot reach it; rank {rank} ends")


class NotStopped(BaseException):
    """Raised on a serving rank that reported its failure to rank 0 (SIGTERM, an error in its loop)
    and was not stopped within the time rank 0 takes to stop or end the job: rank 0 is gone or
    stuck, and the rank ends by itself.  (Like DriverLost, it cannot finish MPI.)"""

    def __init__(self, rank: int, host: str, reason: str, waited: float):
        self.rank = rank
        super().__init__(f"rank {rank} on {host}: {reason}, and rank 0 did not stop the job within {waited:g} s; "
                         f"rank {rank} ends")


class Terminated(BaseException):
    """Raised in a rank's main thread when it is told to terminate (SIGTERM)."""


def shift_lines(err: RayScriptError, lines: int) -> RayScriptError:
    """``err`` placed ``lines`` lines further down its source: for a piece of a longer input run on
    its own (the lines a piped REPL reads, one statement at a time)."""
    found = err.errors if isinstance(err, ScriptErrors) else [err]
    for e in found:
        location = getattr(e, "location", None)
        if lines and isinstance(location, Location):
            e.location = replace(location, line=location.line + lines)  # type: ignore[attr-defined]
            if getattr(e, "text", None):
                e.text = "\n" * lines + e.text  # type: ignore[attr-defined]
    if isinstance(err, ScriptErrors):
        err.args = ("\n".join(str(e) for e in err.errors),)
    return err
