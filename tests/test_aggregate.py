"""The aggregation layer: small messages to one rank travel in batches (size and time thresholds,
flush on idle, order kept per destination), and walks use it."""

import random
from dataclasses import dataclass

import numpy as np

from conftest import rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.protocol.base import Message
from rayscript.protocol.core import Bundle
from rayscript.runtime.aggregate import Aggregator
from rayscript.runtime.local import LocalNetwork
from rayscript.runtime.node import Node
from rayscript.runtime.shard import Shard


@dataclass(kw_only=True)
class Note(Message, kind="test-note", code=250):
    text: str = ""


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def sent_texts(sent):
    """What went out, in order: a note's text, or a list of texts for a bundle."""
    out = []
    for m in sent:
        if isinstance(m, Bundle):
            out.append([Message.unpack(e).text for e in m.envelopes])
        else:
            out.append(m.text)
    return out


def test_a_batch_leaves_when_it_holds_max_messages():
    sent = []
    agg = Aggregator(0, sent.append, max_messages=3, clock=Clock())
    for i in range(7):
        agg.post(Note(recipient=1, text=f"n{i}"))
    assert sent_texts(sent) == [["n0", "n1", "n2"], ["n3", "n4", "n5"]]
    agg.flush()
    assert sent_texts(sent)[-1] == "n6"  # alone: not wrapped in a bundle
    assert (agg.bundles_sent, agg.messages_bundled) == (2, 6)


def test_a_batch_leaves_when_it_holds_max_bytes():
    sent = []
    agg = Aggregator(0, sent.append, max_bytes=1000, clock=Clock())
    agg.post(Note(recipient=1, text="a" * 400))
    agg.post(Note(recipient=1, text="b" * 400))
    assert sent == []
    agg.post(Note(recipient=1, text="c" * 400))
    assert [len(b) for b in sent_texts(sent)] == [3]


def test_a_batch_leaves_after_max_delay():
    sent, clock = [], Clock()
    agg = Aggregator(0, sent.append, max_delay=0.002, clock=clock)
    agg.post(Note(recipient=1, text="early"))
    clock.now += 0.001
    agg.post(Note(recipient=2, text="later"))
    agg.flush_due()
    assert sent == []
    clock.now += 0.0015  # the batch for rank 1 is now 2.5 ms old, the one for rank 2 1.5 ms
    agg.flush_due()
    assert sent_texts(sent) == ["early"]
    assert list(agg.batches) == [2]


def test_order_is_kept_per_destination():
    sent = []
    agg = Aggregator(0, sent.append, clock=Clock())
    agg.post(Note(recipient=1, text="a"))
    agg.post(Note(recipient=2, text="x"))
    agg.post(Note(recipient=1, text="b"))
    agg.before_direct(1)  # a direct message to rank 1 comes next: what was posted before goes first
    sent.append(Note(recipient=1, text="direct"))
    agg.post(Note(recipient=1, text="c"))
    agg.flush()
    assert sent_texts(sent) == [["a", "b"], "direct", "x", "c"]


def test_messages_to_itself_or_with_buffers_are_not_batched():
    sent = []
    agg = Aggregator(0, sent.append, clock=Clock())
    agg.post(Note(recipient=1, text="a"))
    bulk = Note(recipient=1, text="bulk")
    bulk.buffers = [np.arange(3)]
    agg.post(bulk)
    agg.post(Note(recipient=0, text="self"))
    assert sent_texts(sent) == ["a", "bulk", "self"]


def test_a_busy_rank_batches_and_the_recipient_keeps_the_order():
    net = LocalNetwork(3)
    a, b = Node(net.messenger(0), Shard()), Node(net.messenger(1), Shard())
    got = []
    b.register(Note, lambda m: got.append((m.sender, m.text)))
    # rank 0 handles five messages that came in together; each posts a note on to rank 1
    a.register(Note, lambda m: a.post(Note(recipient=1, text=m.text)))
    for i in range(5):
        net.messenger(2).send(Note(recipient=0, text=str(i)))
    a.step(0)
    # the first four waited in a batch while others were in hand; the last found rank 0 idle and
    # went at once, after the batch
    assert (a.aggregator.bundles_sent, a.aggregator.messages_bundled) == (1, 4)
    assert not a.aggregator.batches
    b.step(0)
    assert got == [(0, "0"), (0, "1"), (0, "2"), (0, "3"), (0, "4")]


