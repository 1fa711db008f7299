"""A rank's event loop: one per rank, serving messages against its shard.

Handlers are registered by message class.  A commander's work runs as *tasks*
(:mod:`.tasks`): generators that yield the futures of the orders they sent and are resumed when
every one of them has been answered.  While a task waits, the loop keeps serving, so one rank can be
commander and source at once and any number of commanders can give orders concurrently.  Ctrl-C is
:mod:`.interrupts`' concern, overdue orders and who is to blame :mod:`.liveness`'; services reach
the shard through ``node.store``, typed as :class:`~.store_api.Store`.

A handler that raises does not stop the loop: the error goes back to the commander of the
order as an :class:`~rayscript.protocol.core.ErrorReply` stamped with the rank and host (and, for a
defect, the line where it happened, whose traceback the rank logs).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import (
    CollectiveAborted,
    DriverLost,
    NotStopped,
    RankFailure,
    RayScriptError,
    RuntimeFault,
    Terminated,
)
from ..logs import fault_site, rank_logger
from ..protocol.base import Message, key_text
from ..protocol.core import Ack, Bundle, Cancel, ErrorReply, Fatal, Ping, Stop
from .aggregate import Aggregator
from .interrupts import Interrupts
from .liveness import Liveness
from .store_api import Store
from .tasks import Future, Task

if TYPE_CHECKING:
    from ..progress import ProgressDisplay
    from .collective import Collective
    from .messenger import Messenger
    from .shard import Shard

DEFAULT_TIMEOUT = 30.0
_CHECK_EVERY = 0.1
# For this long after it starts waiting for an answer, a rank tells its messenger so (which then
# naps shorter between looks); a longer wait is a long order, where a nap's delay does not matter.
EAGER_SECONDS = 1.0
# Jobs across several hosts: a rank ends when it has not heard rank 0 for twice the order timeout
# and this many seconds (see Node.lease).
LEASE_MARGIN = 5.0
# A rank that reported its failure to rank 0 waits this long to be stopped, then ends by itself: rank
# 0 stops every rank within a second, or gives up after 5 s and ends the job (MPI abort, 2 s at most).
UNSTOPPED_SECONDS = 8.0


class Node:
    """One rank's event loop.  Its collaborators are given when it is built: the messenger (the
    transport), the rank's shard, the collective transport for all-rank bulk exchanges, and, on
    the rank that shows them, the progress display and the interrupt check of a shell that reads
    Ctrl-C as a key."""

    def __init__(self, messenger: Messenger, shard: Shard, collective: Collective | None = None,
                 progress: ProgressDisplay | None = None,
                 interrupt_check: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.messenger = messenger
        self.rank: int = messenger.rank
        self.size: int = messenger.size
        self.hosts: list[str] = messenger.hosts()  # by rank (gathered once, every rank at once)
        self.log = rank_logger(self.rank)
        self._several_hosts = len(set(self.hosts)) > 1
        self.shard = shard
        self._collective = collective
        self.progress = progress
        self.interrupts = Interrupts(interrupt_check)
        self.clock = clock  # time.monotonic, or a test's
        self.store: Store = shard  # what services may do with it
        self.handlers: dict[type, Callable[[Any], None]] = {}
        self.pending: dict[int, Future] = {}
        self.ready: deque[Task] = deque()
        self.tasks: set[Task] = set()
        self.next_request = 1
        self.stopping = False
        self.failure: RankFailure | None = None
        self.ending: str | None = None  # why this rank reported itself failed to rank 0 (Fatal)
        self.liveness = Liveness(self)
        self._timeout: float = DEFAULT_TIMEOUT
        # a collective step waits for the others at most the order timeout, and a message's bulk
        # data may go that long without progress
        if collective is not None:
            collective.patience = self.patience
        messenger.patience = self.patience
        self._next_check = 0.0
        self.aggregator = Aggregator(self.rank, self._transmit)
        self._backlog = 0  # messages received and not handled yet
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

    @property
    def collective(self) -> Collective:
        """The transport of all-rank exchanges (collective statements)."""
        if self._collective is None:
            raise RayScriptError(f"rank {self.rank} has no collective transport")
        return self._collective

    # --- wiring -----------------------------------------------------------
    def register(self, cls: type[Message], handler: Callable[[Any], None]) -> None:
        """Handle messages of class ``cls`` with ``handler`` (which takes one of them)."""
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
        fut = Future(self.clock() + timeout if timeout else None, msg.recipient, msg.kind, msg)
        self.pending[req] = fut
        self.send(msg)
        return fut

    def reply(self, order: Message, msg: Message) -> None:
        """Answer the commander of ``order`` (wherever in the cascade we are)."""
        msg.recipient = order.commander
        msg.commander = order.commander
        msg.request = order.request
        self.send(msg)

    def fail_order(self, order: Message, reason: str, key: tuple[str, Any] | None = None, where: str = "") -> None:
        self.reply(order, ErrorReply(rank=self.rank, key=self.key_text(key) if key else None, reason=reason,
                                     where=where))
        self.log.debug("'%s' from rank %d failed: %s", order.kind, order.sender, reason)

    def key_text(self, key: tuple[str, Any]) -> str:
        """A key as this rank writes it (a k-mer of k > 31 by its bases, in the k held here)."""
        return key_text(key, self.shard.table(key[0]).k if self.shard is not None and key[0] in self.shard.sets
                        else None)

    def spawn(self, gen: Generator[Any, Any, Any]) -> Future:
        task = Task(self, gen)
        self.tasks.add(task)
        self.ready.append(task)
        return task.future

    @contextlib.contextmanager
    def collective_order(self, msg: Message, what: str) -> Iterator[None]:
        """This rank's part of a collective statement (every rank works at once).  When this rank
        fails, the others are told and stop at their next wait; when another rank failed (or one
        stopped answering: the wait's patience ran out), this rank leaves with them.  Either way
        the channel is fresh for the next operation and the commander gets a located error."""
        collective = self.collective
        with self.interrupts.deferred():
            try:
                if self.ending is not None:
                    # this rank has reported its failure and only waits to be stopped: it takes no
                    # part, and the others stop at their first wait rather than after the statement
                    raise Terminated(self.ending)
                yield
            except CollectiveAborted as exc:
                collective.reset()
                self.reply(msg, ErrorReply(rank=exc.rank, reason=f"{what} stopped: {exc.reason}"))
            except Terminated as exc:
                # told to terminate (SIGTERM) in the middle: the others must not wait for this rank
                # until their patience runs out (and then blame one of their own); they stop at their
                # next wait, and this rank goes on to report it as it would outside a collective
                collective.abort(str(exc))
                collective.reset()
                raise
            except Exception as exc:
                reason = str(exc) if isinstance(exc, RayScriptError) else f"{type(exc).__name__}: {exc}"
                collective.abort(reason)
                collective.reset()
                self.reply(msg, ErrorReply(rank=self.rank, reason=f"{what} stopped: {reason}"))

    @property
    def unresponsive(self) -> set[int | None]:
        """Ranks that did not answer an order in time."""
        return self.liveness.unresponsive

    def show_progress(self, done: int, total: int, what: str = "reading", unit: str = "MiB") -> None:
        """How far a long piece of work of this rank's got (the display, rate and time left are
        rayscript.progress's): shown by rank 0 only, the rank that displays, and nowhere without a
        display.  A service calls it as it goes; a rank's own share stands for all when the ranks
        share the work evenly (buckets, files), so the text says whose it is."""
        if self.rank == 0 and self.progress is not None:
            self.progress(done, total, what, unit)

    def poll_interrupt(self) -> bool:
        """For long operations that do not return to the loop: has the user asked to cancel?"""
        return self.interrupts.poll()

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
        end = self.clock() + deadline
        while (self.pending or self.ready) and self.clock() < end:
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
        now = self.clock()
        if now >= self._next_check:
            self._next_check = now + _CHECK_EVERY
            self.liveness.expire(now)
            if self.rank:
                lost = self.messenger.driver_silence()
                if lost is not None:
                    raise DriverLost(self.rank, self.hosts[self.rank], self.hosts[0], lost[0])

    @property
    def timeout(self) -> float:
        """The order timeout in seconds (0: none)."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._timeout = seconds
        if self.rank == 0:
            self.messenger.lease_changed()  # the ranks learn the new lease now, not at the next beat

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
        now = self.clock()
        if self._expecting_since is None:
            self._expecting_since = now
        return now - self._expecting_since < EAGER_SECONDS

    def dispatch(self, msg: Message) -> None:
        if msg.is_reply:
            fut = self.pending.pop(msg.request, None)
            if fut is None:
                return  # the answer to an order that already timed out
            if isinstance(msg, ErrorReply):
                fut.fail(RuntimeFault(msg.reason, rank=msg.rank, key=msg.key, host=self.host_of(msg.rank),
                                      where=msg.where))
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
            # a defect: its traceback in this rank's log, and the line where it happened to the commander
            where = fault_site(exc, skip=1)
            self.log.error("handling '%s' from rank %d (commander %d) failed at %s", msg.kind, msg.sender,
                           msg.commander, where, exc_info=exc)
            self.fail_order(msg, f"internal error on {self.messenger.host()} while handling "
                                 f"'{msg.kind}': {type(exc).__name__}: {exc}", getattr(msg, "key", None), where)

    def run_until(self, fut: Future) -> Any:
        """Serve messages until ``fut`` is done (the commander waiting for its answers).  This rank
        told to terminate (SIGTERM, raised wherever it was: in a handler, a collective step, a
        task) fails as any rank that fails: RankFailure, naming it."""
        try:
            while not fut.done:
                if self.failure is not None:
                    raise self.failure
                if self.interrupts.take():
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
        (by then rank 0 has stopped every rank or ended the job, unless it is gone): NotStopped.
        SIGTERM raises Terminated wherever the rank is when it arrives, in a step or between two
        (its keeper passes it on at any moment): the whole loop, not only the step, is inside the try."""
        leave_by = None
        while True:
            try:
                while not self.stopping:
                    if self.ending is not None:
                        if leave_by is None:
                            leave_by = time.monotonic() + UNSTOPPED_SECONDS
                        elif time.monotonic() > leave_by:
                            raise NotStopped(self.rank, self.messenger.host(), self.ending, UNSTOPPED_SECONDS)
                    self.step(1.0)
                break
            except (Exception, Terminated) as exc:
                if isinstance(exc, Terminated):
                    reason = str(exc)
                else:
                    where = fault_site(exc)
                    reason = f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")
                    self.log.error("the loop failed at %s", where, exc_info=exc)
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
