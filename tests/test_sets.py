"""Named k-mer sets: set algebra exact against kmc_tools and a reference built from per-set dumps,
the count matrix and distances, on several rank counts and after copies and moves; the sets in
checkpoints; bad input."""

import gzip
import itertools
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError

READS = "/usr/share/doc/bowtie2/examples/reads"

# every operation kmc_tools 'simple' has, as rayscript writes it
OPERATIONS = {
    "intersect": ("*", ("min", "max", "sum", "diff", "left", "right")),
    "union": ("+", ("sum", "min", "max", "diff", "left", "right")),
    "kmers_subtract": ("-", (None,)),
    "counters_subtract": ("~", (None,)),
}


def _revcomp(s):
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def reference_counts(path, k):
    """Canonical k-mer counts of a FASTQ file, one k-mer at a time (the test's own counter)."""
    counts = {}
    with open(path) as fh:
        for i, line in enumerate(fh):
            if i % 4 != 1:
                continue
            seq = line.strip().upper()
            for j in range(len(seq) - k + 1):
                kmer = seq[j:j + k]
                if set(kmer) <= set("ACGT"):
                    c = min(kmer, _revcomp(kmer))
                    counts[c] = counts.get(c, 0) + 1
    return counts


def read_dump(path):
    with open(path) as fh:
        return {seq: int(n) for seq, n in (line.split("\t") for line in fh)}


