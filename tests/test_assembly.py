"""assemble: unitigs as a simple single-process builder makes them, the same on any rank count and
backend, lambda phage in one contig, and bad input refused."""

import gzip
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import need, rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.genomics.assembly import order_keys
from rayscript.store import encoding

EXAMPLES = Path("/usr/share/doc/bowtie2/examples")
_RC = str.maketrans("ACGT", "TGCA")


def rc(s):
    return s[::-1].translate(_RC)


def canon(s):
    return min(s, rc(s))


def unitigs(reads, k):
    """Maximal non-branching paths of the de Bruijn graph of these reads: their k-mers, joined
    where a read has them one after the other (the test's own builder: strings, one k-mer at a time).
    A palindromic k-mer (even k: its own reverse complement) can only be entered and left by turning
    back: it is a unitig of its own."""
    present = {canon(r[i:i + k]) for r in reads for i in range(len(r) - k + 1)}
    joined = set()
    for r in reads:
        for i in range(len(r) - k):
            x, y = r[i:i + k], r[i + 1:i + 1 + k]
            joined |= {(x, y), (rc(y), rc(x))}

    def succs(x):
        return [x[1:] + b for b in "ACGT" if (x, x[1:] + b) in joined]

    def preds(x):
        return [b + x[:-1] for b in "ACGT" if (b + x[:-1], x) in joined]

    def palindromic(x):
        return x == rc(x)

    # a cycle is cut at its k-mer of smallest order key (the id itself for k <= 31): starting from the
    # k-mers in that order, the first one of a cycle is where its unitig begins
    seen, out = set(), []
    for start in sorted(present, key=lambda s: int(order_keys(encoding.ids_array([encoding.encode(s)], k), k)[0])):
        if start in seen:
            continue
        seen.add(start)
        path = [start]
        for direction in (1, -1):
            x = start if direction == 1 else rc(start)
            while not palindromic(x):
                nxt = succs(x)
                if (len(nxt) != 1 or palindromic(nxt[0]) or len(preds(nxt[0])) != 1 or canon(nxt[0]) in seen):
                    break
                x = nxt[0]
                seen.add(canon(x))
                path.append(x) if direction == 1 else path.insert(0, rc(x))
        seq = path[0] + "".join(p[-1] for p in path[1:])
        out.append(canon(seq))
    return sorted(out)


def reads_of(genome, length, starts):
    return [genome[i:i + length] if n % 2 else rc(genome[i:i + length]) for n, i in enumerate(starts)]


def contigs(cluster):
    paths = cluster.run("count paths")[0].data["paths"]
    return sorted(canon(cluster.get(f"paths/contig-{i}").sequence) for i in range(1, paths + 1))


def transform(cluster, ranks, data, reads, k):
    """Put the store in a state the language can make without changing what it holds: k-mers copied
    or moved off their owners, a k-mer replicated, a prefix copied over; returns the statements."""
    done = []
    for _ in range(data.draw(st.integers(0, 2)) if ranks > 1 else 0):
        a, b = data.draw(st.permutations(range(ranks)))[:2]
        kind = data.draw(st.sampled_from(["copy", "move", "replicate", "prefix"]))
        if kind == "replicate":
            read = data.draw(st.sampled_from(reads))
            i = data.draw(st.integers(0, len(read) - k))
            text = f"replicate kmers/{canon(read[i:i + k])} to {data.draw(st.integers(2, ranks))} ranks"
        elif kind == "prefix":
            text = f"copy kmers/{data.draw(st.sampled_from(['A', 'C', 'AC', 'G']))}* from {a} to {b} replace"
        else:
            text = f"{kind} kmers/* from {a} to {b} replace"
        cluster.run(text)
        done.append(text)
    return done


