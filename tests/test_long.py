"""k-mers of 64 <= k <= 127 (four 64-bit words per id): counting exact against Jellyfish, and every
statement a k-mer goes through."""

import gzip
import os
import random
import subprocess
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import need, need_tool, rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.items import Kmer, pack_item, unpack_item
from rayscript.store import encoding
from rayscript.store.kmertable import KmerTable

RC = str.maketrans("ACGT", "TGCA")
LAMBDA = "/usr/share/doc/bowtie2/examples/reads/longreads.fq.gz"
COMPONENTS = os.path.join(os.path.dirname(__file__), "..", "examples", "cascades", "components.ray")


def rc(s):
    return s[::-1].translate(RC)


def canon(s):
    return min(s, rc(s))


def random_genome(rng, n):
    return "".join(rng.choice(list("ACGT"), n))


def sampled_reads(rng, genome, n, length=150):
    """Error-free reads of ``length`` bases from both strands, starting anywhere (both ends covered)."""
    reads = [genome[:length], rc(genome[-length:])]
    for start in rng.integers(0, len(genome) - length + 1, n):
        r = genome[start:start + length]
        reads.append(r if rng.random() < 0.5 else rc(r))
    return reads


@pytest.fixture(scope="module")
def genome_reads(tmp_path_factory):
    """Reads of 150 bases from both strands of a random 3,000-base genome, 20x."""
    rng = np.random.default_rng(11)
    genome = random_genome(rng, 3000)
    reads = sampled_reads(rng, genome, 400)
    path = tmp_path_factory.mktemp("long") / "reads.fq"
    write_fastq(path, reads)
    return path, genome, reads


