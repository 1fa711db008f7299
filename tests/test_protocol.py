"""The wire vocabulary (rayscript/protocol): one table of codes, each code and each kind naming one
message, and every message the same after a trip through the codec."""

import ast
from pathlib import Path

import pytest

from rayscript import protocol
from rayscript.protocol import assembly as asm
from rayscript.protocol import base, codes, core, paths
from rayscript.protocol import bulk as mv
from rayscript.protocol import cascades as cs
from rayscript.protocol import checkpoint as ck
from rayscript.protocol import graph as gr
from rayscript.protocol import kmers as g
from rayscript.protocol import sets as ks
from rayscript.protocol import store as sm
from rayscript.statements import parse
from rayscript.store import setops as so

SRC = Path(protocol.__file__).resolve().parent.parent


def _ours() -> list[type[base.Message]]:
    """The package's messages (tests may register kinds of their own)."""
    return [t for t in base.REGISTRY.values() if t.__module__.startswith("rayscript.")]


def test_no_code_and_no_kind_is_used_twice():
    ours = _ours()
    assert len({t.code for t in ours}) == len(ours)
    assert len({t.kind for t in ours}) == len(ours)
    listed = [kind for kinds in codes.SERVICES.values() for kind in kinds]
    assert len(set(listed)) == len(listed)
    assert sorted(t.kind for t in ours) == sorted(listed)  # every kind of the table has its message


def test_codes_come_from_the_table_and_each_service_keeps_to_its_block():
    for t in _ours():
        assert t.code == codes.CODES[t.kind]
    for n, (service, kinds) in enumerate(codes.SERVICES.items(), start=1):
        assert len(kinds) <= codes.BLOCK, service
        for kind in kinds:
            assert n * codes.BLOCK <= codes.CODES[kind] < (n + 1) * codes.BLOCK
    assert max(codes.CODES.values()) < codes.FIRST_FREE


def test_messages_are_defined_only_in_the_protocol_package():
    """No module outside rayscript/protocol defines a message class (one home for the vocabulary)."""
    elsewhere = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] == "protocol":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(kw.arg == "kind" for kw in node.keywords):
                elsewhere.append(f"{path.relative_to(SRC)}: {node.name}")
    assert elsewhere == []


def test_a_code_or_a_kind_used_twice_is_refused():
    with pytest.raises(ValueError, match="used twice"):
        class Again(base.Message, kind="ack"):  # the table's code of 'ack' is taken
            pass
    with pytest.raises(ValueError, match="no code"):
        class Unlisted(base.Message, kind="not-in-the-table"):
            pass
    with pytest.raises(ValueError, match="below"):
        class Inside(base.Message, kind="test-inside", code=codes.FIRST_FREE - 1):
            pass

def parse_cascade():
    (st,) = parse("cascade label(kmer, l) { if kmer.count < 2 { stop }; send label(kmer.next, l + 1) }")
    return st.defn


