"""The k-mer store: counts against a plain-Python reference and against Jellyfish."""

import gzip
import io
import os
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import need, need_tool, rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.progress import Progress
from rayscript.store import encoding
from rayscript.store.kmertable import COUNT_MAX, NBUCKETS, KmerTable, OccurrenceBuffer, pack_occurrences

LAMBDA = Path("/usr/share/doc/bowtie2/examples")
COMP = str.maketrans("ACGT", "TGCA")


def reference(seqs, k, canonical=True):
    """Plain-Python counter: {bases: (count, edges)} in the orientation the store uses."""
    counts, edges = Counter(), {}
    for s in seqs:
        s = s.upper()
        for i in range(len(s) - k + 1):
            w = s[i:i + k]
            if set(w) <= set("ACGT"):
                before = s[i - 1] if i > 0 and s[i - 1] in "ACGT" else None
                after = s[i + k] if i + k < len(s) and s[i + k] in "ACGT" else None
                rc = w[::-1].translate(COMP)
                if canonical and rc < w:
                    w, before, after = rc, (after.translate(COMP) if after else None), \
                        (before.translate(COMP) if before else None)
                counts[w] += 1
                e = (1 << "ACGT".index(after) if after else 0) | ((1 << "ACGT".index(before)) << 4 if before else 0)
                edges[w] = edges.get(w, 0) | e
    return counts, edges



