"""Cascades written in the language: the examples in examples/cascades (walk, search, connected
components, distances, tips) against single-process references written here (union-find, BFS, the
tip rule walked k-mer by k-mer) and against the built-in walk and search, on the local backend with
1-4 ranks and under mpiexec; fields in where, dump and get; errors; limits."""

import gzip
import os
import random
import sys

import pytest

from conftest import rayscript_cmd, run_mpi
from rayscript import Cluster
from rayscript.errors import RayScriptError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "cascades")
LAMBDA = "/usr/share/doc/bowtie2/examples/reads/reads_1.fq.gz"
CODE = {"A": 0, "C": 1, "G": 2, "T": 3}
COMP = str.maketrans("ACGT", "TGCA")


def revcomp(s):
    return s.translate(COMP)[::-1]


def example(name):
    with open(os.path.join(EXAMPLES, f"{name}.ray")) as fh:
        return fh.read()


# --- the reference: the de Bruijn graph of the reads, one k-mer at a time ------------------------

class Graph:
    """Canonical k-mers of the reads with the store's edge bits (bit b: base b seen after the k-mer
    as stored, bit 4 + b: before it), and its neighbours as the store's edges name them."""

    def __init__(self, reads, k):
        self.k = k
        self.edges = {}
        for read in reads:
            for i in range(len(read) - k + 1):
                kmer = read[i:i + k]
                if set(kmer) - set("ACGT"):
                    continue
                after = read[i + k] if i + k < len(read) else None
                before = read[i - 1] if i > 0 else None
                canon = min(kmer, revcomp(kmer))
                bits = self.edges.get(canon, 0)
                if canon != kmer:
                    after, before = ((before.translate(COMP) if before else None),
                                     (after.translate(COMP) if after else None))
                if after in CODE:
                    bits |= 1 << CODE[after]
                if before in CODE:
                    bits |= 1 << (4 + CODE[before])
                self.edges[canon] = bits

    def oriented(self, kmer):
        """(successor bases, predecessor bases) of the k-mer as written."""
        canon = min(kmer, revcomp(kmer))
        bits = self.edges[canon]
        after = [b for b in "ACGT" if bits >> CODE[b] & 1]
        before = [b for b in "ACGT" if bits >> (4 + CODE[b]) & 1]
        if canon == kmer:
            return after, before
        return [b.translate(COMP) for b in before], [b.translate(COMP) for b in after]

    def neighbours(self, canon):
        """The canonical neighbours the edges name (present in the store), as many as edge bits."""
        after, before = self.oriented(canon)
        out = [canon[1:] + b for b in after] + [b + canon[:-1] for b in before]
        return [min(x, revcomp(x)) for x in out if min(x, revcomp(x)) in self.edges]

    def degree(self, canon):
        return bin(self.edges[canon]).count("1")

    @staticmethod
    def ident(kmer):
        value = 0
        for c in kmer:
            value = value * 4 + CODE[c]
        return value


def ref_components(g):
    parent = {x: x for x in g.edges}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x in g.edges:
        for y in g.neighbours(x):
            a, b = find(x), find(y)
            if a != b:
                parent[a] = b
    low = {}
    for x in g.edges:
        r = find(x)
        low[r] = min(low.get(r, 1 << 62), g.ident(x))
    return {x: low[find(x)] for x in g.edges}


def ref_bfs(g, seed, depth):
    start = min(seed, revcomp(seed))
    dist, frontier = {start: 0}, [start]
    for d in range(1, depth + 1):
        nxt = []
        for x in frontier:
            for y in g.neighbours(x):
                if y not in dist:
                    dist[y] = d
                    nxt.append(y)
        frontier = nxt
    return dist


def ref_tips(g):
    """The tip rule of examples/cascades/tips.ray, k-mer by k-mer: from each dead end (one
    neighbour), through k-mers with two, to a junction (3 or more: a tip if fewer than 2k k-mers came
    before it) or another dead end (a tip if the path, that end too, is shorter than 2k)."""
    k, tips = g.k, set()
    for end in g.edges:
        if g.degree(end) == 0:
            tips.add(end)
        if g.degree(end) != 1:
            continue
        path, prev, cur = [end], None, end
        while True:
            nxt = [y for y in g.neighbours(cur) if y != prev]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            if g.degree(cur) >= 3:
                if len(path) < 2 * k:
                    tips.update(path)
                break
            if g.degree(cur) == 1:
                if len(path) + 1 < 2 * k:
                    tips.update([*path, cur])
                break
            path.append(cur)
            if len(path) >= 2 * k:
                break
    return tips


