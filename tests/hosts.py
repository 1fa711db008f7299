"""Several "hosts" on one machine, for tests of what crosses a network.

Each host is a Linux network namespace with its own address, joined to the others by a bridge in
the root namespace (which holds the launcher's address).  Jobs start across them with hydra's ssh
launcher, whose ``-launcher-exec`` is a wrapper that runs the proxy inside the namespace named by
the host argument (with its own UTS namespace, so each host has its own host name).  MPICH's UCX
netmod is held to TCP (``UCX_TLS=tcp,self``): the namespaces share one kernel, and UCX would
otherwise use shared memory between them.

Everything made here is named after this process (``rs<pid>...``), and torn down in an order that
leaves nothing behind: processes still in a namespace are killed by pid, each veth is deleted
(which takes its peer with it) before its namespace, the bridge last.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, mpi_flavour, mpiexec_path

WRAPPER = """#!/bin/sh
# hydra's ssh launcher runs: WRAPPER -x HOST COMMAND...; run COMMAND inside the namespace HOST,
# under HOST's own host name, with its own mounts: when RS_PRIVATE_DIR is set, that directory is
# seen as it is only on host RS_PRIVATE_HOST (the others see an empty file system there)
[ "$1" = "-x" ] && shift
host=$1; shift
hide=":"
if [ -n "$RS_PRIVATE_DIR" ] && [ "$host" != "$RS_PRIVATE_HOST" ]; then
    hide="mount -t tmpfs none $RS_PRIVATE_DIR"
fi
exec ip netns exec "$host" unshare --uts --mount sh -c "hostname $host && $hide && exec $*"
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def why_not() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs iproute2's ip and util-linux's unshare"
    if os.geteuid() != 0:
        return "needs root to make network namespaces"
    if mpiexec_path() is None:
        return "needs MPICH's mpiexec (scripts/setup installs it)"
    if mpi_flavour() == "Open MPI":  # docs/cluster.md
        return "they start ranks on the hosts with MPICH's hydra (its ssh launcher and -launcher-exec)"
    return None


class Hosts:
    def __init__(self, count: int, workdir: Path):
        tag = os.getpid() % 100000
        self.names = [f"rs{tag}h{i + 1}" for i in range(count)]
        self.veths = [f"rs{tag}v{i + 1}" for i in range(count)]
        self.bridge = f"rs{tag}br"
        net = 10 + tag % 200
        self.prefix = f"10.{net}.77"
        self.addresses = {name: f"{self.prefix}.{i + 1}" for i, name in enumerate(self.names)}
        self.launcher_address = f"{self.prefix}.254"
        self.wrapper = workdir / "netns-launch"
        self.wrapper.write_text(WRAPPER)
        self.wrapper.chmod(0o755)
        self.made: list[tuple[str, str]] = []

    def up(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("bridge", self.bridge))
        _ip("addr", "add", f"{self.launcher_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for name, veth in zip(self.names, self.veths):
            _ip("netns", "add", name)
            self.made.append(("netns", name))
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
            self.made.append(("veth", veth))
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            _ip("netns", "exec", name, "ip", "addr", "add", f"{self.addresses[name]}/24", "dev", "eth0")
            _ip("netns", "exec", name, "ip", "link", "set", "eth0", "up")
            _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")

    def down(self) -> None:
        for name in self.names:
            self.kill_processes(name)
        for kind, name in reversed(self.made):
            if kind == "veth":
                _ip("link", "del", name, check=False)
        for kind, name in reversed(self.made):
            if kind == "netns":
                _ip("netns", "del", name, check=False)
            elif kind == "bridge":
                _ip("link", "del", name, check=False)
        self.made = []

    def pids(self, name: str) -> list[int]:
        out = _ip("netns", "pids", name, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_processes(self, name: str, sig: int = signal.SIGKILL) -> None:
        for pid in self.pids(name):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop_ranks(self, name: str) -> None:
        """The rank processes on host ``name`` stop answering (SIGSTOP), their host still up."""
        for pid in self.pids(name):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"python" in cmdline:
                os.kill(pid, signal.SIGSTOP)

    def cut(self, name: str) -> None:
        """The host drops off the network."""
        _ip("link", "set", self.veths[self.names.index(name)], "down")

    def env(self) -> dict:
        return dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", UCX_TLS="tcp,self")

    def mpiexec(self, slots: dict[str, int], *args: str, launcher: tuple[str, ...] = ()) -> list[str]:
        """The command that starts ``args`` on these hosts, ``slots[name]`` ranks on each
        (``launcher``: more options for mpiexec)."""
        exe = mpiexec_path()
        assert exe is not None
        hosts = ",".join(f"{name}:{n}" for name, n in slots.items())
        return [exe, "-launcher", "ssh", "-launcher-exec", str(self.wrapper), "-localhost", self.launcher_address,
                "-hosts", hosts, *launcher, "-n", str(sum(slots.values())), *args]

    def start(self, slots: dict[str, int], *args: str, launcher: tuple[str, ...] = (),
              env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.mpiexec(slots, *args, launcher=launcher), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env(), **(env or {})}, cwd=ROOT)

    def tcp_links(self) -> set[tuple[str, str]]:
        """Established TCP connections between two different hosts' addresses, as seen now."""
        seen = set()
        for name in self.names:
            out = _ip("netns", "exec", name, "ss", "-tnH", "state", "established", check=False).stdout
            for line in out.splitlines():
                parts = line.split()
                if len(parts) < 4:
                    continue
                local, peer = parts[-2].rsplit(":", 1)[0], parts[-1].rsplit(":", 1)[0]
                ours = set(self.addresses.values())
                if local in ours and peer in ours and local != peer:
                    seen.add((local, peer))
        return seen


def make_hosts(count: int, workdir: Path):
    reason = why_not()
    if reason:
        pytest.skip(f"multi-host tests: {reason}")
    hosts = Hosts(count, workdir)
    try:
        hosts.up()
    except subprocess.CalledProcessError as exc:
        hosts.down()
        pytest.skip(f"multi-host tests: cannot make network namespaces here ({exc.stderr.strip()})")
    return hosts


def wait(proc: subprocess.Popen, timeout: float) -> tuple[int | None, str, str, float]:
    """(exit status or None if still running at the timeout, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out, err, time.monotonic() - t0
