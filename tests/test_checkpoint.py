"""Checkpoints: save, restore onto the same or another rank count, refusals before any change."""

import json
import os

import numpy as np
import pytest

from conftest import BIN, killed_status, rayscript_cmd, run_mpi, write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(3)
    write_fastq(tmp_path / "r.fq", ["".join(rng.choice(list("ACGT"), size=80)) for _ in range(300)])
    with Cluster.local(3) as c:
        c.run(f'load "{tmp_path}/r.fq" into kmers k=21\nput paths/p1 on 1\nput results/r9 on 2\n'
              f'save to "{tmp_path}/ckpt"')
        dump = tmp_path / "before.tsv"
        c.run(f'dump kmers to "{dump}"')
    return tmp_path / "ckpt", sorted(dump.read_text().splitlines())


def state(c, tmp_path):
    out = tmp_path / f"after{c.size}.tsv"
    c.run(f'dump kmers to "{out}"')
    return sorted(out.read_text().splitlines())


@pytest.mark.parametrize("ranks", [1, 3, 4])
def test_restore_onto_any_rank_count_gives_the_same_store_with_items_on_their_owners(saved, tmp_path, ranks):
    ckpt, before = saved
    with Cluster.local(ranks) as c:
        (res,) = c.run(f'restore from "{ckpt}"')
        assert res.data["items"] == {"kmers": len(before), "paths": 1, "results": 1}
        assert state(c, tmp_path) == before
        for key in ("paths/p1", "results/r9"):
            (loc,) = c.run(f"locate {key}")
            assert loc.data["ranks"] == [loc.data["owner"]]
        if ranks != 3:
            from rayscript.store.partition import owners

            for r in range(ranks):
                ids, _, _ = c.local_nodes[r].shard.kmers.extract(("all",))
                assert (owners(ids, ranks) == r).all()


def test_a_second_save_replaces_the_first_and_a_crashed_save_leaves_it(saved, tmp_path):
    ckpt, before = saved
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["ranks"] == 3 and manifest["k"] == 21
    assert [len(e["sha256"]) for e in manifest["files"]] == [64] * 3
    # a save that died before its manifest: a stray generation directory, half written, marked as
    # a save's own; and a folder of the user's that merely looks like a generation
    stray = ckpt / "gen-000007"
    stray.mkdir()
    (stray / ".rayscript-save").write_text("")
    (stray / "rank-0000.shard").write_bytes(b"partial")
    (ckpt / "gen-important").mkdir()
    (ckpt / "gen-important" / "notes.txt").write_text("mine")
    with Cluster.local(2) as c:
        c.run(f'restore from "{ckpt}"')
        assert state(c, tmp_path) == before
        c.run(f'put kmers/7 on 0\nsave to "{ckpt}"')
    gens = sorted(p.name for p in ckpt.iterdir() if p.name.startswith("gen-"))
    current = json.loads((ckpt / "manifest.json").read_text())["generation"]
    assert gens == sorted([current, "gen-important"])
    assert (ckpt / "gen-important" / "notes.txt").read_text() == "mine"
    with Cluster.local(2) as c, pytest.raises(RayScriptError, match="not an empty path"):
        c.run('save to ""')


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated or changed"),
    ("corrupt", "checksum mismatch (the file is corrupted)"),
    ("delete", "missing (the manifest lists it)"),
    ("version", "format version 9, this rayscript reads version 1"),
    ("k", "k=25 differs from the checkpoint's k=21"),
    ("manifest", "unreadable manifest"),
])
def test_a_damaged_checkpoint_is_refused_naming_the_file_before_the_store_changes(saved, tmp_path, damage, message):
    ckpt, _ = saved
    manifest_path = ckpt / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    victim = ckpt / manifest["files"][1]["file"]
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-7])
    elif damage == "corrupt":
        data = bytearray(victim.read_bytes())
        data[100] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "delete":
        victim.unlink()
    elif damage == "version":
        manifest["version"] = 9
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "k":
        manifest["files"][1]["k"] = 25
        manifest_path.write_text(json.dumps(manifest))
    else:
        manifest_path.write_text("{not json")
    with Cluster.local(2) as c:
        c.run("put kmers/42 count=5 on 1")
        with pytest.raises(RayScriptError) as info:
            c.run(f'restore from "{ckpt}"')
        assert message in str(info.value)
        if damage in ("truncate", "corrupt", "delete", "k"):
            assert str(victim) in str(info.value) or os.path.basename(str(victim)) in str(info.value)
        assert c.get("kmers/42", rank=1).count == 5  # the store did not change
        assert c.run("count kmers")[0].data["distinct"] == 1


