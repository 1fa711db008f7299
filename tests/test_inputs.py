"""What load reads (a file listed twice, compressed files), what it says of damaged ones, how far
its progress goes, and the messages of the statements that write files."""

import bz2
import gzip
import lzma
import subprocess
import sys
import zlib

import numpy as np
import pytest

from conftest import need_tool, rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.store.kmertable import COUNT_MAX, HIST_DENSE, KmerTable
from test_kmers import read_dump, reference

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

COMPRESS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress, "zstd": zstd.compress}


def _reads(path, n=400, seed=7, length=120):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGTACGTN"), size=length)) for _ in range(n)]
    write_fastq(path, seqs)
    return seqs


def _jellyfish(tmp_path, k, files):
    """(dump lines sorted, histo text) of ``jellyfish count -C -m K -s 1M`` on the files."""
    jf = need_tool("jellyfish")
    out = tmp_path / "jf.jf"
    subprocess.run([jf, "count", "-C", "-m", str(k), "-s", "1M", "-o", str(out), *map(str, files)], check=True)
    dump = subprocess.run([jf, "dump", "-c", "-t", str(out)], check=True, capture_output=True, text=True).stdout
    histo = subprocess.run([jf, "histo", str(out)], check=True, capture_output=True, text=True).stdout
    return sorted(dump.splitlines()), histo


# --- a file listed twice -----------------------------------------------------------------------

@pytest.mark.external
@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_a_plain_file_listed_twice_counts_as_the_file_concatenated_with_itself(tmp_path, ranks):
    _reads(tmp_path / "ok.fq")
    (tmp_path / "twice.fq").write_bytes((tmp_path / "ok.fq").read_bytes() * 2)
    jdump, jhisto = _jellyfish(tmp_path, 5, [tmp_path / "twice.fq"])
    with Cluster.local(ranks) as c:
        (load,) = c.run(f'load "{tmp_path}/ok.fq", "{tmp_path}/ok.fq" into kmers k=5')
        assert load.data["reads"] == 800
        c.run(f'dump kmers to "{tmp_path}/o.tsv"\nhistogram kmers to "{tmp_path}/h.txt"')
    assert sorted((tmp_path / "o.tsv").read_text().splitlines()) == jdump
    assert (tmp_path / "h.txt").read_text() == jhisto


def test_a_file_listed_twice_is_checked_each_time_and_counted_each_time(tmp_path):
    seqs = _reads(tmp_path / "ok.fq", n=50)
    bad = tmp_path / "bad.fq"
    text = (tmp_path / "ok.fq").read_text().splitlines(keepends=True)
    bad.write_text("".join(text[:100]) + "\n" + "".join(text[100:]))  # a blank line between records
    fasta = tmp_path / "s.fa"
    fasta.write_text(">a\nACGTACGTAC\nGTTT\n>b\nTTTTGGGGCC\n")
    with Cluster.local(3) as c:
        with pytest.raises(RayScriptError, match=r"bad\.fq:101: expected a FASTQ (record|header) starting with '@'"):
            c.run(f'load "{bad}", "{bad}" into kmers k=5')
        ok = tmp_path / "ok.fq"
        (res,) = c.run(f'load "{fasta}", "{ok}", "{fasta}", "{ok}", "{fasta}" into kmers k=4')
        assert res.data["reads"] == 106
        c.run(f'dump kmers to "{tmp_path}/o.tsv"')
    expected, _ = reference(["ACGTACGTACGTTT", "TTTTGGGGCC"] * 3 + seqs * 2, 4)
    assert read_dump(tmp_path / "o.tsv") == dict(expected)


# --- compressed files ----------------------------------------------------------------------------

@pytest.mark.parametrize("codec", sorted(COMPRESS))
@pytest.mark.parametrize("ranks", [1, 3])
def test_a_compressed_file_counts_as_the_plain_file_whatever_its_name(tmp_path, codec, ranks):
    _reads(tmp_path / "r.fq", n=300)
    plain = (tmp_path / "r.fq").read_bytes()
    (tmp_path / "reads.data").write_bytes(COMPRESS[codec](plain))  # told by its first bytes, not its name
    with Cluster.local(ranks) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=11\ndump kmers to "{tmp_path}/plain.tsv"')
    with Cluster.local(ranks) as c:
        res, _ = c.run(f'load "{tmp_path}/reads.data" into kmers k=11\ndump kmers to "{tmp_path}/packed.tsv"')
        assert res.data["reads"] == 300
    assert (tmp_path / "packed.tsv").read_text() == (tmp_path / "plain.tsv").read_text()
    assert len((tmp_path / "plain.tsv").read_text().splitlines()) > 5_000


