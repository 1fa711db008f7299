"""E. coli 536 (bowtie-examples' NC_008253, 4.94 Mbp) from ART-simulated HiSeq 2x125 pairs at 40x:
rayscript beside Minia and MEGAHIT (and ABySS where installed), every assembly judged by QUAST
against the genome, in one table.

Usage:
  bench_ecoli.py DIR [TOOL ...]     TOOL: ray31, rayauto, raypairs, minia, megahit, abyss (default: all)
  bench_ecoli.py DIR report         the table of the tools run so far (QUAST again), running none

DIR keeps the reads (made once with a fixed seed: `art_illumina -ss HS25 -p -l 125 -f 40 -m 400
-s 30 -rs 536`), each tool's contigs, its figures (DIR/runs.json: a later call that runs some tools
again keeps the others' figures) and the QUAST report of every tool run so far.  Each tool's whole
job is one process tree on the machine's 2 cores (rayscript: `mpiexec -n 2 rayscript run`; Minia 3: 2 threads, k=31;
MEGAHIT: 2 threads, its default k 21..141; ABySS: `abyss-pe j=2 k=63 B=2G` with the pairs); its wall time
is measured from outside and its memory as the peak of the summed resident memory of every process
of the tree (sampled every 0.2 s: the ranks together, not only the largest).  QUAST (`quast.py -r
genome --min-contig 500`): N50, NGA50, misassembled contigs, genome fraction.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
GENOME = Path("/usr/share/doc/bowtie/examples/genomes/NC_008253.fna.gz")
SEED = 536


def tree_rss(root: int) -> int:
    """The summed resident memory (bytes) of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak summed memory of the command's process tree."""
    peak = [0]
    with open(log, "w") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)

        def watch() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], tree_rss(proc.pid))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = proc.wait()
        seconds = time.monotonic() - t0
        watcher.join()
    if code:
        sys.exit(f"{cmd[0]} failed (exit {code}); see {log}")
    return seconds, peak[0]