def ref_walk(g, seed):
    """The built-in walk's rule (forward, from the seed as written)."""
    out, cur, seen = [seed], seed, {min(seed, revcomp(seed))}
    while True:
        after, _ = g.oriented(cur)
        if len(after) != 1:
            return out
        nxt = cur[1:] + after[0]
        canon = min(nxt, revcomp(nxt))
        if canon not in g.edges or canon in seen or len(g.oriented(nxt)[1]) != 1:
            return out
        out.append(nxt)
        seen.add(canon)
        cur = nxt


# --- data ------------------------------------------------------------------------------------------

def random_reads(seed, genome_len=1500, n=300, length=60, error=0.2, circular=False):
    rnd = random.Random(seed)
    genome = "".join(rnd.choice("ACGT") for _ in range(genome_len))
    reads = []
    for _ in range(n):
        p = rnd.randrange(0, genome_len - length)
        r = list(genome[p:p + length])
        if rnd.random() < error:
            r[rnd.randrange(length)] = rnd.choice("ACGT")
        read = "".join(r)
        reads.append(read if rnd.random() < 0.5 else revcomp(read))
    if circular:
        reads.append(genome[-30:] + genome[:30])
    return genome, reads


def lambda_reads(n=1500):
    out = []
    with gzip.open(LAMBDA, "rt") as fh:
        for i, line in enumerate(fh):
            if i % 4 == 1:
                out.append(line.strip().upper())
                if len(out) == n:
                    break
    return out


def write_fasta(path, reads):
    with open(path, "w") as fh:
        for i, r in enumerate(reads):
            fh.write(f">r{i}\n{r}\n")
    return str(path)


def read_fields(path, names):
    out = {}
    with open(path) as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            out[parts[0]] = dict(zip(names, (float(x) if "." in x else int(x) for x in parts[2:])))
    return out


def run_examples(c, reads_path, k, seed, depth, tmp):
    """Load, run every example, dump the fields: {field: {kmer: value}} plus the built-ins' results."""
    c.run(f'load "{reads_path}" into kmers k={k}\nlet seed = "{seed}"\nlet depth = {depth}')
    for name in ("components", "search", "distances", "walk", "tips"):
        c.run(example(name))
    dump = os.path.join(tmp, "fields.tsv")
    c.run(f'dump kmers to "{dump}" fields=comp,depth,dist,step,tip')
    rows = read_fields(dump, ["comp", "depth", "dist", "step", "tip"])
    walked = c.run(f"walk kmers/{seed} into paths/w")[0].data
    searched = c.run(f"search kmers/{seed} depth={depth} into results/s")[0].data
    return rows, walked, searched


class References:
    """The single-process references for one data set (its graph, components, BFS from the seed,
    tips and walk), computed once however many tests compare against them."""

    def __init__(self, reads, k, seed, depth):
        self.g = Graph(reads, k)
        self.comps = ref_components(self.g)
        self.dist = ref_bfs(self.g, seed, depth)
        self.tips = ref_tips(self.g)
        self.walk = ref_walk(self.g, seed)


def check_against_references(rows, walked, searched, ref):
    g, comps, dist, tips = ref.g, ref.comps, ref.dist, ref.tips
    assert set(rows) == set(g.edges)
    assert {x: r["comp"] for x, r in rows.items()} == comps
    assert {x: r["dist"] for x, r in rows.items() if r["dist"] >= 0} == dist
    assert {x: r["depth"] for x, r in rows.items() if r["depth"] >= 0} == dist
    assert {x for x, r in rows.items() if r["tip"] == 1} == tips
    # the built-in search: the same vertices at the same depths
    assert sorted(searched["depths"]) == sorted(dist.values())
    # the built-in walk and the walk cascade: the same k-mers in the same order
    steps = sorted((r["step"], x) for x, r in rows.items() if r["step"] >= 0)
    path = walked["sequence"] if isinstance(walked, dict) and "sequence" in walked else None
    expected = ref.walk
    assert [x for _, x in steps] == [min(s, revcomp(s)) for s in expected]
    if path is not None:
        assert path == expected[0] + "".join(s[-1] for s in expected[1:])
    return len(set(comps.values())), len(tips)


