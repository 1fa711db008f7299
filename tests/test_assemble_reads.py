"""assemble "READS" ... into paths/P: the one-statement form (a temporary set, removed after), its rounds
of several k (each round's contigs input to the next, as `load paths/P-*` makes them), and its bad
input, refused before anything is loaded."""

import gzip
import random
import re
from pathlib import Path

import pytest

from conftest import rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from test_assembly import canon, rc, unitigs


def genome_of(rng, n):
    return "".join(rng.choice("ACGT") for _ in range(n))


def tiles(genome, length, step):
    """Error-free reads of ``length`` every ``step`` bases, every other one reverse-complemented."""
    return [genome[i:i + length] if (i // step) % 2 else rc(genome[i:i + length])
            for i in range(0, len(genome) - length + 1, step)]


def all_contigs(c, prefix):
    n = c.run("count paths")[0].data["paths"]
    names = [f"{prefix}-{i}" for i in range(1, n + 1)]
    return [c.get(f"paths/{name}").sequence for name in names if c.run(f"locate paths/{name}")[0].data["ranks"]]


def store_state(c):
    sets = c.run("sets")[0].data
    return sets, c.run("count paths")[0].data


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """Pairs from a 4 kb genome with a 50-base repeat planted twice: ends of 100 bases, inserts of 300."""
    rng = random.Random(21)
    rep = genome_of(rng, 50)
    genome = genome_of(rng, 1500) + rep + genome_of(rng, 1200) + rep + genome_of(rng, 1200)
    one, two = [], []
    for i in range(0, len(genome) - 300, 4):
        frag = genome[i:i + 300]
        one.append(frag[:100])
        two.append(rc(frag[-100:]))
    d = tmp_path_factory.mktemp("pairs")
    write_fastq(d / "r1.fq", one)
    with gzip.open(d / "r2.fq.gz", "wt") as fh:
        fh.writelines(f"@p{i}\n{s}\n+\n{'I' * len(s)}\n" for i, s in enumerate(two))
    return genome, d / "r1.fq", d / "r2.fq.gz", one + two


def test_one_k_gives_the_contigs_of_load_and_assemble_and_leaves_the_store_as_it_was(pair_files, tmp_path):
    _genome, r1, r2, reads = pair_files
    with Cluster.local(2) as c:
        c.run(f'load "{r1}", "{r2}" into kmers k=31\n'
              "assemble kmers into paths/ref min_count=1 min_length=1 clean=false")
        ref = sorted(canon(s) for s in all_contigs(c, "ref"))
    with Cluster.local(3) as c:
        c.run(f'load "{r1}" into kmers.mine k=25\nassemble kmers.mine into paths/other min_count=1')
        before = store_state(c)
        (res,) = c.run(f'assemble "{r1}", "{r2}" into paths/asm k=31 min_count=1 min_length=1 clean=false '
                       "pairs=false")
        got = all_contigs(c, "asm")
        after_sets, after_paths = store_state(c)
    assert sorted(canon(s) for s in got) == ref == unitigs(reads, 31)
    assert [len(s) for s in got] == sorted((len(s) for s in got), reverse=True)  # asm-1 the longest
    assert res.data["ks"] == [31] and res.data["pairs"] is False and res.data["contigs"] == len(got)
    assert after_sets == before[0]  # no temporary set left, the others untouched
    assert after_paths["paths"] == before[1]["paths"] + len(got)  # no round's paths left


def test_several_k_resolve_a_repeat_longer_than_the_small_k(pair_files):
    genome, r1, r2, reads = pair_files
    with Cluster.local(2) as c:
        (small,) = c.run(f'assemble "{r1}", "{r2}" into paths/small k=31 pairs=false')
        (multi,) = c.run(f'assemble "{r1}", "{r2}" into paths/multi k=21..63 pairs=false')
        got = all_contigs(c, "multi")
    assert small.data["contigs"] > 1  # the 50-base repeat splits k=31
    assert multi.data["ks"] == [21, 63] and [r["min_count"] for r in multi.data["rounds"]]
    # error-free reads tile the genome: the last round's graph is that of the reads at k=63
    assert sorted(canon(s) for s in got) == unitigs(reads, 63)
    assert len(got) == 1 and (got[0] in genome or rc(got[0]) in genome) and len(got[0]) > 0.95 * len(genome)


def test_the_rounds_bridge_what_the_large_k_alone_cannot(tmp_path):
    """Reads that overlap by 40 bases in one stretch: k=51 alone breaks there; a round at k=25
    assembles through it, and its contig carries k=51 across."""
    rng = random.Random(4)
    genome = genome_of(rng, 3000)
    starts = sorted(set(range(0, 1400, 5)) | set(range(1400, 1700, 60)) | set(range(1700, 2900, 5)))
    reads = [genome[i:i + 100] for i in starts]
    write_fastq(tmp_path / "r.fq", reads)
    with Cluster.local(2) as c:
        (alone,) = c.run(f'assemble "{tmp_path}/r.fq" into paths/a k=51 min_count=1')
        (rounds,) = c.run(f'assemble "{tmp_path}/r.fq" into paths/b k=25..51 min_count=1')
        b1 = c.get("paths/b-1").sequence
    assert alone.data["contigs"] > 1
    assert rounds.data["contigs"] == 1 and canon(b1) == canon(genome[:starts[-1] + 100])


def test_load_takes_contigs_counted_as_deep_as_their_mean_count(pair_files):
    _genome, r1, _r2, _reads = pair_files
    with Cluster.local(2) as c:
        c.run(f'load "{r1}" into kmers k=21\nassemble kmers into paths/c')
        paths = all_contigs(c, "c")
        covs = [c.get(f"paths/c-{i}").coverage for i in range(1, len(paths) + 1)]
        (res,) = c.run("load paths/c-* into kmers.again k=33")
        kmer = paths[0][10:43]
        (got,) = c.run(f"get kmers.again/{canon(kmer)}")
    expected = {}
    for seq, cov in zip(paths, covs):
        for i in range(len(seq) - 32):
            expected[canon(seq[i:i + 33])] = expected.get(canon(seq[i:i + 33]), 0) + max(1, round(cov))
    assert res.data["distinct"] == len(expected)
    assert f"count={expected[canon(kmer)]}" in got.text


def test_paths_given_to_load_are_inputs_as_files_are(pair_files):
    """A selector that matches no path is refused before anything changes, as a missing file is;
    one listed twice counts twice, as a file listed twice does."""
    _genome, r1, _r2, _reads = pair_files
    with Cluster.local(2) as c:
        c.run(f'load "{r1}" into kmers k=21\nassemble kmers into paths/c')
        before = store_state(c)
        for text, what in (("load paths/nope-* into kmers.x", "no path matches paths/nope-*"),
                           ("load paths/nope into kmers.x", "no path matches paths/nope"),
                           (f'load "{r1}", paths/c-*, paths/nope* into kmers', "no path matches paths/nope*")):
            with pytest.raises(RayScriptError, match=re.escape(f"{what} to load: nothing was loaded")):
                c.run(text)
        assert store_state(c) == before
        (once,) = c.run("load paths/c-* into kmers.once k=31")
        (twice,) = c.run("load paths/c-*, paths/c-* into kmers.twice k=31")
        (files,) = c.run(f'load "{r1}", "{r1}" into kmers.files k=31')
        total = {row["name"]: row["total"] for row in c.run("sets")[0].data}
    assert twice.data["kmers"] == 2 * once.data["kmers"] and twice.data["distinct"] == once.data["distinct"]
    assert twice.data["reads"] == 2 * once.data["reads"] and total["kmers.twice"] == 2 * total["kmers.once"]
    assert files.data["reads"] == 2 * len(r1.read_text().splitlines()) // 4  # as a file listed twice


def test_an_interleaved_file_is_taken_as_pairs_and_single_reads_are_not(tmp_path, pair_files):
    _genome, r1, _r2, _reads = pair_files
    lines = r1.read_text().splitlines()
    with open(tmp_path / "inter.fq", "w") as fh:
        for i in range(0, len(lines) - 7, 8):
            a, b = lines[i:i + 4], lines[i + 4:i + 8]
            fh.write("\n".join([f"@x{i}/1", a[1], "+", a[3], f"@x{i}/2", b[1], "+", b[3]]) + "\n")
    with Cluster.local(2) as c:
        (res,) = c.run(f'assemble "{tmp_path}/inter.fq" into paths/i k=31')
        assert res.data["pairs"] is True
        (res,) = c.run(f'assemble "{r1}" into paths/s k=31')
        assert res.data["pairs"] is False


def test_bad_input_is_refused_before_anything_is_loaded(tmp_path, pair_files):
    _genome, r1, r2, _reads = pair_files
    write_fastq(tmp_path / "short.fq", [r1.read_text().splitlines()[1]] * 3)
    with Cluster.local(2) as c:
        before = store_state(c)
        with pytest.raises(RayScriptError, match="pairs=true needs the two ends of the pairs"):
            c.run(f'assemble "{r1}" into paths/x pairs=true')
        with pytest.raises(RayScriptError, match=r"hold different numbers of reads: .*r1\.fq [0-9,]+, .*short\.fq 3"):
            c.run(f'assemble "{r1}", "{tmp_path}/short.fq" into paths/x')
        c.run(f'assemble "{r1}", "{tmp_path}/short.fq" into paths/x pairs=false k=31')  # two runs of reads
        with pytest.raises(RayScriptError, match="k=63 is above the length of the reads \\(60 bases"):
            write_fastq(tmp_path / "sixty.fq", [s[:60] for s in r1.read_text().splitlines()[1::4]])
            c.run(f'assemble "{tmp_path}/sixty.fq" into paths/y k=63')
        with pytest.raises(RayScriptError, match="no such file"):
            c.run(f'assemble "{tmp_path}/none.fq", "{r2}" into paths/y')
        with pytest.raises(RayScriptError, match=r"k= takes a whole number from 1 to 127, or a range FROM\.\.TO"):
            c.run(f'assemble "{r1}" into paths/y k=41..21')
        with pytest.raises(RayScriptError, match="k= is for read files"):
            c.run("assemble kmers into paths/y k=31")
        with pytest.raises(RayScriptError, match="paths/x-\\* exist already"):
            c.run(f'assemble "{r1}" into paths/x k=31')
        (res,) = c.run(f'assemble "{r1}" into paths/e k=30')
        assert "k=30 is even" in res.text and res.data["notes"]
        assert c.run("sets")[0].data == before[0]


@pytest.mark.mpi
def test_the_same_contigs_under_mpiexec(pair_files, tmp_path):
    _genome, r1, r2, _reads = pair_files
    with Cluster.local(1) as c:
        c.run(f'assemble "{r1}", "{r2}" into paths/m k=21..41\ndump paths/m* to "{tmp_path}/one.fa"')
    script = tmp_path / "a.ray"
    script.write_text(f'assemble "{r1}", "{r2}" into paths/m k=21..41\ndump paths/m* to "{tmp_path}/three.fa"\n'
                      "sets\n")
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "assemble_reads" not in proc.stdout
    assert (tmp_path / "three.fa").read_text() == (tmp_path / "one.fa").read_text()


def _paths(c):
    """Every path the store holds: name -> sequence (from a dump of them all)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        if not c.run("count paths")[0].data["paths"]:
            return {}
        c.run(f'dump paths/* to "{d}/all.fa"')
        text = Path(d, "all.fa").read_text()
    out = {}
    for rec in text.split(">")[1:]:
        head, _, seq = rec.partition("\n")
        out[head.split()[0]] = seq.replace("\n", "")
    return out


def _foreign_paths(c, tmp_path, *names):
    """Paths of another genome under the given names (a walk stores one under any name)."""
    rng = random.Random(3)
    other = genome_of(rng, 300)
    (tmp_path / "other.fa").write_text(f">o\n{other}\n")
    c.run(f'load "{tmp_path}/other.fa" into kmers.other k=21')
    for name in names:
        c.run(f"walk kmers.other/{other[:21]} both into paths/{name}")
    return other


def test_a_failure_while_scaffolding_leaves_the_store_as_it_was(pair_files, monkeypatch):
    """The last round's contigs stay under the statement's own prefix until the scaffolds are named:
    a failure there (or a cancel) leaves the user's paths, even with 'replace', and no scratch."""
    from rayscript.genomics import assembly

    _genome, r1, r2, _reads = pair_files
    with Cluster.local(2) as c:
        c.run(f'assemble "{r1}", "{r2}" into paths/asm k=31 pairs=false')
        before_paths = _paths(c)
        before = store_state(c)

        def broken(*args, **kwargs):
            raise OSError("the disk went away")

        monkeypatch.setattr(assembly, "scaffold", broken)
        with pytest.raises(RayScriptError, match="the disk went away"):
            c.run(f'assemble "{r1}", "{r2}" into paths/asm k=31 replace')
        with pytest.raises(RayScriptError, match="the disk went away"):
            c.run(f'assemble "{r1}", "{r2}" into paths/new k=31')
        assert store_state(c) == before
        assert _paths(c) == before_paths
        monkeypatch.undo()
        (res,) = c.run(f'assemble "{r1}", "{r2}" into paths/asm k=31 replace')
        assert res.data["prefix"] == "asm" and "paths/asm-1" in res.text and "_round" not in res.text
        after = _paths(c)
        assert set(after) == {f"asm-{i}" for i in range(1, res.data["contigs"] + 1)}


def test_wrapped_fasta_pairs_are_refused_before_anything_is_loaded(pair_files, tmp_path):
    _genome, r1, _r2, _reads = pair_files
    seqs = r1.read_text().splitlines()[1::4]
    for name, part in (("w1.fa", seqs), ("w2.fa", [rc(s) for s in seqs])):
        with open(tmp_path / name, "w") as fh:
            fh.writelines(f">p{i}\n{s[:60]}\n{s[60:]}\n" for i, s in enumerate(part))
    with Cluster.local(2) as c:
        before = store_state(c)
        with pytest.raises(RayScriptError, match=r"w1\.fa:1: the pairs are read from FASTQ, or from FASTA with each "
                                                 r"sequence on one line"):
            c.run(f'assemble "{tmp_path}/w1.fa", "{tmp_path}/w2.fa" into paths/w k=31')
        assert store_state(c) == before
        (res,) = c.run(f'assemble "{tmp_path}/w1.fa", "{tmp_path}/w2.fa" into paths/w k=31 pairs=false')
        assert res.data["contigs"] >= 1


def test_the_rounds_never_take_or_delete_a_users_paths(pair_files, tmp_path):
    """A user's paths under the name the rounds would use are neither input nor deleted: the
    statement takes a prefix nobody uses; assembling into that very name works too."""
    genome, r1, r2, _reads = pair_files
    with Cluster.local(2) as c:
        _foreign_paths(c, tmp_path, "assemble_reads_round-x", "assemble_reads2_round-1")
        mine = _paths(c)
        (res,) = c.run(f'assemble "{r1}", "{r2}" into paths/asm k=21..41 pairs=false')
        got = all_contigs(c, "asm")
        assert got and all(s in genome or rc(s) in genome for s in got), res.text
        (res,) = c.run(f'assemble "{r1}", "{r2}" into paths/assemble_reads_round k=21..41')
        assert res.data["contigs"] >= 1
        after = _paths(c)
        assert {n: after[n] for n in mine} == mine  # the user's own, as they were
        assert not [n for n in after if n not in mine and not n.startswith("asm-")
                    and not n.startswith("assemble_reads_round-")]


def test_ctrl_c_during_the_rounds_leaves_no_temporary_set_or_paths(pair_files, tmp_path):
    """However late in a round the cancel lands (here: on the Nth look at the keyboard, for several
    N), the statement stops and nothing of it stays in the store."""
    _genome, r1, r2, _reads = pair_files
    with Cluster.local(2) as c:  # how many looks the whole statement takes
        looks = [0]
        c.node.interrupts.check = lambda: bool(looks.__setitem__(0, looks[0] + 1))
        c.run(f'assemble "{r1}", "{r2}" into paths/asm k=21..41')
        total = looks[0]
    assert total > 20
    for n in sorted({1, 3, total // 10, total // 4, total // 3, total // 2}):
        with Cluster.local(2) as c:
            _foreign_paths(c, tmp_path, "keep-1")
            before, before_paths = store_state(c), _paths(c)
            looks = [0]

            def look(n=n, looks=looks):
                looks[0] += 1
                return looks[0] == n

            c.node.interrupts.check = look
            with pytest.raises(RayScriptError, match="cancel"):
                c.run(f'assemble "{r1}", "{r2}" into paths/asm k=21..41')
            c.node.interrupts.check = None
            assert store_state(c) == before and _paths(c) == before_paths, (n, total)


def test_a_ctrl_c_after_a_collective_operations_last_look_is_not_lost():
    from rayscript.runtime.interrupts import Interrupts

    it = Interrupts()
    with it.deferred():
        it.interrupted = True  # came after the operation's last poll: nobody heeded it
    assert it.take() is True and it.take() is False
    with it.deferred():
        it.interrupted = True
        assert it.poll()  # the operation saw it (and stops with its own message)
    assert it.take() is False


def test_an_interleaved_file_is_told_by_whole_pairs_whatever_the_size_of_its_records(tmp_path):
    """The pairs are judged on the whole pairs of the window read: an odd number of records in it
    (a mate after the window) does not make a file of pairs single reads, and a small file read
    whole keeps its last record."""
    from rayscript.genomics import fastx
    from rayscript.statements.assembly import plan_reads

    rng = random.Random(5)
    size = len(f"@x{0:06d}/1\n") + 2 * 149 + 2  # 2 x 148 bases: an odd number of records in the window,
    whole, rest = divmod(fastx.HEAD_BYTES, size)  # and the next one cut in its sequence
    assert whole % 2 == 1 and rest < size - 149
    with open(tmp_path / "inter148.fq", "w") as fh:
        for i in range(1000):
            for end in (1, 2):
                fh.write(f"@x{i:06d}/{end}\n{genome_of(rng, 148)}\n+\n{'I' * 148}\n")
    plan = plan_reads([str(tmp_path / "inter148.fq")], 31, None)
    assert plan.pairs and plan.interleaved
    assert plan_reads([str(tmp_path / "inter148.fq")], 31, True).interleaved
    with open(tmp_path / "inter.fa", "w") as fh:  # the whole file in the window
        fh.writelines(f">p{i // 2}/{i % 2 + 1}\n{genome_of(rng, 60)}\n" for i in range(20))
    assert plan_reads([str(tmp_path / "inter.fa")], 31, None).interleaved
    with open(tmp_path / "odd.fa", "w") as fh:  # a pair and a single read: the whole file is known
        fh.writelines(f">{name}\n{genome_of(rng, 60)}\n" for name in ("a/1", "a/2", "b/1"))
    assert not plan_reads([str(tmp_path / "odd.fa")], 31, None).pairs
    with pytest.raises(RayScriptError, match=r"odd\.fa holds single reads: an odd number of records \(3\)"):
        plan_reads([str(tmp_path / "odd.fa")], 31, True)


def test_a_genome_in_one_record_is_assembled_as_load_reads_it(tmp_path):
    """A FASTA of one record (a genome, wrapped or on one line) is one read as long as the genome:
    the length check takes its last record when the file was read whole, and a record longer than
    the window read is at least as long as what the window holds."""
    from rayscript.genomics import fastx
    from rayscript.statements.assembly import plan_reads

    rng = random.Random(6)
    genome = genome_of(rng, 3000)
    wrapped = "".join(genome[i:i + 60] + "\n" for i in range(0, len(genome), 60))
    (tmp_path / "g.fa").write_text(f">g genome\n{wrapped}")
    with Cluster.local(2) as c:
        (res,) = c.run(f'assemble "{tmp_path}/g.fa" into paths/g k=31')
        assert res.data["contigs"] == 1 and canon(c.get("paths/g-1").sequence) == canon(genome)
        (res,) = c.run(f'assemble "{tmp_path}/g.fa" into paths/h k=auto')
        assert res.data["ks"][0] == 21 and res.data["ks"][-1] == 127 and res.data["contigs"] == 1
    (tmp_path / "long.fa").write_text(f">long\n{genome_of(rng, fastx.HEAD_BYTES + 1000)}\n")
    plan = plan_reads([str(tmp_path / "long.fa")], 127, None)
    assert plan.ks == [127] and plan.read_length > fastx.HEAD_BYTES - 10
    assert plan_reads([str(tmp_path / "long.fa")], "auto", None).ks[-1] == 127


def test_reads_too_short_for_k_auto_are_refused_for_what_they_are(tmp_path):
    write_fastq(tmp_path / "eight.fq", ["ACGTACGA"] * 10)
    with Cluster.local(1) as c, pytest.raises(RayScriptError) as exc:
        c.run(f'assemble "{tmp_path}/eight.fq" into paths/x')
    assert "the reads are too short for k=auto (8 bases at the most" in str(exc.value)
    assert "takes k=11 at the least" in str(exc.value) and "take a smaller k" not in str(exc.value)
