"""Raw mpi4py peers for the benchmarks run under mpiexec -n 3 (bench_copy.py, bench_bulk.py):
ranks 1 and 2 work, rank 0 waits without spinning."""

import os
import time

import numpy as np


def rest(comm) -> None:
    """Wait for every rank without spinning: a blocking MPI call here would busy-wait on a core
    that the two ranks at work need (three ranks, two cores), and slow the raw peer down."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.001)


def round_trip(comm, n: int) -> float:
    """Seconds per 8-byte round trip between ranks 1 and 2 (n of them), on every rank."""
    buf = np.zeros(1, np.int64)
    comm.Barrier()
    t0 = time.perf_counter()
    if comm.rank == 1:
        for _ in range(n):
            comm.Send(buf, dest=2, tag=4)
            comm.Recv(buf, source=2, tag=4)
    elif comm.rank == 2:
        for _ in range(n):
            comm.Recv(buf, source=1, tag=4)
            comm.Send(buf, dest=1, tag=4)
    elapsed = time.perf_counter() - t0
    rest(comm)  # rank 0 sleeps meanwhile
    elapsed = comm.bcast(elapsed if comm.rank == 1 else None, root=1)
    comm.Barrier()
    return elapsed / n


def relay(comm, n: int) -> float:
    """Seconds per 8-byte relay 0 -> 1 -> 2 -> 0 (n of them), on every rank: what a hand-written
    MPI program spends on a copy's three hops (order, item, acknowledgement), all three ranks
    waiting in MPI meanwhile."""
    buf = np.zeros(1, np.int64)
    comm.Barrier()
    t0 = time.perf_counter()
    after, before = (comm.rank + 1) % 3, (comm.rank - 1) % 3
    for _ in range(n):
        if comm.rank == 0:
            comm.Send(buf, dest=after, tag=5)
            comm.Recv(buf, source=before, tag=5)
        else:
            comm.Recv(buf, source=before, tag=5)
            comm.Send(buf, dest=after, tag=5)
    elapsed = comm.bcast(time.perf_counter() - t0 if comm.rank == 0 else None, root=0)
    comm.Barrier()
    return elapsed / n


def message_relay(comm, n: int, probes_per_yield: int) -> float:
    """Seconds per relay 0 -> 1 -> 2 -> 0 (n of them) carried as rayscript's messenger carries a
    control message, with none of rayscript's own work: a pickled tuple of a copy's item message
    sent with ``isend``, found with ``improbe`` (the core given away every ``probes_per_yield``
    probes) and taken with its ``recv``.  What a runtime in Python of this design costs before
    it does anything with a message."""
    from mpi4py import MPI

    envelope = (20, None, 1, 2, 0, 5, ("kmers", 19123890), bytes(15), "replace", False)
    after = (comm.rank + 1) % 3
    improbe, any_source, yield_cpu = comm.improbe, MPI.ANY_SOURCE, os.sched_yield
    sent: list = []

    def take() -> None:
        probes = 0
        while True:
            probed = improbe(any_source, 6)
            if probed is not None:
                probed.recv()
                return
            probes += 1
            if probes % probes_per_yield == 0:
                yield_cpu()

    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(n):
        if comm.rank == 0:
            sent.append(comm.isend(envelope, after, 6))
            take()
        else:
            take()
            sent.append(comm.isend(envelope, after, 6))
        if len(sent) > 64:
            sent = [r for r in sent if not r.Test()]
    MPI.Request.Waitall(sent)
    elapsed = comm.bcast(time.perf_counter() - t0 if comm.rank == 0 else None, root=0)
    comm.Barrier()
    return elapsed / n