def _outside_copy(ckpt, entry):
    """A copy of a shard file outside the checkpoint directory, next to it."""
    outside = ckpt.parent / "outside.shard"
    outside.write_bytes((ckpt / entry["file"]).read_bytes())
    return outside


def _lie(manifest, ckpt, lie):
    """The manifest (and files) of a checkpoint made to lie as ``lie`` says."""
    files = manifest["files"]
    if lie == "one file twice":  # rank 1's file listed in place of rank 2's
        files[2] = dict(files[1])
    elif lie == "one file twice by another name":
        files[2] = dict(files[1], file=files[1]["file"].replace("/", "/./"))
    elif lie == "one file twice through a link":
        (ckpt / "gen-000001" / "alias.shard").symlink_to("rank-0001.shard")
        files[2] = dict(files[1], file="gen-000001/alias.shard")
    elif lie == "files swapped":
        files[1], files[2] = files[2], files[1]
    elif lie == "a file fewer":
        del files[2]
    elif lie == "k as text":
        manifest["k"] = "21"
    elif lie == "an entry's k as text":
        files[0]["k"] = "21"
    elif lie == "a negative count":
        files[0]["items"]["kmers"] = -5
    elif lie == "a count the file does not hold":
        files[0]["items"]["kmers"] += 1
    elif lie == "a path the file does not hold":
        files[0]["items"]["paths"] = 1
    elif lie == "canonical":
        manifest["canonical"] = False
    elif lie == "canonical everywhere":
        manifest["canonical"] = False
        for entry in files:
            entry["canonical"] = False
    elif lie == "an absolute path":
        files[0]["file"] = str(_outside_copy(ckpt, files[0]))
    elif lie == "a path up and out":
        files[0]["file"] = f"../{_outside_copy(ckpt, files[0]).name}"
    elif lie == "a link out":
        target = _outside_copy(ckpt, files[0])
        inside = ckpt / files[0]["file"]
        inside.unlink()
        inside.symlink_to(target)
    elif lie == "no generation":
        del manifest["generation"]


@pytest.mark.parametrize("lie, message", [
    ("one file twice", "files[2] (gen-000001/rank-0001.shard): listed again (files[1] is the same file)"),
    ("one file twice by another name", "files[2] (gen-000001/./rank-0001.shard): listed again (files[1] is the "
                                       "same file)"),
    ("one file twice through a link", "gen-000001/alias.shard and gen-000001/rank-0001.shard are the same file"),
    ("files swapped", "rank-0001.shard: is the file of rank 1 of 3, and the manifest lists it as rank 2's of 3"),
    ("a file fewer", "lists 2 shard files for 3 saved ranks (one file per rank)"),
    ("k as text", "'k' must be a whole number from 1 to 127, or null, not \"21\""),
    ("an entry's k as text", "files[0] (gen-000001/rank-0000.shard): 'k' must be a whole number from 1 to 127, or "
                             "null, not \"21\""),
    ("a negative count", "files[0] (gen-000001/rank-0000.shard): 'items' of kmers must be a whole number >= 0, "
                         "not -5"),
    ("a count the file does not hold", "rank-0000.shard: holds {kmers:,} k-mers, the manifest says {more:,}"),
    ("a path the file does not hold", "rank-0000.shard: holds no named items, the manifest says 1 paths"),
    ("canonical", "'canonical' is false, and its files say true"),
    ("canonical everywhere", "rank-0000.shard: holds k-mers counted with canonical=true, the manifest says "
                             "canonical=false"),
    ("an absolute path", "files[0]: 'file' must be a path inside the checkpoint directory, not \"/"),
    ("a path up and out", "files[0]: 'file' must be a path inside the checkpoint directory, not "
                          "\"../outside.shard\""),
    ("a link out", "rank-0000.shard: leads out of the checkpoint directory (to {outside}); a restore reads only "
                   "files inside it"),
    ("no generation", "'generation' must be a generation folder's name such as \"gen-000001\", not null"),
])
def test_a_manifest_that_does_not_match_its_schema_or_its_files_is_refused_and_nothing_outside_is_read(
        saved, tmp_path, lie, message):
    """Each of these restored before (fewer k-mers than saved, or files from anywhere), or failed
    with a nonsense message ("k=21 differs from the checkpoint's k=21")."""
    ckpt, _ = saved
    manifest_path = ckpt / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    kmers = manifest["files"][0]["items"]["kmers"]
    _lie(manifest, ckpt, lie)
    manifest_path.write_text(json.dumps(manifest))
    with Cluster.local(2) as c:
        c.run("put kmers/42 count=5 on 1")
        with pytest.raises(RayScriptError) as info:
            c.run(f'restore from "{ckpt}"')
        assert message.format(kmers=kmers, more=kmers + 1, outside=tmp_path / "outside.shard") in str(info.value)
        assert c.get("kmers/42", rank=1).count == 5  # the store did not change
        assert c.run("count kmers")[0].data["distinct"] == 1


