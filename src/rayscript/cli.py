"""``rayscript`` command line: run, check, repl."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import RankFailure, RayScriptError, Terminated
from .logs import ENV, LEVELS, configure
from .progress import Progress

if TYPE_CHECKING:  # imported when a cluster opens: each rank's keeper splits off while the process is small
    from .cluster import Cluster
    from .results import Result

USAGE_EXAMPLES = """examples:
  mpiexec -n 6 rayscript run examples/seed.ray
  rayscript run -e 'put kmers/1 on 0; copy kmers/1 from 0 to 1' --ranks 3
  rayscript check analysis.ray --ranks 8
  mpiexec -n 4 rayscript repl
  mpiexec -n 4 rayscript exec python analysis.py   (a program that embeds Cluster)
"""


# Two SIGTERMs this close together are one request to terminate, sent twice (see install_signal_handlers).
TWICE_SECONDS = 2.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rayscript", description="Give orders to a sharded k-mer store on MPI ranks.",
                                epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"rayscript {__version__}")
    sub = p.add_subparsers(dest="command")
    logged = argparse.ArgumentParser(add_help=False)
    logged.add_argument("--log-level", choices=LEVELS, metavar="LEVEL",
                        help=f"show the ranks' log from LEVEL up on standard error ({', '.join(LEVELS)}; default: "
                             f"${ENV}, else none)")
    run = sub.add_parser("run", help="run a .ray script on every rank (under mpiexec)", parents=[logged])
    run.add_argument("script", nargs="?", help="the .ray file to run")
    run.add_argument("-e", dest="text", metavar="TEXT", help="run this text instead of a file")
    run.add_argument("--ranks", type=int, metavar="N",
                     help="without mpiexec: run N ranks as threads of this process")
    run.add_argument("--restore", metavar="DIR", help="start from the checkpoint in DIR (written by 'save to')")
    run.add_argument("--progress", action="store_true",
                     help="show the progress of long statements on standard error even when it is not a terminal "
                          "(a line every tenth of the work; on a terminal a bar is always shown)")
    chk = sub.add_parser("check", help="parse and validate a script without MPI; report every error")
    chk.add_argument("script", nargs="+")
    chk.add_argument("--ranks", type=int, metavar="N", help="also check ranks against a cluster of N")
    repl = sub.add_parser("repl", help="read statements on rank 0 while the other ranks serve", parents=[logged])
    repl.add_argument("--ranks", type=int, metavar="N",
                      help="without mpiexec: run N ranks as threads of this process")
    ex = sub.add_parser("exec", help="under mpiexec: run a program (one that embeds Cluster) as this rank, "
                                     "kept like run and repl: a rank killed outright is named", parents=[logged])
    ex.add_argument("program", nargs=argparse.REMAINDER, help="the program and its arguments")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.log_level:
            os.environ[ENV] = args.log_level  # for every rank's process: a program under exec reads it too
        try:
            configure()
        except ValueError as exc:
            print(f"rayscript: {ENV}: {exc}", file=sys.stderr)
            return 2
        from .runtime.keeper import launcher_mismatch, launcher_rank, split, under_mpiexec

        mismatch = launcher_mismatch() if under_mpiexec() else None
        if mismatch:
            # one line for the job, from its first rank; the others end quietly and normally, so the
            # launcher does not stop the job before that line is out
            if launcher_rank() in (None, "0"):
                print(f"rayscript: {mismatch}", file=sys.stderr, flush=True)
                return 2
            return 0
        if args.command == "exec":
            return cmd_exec(args)
        if under_mpiexec():
            # this process stays as the rank's keeper; the rank goes on from here
            terminal = _repl_terminal() if args.command == "repl" else None
            split(terminal if launcher_rank() == "0" else None, screen=terminal)
        if args.command == "run":
            return cmd_run(args)
        return cmd_repl(args)
    except KeyboardInterrupt:
        print("rayscript: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _closed_pipe() -> int:
    """The reader of our output went away (``| head``): end quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush at exit
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a tool ended by a closed pipe


def _repl_terminal() -> str | None:
    """A REPL started at a terminal: the terminal rank 0's shell will draw on (and put in raw mode),
    as every rank on the launcher's host finds it."""
    from .repl import launcher_terminal

    return launcher_terminal()


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark is not part of the script
            return fh.read()
    except OSError as exc:
        raise RayScriptError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RayScriptError(f"{path} is not UTF-8 text (byte {exc.start})") from None


