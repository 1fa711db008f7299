"""The interactive shell, driven in-process through prompt_toolkit's pipe input, and once for
real inside tmux under mpiexec."""

import _thread
import io
import os
import signal
import subprocess
import time

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.plain_text import PlainTextOutput

from conftest import BIN, ROOT, need_tool
from rayscript import Cluster
from rayscript.repl.completer import RayCompleter
from rayscript.repl.lexer import RayLexer
from rayscript.repl.shell import Shell
from support import procs


def drive(cluster, keys, history=None):
    """Type ``keys`` into a shell on ``cluster``; return what it printed."""
    buf = io.StringIO()
    with create_pipe_input() as inp:
        shell = Shell(cluster, input=inp, output=PlainTextOutput(buf), history=history or InMemoryHistory())
        inp.send_text(keys)
        assert shell.loop() == 0
    return buf.getvalue(), shell


def completions(text, size=4, variables=None, keys=None, sets=None):
    comp = RayCompleter(size, variables or {}, keys or [], sets or [])
    return [c.text for c in comp.get_completions(Document(text, len(text)), CompleteEvent())]


def test_completion_follows_the_grammar():
    assert sorted(completions("co")) == ["combine", "compare", "copy", "count"]
    assert ":timing" in completions("")
    assert completions("copy kmers/5 ") == ["from", "to"]
    assert completions("copy kmers/5 from ") == ["0", "1", "2", "3"]
    assert completions("copy kmers/5 from $", variables={"r": 2}) == ["$r"]
    assert completions("copy kmers/5 from 1 to 2 ") == ["merge", "replace"]
    assert completions("get ") == ["kmers/", "paths/", "results/"]
    assert completions("get k", keys=["kmers/77", "paths/p"]) == ["kmers/", "kmers/77"]
    assert completions("load \"r.fq\" into kmers ") == ["k=", "canonical="]
    assert sorted(completions("help lo")) == ["load", "locate"]
    assert completions("count ") == ["kmers/", "paths/", "results/", "kmers", "paths", "results"]
    assert completions("combine kmers.a - kmers.", sets=["kmers.a", "kmers.b"]) == ["kmers.b", "kmers.a"]
    assert completions("on 2 { cop") == ["copy"]
    # pictures: count paths compares assemblies, a reference for NGA50, a file to draw to
    assert {"compare", "to", "reference="} <= set(completions("count paths "))
    assert completions('count paths compare "a.fa" to "nx.png" ') == ["reference="]
    assert '"' in completions("compare kmers.a, kmers.b to ") and '"' in completions("matrix kmers.a to ")


