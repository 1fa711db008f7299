"""In-process backend: every rank is a thread with its own inbox.

Messages are encoded to bytes and decoded on arrival exactly as on MPI, so a rank never
shares a mutable object with another.  Waiting uses a condition variable: idle ranks sleep.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from ..protocol.base import Message
from .messenger import Messenger


class LocalNetwork:
    def __init__(self, size: int):
        self.size = size
        self.inboxes: list[deque[tuple[bytes, list | None]]] = [deque() for _ in range(size)]
        self.conds = [threading.Condition() for _ in range(size)]

    def messenger(self, rank: int) -> LocalMessenger:
        return LocalMessenger(self, rank)


class LocalMessenger(Messenger):
    backend = "local"

    def __init__(self, network: LocalNetwork, rank: int):
        self.network = network
        self.rank = rank
        self.size = network.size

    def send(self, msg: Message) -> None:
        dest = msg.recipient
        if not 0 <= dest < self.size:
            raise ValueError(f"no rank {dest} in a cluster of {self.size}")
        data = msg.encode()
        buffers = msg.received_buffers(msg.buffers) if msg.buffers else None
        cond = self.network.conds[dest]
        with cond:
            self.network.inboxes[dest].append((data, buffers))
            cond.notify()

    def poll(self, timeout: float, expecting: Callable[[], bool] | None = None) -> list[Message]:
        inbox = self.network.inboxes[self.rank]
        if not inbox and timeout > 0:
            cond = self.network.conds[self.rank]
            with cond:
                if not inbox:
                    cond.wait(timeout)
        out = []
        while inbox:
            data, buffers = inbox.popleft()
            msg = Message.decode(data)
            if buffers is not None:
                msg.buffers = buffers
            out.append(msg)
        return out

    def waiting(self) -> bool:
        return bool(self.network.inboxes[self.rank])

    def host(self) -> str:
        return f"{super().host()}:thread"
