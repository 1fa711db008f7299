"""Progress of long statements: rates and the time left, a bar on a terminal (the REPL's toolbar in
reverse video), lines only when asked for where the output is not a terminal, never in results or
files; and every long statement reports."""

import io

import numpy as np
import pytest

from conftest import write_fastq
from rayscript import Cluster
from rayscript.progress import Progress, duration


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_bar_with_the_rate_and_the_time_left():
    screen, clock = _Terminal(), _Clock()
    p = Progress(screen, clock=clock)
    p(0, 100 << 20)
    clock.now += 2
    p(20 << 20, 100 << 20)
    line = screen.getvalue().split("\r\x1b[K")[-1]
    assert "reading [######" in line and "20.0 / 100.0 MiB" in line and "10.0 MiB/s, 8 s left" in line
    clock.now += 0.01
    p(21 << 20, 100 << 20)  # too soon to draw again
    assert "21.0 /" not in screen.getvalue()
    clock.now += 8
    p(100 << 20, 100 << 20)
    assert screen.getvalue().endswith("\r\x1b[K") and "left" not in screen.getvalue().split("\r\x1b[K")[-2]
    assert p.summary == "last: reading, 100.0 MiB in 10 s"


def test_phases_keep_their_clock_while_what_they_say_changes():
    screen, clock = _Terminal(), _Clock()
    p = Progress(screen, clock=clock)
    p(1, 5, "assembling: the graph's k-mers chosen", "phases")
    clock.now += 4
    p(3, 5, "assembling: unitigs, tips and bubbles (round 3)", "phases")
    line = screen.getvalue().split("\r\x1b[K")[-1]
    assert line.startswith("assembling: unitigs, tips and bubbles (round 3) [") and "3 / 5 phases" in line
    assert "0.75 phases/s, 3 s left" in line
    p(0, 64, "combining (rank 0's part)", "buckets")  # another piece of work: a new clock
    assert p.started == clock.now


def test_off_where_not_a_terminal_unless_asked_for():
    pipe = io.StringIO()
    p = Progress(pipe)
    for done in range(0, 101, 5):
        p(done, 100, "dumping (rank 0's part)", "buckets")
    assert pipe.getvalue() == ""
    clock = _Clock()
    p = Progress(pipe, lines=True, clock=clock)
    for done in range(0, 101, 5):
        clock.now += 1
        p(done, 100, "dumping (rank 0's part)", "buckets")
    lines = pipe.getvalue().splitlines()
    assert len(lines) == 11 and lines[0] == "dumping (rank 0's part): 0% (0 of 100 buckets)"
    assert lines[5] == "dumping (rank 0's part): 50% (50 of 100 buckets; 5.00 buckets/s, 10 s left)"
    assert lines[-1].startswith("dumping (rank 0's part): 100% (100 of 100 buckets; ")


def test_the_repl_draws_it_as_a_toolbar():
    screen = _Terminal()
    p = Progress(io.StringIO())
    p.show_on(screen, toolbar=True)
    p(1, 4, "saving (rank 0's part)", "sets")
    assert "\x1b[7m saving (rank 0's part) [" in screen.getvalue() and screen.getvalue().endswith("\x1b[0m")


def test_durations():
    assert [duration(s) for s in (0.4, 42, 185, 3720)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, done, total, what="reading", unit="MiB"):
        self.calls.append((what, unit, done, total))

    def finish(self):
        pass


@pytest.mark.parametrize("ranks", [1, 2])
def test_every_long_statement_reports(tmp_path, ranks):
    rng = np.random.default_rng(2)
    genome = "".join(rng.choice(list("ACGT"), 3000))
    write_fastq(tmp_path / "r.fq", [genome[i:i + 100] for i in range(0, 2900, 7)] * 3)
    rec = _Recorder()
    with Cluster.local(ranks, progress=rec) as c:
        results = c.run(f'load "{tmp_path}/r.fq" into kmers k=21\nload "{tmp_path}/r.fq" into kmers.b k=21\n'
                        "assemble kmers into paths/c\ncombine kmers + kmers.b into kmers.u\n"
                        f'matrix kmers, kmers.b to "{tmp_path}/m.tsv"\ndump kmers to "{tmp_path}/d.tsv"\n'
                        f'save to "{tmp_path}/ck"\nrestore from "{tmp_path}/ck"')
    units = {}
    for what, unit, done, total in rec.calls:
        units.setdefault(what.split(":")[0].split(" (")[0], set()).add(unit)
        assert 0 <= done <= total, (what, done, total)
    for what in ("reading", "assembling", "assembled", "combining", "matrix", "dumping", "saving", "restoring"):
        assert what in units, (what, units)
    assert ("assembled", "phases", 5, 5) in rec.calls
    # never in results or files
    assert not any("[#" in r.text or "left)" in r.text for r in results)
    assert "buckets" not in (tmp_path / "d.tsv").read_text()