@pytest.fixture(scope="module")
def genomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cascades")
    out = {}
    genome, reads = random_reads(7, circular=True)
    reads += random_reads(8, genome_len=400, n=60)[1]  # a second genome: a second component
    # the seeds are canonical: the built-in walk goes along the canonical strand of a key written by
    # its bases, a cascade along the strand as written
    canonical = lambda s: min(s, revcomp(s))  # noqa: E731
    out["random"] = (write_fasta(tmp / "random.fa", reads), reads, 21, canonical(genome[200:221]))
    lam = lambda_reads()
    out["lambda"] = (write_fasta(tmp / "lambda.fa", lam), lam, 25, canonical(lam[3][10:35]))
    return out


@pytest.fixture(scope="module")
def references(genomes):
    """Each data set's references (depth 8), made when a test first asks for them."""
    made = {}

    def get(data):
        if data not in made:
            _path, reads, k, seed = genomes[data]
            made[data] = References(reads, k, seed, 8)
        return made[data]
    return get


# the tests on lambda's reads share one worker, and with it the references computed once (LAMBDA_GROUP)
LAMBDA_GROUP = pytest.mark.xdist_group("cascades-lambda")


@pytest.mark.parametrize("data, ranks", [("random", 1), ("random", 3), pytest.param("lambda", 2, marks=LAMBDA_GROUP),
                                         pytest.param("lambda", 4, marks=LAMBDA_GROUP)])
def test_examples_match_the_references_on_the_local_backend(genomes, references, tmp_path, data, ranks):
    path, _reads, k, seed = genomes[data]
    with Cluster.local(ranks) as c:
        rows, walked, searched = run_examples(c, path, k, seed, 8, tmp_path)
    comps, tips = check_against_references(rows, walked, searched, references(data))
    assert comps > 1 and tips > 0  # the data has more than one component, and tips


@LAMBDA_GROUP
@pytest.mark.parametrize("ranks", [1, 3])
def test_a_sum_over_neighbours_is_one_scatter_add_and_exact(genomes, references, tmp_path, ranks):
    path, _reads, k, _seed = genomes["lambda"]
    g = references("lambda").g
    with Cluster.local(ranks) as c:
        c.run(f'load "{path}" into kmers k={k}\nfield total = 0 on kmers\nfield hits = 0.0 on kmers')
        c.run("cascade spread(kmer) { send add(kmer.neighbours, kmer.count) }\n"
              "cascade add(kmer, x) { set kmer.total = kmer.total + x; set kmer.hits = 0.5 + kmer.hits }")
        (res,) = c.run("start spread(kmers)")
        dump = tmp_path / "t.tsv"
        c.run(f'dump kmers to "{dump}" fields=total,hits')
    counts, totals, hits = {}, {}, {}
    for line in dump.read_text().splitlines():
        kmer, n, t, h = line.split("\t")
        counts[kmer], totals[kmer], hits[kmer] = int(n), int(t), float(h)
    want_t, want_h = dict.fromkeys(g.edges, 0), dict.fromkeys(g.edges, 0.0)
    for y in g.edges:
        for x in g.neighbours(y):
            want_t[x] += counts[y]
            want_h[x] += 0.5
    assert totals == want_t and hits == want_h
    assert res.data["sent"] == sum(want_h.values()) * 2


def test_the_same_fields_on_every_rank_count_and_after_copies(genomes, tmp_path):
    path, _reads, k, _seed = genomes["random"]
    seen = []
    for ranks, extra in ((1, ""), (2, "copy kmers/* from 0 to 1 merge"), (4, "move kmers/A* from 1 to 2 merge")):
        with Cluster.local(ranks) as c:
            c.run(f'load "{path}" into kmers k={k}')
            if extra:
                c.run(extra)
                c.run("rebalance kmers")
            c.run(example("components"))
            dump = tmp_path / f"c{ranks}.tsv"
            c.run(f'dump kmers to "{dump}" fields=comp')
            seen.append(sorted(dump.read_text().splitlines()))
    assert seen[0] == seen[1] == seen[2]


