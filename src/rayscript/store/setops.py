"""Set algebra of k-mer sets, on one rank, one bucket at a time.

Sets of one k share one partition: a k-mer's owner rank and its bucket are functions of the k-mer
alone, so the union, intersection or difference of two sets is, on every rank and in every bucket, a
merge of two sorted arrays that rank already holds.  No k-mer travels.

A bucket of a set is three parallel arrays: its keys, sorted and unique (uint64 ids, or for k > 31
the complex128 keys of :mod:`rayscript.store.kmertable`, or for k > 63 its 32-byte ids: numpy's
order of either is the ids' order),
their counts and their edges.  Every function here takes and returns such triples, with numpy over
whole arrays: a binary search of one array's keys in the other's places every key, and the merged
order comes from the places, without sorting again.

Counter modes follow ``kmc_tools``' ``-oc``, for the k-mers in both operands:
``min``, ``max``, ``sum`` (saturating at the counter's maximum), ``diff`` (left minus right, the
k-mer dropped where that is not above 0), ``left``, ``right``.  Edges of a k-mer in both are OR-ed.

The operators, as the language writes them:

- ``a + b`` union: every k-mer of either; counts of shared ones by the mode (default ``sum``);
- ``a * b`` intersection: the k-mers of both, counts by the mode (default ``min``);
- ``a - b`` the k-mers of ``a`` not in ``b``, with ``a``'s counts (``kmc_tools kmers_subtract``);
- ``a ~ b`` counters subtract: ``a``'s counts minus ``b``'s, kept where above 0; k-mers only in ``a``
  keep their count (``kmc_tools counters_subtract``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .encoding import COUNT_MAX

MODES = ("min", "max", "sum", "diff", "left", "right")
OPERATORS = {"+": "union", "*": "intersection", "-": "difference", "~": "counters subtract"}
DEFAULT_MODE = {"+": "sum", "*": "min"}

Keys = npt.NDArray[np.uint64] | npt.NDArray[np.complex128] | npt.NDArray[np.void]
Counts = npt.NDArray[np.uint32]
Edges = npt.NDArray[np.uint8]
Triple = tuple[Keys, Counts, Edges]


@dataclass(frozen=True)
class Operand:
    """A set, by its name."""

    name: str


@dataclass(frozen=True)
class Operation:
    """``left OP right``; ``mode`` is the counter mode of ``+`` and ``*`` (None: the default)."""

    op: str
    left: Expr
    right: Expr
    mode: str | None = None


Expr = Operand | Operation


def operands(expr: Expr) -> list[str]:
    """The names of the sets an expression reads, each once, in the order written."""
    if isinstance(expr, Operand):
        return [expr.name]
    return list(dict.fromkeys(operands(expr.left) + operands(expr.right)))


def show(expr: Expr, prefix: str = "kmers.") -> str:
    """The expression as the language writes it, fully parenthesised below the top."""
    if isinstance(expr, Operand):
        return prefix + expr.name if expr.name else prefix.rstrip(".")

    def inner(e: Expr) -> str:
        return show(e, prefix) if isinstance(e, Operand) else f"({show(e, prefix)})"

    return f"{inner(expr.left)} {expr.op} {inner(expr.right)}"


def combine_counts(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64], mode: str) -> npt.NDArray[np.uint64]:
    """The counts of k-mers in both operands, by a counter mode (0 where ``diff`` drops one)."""
    if mode == "min":
        return np.minimum(a, b)
    if mode == "max":
        return np.maximum(a, b)
    if mode == "sum":
        return np.minimum(a + b, np.uint64(COUNT_MAX))
    if mode == "diff":
        return np.where(a > b, a - b, np.uint64(0))
    if mode == "left":
        return a
    if mode == "right":
        return b
    raise ValueError(f"unknown counter mode {mode!r}; one of {', '.join(MODES)}")


def _places(keys: Keys, among: Keys) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """For each key: where it would go among the sorted ``among``, and whether it is there."""
    pos = np.searchsorted(among, keys)
    if not len(among):
        return pos, np.zeros(len(keys), bool)
    found = among[np.minimum(pos, len(among) - 1)] == keys
    found &= pos < len(among)
    return pos, found


def _empty_like(t: Triple) -> Triple:
    return t[0][:0], t[1][:0], t[2][:0]


def union(a: Triple, b: Triple, mode: str = "sum") -> Triple:
    ka, ca, ea = a
    kb, cb, eb = b
    pos, shared = _places(kb, ka)
    only = ~shared
    pb = pos[only]
    n = len(ka) + len(pb)
    # a's i-th key is preceded by the b-only keys placed at or before i; b's j-th b-only key by
    # the a keys before its place and the j b-only keys before it
    dest_a = np.arange(len(ka)) + np.searchsorted(pb, np.arange(len(ka)), side="right")
    dest_b = pb + np.arange(len(pb))
    keys: Keys = np.empty_like(ka, shape=n)
    counts = np.empty(n, np.uint64)
    edges = np.empty(n, np.uint8)
    keys[dest_a], keys[dest_b] = ka, kb[only]
    counts[dest_a], counts[dest_b] = ca, cb[only]
    edges[dest_a], edges[dest_b] = ea, eb[only]
    if shared.any():
        ia, ib = pos[shared], np.flatnonzero(shared)
        at = dest_a[ia]
        counts[at] = combine_counts(ca[ia].astype(np.uint64), cb[ib].astype(np.uint64), mode)
        edges[at] = ea[ia] | eb[ib]
        if mode == "diff":
            keep = np.ones(n, bool)
            keep[at] = counts[at] > 0
            keys, counts, edges = keys[keep], counts[keep], edges[keep]
    return keys, counts.astype(np.uint32), edges


def union_keys(ka: Keys, kb: Keys) -> Keys:
    """The sorted union of two sorted unique key arrays (the keys of :func:`union`, nothing else)."""
    pos, shared = _places(kb, ka)
    pb = pos[~shared]
    keys: Keys = np.empty_like(ka, shape=len(ka) + len(pb))
    keys[np.arange(len(ka)) + np.searchsorted(pb, np.arange(len(ka)), side="right")] = ka
    keys[pb + np.arange(len(pb))] = kb[~shared]
    return keys


def intersection(a: Triple, b: Triple, mode: str = "min") -> Triple:
    ka, ca, ea = a
    kb, cb, eb = b
    if len(kb) < len(ka):  # search the smaller in the larger
        pos, shared = _places(kb, ka)
        ia, ib = pos[shared], np.flatnonzero(shared)
    else:
        pos, shared = _places(ka, kb)
        ia, ib = np.flatnonzero(shared), pos[shared]
    counts = combine_counts(ca[ia].astype(np.uint64), cb[ib].astype(np.uint64), mode)
    keys, edges = ka[ia], ea[ia] | eb[ib]
    if mode == "diff":
        keep = counts > 0
        keys, counts, edges = keys[keep], counts[keep], edges[keep]
    return keys, counts.astype(np.uint32), edges


def difference(a: Triple, b: Triple) -> Triple:
    ka, ca, ea = a
    _pos, shared = _places(ka, b[0])
    keep = ~shared
    return ka[keep], ca[keep], ea[keep]


def counters_subtract(a: Triple, b: Triple) -> Triple:
    ka, ca, ea = a
    kb, cb, _eb = b
    pos, shared = _places(ka, kb)
    counts = ca.astype(np.int64)
    counts[shared] -= cb[pos[shared]].astype(np.int64)
    keep = counts > 0
    return ka[keep], counts[keep].astype(np.uint32), ea[keep]


def apply(op: str, a: Triple, b: Triple, mode: str | None = None) -> Triple:
    """``a OP b`` for one operator of the language."""
    if op == "+":
        return union(a, b, mode or DEFAULT_MODE["+"])
    if op == "*":
        return intersection(a, b, mode or DEFAULT_MODE["*"])
    if op == "-":
        return difference(a, b)
    if op == "~":
        return counters_subtract(a, b)
    raise ValueError(f"unknown operator {op!r}; one of {', '.join(OPERATORS)}")


def evaluate(expr: Expr, leaves: dict[str, Triple], mode: str | None = None) -> Triple:
    """An expression over one bucket of each set it reads (``leaves``: name -> triple); ``mode``
    is the counter mode of every ``+`` and ``*`` that does not name its own."""
    if isinstance(expr, Operand):
        return leaves[expr.name]
    return apply(expr.op, evaluate(expr.left, leaves, mode), evaluate(expr.right, leaves, mode), expr.mode or mode)


def limit(t: Triple, low: int = 1, high: int | None = None) -> Triple:
    """The k-mers whose count is at least ``low`` and at most ``high`` (kmc_tools' -ci and -cx on
    the output)."""
    keys, counts, edges = t
    keep = counts >= low
    if high is not None:
        keep &= counts <= high
    if keep.all():
        return t
    return keys[keep], counts[keep], edges[keep]
