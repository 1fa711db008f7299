"""Nothing duplicated, clobbered or silently dropped; the same answer on any rank count."""

import itertools
import os
import re

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
        for _ in fastx.read_part(fastx.Part(str(path), "fastq", "", a, b), span=span):
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


# --- 1. an item under a move in flight is taken exactly once ------------------------------------

def test_two_concurrent_moves_of_one_key_take_it_once():
    with Cluster.local(3) as c:
        c.run("put kmers/ACGTA count=5 on 0")
        with pytest.raises(RayScriptError, match=r"kmers/\d+ \(ACGTA\) is being moved from rank 0 by another order|"
                                                 r"not on rank 0"):
            c.run("parallel { move kmers/ACGTA from 0 to 1; move kmers/ACGTA from 0 to 2 }")
        held = c.run("locate kmers/ACGTA")[0].data["ranks"]
        assert len(held) == 1 and held != [0]
        c.run("rebalance kmers")
        (owner,) = c.run("locate kmers/ACGTA")[0].data["ranks"]
        assert c.get("kmers/ACGTA", rank=owner).count == 5


def test_a_move_and_a_delete_of_one_key_do_not_both_succeed():
    with Cluster.local(2) as c:
        c.run("put kmers/7 count=2 on 0")
        with pytest.raises(RayScriptError, match="being moved from rank 0 by another order"):
            c.run("parallel { move kmers/7 from 0 to 1; delete kmers/7 from 0 }")
        assert c.run("locate kmers/7")[0].data["ranks"] == [1]


def test_concurrent_bulk_moves_of_overlapping_selections_take_each_kmer_once(tmp_path):
    write_fastq(tmp_path / "r.fq", GOOD)
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=11')
        total = c.run("count kmers")[0].data["total"]
        c.run("move kmers/* from 1 to 0 merge\nmove kmers/* from 2 to 0 merge")
        before = c.run("count kmers")[0].data["per_rank"][0]["distinct"]
        with pytest.raises(RayScriptError, match="being moved from rank 0 by another order"):
            c.run("parallel { move kmers/* from 0 to 1; move kmers/A* from 0 to 2 }")
        counts = c.run("count kmers")[0].data
        assert counts["total"] == total  # nothing duplicated, nothing lost
        assert sum(r["distinct"] for r in counts["per_rank"]) == before


def test_a_refused_move_leaves_the_item_and_its_key_free():
    with Cluster.local(3) as c:
        c.run("put kmers/9 on 0\nput kmers/9 on 1")
        with pytest.raises(RayScriptError, match="rank 1: kmers/9 is already on rank 1"):
            c.run("move kmers/9 from 0 to 1")
        c.run("move kmers/9 from 0 to 2")  # the failed move let go of the key
        assert c.run("locate kmers/9")[0].data["ranks"] == sorted([1, 2])


# --- 2. placement operations never change values ---------------------------------------------

def test_copies_collapse_on_restore_onto_another_rank_count(tmp_path):
    with Cluster.local(4) as c:
        c.run(f'put kmers/123 count=5 on 2\ncopy kmers/123 from 2 to 3\nsave to "{tmp_path}/ck"')
    with Cluster.local(3) as c:
        c.run(f'restore from "{tmp_path}/ck"')
        (loc,) = c.run("locate kmers/123")
        assert loc.data["ranks"] == [loc.data["owner"]]
        assert c.get("kmers/123").count == 5


