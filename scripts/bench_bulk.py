"""Benchmarks of bulk movement and cascades, under mpiexec -n 3:

- `copy kmers/* from 1 to 2` of 10 million k-mers, into an empty rank and into one that holds a few
  hundred, each beside a raw mpi4py transfer of the same arrays (the source table's own bucket
  arrays: ids, counts, edges) from rank 1 to rank 2, all posted at once, just before the copy;
- a 1,000-hop `walk`, per hop, beside the raw 8-byte ping-pong one-way latency in the same job;
- 32 walks of 1,000 hops at once (`parallel`), with the walk steps batched per destination and,
  in the same job, with batching off (every step its own MPI message).
Medians of several rounds, and for ratios also the median of each round's own ratio (steadier
when the machine's speed drifts during the run).
"""

import statistics
import sys
import time

import numpy as np
from mpi4py import MPI
from raw_peer import rest, round_trip

from rayscript import Cluster
from rayscript.store import encoding
from rayscript.store.partition import owners

N_KMERS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
HOPS = 1000
WALKS = 32
K = 31
comm = MPI.COMM_WORLD


def raw_transfer(arrays) -> float:
    """Rank 1 sends ``arrays`` (its table's own bucket arrays, as the copy sends them) to rank 2,
    all posted at once (Isend / Irecv, then Waitall on both sides); ranks 0 and 2 get their
    (dtype, length) list in ``arrays``."""
    comm.Barrier()
    t0 = time.perf_counter()
    if comm.rank == 1:
        MPI.Request.Waitall([comm.Isend(a, dest=2, tag=3) for a in arrays])
    elif comm.rank == 2:
        bufs = [np.empty(n, dtype) for dtype, n in arrays]
        MPI.Request.Waitall([comm.Irecv(buf, source=1, tag=3) for buf in bufs])
    elapsed = time.perf_counter() - t0
    rest(comm)  # rank 0 sleeps meanwhile
    elapsed = comm.bcast(elapsed if comm.rank == 2 else None, root=2)
    comm.Barrier()
    return elapsed


def chain():
    """A random sequence of WALKS * 1,000 + 31 bases: from every 1,000th base, a walk (the first of
    1,000 hops; the others as far as their canonical direction goes, at most 1,000 hops)."""
    rng = np.random.default_rng(77)
    seq = rng.integers(0, 4, WALKS * HOPS + K, dtype=np.uint8)
    ids, edges = encoding.kmers_from_codes(np.concatenate((seq, [encoding.INVALID])).astype(np.uint8), K)
    return ids, edges, ["".join("ACGT"[b] for b in seq[i:i + K]) for i in range(0, WALKS * HOPS, HOPS)]


def session(chain):
    """A fresh cluster on every rank; with ``chain`` its k-mers are put on their owners first."""
    cluster = Cluster(comm=comm)
    table = cluster.node.shard.kmers
    table.set_k(K)
    if chain is not None:
        cids, cedges = chain
        mine = owners(cids, 3) == comm.rank
        table.add_occurrences(cids[mine], cedges[mine])
    return cluster, table


def serve_until_rank0_is_done(cluster):
    """Ranks 1 and 2 serve until rank 0 has finished its part (rank 0 says so)."""
    if comm.rank == 0:
        for r in (1, 2):
            comm.send("done", dest=r, tag=99)
        return
    while not comm.iprobe(source=0, tag=99):
        cluster.node.step(0.001)
    comm.recv(source=0, tag=99)


def finish(cluster):
    if comm.rank == 0:
        cluster.close()
    else:
        cluster.serve()


