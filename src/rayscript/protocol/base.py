"""Control messages: the base class every message of :mod:`rayscript.protocol` derives from, and
its wire codec.

A message has four participants: its ``sender``, its ``recipient``, the messenger that carries
it (see :mod:`rayscript.runtime.messenger`) and the message itself.  Every message also names
the ``commander`` that gave the order it belongs to and the ``request`` id under which that
commander waits for the answer, so that a cascade (order -> item -> ack) ends at the right rank.

Each message class declares its ``kind``; its wire ``code`` comes from the one table in
:mod:`.codes`, and ``__init_subclass__`` fills the registry used to decode (refusing a code or a
kind used twice).  On the wire a control message is a small pickled tuple; item
payloads inside it are already-packed bytes (see :mod:`rayscript.items`).
"""

from __future__ import annotations

import operator
import pickle
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, ClassVar, cast

import numpy as np

from ..items import is_kmers
from ..store import encoding
from .codes import CODES, FIRST_FREE

REGISTRY: dict[int, type[Message]] = {}  # by wire code
KINDS: dict[str, type[Message]] = {}  # by kind


def key_text(key: tuple[str, Any], k: int | None = None) -> str:
    """``namespace/ident``; a k-mer of two-word id (k > 31, when known) by its bases."""
    namespace, ident = key
    if k and k > encoding.WORD_K and is_kmers(namespace) and isinstance(ident, int):
        return f"{namespace}/{encoding.decode(ident, k)}"
    return f"{namespace}/{ident}"


