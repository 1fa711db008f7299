"""The pieces of a rank's loop on their own, without MPI and without sleeping: the polite wait."""

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
