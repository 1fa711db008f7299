"""Carriageable items on every namespace, bulk movement by selector, walk and search."""

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import need, rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.genomics.graph import oriented_edges
from rayscript.store import encoding

LAMBDA = Path("/usr/share/doc/bowtie2/examples/reference/lambda_virus.fa.gz")
RC = str.maketrans("ACGT", "TGCA")



@pytest.fixture(scope="module")
def lambda_reads(tmp_path_factory):
    """Error-free 100 bp reads from both strands of the lambda phage genome, 10x coverage."""
    need(LAMBDA.exists(), "the lambda phage genome", "bowtie2-examples")
    genome = "".join(gzip.decompress(LAMBDA.read_bytes()).decode().split("\n")[1:]).upper()
    rng = np.random.default_rng(4)
    reads = []
    for start in rng.integers(0, len(genome) - 100, 5000):
        r = genome[start:start + 100]
        reads.append(r if rng.random() < 0.5 else r[::-1].translate(RC))
    path = tmp_path_factory.mktemp("lambda") / "reads.fq"
    write_fastq(path, reads)
    return path, genome


def test_walk_gives_the_same_maximal_substring_of_the_genome_on_1_to_6_ranks(lambda_reads):
    path, genome = lambda_reads
    start = genome[30000:30031]
    contigs = set()
    for ranks in range(1, 7):
        with Cluster.local(ranks) as c:
            c.run(f'load "{path}" into kmers k=31')
            (res,) = c.run(f"walk kmers/{start} both into paths/contig")
            contig = c.get("paths/contig").sequence
            # maximal: the walk stopped because the graph does, on both sides
            back, fwd = res.data["reason"].split("; ")
            assert back.startswith("backward: dead end") or back.startswith("backward: branch"), back
            assert fwd.startswith("forward: dead end") or fwd.startswith("forward: branch"), fwd
            # and the end k-mers' own edges say so: no single way on
            for end, side in ((contig[-31:], "forward"), (contig[:31][::-1].translate(RC), "backward")):
                fwd_id = encoding.encode(end)
                item = c.get(f"kmers/{end}")
                outs, _ins = oriented_edges(fwd_id, item.id, item.edges)
                if f"{side}: dead end" in res.data["reason"]:
                    assert outs == 0
                else:
                    assert bin(outs).count("1") != 1 or "predecessors" in res.data["reason"]
        contigs.add(contig)
    (contig,) = contigs  # the same path whatever the cluster size
    assert contig in genome or contig in genome[::-1].translate(RC)
    assert start in contig or start[::-1].translate(RC) in contig
    assert len(contig) > 1000


@pytest.fixture(scope="module")
def local_walk(lambda_reads):
    """The walk from the genome's 30,000th base on the local backend (3 ranks), computed once."""
    path, genome = lambda_reads
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k=31')
        c.run(f"walk kmers/{genome[30000:30031]} both into paths/contig")
        return c.get("paths/contig").sequence


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 5])
def test_walk_under_mpiexec_matches_the_local_backend(lambda_reads, local_walk, tmp_path, ranks):
    path, genome = lambda_reads
    start = genome[30000:30031]
    local = local_walk
    proc = run_mpi(ranks, *rayscript_cmd(), "run", "-e",
                   f'load "{path}" into kmers k=31\nwalk kmers/{start} both into paths/contig\nget paths/contig\n'
                   f'dump paths/contig to "{tmp_path}/walk.fa"')
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"paths/contig length={len(local)} mean_count=[0-9.]+ sequence={local[:60]}\.\.\.{local[-20:]}",
                     proc.stdout), proc.stdout
    fasta = (tmp_path / "walk.fa").read_text().splitlines()
    assert fasta[0].startswith(f">contig length={len(local)}") and "".join(fasta[1:]) == local