@settings(max_examples=25, deadline=None)
@given(k=st.integers(64, 127), seed=st.integers(0, 2**32 - 1), canonical=st.booleans())
def test_four_word_ids_have_the_edges_and_the_order_of_their_k_mers(k, seed, canonical):
    """Beside tests/test_wide.py's checks of every batch function for k up to 127: each occurrence's
    edges in the orientation of its id, and numpy's order of the 32-byte ids is their numeric order."""
    rng = random.Random(seed)
    seq = "".join(rng.choice("ACGT") for _ in range(rng.randint(k + 1, k + 150)))
    codes = encoding.codes_from_bytes(np.frombuffer(seq.encode(), np.uint8))
    ids, edges = encoding.kmers_from_codes(codes, k, canonical)
    assert ids.dtype == encoding.id_dtype(k) == np.dtype("V32")
    code = {b: i for i, b in enumerate("ACGT")}
    for i, e in enumerate(edges.tolist()):
        w = seq[i:i + k]
        before = 16 << code[seq[i - 1]] if i > 0 else 0
        after = 1 << code[seq[i + k]] if i + k < len(seq) else 0
        if canonical and rc(w) < w:  # the reverse strand: its base before is the complement of the one after
            before, after = (16 << (3 - code[seq[i + k]]) if after else 0), (1 << (3 - code[seq[i - 1]]) if before
                                                                             else 0)
        assert e == before | after
    values = encoding.int_ids(ids)
    assert encoding.int_ids(np.sort(ids)) == sorted(values)
    assert encoding.int_ids(np.unique(ids)) == sorted(set(values))
    assert encoding.int_ids(encoding.canonical_array(ids, k)) == [encoding.canonical(x, k) for x in values]
    table = KmerTable(k)
    table.add_occurrences(ids, edges)
    for prefix in ("T" * k, seq[:k], "A"):
        picked = encoding.int_ids(table.extract(("prefix", prefix))[0])
        assert picked == sorted({x for x in values if encoding.decode(x, k).startswith(prefix)})
    one = values[len(values) // 2]
    table.set(one, 7, 3)
    assert table.get(one) == (7, 3)


def test_a_kmer_item_of_four_words_travels_whole():
    for k in (64, 95, 127):
        ident = encoding.encode(("ACGT" * 32)[:k])
        item = unpack_item(pack_item(Kmer(ident, 5, 17, k)))
        assert (item.id, item.count, item.edges, item.k) == (ident, 5, 17, k)
        assert unpack_item(Kmer.packed(ident, 5, 17, k)) == item


def _jellyfish(tmp_path, k, files):
    """(dump lines, histogram text) of ``jellyfish count -C -m K`` on the files."""
    jf = need_tool("jellyfish")
    subprocess.run([jf, "count", "-m", str(k), "-C", "-s", "1M", "-t", "2", "-o", str(tmp_path / "jf.jf"),
                    *map(str, files)], check=True)
    dump = subprocess.run([jf, "dump", "-c", "-t", str(tmp_path / "jf.jf")], check=True, capture_output=True,
                          text=True).stdout
    histo = subprocess.run([jf, "histo", str(tmp_path / "jf.jf")], check=True, capture_output=True,
                           text=True).stdout
    return sorted(dump.splitlines()), histo


@pytest.fixture(scope="module")
def lambda_part(tmp_path_factory):
    """The first 1,500 of bowtie2's long lambda phage reads (about 500 kbp, with errors) and random
    reads of 150 bases, as one FASTQ file."""
    need(os.path.exists(LAMBDA), "the lambda phage reads", "bowtie2-examples")
    with gzip.open(LAMBDA, "rt") as fh:
        lines = fh.read().splitlines()[:4 * 1500]
    rng = np.random.default_rng(5)
    extra = [random_genome(rng, 150) for _ in range(200)]
    path = tmp_path_factory.mktemp("lambda") / "part.fq"
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        for i, r in enumerate(extra):
            fh.write(f"@x{i}\n{r}\n+\n{'I' * len(r)}\n")
    return path


@pytest.mark.external
@pytest.mark.parametrize("k, ranks", [(95, 1), (95, 3), (127, 2)])
def test_counts_are_jellyfishs_at_large_k(lambda_part, tmp_path, k, ranks):
    jdump, jhisto = _jellyfish(tmp_path, k, [lambda_part])
    with Cluster.local(ranks) as c:
        c.run(f'load "{lambda_part}" into kmers k={k}\ndump kmers to "{tmp_path}/rs.tsv"\n'
              f'histogram kmers to "{tmp_path}/histo.txt"')
        (res,) = c.run("count kmers")
        first, number = jdump[0].split("\t")
        (got,) = c.run(f"get kmers/{first}")
    assert sorted((tmp_path / "rs.tsv").read_text().splitlines()) == jdump
    assert len(jdump) > 50_000
    assert (tmp_path / "histo.txt").read_text() == jhisto
    assert res.data["distinct"] == len(jdump)
    assert got.text.startswith(f"kmers/{first} count={number} ")


@pytest.mark.mpi
@pytest.mark.external
def test_counts_under_mpiexec_are_jellyfishs_at_k127(lambda_part, tmp_path):
    jdump, jhisto = _jellyfish(tmp_path, 127, [lambda_part])
    proc = run_mpi(3, *rayscript_cmd(), "run", "-e",
                   f'load "{lambda_part}" into kmers k=127\ndump kmers to "{tmp_path}/rs.tsv"\n'
                   f'histogram kmers to "{tmp_path}/histo.txt"\ncopy kmers where count >= 2 from 1 to 2\n'
                   f'dump kmers to "{tmp_path}/after.tsv"\nsave to "{tmp_path}/ck"', timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert sorted((tmp_path / "rs.tsv").read_text().splitlines()) == jdump
    assert (tmp_path / "histo.txt").read_text() == jhisto
    assert sorted((tmp_path / "after.tsv").read_text().splitlines()) == jdump  # copies are counted once
    with Cluster.local(2) as c:
        c.run(f'restore from "{tmp_path}/ck"\ndump kmers to "{tmp_path}/back.tsv"')
    assert sorted((tmp_path / "back.tsv").read_text().splitlines()) == jdump


def test_copies_are_counted_once_and_a_checkpoint_keeps_them_at_k95(genome_reads, tmp_path):
    """(tests/test_wide.py walks, searches, moves and restores at k=95.)"""
    k = 95
    path, genome, reads = genome_reads
    ref = Counter(canon(r[i:i + k]) for r in reads for i in range(len(r) - k + 1))
    start = genome[1500:1500 + k]
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k={k}')
        c.run(f"walk kmers/{start} both into paths/contig")
        assert canon(c.get("paths/contig").sequence) == canon(genome)  # no repeat: the walk spans the genome
        (res,) = c.run(f"copy kmers where count >= {sorted(ref.values())[len(ref) // 2]} from 1 to 0")
        assert res.data["items"] > 0
        holder = c.run(f"locate kmers/{start}")[0].data["ranks"][0]
        c.run(f"copy kmers/{start} from {holder} to {(holder + 1) % 3}")
        (res,) = c.run("count kmers")
        assert (res.data["distinct"], res.data["total"]) == (len(ref), sum(ref.values()))
        c.run(f'save to "{tmp_path}/ckpt"')
    with Cluster.local(2) as c:
        c.run(f'restore from "{tmp_path}/ckpt"\ndump kmers to "{tmp_path}/b.tsv"')
        (res,) = c.run("count kmers")
        assert (res.data["distinct"], res.data["total"]) == (len(ref), sum(ref.values()))
    dumped = dict(line.split("\t") for line in (tmp_path / "b.tsv").read_text().splitlines())
    assert {s: int(n) for s, n in dumped.items()} == dict(ref)


def test_set_algebra_at_k95(tmp_path):
    k = 95
    rng = np.random.default_rng(3)
    shared, a_only, b_only = (random_genome(rng, 600) for _ in range(3))
    a_reads = sampled_reads(rng, shared, 30) + sampled_reads(rng, a_only, 20)
    b_reads = sampled_reads(rng, shared, 20) + sampled_reads(rng, b_only, 20)
    write_fastq(tmp_path / "a.fq", a_reads)
    write_fastq(tmp_path / "b.fq", b_reads)
    ref_a = Counter(canon(r[i:i + k]) for r in a_reads for i in range(len(r) - k + 1))
    ref_b = Counter(canon(r[i:i + k]) for r in b_reads for i in range(len(r) - k + 1))
    expect = {"u": ref_a + ref_b, "i": {x: min(ref_a[x], ref_b[x]) for x in ref_a if x in ref_b},
              "d": {x: n for x, n in ref_a.items() if x not in ref_b}}
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/a.fq" into kmers.a k={k}\nload "{tmp_path}/b.fq" into kmers.b k={k}\n'
              "combine kmers.a + kmers.b into kmers.u\ncombine kmers.a * kmers.b into kmers.i\n"
              "combine kmers.a - kmers.b into kmers.d")
        for name, want in expect.items():
            c.run(f'dump kmers.{name} to "{tmp_path}/{name}.tsv"')
            got = dict(line.split("\t") for line in (tmp_path / f"{name}.tsv").read_text().splitlines())
            assert {s: int(n) for s, n in got.items()} == dict(want), name
        (res,) = c.run("compare kmers.a, kmers.b")
        assert str(len(expect["i"])) in res.text.replace(",", "")


def test_assemble_at_k95_gives_the_genome_in_one_contig(genome_reads):
    path, genome, _reads = genome_reads
    for ranks in (1, 2, 3):
        with Cluster.local(ranks) as c:
            c.run(f'load "{path}" into kmers k=95')
            (res,) = c.run("assemble kmers into paths/ctg")
            assert res.data["contigs"] == 1, (ranks, res.text)
            assert canon(c.get("paths/ctg-1").sequence) == canon(genome)


def test_k_auto_goes_up_to_127_on_reads_of_150_bases(genome_reads):
    path, genome, _reads = genome_reads
    with Cluster.local(2) as c:
        (res,) = c.run(f'assemble "{path}" into paths/auto')
        assert res.data["ks"] == [21, 51, 81, 111, 127]
        assert res.data["contigs"] == 1, res.text
        assert canon(c.get("paths/auto-1").sequence) == canon(genome)


def test_assemble_at_k95_gives_the_covered_stretches_as_at_k63(tmp_path):
    """Sparse reads: the contigs are the stretches of the genome the reads cover with k-mers joined by
    (k+1)-mers (the edges the reads saw), at k=95 as the same reference says at k=63."""
    rng = np.random.default_rng(4)
    genome = random_genome(rng, 4000)
    reads = [genome[s:s + 120] if rng.random() < 0.5 else rc(genome[s:s + 120])
             for s in rng.integers(0, len(genome) - 120, 300)]
    write_fastq(tmp_path / "r.fq", reads)
    for k in (63, 95):
        kmers = {canon(r[i:i + k]) for r in reads for i in range(len(r) - k + 1)}
        links = {canon(r[i:i + k + 1]) for r in reads for i in range(len(r) - k)}
        covered = [i for i in range(len(genome) - k + 1) if canon(genome[i:i + k]) in kmers]
        runs, first = [], covered[0]
        for a, b in zip(covered, [*covered[1:], None]):
            if b != a + 1 or canon(genome[a:a + k + 1]) not in links:
                runs.append(genome[first:a + k])
                first = b
        expect = {canon(x) for x in runs if len(x) >= 2 * k}
        assert expect
        for ranks in (1, 3):
            with Cluster.local(ranks) as c:
                c.run(f'load "{tmp_path}/r.fq" into kmers k={k}')
                (res,) = c.run("assemble kmers into paths/ctg min_count=1")
                got = {canon(c.get(f"paths/ctg-{i}").sequence) for i in range(1, res.data["contigs"] + 1)}
            assert got == expect, (k, ranks, res.text)


def test_a_cascade_labels_the_components_at_k95(tmp_path):
    rng = np.random.default_rng(6)
    genomes = [random_genome(rng, 500), random_genome(rng, 400)]
    reads = [r for g in genomes for r in sampled_reads(rng, g, 20)]
    write_fastq(tmp_path / "r.fq", reads)
    with open(COMPONENTS) as fh:
        program = fh.read()
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=95\n' + program)
        c.run(f'dump kmers to "{tmp_path}/comp.tsv" fields=comp')
    comp = {}
    for line in (tmp_path / "comp.tsv").read_text().splitlines():
        bases, _count, label = line.split("\t")
        comp[bases] = int(label)
    for g in genomes:
        labels = {comp[canon(g[i:i + 95])] for i in range(len(g) - 94)}
        assert len(labels) == 1
    assert len(set(comp.values())) == 2


def test_k_above_127_says_what_is_allowed(tmp_path):
    write_fastq(tmp_path / "r.fq", ["ACGT" * 40])
    with Cluster.local(1) as c:
        with pytest.raises(RayScriptError, match=r"k.*1 to 127|k.*127"):
            c.run(f'load "{tmp_path}/r.fq" into kmers k=128')
        with pytest.raises(RayScriptError, match="127"):
            c.run("get kmers/" + "A" * 128)
