"""The same runtime behaviour on both backends: in-process threads and real mpiexec."""

import sys
import time

import pytest

from conftest import rayscript_cmd, run_mpi
from rayscript import Cluster
from rayscript.errors import RayScriptError, RuntimeFault, ScriptError, StatementError, StatementErrors
from rayscript.genomics.fastx import InputError
from rayscript.interpreter import by_bases

SCENARIO = """\
put kmers/19123890 count=3 on 2
copy kmers/19123890 from 2 to 5
locate kmers/19123890
get kmers/19123890 from 5
on 3: move kmers/19123890 from 5 to 1 merge
locate kmers/19123890
let x = 7
for r in 1..3 { put kmers/$x count=$r on $r }
parallel {
  on 1: copy kmers/7 from 1 to 0
  on 2 { copy kmers/7 from 2 to 4 }
  on 4: copy kmers/7 from 3 to 5
}
locate kmers/7
copy kmers/7 from 2 to 0 merge
get kmers/7 from 0
move kmers/7 to 0 replace
put kmers/ACGT count=2 on 0
get kmers/ACGT from 0
"""

EXPECTED_TAIL = [
    "kmers/7 is on ranks 4 (owner), 0, 1, 2, 3, 5",
    "copied kmers/7 from rank 2 to rank 0",
    "kmers/7 count=3 edges=->-  (on rank 0)",
]


def run_local(text, ranks=6):
    with Cluster.local(ranks) as c:
        return [r.text for r in c.run(text)]


def test_scenario_on_local_backend():
    lines = run_local(SCENARIO + "locate kmers/7\n")
    assert lines[:4] == ["put kmers/19123890 on rank 2", "copied kmers/19123890 from rank 2 to rank 5",
                         "kmers/19123890 is on ranks 2 (owner), 5", "kmers/19123890 count=3 edges=->-  (on rank 5)"]
    assert "moved kmers/19123890 from rank 5 to rank 1" in lines
    assert "kmers/19123890 is on ranks 2 (owner), 1" in lines
    i = lines.index(EXPECTED_TAIL[0])
    assert lines[i:i + 3] == EXPECTED_TAIL
    assert "moved kmers/7 from rank 4 to rank 0" in lines
    assert lines[-1] == "kmers/7 is on ranks 0, 1, 2, 3, 5"


def test_get_without_a_rank_reads_the_owner_s_copy_else_the_first_holder_s():
    from rayscript.store.partition import owner

    with Cluster.local(4) as c:
        own = owner(("kmers", 5), 4)
        a, b = sorted(r for r in range(4) if r != own)[:2]
        c.run(f"put kmers/5 count=7 on {b}\nput kmers/5 count=4 on {a}\nput paths/x on {b}")
        (got,) = c.run("get kmers/5")  # not on its owner: the lowest rank that holds it
        assert got.data["rank"] == a and got.data["item"].count == 4
        assert c.get("kmers/5").count == 4 and c.get("kmers/5", rank=b).count == 7
        c.run(f"put kmers/5 count=9 on {own}")
        assert c.run("get kmers/5")[0].data["rank"] == own and c.get("kmers/5").count == 9
        assert c.run("get paths/x")[0].data["rank"] == b
        with pytest.raises(RayScriptError, match="kmers/6 is on no rank"):
            c.run("get kmers/6")
        with pytest.raises(RayScriptError, match=f"kmers/6 is not on rank {a}"):
            c.run(f"get kmers/6 from {a}")  # a rank named is the rank asked
        # an owner that does not answer is named after one timeout: the others are not asked then
        from rayscript.protocol.store import GetOrder

        c.run("set timeout = 300ms")
        asked: list = []
        c.local_nodes[own].register(GetOrder, asked.append)  # takes the order, never answers
        with pytest.raises(RayScriptError, match=f"no answer to get-order within 0.3 s \\(rank {own} did not"):
            c.run("get kmers/5")
        assert len(asked) == 1


