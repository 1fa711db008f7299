"""Line mode on rank 0, when stdin is not a terminal: statements are read line by line like a
script, without prompts or colour, while the other ranks serve.

A statement that opens a block with ``{`` continues on the next lines until it is closed.
An error is printed and the session goes on; end of input (Ctrl-D) or ``exit`` shuts every
rank down.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from ..errors import RankFailure, RayScriptError, shift_lines

if TYPE_CHECKING:
    from ..cluster import Cluster


def balance(text: str) -> int:
    """How many '{' are still open (strings and comments ignored)."""
    depth = 0
    in_str = False
    for line in text.splitlines():
        for i, ch in enumerate(line):
            if ch == '"' and (i == 0 or line[i - 1] != "\\"):
                in_str = not in_str
            elif not in_str and ch == "#":
                break
            elif not in_str and ch == "{":
                depth += 1
            elif not in_str and ch == "}":
                depth -= 1
    return depth


def run_lines(cluster: Cluster, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    buffer = ""
    lineno = first = 0
    status = 0
    while True:
        line = stdin.readline()
        if not line:
            break
        lineno += 1
        if not buffer and line.strip() in ("exit", "quit"):
            break
        if not buffer.strip():
            first = lineno  # where the statement starts in the input
        buffer += line
        if balance(buffer) > 0:
            continue
        text, buffer = buffer, ""
        if not text.strip():
            continue
        try:
            for results in cluster.stream(text, "<stdin>"):
                for r in results:
                    if r.text:
                        print(r.text, file=stdout, flush=True)
        except RankFailure:
            raise  # the caller shuts the job down
        except RayScriptError as exc:
            # located as in the whole input, not in the statement alone
            print(str(shift_lines(exc, first - 1)), file=sys.stderr, flush=True)  # noqa: T201 - like a script
            status = 1
    if buffer.strip():
        print(f"<stdin>:{first}: the input ended inside the block opened here with '{{'",  # noqa: T201
              file=sys.stderr)
        status = 1
    return status
