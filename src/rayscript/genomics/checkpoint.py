"""Checkpoints, rank side: the shard file format and the orders of ``save`` and ``restore``.

Layout of a checkpoint directory::

    DIR/manifest.json              written last (temporary name, then rename)
    DIR/gen-<id>/rank-0000.shard   one file per rank of the cluster that saved

A save writes a new generation directory; only when every rank has written (and fsynced) its file
does the commander replace the manifest, and then it removes older generations.  A crash at any
point leaves the previous manifest and the files it names intact.

Every named k-mer set (``kmers.NAME``) is saved the same way, in files of its own
(``DIR/gen-<id>/rank-0000.NAME.shard``, k-mers only), listed under the manifest's ``sets``: per set
its k, canonical flag and files, one per rank.  A restore brings back every set saved and no other.

Shard file: a 40-byte header (magic ``RAYSHRD1``, format version, rank, rank count, k, canonical,
k-mer count, named item count), the k-mer ids (uint64; for k > 31 two uint64 words each, the high
word first; for k > 63 four big-endian words each, the most significant first), counts (uint32) and
edges (uint8), then
each named item as a uint32 length and its packed bytes.  The manifest records each file's size,
item counts and SHA-256.

A restore first checks the manifest against its schema (:func:`check_manifest`: every field's type
and range, one distinct file per saved rank, each a relative path inside the checkpoint directory),
then verifies every file (present, size, checksum, and its header against its manifest entry: rank,
rank count, k, canonical, item counts) on the ranks that will load them before any rank changes its
store; only then do all ranks swap in what they read.  Nothing outside the checkpoint directory is
read.  Onto a different number of ranks, files are spread over the ranks and the items then moved
to their owners.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RayScriptError, ScriptError
from ..items import BY_NAMESPACE, is_kmers, pack_item, unpack_item
from ..protocol.base import Message
from ..protocol.checkpoint import (
    CommitOrder,
    CommittedReply,
    CopiesOrder,
    CopiesPlacedReply,
    SavedReply,
    SaveOrder,
    VerifiedReply,
    VerifyOrder,
)
from ..store import encoding
from ..store.kmertable import KmerTable
from ..store.partition import owners

if TYPE_CHECKING:
    from ..runtime.node import Node

FORMAT_VERSION = 1
MAGIC = b"RAYSHRD1"
HEADER = struct.Struct("<8sIIIBBxxQQ")  # 40 bytes
MANIFEST = "manifest.json"
GENERATION = re.compile(r"gen-(\d{6,})")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CheckpointError(ScriptError):
    """A checkpoint that cannot be saved or restored as asked.  A ScriptError: the commander refuses
    it before the statement sends anything (a rank that finds it while verifying its files reports it
    as a fault of that rank)."""


# --- the manifest's schema -----------------------------------------------------------

def _shown(value: Any) -> str:
    """A JSON value as the manifest writes it (shortened)."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(value: Any, lo: int, hi: int | None = None) -> bool:
    return type(value) is int and value >= lo and (hi is None or value <= hi)


def _k_value(value: Any) -> bool:
    return value is None or _whole(value, 1, encoding.MAX_K)


_K_WORDS = f"a whole number from 1 to {encoding.MAX_K}, or null"


