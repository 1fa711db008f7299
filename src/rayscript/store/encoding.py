"""2-bit k-mer encoding: A=0 C=1 G=2 T=3, first base in the most significant position.

Numeric order of ids equals lexicographic order of bases, so a base prefix is a contiguous id
range.  The canonical form of a k-mer is the smaller of its id and its reverse complement's.
Scalar functions serve single keys (Python ints, any k); the ``*_array`` functions work on whole
numpy batches.

Batches of ids for k <= 31 are uint64 arrays.  For 32 <= k <= 63 an id takes two 64-bit words:
``hi`` (the first k - 31 bases) and ``lo`` (the last 31 bases, 62 bits), stored side by side as
one 16-byte element of a ``complex128`` array (the *wide* dtype: a 1-D array, so masks,
concatenation, ``==`` and buffers behave as for uint64).  Its numeric value is never used as a
number; while both words stay below 2**62, numpy's lexicographic (real, imaginary) ordering of
complex values is the numeric order of the ids, which is what sorting and binary search in
:mod:`rayscript.store.kmertable` rely on (it keeps ``hi`` below 2**58 inside a bucket).

For 64 <= k <= 127 an id takes four 64-bit words, most significant first, each stored big-endian,
as one 32-byte element of an unstructured ``void`` array (the *long* dtype, ``V32``).  numpy
compares such elements byte by byte, so sorting, ``searchsorted``, ``unique``, ``isin`` and ``==``
work on them directly and in id order; arithmetic goes through :func:`long_words`, an (n, 4) uint64
matrix of the words, and back through :func:`long_join`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # numpy is imported when a batch function first runs: the language needs none
    from collections.abc import Iterable, Sequence
    from typing import Any

    import numpy as np
    import numpy.typing as npt
    from typing_extensions import TypeIs

    from .types import Codes, Edges, Ids, LongIds, NarrowIds, WideIds, WordMatrix, Words

MAX_K = 127  # the longest k-mer: four 64-bit words per id
WORD_K = 31  # the longest k-mer whose id is one 64-bit word
WIDE_K = 63  # the longest k-mer whose id is two words (a complex128 element)
LONG_WORDS = 4  # words of a long id (64 <= k <= 127)
LO_BITS = 2 * WORD_K  # bits of the low word of a wide id
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


def canonical_array(ids: Ids, k: int) -> Ids:
    """Canonical forms of an id array of either dtype."""
    import numpy as np

    rc = revcomp_array(ids, k)
    if is_long(k):
        return long_min(cast("LongIds", ids), cast("LongIds", rc))
    if is_wide(k):
        return wide_min(cast("WideIds", ids), cast("WideIds", rc))
    return np.minimum(ids, rc)


def canonical(ident: int, k: int) -> int:
    return min(ident, revcomp(ident, k))


_M64 = (1 << 64) - 1
_PAIRS = 0x3333333333333333
_NIBBLES = 0x0F0F0F0F0F0F0F0F


def revcomp_word(ident: int, k: int) -> int:
    """:func:`revcomp` of a k-mer of k <= 32 bases, with the word tricks of :func:`revcomp_array`
    (for one id, a few operations where :func:`revcomp` makes k)."""
    x = ~ident & _M64
    x = ((x >> 2) & _PAIRS) | ((x & _PAIRS) << 2)
    x = ((x >> 4) & _NIBBLES) | ((x & _NIBBLES) << 4)
    return int.from_bytes(x.to_bytes(8, "little"), "big") >> (64 - 2 * k)


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


def _lut() -> Codes:
    import numpy as np

    lut = np.full(256, INVALID, dtype=np.uint8)
    for base, code in _CODE.items():
        lut[ord(base)] = code
    return lut


_LUT: Codes | None = None


def codes_from_bytes(buf: npt.NDArray[np.uint8]) -> Codes:
    """uint8 array of 2-bit codes (INVALID for anything that is not A, C, G, T, any case)."""
    global _LUT
    if _LUT is None:
        _LUT = _lut()
    return _LUT[buf]


def _windows(codes: Codes, k: int, reverse: bool) -> NarrowIds:
    """Ids of every window of length k <= 32 of a code array (codes 0..3), forward, or reverse
    complement when ``reverse`` (the forward windows of the reversed complemented codes, read
    backwards: a view with a negative stride)."""
    if reverse:
        return _packed_windows(3 - codes[::-1], k)[::-1]
    return _packed_windows(codes, k)


def _packed_windows(codes: Codes, k: int) -> NarrowIds:
    """Forward windows: the codes packed four to a byte, then each window read as an unaligned
    big-endian 64-bit load at its byte (a strided view, one byte apart), shifted to its base (the
    four bases of a byte are four phases; a window that runs past the load takes the next one)."""
    import numpy as np

    n = len(codes)
    m = (n + 3) // 4
    padded = np.zeros(4 * m + 64, np.uint8)
    padded[:n] = codes
    packed = (padded[0::4] << 6) | (padded[1::4] << 4) | (padded[2::4] << 2) | padded[3::4]
    loads = np.ndarray((m + 8,), dtype=">u8", buffer=packed, strides=(1,)).astype(np.uint64)
    out = np.empty(4 * m, np.uint64)
    mask = np.uint64((1 << (2 * k)) - 1)
    for phase in range(4):
        end = 2 * phase + 2 * k  # the window's last bit, counted from the load's top
        if end <= 64:
            w = loads[:m] >> np.uint64(64 - end)
        else:
            w = (loads[:m] << np.uint64(end - 64)) | (loads[8:m + 8] >> np.uint64(128 - end))
        if k < 32:
            w &= mask
        out[phase::4] = w
    return out[:max(n - k + 1, 0)]


def kmers_from_codes(codes: Codes, k: int, canonical: bool = True) -> tuple[Ids, Edges]:
    """Every valid k-mer of a code array (INVALID codes break k-mers).

    Returns (ids, edges): canonical (or forward) ids, and the 8-bit edge mask of each occurrence
    in the orientation of its id: bits 0-3 the base after it, bits 4-7 the base before it.
    """
    import numpy as np

    n = len(codes) - k + 1
    if n <= 0:
        return empty_ids(k), np.empty(0, np.uint8)
    bad = codes >= INVALID
    clean = np.where(bad, np.uint8(0), codes)
    if is_long(k):
        return _long_kmers(codes, clean, k, canonical, n)
    wide = is_wide(k)
    if wide:
        fhi, flo, rhi, rlo = _wide_kmers(clean, k, canonical)
    else:
        fwd = _windows(clean, k, reverse=False)
    valid, before, after, forward_edges = _window_context(codes, bad, k, n)
    if not canonical:
        ids = join(fhi, flo) if wide else fwd
        return ids[valid], forward_edges[valid]
    if wide:
        assert rhi is not None and rlo is not None  # made for canonical ids
        use_rev = wide_less(rhi, rlo, fhi, flo)
        ids = join(np.where(use_rev, rhi, fhi), np.where(use_rev, rlo, flo))
    else:
        rev = _windows(clean, k, reverse=True)
        use_rev = rev < fwd
        ids = np.minimum(rev, fwd)
    edges = _oriented_edges(use_rev, before, after, forward_edges)
    return ids[valid], edges[valid]


def _window_context(codes: Codes, bad: npt.NDArray[np.bool_], k: int,
                    n: int) -> tuple[npt.NDArray[np.bool_], Codes, Codes, Edges]:
    """For the n windows of length k of a code array: which are valid (no INVALID code in them),
    the codes before and after each (INVALID at the ends), and each window's forward edges."""
    import numpy as np

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
    # edge bits by shifts (an INVALID code, 4, shifts its bit out): forward, after | before << 4
    one = np.uint8(1)
    forward_edges = ((one << after) & np.uint8(15)) | (np.uint8(16) << before)
    return valid, before, after, forward_edges