@pytest.mark.mpi
def test_examples_under_mpiexec(genomes, references, tmp_path):
    path, _reads, k, seed = genomes["random"]
    script = tmp_path / "all.ray"
    dump = tmp_path / "fields.tsv"
    script.write_text(f'load "{path}" into kmers k={k}\nlet seed = "{seed}"\nlet depth = 8\n'
                      + "".join(example(n) + "\n" for n in ("components", "search", "distances", "walk", "tips"))
                      + f'dump kmers to "{dump}" fields=comp,depth,dist,step,tip\n')
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = read_fields(dump, ["comp", "depth", "dist", "step", "tip"])
    with Cluster.local(1) as c:
        _rows, walked, searched = run_examples(c, path, k, seed, 8, tmp_path / "..")
    check_against_references(rows, walked, searched, references("random"))


POINT_TO_POINT = """
import sys
from rayscript import Cluster
from rayscript.errors import RayScriptError

path, seed, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Cluster() as c:
    if c is not None:
        c.run(f'load "{path}" into kmers k={k}\\nfield visits = 0 on kmers\\n'
              'cascade fan(kmer, n) { set kmer.visits = kmer.visits + 1\\n'
              '  if n > 0 { send fan(kmer.neighbours, n - 1) } }\\n'
              'cascade ping(kmer) { send ping(kmer.neighbours) }')
        (res,) = c.run(f"start fan(kmers/{seed}, 7)")
        print("fan", res.data["messages"], res.data["rounds"])
        try:
            c.run(f"start ping(kmers/{seed}) max_messages=3000")
        except RayScriptError as exc:
            print("stopped", "past max_messages=3000" in str(exc), str(exc).splitlines()[0])
        (res,) = c.run(f"start fan(kmers/{seed}, 7)")  # the channel holds nothing of the stopped one
        print("again", res.data["messages"])
        out = sys.argv[4]
        c.run(f'dump kmers where visits > 0 to "{out}" fields=visits')
"""


