"""Benchmark: k-mers counted per second by `load` at 1, 2 and 4 ranks beside
`jellyfish count -t 2` and KMC 3 (`kmc -k31 -t2 -ci1`) on the same file, in the same run; then
k=63 (two-word ids) at 2 ranks beside `jellyfish count -m 63`.

Usage: bench_load.py READS.fq [RANKS ...]   (scripts/bench generates READS.fq with a fixed seed)
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

RANK_PROGRAM = """
import json, sys
from mpi4py import MPI
from rayscript import Cluster
with Cluster(comm=MPI.COMM_WORLD) as c:
    if c is not None:
        (r,) = c.run('load "%s" into kmers k=%d')
        print("RESULT " + json.dumps(r.data))
"""


def run_jellyfish(reads: str, workdir: str, k: int = 31) -> dict:
    exe = shutil.which("jellyfish")
    if exe is None:
        return {}
    seconds, peak, _ = timed_child([exe, "count", "-m", str(k), "-C", "-t", "2", "-s", "100M", "-o",
                                    f"{workdir}/jf.jf", reads], workdir)
    stats = subprocess.run([exe, "stats", f"{workdir}/jf.jf"], check=True, capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in stats.splitlines() if ":" in line)
    total = int(fields["Total"].strip())
    return {"seconds": seconds, "kmers": total, "distinct": int(fields["Distinct"].strip()), "peak": peak}


def timed_child(cmd: list[str], cwd: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, stdout) of one process, its own peak (wait4), not the session's."""
    import os

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed: {out[-2000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss * 1024, out


def run_kmc(reads: str, workdir: str) -> dict:
    exe = shutil.which("kmc")
    if exe is None:
        return {}
    tmp = Path(workdir) / "kmc-tmp"
    tmp.mkdir(exist_ok=True)
    seconds, peak, out = timed_child([exe, "-k31", "-t2", "-ci1", "-cs4294967295", reads,
                                      str(Path(workdir) / "kmc"), str(tmp)], workdir)
    fields = {line.split(":")[0].strip(): line.split(":")[-1].strip() for line in out.splitlines() if ":" in line}
    return {"seconds": seconds, "peak": peak, "kmers": int(fields["Total no. of k-mers"]),
            "distinct": int(fields["No. of unique k-mers"])}


def run_rayscript(reads: str, ranks: int, workdir: str, k: int = 31) -> dict:
    prog = Path(workdir) / "load.py"
    prog.write_text(RANK_PROGRAM % (reads, k))
    proc = subprocess.run([str(BIN / "mpiexec"), "-n", str(ranks), str(BIN / "python"), str(prog)],
                          check=True, capture_output=True, text=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    reads = str(Path(sys.argv[1]).resolve())  # the peers run in a work directory
    ranks_list = [int(x) for x in sys.argv[2:]] or [1, 2, 4]
    mib = 1 << 20
    with tempfile.TemporaryDirectory() as workdir:
        jf = run_jellyfish(reads, workdir)
        if jf:
            print(f"jellyfish count -m 31 -C -t 2 -s 100M: {jf['seconds']:.1f} s, "
                  f"{jf['kmers'] / jf['seconds'] / 1e6:.2f} M k-mers/s, peak {jf['peak'] / mib:.0f} MiB, "
                  f"{jf['distinct']:,} distinct, {jf['peak'] / jf['distinct']:.1f} bytes/distinct (peak)")
        else:
            print("jellyfish not installed: no peer figures (apt-get install jellyfish)")
        kmc = run_kmc(reads, workdir)
        if kmc:
            print(f"kmc -k31 -t2 -ci1: {kmc['seconds']:.1f} s, {kmc['kmers'] / kmc['seconds'] / 1e6:.2f} M k-mers/s, "
                  f"peak {kmc['peak'] / mib:.0f} MiB, {kmc['distinct']:,} distinct")
        else:
            print("kmc not installed: no KMC figures (apt-get install kmc)")
        for ranks in ranks_list:
            r = run_rayscript(reads, ranks, workdir)
            peak = sum(r["peak_rss"])
            line = (f"rayscript load, {ranks} rank{'s' if ranks > 1 else ''}: {r['seconds']:.1f} s, "
                    f"{r['kmers'] / r['seconds'] / 1e6:.2f} M k-mers/s, peak per rank "
                    f"{max(r['peak_rss']) / mib:.0f} MiB, all ranks {peak / mib:.0f} MiB, "
                    f"{r['table_bytes'] / r['distinct']:.1f} bytes/distinct at rest")
            if jf:
                assert r["distinct"] == jf["distinct"] and r["kmers"] == jf["kmers"], "counts differ from jellyfish"
                line += (f"; speed ratio vs jellyfish {jf['seconds'] / r['seconds']:.2f}, "
                         f"memory ratio {peak / jf['peak']:.2f}")
            if kmc:
                assert r["distinct"] == kmc["distinct"] and r["kmers"] == kmc["kmers"], "counts differ from kmc"
                line += f"; throughput vs kmc {kmc['seconds'] / r['seconds']:.2f}"
            print(line, flush=True)
        jf = run_jellyfish(reads, workdir, 63)
        if jf:
            print(f"jellyfish count -m 63 -C -t 2 -s 100M: {jf['seconds']:.1f} s, peak {jf['peak'] / mib:.0f} MiB, "
                  f"{jf['distinct']:,} distinct")
            r = run_rayscript(reads, 2, workdir, 63)
            assert r["distinct"] == jf["distinct"] and r["kmers"] == jf["kmers"], "k=63 counts differ from jellyfish"
            peak = sum(r["peak_rss"])
            print(f"rayscript load k=63, 2 ranks: {r['seconds']:.1f} s, all ranks {peak / mib:.0f} MiB, "
                  f"{r['table_bytes'] / r['distinct']:.1f} bytes/distinct at rest; speed ratio vs jellyfish "
                  f"{jf['seconds'] / r['seconds']:.2f}, memory ratio {peak / jf['peak']:.2f}", flush=True)


if __name__ == "__main__":
    main()