def cmd_check(args: argparse.Namespace) -> int:
    from .statements import check_all

    if args.ranks is not None and args.ranks < 1:
        print(f"rayscript check: --ranks takes a number of ranks >= 1, not {args.ranks}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.script:
        try:
            text = _read(path)
        except RayScriptError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        statements, errors = check_all(text, path, args.ranks)
        for e in errors:
            print(f"{e}", file=sys.stderr)
        if errors:
            failed += 1
            print(f"{path}: {len(errors)} error{'s' if len(errors) > 1 else ''}", file=sys.stderr)
        else:
            print(f"{path}: ok ({len(statements)} statement{'s' if len(statements) != 1 else ''})")
    return 1 if failed else 0


def open_cluster(ranks: int | None, progress: Progress | None = None) -> Cluster:
    """The cluster for this process: MPI under mpiexec, else in-process threads."""
    from .cluster import Cluster
    from .runtime.keeper import under_mpiexec

    if under_mpiexec():
        if ranks is not None:
            raise RayScriptError("--ranks is for runs without mpiexec; under mpiexec use -n")
        cluster = Cluster(comm=_world(), progress=progress)
        install_signal_handlers(cluster)
        return cluster
    if ranks is None:
        print("rayscript: not started under mpiexec; running on 1 rank "
              "(use 'mpiexec -n N rayscript ...' or --ranks N for more)", file=sys.stderr)
        ranks = 1
    return Cluster.local(ranks, progress=progress)


def install_signal_handlers(cluster: Cluster) -> None:
    """Under mpiexec: Ctrl-C is rank 0's alone (the shell or script cancels); a rank told to
    terminate (SIGTERM) reports it to rank 0 before it goes, so rank 0 can say which rank it was
    and shut every rank down cleanly; rank 0 itself says so and shuts them down.  Terminated is
    not an Exception: no handler or task that reports its own errors as an order's takes it for
    one.  A second SIGTERM ends the process at once, unless it follows the first within
    TWICE_SECONDS: Slurm signals every process of a job step, so a rank gets the launcher's SIGTERM
    both directly and from its keeper, and that is one request to terminate, not two."""
    import signal
    import time

    first: list[float] = []

    def terminate(signum: int, frame: FrameType | None) -> None:
        if not first:
            first.append(time.monotonic())
            raise Terminated("terminated by SIGTERM")
        if time.monotonic() - first[0] < TWICE_SECONDS:
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    if cluster.rank != 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, terminate)


def _world() -> Any:
    from .runtime.messenger import mpi_module

    return mpi_module().COMM_WORLD


def _print_results(results: Iterable[Result]) -> None:
    for r in results:
        if r.text:
            print(r.text, flush=True)


def hosts_line(hosts: list[str]) -> str:
    """'5 ranks on 3 hosts: a (ranks 0-1), b (2-3), c (4)'."""
    ranks: dict[str, list[int]] = {}
    for r, h in enumerate(hosts):
        ranks.setdefault(h, []).append(r)

    def span(rs: list[int]) -> str:
        contiguous = rs == list(range(rs[0], rs[-1] + 1))
        return (f"{rs[0]}-{rs[-1]}" if contiguous else ",".join(map(str, rs))) if len(rs) > 1 else str(rs[0])

    parts = [f"{h} ({'ranks ' if i == 0 else ''}{span(rs)})" for i, (h, rs) in enumerate(ranks.items())]
    return f"{len(hosts)} ranks on {len(ranks)} hosts: " + ", ".join(parts)


def _on_cluster(ranks: int | None, drive: Callable[[Cluster], int], progress_lines: bool = False) -> int:
    """Open the cluster; rank 0 runs ``drive(cluster)`` and the other ranks serve until it is done.
    A rank failure stops every rank (aborting the job if that cannot finish).  ``progress_lines``:
    show progress on standard error even when it is not a terminal."""
    try:
        cluster = open_cluster(ranks, Progress(lines=progress_lines))
    except RayScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cluster.rank == 0 and len(set(cluster.hosts)) > 1:
        print(f"rayscript: {hosts_line(cluster.hosts)}", file=sys.stderr, flush=True)
    try:
        with cluster as c:
            if c is None:
                return 0  # a serving rank; rank 0 reports
            try:
                return drive(c)
            except (RankFailure, Terminated) as exc:
                # Terminated: rank 0 told to terminate between statements (within one, it is a RankFailure)
                failure = exc if isinstance(exc, RankFailure) else RankFailure(c.rank, str(exc))
                print(f"error: {failure}", file=sys.stderr)
                _emergency_stop(c)
                return 1
    except Terminated:
        # told to terminate while shutting down: the job is ending already, and whoever ends it
        # (Open MPI's launcher sends each rank of a failed job SIGTERM) has said why
        return 128 + 15


def cmd_run(args: argparse.Namespace) -> int:
    if (args.script is None) == (args.text is None):
        print("rayscript run: give a script file or -e TEXT (not both)", file=sys.stderr)
        return 2
    text, source = (args.text, "<-e>") if args.text is not None else (None, args.script)

    def drive(c: Cluster) -> int:
        try:
            if args.restore:
                for results in c.stream(f"restore from {json.dumps(args.restore)}", "--restore"):
                    _print_results(results)
            for results in c.stream(text if text is not None else _read(source), source):
                _print_results(results)
        except RankFailure:
            raise
        except RayScriptError as exc:
            print(str(exc) if str(exc).startswith(source) else f"error: {exc}", file=sys.stderr)
            return 1
        except BrokenPipeError:
            return _closed_pipe()  # the cluster still closes: every rank stops
        return 0

    return _on_cluster(args.ranks, drive, args.progress)


def _emergency_stop(cluster: Cluster) -> None:
    """A rank failed: stop the others; if that cannot finish, abort the whole job."""
    import threading

    def abort() -> None:
        cluster.node.messenger.abort(1)
        os._exit(1)

    timer = threading.Timer(10.0, abort)
    timer.daemon = True
    timer.start()
    cluster.close()
    timer.cancel()


def cmd_exec(args: argparse.Namespace) -> int:
    """Run a program as this rank, under a keeper (see runtime/keeper.py)."""
    from .runtime.keeper import split, under_mpiexec

    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        print("rayscript exec: name the program to run, e.g. 'mpiexec -n 4 rayscript exec python analysis.py'",
              file=sys.stderr)
        return 2
    if under_mpiexec():
        split()
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        print(f"rayscript exec: cannot run {program[0]}: {exc.strerror}", file=sys.stderr)
        return 127


def cmd_repl(args: argparse.Namespace) -> int:
    from .repl import run_repl

    return _on_cluster(getattr(args, "ranks", None), run_repl)
