"""The pieces of a rank's loop on their own, without MPI and without sleeping: the polite wait, and
liveness (overdue orders and who is blamed) on a clock the test moves by hand."""

import pytest

from rayscript.runtime import backoff as bo


def test_backoff_spins_while_hot_then_naps_doubling_up_to_its_cap(monkeypatch):
    naps, yields = [], []
    monkeypatch.setattr(bo.time, "sleep", naps.append)
    monkeypatch.setattr(bo.os, "sched_yield", lambda: yields.append(1))
    b = bo.Backoff(0.001, 0.004, hot_turns=4, yield_every=2)
    assert [b.turn() for _ in range(8)] == [False] * 4 + [True] * 4
    assert len(yields) == 2 and naps == [0.001, 0.002, 0.004, 0.004]
    b.cap = 0.001  # a cap lowered between turns holds from the next nap
    b.turn(most=0.0005)
    assert naps[-1] == 0.0005  # never longer than the caller allows
    b.turn()
    assert naps[-1] == 0.001


def test_backoff_is_hot_until_a_moment(monkeypatch):
    naps = []
    monkeypatch.setattr(bo.time, "sleep", naps.append)
    monkeypatch.setattr(bo.os, "sched_yield", lambda: None)
    b = bo.Backoff(0.01, 0.01, hot_until=5.0)
    assert b.turn(now=4.9) is False and b.turn(now=5.0) is True and naps == [0.01]


def test_backoff_wait_spins_then_naps_until_the_probe_gives_something(monkeypatch):
    naps, yields, looks = [], [], []
    monkeypatch.setattr(bo.time, "sleep", naps.append)
    monkeypatch.setattr(bo.os, "sched_yield", lambda: yields.append(1))
    clock = iter(range(100)).__next__  # one second a look
    b = bo.Backoff(0.001, 0.004, hot_until=3, yield_every=2)

    def probe():
        looks.append(1)
        return "message" if len(looks) == 7 else None

    capped = []
    assert b.wait(probe, 50, before_nap=capped.append, clock=clock) == "message"
    # spins while the clock is below 3 (three turns, the core given away on the second), then naps
    # doubling to the cap, before_nap told the time before each nap
    assert len(yields) == 1 and naps == [0.001, 0.002, 0.004, 0.004] and capped == [3, 4, 5, 6]
    assert b.turns == 7


def test_backoff_wait_ends_at_its_deadline_and_naps_no_longer_than_it(monkeypatch):
    naps = []
    monkeypatch.setattr(bo.time, "sleep", naps.append)
    clock = iter([10.0, 10.5, 10.9, 11.0]).__next__
    b = bo.Backoff(1.0, 1.0)
    lowered = []

    def before_nap(now):
        b.cap = 0.25  # a cap set before a nap holds for it
        lowered.append(now)

    assert b.wait(lambda: None, 11.0, before_nap, clock) is None
    assert naps == pytest.approx([0.25, 0.25, 0.1]) and lowered == [10.0, 10.5, 10.9]


class Clock:
    """A clock the test moves on by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _nodes(n, clock):
    from rayscript.runtime.local import LocalNetwork
    from rayscript.runtime.node import Node
    from rayscript.runtime.shard import Shard

    net = LocalNetwork(n)
    return [Node(net.messenger(r), Shard(), clock=clock) for r in range(n)]


def test_an_unanswered_order_names_the_rank_that_does_not_answer_pings_without_waiting():
    from rayscript.errors import OrderTimeout
    from rayscript.protocol.store import GetOrder
    from rayscript.runtime.liveness import PING_SECONDS

    clock = Clock()
    a, _silent, alive = _nodes(3, clock)
    a.timeout = 30.0
    fut = a.order(GetOrder(recipient=1, key=("kmers", 1)))
    a.step(0)
    clock.now += 29.0
    a.step(0)
    assert not fut.done  # not yet overdue
    clock.now += 1.5
    a.step(0)  # overdue: every other rank is pinged
    alive.step(0)  # rank 2 answers its ping; rank 1 never steps
    a.step(0)
    assert not fut.done
    clock.now += PING_SECONDS + 0.1
    a.step(0)
    assert isinstance(fut.error, OrderTimeout) and fut.error.rank == 1
    assert "within 30 s (rank 1 did not answer" in str(fut.error)
    assert a.unresponsive == {1}


def test_an_order_unanswered_by_a_rank_that_answers_pings_calls_it_busy():
    from rayscript.errors import OrderTimeout
    from rayscript.protocol.store import GetOrder

    clock = Clock()
    a, busy = _nodes(2, clock)
    a.timeout = 5.0
    busy.handlers[GetOrder] = lambda msg: None  # takes the order and never answers it
    fut = a.order(GetOrder(recipient=1, key=("kmers", 1)))
    busy.step(0)
    clock.now += 6.0
    a.step(0)
    busy.step(0)  # answers the ping
    a.step(0)
    assert isinstance(fut.error, OrderTimeout) and fut.error.rank == 1
    assert "though it answers pings" in str(fut.error) and a.unresponsive == set()