def check_manifest(manifest: Any, where: str) -> dict:
    """``manifest`` (parsed JSON) checked against the schema of what ``save`` writes, field by
    field; the first problem raises a CheckpointError naming ``where`` and the field.  Beyond the
    types: one entry per saved rank, no file listed twice, every file a relative path that stays
    in the checkpoint directory, and the manifest's k and canonical agreeing with its entries'."""
    def fail(field_name: str, expected: str, value: Any) -> None:
        raise CheckpointError(f"{where}: {field_name} must be {expected}, not {_shown(value)}")

    if not isinstance(manifest, dict) or manifest.get("format") != "rayscript-checkpoint":
        raise CheckpointError(f"{where}: not a rayscript checkpoint manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{where}: format version {manifest.get('version')!r}, this rayscript reads "
                              f"version {FORMAT_VERSION}")
    ranks, k, canonical = manifest.get("ranks"), manifest.get("k"), manifest.get("canonical")
    if not _whole(ranks, 1):
        fail("'ranks'", "a whole number >= 1", ranks)
    if "k" not in manifest or not _k_value(k):
        fail("'k'", _K_WORDS, k)
    if not isinstance(canonical, bool):
        fail("'canonical'", "true or false", canonical)
    generation = manifest.get("generation")
    if not isinstance(generation, str) or not GENERATION.fullmatch(generation):
        fail("'generation'", "a generation folder's name such as \"gen-000001\"", generation)
    if not isinstance(manifest.get("saved"), str):
        fail("'saved'", "a date and time (text)", manifest.get("saved"))
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise CheckpointError(f"{where}: lists no shard files")
    first: dict[str, int] = {}
    for n, entry in enumerate(files):
        if not isinstance(entry, dict):
            fail(f"files[{n}]", "an object", entry)
        name = entry.get("file")
        if not isinstance(name, str) or not name:
            fail(f"files[{n}]: 'file'", "a file name", name)
        at = f"files[{n}] ({name})"
        relative_inside(name, f"{where}: files[{n}]: 'file'")
        if not _whole(entry.get("bytes"), HEADER.size):
            fail(f"{at}: 'bytes'", f"a whole number >= {HEADER.size} (a shard file's header)", entry.get("bytes"))
        if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
            fail(f"{at}: 'sha256'", "64 hexadecimal digits", entry.get("sha256"))
        items = entry.get("items")
        if not isinstance(items, dict):
            fail(f"{at}: 'items'", "an object of item counts by namespace", items)
        for ns, count in items.items():
            if ns not in BY_NAMESPACE:
                raise CheckpointError(f"{where}: {at}: 'items' names an unknown namespace {_shown(ns)} "
                                      f"(namespaces: {', '.join(BY_NAMESPACE)})")
            if not _whole(count, 0):
                fail(f"{at}: 'items' of {ns}", "a whole number >= 0", count)
        if "k" not in entry or not _k_value(entry["k"]):
            fail(f"{at}: 'k'", _K_WORDS, entry.get("k"))
        if entry["k"] is not None and entry["k"] != k:
            raise CheckpointError(f"{where}: {at}: k={entry['k']} differs from the checkpoint's k={_shown(k)}")
        if not isinstance(entry.get("canonical"), bool):
            fail(f"{at}: 'canonical'", "true or false", entry.get("canonical"))
        same = os.path.normpath(name)
        if same in first:
            raise CheckpointError(f"{where}: {at}: listed again (files[{first[same]}] is the same file): each "
                                  "saved rank has a file of its own")
        first[same] = n
    if len(files) != ranks:
        raise CheckpointError(f"{where}: lists {len(files)} shard file{'s' if len(files) != 1 else ''} for "
                              f"{ranks} saved rank{'s' if ranks != 1 else ''} (one file per rank)")
    if k is not None and all(e["k"] is None for e in files):
        raise CheckpointError(f"{where}: 'k' is {k}, and no file holds k-mers of that k")
    if canonical != all(e["canonical"] for e in files):
        raise CheckpointError(f"{where}: 'canonical' is {_shown(canonical)}, and its files say "
                              f"{_shown(not canonical)}")
    sets = manifest.get("sets", {})
    if not isinstance(sets, dict):
        fail("'sets'", "an object of k-mer sets by name", sets)
    for name, saved in sets.items():
        if not isinstance(name, str) or not is_kmers(name) or name == "kmers":
            raise CheckpointError(f"{where}: 'sets' names {_shown(name)}, which is no set name (kmers.NAME)")
        if not isinstance(saved, dict):
            fail(f"'sets' {name}", "an object (k, canonical, files)", saved)
        one = {key: manifest[key] for key in ("format", "version", "ranks", "generation", "saved")}
        one.update(k=saved.get("k"), canonical=saved.get("canonical"), files=saved.get("files"))
        check_manifest(one, f"{where}: set {name}")
        for n, entry in enumerate(saved["files"]):
            if any(ns != "kmers" and count for ns, count in entry["items"].items()):
                raise CheckpointError(f"{where}: set {name}: files[{n}] counts items other than k-mers")
        if set(map(os.path.normpath, (e["file"] for e in saved["files"]))) & set(first):
            raise CheckpointError(f"{where}: set {name} lists a file of the default set")
    return manifest


