"""Checkpoint statements: ``save to "DIR"`` and ``restore from "DIR"`` (the file format and the
ranks' side are in rayscript.genomics.checkpoint).

A save writes generation ``gen-NNNNNN`` (one more than the manifest's, skipping any folder that
exists) marked as a save's own (``.rayscript-save``), then the manifest, then removes the
generation the previous manifest listed and marked generations of saves that died before their
manifest: it never touches folders it did not write.  It writes only into a new or empty directory
or one holding a checkpoint (never over another program's ``manifest.json``).  A restore verifies
every file on the ranks that will load them before any rank changes its store, then all ranks swap
in what they read.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from ..genomics.checkpoint import (
    FORMAT_VERSION,
    GENERATION,
    MANIFEST,
    CheckpointError,
    check_manifest,
    shard_path,
)
from ..interpreter import Command, Steps
from ..items import BY_NAMESPACE
from ..language.cascade import RESTORED
from ..language.syntax import CheckContext, Statement, Value
from ..protocol.checkpoint import CommitOrder, CopiesOrder, SaveOrder, VerifyOrder
from ..protocol.store import MoveOrder
from ..results import Result
from ..runtime.tasks import settled
from ..store.partition import owner
from .store import kept_note, rebalance_kmers

MARK = ".rayscript-save"  # in every generation folder a save makes


def _directory(cmd: Command, value: Value) -> str:
    path = cmd.path(value, "a directory path")
    if not path.strip():
        raise CheckpointError("save and restore need a directory, not an empty path")
    return os.path.abspath(path)


def read_manifest(directory: str) -> dict[str, Any]:
    """The manifest of the checkpoint in ``directory``, checked against its schema, with every file it
    lists inside the directory, present, and of the size it says."""
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint here (the manifest is missing)") from None
    except NotADirectoryError:
        raise CheckpointError(f"cannot read a checkpoint from {directory}: {_file_named(directory)}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable manifest ({exc})") from None
    check_manifest(manifest, path)
    seen: dict[str, str] = {}
    for entry in manifest["files"]:
        f = shard_path(directory, entry["file"])
        real = os.path.realpath(f)
        if real in seen:
            raise CheckpointError(f"{path}: {entry['file']} and {seen[real]} are the same file: each saved rank "
                                  "has a file of its own")
        seen[real] = entry["file"]
        if not os.path.isfile(f):
            raise CheckpointError(f"{f}: missing (the manifest lists it)")
        if os.path.getsize(f) != entry["bytes"]:
            raise CheckpointError(f"{f}: truncated or changed: {os.path.getsize(f)} bytes, the manifest says "
                                  f"{entry['bytes']}")
    return manifest


def _file_named(directory: str) -> str:
    """Words for a directory path that a file stands in the way of: the path itself, or a folder above it."""
    from .kmers import in_the_way  # here: importing it above would register load before save in the help

    blocker = in_the_way(directory)
    return ("it is a file, not a directory" if blocker in (None, directory)
            else f"{blocker} is a file, not a directory")


def _marked(directory: str, name: str) -> bool:
    """Is ``name`` a generation folder a save made (its mark inside)?"""
    return bool(GENERATION.fullmatch(name)) and os.path.exists(os.path.join(directory, name, MARK))


def _previous_generation(directory: str) -> str | None:
    """The generation the checkpoint in ``directory`` lists (None for a new or empty directory).  A
    save writes only into such a directory or one that holds a checkpoint: anywhere else its manifest
    would overwrite a file of the same name, or its files mix with others', and it is refused."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise CheckpointError(f"cannot write {directory}: {_file_named(directory)}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot write {directory}: {exc.strerror}") from None
    if MANIFEST in entries:
        path = os.path.join(directory, MANIFEST)
        try:
            with open(path) as fh:
                manifest = json.load(fh)
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != "rayscript-checkpoint":
            raise CheckpointError(f"{path} is not a rayscript checkpoint's manifest: a save there would "
                                  "overwrite it; save to a new or empty directory")
        gen = manifest.get("generation")
        return gen if isinstance(gen, str) and GENERATION.fullmatch(gen) else None
    others = [e for e in entries if not e.startswith(f"{MANIFEST}.tmp") and not _marked(directory, e)]
    if others:
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        raise CheckpointError(f"{directory} holds other files ({shown}) and no checkpoint: save to a new or "
                              "empty directory, or to one a save wrote")
    return None


