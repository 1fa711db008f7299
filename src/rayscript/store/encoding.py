"""2-bit k-mer encoding: A=0 C=1 G=2 T=3, first base in the most significant position.

Numeric order of ids equals lexicographic order of bases, so a base prefix is a contiguous id
range.  The canonical form of a k-mer is the smaller of its id and its reverse complement's.
Scalar functions serve single keys; the ``*_array`` functions work on whole numpy batches.
"""

from __future__ import annotations

from typing import Any

MAX_K = 31  # the longest k-mer: one 64-bit word per id
COUNT_MAX = (1 << 32) - 1  # a count is a 32-bit counter; it saturates here
EDGES_MAX = 255  # the edges of a k-mer are an 8-bit mask
BASES = "ACGT"
_CODE = {"A": 0, "C": 1, "G": 2, "T": 3, "a": 0, "c": 1, "g": 2, "t": 3}
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


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


def revcomp_text(bases: str) -> str:
    return bases[::-1].translate(_COMPLEMENT)


def canonical(ident: int, k: int) -> int:
    return min(ident, revcomp(ident, k))


def id_problem(ident: int, k: int, canonical_store: bool) -> str | None:
    """Why ``ident`` cannot be a k-mer of a store of this k (below 4**k; canonical in a canonical
    store), or None."""
    if ident >= 1 << (2 * k):
        return f"kmers/{ident} is not a k={k} k-mer: ids of this store are below 4**{k} = {4 ** k:,}"
    if canonical_store:
        canon = canonical(ident, k)
        if canon != ident:
            return (f"kmers/{ident} ({decode(ident, k)}) is not canonical in this store (canonical=true): "
                    f"its canonical form is kmers/{canon} ({decode(canon, k)})")
    return None


def fits(ident: int, k: int) -> bool:
    return 0 <= ident < (1 << (2 * k))


# --- numpy batch versions -------------------------------------------------------

INVALID = 4


def _lut():
    import numpy as np

    lut = np.full(256, INVALID, dtype=np.uint8)
    for base, code in _CODE.items():
        lut[ord(base)] = code
    return lut


_LUT = None


def codes_from_bytes(buf):
    """uint8 array of 2-bit codes (INVALID for anything that is not A, C, G, T, any case)."""
    global _LUT
    if _LUT is None:
        _LUT = _lut()
    return _LUT[buf]


def _windows(codes, k, reverse):
    """Ids of every window of length k (forward, or reverse complement when ``reverse``)."""
    import numpy as np

    n = len(codes) - k + 1
    vals = codes.astype(np.uint64)
    if reverse:
        vals = np.uint64(3) - vals
    # binary decomposition of k: combine windows of length 1, 2, 4, ...
    result: Any = None
    length = 0  # length covered by result
    width = 1
    power = vals  # windows of length `width` starting at each position
    remaining = k
    while remaining:
        if remaining & 1:
            if result is None:
                result = power[: len(codes) - width + 1].copy()
            else:
                # append the window of `width` starting at offset `length`
                seg = power[length: length + len(result) - width + 1]
                result = result[: len(seg)]
                if reverse:
                    result |= seg << np.uint64(2 * length)
                else:
                    result <<= np.uint64(2 * width)
                    result |= seg
            length += width
        remaining >>= 1
        if remaining:
            shifted = power[width:]
            if reverse:
                power = power[: len(shifted)] | (shifted << np.uint64(2 * width))
            else:
                power = (power[: len(shifted)] << np.uint64(2 * width)) | shifted
            width *= 2
    return result[:n]


def kmers_from_codes(codes, k: int, canonical: bool = True):
    """Every valid k-mer of a code array (INVALID codes break k-mers).

    Returns (ids, edges): canonical (or forward) ids, and the 8-bit edge mask of each occurrence
    in the orientation of its id: bits 0-3 the base after it, bits 4-7 the base before it.
    """
    import numpy as np

    n = len(codes) - k + 1
    if n <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.uint8)
    bad = codes >= INVALID
    clean = np.where(bad, np.uint8(0), codes)
    fwd = _windows(clean, k, reverse=False)
    badc = np.cumsum(bad, dtype=np.int32)
    # window [i, i+k) is valid when no INVALID code lies in it
    valid = np.empty(n, dtype=bool)
    valid[0] = badc[k - 1] == 0
    np.equal(badc[k:], badc[: n - 1], out=valid[1:])
    # neighbour codes: before position i and after the window (INVALID at the ends)
    before = np.empty(n, np.uint8)
    before[0] = INVALID
    before[1:] = codes[: n - 1]
    after = np.empty(n, np.uint8)
    after[: n - 1] = codes[k:]
    after[n - 1] = INVALID
    if canonical:
        rev = _windows(clean, k, reverse=True)
        use_rev = rev < fwd
        ids = np.where(use_rev, rev, fwd)
        # forward: after | before << 4; reverse: complement(before) | complement(after) << 4
        edges = np.where(use_rev, _CAFTER[before] | _CBEFORE[after], _AFTER[after] | _BEFORE[before])
    else:
        ids = fwd
        edges = _AFTER[after] | _BEFORE[before]
    return ids[valid], edges[valid]


def _bit_luts():
    import numpy as np

    after = np.array([1, 2, 4, 8, 0], np.uint8)  # code -> bit of the base after
    comp = np.array([8, 4, 2, 1, 0], np.uint8)  # code -> bit of its complement
    return after, after << 4, comp, comp << 4


_AFTER, _BEFORE, _CAFTER, _CBEFORE = _bit_luts()



def revcomp_array(ids, k: int):
    """Reverse complements of a uint64 array of k-mer ids: complement every base, then reverse the
    2-bit groups (swap pairs, swap nibbles, swap bytes) and shift the k bases back down."""
    import numpy as np

    x = ~ids
    m2, m4 = np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
    x = ((x >> np.uint64(2)) & m2) | ((x & m2) << np.uint64(2))
    x = ((x >> np.uint64(4)) & m4) | ((x & m4) << np.uint64(4))
    return x.byteswap() >> np.uint64(64 - 2 * k)


def decode_array(ids, k: int):
    """(n, k) uint8 array of ASCII bases for a uint64 id array."""
    import numpy as np

    shifts = np.arange(2 * (k - 1), -1, -2, dtype=np.uint64)
    codes = ((ids[:, None] >> shifts[None, :]) & np.uint64(3)).astype(np.uint8)
    return np.frombuffer(b"ACGT", dtype=np.uint8)[codes]
