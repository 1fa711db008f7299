"""Jobs that Slurm starts (a Slurm of one node on this machine, see slurm.py): as docs/cluster.md
says, ``srun --mpi=pmi2 -n N rayscript ...`` and ``salloc -n N`` with ``mpiexec`` inside it; and a
rank killed outright, or the job cancelled, ends the job on every rank within seconds, whatever the
launcher (srun alone kills nothing: the other ranks must end by themselves)."""

import os
import signal
import threading
import time

import pytest

from conftest import only_under_mpich, rayscript_cmd
from hosts import wait
from slurm import KILL_WAIT, find, make_slurm
from support import procs

# one Slurm for the module, on one worker of the suite's two
pytestmark = [pytest.mark.mpi, pytest.mark.xdist_group("slurm")]

LOOP = "put kmers/1 on 0; for i in 1..3000000 { copy kmers/1 from 0 to 1 replace }"
ENDS_WITHIN = 20  # seconds: far more than it takes, far less than Slurm's KillWait or the job's limit


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    only_under_mpich("these jobs are launched by srun's PMI-2 and salloc's mpiexec with the MPICH wheel's "
                     "MPI; the Open MPI pass does not build its mpi4py for Slurm")
    s = make_slurm(tmp_path_factory.mktemp("slurm"))
    yield s
    s.down()


def launch(how, n):
    """The command that runs N ranks the way ``how`` says (Slurm's overcommit: more ranks than cores)."""
    if how in ("srun", "srun -K"):
        return [find("srun"), "-O", *(["-K"] if how == "srun -K" else []), "--mpi=pmi2", "-t", "5", "-n", str(n)]
    assert how == "salloc"
    return [find("salloc"), "-O", "-t", "5", "-n", str(n + 1), "mpiexec", "-n", str(n)]


@pytest.mark.parametrize("how", ["srun", "salloc"])
def test_a_job_started_by_slurm_runs_on_every_rank(slurm, how):
    proc = slurm.start(*launch(how, 3), *rayscript_cmd(), "run", "-e",
                       "put kmers/1 on 0; copy kmers/1 from 0 to 2; ranks")
    status, out, err, _ = wait(proc, 120)
    assert status == 0, err
    assert "copied kmers/1 from rank 0 to rank 2" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[0], r[2]) for r in rows] == [("0", "1"), ("1", "0"), ("2", "1")], out
    assert "Traceback" not in err


def _first_result(proc):
    """Until rank 0 has said its first result: the cluster is open, and every rank's keeper knows
    the others."""
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(90)
    assert first and first[0].startswith("put kmers/1 on rank 0"), (first, proc.poll())


def _running(slurm, proc, n):
    """The job's ranks {rank: pid}, once it gives orders."""
    _first_result(proc)
    return slurm.ranks(n)


@pytest.mark.parametrize("how, victim", [("srun", 2), ("srun", 0), ("srun -K", 1), ("salloc", 1)])
def test_a_rank_killed_outright_is_named_and_the_job_ends_on_every_rank(slurm, how, victim):
    proc = slurm.start(*launch(how, 3), *rayscript_cmd(), "run", "-e", LOOP)
    ranks = _running(slurm, proc, 3)
    job = slurm.job_processes()
    os.kill(ranks[victim], signal.SIGKILL)
    status, _out, err, seconds = wait(proc, ENDS_WITHIN + 10)
    assert status is not None, f"the job did not end: {err[-2000:]}"
    assert seconds < ENDS_WITHIN, (seconds, err)
    assert status != 0
    ours = [line for line in err.splitlines() if line.startswith("rayscript:")]
    assert len(ours) == 1, err
    assert ours[0].startswith(f"rayscript: rank {victim} (pid {ranks[victim]} on ") and "was killed (SIGKILL" in ours[0]
    assert "Traceback" not in err
    end = time.monotonic() + 10
    while [p for p in job if procs.alive(p)] and time.monotonic() < end:
        time.sleep(0.1)
    assert not [p for p in job if procs.alive(p)], err  # every rank and keeper ended, no wait for KillWait


def test_a_job_cancelled_ends_at_once_and_rank_0_says_so(slurm):
    """scancel: Slurm sends SIGTERM to every process of the job (each rank gets it directly and from
    its keeper: one request, not two); rank 0 stops every rank and exits, long before KillWait."""
    proc = slurm.start(*launch("srun", 3), *rayscript_cmd(), "run", "-e", LOOP)
    _running(slurm, proc, 3)
    job = slurm.job_processes()
    slurm.client("scancel", *slurm.jobs(), check=False)
    status, _out, err, seconds = wait(proc, ENDS_WITHIN + 10)
    assert status is not None and seconds < ENDS_WITHIN, err
    assert "error: rank 0 failed: terminated by SIGTERM" in err
    assert "was killed" not in err and "Traceback" not in err
    end = time.monotonic() + 10
    while [p for p in job if procs.alive(p)] and time.monotonic() < end:
        time.sleep(0.1)
    assert not [p for p in job if procs.alive(p)], err


@pytest.mark.slow
def test_without_keepers_a_killed_rank_under_srun_k_ends_the_job_before_killwait(slurm):
    """RAYSCRIPT_KEEPER=0 (as an embedding program started without 'rayscript exec'): nobody names
    the dead rank, but srun -K's SIGTERM must still end every rank within seconds: rank 0's stop times
    out and its MPI abort (which srun does not act on while it ends the step) ends it; the rank told
    to stop that cannot finish MPI ends by itself."""
    proc = slurm.start(*launch("srun -K", 3), *rayscript_cmd(), "run", "-e", LOOP,
                       env={"RAYSCRIPT_KEEPER": "0"})
    _first_result(proc)
    listed = [line.split() for line in slurm.client("scontrol", "listpids", *slurm.jobs()).stdout.splitlines()[1:]]
    victim = next(int(fields[0]) for fields in listed if fields[4] == "2")  # the task itself: no keeper
    os.kill(victim, signal.SIGKILL)
    status, _out, err, seconds = wait(proc, KILL_WAIT)
    assert status is not None, err
    assert seconds < KILL_WAIT / 2, (seconds, err)
    assert "error: rank 0 failed: terminated by SIGTERM" in err
    assert "rayscript: rank 1 on " in err and "rank 1 ends" in err
