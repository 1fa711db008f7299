"""End to end: real mpiexec with several ranks, the CLI and the embedding API."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import BIN, ROOT, killed_status, need, needs_the_mpich_wheel, rayscript_cmd, run_mpi, write_fastq

pytestmark = pytest.mark.mpi


def test_readme_demo_runs_the_seed_and_an_assembly_on_six_ranks():
    proc = subprocess.run(["bash", "scripts/demo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert "copied kmers/19123890 from rank 2 to rank 5" in out
    assert "kmers/19123890 is on ranks 2 (owner), 5" in out
    assert "kmers/19123890 count=3 edges=->-  (on rank 5)" in out
    start = out.index("== examples/assemble.ray: reads -> k-mers -> contigs")
    table = out[start - 9:start - 1]
    assert table[0].split() == ["rank", "host", "kmers", "paths", "results", "bytes"]
    assert len(table) == 8  # header, rule, six ranks
    # the assembly: one contig for the 20 kbp genome, written as FASTA
    assert any(line.startswith("assembled 1 contig into paths/contig-1..1: ") for line in out), proc.stdout
    written = [line for line in out if line.startswith("wrote 1 path as FASTA")]
    assert written and written[0].rstrip(")").endswith("demo-data/contigs.fa (each rank wrote its own records")
    contig = "".join((ROOT / "demo-data" / "contigs.fa").read_text().splitlines()[1:])
    genome = "".join((ROOT / "demo-data" / "reads.fq.genome.fa").read_text().splitlines()[1:])
    rc = contig[::-1].translate(str.maketrans("ACGT", "TGCA"))
    assert len(contig) > 19_900 and (contig in genome or rc in genome)


@pytest.mark.parametrize("n", [2, 6])  # from the commander itself, and between two others
def test_copy_between_the_last_two_ranks(n):
    a, b = n - 2, n - 1
    proc = run_mpi(n, *rayscript_cmd(), "run", "-e",
                   f"put kmers/5 count=2 on {a}; copy kmers/5 from {a} to {b}; get kmers/5 from {b}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"kmers/5 count=2 edges=->-  (on rank {b})"


def test_script_error_exits_non_zero_with_a_located_message(tmp_path):
    script = tmp_path / "bad.ray"
    script.write_text("put kmers/1 on 1\ncopy kmers/1 from 2 to 3\nprint \"not reached\"\n")
    proc = run_mpi(4, *rayscript_cmd(), "run", str(script))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["put kmers/1 on rank 1"]
    assert proc.stderr.splitlines()[:3] == [f"{script}:2:1: rank 2: kmers/1 is not on rank 2",
                                            "    copy kmers/1 from 2 to 3", "    ^"]
    assert "Traceback" not in proc.stderr


def test_a_loop_that_fails_part_way_reports_what_it_did_before_the_error(tmp_path):
    script = tmp_path / "loop.ray"
    script.write_text("put kmers/1 on 2\nput kmers/2 on 2\nfor i in 1..3 {\n  copy kmers/$i from 2 to 0\n}\n")
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["put kmers/1 on rank 2", "put kmers/2 on rank 2",
                                        "copied kmers/1 from rank 2 to rank 0", "copied kmers/2 from rank 2 to rank 0"]
    assert proc.stderr.startswith(f"{script}:4:3: rank 2: kmers/3 is not on rank 2")


def test_syntax_error_sends_nothing(tmp_path):
    script = tmp_path / "typo.ray"
    script.write_text("put kmers/1 on 1\ncopy kmers/1 frm 1 to 3\n")
    proc = run_mpi(3, *rayscript_cmd(), "run", str(script))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"{script}:2:14: expected 'from' or 'to' after 'kmers/1', got 'frm'" in proc.stderr


def test_rank_outside_cluster_is_refused_before_anything_runs():
    proc = run_mpi(3, *rayscript_cmd(), "run", "-e", "put kmers/1 on 0\ncopy kmers/1 from 0 to 3")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "rank 3 is outside the cluster: ranks are 0..2 (3 ranks)" in proc.stderr


def test_an_option_value_that_does_not_fit_is_refused_before_anything_runs(tmp_path):
    """'load ... k=99' after a statement: the statement before it ran (and a long load could have),
    then the run failed; now nothing is sent, and the value is pointed at."""
    script = tmp_path / "k.ray"
    script.write_text('put kmers/1 on 1\nload "reads.fq" into kmers k=199\n')
    proc = run_mpi(2, *rayscript_cmd(), "run", str(script))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{script}:2:30: k= takes a whole number from 1 to 127 (at most four 64-bit words per k-mer), not 199",
        '    load "reads.fq" into kmers k=199', "                                 ^"]
    # a $variable's value is known only when the statement runs: refused there, before it sends anything
    proc = run_mpi(2, *rayscript_cmd(), "run", "-e", 'let c = "maybe"\nassemble kmers into paths/c clean=$c')
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[:3] == [
        "<-e>:2:35: clean= takes true or false, not 'maybe' ($c)",
        "    assemble kmers into paths/c clean=$c", "                                      ^"]


def test_repl_line_mode_keeps_going_after_an_error():
    proc = run_mpi(3, *rayscript_cmd(), "repl",
                   input="put kmers/5 on 1\ncopy kmers/5 frm 1 to 2\n"
                         "on 2 {\n copy kmers/5 from 1 to 2\n}\nlocate kmers/5\n\non 1 {\n print $nope\n}\n"
                         "for i in 1..2 {\nprint $i\n")
    assert proc.stdout.splitlines() == ["put kmers/5 on rank 1", "copied kmers/5 from rank 1 to rank 2",
                                        "kmers/5 is on ranks 1, 2"]
    # errors are located in the whole input, as in a script
    assert proc.stderr.splitlines() == [
        "<stdin>:2:14: expected 'from' or 'to' after 'kmers/5', got 'frm'",
        "    copy kmers/5 frm 1 to 2", "                 ^",
        "<stdin>:9:2: undefined variable $nope", "     print $nope", "     ^",
        "<stdin>:11: the input ended inside the block opened here with '{'"]
    assert proc.returncode == 1  # not a terminal: like a script, an error makes the status non-zero


def test_without_mpiexec_runs_on_one_rank_and_says_so():
    proc = subprocess.run([*rayscript_cmd(), "run", "-e", "put kmers/1 on 0; locate kmers/1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "not started under mpiexec; running on 1 rank" in proc.stderr
    assert proc.stdout.splitlines() == ["put kmers/1 on rank 0", "kmers/1 is on rank 0 (owner)"]


def test_check_reports_every_error_without_mpi(tmp_path):
    script = tmp_path / "two.ray"
    script.write_text("cpy kmers/1 from 0 to 1\nlocate kmers/1\nget kmers/1 from 9\n")
    proc = subprocess.run([*rayscript_cmd(), "check", str(script)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{script}:1:1: unknown statement 'cpy'; did you mean 'copy'?" in proc.stderr
    ok = tmp_path / "ok.ray"
    ok.write_text("get kmers/1 from 9\n")
    proc = subprocess.run([*rayscript_cmd(), "check", str(ok), "--ranks", "4"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "rank 9 is outside the cluster: ranks are 0..3 (4 ranks)" in proc.stderr
    proc = subprocess.run([*rayscript_cmd(), "check", "examples/seed.ray", "--ranks", "6"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("examples/seed.ray: ok")


def test_check_reports_option_values_beside_syntax_errors(tmp_path):
    """k=128 and min_count=0 were reported alone, and not beside a syntax error on another line."""
    script = tmp_path / "mixed.ray"
    script.write_text('assemble "a.fq" "b.fq" into paths/x\nassemble "a.fq" into paths/x k=128\n'
                      'assemble "a.fq" into paths/x min_count=0\n')
    proc = subprocess.run([*rayscript_cmd(), "check", str(script)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert [line.split(": ")[0] for line in proc.stderr.splitlines() if line.startswith(str(script))] == [
        f"{script}:1:17", f"{script}:2:32", f"{script}:3:40", str(script)]
    assert proc.stderr.endswith(f"{script}: 3 errors\n")


def test_version_and_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "rayscript", "--version"], capture_output=True, text=True)
    assert proc.stdout.strip().startswith("rayscript 0.")


EMBED = """
import sys
from rayscript import Cluster
with Cluster() as c:
    if c is not None:
        c.run("put kmers/19123890 count=4 on 2\\ncopy kmers/19123890 from 2 to 3")
        item = c.get("kmers/19123890", rank=3)
        print("rank", c.rank, "of", c.size, "got", item.id, item.count)
