import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def pytest_configure(config):
    """The suite keeps the built parser (and anything else rayscript caches) in a directory of its
    own, for itself and every process it starts, not in the user's ~/.cache."""
    cache = Path(config.rootpath) / ".pytest_cache" / "xdg-cache"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(cache)
    # Compiled bytecode too, even where PYTHONDONTWRITEBYTECODE is set: every rank of every job the
    # suite starts would otherwise compile rayscript's modules anew (about a quarter of a small
    # job's CPU time).  Kept under .pytest_cache, so nothing is written beside the sources.
    pycache = Path(config.rootpath) / ".pytest_cache" / "pycache"
    pycache.mkdir(parents=True, exist_ok=True)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(pycache)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(pycache)
    # Under Open MPI's launcher (the suite's second pass, or a venv built against it) the jobs run
    # as whoever runs the suite, root included, and with more ranks than cores; MPICH ignores these.
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")


# What every process the suite starts would otherwise make for itself while the caches above are
# empty (a fresh clone): the bytecode of rayscript and of the libraries it imports, the built parser,
# matplotlib's font list.  Made once, by one process, before any test runs (a dozen processes at
# once each compiled the same modules, about 1.5 s of CPU each); inside the session, so its time is
# part of the suite's.
WARM = """
import mpi4py
mpi4py.rc.initialize = False  # the module only: no MPI started here
from mpi4py import MPI
import rayscript.cli, rayscript.cluster
from rayscript.statements import parse
parse("ranks", "<warm>")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.figure, matplotlib.font_manager
    matplotlib.font_manager.fontManager
    import scipy.cluster.hierarchy, scipy.optimize, scipy.spatial.distance, scipy.special
except ImportError:
    pass  # without the plot extra: its tests say so
"""


@pytest.hookimpl(trylast=True)  # after the session's clock started
def pytest_sessionstart(session):
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller (or a run without workers)
        warm_caches()


def warm_caches():
    subprocess.run([sys.executable, "-c", WARM], cwd=ROOT, timeout=300, capture_output=True)


def pytest_collection_modifyitems(config, items):
    """The tests that start jobs of several processes run first, the ones across several hosts and
    against reference tools before the other MPI jobs, and the quick in-process tests last: on the
    workers the long ones then share out between them, and the short ones fill in at the end
    (whoever finished a long job last would otherwise still be at it when the others are done).
    Within each kind, the order is the files' own."""
    def kind(item):
        marks = {m.name for m in item.iter_markers()}
        return 0 if "multihost" in marks else 1 if "external" in marks else 2 if "mpi" in marks else 3

    items.sort(key=kind)
    if getattr(config.option, "loadgroup", False):  # a worker of `-n N --dist loadgroup` (set by xdist there only)
        keep_xdist_groups(items)


def keep_xdist_groups(items):
    """Each test marked ``xdist_group(NAME)`` gets its id ending in ``@NAME``, which is how the
    loadgroup scheduler sends a group to one worker (it sees only the ids).  pytest-xdist 3.8 writes
    ``Item._nodeid`` for that, which pytest 9.2 no longer reads (an id is ``Item._id``, a NodeId;
    pytest-xdist issue 1386): every group was spread over the workers, each of them making the
    group's module fixtures (Slurm, the several hosts, the kmc and cascade references) again."""
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names or item.nodeid.rfind("@") > item.nodeid.rfind("]"):
            continue  # no group, or the id says it already (a pytest-xdist that writes what pytest reads)
        node_id = getattr(item, "_id", None)
        if node_id is not None and hasattr(type(node_id), "parse"):
            item._id = type(node_id).parse(f"{item.nodeid}@{'_'.join(names)}")


def mpiexec_path():
    """The launcher the MPI tests use: RAYSCRIPT_TEST_MPIEXEC when set (scripts/test's Open MPI pass
    names Open MPI's), else the one in the running Python's bin (the mpich wheel's in .venv), else
    the first mpiexec on PATH."""
    chosen = os.environ.get("RAYSCRIPT_TEST_MPIEXEC")
    if chosen:
        return chosen
    exe = BIN / "mpiexec"
    return str(exe) if exe.exists() else shutil.which("mpiexec")


_flavour: list[str] = []


def mpi_flavour():
    """'Open MPI' or 'MPICH' (or '' when unknown): whose launcher the MPI tests run under."""
    if not _flavour:
        exe = mpiexec_path()
        text = ""
        if exe:
            try:
                proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
                text = proc.stdout + proc.stderr
            except (OSError, subprocess.TimeoutExpired):
                pass
        _flavour.append("Open MPI" if ("Open MPI" in text or "OpenRTE" in text) else
                        "MPICH" if ("HYDRA" in text or "MPICH" in text) else "")
    return _flavour[0]