def test_completion_of_file_paths_after_load(tmp_path, monkeypatch):
    (tmp_path / "reads_1.fq").write_text("@a\nA\n+\nI\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert completions('load "rea') == ['"reads_1.fq"']
    assert completions('load "su') == ['"sub']


def test_lexer_names_tokens_from_the_grammar():
    tokens = [(str(t), v) for t, v in RayLexer().get_tokens('copy kmers/5 from $r to 2 # note\n') if v.strip()]
    assert tokens == [("Token.Keyword", "copy"), ("Token.Name.Variable.Instance", "kmers/5"),
                      ("Token.Keyword", "from"), ("Token.Name.Variable", "$r"), ("Token.Keyword", "to"),
                      ("Token.Literal.Number.Integer", "2"), ("Token.Comment.Single", "# note")]


def test_session_runs_statements_multiline_blocks_and_recovers_from_errors():
    with Cluster.local(3) as c:
        out, shell = drive(c, "put kmers/5 count=2 on 1\r"
                              "copy kmers/5 frm 1 to 2\r"
                              "on 1 {\r copy kmers/5 from 1 to 2\r}\r"
                              "locate kmers/5\r"
                              "let x = 7\r:vars\r:timing\r:timing on\rranks\r:nonsense\r:source\r\x04")
        assert "put kmers/5 on rank 1" in out
        assert "<stdin>:1:14: expected 'from' or 'to' after 'kmers/5', got 'frm'" in out
        assert "copied kmers/5 from rank 1 to rank 2" in out
        assert "kmers/5 is on ranks 1, 2" in out
        assert "$x = 7" in out
        assert "timing is on" in out and " ms)" in out
        assert "rank  host" in out
        assert "unknown meta command ':nonsense'" in out
        assert "error: :timing takes on or off (it is off now)" in out  # known, but used wrongly
        assert "error: :source takes FILE.ray" in out
        assert list(shell.session.history.get_strings())[2] == "on 1 {\n copy kmers/5 from 1 to 2\n }"
        assert "kmers/5" in shell.keys
        assert c.run("locate kmers/5")[0].data["ranks"] == [1, 2]  # the cluster is still serving


def test_banner_and_source(tmp_path):
    script = tmp_path / "s.ray"
    script.write_text("put paths/p1 on 1\nlocate paths/p1\n")
    with Cluster.local(2) as c:
        out, _ = drive(c, f":source {script}\r:source {tmp_path}/missing.ray\rexit\r")
    first = out.splitlines()[0]
    assert first.startswith("rayscript ") and "2 ranks on 1 host" in first and "store: 0 kmers" in first
    assert "paths/p1 is on rank" in out
    assert "cannot read" in out


def test_history_persists_in_the_xdg_data_directory(tmp_path, monkeypatch):
    from rayscript.repl.shell import history_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert history_path() == tmp_path / "rayscript" / "history"
    with Cluster.local(1) as c:
        buf = io.StringIO()
        with create_pipe_input() as inp:
            shell = Shell(c, input=inp, output=PlainTextOutput(buf))
            inp.send_text("ranks\r\x04")
            shell.loop()
    assert "ranks" in (tmp_path / "rayscript" / "history").read_text()


def test_ctrl_c_during_a_long_statement_cancels_it_and_the_prompt_returns(sigint):
    from rayscript.protocol.store import PutOrder

    with Cluster.local(3) as c:
        slow = c.local_nodes[1]
        original = slow.handlers[PutOrder]

        served = [0]

        def sluggish(msg):
            time.sleep(0.01)
            original(msg)
            served[0] += 1
            if served[0] == 30:  # the loop is well under way: the user presses Ctrl-C (SIGINT to the main thread)
                _thread.interrupt_main(signal.SIGINT)

        slow.register(PutOrder, sluggish)
        out, _ = drive(c, "for i in 1..100000 { put kmers/$i on 1 }\rcount kmers\r\x04")
        assert "^C cancelled; every order already sent was completed, later orders were not sent" in out
        (count,) = c.run("count kmers")
        held = count.data["distinct"]
        assert 0 < held < 100000
        # nothing half done: every put that was sent is there, and nothing more is coming
        time.sleep(0.3)
        assert c.run("count kmers")[0].data["distinct"] == held


@pytest.fixture(autouse=True)
def _own_tmux_server(tmp_path_factory, monkeypatch):
    """Each test talks to a tmux server of its own: one test's server shutting down as its last
    session ends must not race the next test's new session."""
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp_path_factory.mktemp("tmux")))
    yield
    subprocess.run(["tmux", "kill-server"], capture_output=True)