@pytest.mark.mpi
def test_scenario_gives_the_same_output_under_mpiexec(tmp_path):
    script = tmp_path / "scenario.ray"
    script.write_text(SCENARIO + "locate kmers/7\n")
    proc = run_mpi(6, *rayscript_cmd(), "run", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == run_local(SCENARIO + "locate kmers/7\n")


@pytest.mark.parametrize("ranks", [1, 2, 3, 5])
def test_copy_and_move_on_every_cluster_size(ranks):
    last = ranks - 1
    with Cluster.local(ranks) as c:
        c.run(f"put kmers/11 count=2 on {last}")
        if ranks > 1:
            c.run(f"copy kmers/11 from {last} to 0")
            assert c.get("kmers/11", rank=0).count == 2
            c.run(f"move kmers/11 from 0 to {last} merge")
            assert c.get("kmers/11", rank=last).count == 4
        (loc,) = c.run("locate kmers/11")
        assert loc.data["ranks"] == [last]


def test_refusals_name_the_rank_and_key_and_change_nothing(local4):
    local4.run("put kmers/5 count=1 on 1\nput kmers/5 count=9 on 2")
    with pytest.raises(RayScriptError, match=r"rank 2: kmers/5 is already on rank 2 \(add 'replace'"):
        local4.run("copy kmers/5 from 1 to 2")
    with pytest.raises(RayScriptError, match="rank 3: kmers/5 is not on rank 3"):
        local4.run("move kmers/5 from 3 to 0")
    with pytest.raises(RayScriptError, match="rank 2: kmers/5 is already on rank 2"):
        local4.run("move kmers/5 from 1 to 2")
    assert local4.get("kmers/5", rank=1).count == 1  # the failed move left it on its source
    assert local4.get("kmers/5", rank=2).count == 9
    with pytest.raises(RayScriptError, match=r"rank 7 is outside the cluster: ranks are 0\.\.3 \(4 ranks\)"):
        local4.run("copy kmers/5 from 1 to 7")
    with pytest.raises(RayScriptError, match="no rank holds kmers/6"):
        local4.run("copy kmers/6 to 1")
    with pytest.raises(RayScriptError, match="undefined variable \\$q"):
        local4.run("get kmers/5 from $q")


def test_refusals_name_a_k_mer_given_by_its_bases_with_them(local4):
    local4.run("put kmers/ACGT on 1")  # ACGT is id 27 (canonical)
    with pytest.raises(RayScriptError, match=r"^<string>:1:1: rank 2: kmers/27 \(ACGT\) is not "
                                             r"on rank 2\n"):
        local4.run("copy kmers/ACGT from 2 to 0")
    with pytest.raises(RayScriptError, match=r"^rank 0: kmers/27 \(ACGT\) is not on rank 0$"):
        local4.get("kmers/ACGT", rank=0)
    with pytest.raises(RayScriptError, match=r"rank 1: kmers/27 \(ACGT\) is already on rank 1 "):
        local4.run("put kmers/ACGT on 2\ncopy kmers/ACGT from 2 to 1")
    with pytest.raises(RayScriptError, match=r"rank 0: kmers/27 is not on rank 0\n"):
        local4.run("copy kmers/27 from 0 to 1")  # named by number: left so
    # a key is rewritten whole, and once
    named = {"kmers/2": "kmers/2 (AG)"}
    assert by_bases("kmers/27 and kmers/2; kmers/2 (AG)", named) == "kmers/27 and kmers/2 (AG); kmers/2 (AG)"


def test_a_key_of_other_than_k_bases_is_refused_not_read_as_a_k_mer_led_by_a_s(local4, tmp_path):
    """kmers/ACGT on a set of 31-mers was the 31-mer AAA...ACGT (and a 126-base key on 127-mers 'on no
    rank'): a key given by its bases must have the set's k bases, in every statement that names one."""
    genome = "ACGGTCATTGCAGGCTTAACGATCCGATAGCTTACGGATCAGCATTACGGACTTAGCAGT" * 3
    fa = tmp_path / "g.fa"
    fa.write_text(f">g\n{genome}\n")
    short = genome[27:31]
    local4.run(f'load "{fa}" into kmers k=31\nload "{fa}" into kmers.a k=41\nload "{fa}" into kmers.w k=127')
    for st in (f"get kmers/{short}", f"copy kmers/{short} from 0 to 1", f"move kmers/{short} to 1",
               f"delete kmers/{short} from 0", f"locate kmers/{short}", f"walk kmers/{short} into paths/w",
               f"search kmers/{short} depth=2 into results/s", f"explain get kmers/{short}",
               f"let b = \"{short}\"\nget kmers/$b"):
        with pytest.raises(ScriptError,
                           match=rf"^x.ray:\d+:\d+: the store holds k=31 k-mers; kmers/{short} has 4 bases\n"):
            local4.run(st, "x.ray")
    with pytest.raises(ScriptError, match=f"^the store holds k=31 k-mers; kmers/{short} has 4 bases$"):
        local4.get(f"kmers/{short}")
    with pytest.raises(ScriptError,
                       match=rf"kmers\.a holds k=41 k-mers; the prefix kmers\.a/{genome[:42]}\* has 42 bases"):
        local4.run(f"count kmers.a/{genome[:42]}*")  # a prefix longer than k picked nothing
    with pytest.raises(ScriptError, match=r"kmers\.a holds k=41 k-mers; kmers\.a/AAAA has 4 bases"):
        local4.run("walk kmers.a/AAAA into paths/w")
    with pytest.raises(ScriptError, match=rf"kmers\.w holds k=127 k-mers; kmers\.w/{genome[:126]} has 126 bases"):
        local4.run(f"get kmers.w/{genome[:126]}")
    assert local4.get(f"kmers/{genome[:31]}").count == 3  # k bases: found
    assert local4.get(f"kmers.w/{genome[:127]}").count == 1
    local4.run("put kmers/27 on 0\nget kmers/27")  # a number is an id, whatever the k
    # on another commander, after a rename, and after a drop (a new set takes the k of what is put in it)
    with pytest.raises(ScriptError, match=r"kmers\.a holds k=41 k-mers"):
        local4.run("on 2: get kmers.a/ACGT")
    local4.run("rename kmers.a to kmers.b")
    with pytest.raises(ScriptError, match=r"kmers\.b holds k=41 k-mers"):
        local4.run("get kmers.b/ACGT")
    local4.run("drop kmers.b\nput kmers.b/ACGT on 1")
    assert local4.get("kmers.b/ACGT").count == 1
    # a session that restores a checkpoint knows the k of its sets
    local4.run(f'save to "{tmp_path / "ck"}"')
    with Cluster.local(2) as other:
        other.run(f'restore from "{tmp_path / "ck"}"')
        with pytest.raises(ScriptError, match=r"kmers\.w holds k=127 k-mers; kmers\.w/ACGT has 4 bases"):
            other.run("get kmers.w/ACGT")


def test_an_empty_file_name_is_refused_as_empty(local4):
    """dump ... to "" said "cannot write <the working directory>: it is a directory"."""
    with pytest.raises(ScriptError, match=r'expected a file path, not an empty path \(""\)'):
        local4.run('dump kmers to ""')


def test_merge_adds_counts_and_unites_edges(local4):
    local4.run("put kmers/ACGT count=2 edges=3 on 1\nput kmers/ACGT count=5 edges=16 on 2\n"
               "copy kmers/ACGT from 1 to 2 merge")
    item = local4.get("kmers/ACGT", rank=2)
    assert (item.count, item.edges, item.bases) == (7, 19, "ACGT")


def test_bases_are_canonicalized(local4):
    local4.run("put kmers/AAAC count=4 on 3")  # reverse complement: GTTT
    assert local4.get("kmers/GTTT", rank=3).count == 4


def test_error_in_delegated_block_points_at_its_statement(local4):
    with pytest.raises(RayScriptError) as info:
        local4.run("on 2 {\n  put kmers/1 on 2\n  copy kmers/1 from 3 to 0\n}", "blk.ray")
    assert str(info.value).startswith("blk.ray:3:3: rank 3: kmers/1 is not on rank 3")


def test_parallel_commanders_all_finish_before_an_error_is_reported(local4):
    local4.run("for r in 0..3 { put kmers/$r on $r }")
    with pytest.raises(RayScriptError, match="kmers/9 is not on rank 1"):
        local4.run("parallel { on 1: copy kmers/9 from 1 to 2\n on 2: move kmers/2 from 2 to 3\n"
                   " on 3: copy kmers/3 from 3 to 0 }")
    assert local4.run("locate kmers/2")[0].data["ranks"] == [3]
    assert 0 in local4.run("locate kmers/3")[0].data["ranks"]


def test_a_failure_in_a_block_another_rank_commands_is_the_statement_s_own_error_with_its_cause(local4):
    """It was a BlockFailed: not among the documented errors, not a StatementError, and its .cause
    was None."""
    with pytest.raises(StatementError) as info:
        local4.run("on 2 {\n  put kmers/1 on 2\n  on 3 { copy kmers/1 from 3 to 0 }\n}", "blk.ray")
    err = info.value
    assert isinstance(err.cause, RuntimeFault) and err.cause.rank == 3 and err.cause.key == "kmers/1"
    assert err.cause.reason == "kmers/1 is not on rank 3"
    assert (err.location.line, err.location.column, err.statement) == (3, 10, "copy")
    assert [r.text for r in err.results] == ["put kmers/1 on rank 2"]
    # a refusal there (a file that is not there) is the ScriptError it is on rank 0
    with pytest.raises(ScriptError) as refused:
        local4.run('on 1: load "nowhere.fq" into kmers', "blk.ray")
    assert type(refused.value) is InputError and not isinstance(refused.value, StatementError)
    assert str(refused.value).startswith("blk.ray:1:7: nowhere.fq: no such file")


@pytest.mark.timeout(60)
def test_a_defect_in_a_block_another_rank_commands_comes_back_as_that_rank_s_fault(local4, monkeypatch):
    """An exception that is not a rayscript error ended the block's task on rank 2 unheard: rank 0
    waited for its answer forever."""
    from rayscript.statements.store import Locate

    def broken(self, cmd):
        raise ZeroDivisionError("division by zero")
        yield

    monkeypatch.setattr(Locate, "run", broken)
    with pytest.raises(StatementError) as info:
        local4.run("on 2 { locate kmers/1 }")
    assert info.value.cause.rank == 2
    assert "internal error" in info.value.cause.reason and "ZeroDivisionError: division by zero" in str(info.value)


def test_every_branch_of_parallel_that_fails_keeps_its_error(local4):
    """Only the first error was reported; the others were in neither the error nor err.results."""
    local4.run("for r in 0..3 { put kmers/$r on $r }")
    with pytest.raises(StatementErrors) as info:
        local4.run("parallel {\n on 1: copy kmers/9 from 1 to 2\n on 2: move kmers/2 from 2 to 3\n"
                   " on 3 { copy kmers/3 from 3 to 0\n   get kmers/8 from 3 }\n}", "par.ray")
    err = info.value
    assert isinstance(err, StatementError)  # caught as one statement's error too: the first's
    assert [(e.location.line, e.cause.rank, e.cause.key) for e in err.errors] == [(2, 1, "kmers/9"), (5, 3, "kmers/8")]
    assert err.cause is err.errors[0].cause and err.location == err.errors[0].location
    assert str(err).splitlines()[::3] == ["par.ray:2:8: rank 1: kmers/9 is not on rank 1",
                                          "par.ray:5:4: rank 3: kmers/8 is not on rank 3"]
    # what the branch that succeeded, and the failed one before its error, did
    assert [r.text for r in err.results] == ["moved kmers/2 from rank 2 to rank 3",
                                             "copied kmers/3 from rank 3 to rank 0"]
    # one branch failing raises its own error, as before
    with pytest.raises(StatementError) as one:
        local4.run("parallel { on 1: get kmers/9 from 1\n on 2: locate kmers/3 }")
    assert not isinstance(one.value, StatementErrors) and one.value.cause.rank == 1


def test_a_missing_file_or_checkpoint_is_a_script_error_as_documented(local4, tmp_path):
    for statement in ('load "nowhere.fq" into kmers', f'restore from "{tmp_path}"'):
        with pytest.raises(ScriptError) as info:
            local4.run(f"put kmers/5 on 1\n{statement}")
        assert str(info.value).startswith("<string>:2:1: ")
        assert [r.text for r in info.value.results] == ["put kmers/5 on rank 1"]


EMBEDDED_ERRORS = """
from rayscript import Cluster
from rayscript.errors import RuntimeFault, ScriptError, StatementError, StatementErrors

with Cluster() as c:
    if c is not None:
        try:
            c.run("on 1 { get kmers/5 from 2 }")
        except StatementError as err:
            print(type(err).__name__, type(err.cause).__name__, err.cause.rank, err.cause.key, err.location.column)
        try:
            c.run("put kmers/6 on 0\\nparallel { on 1: get kmers/5 from 2\\n on 2 { get kmers/7 from 1 }\\n"
                  " on 0: copy kmers/6 from 0 to 1 }")
        except StatementErrors as err:
            print(len(err.errors), [(e.cause.rank, e.location.line) for e in err.errors], [r.text for r in err.results])
        try:
            c.run('on 2: load "nowhere.fq" into kmers')
        except ScriptError as err:
            print(type(err).__name__, isinstance(err, StatementError), err.message)
"""


@pytest.mark.mpi
def test_errors_of_blocks_other_ranks_command_cross_mpi_whole(tmp_path):
    prog = tmp_path / "errors.py"
    prog.write_text(EMBEDDED_ERRORS)
    proc = run_mpi(3, *rayscript_cmd(), "exec", sys.executable, str(prog))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "StatementError RuntimeFault 2 kmers/5 8",
        "2 [(2, 2), (1, 3)] ['put kmers/6 on rank 0', 'copied kmers/6 from rank 0 to rank 1']",
        "InputError False nowhere.fq: no such file"]