def only_under_mpich(why):
    """Skip the calling test under Open MPI's launcher, saying ``why`` (docs/cluster.md lists these)."""
    if mpi_flavour() == "Open MPI":
        pytest.skip(f"not under Open MPI: {why}")


def can_install_tools():
    """scripts/test installs the reference tools (Debian packages) when it runs as root with apt-get."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def need(present, what, package):
    """A reference tool the test compares against: a test without it fails where scripts/test
    would have installed it (so a broken install step shows), and is skipped, saying why, where
    it cannot (not root, not Debian)."""
    if present:
        return
    message = f"{what} is needed (scripts/test installs {package} with apt-get when run as root)"
    if can_install_tools():
        pytest.fail(message)
    pytest.skip(message)


def need_tool(name, package=None):
    """The path of the command ``name``, or the test ends as ``need`` says."""
    path = shutil.which(name)
    need(path is not None, name, package or name)
    return path


def run_mpi(n, *args, input=None, timeout=60, env=None):
    """Run ``mpiexec -n N ARGS`` and return the CompletedProcess.  Its stderr is what the job
    wrote: the launcher's own notices (Open MPI's boxed ones when a rank fails) are left out, and
    kept whole in ``launcher_stderr``."""
    exe = mpiexec_path()
    if exe is None:
        pytest.fail("mpiexec not found: scripts/setup installs the mpich wheel")
    full_env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    full_env.update(env or {})
    proc = subprocess.run([exe, "-n", str(n), *args], input=input, capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)
    proc.launcher_stderr = proc.stderr
    proc.stderr = without_launcher_notices(proc.stderr)
    return proc


RULE = "-" * 74  # Open MPI's launcher puts its notices between two such lines


def without_launcher_notices(text):
    """``text`` without the notices Open MPI's launcher boxes between rules ("Primary job
    terminated normally, but 1 process returned a non-zero exit code...")."""
    if RULE not in text:
        return text
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == RULE:
            inside = not inside
        elif not inside:
            out.append(line)
    return "".join(out)


def killed_status(sig):
    """The launcher's exit status for a job whose rank died of signal ``sig``: MPICH's hydra exits
    with the signal's number, Open MPI's mpiexec with 128 and the number (as a shell does)."""
    return 128 + sig if mpi_flavour() == "Open MPI" else sig


def needs_the_mpich_wheel():
    """Skip a test about the mpich wheel (its launcher-mismatch message) where mpi4py runs on
    another MPI (scripts/test's Open MPI pass)."""
    from importlib import metadata

    try:
        metadata.version("mpich")
    except metadata.PackageNotFoundError:
        pytest.skip("about the mpich wheel, and mpi4py here runs on another MPI")


def rayscript_cmd():
    return [str(BIN / "rayscript")] if (BIN / "rayscript").exists() else [sys.executable, "-m", "rayscript"]


def write_fastq(path, seqs):
    """A FASTQ file of the given sequences (reads r0, r1, ...; qualities all 'I')."""
    with open(path, "w") as fh:
        for i, s in enumerate(seqs):
            fh.write(f"@r{i}\n{s}\n+\n{'I' * len(s)}\n")


@pytest.fixture
def another_mpi_job():
    """Another rayscript job on this machine, as other users' and other test runs' jobs are (two
    ranks under their keepers, idle): a test must tell its own processes from these.  Yields the
    identities (see support.procs) of the job's processes; ended when the test is done."""
    from support import procs

    exe = mpiexec_path()
    if exe is None:
        pytest.fail("mpiexec not found: scripts/setup installs the mpich wheel")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    job = subprocess.Popen([exe, "-n", "2", *rayscript_cmd(), "exec", sys.executable, "-c",
                            "import time; time.sleep(600)"], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        procs.wait_for_ranks(job.pid, 2)
        yield [procs.identity(p) for p in [job.pid, *procs.descendants(job.pid)]]
    finally:
        below = procs.descendants(job.pid)
        job.terminate()  # the launcher ends its ranks
        try:
            job.wait(timeout=10)
        except subprocess.TimeoutExpired:
            job.kill()
            job.wait()
        for pid in below:  # anything the launcher left behind
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


@pytest.fixture
def sigint():
    """Ctrl-C as an interactive user's terminal sends it: SIGINT raises KeyboardInterrupt (a test run
    started in the background by a shell without job control inherits SIGINT ignored)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def local4():
    from rayscript import Cluster

    with Cluster.local(4) as c:
        yield c
