"""Connected components by min-label propagation: the cascade of examples/cascades/components.ray
beside the same computation written by hand with numpy and mpi4py, in the same run.

    mpiexec -n 2 python scripts/bench_components.py [BASES] [PIECES]

The graph: BASES bases of random sequence in PIECES pieces (so that many components of equal size
exist), k=31.  The hand-written program builds each rank's sorted k-mers and edges with
rayscript's k-mer encoding (the same graph), then iterates: active k-mers send (neighbour, label) to
the neighbours' owners with one Alltoallv, receivers keep the smaller label (np.minimum.at), until no
label changes anywhere.  Both results are compared.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time

import numpy as np
from mpi4py import MPI

from rayscript import Cluster
from rayscript.store import encoding
from rayscript.store.partition import owners

K = 31


def pieces(total: int, n: int) -> list[str]:
    rnd = random.Random(5)
    size = total // n
    return ["".join(rnd.choice("ACGT") for _ in range(size)) for _ in range(n)]


def by_hand(comm: MPI.Comm, seqs: list[str]) -> tuple[float, int, dict[int, int]]:
    rank, size = comm.Get_rank(), comm.Get_size()
    ids_parts, edge_parts = [], []
    for s in seqs:
        codes = encoding.codes_from_bytes(np.frombuffer(s.encode(), np.uint8))
        ids, edges = encoding.kmers_from_codes(codes, K)
        ids_parts.append(ids)
        edge_parts.append(edges)
    ids, edges = np.concatenate(ids_parts), np.concatenate(edge_parts)
    mine = owners(ids, size) == rank
    ids, edges = ids[mine], edges[mine]
    order = np.argsort(ids, kind="stable")
    ids, edges = ids[order], edges[order]
    uniq, start = np.unique(ids, return_index=True)
    merged = np.bitwise_or.reduceat(edges, start) if len(ids) else edges
    ids, edges = uniq, merged
    comm.Barrier()
    t0 = time.perf_counter()
    labels = ids.astype(np.int64)
    active = np.ones(len(ids), bool)
    rounds = 0
    while True:
        rounds += 1
        src = np.flatnonzero(active)
        out_ids, out_lab = [], []
        for b in range(4):
            for shift, step in ((0, encoding.followers), (4, encoding.leaders)):
                sel = src[(edges[src] >> (shift + b)) & 1 == 1]
                if len(sel):
                    out_ids.append(encoding.canonical_array(step(ids[sel], K, b), K))
                    out_lab.append(labels[sel])
        tid = np.concatenate(out_ids) if out_ids else np.empty(0, np.uint64)
        lab = np.concatenate(out_lab) if out_lab else np.empty(0, np.int64)
        dest = owners(tid, size) if len(tid) else np.empty(0, np.int32)
        o = np.argsort(dest, kind="stable")
        tid, lab = tid[o], lab[o]
        send = np.bincount(dest, minlength=size).astype(np.int64)
        recv = np.empty(size, np.int64)
        comm.Alltoall(send, recv)
        rid = np.empty(int(recv.sum()), np.uint64)
        rlab = np.empty(int(recv.sum()), np.int64)
        sd = np.concatenate(([0], np.cumsum(send)[:-1]))
        rd = np.concatenate(([0], np.cumsum(recv)[:-1]))
        comm.Alltoallv([tid, (send, sd), MPI.UINT64_T], [rid, (recv, rd), MPI.UINT64_T])
        comm.Alltoallv([lab, (send, sd), MPI.INT64_T], [rlab, (recv, rd), MPI.INT64_T])
        pos = np.searchsorted(ids, rid)
        at = np.minimum(pos, max(len(ids) - 1, 0))
        ok = (pos < len(ids)) & (ids[at] == rid) if len(ids) else np.zeros(len(rid), bool)
        before = labels.copy()
        np.minimum.at(labels, at[ok], rlab[ok])
        active = labels < before
        if comm.allreduce(int(active.sum())) == 0:
            break
    seconds = time.perf_counter() - t0
    return seconds, rounds, dict(zip(ids.tolist(), labels.tolist()))


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000
    npieces = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    comm = MPI.COMM_WORLD
    seqs = pieces(total, npieces)
    hand = [by_hand(comm, seqs) for _ in range(3)]
    tmp = tempfile.mkdtemp() if comm.rank == 0 else None
    tmp = comm.bcast(tmp)
    path = os.path.join(tmp, "g.fa")
    if comm.rank == 0:
        with open(path, "w") as fh:
            for i, s in enumerate(seqs):
                fh.write(f">p{i}\n{s}\n")
    comm.Barrier()
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "cascades",
                           "components.ray")) as fh:
        script = fh.read()
    define, start = script.split("start label")
    with Cluster() as c:
        if c is None:
            return
        c.run(f'load "{path}" into kmers k={K}\n' + define)
        runs = []
        for _ in range(3):
            c.run("field comp = -1 on kmers\ndrop field comp on kmers\nfield comp = -1 on kmers")
            (res,) = c.run("start label" + start)
            runs.append(res.data)
        dump = os.path.join(tmp, "comp.tsv")
        c.run(f'dump kmers to "{dump}" fields=comp')
    mine = hand[-1][2]
    got = {}
    with open(dump) as fh:
        for line in fh:
            s, _n, lab = line.split("\t")
            got[encoding.encode(s)] = int(lab)
    same = all(got.get(i) == lab for i, lab in mine.items())
    casc = statistics.median(r["seconds"] for r in runs)
    raw = statistics.median(h[0] for h in hand)
    print(f"components of {total:,} bases in {npieces:,} pieces ({comm.size} ranks): cascade median {casc:.2f} s "
          f"({runs[-1]['rounds']:,} rounds, {runs[-1]['messages']:,} messages), numpy + mpi4py by hand "
          f"{raw:.2f} s ({hand[-1][1]:,} rounds); ratio {casc / raw:.2f}; rank 0's labels equal: {same}")


if __name__ == "__main__":
    main()
