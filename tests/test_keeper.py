"""The keepers' side channel (runtime/keeper.py): what a keeper learns from its rank, and which
datagrams it acts on.  The whole of it runs in tests/test_slurm.py, tests/test_cli.py and
tests/test_multihost.py (a killed rank ends the job on every rank and host)."""

import json
import os
import re
import socket
import subprocess
import sys

from rayscript.runtime import keeper


def _told(peers, token="t0k3n", here=None):
    line = json.dumps({"token": token, "peers": [[here or socket.gethostname(), ["10.1.2.3"], 4000],
                                                 ["elsewhere", ["10.1.2.4", "192.168.9.9"], 4001]]})
    # the rank's lines may come in pieces
    data = (line + "\n").encode()
    peers.take(data[:7])
    peers.take(data[7:])


def test_a_keeper_learns_every_other_keepers_addresses_and_the_token_from_its_rank():
    peers = keeper._Peers()
    _told(peers)
    assert peers.token == b"t0k3n"
    # a keeper on this host is reached on the loopback too; one elsewhere on each of its addresses
    assert peers.addresses == [("10.1.2.3", 4000), ("127.0.0.1", 4000), ("10.1.2.4", 4001), ("192.168.9.9", 4001)]
    assert not peers.finished
    peers.take(b"finished\n")
    assert peers.finished
    _told(peers, token="again")  # a cluster opened again: its failure ends the job again
    assert not peers.finished and peers.token == b"again" and len(peers.addresses) == 4


def test_a_keeper_acts_only_on_a_datagram_of_its_own_job():
    peers = keeper._Peers()
    assert not peers.told(keeper.WORD + b" t0k3n 2")  # nothing learned yet: nothing to act on
    _told(peers)
    assert peers.told(keeper.WORD + b" t0k3n 2")
    for stray in (b"", b"hello", keeper.WORD + b" other 2", keeper.WORD + b" t0k3n", b"x t0k3n 2",
                  keeper.WORD + b" t0k3n 2 3"):
        assert not peers.told(stray), stray


def test_a_keeper_tells_every_other_keeper_over_udp():
    listeners = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in listeners:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
    peers = keeper._Peers()
    peers.token = b"t0k3n"
    peers.addresses = [s.getsockname() for s in listeners]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mesh:
        peers.tell(mesh, "5")
    for s in listeners:
        with s:
            assert s.recv(512) == keeper.WORD + b" t0k3n 5"


def test_a_process_the_rank_started_is_not_taken_for_the_rank(monkeypatch):
    monkeypatch.setenv(keeper.LINK, "7,4000,1")  # pid 1: not this process
    assert keeper._link() == (None, None)
    monkeypatch.setenv(keeper.LINK, f"7,4000,{os.getpid()}")
    assert keeper._link() == (7, 4000)


def test_the_host_addresses_put_the_loopback_last():
    found = keeper.host_addresses()
    assert "127.0.0.1" in found
    assert found[-1].startswith("127.")


# A rank under its keeper that tells its keeper of one other keeper (at the port given), as opening
# a cluster does, and is then killed outright.
KILLED_RANK = """
import fcntl, json, os, signal, sys, termios
from rayscript.runtime import keeper
keeper.split()
fd, _ = keeper._link()
keeper._say(fd, json.dumps({"token": "t0k3n", "peers": [["elsewhere", ["127.0.0.1"], int(sys.argv[1])]]}))
while int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), sys.byteorder):
    os.sched_yield()  # until the keeper has read it
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_keeper_names_its_killed_rank_before_it_tells_the_other_keepers(tmp_path):
    """The others end their ranks and exit as soon as they are told, and a launcher that sees a
    process of the job fail kills the rest at once (MPICH's does): the line naming the rank must be
    out by then.  Here the test is the other keeper, and the launcher: told, it kills the keeper."""
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(60)
    with other, open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RANK, str(other.getsockname()[1])], stderr=err,
                                env=dict(os.environ, PMI_RANK="1"))
        try:
            datagram = other.recv(512)
        finally:
            proc.kill()
            proc.wait()
    assert datagram == keeper.WORD + b" t0k3n 1"
    line = (tmp_path / "stderr").read_text()
    assert re.fullmatch(r"rayscript: rank 1 \(pid \d+ on .+\) was killed \(SIGKILL: .*\); the job ends on every rank\n",
                        line), line
