"""Benchmarks across "hosts" over TCP: three network namespaces on this machine (the same set-up
as the multi-host tests, tests/hosts.py), one rank on each, MPICH held to TCP.

- copy latency (scripts/bench_copy.py) beside a raw mpi4py ping-pong between the same hosts;
- bulk copy bandwidth (scripts/bench_bulk.py) beside a raw mpi4py Send of the same bytes;
- load of READS.fq on the three hosts beside the same load with the three ranks on one host.

Needs root and iproute2 (says so and exits 0 otherwise).  Usage: bench_hosts.py [READS.fq]
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from hosts import Hosts, why_not  # noqa: E402

BIN = Path(sys.executable).parent


def run(cmd, env) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode:
        sys.exit(f"bench_hosts: {' '.join(cmd[:3])} ... failed: {proc.stderr[-2000:]}")
    return proc.stdout


def load_seconds(cmd_prefix, reads: str, env) -> float:
    t0 = time.perf_counter()
    run([*cmd_prefix, str(BIN / "rayscript"), "run", "-e", f'load "{reads}" into kmers k=31'], env)
    return time.perf_counter() - t0


def main() -> None:
    reason = why_not()
    if reason:
        print(f"bench_hosts: skipped ({reason})")
        return
    reads = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as tmp:
        hosts = Hosts(3, Path(tmp))
        try:
            hosts.up()
            env = hosts.env()
            slots = {name: 1 for name in hosts.names}
            print("== across 3 hosts over TCP (network namespaces, UCX_TLS=tcp,self), one rank each ==", flush=True)
            print(run(hosts.mpiexec(slots, str(BIN / "python"), str(HERE / "bench_copy.py")), env), end="", flush=True)
            print(run(hosts.mpiexec(slots, str(BIN / "python"), str(HERE / "bench_bulk.py"), "2000000", "7"), env),
                  end="", flush=True)
            if reads:
                across = load_seconds(hosts.mpiexec(slots), reads, env)
                local = load_seconds([str(BIN / "mpiexec"), "-n", "3"], reads, env)
                print(f"load of {reads}, 3 ranks: {across:.1f} s across 3 hosts, {local:.1f} s on one host; "
                      f"ratio {local / across:.2f}")
        finally:
            hosts.down()


if __name__ == "__main__":
    main()
