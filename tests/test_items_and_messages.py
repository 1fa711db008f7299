import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rayscript.items import GraphPath, GraphSearchResult, Kmer, pack_item, unpack_item
from rayscript.protocol import bulk as mv
from rayscript.store import encoding
from rayscript.store.partition import mix64, owner, owners

ids = st.integers(0, (1 << 62) - 1)
wide_ids = st.integers(0, (1 << 254) - 1)  # ids of k up to 127


@given(ids, st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 31))
def test_kmer_round_trip(ident, count, edges, k):
    item = Kmer(ident, count, edges, k)
    assert unpack_item(pack_item(item)) == item
    # a shard serving a copy frames it without making the object: the same bytes
    assert Kmer.packed(ident, count, edges, k) == pack_item(item)


@given(st.text(max_size=30), st.text(alphabet="ACGT", max_size=500), st.integers(0, 31))
def test_path_round_trip(name, seq, k):
    item = GraphPath(name, seq, k, "branch")
    assert unpack_item(pack_item(item)) == item


@given(st.text(max_size=30), st.lists(st.tuples(ids, st.integers(0, 65535)), max_size=50))
def test_search_result_round_trip(name, pairs):
    item = GraphSearchResult(name, 7, [p[0] for p in pairs], [p[1] for p in pairs])
    assert unpack_item(pack_item(item)) == item


@given(st.text(max_size=30), st.lists(st.tuples(wide_ids, st.integers(0, 65535)), max_size=50), wide_ids,
       st.integers(0, 127))
def test_search_result_round_trip_keeps_its_k_and_reads_results_packed_without_one(name, pairs, start, k):
    item = GraphSearchResult(name, start, [p[0] for p in pairs], [p[1] for p in pairs], k)
    assert unpack_item(pack_item(item)) == item
    # as a result was packed before it kept k (a checkpoint of then): read with k unknown
    packed = pack_item(item)
    old = packed[:-1] if k else packed
    assert unpack_item(old) == GraphSearchResult(name, start, item.vertices, item.depths, 0)


def test_bulk_buffers_travel_beside_the_message_on_both_backends():
    from rayscript.runtime.local import LocalNetwork

    net = LocalNetwork(2)
    msg = mv.BulkChunk(recipient=1, seq=0, last=True)
    arrays = [np.arange(5, dtype=np.uint64), np.arange(5, dtype=np.uint32), np.arange(5, dtype=np.uint8)]
    msg.buffers = arrays
    net.messenger(0).send(msg)
    arrays[0][0] = 99  # the receiver got its own copy
    (got,) = net.messenger(1).poll(0)
    assert [b.tolist() for b in got.buffers] == [[0, 1, 2, 3, 4]] * 3
    assert [b.dtype for b in got.buffers] == [np.uint64, np.uint32, np.uint8]
    assert b"\x00\x01\x02\x03\x04" not in msg.encode()  # the data is not in the pickled envelope


@given(st.text(alphabet="ACGT", min_size=1, max_size=31))
def test_canonical_form_is_strand_independent(bases):
    k = len(bases)
    rc = bases[::-1].translate(str.maketrans("ACGT", "TGCA"))
    fwd, rev = encoding.encode(bases), encoding.encode(rc)
    assert encoding.decode(fwd, k) == bases
    assert encoding.revcomp(fwd, k) == rev
    assert encoding.canonical(fwd, k) == encoding.canonical(rev, k) == min(fwd, rev)


def test_id_order_is_lexicographic_order():
    words = ["AAAA", "AAAC", "ACGT", "CAAA", "GTTT", "TTTT"]
    assert sorted(words, key=encoding.encode) == words


def test_owner_hash_is_documented_splitmix64_and_matches_numpy():
    assert mix64(0) == 0
    assert mix64(1) == 0x5692161D100B05E5  # splitmix64 finalizer of 1
    sample = np.arange(0, 100_000, 7, dtype=np.uint64) * np.uint64(2654435761)
    scalar = [owner(("kmers", int(i)), 6) for i in sample[:500]]
    assert scalar == owners(sample[:500], 6).tolist()


def test_owner_spreads_kmers_evenly():
    rng = np.random.default_rng(7)
    sample = rng.integers(0, 1 << 62, size=600_000, dtype=np.uint64)
    for n in (2, 3, 7, 16, 64):
        counts = np.bincount(owners(sample, n), minlength=n)
        assert counts.max() / counts.mean() < 1.03, (n, counts)
    # sequential ids (a dense region of k-mer space) spread too
    counts = np.bincount(owners(np.arange(600_000, dtype=np.uint64), 16), minlength=16)
    assert counts.max() / counts.mean() < 1.03


def test_a_fourth_item_type_is_one_class_and_one_registration(monkeypatch):
    """The worked example of docs/items.md, run for real."""
    import re
    import struct
    from dataclasses import dataclass
    from pathlib import Path

    from rayscript import Cluster, items
    from rayscript.language import syntax
    from rayscript.statements import default_parser

    doc = (Path(__file__).parent.parent / "docs/items.md").read_text()
    code = re.search(r"```python\n(from dataclasses import dataclass.*?)```", doc, re.S).group(1)
    namespace = {"dataclass": dataclass, "struct": struct}
    try:
        exec(code, namespace)
        ReadPair = namespace["ReadPair"]
        # the grammar, the REPL's completion and checkpoints take their namespaces from the registry
        assert "pairs" in syntax.namespaces()
        assert "pairs" in str(default_parser().lark().get_terminal("NAMESPACE").pattern.value)
        pair = ReadPair("p", "ACGT", "TTGA")
        assert unpack_item(pack_item(pair)) == pair
        with Cluster.local(3) as c:
            c.run("put pairs/x on 1\ncopy pairs/x from 1 to 2\nmove pairs/x from 2 to 0")
            assert c.run("locate pairs/x")[0].data["ranks"] == sorted([0, 1], key=lambda r: (
                r != c.run("locate pairs/x")[0].data["owner"], r))
            assert c.get("pairs/x", rank=0) == ReadPair("x")
    finally:
        items.BY_NAMESPACE.pop("pairs", None)
        items.BY_CODE.pop(4, None)


@given(st.lists(st.text(alphabet="ACGT", min_size=5, max_size=5), min_size=1, max_size=50))
def test_vectorized_reverse_complement_matches_the_scalar_one(words):
    ids = np.array([encoding.encode(w) for w in words], np.uint64)
    assert encoding.revcomp_array(ids, 5).tolist() == [encoding.revcomp(int(i), 5) for i in ids]
    assert [encoding.revcomp_text(w) for w in words] == [encoding.decode(encoding.revcomp(encoding.encode(w), 5), 5)
                                                       for w in words]