def test_walk_stops_at_branches_cycles_and_the_length_limit(tmp_path):
    # a cycle: the same 12 bases repeated (k=5), and a branch: two successors of ACGTA
    write_fastq(tmp_path / "cyc.fq", ["ACGGTCATTAGC" * 4])
    with Cluster.local(2) as c:
        c.run(f'load "{tmp_path}/cyc.fq" into kmers k=5')
        (res,) = c.run("walk kmers/ACGGT into paths/c")
        assert res.data["reason"] == "cycle (back at the start k-mer)"
        assert res.data["kmers"] == 12
        (res,) = c.run("walk kmers/ACGGT length=3 into paths/short")
        assert res.data["reason"] == "length limit (3 k-mers)" and res.data["length"] == 5 + 2
        assert res.data["kmers"] == 3
        (res,) = c.run("walk kmers/ACGGT length=1 into paths/one")
        assert res.data["kmers"] == 1 and res.data["length"] == 5
        with pytest.raises(RayScriptError, match="length= takes a whole number >= 1, not 0"):
            c.run("walk kmers/ACGGT length=0 into paths/none")
    write_fastq(tmp_path / "br.fq", ["TTACGTAC", "ACGTAG"])
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/br.fq" into kmers k=5 canonical=false')
        (res,) = c.run("walk kmers/TTACG into paths/b")
        assert res.data["reason"] == "branch (2 successors)"
        assert c.get("paths/b").sequence == "TTACGTA"
        with pytest.raises(RayScriptError, match="is not on rank"):
            c.run("walk kmers/GGGGG into paths/x")


@pytest.mark.parametrize("ranks", [1, 3])
def test_a_walked_path_keeps_the_mean_count_of_its_k_mers(tmp_path, ranks):
    rng = np.random.default_rng(5)
    seq = "".join(rng.choice(list("ACGT"), size=40))
    # k=21: 20 k-mers, the first 5 seen four times (the extra read), the other 15 three times
    write_fastq(tmp_path / "r.fq", [seq, seq, seq, seq[:25]])
    with Cluster.local(ranks) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=21')
        c.run(f"walk kmers/{seq[10:31]} both into paths/whole")
        whole = c.get("paths/whole")
        assert len(whole.sequence) == 40 and whole.coverage == pytest.approx((5 * 4 + 15 * 3) / 20)
        c.run(f"walk kmers/{seq[:21]} length=3 into paths/part")  # the first 3 k-mers
        assert c.get("paths/part").coverage == pytest.approx(4.0)
        c.run(f'dump paths/whole to "{tmp_path}/w.fa"')
        assert (tmp_path / "w.fa").read_text().startswith(">whole length=40 mean_count=3.2")


def test_count_and_dump_of_paths_take_each_path_once_however_many_ranks_hold_it(tmp_path):
    seq = "ACGTACGTTGCAAGGCTTAACCGGTTACGATCGGATCCATTGACCA"
    write_fastq(tmp_path / "r.fq", [seq])
    with Cluster.local(4) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=21')
        c.run(f"walk kmers/{seq[:21]} both into paths/p\nwalk kmers/{seq[:21]} length=2 into paths/q")
        owner = c.run("locate paths/p")[0].data["owner"]
        a, b = [r for r in range(4) if r != owner][:2]
        c.run(f"copy paths/p from {owner} to {a}\ncopy paths/p from {owner} to {b}")
        (count,) = c.run("count paths")
        assert (count.data["paths"], count.data["copies"]) == (2, 2) and "2 extra copies of paths" in count.text
        assert count.data["total"] == len(seq) + 22
        c.run(f'dump paths to "{tmp_path}/all.fa"')
        assert [line for line in (tmp_path / "all.fa").read_text().splitlines() if line.startswith(">")] == \
            [f">p length={len(seq)} mean_count=1.0", ">q length=22 mean_count=1.0"]
        c.run(f"delete paths/p from {owner}")  # two copies left, neither on the owner: counted once
        (count,) = c.run("count paths")
        assert (count.data["paths"], count.data["copies"]) == (2, 1)


def test_graph_statements_on_k_mers_of_unknown_k_say_why_they_cannot_run():
    from rayscript.store.partition import owner

    with Cluster.local(3) as c:
        c.run(f"put kmers/5 count=2 edges=3 on {owner(('kmers', 5), 3)}")  # by number: no k known
        for text in ("walk kmers/5 into paths/p", "search kmers/5 depth=2 into results/r",
                     "assemble kmers into paths/c"):
            with pytest.raises(RayScriptError) as info:
                c.run(text)
            what = text.split()[0]
            assert f"the k-mers here have no known k (they were put by number before any load): {what} needs k" \
                in str(info.value), str(info.value)
            assert "OverflowError" not in str(info.value) and "is not on rank" not in str(info.value)


def test_search_lists_vertices_by_depth(lambda_reads):
    path, genome = lambda_reads
    start = genome[10000:10031]
    with Cluster.local(4) as c:
        c.run(f'load "{path}" into kmers k=31')
        (res,) = c.run(f"search kmers/{start} depth=4 into results/near")
        item = c.get("results/near")
    # a linear stretch of the graph: two new vertices per depth (one each way)
    assert res.data["per_depth"] == [1, 2, 2, 2, 2]
    assert item.depths == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    k = 31
    ids = {encoding.canonical(encoding.encode(genome[i:i + k]), k) for i in range(10000 - 4, 10000 + 5)}
    assert set(item.vertices) == ids


