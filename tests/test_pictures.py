"""Pictures of samples and assemblies: compare's Jaccard heatmap, matrix's principal components,
count paths' Nx curves beside other assemblies with N50, total length and NGA50; and what is refused."""

import re
import sys

import numpy as np
import pytest

from rayscript import Cluster
from rayscript.errors import RayScriptError, ScriptSyntaxError
from rayscript.genomics import contigs
from rayscript.statements import parse
from support.genomes import haplotypes, write_fasta, write_reads
from support.images import check_picture


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Four samples of one 30 kb genome, 0 %, 1 %, 2 % and 5 % of its bases changed."""
    tmp = tmp_path_factory.mktemp("samples")
    base = haplotypes(30_000, 0.0, seed=1)[0]
    rng = np.random.default_rng(3)
    files = {}
    for i, (name, changed) in enumerate([("a", 0.0), ("b", 0.01), ("c", 0.02), ("d", 0.05)]):
        genome = base.copy()
        where = rng.random(len(genome)) < changed
        genome[where] = (genome[where] + 1) % 4
        files[name] = write_reads(tmp / f"{name}.fq", [genome], 10, seed=i)
    return files


def _load(c, samples):
    for name, path in samples.items():
        c.run(f'load "{path}" into kmers.{name} k=21')


def test_compare_draws_the_jaccard_heatmap_in_the_order_of_clustering(samples, tmp_path):
    with Cluster.local(2) as c:  # the samples loaded once, drawn in both formats
        _load(c, samples)
        drawn = {suffix: c.run(f'compare kmers.d, kmers.a, kmers.c, kmers.b to "{tmp_path}/distances{suffix}" min=2')[0]
                 for suffix in (".png", ".svg")}
        (plain,) = c.run(f'compare kmers.d, kmers.a, kmers.c, kmers.b to "{tmp_path}/d.tsv" min=2')
    for suffix, res in drawn.items():
        out = tmp_path / f"distances{suffix}"
        check_picture(out)
        assert res.data == plain.data  # the numbers are the table's
        first = res.text.splitlines()[0]
        assert first.startswith(f"drew the Jaccard indexes of 4 sets to {out} (in the order of clustering: ")
        order = first.split(": ")[1].rstrip(")").split(", ")
        assert sorted(order) == ["a", "b", "c", "d"]
        assert abs(order.index("a") - order.index("b")) == 1  # the two closest stand side by side
        assert order[0] == "d" or order[-1] == "d"  # the farthest at an end
    assert (tmp_path / "d.tsv").read_text().startswith("set1\tset2\tshared\tjaccard")


def test_matrix_draws_the_principal_components_of_presence(samples, tmp_path):
    out = tmp_path / "pca.png"
    with Cluster.local(3) as c:
        _load(c, samples)
        (drawn,) = c.run(f'matrix kmers.a, kmers.b, kmers.c, kmers.d to "{out}" min=2 min_sets=1')
        c.run(f'matrix kmers.a, kmers.b, kmers.c, kmers.d to "{tmp_path}/m.tsv" min=2 presence')
    check_picture(out)
    table = np.loadtxt(tmp_path / "m.tsv", skiprows=1, usecols=(1, 2, 3, 4))
    assert drawn.data["rows"] == len(table)
    # the same components as a PCA of the written presence table: samples as rows, k-mers as columns
    x = table.T - table.T.mean(axis=0)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    want = u[:, :2] * sv[:2]
    got = np.array(drawn.data["components"])
    for j in range(2):
        assert np.allclose(np.abs(got[:, j]), np.abs(want[:, j]), rtol=1e-6, atol=1e-6)
    assert np.allclose(drawn.data["explained"], (sv[:2] ** 2) / (sv ** 2).sum())
    assert drawn.text.startswith(f"drew {out}: the first two principal components")


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    """A 20 kb genome, its reads, and another 'assembly': the genome cut into 10 pieces of 2 kb."""
    tmp = tmp_path_factory.mktemp("assembly")
    (genome,) = haplotypes(20_000, 0.0, seed=5)
    reference = write_fasta(tmp / "genome.fa", genome)
    reads = write_reads(tmp / "reads.fq", [genome], 30, error=0.002, seed=6)
    pieces = tmp / "pieces.fa"
    bases = np.frombuffer(b"ACGT", np.uint8)[genome].tobytes().decode()
    pieces.write_text("".join(f">p{i}\n{bases[i * 2000:(i + 1) * 2000]}\n" for i in range(10)))
    return reads, reference, pieces


def test_count_paths_draws_nx_beside_other_assemblies(assembled, tmp_path):
    reads, reference, pieces = assembled
    out = tmp_path / "nx.png"
    with Cluster.local(2) as c:
        c.run(f'load "{reads}" into kmers k=31\nassemble kmers into paths/contig')
        (own,) = c.run("count paths")
        (drawn,) = c.run(f'count paths compare "{pieces}" to "{out}" reference="{reference}"')
        (table,) = c.run(f'count paths compare "{pieces}" to "{tmp_path}/nx.tsv"')
    check_picture(out)
    paths, other = drawn.data["assemblies"]
    assert paths["assembly"] == "paths" and paths["n50"] == own.data["n50"] and paths["total"] == own.data["total"]
    assert other == {"assembly": "pieces.fa", "contigs": 10, "total": 20_000, "n50": 2000, "longest": 2000,
                     "nga50": 2000}
    assert paths["nga50"] > 10_000  # one or a few contigs that align to the genome
    assert drawn.data["reference_length"] == 20_000
    assert "NGA50" in drawn.text and "pieces.fa" in drawn.text
    tsv = (tmp_path / "nx.tsv").read_text().splitlines()
    assert tsv[0] == "assembly\tcontigs\ttotal\tN50\tlongest" and tsv[2] == "pieces.fa\t10\t20000\t2000\t2000"
    assert table.text.startswith(f"wrote 2 assemblies to {tmp_path}/nx.tsv")


def test_nga50_breaks_blocks_at_misassemblies():
    rng = np.random.default_rng(9)
    ref = "".join(np.array(list("ACGT"))[rng.integers(0, 4, 10_000)])
    comp = str.maketrans("ACGT", "TGCA")
    chimera = ref[:3000] + ref[6000:8000]  # a jump: two blocks
    flipped = ref[8000:10_000].translate(comp)[::-1]  # the reverse strand: one block
    snps = ref[:5000][:2500] + ("A" if ref[2500] != "A" else "C") + ref[2501:5000]  # a substitution: one block
    first, second = sorted(contigs.aligned_blocks([chimera], [ref]).tolist())
    assert abs(first - 2000) <= 2 and abs(second - 3000) <= 2  # a base at the joint may match either side
    assert contigs.aligned_blocks([flipped], [ref]).tolist() == [2000]
    assert contigs.aligned_blocks([snps], [ref]).tolist() == [5000]
    assert contigs.n_value([5000, 3000, 2000], 10_000) == 5000
    assert contigs.n_value([3000, 1000], 10_000) == 0  # never half of the reference


@pytest.mark.parametrize("text, message", [
    ('count kmers to "x.png"', "'count kmers' takes no compare, to or reference=: they compare assemblies"),
    ('count kmers compare "a.fa"', "'count kmers' takes no compare, to or reference="),
    ('count paths to "nx.png" reference=5', "reference= takes a file path in quotes, not 5"),
    ('count paths to "nx.png" referenc="g.fa"', "'count' has no option 'referenc=' (options: reference=)"),
])
def test_bad_count_paths_statements_are_refused_where_they_are(text, message):
    with Cluster.local(1) as c, pytest.raises((ScriptSyntaxError, RayScriptError), match=re.escape(message)) as err:
        c.run(text)
    assert "<string>:1:" in str(err.value)


def test_a_missing_assembly_is_named(tmp_path):
    with Cluster.local(1) as c:
        with pytest.raises(RayScriptError, match=f"{tmp_path}/none.fa") as err:
            c.run(f'count paths compare "{tmp_path}/none.fa"')
        assert "<string>:1:1" in str(err.value) and "Traceback" not in str(err.value)


def test_without_matplotlib_each_picture_is_one_sentence_and_the_numbers(samples, assembled, tmp_path,
                                                                         monkeypatch):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    with Cluster.local(2) as c:
        _load(c, {k: samples[k] for k in "ab"})
        (cmp,) = c.run(f'compare kmers.a, kmers.b to "{tmp_path}/j.png"')
        (pca,) = c.run(f'matrix kmers.a, kmers.b to "{tmp_path}/p.png"')
        (nx,) = c.run(f'count paths compare "{assembled[2]}" to "{tmp_path}/nx.png"')
    for res, name in ((cmp, "j.png"), (pca, "p.png"), (nx, "nx.png")):
        first = res.text.splitlines()[0]
        assert first == (f"could not draw {tmp_path}/{name}: drawing needs matplotlib, which comes with the extra "
                         "rayscript[plot]: pip install 'rayscript[plot]'")
        assert not (tmp_path / name).exists()
    assert cmp.data[0]["jaccard"] > 0 and len(pca.data["components"]) == 2
    assert nx.data["assemblies"][1]["n50"] == 2000


def test_parse_keeps_the_new_parts():
    (st,) = parse('count paths compare "a.fa", "b.fa" to "nx.png" reference="g.fa"')
    assert st.others == ("a.fa", "b.fa") and st.path == "nx.png" and dict(st.options) == {"reference": "g.fa"}


def test_the_docs_show_the_pictures_scripts_pictures_makes():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "pictures.md").read_text()
    shown = set(re.findall(r"\(images/([\w-]+\.png)\)", page))
    made = set(re.findall(r'\$out/([\w-]+\.png)', (root / "scripts" / "pictures").read_text()))
    assert shown == made and len(made) == 7, (shown, made)
    for name in made:
        check_picture(root / "docs" / "images" / name)


def test_empty_stores_draw_empty_pictures_without_a_fault(tmp_path):
    with Cluster.local(2) as c:
        (nx,) = c.run(f'count paths to "{tmp_path}/nx.png"')
        (spectrum,) = c.run(f'histogram kmers to "{tmp_path}/s.png"')
    assert nx.data["assemblies"][0]["contigs"] == 0 and "no model: the histogram is empty" in spectrum.text
    for name in ("nx.png", "s.png"):
        raw = (tmp_path / name).read_bytes()
        assert raw.startswith(b"\x89PNG") and len(raw) > 5000