def _oriented_edges(use_rev: npt.NDArray[np.bool_], before: Codes, after: Codes, forward_edges: Edges) -> Edges:
    """The edges of each window in the orientation of its id: forward, or for a window whose id is
    its reverse complement, complement(before) | complement(after) << 4 (the complement of code c
    is 3 - c)."""
    import numpy as np

    eight = np.uint8(8)
    return np.where(use_rev, (eight >> before) | ((eight >> after) << np.uint8(4)), forward_edges)



def revcomp_array(ids: Ids, k: int) -> Ids:
    """Reverse complements of a uint64 array of k-mer ids: complement every base, then reverse the
    2-bit groups (swap pairs, swap nibbles, swap bytes) and shift the k bases back down."""
    import numpy as np

    if is_long(k):
        return _long_revcomp(cast("LongIds", ids), k)
    if is_wide(k):
        return _wide_revcomp(cast("WideIds", ids), k)
    return _rc64(cast("NarrowIds", ids)) >> np.uint64(64 - 2 * k)


def decode_array(ids: Ids, k: int) -> npt.NDArray[np.uint8]:
    """(n, k) uint8 array of ASCII bases for a uint64 id array."""
    import numpy as np

    if two_words(ids):
        hi, lo = words(ids)
        return np.concatenate((_decode_words(hi, k - WORD_K), _decode_words(lo, WORD_K)), axis=1)
    if is_long_ids(ids):
        w = long_words(ids)
        return np.concatenate([_decode_words(w[:, j], n) for j, n in enumerate(_long_word_bases(k)) if n], axis=1)
    return _decode_words(ids, k)