def test_every_namespace_travels(local4):
    local4.run("put paths/p1 on 1\nput results/r1 on 2\ncopy paths/p1 from 1 to 3\nmove results/r1 from 2 to 0")
    (loc,) = local4.run("locate paths/p1")
    assert loc.data["ranks"] == sorted([1, 3], key=lambda r: (r != loc.data["owner"], r))
    assert local4.run("locate results/r1")[0].data["ranks"] == [0]
    assert local4.get("paths/p1", rank=3).name == "p1"
    local4.run("delete paths/p1 from 3")
    assert local4.run("locate paths/p1")[0].data["ranks"] == [1]
    with pytest.raises(RayScriptError, match="merge applies to k-mers"):
        local4.run("copy paths/p1 from 1 to 3\ncopy paths/p1 from 1 to 3 merge")


def _table(c, rank):
    t = c.local_nodes[rank].shard.kmers
    ids, counts, _ = t.extract(("all",))
    return dict(zip(ids.tolist(), counts.tolist()))


@pytest.fixture
def loaded(tmp_path):
    rng = np.random.default_rng(9)
    seqs = ["".join(rng.choice(list("ACGT"), size=60)) for _ in range(300)] * 2
    write_fastq(tmp_path / "r.fq", seqs[:400])
    with Cluster.local(4) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=15')
        yield c


def test_bulk_copy_streams_all_or_nothing(loaded):
    c = loaded
    before = [_table(c, r) for r in range(4)]
    (res,) = c.run("copy kmers where count >= 2 from 1 to 2")
    picked = {i: n for i, n in before[1].items() if n >= 2}
    assert res.data == {"items": len(picked), "bytes": 13 * len(picked), "source": 1, "target": 2}
    assert _table(c, 2) == {**before[2], **picked}
    assert _table(c, 1) == before[1]
    with pytest.raises(RayScriptError, match=r"rank 2: .* already on rank 2; nothing was copied"):
        c.run("copy kmers/* from 1 to 2")
    assert _table(c, 2) == {**before[2], **picked}  # unchanged by the refused copy
    c.run("copy kmers/* from 1 to 2 merge")
    merged = dict(before[2])
    for i, n in before[1].items():
        merged[i] = merged.get(i, 0) + n + picked.get(i, 0)
    assert _table(c, 2) == merged
    c.run("copy kmers/* from 1 to 2 replace")
    assert _table(c, 2) == {**before[2], **before[1]}


def test_a_bulk_move_that_fails_midway_on_the_target_loses_nothing(loaded, monkeypatch):
    from rayscript.runtime import bulk as movement

    c = loaded
    before = [_table(c, r) for r in range(4)]
    monkeypatch.setattr(movement, "CHUNK_ITEMS", 60)  # several chunks, applied as they arrive
    target = c.local_nodes[2].handlers[movement.BulkChunk].__self__
    calls = []
    apply = target._apply

    def second_fails(*args):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("simulated")
        apply(*args)

    monkeypatch.setattr(target, "_apply", second_fails)
    with pytest.raises(RayScriptError) as err:
        c.run("move kmers/* from 1 to 2 merge")
    assert "rank 2 could not store the copy (MemoryError: simulated)" in str(err.value)
    assert "rank 1 still holds all of them" in str(err.value)
    assert len(calls) == 2  # it stopped at the failure: the later chunks were not applied
    assert _table(c, 1) == before[1]  # the source deleted nothing
    after = _table(c, 2)
    stored = {i for i in after if after[i] != before[2].get(i)}
    assert stored and stored <= set(before[1])  # only k-mers of the first chunk changed
    stated = int(str(err.value).split("MemoryError: simulated); ")[1].split(" ")[0].replace(",", ""))
    assert 0 < stated < len(before[1])


def test_a_bulk_copy_of_another_k_is_refused_and_changes_nothing(tmp_path):
    write_fastq(tmp_path / "a.fq", ["ACGTACGTTGCAAGCTTGCA"])
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/a.fq" into kmers k=7')
        c.run("move kmers/* from 2 to 1 merge")
        c.local_nodes[2].shard.kmers.set_k(9)  # as if rank 2 had been given k=9 k-mers
        c.run(f"put kmers/{encoding.canonical(encoding.encode('ACGTACGTT'), 9)} on 2")  # by number (k=7 by bases)
        held = _table(c, 1)
        with pytest.raises(RayScriptError, match="rank 1 holds k=7 k-mers, not k=9: nothing was copied"):
            c.run("copy kmers/* from 2 to 1 merge")
        assert _table(c, 1) == held