def test_ranks_table_counts_items_per_namespace(local4):
    local4.run("put kmers/1 on 1\nput paths/p1 on 1\nput results/r on 3")
    (res,) = local4.run("ranks")
    assert [(row["rank"], row["kmers"], row["paths"], row["results"]) for row in res.data] == [
        (0, 0, 0, 0), (1, 1, 1, 0), (2, 0, 0, 0), (3, 0, 0, 1)]
    assert res.text.splitlines()[0].split() == ["rank", "host", "kmers", "paths", "results", "bytes"]


def test_explain_sends_nothing_and_shows_the_cascade(local4):
    (res,) = local4.run("explain copy kmers/19123890 from 2 to 3")
    assert res.data["lines"][1:] == ["  COPY-ORDER     0 -> 2  key=kmers/19123890 target=3",
                            "      then ITEM 2 -> 3 (kmers/19123890)", "      then ACK 3 -> 0"]
    assert local4.run("locate kmers/19123890")[0].data["ranks"] == []


def test_variables_persist_between_runs_and_print(local4):
    local4.run("let x = 42")
    assert local4.run('print "x is" $x')[0].text == "x is 42"


def test_get_returns_the_item_object(local4):
    local4.run("put kmers/77 count=5 on 3")
    item = local4.get("kmers/77", rank=3)
    assert (item.id, item.count) == (77, 5)
    with pytest.raises(RayScriptError, match="kmers/77 is not on rank 1"):
        local4.get("kmers/77", rank=1)