def _decode_words(ids: Words, k: int) -> npt.NDArray[np.uint8]:
    """(n, k) ASCII bases of the k bases held in each uint64 (k <= 32)."""
    import numpy as np

    shifts = np.arange(2 * (k - 1), -1, -2, dtype=np.uint64)
    codes = ((ids[:, None] >> shifts[None, :]) & np.uint64(3)).astype(np.uint8)
    return np.frombuffer(b"ACGT", dtype=np.uint8)[codes]


# --- wide ids (32 <= k <= 63) ------------------------------------------------------

_M62 = (1 << LO_BITS) - 1


def is_wide(k: int | None) -> bool:
    """Do ids of this k take more than one word (two, or four when :func:`is_long`)?"""
    return k is not None and k > WORD_K


def is_long(k: int | None) -> bool:
    """Do ids of this k take four words (64 <= k <= 127: the ``V32`` dtype)?"""
    return k is not None and k > WIDE_K


def id_words(k: int | None) -> int:
    """64-bit words per id of this k: 1, 2 or 4 (its dtype's size is 8 times that)."""
    return LONG_WORDS if is_long(k) else 2 if is_wide(k) else 1


def id_dtype(k: int | None) -> np.dtype[Any]:
    """The dtype of ids of this k: uint64, complex128 for two-word ids, V32 for four-word ids (see
    rayscript.store.types)."""
    import numpy as np

    if is_long(k):
        return np.dtype(f"V{8 * LONG_WORDS}")
    return np.dtype(np.complex128) if is_wide(k) else np.dtype(np.uint64)


def empty_ids(k: int | None) -> Ids:
    """An empty id array of the dtype of ``k``."""
    import numpy as np

    return cast("Ids", np.empty(0, id_dtype(k)))


def concatenate(parts: Sequence[Ids], k: int | None) -> Ids:
    """Id arrays of one dtype one after the other (an empty array of the dtype of ``k`` for none)."""
    import numpy as np

    return cast("Ids", np.concatenate(parts)) if len(parts) else empty_ids(k)


def widen(ids: NarrowIds, k: int | None) -> Ids:
    """One-word ids (below 2**62) in the id dtype of ``k``."""
    import numpy as np

    if is_long(k):
        w = np.zeros((len(ids), LONG_WORDS), np.uint64)
        w[:, -1] = ids
        return long_join(w)
    if is_wide(k):
        return join(np.zeros(len(ids), np.uint64), ids)
    return ids


def words(ids: WideIds) -> tuple[Words, Words]:
    """(hi, lo) uint64 arrays of a wide id array (copies)."""
    import numpy as np

    w = ids.view(np.uint64).reshape(-1, 2)
    return w[:, 0].copy(), w[:, 1].copy()


def join(hi: Words, lo: Words) -> WideIds:
    """Wide id array from its two words."""
    import numpy as np

    out = np.empty(len(hi), np.complex128)
    w = out.view(np.uint64).reshape(-1, 2)
    w[:, 0] = hi
    w[:, 1] = lo
    return out


def ids_array(values: Iterable[int], k: int | None) -> Ids:
    """Array of the given ids (Python ints) in the id dtype of ``k``."""
    import numpy as np

    ints = [int(v) for v in values]
    if is_long(k):
        m64 = (1 << 64) - 1
        return long_join(np.array([[(v >> (64 * (LONG_WORDS - 1 - j))) & m64 for j in range(LONG_WORDS)]
                                   for v in ints], np.uint64).reshape(-1, LONG_WORDS))
    if not is_wide(k):
        return np.array(ints, np.uint64)
    return join(np.array([v >> LO_BITS for v in ints], np.uint64), np.array([v & _M62 for v in ints], np.uint64))


