"""Ctrl-C on a rank: when it may interrupt what the rank does, and how the rank learns of it.

A rank never lets SIGINT land in the middle of taking in or handling a message (a reply dropped
there would leave an order unanswered forever): while the commander runs a statement the signal is
only noted and acted on at the loop's next check; inside a collective operation it only sets
``interrupted``, which the operation checks at its next step so that every rank leaves together.  A
shell that reads Ctrl-C as a key gives a ``check`` instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType


class Interrupts:
    def __init__(self, check: Callable[[], bool] | None = None) -> None:
        self.check = check  # a shell's: has the user pressed Ctrl-C (read as a key)?
        self.interrupted = False  # within a collective operation: Ctrl-C seen, to act on at its next step
        self.sigint = False  # while a statement runs: Ctrl-C noted, to act on at the next safe point
        self.heeded = False  # the collective operation saw ``interrupted`` (and so stops)

    @contextlib.contextmanager
    def read_by(self, check: Callable[[], bool] | None) -> Iterator[None]:
        """While the block runs, Ctrl-C is read by ``check`` (a shell that reads it as a key)."""
        saved, self.check = self.check, check
        try:
            yield
        finally:
            self.check = saved

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within a collective operation Ctrl-C must not leave the other ranks waiting: it only
        sets ``interrupted``, which the operation checks at its next step.  A Ctrl-C that came after
        the operation's last check is not lost: the statement's next safe point takes it."""
        self.interrupted = self.heeded = False
        try:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = signal.getsignal(signal.SIGINT)

            def note(signum: int, frame: FrameType | None) -> None:
                self.interrupted = True

            signal.signal(signal.SIGINT, note)
            try:
                yield
            finally:
                signal.signal(signal.SIGINT, previous)
        finally:
            if self.interrupted and not self.heeded:
                self.sigint = True
            self.interrupted = self.heeded = False

    @contextlib.contextmanager
    def at_safe_points(self) -> Iterator[None]:
        """While the commander runs a statement on the main thread: Ctrl-C (SIGINT) is only noted,
        and :meth:`take` says so at the loop's next check."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return

        def note(signum: int, frame: FrameType | None) -> None:
            self.sigint = True

        self.sigint = False
        signal.signal(signal.SIGINT, note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.sigint = False

    def poll(self) -> bool:
        """For long operations that do not return to the loop: has the user asked to cancel?"""
        if self.check is not None and self.check():
            self.interrupted = True
        self.heeded = self.heeded or self.interrupted
        return self.interrupted

    def take(self) -> bool:
        """At the loop's safe point: was Ctrl-C pressed (noted, or read by the shell)?  Forgets it."""
        if self.sigint or (self.check is not None and self.check()):
            self.sigint = False
            return True
        return False
