"""Checkpoints, rank side: the shard file format and the orders of ``save`` and ``restore``.

Layout of a checkpoint directory::

    DIR/manifest.json              written last (temporary name, then rename)
    DIR/gen-<id>/rank-0000.shard   one file per rank of the cluster that saved

A save writes a new generation directory; only when every rank has written (and fsynced) its file
does the commander replace the manifest, and then it removes older generations.  A crash at any
point leaves the previous manifest and the files it names intact.

Shard file: a 40-byte header (magic ``RAYSHRD1``, format version, rank, rank count, k, canonical,
k-mer count, named item count), the k-mer ids (uint64; for k > 31 two uint64 words each, the high
word first), counts (uint32) and edges (uint8), then
each named item as a uint32 length and its packed bytes.  The manifest records each file's size,
item counts and SHA-256.

A restore verifies every file (present, size, checksum, header, k) on the ranks that will load them
before any rank changes its store; only then do all ranks swap in what they read.  Onto a
different number of ranks, files are spread over the ranks and the items then moved to their
owners.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import RayScriptError
from ..items import pack_item, unpack_item
from ..messages import Message
from ..store import encoding
from ..store.kmertable import KmerTable

FORMAT_VERSION = 1
MAGIC = b"RAYSHRD1"
HEADER = struct.Struct("<8sIIIBBxxQQ")  # 40 bytes
MANIFEST = "manifest.json"


class CheckpointError(RayScriptError):
    pass


def write_shard(path: str, rank: int, nranks: int, table: KmerTable, named: list) -> dict:
    """Write one rank's shard atomically; returns size, checksum and counts."""
    ids, counts, edges = table.extract(("all",))
    h = hashlib.sha256()
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        def put(data):
            view = memoryview(data).cast("B")
            fh.write(view)
            h.update(view)

        put(HEADER.pack(MAGIC, FORMAT_VERSION, rank, nranks, table.k or 0, int(table.canonical), len(ids),
                        len(named)))
        for arr in (ids, counts, edges):
            put(np.ascontiguousarray(arr))
        for item in named:
            data = pack_item(item)
            put(struct.pack("<I", len(data)))
            put(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    per_ns: dict[str, int] = {"kmers": len(ids)}
    for item in named:
        per_ns[item.namespace] = per_ns.get(item.namespace, 0) + 1
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": h.hexdigest(),
            "items": per_ns, "k": table.k, "canonical": table.canonical}


