"""Nothing duplicated, clobbered or silently dropped; the same answer on any rank count."""

import itertools
import os

import pytest

from conftest import write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.genomics import fastx

GOOD = ["ACGTACGGTCATTAGCTTAGGC"[i % 7:] + "ACGT" * 3 for i in range(40)]


def _malformed(path, kind):
    write_fastq(path, GOOD)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    cut = 4 * 20  # a record boundary near the middle
    insert = "@broken\n+\nIIII\n" if kind == "broken" else "\n"
    path.write_text("".join(lines[:cut]) + insert + "".join(lines[cut:]))


def _read_split(path, cuts):
    """Read a plain FASTQ file as ranks would, split at the given byte offsets; tiling checked."""
    size = os.path.getsize(path)
    bounds = [0, *cuts, size]
    spans = []
    for a, b in itertools.pairwise(bounds):
        span = []
        for _ in fastx.read_part(fastx.Part(str(path), "fastq", False, a, b), span=span):
            pass
        if span:
            spans.append(tuple(span))
    fastx.check_tiling(str(path), size, spans)


@pytest.mark.parametrize("kind", ["broken", "blank"])
def test_a_malformed_record_is_an_error_at_every_split_point(tmp_path, kind):
    path = tmp_path / "bad.fq"
    _malformed(path, kind)
    size = os.path.getsize(path)
    for cut in range(1, size):
        with pytest.raises(fastx.InputError, match=r"bad\.fq:\d+: "):
            _read_split(path, [cut])


def test_a_good_file_reads_whole_at_every_split_point(tmp_path):
    path = tmp_path / "good.fq"
    write_fastq(path, GOOD)
    for cut in range(1, os.path.getsize(path)):
        _read_split(path, [cut])


@pytest.mark.parametrize("kind", ["broken", "blank"])
@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5, 6])
def test_load_refuses_a_malformed_file_on_any_rank_count(tmp_path, kind, ranks):
    path = tmp_path / "bad.fq"
    _malformed(path, kind)
    with Cluster.local(ranks) as c:
        with pytest.raises(RayScriptError, match=r"bad\.fq:\d+: "):
            c.run(f'load "{path}" into kmers k=11')
        assert c.run("count kmers")[0].data["distinct"] == 0  # and nothing was loaded