def relative_inside(name: str, what: str) -> str:
    """``name`` if it is a relative path that stays in its directory (no absolute path, no '..'
    part); a CheckpointError saying ``what`` otherwise."""
    parts = name.replace("\\", "/").split("/")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in parts:
        raise CheckpointError(f"{what} must be a path inside the checkpoint directory, not {_shown(name)}")
    return name


def shard_path(directory: str, name: str) -> str:
    """The file ``name`` of the checkpoint in ``directory``, refused when it is not inside it
    (an absolute path, a '..' part, or a symbolic link that leads out)."""
    relative_inside(name, f"{os.path.join(directory, MANIFEST)}: a file entry")
    path = os.path.join(directory, name)
    root = os.path.realpath(directory)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root or real == root:
        raise CheckpointError(f"{path}: leads out of the checkpoint directory (to {real}); a restore reads "
                              "only files inside it")
    return path


def write_shard(path: str, rank: int, nranks: int, table: KmerTable, named: list) -> dict:
    """Write one rank's shard atomically; returns size, checksum and counts."""
    ids, counts, edges = table.extract(("all",))
    h = hashlib.sha256()
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        def put(data: bytes | memoryview) -> None:
            view = memoryview(data).cast("B")
            fh.write(view)
            h.update(view)

        put(HEADER.pack(MAGIC, FORMAT_VERSION, rank, nranks, table.k or 0, int(table.canonical), len(ids),
                        len(named)))
        for arr in (ids, counts, edges):
            put(np.ascontiguousarray(arr).data)
        for item in named:
            data = pack_item(item)
            put(struct.pack("<I", len(data)))
            put(data)
        # the set's fields (cascades): name, type, default and a value per k-mer, in id order
        if table.columns:
            put(struct.pack("<I", len(table.columns)))
            for fname, col in sorted(table.columns.items()):
                raw = fname.encode()
                put(struct.pack("<I", len(raw)))
                put(raw)
                default: np.ndarray = np.array([col.default], col.dtype)
                put(struct.pack("<B", 1 if col.kind == "float" else 0))
                put(default.data)
                put(np.ascontiguousarray(table.column_values(fname, ids)).data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    per_ns: dict[str, int] = {"kmers": len(ids)}
    for item in named:
        per_ns[item.namespace] = per_ns.get(item.namespace, 0) + 1
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": h.hexdigest(),
            "items": per_ns, "k": table.k, "canonical": table.canonical}


Fields = dict[str, tuple[str, Any, Any]]  # name -> (int or float, default, a value per k-mer in id order)


