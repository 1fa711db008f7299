"""The k-mer spectrum's model (GenomeScope 2.0's negative binomials) against known truth: synthetic
haploid and diploid genomes (a random genome, and a copy with a known number of substitutions),
reads of both strands with 1 % substitution errors, at several coverages, counted by the store and
histogrammed by `histogram`; and its picture."""

import sys

import numpy as np
import pytest

from rayscript import Cluster
from rayscript.genomics.spectrum import fit_spectrum
from support.genomes import haplotypes, write_reads
from support.images import check_picture

LENGTH = 100_000


def _model(tmp_path, heterozygosity, coverage, k=21, error=0.01, seed=7):
    genomes = haplotypes(LENGTH, heterozygosity, seed=seed)
    reads = write_reads(tmp_path / "reads.fq", genomes, coverage, error=error, seed=seed + 1)
    with Cluster.local(2) as c:
        c.run(f'load "{reads}" into kmers k={k}')
        (res,) = c.run("histogram kmers")
    return res


@pytest.mark.parametrize(("heterozygosity", "coverage"), [
    (0.0, 12), (0.0, 30), (0.0, 60),  # haploid
    (0.002, 15), (0.005, 30), (0.01, 15), (0.01, 40), (0.02, 25),  # diploid: coverage of each haplotype
])
def test_the_model_finds_genome_size_and_heterozygosity(tmp_path, heterozygosity, coverage):
    res = _model(tmp_path, heterozygosity, coverage)
    model = res.data["model"]
    assert model["fitted"], model["reason"]
    assert abs(model["genome_size"] / LENGTH - 1) < 0.05, model
    assert abs(model["heterozygosity"] - heterozygosity) < 0.002, model
    assert model["ploidy"] == (2 if heterozygosity else 1)
    assert abs(model["error_rate"] - 0.01) < 0.002, model
    # k-mer coverage of one haplotype: reads' coverage times (100 - 21 + 1) / 100, less the k-mers errors spoil
    assert abs(model["coverage"] / (coverage * 0.8 * 0.99 ** 21) - 1) < 0.05, model
    assert model["fit"] > 0.9
    assert "genome size" in res.text and "heterozygosity" in res.text and f"{model['genome_size']:,}" in res.text


def test_other_k_and_error_rates(tmp_path):
    res = _model(tmp_path, 0.008, 25, k=31, error=0.003, seed=3)
    model = res.data["model"]
    assert abs(model["genome_size"] / LENGTH - 1) < 0.05 and abs(model["heterozygosity"] - 0.008) < 0.002, model
    assert abs(model["error_rate"] - 0.003) < 0.001, model


def test_no_model_where_there_is_no_peak_or_too_little():
    empty = fit_spectrum([], [], 21)
    assert not empty.fitted and "empty" in empty.reason and empty.genome_size is None
    once = fit_spectrum([1], [50_000], 21)  # a genome given once: every k-mer seen once
    assert not once.fitted and "peak" in once.reason and once.heterozygosity is None
    few = fit_spectrum([1, 2, 10, 11], [100, 20, 30, 40], 21)
    assert not few.fitted and "too little data" in few.reason
    counts = np.arange(1, 200)
    falling = fit_spectrum(counts, (1e6 * counts ** -3.0).astype(np.int64) + 1, 21)  # errors only
    assert not falling.fitted and falling.error_rate is None
    assert "no model" in falling.summary()


def test_histogram_says_no_model_instead_of_numbers(tmp_path):
    with Cluster.local(2) as c:
        c.run("put kmers/AAAAA count=4 on 0\nput kmers/AAAAC count=3 on 1")
        (res,) = c.run("histogram kmers")
    assert res.text.splitlines()[:2] == ["3 1", "4 1"]
    assert res.text.splitlines()[2].startswith("no model: too little data")
    assert res.data[3] == 1 and res.data["model"]["fitted"] is False
    assert res.data["model"]["genome_size"] is None


def test_the_spectrum_s_picture(tmp_path):
    genomes = haplotypes(LENGTH, 0.01)
    reads = write_reads(tmp_path / "reads.fq", genomes, 20)
    with Cluster.local(2) as c:  # one store drawn in every format
        c.run(f'load "{reads}" into kmers k=21')
        drawn = {suffix: c.run(f'histogram kmers to "{tmp_path}/spectrum{suffix}"')[0]
                 for suffix in (".png", ".svg", ".pdf")}
        (plain,) = c.run("histogram kmers")
        (text,) = c.run(f'histogram kmers to "{tmp_path}/histo.tsv"')
    for suffix, res in drawn.items():
        out = tmp_path / f"spectrum{suffix}"
        check_picture(out)
        assert res.text.startswith("drew the spectrum of ") and "genome size" in res.text
        assert res.data == {**plain.data, "picture": str(out)}
    lines = (tmp_path / "histo.tsv").read_text().splitlines()  # Jellyfish's lines, nothing else
    assert all(len(line.split()) == 2 for line in lines) and len(lines) == len(plain.data) - 1
    assert text.text.startswith("wrote ")


def test_a_spectrum_without_a_model_is_drawn_too(tmp_path):
    out = tmp_path / "few.png"
    with Cluster.local(1) as c:
        c.run("put kmers/AAAAA count=4 on 0")
        c.run(f'histogram kmers to "{out}"')
    check_picture(out)


def test_without_matplotlib_the_numbers_still_come(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    genomes = haplotypes(LENGTH, 0.0)
    reads = write_reads(tmp_path / "reads.fq", genomes, 20)
    with Cluster.local(2) as c:
        c.run(f'load "{reads}" into kmers k=21')
        (res,) = c.run(f'histogram kmers to "{tmp_path}/s.png"')
    assert not (tmp_path / "s.png").exists()
    first = res.text.splitlines()[0]
    assert first.startswith(f"could not draw {tmp_path}/s.png: ") and "rayscript[plot]" in first
    assert res.data["model"]["fitted"] and res.data["picture"] is None
    assert abs(res.data["model"]["genome_size"] / LENGTH - 1) < 0.05