def test_concatenated_streams_are_read_to_the_end(tmp_path):
    _reads(tmp_path / "r.fq", n=100)
    plain = (tmp_path / "r.fq").read_bytes()
    half = plain.index(b"@r50\n")
    with Cluster.local(2) as c:
        for codec, compress in sorted(COMPRESS.items()):
            (tmp_path / codec).write_bytes(compress(plain[:half]) + compress(plain[half:]))
            (res,) = c.run(f'load "{tmp_path / codec}" into kmers k=9')
            assert res.data["reads"] == 100, codec


@pytest.mark.mpi
@pytest.mark.external
def test_compressed_files_and_a_file_listed_twice_under_mpiexec_count_as_jellyfish(tmp_path):
    _reads(tmp_path / "r.fq", n=1500)
    plain = (tmp_path / "r.fq").read_bytes()
    names = []
    for codec, compress in sorted(COMPRESS.items()):
        (tmp_path / f"r.{codec}").write_bytes(compress(plain))
        names.append(f'"{tmp_path}/r.{codec}"')
    names += [f'"{tmp_path}/r.fq"'] * 2
    (tmp_path / "all.fq").write_bytes(plain * 6)
    jdump, jhisto = _jellyfish(tmp_path, 21, [tmp_path / "all.fq"])
    proc = run_mpi(3, *rayscript_cmd(), "run", "-e",
                   f'load {", ".join(names)} into kmers k=21\ndump kmers to "{tmp_path}/o.tsv"\n'
                   f'histogram kmers to "{tmp_path}/h.txt"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("loaded 6 files: 9,000 reads"), proc.stdout
    assert sorted((tmp_path / "o.tsv").read_text().splitlines()) == jdump
    assert (tmp_path / "h.txt").read_text() == jhisto


@pytest.mark.parametrize("codec", sorted(COMPRESS))
def test_a_compressed_file_cut_short_or_corrupt_is_named_with_what_it_still_holds(tmp_path, codec):
    _reads(tmp_path / "r.fq", n=3000)
    packed = COMPRESS[codec]((tmp_path / "r.fq").read_bytes())
    cut = tmp_path / f"cut.{codec}"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    damaged = bytearray(packed)
    damaged[len(packed) // 2] ^= 0x55
    bad = tmp_path / f"bad.{codec}"
    bad.write_bytes(bytes(damaged))
    with Cluster.local(2) as c:
        with pytest.raises(RayScriptError) as info:
            c.run(f'load "{cut}" into kmers k=5')
        message = str(info.value)
        assert f"cut.{codec}: the {codec} data is cut short: the file ends, at {cut.stat().st_size:,} bytes, " \
               f"before its {codec} stream does (an incomplete download or copy?); it decompresses to " in message
        assert "read error after byte" not in message and "Traceback" not in message
        if codec == "gzip":  # as far as zlib decompresses the cut data
            lines = zlib.decompressobj(31).decompress(cut.read_bytes()).count(b"\n")
            assert lines > 0 and f"it decompresses to {lines:,} lines before that" in message
        with pytest.raises(RayScriptError, match=rf"bad\.{codec}: corrupt {codec} data near byte [\d,]+ of "
                                                 rf"{len(packed):,} \(.+\); it decompresses to [\d,]+ lines"):
            c.run(f'load "{bad}" into kmers k=5')
        assert c.run("count kmers")[0].data["distinct"] == 0


def test_a_compressed_file_of_something_else_says_what_it_starts_with(tmp_path):
    (tmp_path / "notes.bz2").write_bytes(bz2.compress(b"hello world\n"))
    (tmp_path / "empty.xz").write_bytes(lzma.compress(b""))
    with Cluster.local(2) as c, pytest.raises(RayScriptError) as info:
        c.run(f'load "{tmp_path}/notes.bz2" into kmers')
    assert ("notes.bz2: neither FASTQ (records start with '@') nor FASTA ('>'), plain or compressed with gzip, "
            "bzip2, xz or zstd; decompressed (bzip2), it starts with 'hello world'") in str(info.value)
    with Cluster.local(2) as c, pytest.raises(RayScriptError, match=r"empty\.xz: the file is empty \(xz of no data\)"):
        c.run(f'load "{tmp_path}/empty.xz" into kmers')


# --- progress ------------------------------------------------------------------------------------

class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, done, total, what="reading", unit="MiB"):
        self.calls.append((done, total))

    def finish(self):
        pass


@pytest.mark.parametrize("ranks", [2, 3])
def test_progress_ends_at_the_bytes_of_the_files_and_never_passes_them(tmp_path, ranks):
    _reads(tmp_path / "big.fq", n=12000, length=150)  # 3.7 MB: the ranks' ranges end inside chunks
    with open(tmp_path / "big.fq", "a") as fh:
        fh.write("\n\n")  # blank space after the last record is read too
    (tmp_path / "big.fa").write_text("".join(f">s{i}\n{'ACGT' * 30}\nTTGCA\n" for i in range(15000)))
    (tmp_path / "r.fq.gz").write_bytes(gzip.compress((tmp_path / "big.fq").read_bytes()))
    files = [tmp_path / "big.fq", tmp_path / "big.fa", tmp_path / "r.fq.gz"]
    size = sum(f.stat().st_size for f in files)
    progress = _Recorder()
    with Cluster.local(ranks, progress=progress) as c:
        c.run(f'load {", ".join(f"{chr(34)}{f}{chr(34)}" for f in files)} into kmers k=21')
    assert progress.calls[-1] == (size, size)
    assert all(done <= total == size for done, total in progress.calls)


@pytest.mark.mpi
def test_progress_lines_under_mpiexec_never_pass_the_total(tmp_path):
    _reads(tmp_path / "big.fq", n=16000, length=150)
    proc = run_mpi(2, *rayscript_cmd(), "run", "--progress", "-e", f'load "{tmp_path}/big.fq" into kmers k=31')
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("reading: ")]
    assert lines[-1].startswith("reading: 100% (") and len(lines) >= 2, proc.stderr
    for line in lines:
        done, total = (float(x) for x in line.split("(")[1].split(" MiB")[0].split(" of "))
        assert done <= total, line


