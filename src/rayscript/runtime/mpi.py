"""MPI backend (mpi4py).

A control message's envelope (a small tuple, see :meth:`Message.pack`) travels with mpi4py's
pickling ``isend``; bulk numpy buffers follow it with the buffer method ``Isend``.  Every send is
non-blocking and its request is kept until complete, so two ranks sending to each other never
deadlock.  Receiving is a matched probe (``improbe``) and its ``recv``, then ``Irecv`` of any
buffers announced in the envelope.  No rank ever blocks inside MPI (so MPICH's own
busy-waiting in blocking calls never runs): for HOT_SECONDS after the last message a rank polls,
yielding the core between probes; after that it sleeps with a growing backoff capped at
SLEEP_MAX (SLEEP_EXPECTING while it waits for an answer it asked for), and after IDLE_SECONDS
at SLEEP_IDLE, so an idle rank costs well under 1% of a core.
"""

from __future__ import annotations

import faulthandler
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from ..errors import TransferStalled
from ..protocol.base import Message
from .backoff import Backoff
from .keeper import finished
from .messenger import Messenger, mpi_module

if TYPE_CHECKING:
    from mpi4py import MPI

TAG_CONTROL = 7
TAG_DATA = 8
TAG_BEAT = 9

# Jobs across several hosts: rank 0's heartbeat (from a thread, so it beats between statements
# too, say while a REPL waits for input).  A rank that has not run for SUSPENDED seconds (stopped
# with the rest of the job, or starved) does not count that time as silence.
BEAT_SECONDS = 1.0
SUSPENDED = 5.0

# Busy phase after the last message (probing, giving the core away every few probes so a rank
# sharing it gets to run), then sleeps growing to the cap.
HOT_SECONDS = 0.05
PROBES_PER_YIELD = 2
SLEEP_MIN = 0.00005
SLEEP_MAX = 0.002
# A rank that waits for an answer it asked for (see Messenger.poll's ``expecting``) sleeps at most
# this long between probes: its answer is not kept waiting for a 2 ms nap each hop.
SLEEP_EXPECTING = 0.00025
# A rank idle for IDLE_SECONDS sleeps up to SLEEP_IDLE between probes: a waiting REPL's ranks cost
# a fraction of a percent of a core, and the first order after a pause waits at most that long.
IDLE_SECONDS = 10.0
SLEEP_IDLE = 0.05
# An abort the launcher does not act on: the rank exits by itself after this long.
ABORT_SECONDS = 2.0


