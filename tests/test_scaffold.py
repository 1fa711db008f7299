"""Scaffolding with read pairs (assemble "r1", "r2" ... pairs=true): the insert size estimated from pairs
inside one contig, contigs joined only where several consistent pairs link them, gaps as runs of N of
the estimated length; checked against the genome the pairs were made from."""

import random
import re

import numpy as np
import pytest

from conftest import rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.genomics import fastx
from rayscript.genomics.scaffold import chains, choose_joins, estimate, repeats, scaffold, spell
from rayscript.items import GraphPath
from rayscript.runtime.collective import Exchange, LocalBoard, LocalCollective
from test_assembly import rc


def genome_of(rng, n):
    return "".join(rng.choice("ACGT") for _ in range(n))


def pairs_of(rng, genome, step, lo=380, hi=420, length=100):
    """Error-free pairs (forward-reverse) every ``step`` bases, fragments of lo..hi bases; and their sizes."""
    one, two, sizes = [], [], []
    for i in range(0, len(genome) - hi, step):
        size = rng.randrange(lo, hi + 1)
        frag = genome[i:i + size]
        if rng.random() < 0.5:  # either strand of the fragment comes first
            one.append(frag[:length])
            two.append(rc(frag[-length:]))
        else:
            one.append(rc(frag[-length:]))
            two.append(frag[:length])
        sizes.append(size)
    return one, two, sizes


def scaffolds(c, prefix, n):
    return [c.get(f"paths/{prefix}-{i}").sequence for i in range(1, n + 1)]


def placed_in(genome, scaffold, slack):
    """Where the scaffold lies in the genome (either strand), its contigs in order with gaps of the
    genome's own length give or take ``slack``: the match, else None."""
    for seq in (scaffold, rc(scaffold)):
        parts = re.split(r"(N+)", seq)
        pattern = "".join(f"[ACGT]{{{max(len(p) - slack, 0)},{len(p) + slack}}}" if p.startswith("N") else re.escape(p)
                          for p in parts)
        m = re.search(pattern, genome)
        if m:
            return m
    return None


@pytest.fixture(scope="module")
def repeat_pairs(tmp_path_factory):
    """A 9.3 kb genome with a 150-base repeat twice: k=31 breaks it at both copies."""
    rng = random.Random(21)
    rep = genome_of(rng, 150)
    genome = genome_of(rng, 3000) + rep + genome_of(rng, 3000) + rep + genome_of(rng, 3000)
    one, two, sizes = pairs_of(rng, genome, 3)
    d = tmp_path_factory.mktemp("scaf")
    write_fastq(d / "r1.fq", one)
    write_fastq(d / "r2.fq", two)
    return genome, d / "r1.fq", d / "r2.fq", sizes


@pytest.mark.parametrize("ranks", [1, 3])
def test_contigs_across_a_repeat_are_joined_in_order_with_a_gap_of_the_genome_s_length(repeat_pairs, ranks):
    genome, r1, r2, sizes = repeat_pairs
    with Cluster.local(ranks) as c:
        (alone,) = c.run(f'assemble "{r1}", "{r2}" into paths/c k=31 pairs=false')
        (res,) = c.run(f'assemble "{r1}", "{r2}" into paths/s k=31')
        got = scaffolds(c, "s", res.data["contigs"])
    sc = res.data["scaffolding"]
    assert abs(sc["insert"] - int(np.median(sizes))) <= 5 and 5 <= sc["spread"] <= 20
    assert sc["joins"] == 2 and sc["repeats"] == 1 and res.data["contigs"] == alone.data["contigs"] - 2
    assert len(got[0]) > 0.95 * len(genome)  # the three unique stretches in one scaffold, across both copies
    assert "insert size" in res.text and f"{sc['joins']} joins made" in res.text
    assert [len(s) for s in got] == sorted((len(s) for s in got), reverse=True)
    joined = [s for s in got if "N" in s]
    assert joined
    for s in got:  # every scaffold lies in the genome, its gaps as long as the genome's, give or take
        assert placed_in(genome, s, 3 * sc["spread"] + 10) is not None, s[:50]


