"""Synthetic reads for benchmarks and the demo: a random genome, reads sampled from both strands
with substitution errors, fixed seed.  The genome is written beside the reads, as OUT.genome.fa.
With MUTATE, the reads come from a copy of that genome with a fraction MUTATE of its bases
substituted (written as OUT.genome.fa; another sample of the same species), and other read positions.
Usage: make_reads.py OUT.fq [READS] [LENGTH] [GENOME] [ERROR] [MUTATE]"""

import sys

import numpy as np


def main() -> None:
    out = sys.argv[1]
    nreads = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
    length = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    genome_len = int(sys.argv[4]) if len(sys.argv) > 4 else 5_000_000
    error = float(sys.argv[5]) if len(sys.argv) > 5 else 0.01
    mutate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    rng = np.random.default_rng(20261125)
    bases = np.frombuffer(b"ACGT", np.uint8)
    genome = rng.integers(0, 4, genome_len, dtype=np.uint8)
    if mutate:
        rng = np.random.default_rng(int(mutate * 1e6) + 1)
        where = rng.random(genome_len) < mutate
        genome[where] = (genome[where] + rng.integers(1, 4, int(where.sum()), dtype=np.uint8)) % 4
    with open(out + ".genome.fa", "wb") as fh:
        text = bases[genome].tobytes()
        fh.write(b">genome length=%d\n" % genome_len)
        fh.write(b"".join(text[i:i + 80] + b"\n" for i in range(0, genome_len, 80)))
    qual = b"I" * length
    with open(out, "wb") as fh:
        batch = 100_000
        for first in range(0, nreads, batch):
            n = min(batch, nreads - first)
            starts = rng.integers(0, genome_len - length, n)
            reads = genome[starts[:, None] + np.arange(length)[None, :]]
            flip = rng.random(n) < 0.5
            reads[flip] = 3 - reads[flip, ::-1]
            errs = rng.random((n, length)) < error
            reads[errs] = (reads[errs] + rng.integers(1, 4, int(errs.sum()), dtype=np.uint8)) % 4
            seqs = bases[reads]
            lines = []
            for i in range(n):
                lines.append(b"@r%d\n%s\n+\n%s\n" % (first + i, seqs[i].tobytes(), qual))
            fh.write(b"".join(lines))


if __name__ == "__main__":
    main()
