"""FASTQ and FASTA reading, vectorized, by byte range.

A plain file is split into one byte range per rank; each rank reads the records whose first byte
lies in its range (re-synchronizing to the first record boundary at or after the range start,
and reading past the range end to finish its last record).  A compressed file (gzip, bzip2, xz or
zstd, told by its first bytes whatever its name) cannot be split and is read whole by one rank.
Records are parsed a chunk at a time with numpy: no Python loop per read.  The output of a chunk
is one array of 2-bit base codes in which every read (or FASTA header, or line break inside a
FASTQ record) is separated by an INVALID code, ready for
:func:`rayscript.store.encoding.kmers_from_codes`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from ..errors import ScriptError
from ..store.encoding import INVALID, codes_from_bytes
from ..store.types import Codes

CHUNK_BYTES = 1 << 20
_NL = 10
_CR = 13

# compressions read, by the first bytes of the file; "" is a plain file
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
COMPRESSIONS = "gzip, bzip2, xz or zstd"
# about how many bytes of FASTQ/FASTA one compressed byte stands for (to share files between ranks)
_EXPANSION = {"gzip": 3, "bzip2": 4, "xz": 4, "zstd": 3}

Bytes: TypeAlias = npt.NDArray[np.uint8]  # a chunk of the file
Offsets: TypeAlias = npt.NDArray[np.intp]  # places in a chunk: line breaks, line starts
Lengths: TypeAlias = npt.NDArray[np.int64]  # the bases of each record's sequence
_NO_LENGTHS: Lengths = np.empty(0, np.int64)
# a parsed chunk: (bytes used, base codes, records, offset in the chunk of the next rank's first record,
# the bases of each record)
Parsed: TypeAlias = tuple[int, Codes, int, int | None, Lengths]


class InputError(ScriptError):
    """A bad input file: names the file, the record or line where known, and the reason.  A
    ScriptError: the commander refuses it before the statement sends anything (a rank that finds
    it while reading reports it as a fault of that rank)."""


@dataclass(frozen=True)
class Source:
    path: str
    fmt: str  # "fastq" or "fasta"
    codec: str  # "" (plain), "gzip", "bzip2", "xz" or "zstd"
    size: int


@dataclass(frozen=True)
class Part:
    """The share of one file that a rank reads."""

    path: str
    fmt: str
    codec: str
    start: int
    end: int  # exclusive; records starting at or after it belong to the next rank
    file: int = 0  # the file's place in the statement's list (a file may be listed twice)


def _zstd() -> Any:
    """The zstd module: the standard library's from Python 3.14, before that backports.zstd."""
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


