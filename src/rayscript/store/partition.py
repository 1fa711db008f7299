"""Which rank owns a key.

The owner of a k-mer is ``mix64(id) % nranks`` where ``mix64`` is the splitmix64 finalizer
(Steele, Lea and Flood 2014): ``z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9``,
``z = (z ^ (z >> 27)) * 0x94D049BB133111EB``, ``z ^ (z >> 31)``, all modulo 2**64.
An id of 2**62 or more (a k-mer of k > 31: words ``hi = id >> 62`` and ``lo = id % 2**62``) is
first folded to ``lo + hi * 0x9E3779B97F4A7C15`` modulo 2**64 (the same as the id below 2**62);
an id of 2**126 or more (k > 63) adds ``t0 * 0xC2B2AE3D27D4EB4F + t1 * 0x165667B19E3779F9`` with
``hi`` its bits 62..125, ``t0`` its bits 126..189 and ``t1`` the bits above.
A named item (``paths/p1``) is owned by ``mix64(blake2b-64(name)) % nranks``.
The function is the same on every rank and every run; the scalar and the numpy versions agree.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .encoding import LO_BITS, is_long_ids, long_words, two_words

if TYPE_CHECKING:  # numpy is imported when a batch function first runs
    import numpy as np
    import numpy.typing as npt

    from .types import Ids, Words

MASK = (1 << 64) - 1
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_C3 = 0x9E3779B97F4A7C15
_C4 = 0xC2B2AE3D27D4EB4F
_C5 = 0x165667B19E3779F9


def mix64(z: int) -> int:
    z &= MASK
    z = ((z ^ (z >> 30)) * _C1) & MASK
    z = ((z ^ (z >> 27)) * _C2) & MASK
    return z ^ (z >> 31)


def name_id(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def owner(key: tuple[str, int | str], nranks: int) -> int:
    """Owner rank of ``(namespace, ident)``: ident is the canonical k-mer id or a name."""
    _, ident = key
    z = fold(ident) if isinstance(ident, int) else name_id(ident)
    return mix64(z) % nranks


def fold(ident: int) -> int:
    """An id as one 64-bit word (itself below 2**62)."""
    if ident < 1 << LO_BITS:
        return ident
    folded = (ident & ((1 << LO_BITS) - 1)) + ((ident >> LO_BITS) & MASK) * _C3
    if ident >> 126:
        folded += ((ident >> 126) & MASK) * _C4 + (ident >> 190) * _C5
    return folded & MASK


def mix64_array(ids: Ids) -> Words:
    """Vectorized :func:`mix64` over an id array (wide ids folded as :func:`fold` does)."""
    import numpy as np

    if two_words(ids):  # wide ids: fold the two words first
        w = ids.view(np.uint64).reshape(-1, 2)
        with np.errstate(over="ignore"):
            z = w[:, 1] + w[:, 0] * np.uint64(_C3)
    elif is_long_ids(ids):  # long ids: the 62-bit low part, then the three 64-bit parts above it
        m = long_words(ids)
        two, sixty_two = np.uint64(2), np.uint64(62)
        with np.errstate(over="ignore"):
            z = m[:, 3] & np.uint64((1 << LO_BITS) - 1)
            z += ((m[:, 3] >> sixty_two) | (m[:, 2] << two)) * np.uint64(_C3)
            z += ((m[:, 2] >> sixty_two) | (m[:, 1] << two)) * np.uint64(_C4)
            z += ((m[:, 1] >> sixty_two) | (m[:, 0] << two)) * np.uint64(_C5)
    else:
        z = ids.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(_C1)
        z ^= z >> np.uint64(27)
        z *= np.uint64(_C2)
        z ^= z >> np.uint64(31)
    return z


def owners(ids: Ids, nranks: int) -> npt.NDArray[np.int32]:
    """Owner rank of every k-mer id in a numpy id array (uint64, or wide)."""
    import numpy as np

    return (mix64_array(ids) % np.uint64(nranks)).astype(np.int32)
