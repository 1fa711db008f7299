"""Waiting politely for something MPI will tell us (a message, a request, a barrier): one helper for
every loop that waits so.

While *hot* (until a moment given, or for a number of turns) a turn spins, giving the core away
every ``yield_every`` turns (a rank that shares the core gets to run, and MPI, which moves a
message only while it is tested, keeps moving it); after that a turn naps, the nap doubling from
``first`` up to ``cap`` (which the caller may change between turns).

Two ways to use it: :meth:`wait` runs the whole wait around a probe (the messenger's wait for the
next message, where every spin turn counts: the loop is written out in one frame, with no call per
turn but the probe's); :meth:`turn` is one turn, for loops that do more between turns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    __slots__ = ("cap", "hot_turns", "hot_until", "nap", "turns", "yield_every")

    def __init__(self, first: float, cap: float, *, hot_until: float = 0.0, hot_turns: int = 0,
                 yield_every: int = 1) -> None:
        self.nap = first
        self.cap = cap
        self.hot_until = hot_until  # a time.monotonic() value
        self.hot_turns = hot_turns
        self.yield_every = yield_every
        self.turns = 0

    def hot(self, now: float = 0.0) -> bool:
        """Is the next turn a spin (not a nap)?"""
        return now < self.hot_until or self.turns < self.hot_turns

    def turn(self, now: float = 0.0, most: float | None = None) -> bool:
        """One turn of waiting at time ``now`` (time.monotonic(); needed only with ``hot_until``); a
        nap lasts at most ``most`` seconds.  True when it napped, False when it spun."""
        self.turns = turns = self.turns + 1
        if now < self.hot_until or turns <= self.hot_turns:
            if turns % self.yield_every == 0:
                os.sched_yield()
            return False
        self._nap(most)
        return True

    def _nap(self, most: float | None) -> None:
        nap = min(self.nap, self.cap)
        time.sleep(nap if most is None else min(nap, max(most, 0.0)))
        self.nap = min(nap * 2, self.cap)

    def wait(self, probe: Callable[[], T | None], deadline: float,
             before_nap: Callable[[float], object] | None = None,
             clock: Callable[[], float] = time.monotonic) -> T | None:
        """Turn after turn, each followed by ``probe()``, until the probe gives something other
        than None (returned) or ``clock()`` reaches ``deadline`` (None).  ``before_nap(now)`` is
        called before every nap (it may set ``cap``)."""
        turns, every, hot_until, hot_turns = self.turns, self.yield_every, self.hot_until, self.hot_turns
        yield_cpu = os.sched_yield
        now = clock()
        try:
            # as the loop it replaces: one frame, and no call in a spin turn but the probe's
            while True:
                turns += 1
                if now < hot_until or turns <= hot_turns:
                    if turns % every == 0:
                        yield_cpu()
                else:
                    if before_nap is not None:
                        before_nap(now)
                    self._nap(deadline - now)
                found = probe()
                if found is not None:
                    return found
                now = clock()
                if now >= deadline:
                    return None
        finally:
            self.turns = turns
