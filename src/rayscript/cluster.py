"""The embedding API: ``from rayscript import Cluster``.

Under mpiexec::

    with Cluster() as c:          # rank 0 gets the client; the other ranks serve here
        if c is not None:         # ... and get None once rank 0 leaves the block
            print(c.run("copy kmers/19123890 from 2 to 5"))

In one process (notebooks, tests)::

    with Cluster.local(ranks=4) as c:
        c.run("put kmers/7 on 2")
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import logs
from .errors import (
    Cancelled,
    DriverLost,
    NotStopped,
    RayScriptError,
    RuntimeFault,
    ScriptError,
    ScriptErrors,
)
from .genomics.assembly import AssemblyService
from .genomics.cascades import CascadeService
from .genomics.checkpoint import CheckpointService
from .genomics.graph import GraphService
from .genomics.kmers import KmerService
from .genomics.paths import PathService
from .genomics.sets import SetService
from .interpreter import Interpreter, Scope
from .items import Carriageable, unpack_item
from .language import syntax
from .language.cascade import session_scope
from .language.keys import make_key
from .progress import ProgressDisplay
from .protocol.core import Fatal
from .results import Result
from .runtime.bulk import BulkService
from .runtime.handlers import StoreService
from .runtime.node import Node
from .runtime.shard import Shard

if TYPE_CHECKING:
    from .runtime.collective import Collective
    from .runtime.messenger import Messenger

# What every rank serves: one service per family of orders.
STOP_SECONDS = 5.0  # how long closing waits for every rank to stop
UNFINISHED_SECONDS = 10.0  # how long a rank told to stop waits for every rank to stop (rank 0 gives up sooner)
MAX_LOCAL_RANKS = 1024  # Cluster.local: each rank is a thread (more slow every statement down steeply)

SERVICES = (StoreService, BulkService, KmerService, GraphService, PathService, CheckpointService, AssemblyService,
            SetService, CascadeService)


def _build_node(messenger: Messenger, collective: Collective | None = None, progress: ProgressDisplay | None = None,
                interrupt_check: Callable[[], bool] | None = None) -> tuple[Node, Interpreter]:
    node = Node(messenger, Shard(), collective, progress, interrupt_check)
    for service in SERVICES:
        service(node)
    return node, Interpreter(node)


class Cluster:
    """A handle on every rank of the store.  Only rank 0 (the driver) gets one to use."""

    def __init__(self, comm: Any = None, *, progress: ProgressDisplay | None = None,
                 interrupt_check: Callable[[], bool] | None = None,
                 _messenger: Messenger | None = None, _threads: list[threading.Thread] | None = None,
                 _collective: Collective | None = None) -> None:
        """Under mpiexec: every rank of ``comm`` (default COMM_WORLD).  ``progress`` is called on
        rank 0 with (done, total) during long statements; ``interrupt_check`` returns True when
        the user asked to cancel (for a shell that reads Ctrl-C as a key)."""
        try:
            logs.configure()  # RAYSCRIPT_LOG (the command line's --log-level sets it)
        except ValueError as exc:
            raise RayScriptError(f"{logs.ENV}: {exc}") from None
        if _messenger is None:
            from .runtime.keeper import launcher_mismatch, under_mpiexec

            if comm is None and not under_mpiexec():
                raise RayScriptError("not started under mpiexec: use Cluster.local(ranks=N) in one "
                                     "process, or start the program with mpiexec -n N")
            mismatch = launcher_mismatch() if comm is None else None
            if mismatch:
                raise RayScriptError(mismatch)
            from .runtime.collective import MPICollective
            from .runtime.keeper import link
            from .runtime.mpi import MPIMessenger

            mpi = MPIMessenger(comm)
            link(mpi.comm)  # this rank's keeper learns the others': a rank that dies ends the job
            _messenger = mpi
            if _collective is None:
                _collective = MPICollective(mpi.comm)
        self.node, self.interpreter = _build_node(_messenger, _collective, progress, interrupt_check)
        self.scope = Scope()
        self._threads = _threads or []
        self._closed = False
        self.local_nodes: list[Node] = [self.node]
        if self.backend == "mpi":
            # at exit, rank 0 closes a cluster the program did not close (else the other ranks serve
            # forever), and another rank that never served says so to rank 0 (which would otherwise
            # wait for its answers until the timeout, and blame the network)
            _OPEN.add(self)

    @classmethod
    def local(cls, ranks: int = 4, *, progress: ProgressDisplay | None = None) -> Cluster:
        """All ranks in this process, as threads (rank 0 is the caller's thread)."""
        from .runtime.collective import LocalBoard, LocalCollective
        from .runtime.local import LocalNetwork

        if isinstance(ranks, bool) or not isinstance(ranks, int):
            raise TypeError(f"Cluster.local(ranks=N) takes a whole number of ranks, not {ranks!r}")
        if ranks < 1:
            raise RayScriptError(f"a cluster needs at least one rank, not {ranks}")
        if ranks > MAX_LOCAL_RANKS:
            raise RayScriptError(f"{ranks:,} ranks are too many for one process (at most {MAX_LOCAL_RANKS:,} "
                                 "threads): start that many under mpiexec -n N")
        net = LocalNetwork(ranks)
        board = LocalBoard(ranks)
        threads, nodes = [], []
        for r in range(1, ranks):
            node, _ = _build_node(net.messenger(r), LocalCollective(board, r))
            nodes.append(node)
            t = threading.Thread(target=node.serve, name=f"rayscript-rank-{r}", daemon=True)
            t.start()
            threads.append(t)
        cluster = cls(_messenger=net.messenger(0), _threads=threads, _collective=LocalCollective(board, 0),
                      progress=progress)
        cluster.local_nodes = [cluster.node, *nodes]  # for inspection in tests and notebooks
        return cluster

    # --- properties ---------------------------------------------------------
    @property
    def rank(self) -> int:
        return self.node.rank

    @property
    def size(self) -> int:
        return self.node.size

    @property
    def backend(self) -> str:
        return self.node.messenger.backend

    # --- roles ----------------------------------------------------------------
    def __enter__(self) -> Cluster | None:
        if self.rank == 0:
            return self
        self.serve()
        return None

    def __exit__(self, *exc: object) -> None:
        if self.rank == 0:
            self.close()

    def serve(self) -> None:
        """Non-driver ranks: serve messages until rank 0 closes the cluster.  A rank of a job
        across several hosts that stops hearing rank 0 (see Node.lease), or that reported its own
        failure and was not stopped (see Node.serve), says so and ends at once: MPI cannot be
        finished without rank 0."""
        try:
            self.node.serve()
        except (DriverLost, NotStopped) as lost:
            sys.stderr.write(f"rayscript: {lost}\n")
            sys.stderr.flush()
            os._exit(1)
        if not self.node.messenger.finish(UNFINISHED_SECONDS):
            # rank 0 stopped every rank, but not all of them finish: one is gone (rank 0 gives up
            # after STOP_SECONDS and ends the job; if that does not reach this rank, it ends here)
            sys.stderr.write(f"rayscript: rank {self.rank} on {self.node.messenger.host()}: not every rank stopped "
                             f"within {UNFINISHED_SECONDS:g} s (a rank is gone); rank {self.rank} ends\n")
            sys.stderr.flush()
            os._exit(1)
        self._closed = True
        _OPEN.discard(self)

    def _leave_unserved(self) -> None:
        """A rank other than 0 whose program ends without having served: rank 0 is told why (so its
        statements fail at once, naming this rank), then this rank waits for the shutdown."""
        failed = getattr(sys, "last_value", None)  # set when the program died of an exception
        why = f"its program failed ({type(failed).__name__}: {failed})" if failed is not None else "its program ended"
        self._closed = True
        self.node.send(Fatal(recipient=0, rank=self.rank, reason=f"{why} without serving (ranks other than 0 call "
                                                                 "c.serve(), or use 'with Cluster() as c')"))
        self.node.messenger.finish(self.node.lease() or STOP_SECONDS * 12)

    def close(self) -> None:
        """Rank 0: stop every rank (collective, clean).  A rank or host that stopped answering
        cannot take part: after STOP_SECONDS the job is ended on every rank (MPI abort), with
        one line saying so, rather than left hanging."""
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        self.node.stop_all()
        # a rank that did not answer an order will not stop either: wait for the others briefly
        wait = 1.0 if self.node.unresponsive else STOP_SECONDS
        if not self.node.messenger.finish(wait):
            sys.stderr.write(f"rayscript: not every rank stopped within {wait:g} s (a rank or its host stopped "
                             "answering): ending the job on every rank\n")
            sys.stderr.flush()
            self.node.messenger.abort(1, quiet=True)
        for t in self._threads:
            t.join(timeout=10)

    @property
    def hosts(self) -> list[str]:
        """The host of every rank, by rank."""
        return list(self.node.hosts)

    # --- commands ---------------------------------------------------------------
    def parse(self, text: str, source: str = "<string>") -> list[syntax.Statement]:
        """Parse and check ``text`` against this cluster (ranks, variables); nothing is sent."""
        if not isinstance(text, str):
            raise TypeError(f"a script is text (str), not {type(text).__name__}")
        if text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark from an editor
        # the statements and their parser are imported here, by the commander: a rank that only
        # serves never needs them (one that runs a delegated block gets them with its statements)
        from .statements import check_all

        interp = self.interpreter
        names, definitions = session_scope(interp.cascades, interp.fields, interp.restored)
        statements, errors = check_all(text, source, self.size, set(self.scope.env) | names, definitions)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ScriptErrors(errors)
        return statements

    def stream(self, text: str, source: str = "<string>") -> Iterator[list[Result]]:
        """Run script text, yielding the results of each top-level statement as it completes."""
        self._require_driver()
        statements = self.parse(text, source)
        yield from self.execute(statements, _text(text))

    def run(self, text: str, source: str = "<string>") -> list[Result]:
        """Run script text; return the results of every statement (structured, printable).
        On an error, the exception's ``results`` holds those of the statements that ran before."""
        out: list[Result] = []
        try:
            for results in self.stream(text, source):
                out.extend(results)
        except RayScriptError as err:
            err.results = out
            raise
        return out

    def execute(self, statements: list[syntax.Statement], text: str | None = None) -> Iterator[list[Result]]:
        self._require_driver()
        self.scope.text = text
        for st in statements:
            failed: RayScriptError | None = None
            try:
                with self.node.interrupts.at_safe_points():
                    results = self.node.run(self.interpreter.execute(st, self.scope))
            except KeyboardInterrupt:
                late = self.node.cancel_everywhere()
                self.interpreter.undo_cancelled()
                note = (f"; ranks {', '.join(map(str, late))} had not answered yet" if late
                        else "; every order already sent was completed")
                raise Cancelled(f"cancelled{note}, later orders were not sent") from None
            except RayScriptError as err:
                failed = err
            finally:
                if self.node.progress is not None:
                    self.node.progress.finish()  # a bar gives way to what follows, result or error
            if failed is not None:
                # what the failed statement's loop or block did before it failed is reported first
                done, failed.done = failed.done, []
                if done:
                    yield done
                raise failed
            yield results

    def get(self, key: str, rank: int | None = None) -> Carriageable:
        """The item stored under ``key`` on ``rank`` (default: its owner's copy, or, when the owner
        does not hold it, that of the first rank that does)."""
        self._require_driver()
        if not isinstance(key, str):
            raise TypeError(f"a key is text such as 'kmers/19123890', not {type(key).__name__}")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
            raise TypeError(f"rank= takes a whole number, not {rank!r}")
        parsed = make_key(key)
        if not isinstance(parsed, syntax.Key):
            raise ScriptError(f"get takes one key, not the pattern {key}")
        cmd = self.interpreter.command(self.scope)
        wk = cmd.key(parsed)
        if rank is not None and not 0 <= rank < self.size:
            raise ScriptError(f"rank {rank} is outside the cluster: ranks are 0..{self.size - 1} ({self.size} ranks)")
        try:
            reply, _rank = self.node.run(cmd.fetch(wk, rank))
        except RuntimeFault as err:
            raise cmd.name_keys(err) from None
        return unpack_item(reply.item)

    def _require_driver(self) -> None:
        if self.rank != 0:
            raise RayScriptError(f"only rank 0 gives orders through Cluster; this is rank {self.rank}")
        if self._closed:
            raise RayScriptError("this cluster is closed")


_OPEN: weakref.WeakSet[Cluster] = weakref.WeakSet()  # MPI clusters not closed (rank 0) or served (others) yet


@atexit.register
def _close_at_exit() -> None:
    """A program that ends (or fails) without closing its cluster: stop every rank, so the job
    ends instead of the other ranks serving forever."""
    for cluster in list(_OPEN):
        try:
            cluster.close() if cluster.rank == 0 else cluster._leave_unserved()
        except Exception as exc:  # at exit: say it, and go on
            sys.stderr.write(f"rayscript: closing the cluster at exit failed: {exc}\n")


def _text(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
