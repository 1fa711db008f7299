"""Carriageable items: things that can travel between ranks as flat byte buffers.

Every item type declares the namespace it lives in and a wire type code, knows its size in
bytes, and packs into / unpacks from a flat buffer.  ``BY_NAMESPACE`` and ``BY_CODE`` map namespaces
and wire codes to classes; a new type is one subclass with ``namespace=`` and ``code=``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..store import encoding
from ..store.encoding import COUNT_MAX

_M64 = (1 << 64) - 1

BY_NAMESPACE: dict[str, type[Carriageable]] = {}
BY_CODE: dict[int, type[Carriageable]] = {}

# K-mer sets: ``kmers`` is the default set, ``kmers.NAME`` a named one (NAME: a lowercase letter or
# '_', then lowercase letters, digits and '_').  Every set's items are k-mers: the set's name is the
# namespace of its keys (``kmers.tumour/ACGT``).
KMERS = "kmers"
SET_NAME = r"[a-z_][a-z0-9_]*"
_SET_RE = re.compile(rf"kmers(?:\.{SET_NAME})?")


def is_kmers(namespace: str) -> bool:
    """Whether ``namespace`` names a k-mer set (``kmers`` or ``kmers.NAME``)."""
    return namespace == KMERS or (namespace.startswith("kmers.") and _SET_RE.fullmatch(namespace) is not None)


def item_class(namespace: str) -> type[Carriageable]:
    """The item type of a namespace (every k-mer set's is :class:`Kmer`)."""
    return BY_NAMESPACE[KMERS if is_kmers(namespace) else namespace]


def set_label(namespace: str) -> str:
    """A set's name in tables and files: ``tumour`` for ``kmers.tumour``, ``kmers`` for the default set."""
    return namespace.partition(".")[2] or namespace


class Carriageable:
    namespace: ClassVar[str] = ""
    code: ClassVar[int] = -1

    def __init_subclass__(cls, namespace: str = "", code: int = -1, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if namespace:
            cls.namespace, cls.code = namespace, code
            BY_NAMESPACE[namespace] = cls
            BY_CODE[code] = cls

    @property
    def ident(self) -> int | str:
        raise NotImplementedError

    def pack(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Carriageable:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return len(self.pack())

    def merge(self, other: Carriageable) -> Carriageable:
        raise ValueError(f"merge applies to k-mers, not to {self.namespace}/ items")

    @classmethod
    def empty(cls, ident: Any, options: dict) -> Carriageable:
        raise NotImplementedError


def pack_item(item: Carriageable) -> bytes:
    return bytes([item.code]) + item.pack()


def unpack_item(buf: bytes | memoryview) -> Carriageable:
    return BY_CODE[buf[0]].unpack(memoryview(buf)[1:])


def _edges_text(edges: int) -> str:
    before = "".join(b for i, b in enumerate(encoding.BASES) if edges >> (4 + i) & 1)
    after = "".join(b for i, b in enumerate(encoding.BASES) if edges >> i & 1)
    return f"{before or '-'}>{after or '-'}"


@dataclass
class Kmer(Carriageable, namespace="kmers", code=1):
    """A k-mer: canonical 2-bit id, count, and its de Bruijn edges (bits 0-3: bases seen after
    it, bits 4-7: bases seen before it, in A, C, G, T order)."""

    id: int
    count: int = 1
    edges: int = 0
    k: int = 0  # 0: unknown (an id given without bases)

    # the id's low 64 bits, count, edges, k; then, for an id of 2**64 or more (k > 32), its high bits:
    # one little-endian word below 2**128 (k <= 64), else three
    _FMT: ClassVar[struct.Struct] = struct.Struct("<QIBB")
    _WIRE: ClassVar[struct.Struct] = struct.Struct("<B" + _FMT.format[1:])  # code byte + _FMT, as pack_item frames it

    @staticmethod
    def _high(ident: int) -> bytes:
        high = ident >> 64
        return high.to_bytes(8 if high >> 64 == 0 else 24, "little")

    @classmethod
    def packed(cls, ident: int, count: int, edges: int, k: int) -> bytes:
        """``pack_item(Kmer(...))`` without making the object (a shard serving a copy)."""
        if ident >> 64:
            return cls._WIRE.pack(cls.code, ident & _M64, count, edges, k) + cls._high(ident)
        return cls._WIRE.pack(cls.code, ident, count, edges, k)

    @property
    def ident(self) -> int:
        return self.id

    def pack(self) -> bytes:
        if self.id >> 64:
            return self._FMT.pack(self.id & _M64, self.count, self.edges, self.k) + self._high(self.id)
        return self._FMT.pack(self.id, self.count, self.edges, self.k)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Kmer:
        low, count, edges, k = cls._FMT.unpack_from(buf)
        if len(buf) > cls._FMT.size:
            low |= int.from_bytes(buf[cls._FMT.size:], "little") << 64
        return cls(low, count, edges, k)

    def merge(self, other: Carriageable) -> Kmer:
        if not isinstance(other, Kmer):
            raise ValueError(f"a k-mer merges with a k-mer, not with a {other.namespace}/ item")
        return Kmer(self.id, min(self.count + other.count, COUNT_MAX), self.edges | other.edges,
                    self.k or other.k)

    @classmethod
    def empty(cls, ident: Any, options: dict) -> Kmer:
        return cls(ident, int(options.get("count", 1)), int(options.get("edges", 0)), options.get("k", 0))

    @property
    def bases(self) -> str | None:
        return encoding.decode(self.id, self.k) if self.k else None

    def __str__(self) -> str:
        if self.k > encoding.WORD_K:  # ids of two words are written by their bases
            return f"kmers/{self.bases} count={self.count} edges={_edges_text(self.edges)}"
        seq = f" {self.bases}" if self.k else ""
        return f"kmers/{self.id}{seq} count={self.count} edges={_edges_text(self.edges)}"


@dataclass
class GraphPath(Carriageable, namespace="paths", code=2):
    """An ordered walk through the de Bruijn graph (a contig), with its sequence."""

    name: str
    sequence: str = ""
    k: int = 0
    stop_reason: str = ""
    coverage: float = 0.0  # mean count of its k-mers (assembled contigs)

    _HEAD: ClassVar[struct.Struct] = struct.Struct("<HIHBd")

    @property
    def ident(self) -> str:
        return self.name

    def pack(self) -> bytes:
        parts = [p.encode() for p in (self.name, self.sequence, self.stop_reason)]
        return self._HEAD.pack(len(parts[0]), len(parts[1]), len(parts[2]), self.k, self.coverage) + b"".join(parts)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> GraphPath:
        buf = bytes(buf)
        n, s, r, k, coverage = cls._HEAD.unpack_from(buf)
        o = cls._HEAD.size
        return cls(buf[o:o + n].decode(), buf[o + n:o + n + s].decode(), k,
                   buf[o + n + s:o + n + s + r].decode(), coverage)

    @classmethod
    def empty(cls, ident: Any, options: dict) -> GraphPath:
        return cls(str(ident))

    def __str__(self) -> str:
        length = len(self.sequence)
        seq = self.sequence or "-"
        if length > 100:
            seq = f"{self.sequence[:60]}...{self.sequence[-20:]}"
        cov = f" mean_count={self.coverage:.1f}" if self.coverage else ""
        return f"paths/{self.name} length={length}{cov} sequence={seq}"


@dataclass
class GraphSearchResult(Carriageable, namespace="results", code=3):
    """Vertices reached from a start k-mer, with their depth; ``k``: the store's k (0: unknown),
    by which a start of k > 31 is shown by its bases."""

    name: str
    start: int = 0
    vertices: list = field(default_factory=list)
    depths: list = field(default_factory=list)
    k: int = 0

    @property
    def ident(self) -> str:
        return self.name

    def pack(self) -> bytes:
        name = self.name.encode()
        n = len(self.vertices)
        out = (struct.pack("<HQI", len(name), self.start & _M64, n) + name
               + struct.pack(f"<{n}Q", *(v & _M64 for v in self.vertices)) + struct.pack(f"<{n}H", *self.depths))
        if self.start >> 64 or any(v >> 64 for v in self.vertices):  # k > 32: the high bits follow, a
            # block of one word per id (start first), and for k > 64 two more blocks
            blocks = 3 if self.start >> 128 or any(v >> 128 for v in self.vertices) else 1
            for j in range(1, blocks + 1):
                out += struct.pack(f"<{n + 1}Q", *((v >> (64 * j)) & _M64 for v in (self.start, *self.vertices)))
        if self.k:  # one byte last (what follows the depths is then never a whole number of words)
            out += struct.pack("<B", self.k)
        return out

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> GraphSearchResult:
        buf = bytes(buf)
        ln, start, n = struct.unpack_from("<HQI", buf)
        o = struct.calcsize("<HQI")
        name = buf[o:o + ln].decode()
        o += ln
        vertices = list(struct.unpack_from(f"<{n}Q", buf, o))
        depths = list(struct.unpack_from(f"<{n}H", buf, o + 8 * n))
        o += 10 * n
        end, k = len(buf), 0
        if (end - o) % 8:  # a result saved before it kept k has none
            end -= 1
            k = buf[end]
        for j in range(1, (end - o) // (8 * (n + 1)) + 1):
            high = struct.unpack_from(f"<{n + 1}Q", buf, o + 8 * (n + 1) * (j - 1))
            start |= high[0] << (64 * j)
            vertices = [v | (h << (64 * j)) for v, h in zip(vertices, high[1:])]
        return cls(name, start, vertices, depths, k)

    @classmethod
    def empty(cls, ident: Any, options: dict) -> GraphSearchResult:
        return cls(str(ident))

    def __str__(self) -> str:
        start = encoding.decode(self.start, self.k) if self.k > encoding.WORD_K else self.start
        return f"results/{self.name} start={start} vertices={len(self.vertices)}"
