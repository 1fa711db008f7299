"""Waiting politely for something MPI will tell us (a message, a request, a barrier): one helper for
every loop that waits so.

While *hot* (until a moment given, or for a number of turns) a turn spins, giving the core away
every ``yield_every`` turns (a rank that shares the core gets to run, and MPI, which moves a
message only while it is tested, keeps moving it); after that a turn naps, the nap doubling from
``first`` up to ``cap`` (which the caller may change between turns).
"""

from __future__ import annotations

import os
import time


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
        hot = self.hot(now)
        self.turns += 1
        if hot:
            if self.turns % self.yield_every == 0:
                os.sched_yield()
            return False
        nap = min(self.nap, self.cap)
        time.sleep(nap if most is None else min(nap, max(most, 0.0)))
        self.nap = min(nap * 2, self.cap)
        return True
