"""A rank's event loop: one per rank, serving messages against its shard.

Handlers are registered by message kind.  A commander's work runs as *tasks*: generators
that yield the futures of the orders they sent and are resumed when every one of them has
been answered.  While a task waits, the loop keeps serving, so one rank can be commander and
source at once and any number of commanders can give orders concurrently.

A handler that raises does not stop the loop: the error goes back to the commander of the
order as an :class:`~rayscript.messages.ErrorReply` stamped with the rank and host.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    Cancelled,
    CollectiveAborted,
    DriverLost,
    NotStopped,
    OrderTimeout,
    RankFailure,
    RayScriptError,
    RuntimeFault,
    Terminated,
)
from ..messages import Ack, Bundle, Cancel, ErrorReply, Fatal, Message, Ping, Stop, key_text
from .aggregate import Aggregator

if TYPE_CHECKING:
    from ..progress import ProgressDisplay
    from .shard import Shard

DEFAULT_TIMEOUT = 30.0
_CHECK_EVERY = 0.1
# For this long after it starts waiting for an answer, a rank tells its messenger so (which then
# naps shorter between looks); a longer wait is a long order, where a nap's delay does not matter.
EAGER_SECONDS = 1.0
# An order not answered in time: every rank gets this long (at most the timeout) to answer a ping,
# and the error names the one that did not (the order's recipient may be fine, and a rank further
# down its cascade silent).
PING_SECONDS = 1.0
# Jobs across several hosts: a rank ends when it has not heard rank 0 for twice the order timeout
# and this many seconds (see Node.lease).
LEASE_MARGIN = 5.0
# A rank that reported its failure to rank 0 waits this long to be stopped, then ends by itself: rank
# 0 stops every rank within a second, or gives up after 5 s and ends the job (MPI abort, 2 s at most).
UNSTOPPED_SECONDS = 8.0


M = TypeVar("M", bound=Message)


class Future:
    __slots__ = ("callbacks", "deadline", "done", "error", "order", "rank", "value", "what")

    def __init__(self, deadline: float | None = None, rank: int | None = None, what: str = "",
                 order: Message | None = None):
        # what: the order's kind, named if no answer comes in time; order: the order itself, whose
        # route is looked at only then
        self.done = False
        self.value = None
        self.error: BaseException | None = None
        self.callbacks: list[Callable[[Future], None]] = []
        self.deadline = deadline
        self.rank = rank
        self.what = what
        self.order = order

    def resolve(self, value=None) -> None:
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

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


def settled(fut: Future) -> Future:
    """A future that always succeeds, with (ok, value-or-error) of ``fut``: waiting on several
    of these waits for every one of them even when some fail."""
    out = Future()

    def done(f):
        out.resolve((f.error is None, f.error if f.error is not None else f.value))

    if fut.done:
        done(fut)
    else:
        fut.callbacks.append(done)
    return out


def together(futures: list[Future], patience: Callable[[], float]) -> None:
    """The orders of one collective operation, one per rank, waited for without a deadline: once
    one of them fails, the ones still unanswered get ``patience()`` seconds more (a rank that
    stopped answering must not be waited for forever)."""

    def one_failed(f: Future) -> None:
        if f.error is None:
            return
        deadline = time.monotonic() + patience()
        for g in futures:
            if not g.done and g.deadline is None:
                g.deadline = deadline

    for f in futures:
        f.callbacks.append(one_failed)


def _route(order: Message | None) -> tuple[int, ...]:
    """The ranks an order's cascade is known to pass: its recipient, and a copy's or move's target."""
    if order is None:
        return ()
    target = getattr(order, "target", None)
    return (order.recipient,) if type(target) is not int or target < 0 else (order.recipient, target)


class Task:
    """Drives a generator that yields a Future or a list of Futures."""

    __slots__ = ("cancelled", "future", "gen", "node", "waiting")

    def __init__(self, node: Node, gen: Generator[Any, Any, Any]):
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

        def one_done(_f, count=count):
            count[0] -= 1
            if count[0] == 0:
                self.node.ready.append(self)

        for f in remaining:
            f.callbacks.append(one_done)

    def _wake(self, _future: Future) -> None:
        self.node.ready.append(self)


