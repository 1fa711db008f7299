"""The processes a test started, found by walking the process tree below the one it launched.

Other MPI jobs may run on the machine at the same time (other users, other test runs): a test must
never look at every process (scanning /proc for PMI_RANK, ``pgrep -f``), only at its own.  Linux
lists each thread's children in /proc/PID/task/TID/children; a process is named by (pid, start
time) so that a pid reused after it ended is not taken for it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    """The children of ``pid`` (of any of its threads)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop(0)):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from the state on (the name may hold spaces)


def identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time): names a process even after its pid is reused."""
    fields = _stat(pid)
    return None if fields is None else (pid, int(fields[19]))


def alive(ident: tuple[int, int] | None) -> bool:
    if ident is None:
        return False
    fields = _stat(ident[0])
    return fields is not None and int(fields[19]) == ident[1] and fields[0] != "Z"


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def open_files(pid: int) -> set[str]:
    """The paths of the files process ``pid`` has open (empty once it is gone)."""
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return found


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (e.decode(errors="replace").partition("=") for e in raw.split(b"\0") if e)
    return {k: v for k, _, v in pairs}


def ranks_below(root: int) -> dict[int, int]:
    """The ranks of rayscript jobs started below ``root``: {rank number: pid of the rank}, each
    found as the only child of its keeper (the process named rayscript-keep, whose launcher rank
    is in its environment)."""
    out: dict[int, int] = {}
    for pid in descendants(root):
        if comm(pid) != "rayscript-keep":
            continue
        env = environ(pid)
        rank = next((env[n] for n in ("PMI_RANK", "PMIX_RANK", "SLURM_PROCID") if n in env), None)
        kids = children(pid)
        if rank is not None and len(kids) == 1:
            out[int(rank)] = kids[0]
    return out


def wait_for_ranks(root: int, n: int, timeout: float = 20.0) -> dict[int, int]:
    """Until ``n`` ranks are running below ``root``: {rank: pid}."""
    end = time.monotonic() + timeout
    while True:
        found = ranks_below(root)
        if len(found) >= n or time.monotonic() > end:
            assert len(found) >= n, f"{n} ranks never ran below pid {root}: {found}"
            return found
        time.sleep(0.1)