def read_shard(path: str, expect: dict) -> tuple[KmerTable, list]:
    """Read and verify one shard file against its manifest entry."""
    name = path
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise CheckpointError(f"{name}: missing (the manifest lists it)") from None
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot read: {exc.strerror}") from None
    if len(data) != expect["bytes"]:
        raise CheckpointError(f"{name}: truncated or changed: {len(data)} bytes, the manifest says {expect['bytes']}")
    if hashlib.sha256(data).hexdigest() != expect["sha256"]:
        raise CheckpointError(f"{name}: checksum mismatch (the file is corrupted)")
    if len(data) < HEADER.size:
        raise CheckpointError(f"{name}: too short for a shard header")
    magic, version, _rank, _nranks, k, canonical, nk, nitems = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{name}: not a rayscript shard file")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{name}: format version {version}, this rayscript reads version {FORMAT_VERSION}")
    if expect.get("k") is not None and k != expect["k"]:
        raise CheckpointError(f"{name}: holds k={k} k-mers, the manifest says k={expect['k']}")
    o = HEADER.size
    width = 16 if encoding.is_wide(k) else 8
    need = o + (width + 5) * nk
    if need > len(data):
        raise CheckpointError(f"{name}: truncated: {nk} k-mers announced")
    ids = np.frombuffer(data, encoding.id_dtype(k), nk, o).copy()
    counts = np.frombuffer(data, np.uint32, nk, o + width * nk).copy()
    edges = np.frombuffer(data, np.uint8, nk, o + (width + 4) * nk).copy()
    o = need
    named = []
    for _ in range(nitems):
        if o + 4 > len(data):
            raise CheckpointError(f"{name}: truncated in its named items")
        (n,) = struct.unpack_from("<I", data, o)
        try:
            named.append(unpack_item(data[o + 4:o + 4 + n]))
        except (KeyError, struct.error, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{name}: a named item cannot be read ({exc})") from None
        o += 4 + n
    table = KmerTable(k or None)
    table.canonical = bool(canonical)
    if not encoding.is_sorted(ids):
        raise CheckpointError(f"{name}: k-mer ids out of order")
    table.add_counted(ids, counts, edges)
    return table, named


# --- messages ----------------------------------------------------------------------

@dataclass(kw_only=True)
class SavedReply(Message, kind="saved", code=113, reply=True):
    """One rank's shard file: its manifest entry."""

    entry: dict = field(default_factory=lambda: {"file": "", "bytes": 0, "sha256": "", "items": {}, "k": None,
                                                 "canonical": True})


@dataclass(kw_only=True)
class VerifiedReply(Message, kind="verified", code=114, reply=True):
    kmers: int = 0
    named: int = 0
    differing: int = 0  # k-mers found in several files with different values (the first kept)


@dataclass(kw_only=True)
class CommittedReply(Message, kind="committed", code=115, reply=True):
    named: list = field(default_factory=list)  # keys of the named items now held


@dataclass(kw_only=True)
class SaveOrder(Message, kind="save-order", code=110):
    reply_type = SavedReply
    directory: str = ""

    def cascade(self):
        return [f"(rank {self.recipient} writes its shard file)", f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class VerifyOrder(Message, kind="restore-verify", code=111):
    reply_type = VerifiedReply
    files: list = field(default_factory=list)  # (path, manifest entry)
    token: str = ""
    k: int | None = None
    canonical: bool = True

    def cascade(self):
        return [f"(rank {self.recipient} reads and verifies its files, staging them)",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class CommitOrder(Message, kind="restore-commit", code=112):
    reply_type = CommittedReply
    token: str = ""
    commit: bool = True

    def cascade(self):
        return [f"(rank {self.recipient} swaps in what it staged)", f"ACK {self.recipient} -> {self.commander}"]


class CheckpointService:
    def __init__(self, node):
        self.node = node
        self.staged: dict = {}
        for cls, fn in {SaveOrder: self.on_save, VerifyOrder: self.on_verify, CommitOrder: self.on_commit}.items():
            node.register(cls, fn)

    def _named(self):
        shard = self.node.shard
        return [item for table in shard.tables.values() for item in table.values()]

    def on_save(self, msg: SaveOrder) -> None:
        path = os.path.join(msg.directory, f"rank-{self.node.rank:04d}.shard")
        try:
            info = write_shard(path, self.node.rank, self.node.size, self.node.shard.kmers, self._named())
        except OSError as exc:
            raise RayScriptError(f"cannot write {path}: {exc.strerror}") from None
        self.node.reply(msg, SavedReply(entry=info))

    def on_verify(self, msg: VerifyOrder) -> None:
        table = KmerTable(msg.k)
        table.canonical = msg.canonical
        named = []
        differing = 0
        for path, entry in msg.files:
            t, items = read_shard(path, entry)
            if not len(table):
                table.absorb(t)
            else:  # copies saved on several ranks are one item here, never summed
                ids, counts, edges = t.extract(("all",))
                differing += len(table.add_distinct(ids, counts, edges))
            named.extend(items)
        self.staged[msg.token] = (table, named)
        self.node.reply(msg, VerifiedReply(kmers=len(table), named=len(named), differing=differing))

    def on_commit(self, msg: CommitOrder) -> None:
        staged = self.staged.pop(msg.token, None)
        if msg.commit and staged is not None:
            table, named = staged
            shard = self.node.shard
            shard.kmers = table
            for t in shard.tables.values():
                t.clear()
            for item in named:
                shard.tables[item.namespace][item.ident] = item
        self.node.reply(msg, CommittedReply(named=[(i.namespace, i.ident) for i in (staged[1] if staged else [])]))