def read_dump(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        seq, count = line.split("\t")
        assert seq not in out
        out[seq] = int(count)
    return out


reads = st.lists(st.text(alphabet="ACGTNacgtN", min_size=0, max_size=90), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seqs=reads, k=st.integers(1, 63), ranks=st.integers(1, 4), canonical=st.booleans())
def test_counts_and_edges_match_a_reference_counter(tmp_path_factory, seqs, k, ranks, canonical):
    d = tmp_path_factory.mktemp("kc")
    write_fastq(d / "r.fq", seqs)
    ref, ref_edges = reference(seqs, k, canonical)
    with Cluster.local(ranks) as c:
        c.run(f'load "{d / "r.fq"}" into kmers k={k} canonical={"true" if canonical else "false"}\n'
              f'dump kmers to "{d / "out.tsv"}"')
        assert read_dump(d / "out.tsv") == dict(ref)
        (res,) = c.run("count kmers")
        assert (res.data["distinct"], res.data["total"]) == (len(ref), sum(ref.values()))
        for seq in list(ref)[:5]:  # by number, and by bases
            for key in (f"kmers/{encoding.encode(seq)}", f"kmers/{seq}"):
                item = c.get(key)
                assert (item.count, item.edges, item.k or k) == (ref[seq], ref_edges[seq], k)


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_fasta_multiline_and_gzip_and_several_files(tmp_path, ranks):
    rng = np.random.default_rng(ranks)
    seqs = ["".join(rng.choice(list("ACGTN"), size=rng.integers(20, 300))) for _ in range(60)]
    with open(tmp_path / "a.fa", "w") as fh:
        for i, s in enumerate(seqs[:30]):
            fh.write(f">s{i}\n" + "\n".join(s[j:j + 25] for j in range(0, len(s), 25)) + "\n")
    with gzip.open(tmp_path / "b.fq.gz", "wt") as fh:
        for i, s in enumerate(seqs[30:]):
            fh.write(f"@q{i}\n{s}\n+\n{'#' * len(s)}\n")
    ref, _ = reference(seqs, 15)
    with Cluster.local(ranks) as c:
        (res,) = c.run(f'load "{tmp_path / "a.fa"}", "{tmp_path / "b.fq.gz"}" into kmers k=15')
        assert res.data["reads"] == 60
        c.run(f'dump kmers to "{tmp_path / "o.tsv"}"')
    assert read_dump(tmp_path / "o.tsv") == dict(ref)


@pytest.fixture(scope="module")
def reads_and_counts(tmp_path_factory):
    """3,000 random reads (with Ns) and their 25-mers' counts (the reference, computed once)."""
    rng = np.random.default_rng(11)
    seqs = ["".join(rng.choice(list("ACGTACGTN"), size=100)) for _ in range(3000)]
    path = tmp_path_factory.mktemp("reads") / "r.fq"
    write_fastq(path, seqs)
    return path, reference(seqs, 25)[0]


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_counts_under_mpiexec_match_the_reference(tmp_path, reads_and_counts, ranks):
    path, ref = reads_and_counts
    proc = run_mpi(ranks, *rayscript_cmd(), "run", "-e",
                   f'load "{path}" into kmers k=25\ndump kmers to "{tmp_path}/o.tsv" min=2')
    assert proc.returncode == 0, proc.stderr
    assert read_dump(tmp_path / "o.tsv") == {s: c for s, c in ref.items() if c >= 2}


def test_a_copy_of_a_two_word_id_that_reads_as_nan_is_dumped_once(tmp_path):
    # k=63 forward strands: a k-mer starting CTTTTTTT has a high word whose bits read as a NaN
    # when two words are viewed as a complex number (as wide ids are); NaN != NaN
    rng = np.random.default_rng(3)
    seq = "CTTTTTTT" + "".join(rng.choice(list("ACGT"), size=70))
    write_fastq(tmp_path / "w.fq", [seq])
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/w.fq" into kmers k=63 canonical=false')
        c.run(f"replicate kmers/{seq[:63]} to 3 ranks")
        (dump,) = c.run(f'dump kmers to "{tmp_path}/w.tsv"')
        assert dump.data["copies"] == 2
        assert read_dump(tmp_path / "w.tsv") == reference([seq], 63, canonical=False)[0]


@pytest.mark.mpi
def test_copies_on_other_ranks_are_counted_and_dumped_once_under_mpiexec(tmp_path):
    rng = np.random.default_rng(12)
    seqs = ["".join(rng.choice(list("ACGT"), size=80)) for _ in range(500)]
    write_fastq(tmp_path / "r.fq", seqs)
    proc = run_mpi(4, *rayscript_cmd(), "run", "-e", "\n".join([
        f'load "{tmp_path}/r.fq" into kmers k=25',
        "copy kmers/* from 1 to 2",  # every k-mer of rank 1 also on rank 2
        "move kmers/ACG* from 3 to 0",  # held once, off its owner: counted on rank 0
        "copy kmers/AC* from 0 to 1",  # and some of those twice off their owner
        "count kmers",
        f'dump kmers to "{tmp_path}/o.tsv"']))
    assert proc.returncode == 0, proc.stderr
    ref, _ = reference(seqs, 25)
    assert read_dump(tmp_path / "o.tsv") == ref
    distinct, total = len(ref), sum(ref.values())
    assert f"{distinct:,} distinct k-mers, {total:,} in total (" in proc.stdout
    assert "extra copies of k-mers held on several ranks left out)" in proc.stdout


def _jellyfish():
    need(LAMBDA.exists(), "the lambda phage reads", "bowtie2-examples")
    return need_tool("jellyfish")


@pytest.mark.mpi
@pytest.mark.external
# one word's ends (21, 31), two words' (33 its first, 63 its last) and between (47); 1 to 4 ranks
@pytest.mark.parametrize("k, ranks", [(21, 3), (31, 2), (33, 1), (47, 3), (63, 4)])
def test_dump_is_identical_to_jellyfish_on_lambda_phage_reads(tmp_path, k, ranks):
    jf = _jellyfish()
    files = [LAMBDA / "reads/reads_1.fq.gz", LAMBDA / "reads/longreads.fq.gz"]
    plain = []
    for f in files:
        out = tmp_path / f.name[:-3]
        out.write_bytes(gzip.decompress(f.read_bytes()))
        plain.append(str(out))
    subprocess.run([jf, "count", "-m", str(k), "-C", "-s", "10M", "-t", "2", "-o", str(tmp_path / "jf.jf"), *plain],
                   check=True)
    jdump = subprocess.run([jf, "dump", "-c", "-t", str(tmp_path / "jf.jf")], check=True, capture_output=True,
                           text=True).stdout
    jhisto = subprocess.run([jf, "histo", str(tmp_path / "jf.jf")], check=True, capture_output=True,
                            text=True).stdout
    names = ", ".join(f'"{f}"' for f in files)  # our side reads the gzip files directly
    proc = run_mpi(ranks, *rayscript_cmd(), "run", "-e",
                   f'load {names} into kmers k={k}\ndump kmers to "{tmp_path}/rs.tsv"\n'
                   f'histogram kmers to "{tmp_path}/histo.txt"', timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours = (tmp_path / "rs.tsv").read_text()
    assert sorted(ours.splitlines()) == sorted(jdump.splitlines())
    assert len(ours.splitlines()) > 100_000
    assert (tmp_path / "histo.txt").read_text() == jhisto


def test_query_reports_every_kmer_of_the_sequences(tmp_path):
    write_fastq(tmp_path / "r.fq", ["ACGTACGTTT", "GGGACGTAC"])
    (tmp_path / "q.fa").write_text(">q\nACGTAN\nCC\n")
    with Cluster.local(2) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=4')
        (res,) = c.run(f'query "{tmp_path}/q.fa" in kmers')
    ref, _ = reference(["ACGTACGTTT", "GGGACGTAC"], 4)
    canon = {w: min(w, w[::-1].translate(COMP)) for w in ["ACGT", "CGTA", "AACC"]}
    # ACGTA then (N) then CC -> k-mers ACGT, CGTA; the line break joins "ACGTAN" and "CC" (N breaks)
    assert res.text.splitlines()[:2] == [f"ACGT\t{ref[canon['ACGT']]}", f"CGTA\t{ref[canon['CGTA']]}"]
    assert res.text.splitlines()[2].split() == ["sequence", "set", "k-mers", "found", "median", "count"]


def test_query_finds_k_mers_held_off_their_owner(tmp_path):
    seq = "ACGTACGTTGCAAGGCTTAACCGGTTACGATCGGATCCATTGACCA"
    write_fastq(tmp_path / "r.fq", [seq, seq])
    (tmp_path / "q.fa").write_text(f">q\n{seq}\n")
    with Cluster.local(4) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=11')
        (before,) = c.run(f'query "{tmp_path}/q.fa" in kmers')
        assert before.data["found"] == before.data["kmers"] == len(seq) - 10
        # the k-mers of ranks 0, 2 and 3 away from their owners (rank 3's on 1, 2's on 3, 0's on 1)
        c.run("copy kmers/* from 1 to 0\n" + "\n".join(f"move kmers/* from {r} to {(r + 1) % 4}" for r in (3, 2, 1)))
        c.run("move kmers where count >= 1 from 0 to 1")
        assert [rank["kmers"] > 0 for rank in c.run("ranks")[0].data] == [False, True, True, True]
        (after,) = c.run(f'query "{tmp_path}/q.fa" in kmers')
        assert after.text == before.text and after.data == before.data


def _fails(c, text, *fragments):
    with pytest.raises(RayScriptError) as info:
        c.run(text)
    for f in fragments:
        assert f in str(info.value), str(info.value)


def test_bad_inputs_name_the_file_and_line_and_change_nothing(tmp_path):
    good = tmp_path / "good.fq"
    write_fastq(good, ["ACGTACGTACGT"] * 3)
    (tmp_path / "trunc.fq").write_text("@a\nACGT\n+\nIIII\n@b\nACGT\n")
    (tmp_path / "qual.fq").write_text("@a\nACGT\n+\nIIII\n@b\nACGTA\n+\nIII\n")
    (tmp_path / "plus.fq").write_text("@a\nACGT\n-\nIIII\n")
    (tmp_path / "weird.txt").write_text("hello world\n")
    (tmp_path / "empty.fq").write_text("")
    with Cluster.local(3) as c:
        c.run(f'load "{good}" into kmers k=5')
        before = c.run("count kmers")[0].data
        _fails(c, f'load "{tmp_path}/nope.fq" into kmers', "nope.fq: no such file")
        _fails(c, f'load "{good}", "{tmp_path}/trunc.fq" into kmers k=5', "trunc.fq:5: truncated FASTQ record '@b'")
        _fails(c, f'load "{tmp_path}/qual.fq" into kmers k=5',
               "qual.fq:8: record '@b': quality length 3 differs from sequence length 5")
        _fails(c, f'load "{tmp_path}/plus.fq" into kmers k=5', "plus.fq:3: record '@a': expected the '+' line")
        _fails(c, f'load "{tmp_path}/weird.txt" into kmers', "weird.txt: neither FASTQ", "'hello world'")
        _fails(c, f'load "{tmp_path}/empty.fq" into kmers', "empty.fq: the file is empty")
        _fails(c, f'load "{good}" into kmers k=128', "k= takes a whole number from 1 to 127 (at most four 64-bit "
                                                     "words per k-mer), not 128")
        _fails(c, f'load "{good}" into kmers k=0', "k= takes a whole number from 1 to 127", "not 0")
        _fails(c, f'load "{good}" into kmers k=7', "the store holds k=5 k-mers; cannot add k=7")
        _fails(c, f'dump kmers to "{tmp_path}/no/such/dir/out.tsv"', "cannot write", "no such directory")
        _fails(c, f'histogram kmers to "{tmp_path}"', "it is a directory")
        assert c.run("count kmers")[0].data == before  # every failed load left the store as it was


def test_load_inside_parallel_is_refused_before_anything_runs(tmp_path):
    with Cluster.local(2) as c:
        _fails(c, f'parallel {{ on 1: load "{tmp_path}/x.fq" into kmers }}', "cannot run inside 'parallel'")


def test_counts_saturate_and_warn_instead_of_wrapping(tmp_path):
    t = KmerTable()
    t.add_counted(np.array([5], np.uint64), np.array([COUNT_MAX - 1], np.uint64), np.array([1], np.uint8))
    t.add_counted(np.array([5], np.uint64), np.array([7], np.uint64), np.array([2], np.uint8))
    assert t.get(5) == (COUNT_MAX, 3) and t.saturated == 1
    write_fastq(tmp_path / "r.fq", ["AAAAC"])
    with Cluster.local(2) as c:
        c.run(f"put kmers/AAAAC count={COUNT_MAX} on 0\nput kmers/AAAAC count={COUNT_MAX} on 1")
        (res,) = c.run(f'load "{tmp_path}/r.fq" into kmers k=5')
        assert "warning: 1 counts reached the counter's maximum" in res.text
        assert c.get("kmers/AAAAC").count == COUNT_MAX


@pytest.mark.mpi
def test_load_shows_progress_and_a_summary_line(tmp_path):
    rng = np.random.default_rng(5)
    seqs = ["".join(rng.choice(list("ACGT"), size=150)) for _ in range(16000)]
    write_fastq(tmp_path / "big.fq", seqs)
    assert os.path.getsize(tmp_path / "big.fq") > 4 << 20
    proc = run_mpi(2, *rayscript_cmd(), "run", "--progress", "-e", f'load "{tmp_path}/big.fq" into kmers k=31')
    assert proc.returncode == 0, proc.stderr
    assert "reading: 100%" in proc.stderr and "MiB/s" in proc.stderr
    quiet = run_mpi(2, *rayscript_cmd(), "run", "-e", f'load "{tmp_path}/big.fq" into kmers k=31')
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr  # not a terminal: no progress
    assert proc.stdout.startswith("loaded 1 file: 16,000 reads, 1,920,000 k-mers (k=31),")
    assert "M k-mers/s" in proc.stdout


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 31), seed=st.integers(0, 2**32 - 1), page=st.sampled_from([1, 3, 16]))
def test_the_occurrence_pool_counts_like_one_batch_when_it_fills_many_times(k, seed, page):
    """Load files occurrences into a pool of pages by bucket and flushes the fullest bucket when
    the pool is full: with tiny pages the pool fills and flushes over and over."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, 4, 3000, dtype=np.uint8)
    seq[rng.integers(0, 3000, 20)] = encoding.INVALID
    ids, edges = encoding.kmers_from_codes(seq, k)
    expect = KmerTable(k)
    expect.add_occurrences(ids, edges)
    table = KmerTable(k)
    pool = OccurrenceBuffer(table, pool_words=0, page=page)  # 2 pages per bucket
    for part in np.array_split(np.arange(len(ids)), 7):  # rounds, each grouped by bucket as load sends them
        buckets, packed = pack_occurrences(ids[part], edges[part], k)
        order = np.argsort(buckets, kind="stable")
        pool.add(packed[order], np.bincount(buckets.astype(np.int64), minlength=NBUCKETS))
    pool.finish()
    for got, want in zip(table.extract(("all",)), expect.extract(("all",))):
        assert got.tolist() == want.tolist()


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_count_past_16_bits_while_loading_is_exact(tmp_path, ranks):
    """A load counts into 16-bit counts where they fit; a k-mer seen more than 65,535 times turns its
    bucket to 32 bits, in the same batch or across batches."""
    seqs = ["A" * 70_000 + "C" + "A" * 20, "CCGT" * 10]
    (tmp_path / "r.fa").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    ref, _ = reference(seqs, 21)
    with Cluster.local(ranks) as c:
        c.run(f'load "{tmp_path}/r.fa" into kmers k=21\nload "{tmp_path}/r.fa" into kmers k=21')
        c.run(f'dump kmers to "{tmp_path}/o.tsv"')
    assert read_dump(tmp_path / "o.tsv") == {s: 2 * n for s, n in ref.items()}
    assert ref["A" * 21] > 65_535


def test_a_staging_table_turns_a_bucket_to_32_bit_counts_when_a_sum_passes_16_bits():
    table = KmerTable(21)
    table.small_counts = True
    ids = np.array([5, 9, 1 << 40], np.uint64)
    for counts in ([40_000, 1, 2], [40_000, 65_535, 3], [1, 1, 1]):
        table.add_counted(ids, np.array(counts, np.uint64), np.zeros(3, np.uint8))
    table.add_counted(np.array([6, 7], np.uint64), np.array([3, 70_000], np.uint64), np.zeros(2, np.uint8))
    store = KmerTable()
    store.absorb(table)
    got, counts, _ = store.extract(("all",))
    assert got.tolist() == [5, 6, 7, 9, 1 << 40] and counts.tolist() == [80_001, 3, 70_000, 65_537, 6]
    assert {c.dtype for c in store.counts} == {np.dtype(np.uint32)}  # 32 bits at rest



@pytest.mark.parametrize("k", [21, 31, 47, 63])
@pytest.mark.parametrize("held", [0, 1, 5, 64, 65, 300])
def test_a_bucket_received_with_room_takes_the_few_held_k_mers_in_place(k, held):
    """add_bucket (a bulk copy's parts) gives what add_counted gives, and a bucket that holds at
    most FEW k-mers merges them into the received arrays' own room instead of new arrays."""
    from rayscript.protocol.bulk import BulkChunk
    from rayscript.store.kmertable import FEW, NBUCKETS

    rng = np.random.default_rng(k * 1000 + held)
    source = KmerTable(k)
    source.add_occurrences(*encoding.kmers_from_codes(rng.integers(0, 4, 3_000 * NBUCKETS, dtype=np.uint8), k))
    b, ids, counts, edges = max(source.selection(("all",)), key=lambda part: len(part[1]))
    # the copy: the bucket's k-mers but a few; held here: some of those few, and some of the copy
    out = np.zeros(len(ids), bool)
    out[rng.choice(len(ids), held - held // 3, replace=False)] = True
    also = rng.choice(np.flatnonzero(~out), held // 3, replace=False)
    mine = np.sort(np.concatenate((np.flatnonzero(out), also)))
    held_counts = rng.integers(1, 9, len(mine)).astype(np.uint64)
    held_edges = rng.integers(0, 256, len(mine)).astype(np.uint8)
    copy = (ids[~out], counts[~out], edges[~out])
    target, reference = KmerTable(k), KmerTable(k)
    for table in (target, reference):
        table.add_counted(ids[mine], held_counts, held_edges)
    reference.add_counted(copy[0], copy[1].astype(np.uint64), copy[2])

    got = BulkChunk().received_buffers(list(copy))  # as a bulk copy's part arrives
    assert all(np.array_equal(g, c) for g, c in zip(got, copy))
    target.add_bucket(b, *got, room=BulkChunk.buffer_room)
    for mine_, theirs in zip(target.extract(("all",)), reference.extract(("all",))):
        assert np.array_equal(mine_, theirs)
    assert len(target) == len(ids)
    in_place = held <= FEW
    assert all(np.shares_memory(target_array, g) == in_place
               for target_array, g in zip((target.ids[b], target.counts[b], target.edges[b]), got))
    with pytest.raises(ValueError, match="k-mers of bucket"):
        target.add_bucket((b + 1) % NBUCKETS, *(a[:5].copy() for a in copy))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_gives_way_to_an_error_as_to_a_result(tmp_path):
    rng = np.random.default_rng(6)
    write_fastq(tmp_path / "big.fq", ["".join(rng.choice(list("ACGT"), size=150)) for _ in range(16000)])
    screen = _Terminal()
    with Cluster.local(2, progress=Progress(screen)) as c:
        c.run("put kmers/ACGT on 1")  # a store of k=4: a load of k=31 is refused part-way
        with pytest.raises(RayScriptError, match="the store holds k=4 k-mers; cannot add k=31"):
            c.run(f'load "{tmp_path}/big.fq" into kmers k=31')
        assert "reading [" in screen.getvalue()  # the bar was drawn...
        assert screen.getvalue().endswith("\r\x1b[K")  # ...and wiped before the error is shown
        screen.truncate(0)
        screen.seek(0)
        c.run("delete kmers/ACGT from 1")
        c.run(f'load "{tmp_path}/big.fq" into kmers k=31')
        assert "reading [" in screen.getvalue() and screen.getvalue().endswith("\r\x1b[K")


def test_a_load_without_k_takes_the_store_s_k(tmp_path):
    write_fastq(tmp_path / "r.fq", ["ACGTACGTTGCAAGGCTTAACCGGTTACG"])
    with Cluster.local(3) as c:
        (first,) = c.run(f'load "{tmp_path}/r.fq" into kmers')  # an empty store: 31
        assert first.data["k"] == 31 and first.data["distinct"] == 0  # a read of 29 bases has no 31-mer
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=21')
        (second,) = c.run(f'load "{tmp_path}/r.fq" into kmers')  # adds to the first, at k=21
        assert second.data["k"] == 21
        counts = c.run("count kmers")[0].data
        assert counts["distinct"] == 9 and counts["total"] == 18
        with pytest.raises(RayScriptError, match="the store holds k=21 k-mers; cannot add k=25"):
            c.run(f'load "{tmp_path}/r.fq" into kmers k=25')  # a k given is kept to


def _copied_around(c, tmp_path, name):
    """Copies of k-mers on other ranks than their owner: one replicated on every rank, one copied
    between two ranks neither of which owns it (after its owner let go of it), one put on a rank
    that does not own it."""
    c.run(f'dump kmers to "{tmp_path}/{name}.tsv"')
    first, second, *_ = sorted(line.split("\t")[0] for line in (tmp_path / f"{name}.tsv").read_text().splitlines())
    c.run(f"replicate kmers/{first} to 3 ranks")
    owner = c.run(f"locate kmers/{second}")[0].data["owner"]
    a, b = [r for r in range(3) if r != owner]
    c.run(f"move kmers/{second} from {owner} to {b}")
    c.run(f"copy kmers/{second} from {b} to {a}")
    return first, second


@pytest.mark.parametrize("k", [21, 41])
def test_count_histogram_and_dump_take_each_k_mer_once_however_many_ranks_hold_it(tmp_path, k):
    seq = "ACGTACGTTGCAAGGCTTAACCGGTTACGATCGGATCCATTGACCA"
    write_fastq(tmp_path / "r.fq", [seq, seq[5:]])
    with Cluster.local(1) as one:
        one.run(f'load "{tmp_path}/r.fq" into kmers k={k}')
        want = one.run("count kmers")[0].data
        want_histogram = one.run("histogram kmers")[0].data
        one.run(f'dump kmers to "{tmp_path}/one.tsv"')
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k={k}')
        first, second = _copied_around(c, tmp_path, "before")
        held = sum(rank["kmers"] for rank in c.run("ranks")[0].data)
        assert held == want["distinct"] + 3  # two more of the first, one more of the second
        (count,) = c.run("count kmers")
        assert (count.data["distinct"], count.data["total"], count.data["copies"]) == \
            (want["distinct"], want["total"], 3)
        assert "(3 extra copies of k-mers held on several ranks left out)" in count.text
        assert c.run("histogram kmers")[0].data == want_histogram
        (dump,) = c.run(f'dump kmers to "{tmp_path}/three.tsv"')
        assert dump.data["copies"] == 3
        assert sorted((tmp_path / "three.tsv").read_text().splitlines()) == \
            sorted((tmp_path / "one.tsv").read_text().splitlines())
        # a selection leaves out only its own copies
        prefix = first[:5]
        (some,) = c.run(f'dump kmers/{prefix}* to "{tmp_path}/some.tsv"')
        assert sorted((tmp_path / "some.tsv").read_text().splitlines()) == \
            sorted(line for line in (tmp_path / "one.tsv").read_text().splitlines() if line.startswith(prefix))
        assert some.data["copies"] == 2 + second.startswith(prefix)
        # with nothing held twice, nothing is left out
        c.run("rebalance kmers")
        (count,) = c.run("count kmers")
        assert count.data["distinct"] == want["distinct"] and count.data["copies"] == 0
        assert "left out" not in count.text