def test_order_timeout_names_the_silent_rank():
    from rayscript.protocol.store import CopyOrder

    with Cluster.local(3) as c:
        swallowed = []
        c.run("put kmers/1 on 2\nset timeout = 300ms")
        c.local_nodes[2].register(CopyOrder, swallowed.append)  # rank 2 stops answering copies
        with pytest.raises(RayScriptError, match="rank 2 did not answer"):
            c.run("copy kmers/1 from 2 to 0")
        assert len(swallowed) == 1
        assert c.run("locate kmers/1")[0].data["ranks"] == [2]  # and the others still serve


def test_an_unanswered_copy_names_the_silent_rank_down_its_cascade_not_its_healthy_source():
    from rayscript.protocol.store import ItemTransfer

    with Cluster.local(4) as c:
        c.run("put kmers/1 on 1\nset timeout = 300ms")
        # rank 2 hangs in the item's handler: the copy's source (rank 1) is fine, its target is not
        c.local_nodes[2].register(ItemTransfer, lambda msg: time.sleep(1.5))
        with pytest.raises(RayScriptError) as info:
            c.run("copy kmers/1 from 1 to 2")
        assert "no answer to copy-order sent to rank 1 within 0.3 s (rank 2, where it leads, did not answer: " \
               "it is stuck, or its host cannot be reached)" in str(info.value)
        assert info.value.cause.rank == 2
        time.sleep(1.5)  # rank 2 comes back
        assert c.run("locate kmers/1")[0].data["ranks"] == [1]