def _decode_errors(codec: str) -> tuple[type[BaseException], ...]:
    """What a read of ``codec`` data raises for data that is cut short (EOFError) or corrupt."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError)
    if codec == "gzip":
        errors += (zlib.error,)
    elif codec == "xz":
        errors += (lzma.LZMAError,)
    elif codec == "zstd":
        errors += (_zstd().ZstdError,)
    return errors


@contextmanager
def _opened(path: str, codec: str) -> Iterator[tuple[io.BufferedIOBase, io.BufferedReader]]:
    """(the file's records as bytes, the file on disk) of a plain or compressed file."""
    with ExitStack() as stack:
        try:
            raw = stack.enter_context(open(path, "rb"))
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        fh: io.BufferedIOBase = raw
        if codec == "gzip":
            fh = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        elif codec == "bzip2":
            fh = stack.enter_context(bz2.BZ2File(raw))
        elif codec == "xz":
            fh = stack.enter_context(lzma.LZMAFile(raw))
        elif codec == "zstd":
            try:
                module = _zstd()
            except ImportError:
                raise InputError(f"{path}: a zstd file; reading it needs the backports.zstd package before "
                                 "Python 3.14 (pip install backports.zstd), or decompress it first") from None
            fh = stack.enter_context(module.ZstdFile(raw))
        yield fh, raw


def records(source: Source) -> Iterator[tuple[str, str]]:
    """(name, sequence) of every record of a FASTA or FASTQ file, in order: for small inputs read
    whole by one process (the sequences a ``query`` asks about), not for reads."""
    with _opened(source.path, source.codec) as (fh, _raw):
        text = fh.read().decode("ascii", errors="replace")
    lines = text.splitlines()
    if source.fmt == "fastq":
        for i in range(0, len(lines) - 1, 4):
            yield lines[i][1:].split(maxsplit=1)[0] if len(lines[i]) > 1 else f"record-{i // 4 + 1}", lines[i + 1]
        return
    name, parts = None, []  # type: ignore[var-annotated]
    count = 0
    for line in lines:
        if line.startswith(">"):
            if name is not None:
                yield name, "".join(parts)
            count += 1
            name, parts = (line[1:].split(maxsplit=1) or [f"record-{count}"])[0], []
        elif name is not None:
            parts.append(line.strip())
    if name is not None:
        yield name, "".join(parts)


HEAD_BYTES = 256_000  # how much of a file head_records reads


@dataclass(frozen=True)
class Head:
    """The first records of a file, as :func:`head_records` found them."""

    records: list[tuple[str, int]]  # (name, length) of the whole records read, in order
    whole: bool  # the window reached the end of the file: ``records`` are all its records
    cut: int = 0  # no whole record in the window (the first is longer than it): the bases of it seen
    # FASTA: the line of the first record (the window's last one too) whose sequence goes on over
    # several lines; pairs are read by lines (a header and one sequence line), so they cannot be
    wrapped: int | None = None


def head_records(source: Source, n: int = 1000, window: int = HEAD_BYTES) -> Head:
    """The (name, length) of the whole records among the first ``n`` in the first ``window`` bytes
    of a file: what a statement checks before loading it (read lengths, the names of an interleaved
    file's pairs).  A record the window cuts short is left out, whatever the size of the records;
    when the window reaches the end of the file, the last record is whole and kept.  Names lose a
    trailing /1 or /2."""
    with _opened(source.path, source.codec) as (fh, raw):
        try:
            data = fh.read(window)
            whole = not fh.read(1)
        except _decode_errors(source.codec) as exc:
            raise _decode_error(source.path, source.codec, raw, exc, 0) from None
    text = data.decode("ascii", "replace")
    end = len(text) if whole else text.rfind("\n") + 1
    tail = text[end:]  # a line the window cut short
    lines = [line.rstrip("\r") for line in text[:end].split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    cut = 0
    wrapped = None
    if source.fmt == "fastq":
        out = [(_pair_name(lines[i][1:]), len(lines[i + 1].strip())) for i in range(0, len(lines) - 3, 4)]
        if not out and not whole:
            cut = len((lines[1] if len(lines) > 1 else tail if lines else "").strip())
    else:
        starts = [i for i, line in enumerate(lines) if line.startswith(">")]
        # a record ends at the next header, or at the end of the file (not at the end of the window)
        ends = starts[1:] + ([len(lines)] if whole or tail.startswith(">") else [])
        out = [(_pair_name(lines[a][1:]), sum(len(x.strip()) for x in lines[a + 1:b])) for a, b in zip(starts, ends)]
        if not out and not whole and starts:
            cut = sum(len(x.strip()) for x in lines[starts[0] + 1:]) + len(tail.strip())
        wrapped = next((a + 1 for a, b in zip(starts, [*starts[1:], len(lines)])
                        if sum(1 for x in lines[a + 1:b] if x.strip()) > 1), None)
    return Head(out[:n], whole and len(out) <= n, cut, wrapped)


def _pair_name(header: str) -> str:
    name = header.split(maxsplit=1)[0] if header.split() else ""
    return name[:-2] if name.endswith(("/1", "/2")) else name


def count_records(source: Source) -> int:
    """How many records a file holds (FASTQ: four lines each; FASTA: its '>' lines), read through
    once a block at a time."""
    lines = starts = 0
    last = b"\n"
    with _opened(source.path, source.codec) as (fh, raw):
        try:
            while block := fh.read(1 << 22):
                lines += block.count(b"\n")
                starts += block.count(b"\n>") + (last == b"\n" and block[:1] == b">")
                last = block[-1:]
        except _decode_errors(source.codec) as exc:
            raise _decode_error(source.path, source.codec, raw, exc, 0) from None
    if last != b"\n":
        lines += 1
    return starts if source.fmt == "fasta" else lines // 4


def _decode_error(path: str, codec: str, raw: io.BufferedReader, exc: BaseException, at: int) -> InputError:
    """The error for a read that failed ``at`` bytes into the records (the start of the chunk
    being read, for a plain file)."""
    size = os.fstat(raw.fileno()).st_size
    if not codec:
        return InputError(f"{path}: read error after byte {at:,}: {getattr(exc, 'strerror', None) or exc}")
    near = raw.tell()
    lines = _readable_lines(path, codec)
    good = f"it decompresses to {lines:,} line{'' if lines == 1 else 's'} before that"
    if isinstance(exc, EOFError):
        return InputError(f"{path}: the {codec} data is cut short: the file ends, at {size:,} bytes, before its "
                          f"{codec} stream does (an incomplete download or copy?); {good}")
    return InputError(f"{path}: corrupt {codec} data near byte {near:,} of {size:,} ({exc}); {good}")


def _readable_lines(path: str, codec: str) -> int:
    """How many whole lines a damaged compressed file decompresses to before the damage (found by
    reading it again a block at a time, only to report an error)."""
    lines = 0
    with _opened(path, codec) as (fh, _raw):
        try:
            while block := fh.read1(1 << 16):
                lines += block.count(b"\n")
        except _decode_errors(codec):
            pass
    return lines


def inspect(path: str) -> Source:
    """Check a file is readable, non-empty FASTQ or FASTA (plain or compressed)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a FASTQ/FASTA file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    codec = next((name for m, name in MAGIC if magic.startswith(m)), "")
    with _opened(path, codec) as (fh, raw):
        try:
            head = fh.read(4096)
            if codec and head.lstrip()[:1] not in (b"@", b">"):
                fh.read(1 << 20)  # bytes of a corrupt block come out before its check fails: is it that?
        except _decode_errors(codec) as exc:
            raise _decode_error(path, codec, raw, exc, 0) from None
    stripped = head.lstrip()
    if not stripped:
        raise InputError(f"{path}: the file is empty" + (f" ({codec} of no data)" if codec else ""))
    first = stripped[:1]
    if first == b"@":
        fmt = "fastq"
    elif first == b">":
        fmt = "fasta"
    else:
        shown = stripped[:20].decode("utf-8", "replace").splitlines()[0]
        raise InputError(f"{path}: neither FASTQ (records start with '@') nor FASTA ('>'), plain or compressed "
                         f"with {COMPRESSIONS}; {f'decompressed ({codec}), ' if codec else ''}it starts with "
                         f"{shown!r}")
    return Source(path, fmt, codec, size)


def plan(sources: list[Source], nranks: int) -> list[list[Part]]:
    """Which rank reads what: plain files in equal byte ranges over every rank, compressed files
    whole, each to the rank with the least assigned so far (largest first).  Every listed file is
    an input of its own, also when the same file is listed twice."""
    parts: list[list[Part]] = [[] for _ in range(nranks)]
    load = [0] * nranks
    for i, s in enumerate(sources):
        if not s.codec:
            for r in range(nranks):
                a, b = s.size * r // nranks, s.size * (r + 1) // nranks
                if b > a:
                    parts[r].append(Part(s.path, s.fmt, "", a, b, i))
                    load[r] += b - a
    packed = sorted((-s.size, i) for i, s in enumerate(sources) if s.codec)
    for _, i in packed:
        s = sources[i]
        r = min(range(nranks), key=lambda i: (load[i], i))
        parts[r].append(Part(s.path, s.fmt, s.codec, 0, 1 << 62, i))
        load[r] += s.size * _EXPANSION[s.codec]
    return parts


def _line_number(path: str, codec: str, offset: int) -> int:
    """1-based line of byte ``offset`` (computed only when reporting an error)."""
    with _opened(path, codec) as (fh, _raw):
        data = fh.read(offset)
    return data.count(b"\n") + 1


def _sync(fh: io.BufferedIOBase, part: Part) -> int:
    """Offset of the first record starting at or after part.start."""
    if part.start == 0:
        return 0
    fh.seek(part.start - 1)
    window_start = part.start - 1
    data = b""
    while True:
        more = fh.read(1 << 16)
        data += more
        if part.fmt == "fasta":
            i = data.find(b"\n>")
            if i >= 0:
                return window_start + i + 1
        else:
            pos = 0
            while True:
                i = data.find(b"\n@", pos)
                if i < 0:
                    break
                # a header is '@' at a line start whose line two further on starts with '+'
                j = data.find(b"\n", i + 1)
                k = data.find(b"\n", j + 1) if j >= 0 else -1
                if k < 0 or k + 1 >= len(data):
                    break  # not enough lines yet to tell: read more
                if data[k + 1:k + 2] == b"+":
                    return window_start + i + 1
                pos = i + 1
        if not more:
            return 1 << 62
        if window_start + len(data) > part.end + (1 << 20) and part.fmt == "fasta":
            return 1 << 62


class ChunkResult:
    """A chunk's base codes and reads; ``nbytes``: bytes of the file on disk it stands for
    (compressed bytes for a compressed file, so progress compares like with like).  Over the
    ranks, the chunks of a file stand for its size exactly.  ``lengths``: the bases of each read."""

    __slots__ = ("codes", "lengths", "nbytes", "reads")

    def __init__(self, codes: Codes, reads: int, nbytes: int, lengths: Lengths = _NO_LENGTHS) -> None:
        self.codes, self.reads, self.nbytes, self.lengths = codes, reads, nbytes, lengths


def read_part(part: Part, chunk_bytes: int = CHUNK_BYTES, span: list[int] | None = None) -> Iterator[ChunkResult]:
    """Yield ChunkResult for the records of ``part``, chunk by chunk.  ``span`` (a list) is set
    to [first byte, end byte] of the records read, once they are all read: the records of the
    ranks must tile the file, which :func:`check_tiling` verifies."""
    with _opened(part.path, part.codec) as (fh, raw):
        errors = _decode_errors(part.codec)
        offset = _sync(fh, part) if not part.codec else 0
        if offset >= part.end:
            return  # no record starts in the range: the bytes are the previous rank's last record's
        first = offset
        if not part.codec:
            fh.seek(offset)
        carry = b""
        parse = _parse_fastq if part.fmt == "fastq" else _parse_fasta
        # the file on disk as far as the chunks yielded stand for it: a plain file from the rank's
        # first record to the next rank's (the last rank: to the end), a compressed one whole
        counted = raw.tell() if part.codec else offset
        finished = False
        while True:
            try:
                data = fh.read(chunk_bytes)
            except errors as exc:
                raise _decode_error(part.path, part.codec, raw, exc, offset + len(carry)) from None
            eof = not data
            buf = carry + data
            if not buf:
                if span is not None:
                    span[:] = [first, offset]  # every record read, to the end of the file
                break
            used, codes, reads, stop, lengths = parse(buf, offset, part, eof)
            finished = stop is not None
            if used == 0 and not eof:
                carry = buf  # a record longer than the chunk: read more
                continue
            if span is not None and (finished or eof):
                # where this rank's records end: the next rank's first record, or the file's end
                span[:] = [first, offset + (stop if stop is not None else used)]
            if eof and used == 0:
                break  # nothing but blank space after the last record
            reached = raw.tell() if part.codec else offset + (stop if stop is not None else used)
            yield ChunkResult(codes, reads, reached - counted, lengths)
            counted = reached
            carry = buf[used:]
            offset += used
            if finished or (eof and not carry):
                break
        # what no chunk stood for: blank space after the last record, a compressed file's last bytes
        end = counted if finished else raw.tell()
        if end > counted:
            yield ChunkResult(np.empty(0, np.uint8), 0, end - counted)


def _lines(arr: Bytes, eof: bool) -> Offsets:
    nl = np.flatnonzero(arr == _NL)
    if eof and (len(arr) == 0 or arr[-1] != _NL):
        nl = np.concatenate((nl, [len(arr)]))
    return nl


def _seq_codes(arr: Bytes, starts: Offsets, ends: Offsets) -> Codes:
    """Codes of the byte ranges [starts[i], ends[i]], the last byte of each being the line
    break (an INVALID code, so it separates the reads)."""
    if len(starts) == 0:
        return np.empty(0, np.uint8)
    n = len(arr) + 2
    delta = np.bincount(starts, minlength=n)[:n].astype(np.int32)
    delta -= np.bincount(ends + 1, minlength=n)[:n].astype(np.int32)
    mask = np.cumsum(delta[: len(arr) + 1], dtype=np.int32) > 0
    ext = np.concatenate((arr, np.array([_NL], np.uint8)))
    return codes_from_bytes(ext[mask])


def _parse_fastq(buf: bytes, offset: int, part: Part, eof: bool) -> Parsed:
    arr = np.frombuffer(buf, dtype=np.uint8)
    nl = _lines(arr, eof)
    nrec = len(nl) // 4
    if eof and len(nl) % 4:
        # the trailing lines do not make a whole record
        start = 0 if nrec == 0 else nl[4 * nrec - 1] + 1
        if arr[start:].tobytes().strip():
            header = bytes(arr[start:start + 60]).split(b"\n")[0].decode("utf-8", "replace")
            line = _line_number(part.path, part.codec, offset + start)
            raise InputError(f"{part.path}:{line}: truncated FASTQ record {header!r}: "
                             f"{len(nl) % 4} of its 4 lines present")
    if nrec == 0:
        return 0, np.empty(0, np.uint8), 0, None, _NO_LENGTHS
    nl = nl[: 4 * nrec]
    ls = np.concatenate(([0], nl[:-1] + 1))
    le = nl.copy()
    # strip a carriage return before the newline
    has_cr = (le > ls) & (arr[np.minimum(np.maximum(le - 1, 0), len(arr) - 1)] == _CR)
    le = le - has_cr
    heads, seqs, pluses, quals = ls[0::4], ls[1::4], ls[2::4], ls[3::4]
    # records from the next rank's range are not ours
    ours = offset + heads < part.end
    finished = not ours.all()
    stop = None
    if finished:
        n = int(np.argmin(ours))
        stop = int(heads[n])  # the next rank's first record
        if n == 0:
            return len(buf), np.empty(0, np.uint8), 0, stop, _NO_LENGTHS
        heads, seqs, pluses, quals = heads[:n], seqs[:n], pluses[:n], quals[:n]
        nrec = n
    seq_end, qual_end = le[1::4][:nrec], le[3::4][:nrec]
    bad_head = arr[heads] != ord("@")
    bad_plus = arr[pluses] != ord("+")
    bad_len = (seq_end - seqs) != (qual_end - quals)
    bad = bad_head | bad_plus | bad_len
    if bad.any():
        i = int(np.argmax(bad))
        head_start = int(heads[i])
        line = _line_number(part.path, part.codec, offset + head_start)
        header = bytes(arr[head_start:le[4 * i]]).decode("utf-8", "replace")
        if bad_head[i]:
            raise InputError(f"{part.path}:{line}: expected a FASTQ header starting with '@', got {header[:40]!r}")
        if bad_plus[i]:
            raise InputError(f"{part.path}:{line + 2}: record {header[:40]!r}: expected the '+' line "
                             "(a FASTQ record here is 4 lines: multi-line sequences are not read; "
                             "FASTA may wrap its lines)")
        raise InputError(f"{part.path}:{line + 3}: record {header[:40]!r}: quality length "
                         f"{int(qual_end[i] - quals[i])} differs from sequence length {int(seq_end[i] - seqs[i])}")
    used = int(nl[4 * nrec - 1] + 1) if not finished else len(buf)
    used = min(used, len(buf))
    codes = _seq_codes(arr, seqs, seq_end)
    return used, codes, nrec, stop, (seq_end - seqs).astype(np.int64)


def _parse_fasta(buf: bytes, offset: int, part: Part, eof: bool) -> Parsed:
    arr = np.frombuffer(buf, dtype=np.uint8)
    if eof:
        cut = len(arr)
    else:
        cut = buf.rfind(b"\n>") + 1
        if cut <= 0:
            return 0, np.empty(0, np.uint8), 0, None, _NO_LENGTHS
    arr = arr[:cut]
    nl = _lines(arr, True)
    ls = np.concatenate(([0], nl[:-1] + 1))
    le = nl
    nonempty = le > ls
    ls, le = ls[nonempty], le[nonempty]
    is_head = arr[ls] == ord(">")
    if len(ls) and not is_head[0]:
        line = _line_number(part.path, part.codec, offset)
        raise InputError(f"{part.path}:{line}: expected a FASTA header starting with '>'")
    head_starts = ls[is_head]
    ours = offset + head_starts < part.end
    finished = not ours.all()
    stop = None
    if finished:
        first_foreign = stop = int(head_starts[int(np.argmin(ours))])
        keep = ls < first_foreign
        ls, le, is_head = ls[keep], le[keep], is_head[keep]
    nrec = int(is_head.sum())
    # sequence bytes: every non-header line without its line break; a header becomes a separator
    seq_ls, seq_le = ls[~is_head], le[~is_head]
    has_cr = (seq_le > seq_ls) & (arr[np.maximum(seq_le - 1, 0)] == _CR)
    seq_le = seq_le - has_cr
    # the bases of each record: its sequence lines (every line before the first header is refused above)
    lengths = np.bincount(np.cumsum(is_head)[~is_head] - 1, weights=seq_le - seq_ls, minlength=nrec)
    lengths = lengths[:nrec].astype(np.int64)
    if len(seq_ls) == 0:
        return cut, np.empty(0, np.uint8), nrec, stop, lengths
    delta = np.zeros(len(arr) + 1, dtype=np.int32)
    delta += np.bincount(seq_ls, minlength=len(arr) + 1)[: len(arr) + 1].astype(np.int32)
    delta -= np.bincount(seq_le, minlength=len(arr) + 1)[: len(arr) + 1].astype(np.int32)
    mask = np.cumsum(delta[: len(arr)], dtype=np.int32) > 0
    # mark the first byte of each sequence line that follows a header, to insert a separator
    idx = np.flatnonzero(mask)
    codes = codes_from_bytes(arr[idx])
    line_of = np.searchsorted(ls, idx, side="right") - 1
    head_before = np.concatenate(([True], is_head[:-1]))  # line i follows a header line
    first_after_header = head_before[line_of] & (idx == ls[line_of])
    sep_positions = np.flatnonzero(first_after_header)
    if len(sep_positions):
        codes = np.insert(codes, sep_positions, INVALID)
    codes = np.concatenate((codes, [INVALID])).astype(np.uint8)
    return cut, codes, nrec, stop, lengths


def check_tiling(path: str, size: int, spans: list[tuple[int, int]]) -> None:
    """The records the ranks read from a plain FASTQ file must tile it: each rank's first record
    starts where the previous rank's records ended.  Bytes no rank read are a malformed record or
    a blank line between records, whichever rank's range they fell in; after the last record only
    blank space may follow.  Raises InputError naming the line."""
    expected = 0
    for first, stop in sorted(spans):
        if first != expected:
            _untiled(path, expected, first)
        expected = stop
    if expected < size:
        with open(path, "rb") as fh:
            fh.seek(expected)
            rest = fh.read(size - expected)
        if rest.strip():
            _untiled(path, expected, size)


def _untiled(path: str, start: int, end: int) -> None:
    with open(path, "rb") as fh:
        fh.seek(start)
        text = fh.read(min(end - start, 60))
    line = _line_number(path, "", start)
    shown = text.split(b"\n")[0].decode("utf-8", "replace")
    what = "a blank line" if not shown.strip() else repr(shown[:40])
    raise InputError(f"{path}:{line}: expected a FASTQ record starting with '@', got {what} "
                     "(a malformed record or a blank line between records)")
