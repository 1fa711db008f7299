"""A Slurm of one node on this machine, for tests of jobs that Slurm starts.

Debian's ``slurm-wlm`` and ``munge`` (installed with apt-get when missing and we are root): the test
starts its own munged, slurmctld and slurmd, each with its state, spool, sockets and logs under the
test's directory, on ports free when it starts, so several test runs on one machine do not meet.
The node is this machine under its host name, with as many CPUs as it has; jobs ask for more tasks
than that with ``-O`` (overcommit), as a test machine must.  ``MpiDefault=pmi2`` (what MPICH's
ranks speak), no cgroups (``proctrack/linuxproc``, ``task/none``), and KillWait long enough (60 s)
that a job which ends within it has ended by itself, not because Slurm killed what was left.

Job numbers start at a random one: MPICH names its shared memory after the job step (its PMI name,
JOB.STEP), and a rank killed outright leaves that behind in /dev/shm; a job of another test run that
got the same number would hang in MPI_Init on it.

Only jobs of this Slurm run on it, so the test's processes are those of its jobs: ``scontrol
listpids`` names them (also the ranks that hydra starts inside an allocation), never a look at every
process of the machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, mpiexec_path
from support import procs

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("srun", "salloc", "sinfo", "squeue", "scontrol", "scancel")
KILL_WAIT = 60


def find(name: str) -> str | None:
    return shutil.which(name) or next((str(Path(d) / name) for d in ("/usr/sbin", "/sbin")
                                       if (Path(d) / name).exists()), None)


def _install() -> str | None:
    """Install slurm-wlm and munge when missing (root with apt-get); why not, or None when done."""
    if all(find(n) for n in (*DAEMONS, *CLIENTS)):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge, as root)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode:
            return f"could not install slurm-wlm and munge: {' '.join(cmd)}: {done.stderr.strip()[-300:]}"
    missing = [n for n in (*DAEMONS, *CLIENTS) if not find(n)]
    return f"slurm-wlm and munge installed, but {', '.join(missing)} not found" if missing else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slurm:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.node = socket.gethostname().split(".")[0]
        self.conf = workdir / "slurm.conf"
        self.munge_socket = workdir / "munge" / "socket"
        self.daemons: list[subprocess.Popen] = []

    # --- starting and stopping ------------------------------------------------
    def up(self) -> None:
        d = self.dir
        for sub in ("munge", "state", "spool", "log"):
            (d / sub).mkdir(exist_ok=True)
        (d / "munge").chmod(0o711)
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(self._config())
        self._start([find("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                     f"--key-file={key}", f"--pid-file={d / 'munge' / 'pid'}", f"--seed-file={d / 'munge' / 'seed'}",
                     f"--log-file={d / 'log' / 'munged.log'}"])
        self._wait_for(self.munge_socket.exists, "munged made no socket", "munged.log")
        self._start([find("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._start([find("slurmd"), "-D", "-f", str(self.conf)])
        self._wait_for(lambda: self.client("sinfo", "-h", "-o", "%T").stdout.strip() == "idle",
                       "the node never became idle", "slurmd.log")

    def _config(self) -> str:
        d = self.dir
        return f"""ClusterName=rstest
FirstJobId={random.randrange(1000, 60_000_000)}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / 'slurmd.log'}
MpiDefault=pmi2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
InactiveLimit=0
KillWait={KILL_WAIT}
MinJobAge=5
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN
PartitionName=test Nodes={self.node} Default=YES MaxTime=60 OverSubscribe=FORCE:8 State=UP
"""

    def _start(self, cmd: list) -> None:
        log = open(self.dir / "log" / f"{Path(cmd[0]).name}.out", "w")  # noqa: SIM115 - the daemon's, closed with it
        self.daemons.append(subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                                             env=self.env(), start_new_session=True))
        log.close()

    def _wait_for(self, ready, problem: str, log: str, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self.daemons if p.poll() is not None]
            if dead or time.monotonic() > end:
                text = "".join(f.read_text()[-1500:] for f in (self.dir / "log").iterdir() if f.is_file())
                raise RuntimeError(f"{problem}: {text}")
            time.sleep(0.2)

    def down(self) -> None:
        if self.daemons:
            self.client("scancel", "--full", "--user", "root", check=False)
            end = time.monotonic() + 10
            while self.jobs() and time.monotonic() < end:
                time.sleep(0.2)
        for pid, _ in self.job_processes():  # whatever a job left behind
            _kill(pid)
        for daemon in reversed(self.daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self.daemons = []

    # --- using it ---------------------------------------------------------------
    def env(self, **more: str) -> dict:
        return dict(os.environ, SLURM_CONF=str(self.conf), PATH=f"{BIN}:{os.environ.get('PATH', '')}", **more)

    def client(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([find(name) or name, *args], capture_output=True, text=True, env=self.env(),
                              timeout=60)
        if check and done.returncode:
            raise RuntimeError(f"{name} {' '.join(args)}: {done.stderr.strip()}")
        return done

    def start(self, *cmd: str, env: dict | None = None) -> subprocess.Popen:
        """Start ``cmd`` (srun ... or salloc ...) in its own session, as a user at a shell would."""
        return subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**self.env(), **(env or {})}, cwd=ROOT, start_new_session=True)

    def jobs(self) -> list[str]:
        done = self.client("squeue", "-h", "-o", "%i", check=False)
        return done.stdout.split()

    def job_processes(self) -> list[tuple[int, int]]:
        """The identities (see support.procs) of every process of this Slurm's jobs on the node."""
        out: list[tuple[int, int]] = []
        for job in self.jobs():
            listed = self.client("scontrol", "listpids", job, check=False).stdout.splitlines()[1:]
            for line in listed:
                ident = procs.identity(int(line.split()[0]))
                if ident is not None and ident not in out:
                    out.append(ident)
        return out

    def ranks(self, n: int, timeout: float = 60.0) -> dict[int, int]:
        """{rank: pid} of the ``n`` ranks of the job running here, each the only child of its keeper."""
        end = time.monotonic() + timeout
        while True:
            found: dict[int, int] = {}
            for pid, _ in self.job_processes():
                if procs.comm(pid) != "rayscript-keep":
                    continue
                env = procs.environ(pid)
                rank = next((env[v] for v in ("PMI_RANK", "PMIX_RANK", "SLURM_PROCID") if v in env), None)
                kids = procs.children(pid)
                if rank is not None and len(kids) == 1:
                    found[int(rank)] = kids[0]
            if len(found) >= n or time.monotonic() > end:
                assert len(found) >= n, f"{n} ranks never ran under Slurm: {found}"
                return found
            time.sleep(0.2)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def why_not() -> str | None:
    """Why a Slurm cannot be started here (None when it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: slurmd runs each job as its user"
    if mpiexec_path() is None:
        return "needs MPICH's mpiexec (scripts/setup installs it)"
    return _install()


def make_slurm(workdir: Path) -> Slurm:
    reason = why_not()
    if reason:
        pytest.skip(f"Slurm tests: {reason}")
    slurm = Slurm(workdir)
    try:
        slurm.up()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        slurm.down()
        pytest.skip(f"Slurm tests: cannot start munged, slurmctld and slurmd here ({str(exc)[-1500:]})")
    return slurm