def int_ids(ids: Ids) -> list[int]:
    """Python ints of an id array of either dtype."""

    if is_long_ids(ids):
        out = []
        for row in long_words(ids).tolist():
            v = 0
            for w in row:
                v = (v << 64) | w
            out.append(v)
        return out
    if not two_words(ids):
        return [int(v) for v in ids.tolist()]
    hi, lo = words(ids)
    return [(h << LO_BITS) | low for h, low in zip(hi.tolist(), lo.tolist())]


def _wide_kmers(clean: Codes, k: int, canonical: bool) -> tuple[Words, Words, Words | None, Words | None]:
    """Forward (and reverse complement) wide ids of every window of length k."""
    n = len(clean) - k + 1
    head = k - WORD_K
    fhi = _windows(clean, head, reverse=False)[:n]
    flo = _windows(clean, WORD_K, reverse=False)[head:head + n]
    if not canonical:
        return fhi, flo, None, None
    # the reverse complement's first k-31 bases are the complement of the window's last ones
    rhi = _windows(clean, head, reverse=True)[WORD_K:WORD_K + n]
    rlo = _windows(clean, WORD_K, reverse=True)[:n]
    return fhi, flo, rhi, rlo


def _rc64(x: Words) -> Words:
    """Reverse complement of 32 bases held in each uint64."""
    import numpy as np

    x = ~x
    m2, m4 = np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
    x = ((x >> np.uint64(2)) & m2) | ((x & m2) << np.uint64(2))
    x = ((x >> np.uint64(4)) & m4) | ((x & m4) << np.uint64(4))
    return x.byteswap()


def _wide_revcomp(ids: WideIds, k: int) -> WideIds:
    """Reverse complements of a wide id array: the 2k-bit ids as 128-bit (H, L), both halves
    reversed and swapped, shifted back down by 128 - 2k bits, and split again at bit 62."""
    import numpy as np

    hi, lo = words(ids)
    low64 = lo | (hi << np.uint64(LO_BITS))
    high64 = hi >> np.uint64(64 - LO_BITS)
    rh, rl = _rc64(low64), _rc64(high64)  # the 128-bit reverse, still to shift right
    s = 128 - 2 * k  # 2..64
    if s == 64:
        nl, nh = rh, np.zeros_like(rh)
    else:
        nl = (rl >> np.uint64(s)) | (rh << np.uint64(64 - s))
        nh = rh >> np.uint64(s)
    return join((nl >> np.uint64(LO_BITS)) | (nh << np.uint64(64 - LO_BITS)), nl & np.uint64(_M62))


def wide_less(ahi: Words, alo: Words, bhi: Words, blo: Words) -> npt.NDArray[np.bool_]:
    """Element-wise (ahi, alo) < (bhi, blo) on uint64 words."""
    return (ahi < bhi) | ((ahi == bhi) & (alo < blo))


def wide_min(a: WideIds, b: WideIds) -> WideIds:
    """Element-wise smaller of two wide id arrays."""
    import numpy as np

    ahi, alo = words(a)
    bhi, blo = words(b)
    return np.where(wide_less(bhi, blo, ahi, alo), b, a)


def exact(ids: Ids) -> npt.NDArray[Any]:
    """A view of an id array for set operations (unique, isin, sort, searchsorted): the array
    itself for uint64 and for long ids (compared byte by byte: numeric order); for wide ids, 16
    raw bytes per id (byte order, not numeric order, but an exact total order, whatever the words
    hold)."""
    return ids.view("V16") if two_words(ids) else ids


def two_words(ids: Ids) -> TypeIs[WideIds]:
    """Are these two-word ids (31 < k <= 63: a complex128 array)?"""
    return ids.dtype == _complex()


def is_long_ids(ids: Ids) -> TypeIs[LongIds]:
    """Are these four-word ids (k > 63: a V32 array)?"""
    return ids.dtype.kind == "V"


def _complex() -> np.dtype[np.complex128]:
    import numpy as np

    return np.dtype(np.complex128)