def main() -> None:
    if comm.size != 3:
        sys.exit("bench_bulk: run with mpiexec -n 3")
    rng = np.random.default_rng(5)
    ids = np.unique(rng.integers(0, 1 << 62, int(N_KMERS * 1.01), dtype=np.uint64))[:N_KMERS]
    counts = rng.integers(1, 100, len(ids), dtype=np.uint32)
    edges = rng.integers(0, 256, len(ids), dtype=np.uint8)
    cids, cedges, starts = chain()
    start = starts[0]
    raws: dict[bool, list[float]] = {False: [], True: []}  # by: does the target hold k-mers
    empty, busy, lats, hops = [], [], [], []
    specs: list = []
    many: dict[bool, list[float]] = {True: [], False: []}
    bundled = (0, 0)
    nbytes = 0
    for _ in range(ROUNDS):
        lats.append(round_trip(comm, 5000) / 2)
        # 1. copy into an empty rank; 2. copy into a rank that holds a few hundred k-mers, then walk
        # the busy target holds the first walk's k-mers (about 330 per rank); the other walks' k-mers are
        # added after the copies, before the 32 walks
        first = (cids[:HOPS + 1], cedges[:HOPS + 1])
        for target_holds, times in ((None, empty), (first, busy)):
            cluster, table = session(target_holds)
            arrays: list = []
            if comm.rank == 1:
                table.add_counted(ids, counts.astype(np.uint64), edges)
                arrays = [a for _, *part in table.selection(("all",)) for a in part]
            specs = comm.bcast([(a.dtype, len(a)) for a in arrays] if comm.rank == 1 else None, root=1)
            raws[target_holds is not None].append(raw_transfer(arrays if comm.rank == 1 else specs))
            comm.Barrier()  # every rank ready before the clock starts
            if comm.rank == 0:
                copy = cluster.parse("copy kmers/* from 1 to 2 merge")
                t0 = time.perf_counter()
                ((res,),) = cluster.execute(copy)
                times.append(time.perf_counter() - t0)
                nbytes = res.data["bytes"]
                if target_holds is not None:
                    walk = cluster.parse(f"walk kmers/{start} length={HOPS + 1} into paths/w")  # HOPS + 1 k-mers
                    t0 = time.perf_counter()
                    ((walked,),) = cluster.execute(walk)
                    hops.append((time.perf_counter() - t0) / (walked.data["kmers"] - 1))
                    assert walked.data["kmers"] - 1 == HOPS, walked.data
            if target_holds is not None:  # many walks at once, batched and not
                serve_until_rank0_is_done(cluster)
                theirs = owners(cids[HOPS + 1:], 3) == comm.rank
                table.add_occurrences(cids[HOPS + 1:][theirs], cedges[HOPS + 1:][theirs])
                together = cluster.parse("parallel { " + "\n".join(
                    f"walk kmers/{s} length={HOPS + 1} into paths/m{i}" for i, s in enumerate(starts)) + " }")
                for batched in (True, False):
                    cluster.node.aggregator.max_messages = 256 if batched else 1
                    before = (cluster.node.aggregator.bundles_sent, cluster.node.aggregator.messages_bundled)
                    comm.Barrier()
                    if comm.rank == 0:
                        t0 = time.perf_counter()
                        (walks,) = cluster.execute(together)
                        walked_hops = sum(w.data["kmers"] - 1 for w in walks)
                        many[batched].append((time.perf_counter() - t0) / walked_hops)
                    serve_until_rank0_is_done(cluster)
                    agg = cluster.node.aggregator
                    if batched:
                        got = comm.gather((agg.bundles_sent - before[0], agg.messages_bundled - before[1]))
                        if comm.rank == 0:
                            bundled = (sum(g[0] for g in got), sum(g[1] for g in got))
            finish(cluster)
    if comm.rank == 0:
        lat, hop = statistics.median(lats), statistics.median(hops)
        mb = nbytes / 1e6
        for label, times, raw_times in (("into an empty rank", empty, raws[False]),
                                        ("into a rank holding ~300 k-mers", busy, raws[True])):
            copy, raw = statistics.median(times), statistics.median(raw_times)
            paired = statistics.median(r / c for r, c in zip(raw_times, times))
            print(f"copy kmers/* from 1 to 2 {label}: median {copy * 1e3:.1f} ms = {mb / copy / 1e3:.2f} GB/s; "
                  f"raw transfer of the same {len(specs)} arrays just before it: {raw * 1e3:.1f} ms = "
                  f"{mb / raw / 1e3:.2f} GB/s; ratio to raw {raw / copy:.2f} (target >= 0.7), median of the "
                  f"rounds' own ratios {paired:.2f}")
        print(f"raw one-way latency (8-byte ping-pong / 2): median {lat * 1e6:.1f} us")
        print(f"walk of {HOPS} hops over 3 ranks: median {hop * 1e6:.1f} us per hop; ratio to raw one-way "
              f"latency {hop / lat:.1f}")
        on, off = statistics.median(many[True]), statistics.median(many[False])
        print(f"{WALKS} walks of {HOPS} hops at once: median {on * 1e6:.1f} us per hop with batching "
              f"({bundled[1]:,} steps in {bundled[0]:,} bundles in the last round), {off * 1e6:.1f} us without; "
              f"ratio {off / on:.2f}")


if __name__ == "__main__":
    main()
