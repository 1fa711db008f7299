"""Synthetic genomes of known truth for the spectrum model's tests: a random haploid genome, or a
diploid one (the genome and a copy with a known number of substituted bases), and reads of both
strands with substitution errors, written as FASTQ with numpy (no loop per read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BASES = np.frombuffer(b"ACGT", np.uint8)


def haplotypes(length: int, heterozygosity: float, seed: int = 7) -> list[np.ndarray]:
    """One random genome (2-bit codes), and with heterozygosity > 0 a second haplotype differing at
    exactly round(heterozygosity * length) places."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 4, length, dtype=np.uint8)
    if heterozygosity <= 0:
        return [first]
    second = first.copy()
    sites = rng.choice(length, round(heterozygosity * length), replace=False)
    second[sites] = (second[sites] + rng.integers(1, 4, len(sites), dtype=np.uint8)) % 4
    return [first, second]


def write_reads(path: Path, genomes: list[np.ndarray], coverage: float, length: int = 100,
                error: float = 0.005, seed: int = 11) -> Path:
    """Reads of ``length`` bases from every genome at ``coverage`` (bases read per base of each
    genome), on either strand, each base wrong with probability ``error``."""
    rng = np.random.default_rng(seed)
    parts = []
    for genome in genomes:
        n = round(coverage * len(genome) / length)
        starts = rng.integers(0, len(genome) - length + 1, n)
        reads = genome[starts[:, None] + np.arange(length)[None, :]]
        flip = rng.random(n) < 0.5
        reads[flip] = 3 - reads[flip, ::-1]
        wrong = rng.random(reads.shape) < error
        reads[wrong] = (reads[wrong] + rng.integers(1, 4, int(wrong.sum()), dtype=np.uint8)) % 4
        parts.append(reads)
    reads = np.concatenate(parts)
    n = len(reads)
    rows = np.empty((n, 2 * length + 6), np.uint8)  # "@\n" + bases + "\n+\n" + qualities + "\n"
    rows[:, 0] = ord("@")
    rows[:, 1] = ord("\n")
    rows[:, 2:2 + length] = BASES[reads]
    rows[:, 2 + length:5 + length] = np.frombuffer(b"\n+\n", np.uint8)
    rows[:, 5 + length:5 + 2 * length] = ord("I")
    rows[:, -1] = ord("\n")
    path.write_bytes(rows.tobytes())
    return path


def write_fasta(path: Path, genome: np.ndarray, name: str = "genome") -> Path:
    text = BASES[genome].tobytes()
    path.write_bytes(b">" + name.encode() + b"\n" + b"\n".join(text[i:i + 80] for i in range(0, len(text), 80))
                     + b"\n")
    return path