class MPIMessenger(Messenger):
    backend = "mpi"

    def __init__(self, comm: MPI.Comm | None = None) -> None:
        MPI = mpi_module()

        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.local: deque = deque()
        self.outgoing: list = []  # (request, buffer) until complete
        self.last_activity = time.monotonic()
        self._hosts: list[str] | None = None
        # rank 0's heartbeat: its thread, and the events that stop it and make it beat at once
        self._beats: tuple[threading.Thread, threading.Event, threading.Event] | None = None
        self._heard: list[float] | None = None  # others: [last beat, lease, last look]
        self._beat_buf = np.zeros(1, np.float64)
        self._abandoned: list = []  # receives given up on: MPI may still write into their arrays

    def host(self) -> str:
        return self.MPI.Get_processor_name()

    def hosts(self) -> list[str]:
        if self._hosts is None:
            self._hosts = self.comm.allgather(self.host())
        return self._hosts

    def send(self, msg: Message) -> None:
        dest = msg.recipient
        if dest == self.rank:
            self.local.append((msg.encode(), msg.received_buffers(msg.buffers) if msg.buffers else None))
            return
        if not 0 <= dest < self.size:
            raise ValueError(f"no rank {dest} in a cluster of {self.size}")
        self.outgoing.append((self.comm.isend(msg.pack(), dest, TAG_CONTROL), None))
        if msg.buffers:
            for buf in msg.buffers:
                buf = np.ascontiguousarray(buf)
                self.outgoing.append((self.comm.Isend(_plain(buf), dest=dest, tag=TAG_DATA), buf))
        if len(self.outgoing) > 64:
            self._reap()

    def waiting(self) -> bool:
        return bool(self.local) or self.comm.iprobe(self.MPI.ANY_SOURCE, TAG_CONTROL)

    def _reap(self) -> None:
        if self.outgoing:
            self.outgoing = [(r, d) for r, d in self.outgoing if not r.Test()]

    def _receive_ready(self, out: list) -> None:
        improbe, any_source = self.comm.improbe, self.MPI.ANY_SOURCE
        while True:
            probed = improbe(any_source, TAG_CONTROL)
            if probed is None:
                return
            self._take(probed, out)

    def _take(self, probed: MPI.Message, out: list[Message]) -> None:
        msg = Message.unpack(probed.recv())
        if msg.buffer_meta:
            # the sender posted the buffers right after the envelope: they are on their way
            comm = self.comm
            msg.buffers = msg.received_buffers()
            self._wait_buffers([comm.Irecv(_plain(arr), source=msg.sender, tag=TAG_DATA) for arr in msg.buffers], msg)
        out.append(msg)

    def _wait_buffers(self, requests: list, msg: Message) -> None:
        """Wait for a message's buffers, testing all the time as Waitall would (MPI moves them only
        while it is tested) but giving the core away every few tests; when none of them has
        completed for the order timeout, the sender has stopped: raise, and the job ends (rather
        than this rank waiting forever)."""
        testsome, monotonic = self.MPI.Request.Testsome, time.monotonic
        limit = self.patience()
        left, spins = len(requests), 0
        give_up = None if not limit else monotonic() + limit
        while left:
            done = testsome(requests)
            if done is None:  # every request is complete (inactive)
                return
            if done:
                left -= len(done)
                if limit:
                    give_up = monotonic() + limit
                continue
            spins += 1
            if spins % PROBES_PER_YIELD == 0:
                os.sched_yield()
            if give_up is not None and spins % 256 == 0 and monotonic() > give_up:
                self._abandoned.append((requests, msg.buffers))
                hosts = self._hosts  # as gathered at start-up (no collective here)
                host = hosts[msg.sender] if hosts and len(set(hosts)) > 1 else None
                raise TransferStalled(self.rank, msg.kind, msg.sender, host, limit or 0.0)

    def poll(self, timeout: float, expecting: Callable[[], bool] | None = None) -> list[Message]:
        out: list[Message] = []
        while self.local:
            data, buffers = self.local.popleft()
            msg = Message.decode(data)
            if buffers is not None:
                msg.buffers = buffers
            out.append(msg)
        self._receive_ready(out)
        if out or timeout <= 0:
            if out:
                self.last_activity = time.monotonic()
            return out
        eager: list[bool] = []  # asked when the first nap comes

        def before_nap(now: float) -> None:
            if self.outgoing:
                self._reap()
            if not eager:
                eager.append(expecting is not None and expecting())
            backoff.cap = SLEEP_EXPECTING if eager[0] else SLEEP_MAX if now - self.last_activity < IDLE_SECONDS \
                else SLEEP_IDLE

        backoff = Backoff(SLEEP_MIN, SLEEP_MAX, hot_until=self.last_activity + HOT_SECONDS,
                          yield_every=PROBES_PER_YIELD)
        probed = backoff.wait(partial(self.comm.improbe, self.MPI.ANY_SOURCE, TAG_CONTROL),
                              time.monotonic() + timeout, before_nap)
        if probed is not None:
            # hand it over at once (the next poll takes whatever came after it)
            self._take(probed, out)
            self.last_activity = time.monotonic()
        return out

    def watch_driver(self, lease: Callable[[], float]) -> None:
        if self.rank != 0:
            now = time.monotonic()
            self._heard = [now, float(lease()), now]  # the default lease until the first beat
            return
        stop, wake = threading.Event(), threading.Event()
        thread = threading.Thread(target=self._beat, args=(lease, stop, wake), name="rayscript-heartbeat",
                                  daemon=True)
        self._beats = (thread, stop, wake)
        thread.start()

    def lease_changed(self) -> None:
        if self._beats is not None:
            self._beats[2].set()

    def _beat(self, lease: Callable[[], float], stop: threading.Event, wake: threading.Event) -> None:
        sent: list = []  # (request, buffer) until complete
        while True:
            buf = np.array([lease()], np.float64)
            sent = [(r, b) for r, b in sent if not r.Test()]
            sent += [(self.comm.Isend(buf, dest=r, tag=TAG_BEAT), buf) for r in range(1, self.size)]
            wake.wait(BEAT_SECONDS)  # the next beat, or at once when the lease changed
            if stop.is_set():
                break
            wake.clear()
        for req, _ in sent:  # beats nobody took (a rank that is gone) are not waited for
            if not req.Test():
                try:
                    req.Cancel()
                except self.MPI.Exception:
                    pass

    def stop_beating(self) -> None:
        """Rank 0: no more heartbeats (at shutdown)."""
        if self._beats is not None:
            thread, stop, wake = self._beats
            self._beats = None
            stop.set()
            wake.set()
            thread.join()

    def _take_beats(self) -> None:
        comm, buf, heard = self.comm, self._beat_buf, self._heard
        while comm.iprobe(source=0, tag=TAG_BEAT):
            comm.Recv(buf, source=0, tag=TAG_BEAT)
            if heard is not None:
                heard[0], heard[1] = time.monotonic(), float(buf[0])

    def driver_silence(self) -> tuple[float, float] | None:
        heard = self._heard
        if heard is None:
            return None
        now = time.monotonic()
        if now - heard[2] > SUSPENDED:  # this rank did not run meanwhile: that was not silence
            heard[0] = now
        heard[2] = now
        self._take_beats()
        silent, lease = now - heard[0], heard[1]
        return (silent, lease) if lease and silent > lease else None

    def finish(self, deadline: float | None = None) -> bool:
        """Drain until every rank has stopped, then let pending sends complete.  False when the
        ranks did not all stop within ``deadline`` seconds (a rank or host that stopped answering)."""
        MPI = self.MPI
        self.stop_beating()
        self._heard = None
        barrier = self.comm.Ibarrier()
        backoff = Backoff(SLEEP_MIN, SLEEP_MAX)
        scratch: list = []
        give_up = None if deadline is None else time.monotonic() + deadline
        while not barrier.Test():
            self._receive_ready(scratch)
            scratch.clear()
            if self.rank:
                self._take_beats()
            backoff.turn()
            if give_up is not None and time.monotonic() > give_up:
                return False
        if self.rank:
            self._take_beats()
        deadline = time.monotonic() + 5.0
        while self.outgoing and time.monotonic() < deadline:
            self._reap()
            self._receive_ready(scratch)
            time.sleep(0.001)
        for req, _ in self.outgoing:
            try:
                req.Cancel()
            except MPI.Exception:
                pass
        self.outgoing = []
        finished()  # this rank's keeper: its exit, whatever its status, ends no other rank
        return True

    def abort(self, code: int = 1, quiet: bool = False) -> NoReturn:
        """End the job on every rank (MPI_Abort), and this process at once.  The launcher may not
        act on it: under srun while Slurm already ends the job step, MPI_Abort fails (and finishing
        MPI at exit then waits for ever) or does not return.  So this process exits right after
        it, or ABORT_SECONDS later from a thread of faulthandler's that needs no Python lock; its
        keeper then ends the other ranks."""
        devnull = open(os.devnull, "w")  # noqa: SIM115 - kept open until the process ends
        faulthandler.dump_traceback_later(ABORT_SECONDS, exit=True, file=devnull)
        if quiet:  # the reason is said already: not MPI's own line about the abort too
            os.dup2(devnull.fileno(), 2)
        try:
            self.comm.Abort(code)
        finally:
            os._exit(code)


def _plain(buf: np.ndarray) -> np.ndarray:
    """A buffer MPI can describe: its bytes for an array of a dtype without an MPI type (the
    32-byte elements of long k-mer ids), else the array itself."""
    return buf.view(np.uint8) if buf.dtype.kind == "V" else buf
