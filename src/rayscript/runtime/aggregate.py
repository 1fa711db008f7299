"""Aggregation: small messages bound for one rank travel together.

A rank that sends many small messages to the same ranks (the steps of many walks under way at
once, say) pays the transport's cost per message once per batch instead, as RayPlatform's virtual
communicator does.  ``Node.post`` batches a message only while its rank is busy (messages in hand
or waiting to be received); a rank with nothing else to do sends at once, so a lone cascade pays
no delay.  :meth:`Aggregator.post` puts a message in its destination's batch; the batch
leaves as one BUNDLE message

- at once when it holds ``max_messages`` messages or about ``max_bytes`` of envelopes (size);
- when its oldest message has waited ``max_delay`` seconds (time), checked by the node's loop;
- when the rank has nothing else to do (flush on idle): before the loop waits for messages, every
  batch leaves, so aggregation never adds latency to a rank that is not busy.

A batch of one message leaves as that message, not as a bundle.

Order is kept per destination: a message sent directly to a rank (``Node.send``: orders, replies,
bulk buffers) first sends that rank's batch, and the recipient handles a bundle's messages in the
order they were posted.  Messages with bulk buffers, and messages to the rank itself, are never
batched.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import fields

from ..protocol.base import Message
from ..protocol.core import Bundle

MAX_MESSAGES = 256
MAX_BYTES = 64 * 1024
MAX_DELAY = 0.002


_TEXTS: dict[type, Callable[[Message], tuple]] = {}


def _texts_of(cls: type[Message]) -> Callable[[Message], tuple]:
    """A getter of the fields of ``cls`` that hold text or bytes (the ones whose size varies)."""
    blank = cls()
    names = [f.name for f in fields(cls) if isinstance(getattr(blank, f.name), (str, bytes))]
    if len(names) > 1:
        _TEXTS[cls] = operator.attrgetter(*names)
    else:
        _TEXTS[cls] = (lambda msg: (getattr(msg, names[0]),)) if names else (lambda msg: ())
    return _TEXTS[cls]


def size_hint(msg: Message) -> int:
    """About how many bytes the message's envelope pickles to, without pickling it: its text and
    bytes fields, and a little for the rest (this is on the path of every message posted)."""
    texts = (_TEXTS.get(type(msg)) or _texts_of(type(msg)))(msg)
    return 96 + sum(map(len, texts))


class Aggregator:
    def __init__(self, rank: int, send: Callable[[Message], None], max_messages: int = MAX_MESSAGES,
                 max_bytes: int = MAX_BYTES, max_delay: float = MAX_DELAY,
                 clock: Callable[[], float] = time.monotonic):
        self.rank = rank
        self._send = send  # the transport: sends one message now
        self.max_messages, self.max_bytes, self.max_delay = max_messages, max_bytes, max_delay
        self.clock = clock
        self.batches: dict[int, list[Message]] = {}  # destination -> messages posted
        self._bytes: dict[int, int] = {}
        self._since: dict[int, float] = {}  # destination -> when its oldest message was posted
        self.bundles_sent = 0
        self.messages_bundled = 0

    def post(self, msg: Message) -> None:
        """Send ``msg`` in its destination's next batch (at once if it cannot be batched)."""
        msg.sender = self.rank
        dest = msg.recipient
        if dest == self.rank or msg.buffers or self.max_messages <= 1:
            self.before_direct(dest)
            self._send(msg)
            return
        batch = self.batches.get(dest)
        if batch is None:
            batch = self.batches[dest] = []
            self._bytes[dest] = 0
            self._since[dest] = self.clock()
        batch.append(msg)
        self._bytes[dest] += size_hint(msg)
        if len(batch) >= self.max_messages or self._bytes[dest] >= self.max_bytes:
            self.flush(dest)

    def before_direct(self, dest: int) -> None:
        """A message is about to go to ``dest`` outside the batches: what was posted before it
        goes first."""
        if dest in self.batches:
            self.flush(dest)

    def flush(self, dest: int | None = None) -> None:
        """Send the batch for ``dest`` (every batch when None)."""
        for d in [dest] if dest is not None else list(self.batches):
            batch = self.batches.pop(d, None)
            if not batch:
                continue
            del self._bytes[d], self._since[d]
            if len(batch) == 1:  # alone: it travels as itself
                self._send(batch[0])
                continue
            self.bundles_sent += 1
            self.messages_bundled += len(batch)
            self._send(Bundle(sender=self.rank, recipient=d, envelopes=[m.pack() for m in batch]))

    def flush_due(self) -> None:
        """Send the batches whose oldest message has waited max_delay or longer."""
        if self.batches:
            limit = self.clock() - self.max_delay
            for d in [d for d, t in self._since.items() if t <= limit]:
                self.flush(d)
