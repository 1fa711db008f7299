"""k-mers of k > 31 (two 64-bit words per id, four for k > 63; tests/test_long.py has more of
those): every statement a k-mer goes through."""

import random
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.store import encoding
from rayscript.store.kmertable import KmerTable
from rayscript.store.partition import owner, owners

RC = str.maketrans("ACGT", "TGCA")


def rc(s):
    return s[::-1].translate(RC)


def canon(s):
    return min(s, rc(s))


@pytest.fixture(scope="module")
def genome_reads(tmp_path_factory):
    """Error-free reads of 150 bases from both strands of a random 4,000-base genome, 22x."""
    rng = np.random.default_rng(8)
    genome = "".join(rng.choice(list("ACGT"), 4000))
    reads = []
    for start in rng.integers(0, len(genome) - 150, 600):
        r = genome[start:start + 150]
        reads.append(r if rng.random() < 0.5 else rc(r))
    path = tmp_path_factory.mktemp("wide") / "reads.fq"
    write_fastq(path, reads)
    return path, genome, reads


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 127), seed=st.integers(0, 2**32 - 1), canonical=st.booleans())
def test_the_batch_functions_agree_with_the_scalar_ones(k, seed, canonical):
    rng = random.Random(seed)
    seq = "".join(rng.choice("ACGT") for _ in range(rng.randint(k, k + 150)))
    if len(seq) > k + 10:
        cut = rng.randrange(len(seq))
        seq = seq[:cut] + "N" + seq[cut + 1:]
    codes = encoding.codes_from_bytes(np.frombuffer(seq.encode(), np.uint8))
    ids, edges = encoding.kmers_from_codes(codes, k, canonical)
    windows = [seq[i:i + k] for i in range(len(seq) - k + 1) if "N" not in seq[i:i + k]]
    expect = [encoding.encode(canon(w) if canonical else w) for w in windows]
    assert encoding.int_ids(ids) == expect
    assert ids.dtype == encoding.id_dtype(k)
    short, _ = encoding.kmers_from_codes(codes[:k - 1], k, canonical)  # no window at all: the same dtype
    assert short.dtype == encoding.id_dtype(k) and len(short) == 0
    assert len(edges) == len(expect)
    assert encoding.int_ids(encoding.revcomp_array(ids, k)) == [encoding.revcomp(x, k) for x in expect]
    assert [bytes(row).decode() for row in encoding.decode_array(ids, k)] == [encoding.decode(x, k) for x in expect]
    bases = [encoding.decode(x, k) for x in expect]
    assert ["ACGT"[c] for c in encoding.first_codes(ids, k)] == [b[0] for b in bases]
    assert ["ACGT"[c] for c in encoding.last_codes(ids)] == [b[-1] for b in bases]
    assert owners(ids, 5).tolist() == [owner(("kmers", x), 5) for x in expect]
    for base in range(4):
        mask = (1 << (2 * k)) - 1
        assert encoding.int_ids(encoding.followers(ids, k, base)) == [((x << 2) | base) & mask for x in expect]
        assert encoding.int_ids(encoding.leaders(ids, k, base)) == [(base << (2 * k - 2)) | (x >> 2) for x in expect]


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 127), seed=st.integers(0, 2**32 - 1))
def test_the_table_counts_looks_up_selects_and_removes_like_a_dict(k, seed):
    rng = random.Random(seed)
    genome = "".join(rng.choice("ACGT") for _ in range(rng.randint(k, 400)))
    seqs = [genome, genome[: len(genome) // 2], rc(genome)]
    ref, ref_edges = Counter(), defaultdict(int)
    table = KmerTable(k)
    for s in seqs:
        ids, edges = encoding.kmers_from_codes(encoding.codes_from_bytes(np.frombuffer(s.encode(), np.uint8)), k)
        table.add_occurrences(ids, edges)
        for i, e in zip(encoding.int_ids(ids), edges.tolist()):
            ref[i] += 1
            ref_edges[i] |= e
    ids, counts, edges = table.extract(("all",))
    got = encoding.int_ids(ids)
    assert got == sorted(ref)
    assert counts.tolist() == [ref[i] for i in got] and edges.tolist() == [ref_edges[i] for i in got]
    asked = list(ref)[:50] + [rng.randrange(4 ** k) for _ in range(20)]
    rng.shuffle(asked)
    found, _ = table.lookup(encoding.ids_array(asked, k))
    assert found.tolist() == [ref.get(i, 0) for i in asked]
    assert table.present(encoding.ids_array(sorted(asked), k)).tolist() == [i in ref for i in sorted(asked)]
    for prefix in ("A", "GT", "T" * min(k, 3), encoding.decode(got[-1], k)):
        picked = encoding.int_ids(table.extract(("prefix", prefix))[0])
        assert picked == [i for i in got if encoding.decode(i, k).startswith(prefix)]
    gone = sorted(set(asked[:10]))
    assert table.remove_ids(encoding.ids_array(gone, k)) == sum(i in ref for i in gone)
    assert len(table) == len(ref) - sum(i in ref for i in gone)
    assert table.nbytes() == len(table) * (5 + 8 * encoding.id_words(k))


@pytest.mark.parametrize("k", [47, 63, 95])
@pytest.mark.parametrize("ranks", [1, 3])
def test_walk_search_movement_and_checkpoints_with_ids_of_several_words(genome_reads, tmp_path, k, ranks):
    path, genome, reads = genome_reads
    ref = Counter(canon(r[i:i + k]) for r in reads for i in range(len(r) - k + 1))
    start = genome[2000:2000 + k]
    with Cluster.local(ranks) as c:
        (res,) = c.run(f'load "{path}" into kmers k={k}')
        assert res.data["distinct"] == len(ref)
        c.run(f'dump kmers to "{tmp_path}/a.tsv"')
        dumped = dict(line.split("\t") for line in (tmp_path / "a.tsv").read_text().splitlines())
        assert {s: int(n) for s, n in dumped.items()} == dict(ref)
        # by bases (the key of a k-mer of k > 31) and printed by bases
        item = c.get(f"kmers/{start}")
        assert item.count == ref[canon(start)] and item.k == k
        (res,) = c.run(f"get kmers/{start}")
        assert f"kmers/{canon(start)} count=" in res.text
        # explain writes the key by its bases, as results do
        (res,) = c.run(f"explain get kmers/{start}")
        assert f"kmers/{canon(start)}" in res.text and str(encoding.encode(canon(start))) not in res.text
        # a walk and a search hop over wide ids
        c.run(f"walk kmers/{start} both into paths/contig")
        contig = c.get("paths/contig").sequence
        assert contig in genome or rc(contig) in genome
        assert start in contig or rc(start) in contig
        (res,) = c.run(f"search kmers/{start} depth=3 into results/near")
        assert res.data["per_depth"] == [1, 2, 2, 2]
        near = {encoding.canonical(encoding.encode(genome[i:i + k]), k) for i in range(2000 - 3, 2000 + 4)}
        assert set(c.get("results/near").vertices) == near
        # put by bases onto a rank, bulk movement by a base prefix, rebalance
        other = "A" * (k - 1) + "C"
        c.run(f"put kmers/{other} count=9 on 0")
        assert c.get(f"kmers/{other}", rank=0).count == 9
        c.run(f"delete kmers/{other} from 0")
        with pytest.raises(RayScriptError, match=f"rank 0: kmers/{other} is not on rank 0"):
            c.run(f"get kmers/{other} from 0")  # errors write the key by its bases too
        if ranks > 1:
            (res,) = c.run("move kmers/AC* from 1 to 2")
            moved = sum(n for s, n in ref.items() if s.startswith("AC") and owner(("kmers", encoding.encode(s)),
                                                                                   ranks) == 1)
            assert res.data["items"] == len([s for s in ref if s.startswith("AC")
                                             and owner(("kmers", encoding.encode(s)), ranks) == 1]) and moved
            c.run("rebalance kmers")
        # a checkpoint, restored onto another rank count, gives the same store
        c.run(f'save to "{tmp_path}/ckpt"')
        (res,) = c.run("count kmers")
        assert (res.data["distinct"], res.data["total"]) == (len(ref), sum(ref.values()))
    with Cluster.local(4 - ranks) as c:
        c.run(f'restore from "{tmp_path}/ckpt"')
        c.run(f'dump kmers to "{tmp_path}/b.tsv"')
        assert sorted((tmp_path / "b.tsv").read_text().splitlines()) == sorted((tmp_path / "a.tsv").read_text()
                                                                                 .splitlines())
        (res,) = c.run(f'query "{path}" in kmers')
        first = reads[0][:k]
        assert res.text.splitlines()[0] == f"{first}\t{ref[canon(first)]}"


@pytest.mark.parametrize("k", [32, 47, 63])
def test_a_search_result_of_two_word_ids_shows_its_start_by_its_bases(genome_reads, tmp_path, k):
    """get results/NAME printed start=46487606163971535229884379252498122864."""
    path, genome, _ = genome_reads
    start = canon(genome[1000:1000 + k])
    number = encoding.encode(start)
    with Cluster.local(2) as c:
        c.run(f'load "{path}" into kmers k={k}')
        (res,) = c.run(f"search kmers/{start} depth=2 into results/near")
        assert res.text.startswith(f"searched from kmers/{start} to depth 2: ")
        (res,) = c.run("get results/near")
        assert res.text.startswith(f"results/near start={start} vertices=5")
        assert str(number) not in res.text
        # asked by number, shown by its bases all the same
        (res,) = c.run(f"search kmers/{number} depth=1 into results/bynumber")
        assert res.text.startswith(f"searched from kmers/{start} to depth 1: 3 vertices")
        assert str(c.get("results/bynumber")).startswith(f"results/bynumber start={start} ")
        assert str(number) not in str(c.get("results/bynumber"))
        # a result keeps its k through a checkpoint
        c.run(f'save to "{tmp_path}/ck"')
    with Cluster.local(3) as c:
        c.run(f'restore from "{tmp_path}/ck"')
        assert c.get("results/near").k == k
        assert c.run("get results/near")[0].text.startswith(f"results/near start={start} vertices=5")


@pytest.mark.parametrize("k", [41, 63])
def test_assemble_with_two_word_ids_gives_the_covered_stretches_of_the_genome(genome_reads, k):
    path, genome, reads = genome_reads
    # what the reads cover: runs of consecutive genome positions whose k-mer some read holds
    kmers = {canon(r[i:i + k]) for r in reads for i in range(len(r) - k + 1)}
    covered = [i for i in range(len(genome) - k + 1) if canon(genome[i:i + k]) in kmers]
    runs, first = [], covered[0]
    for a, b in zip(covered, [*covered[1:], None]):
        if b != a + 1:
            runs.append(genome[first:a + k])
            first = b
    expect = {canon(x) for x in runs if len(x) >= 2 * k}
    for ranks in (1, 2, 3):
        with Cluster.local(ranks) as c:
            c.run(f'load "{path}" into kmers k={k}')
            (res,) = c.run("assemble kmers into paths/ctg")
            got = {canon(c.get(f"paths/ctg-{i}").sequence) for i in range(1, res.data["contigs"] + 1)}
        assert got == expect, (ranks, res.text)


@pytest.mark.mpi
def test_k63_under_mpiexec_matches_the_local_backend(genome_reads, tmp_path):
    path, genome, _reads = genome_reads
    start = genome[1000:1063]
    with Cluster.local(1) as c:
        c.run(f'load "{path}" into kmers k=63\nwalk kmers/{start} both into paths/contig\n'
              f'dump kmers to "{tmp_path}/local.tsv"')
        contig = c.get("paths/contig").sequence
    proc = run_mpi(4, *rayscript_cmd(), "run", "-e",
                   f'load "{path}" into kmers k=63\nwalk kmers/{start} both into paths/contig\n'
                   f'dump paths/contig to "{tmp_path}/walk.fa"\ndump kmers to "{tmp_path}/mpi.tsv"', timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted((tmp_path / "mpi.tsv").read_text().splitlines()) == sorted((tmp_path / "local.tsv").read_text()
                                                                               .splitlines())
    assert "".join((tmp_path / "walk.fa").read_text().splitlines()[1:]) == contig