def _next_generation(directory: str, previous: str | None) -> str:
    m = GENERATION.fullmatch(previous) if previous else None
    n = int(m.group(1)) + 1 if m else 1
    while os.path.exists(os.path.join(directory, f"gen-{n:06d}")):
        n += 1
    return f"gen-{n:06d}"


def _saved_sets(replies: list[Any], gen: str) -> dict[str, Any]:
    """The manifest's ``sets``: per named set, its k, canonical flag and files (one per rank, each
    rank's entry, or an empty file's where a rank holds none of the set)."""
    names = sorted({name for rep in replies for name in rep.sets})
    out = {}
    for name in names:
        entries = [rep.sets.get(name) for rep in replies]
        ks = {e["k"] for e in entries if e and e["k"]}
        if len(ks) > 1:
            raise CheckpointError(f"{name} holds k-mers of several k on different ranks ({sorted(ks)}); not saved")
        held = [e for e in entries if e]
        if len(held) != len(replies):
            raise CheckpointError(f"{name}: {len(replies) - len(held)} ranks wrote no file of it; not saved")
        out[name] = {"k": ks.pop() if ks else None, "canonical": all(e["canonical"] for e in held),
                     "files": [dict(e, file=f"{gen}/{e['file']}") for e in held]}
    return out


class Save(Statement, keyword="save"):
    syntax = "save to \"DIRECTORY\""
    summary = ("Checkpoint: every rank writes its shard (all namespaces) in parallel, then the commander "
               "writes a manifest (format version, k, rank count, item counts, a checksum per file). Files "
               "are written under new names and the manifest last, so a crash midway leaves the previous "
               "checkpoint intact; then the previous generation (only the one its manifest listed) is removed. "
               "DIRECTORY is new, empty, or one a save wrote: a directory holding other files is refused.")
    example = 'save to "ckpt/"'
    collective = True

    path: Value

    def run(self, cmd: Command) -> Steps:
        directory = _directory(cmd, self.path)
        t0 = time.monotonic()
        previous = _previous_generation(directory)
        gen = _next_generation(directory, previous)
        where = os.path.join(directory, gen)
        if not cmd.explaining:
            try:
                os.makedirs(where)
                with open(os.path.join(where, MARK), "w"):
                    pass
            except OSError as exc:
                raise CheckpointError(f"cannot write {directory}: {exc.strerror}") from None
        from .kmers import set_names  # here, as in_the_way above

        names = [name for name in (yield from set_names(cmd)) if name != "kmers"]
        try:
            replies = yield cmd.every(lambda r: SaveOrder(recipient=r, directory=where, sets=names))
        except BaseException:
            if not cmd.explaining:
                shutil.rmtree(where, ignore_errors=True)
            raise
        infos = [rep.entry for rep in replies]
        ks = {i["k"] for i in infos if i["k"]}
        manifest = {"format": "rayscript-checkpoint", "version": FORMAT_VERSION, "ranks": cmd.size,
                    "k": ks.pop() if ks else None, "canonical": all(i["canonical"] for i in infos),
                    "generation": gen, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "files": [dict(i, file=f"{gen}/{i['file']}") for i in infos]}
        sets = _saved_sets(replies, gen)
        if sets:
            manifest["sets"] = sets
        if not cmd.explaining:
            tmp = os.path.join(directory, f"{MANIFEST}.tmp{os.getpid()}")
            with open(tmp, "w") as fh:
                json.dump(manifest, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, os.path.join(directory, MANIFEST))
            for old in os.listdir(directory):
                if old != gen and (old == previous or _marked(directory, old)):
                    shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
        totals: dict[str, int] = {}
        for i in infos:
            for ns, n in i["items"].items():
                totals[ns] = totals.get(ns, 0) + n
        for name, saved in sets.items():
            totals[name] = sum(e["items"].get("kmers", 0) for e in saved["files"])
        nbytes = sum(i["bytes"] for i in infos) + sum(e["bytes"] for saved in sets.values() for e in saved["files"])
        what = ", ".join(f"{n:,} {ns}" for ns, n in totals.items())
        return [Result("save", f"saved {what} from {cmd.size} ranks to {directory} ({nbytes:,} bytes, "
                               f"{time.monotonic() - t0:.2f} s)", {"directory": directory, "bytes": nbytes,
                                                                   "items": totals})]