# --- histogram ---------------------------------------------------------------------------------------

def test_the_table_s_histogram_is_sparse_and_exact_across_its_dense_range():
    t = KmerTable(21)
    counts = np.array([1, 1, 5, HIST_DENSE - 1, HIST_DENSE, HIST_DENSE, 70_000, COUNT_MAX - 1, COUNT_MAX], np.uint64)
    ids = np.arange(3, 3 + len(counts), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15 >> 30)
    t.add_counted(ids, counts, np.zeros(len(ids), np.uint8))
    values, numbers = t.histogram()
    assert values.tolist() == [1, 5, HIST_DENSE - 1, HIST_DENSE, 70_000, COUNT_MAX - 1, COUNT_MAX]
    assert numbers.tolist() == [2, 1, 1, 2, 1, 1, 1]


def test_histogram_of_a_count_near_the_counter_s_maximum(tmp_path):
    with Cluster.local(2) as c:
        c.run("put kmers/AAAAA count=4294967290 on 0\nput kmers/AAAAC count=3 on 1\nput kmers/AAAAG count=3 on 0\n"
              "put kmers/AAACC count=70000 on 1\nreplicate kmers/AAAAA to 2 ranks")  # a copy is taken once
        (res,) = c.run("histogram kmers")
        assert {c: n for c, n in res.data.items() if c != "model"} == {3: 2, 70000: 1, 4294967290: 1}
        assert res.text.startswith("3 2\n70000 1\n4294967290 1\nno model: ")
        c.run(f'histogram kmers to "{tmp_path}/h.txt"')
        assert (tmp_path / "h.txt").read_text() == "3 2\n70000 1\n4294967290 1\n"