def test_every_message_kind_round_trips_through_the_wire_codec():
    samples = [
        sm.PutOrder(key=("kmers", 5), item=b"xy", mode="replace"), sm.GetOrder(key=("paths", "p")),
        sm.CopyOrder(key=("kmers", 5), target=3, mode="merge"), sm.MoveOrder(key=("kmers", 5), target=1),
        sm.DeleteOrder(key=("kmers", 5)), sm.HasOrder(key=("kmers", 5)), sm.StatsOrder(),
        core.RunBlock(statements=tuple(parse("copy kmers/1 from 2 to 3")), env={"x": 1}, text="t"),
        sm.ItemTransfer(key=("kmers", 5), item=b"\x01", move=True), sm.Stored(key=("kmers", 5), target=2),
        core.Ack(), core.ErrorReply(rank=2, key="kmers/5", reason="no"),
        sm.ItemReply(key=("kmers", 5), item=b"z"), sm.HasReply(held=True),
        sm.StatsReply(host="h", counts={"kmers": 1}, nbytes=9), core.BlockDone(results=[]), core.Stop(),
        core.Fatal(rank=3, reason="boom"), core.Cancel(), core.Ping(),
        core.Bundle(envelopes=[core.Ack().pack(), core.Stop().pack()]),
        g.LoadOrder(parts=[("r.fq", "fastq", False, 0, 10)], k=21, canonical=False, total_bytes=10, kset="kmers.a"),
        g.KmerStatsOrder(histogram=True, once=True, selector=("count", ">=", 2), kset="kmers.a"),
        g.DumpSizeOrder(lo=2, hi=9, kset="kmers.a"), g.DumpWriteOrder(path="o", offset=5, kset="kmers.a"),
        g.QueryOrder(ids=b"\0" * 16, kset="kmers.a"),
        g.LoadReply(reads=3, kmers=9, nbytes=100, distinct=4, seconds=0.5),
        g.KmerStatsReply(distinct=2, total=5, k=21, histogram=b"\0" * 8, copies=1, held=True),
        g.SizeReply(nbytes=7, k=3, copies=2),
        g.QueryReply(counts=b"\1\0\0\0"), g.HeldOrder(kset="kmers.a"), g.HeldReply(), mv.BulkReply(items=5, nbytes=65),
        mv.BulkSendOrder(selector=("count", ">=", 3), target=2, mode="merge", move=True, what="kmers where",
                         kset="kmers.a"),
        mv.BulkChunk(seq=2, last=True, mode="replace", what="kmers/*", kset="kmers.a", canonical=False),
        mv.BulkStored(ok=False, reason="x", items=3), mv.BulkDeleteOrder(selector=("prefix", "ACG"), kset="kmers.a"),
        gr.WalkStep(start=5, current=9, sequence="ACGT", k=4, hops=2, both=True, phase="back", into=("paths", "p"),
                    kset="kmers.a"),
        gr.PathStore(item=b"\x02", reply=gr.PathReply(length=3)), gr.NeighboursOrder(kset="kmers.a"),
        gr.PathReply(length=40, kmers=10, reason="branch", sequence="ACGT", rank=2), gr.NeighboursReply(found=3),
        ck.SavedReply(entry={"file": "f", "bytes": 3}, sets={"kmers.a": {"file": "g", "bytes": 4}}),
        ck.VerifiedReply(kmers=3, named=1),
        ck.CommittedReply(named=[("paths", "p")]),
        asm.AssembleOrder(prefix="contig", min_count=3, min_length=62, replace=True, kset="kmers.a"),
        asm.AssembleReply(min_count=3, contigs=2, total=100, n50=60, longest=60, phases={"paths": 0.1}),
        asm.ScaffoldOrder(prefix="asm", files=[("r1.fq", "fastq", "", 100), ("r2.fq", "fastq", "gzip", 90)],
                          interleaved=False, min_pairs=3),
        asm.ScaffoldReply(pairs=10, placed=8, inside=6, insert=400, spread=15, links=2, joins=1, scaffolds=1,
                          total=900, n50=900, longest=900, seconds=0.5),
        paths.PathLengthsOrder(selector=("prefix", "c"), fmt="gfa"),
        paths.PathLengthsReply(names=["c-1"], lengths=[60], sizes=[90], ends=[("ACG", "TTA", 4)]),
        paths.PathWriteOrder(path="o", places=[("c-1", 0, " L:+:c-2:-")], fmt="bcalm"),
        ck.SaveOrder(directory="/d", sets=["kmers.a"]),
        ck.VerifyOrder(directory="/d", files=[("f", {"bytes": 1}, 0)], ranks=1, token="t", k=21,
                       sets={"kmers.a": ([("g", {"bytes": 1}, 0)], 21, True)}),
        ck.CommitOrder(token="t", commit=False), ck.CopiesOrder(token="t"),
        ck.CopiesPlacedReply(placed=3, dropped=1),
        ks.SetsOrder(), ks.SetsReply(sets={"kmers.a": (31, True, 5, 9, 100, False)}),
        ks.CombineOrder(expr=so.Operation("-", so.Operand("kmers.a"), so.Operand("kmers.b")), target="kmers.c",
                        mode="max", low=2, high=9, k=31),
        ks.CombineReply(distinct=3, total=9, nbytes=39, sent=1, peak_rss=1 << 20),
        ks.CompareOrder(sets=["kmers.a", "kmers"], low=2), ks.CompareReply(distinct=[3, 4], shared=[2]),
        ks.MatrixOrder(sets=["kmers.a", "kmers.b"], path="m", header="kmer\ta\tb\n", min_sets=2, presence=True),
        ks.MatrixReply(rows=3, nbytes=40), ks.RenameOrder(old="kmers.a", new="kmers.b"), ks.DropOrder(name="kmers.a"),
        cs.FieldOrder(kset="kmers.a", name="comp", dtype="float", default=-1.5), cs.FieldsOrder(),
        cs.FieldsReply(held={"kmers": {"comp": ("int", -1)}}),
        cs.StartCascade(first="label", program={"label": (parse_cascade(), {"l": "int"})}, source=("key", 27),
                        args=(), max_messages=10, timeout=2.5, k=15),
        cs.CascadeDone(handled=5, sent=4, dropped=1, rounds=3, started=2, emitted=[2, 3.5, 1, 2.5], stopped="x"),
    ]
    # (tests may register message kinds of their own)
    assert {type(s) for s in samples} == set(_ours())
    for i, msg in enumerate(samples):
        msg.sender, msg.recipient, msg.commander, msg.request = 1, 2, 0, 100 + i
        assert base.Message.decode(msg.encode()) == msg
