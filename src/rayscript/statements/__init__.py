"""The statements of the .ray language, one class each (see rayscript.language.syntax.Statement
for the protocol and docs/architecture.md for how to add one).

Importing this package registers every statement; ``parse``, ``parse_all`` and ``check`` here are
the language's own (the parser and checker of rayscript.language over this registry).
"""

from __future__ import annotations

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
    "Walk", "check", "default_parser", "parse", "parse_all",
]
