"""The messenger: the transport that carries messages between ranks.

Two implementations share this interface: :class:`~rayscript.runtime.mpi.MPIMessenger` (one
process per rank under mpiexec) and :class:`~rayscript.runtime.local.LocalMessenger` (ranks as
threads of one process).  Both carry the same encoded bytes, so the wire format is exercised
by the fast local tests too.
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import ModuleType

from ..protocol.base import Message


def mpi_module() -> ModuleType:
    """mpi4py's MPI module; a clear error when it is not installed (the 'mpi' extra)."""
    try:
        from mpi4py import MPI
    except ImportError:
        from ..errors import RayScriptError

        raise RayScriptError("started under mpiexec, but mpi4py is not installed: pip install 'rayscript[mpi]' "
                             "(or run scripts/setup, which also installs an MPI)") from None
    return MPI


class Messenger(ABC):
    rank: int
    size: int
    backend: str = ""
    # how long a message's bulk data may go without progress (the node sets it: the order timeout)
    patience: Callable[[], float | None] = staticmethod(lambda: None)

    @abstractmethod
    def send(self, msg: Message) -> None:
        """Queue ``msg`` for ``msg.recipient`` without blocking."""

    @abstractmethod
    def poll(self, timeout: float, expecting: Callable[[], bool] | None = None) -> list[Message]:
        """Messages that have arrived; waits up to ``timeout`` seconds (without spinning a core)
        when none has.  ``expecting()``: does this rank wait for an answer it asked for? (A
        transport that naps between looks asks before napping, and naps shorter if so.)"""

    def waiting(self) -> bool:
        """Has a message arrived that ``poll`` has not handed over yet?"""
        return False

    def host(self) -> str:
        return socket.gethostname()

    def hosts(self) -> list[str]:
        """The host of every rank, by rank."""
        return [self.host()] * self.size

    def watch_driver(self, lease: Callable[[], float]) -> None:
        """Jobs across several hosts: rank 0 tells every other rank now and then that it is
        alive, and for how long a rank may go without hearing it (``lease()`` seconds, 0: no
        limit); the others listen (see :meth:`driver_silence`).  A transport within one process
        has nothing to watch."""
        return None

    def lease_changed(self) -> None:
        """Rank 0: ``lease()`` gives another value now; the ranks are told at once, not at the
        next heartbeat."""
        return None

    def driver_silence(self) -> tuple[float, float] | None:
        """A rank other than 0 watching the driver: (seconds without hearing rank 0, the lease
        it gave) when that silence is past the lease; otherwise None."""
        return None

    def finish(self, deadline: float | None = None) -> bool:
        """Called once by every rank at shutdown, after its loop has stopped.  False when the
        other ranks did not all stop within ``deadline`` seconds."""
        return True

    def abort(self, code: int = 1, quiet: bool = False) -> None:
        """Bring every rank down at once (last resort); ``quiet``: the reason has been said."""
        raise SystemExit(code)