def test_rebalance_after_replicate_or_a_copy_does_not_inflate_counts(tmp_path):
    write_fastq(tmp_path / "r.fq", GOOD)
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=11')
        total = c.run("count kmers")[0].data["total"]
        c.run("put kmers/CCCCCCCCCCC count=4 on 0\nreplicate kmers/CCCCCCCCCCC to 3 ranks\nrebalance kmers")
        assert c.run("count kmers")[0].data["total"] == total + 4
        c.run("copy kmers/* from 1 to 2 merge")  # copies of rank 1's k-mers on rank 2 (none there before)
        (res,) = c.run("rebalance kmers")  # ... are the same items: they collapse into the owner's
        assert c.run("count kmers")[0].data["total"] == total + 4 and res.data["kept"] == 0
        # a copy that differs is kept where it is and reported, never summed
        (row,) = c.run(f'query "{tmp_path}/r.fq" in kmers')[0].text.splitlines()[:1]
        seq, count = row.split("\t")
        (loc,) = c.run(f"locate kmers/{seq}")
        other = (loc.data["owner"] + 1) % 3
        c.run(f"put kmers/{seq} count=1000 on {other}")
        (res,) = c.run("rebalance kmers")
        assert res.data["kept"] == 1 and "never summed" in res.text
        assert c.get(f"kmers/{seq}").count == int(count)
        assert c.get(f"kmers/{seq}", rank=other).count == 1000


# --- 7. the graph is what the store holds ----------------------------------------------------

GENOME = "ATGGCGTACGTTAGCCATGACTGGTCAACGTTGCAGTCCATGAGGTACCTAGT"


def _oriented(seq):
    rc = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    return seq if seq.startswith(GENOME[:11]) else rc


def _reads_with_an_error():
    reads = [GENOME] * 3
    bad = GENOME[:30] + ("A" if GENOME[30] != "A" else "C") + GENOME[31:]
    return [*reads, bad]  # one read with a substitution: a bubble of k-mers counted once


@pytest.mark.parametrize("ranks", [1, 3])
def test_walk_ignores_deleted_and_rare_kmers(tmp_path, ranks):
    write_fastq(tmp_path / "r.fq", _reads_with_an_error())
    start = "kmers/" + GENOME[:11]
    with Cluster.local(ranks) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=11')
        (res,) = c.run(f"walk {start} both into paths/a")
        assert "branch" in res.data["reason"] and res.data["length"] < len(GENOME)
        (res,) = c.run(f"walk {start} both min_count=2 into paths/b")
        assert _oriented(res.data["sequence"]) == GENOME, res.data
        c.run(f"for r in 0..{ranks - 1} {{ delete kmers where count < 2 from $r }}")
        (res,) = c.run(f"walk {start} both into paths/c")
        assert _oriented(res.data["sequence"]) == GENOME and "branch" not in res.data["reason"]
        with pytest.raises(RayScriptError, match="below min_count=9"):
            c.run(f"walk {start} min_count=9 into paths/d")


# --- 9, 11. files: writes go through symlinks, never replace what is not a regular file -----------

def test_dump_writes_through_a_symlink_and_refuses_what_is_not_a_regular_file(tmp_path):
    target = tmp_path / "real.tsv"
    target.write_text("old")
    (tmp_path / "link.tsv").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    with Cluster.local(2) as c:
        c.run("put kmers/ACGTA count=3 on 1")
        c.run(f'dump kmers to "{tmp_path}/link.tsv"')
        assert (tmp_path / "link.tsv").is_symlink() and target.read_text() == "ACGTA\t3\n"
        for bad, why in ((tmp_path / "fifo", "not a regular file"), ("/dev/null", "not a regular file"),
                         (tmp_path, "it is a directory")):
            for statement in (f'dump kmers to "{bad}"', f'histogram kmers to "{bad}"'):
                with pytest.raises(RayScriptError, match=why):
                    c.run(statement)
        assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
        with pytest.raises(RayScriptError, match="cannot write /proc/version"):
            c.run('dump kmers to "/proc/version"')


def test_save_refuses_an_empty_path_and_keeps_folders_it_did_not_write(tmp_path):
    with Cluster.local(2) as c:
        c.run(f'put kmers/7 on 0\nsave to "{tmp_path}"')
        (tmp_path / "gen-important").mkdir()  # the user's, beside the checkpoint
        c.run(f'save to "{tmp_path}"')
        with pytest.raises(RayScriptError, match="not an empty path"):
            c.run('save to ""')
    gens = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("gen-"))
    assert gens == ["gen-000002", "gen-important"]