def test_handler_exception_is_returned_with_rank_and_the_loop_goes_on():
    from rayscript.protocol.store import GetOrder

    with Cluster.local(3) as c:
        def broken(msg):
            raise ZeroDivisionError("division by zero")

        c.local_nodes[1].register(GetOrder, broken)
        with pytest.raises(RayScriptError, match=r"rank 1, kmers/4: internal error on .* ZeroDivisionError"):
            c.run("get kmers/4 from 1")
        c.run("put kmers/4 on 1\ncopy kmers/4 from 1 to 2")
        assert c.get("kmers/4", rank=2).count == 1


@pytest.mark.parametrize("statement, expected", [
    ("put kmers/7 count=2 on 3", ["  PUT-ORDER      0 -> 3  key=kmers/7 item=<15 bytes> mode='replace'",
                                  "      then ACK 3 -> 0"]),
    ("move kmers/7 from 1 to 2 merge", [
        "  MOVE-ORDER     0 -> 1  key=kmers/7 target=2 mode='merge'",
        "      then ITEM 1 -> 2 (kmers/7, move)",
        "      then STORED 2 -> 1 (then rank 1 deletes its copy)",
        "      then ACK 1 -> 0"]),
    ("delete kmers/7 from 2", ["  DELETE-ORDER   0 -> 2  key=kmers/7", "      then ACK 2 -> 0"]),
    ("on 3: copy kmers/7 from 1 to 2", [
        "  RUN-BLOCK      0 -> 3  1 statement(s); rank 3 becomes their commander",
        "      then (rank 3 sends the orders of the block)", "      then BLOCK-DONE 3 -> 0",
        "    rank 3 commands:",
        "      COPY-ORDER     3 -> 1  key=kmers/7 target=2", "          then ITEM 1 -> 2 (kmers/7)",
        "          then ACK 2 -> 3"]),
    ("let r = 2\nfor i in 1..2 { get kmers/$i from $r }", None),
])
def test_statements_compile_to_the_exact_control_messages(local4, statement, expected):
    *setup, last = statement.split("\n")
    if setup:
        local4.run("\n".join(setup))
    (res,) = local4.run(f"explain {last}")
    if expected is None:
        assert res.data["lines"][1:] == [
            "  i = 1:", "    GET-ORDER      0 -> 2  key=kmers/1", "        then ITEM-REPLY 2 -> 0",
            "  i = 2:", "    GET-ORDER      0 -> 2  key=kmers/2", "        then ITEM-REPLY 2 -> 0"]
    else:
        assert res.data["lines"][1:] == expected