print("after", flush=True)
"""


def test_embedding_api_under_mpiexec(tmp_path):
    prog = tmp_path / "embed.py"
    prog.write_text(EMBED)
    proc = run_mpi(4, str(BIN / "python"), str(prog))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "rank 0 of 4 got 19123890 4" in lines
    assert proc.stdout.count("after") == 4  # every rank leaves the block (ranks share one stdout)


CRASH = """
from rayscript import Cluster
from rayscript.runtime.mpi import MPIMessenger
from mpi4py import MPI

c = Cluster(comm=MPI.COMM_WORLD)
if c.rank == {bad}:
    original = c.node.dispatch
    def dispatch(msg):
        if type(msg).__name__ == "CopyOrder":
            {action}
        original(msg)
    c.node.dispatch = dispatch
with c as client:
    if client is not None:
        client.run("put kmers/3 on {bad}\\ncopy kmers/3 from {bad} to 0")
        print("not reached")
"""


@pytest.mark.parametrize("action, message", [
    ("raise MemoryError('simulated')", "rank 2 failed: MemoryError: simulated"),
    ("import os; os._exit(9)", None),
])
def test_a_failing_rank_ends_the_whole_job_within_seconds(tmp_path, action, message):
    prog = tmp_path / "crash.py"
    prog.write_text(CRASH.format(bad=2, action=action))
    proc = run_mpi(4, str(BIN / "python"), "-c", f"exec(open({str(prog)!r}).read())", timeout=60)
    assert proc.returncode != 0
    assert "not reached" not in proc.stdout
    if message:
        assert message in proc.stderr


def test_an_embedding_program_run_by_rayscript_exec_gets_its_killed_rank_named(tmp_path):
    prog = tmp_path / "crash.py"
    prog.write_text(CRASH.format(bad=1, action="import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    proc = run_mpi(3, *rayscript_cmd(), "exec", str(BIN / "python"), str(prog), timeout=60)
    assert proc.returncode == killed_status(9) and "not reached" not in proc.stdout
    assert proc.stderr.count("rayscript: rank") == 1, proc.stderr
    assert "rayscript: rank 1 (pid " in proc.stderr and "was killed (SIGKILL" in proc.stderr
    # and a program that ends normally ends the same way under its keeper
    ok = run_mpi(2, *rayscript_cmd(), "exec", "--", str(BIN / "python"), "-c", "import sys; sys.exit(3)")
    assert ok.returncode == 3 and ok.stderr == ""


STUCK = """
import os, signal, sys, time
if os.environ["PMI_RANK"] == "1":
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # as a rank stuck inside a call into MPI
    os.kill(os.getppid(), signal.SIGTERM)  # its keeper is told to terminate, and passes it on
