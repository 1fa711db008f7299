"""Benchmark: time per `copy` of one small item (3 ranks) against a raw mpi4py ping-pong.

Run under mpiexec with 3 ranks (scripts/bench does).  The figures come from the same job,
interleaved round by round; the ratio is of medians, and also the median of each round's own
ratio (steadier when the machine's speed drifts during the run).  Beside the round trip (the
target's yardstick), a raw relay 0 -> 1 -> 2 -> 0 times the copy's three hops as hand-written MPI
would make them, with every rank waiting: copy / relay is what rayscript adds to the hops.  A
third relay carries the hops as rayscript's messenger does (a pickled envelope, a probing wait
that gives the core away) with none of rayscript's work: the floor of this design in Python.
"""

import statistics
import sys
import time

from mpi4py import MPI
from raw_peer import message_relay, relay, round_trip

from rayscript import Cluster
from rayscript.runtime.mpi import PROBES_PER_YIELD

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
COPIES = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
PINGS = 5000

comm = MPI.COMM_WORLD


def main() -> None:
    if comm.size != 3:
        sys.exit("bench_copy: run with mpiexec -n 3")
    raws, relays, floors, copies = [], [], [], []
    cluster = Cluster(comm=comm.Dup())
    statements = None
    for _ in range(ROUNDS):
        raws.append(round_trip(comm, PINGS))
        relays.append(relay(comm, PINGS))
        floors.append(message_relay(comm, PINGS, PROBES_PER_YIELD))
        # the copy loop: rank 0 commands, rank 1 sends to rank 2, rank 2 acknowledges to rank 0
        if comm.rank == 0:
            cluster.run("put kmers/19123890 count=1 on 1")
            if statements is None:
                statements = cluster.parse(f"for i in 1..{COPIES} {{ copy kmers/19123890 from 1 to 2 replace }}")
            t0 = time.perf_counter()
            for _results in cluster.execute(statements):
                pass
            copies.append((time.perf_counter() - t0) / COPIES)
            # hand the ranks back for the next raw round
            cluster.close()
            cluster = Cluster(comm=comm.Dup())
        else:
            cluster.serve()
            cluster = Cluster(comm=comm.Dup())
    if comm.rank == 0:
        raw, copy = statistics.median(raws), statistics.median(copies)
        print(f"raw mpi4py 8-byte round trip (ranks 1<->2): median {raw * 1e6:.1f} us over {ROUNDS} rounds "
              f"of {PINGS}")
        print(f"copy of one k-mer (order 0->1, item 1->2, ack 2->0): median {copy * 1e6:.1f} us over {ROUNDS} "
              f"rounds of {COPIES}")
        hops = statistics.median(relays)
        print(f"raw mpi4py 8-byte relay 0->1->2->0 (a copy's three hops, every rank waiting in MPI): median "
              f"{hops * 1e6:.1f} us; copy / relay {copy / hops:.2f} (what rayscript adds to the three hops)")
        floor = statistics.median(floors)
        print(f"the same relay as rayscript's messenger carries messages (pickled envelope, isend, probing wait), "
              f"no rayscript work: median {floor * 1e6:.1f} us = {floor / raw:.2f} round trips; copy / this relay "
              f"{copy / floor:.2f}")
        paired = statistics.median(c / r for c, r in zip(copies, raws))
        print(f"ratio copy / raw round trip: {copy / raw:.2f} (target <= 5); median of the rounds' own ratios "
              f"{paired:.2f} (each round's raw and copy measured seconds apart)")
    cluster.close() if comm.rank == 0 else cluster.serve()


if __name__ == "__main__":
    main()