def read_shard(path: str, expect: dict, rank: int | None = None, ranks: int | None = None
               ) -> tuple[KmerTable, list, Fields]:
    """Read and verify one shard file against its manifest entry (and, given, the rank that saved
    it and the rank count): checksum, header, and what it holds."""
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
    magic, version, saved_rank, saved_ranks, k, canonical, nk, nitems = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{name}: not a rayscript shard file")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{name}: format version {version}, this rayscript reads version {FORMAT_VERSION}")
    if rank is not None and (saved_rank, saved_ranks) != (rank, ranks):
        raise CheckpointError(f"{name}: is the file of rank {saved_rank} of {saved_ranks}, and the manifest lists "
                              f"it as rank {rank}'s of {ranks}")
    if k != (expect.get("k") or 0):
        what = f"k={k} k-mers" if k else "k-mers of no known k"
        raise CheckpointError(f"{name}: holds {what}, the manifest says k={_shown(expect.get('k'))}")
    if "canonical" in expect and bool(canonical) != expect["canonical"]:
        raise CheckpointError(f"{name}: holds k-mers counted with canonical={str(bool(canonical)).lower()}, the "
                              f"manifest says canonical={_shown(expect['canonical'])}")
    items = expect.get("items", {})
    if "items" in expect and nk != items.get("kmers", 0):
        raise CheckpointError(f"{name}: holds {nk:,} k-mers, the manifest says {items.get('kmers', 0):,}")
    o = HEADER.size
    width = 8 * encoding.id_words(k)
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
    fields: Fields = {}
    if o < len(data):
        fields, o = _read_fields(data, o, nk, name)
    held = Counter(item.namespace for item in named)
    said = {ns: n for ns, n in items.items() if ns != "kmers" and n}
    if "items" in expect and held != said:
        raise CheckpointError(f"{name}: holds {_counted(held)}, the manifest says {_counted(said)}")
    table = KmerTable(k or None)
    table.canonical = bool(canonical)
    if not encoding.is_sorted(ids):
        raise CheckpointError(f"{name}: k-mer ids out of order")
    table.add_counted(ids, counts, edges)
    for fname, (kind, default, values) in fields.items():
        table.add_column(fname, kind, default)
        table.set_column_values(fname, ids, values)
    return table, named, fields