def test_reads_shorter_than_k_are_counted_and_an_empty_set_is_not_said_unloaded(tmp_path):
    """A read shorter than k holds no k-mer: load says how many there were, and when none is as long
    as k, that none is and how long the longest is; assembling the empty set does not say to load."""
    write_fastq(tmp_path / "r.fq", ["ACGTTGCATGCCATGACGTACGATCGATGCA"] * 4 + ["ACGTTGCATG"] * 2)
    (tmp_path / "r.fa").write_text(">a\nACGTTGCATGCC\nATGACGTACG\n>b\nACGTTG\n")
    with Cluster.local(2) as c:
        (res,) = c.run(f'load "{tmp_path}/r.fq" into kmers k=21')
        assert res.data["short"] == 2 and "note: 2 of the 6 reads of the file are shorter than k=21" in res.text
        (res,) = c.run(f'load "{tmp_path}/r.fq" into kmers.long k=41')
        assert res.data["kmers"] == 0 and res.data["short"] == 6 and res.data["longest"] == 31
        assert ("warning: no read is as long as k=41: the 6 reads of the file hold no 41-mer (the longest has 31 "
                "bases); a k of at most 31 counts them") in res.text
        with pytest.raises(RayScriptError) as info:
            c.run("assemble kmers.long into paths/x")
        assert "kmers.long holds no k-mers to assemble: it is empty, with k=41" in str(info.value)
        assert "load reads first" not in str(info.value)
        (res,) = c.run(f'load "{tmp_path}/r.fa", "{tmp_path}/r.fq" into kmers.fa k=21')  # FASTA: whole records
        assert res.data["short"] == 3 and res.data["longest"] == 31
        assert "note: 3 of the 8 reads of the files are shorter than k=21" in res.text


# --- where statements write ---------------------------------------------------------------------------

def test_a_file_in_the_way_of_a_directory_is_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    with Cluster.local(2) as c:
        where = f"{tmp_path}/afile/sub"
        for text, start in ((f'save to "{where}"', f"cannot write {where}: "),
                            (f'save to "{where}/deeper"', f"cannot write {where}/deeper: "),
                            (f'restore from "{where}"', f"cannot read a checkpoint from {where}: "),
                            (f'dump kmers to "{where}/o.tsv"', f"cannot write {where}/o.tsv: ")):
            with pytest.raises(RayScriptError) as info:
                c.run(text)
            assert f"{start}{tmp_path}/afile is a file, not a directory" in str(info.value), str(info.value)
        with pytest.raises(RayScriptError, match=f"cannot write {tmp_path}/afile: it is a file, not a directory"):
            c.run(f'save to "{tmp_path}/afile"')


def test_a_compressed_output_is_refused_before_anything_is_written(tmp_path):
    """Every rank writes its part of a dump at its offset: a compressed stream cannot be written so,
    and a name of a compressed file is refused rather than given plain text."""
    write_fastq(tmp_path / "r.fq", ["ACGTTGCATGCCATGACGTACGATCGATGCA"] * 3)
    with Cluster.local(2) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=11\nassemble kmers into paths/asm min_count=1')
        for text, name in ((f'dump paths/asm* to "{tmp_path}/x.fa.gz"', "x.fa.gz"),
                           (f'dump paths/asm* to "{tmp_path}/x.gfa.gz"', "x.gfa.gz"),
                           (f'dump paths/asm-1 to "{tmp_path}/x.fa.zst"', "x.fa.zst"),
                           (f'dump kmers to "{tmp_path}/k.tsv.bz2"', "k.tsv.bz2"),
                           (f'histogram kmers to "{tmp_path}/h.txt.xz"', "h.txt.xz")):
            with pytest.raises(RayScriptError) as info:
                c.run(text)
            ext = name[name.rindex("."):]
            assert (f"cannot write {tmp_path}/{name}: {ext} is the extension of a compressed file, and statements "
                    f"write plain files") in str(info.value), str(info.value)
            assert f"write {tmp_path}/{name[:-len(ext)]} and compress it afterwards" in str(info.value)
            assert not (tmp_path / name).exists()
        c.run(f'dump paths/asm* to "{tmp_path}/x.fa"')
        assert (tmp_path / "x.fa").read_text().startswith(">asm-1")


def test_dump_of_no_paths_writes_an_empty_file_and_says_so(tmp_path):
    out = tmp_path / "contigs.fa"
    out.write_text(">old\nACGT\n")
    with Cluster.local(2) as c:
        (res,) = c.run(f'dump paths to "{out}"')
        assert res.text == f"the store holds no paths: wrote an empty file {out}"
        assert out.read_text() == "" and res.data["paths"] == 0
        c.run("put paths/contig-1 on 1")
        (res, after) = c.run(f'dump paths/scaffold* to "{out}"\nprint "went on"')
        assert res.text == f"no path matches paths/scaffold*: wrote an empty file {out}"
        assert after.text == "went on"
