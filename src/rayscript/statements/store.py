"""Statements on items: put, get, copy, move, delete, locate, ranks, replicate, rebalance.

copy, move and delete take one key (control messages: COPY_ORDER -> ITEM -> ACK) or a selector
(``kmers/*``, ``kmers/ACG*``, ``kmers where count >= 10``: one BULK_SEND order, and the source
streams numpy chunks straight to the target; see rayscript.runtime.bulk).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..errors import RuntimeFault, ScriptError
from ..interpreter import Command, Steps, wrong_length
from ..items import is_kmers, item_class, pack_item, unpack_item
from ..language.syntax import Build, CheckContext, Key, Options, Rank, Selector, Statement, Value, rank_field, whole
from ..protocol.bulk import CHUNK_ITEMS, BulkDeleteOrder, BulkSendOrder
from ..protocol.store import CopyOrder, DeleteOrder, MoveOrder, PutOrder, StatsOrder
from ..results import Result, table
from ..store.encoding import COUNT_MAX, EDGES_MAX


def kmer_selector(b: Build, key: object, word: str) -> None:
    """Selectors of copy, move and delete pick k-mers (in bulk)."""
    if isinstance(key, Selector) and not is_kmers(key.namespace):
        b.fail(f"'{word}' takes k-mer selectors (kmers/*, kmers/ACG*, kmers where ...), not {key}: name "
               f"{key.namespace}/ items one by one")


def wire_selector(cmd: Command, sel: Selector) -> tuple[Any, ...]:
    """A selector as the shards read it: ("all",), ("prefix", bases), ("count", op, value) or
    ("field", name, op, value)."""
    if sel.field is not None and sel.field != "count":
        value = cmd.value(sel.value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScriptError(f"field {sel.field} is compared with a number, not {value!r}")
        return ("field", sel.field, sel.op, value)
    if sel.field is not None:
        value = cmd.value(sel.value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScriptError(f"a count is compared with a whole number >= 0, not {value!r}")
        return ("count", sel.op, value)
    held = cmd.interpreter.kmer_k.get(sel.namespace)
    if sel.prefix and held and len(sel.prefix) > held:  # it would pick nothing
        raise wrong_length(sel.namespace, held, f"the prefix {sel}", len(sel.prefix))
    return ("prefix", sel.prefix) if sel.prefix else ("all",)


class Put(Statement, keyword="put"):
    syntax = "put KEY [count=N] [edges=N] on RANK"
    summary = "Store an item on a rank (overwrites what that rank held under the key)."
    example = "put kmers/19123890 count=3 on 2"
    options_allowed = {"count": whole(0, COUNT_MAX, note="the counter's width"),
                       "edges": whole(0, EDGES_MAX, note="an 8-bit mask")}

    key: Key
    rank: Rank = rank_field()
    options: Options = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Put:
        key, rank = b.positional(children)
        return cls(b.single(key, "put"), rank, b.options(cls, children), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        wk = cmd.key(self.key)
        rank = cmd.rank(self.rank)
        options = cmd.options(self)
        if wk.k:
            options["k"] = wk.k
        item = item_class(wk.key[0]).empty(wk.key[1], options)
        yield cmd.order(PutOrder(recipient=rank, key=wk.key, item=pack_item(item), mode="replace"))
        return [Result("put", f"put {wk.describe()} on rank {rank}", {"key": str(wk), "rank": rank})]


class Get(Statement, keyword="get"):
    syntax = "get KEY [from RANK]"
    summary = ("Show the item as held on RANK; without 'from', its owner's copy, or, when the owner does not "
               "hold it, that of the first rank that does.")
    example = "get kmers/19123890 from 5"

    key: Key
    rank: Rank | None = rank_field(None)

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Get:
        key, rank = children
        return cls(b.single(key, "get"), rank, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        wk = cmd.key(self.key)
        reply, rank = yield from cmd.fetch(wk, None if self.rank is None else cmd.rank(self.rank))
        item = unpack_item(reply.item)
        shown = str(item)
        if wk.key[0] != "kmers" and shown.startswith("kmers/"):  # a k-mer of a named set: its set's name
            shown = wk.key[0] + shown[len("kmers"):]
        values = getattr(reply, "values", {}) or {}
        if values:
            shown += " " + " ".join(f"{name}={value}" for name, value in values.items())
        return [Result("get", f"{shown}  (on rank {rank})", {"key": str(wk), "rank": rank, "item": item,
                                                             "fields": values})]


class _Transfer(Statement):
    """copy and move: one key, or a selector streamed in bulk."""

    key: Key | Selector
    source: Rank | None = rank_field()
    target: Rank = rank_field()
    mode: str | None = None

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> _Transfer:
        key, source, target, mode = children
        kmer_selector(b, key, cls.keyword)
        return cls(key, source, target, None if mode is None else str(mode), meta=b.location)

    def check(self, ctx: CheckContext) -> None:
        if self.source is not None and self.source == self.target:
            ctx.error(f"source and target are the same rank ({self.source})")

    def run(self, cmd: Command) -> Steps:
        if isinstance(self.key, Selector):
            return (yield from self._bulk(cmd))
        wk = cmd.key(self.key)
        target = cmd.rank(self.target)
        verb = self.keyword
        if self.source is None:
            holders = yield from cmd.holders(wk)
            if not holders:
                raise RuntimeFault(f"no rank holds {wk}; nothing to {verb}", key=str(wk))
            if target in holders and self.mode is None:
                raise RuntimeFault(f"{wk.shown} is already on rank {target}; nothing to {verb} (add 'replace' or "
                                   f"'merge' with 'from RANK' to overwrite or combine)", key=str(wk))
            source = next((r for r in holders if r != target), holders[0])
        else:
            source = cmd.rank(self.source)
        if source == target:
            raise ScriptError(f"source and target are the same rank ({source})")
        cls = CopyOrder if verb == "copy" else MoveOrder
        yield cmd.order(cls(recipient=source, key=wk.key, target=target, mode=self.mode))
        past = "copied" if verb == "copy" else "moved"
        return [Result(verb, f"{past} {wk.shown} from rank {source} to rank {target}",
                       {"key": wk.text, "source": source, "target": target})]

    def _bulk(self, cmd: Command) -> Steps:
        assert isinstance(self.key, Selector)
        verb = self.keyword
        if self.source is None:
            raise ScriptError(f"a bulk {verb} names its source: {verb} {self.key} from RANK to RANK")
        source, target = cmd.rank(self.source), cmd.rank(self.target)
        if source == target:
            raise ScriptError(f"source and target are the same rank ({source})")
        order = BulkSendOrder(recipient=source, target=target, mode=self.mode, move=verb == "move",
                              selector=wire_selector(cmd, self.key), what=str(self.key), kset=self.key.namespace)
        (reply,) = yield cmd.order(order, timeout=None)
        past = "copied" if verb == "copy" else "moved"
        return [Result(verb, f"{past} {reply.items:,} k-mers ({self.key}) from rank {source} to rank {target}: "
                             f"{reply.nbytes:,} bytes", {"items": reply.items, "bytes": reply.nbytes,
                                                         "source": source, "target": target})]


class Copy(_Transfer, keyword="copy"):
    syntax = "copy KEY|SELECTOR [from A] to B [replace|merge]"
    summary = ("Order rank A to send KEY straight to rank B; B acknowledges to the commander. Without "
               "'from', A is the first rank that 'locate' lists. If B holds KEY already the copy is "
               "refused unless 'replace' (overwrite) or 'merge' (k-mers: add counts, unite edges). A selector "
               "(kmers/*, kmers/ACG*, kmers where count >= 10) streams every selected k-mer from A to B in "
               f"bounded chunks ({CHUNK_ITEMS:,} k-mers each), all or nothing.")
    example = "copy kmers where count >= 10 from 1 to 2"


class Move(_Transfer, keyword="move"):
    syntax = "move KEY|SELECTOR [from A] to B [replace|merge]"
    summary = ("Copy KEY from A to B, then delete it on A once B has stored it. If anything fails "
               "midway the item is still on A.")
    example = "move kmers/19123890 from 2 to 4"


class Delete(Statement, keyword="delete"):
    syntax = "delete KEY|SELECTOR from RANK"
    summary = "Remove KEY (or every selected k-mer) from RANK."
    example = "delete kmers/ACG* from 2"

    key: Key | Selector
    rank: Rank = rank_field()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Delete:
        key, rank = children
        kmer_selector(b, key, "delete")
        return cls(key, rank, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        rank = cmd.rank(self.rank)
        if isinstance(self.key, Selector):
            (reply,) = yield cmd.order(BulkDeleteOrder(recipient=rank, selector=wire_selector(cmd, self.key),
                                                       kset=self.key.namespace))
            return [Result("delete", f"deleted {reply.items:,} k-mers ({self.key}) from rank {rank}",
                           {"items": reply.items, "rank": rank})]
        wk = cmd.key(self.key)
        yield cmd.order(DeleteOrder(recipient=rank, key=wk.key))
        return [Result("delete", f"deleted {wk} from rank {rank}", {"key": str(wk), "rank": rank})]


class Locate(Statement, keyword="locate"):
    syntax = "locate KEY"
    summary = "Every rank that holds KEY, owner first."
    example = "locate kmers/19123890"

    key: Key

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Locate:
        (key,) = children
        return cls(b.single(key, "locate"), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        wk = cmd.key(self.key)
        holders = yield from cmd.holders(wk)
        own = cmd.owner(wk)
        if holders and cmd.host_of(own):  # on several hosts: each rank with its host
            text = f"{wk.describe()} is on " + ", ".join(cmd.where(r) + (" (owner)" if r == own else "")
                                                         for r in holders)
        elif holders:
            names = ", ".join(f"{r} (owner)" if r == own else str(r) for r in holders)
            text = f"{wk.describe()} is on rank{'s' if len(holders) > 1 else ''} {names}"
        else:
            text = f"{wk.describe()} is on no rank (its owner would be {cmd.where(own)})"
        return [Result("locate", text, {"key": str(wk), "ranks": holders, "owner": own,
                                         "hosts": [cmd.hosts[r] for r in holders]})]


class Ranks(Statement, keyword="ranks"):
    syntax = "ranks"
    summary = "A table of the cluster: rank, host, items per namespace, bytes held."
    example = "ranks"

    def run(self, cmd: Command) -> Steps:
        replies = yield [cmd.order(StatsOrder(recipient=r)) for r in range(cmd.size)]
        namespaces = list(dict.fromkeys(ns for rep in replies for ns in rep.counts))
        rows = [[r, rep.host] + [rep.counts.get(ns, 0) for ns in namespaces] + [rep.nbytes]
                for r, rep in enumerate(replies)]
        text = table(["rank", "host", *namespaces, "bytes"], rows)
        data = [dict(zip(["rank", "host", *namespaces, "bytes"], row)) for row in rows]
        return [Result("ranks", text, data)]


class Replicate(Statement, keyword="replicate"):
    syntax = "replicate KEY to N ranks"
    summary = ("Place copies of KEY on N ranks chosen deterministically (its owner, then the next ranks); "
               "'locate' lists them.")
    example = "replicate kmers/19123890 to 3 ranks"

    key: Key
    copies: Value

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Replicate:
        key, copies = children
        return cls(b.single(key, "replicate"), copies, meta=b.location)

    def check(self, ctx: CheckContext) -> None:
        n = self.copies
        if isinstance(n, int) and ctx.size is not None and not 1 <= n <= ctx.size:
            ctx.error(f"replicate places 1 to {ctx.size} copies (the cluster size), not {n}")

    def run(self, cmd: Command) -> Steps:
        wk = cmd.key(self.key)
        n = cmd.value(self.copies)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= cmd.size:
            raise ScriptError(f"replicate places 1 to {cmd.size} copies (the cluster size), not {n!r}")
        own = cmd.owner(wk)
        chosen = [(own + i) % cmd.size for i in range(n)]
        holders = yield from cmd.holders(wk)
        if not holders:
            raise RuntimeFault(f"no rank holds {wk}; nothing to replicate", key=str(wk))
        missing = [r for r in chosen if r not in holders]
        if missing:
            yield [cmd.order(CopyOrder(recipient=holders[0], key=wk.key, target=r)) for r in missing]
        text = (f"{wk} is replicated on ranks {', '.join(map(str, chosen))} (owner {own} first)"
                + (f"; copied to {', '.join(map(str, missing))}" if missing else "; nothing to copy"))
        return [Result("replicate", text, {"key": str(wk), "ranks": chosen, "copied": missing})]


def rebalance_kmers(cmd: Command, kset: str = "kmers") -> Generator[Any, Any, tuple[int, int, int]]:
    """Every k-mer to its owner rank (one BULK_SEND per pair of ranks, mode 'distinct': a copy the
    owner holds already is the same item and collapses into it; copies that differ stay where they
    are).  Returns (moved, bytes, kept)."""
    n = cmd.size
    orders = [BulkSendOrder(recipient=a, target=b, mode="distinct", move=True, selector=("owner", b, n),
                            what=f"k-mers owned by rank {b}", kset=kset)
              for a in range(n) for b in range(n) if a != b]
    replies = yield [cmd.order(o, timeout=None) for o in orders]
    return sum(r.items for r in replies), sum(r.nbytes for r in replies), sum(r.kept for r in replies)


def kept_note(kept: int) -> str:
    return (f"\nwarning: {kept:,} k-mers have copies with different counts or edges on other ranks than "
            "their owner; those copies were left where they are (never summed): 'locate' shows them") if kept else ""


class Rebalance(Statement, keyword="rebalance"):
    syntax = "rebalance kmers|kmers.NAME"
    summary = ("Move every k-mer to its owner rank (after bulk copies or restores). A copy identical to the "
               "owner's is the same item and collapses into it; copies that differ are left on their ranks and "
               "reported, never summed.")
    example = "rebalance kmers"

    namespace: str

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Rebalance:
        (namespace,) = children
        if not is_kmers(str(namespace)):
            b.fail(f"rebalance applies to k-mer sets, not {namespace} (paths and results stay on the ranks that "
                   "hold them: 'locate' finds them, 'move' moves one)", namespace)
        return cls(str(namespace), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        items, nbytes, kept = yield from rebalance_kmers(cmd, self.namespace)
        return [Result("rebalance", f"moved {items:,} k-mers ({nbytes:,} bytes) to their owner ranks"
                       + kept_note(kept), {"items": items, "bytes": nbytes, "kept": kept})]