def _read_fields(data: bytes, o: int, nk: int, name: str) -> tuple[Fields, int]:
    out: Fields = {}
    try:
        (n,) = struct.unpack_from("<I", data, o)
        o += 4
        for _ in range(n):
            (size,) = struct.unpack_from("<I", data, o)
            fname = data[o + 4:o + 4 + size].decode()
            o += 4 + size
            (flag,) = struct.unpack_from("<B", data, o)
            dtype = np.float64 if flag else np.int64
            default = np.frombuffer(data, dtype, 1, o + 1)[0].item()
            values = np.frombuffer(data, dtype, nk, o + 9).copy()
            o += 9 + 8 * nk
            out[fname] = ("float" if flag else "int", default, values)
    except (struct.error, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{name}: truncated or damaged in its fields") from None
    return out, o


def _counted(per_namespace: dict) -> str:
    return ", ".join(f"{n:,} {ns}" for ns, n in sorted(per_namespace.items())) or "no named items"


# --- messages ----------------------------------------------------------------------


class CheckpointService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        self.staged: dict = {}
        self.extras: dict[str, dict[str, KmerTable]] = {}  # token -> set -> copies read apart (see _read)
        handlers: dict[type[Message], Callable[[Any], None]] = {
            SaveOrder: self.on_save, VerifyOrder: self.on_verify, CommitOrder: self.on_commit,
            CopiesOrder: self.on_copies,
        }
        for cls, fn in handlers.items():
            node.register(cls, fn)

    def on_save(self, msg: SaveOrder) -> None:
        path = os.path.join(msg.directory, f"rank-{self.node.rank:04d}.shard")
        sets = {}
        what = "saving (rank 0's part)"
        try:
            self.node.show_progress(0, len(msg.sets) + 1, what, "sets")
            info = write_shard(path, self.node.rank, self.node.size, self.store.kmers, self.store.named_items())
            for i, name in enumerate(msg.sets):
                self.node.show_progress(i + 1, len(msg.sets) + 1, what, "sets")
                path = os.path.join(msg.directory, f"rank-{self.node.rank:04d}.{name[len('kmers.'):]}.shard")
                sets[name] = write_shard(path, self.node.rank, self.node.size, self.store.table(name), [])
        except OSError as exc:
            raise RayScriptError(f"cannot write {path}: {exc.strerror}") from None
        self.node.reply(msg, SavedReply(entry=info, sets=sets))

    def _read(self, msg: VerifyOrder, files: list, k: int | None, canonical: bool,
              extra: KmerTable | None = None) -> tuple[KmerTable, list, int]:
        """One set's files (and the named items of the default set's): a table, the items, and how
        many k-mers were saved in copies that differ.  With ``extra`` (a restore onto another rank
        count), the k-mers a file holds that another saved rank owned go there instead: copies, put
        back once the owners' k-mers are in place, so that they never stand in for them."""
        table = KmerTable(k)
        table.canonical = canonical
        named = []
        differing = 0
        saved_fields: list[tuple[Any, Fields]] = []
        for name, entry, saved_by in files:
            t, items, fields = read_shard(shard_path(msg.directory, name), entry, saved_by, msg.ranks)
            if fields:
                saved_fields.append((t.extract(("all",))[0], fields))
            if extra is not None and len(t):
                ids, counts, edges = t.extract(("all",))
                mine = owners(ids, msg.ranks) == saved_by
                if not mine.all():
                    extra.add_distinct(ids[~mine], counts[~mine], edges[~mine])  # the lowest saved rank's first
                    t = KmerTable(k)
                    t.canonical = canonical
                    t.add_counted(ids[mine], counts[mine].astype(np.uint64), edges[mine])
            if not len(table):
                table.absorb(t)
            else:  # copies saved on several ranks are one item here, never summed
                ids, counts, edges = t.extract(("all",))
                differing += len(table.add_distinct(ids, counts, edges))
            named.extend(items)
        for ids, fields in saved_fields:  # the fields of the k-mers kept here (copies elsewhere: the default)
            for fname, (kind, default, values) in fields.items():
                if fname not in table.columns:
                    table.add_column(fname, kind, default)
                table.set_column_values(fname, ids, values)
        return table, named, differing

    def on_verify(self, msg: VerifyOrder) -> None:
        moving = msg.ranks != self.node.size  # onto another rank count: copies apart, see _read
        extras: dict[str, KmerTable] = {}
        if moving:
            extras["kmers"] = KmerTable(msg.k)
            extras["kmers"].canonical = msg.canonical
        what = "restoring: reading and checking (rank 0's part)"
        self.node.show_progress(0, len(msg.sets) + 1, what, "sets")
        table, named, differing = self._read(msg, msg.files, msg.k, msg.canonical, extras.get("kmers"))
        sets = {}
        for i, (name, (files, k, canonical)) in enumerate(msg.sets.items()):
            self.node.show_progress(i + 1, len(msg.sets) + 1, what, "sets")
            if moving:
                extras[name] = KmerTable(k)
                extras[name].canonical = canonical
            sets[name], _, more = self._read(msg, files, k, canonical, extras.get(name))
            differing += more
        self.staged[msg.token] = ({"kmers": table, **sets}, named)
        if moving:
            self.extras[msg.token] = extras
        kmers = len(table) + sum(len(t) for t in sets.values())
        self.node.reply(msg, VerifiedReply(kmers=kmers, named=len(named), differing=differing))

    def on_commit(self, msg: CommitOrder) -> None:
        staged = self.staged.pop(msg.token, None)
        if msg.commit and staged is not None:
            sets, named = staged
            self.store.replace_all(sets, named)  # every set saved, and no other
        if not msg.commit:
            self.extras.pop(msg.token, None)
        self.node.reply(msg, CommittedReply(named=[(i.namespace, i.ident) for i in (staged[1] if staged else [])]))

    def on_copies(self, msg: CopiesOrder) -> None:
        """The extra copies read by this rank go back: a k-mer this rank now holds (its owner's copy,
        moved here) keeps that copy; a copy with other counts or edges is dropped and counted."""
        placed = dropped = 0
        for name, extra in self.extras.pop(msg.token, {}).items():
            if not len(extra):
                continue
            ids, counts, edges = extra.extract(("all",))
            table = self.store.made(name)
            if table.k is None and extra.k is not None:
                table.set_k(extra.k)
                table.canonical = extra.canonical
            before = len(table)
            dropped += len(table.add_distinct(ids, counts, edges))
            placed += len(table) - before
        self.node.reply(msg, CopiesPlacedReply(placed=placed, dropped=dropped))