def ref_apply(op, a, b, mode):
    """kmc_tools' semantics, on dictionaries."""
    def both(x, y):
        return {"min": min(x, y), "max": max(x, y), "sum": x + y, "diff": x - y if x > y else 0, "left": x,
                "right": y}[mode]
    if op == "*":
        out = {s: both(a[s], b[s]) for s in a.keys() & b.keys()}
    elif op == "+":
        out = dict(a)
        out.update({s: c for s, c in b.items() if s not in a})
        out.update({s: both(a[s], b[s]) for s in a.keys() & b.keys()})
    elif op == "-":
        out = {s: c for s, c in a.items() if s not in b}
    else:
        out = {s: c - b.get(s, 0) for s, c in a.items()}
    return {s: c for s, c in out.items() if c > 0}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Two samples of real reads (lambda phage, bowtie2's examples): the first 2,000 reads of each end."""
    if not os.path.isdir(READS):
        pytest.skip(f"{READS} not found (Debian's bowtie2-examples; scripts/test installs it as root)")
    d = tmp_path_factory.mktemp("samples")
    out = []
    for name, src, n in (("a", "reads_1.fq.gz", 2000), ("b", "reads_2.fq.gz", 1500)):
        with gzip.open(os.path.join(READS, src), "rt") as fh:
            lines = list(itertools.islice(fh, 4 * n))
        path = d / f"{name}.fq"
        path.write_text("".join(lines))
        out.append(path)
    return d, out


@pytest.fixture(scope="module")
def kmc_expected(samples):
    """kmc_tools' outputs at k (every operation and counter mode, and the two samples' counts) as
    dictionaries: a function of k, each k's reference computed once for the module."""
    if shutil.which("kmc") is None or shutil.which("kmc_tools") is None:
        pytest.skip("kmc and kmc_tools not found (Debian's kmc)")
    done = {}

    def expected(k):
        if k not in done:
            done[k] = _kmc(samples, k)
        return done[k]

    return expected


def _kmc(samples, k):
    d, (a, b) = samples
    work = d / f"kmc{k}"
    work.mkdir(exist_ok=True)
    # the two samples counted at once, each with a temporary directory of its own (a kmc spends
    # much of its time waiting)
    counting = []
    for name, path in (("a", a), ("b", b)):
        (work / f"tmp-{name}").mkdir(exist_ok=True)
        counting.append(subprocess.Popen(["kmc", f"-k{k}", "-ci1", "-cs1000000", "-fq", str(path), str(work / name),
                                          str(work / f"tmp-{name}")], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True))
    for proc in counting:
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    jobs = [(op, mode) for op, (_sym, modes) in OPERATIONS.items() for mode in modes]
    args = ["kmc_tools", "simple", str(work / "a"), "-ci1", str(work / "b"), "-ci1"]
    for op, mode in jobs:
        args += [op, str(work / f"{op}-{mode}")] + ([f"-oc{mode}"] if mode else [])
    subprocess.run(args, check=True, capture_output=True)
    # every database dumped as text, the dumps at once
    dumps = {(op, mode): work / f"{op}-{mode}" for op, mode in jobs} | {name: work / name for name in ("a", "b")}
    running = [(key, subprocess.Popen(["kmc_tools", "transform", str(db), "dump", "-s", f"{db}.txt"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
               for key, db in dumps.items()]
    expected = {}
    for key, proc in running:
        _, err = proc.communicate()
        assert proc.returncode == 0, err
        expected[key] = read_dump(f"{dumps[key]}.txt")
    return expected


def _script(a, b, k, out, moved=False):
    lines = [f'load "{a}" into kmers.a k={k}', f'load "{b}" into kmers.b k={k}']
    if moved:  # k-mers held off their owners: each must still count once, its owner's copy
        lines += ["copy kmers.a/A* from 0 to 1", "move kmers.b/C* from 1 to 0", "copy kmers.b/G* from 2 to 0"]
    for op, (sym, modes) in OPERATIONS.items():
        for mode in modes:
            name = f"{op}_{mode or 'x'}"
            lines.append(f"combine kmers.a {sym} kmers.b into kmers.{name}" + (f" counts={mode}" if mode else ""))
            lines.append(f'dump kmers.{name} to "{out}/{name}.tsv"')
    return "\n".join(lines) + "\n"


def _check_against(expected, out):
    for op, (_sym, modes) in OPERATIONS.items():
        for mode in modes:
            got = read_dump(out / f"{op}_{mode or 'x'}.tsv")
            assert got == expected[(op, mode)], (op, mode, len(got), len(expected[(op, mode)]))


@pytest.mark.external
@pytest.mark.xdist_group("kmc")  # on one worker: each k's reference computed once
@pytest.mark.parametrize("k,ranks", [(15, 1), (31, 3), (47, 2), (63, 4)])
def test_every_operation_and_counter_mode_equals_kmc_tools(samples, kmc_expected, tmp_path, k, ranks):
    expected = kmc_expected(k)
    _, (a, b) = samples
    with Cluster.local(ranks) as c:
        c.run(_script(a, b, k, tmp_path, moved=ranks > 2))
        # the loaded sets themselves are KMC's counts
        c.run(f'dump kmers.a to "{tmp_path}/a.tsv"\ndump kmers.b to "{tmp_path}/b.tsv"')
    assert read_dump(tmp_path / "a.tsv") == expected["a"]
    assert read_dump(tmp_path / "b.tsv") == expected["b"]
    _check_against(expected, tmp_path)


@pytest.mark.external
@pytest.mark.mpi
@pytest.mark.xdist_group("kmc")
def test_set_algebra_under_mpiexec_equals_kmc_tools(samples, kmc_expected, tmp_path):
    expected = kmc_expected(31)
    _, (a, b) = samples
    script = tmp_path / "sets.ray"
    script.write_text(_script(a, b, 31, tmp_path, moved=True))
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    _check_against(expected, tmp_path)


def _genome_samples(tmp_path, k_reads=60):
    """Three samples of reads of one random genome and two mutated copies (error-free reads)."""
    rng = np.random.default_rng(7)
    genome = "".join(rng.choice(list("ACGT"), 4000))
    samples = []
    for s in range(3):
        g = list(genome)
        for pos in rng.choice(len(g), 40 * s, replace=False):
            g[pos] = "ACGT"[("ACGT".index(g[pos]) + 1) % 4]
        g = "".join(g)
        starts = rng.integers(0, len(g) - k_reads, 300 + 100 * s)
        path = tmp_path / f"s{s}.fq"
        write_fastq(path, [g[p:p + k_reads] for p in starts])
        samples.append(path)
    return samples


@pytest.mark.parametrize("ranks", [1, 3])
def test_expressions_matrix_and_compare_equal_a_reference_built_from_per_set_dumps(tmp_path, ranks):
    paths = _genome_samples(tmp_path)
    k = 21
    refs = [reference_counts(p, k) for p in paths]
    names = ["x", "y", "z"]
    loads = "\n".join(f'load "{p}" into kmers.{n} k={k}' for p, n in zip(paths, names))
    with Cluster.local(ranks) as c:
        c.run(loads)
        for n, ref in zip(names, refs):  # the per-set dumps the reference is built from
            c.run(f'dump kmers.{n} to "{tmp_path}/{n}.tsv"')
            assert read_dump(tmp_path / f"{n}.tsv") == ref
        c.run("combine (kmers.x + kmers.y) * kmers.z - kmers.y into kmers.e1\n"
              "combine kmers.x ~ kmers.y + kmers.z * kmers.x into kmers.e2 counts=max min=2 max=30\n"
              "combine kmers.x * (kmers.y ~ kmers.z) into kmers.e3 counts=left")
        for n in ("e1", "e2", "e3"):
            c.run(f'dump kmers.{n} to "{tmp_path}/{n}.tsv"')
        (mat,) = c.run(f'matrix kmers.x, kmers.y, kmers.z to "{tmp_path}/m.tsv" min_sets=2')
        c.run(f'matrix kmers.x, kmers.y, kmers.z to "{tmp_path}/p.tsv" min=3 presence')
        (cmp,) = c.run(f'compare kmers.x, kmers.y, kmers.z to "{tmp_path}/d.tsv"')
        (cnt,) = c.run("count kmers.x where count >= 5")
    x, y, z = refs
    e1 = ref_apply("-", ref_apply("*", ref_apply("+", x, y, "sum"), z, "min"), y, None)
    assert read_dump(tmp_path / "e1.tsv") == e1
    # '*' binds tighter: x ~ y + (z * x), and counts=max for every + and *
    e2 = ref_apply("+", ref_apply("~", x, y, None), ref_apply("*", z, x, "max"), "max")
    assert read_dump(tmp_path / "e2.tsv") == {s: c for s, c in e2.items() if 2 <= c <= 30}
    assert read_dump(tmp_path / "e3.tsv") == ref_apply("*", x, ref_apply("~", y, z, None), "left")
    # the matrix: a header, then every k-mer in at least two sets with its count in each
    lines = (tmp_path / "m.tsv").read_text().splitlines()
    assert lines[0] == "kmer\tx\ty\tz"
    rows = {line.split("\t")[0]: tuple(map(int, line.split("\t")[1:])) for line in lines[1:]}
    every = x.keys() | y.keys() | z.keys()
    assert rows == {s: (x.get(s, 0), y.get(s, 0), z.get(s, 0)) for s in every
                    if sum(s in r for r in refs) >= 2}
    assert mat.data["rows"] == len(rows)
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    rows = {line.split("\t")[0]: tuple(map(int, line.split("\t")[1:])) for line in lines[1:]}
    assert rows == {s: tuple(int(r.get(s, 0) >= 3) for r in refs) for s in every
                    if any(r.get(s, 0) >= 3 for r in refs)}
    # distances: shared, Jaccard, containment for every pair
    lines = (tmp_path / "d.tsv").read_text().splitlines()
    assert lines[0] == "set1\tset2\tshared\tjaccard\tcontained1\tcontained2"
    assert len(lines) == 4
    for line, (i, j) in zip(lines[1:], [(0, 1), (0, 2), (1, 2)]):
        a, b = refs[i], refs[j]
        shared = len(a.keys() & b.keys())
        fields = line.split("\t")
        assert fields[:3] == [names[i], names[j], str(shared)]
        assert float(fields[3]) == pytest.approx(shared / len(a.keys() | b.keys()), abs=1e-6)
        assert float(fields[4]) == pytest.approx(shared / len(a), abs=1e-6)
        assert float(fields[5]) == pytest.approx(shared / len(b), abs=1e-6)
    assert cmp.data[0]["shared"] == len(x.keys() & y.keys())
    assert cnt.data["distinct"] == sum(1 for c in x.values() if c >= 5)
    assert cnt.data["total"] == sum(c for c in x.values() if c >= 5)


def test_query_gives_each_kmer_in_each_set_and_a_summary_per_sequence(tmp_path):
    paths = _genome_samples(tmp_path)
    k = 21
    refs = [reference_counts(p, k) for p in paths[:2]]
    seqs = paths[0].read_text().splitlines()[1::4][:5]
    fasta = tmp_path / "genes.fa"
    fasta.write_text("".join(f">gene{i} some description\n{s[:30]}\n{s[30:]}\n" for i, s in enumerate(seqs)))
    with Cluster.local(2) as c:
        c.run(f'load "{paths[0]}" into kmers.t k={k}\nload "{paths[1]}" into kmers.n k={k}')
        (res,) = c.run(f'query "{fasta}" in kmers.t, kmers.n to "{tmp_path}/q.tsv"')
    lines = (tmp_path / "q.tsv").read_text().splitlines()
    assert lines[0] == "kmer\tt\tn"
    expected = []
    for s in seqs:
        for j in range(len(s) - k + 1):
            kmer = s[j:j + k]
            c = min(kmer, _revcomp(kmer))
            expected.append(f"{kmer}\t{refs[0].get(c, 0)}\t{refs[1].get(c, 0)}")
    assert lines[1:] == expected
    summary = res.data["sequences"]
    assert [row["sequence"] for row in summary[:5]] == [f"gene{i}" for i in range(5)]
    for i, s in enumerate(seqs):
        counts = [refs[0].get(min(s[j:j + k], _revcomp(s[j:j + k])), 0) for j in range(len(s) - k + 1)]
        assert summary[i]["found"] == sum(1 for c in counts if c) == summary[i]["kmers"]
        assert summary[i]["median"] == float(np.median(counts))


def test_every_statement_takes_a_named_set_and_plain_kmers_still_works(tmp_path):
    (path,) = _genome_samples(tmp_path)[:1]
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers k=21\nload "{path}" into kmers.s k=21')
        plain = c.run("count kmers")[0].data
        named = c.run("count kmers.s")[0].data
        assert (plain["distinct"], plain["total"]) == (named["distinct"], named["total"])
        hist_plain = c.run("histogram kmers")[0].data
        assert c.run("histogram kmers.s")[0].data == hist_plain
        seq = path.read_text().split("\n")[1][:21]
        got = c.run(f"get kmers.s/{seq}")[0].text
        assert "count=" in got
        c.run(f"put kmers.s/{'A' * 21} count=7 on 1\ncopy kmers.s/{'A' * 21} from 1 to 2")
        assert c.run(f"locate kmers.s/{'A' * 21}")[0].data["ranks"] == [1, 2]
        assert c.run(f"locate kmers/{'A' * 21}")[0].data["ranks"] == []  # sets are apart
        c.run(f"delete kmers.s/{'A' * 21} from 1\ndelete kmers.s/{'A' * 21} from 2")
        c.run("copy kmers.s/AC* from 0 to 1\nmove kmers.s/G* from 1 to 2\nrebalance kmers.s")
        assert c.run("count kmers.s")[0].data["distinct"] == named["distinct"]
        c.run(f"walk kmers.s/{seq} both into paths/w")
        assert c.run("count paths")[0].data["paths"] == 1
        c.run(f"search kmers.s/{seq} depth=2 into results/r")
        res = c.run("assemble kmers.s into paths/c min_count=1")[0]
        assert res.data["contigs"] >= 1
        c.run(f'dump kmers.s/AC* to "{tmp_path}/ac.tsv"')
        assert all(line.startswith("AC") for line in (tmp_path / "ac.tsv").read_text().splitlines())
        c.run("replicate kmers.s/" + seq + " to 3 ranks")
        text = c.run("explain combine kmers.s - kmers into kmers.none")[0].text
        assert "COMBINE" in text.upper()
        assert "kmers.none" not in c.run("sets")[0].text  # explain changes nothing


def test_bad_input_names_the_sets_and_changes_nothing(tmp_path):
    paths = _genome_samples(tmp_path)
    with Cluster.local(2) as c:
        c.run(f'load "{paths[0]}" into kmers.tumour k=21\nload "{paths[1]}" into kmers.normal k=25')
        before = c.run("sets")[0].data
        with pytest.raises(RayScriptError, match=r"no set kmers.tumor .*did you mean kmers.tumour\?"):
            c.run("count kmers.tumor")
        with pytest.raises(RayScriptError, match=r"kmers.tumour has k=21, kmers.normal has k=25"):
            c.run("combine kmers.tumour - kmers.normal into kmers.x")
        c.run(f'load "{paths[2]}" into kmers.other k=21')
        c.run("combine kmers.tumour * kmers.other into kmers.x")
        with pytest.raises(RayScriptError, match=r"kmers.x exists already: add 'replace'"):
            c.run("combine kmers.tumour + kmers.other into kmers.x")
        c.run("combine kmers.tumour + kmers.other into kmers.x replace")
        with pytest.raises(RayScriptError, match=r"kmers.x exists already"):
            c.run("rename kmers.tumour to kmers.x")
        with pytest.raises(RayScriptError, match=r"no set kmers.nothing"):
            c.run("drop kmers.nothing")
        with pytest.raises(RayScriptError, match=r"counts= sets how \+ and \* combine"):
            c.run("combine kmers.tumour - kmers.other into kmers.y counts=max")
        with pytest.raises(RayScriptError, match=r"'Bad' is not a set name"):
            c.run("count kmers.Bad")
        # a load that fails leaves every set as it was
        with pytest.raises(RayScriptError):
            c.run(f'load "{paths[0]}" into kmers.tumour k=31')
        (tmp_path / "bad.fq").write_text("@r\nACGT\n+\nII\n")
        with pytest.raises(RayScriptError):
            c.run(f'load "{paths[0]}", "{tmp_path}/bad.fq" into kmers.fresh k=21')
        after = c.run("sets")[0].data
        assert [s for s in after if s["name"] not in ("kmers.other", "kmers.x")] == before
        assert "kmers.fresh" not in {s["name"] for s in after}
        # statements of every rank at once are not run beside others (a rename racing a drop split a set)
        with pytest.raises(RayScriptError, match="parallel"):
            c.run("parallel { on 1: rename kmers.x to kmers.y\n on 0: drop kmers.x }")
        for name in ("kmers", "kmer"):  # tables show sets without 'kmers.', beside a 'kmer' column
            with pytest.raises(RayScriptError, match=f"'{name}' is not a set name"):
                c.run(f'load "{paths[0]}" into kmers.{name} k=21')
        with pytest.raises(RayScriptError, match="min_sets=3 is more than the 2 sets"):
            c.run(f'matrix kmers.x, kmers.other to "{tmp_path}/m.tsv" min_sets=3')
        seq = paths[0].read_text().split("\n")[1][:21]
        assert c.run(f"get kmers.tumour/{seq}")[0].text.startswith("kmers.tumour/")
        assert "no k-mers" in c.run("histogram kmers")[0].text
        wrong = f"kmers.tumour holds k=21 k-mers; kmers.tumour/{'A' * 31} has 31 bases"
        with pytest.raises(RayScriptError, match=wrong):
            c.run(f"put kmers.tumour/{'A' * 31} count=5 on 1")
        c.run("drop kmers.x\nrename kmers.other to kmers.third")
        assert [s["name"] for s in c.run("sets")[0].data] == ["kmers", "kmers.normal", "kmers.third", "kmers.tumour"]


def test_checkpoints_keep_every_set_and_restore_onto_another_rank_count(tmp_path):
    paths = _genome_samples(tmp_path)
    with Cluster.local(3) as c:
        c.run(f'load "{paths[0]}" into kmers.a k=21\nload "{paths[1]}" into kmers.b k=27 canonical=false\n'
              f'load "{paths[2]}" into kmers k=21\ncopy kmers.a/AC* from 0 to 2')
        before = c.run("sets")[0].data
        c.run(f'dump kmers.b to "{tmp_path}/b1.tsv"')
        c.run(f'save to "{tmp_path}/ck"\ndrop kmers.a\ncombine kmers.b - kmers.b into kmers.empty')
    for ranks in (1, 4):
        with Cluster.local(ranks) as c:
            c.run(f'restore from "{tmp_path}/ck"')
            after = c.run("sets")[0].data
            assert [(s["name"], s["k"], s["canonical"], s["distinct"], s["total"]) for s in after] == \
                   [(s["name"], s["k"], s["canonical"], s["distinct"], s["total"]) for s in before]
            c.run(f'dump kmers.b to "{tmp_path}/b2.tsv"')
            assert read_dump(tmp_path / "b2.tsv") == read_dump(tmp_path / "b1.tsv")


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_a_restore_onto_another_rank_count_keeps_the_owners_copy_where_copies_differ(tmp_path, ranks):
    (path,) = _genome_samples(tmp_path)[:1]
    seq = path.read_text().split("\n")[1][:21]
    with Cluster.local(3) as c:
        c.run(f'load "{path}" into kmers.a k=21\nload "{path}" into kmers k=21')
        own = c.run(f"locate kmers.a/{seq}")[0].data["owner"]
        other = (own + 1) % 3
        for kset in ("kmers.a", "kmers"):  # a copy with another count on a rank that does not own it
            c.run(f"put {kset}/{seq} count=99 on {other}")
        before = {k: c.run(f"count {k}")[0].data for k in ("kmers.a", "kmers")}
        shown = c.run(f"get kmers.a/{seq}")[0].data["item"].count  # the owner's copy
        c.run(f'save to "{tmp_path}/ck"')
    assert shown != 99
    with Cluster.local(ranks) as c:
        res = c.run(f'restore from "{tmp_path}/ck"')[0]
        for kset in ("kmers.a", "kmers"):
            assert c.run(f"get {kset}/{seq}")[0].data["item"].count == shown, (kset, res.text)
            got = c.run(f"count {kset}")[0].data
            assert (got["distinct"], got["total"]) == (before[kset]["distinct"], before[kset]["total"])
