"""Several hosts over TCP (network namespaces, see hosts.py): a whole job across three hosts, and
failures of a host or a rank that end the job everywhere with one located error."""

import gzip
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import need, need_tool, rayscript_cmd, write_fastq
from hosts import make_hosts, wait
from rayscript import Cluster
from rayscript.genomics.checkpoint import MANIFEST
from support import procs

LAMBDA_READS = "/usr/share/doc/bowtie2/examples/reads/reads_1.fq.gz"
SLOTS = {0: 2, 1: 2, 2: 1}  # host index -> ranks: ranks 0-1 on the first host, 2-3 on the second, 4 on the third

# one set of hosts (network namespaces) for the module, on one worker of the suite's
pytestmark = [pytest.mark.mpi, pytest.mark.multihost, pytest.mark.xdist_group("multihost")]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    h = make_hosts(3, tmp_path_factory.mktemp("hosts"))
    yield h
    h.down()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not any(name in left for name in h.names), left
    assert h.bridge not in links and not any(v in links for v in h.veths), links


def slots(hosts):
    return {hosts.names[i]: n for i, n in SLOTS.items()}


def no_processes_left(hosts, but=None, within=30.0):
    """Every process of the job has ended on every host (but one that nothing can reach) within
    ``within`` seconds."""
    names = [n for n in hosts.names if n != but]
    deadline = time.monotonic() + within
    while any(hosts.pids(n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(hosts.pids(n) for n in names)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    need(Path(LAMBDA_READS).exists(), "the lambda phage reads", "bowtie2-examples")
    d = tmp_path_factory.mktemp("mh")
    rng = random.Random(3)
    genome = "".join(rng.choice("ACGT") for _ in range(3000))
    write_fastq(d / "genome.fq", [genome[i:i + 60] for i in range(0, 2941, 20)])
    (d / "lambda.fq").write_bytes(gzip.decompress(Path(LAMBDA_READS).read_bytes()))
    return d, genome


class TcpWatch:
    """Records the TCP connections between host addresses while a job runs."""

    def __init__(self, hosts):
        self.hosts, self.seen, self.stop = hosts, set(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.seen |= self.hosts.tcp_links()
            time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_a_job_across_three_hosts_over_tcp(hosts, data, tmp_path):
    jf = need_tool("jellyfish")
    d, genome = data
    start = genome[:21]
    script = tmp_path / "job.ray"
    script.write_text(f"""set timeout = 20s
load "{d}/lambda.fq", "{d}/genome.fq" into kmers k=21
dump kmers to "{tmp_path}/loaded.tsv"
walk kmers/{start} both into paths/g
locate paths/g
move kmers/* from 1 to 4
count kmers
save to "{tmp_path}/ck"
for r in 0..4 {{ delete kmers/* from $r }}
restore from "{tmp_path}/ck"
dump kmers to "{tmp_path}/restored.tsv"
ranks
""")
    with TcpWatch(hosts) as watch:
        proc = hosts.start(slots(hosts), *rayscript_cmd(), "run", str(script))
        status, out, err, _ = wait(proc, 240)
    assert status == 0, err
    assert "Traceback" not in err
    # the startup line names the hosts
    assert "5 ranks on 3 hosts" in err
    # walk: the genome, whole, hop by hop over the hosts
    assert "length 3,000" in out
    # ranks names every rank's host
    for rank, host in enumerate([hosts.names[0]] * 2 + [hosts.names[1]] * 2 + [hosts.names[2]]):
        assert re.search(rf"^\s*{rank}\s+{host}\s", out, re.M), out
    assert re.search(r"paths/g is on rank \d on (" + "|".join(hosts.names) + r") \(owner\)", out), out
    # the ranks talked over TCP between the hosts' addresses (not shared memory)
    pairs = {frozenset(p) for p in watch.seen}
    assert len(pairs) >= 2, watch.seen
    # counts exact against Jellyfish, before and after move, save, delete and restore
    subprocess.run([jf, "count", "-m", "21", "-C", "-s", "10M", "-o", str(tmp_path / "jf.jf"),
                    str(d / "lambda.fq"), str(d / "genome.fq")], check=True)
    jdump = subprocess.run([jf, "dump", "-c", "-t", str(tmp_path / "jf.jf")], check=True, capture_output=True,
                           text=True).stdout
    expected = sorted(jdump.splitlines())
    assert sorted((tmp_path / "loaded.tsv").read_text().splitlines()) == expected
    assert sorted((tmp_path / "restored.tsv").read_text().splitlines()) == expected
    assert no_processes_left(hosts)


def test_an_embedded_cluster_across_hosts(hosts, tmp_path):
    prog = tmp_path / "embed.py"
    # rank 0 pauses between statements for longer than the lease (2 x 1 s + 5 s): its heartbeat
    # goes on meanwhile, so the other ranks do not take the pause for a lost host
    prog.write_text("""import time
from rayscript import Cluster
with Cluster() as c:
    if c is not None:
        c.run('set timeout = 1s')
        c.run('put kmers/ACGTACGTACGTACGTACGTA count=5 on 4')
        time.sleep(9)
        rows = c.run('ranks')[0].data
        print('hosts', sorted({r['host'] for r in rows}), c.run('count kmers')[0].text)
""")
    proc = hosts.start(slots(hosts), *rayscript_cmd(), "exec", "python", str(prog))
    status, out, err, _ = wait(proc, 60)
    assert status == 0, err
    assert f"hosts {sorted(hosts.names)}" in out
    assert "1 distinct k-mer, 5 in total" in out


TIMEOUT = 5  # seconds: the jobs' order timeout; a rank's lease is twice that and 5 s
RUNNING = "running.tsv"


def _orders_forever(tmp_path, data, order="ranks"):
    """A script that loads, then gives ``order`` over and over; its dump to RUNNING, whole once every
    rank has written its part, says that the ranks are serving and the orders are about to begin."""
    d, _genome = data
    script = tmp_path / "loop.ray"
    script.write_text(f"""set timeout = {TIMEOUT}s
load "{d}/genome.fq" into kmers k=21
put kmers/1 on 1
dump kmers to "{tmp_path / RUNNING}"
for i in 1..100000000 {{ {order} }}
""")
    return script


def _fails_fast(hosts, proc, victim_ranks, victim_host, timeout=TIMEOUT, spare_victim=False):
    """The job ends (a generous wait: how soon is for benchmarks), with one located error naming a
    rank of the victim host and the host, no traceback and no process left on the other hosts."""
    status, _out, err, _ = wait(proc, timeout + 60)
    assert status is not None, f"the job did not end: {err[-2000:]}"
    assert status != 0
    assert "Traceback" not in err, err
    assert re.search(rf"rank [{''.join(map(str, victim_ranks))}] on {victim_host}", err), err
    assert no_processes_left(hosts, but=victim_host), err
    if not spare_victim:
        hosts.kill_processes(victim_host)
    return err


def _start_and_wait_until_running(hosts, script, launcher=()):
    """Start the job of ``_orders_forever`` and return it once it gives its orders."""
    proc = hosts.start(slots(hosts), *rayscript_cmd(), "run", str(script), launcher=launcher)
    running = script.parent / RUNNING
    deadline = time.monotonic() + 120
    while not running.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not running.exists() or proc.poll() is not None:
        status, _out, err, _ = wait(proc, 0)
        pytest.fail(f"the job did not start giving orders (status {status}): {err[-2000:]}")
    return proc


def test_a_host_that_drops_off_the_network_ends_the_job(hosts, data, tmp_path):
    # copies from rank 1 (first host) to rank 4 (the third): the order goes to a healthy rank, the
    # item to the host that drops off, and the error must name that one (found by pinging every rank)
    proc = _start_and_wait_until_running(hosts, _orders_forever(tmp_path, data, "copy kmers/1 from 1 to 4 replace"))
    victim = hosts.names[2]
    hosts.cut(victim)
    cut = time.monotonic()
    try:
        err = _fails_fast(hosts, proc, [4], victim, spare_victim=True)
        assert err.count("rayscript:") <= 2, err
        # nothing reaches the cut-off host, so its rank ends by itself once rank 0's heartbeat has
        # been missing for the lease (2 x the timeout + 5 s), its keeper and MPI proxy with it
        lease = 2 * TIMEOUT + 5
        ended = no_processes_left(hosts, within=cut + lease + 45 - time.monotonic())
        assert ended, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in hosts.pids(victim)]
        assert time.monotonic() - cut > lease - 2  # not before the lease ran out
    finally:
        subprocess.run(["ip", "link", "set", hosts.veths[2], "up"], check=False)
        hosts.kill_processes(victim)


def test_a_rank_that_stops_answering_ends_the_job(hosts, data, tmp_path):
    proc = _start_and_wait_until_running(hosts, _orders_forever(tmp_path, data))
    victim = hosts.names[1]
    hosts.stop_ranks(victim)
    _fails_fast(hosts, proc, [2, 3], victim)


def test_a_host_whose_processes_are_killed_ends_the_job(hosts, data, tmp_path):
    """Hydra ends the job itself as soon as a host's proxy dies (its own message, exit 255): fast,
    and nothing is left behind."""
    proc = _start_and_wait_until_running(hosts, _orders_forever(tmp_path, data))
    hosts.kill_processes(hosts.names[2], signal.SIGKILL)
    status, _out, err, _ = wait(proc, 60)
    assert status not in (None, 0), err
    assert "Traceback" not in err, err
    assert no_processes_left(hosts)


def test_a_rank_killed_outright_ends_the_job_on_every_host_without_the_launchers_help(hosts, data, tmp_path):
    """As under srun, which kills nothing: hydra told not to clean up after a failed process. The
    killed rank's keeper names it and tells the keepers on every host (UDP), which end their ranks."""
    proc = _start_and_wait_until_running(hosts, _orders_forever(tmp_path, data), launcher=("-disable-auto-cleanup",))
    victim = hosts.names[2]  # rank 4, alone on the third host
    ranks = [pid for pid in hosts.pids(victim) if procs.comm(pid) != "rayscript-keep"
             and any(procs.comm(k) == "rayscript-keep" and pid in procs.children(k) for k in hosts.pids(victim))]
    assert len(ranks) == 1, ranks
    os.kill(ranks[0], signal.SIGKILL)
    status, _out, err, seconds = wait(proc, 40)
    assert status is not None, f"the job did not end: {err[-2000:]}"
    assert seconds < 20, (seconds, err)
    assert f"rayscript: rank 4 (pid {ranks[0]} on {victim}) was killed (SIGKILL" in err, err
    assert "Traceback" not in err, err
    assert no_processes_left(hosts, within=10), err


def test_a_rank_that_stops_answering_during_a_collective_ends_the_job(hosts, data, tmp_path):
    d, _ = data
    big = tmp_path / "big.fq"
    with open(big, "wb") as out:
        for _ in range(40):
            out.write((d / "lambda.fq").read_bytes())
    script = tmp_path / "coll.ray"
    script.write_text(f'set timeout = {TIMEOUT}s\nload "{big}" into kmers k=21\n')
    proc = hosts.start(slots(hosts), *rayscript_cmd(), "run", str(script))
    victim = hosts.names[1]
    # stopped once both ranks there are reading the file (the load has begun: its collective steps
    # follow); a fixed pause stopped them before MPI had started when the machine was busy, and
    # then nothing could time out
    reading = set()
    deadline = time.monotonic() + 120
    while len(reading) < 2 and proc.poll() is None and time.monotonic() < deadline:
        reading |= {pid for pid in hosts.pids(victim) if str(big) in procs.open_files(pid)}
        time.sleep(0.02)
    assert len(reading) == 2 and proc.poll() is None, proc.communicate()[1]
    hosts.stop_ranks(victim)
    # the others give up waiting after the timeout; the silent ranks are named one timeout later
    _fails_fast(hosts, proc, [2, 3], victim)


def _run_where_only_the_first_host_sees(hosts, tmp_path, text, prepare=None):
    """Run ``text`` (with {private} filled in) while the directory ``private`` exists as it is only on
    the first host (the others see an empty file system there); the job must fail with one error
    naming a rank of another host.  Returns (private, stdout, stderr)."""
    private = tmp_path / "private"
    private.mkdir()
    if prepare:
        prepare(private)
    script = tmp_path / "job.ray"
    script.write_text(text.format(private=private))
    proc = hosts.start(slots(hosts), *rayscript_cmd(), "run", str(script),
                       env={"RS_PRIVATE_DIR": str(private), "RS_PRIVATE_HOST": hosts.names[0]})
    status, out, err, _ = wait(proc, 60)
    assert status == 1, err
    assert "Traceback" not in err
    assert re.search(rf"rank [234] on ({hosts.names[1]}|{hosts.names[2]})", err), err
    assert no_processes_left(hosts)
    return private, out, err


def test_a_file_only_one_host_sees_is_named_with_the_rank_and_host_that_cannot(hosts, data, tmp_path):
    d, _ = data
    private, out, err = _run_where_only_the_first_host_sees(
        hosts, tmp_path, 'load "{private}/reads.fq" into kmers k=21\ncount kmers\n',
        prepare=lambda p: shutil.copy(d / "genome.fq", p / "reads.fq"))
    assert f"{private}/reads.fq" in err
    assert "distinct" not in out  # nothing was loaded


def test_a_dump_where_only_one_host_can_write_names_the_rank_and_host_and_leaves_nothing(hosts, data, tmp_path):
    d, _ = data
    private, _out, err = _run_where_only_the_first_host_sees(
        hosts, tmp_path, f'load "{d}/genome.fq" into kmers k=21\ndump kmers to "{{private}}/out.tsv"\n')
    assert re.search(rf"rank [234] on ({hosts.names[1]}|{hosts.names[2]}): cannot write {private}/out.tsv", err), err
    assert list(private.iterdir()) == []  # neither the dump nor its temporary file


def test_a_save_where_only_one_host_can_write_names_the_rank_and_host(hosts, data, tmp_path):
    d, _ = data
    private, _out, err = _run_where_only_the_first_host_sees(
        hosts, tmp_path, f'load "{d}/genome.fq" into kmers k=21\nsave to "{{private}}/ck"\n')
    assert re.search(rf"rank [234] on ({hosts.names[1]}|{hosts.names[2]}): .*{private}/ck", err), err
    assert not (private / "ck" / MANIFEST).exists()  # no checkpoint that restore would take


def test_a_restore_from_where_only_one_host_sees_names_the_rank_and_host(hosts, data, tmp_path):
    d, _ = data

    def save_there(private):  # a checkpoint of as many ranks as the job has, saved in-process
        with Cluster.local(sum(SLOTS.values())) as c:
            c.run(f'load "{d}/genome.fq" into kmers k=21\nsave to "{private}/ck"')

    private, out, err = _run_where_only_the_first_host_sees(
        hosts, tmp_path, 'count kmers\nrestore from "{private}/ck"\ncount kmers\n', prepare=save_there)
    assert re.search(rf"rank [234] on ({hosts.names[1]}|{hosts.names[2]}): {private}/ck/gen-\d+/rank-000[234]\.shard: "
                     "missing", err), err
    assert out.count(" distinct k-mers,") == 1  # the first count ran; the job ended at the restore