class Restore(Statement, keyword="restore"):
    syntax = "restore from \"DIRECTORY\""
    summary = ("Replace the store with a checkpoint, also on a different number of ranks (items go to "
               "their owners). The manifest and every file are verified (schema, size, checksum, format, k, what "
               "each holds) before the store changes; nothing outside DIRECTORY is read.")
    example = 'restore from "ckpt/"'
    collective = True

    path: Value

    def check(self, ctx: CheckContext) -> None:
        ctx.define(RESTORED)  # the fields it brings back are known only when it runs
        super().check(ctx)

    def run(self, cmd: Command) -> Steps:
        directory = _directory(cmd, self.path)
        t0 = time.monotonic()
        manifest = read_manifest(directory)
        cmd.interpreter.restored = True  # the sets' fields now are those of the checkpoint
        n = cmd.size
        assign: list[list[tuple[str, dict[str, Any], int]]] = [[] for _ in range(n)]
        for i, entry in enumerate(manifest["files"]):  # the file of saved rank i
            assign[i % n].append((entry["file"], entry, i))
        token = f"{directory}|{manifest['generation']}|{cmd.rank_id}"
        canonical = manifest["canonical"]
        sets = manifest.get("sets", {})
        set_files: list[dict[str, Any]] = [{} for _ in range(n)]
        for name, saved in sets.items():
            for r in range(n):
                set_files[r][name] = ([], saved["k"], saved["canonical"])
            for i, entry in enumerate(saved["files"]):
                set_files[i % n][name][0].append((entry["file"], entry, i))
        verified = cmd.every(lambda r: VerifyOrder(recipient=r, directory=directory, files=assign[r],
                                                   ranks=manifest["ranks"], token=token, k=manifest["k"],
                                                   canonical=canonical, sets=set_files[r]))
        outcomes = yield [settled(f) for f in verified]
        errors = [e for ok, e in outcomes if not ok]
        verified_replies = [v for ok, v in outcomes if ok]
        replies = yield cmd.every(lambda r: CommitOrder(recipient=r, token=token, commit=not errors), timeout=-1.0)
        if errors:
            raise errors[0]
        cmd.set_canonical("kmers", canonical)
        if not cmd.explaining:  # the store is the checkpoint's: its sets, of the k they were saved with
            cmd.interpreter.kmer_k.clear()
        cmd.set_k("kmers", manifest["k"])
        for name, saved in sets.items():
            cmd.set_canonical(name, saved["canonical"])
            cmd.set_k(name, saved["k"])
        moved = kept = 0
        differing = sum(rep.differing for rep in verified_replies)
        if manifest["ranks"] != n:
            # items go to their owners: k-mers in bulk, named items one by one
            items, _, kept = yield from rebalance_kmers(cmd)
            moved = items
            for name in sets:
                items, _, more = yield from rebalance_kmers(cmd, name)
                moved += items
                kept += more
            # then the extra copies (saved beside their owner's, or alone off it): never in its place; and
            # to their owners as rebalance moves them (one identical to the owner's collapses into it, one
            # that differs stays where it is, reported)
            placed = yield cmd.every(lambda r: CopiesOrder(recipient=r, token=token))
            differing += sum(p.dropped for p in placed)
            if sum(p.placed for p in placed):
                for name in ("kmers", *sets):
                    items, _, more = yield from rebalance_kmers(cmd, name)
                    moved += items
                    kept += more
            moves = []
            for r, rep in enumerate(replies):
                for key in rep.named:
                    dest = owner(tuple(key), n)
                    if dest != r:
                        moves.append(cmd.order(MoveOrder(recipient=r, key=tuple(key), target=dest, mode="replace")))
            if moves:
                yield moves
                moved += len(moves)
        counts = {ns: sum(e["items"].get(ns, 0) for e in manifest["files"]) for ns in BY_NAMESPACE}
        counts.update({name: sum(e["items"].get("kmers", 0) for e in saved["files"]) for name, saved in sets.items()})
        what = ", ".join(f"{c:,} {ns}" for ns, c in counts.items())
        note = (f"; {manifest['ranks']} ranks saved it, {moved:,} items moved to their owners"
                if manifest["ranks"] != n else "")
        warning = kept_note(kept)
        if differing:
            warning += (f"\nwarning: {differing:,} extra copies of k-mers were saved with other counts or edges "
                        "than the copy their owner rank held; on this rank count they would stand on one rank with "
                        "it: the owner's copy was kept, the others dropped")
        return [Result("restore", f"restored {what} from {directory}{note} ({time.monotonic() - t0:.2f} s)"
                       + warning, {"directory": directory, "items": counts, "moved": moved,
                                   "kept": kept, "differing": differing})]