def test_ctrl_c_while_a_statement_runs_is_acted_on_at_a_safe_point(sigint):
    """SIGINT during a statement is noted, not raised wherever the main thread happens to be (in
    the middle of taking in replies, say): the loop raises it at its next check."""
    import _thread
    import signal

    from rayscript.runtime.tasks import Future

    with Cluster.local(2) as c:
        node = c.node
        with node.interrupts.at_safe_points():
            _thread.interrupt_main(signal.SIGINT)
            time.sleep(0.05)  # the handler has run: nothing was raised here
            assert node.interrupts.sigint
            with pytest.raises(KeyboardInterrupt):
                node.run_until(Future())
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert c.run("put kmers/5 on 1\nlocate kmers/5")[1].data["ranks"] == [1]


HEARTBEAT = """
import sys, time
from mpi4py import MPI
from rayscript.runtime.mpi import MPIMessenger

m = MPIMessenger()
m.watch_driver(lambda: 2.5)  # rank 0 beats from a thread; rank 1 listens (before a beat: 2.5 s too)
if m.rank == 0:
    time.sleep(3.5)  # longer than the lease; the main thread does nothing with MPI meanwhile: the beats go on
    m.stop_beating()  # as when rank 0 is gone
    MPI.COMM_WORLD.recv(source=1)
else:
    def fail(why):
        print(why, file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Abort(1)

    start = time.monotonic()
    while time.monotonic() - start < 3.5:
        if m.driver_silence() is not None:
            fail(f"rank 0 taken for silent after {time.monotonic() - start:.1f} s of beating")
        time.sleep(0.1)
    quiet = time.monotonic()
    while (lost := m.driver_silence()) is None and time.monotonic() - quiet < 10:
        time.sleep(0.1)
    if lost is None or not (lost[0] > 2.5 and lost[1] == 2.5):
        fail(f"silence not seen after the lease: {lost}")
    print(f"silent after {time.monotonic() - quiet:.1f} s")
    MPI.COMM_WORLD.send("done", dest=0)
"""


