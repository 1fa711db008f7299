"""Benchmark: set algebra on two samples beside kmc_tools, in the same run.

Two samples of a 3 Mbp random genome at 30x (900,000 reads of 100 bp, 1% substitution errors): the
genome itself and a copy with 2% of its bases substituted.  rayscript (2 ranks under mpiexec) loads
them into kmers.a and kmers.b, then runs intersect, union, kmers_subtract and counters_subtract
(combine * + - ~) ROUNDS times; KMC counts both (kmc -k31 -t2 -ci1) and kmc_tools -t2 simple runs
the same four operations ROUNDS times.  Medians per operation, and the whole job beside KMC's.
With MATRIX, also a count matrix of 8 samples of 1,000,000 reads each (2% apart from one another).

Usage: bench_sets.py DATA_DIR [ROUNDS] [matrix]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
OPS = [("intersect", "*"), ("union", "+"), ("kmers_subtract", "-"), ("counters_subtract", "~")]

RANK_PROGRAM = """
import json, sys, time
from mpi4py import MPI
from rayscript import Cluster
a, b, rounds, samples = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
with Cluster(comm=MPI.COMM_WORLD) as c:
    if c is not None:
        out = {"load": [], "ops": {}}
        for name, path in (("a", a), ("b", b)):
            t = time.perf_counter()
            (r,) = c.run(f'load "{path}" into kmers.{name} k=31')
            out["load"].append({"seconds": time.perf_counter() - t, "kmers": r.data["kmers"],
                                "distinct": r.data["distinct"], "peak_rss": r.data["peak_rss"]})
        for op, sym in OPS_LIST:
            times = []
            for i in range(rounds):
                t = time.perf_counter()
                (r,) = c.run(f"combine kmers.a {sym} kmers.b into kmers.{op} replace")
                times.append(time.perf_counter() - t)
            out["ops"][op] = {"seconds": times, "distinct": r.data["distinct"], "peak_rss": r.data["peak_rss"]}
        if samples:
            names = []
            t = time.perf_counter()
            for i, path in enumerate(samples):
                c.run(f'load "{path}" into kmers.s{i} k=31')
                names.append(f"kmers.s{i}")
            loaded = time.perf_counter() - t
            t = time.perf_counter()
            (r,) = c.run(f'matrix {", ".join(names)} to "{samples[0]}.matrix.tsv" min_sets=2')
            out["matrix"] = {"load_seconds": loaded, "seconds": time.perf_counter() - t, "rows": r.data["rows"],
                             "bytes": r.data["bytes"]}
        print("RESULT " + json.dumps(out))
""".replace("OPS_LIST", repr(OPS))


def timed(cmd: list[str], cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed: {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    return time.perf_counter() - t0


def make(data: Path, name: str, reads: int, genome: int, mutate: float) -> Path:
    path = data / name
    if not path.exists() or path.stat().st_size == 0:
        subprocess.run([sys.executable, str(HERE / "make_reads.py"), str(path), str(reads), "100", str(genome),
                        "0.01", str(mutate)], check=True)
    return path


def main() -> None:
    data = Path(sys.argv[1]).resolve()
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    matrix = len(sys.argv) > 3 and sys.argv[3] == "matrix"
    data.mkdir(parents=True, exist_ok=True)
    a = make(data, "sets-a.fq", 900_000, 3_000_000, 0.0)
    b = make(data, "sets-b.fq", 900_000, 3_000_000, 0.02)
    samples = [make(data, f"matrix-{i}.fq", 1_000_000, 3_000_000, 0.02 * i) for i in range(8)] if matrix else []
    with tempfile.TemporaryDirectory() as work:
        prog = Path(work) / "sets.py"
        prog.write_text(RANK_PROGRAM)
        t0 = time.perf_counter()
        proc = subprocess.run([str(BIN / "mpiexec"), "-n", "2", sys.executable, str(prog), str(a), str(b),
                               str(rounds), *map(str, samples)], capture_output=True, text=True, cwd=work)
        ray_job = time.perf_counter() - t0
        if proc.returncode:
            sys.exit(f"rayscript failed: {proc.stderr[-2000:]}")
        ray = json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))
        kmc = {}
        if shutil.which("kmc") and shutil.which("kmc_tools"):
            t0 = time.perf_counter()
            for name, path in (("a", a), ("b", b)):
                tmp = Path(work) / f"kmc-{name}"
                tmp.mkdir()
                timed(["kmc", "-k31", "-t2", "-ci1", "-cs1000000", str(path), f"{work}/{name}", str(tmp)], work)
            counted = time.perf_counter() - t0
            simple = []
            for i in range(rounds):
                args = ["kmc_tools", "-t2", "simple", f"{work}/a", "-ci1", f"{work}/b", "-ci1"]
                for op, _ in OPS:
                    args += [op, f"{work}/{op}{i}"]
                simple.append(timed(args, work))
                for op, _ in OPS:
                    for ext in (".kmc_pre", ".kmc_suf"):
                        os.unlink(f"{work}/{op}{i}{ext}")
            kmc = {"count_seconds": counted, "simple_seconds": simple}
    four = [sum(ray["ops"][op]["seconds"][i] for op, _ in OPS) for i in range(rounds)]
    print(f"rayscript, 2 ranks: loaded {ray['load'][0]['distinct']:,} and {ray['load'][1]['distinct']:,} distinct "
          f"31-mers in {ray['load'][0]['seconds']:.1f} + {ray['load'][1]['seconds']:.1f} s")
    for op, _ in OPS:
        got = ray["ops"][op]
        print(f"  {op:<18} median {statistics.median(got['seconds']):.2f} s  ({got['distinct']:,} distinct; "
              f"peak RSS per rank {', '.join(f'{p / 2**20:,.0f} MiB' for p in got['peak_rss'])})")
    print(f"  the four operations: median {statistics.median(four):.2f} s over {rounds} rounds")
    print(f"  whole job (start, load both, {rounds} x the four): {ray_job:.1f} s")
    if kmc:
        med = statistics.median(kmc["simple_seconds"])
        print(f"kmc_tools -t2 simple, the four operations in one run: median {med:.2f} s; "
              f"kmc -t2 x2 counting: {kmc['count_seconds']:.1f} s")
        print(f"ratio rayscript / kmc_tools for the four operations: {statistics.median(four) / med:.2f}")
        whole_ray = sum(x["seconds"] for x in ray["load"]) + statistics.median(four)
        whole_kmc = kmc["count_seconds"] + med
        print(f"load both + the four: rayscript {whole_ray:.1f} s, kmc x2 + kmc_tools {whole_kmc:.1f} s "
              f"(ratio {whole_ray / whole_kmc:.2f})")
    if "matrix" in ray:
        m = ray["matrix"]
        print(f"matrix of 8 samples of 1,000,000 reads: loaded in {m['load_seconds']:.1f} s, matrix "
              f"({m['rows']:,} k-mers in >= 2 samples, {m['bytes'] / 2**20:,.0f} MiB) in {m['seconds']:.1f} s")


if __name__ == "__main__":
    main()