def test_bulk_move_prefix_and_delete(loaded):
    c = loaded
    before = [_table(c, r) for r in range(4)]
    lo, hi = encoding.encode("AC") << 26, (encoding.encode("AC") + 1) << 26
    prefixed = {i: n for i, n in before[3].items() if lo <= i < hi}
    assert prefixed
    (res,) = c.run("move kmers/AC* from 3 to 0")
    assert res.data["items"] == len(prefixed)
    assert _table(c, 0) == {**before[0], **prefixed}
    assert _table(c, 3) == {i: n for i, n in before[3].items() if i not in prefixed}
    (res,) = c.run("delete kmers where count == 1 from 0")
    assert _table(c, 0) == {i: n for i, n in {**before[0], **prefixed}.items() if n != 1}


def test_dump_with_a_selector(loaded, tmp_path):
    loaded.run(f'dump kmers where count >= 2 to "{tmp_path}/two.tsv"\ndump kmers/G* to "{tmp_path}/g.tsv"')
    two = [line.split("\t") for line in (tmp_path / "two.tsv").read_text().splitlines()]
    assert two and all(int(n) >= 2 for _, n in two)
    g = (tmp_path / "g.tsv").read_text().splitlines()
    assert g and all(line.startswith("G") for line in g)


def test_rebalance_returns_every_kmer_to_its_owner(loaded):
    c = loaded
    before = c.run("count kmers")[0].data
    total = before["total"]
    extra = len(_table(c, 1)) + len(_table(c, 3))
    c.run("copy kmers/* from 1 to 2 merge\ncopy kmers/* from 3 to 0 merge")
    assert sum(rank["kmers"] for rank in c.run("ranks")[0].data) == before["distinct"] + extra
    # copies are the same k-mers: counted once
    after = c.run("count kmers")[0].data
    assert (after["distinct"], after["total"], after["copies"]) == (before["distinct"], total, extra)
    (res,) = c.run("rebalance kmers")
    assert res.data["items"] > 0
    from rayscript.store.partition import owners

    for r in range(4):
        ids = np.array(sorted(_table(c, r)), np.uint64)
        assert (owners(ids, 4) == r).all()
    # a copy is the same item as the owner's: the copies collapsed into the owners, nothing summed
    assert c.run("count kmers")[0].data["total"] == total and res.data["kept"] == 0


def test_replicate_places_copies_deterministically(local4):
    local4.run("put kmers/99 count=4 on 1")
    (res,) = local4.run("replicate kmers/99 to 3 ranks")
    own = res.data["ranks"][0]
    assert res.data["ranks"] == [own, (own + 1) % 4, (own + 2) % 4]
    located = local4.run("locate kmers/99")[0].data["ranks"]
    assert set(located) == set(res.data["ranks"]) | {1}
    with pytest.raises(RayScriptError, match="replicate places 1 to 4 copies"):
        local4.run("replicate kmers/99 to 5 ranks")


def test_parallel_commanders_lose_and_duplicate_nothing(local4):
    c = local4
    for r in range(4):
        c.run(f"for i in {r * 10}..{r * 10 + 9} {{ put kmers/$i count=1 on {r} }}")
    # disjoint moves by three commanders, and overlapping merges of the same items into rank 0
    c.run("""parallel {
        on 1 { for i in 10..14 { move kmers/$i from 1 to 2 } }
        on 2 { for i in 20..24 { move kmers/$i from 2 to 3 } }
        on 3 { for i in 30..34 { copy kmers/$i from 3 to 0 merge } }
        on 0 { for i in 30..34 { copy kmers/$i from 3 to 0 merge } }
        on 2 { for i in 35..39 { copy kmers/$i from 3 to 1 } }
    }""")
    model = {r: {i: 1 for i in range(r * 10, r * 10 + 10)} for r in range(4)}
    for i in range(10, 15):
        model[2][i] = model[1].pop(i)
    for i in range(20, 25):
        model[3][i] = model[2].pop(i)
    for i in range(30, 35):
        model[0][i] = 2
    for i in range(35, 40):
        model[1][i] = 1
    assert [_table(c, r) for r in range(4)] == [model[r] for r in range(4)]