def make_reads(d: Path) -> tuple[Path, Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    ref = d / "NC_008253.fa"
    if not ref.exists():
        with gzip.open(GENOME, "rb") as src, open(ref, "wb") as dst:
            shutil.copyfileobj(src, dst)
    r1, r2 = d / "ecoli_1.fq.gz", d / "ecoli_2.fq.gz"
    if not (r1.exists() and r2.exists()):
        if shutil.which("art_illumina") is None:
            sys.exit("art_illumina is needed (Debian: apt-get install art-nextgen-simulation-tools)")
        subprocess.run(["art_illumina", "-ss", "HS25", "-p", "-l", "125", "-f", "40", "-m", "400", "-s", "30",
                        "-rs", str(SEED), "-na", "-q", "-i", str(ref), "-o", str(d / "ecoli_")], check=True,
                       stdout=subprocess.DEVNULL)
        for n in (1, 2):
            subprocess.run(["gzip", "-1", "-f", str(d / f"ecoli_{n}.fq")], check=True)
    return ref, r1, r2


def rayscript(d: Path, r1: Path, r2: Path, name: str, options: str) -> Path:
    out = d / f"{name}.fa"
    script = d / f"{name}.ray"
    script.write_text(f'assemble "{r1}", "{r2}" into paths/asm {options}\ncount paths\n'
                      f'dump paths/asm* to "{out}"\ndump paths/asm* to "{d / name}.gfa"\n')
    return_value = run([str(BIN / "mpiexec"), "-n", "2", str(BIN / "rayscript"), "run", str(script)], d,
                       d / f"{name}.log")
    TIMES[name] = return_value
    return out


def minia(d: Path, r1: Path, r2: Path) -> Path:
    listing = d / "reads.txt"
    listing.write_text(f"{r1}\n{r2}\n")
    TIMES["minia"] = run(["minia", "-in", str(listing), "-kmer-size", "31", "-abundance-min", "auto",
                          "-nb-cores", "2", "-out", str(d / "minia")], d, d / "minia.log")
    return d / "minia.contigs.fa"


def megahit(d: Path, r1: Path, r2: Path) -> Path:
    out = d / "megahit"
    shutil.rmtree(out, ignore_errors=True)
    TIMES["megahit"] = run(["megahit", "-1", str(r1), "-2", str(r2), "-t", "2", "-o", str(out)], d,
                           d / "megahit.log")
    return out / "final.contigs.fa"


def abyss(d: Path, r1: Path, r2: Path) -> Path:
    out = d / "abyss"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    TIMES["abyss"] = run(["abyss-pe", "name=ecoli", "k=63", "j=2", "B=2G", f"in={r1} {r2}"], out, d / "abyss.log")
    return out / "ecoli-scaffolds.fa"


TIMES: dict[str, tuple[float, int]] = {}
TOOLS = {
    "ray31": ("rayscript k=31, 2 ranks", lambda d, a, b: rayscript(d, a, b, "ray31", "k=31 pairs=false")),
    "rayauto": ("rayscript k=auto (21 ... 105), 2 ranks",
                lambda d, a, b: rayscript(d, a, b, "rayauto", "k=auto pairs=false")),
    "raypairs": ("rayscript k=auto, pairs (scaffolds), 2 ranks",
                 lambda d, a, b: rayscript(d, a, b, "raypairs", "k=auto pairs=true")),
    "minia": ("Minia 3, k=31, 2 threads", minia),
    "megahit": ("MEGAHIT (k 21..141), 2 threads", megahit),
    "abyss": ("ABySS k=63 with pairs (scaffolds), 2 jobs", abyss),
}
NEEDS = {"minia": "minia", "megahit": "megahit", "abyss": "abyss-pe"}


def quast(d: Path, assemblies: dict[str, Path], ref: Path) -> dict[str, dict[str, str]]:
    out = d / "quast"
    names = list(assemblies)
    subprocess.run([str(BIN / "quast.py"), "-r", str(ref), "-o", str(out), "--min-contig", "500", "-t", "2",
                    "-l", ",".join(names), *map(str, assemblies.values())], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(out / "report.tsv") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh]
    return {name: {row[0]: row[1 + i] for row in rows} for i, name in enumerate(names)}


def main() -> None:
    d = Path(sys.argv[1]).resolve()
    wanted = [] if sys.argv[2:] == ["report"] else sys.argv[2:] or list(TOOLS)
    ref, r1, r2 = make_reads(d)
    # the runs of earlier calls on DIR stay in the table (DIR/runs.json): tools can be run one at a time
    runs_file = d / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    for tool in wanted:
        label, make = TOOLS[tool]
        if tool in NEEDS and shutil.which(NEEDS[tool]) is None:
            print(f"{label}: not installed (Debian package {NEEDS[tool]})", flush=True)
            continue
        out = make(d, r1, r2)
        seconds, peak = TIMES[tool]
        runs[tool] = {"fasta": str(out), "seconds": seconds, "peak": peak}
        runs_file.write_text(json.dumps(runs, indent=1))
        print(f"{label}: {seconds:.0f} s, peak {peak / 2**30:.2f} GiB", flush=True)
    order = [t for t in TOOLS if t in runs]
    for t in order:
        TIMES[t] = (runs[t]["seconds"], runs[t]["peak"])
    report = quast(d, {t: Path(runs[t]["fasta"]) for t in order}, ref)
    print("\n| assembler (2 cores) | contigs >= 500 | N50 | NGA50 | misassembled contigs | genome fraction | wall | "
          "peak memory (all processes) |")
    print("|---|---|---|---|---|---|---|---|")
    for tool, q in report.items():
        seconds, peak = TIMES[tool]
        nga50 = q.get("NGA50", "-")
        print(f"| {TOOLS[tool][0]} | {int(q['# contigs']):,} | {int(q['N50']):,} | "
              f"{f'{int(nga50):,}' if nga50.isdigit() else nga50} | {q['# misassembled contigs']} | "
              f"{float(q['Genome fraction (%)']):.1f}% | {seconds:.0f} s | {peak / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
