"""Benchmark of `assemble` beside the Ray assembler and Minia, run in the same session.

Usage:
  bench_assemble.py lambda [RANKS]        bowtie2-examples' lambda reads_1 + reads_2, k=31
  bench_assemble.py genome READS.fq [RANKS ...]   synthetic reads; READS.fq.genome.fa is the genome

Each tool's whole job is timed as a process (rayscript: `mpiexec -n N rayscript run` of load +
assemble + dump; Ray: Open MPI's mpirun with 2 ranks; Minia: 2 threads, abundance-min 3).  Quality:
contigs, total, N50, longest; against a genome, the share of its 31-mers found in the contigs and
the share of the contigs' 31-mers found in it (both strands).
"""

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rayscript.store import encoding

BIN = Path(sys.executable).parent
EXAMPLES = Path("/usr/share/doc/bowtie2/examples")
K = 31


def read_fasta(path: Path) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    seqs, cur = [], []
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                if cur:
                    seqs.append("".join(cur))
                cur = []
            else:
                cur.append(line.strip())
    if cur:
        seqs.append("".join(cur))
    return seqs


def kmer_ids(seqs: list[str]) -> np.ndarray:
    parts = []
    for s in seqs:
        codes = encoding.codes_from_bytes(np.frombuffer(s.encode() + b"\n", np.uint8))
        ids, _ = encoding.kmers_from_codes(codes, K, canonical=True)
        parts.append(ids)
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.uint64)


def stats(seqs: list[str]) -> dict:
    lengths = np.sort(np.array([len(s) for s in seqs], np.int64))[::-1]
    half = lengths.sum() / 2
    n50 = int(lengths[np.searchsorted(np.cumsum(lengths), half)]) if len(lengths) else 0
    return {"contigs": len(lengths), "total": int(lengths.sum()), "n50": n50, "longest": int(lengths.max(initial=0))}


def quality(seqs: list[str], genome_ids: np.ndarray) -> str:
    ids = kmer_ids(seqs)
    covered = np.isin(genome_ids, ids).mean() if len(genome_ids) else 0.0
    inside = np.isin(ids, genome_ids).mean() if len(ids) else 0.0
    return f"genome 31-mers in contigs {covered:.2%}, contig 31-mers in genome {inside:.2%}"


def timed(cmd, cwd, env=None, show: str = "") -> float:
    """Seconds the command took; the lines of its output that start with ``show`` are printed."""
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed: {proc.stderr[-2000:]}")
    seconds = time.monotonic() - t0
    for line in proc.stdout.splitlines():
        if show and line.startswith(show):
            print(f"  {line}")
    return seconds


def run_rayscript(reads: list[Path], ranks: int, work: Path) -> tuple[float, list[str]]:
    files = ", ".join(f'"{r}"' for r in reads)
    script = work / "assemble.ray"
    out = work / f"rayscript-{ranks}.fa"
    script.write_text(f"load {files} into kmers k={K}\nassemble kmers into paths/contig\n"
                      f'dump paths/* to "{out}"\n')
    seconds = timed([str(BIN / "mpiexec"), "-n", str(ranks), str(BIN / "rayscript"), "run", str(script)], work,
                    show=("loaded", "min_count="))
    return seconds, read_fasta(out)


def run_ray(reads: list[Path], work: Path) -> tuple[float, list[str]] | None:
    if shutil.which("Ray") is None or not Path("/usr/bin/mpirun").exists():
        return None
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    plain = []
    for r in reads:  # Ray reads plain files
        p = work / Path(r.name.removesuffix(".gz"))
        with (gzip.open(r, "rb") if r.suffix == ".gz" else open(r, "rb")) as src, open(p, "wb") as dst:
            shutil.copyfileobj(src, dst)
        plain.append(p)
    out = work / "ray-out"
    seconds = timed(["/usr/bin/mpirun", "--oversubscribe", "-np", "2", "Ray", "-k", str(K), "-p",
                     *map(str, plain), "-o", str(out)], work, env)
    return seconds, read_fasta(out / "Contigs.fasta")


def run_minia(reads: list[Path], work: Path) -> tuple[float, list[str]] | None:
    if shutil.which("minia") is None:
        return None
    listing = work / "reads.txt"
    listing.write_text("".join(f"{r}\n" for r in reads))
    seconds = timed(["minia", "-in", str(listing), "-kmer-size", str(K), "-abundance-min", "3", "-nb-cores", "2",
                     "-out", str(work / "minia")], work)
    return seconds, read_fasta(work / "minia.contigs.fa")


def report(name: str, result, genome_ids=None) -> float | None:
    if result is None:
        print(f"{name}: not installed (Debian packages ray, minia)")
        return None
    seconds, seqs = result
    s = stats(seqs)
    extra = f"; {quality(seqs, genome_ids)}" if genome_ids is not None else ""
    print(f"{name}: {seconds:.1f} s, {s['contigs']:,} contigs, {s['total']:,} bases, N50 {s['n50']:,}, "
          f"longest {s['longest']:,}{extra}", flush=True)
    return seconds


def main() -> None:
    what = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if what == "lambda":
            reads = [EXAMPLES / "reads" / "reads_1.fq.gz", EXAMPLES / "reads" / "reads_2.fq.gz"]
            ranks = int(sys.argv[2]) if len(sys.argv) > 2 else 2
            genome_ids = kmer_ids(read_fasta(EXAMPLES / "reference" / "lambda_virus.fa.gz"))
            ours = report(f"rayscript, {ranks} ranks (load + assemble + dump)",
                          run_rayscript(reads, ranks, work), genome_ids)
            ray = report("Ray, 2 ranks", run_ray(reads, work), genome_ids)
            minia = report("Minia, 2 threads", run_minia(reads, work), genome_ids)
            if ray and ours:
                print(f"Ray's time / rayscript's: {ray / ours:.1f} (target >= 5)")
            if minia and ours:
                print(f"rayscript's time / Minia's: {ours / minia:.2f}")
        else:
            reads = [Path(sys.argv[2]).resolve()]
            genome_ids = kmer_ids(read_fasta(Path(str(reads[0]) + ".genome.fa")))
            minia = report("Minia, 2 threads", run_minia(reads, work), genome_ids)
            for ranks in map(int, sys.argv[3:] or ["1", "2", "4"]):
                ours = report(f"rayscript, {ranks} rank{'s' if ranks > 1 else ''} (load + assemble + dump)",
                              run_rayscript(reads, ranks, work), genome_ids)
                if minia and ours:
                    print(f"  time / Minia's: {ours / minia:.2f} (target at 2 ranks <= 3)", flush=True)


if __name__ == "__main__":
    main()