time.sleep(120)
"""


@pytest.mark.slow
def test_a_rank_that_does_not_end_after_sigterm_is_killed_by_its_keeper_and_named(tmp_path):
    prog = tmp_path / "stuck.py"
    prog.write_text(STUCK)
    proc = run_mpi(2, *rayscript_cmd(), "exec", str(BIN / "python"), str(prog), timeout=100)
    assert proc.returncode != 0
    assert proc.stderr.count("rayscript: rank") == 1, proc.stderr
    assert "rayscript: rank 1 (pid " in proc.stderr
    assert "did not end within 10 s of SIGTERM (stuck where the signal could not reach it): killed" in proc.stderr


@pytest.mark.parametrize("ending, status", [
    ('c.run("bogus statement")', 1),  # an error nobody catches
    ("pass", 0),  # simply forgetting c.close()
])
def test_a_program_that_ends_without_closing_its_cluster_ends_the_job(tmp_path, ending, status):
    prog = tmp_path / "unclosed.py"
    prog.write_text(f"""import sys
from rayscript import Cluster
c = Cluster()
if c.rank == 0:
    print(c.run("put kmers/1 on 1")[0].text)
    {ending}
else:
    c.serve()
    sys.stdout.write(f"rank {{c.rank}} stopped\\n")  # one write: lines of two ranks do not mix
    sys.stdout.flush()
""")
    proc = run_mpi(3, str(BIN / "python"), str(prog), timeout=60)
    assert proc.returncode == status, proc.stderr
    assert "put kmers/1 on rank 1" in proc.stdout
    assert "rank 1 stopped" in proc.stdout and "rank 2 stopped" in proc.stdout
    assert ("unknown statement 'bogus'" in proc.stderr) == (status == 1)


@pytest.mark.parametrize("other, why", [
    ("pass", "its program ended without serving"),  # forgot c.serve()
    ('raise RuntimeError("own bug")', "its program failed (RuntimeError: own bug) without serving"),
])
def test_a_rank_whose_program_ends_without_serving_is_named_at_once(tmp_path, other, why):
    prog = tmp_path / "unserved.py"
    prog.write_text(f"""from rayscript import Cluster
