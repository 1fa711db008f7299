"""The REPL on rank 0: a prompt_toolkit shell on a terminal, line mode otherwise.

Under mpiexec, rank 0's stdin and stdout are pipes from the launcher even when a person typed the
command at a terminal.  The shell is used when the launcher itself reads from a terminal (found
through /proc on Linux); it then talks to the terminal directly (/dev/tty).  When the launcher's
input is a pipe or a file (``echo ranks | mpiexec -n 2 rayscript repl``), statements are read line
by line like a script.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports this package before the rank splits off: nothing heavy
    from ..cluster import Cluster

LAUNCHERS = ("mpiexec", "mpirun", "mpiexec.hydra", "orterun", "prterun", "srun")


def _is_tty_path(path: str) -> bool:
    return path.startswith("/dev/pts/") or path.startswith("/dev/tty")


def launcher_terminal() -> str | None:
    """The terminal device an MPI launcher above this process reads from and writes to."""
    pid = os.getppid()
    for _ in range(4):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
            name = stat[stat.index("(") + 1: stat.rindex(")")]
            if name in LAUNCHERS or name.startswith("mpiexec"):
                paths = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1)]
                return paths[0] if all(map(_is_tty_path, paths)) and paths[0] == paths[1] else None
            pid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            return None
    return None


def wait_for_foreground(fd: int) -> bool:
    """A shell started in the background (``rayscript repl &``) must not read the terminal: stop,
    as a program that reads the terminal from the background is stopped, until ``fg``.  False if
    it stays in the background (no job control stops it)."""
    import signal
    import time

    for _ in range(50):
        try:
            if os.tcgetpgrp(fd) == os.getpgrp():
                return True
            os.kill(0, signal.SIGTTIN)  # the whole process group: the job stops, 'fg' resumes it
        except OSError:
            return True
        time.sleep(0.1)
    return False


def run_repl(cluster: Cluster) -> int:
    if sys.stdin.isatty() and sys.stdout.isatty():
        if not wait_for_foreground(sys.stdin.fileno()):
            sys.stderr.write("rayscript repl: started in the background, and its terminal belongs to another "
                             "job; run it in the foreground (or feed it statements through a pipe)\n")
            return 1
        from .shell import run_shell

        return run_shell(cluster)
    tty = launcher_terminal() if cluster.backend == "mpi" else None
    if tty:
        return _shell_through_launcher(cluster, tty)
    from .lines import run_lines

    return run_lines(cluster)


def _shell_through_launcher(cluster: Cluster, tty: str) -> int:
    """Keys reach rank 0 through the launcher's stdin forwarding; the screen is the launcher's
    terminal, written directly.  The terminal stays in raw mode for the whole session, so every key
    is forwarded at once and Ctrl-C arrives as a key (the launcher would otherwise take a second
    Ctrl-C as an order to kill the job): at the prompt it gives a fresh prompt, while a statement
    runs it cancels the statement."""
    import select
    import signal

    from prompt_toolkit.input.vt100 import Vt100Input, raw_mode
    from prompt_toolkit.output import create_output

    from ..progress import Progress
    from .shell import Shell

    fd = sys.stdin.fileno()
    Vt100Input._fds_not_a_terminal.add(fd)  # a pipe from the launcher, known
    # Under Open MPI's launcher the rank is in the launcher's session, in a process group of its
    # own (its keeper's doing): to the terminal it is a background job, stopped by SIGTTOU when it
    # sets raw mode or draws.  It draws for the launcher, which is in the foreground.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)

    def ctrl_c_pressed() -> bool:
        ready, _, _ = select.select([fd], [], [], 0)
        return bool(ready) and b"\x03" in os.read(fd, 4096)  # other keys typed meanwhile are dropped

    with open(tty, "w") as screen, raw_mode(screen.fileno()):
        if isinstance(cluster.node.progress, Progress):  # the command line's (a display of one's own draws on)
            cluster.node.progress.show_on(screen, toolbar=True)  # a bar on the terminal, not lines on the pipe
        shell = Shell(cluster, input=Vt100Input(sys.stdin), output=create_output(stdout=screen))
        shell.interrupt_source = ctrl_c_pressed
        return shell.loop()
