"""Bulk, collective data movement between all ranks (numpy buffers, no pickle).

Used by statements that every rank takes part in at once (``load``).  The MPI version runs
on its own duplicate of the communicator, with non-blocking ``Ialltoallv``/``Iallreduce`` waited on
politely (probe, yield, short sleeps), so a rank that waits for slower ones does not take the
core they need.  The local version exchanges arrays between threads through a shared board.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import CollectiveAborted, CollectiveTimeout, RayScriptError
from .backoff import Backoff

if TYPE_CHECKING:
    from mpi4py import MPI

TAG_ABORT = 9
TAG_POST = 10  # point-to-point packets of an operation (a cascade's quiet phase)
SPARES = 4
# a collective wait spins this many turns, then naps this long between tests
POLITE_SPINS = 19_999
POLITE_NAP = 0.0002


class Collective:
    rank: int
    size: int
    # the longest a rank waits in one step for the others (the order timeout, set by the node): a
    # rank or host that stopped answering must not hold the others forever
    patience: Callable[[], float | None] = staticmethod(lambda: None)

    def abort(self, reason: str) -> None:
        """This rank leaves the operation: the others get CollectiveAborted from their next wait."""
        raise NotImplementedError

    def reset(self) -> None:
        """Every rank, after an abort: a fresh channel for the next operation."""
        raise NotImplementedError

    def alltoallv(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Send arrays[d] to rank d; return the arrays received from every rank, by source."""
        raise NotImplementedError

    def exchange(self, buf: np.ndarray, counts: Sequence[int] | npt.NDArray[np.integer[Any]]) -> list[np.ndarray]:
        """Like :meth:`alltoallv` for one buffer whose first counts[0] items go to rank 0, the
        next counts[1] to rank 1, and so on (no gathering copy where the transport allows)."""
        ends = np.cumsum(counts)
        return self.alltoallv([buf[e - c:e] for c, e in zip(counts, ends)])

    def exchange_flat(self, buf: np.ndarray, counts: Sequence[int] | npt.NDArray[np.integer[Any]],
                      recv_counts: npt.NDArray[np.int64] | None = None) -> np.ndarray:
        """Like :meth:`exchange`, but what every source sent as one array, by source (the receive
        buffer itself where the transport has one: no gathering copy on either side);
        ``recv_counts``: how much comes from each source, when every rank knows it already."""
        got = self.exchange(buf, counts)
        return np.concatenate(got) if len(got) > 1 else got[0]

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of an int64 vector over every rank."""
        raise NotImplementedError

    def exchange_known(self, buf: np.ndarray, send_counts: npt.NDArray[np.int64],
                       recv_counts: npt.NDArray[np.int64]) -> list[np.ndarray]:
        """:meth:`exchange` when every rank already knows how much it gets from each (saves a step)."""
        return self.exchange(buf, send_counts)

    # --- point to point, within an operation every rank takes part in ------------------------
    def post(self, dest: int, packet: object) -> None:
        """Send a (small, picklable) packet to rank ``dest`` without waiting; packets from one rank
        to another arrive in the order posted."""
        raise NotImplementedError

    def take(self, until: float = 0.0, backoff: Backoff | None = None) -> tuple[int, Any] | None:
        """(source, packet) of a packet posted to this rank, or None: without ``backoff``, only one
        that is here; with it, waiting politely until ``time.monotonic()`` reaches ``until``.  Raises
        CollectiveAborted when another rank left the operation."""
        raise NotImplementedError

    def settle(self) -> None:
        """Wait until every packet this rank posted has left (its buffer is free)."""


def _polite_wait(req: MPI.Request, aborted: Callable[[], None] | None = None, patience: float | None = None) -> None:
    """Wait for ``req`` without hogging the core; ``aborted()`` is checked now and then and
    raises when another rank left the operation; after ``patience`` seconds the wait gives up."""
    give_up = None if patience is None else time.monotonic() + patience
    # MPI moves a large message only while it is tested: yield the core rather than sleep, so
    # a transfer keeps going; sleep only after a long wait (a rank far behind the others)
    backoff = Backoff(POLITE_NAP, POLITE_NAP, hot_turns=POLITE_SPINS)
    while not req.Test():
        backoff.turn()
        if aborted is not None and backoff.turns % 50 == 0:
            aborted()
            if give_up is not None and time.monotonic() > give_up:
                raise CollectiveTimeout(patience)


class MPICollective(Collective):
    def __init__(self, comm: MPI.Comm) -> None:
        from .messenger import mpi_module

        MPI = mpi_module()

        self.MPI = MPI
        self.parent = comm
        self.comm = comm.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._sent: list = []
        self._posted: list = []  # point-to-point packets on their way
        self._status = MPI.Status()
        # operations this rank left unfinished (another rank aborted, the wait's patience ran out, a
        # SIGTERM): MPI may still read or write their buffers, so they are kept as long as MPI runs
        # (a buffer freed under a pending operation crashed the rank later with SIGSEGV)
        self._abandoned: list = []
        # fresh channels made while every rank is here: a reset after a rank stopped answering
        # cannot make one (Dup is collective)
        self._spares = [comm.Dup() for _ in range(SPARES)]

    def _aborted(self) -> None:
        status = self.MPI.Status()
        if self.comm.Iprobe(self.MPI.ANY_SOURCE, TAG_ABORT, status):
            reason = self.comm.recv(source=status.Get_source(), tag=TAG_ABORT)
            raise CollectiveAborted(status.Get_source(), reason)

    def abort(self, reason: str) -> None:
        self._sent = [r for r in self._sent if not r.Test()]
        self._sent += [self.comm.isend(reason, dest=r, tag=TAG_ABORT) for r in range(self.size) if r != self.rank]

    def _wait(self, req: MPI.Request, *buffers: object) -> None:
        try:
            _polite_wait(req, self._aborted, self.patience())
        except BaseException:
            self._abandoned.append((req, buffers))
            raise

    def reset(self) -> None:
        # the old channel may hold operations no rank will finish: it is left behind, not reused
        self._abandoned.extend(self._posted)
        self._posted = []
        self.comm = self._spares.pop(0) if self._spares else self.parent.Dup()

    def post(self, dest: int, packet: object) -> None:
        self._posted.append(self.comm.isend(packet, dest=dest, tag=TAG_POST))
        if len(self._posted) >= 64:
            self._posted = [r for r in self._posted if not r.Test()]

    def take(self, until: float = 0.0, backoff: Backoff | None = None) -> tuple[int, Any] | None:
        status = self._status
        found = self.comm.improbe(self.MPI.ANY_SOURCE, TAG_POST, status)
        if found is None and backoff is not None:
            found = backoff.wait(partial(self.comm.improbe, self.MPI.ANY_SOURCE, TAG_POST, status), until)
            if found is None:
                self._aborted()
        return None if found is None else (status.Get_source(), found.recv())

    def settle(self) -> None:
        for req in self._posted:
            self._wait(req)
        self._posted = []

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(values, dtype=np.int64)
        out = np.empty_like(values)
        self._wait(self.comm.Iallreduce(values, out, op=self.MPI.SUM), values, out)
        return out

    def alltoallv(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.exchange(np.concatenate(arrays) if len(arrays) > 1 else arrays[0], [len(a) for a in arrays])

    def exchange(self, sendbuf: np.ndarray, counts: Sequence[int] | npt.NDArray[np.integer[Any]]) -> list[np.ndarray]:
        send_counts = np.asarray(counts, dtype=np.int64)
        recv_counts = np.empty(self.size, dtype=np.int64)
        self._wait(self.comm.Ialltoall(send_counts, recv_counts), send_counts, recv_counts)
        return self.exchange_known(sendbuf, send_counts, recv_counts)

    def exchange_known(self, sendbuf: np.ndarray, send_counts: npt.NDArray[np.int64],
                       recv_counts: npt.NDArray[np.int64]) -> list[np.ndarray]:
        recv_counts = np.asarray(recv_counts, dtype=np.int64)
        recvbuf = self._received(sendbuf, send_counts, recv_counts)
        rdispl = np.concatenate(([0], np.cumsum(recv_counts)[:-1]))
        return [recvbuf[rdispl[s]: rdispl[s] + recv_counts[s]] for s in range(self.size)]

    def exchange_flat(self, buf: np.ndarray, counts: Sequence[int] | npt.NDArray[np.integer[Any]],
                      recv_counts: npt.NDArray[np.int64] | None = None) -> np.ndarray:
        send_counts = np.asarray(counts, dtype=np.int64)
        if recv_counts is None:
            recv_counts = np.empty(self.size, dtype=np.int64)
            self._wait(self.comm.Ialltoall(send_counts, recv_counts), send_counts, recv_counts)
        return self._received(buf, send_counts, recv_counts)

    def _received(self, sendbuf: np.ndarray, send_counts: npt.NDArray[np.int64],
                  recv_counts: npt.NDArray[np.int64]) -> np.ndarray:
        """The receive buffer of one alltoallv: what every source sent, by source."""
        send_counts = np.asarray(send_counts, dtype=np.int64)
        recv_counts = np.asarray(recv_counts, dtype=np.int64)
        sendbuf = np.ascontiguousarray(sendbuf)
        if sendbuf.dtype.kind == "V":  # no MPI type for 32-byte ids: sent as their 64-bit words
            words = sendbuf.dtype.itemsize // 8
            return self._received(sendbuf.view(np.uint64), send_counts * words, recv_counts * words).view(sendbuf.dtype)
        dtype = sendbuf.dtype
        recvbuf = np.empty(int(recv_counts.sum()), dtype=dtype)
        sdispl = np.concatenate(([0], np.cumsum(send_counts)[:-1]))
        rdispl = np.concatenate(([0], np.cumsum(recv_counts)[:-1]))
        mpitype = self.MPI._typedict[dtype.char]
        if recv_counts.max(initial=0) < 2**31 and send_counts.max(initial=0) < 2**31:
            layout = (send_counts.astype(np.int32), sdispl.astype(np.int32), recv_counts.astype(np.int32),
                      rdispl.astype(np.int32))
            req = self.comm.Ialltoallv([sendbuf, layout[:2], mpitype], [recvbuf, layout[2:], mpitype])
        else:  # pragma: no cover - chunks are bounded far below this
            raise RayScriptError("a bulk exchange of more than 2**31 items per rank pair")
        self._wait(req, sendbuf, recvbuf, layout)
        return recvbuf


class LocalBoard:
    """Shared state of the local collective: one slot per (source, destination)."""

    def __init__(self, size: int, timeout: float = 120.0) -> None:
        self.size = size
        self.timeout = timeout
        # [source][destination]: the array in transit (written before every read: empty at first)
        self.slots: list[list[np.ndarray]] = [[np.empty(0)] * size for _ in range(size)]
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.aborted: tuple[int, str] | None = None
        self.rejoin = threading.Barrier(size, action=self._fresh, timeout=timeout)
        self.posts: list[queue.SimpleQueue[tuple[int, Any]]] = [queue.SimpleQueue() for _ in range(size)]

    def _fresh(self) -> None:
        self.barrier = threading.Barrier(self.size, timeout=self.timeout)
        self.aborted = None
        self.posts = [queue.SimpleQueue() for _ in range(self.size)]


class LocalCollective(Collective):
    def __init__(self, board: LocalBoard, rank: int) -> None:
        self.board = board
        self.rank = rank
        self.size = board.size

    def _sync(self) -> None:
        try:
            self.board.barrier.wait()
        except threading.BrokenBarrierError:
            if self.board.aborted is not None:
                raise CollectiveAborted(*self.board.aborted) from None
            raise RayScriptError("a rank left a collective operation (timeout)") from None

    def abort(self, reason: str) -> None:
        if self.board.aborted is None:
            self.board.aborted = (self.rank, reason)
        self.board.barrier.abort()

    def reset(self) -> None:
        self.board.rejoin.wait()

    def post(self, dest: int, packet: object) -> None:
        self.board.posts[dest].put((self.rank, packet))

    def take(self, until: float = 0.0, backoff: Backoff | None = None) -> tuple[int, Any] | None:
        posts = self.board.posts[self.rank]
        try:
            if backoff is None:
                return posts.get_nowait()
            return posts.get(timeout=max(until - time.monotonic(), 0.0))
        except queue.Empty:
            if self.board.aborted is not None:
                raise CollectiveAborted(*self.board.aborted) from None
            return None

    def alltoallv(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for d, a in enumerate(arrays):
            self.board.slots[self.rank][d] = a
        self._sync()
        out = [self.board.slots[s][self.rank] for s in range(self.size)]
        self._sync()
        return out

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64)
        self.board.slots[self.rank][0] = values
        self._sync()
        out = sum(np.asarray(self.board.slots[s][0]) for s in range(self.size))
        self._sync()
        return np.asarray(out, dtype=np.int64)


class Exchange:
    """Batched questions to the owners of ids, and their answers, with ``alltoallv``.  Each array
    is put in destination order once and sent as it is; what arrives is one receive buffer (no
    per-destination copies, no gathering copy), so an exchange holds about three copies of what
    it sends at the most (the caller's, the sorted one, and what arrives)."""

    def __init__(self, coll: Collective) -> None:
        self.coll = coll
        self.size = coll.size

    def _plan(self, dest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The order that sorts rows by destination (stable), and how many rows go to each rank."""
        dest = np.asarray(dest)
        small = dest.astype(np.uint8 if self.size <= 256 else np.uint16)  # stable sorts of small ints: radix
        return np.argsort(small, kind="stable"), np.bincount(small, minlength=self.size)

    def scatter(self, dest: np.ndarray, *arrays: np.ndarray) -> tuple[list[np.ndarray], ...]:
        """Send each row to rank dest[i]; returns, per array, what every source sent (by source)."""
        order, sizes = self._plan(dest)
        return tuple(self.coll.exchange(a[order], sizes) for a in arrays)

    def gather(self, dest: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """Send each row to rank dest[i]; returns, per array, everything this rank received, as one
        array (by source)."""
        order, sizes = self._plan(dest)
        return tuple(self.coll.exchange_flat(a[order], sizes) for a in arrays)

    def rows(self, dest: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Send row i of a 2-d array to rank dest[i] (one exchange for all columns); returns the
        rows this rank received, from every source, as one array."""
        order, sizes = self._plan(dest)
        got = self.coll.exchange_flat(matrix[order].ravel(), sizes * matrix.shape[1])
        return got.reshape(-1, matrix.shape[1])

    def ask(self, dest: np.ndarray, questions: tuple[np.ndarray, ...],
            answer: Callable[..., tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """Ask rank dest[i] about row i of ``questions``; ``answer(*received)`` returns arrays
        aligned with the rows it got; the answers come back aligned with the questions."""
        order, sizes = self._plan(dest)
        # how many questions come from each rank (the answers go back in those numbers)
        asked = np.concatenate(self.coll.alltoallv([sizes[d:d + 1] for d in range(self.size)])).astype(np.int64)
        replies = answer(*(self.coll.exchange_flat(q[order], sizes, asked) for q in questions))
        out = []
        for rep in replies:
            res = np.empty(len(dest), rep.dtype)
            res[order] = self.coll.exchange_flat(rep, asked, sizes)
            out.append(res)
        return tuple(out)