# --- 11. misuse gets a clear error, never a traceback --------------------------------------------

def test_api_misuse_is_a_clear_error(tmp_path):
    with pytest.raises(TypeError, match="whole number of ranks"):
        Cluster.local("3")
    with pytest.raises(RayScriptError, match=r"100,000 ranks are too many for one process .* under mpiexec"):
        Cluster.local(100_000)  # refused at once, not after starting threads for minutes
    with Cluster.local(2) as c:
        with pytest.raises(RayScriptError, match="one key, not the pattern"):
            c.get("kmers/*")
        with pytest.raises(TypeError, match="a script is text"):
            c.run(None)
        with pytest.raises(TypeError, match="rank= takes a whole number"):
            c.get("kmers/1", rank="2")
        c.run("put kmers/1 on 0")
        with pytest.raises(RayScriptError) as info:
            c.run("put kmers/2 on 1\nget kmers/3 from 0\nput kmers/4 on 1")
        assert [r.statement for r in info.value.results] == ["put"]  # what ran before the failure
        # a loop that fails part-way: what its earlier rounds did is among those results, in order
        with pytest.raises(RayScriptError) as info:
            c.run("put kmers/2 on 0\nfor i in 1..2 { for j in 1..3 { copy kmers/$j from 0 to 1 replace } }")
        assert [r.text for r in info.value.results] == ["put kmers/2 on rank 0", "copied kmers/1 from rank 0 to rank 1",
                                                         "copied kmers/2 from rank 0 to rank 1"]
        assert "kmers/3 is not on rank 0" in str(info.value)
        # and so does a block another rank commands
        with pytest.raises(RayScriptError) as info:
            c.run("on 1 {\n  copy kmers/1 from 0 to 1 replace\n"
                  "  for i in 1..3 { copy kmers/$i from 0 to 1 replace }\n}")
        assert [r.text for r in info.value.results] == ["copied kmers/1 from rank 0 to rank 1"] * 2 + \
            ["copied kmers/2 from rank 0 to rank 1"]
        assert str(info.value).startswith("<string>:3:19: rank 0: kmers/3 is not on rank 0")
        # and the branches of 'parallel' that succeeded
        with pytest.raises(RayScriptError) as info:
            c.run("parallel {\n  copy kmers/1 from 0 to 1 replace\n  copy kmers/3 from 0 to 1\n"
                  "  copy kmers/2 from 0 to 1 replace\n}")
        assert sorted(r.text for r in info.value.results) == ["copied kmers/1 from rank 0 to rank 1",
                                                              "copied kmers/2 from rank 0 to rank 1"]
    ck = tmp_path / "ck"
    with Cluster.local(2) as c:
        c.run(f'put kmers/1 on 0\nsave to "{ck}"')
        manifest = (ck / "manifest.json").read_text()
        import json

        for files in ([{}], ["x"], [{"file": 3}]):
            data = json.loads(manifest)
            data["files"] = files
            (ck / "manifest.json").write_text(json.dumps(data))
            with pytest.raises(RayScriptError, match=r"manifest.json: files\[0\]"):
                c.run(f'restore from "{ck}"')


