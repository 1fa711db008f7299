"""Liveness and blame: orders that were not answered in time, and who is to blame for them.

An overdue order is not blamed on its recipient blindly: the commander pings every other rank (at
most PING_SECONDS; any live loop answers at once) and fails the order naming a rank of its route
that did not answer, else any rank that did not, else its recipient as alive but busy.  Time is read
from the node's clock (``time.monotonic`` unless one is given), so tests can move it on by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import OrderTimeout
from ..protocol.core import Ping
from .tasks import Future

if TYPE_CHECKING:
    from ..protocol.base import Message
    from .node import Node

# An order not answered in time: every rank gets this long (at most the timeout) to answer a ping,
# and the error names the one that did not (the order's recipient may be fine, and a rank further
# down its cascade silent).
PING_SECONDS = 1.0


def _route(order: Message | None) -> tuple[int, ...]:
    """The ranks an order's cascade is known to pass: its recipient, and a copy's or move's target."""
    if order is None:
        return ()
    target = getattr(order, "target", None)
    return (order.recipient,) if type(target) is not int or target < 0 else (order.recipient, target)



class Liveness:
    """A node's watch over its orders in flight (see the module's docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.unresponsive: set[int | None] = set()  # ranks that did not answer an order in time
        self._silent_search: list[Future] | None = None  # unanswered orders while ranks are pinged

    def expire(self, now: float) -> None:
        """Fail the orders whose deadline has passed, naming who did not answer."""
        expired = [(r, f) for r, f in self.node.pending.items() if f.deadline is not None and f.deadline <= now]
        unanswered = []
        for req, fut in expired:
            del self.node.pending[req]
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
        wait = min(PING_SECONDS, self.node.timeout or PING_SECONDS)
        pings = {r: self.node.order(Ping(recipient=r), wait) for r in range(self.node.size) if r != self.node.rank}
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
                fut.fail(OrderTimeout(f"no answer to {fut.what} within {self.node.timeout:g} s (rank {fut.rank} did "
                                      "not answer it, though it answers pings: it may be busy with long work; 'set "
                                      "timeout' gives it longer)", rank=fut.rank, host=self.node.host_of(fut.rank)))
                continue
            rank = suspects[0]
            via = "" if rank == fut.rank else f" sent to rank {fut.rank}"
            who = f"rank {rank}" if rank == fut.rank else f"rank {rank}, where it leads,"
            others = [r for r in silent if r != rank]
            also = (f"; rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} "
                    f"do{'' if len(others) > 1 else 'es'} not answer either") if others else ""
            fut.fail(OrderTimeout(f"no answer to {fut.what}{via} within {self.node.timeout:g} s ({who} did not answer: "
                                  f"it is stuck, or its host cannot be reached{also})", rank=rank,
                                  host=self.node.host_of(rank)))