c = Cluster()
if c.rank == 1:
    {other}
elif c.rank == 0:
    c.run("put kmers/1 on 1")
    print("not reached")
else:
    c.serve()
""")
    proc = run_mpi(3, str(BIN / "python"), str(prog), timeout=60)
    assert proc.returncode == 1 and "not reached" not in proc.stdout
    assert f"RankFailure: rank 1 failed: {why} (ranks other than 0 call c.serve()" in proc.stderr, proc.stderr
    assert "did not answer" not in proc.stderr  # named at once, not after the order timeout


def test_embedded_crash_is_reported_by_rank_0(tmp_path):
    prog = tmp_path / "crash.py"
    prog.write_text(textwrap.dedent(CRASH.format(bad=1, action="raise RuntimeError('bad state')")))
    proc = run_mpi(3, str(BIN / "python"), str(prog), timeout=60)
    assert proc.returncode != 0
    assert "rank 1 failed: RuntimeError: bad state" in proc.stderr


TERMINATE = """
import os, signal, sys
import rayscript.cli as cli

how = sys.argv[1]

original = cli.open_cluster
def open_cluster(ranks, progress=None):
    c = original(ranks, progress)
    if c.rank == 2:
        from rayscript.protocol.store import PutOrder
        handler = c.node.handlers[PutOrder]
        seen = []
        def put(msg):
            seen.append(1)
            if len(seen) == 50:
                if how == "rank":
                    os.kill(os.getpid(), signal.SIGTERM)  # as 'kill PID' would
                elif how == "keeper":
                    os.kill(os.getppid(), signal.SIGTERM)  # as the launcher would: the keeper passes it on
                else:
                    os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 or the out-of-memory killer would
            handler(msg)
        c.node.register(PutOrder, put)
    return c
cli.open_cluster = open_cluster
raise SystemExit(cli.main(["run", "-e", "for i in 1..100000 { put kmers/$i on 2 }"]))
"""


@pytest.mark.parametrize("how", ["rank", "keeper"])
def test_a_rank_told_to_terminate_is_named_and_the_job_ends(tmp_path, how):
    prog = tmp_path / "term.py"
    prog.write_text(TERMINATE)
    proc = run_mpi(3, str(BIN / "python"), str(prog), how, timeout=60)
    assert proc.returncode == 1
    assert "error: rank 2 failed: terminated by SIGTERM" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "rayscript: rank" not in proc.stderr  # no keeper spoke: the rank ended normally


TERMINATE_IN_COLLECTIVE = """
import os, signal, sys, threading, time
import rayscript.cli as cli
from rayscript.protocol.assembly import AssembleOrder
from rayscript.protocol.checkpoint import SaveOrder
from rayscript.protocol.kmers import DumpWriteOrder, LoadOrder

victim, to, when, statement = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ORDERS = {"load": LoadOrder, "assemble": AssembleOrder, "dump": DumpWriteOrder, "save": SaveOrder}


def terminate():
    os.kill(os.getpid() if to == "rank" else os.getppid(), signal.SIGTERM)  # 'kill PID', or the launcher's


original = cli.open_cluster
def open_cluster(ranks, progress=None):
    c = original(ranks, progress)
    armed = []
    handler = c.node.handlers[ORDERS[statement]]
    def order(msg):  # the statement under test has begun on this rank
        armed.append(1)
        if when == "handler" and c.rank == victim:
            terminate()
            time.sleep(10)
        handler(msg)
    c.node.register(ORDERS[statement], order)
    coll = c.node.collective
    allreduce = coll.allreduce
    def step(values):  # the statement's first collective step
        if len(armed) == 1:
            armed.append(1)
            if c.rank == victim and when == "working":
                terminate()  # while it works, the others wait for it
                time.sleep(10)
            elif c.rank == victim:
                threading.Timer(0.5, terminate).start()  # while it waits for a rank behind
            elif c.rank == (victim + 1) % c.size and when == "waiting":
                time.sleep(3)
        return allreduce(values)
    coll.allreduce = step
    return c