def test_a_closed_pipe_ends_the_command_quietly():
    import subprocess

    from conftest import rayscript_cmd

    proc = subprocess.run(" ".join(rayscript_cmd()) + " run --ranks 2 -e 'for i in 1..20000 { print $i }' | head -1",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert proc.stdout == "1\n"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


# --- 4, 5, 6, 12, 13. keys, namespaces, loops ---------------------------------------------------

def test_query_on_a_forward_strand_store_looks_up_forward_kmers(tmp_path):
    write_fastq(tmp_path / "t.fq", ["TTTTTTTTT"])
    (tmp_path / "q.fa").write_text(">q\nTTTTT\n")
    with Cluster.local(2) as c:
        c.run(f'load "{tmp_path}/t.fq" into kmers k=5 canonical=false')
        (res,) = c.run(f'query "{tmp_path}/q.fa" in kmers')
        assert res.text.splitlines()[0] == "TTTTT\t5"  # then the summary of the sequence
        assert res.data["sequences"] == [{"sequence": "q", "set": "kmers", "kmers": 1, "found": 1, "median": 5.0}]


def test_numeric_keys_are_checked_against_the_store(tmp_path):
    write_fastq(tmp_path / "t.fq", ["ACGTACGTAC"])
    with Cluster.local(2) as c:
        c.run(f'load "{tmp_path}/t.fq" into kmers k=5')
        with pytest.raises(RayScriptError, match=r"kmers/5000 is not a k=5 k-mer: ids of this store are below 4\*\*5"):
            c.run("put kmers/5000 on 0")
        with pytest.raises(RayScriptError, match=r"kmers/1023 \(TTTTT\) is not canonical"):
            c.run("put kmers/1023 count=7 on 0")
        c.run("put kmers/0 count=7 on 0")  # AAAAA: canonical, below 4**5
    with Cluster.local(2) as c:
        c.run("put kmers/1023 on 1")  # before any load: the first load decides k and checks it
        with pytest.raises(RayScriptError, match="put on rank 1 before any load decided k"):
            c.run(f'load "{tmp_path}/t.fq" into kmers k=5')


@pytest.mark.parametrize("text, message", [
    ("count results", "'count' applies to k-mer sets (kmers, kmers.NAME), not results"),
    ('load "x.fq" into paths', "'load' applies to k-mer sets (kmers, kmers.NAME), not paths"),
    ("histogram results", "'histogram' applies to k-mer sets (kmers, kmers.NAME), not results"),
    ('dump results to "x"', "'dump' applies to k-mer sets (kmers, kmers.NAME), not results"),
    ("copy paths/* from 0 to 1", "'copy' takes k-mer selectors"),
    ('query "x.fa" in results', "'query' applies to k-mer sets (kmers, kmers.NAME), not results"),
])
def test_statements_refuse_namespaces_they_do_not_apply_to(text, message):
    from rayscript.errors import ScriptSyntaxError
    from rayscript.statements import parse

    with pytest.raises(ScriptSyntaxError, match=re.escape(message)):
        parse(text)


def test_braced_variables_in_keys_and_empty_ranges(local4):
    local4.run("let x = 1\nput kmers/${x}0 on 0")
    assert local4.run("locate kmers/10")[0].data["ranks"] == [0]
    local4.run("let n = 0")
    assert local4.run("for r in 1..$n { put kmers/$r on 0 }") == []
    assert local4.run("locate kmers/1")[0].data["ranks"] == []


# --- 16. messages ------------------------------------------------------------------------

def test_a_byte_order_mark_is_not_part_of_the_script(tmp_path):
    import subprocess

    from conftest import rayscript_cmd

    script = tmp_path / "bom.ray"
    script.write_bytes("\ufeffput kmers/1 on 0\n".encode())
    for args in (["check", str(script)], ["run", str(script)]):
        proc = subprocess.run([*rayscript_cmd(), *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    with Cluster.local(1) as c:
        assert c.run("\ufeffput kmers/1 on 0")[0].text == "put kmers/1 on rank 0"


def test_check_refuses_a_cluster_of_no_ranks(tmp_path):
    import subprocess

    from conftest import rayscript_cmd

    (tmp_path / "s.ray").write_text("ranks\n")
    proc = subprocess.run([*rayscript_cmd(), "check", str(tmp_path / "s.ray"), "--ranks", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--ranks takes a number of ranks >= 1, not 0" in proc.stderr


def test_copy_without_a_source_onto_a_holder_says_it_is_there(local4):
    local4.run("put kmers/1 on 1")
    with pytest.raises(RayScriptError, match="kmers/1 is already on rank 1; nothing to copy"):
        local4.run("copy kmers/1 to 1")
