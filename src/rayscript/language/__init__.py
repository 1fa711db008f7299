"""The .ray language: grammar, parser, statement nodes and static checks (no MPI, no numpy)."""

from .parser import parse, parse_all

__all__ = ["parse", "parse_all"]