def test_rank_0_beats_while_it_does_nothing_and_the_silence_is_seen_after_the_lease(tmp_path):
    """The heartbeat under which the ranks of a job across several hosts end when they lose rank
    0 (tests/test_multihost.py runs the whole of it across hosts)."""
    prog = tmp_path / "beat.py"
    prog.write_text(HEARTBEAT)
    proc = run_mpi(2, sys.executable, str(prog), timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "silent after " in proc.stdout, proc.stdout  # seen, and not before the lease (checked above)


LEASE_CHANGED = """
import sys, time
from mpi4py import MPI
from rayscript.runtime import mpi
from rayscript.runtime.mpi import MPIMessenger

mpi.BEAT_SECONDS = 3600  # no beat but the first, unless one is asked for
m = MPIMessenger()
lease = [3600.0]
m.watch_driver(lambda: lease[0])
if m.rank == 0:
    MPI.COMM_WORLD.recv(source=1)  # rank 1 has the first beat's lease
    lease[0] = 2.5
    m.lease_changed()
    MPI.COMM_WORLD.recv(source=1)
    m.stop_beating()
    MPI.COMM_WORLD.recv(source=1)
else:
    before = m._heard[0]
    while m._heard[0] == before:  # until the first beat is heard
        m.driver_silence()
        time.sleep(0.01)
    MPI.COMM_WORLD.send("first", dest=0)
    start = time.monotonic()
    while m._heard[1] != 2.5 and time.monotonic() - start < 60:
        m.driver_silence()
        time.sleep(0.01)
    print("lease", m._heard[1], flush=True)
    MPI.COMM_WORLD.send("changed", dest=0)
    while (lost := m.driver_silence()) is None and time.monotonic() - start < 60:
        time.sleep(0.1)
    print("lost", lost and lost[1], flush=True)
    MPI.COMM_WORLD.send("done", dest=0)
"""


def test_a_changed_lease_reaches_the_ranks_at_once():
    """``set timeout`` changes the lease: the ranks learn it from a beat sent then, not from the next
    one (here an hour away), so a host cut off right after it is given up by the new lease."""
    proc = run_mpi(2, sys.executable, "-c", LEASE_CHANGED, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:2] == ["lease 2.5", "lost 2.5"], proc.stdout


STALLED = """
import os, sys, time
import numpy as np
from mpi4py import MPI
from rayscript.errors import TransferStalled
from rayscript.protocol.bulk import BulkChunk
from rayscript.runtime.mpi import TAG_CONTROL, MPIMessenger

m = MPIMessenger()
m.patience = lambda: 2.0
if m.rank == 1:  # announces a chunk's arrays, then stops before sending them
    chunk = BulkChunk(recipient=0, sender=1, commander=0, request=7, buckets=(0,), k=21)
    chunk.buffers = [np.zeros(1000, np.uint64), np.zeros(1000, np.uint32), np.zeros(1000, np.uint8)]
    MPI.COMM_WORLD.isend(chunk.pack(), 0, TAG_CONTROL).wait()
    time.sleep(5)
    os._exit(0)
else:
    start = time.monotonic()
    try:
        m.poll(10.0)
        print("no error", flush=True)
    except TransferStalled as exc:
        print(f"after {time.monotonic() - start:.1f} s: {exc}", flush=True)
    os._exit(0)  # the other rank never sends: do not wait for it at exit
"""


def test_a_sender_that_stops_in_the_middle_of_bulk_data_is_named_after_the_timeout(tmp_path):
    """The receiver of a message's bulk buffers does not wait forever for a sender that stopped
    (the node sets the patience to the order timeout; the job then ends)."""
    prog = tmp_path / "stalled.py"
    prog.write_text(STALLED)
    proc = run_mpi(2, sys.executable, str(prog), timeout=60)
    out = proc.stdout
    assert "rank 0: the bulk data of a 'bulk-chunk' message from rank 1 stopped arriving (nothing for 2 s" in out, \
        (out, proc.stderr[-2000:])
    seconds = float(out.split("after ")[1].split(" s")[0])
    assert seconds >= 1.9, out  # not before the patience ran out


ABANDONED = """
import gc, sys, time
import numpy as np
from mpi4py import MPI
from rayscript.errors import CollectiveAborted
from rayscript.runtime.collective import MPICollective

c = MPICollective(MPI.COMM_WORLD)
c.patience = lambda: 20.0
n = 2_000_000  # 16 MB from each rank to each: the receive buffer is memory of its own (unmapped when freed)
if c.rank == 1:
    old = c.comm
    old.Ialltoall(np.full(c.size, n, np.int64), np.empty(c.size, np.int64)).Wait()  # the counts, with everyone
    c.abort("leaving")  # the others give up the exchange of the data ...
    time.sleep(1.0)
    # ... which this rank then takes part in after all (as a rank told to terminate in the middle of a
    # step does): its data lands in the buffers the others gave up on
    late = old.Ialltoallv([np.ones(n * c.size, np.uint64), [n] * c.size], [np.empty(n * c.size, np.uint64),
                                                                         [n] * c.size])
    c.reset()
else:
    try:
        c.exchange(np.ones(n * c.size, np.uint64), [n] * c.size)
        print("not aborted", flush=True)
    except CollectiveAborted as exc:
        print(f"rank {c.rank}: {exc}", flush=True)
    c.reset()
    gc.collect()
# every rank, later: MPI goes on with the operations left behind while the next ones run
for _ in range(20):
    c.allreduce(np.ones(3, np.int64))
    time.sleep(0.05)
if c.rank == 1:
    while not late.Test():
        time.sleep(0.01)
c.allreduce(np.ones(1, np.int64))
print(f"rank {c.rank} ok", flush=True)
"""


def test_a_collective_step_given_up_keeps_its_buffers_while_mpi_may_still_use_them(tmp_path):
    """A rank that leaves a collective step (another rank aborted it, its patience ran out, a SIGTERM)
    leaves MPI an operation still under way: the arrays it reads and writes must live on (the ranks
    crashed with SIGSEGV when data of the step came in after the arrays were freed)."""
    prog = tmp_path / "abandoned.py"
    prog.write_text(ABANDONED)
    # over TCP the data is written by this process itself: into unmapped memory, a certain SIGSEGV
    proc = run_mpi(3, sys.executable, str(prog), timeout=60, env={"PYTHONFAULTHANDLER": "1", "UCX_TLS": "tcp,self"})
    assert "rank 0: rank 1 failed: leaving" in proc.stdout and "rank 2: rank 1 failed: leaving" in proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(f"rank {r} ok" in proc.stdout for r in range(3)), proc.stdout


def test_a_serving_rank_told_to_terminate_between_two_steps_of_its_loop_reports_it():
    """SIGTERM raises Terminated wherever the rank is when it comes; its keeper passes it on at any
    moment, so it may come between two steps of the serving loop (at the loop's own test) rather
    than inside one: the rank reports it as well (it escaped the loop, and the rank exited 143
    without a word, before rank 0 could name it)."""
    import threading

    from rayscript.errors import RankFailure, Terminated

    armed = threading.Event()
    with Cluster.local(3) as c:
        node = c.local_nodes[1]

        class Between(type(node)):  # the loop's test of 'stopping' is where the signal lands
            @property
            def stopping(self):
                if armed.is_set():
                    armed.clear()
                    raise Terminated("terminated by SIGTERM")
                return self.__dict__["stopping"]

            @stopping.setter
            def stopping(self, value):
                self.__dict__["stopping"] = value

        node.__class__ = Between
        armed.set()
        with pytest.raises(RankFailure, match="rank 1 failed: terminated by SIGTERM"):
            for _ in range(1000):  # until rank 0 has heard of it
                c.run("put kmers/1 on 1")
        assert not armed.is_set()