@pytest.mark.mpi
def test_messages_point_to_point_under_mpiexec(genomes, references, tmp_path):
    """Under mpiexec: a cascade from one seed (point to point from its first round) fans out and sums
    exactly as a reference counts the walks of its length; a cascade stopped there leaves nothing on
    the channel for the next one."""
    path, _reads, k, seed = genomes["random"]
    prog, out = tmp_path / "p2p.py", tmp_path / "visits.tsv"
    prog.write_text(POINT_TO_POINT)
    proc = run_mpi(3, sys.executable, str(prog), path, seed, str(k), str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    g = references("random").g
    want: dict[str, int] = {}
    front = {seed: 1}
    for depth in range(8):  # every message to a k-mer adds one visit; a message at n > 0 goes on
        nxt: dict[str, int] = {}
        for x, times in front.items():
            want[x] = want.get(x, 0) + times
            if depth < 7:
                for y in g.neighbours(x):
                    nxt[y] = nxt.get(y, 0) + times
        front = nxt
    total = sum(want.values())
    lines = proc.stdout.split("\n")
    assert f"fan {total} 1" in lines and lines[1].startswith("stopped True") and f"again {total}" in lines, proc.stdout
    got = {x: r["visits"] for x, r in read_fields(out, ["visits"]).items()}
    assert got == {x: 2 * n for x, n in want.items()}  # two runs of fan


@pytest.mark.parametrize("ranks", [1, 3])
def test_the_paths_a_batch_may_take_give_the_same_fields(genomes, tmp_path, monkeypatch, ranks):
    """A batch of a few messages runs through the body compiled to Python over one message, a large one
    as numpy over the batch; the last messages anywhere go point to point, the rest in rounds.  Forced
    one way and then the other (and back and forth between point to point and rounds), every example
    and a body of every kind of expression give the same fields and the same emitted values."""
    from rayscript.genomics import cascades

    path, _reads, k, seed = genomes["random"]
    # every kind of expression; the outcome does not hang on the order messages come in (the sums
    # are of halves and quarters, exact in any order)
    odd = ("field acc = 0.0 on kmers\nfield hits = 0 on kmers\n"
           "cascade odd(kmer, a, b) {\n"
           "  let q = a / b\n  let r = a % b\n  let m = min(a, kmer.count) - max(b, 2) + abs(a - 7)\n"
           "  if a >= 9 or (not (kmer.count > 1) and b == 0 and a > 0) { stop }\n"
           "  set kmer.hits = kmer.hits + 1\n  set kmer.acc = kmer.acc + q * 0.5 - r\n"
           "  emit m\n  emit kmer.degree * 10 + kmer.in_degree - kmer.out_degree\n"
           "  if a % 2 == 0 { send odd(kmer.neighbours, a + 1, (a + b) % 3 * 2) } else {\n"
           "    send odd(kmer.next, a + 1, 0) }\n"
           "  if a == 3 { send tick(kmer.prev) }\n  if a == 4 { send tick(kmer.id) }\n"
           f"  if a == 5 {{ send tick(kmers/{seed}) }}\n"
           "}\n"
           "cascade tick(kmer) { set kmer.hits = kmer.hits + 100 }\n")
    seen = []
    # (few messages handled one by one, point to point below, back to rounds above)
    for small, below, above in ((10**9, 0, 0), (0, 10**9, 10**9), (0, 0, 0), (10**9, 10**9, 10**9),
                                (4, 10**9, 20)):
        monkeypatch.setattr(cascades, "SMALL", small)
        monkeypatch.setattr(cascades, "QUIET_BELOW", below)
        monkeypatch.setattr(cascades, "QUIET_ABOVE", above)
        with Cluster.local(ranks) as c:
            rows, _walked, _searched = run_examples(c, path, k, seed, 8, tmp_path)
            c.run(odd)
            (res,) = c.run(f"start odd(kmers/{seed}, 0, 0)")
            dump = tmp_path / "odd.tsv"
            c.run(f'dump kmers to "{dump}" fields=acc,hits')
            text = sorted(dump.read_text().splitlines())  # as written: inf and nan compare as text
            seen.append((rows, text, res.data["messages"], res.data["emitted"]))
    assert all(s == seen[0] for s in seen[1:])
    text = "\n".join(seen[0][1])
    assert seen[0][2] > 50 and 0 < seen[0][3]["count"] < 2 * seen[0][2]  # some stopped at the test
    assert max(int(line.split("\t")[3]) for line in seen[0][1]) > 1  # some k-mers were sent to twice
    assert "inf" in text and "nan" in text  # divisions by zero, as numpy makes them


def test_messages_to_a_rank_that_holds_none_of_the_set_are_dropped(tmp_path):
    """Point to point, a few messages to absent k-mers whose owner holds nothing of the set: dropped
    and counted there, like anywhere else."""
    path = write_fasta(tmp_path / "t.fa", ["ACGTTGCAAGGCTTACC"])  # 3 k-mers on 4 ranks
    with Cluster.local(4) as c:
        c.run(f'load "{path}" into kmers k=15\nfield n = 0 on kmers\ncascade q(kmer) {{ set kmer.n = 1 }}\n'
              "cascade p(kmer, i) {\n  if i < 30 { if kmer.out_degree == 1 { send p(kmer.next, i + 1) } else {\n"
              "    send p(kmers/ACGTTGCAAGGCTTA, i + 1) } }\n"
              "  send q(kmer.id + 1); send q(kmer.id + 7); send q(kmer.id * 3); send q(kmer.id + 99) }")
        assert sum(1 for line in c.run("count kmers")[0].text.splitlines()[-4:] if line.split()[1] == "0") >= 1
        (res,) = c.run("start p(kmers/ACGTTGCAAGGCTTA, 0)")
    assert res.data["sent"] == 30 + 4 * 31 and res.data["messages"] + res.data["dropped"] == 31 + 4 * 31
    assert res.data["dropped"] > 0


def test_a_rank_failing_while_messages_go_point_to_point_stops_them_all(small):
    """A chain (the last messages, point to point) that meets an error on one rank: every rank stops
    within the statement, the error names the rank, no field is half changed, and the cluster goes on."""
    c = small
    c.run("field seen = 0 on kmers\n"
          "cascade bad(kmer, i) { set kmer.seen = 1; if i == 6 { send bad(kmers/ACGT, i) }; "
          "send bad(kmer.next, i + 1) }")
    with pytest.raises(RayScriptError, match=r"rank \d.*the key has 4 bases"):
        c.run(f"start bad(kmers/{SMALL[:11]}, 0)")
    assert c.run("count kmers where seen == 1")[0].data["distinct"] == 0
    assert c.run("count kmers")[0].data["distinct"] == len(SMALL) - 10


# --- fields, results, limits and errors ----------------------------------------------------------------

SMALL = "ACGTTGCAAGGCTTACCGATAGGCTTAACCGTAGGCATTACG"


@pytest.fixture
def small(tmp_path):
    path = write_fasta(tmp_path / "s.fa", [SMALL])
    with Cluster.local(2) as c:
        c.run(f'load "{path}" into kmers k=11')
        yield c


def test_fields_in_where_get_dump_and_emit(small, tmp_path):
    c = small
    c.run("field hops = -1 on kmers\nfield w = 0.5 on kmers")
    (res,) = c.run("cascade h(kmer, d) { if kmer.hops >= 0 { stop }; set kmer.hops = d; set kmer.w = d / 2; "
                   f"emit d; send h(kmer.next, d + 1) }}\nstart h(kmers/{SMALL[:11]}, 0)")[-1:]
    n = len(SMALL) - 11 + 1
    assert res.data["messages"] == n and res.data["sent"] == n - 1
    assert res.data["emitted"] == {"count": n, "sum": n * (n - 1) // 2, "min": 0, "max": n - 1}
    assert c.run("count kmers where hops >= 10")[0].data["distinct"] == n - 10
    assert c.run("count kmers where w > 4.5")[0].data["distinct"] == n - 10
    out = tmp_path / "h.tsv"
    c.run(f'dump kmers where hops == 3 to "{out}" fields=hops,w')
    kmer = SMALL[3:14]
    assert out.read_text() == f"{min(kmer, revcomp(kmer))}\t1\t3\t1.5\n"
    (got,) = c.run(f"get kmers/{kmer}")
    assert got.data["fields"] == {"hops": 3, "w": 1.5} and "hops=3 w=1.5" in got.text
    # a move carries the fields with the k-mers
    c.run("move kmers/* from 0 to 1 merge")
    assert c.run("count kmers where hops >= 10")[0].data["distinct"] == n - 10
    # defined again with the same type: the values stay; another type: a fresh column
    c.run("field hops = 0 on kmers")
    assert c.run("count kmers where hops >= 10")[0].data["distinct"] == n - 10
    c.run("drop field w on kmers")
    with pytest.raises(RayScriptError, match="has no field w"):
        c.run(f'dump kmers to "{out}" fields=w')


def test_a_cascade_past_its_limit_stops_everywhere_and_says_so(small):
    c = small
    c.run("field n = 0 on kmers\ncascade ping(kmer) { set kmer.n = kmer.n + 1; send ping(kmer.neighbours) }")
    with pytest.raises(RayScriptError, match=r"stopped on every rank: past max_messages=500.*fields it already set"):
        c.run("start ping(kmers) max_messages=500")
    assert c.run("count kmers where n >= 1")[0].data["distinct"] > 0  # what it set stays
    with pytest.raises(RayScriptError, match=r"past its timeout \(0.2 s\)"):
        c.run("start ping(kmers) timeout=200ms")
    # the cluster goes on
    assert c.run("count kmers")[0].data["distinct"] == len(SMALL) - 10


def test_messages_to_kmers_not_in_the_store_are_dropped_and_counted(small):
    c = small
    c.run("cascade one(kmer) { send two(kmers/AAAAAAAAAAA) }\ncascade two(kmer) { emit 1 }")
    (res,) = c.run("start one(kmers)")
    assert res.data["dropped"] == len(SMALL) - 10 and res.data["emitted"]["count"] == 0


BAD = [
    ("field c = 0 on kmers\ncascade f(kmer) { if kmer.cc > 0 { stop } }", 2, 22, "unknown field 'cc'"),
    ("field c = 0 on kmers\ncascade f(kmer) { set kmer.c = 0.5 }", 2, 19, "holds whole numbers"),
    ("cascade f(kmer) { send g(kmer.next) }", 1, 19, "unknown cascade 'g'"),
    ("cascade f(kmer, a) { send f(kmer.next) }", 1, 22, "takes 1 argument after the target, not 0"),
    ("cascade f(kmer, a) { emit b }", 1, 27, "unknown name 'b'"),
    ("cascade f(kmer) { stop }\nstart f(kmers, 1)", 2, 1, "takes 0 arguments after the k-mers, not 1"),
    ("start nothing(kmers)", 1, 1, "unknown cascade 'nothing'"),
    ("cascade f(kmer) { send f(kmer.count) ; emit kmer.next }", 1, 45, "names k-mers to send to"),
    ("cascade f(kmer) { if kmer.count { stop } }", 1, 22, "a condition is expected"),
    ("field count = 0 on kmers", 1, 7, "a property every k-mer has"),
]


@pytest.mark.parametrize("text, line, column, message", BAD)
def test_errors_in_cascades_are_found_before_anything_runs_where_they_are(text, line, column, message):
    from rayscript.errors import ScriptError
    from rayscript.statements import check, parse

    try:
        errors = check(parse(text, "bad.ray"), 2, text + "\n")
    except ScriptError as err:
        errors = [err]
    assert [(e.location.line, e.location.column) for e in errors if message in e.message] == [(line, column)], \
        [str(e) for e in errors]
    assert len(errors) == 1, [str(e) for e in errors]


def test_rayscript_check_names_the_file_line_and_column(tmp_path):
    import subprocess

    script = tmp_path / "bad.ray"
    script.write_text("field c = 0 on kmers\ncascade f(kmer) { if kmer.cc > 0 { stop } }\n")
    proc = subprocess.run([*rayscript_cmd(), "check", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "bad.ray:2:22: unknown field 'cc'" in proc.stderr and "^" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_definitions_last_for_the_session(small):
    c = small
    c.run("field seen = 0 on kmers")
    c.run("cascade mark(kmer) { set kmer.seen = 1 }")
    (res,) = c.run("start mark(kmers where count >= 1)")  # another call: the cascade and field are known
    assert res.data["messages"] == len(SMALL) - 10
    c.run("cascade mark(kmer) { set kmer.seen = 2 }")  # defined again: replaced
    c.run("start mark(kmers)")
    assert c.run("count kmers where seen == 2")[0].data["distinct"] == len(SMALL) - 10


def test_fields_travel_in_checkpoints(small, tmp_path):
    c = small
    c.run("field d = -1 on kmers\ncascade h(kmer, x) { set kmer.d = x; send h(kmer.next, x + 1) }")
    c.run(f"start h(kmers/{SMALL[:11]}, 0)")
    c.run(f'save to "{tmp_path / "ck"}"')
    with Cluster.local(3) as other:
        other.run(f'restore from "{tmp_path / "ck"}"')
        out = tmp_path / "d.tsv"
        other.run(f'dump kmers to "{out}" fields=d')
        values = sorted(int(line.split("\t")[2]) for line in out.read_text().splitlines())
        # a cascade over the restored store (the field known only from the checkpoint)
        (res,) = other.run("cascade inc(kmer) { set kmer.d = kmer.d + 10 }\nstart inc(kmers)")[-1:]
        other.run(f'dump kmers to "{out}" fields=d')
        after = sorted(int(line.split("\t")[2]) for line in out.read_text().splitlines())
    assert values == list(range(len(SMALL) - 10))
    assert res.data["messages"] == len(SMALL) - 10 and after == [v + 10 for v in values]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_long_cascade_shows_how_far_it_got(tmp_path, monkeypatch):
    from rayscript.genomics import cascades

    monkeypatch.setattr(cascades, "PROGRESS_EVERY", 0.0)
    calls = []

    class Recorder:
        def __call__(self, done, total, what="", unit=""):
            calls.append((done, total, what, unit))

        def finish(self):
            pass

    _genome, reads = random_reads(3, genome_len=600, n=80, error=0.0)
    path = write_fasta(tmp_path / "r.fa", reads)
    with Cluster.local(2, progress=Recorder()) as c:
        c.run(f'load "{path}" into kmers k=15\n' + example("components"))
    mine = [x for x in calls if x[2].startswith("cascade label")]
    assert mine and all(0 <= done <= total and unit == "messages" for done, total, _, unit in mine)
    assert mine[-1][0] > mine[0][0]  # it moves