def test_an_idle_rank_sends_at_once():
    net = LocalNetwork(2)
    a = Node(net.messenger(0), Shard())
    a.post(Note(recipient=1, text="x"))
    assert [m.kind for m in net.messenger(1).poll(0)] == ["test-note"]
    assert a.aggregator.bundles_sent == 0


def test_the_recipient_handles_a_bundle_in_order():
    net = LocalNetwork(2)
    a, b = Node(net.messenger(0), Shard()), Node(net.messenger(1), Shard())
    got = []
    b.register(Note, lambda m: got.append((m.sender, m.text)))
    for i in range(5):
        a.aggregator.post(Note(recipient=1, text=str(i)))
    a.post(Note(recipient=1, text="direct"))  # rank 0 is idle: sent at once, after the batch
    assert len(net.inboxes[1]) == 2
    b.step(0)
    assert got == [(0, "0"), (0, "1"), (0, "2"), (0, "3"), (0, "4"), (0, "direct")]


def test_a_busy_loop_keeps_batching_until_max_delay():
    net = LocalNetwork(2)
    a = Node(net.messenger(0), Shard())
    a.register(Note, lambda m: None)
    clock = Clock()
    a.aggregator.clock = clock
    net.messenger(1).send(Note(recipient=0, text="incoming"))  # rank 0 has work waiting
    a.post(Note(recipient=1, text="x"))
    a.step(0)
    assert not net.inboxes[1]
    clock.now += 0.01
    net.messenger(1).send(Note(recipient=0, text="more"))
    a.step(0)
    assert len(net.inboxes[1]) == 1


def _genome_reads(tmp_path, size=3000, k=21):
    rng = random.Random(11)
    genome = "".join(rng.choice("ACGT") for _ in range(size))
    reads = [genome[i:i + 60] for i in range(0, size - 59, 15)]
    path = tmp_path / "g.fq"
    write_fastq(path, reads)
    starts = [genome[i:i + k] for i in range(0, size - k, size // 12)][:12]
    return path, starts


def _walks(starts, together):
    walks = [f"walk kmers/{s} both into paths/w{i}" for i, s in enumerate(starts)]
    return "parallel { " + "\n".join(walks) + " }" if together else "\n".join(walks)


def test_many_walks_at_once_travel_in_bundles_and_find_the_same_paths(tmp_path):
    path, starts = _genome_reads(tmp_path)
    found = {}
    for together in (False, True):
        with Cluster.local(3) as c:
            c.run(f'load "{path}" into kmers k=21\n' + _walks(starts, together))
            found[together] = [c.get(f"paths/w{i}").sequence for i in range(len(starts))]
            bundles = sum(n.aggregator.bundles_sent for n in c.local_nodes)
            bundled = sum(n.aggregator.messages_bundled for n in c.local_nodes)
        if together:
            assert bundled > bundles > 0  # some bundles carried several walk steps
    assert found[True] == found[False]
    assert all(len(s) == 3000 for s in found[True])  # each walk spans the genome (no errors, no repeats)


def test_many_walks_at_once_under_mpiexec(tmp_path):
    path, starts = _genome_reads(tmp_path)
    script = tmp_path / "w.ray"
    script.write_text(f'load "{path}" into kmers k=21\n' + _walks(starts, True) + "\ncount paths\n")
    proc = run_mpi(4, *rayscript_cmd(), "run", str(script))
    assert proc.returncode == 0, proc.stderr
    assert "12 paths, 36,000 bases in total" in proc.stdout
