"""Rank 0's display of a long statement: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO


class ProgressDisplay(Protocol):
    def __call__(self, done: int, total: int, what: str = "reading", unit: str = "MiB") -> None: ...

    def finish(self) -> None: ...


class Progress:
    """Called with (done, total) while a long statement works: bytes read by ``load`` (shown in
    MiB), levels of a ``search``, phases of ``assemble``.  On a terminal a bar; otherwise a line
    every 10% of a long read, and nothing for the rest."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_step = -1
        self.shown = False

    def show_on(self, stream: TextIO) -> None:
        """Draw on ``stream`` from now on (the REPL's terminal rather than a pipe)."""
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, done: int, total: int, what: str = "reading", unit: str = "MiB") -> None:
        if total <= 0:
            return
        frac = min(done / total, 1.0)
        scale = 1 << 20 if unit == "MiB" else 1
        amount = (f"{done / scale:,.1f} / {total / scale:,.1f} {unit}" if unit == "MiB"
                  else f"{done:,} / {total:,} {unit}")
        if self.tty:
            width = 30
            bar = "#" * int(frac * width)
            self.stream.write(f"\r\x1b[K{what} [{bar:<{width}}] {frac:6.1%}  {amount}")
            self.stream.flush()
            self.shown = True
            if frac >= 1.0:
                self.finish()
        else:
            step = int(frac * 10)
            if step > self.last_step and unit == "MiB" and total >= 4 * scale:  # lines only for long reads
                self.last_step = step
                self.stream.write(f"{what}: {frac:.0%} ({amount.replace(' / ', ' of ')}, all ranks)\n")
                self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")  # the bar gives way to the result
            self.stream.flush()
        self.shown = False
        self.last_step = -1