def test_a_repeat_is_found_by_its_depth_in_the_reads_not_by_the_contigs_counts(tmp_path):
    """After rounds of several k a contig's count holds the earlier rounds' counts too (their contigs
    are input to the next round), which can hide a repeat: the scaffolder measures depth by the read
    ends placed in each contig.  Contigs A, R, B, C of a genome A R B R C with R longer than any
    fragment, all given the same count: R is still the repeat, and nothing joins across it."""
    rng = random.Random(5)
    a, r, b, c = (genome_of(rng, n) for n in (3000, 1200, 3000, 3000))
    genome = a + r + b + r + c
    one, two, _ = pairs_of(rng, genome, 3)
    write_fastq(tmp_path / "r1.fq", one)
    write_fastq(tmp_path / "r2.fq", two)
    held = [GraphPath(f"m-{n}", seq, 61, "unitig", coverage=100.0) for n, seq in enumerate((a, r, b, c), 1)]
    coll = LocalCollective(LocalBoard(1), 0)
    sources = [fastx.Source(str(tmp_path / f), "fastq", "", 0) for f in ("r1.fq", "r2.fq")]
    out, fig = scaffold(Exchange(coll), 0, "m", held, sources, False, 5)
    assert fig["repeats"] == 1 and fig["joins"] == 0 and abs(fig["insert"] - 400) <= 5
    assert sorted(p.sequence for p in out) == sorted((a, r, b, c))


def test_a_single_pair_never_joins(tmp_path):
    """Two genomes, each in one contig; chimeric pairs link them: one is not enough, two are (min_pairs=2)."""
    rng = random.Random(8)
    a, b = genome_of(rng, 2500), genome_of(rng, 2500)
    one, two, _ = pairs_of(rng, a, 4)
    more = pairs_of(rng, b, 4)
    one, two = one + more[0], two + more[1]
    chimera = a[-250:] + b[:250]  # a fragment across the end of a and the start of b
    for n, (p, q) in enumerate([(chimera[:100], rc(chimera[-100:])), (chimera[10:110], rc(chimera[-110:-10]))]):
        one, two = [*one, p], [*two, q]
        write_fastq(tmp_path / f"c{n}_1.fq", one)
        write_fastq(tmp_path / f"c{n}_2.fq", two)
    with Cluster.local(2) as c:
        (single,) = c.run(f'assemble "{tmp_path}/c0_1.fq", "{tmp_path}/c0_2.fq" into paths/x k=31 min_pairs=2')
        (double,) = c.run(f'assemble "{tmp_path}/c1_1.fq", "{tmp_path}/c1_2.fq" into paths/y k=31 min_pairs=2')
        y1 = c.get("paths/y-1").sequence
        with pytest.raises(RayScriptError, match="min_pairs= takes a whole number >= 2"):
            c.run(f'assemble "{tmp_path}/c1_1.fq", "{tmp_path}/c1_2.fq" into paths/z min_pairs=1')
    assert single.data["scaffolding"]["joins"] == 0 and single.data["contigs"] == 2
    assert double.data["scaffolding"]["joins"] == 1 and double.data["contigs"] == 1
    assert placed_in(a + b, y1, 60) is not None


def test_too_few_pairs_inside_a_contig_say_so_and_change_nothing(tmp_path):
    rng = random.Random(3)
    genome = genome_of(rng, 1500)
    one, two, _ = pairs_of(rng, genome, 30)
    write_fastq(tmp_path / "a.fq", one)
    write_fastq(tmp_path / "b.fq", two)
    with Cluster.local(2) as c:
        (res,) = c.run(f'assemble "{tmp_path}/a.fq", "{tmp_path}/b.fq" into paths/t k=31 min_count=1')
    assert "too few to estimate the insert size" in res.text and res.data["scaffolding"]["joins"] == 0


