"""The statements of the .ray language, one class each (see rayscript.language.syntax.Statement
for the protocol and docs/architecture.md for how to add one).

Importing this package registers every statement; ``parse``, ``parse_all`` and ``check`` here are
the language's own (the parser and checker of rayscript.language over this registry), and
``check_all`` both: every error of a script.
"""

from __future__ import annotations

import re

from ..errors import ScriptError
from ..language import syntax
from ..language.checker import check
from ..language.parser import default_parser, parse, parse_all
from . import assembly, cascades, checkpoint, control, graph, kmers, sets, store  # noqa: F401 - each registers its statements
from .assembly import Assemble
from .cascades import CascadeStatement, Field, Start
from .checkpoint import Restore, Save
from .control import Explain, For, Help, Let, On, Parallel, Print, Set
from .graph import Search, Walk
from .kmers import Count, Dump, Histogram, Load, Query
from .sets import Combine, Compare, Drop, Matrix, Rename, Sets
from .store import Copy, Delete, Get, Locate, Move, Put, Ranks, Rebalance, Replicate

__all__ = [
    "Assemble", "CascadeStatement", "Combine", "Compare", "Copy", "Count", "Delete", "Drop", "Dump", "Explain",
    "Field", "For", "Get", "Help", "Histogram", "Let", "Load", "Locate", "Matrix", "Move", "On", "Parallel", "Print",
    "Put", "Query", "Ranks", "Rebalance", "Rename", "Replicate", "Restore", "Save", "Search", "Set", "Sets", "Start",
    "Walk", "check", "check_all", "default_parser", "parse", "parse_all",
]

_DEFINES = re.compile(r"\b(?:let|for)\s+([A-Za-z_][A-Za-z0-9_]*)")


def check_all(text: str, source: str = "<script>", size: int | None = None, defined: set[str] | None = None,
              definitions: dict[str, object] | None = None) -> tuple[list[syntax.Statement], list[ScriptError]]:
    """The statements of a script and every error in it, in the order of the text: its syntax errors
    (each offending line set aside, as :func:`parse_all` does), and the static checks (:func:`check`)
    of the statements that do parse, so a bad option value is reported beside a syntax error on
    another line.  A variable that a line set aside would define counts as defined (no second
    error about it).  The statements are none when there is an error."""
    statements, errors, set_aside = default_parser().parse_recovering(text, source)
    lines = text.split("\n")
    names = {m.group(1) for n in set_aside if n - 1 < len(lines) for m in _DEFINES.finditer(lines[n - 1])}
    errors += check(statements, size, text if text.endswith("\n") else text + "\n", (defined or set()) | names,
                    definitions)
    errors.sort(key=lambda e: (e.location.line, e.location.column) if e.location else (1 << 30, 0))
    return ([] if errors else statements), errors