def followers(ids: Ids, k: int, base: int | npt.NDArray[np.unsignedinteger[Any]]) -> Ids:
    """Ids of the k-mers that follow each id with ``base`` (a code, or an array of codes)
    appended (forward strand)."""
    import numpy as np

    if is_long(k):
        w = _shift_words_left2(long_words(cast("LongIds", ids)))
        w[:, -1] |= np.asarray(base, np.uint64)
        return long_join(_mask_words(w, 2 * k))
    if not is_wide(k):
        return ((cast("NarrowIds", ids) << np.uint64(2)) | np.uint64(base)) & np.uint64((1 << (2 * k)) - 1)
    hi, lo = words(cast("WideIds", ids))
    new_lo = ((lo << np.uint64(2)) | np.uint64(base)) & np.uint64(_M62)
    new_hi = ((hi << np.uint64(2)) | (lo >> np.uint64(LO_BITS - 2))) & np.uint64((1 << (2 * k - LO_BITS)) - 1)
    return join(new_hi, new_lo)


def leaders(ids: Ids, k: int, base: int | npt.NDArray[np.unsignedinteger[Any]]) -> Ids:
    """Ids of the k-mers that lead to each id with ``base`` (a code, or an array of codes) in
    front (forward strand)."""
    import numpy as np

    if is_long(k):
        w = _shift_words_right(long_words(cast("LongIds", ids)), 2)
        top, at = divmod(2 * k - 2, 64)
        w[:, LONG_WORDS - 1 - top] |= np.asarray(base, np.uint64) << np.uint64(at)
        return long_join(w)
    if not is_wide(k):
        return (np.uint64(base) << np.uint64(2 * (k - 1))) | (cast("NarrowIds", ids) >> np.uint64(2))
    hi, lo = words(cast("WideIds", ids))
    new_lo = (lo >> np.uint64(2)) | ((hi & np.uint64(3)) << np.uint64(LO_BITS - 2))
    new_hi = (np.uint64(base) << np.uint64(2 * k - LO_BITS - 2)) | (hi >> np.uint64(2))
    return join(new_hi, new_lo)


def last_codes(ids: Ids) -> npt.NDArray[np.intp]:
    """The code of the last base of each id."""
    import numpy as np

    if is_long_ids(ids):
        low = ids.view(">u8").reshape(-1, LONG_WORDS)[:, -1]
    elif two_words(ids):
        low = ids.view(np.uint64).reshape(-1, 2)[:, 1]
    else:
        low = ids
    return (low & np.uint64(3)).astype(np.intp)


def first_codes(ids: Ids, k: int) -> npt.NDArray[np.intp]:
    """The code of the first base of each id of k bases."""
    import numpy as np

    if is_long_ids(ids):
        bases = _long_word_bases(k)
        j = next(i for i, n in enumerate(bases) if n)
        top, shift = ids.view(">u8").reshape(-1, LONG_WORDS)[:, j], 2 * (bases[j] - 1)
    elif two_words(ids):
        top, shift = ids.view(np.uint64).reshape(-1, 2)[:, 0], 2 * (k - WORD_K - 1)
    else:
        top, shift = ids, 2 * (k - 1)
    return ((top >> np.uint64(shift)) & np.uint64(3)).astype(np.intp)


def is_sorted(ids: Ids) -> bool:
    """Whether an id array of either dtype is in non-decreasing id order."""
    if len(ids) < 2:
        return True
    if is_long_ids(ids):
        w = long_words(ids)
        return not words_less(w[1:], w[:-1]).any()
    if not two_words(ids):
        return bool((ids[1:] >= ids[:-1]).all())
    hi, lo = words(ids)
    return not wide_less(hi[1:], lo[1:], hi[:-1], lo[:-1]).any()


def same(a: Ids, b: Ids) -> npt.NDArray[np.bool_]:
    """Element-wise equality of two id arrays of one dtype (exact for two-word ids, whatever
    their words hold)."""
    if not two_words(a):
        return cast("npt.NDArray[np.bool_]", a == b)
    wa, wb = a.view("u8").reshape(-1, 2), b.view("u8").reshape(-1, 2)
    return (wa[:, 0] == wb[:, 0]) & (wa[:, 1] == wb[:, 1])


# --- long ids (64 <= k <= 127) ---------------------------------------------------------


def long_words(ids: LongIds) -> WordMatrix:
    """(n, 4) uint64 matrix of the words of long ids, most significant first (a copy)."""
    import numpy as np

    return ids.view(">u8").reshape(-1, LONG_WORDS).astype(np.uint64)