class Node:
    """One rank's event loop.  Its collaborators are given when it is built: the messenger (the
    transport), the rank's shard, the collective transport for all-rank bulk exchanges, and, on
    the rank that shows them, the progress display and the interrupt check of a shell that reads
    Ctrl-C as a key."""

    def __init__(self, messenger: Any, shard: Shard, collective: Any = None,
                 progress: ProgressDisplay | None = None,
                 interrupt_check: Callable[[], bool] | None = None):
        self.messenger = messenger
        self.rank: int = messenger.rank
        self.size: int = messenger.size
        self.hosts: list[str] = messenger.hosts()  # by rank (gathered once, every rank at once)
        self._several_hosts = len(set(self.hosts)) > 1
        self.shard = shard
        self.collective = collective
        self.progress = progress
        self.interrupt_check = interrupt_check
        self.handlers: dict[type, Callable[[Any], None]] = {}
        self.pending: dict[int, Future] = {}
        self.ready: deque[Task] = deque()
        self.tasks: set[Task] = set()
        self.interrupted = False
        self.next_request = 1
        self.stopping = False
        self.failure: RankFailure | None = None
        self.ending: str | None = None  # why this rank reported itself failed to rank 0 (Fatal)
        self.unresponsive: set[int | None] = set()  # ranks that did not answer an order in time
        self.timeout: float = DEFAULT_TIMEOUT
        # a collective step waits for the others at most the order timeout, and a message's bulk
        # data may go that long without progress
        if collective is not None:
            collective.patience = self.patience
        messenger.patience = self.patience
        self._next_check = 0.0
        self.aggregator = Aggregator(self.rank, self._transmit)
        self._backlog = 0  # messages received and not handled yet
        self._sigint = False  # Ctrl-C noted, to act on at the next safe point
        # besides orders of its own awaiting answers: services' "this rank waits for an answer"
        self.expecting: list[Callable[[], bool]] = []
        self._expecting_since: float | None = None
        if self._several_hosts:  # a host may drop off: the ranks watch rank 0's heartbeat
            messenger.watch_driver(self.lease)
        self.register(Bundle, self._on_bundle)
        self.register(Stop, self._on_stop)
        self.register(Cancel, lambda msg: self.cancel_tasks())
        self.register(Fatal, self._on_fatal)
        self.register(Ping, lambda msg: self.reply(msg, Ack()))
        self._silent_search: list[Future] | None = None  # unanswered orders while ranks are pinged

    @contextlib.contextmanager
    def interrupts_from(self, check: Callable[[], bool] | None) -> Iterator[None]:
        """While the block runs, Ctrl-C is read by ``check`` (a shell that reads it as a key)."""
        saved, self.interrupt_check = self.interrupt_check, check
        try:
            yield
        finally:
            self.interrupt_check = saved

    # --- wiring -----------------------------------------------------------
    def register(self, cls: type[M], handler: Callable[[M], None]) -> None:
        self.handlers[cls] = handler

    def send(self, msg: Message) -> None:
        """Send ``msg`` now (after anything posted to the same rank before it)."""
        msg.sender = self.rank
        if self.aggregator.batches:
            self.aggregator.before_direct(msg.recipient)
        self.messenger.send(msg)

    def host_of(self, rank: int | None) -> str | None:
        """The host of ``rank`` when the job spans several hosts (what a user needs to find it);
        None on one host."""
        return self.hosts[rank] if self._several_hosts and rank is not None else None

    def post(self, msg: Message) -> None:
        """Send ``msg`` in a batch with other small messages to the same rank (see
        :mod:`rayscript.runtime.aggregate`): for the many small messages of cascades.  Batches form
        only while this rank is busy (messages in hand or waiting); otherwise it goes at once."""
        if self._backlog or self.messenger.waiting():
            self.aggregator.post(msg)
        else:
            self.send(msg)

    def _transmit(self, msg: Message) -> None:
        self.messenger.send(msg)

    def _on_bundle(self, bundle: Bundle) -> None:
        for envelope in bundle.envelopes:
            self.dispatch(Message.unpack(envelope))

    def order(self, msg: Message, timeout: float | None = -1.0) -> Future:
        """Send an order from this rank (the commander) and return the future of its answer."""
        req = self.next_request
        self.next_request = req + 1
        msg.request = req
        msg.commander = self.rank
        if timeout is not None and timeout < 0:
            timeout = self.timeout
        fut = Future(time.monotonic() + timeout if timeout else None, msg.recipient, msg.kind, msg)
        self.pending[req] = fut
        self.send(msg)
        return fut

    def reply(self, order: Message, msg: Message) -> None:
        """Answer the commander of ``order`` (wherever in the cascade we are)."""
        msg.recipient = order.commander
        msg.commander = order.commander
        msg.request = order.request
        self.send(msg)

    def fail_order(self, order: Message, reason: str, key=None) -> None:
        self.reply(order, ErrorReply(rank=self.rank, key=self.key_text(key) if key else None, reason=reason))

    def key_text(self, key) -> str:
        """A key as this rank writes it (a k-mer of k > 31 by its bases, in the k held here)."""
        return key_text(key, self.shard.kmers.k if self.shard is not None else None)

    def spawn(self, gen: Generator[Any, Any, Any]) -> Future:
        task = Task(self, gen)
        self.tasks.add(task)
        self.ready.append(task)
        return task.future

    @contextlib.contextmanager
    def deferred_interrupt(self):
        """Within a collective operation Ctrl-C must not leave the other ranks waiting: it only
        sets ``self.interrupted``, which the operation checks at its next step."""
        self.interrupted = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def note(signum, frame):
            self.interrupted = True

        signal.signal(signal.SIGINT, note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def collective_order(self, msg: Message, what: str) -> Iterator[None]:
        """This rank's part of a collective statement (every rank works at once).  When this rank
        fails, the others are told and stop at their next wait; when another rank failed (or one
        stopped answering: the wait's patience ran out), this rank leaves with them.  Either way
        the channel is fresh for the next operation and the commander gets a located error."""
        with self.deferred_interrupt():
            try:
                if self.ending is not None:
                    # this rank has reported its failure and only waits to be stopped: it takes no
                    # part, and the others stop at their first wait rather than after the statement
                    raise Terminated(self.ending)
                yield
            except CollectiveAborted as exc:
                self.collective.reset()
                self.reply(msg, ErrorReply(rank=exc.rank, reason=f"{what} stopped: {exc.reason}"))
            except Terminated as exc:
                # told to terminate (SIGTERM) in the middle: the others must not wait for this rank
                # until their patience runs out (and then blame one of their own); they stop at their
                # next wait, and this rank goes on to report it as it would outside a collective
                self.collective.abort(str(exc))
                self.collective.reset()
                raise
            except Exception as exc:
                reason = str(exc) if isinstance(exc, RayScriptError) else f"{type(exc).__name__}: {exc}"
                self.collective.abort(reason)
                self.collective.reset()
                self.reply(msg, ErrorReply(rank=self.rank, reason=f"{what} stopped: {reason}"))

    @contextlib.contextmanager
    def interrupts_at_safe_points(self) -> Iterator[None]:
        """While the commander runs a statement on the main thread: Ctrl-C (SIGINT) is only noted,
        and ``run_until`` raises KeyboardInterrupt at its next check, never in the middle of taking
        in or handling a message (a reply dropped there would leave an order unanswered forever)."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return

        def note(signum, frame):
            self._sigint = True

        self._sigint = False
        signal.signal(signal.SIGINT, note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._sigint = False

    def poll_interrupt(self) -> bool:
        """For long operations that do not return to the loop: has the user asked to cancel?"""
        if self.interrupt_check is not None and self.interrupt_check():
            self.interrupted = True
        return self.interrupted

    def cancel_tasks(self) -> None:
        """Every task stops at its next step (when its orders in flight have been answered)."""
        for task in self.tasks:
            task.cancelled = True

    def cancel_everywhere(self, deadline: float = 10.0) -> list[int]:
        """Rank 0 after Ctrl-C: stop the tasks here and on every rank, then serve until the orders
        in flight are answered (so nothing is left half done).  Returns the ranks that still had
        orders unanswered at the deadline."""
        self.cancel_tasks()
        for r in range(self.size):
            if r != self.rank:
                self.send(Cancel(recipient=r))
        end = time.monotonic() + deadline
        while (self.pending or self.ready) and time.monotonic() < end:
            self.step(0.01)
        late = sorted({f.rank for f in self.pending.values() if f.rank is not None})
        return late

    # --- the loop -----------------------------------------------------------
    def step(self, timeout: float) -> None:
        if self.ready:
            timeout = 0.0
        if self.aggregator.batches:
            # batches wait only while messages keep coming in, and never longer than max_delay
            if self.messenger.waiting():
                self.aggregator.flush_due()
                timeout = 0.0
            else:
                self.aggregator.flush()
        msgs = self.messenger.poll(timeout, self._eager)
        self._backlog = len(msgs)
        for msg in msgs:
            self._backlog -= 1
            self.dispatch(msg)
        while self.ready:
            self.ready.popleft().step()
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + _CHECK_EVERY
            self._expire(now)
            if self.rank:
                lost = self.messenger.driver_silence()
                if lost is not None:
                    raise DriverLost(self.rank, self.hosts[self.rank], self.hosts[0], lost[0])

    def patience(self) -> float | None:
        """The order timeout (None: no limit)."""
        return self.timeout or None

    def lease(self) -> float:
        """How long a rank may go without hearing rank 0 before it ends (jobs across several
        hosts): twice the order timeout and LEASE_MARGIN, by when rank 0 has given up on any order
        of its own; no limit without a timeout."""
        return 2 * self.timeout + LEASE_MARGIN if self.timeout else 0.0

    def _eager(self) -> bool:
        """Has this rank been waiting for an answer for less than EAGER_SECONDS?"""
        if not (self.pending or any(f() for f in self.expecting)):
            self._expecting_since = None
            return False
        now = time.monotonic()
        if self._expecting_since is None:
            self._expecting_since = now
        return now - self._expecting_since < EAGER_SECONDS

    def dispatch(self, msg: Message) -> None:
        if msg.is_reply:
            fut = self.pending.pop(msg.request, None)
            if fut is None:
                return  # the answer to an order that already timed out
            if isinstance(msg, ErrorReply):
                fut.fail(RuntimeFault(msg.reason, rank=msg.rank, key=msg.key, host=self.host_of(msg.rank)))
            else:
                fut.resolve(msg)
            return
        handler = self.handlers.get(type(msg))
        if handler is None:
            self.fail_order(msg, f"rank {self.rank} has no handler for '{msg.kind}' messages")
            return
        try:
            handler(msg)
        except RayScriptError as exc:
            self.fail_order(msg, str(exc), getattr(msg, "key", None))
        except Exception as exc:
            self.fail_order(msg, f"internal error on {self.messenger.host()} while handling "
                                 f"'{msg.kind}': {type(exc).__name__}: {exc}", getattr(msg, "key", None))

    def _expire(self, now: float) -> None:
        expired = [(r, f) for r, f in self.pending.items() if f.deadline is not None and f.deadline <= now]
        unanswered = []
        for req, fut in expired:
            del self.pending[req]
            if fut.what == Ping.kind:
                fut.fail(OrderTimeout("no answer to a ping", rank=fut.rank))
            else:
                unanswered.append(fut)
        if unanswered:
            self._find_silent(unanswered)

    def _find_silent(self, unanswered: list[Future]) -> None:
        """Orders went unanswered: ping every other rank (at most PING_SECONDS), then fail each order
        naming a rank of its route that did not answer, else any rank that did not; when all
        answer, its recipient (alive, but it did not answer this order)."""
        if self._silent_search is not None:  # a search under way answers for these too
            self._silent_search.extend(unanswered)
            return
        self._silent_search = unanswered
        wait = min(PING_SECONDS, self.timeout or PING_SECONDS)
        pings = {r: self.order(Ping(recipient=r), wait) for r in range(self.size) if r != self.rank}
        left = [len(pings)]

        def answered(_f: Future) -> None:
            left[0] -= 1
            if left[0] == 0:
                self._name_silent(sorted(r for r, f in pings.items() if f.error is not None))

        for f in pings.values():
            f.callbacks.append(answered)
        if not pings:
            self._name_silent([])

    def _name_silent(self, silent: list[int]) -> None:
        unanswered, self._silent_search = self._silent_search or [], None
        self.unresponsive.update(silent)
        for fut in unanswered:
            suspects = [r for r in _route(fut.order) if r in silent] or silent
            if not suspects:
                fut.fail(OrderTimeout(f"no answer to {fut.what} within {self.timeout:g} s (rank {fut.rank} did not "
                                      "answer it, though it answers pings: it may be busy with long work; 'set "
                                      "timeout' gives it longer)", rank=fut.rank, host=self.host_of(fut.rank)))
                continue
            rank = suspects[0]
            via = "" if rank == fut.rank else f" sent to rank {fut.rank}"
            who = f"rank {rank}" if rank == fut.rank else f"rank {rank}, where it leads,"
            others = [r for r in silent if r != rank]
            also = (f"; rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} "
                    f"do{'' if len(others) > 1 else 'es'} not answer either") if others else ""
            fut.fail(OrderTimeout(f"no answer to {fut.what}{via} within {self.timeout:g} s ({who} did not answer: "
                                  f"it is stuck, or its host cannot be reached{also})", rank=rank,
                                  host=self.host_of(rank)))

    def run_until(self, fut: Future):
        """Serve messages until ``fut`` is done (the commander waiting for its answers).  This rank
        told to terminate (SIGTERM, raised wherever it was: in a handler, a collective step, a
        task) fails as any rank that fails: RankFailure, naming it."""
        try:
            while not fut.done:
                if self.failure is not None:
                    raise self.failure
                if self._sigint or (self.interrupt_check is not None and self.interrupt_check()):
                    self._sigint = False
                    raise KeyboardInterrupt
                self.step(_CHECK_EVERY)
            if fut.error is not None and self.failure is not None:
                raise self.failure  # a failed rank explains the statement's error (and ends the job)
            return fut.result()
        except Terminated as exc:
            raise RankFailure(self.rank, str(exc)) from None

    def run(self, gen: Generator[Any, Any, Any]) -> Any:
        return self.run_until(self.spawn(gen))

    def serve(self) -> None:
        """Serve until told to stop.  An unexpected error in the loop itself (or SIGTERM) is
        reported to rank 0 as fatal; this rank then waits for the shutdown, at most UNSTOPPED_SECONDS
        (by then rank 0 has stopped every rank or ended the job, unless it is gone): NotStopped."""
        leave_by = None
        while not self.stopping:
            if self.ending is not None:
                if leave_by is None:
                    leave_by = time.monotonic() + UNSTOPPED_SECONDS
                elif time.monotonic() > leave_by:
                    raise NotStopped(self.rank, self.messenger.host(), self.ending, UNSTOPPED_SECONDS)
            try:
                self.step(1.0)
            except (Exception, Terminated) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                tb = traceback.extract_tb(exc.__traceback__)
                if isinstance(exc, Terminated):
                    reason = str(exc)
                elif tb:
                    reason += f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})"
                if self.rank == 0:
                    raise
                if self.ending is None:  # the first failure is the one to report
                    self.ending = reason
                    self.send(Fatal(recipient=0, rank=self.rank, reason=reason))
        self.aggregator.flush()

    def stop_all(self) -> None:
        """Rank 0: tell every other rank to stop (collective shutdown)."""
        for r in range(self.size):
            if r != self.rank:
                self.send(Stop(recipient=r))
        self.stopping = True

    def _on_stop(self, msg: Message) -> None:
        self.stopping = True

    def _on_fatal(self, msg: Fatal) -> None:
        self.failure = RankFailure(msg.rank, msg.reason)
        for fut in list(self.pending.values()):
            fut.fail(self.failure)
        self.pending.clear()