def planted_genome(rng, k, length, palindromes):
    """A random genome with repeated blocks (branches) and, for even k, palindromes of 2k bases (each
    holds a palindromic k-mer at its middle)."""
    blocks = ["".join(rng.choice("ACGT") for _ in range(rng.randint(k, 2 * k))) for _ in range(2)]
    parts = []
    while sum(map(len, parts)) < length:
        roll = rng.random()
        if roll < 0.2:
            parts.append(rng.choice(blocks))
        elif roll < 0.2 + palindromes:
            half = "".join(rng.choice("ACGT") for _ in range(k))
            parts.append(half + rc(half))
        else:
            parts.append("".join(rng.choice("ACGT") for _ in range(rng.randint(5, 40))))
    return "".join(parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_unitigs_match_a_simple_builder_for_every_k_and_store_state(tmp_path_factory, data):
    """Odd and even k from 9 to 63 (palindromic k-mers, ids of two words), linear and circular
    genomes with repeats, on 1-4 ranks, after copies, moves and replicas: assemble's unitigs are
    exactly the builder's."""
    k = data.draw(st.sampled_from([9, 10, 11, 12, 15, 16, 21, 22, 30, 31, 32, 33, 34, 40, 47, 48, 62, 63]))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    genome = planted_genome(rng, k, data.draw(st.integers(k + 20, 400)), 0.15 if k % 2 == 0 else 0.0)
    circular = data.draw(st.booleans())
    length = data.draw(st.integers(k + 1, k + 30))
    text = genome + genome[:length - 1] if circular else genome
    assume(len(text) >= length)
    reads = reads_of(text, length, range(0, len(text) - length + 1, data.draw(st.integers(1, 3))))
    path = tmp_path_factory.mktemp("g") / "r.fq"
    write_fastq(path, reads)
    expected = unitigs(reads, k)
    ranks = data.draw(st.integers(1, 4))
    with Cluster.local(ranks) as c:
        c.run(f'load "{path}" into kmers k={k}')
        done = transform(c, ranks, data, reads, k)
        c.run("assemble kmers into paths/contig min_count=1 min_length=1 clean=false")
        assert contigs(c) == expected, done


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_raw_unitigs_of_repeats_and_circles_match_the_simple_builder(tmp_path_factory, data):
    """Genomes made of repeated blocks branch (and may be circular, so whole cycles without a branch
    occur): with clean=false, assemble's unitigs are exactly the builder's."""
    k = data.draw(st.sampled_from([5, 7, 11, 15, 33]))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    blocks = ["".join(rng.choice("ACGT") for _ in range(rng.randint(k, 2 * k))) for _ in range(3)]
    filler = ["".join(rng.choice("ACGT") for _ in range(rng.randint(1, 30))) for _ in range(12)]
    parts = [rng.choice(blocks) if rng.random() < 0.5 else filler[i] for i in range(data.draw(st.integers(1, 12)))]
    genome = "".join(parts)
    circular = data.draw(st.booleans())
    length = data.draw(st.integers(k + 1, max(40, k + 20)))
    text = genome + genome[:length - 1] if circular else genome
    assume(len(text) >= length)
    starts = range(0, len(text) - length + 1, data.draw(st.integers(1, 3)))
    reads = reads_of(text, length, starts)
    path = tmp_path_factory.mktemp("g") / "r.fq"
    write_fastq(path, reads)
    expected = unitigs(reads, k)
    with Cluster.local(data.draw(st.integers(1, 4))) as c:
        c.run(f'load "{path}" into kmers k={k}\n'
              'assemble kmers into paths/contig min_count=1 min_length=1 clean=false')
        assert contigs(c) == expected


@pytest.fixture(scope="module")
def genome_reads(tmp_path_factory):
    rng = random.Random(7)
    genome = "".join(rng.choice("ACGT") for _ in range(3000))
    reads = []
    for _ in range(900):
        i = rng.randrange(len(genome) - 100)
        r = list(genome[i:i + 100])
        for j in range(100):
            if rng.random() < 0.01:
                r[j] = rng.choice("ACGT".replace(r[j], ""))
        reads.append("".join(r) if rng.random() < 0.5 else rc("".join(r)))
    path = tmp_path_factory.mktemp("genome") / "reads.fq"
    write_fastq(path, reads)
    return genome, path


def test_the_same_contigs_on_one_to_six_ranks(genome_reads):
    genome, path = genome_reads
    found = []
    for ranks in range(1, 7):
        with Cluster.local(ranks) as c:
            c.run(f'load "{path}" into kmers k=31')
            (res,) = c.run("assemble kmers into paths/contig")
            found.append(contigs(c))
            assert res.data["contigs"] == len(found[-1])
    assert all(f == found[0] for f in found)
    assert len(found[0]) == 1 and (found[0][0] in genome or rc(found[0][0]) in genome)
    assert len(found[0][0]) > 0.98 * len(genome)


@pytest.mark.mpi
def test_the_same_contigs_under_mpiexec(genome_reads, tmp_path):
    _genome, path = genome_reads
    with Cluster.local(2) as c:
        c.run(f'load "{path}" into kmers k=31\nassemble kmers into paths/contig')
        local = contigs(c)
    script = tmp_path / "a.ray"
    script.write_text(f'load "{path}" into kmers k=31\nassemble kmers into paths/contig\n'
                      f'dump paths/* to "{tmp_path}/contigs.fa"\n')
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    fasta = (tmp_path / "contigs.fa").read_text().split(">")[1:]
    assert sorted(canon("".join(rec.splitlines()[1:])) for rec in fasta) == local


def test_count_and_dump_paths_as_fasta(genome_reads, tmp_path):
    _genome, path = genome_reads
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k=31\nassemble kmers into paths/contig min_count=1 min_length=31')
        (count,) = c.run("count paths")
        c.run(f'dump paths/contig* to "{tmp_path}/all.fa"\ndump paths/contig-1 to "{tmp_path}/one.fa"')
        first = c.get("paths/contig-1")
    records = (tmp_path / "all.fa").read_text().split(">")[1:]
    assert len(records) == count.data["paths"] > 1
    heads = [r.splitlines()[0] for r in records]
    assert heads[0].startswith(f"contig-1 length={len(first.sequence)} mean_count=")
    assert [h.split()[0] for h in heads] == [f"contig-{i}" for i in range(1, len(records) + 1)]
    lengths = [int(h.split()[1].split("=")[1]) for h in heads]
    assert lengths == sorted(lengths, reverse=True) and sum(lengths) == count.data["total"]
    assert all(len(line) <= 80 for r in records for line in r.splitlines()[1:])
    assert (tmp_path / "one.fa").read_text() == ">" + records[0]


@pytest.mark.external
def test_lambda_phage_in_one_contig():
    need(EXAMPLES.exists(), "the lambda phage reads", "bowtie2-examples")
    reads = [EXAMPLES / "reads" / "reads_1.fq.gz", EXAMPLES / "reads" / "reads_2.fq.gz"]
    with gzip.open(EXAMPLES / "reference" / "lambda_virus.fa.gz", "rt") as fh:
        ref = "".join(line.strip() for line in fh if not line.startswith(">"))
    with Cluster.local(2) as c:
        c.run(f'load "{reads[0]}", "{reads[1]}" into kmers k=31')
        (res,) = c.run("assemble kmers into paths/contig")
        seq = c.get("paths/contig-1").sequence
    assert res.data["longest"] == len(seq) >= 48_000
    ref_kmers = {canon(ref[i:i + 31]) for i in range(len(ref) - 30)}
    inside = sum(canon(seq[i:i + 31]) in ref_kmers for i in range(len(seq) - 30)) / (len(seq) - 30)
    assert inside >= 0.9


def test_bad_input_is_refused_and_changes_nothing(genome_reads, tmp_path):
    _genome, path = genome_reads
    with Cluster.local(2) as c:
        with pytest.raises(RayScriptError, match="holds no k-mers to assemble: load reads first"):
            c.run("assemble kmers into paths/contig")
        c.run(f'load "{path}" into kmers k=31')
        (res,) = c.run("assemble kmers into paths/contig min_count=100000")
        assert res.data["contigs"] == 0 and res.text.startswith("no contigs")
        c.run("assemble kmers into paths/contig")
        before = c.run("count paths")[0].data
        with pytest.raises(RayScriptError, match=r"paths/contig-\* exists? already .* add 'replace'"):
            c.run("assemble kmers into paths/contig min_count=2")
        assert c.run("count paths")[0].data == before
        c.run("assemble kmers into paths/contig min_count=2 replace")
        assert c.run("count kmers")[0].data["distinct"] > 0  # the k-mers are not changed
    with Cluster.local(2) as c:
        c.run(f'load "{path}" into kmers k=31 canonical=false')
        with pytest.raises(RayScriptError, match="needs canonical k-mers"):
            c.run("assemble kmers into paths/contig")
    from rayscript.errors import ScriptSyntaxError
    from rayscript.statements import parse

    for text, message in (("assemble paths into paths/x", "assembles a k-mer set"),
                          ("assemble kmers into results/x", "stores its result under paths/NAME"),
                          ("assemble kmers into paths/x merge", "takes 'replace', not 'merge'"),
                          ("assemble kmers into paths/x min_len=3", "has no option 'min_len='")):
        with pytest.raises(ScriptSyntaxError, match=message):
            parse(text)
    with Cluster.local(2) as c, pytest.raises(RayScriptError, match="cannot run inside 'parallel'"):
        c.run("parallel { assemble kmers into paths/x }")



def test_ctrl_c_during_assemble_is_abandoned_by_every_rank_and_changes_nothing(genome_reads, monkeypatch):
    import _thread
    import signal

    from rayscript.genomics import assembly

    _genome, path = genome_reads
    original = assembly.AssemblyService._links

    def links_then_ctrl_c(self, graph):
        if self.node.rank == 0:  # the user presses Ctrl-C while the ranks work (SIGINT to the main thread)
            _thread.interrupt_main(signal.SIGINT)
        return original(self, graph)

    monkeypatch.setattr(assembly.AssemblyService, "_links", links_then_ctrl_c)
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k=31')
        with pytest.raises(RayScriptError, match="assemble cancelled"):
            c.run("assemble kmers into paths/contig")
        assert c.run("count paths")[0].data["paths"] == 0
        monkeypatch.setattr(assembly.AssemblyService, "_links", original)
        assert c.run("assemble kmers into paths/contig")[0].data["contigs"] == 1  # and the ranks go on


def test_a_rank_failing_midway_is_a_located_error_and_no_path_is_written(genome_reads, monkeypatch):
    from rayscript.genomics import assembly

    _genome, path = genome_reads
    original = assembly.AssemblyService._spell

    def spell_fails_on_rank_1(self, *args):
        if self.node.rank == 1:
            raise MemoryError("no memory left")
        return original(self, *args)

    monkeypatch.setattr(assembly.AssemblyService, "_spell", spell_fails_on_rank_1)
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k=31')
        with pytest.raises(RayScriptError, match=r"x\.ray:2:1: rank 1: .*MemoryError: no memory left"):
            c.run("count kmers\nassemble kmers into paths/contig", "x.ray")
        assert c.run("count paths")[0].data["paths"] == 0


FAIL_MIDWAY = """
import sys
from mpi4py import MPI
from rayscript import Cluster
from rayscript.genomics import assembly

original = assembly.AssemblyService._spell
def fails(self, *args):
    if self.node.rank == 1 and not failed:
        failed.append(1)
        raise MemoryError("no memory left")
    return original(self, *args)
failed = []
assembly.AssemblyService._spell = fails
with Cluster(comm=MPI.COMM_WORLD) as c:
    if c is not None:
        c.run('load "%s" into kmers k=31')
        try:
            c.run("assemble kmers into paths/contig")
        except Exception as exc:
            print("FAILED:", exc, flush=True)
        print("PATHS", c.run("count paths")[0].data["paths"], flush=True)
        print("AGAIN", c.run("assemble kmers into paths/contig")[0].data["contigs"], flush=True)
"""


@pytest.mark.mpi
def test_a_rank_failing_midway_under_mpiexec_ends_the_statement_on_every_rank(genome_reads, tmp_path):
    from conftest import BIN

    _genome, path = genome_reads
    prog = tmp_path / "fail.py"
    prog.write_text(FAIL_MIDWAY % path)
    proc = run_mpi(3, str(BIN / "python"), str(prog), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "<string>:1:1: rank 1: assemble stopped: MemoryError: no memory left" in proc.stdout, proc.stdout
    assert "PATHS 0" in proc.stdout and "AGAIN 1" in proc.stdout  # nothing written; the ranks go on


def test_cleaning_gives_the_same_contigs_on_any_rank_count(genome_reads):
    """With min_count=1 every error k-mer is in the graph: many tips and bubbles, whose arms may
    belong to unitigs owned by different ranks."""
    _genome, path = genome_reads
    found = []
    for ranks in (1, 2, 3, 5):
        with Cluster.local(ranks) as c:
            c.run(f'load "{path}" into kmers k=31')
            (res,) = c.run("assemble kmers into paths/contig min_count=1 min_length=31")
            found.append((res.data["tips"], res.data["bubbles"], contigs(c)))
    assert found[0][0] > 0 and found[0][1] > 0
    assert all(f == found[0] for f in found)


def error_reads(rng, text, n, length, error=0.01):
    reads = []
    for _ in range(n):
        i = rng.randrange(len(text) - length + 1)
        r = [b if rng.random() >= error else rng.choice("ACGT".replace(b, "")) for b in text[i:i + length]]
        reads.append("".join(r) if rng.random() < 0.5 else rc("".join(r)))
    return reads


def named_contigs(cluster):
    """Every contig by its name, as stored (orientation included)."""
    paths = cluster.run("count paths")[0].data["paths"]
    return [cluster.get(f"paths/contig-{i}").sequence for i in range(1, paths + 1)]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cleaned_contigs_are_the_same_on_any_rank_count_and_after_copies_moves_and_replicas(tmp_path_factory, data):
    """With reads carrying errors (tips, bubbles) of a linear or circular genome, the named contigs,
    orientation included, and the chosen min_count are those of the untouched store on one rank,
    whatever the rank count and whichever copies, moves and replicas the store went through."""
    k = data.draw(st.sampled_from([15, 20, 21, 31, 32, 45, 63]))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    genome = "".join(rng.choice("ACGT") for _ in range(data.draw(st.integers(600, 1500))))
    circular = data.draw(st.booleans())
    text = genome + genome[:99] if circular else genome
    path = tmp_path_factory.mktemp("g") / "r.fq"
    reads = error_reads(rng, text, len(genome) // 4, 100)
    write_fastq(path, reads)
    script = f'load "{path}" into kmers k={k}'
    with Cluster.local(1) as c:
        c.run(script)
        (want,) = c.run("assemble kmers into paths/contig")
        expected = named_contigs(c)
    ranks = data.draw(st.integers(2, 4))
    with Cluster.local(ranks) as c:
        c.run(script)
        done = transform(c, ranks, data, reads, k)
        (got,) = c.run("assemble kmers into paths/contig")
        assert named_contigs(c) == expected, done
        assert got.data["min_count"] == want.data["min_count"], done


@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("clean", ["true", "false"])
def test_a_circular_genome_is_one_contig_with_or_without_cleaning(tmp_path, ranks, clean):
    rng = random.Random(11)
    genome = "".join(rng.choice("ACGT") for _ in range(5000))
    text = genome + genome[:99]
    path = tmp_path / "r.fq"
    write_fastq(path, reads_of(text, 100, range(0, len(text) - 99, 7)))
    with Cluster.local(ranks) as c:
        c.run(f'load "{path}" into kmers k=31')
        (res,) = c.run(f"assemble kmers into paths/contig clean={clean}")
        (seq,) = named_contigs(c)
    assert res.data["contigs"] == 1 and len(seq) == len(genome) + 30  # the cycle, cut once: k - 1 bases twice
    assert seq[:len(genome)] in genome + genome or rc(seq[:len(genome)]) in genome + genome


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_tandem_repeat_alone_is_a_cycle_of_its_own(tmp_path, ranks):
    path = tmp_path / "acg.fq"
    write_fastq(path, ["ACG" * 40])
    with Cluster.local(ranks) as c:
        c.run(f'load "{path}" into kmers k=31')
        (res,) = c.run("assemble kmers into paths/contig min_count=1 min_length=1")
        assert res.data["contigs"] == 1 and res.data["graph_kmers"] == 3
        (seq,) = named_contigs(c)
    assert len(seq) == 33 and (seq in "ACG" * 40 or rc(seq) in "ACG" * 40)


def test_min_count_auto_is_1_without_an_error_peak_and_a_threshold_that_drops_nearly_everything_says_so(tmp_path):
    rng = random.Random(3)
    genome = "".join(rng.choice("ACGT") for _ in range(3000))
    # a genome given once as one record, with a short repeat a few times over (counts 1, and a few 4s)
    repeat = genome[100:160]
    fasta = tmp_path / "g.fa"
    fasta.write_text(f">g\n{genome}\n>r1\n{repeat}\n>r2\n{repeat}\n>r3\n{repeat}\n")
    with Cluster.local(2) as c:
        c.run(f'load "{fasta}" into kmers k=31')
        (res,) = c.run("assemble kmers into paths/contig")
        assert res.data["min_count"] == 1 and "auto: the counts have no error peak" in res.text
        assert res.data["total"] >= len(genome) - 200 and not res.data["warning"]
        (res,) = c.run("assemble kmers into paths/high min_count=3")
        assert res.data["graph_kmers"] == 30 and "leaves out 96.1% of the k-mers' occurrences" in res.data["warning"]
        assert "warning: min_count=3 leaves out" in res.text


def test_contigs_do_not_depend_on_order_keys_being_distinct(genome_reads, monkeypatch):
    """Nodes are known by exact handles: even if every order key collided (wide ids whose mixes
    meet), the unitigs are the same; order keys only break ties."""
    from rayscript.genomics import assembly

    _genome, path = genome_reads
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k=45')
        c.run("assemble kmers into paths/contig min_count=1 min_length=1 clean=false")
        expected = contigs(c)
    real = assembly.order_keys
    monkeypatch.setattr(assembly, "order_keys", lambda ids, k: real(ids, k) & np.uint64(0xFF00000000000000))
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k=45')
        c.run("assemble kmers into paths/contig min_count=1 min_length=1 clean=false")
        assert contigs(c) == expected