def long_join(w: WordMatrix) -> LongIds:
    """Long ids from an (n, 4) matrix of their words, most significant first."""
    import numpy as np

    return cast("LongIds", np.ascontiguousarray(w, ">u8").view(f"V{8 * LONG_WORDS}").reshape(-1))


def _long_word_bases(k: int) -> list[int]:
    """How many of the k bases each word of a long id holds, most significant word first: 32 in
    every word but the first that holds any (the last bases are in the last word)."""
    return [max(0, min(32, k - 32 * (LONG_WORDS - 1 - j))) for j in range(LONG_WORDS)]


def _long_kmers(codes: Codes, clean: Codes, k: int, canonical: bool, n: int) -> tuple[Ids, Edges]:
    """:func:`kmers_from_codes` for 64 <= k <= 127: each word of every window (and of its reverse
    complement) read as a window of at most 32 bases, the smaller orientation by its words."""
    import numpy as np

    valid, before, after, forward_edges = _window_context(codes, codes >= INVALID, k, n)
    fwd = np.zeros((n, LONG_WORDS), np.uint64)
    rev = np.zeros((n, LONG_WORDS), np.uint64) if canonical else None
    end = k
    for j, size in reversed(list(enumerate(_long_word_bases(k)))):
        if not size:
            continue
        start = end - size  # word j holds bases [start, end) of the window
        fwd[:, j] = _windows(clean, size, reverse=False)[start:start + n]
        if rev is not None:  # the reverse complement's bases [start, end): the window's [k - end, k - start)
            rev[:, j] = _windows(clean, size, reverse=True)[k - end:k - end + n]
        end = start
    if rev is None:
        return long_join(fwd)[valid], forward_edges[valid]
    use_rev = words_less(rev, fwd)
    ids = long_join(np.where(use_rev[:, None], rev, fwd))
    return ids[valid], _oriented_edges(use_rev, before, after, forward_edges)[valid]


def words_less(a: WordMatrix, b: WordMatrix) -> npt.NDArray[np.bool_]:
    """Row-wise a < b of two word matrices (most significant word first)."""
    import numpy as np

    less = np.zeros(len(a), bool)
    equal = np.ones(len(a), bool)
    for j in range(a.shape[1]):
        less |= equal & (a[:, j] < b[:, j])
        equal &= a[:, j] == b[:, j]
    return less


def long_min(a: LongIds, b: LongIds) -> LongIds:
    """Element-wise smaller of two long id arrays."""
    import numpy as np

    return cast("LongIds", np.where(words_less(long_words(b), long_words(a)), b, a))


def _shift_words_right(w: WordMatrix, s: int) -> WordMatrix:
    """The multi-word numbers of a word matrix shifted right by s bits (0 <= s < 64 * words)."""
    import numpy as np

    q, r = divmod(s, 64)
    out = np.zeros_like(w)
    m = w.shape[1]
    for j in range(q, m):
        out[:, j] = w[:, j - q] >> np.uint64(r)
        if r and j - q - 1 >= 0:
            out[:, j] |= w[:, j - q - 1] << np.uint64(64 - r)
    return out


def _shift_words_left2(w: WordMatrix) -> WordMatrix:
    """The multi-word numbers of a word matrix shifted left by 2 bits (the top 2 bits dropped)."""
    import numpy as np

    out = w << np.uint64(2)
    out[:, :-1] |= w[:, 1:] >> np.uint64(62)
    return out


def _mask_words(w: WordMatrix, bits: int) -> WordMatrix:
    """The word matrix's numbers modulo 2**bits (in place)."""
    import numpy as np

    m = w.shape[1]
    for j in range(m):
        keep = bits - 64 * (m - 1 - j)
        if keep <= 0:
            w[:, j] = 0
        elif keep < 64:
            w[:, j] &= np.uint64((1 << keep) - 1)
    return w


def _long_revcomp(ids: LongIds, k: int) -> LongIds:
    """Reverse complements of long ids: the 256-bit numbers reversed by 2-bit groups and
    complemented (each word's reverse complement, the words in reverse order), shifted back down
    by 256 - 2k bits."""
    w = long_words(ids)
    r = _rc64(w[:, ::-1].copy())
    return long_join(_shift_words_right(r, 64 * LONG_WORDS - 2 * k))
