"""A commander's work as tasks: generators that yield the futures of the orders they sent and are
resumed when every one of them has been answered (a task never blocks its rank's loop).

A :class:`Task` runs on a :class:`Runner` (the rank's node): its ``tasks`` (those under way) and its
``ready`` queue (those to step next).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import Cancelled, OrderTimeout

if TYPE_CHECKING:
    from ..protocol.base import Message


class Runner(Protocol):
    """Where tasks run: the set of those under way, and the queue of those to step next."""

    tasks: set[Task]
    ready: deque[Task]


class Future:
    __slots__ = ("callbacks", "deadline", "done", "error", "order", "rank", "value", "what")

    def __init__(self, deadline: float | None = None, rank: int | None = None, what: str = "",
                 order: Message | None = None) -> None:
        # what: the order's kind, named if no answer comes in time; order: the order itself, whose
        # route is looked at only then
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.callbacks: list[Callable[[Future], None]] = []
        self.deadline = deadline
        self.rank = rank
        self.what = what
        self.order = order

    def resolve(self, value: Any = None) -> None:
        if not self.done:
            self.done, self.value = True, value
            self._fire()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done, self.error = True, error
            self._fire()

    def _fire(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for cb in callbacks:
            cb(self)

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def settled(fut: Future) -> Future:
    """A future that always succeeds, with (ok, value-or-error) of ``fut``: waiting on several
    of these waits for every one of them even when some fail."""
    out = Future()

    def done(f: Future) -> None:
        out.resolve((f.error is None, f.error if f.error is not None else f.value))

    if fut.done:
        done(fut)
    else:
        fut.callbacks.append(done)
    return out


def together(futures: list[Future], patience: Callable[[], float],
             clock: Callable[[], float] = time.monotonic) -> None:
    """The orders of one collective operation, one per rank, waited for without a deadline: once
    one of them fails, the ones still unanswered get ``patience()`` seconds more (a rank that
    stopped answering must not be waited for forever)."""

    def one_failed(f: Future) -> None:
        if f.error is None:
            return
        deadline = clock() + patience()
        for g in futures:
            if not g.done and g.deadline is None:
                g.deadline = deadline

    for f in futures:
        f.callbacks.append(one_failed)


class Task:
    """Drives a generator that yields a Future or a list of Futures."""

    __slots__ = ("cancelled", "future", "gen", "node", "waiting")

    def __init__(self, node: Runner, gen: Generator[Any, Any, Any]) -> None:
        self.gen = gen
        self.node = node
        self.future = Future()
        self.waiting: Future | list[Future] | None = None  # what the generator yielded last ([] is valid)
        self.cancelled = False

    def step(self) -> None:
        if self.cancelled:
            self.gen.close()
            self.node.tasks.discard(self)
            self.future.fail(Cancelled("cancelled"))
            return
        waiting, self.waiting = self.waiting, None
        error: BaseException | None
        value: list | None
        if waiting is None:
            error, value = None, None
        elif isinstance(waiting, Future):
            error, value = waiting.error, [waiting.value]
        else:
            # a rank that did not answer is named first: the others' errors may only follow from it
            errors = [f.error for f in waiting if f.error is not None]
            error = next((e for e in errors if isinstance(e, OrderTimeout)), errors[0] if errors else None)
            value = [f.value for f in waiting]
        try:
            yielded = self.gen.send(value) if error is None else self.gen.throw(error)
        except StopIteration as stop:
            self.node.tasks.discard(self)
            self.future.resolve(stop.value)
            return
        except BaseException as exc:  # delivered to whoever awaits the task
            self.node.tasks.discard(self)
            self.future.fail(exc)
            return
        if type(yielded) is Future:
            # one order (the common case): resume when it is answered
            self.waiting = yielded
            if yielded.done:
                self.node.ready.append(self)
            else:
                yielded.callbacks.append(self._wake)
            return
        self.waiting = yielded
        remaining = [f for f in yielded if not f.done]
        if not remaining:
            self.node.ready.append(self)
            return
        count = [len(remaining)]

        def one_done(_f: Future, count: list[int] = count) -> None:
            count[0] -= 1
            if count[0] == 0:
                self.node.ready.append(self)

        for f in remaining:
            f.callbacks.append(one_done)

    def _wake(self, _future: Future) -> None:
        self.node.ready.append(self)