def _tmux_capture(session):
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def _tmux_wait_for(session, text, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        screen = _tmux_capture(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared:\n{_tmux_capture(session)}")


def _tmux_wait_for_prompt(session, prompt, timeout=20):
    """Until the last line on the screen is ``prompt`` (the shell waits for input again)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = _tmux_capture(session).rstrip().splitlines()
        if lines and lines[-1].strip() == prompt:
            return
        time.sleep(0.2)
    raise AssertionError(f"the prompt {prompt!r} did not come back:\n{_tmux_capture(session)}")


def _tmux_type_line(session, line):
    subprocess.run(["tmux", "send-keys", "-t", session, "-l", line], check=True)
    subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)


def _tmux_pane_pid(session) -> int:
    """The pid of the process tmux runs in the session's pane: the job the test starts is below it."""
    out = subprocess.run(["tmux", "display-message", "-p", "-t", session, "#{pane_pid}"], capture_output=True,
                         text=True, check=True).stdout
    return int(out)


def _job_processes(session, ranks: int) -> tuple[dict[int, int], list]:
    """The job running in the session's pane (and only it, whatever else runs on the machine):
    {rank: pid} of its ranks, and the identity of every process of the job (launcher, keepers,
    ranks), to check afterwards that none is left."""
    pane = _tmux_pane_pid(session)
    found = procs.wait_for_ranks(pane, ranks)
    return found, [procs.identity(p) for p in procs.descendants(pane)]


@pytest.mark.mpi
@pytest.mark.external
def test_repl_under_mpiexec_in_tmux_as_a_person_types(another_mpi_job):
    need_tool("tmux")
    session = f"rayscript-test-{os.getpid()}"
    mpiexec = BIN / "mpiexec"
    marker = ROOT / f".tmux-exit-{os.getpid()}"
    cmd = f"cd {ROOT} && {mpiexec} -n 3 {BIN / 'rayscript'} repl; echo $? > {marker}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
    try:
        def wait_for(text, timeout=20):
            return _tmux_wait_for(session, text, timeout)

        def type_line(line):
            _tmux_type_line(session, line)

        wait_for("ray[3]>")
        _, job = _job_processes(session, 3)
        type_line("put kmers/5 count=2 on 1")
        wait_for("put kmers/5 on rank 1")
        type_line("copy kmers/5 frm 1 to 2")
        wait_for("expected 'from' or 'to' after 'kmers/5', got 'frm'")
        type_line("copy kmers/5 from 1 to 2")
        wait_for("copied kmers/5 from rank 1 to rank 2")
        type_line("locate kmers/5")
        screen = wait_for("kmers/5 is on ranks 1, 2")
        assert "Traceback" not in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "C-d"], check=True)
        end = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.2)
        assert marker.exists(), _tmux_capture(session)
        assert marker.read_text().strip() == "0"
        assert not [p for p in job if procs.alive(p)]  # every rank (and keeper) exited
        assert all(procs.alive(p) for p in another_mpi_job)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        marker.unlink(missing_ok=True)


@pytest.mark.mpi
@pytest.mark.external
@pytest.mark.parametrize("victim", [0, 1])
def test_a_rank_killed_during_a_repl_session_is_named_and_the_terminal_is_left_as_it_was(victim, another_mpi_job):
    """The shell keeps the terminal in raw mode; a job ended by kill -9 (of rank 0 itself, or of
    another rank, after which the launcher kills the rest) must still give it back in cooked mode.
    Another rayscript job runs on the machine meanwhile: the test finds the ranks of its own job and
    leaves the other alone."""
    need_tool("tmux")
    session = f"rayscript-kill-{os.getpid()}-{victim}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "150", "-y", "40"], check=True)
    try:
        def wait_for(text, timeout=20):
            return _tmux_wait_for(session, text, timeout)

        def type_line(line):
            _tmux_type_line(session, line)

        type_line(f"cd {ROOT} && {BIN / 'mpiexec'} -n 3 {BIN / 'rayscript'} repl; "
                  "echo job-ended-$((6 * 7))")
        wait_for("ray[3]>")
        ranks, job = _job_processes(session, 3)
        os.kill(ranks[victim], signal.SIGKILL)
        screen = wait_for("job-ended-42")
        assert f"rayscript: rank {victim} (pid " in screen and "was killed (SIGKILL" in screen, screen
        type_line("clear; stty -a | tr ' ;' '\\n\\n' | grep -x -e isig -e -isig -e icanon -e -icanon -e echo -e -echo "
                  "| tr '\\n' ' '; echo")
        screen = wait_for("isig icanon echo")
        assert not [p for p in job if procs.alive(p)]  # no rank and no keeper left
        assert all(procs.alive(p) for p in another_mpi_job)  # the other job was not touched
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.mpi
@pytest.mark.external
@pytest.mark.parametrize("victim", [0, 1])
def test_a_rank_killed_while_the_progress_bar_is_drawn_is_named_on_a_line_of_its_own(victim, tmp_path):
    """The bar is drawn without an end of line: the line naming the killed rank takes its place
    rather than continuing it."""
    import gzip

    need_tool("tmux")
    block = "".join(f"@r{i}\n{'ACGT'[i % 4] * 7}{'ACGGTTCA' * 18}\n+\n{'I' * 151}\n" for i in range(90)) * 35
    member = gzip.compress(block.encode())  # ~1 MiB of reads in a few KiB: a long load of a small file
    (tmp_path / "long.fq.gz").write_bytes(member * 150)
    session = f"rayscript-bar-{os.getpid()}-{victim}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "40"], check=True)
    try:
        _tmux_type_line(session, f"cd {ROOT} && {BIN / 'mpiexec'} -n 2 "
                                 f"{BIN / 'rayscript'} repl; echo job-ended-$((6 * 7))")
        _tmux_wait_for(session, "ray[2]>")
        _tmux_type_line(session, f'load "{tmp_path}/long.fq.gz" into kmers k=21')
        _tmux_wait_for(session, "reading [")
        os.kill(_job_processes(session, 2)[0][victim], signal.SIGKILL)
        screen = _tmux_wait_for(session, "job-ended-42")
        (line,) = [line for line in screen.splitlines() if "was killed (SIGKILL" in line]
        assert line.startswith(f"rayscript: rank {victim} (pid "), screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.external