def test_restore_of_a_directory_without_checkpoint(tmp_path):
    with Cluster.local(2) as c, pytest.raises(RayScriptError, match="no checkpoint here"):
        c.run(f'restore from "{tmp_path}"')


@pytest.mark.mpi
def test_run_with_restore_under_mpiexec(saved, tmp_path):
    ckpt, before = saved
    proc = run_mpi(4, *rayscript_cmd(), "run", "--restore", str(ckpt), "-e",
                   f'count kmers\ndump kmers to "{tmp_path}/m.tsv"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"restored {len(before):,} kmers, 1 paths, 1 results from {ckpt}; 3 ranks saved it")
    assert sorted((tmp_path / "m.tsv").read_text().splitlines()) == before


KILL_MID_MOVE = """
import os, signal, sys
import rayscript.cli as cli
from rayscript.protocol.bulk import BulkChunk

ckpt, dump = sys.argv[1], sys.argv[2]
original = cli.open_cluster
def open_cluster(ranks, progress=None):
    c = original(ranks, progress)
    if c.rank == 2:
        def die(msg):
            os.kill(os.getpid(), signal.SIGKILL)  # the target dies in the middle of the move
        c.node.register(BulkChunk, die)
    return c
cli.open_cluster = open_cluster
raise SystemExit(cli.main(["run", "-e", f'''
for i in 1..300 {{ put kmers/$i count=3 on 1 }}
save to "{ckpt}"
dump kmers to "{dump}"
print "saved"
move kmers/* from 1 to 2
print "not reached"
''']))
"""


@pytest.mark.mpi
def test_a_rank_killed_mid_move_ends_the_job_and_the_checkpoint_restores_exactly(tmp_path):
    prog = tmp_path / "kill.py"
    prog.write_text(KILL_MID_MOVE)
    proc = run_mpi(3, str(BIN / "python"), str(prog), str(tmp_path / "ck"),
                   str(tmp_path / "before.tsv"), timeout=60)
    assert "saved" in proc.stdout and "not reached" not in proc.stdout
    assert proc.returncode == killed_status(9)  # the launcher ends the job at once with the dead rank's status
    # ... and kills every other rank too; the dead rank's keeper has named it first
    assert proc.stderr.count("rayscript: rank 2 (pid") == 1, proc.stderr
    assert "was killed (SIGKILL" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_mpi(2, *rayscript_cmd(), "run", "--restore", str(tmp_path / "ck"), "-e",
                   f'dump kmers to "{tmp_path}/after.tsv"')
    assert proc.returncode == 0, proc.stderr
    before = sorted((tmp_path / "before.tsv").read_text().splitlines())
    assert len(before) == 300
    assert sorted((tmp_path / "after.tsv").read_text().splitlines()) == before


def test_a_save_into_a_directory_of_other_files_is_refused_and_writes_nothing(tmp_path):
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "someone else\'s"}')
    (foreign / "notes.txt").write_text("mine")
    plain = tmp_path / "home"
    plain.mkdir()
    (plain / "reads.fq").write_text("@r\nACGT\n+\nIIII\n")
    with Cluster.local(2) as c:
        c.run("put kmers/7 on 1")
        with pytest.raises(RayScriptError, match="is not a rayscript checkpoint's manifest: a save there would "
                                                 "overwrite it"):
            c.run(f'save to "{foreign}"')
        with pytest.raises(RayScriptError, match=r"holds other files \(reads.fq\) and no checkpoint"):
            c.run(f'save to "{plain}"')
        with pytest.raises(RayScriptError, match="it is a file, not a directory"):
            c.run(f'save to "{plain}/reads.fq"')
        # new, empty, and a checkpoint's own directory are fine
        empty = tmp_path / "empty"
        empty.mkdir()
        for target in (tmp_path / "new", empty, tmp_path / "new"):
            c.run(f'save to "{target}"')
    assert sorted(p.name for p in foreign.iterdir()) == ["manifest.json", "notes.txt"]
    assert (foreign / "manifest.json").read_text() == '{"name": "someone else\'s"}'
    assert sorted(p.name for p in plain.iterdir()) == ["reads.fq"]
    assert json.loads((empty / "manifest.json").read_text())["format"] == "rayscript-checkpoint"