@dataclass(kw_only=True)
class Message:
    kind: ClassVar[str] = ""
    code: ClassVar[int] = -1
    is_reply: ClassVar[bool] = False
    # An order's answer: the reply class its recipient (or the end of its cascade) sends back.
    reply_type: ClassVar[type[Message] | None] = None
    # An order whose answer decides the statement's next orders (locate, sizes, frontiers) and
    # that changes nothing: ``explain`` sends it for real.  Every other order is only recorded
    # by ``explain`` and answered there by :meth:`simulated_reply`.
    informs: ClassVar[bool] = False

    sender: int = -1
    recipient: int = -1
    commander: int = -1
    request: int = 0

    def __init_subclass__(cls, kind: str = "", code: int | None = None, reply: bool = False) -> None:
        """Register a message class under its ``kind`` and the code the table gives that kind; a
        message defined outside the package (a test's) gives its own code, at or above FIRST_FREE."""
        super().__init_subclass__()
        if not kind:
            return
        if code is None:
            if kind not in CODES:
                raise ValueError(f"message kind {kind!r} has no code: add it to rayscript/protocol/codes.py")
            code = CODES[kind]
        elif code < FIRST_FREE:
            raise ValueError(f"message code {code} of {kind!r} is below {FIRST_FREE}, in the table's blocks")
        if code in REGISTRY:
            raise ValueError(f"message code {code} used twice ({REGISTRY[code].__name__}, {cls.__name__})")
        if kind in KINDS:
            raise ValueError(f"message kind {kind!r} used twice ({KINDS[kind].__name__}, {cls.__name__})")
        cls.kind, cls.code, cls.is_reply = kind, code, reply
        REGISTRY[code] = cls
        KINDS[kind] = cls

    # Bulk data rides beside a message, never inside its envelope: ``msg.buffers`` is a list of
    # numpy arrays that the messenger sends with MPI buffer methods right after the envelope;
    # on arrival ``buffer_meta`` lists their (dtype, length) until they are received.
    # (not annotated: they are not fields of the dataclass, nor of the envelope)
    buffers = cast("list[Any] | None", None)
    buffer_meta = cast("list[tuple[str, int]] | None", None)
    # Elements of spare room the receiving messenger leaves in front of each received buffer
    # (in the same allocation), so that the handler may grow it in place.
    buffer_room = 0

    def received_buffers(self, arrays: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Fresh arrays for this message's buffers on arrival, each with ``buffer_room`` elements
        of room in front of it: copies of ``arrays`` (a transport without a wire), or empty arrays
        as ``buffer_meta`` describes them, for the transport to fill."""
        room = self.buffer_room
        specs = [(a.dtype, len(a)) for a in arrays] if arrays is not None else \
            [(np.dtype(dtype), n) for dtype, n in self.buffer_meta or ()]
        out = [np.empty(n + room, dtype)[room:] if room else np.empty(n, dtype) for dtype, n in specs]
        if arrays is not None:
            for dst, src in zip(out, arrays):
                dst[...] = src
        return out

    def pack(self) -> tuple:
        """The envelope: a flat tuple (code, buffer meta, field values...) that pickles small."""
        getter = _GETTERS.get(type(self)) or _getter(type(self))
        meta = [(b.dtype.str, len(b)) for b in self.buffers] if self.buffers else None
        return (self.code, meta, *getter(self))  # every message has several fields: a tuple

    @staticmethod
    def unpack(envelope: tuple) -> Message:
        code = envelope[0]
        obj = (_BUILDERS.get(code) or _builder(code))(envelope)
        if envelope[1]:
            obj.buffer_meta = envelope[1]
        return obj

    def encode(self) -> bytes:
        return pickle.dumps(self.pack(), protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decode(buf: bytes) -> Message:
        return Message.unpack(pickle.loads(buf))

    def describe(self) -> str:
        """One line for ``explain``: kind, route and the payload fields that matter (those that
        differ from their defaults)."""
        extra = " ".join(f"{f.name}={_short(getattr(self, f.name))}" for f in fields(self)
                         if f.name not in ("sender", "recipient", "commander", "request")
                         and getattr(self, f.name) not in (None, b"") and not _is_default(f, getattr(self, f.name)))
        return f"{self.kind.upper():<14} {self.sender} -> {self.recipient}  {extra}".rstrip()

    def cascade(self) -> list[str]:
        """The messages this one triggers, in order (for ``explain``)."""
        return []

    def simulated_reply(self) -> Message:
        """The answer ``explain`` pretends this order got (it is not sent): a neutral reply of
        the order's reply type."""
        if self.reply_type is None:
            raise TypeError(f"{type(self).__name__} is not an order")
        return self.reply_type()

    def fields(self) -> dict[str, Any]:
        """Every field but the request id, with bulk buffers as bytes: what a test compares."""
        out = {name: getattr(self, name) for name in _NAMES.get(type(self)) or _names(type(self))
               if name != "request"}
        if self.buffers:
            out["buffers"] = [bytes(memoryview(b).cast("B")) for b in self.buffers]
        return out


_NAMES: dict[type, tuple[str, ...]] = {}
_GETTERS: dict[type, operator.attrgetter] = {}


def _getter(cls: type[Message]) -> operator.attrgetter:
    names = _NAMES.get(cls) or _names(cls)
    _GETTERS[cls] = operator.attrgetter(*names)
    return _GETTERS[cls]


def _names(cls: type[Message]) -> tuple[str, ...]:
    _NAMES[cls] = tuple(f.name for f in fields(cls))
    return _NAMES[cls]


_BUILDERS: dict[int, Callable[[tuple], Message]] = {}


def _builder(code: int) -> Callable[[tuple], Message]:
    """A function that makes a message of wire ``code`` from its envelope without running
    ``__init__`` (generated once per class: a dict display is the quickest way to fill one)."""
    cls = REGISTRY[code]
    items = ", ".join(f"{name!r}: envelope[{i + 2}]" for i, name in enumerate(_names(cls)))
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    exec(f"def build(envelope):\n    obj = new(cls)\n    obj.__dict__ = {{{items}}}\n    return obj\n",
         namespace)
    _BUILDERS[code] = namespace["build"]
    return _BUILDERS[code]


def _is_default(f: Field[Any], value: object) -> bool:
    if f.default is not MISSING:
        default = f.default
    elif f.default_factory is not MISSING:
        default = f.default_factory()
    else:
        return False
    return type(value) is type(default) and value == default


def _short(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return key_text(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


# --- replies (rank -> commander) ------------------------------------------


# --- orders (commander -> rank) -------------------------------------------


# --- cascade steps (rank -> rank) -----------------------------------------


# --- life cycle -------------------------------------------------------------


