"""Which rank owns a key.

The owner of a k-mer is ``mix64(id) % nranks`` where ``mix64`` is the splitmix64 finalizer
(Steele, Lea and Flood 2014): ``z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9``,
``z = (z ^ (z >> 27)) * 0x94D049BB133111EB``, ``z ^ (z >> 31)``, all modulo 2**64.
A named item (``paths/p1``) is owned by ``mix64(blake2b-64(name)) % nranks``.
The function is the same on every rank and every run; the scalar and the numpy versions agree.
"""

from __future__ import annotations

import hashlib

MASK = (1 << 64) - 1
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def mix64(z: int) -> int:
    z &= MASK
    z = ((z ^ (z >> 30)) * _C1) & MASK
    z = ((z ^ (z >> 27)) * _C2) & MASK
    return z ^ (z >> 31)


def name_id(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def owner(key: tuple, nranks: int) -> int:
    """Owner rank of ``(namespace, ident)``: ident is the canonical k-mer id or a name."""
    _, ident = key
    z = ident if isinstance(ident, int) else name_id(ident)
    return mix64(z) % nranks


def mix64_array(ids):
    """Vectorized :func:`mix64` over a numpy uint64 array."""
    import numpy as np

    z = ids.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(_C1)
        z ^= z >> np.uint64(27)
        z *= np.uint64(_C2)
        z ^= z >> np.uint64(31)
    return z


def owners(ids, nranks: int):
    """Owner rank of every k-mer id in a numpy uint64 array."""
    import numpy as np

    return (mix64_array(ids) % np.uint64(nranks)).astype(np.int32)
