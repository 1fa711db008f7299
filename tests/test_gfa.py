"""dump paths as GFA1 and with BCALM2's unitig headers: segments equal the FASTA contigs, links equal
those of the test's own de Bruijn graph builder; gfapy and Bandage read the graph."""

import os
import random
import subprocess

import pytest

from conftest import need_tool, rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from test_assembly import canon, rc, unitigs


def planted(rng, length, repeat, copies):
    """A random genome with one repeat of ``repeat`` bases planted ``copies`` times."""
    rep = "".join(rng.choice("ACGT") for _ in range(repeat))
    parts = ["".join(rng.choice("ACGT") for _ in range(length // (copies + 1))) for _ in range(copies + 1)]
    return rep.join(parts)


def tiled(genome, length=80, step=2):
    return [genome[i:i + length] if (i // step) % 2 else rc(genome[i:i + length])
            for i in range(0, len(genome) - length + 1, step)]


def reference_links(reads, seqs, k):
    """The links between these unitigs in the reads' de Bruijn graph: (U, V) for oriented sequences
    where the last k-mer of U is followed in a read by the first k-mer of V; each link once, as the
    smaller of itself and its mirror (rc V, rc U)."""
    joined = set()
    for r in reads:
        for i in range(len(r) - k):
            joined |= {(r[i:i + k], r[i + 1:i + 1 + k]), (rc(r[i + 1:i + 1 + k]), rc(r[i:i + k]))}
    oriented = [s for u in seqs for s in (u, rc(u))]
    return {min((u, v), (rc(v), rc(u))) for u in oriented for v in oriented if (u[-k:], v[:k]) in joined}


def read_gfa(text):
    segs, links = {}, set()
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "S":
            segs[f[1]] = (f[2], dict(t.split(":", 1) for t in f[3:]))
        elif f[0] == "L":
            links.add((f[1], f[2], f[3], f[4], f[5]))
    return segs, links


def oriented(seq, o):
    return seq if o == "+" else rc(seq)


def fasta(text):
    return {r.split()[0]: "".join(r.splitlines()[1:]) for r in text.split(">")[1:]}


@pytest.fixture(scope="module")
def repeat_reads(tmp_path_factory):
    rng = random.Random(11)
    genome = planted(rng, 2400, 150, 3)
    reads = tiled(genome)
    path = tmp_path_factory.mktemp("gfa") / "reads.fq"
    write_fastq(path, reads)
    return reads, path


@pytest.mark.parametrize(("k", "ranks"), [(21, 1), (31, 3), (24, 2)])
def test_gfa_segments_are_the_contigs_and_links_those_of_the_graph(repeat_reads, tmp_path, k, ranks):
    reads, path = repeat_reads
    with Cluster.local(ranks) as c:
        c.run(f'load "{path}" into kmers k={k}\n'
              "assemble kmers into paths/u min_count=1 min_length=1 clean=false")
        (res,) = c.run(f'dump paths/u* to "{tmp_path}/g.gfa"')
        c.run(f'dump paths/u* to "{tmp_path}/g.fa"')
    text = (tmp_path / "g.gfa").read_text()
    assert text.startswith("H\tVN:Z:1.0\n")
    segs, links = read_gfa(text)
    contigs = fasta((tmp_path / "g.fa").read_text())
    assert {n: s for n, (s, _t) in segs.items()} == contigs
    assert sorted(canon(s) for s in contigs.values()) == unitigs(reads, k)
    for seq, tags in segs.values():
        assert tags["LN"] == f"i:{len(seq)}" and int(tags["KC"][2:]) > 0 and float(tags["dp"][2:]) > 0
    assert all(cigar == f"{k - 1}M" for *_x, cigar in links)
    got = {min((oriented(segs[a][0], oa), oriented(segs[b][0], ob)),
               (rc(oriented(segs[b][0], ob)), rc(oriented(segs[a][0], oa)))) for a, oa, b, ob, _c in links}
    assert len(got) == len(links) == res.data["links"] > 0
    assert got == reference_links(reads, list(contigs.values()), k)


def test_bcalm_headers_name_every_link_from_both_ends(repeat_reads, tmp_path):
    reads, path = repeat_reads
    k = 25
    with Cluster.local(2) as c:
        c.run(f'load "{path}" into kmers k={k}\nassemble kmers into paths/u min_count=1 min_length=1 clean=false')
        c.run(f'dump paths/u* to "{tmp_path}/u.fa" headers=bcalm')
        paths = {p: c.get(f"paths/{p}") for p in fasta((tmp_path / "u.fa").read_text())}
    records = (tmp_path / "u.fa").read_text().split(">")[1:]
    seqs, links = {}, set()
    for rec in records:
        head, seq = rec.rstrip("\n").split("\n")  # the sequence on one line
        name, ln, kc, km, *ls = head.split()
        seqs[name] = seq
        assert ln == f"LN:i:{len(seq)}"
        assert kc == f"KC:i:{round(paths[name].coverage * (len(seq) - k + 1))}"
        assert km == f"km:f:{paths[name].coverage:.1f}"
        for field in ls:
            _l, o, other, p = field.split(":")
            links.add((name, o, other, p))
    # a link is listed at both of its ends: (a, o, b, p) and its mirror (b, -p, a, -o)
    flip = {"+": "-", "-": "+"}
    assert all((b, flip[p], a, flip[o]) in links for a, o, b, p in links)
    got = {min((oriented(seqs[a], o), oriented(seqs[b], p)), (rc(oriented(seqs[b], p)), rc(oriented(seqs[a], o))))
           for a, o, b, p in links}
    assert got == reference_links(reads, list(seqs.values()), k)


def test_gfapy_and_bandage_read_the_graph(repeat_reads, tmp_path):
    gfapy = pytest.importorskip("gfapy", reason="gfapy is in the test extra (pip install -e '.[test]')")
    _reads, path = repeat_reads
    with Cluster.local(2) as c:
        c.run(f'load "{path}" into kmers k=31\nassemble kmers into paths/asm')
        (res,) = c.run(f'dump paths/asm* to "{tmp_path}/asm.gfa"')
    g = gfapy.Gfa.from_file(str(tmp_path / "asm.gfa"))
    g.validate()
    assert len(g.segments) == res.data["paths"] and len(g.dovetails) == res.data["links"] > 0
    assert all(len(s.sequence) == s.LN for s in g.segments)
    bandage = need_tool("Bandage", "bandage")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path))
    info = subprocess.run([bandage, "info", str(tmp_path / "asm.gfa")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert info.returncode == 0, info.stderr
    fields = dict(line.split(":", 1) for line in info.stdout.splitlines() if ":" in line)
    assert int(fields["Node count"]) == res.data["paths"]
    assert int(fields["Edge count"]) == res.data["links"]
    image = subprocess.run([bandage, "image", str(tmp_path / "asm.gfa"), str(tmp_path / "asm.png")],
                           capture_output=True, text=True, env=env, timeout=60)
    assert image.returncode == 0 and (tmp_path / "asm.png").stat().st_size > 1000


def test_a_circular_contig_links_to_itself(tmp_path):
    rng = random.Random(5)
    genome = "".join(rng.choice("ACGT") for _ in range(600))
    write_fastq(tmp_path / "c.fq", tiled(genome + genome[:79], 80, 3))
    with Cluster.local(2) as c:
        c.run(f'load "{tmp_path}/c.fq" into kmers k=21\nassemble kmers into paths/c')
        c.run(f'dump paths/c* to "{tmp_path}/c.gfa"')
    segs, links = read_gfa((tmp_path / "c.gfa").read_text())
    assert list(segs) == ["c-1"] and len(segs["c-1"][0]) == 600 + 20
    assert links in ({("c-1", "+", "c-1", "+", "20M")}, {("c-1", "-", "c-1", "-", "20M")})


def test_bad_requests_are_refused(repeat_reads, tmp_path):
    _reads, path = repeat_reads
    with Cluster.local(2) as c:
        with pytest.raises(RayScriptError, match="no headers="):
            c.run(f'dump kmers to "{tmp_path}/k.tsv" headers=bcalm')
        with pytest.raises(RayScriptError, match="headers=bcalm is for FASTA"):
            c.run(f'dump paths/* to "{tmp_path}/x.gfa" headers=bcalm')
        (res,) = c.run(f'dump paths/* to "{tmp_path}/empty.gfa"')
        assert res.data["paths"] == 0 and (tmp_path / "empty.gfa").read_text() == "H\tVN:Z:1.0\n"
        c.run(f'load "{path}" into kmers k=21\nassemble kmers into paths/a')
        c.run(f'load "{path}" into kmers.big k=31\nassemble kmers.big into paths/b')
        with pytest.raises(RayScriptError, match="different k \\(21, 31\\)"):
            c.run(f'dump paths/* to "{tmp_path}/mixed.gfa"')
        c.run(f'dump paths/* to "{tmp_path}/mixed.fa"')  # plain FASTA needs no links


@pytest.mark.mpi
def test_the_same_graph_under_mpiexec(repeat_reads, tmp_path):
    _reads, path = repeat_reads
    with Cluster.local(1) as c:
        c.run(f'load "{path}" into kmers k=27\nassemble kmers into paths/g\ndump paths/g* to "{tmp_path}/one.gfa"')
    script = tmp_path / "a.ray"
    script.write_text(f'load "{path}" into kmers k=27\nassemble kmers into paths/g\n'
                      f'dump paths/g* to "{tmp_path}/three.gfa"\n')
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "three.gfa").read_text() == (tmp_path / "one.gfa").read_text()