def test_the_joins_and_chains_follow_the_rules():
    # ends: 2 * contig + side (1: right); rows: end, end, pairs, summed gap
    links = np.array([[3, 4, 10, 500],   # 1.right - 2.left, 10 pairs
                      [3, 6, 4, 400],    # 1.right - 3.left, 4: not half of 10, so 1.right takes 2.left
                      [5, 9, 6, 60],     # 2.right - 4.right
                      [7, 8, 1, 0]])     # a single pair: never
    joins = choose_joins(links, 2, -100)
    assert joins.tolist() == [[3, 4, 50], [5, 9, 10]]
    # pairs that say two unitigs overlap by more than k - 1 bases (beyond three spreads): no join
    assert choose_joins(links, 2, 20).tolist() == [[3, 4, 50]]
    overlapping = np.array([[3, 4, 10, -1040], [5, 9, 6, -900]])  # mean gaps -104 and -150
    assert choose_joins(overlapping, 2, -104).tolist() == [[3, 4, -104]]
    # 1.right: 10 pairs to 2.left, 4 to contig 3, which is a quarter as long as a fragment: per base
    # reached, 3 is the better supported, and not twice 2: 1.right takes neither
    reach = np.array([400] * 10)
    reach[6:8] = 100
    assert choose_joins(links, 2, -100, reach).tolist() == [[5, 9, 10]]
    got = chains(joins, [1, 2, 3, 4])
    assert sorted(got) == sorted([[(1, True, 0), (2, True, 50), (4, False, 10)], [(3, True, 0)]])
    circle = np.array([[1, 2, 5], [3, 0, 7]])  # 0.right - 1.left, 1.right - 0.left
    assert chains(circle, [0, 1]) == [[(0, True, 0), (1, True, 5)]]
    assert estimate(np.bincount([400] * 3 + [390, 410] * 3)) == (400, 15)
    # by depth: contig 2 (twice the median depth of the bases) is a repeat, 5 is not
    assert repeats(np.array([1, 2, 5]), np.array([5000, 300, 4000]), np.array([2000, 4100, 2400]), 6).tolist() == [
        False, False, True, False, False, False]


def test_contigs_that_overlap_are_spelled_once_and_others_get_a_gap():
    rng = random.Random(8)
    genome = "".join(rng.choice("ACGT") for _ in range(600))
    a, b = genome[:300], genome[199:]  # overlapping by 101 bases, fewer than k - 1 = 126
    assert spell([(0, a, 0), (1, b, -100)], 127) == genome  # the pairs saw the overlap: merged
    assert spell([(0, a, 0), (1, b, 25)], 127) == a + "N" * 25 + b  # a gap where the pairs say so
    assert spell([(0, a, 0), (1, genome[290:], -8)], 127) == a + "N" * 10 + genome[290:]  # 10 bases: too short
    assert spell([(0, a[:220], 0), (1, genome[200:], -20)], 21) == genome[:220] + genome[220:]  # k - 1 at k=21
    assert spell([(0, a, 0), (1, genome[305:], -40)], 127) == a + "N" * 10 + genome[305:]  # no shared bases


@pytest.mark.mpi
def test_the_same_scaffolds_under_mpiexec(repeat_pairs, tmp_path):
    _genome, r1, r2, _sizes = repeat_pairs
    with Cluster.local(2) as c:
        c.run(f'assemble "{r1}", "{r2}" into paths/m k=31\ndump paths/m* to "{tmp_path}/two.fa"')
    script = tmp_path / "a.ray"
    script.write_text(f'assemble "{r1}", "{r2}" into paths/m k=31\ndump paths/m* to "{tmp_path}/three.fa"\n')
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "joins made" in proc.stdout
    assert (tmp_path / "three.fa").read_text() == (tmp_path / "two.fa").read_text()
