"""Cascades: messages per second per rank of a one-hop cascade, and a chain's time per hop beside the
built-in walk's, in the same run.

    mpiexec -n 2 python scripts/bench_cascades.py [GENOME_BASES]

One-hop: every k-mer of a store of about GENOME_BASES k-mers (a random genome, k=31) sends one
message to each neighbour, which adds to a field.  Chain: one message walks a unitig of 2,000 k-mers
(the walk cascade of examples/cascades/walk.ray) and the built-in walk goes the same way.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time

from rayscript import Cluster


def genome(n: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice("ACGT") for _ in range(n))


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    with Cluster() as c:
        if c is None:
            return
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "g.fa")
        g = genome(size, 1)
        chain = genome(2030, 2)
        with open(path, "w") as fh:
            for i in range(0, len(g), 100_000):
                fh.write(f">g{i}\n{g[i:i + 100_030]}\n")
            fh.write(f">chain\n{chain}\n")
        c.run(f'load "{path}" into kmers k=31')
        c.run("field total = 0 on kmers\nfield step = -1 on kmers")
        c.run("cascade spread(kmer) { send add(kmer.neighbours, kmer.count) }\n"
              "cascade add(kmer, x) { set kmer.total = kmer.total + x }")
        c.run("cascade walk(kmer, i) { if kmer.step >= 0 { stop }; if i > 0 and kmer.in_degree != 1 { stop }; "
              "set kmer.step = i; if kmer.out_degree == 1 { send walk(kmer.next, i + 1) } }")
        rates = []
        for _ in range(3):
            (res,) = c.run("start spread(kmers)")
            rates.append(res.data["messages"] / res.data["seconds"] / c.size)
        print(f"one-hop over {size:,} bases ({c.size} ranks): {res.data['messages']:,} messages, "
              f"median {statistics.median(rates) / 1e6:.2f} M messages/s per rank "
              f"(runs: {', '.join(f'{r / 1e6:.2f}' for r in rates)})")
        seed = chain[:31]
        seed = min(seed, seed.translate(str.maketrans("ACGT", "TGCA"))[::-1])
        per_hop_c, per_hop_w = [], []
        for _ in range(3):
            c.run("field step = -1 on kmers")
            c.run("drop field step on kmers\nfield step = -1 on kmers")
            t = time.perf_counter()
            (res,) = c.run(f"start walk(kmers/{seed}, 0)")
            hops_c = res.data["messages"]
            per_hop_c.append((time.perf_counter() - t) / max(hops_c, 1))
            t = time.perf_counter()
            (w,) = c.run(f"walk kmers/{seed} into paths/w")
            per_hop_w.append((time.perf_counter() - t) / max(w.data.get("kmers", 1), 1))
        mc, mw = statistics.median(per_hop_c), statistics.median(per_hop_w)
        print(f"chain of {hops_c:,} k-mers: cascade median {mc * 1e6:.1f} us per hop, built-in walk "
              f"{mw * 1e6:.1f} us per hop ({w.data.get('kmers')} k-mers); ratio {mc / mw:.2f}")


if __name__ == "__main__":
    main()
