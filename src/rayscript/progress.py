"""Rank 0's display of a long statement: how far it got, how fast it goes and how long it has left.

On a terminal a bar on one line (redrawn at most ten times a second, wiped when the statement
ends); in the REPL the same line drawn as a toolbar (reverse video) on its terminal.  Where standard
error is not a terminal nothing is shown, unless asked for (``rayscript run --progress``): then a
plain line at every tenth of the work.  Progress is only ever written to the display's stream
(standard error or the REPL's terminal), never to results or files.

A statement or a rank's service reports with ``cmd.progress(done, total, what, unit)`` (commander
side) or ``node.show_progress(...)`` (rank side: only rank 0 shows it); ``what`` may change as the
work goes (the phases of ``assemble``) while ``total`` and ``unit`` stay: the rate and the time
left are measured from the first report of one piece of work (a report with fewer done than the
last, or another total or unit, starts a new one).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO


class ProgressDisplay(Protocol):
    def __call__(self, done: int, total: int, what: str = "reading", unit: str = "MiB") -> None: ...

    def finish(self) -> None: ...


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Called with (done, total) while a long statement works: bytes read by ``load`` (shown in
    MiB), levels of a ``search``, phases and rounds of ``assemble``, buckets of ``combine``,
    ``matrix`` and ``dump``, sets written or read by ``save`` and ``restore``."""

    INTERVAL = 0.1  # seconds between two redraws of the bar

    def __init__(self, stream: TextIO | None = None, lines: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        """``lines``: where the stream is not a terminal, show plain lines (``--progress``) rather
        than nothing."""
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.lines = lines
        self.toolbar = False
        self.clock = clock
        self.last_step = -1
        self.shown = False
        self.started = 0.0
        self.last_drawn = -1.0
        self.key: tuple[int, str] | None = None
        self.last_done = 0
        self.last = ("", 0, 0, "")  # the last report: what, done, total, unit
        self.summary = ""  # how the last piece of work went, once it ended (the REPL's toolbar shows it)

    def show_on(self, stream: TextIO, toolbar: bool = False) -> None:
        """Draw on ``stream`` from now on (the REPL's terminal rather than a pipe); ``toolbar``:
        as the REPL's toolbar, in reverse video."""
        self.stream = stream
        self.tty = stream.isatty()
        self.toolbar = toolbar

    def measure(self, done: int, total: int, unit: str) -> tuple[float, float | None]:
        """(rate per second, seconds left or None while unknown) of the piece of work under way."""
        now = self.clock()
        if self.key != (total, unit) or done < self.last_done:
            self.key = (total, unit)
            self.started = now
            self.last_step = -1
        self.last_done = done
        elapsed = now - self.started
        if elapsed <= 0 or done <= 0:
            return 0.0, None
        rate = done / elapsed
        return rate, (total - done) / rate if rate > 0 else None

    def __call__(self, done: int, total: int, what: str = "reading", unit: str = "MiB") -> None:
        if total <= 0:
            return
        rate, left = self.measure(done, total, unit)
        self.last = (what, done, total, unit)
        if not self.tty and not self.lines:
            return
        frac = min(done / total, 1.0)
        mib = unit == "MiB"
        scale = 1 << 20 if mib else 1
        amount = f"{done / scale:,.1f} / {total / scale:,.1f} {unit}" if mib else f"{done:,} / {total:,} {unit}"
        speed = ""
        if rate > 0:
            shown_rate = f"{rate / scale:,.1f} {unit}/s" if mib or rate >= 10 else f"{rate:,.2f} {unit}/s"
            speed = shown_rate + (f", {duration(left)} left" if left is not None and frac < 1 else "")
        if self.tty:
            now = self.clock()
            if frac < 1.0 and now - self.last_drawn < self.INTERVAL:
                return
            self.last_drawn = now
            width = 30
            bar = "#" * int(frac * width)
            line = f"{what} [{bar:<{width}}] {frac:6.1%}  {amount}" + (f"  {speed}" if speed else "")
            if self.toolbar:
                line = f"\x1b[7m {line} \x1b[0m"
            self.stream.write(f"\r\x1b[K{line}")
            self.stream.flush()
            self.shown = True
            if frac >= 1.0:
                self.finish()
        else:
            step = int(frac * 10)
            if step > self.last_step:
                self.last_step = step
                where = ", all ranks" if mib else ""
                tail = f"{where}; {speed})" if speed else f"{where})"
                self.stream.write(f"{what}: {frac:.0%} ({amount.replace(' / ', ' of ')}{tail}\n")
                self.stream.flush()

    def finish(self) -> None:
        what, done, total, unit = self.last
        if self.key is not None and total:
            amount = f"{done / (1 << 20):,.1f} MiB" if unit == "MiB" else f"{done:,} of {total:,} {unit}"
            self.summary = f"last: {what}, {amount} in {duration(self.clock() - self.started)}"
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")  # the bar gives way to the result
            self.stream.flush()
        self.shown = False
        self.last_step = -1
        self.last_drawn = -1.0
        self.key = None
        self.last_done = 0
