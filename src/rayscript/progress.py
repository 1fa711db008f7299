"""Rank 0's display of a long statement: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Called with (bytes done, bytes in all) while a statement such as ``load`` reads."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_step = -1
        self.shown = False

    def show_on(self, stream: TextIO) -> None:
        """Draw on ``stream`` from now on (the REPL's terminal rather than a pipe)."""
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        frac = min(done / total, 1.0)
        mib = 1 << 20
        if self.tty:
            width = 30
            bar = "#" * int(frac * width)
            self.stream.write(f"\r\x1b[Kreading [{bar:<{width}}] {frac:6.1%}  "
                              f"{done / mib:,.1f} / {total / mib:,.1f} MiB")
            self.stream.flush()
            self.shown = True
            if frac >= 1.0:
                self.finish()
        else:
            step = int(frac * 10)
            if step > self.last_step and total >= 4 * mib:
                self.last_step = step
                self.stream.write(f"reading: {frac:.0%} ({done / mib:,.1f} of {total / mib:,.1f} MiB, all ranks)\n")
                self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")  # the bar gives way to the result
            self.stream.flush()
        self.shown = False
        self.last_step = -1
