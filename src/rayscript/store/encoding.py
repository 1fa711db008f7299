"""2-bit k-mer encoding: A=0 C=1 G=2 T=3, first base in the most significant position.

Numeric order of ids equals lexicographic order of bases, so a base prefix is a contiguous id
range.  The canonical form of a k-mer is the smaller of its id and its reverse complement's.
Scalar functions serve single keys; the ``*_array`` functions work on whole numpy batches.
"""

from __future__ import annotations

MAX_K = 31
BASES = "ACGT"
_CODE = {"A": 0, "C": 1, "G": 2, "T": 3, "a": 0, "c": 1, "g": 2, "t": 3}


def encode(bases: str) -> int:
    value = 0
    for b in bases:
        value = (value << 2) | _CODE[b]
    return value


def decode(ident: int, k: int) -> str:
    return "".join(BASES[(ident >> (2 * (k - 1 - i))) & 3] for i in range(k))


def revcomp(ident: int, k: int) -> int:
    out = 0
    for _ in range(k):
        out = (out << 2) | (3 - (ident & 3))
        ident >>= 2
    return out


def canonical(ident: int, k: int) -> int:
    return min(ident, revcomp(ident, k))


def fits(ident: int, k: int) -> bool:
    return 0 <= ident < (1 << (2 * k))