def test_a_repl_started_in_the_background_stops_until_fg():
    need_tool("tmux")
    session = f"rayscript-bg-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", "bash --norc -i"],
                   check=True)
    try:
        _tmux_type_line(session, f"cd {ROOT}; PS1='$ '")
        _tmux_type_line(session, f"{BIN / 'rayscript'} repl --ranks 2 &")
        end = time.monotonic() + 20
        while "Stopped" not in _tmux_capture(session) and time.monotonic() < end:
            time.sleep(0.5)
            _tmux_type_line(session, "jobs")
        _tmux_wait_for(session, "Stopped")  # job control stops it: it does not read the terminal
        _tmux_type_line(session, "fg")
        _tmux_wait_for(session, "ray[2]>")
        _tmux_type_line(session, "put kmers/3 on 1")
        screen = _tmux_wait_for(session, "put kmers/3 on rank 1")
        assert "Traceback" not in screen
        _tmux_wait_for_prompt(session, "ray[2]>")  # Ctrl-D goes to the prompt, not to a statement still printing
        subprocess.run(["tmux", "send-keys", "-t", session, "C-d"], check=True)
        _tmux_wait_for_prompt(session, "$")  # keys typed before the shell is back would go to the REPL
        _tmux_type_line(session, "echo status=$?")
        _tmux_wait_for(session, "status=0")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_a_session_with_a_k_mer_of_more_than_31_bases():
    key = "ACGTTGCA" * 5 + "AC"  # 42 bases: an id of two words
    with Cluster.local(2) as c:
        out, shell = drive(c, f"put kmers/{key} count=3 on 1\rget kmers/{key} from 1\rget kmers/{key} from 0\r"
                              f"explain get kmers/{key}\r\x04")
    assert f"put kmers/{key} on rank 1" in out
    assert f"kmers/{key} count=3" in out
    assert f"kmers/{key} is not on rank 0" in out
    assert f"GET-ORDER      0 -> 1  key=kmers/{key}" in out
    assert f"kmers/{key}" in shell.keys  # offered by completion later
    tokens = [(str(t), v) for t, v in RayLexer().get_tokens(f"get kmers/{key}\n") if v.strip()]
    assert tokens == [("Token.Keyword", "get"), ("Token.Name.Variable.Instance", f"kmers/{key}")]
