"""Logging: every rank logs through a logger of its own, ``rayscript.rank.N``, under the package's
``rayscript`` logger.  Nothing is shown unless a level is asked for: ``rayscript --log-level LEVEL``
or the RAYSCRIPT_LOG environment variable (a program that embeds ``Cluster`` reads the variable when
it opens a cluster).  Records go to standard error, each naming its rank.

A handler that fails on a rank logs its traceback there (level error), and :func:`fault_site` is
what the commander is told of where it failed.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

ENV = "RAYSCRIPT_LOG"
LEVELS = ("debug", "info", "warning", "error")
ROOT = "rayscript"
PACKAGE = Path(__file__).resolve().parent

logging.getLogger(ROOT).addHandler(logging.NullHandler())  # a library's log is off until asked for


class _Handler(logging.StreamHandler):
    """rayscript's own handler (added once, whatever asks for a level how often)."""


def rank_logger(rank: int) -> logging.Logger:
    """The logger of rank ``rank``."""
    return logging.getLogger(f"{ROOT}.rank.{rank}")


def configure(level: str | None = None) -> bool:
    """Show rayscript's log from ``level`` up (else RAYSCRIPT_LOG's) on standard error; nothing when
    neither names one.  True when a level was set.  Raises ValueError for a word that is no level."""
    text = (level or os.environ.get(ENV) or "").strip().lower()
    if not text:
        return False
    if text not in LEVELS:
        raise ValueError(f"{text!r} is not a log level ({', '.join(LEVELS)})")
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, _Handler) for h in logger.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(text.upper())
    return True


def fault_site(exc: BaseException, skip: int = 0) -> str:
    """Where ``exc`` was raised, as ``path:line in function``: the innermost frame of rayscript's
    own code (a fault inside a library names the line of rayscript that called it), else the
    innermost frame.  ``skip`` leaves out that many outer frames (the one that caught it)."""
    frames = traceback.extract_tb(exc.__traceback__)[skip:]
    if not frames:
        return ""
    ours = [f for f in frames if _inside(f.filename)]
    frame = ours[-1] if ours else frames[-1]
    path = Path(frame.filename)
    shown = f"rayscript/{path.resolve().relative_to(PACKAGE)}" if _inside(frame.filename) else path.name
    return f"{shown}:{frame.lineno} in {frame.name}"


def _inside(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(PACKAGE)
    except OSError:
        return False