cli.open_cluster = open_cluster
raise SystemExit(cli.main(["repl"]))
"""


@pytest.mark.parametrize("statement, victim, to, when", [
    ("load", 2, "rank", "working"),
    ("load", 2, "keeper", "waiting"),
    ("assemble", 1, "keeper", "working"),
    ("assemble", 2, "rank", "waiting"),
    ("load", 0, "keeper", "waiting"),  # the commander itself
    ("dump", 0, "rank", "handler"),
    ("save", 2, "keeper", "handler"),
    ("save", 0, "keeper", "handler"),
])
def test_a_rank_told_to_terminate_inside_a_collective_is_named_and_the_job_ends(tmp_path, statement, victim, to,
                                                                                  when):
    """SIGTERM to a rank (or to its keeper, which passes it on) while every rank works on one statement:
    the others stop waiting for it at once and the job ends naming it (they waited for the 30 s timeout
    and blamed a rank that did nothing; a commander told to terminate went on with its next statement)."""
    import random

    rng = random.Random(7)
    genome = "".join(rng.choice("ACGT") for _ in range(3000))
    write_fastq(tmp_path / "r.fq", [genome[i:i + 100] for i in range(0, 2900, 7)])
    prog = tmp_path / "term.py"
    prog.write_text(TERMINATE_IN_COLLECTIVE)
    first = {"load": "", "assemble": f'load "{tmp_path}/r.fq" into kmers k=21\n',
             "dump": f'load "{tmp_path}/r.fq" into kmers k=21\n', "save": "put kmers/1 on 2\n"}[statement]
    then = {"load": f'load "{tmp_path}/r.fq" into kmers k=21', "assemble": "assemble kmers into paths/c",
            "dump": f'dump kmers to "{tmp_path}/out.tsv"', "save": f'save to "{tmp_path}/ck"'}[statement]
    proc = run_mpi(3, str(BIN / "python"), str(prog), str(victim), to, when, statement,
                   input=f"{first}{then}\nput kmers/5 on 1\n", timeout=60)
    assert f"error: rank {victim} failed: terminated by SIGTERM" in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    assert "waited more than" not in proc.stderr  # nobody else is blamed (nor waited for the timeout)
    assert "put kmers/5 on rank 1" not in proc.stdout  # the session ended there
    assert "Traceback" not in proc.stderr


def test_a_rank_killed_outright_is_named_by_its_keeper_and_the_job_ends(tmp_path):
    prog = tmp_path / "term.py"
    prog.write_text(TERMINATE)
    proc = run_mpi(3, str(BIN / "python"), str(prog), "kill", timeout=60)
    assert proc.returncode == killed_status(9)  # the launcher reports the signal the rank died of
    # one line, for the rank that died first; the launcher then stopped the others' keepers
    assert proc.stderr.count("rayscript: rank") == 1, proc.stderr
    assert "rayscript: rank 2 (pid " in proc.stderr and "was killed (SIGKILL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_launcher_of_another_mpi_is_named_in_one_line(monkeypatch):
    needs_the_mpich_wheel()
    from rayscript.runtime.keeper import launcher_mismatch

    for name in ("PMI_RANK", "HYDRA_CONTROL_FD", "PMI_FD", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launcher_mismatch() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")  # Open MPI's launcher, the mpich wheel here
    assert "started by Open MPI's mpiexec, but rayscript's mpi4py runs on MPICH" in launcher_mismatch()
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    monkeypatch.setenv("PMI_RANK", "0")  # MPICH's own launcher: fine
    assert launcher_mismatch() is None


def test_open_mpis_mpirun_gets_one_line_saying_which_mpiexec_to_use():
    needs_the_mpich_wheel()
    mpirun = Path("/usr/bin/mpirun")
    if not mpirun.exists() or "Open MPI" not in subprocess.run([str(mpirun), "--version"], capture_output=True,
                                                                text=True).stdout:
        need(False, "Open MPI's mpirun", "openmpi-bin")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([str(mpirun), "--oversubscribe", "-np", "3", str(BIN / "rayscript"), "run", "-e", "ranks"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("rayscript:")]
    assert ours == [f"rayscript: this job was started by Open MPI's mpiexec, but rayscript's mpi4py runs on MPICH "
                    f"(the pip package): start it with {BIN / 'mpiexec'} -n N ... instead, or set rayscript up with "
                    "RAYSCRIPT_MPI=system scripts/setup to use the system MPI (with its development headers)"]
    assert "PMI" not in proc.stderr and "Traceback" not in proc.stderr
