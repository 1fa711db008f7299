"""Checkpoints: ``save to "DIR"`` and ``restore from "DIR"``.

Layout of a checkpoint directory::

    DIR/manifest.json              written last (temporary name, then rename)
    DIR/gen-<id>/rank-0000.shard   one file per rank of the cluster that saved

A save writes a new generation directory; only when every rank has written (and fsynced) its file
does the commander replace the manifest, and then it removes older generations.  A crash at any
point leaves the previous manifest and the files it names intact.

Shard file: a 40-byte header (magic ``RAYSHRD1``, format version, rank, rank count, k, canonical,
k-mer count, named item count), the k-mer ids (uint64), counts (uint32) and edges (uint8), then
each named item as a uint32 length and its packed bytes.  The manifest records each file's size,
item counts and SHA-256.

A restore verifies every file (present, size, checksum, header, k) on the ranks that will load them
before any rank changes its store; only then do all ranks swap in what they read.  Onto a
different number of ranks, files are spread over the ranks and the items then moved to their
owners.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from ..errors import RayScriptError, ScriptError
from ..items import pack_item, unpack_item
from ..language import ast
from ..messages import Ack, Message, MoveOrder
from ..results import Result
from ..runtime.node import settled
from ..store.kmertable import KmerTable
from ..store.partition import owner
from .statements import quoted_path

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
    need = o + 13 * nk
    if need > len(data):
        raise CheckpointError(f"{name}: truncated: {nk} k-mers announced")
    ids = np.frombuffer(data, np.uint64, nk, o).copy()
    counts = np.frombuffer(data, np.uint32, nk, o + 8 * nk).copy()
    edges = np.frombuffer(data, np.uint8, nk, o + 12 * nk).copy()
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
    if nk and (ids[1:] < ids[:-1]).any():
        raise CheckpointError(f"{name}: k-mer ids out of order")
    table.add_counted(ids, counts, edges)
    return table, named


# --- messages ----------------------------------------------------------------------

@dataclass(kw_only=True)
class SaveOrder(Message, kind="save-order", code=110):
    directory: str = ""

    def cascade(self):
        return [f"(rank {self.recipient} writes its shard file)", f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class VerifyOrder(Message, kind="restore-verify", code=111):
    files: list = field(default_factory=list)  # (path, manifest entry)
    token: str = ""
    k: int | None = None
    canonical: bool = True

    def cascade(self):
        return [f"(rank {self.recipient} reads and verifies its files, staging them)",
                f"ACK {self.recipient} -> {self.commander}"]


@dataclass(kw_only=True)
class CommitOrder(Message, kind="restore-commit", code=112):
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
        self.node.reply(msg, Ack(info=info))

    def on_verify(self, msg: VerifyOrder) -> None:
        table = KmerTable(msg.k)
        table.canonical = msg.canonical
        named = []
        for path, entry in msg.files:
            t, items = read_shard(path, entry)
            table.absorb(t)
            named.extend(items)
        self.staged[msg.token] = (table, named)
        self.node.reply(msg, Ack(info={"kmers": len(table), "named": len(named)}))

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
        self.node.reply(msg, Ack(info={"named": [(i.namespace, i.ident) for i in (staged[1] if staged else [])]}))


class CheckpointStatements:
    def __init__(self, interp):
        self.interp = interp
        self.node = interp.node
        interp.extensions.update({ast.Save: self.save, ast.Restore: self.restore})
        every = range(self.node.size)
        interp.planners.update({
            ast.Save: lambda st, scope: [SaveOrder(recipient=r) for r in every],
            ast.Restore: lambda st, scope: ([VerifyOrder(recipient=r) for r in every]
                                            + [CommitOrder(recipient=r) for r in every]),
        })

    def _dir(self, st, scope) -> str:
        return os.path.abspath(quoted_path(self.interp, st.path, scope, "a directory path"))

    def save(self, st: ast.Save, scope):
        directory = self._dir(st, scope)
        t0 = time.monotonic()
        gen = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        try:
            os.makedirs(os.path.join(directory, gen))
        except OSError as exc:
            raise ScriptError(f"cannot write {directory}: {exc.strerror}") from None
        try:
            replies = yield [self.node.order(SaveOrder(recipient=r, directory=os.path.join(directory, gen)),
                                             timeout=None) for r in range(self.node.size)]
        except BaseException:
            shutil.rmtree(os.path.join(directory, gen), ignore_errors=True)
            raise
        infos = [rep.info for rep in replies]
        ks = {i["k"] for i in infos if i["k"]}
        manifest = {"format": "rayscript-checkpoint", "version": FORMAT_VERSION, "ranks": self.node.size,
                    "k": ks.pop() if ks else None, "canonical": all(i["canonical"] for i in infos),
                    "generation": gen, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "files": [dict(i, file=f"{gen}/{i['file']}") for i in infos]}
        tmp = os.path.join(directory, f"{MANIFEST}.tmp{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(directory, MANIFEST))
        for old in os.listdir(directory):
            if old.startswith("gen-") and old != gen:
                shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
        totals: dict[str, int] = {}
        for i in infos:
            for ns, n in i["items"].items():
                totals[ns] = totals.get(ns, 0) + n
        nbytes = sum(i["bytes"] for i in infos)
        what = ", ".join(f"{n:,} {ns}" for ns, n in totals.items())
        return [Result("save", f"saved {what} from {self.node.size} ranks to {directory} ({nbytes:,} bytes, "
                               f"{time.monotonic() - t0:.2f} s)", {"directory": directory, "bytes": nbytes,
                                                                   "items": totals})]

    def _manifest(self, directory: str) -> dict:
        path = os.path.join(directory, MANIFEST)
        try:
            with open(path) as fh:
                manifest = json.load(fh)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no checkpoint here (the manifest is missing)") from None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != "rayscript-checkpoint":
            raise CheckpointError(f"{path}: not a rayscript checkpoint manifest")
        if manifest.get("version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: format version {manifest.get('version')!r}, this rayscript reads "
                                  f"version {FORMAT_VERSION}")
        files = manifest.get("files")
        if not isinstance(files, list) or not files:
            raise CheckpointError(f"{path}: lists no shard files")
        for entry in files:
            if entry.get("k") not in (None, manifest.get("k")):
                raise CheckpointError(f"{os.path.join(directory, entry['file'])}: k={entry['k']} differs from the "
                                      f"checkpoint's k={manifest.get('k')}")
            f = os.path.join(directory, entry["file"])
            if not os.path.exists(f):
                raise CheckpointError(f"{f}: missing (the manifest lists it)")
            if os.path.getsize(f) != entry["bytes"]:
                raise CheckpointError(f"{f}: truncated or changed: {os.path.getsize(f)} bytes, the manifest says "
                                      f"{entry['bytes']}")
        return manifest

    def restore(self, st: ast.Restore, scope):
        directory = self._dir(st, scope)
        t0 = time.monotonic()
        manifest = self._manifest(directory)
        n = self.node.size
        assign: list[list] = [[] for _ in range(n)]
        for i, entry in enumerate(manifest["files"]):
            assign[i % n].append((os.path.join(directory, entry["file"]), entry))
        token = uuid.uuid4().hex
        verified = [self.node.order(VerifyOrder(recipient=r, files=assign[r], token=token, k=manifest.get("k"),
                                                canonical=bool(manifest.get("canonical", True))), timeout=None)
                    for r in range(n)]
        outcomes = yield [settled(f) for f in verified]
        errors = [e for ok, e in outcomes if not ok]
        replies = yield [self.node.order(CommitOrder(recipient=r, token=token, commit=not errors)) for r in range(n)]
        if errors:
            raise errors[0]
        self.interp.canonical = bool(manifest.get("canonical", True))
        moved = 0
        if manifest["ranks"] != n:
            # items go to their owners: k-mers in bulk, named items one by one
            results = yield from self.interp.bulk.rebalance(ast.Rebalance("kmers"), scope)
            moved = results[0].data["items"]
            moves = []
            for r, rep in enumerate(replies):
                for key in rep.info["named"]:
                    dest = owner(key, n)
                    if dest != r:
                        moves.append(self.node.order(MoveOrder(recipient=r, key=key, target=dest, mode="replace")))
            if moves:
                yield moves
                moved += len(moves)
        counts = {ns: sum(e["items"].get(ns, 0) for e in manifest["files"]) for ns in ("kmers", "paths", "results")}
        what = ", ".join(f"{c:,} {ns}" for ns, c in counts.items())
        note = (f"; {manifest['ranks']} ranks saved it, {moved:,} items moved to their owners"
                if manifest["ranks"] != n else "")
        return [Result("restore", f"restored {what} from {directory}{note} ({time.monotonic() - t0:.2f} s)",
                       {"directory": directory, "items": counts, "moved": moved})]


def install(interp) -> None:
    CheckpointService(interp.node)
    CheckpointStatements(interp)
